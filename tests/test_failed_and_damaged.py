"""A failed file is reported as failed, not pending; a broken manifest is named at its own line."""

import json

import pytest

from nr4dl_tasks.core.errors import MediaError
from nr4dl_tasks.core.records import read_clips
from nr4dl_tasks.export.build import export_dataset
from nr4dl_tasks.pipeline import process_file


def test_a_file_that_failed_is_reported_failed_not_pending(tmp_path, make_settings):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3\x03\x00 this is not audio " * 200)
    settings = make_settings(export__dataset_dir=str(tmp_path / "dataset"))
    with pytest.raises(MediaError):
        process_file(bad, settings)
    report = export_dataset(settings)
    assert report.pending == []
    ((folder, cause),) = report.failed.items()
    assert folder.startswith("broken-") and cause.startswith(f"ingest failed: {bad}: not readable as media")


def test_a_truncated_manifest_is_named_at_its_line(tmp_path):
    record = {
        "id": "a_00001",
        "source": "a",
        "label": "male",
        "start": 0.0,
        "end": 1.0,
        "duration": 1.0,
        "path": "clips/a_00001.wav",
    }
    manifest = tmp_path / "gate.jsonl"
    manifest.write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n" + json.dumps(record)[:30] + "\n")
    with pytest.raises(ValueError, match=r"^gate.jsonl line 3: JSONDecodeError"):
        read_clips(manifest)
