"""Every slicing rule, on ina's real segmentation of real recordings."""

import json

import numpy as np
import pytest
import soundfile as sf

from helpers import ffmpeg
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.layout import CLIPS_JSONL
from nr4dl_tasks.core.records import Segment, read_clips
from nr4dl_tasks.pipeline import open_work, run_stage
from nr4dl_tasks.stages.slice import keep_labels, loudness_of, merge_gaps, plan_clips, split_long

# inaSpeechSegmenter's output for musanmix.mp3 (its own regression file, checked in test_segment.py)
MUSANMIX = [
    Segment("music", 0.0, 22.48),
    Segment("noEnergy", 22.48, 29.08),
    Segment("noise", 29.08, 52.8),
    Segment("noEnergy", 52.8, 54.78),
    Segment("noise", 54.78, 55.74),
    Segment("noEnergy", 55.74, 63.34),
    Segment("male", 63.34, 68.26),
    Segment("noEnergy", 68.26, 68.92),
    Segment("male", 68.92, 71.6),
    Segment("noEnergy", 71.6, 72.0),
    Segment("male", 72.0, 73.82),
    Segment("noEnergy", 73.82, 74.5),
]


def flat(start: float, end: float) -> np.ndarray:
    return np.zeros(int(round((end - start) * 100)))


def cfg(**values) -> settings_mod.SliceSettings:
    return settings_mod.SliceSettings(**values)


def test_keep_labels_and_speech_expansion():
    assert [s.label for s in keep_labels(MUSANMIX, {"music"})] == ["music"]
    assert len(keep_labels(MUSANMIX, cfg(labels=["speech"]).wanted_labels())) == 3
    assert keep_labels(MUSANMIX, cfg(labels=["female"]).wanted_labels()) == []


def test_merge_gaps_joins_only_short_gaps_of_the_same_label():
    male = keep_labels(MUSANMIX, {"male"})
    assert merge_gaps(male, 0.3) == male  # gaps are 0.66 s and 0.4 s
    assert merge_gaps(male, 0.5) == [male[0], Segment("male", 68.92, 73.82)]
    assert merge_gaps(male, 0.7) == [Segment("male", 63.34, 73.82)]
    mixed = [Segment("male", 0, 1), Segment("female", 1.1, 2), Segment("male", 2.1, 3)]
    assert merge_gaps(mixed, 0.5) == mixed


def test_min_duration_catch_phrases_versus_long_utterances():
    short = [Segment("male", 0, 0.35), Segment("male", 1, 1.2), Segment("male", 2, 3.6)]

    def keep(minimum: float) -> list[Segment]:
        return [p[0] for p in plan_clips(short, cfg(min_duration=minimum, merge_gap=0), flat, 10)]

    assert keep(0.3) == [short[0], short[2]]
    assert keep(1.5) == [short[2]]


def test_padding_is_added_and_clamped_to_the_file():
    plan = plan_clips([Segment("male", 0.02, 2.0), Segment("male", 5.0, 7.98)], cfg(padding=0.1), flat, 8.0)
    assert [p[1] for p in plan] == [Segment("male", 0.0, 2.1), Segment("male", 4.9, 8.0)]
    assert [p[0] for p in plan] == [Segment("male", 0.02, 2.0), Segment("male", 5.0, 7.98)]


def test_long_segment_is_split_at_its_quietest_point(media, tmp_path):
    wav = tmp_path / "lamartine_16k.wav"
    ffmpeg("-i", str(media / "segmentation" / "lamartine.wav"), "-ac", "1", "-ar", "16000", str(wav))
    loudness = loudness_of(wav)
    whole = Segment("female", 0.0, 14.6)
    pieces = split_long(whole, max_len=4.0, min_len=1.0, loudness=loudness)
    assert pieces[0].start == 0.0 and pieces[-1].end == 14.6
    assert all(a.end == b.start for a, b in zip(pieces[:-1], pieces[1:], strict=True))
    assert all(1.0 - 1e-9 <= p.duration <= 4.0 + 1e-9 for p in pieces)
    for piece in pieces[:-1]:
        window = loudness(piece.start + 2.0, piece.start + 4.0)
        at_cut = loudness(piece.end - 0.005, piece.end + 0.005)
        assert at_cut.max() <= np.percentile(window, 5) + 1e-6, (piece, at_cut, np.percentile(window, 5))


def test_slice_stage_writes_clips_and_manifest(media, make_settings):
    settings = make_settings(
        separate__mode="off",
        slice__labels=["speech"],
        slice__sample_rate=16000,
        slice__max_duration=4.0,
        slice__padding=0.1,
    )
    work = open_work(media / "segmentation" / "lamartine.wav", settings)
    for stage in ("ingest", "separate", "segment"):
        run_stage(stage, work, settings)
    result = run_stage("slice", work, settings)
    clips = read_clips(work.path(CLIPS_JSONL))
    assert result.info["clips"] == len(clips) >= 3
    assert {c.label for c in clips} == {"female", "male"}
    for clip in clips:
        info = sf.info(str(work.path(clip.path)))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.frames / info.samplerate == pytest.approx(clip.duration, abs=0.002)
        assert clip.duration <= 4.0 + 0.2 + 1e-6 and clip.source == work.source_id
    first = json.loads(work.path(CLIPS_JSONL).read_text().splitlines()[0])
    assert {"id", "source", "label", "start", "end", "duration", "path", "speech_start", "speech_end"} <= set(first)
    # A changed knob reslices; the same settings are skipped.
    assert run_stage("slice", work, settings).skipped
    fewer = make_settings(separate__mode="off", slice__labels=["male"], slice__sample_rate=16000)
    again = run_stage("slice", work, fewer)
    assert not again.skipped and {c.label for c in read_clips(work.path(CLIPS_JSONL))} == {"male"}
    assert len(list(work.path("clips").glob("*.wav"))) == again.info["clips"]
