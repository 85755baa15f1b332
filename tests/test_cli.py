"""`nr4dl process`: the real console script on real files, one of them bad."""

import subprocess

from helpers import NR4DL, ROOT
from nr4dl_tasks.core.records import read_clips, read_segments


def nr4dl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(NR4DL), *args], capture_output=True, text=True, cwd=ROOT)


def test_process_reports_a_bad_file_and_finishes_the_others(media, tmp_path):
    corrupt = tmp_path / "broken.mp3"
    corrupt.write_bytes(b"\xff\xfb" + b"garbage" * 500)
    out = tmp_path / "out"
    good = media / "segmentation" / "lamartine.wav"
    first = nr4dl("process", str(corrupt), str(good), "--out", str(out), "--set", "slice.min_duration=0.3")
    assert first.returncode == 1, first.stdout + first.stderr
    assert f"FAILED  {corrupt}: not readable as media" in first.stdout
    assert "1 of 2 file(s) processed, 1 failed" in first.stdout
    (folder,) = [p for p in out.iterdir() if p.name.startswith("lamartine-")]
    labels = {s.label for s in read_segments(folder / "segments.csv")}
    assert {"female", "male"} <= labels
    clips = read_clips(folder / "clips.jsonl")
    assert clips and all((folder / c.path).exists() for c in clips)
    # a clip's speech span; a piece cut out at the speakers stage (a turn, a purity cut) is speech end to end
    assert min(c.extra.get("speech_end", c.end) - c.extra.get("speech_start", c.start) for c in clips) >= 0.3

    again = nr4dl("process", str(good), "--out", str(out), "--set", "slice.min_duration=0.3")
    assert again.returncode == 0
    assert (
        "[ingest (skipped), segment (skipped), separate (skipped), slice (skipped), denoise (skipped), "
        "speakers (skipped), transcribe (skipped), gate (skipped)]"
    ) in again.stdout

    dataset = tmp_path / "dataset"
    export = nr4dl("export", "--set", f"paths.work_dir={out}", "--set", f"export.dataset_dir={dataset}")
    assert export.returncode == 0, export.stdout + export.stderr
    kept = [c for c in read_clips(folder / "clips.jsonl") if not c.extra.get("dropped")]
    assert f"{len(kept)} clips" in export.stdout and kept
    rows = [line.split("|") for f in dataset.glob("all/ljspeech/*/metadata.csv") for line in f.read_text().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(c.id for c in kept)
    assert (
        "unchanged"
        in nr4dl("export", "--set", f"paths.work_dir={out}", "--set", f"export.dataset_dir={dataset}").stdout
    )


def test_until_stops_after_the_named_stage(media, tmp_path):
    out = tmp_path / "out"
    result = nr4dl(
        "process",
        str(media / "segmentation" / "0021.mp3"),
        "--out",
        str(out),
        "--until",
        "segment",
        "--set",
        "separate.mode=off",
    )
    assert result.returncode == 0, result.stderr
    (folder,) = list(out.iterdir())
    assert (folder / "segments.csv").exists() and not (folder / "clips.jsonl").exists()


def test_bad_setting_is_reported_before_any_work(media, tmp_path):
    result = nr4dl(
        "process", str(media / "segmentation" / "0021.mp3"), "--out", str(tmp_path), "--set", "slice.min_duration=abc"
    )
    assert result.returncode == 2
    assert "slice.min_duration" in result.stderr and list(tmp_path.iterdir()) == []
