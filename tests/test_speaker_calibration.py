"""Per-target thresholds calibrated from the data, measured on held-out speakers (tests/speaker_sets.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from speaker_sets import (
    LIBRISPEECH,
    Programme,
    evaluate,
    held_out_programmes,
    ids_across_files,
    load,
    music_clip,
    programme_files,
    tuning_cohort,
    utterances,
)

from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.settings import SpeakerSettings
from nr4dl_tasks.voice import calibration, encoders
from nr4dl_tasks.voice.registry import SpeakerRegistry

THREADS = 2
MODELS = settings_mod.load().resolve(settings_mod.load().paths.models_dir)  # CAM++'s files


@functools.cache
def _embed(encoder: encoders.Encoder, path: Path, music: bool) -> np.ndarray:
    model = encoders.VoiceModel(encoder, MODELS, THREADS)
    return model.embed(music_clip(path) if music else load(path))


def embedder(encoder: encoders.Encoder):
    return lambda path, music: _embed(encoder, path, music)


# Two of the held-out programmes: Korean hosts (F+F) with three male guests, and the English hosts with Korean guests.
PROGRAMMES = [p for p in held_out_programmes() if p.hosts in (("pfb", "pfc"), ("p227", "p228"))]


@pytest.mark.parametrize("programme", PROGRAMMES, ids=lambda p: "+".join(p.hosts))
def test_held_out_hosts_are_kept_and_guests_are_not(media, programme: Programme):
    cfg = SpeakerSettings()
    outcomes = evaluate(programme, embedder(cfg.encoder), cfg)
    assert [o.target for o in outcomes] == list(programme.hosts)
    for o in outcomes:
        assert o.precision >= 0.95 and o.recall >= 0.8, o


def test_held_out_voices_get_one_id_each_across_files(media, tmp_path):
    """Three held-out programmes as files, no recording in two of them, two clips per guest, music under every
    clip: clustered and linked as the speakers stage does without enrollment, each voice keeps one id of its own."""
    cfg = SpeakerSettings()
    files = programme_files(held_out_programmes()[:3], guest_clips=2)
    registry = SpeakerRegistry(tmp_path / "registry.json", cfg.encoder)
    ids_of: dict[str, set[str]] = {}
    for voice, sid in ids_across_files(files, embedder(cfg.encoder), cfg, registry):
        ids_of.setdefault(voice, set()).add(sid)
    assert all(len(found) == 1 for found in ids_of.values()), ids_of
    assert len(set.union(*ids_of.values())) == len(ids_of) == 9


def test_a_stricter_false_accept_rate_raises_the_threshold_and_the_files_voices_set_it(media):
    """Open cohort: the VCTK and Korean tuning speakers; the 'file': the other LibriSpeech voices, clean."""
    cohort = np.array([_embed("resemblyzer", f, False) for f in tuning_cohort() if f.parent.name not in LIBRISPEECH])
    target = np.array([_embed("resemblyzer", f, False) for f in utterances("1998")[:3]])
    in_file = np.array([_embed("resemblyzer", f, False) for s in LIBRISPEECH if s != "1998" for f in utterances(s)])
    for others in (in_file, in_file[:0]):
        loose, strict = (calibration.calibrate("1998", target, cohort, others, far, 50) for far in (0.05, 0.001))
        assert strict.threshold > loose.threshold
        assert strict.expected_recall is not None
    # the file's clips of 1998 itself pass its threshold, those of the other voices almost never do
    own = np.array([_embed("resemblyzer", f, False) for f in utterances("1998")[3:]])
    cal = calibration.calibrate("1998", target, cohort, in_file, 0.01, 50)
    (_, norm_own), (_, norm_others) = (calibration.score_clips([cal], x) for x in (own, in_file))
    assert np.mean(norm_own[:, 0] >= cal.threshold) >= 0.8 and np.mean(norm_others[:, 0] >= cal.threshold) <= 0.05


def test_without_a_cohort_dir_the_other_targets_and_the_files_voices_are_the_cohort():
    rng = np.random.default_rng(0)
    voices = calibration.unit_rows(rng.standard_normal((30, 16)))
    clips = voices[12:]  # the file: 18 clips, each its own voice
    recordings = {"a": voices[:3], "b": voices[3:12]}  # a's cohort: b's 9 recordings; b's: a's 3 and the file
    a, b = calibration.calibrate_targets(recordings, np.array([]), clips, list(range(len(clips))), 0.01, 50)
    assert (a.name, len(a.cohort), a.reliable) == ("a", 9, True)
    assert (b.name, len(b.cohort), b.reliable) == ("b", 3 + 17, True)  # all but the file's voice nearest b
    # one target, one voice in the file (its own): no other voice at all
    with pytest.raises(ValueError, match="0 other voice"):
        calibration.calibrate_targets({"a": voices[:3]}, np.array([]), clips, [0] * len(clips), 0.01, 50)
    (few,) = calibration.calibrate_targets({"a": voices[:3]}, voices[3:6], clips, [0] * len(clips), 0.01, 50)
    assert not few.reliable  # 3 voices: a threshold, but every decision goes for review


def test_two_cohort_voices_give_a_finite_unreliable_threshold():
    """Each cohort member scored against the other alone: a NaN threshold once failed the task (its return value is
    JSON) and reached every clip's manifest line."""
    import numpy as np

    from nr4dl_tasks.core.stage import json_safe
    from nr4dl_tasks.voice.calibration import calibrate, unit_rows

    rng = np.random.default_rng(0)
    cohort, own = unit_rows(rng.normal(size=(2, 192))), unit_rows(rng.normal(size=(3, 192)))
    target = calibrate("host", own, cohort, cohort[:0], 0.002, 50)
    assert np.isfinite(target.threshold) and not target.reliable
    assert json_safe({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}
