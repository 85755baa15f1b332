"""The dataset report from real processed files: every number of the static report equals the manifests.

Two real recordings go through every stage with the `nr4dl` command (French
readers, and a two-speaker conversation), with a DNSMOS gate strict enough to
drop some clips, then `nr4dl export` and `nr4dl report`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from report_truth import PLOTS, check_page, figures, lines

from helpers import NR4DL, ROOT
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.progress import Progress, clock_text
from nr4dl_tasks.report.data import build, reason_key

# A DNSMOS gate between the clips' scores (2.9 to 3.3 on these recordings), so the report has drops to show.
REPORT_SETTINGS = {"slice": {"min_duration": 0.3}, "gates": {"min_dnsmos_ovrl": 3.1}}


def processed(root: Path, media: Path) -> dict:
    """Process the recordings and export them with the nr4dl command; returns the paths and settings file."""
    work, dataset = root / "work", root / "dataset"
    settings_file = root / "settings.yaml"
    settings_file.write_text(
        json.dumps({**REPORT_SETTINGS, "paths": {"work_dir": str(work)}, "export": {"dataset_dir": str(dataset)}})
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    files = [str(media / "segmentation/lamartine.wav"), str(media / "diarization/sample.wav")]
    for command in (["process", *files], ["export"]):
        subprocess.run(
            [str(NR4DL), command[0], *command[1:], "--settings", str(settings_file)],
            env=env,
            check=True,
            capture_output=True,
        )
    return {"work": work, "dataset": dataset, "settings": settings_file, "env": env}


@pytest.fixture(scope="module")
def run(tmp_path_factory, media):
    return processed(tmp_path_factory.mktemp("report"), media)


def folders(work: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(work.iterdir()) if (p / "source.json").is_file()}


def test_nr4dl_report_writes_a_static_page_whose_numbers_are_the_manifests(run):
    result = subprocess.run(
        [str(NR4DL), "report", "--settings", str(run["settings"])],
        env=run["env"],
        capture_output=True,
        text=True,
        check=True,
    )
    path = run["dataset"] / "report.html"
    assert result.stdout.strip() == f"report {path}"
    page = figures(path.read_text(encoding="utf-8"))
    check_page(page, folders(run["work"]), run["dataset"])
    gate = [r for f in folders(run["work"]).values() for r in lines(f / "manifests/gate.jsonl")]
    assert any(r.get("dropped", "").startswith("gate dnsmos") for r in gate)  # the setting did drop clips
    assert PLOTS | {"histogram: clip duration (s)"} <= set(page.plots)
    assert sum(p.startswith("timeline ") for p in page.plots) == 2
    # Offline: nothing is fetched from anywhere, the audio is inside the file.
    assert page.external == []
    assert page.audio and all(src.startswith("data:audio/ogg;base64,") for src in page.audio)
    assert base64.b64decode(page.audio[0].split(",", 1)[1])[:4] == b"OggS"


def test_every_drop_is_counted_and_the_seconds_balance(run):
    report = build(settings_mod.load(run["settings"]))
    for file in report.files:
        for before, step in zip(file.funnel, file.funnel[1:]):
            dropped = sum(d.seconds for d in step.drops.values())
            assert abs(before.seconds - dropped + step.added_seconds - step.seconds) < 1e-6, (file.source, step)
            if before.clips is not None:
                lost = sum(d.clips for d in step.drops.values())
                assert before.clips - lost + step.added_clips == step.clips, (file.source, step)
    shown = {c.id: c for c in report.clips}
    for folder in folders(run["work"]).values():
        for record in lines(folder / "manifests/gate.jsonl"):
            clip = shown[record["id"]]
            assert clip.kept == (not record.get("dropped")) and clip.detail == record.get("dropped")


def test_reason_keys_drop_the_figures_but_keep_the_check():
    assert reason_key("gate cps: 41.2 characters/s outside [1.0, 30.0]") == "gate: cps"
    assert reason_key("speakers: split into 2 single-voice clip(s)") == "speakers: split at a voice change"
    assert reason_key("speakers: closest target alice at 0.41, below 0.8") == "speakers: not a target speaker"


def test_progress_logs_done_total_speed_and_eta_every_ten_seconds(caplog):
    now = [0.0]
    progress = Progress("show: transcribing", 600, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="nr4dl"):
        for _ in range(30):  # 30 clips of 20 s of audio, 4 s of work each
            now[0] += 4
            progress.add(20)
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 10  # at 12, 24, ... 120 s of work: never more than 10 s apart while work goes on
    assert logged[0] == "show: transcribing: 60 of 600 s of audio (10%), 5.0x real time, ETA 1m48s"
    assert clock_text(3725) == "1h02m"
