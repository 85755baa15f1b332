"""Ingest on real media, and every kind of bad input named with its cause."""

import json
from pathlib import Path

import pytest
import soundfile as sf

from helpers import ffmpeg
from nr4dl_tasks.core.errors import MediaError
from nr4dl_tasks.core.layout import ANALYSIS_WAV, FULL_WAV
from nr4dl_tasks.pipeline import open_work, run_stage


def ingest(media: Path, settings):
    work = open_work(media, settings)
    return work, run_stage("ingest", work, settings)


def test_ingest_makes_analysis_and_full_copies(media, make_settings):
    work, result = ingest(media / "segmentation" / "musanmix.mp3", make_settings())
    analysis, full = sf.info(str(work.input(ANALYSIS_WAV))), sf.info(str(work.input(FULL_WAV)))
    assert (analysis.samplerate, analysis.channels) == (16000, 1)
    assert (full.samplerate, full.channels) == (44100, 2)
    assert result.info["duration"] == pytest.approx(74.5, abs=0.1)
    assert work.source_id.startswith("musanmix-")


def test_video_input_is_accepted(tmp_path, media, make_settings):
    video = tmp_path / "clip.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=10",
        "-i",
        str(media / "segmentation" / "0021.mp3"),
        "-shortest",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        str(video),
    )
    work, result = ingest(video, make_settings())
    assert result.info["duration"] == pytest.approx(0.7, abs=0.1)


def test_source_id_is_stable_and_content_based(tmp_path, media, make_settings):
    settings = make_settings()
    copy = tmp_path / "musanmix.mp3"
    copy.write_bytes((media / "segmentation" / "musanmix.mp3").read_bytes())
    assert open_work(media / "segmentation" / "musanmix.mp3", settings).source_id == open_work(copy, settings).source_id
    other = open_work(media / "segmentation" / "0021.mp3", settings).source_id
    assert other != open_work(copy, settings).source_id


def test_rerun_is_skipped_and_a_lost_output_is_remade(media, make_settings):
    settings = make_settings()
    work, first = ingest(media / "segmentation" / "0021.mp3", settings)
    before = work.input(ANALYSIS_WAV).stat().st_mtime_ns
    _, second = ingest(media / "segmentation" / "0021.mp3", settings)
    assert not first.skipped and second.skipped
    assert work.input(ANALYSIS_WAV).stat().st_mtime_ns == before
    work.input(FULL_WAV).unlink()
    _, third = ingest(media / "segmentation" / "0021.mp3", settings)
    assert not third.skipped and work.input(FULL_WAV).exists()


def test_leftovers_of_a_killed_task_are_removed_and_a_stale_stamp_is_not_trusted(media, make_settings):
    settings = make_settings()
    work, _ = ingest(media / "segmentation" / "0021.mp3", settings)
    leftover = work.path(".audio_44k.tmp-0123456789ab.wav")
    leftover.write_bytes(b"half-written")
    stamp = work.read_stamp("ingest")
    work.path("stamps/ingest.json").write_text(json.dumps({**stamp, "fingerprint": "from-another-run"}))
    _, again = ingest(media / "segmentation" / "0021.mp3", settings)
    assert not again.skipped and not leftover.exists()


def _bad_media(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.mp4"
    if kind == "missing":
        return tmp_path / "missing.mp3"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path = tmp_path / "corrupt.mp3"
        path.write_bytes(b"ID3\x03\x00 this is not audio " * 200)
    elif kind == "no_audio":
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "1", "-c:v", "libx264", str(path))
    elif kind == "zero_length":
        path = tmp_path / "zero.wav"
        sf.write(str(path), [], 16000, subtype="PCM_16")
    elif kind == "silence":
        path = tmp_path / "silence.wav"
        ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", str(path))
    return path


@pytest.mark.parametrize(
    "kind, cause",
    [
        ("missing", "file does not exist"),
        ("empty", "file is empty"),
        ("corrupt", "not readable as media"),
        ("no_audio", "no audio stream"),
        ("zero_length", "zero samples|not readable|no audio stream"),
        ("silence", "digital silence"),
    ],
)
def test_bad_input_is_named_with_its_cause(tmp_path, make_settings, kind, cause):
    bad = _bad_media(tmp_path, kind)
    settings = make_settings()
    with pytest.raises(MediaError, match=cause) as err:
        ingest(bad, settings)
    assert str(bad.resolve()) in str(err.value) or bad.name in str(err.value)
    # nothing half-written is left under a real name
    work_root = Path(settings.paths.work_dir)
    leftovers = [p.name for p in work_root.rglob("*.wav")] if work_root.exists() else []
    assert leftovers == []
