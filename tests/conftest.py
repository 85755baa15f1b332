"""Fixtures: the real test recordings in ../shared/media and a settings object per test.

A test that takes the `media` fixture is marked `media`: `pytest -m "not media"` runs the tests that need no
recordings (pure logic), anywhere. Shared helpers live in helpers.py, fixtures only here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import MEDIA, airflow_env
from nr4dl_tasks.core import settings as settings_mod

# The suite runs on the project's own settings: a shell that exported a settings file or NR4DL__ overrides (a
# worker's production catalog URL, say) must not leak into the tests or have them write to its database.
for _name in [n for n in os.environ if n.startswith("NR4DL__") or n == "NR4DL_SETTINGS"]:
    del os.environ[_name]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "media" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.media)


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


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """A fresh Airflow home for the tests that run Airflow in this process: its environment is set for the session
    before any test imports airflow (which reads it once), and taken back afterwards. Test modules import airflow
    inside their tests, never at collection."""
    home = tmp_path_factory.mktemp("airflow")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in airflow_env(home).items():
            patch.setenv(name, value)
        yield home
