"""inaSpeechSegmenter parity: our windowed run against ina's own expected outputs and human labels."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import ffmpeg
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.core.layout import SEGMENT_VOCALS_WAV, SEGMENTS_CSV
from nr4dl_tasks.core.records import read_segments
from nr4dl_tasks.dsp.ina import resolve_precision, segmenter
from nr4dl_tasks.pipeline import open_work, run_stage


@pytest.fixture(scope="module")
def ina():
    return segmenter(settings_mod.Settings())


def analysis_copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / (src.stem + "_16k.wav")
    ffmpeg("-i", str(src), "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out))
    return out


def ina_expected(path: Path) -> list[tuple[str, float, float]]:
    with path.open() as fh:
        return [(row["labels"], float(row["start"]), float(row["stop"])) for row in csv.DictReader(fh, delimiter="\t")]


def run(ina, wav: Path, window_s: float = 300.0):
    return [(s.label, s.start, s.end) for s in ina(wav, 0.03, window_s, 256).segments]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("musanmix.mp3", "musanmix-smn-gender.csv"),
        ("0021.mp3", "0021-smn-gender.csv"),
    ],
)
def test_parity_with_ina_expected_output(ina, media, tmp_path, name, expected):
    ours = run(ina, analysis_copy(media / "segmentation" / name, tmp_path))
    theirs = ina_expected(media / "segmentation" / expected)
    assert [label for label, _, _ in ours] == [label for label, _, _ in theirs]
    for (_, s1, e1), (_, s2, e2) in zip(ours, theirs, strict=True):
        assert s1 == pytest.approx(s2, abs=0.02) and e1 == pytest.approx(e2, abs=0.02)


def test_windowed_run_equals_whole_file_run(ina, media, tmp_path):
    """Windows of 10 s (7 windows over musanmix) give exactly the single-window result, music posteriors too."""
    wav = analysis_copy(media / "segmentation" / "musanmix.mp3", tmp_path)
    assert run(ina, wav, window_s=10) == run(ina, wav, window_s=300)
    # the same up to rounding: the networks see the patches in other batches (bfloat16, chosen by 'auto' on CPUs
    # that have it, keeps 8 bits of mantissa: 0.4 % of a posterior)
    bf16 = resolve_precision(settings_mod.Settings().segment.precision) == "bfloat16"
    np.testing.assert_allclose(
        ina(wav, 0.03, 10, 256).music, ina(wav, 0.03, 300, 256).music, atol=4e-3 if bf16 else 1e-5
    )


def test_music_posterior_is_high_in_music_and_low_in_speech(ina, media, tmp_path):
    """musanmix: piano 0-22.44 s, noise to 62.78 s, then a reader (musanmix.truth.tsv)."""
    music = ina(analysis_copy(media / "segmentation" / "musanmix.mp3", tmp_path), 0.03, 300, 256).music
    assert np.nanmean(music[: int(22 / 0.02)]) > 0.9
    assert np.nanmean(music[int(63.5 / 0.02) :]) < 0.05


def test_a_last_window_of_one_frame_changes_nothing(ina, media, tmp_path):
    """10 s windows over 10 s + 500 samples: the last window holds a single 10 ms frame."""
    wav = tmp_path / "one_frame_tail.wav"
    ffmpeg(
        "-i",
        str(media / "segmentation" / "lamartine.wav"),
        "-ac",
        "1",
        "-ar",
        "16000",
        "-af",
        "atrim=end_sample=160500",
        "-c:a",
        "pcm_s16le",
        str(wav),
    )
    assert run(ina, wav, window_s=10) == run(ina, wav, window_s=300)


def test_silence_gives_no_speech(ina, media, tmp_path):
    labels = {label for label, _, _ in run(ina, analysis_copy(media / "segmentation" / "silence2sec.wav", tmp_path))}
    assert labels <= {"noEnergy"}


def test_gender_boundary_matches_human_labels(ina, media, tmp_path):
    """lamartine.wav: a female reader until 8.65 s, then a male reader (human labels, ±0.1 s)."""
    segs = run(ina, analysis_copy(media / "segmentation" / "lamartine.wav", tmp_path))
    female = [s for s in segs if s[0] == "female"]
    male = [s for s in segs if s[0] == "male"]
    assert female and male
    assert max(end for _, _, end in female) <= 8.65 + 0.1
    assert min(start for _, start, _ in male) >= 8.65 - 0.1
    assert sum(e - s for _, s, e in female) > 6 and sum(e - s for _, s, e in male) > 5


def test_segment_stage_writes_csv_on_the_original(media, make_settings):
    settings = make_settings(separate__mode="off")
    work = open_work(media / "segmentation" / "musanmix.mp3", settings)
    run_stage("ingest", work, settings)
    result = run_stage("segment", work, settings)
    assert result.info["input"] == "audio_16k.wav"
    segments = read_segments(work.input(SEGMENTS_CSV))
    assert work.input(SEGMENTS_CSV).read_text().splitlines()[0] == "label,start,end"
    truth = {"music": (0, 22.44), "noise": (22.44, 62.78), "speech": (62.78, 74.52)}  # musanmix.truth.tsv
    for seg in segments:
        kind = "speech" if seg.label in ("male", "female") else seg.label
        if kind in truth:
            lo, hi = truth[kind]
            assert lo - 0.1 <= seg.start and seg.end <= hi + 0.1, seg


def test_bfloat16_gives_the_same_segments_as_float32(media, tmp_path):
    """Each precision in its own process (TensorFlow's switch is process-wide), on speech, music and noise."""
    from test_cli import nr4dl

    outputs = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        files = [str(media / "segmentation" / name) for name in ("musanmix.mp3", "lamartine.wav")]
        result = nr4dl(
            "process",
            *files,
            "--out",
            str(out),
            "--until",
            "segment",
            "--set",
            "separate.mode=off",
            "--set",
            f"segment.precision={precision}",
        )
        assert result.returncode == 0, result.stderr
        outputs[precision] = {folder.name: (folder / SEGMENTS_CSV.name).read_text() for folder in out.iterdir()}
        stamps = [json.loads((folder / "stamps" / "segment.json").read_text()) for folder in out.iterdir()]
        assert {stamp["info"]["precision"] for stamp in stamps} == {precision}
    assert len(outputs["float32"]) == 2
    assert outputs["float32"] == outputs["bfloat16"]


def test_one_precision_per_process(make_settings):
    segmenter(settings_mod.Settings())
    other = "float32" if resolve_precision("auto") == "bfloat16" else "bfloat16"
    with pytest.raises(StageError, match="process-wide"):
        segmenter(make_settings(segment__precision=other))


def test_segmenting_the_vocals_separates_the_whole_file_first(media, make_settings):
    """`segment.input: vocals`, the seed's way: this stage runs Spleeter itself, since separation comes after it."""
    settings = make_settings(segment__input="vocals")
    work = open_work(media / "segmentation" / "lamartine.wav", settings)
    run_stage("ingest", work, settings)
    result = run_stage("segment", work, settings)
    assert result.info["input"] == SEGMENT_VOCALS_WAV.name
    assert sf.info(str(work.path(SEGMENT_VOCALS_WAV.name))).samplerate == 16000
    assert {s.label for s in read_segments(work.input(SEGMENTS_CSV))} >= {"female", "male"}
