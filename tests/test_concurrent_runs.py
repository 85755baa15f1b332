"""Two runs of one file with different settings at once: they take turns as whole runs, never stage by stage."""

import re
import subprocess
from datetime import datetime

import pytest

from helpers import NR4DL, ROOT
from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.pipeline import open_work, run_stage

STAGE_LINE = re.compile(r"^(\S+ \S+) INFO [^:]+: (\w+) (started|done|already done)", re.M)


def _stage_times(log: str) -> list[datetime]:
    return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp, _, _ in STAGE_LINE.findall(log)]


def test_two_runs_with_other_settings_never_interleave(media, tmp_path):
    good, out = media / "segmentation" / "lamartine.wav", tmp_path / "out"
    common = ["process", str(good), "--out", str(out), "--until", "slice", "--set", "separate.mode=off"]
    runs = [
        subprocess.Popen(
            [str(NR4DL), *common, *extra], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for extra in ([], ["--set", "slice.min_duration=0.3"])
    ]
    results = [(run, *run.communicate(timeout=600)) for run in runs]
    for run, stdout, stderr in results:
        assert run.returncode == 0 and stdout.startswith("ok "), stdout + stderr
    first, second = sorted((_stage_times(stderr) for _, _, stderr in results), key=min)
    assert len(first) >= 4 and len(second) >= 4
    assert max(first) <= min(second), "the two runs' stages interleaved"
    assert "waiting for another run of this file (other settings" in results[0][2] + results[1][2]


def test_a_stage_refuses_upstream_outputs_made_with_other_settings(media, make_settings):
    """Airflow's path (one task per stage, no run lock): a stage whose input another run redid fails, saying so."""
    mine = make_settings(separate__mode="off")
    other = make_settings(separate__mode="off", segment__energy_ratio=0.05)
    work = open_work(media / "segmentation" / "0021.mp3", mine)
    for name in ("ingest", "separate", "segment"):
        run_stage(name, work, mine)
    run_stage("segment", work, other)  # the other run redoes segment while this one is between two tasks
    with pytest.raises(StageError, match="segment was last made with settings other than this run's"):
        run_stage("slice", work, mine)
