"""The failed-file list in its real SQLite database: the latest run of each file decides."""

from __future__ import annotations

import subprocess

from helpers import NR4DL
from nr4dl_tasks.state.failures import FailureLog


def test_the_list_holds_the_files_whose_latest_run_failed(make_settings):
    log = FailureLog(make_settings())
    log.record("/data/a.mp3", "ingest", ValueError("/data/a.mp3: not readable as media\nTraceback ..."), "run1")
    log.record("/data/b.mp3", "separate", "the Spleeter worker exited", "run2")
    log.record("/data/a.mp3", "segment", RuntimeError(""), "run3")  # a later run of a failed again, elsewhere
    log.clear("/data/b.mp3")  # b's latest run succeeded
    (only,) = log.failures()
    assert (only.media, only.stage, only.error, only.run_id) == ("/data/a.mp3", "segment", "RuntimeError", "run3")
    log.clear("/data/never-failed.mp3")
    assert len(FailureLog(make_settings()).failures()) == 1  # another instance reads the same database


def test_the_cli_lists_them(make_settings, tmp_path):
    settings = make_settings()
    FailureLog(settings).record("/data/a.mp3", "ingest", "/data/a.mp3: not readable as media", "run1")
    file = tmp_path / "settings.yaml"
    file.write_text(f"paths: {{work_dir: '{tmp_path / 'work'}'}}\n")
    out = subprocess.run([str(NR4DL), "failures", "--settings", str(file)], capture_output=True, text=True)
    assert out.returncode == 1 and "ingest" in out.stdout and "/data/a.mp3: not readable as media" in out.stdout
    assert "1 file(s) whose latest run failed" in out.stdout
