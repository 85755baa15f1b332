"""Shared fixtures: the real test recordings in ../shared/media and a settings object per test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nr4dl_tasks import settings as settings_mod

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.fail(f"test recordings not found at {MEDIA} (the project expects ../shared/media beside it)")
    return MEDIA


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings with the work folder in the test's temporary folder, plus any overrides."""

    def make(**overrides):
        dotted = {key.replace("__", "."): value for key, value in overrides.items()}
        return settings_mod.load(overrides={"paths.work_dir": str(tmp_path / "work"), **dotted})

    return make


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)
