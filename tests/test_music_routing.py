"""Music where it is: a programme built at known offsets from held-out material, segmented and routed.

The programme (16 kHz, built here from ../shared/media) is Korean read speech of
two held-out speakers (emb, nea) without music, the same speech over a music bed
10 dB under it ('Lets Go Fishin'), Spleeter's demo song with vocals, a 4 s
jingle (Brahms), café noise, and English speech over a second bed (Sugar Plum
Fairy). The thresholds were set without any of it: the bed threshold from
speech without music of a tuning speaker, the singing gate from the tuning
speakers' speech (docs/music.md). Scored on 10 ms frames against the truth.
"""

import sys

import numpy as np
import pytest

from helpers import ROOT
from nr4dl_tasks.core.layout import SEGMENTS_CSV, SEPARATED_JSON
from nr4dl_tasks.core.records import read_manifest, read_segments
from nr4dl_tasks.pipeline import process_file
from nr4dl_tasks.stages.gate import music_checks

sys.path.insert(0, str(ROOT / "bench"))
import programme as built  # noqa: E402

SPEECH_LABELS = {"male", "female", "speech"}


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    """The file, and its truth as (start, end, kind) with kind speech, bed (speech over music), music or noise."""
    show = built.Programme()
    emb, nea = built.korean("emb"), built.korean("nea")
    english = np.concatenate([built.load(p) for p in sorted((built.MEDIA / "speakers" / "3080").glob("*.flac"))[:3]])
    show.speech(np.concatenate(emb[:3]), None)
    show.speech(np.concatenate(nea[:4]), 0)
    show.add("music", built.song())
    show.speech(np.concatenate(nea[4:7])[: 12 * built.RATE], None)
    show.add("music", built.jingle(0))
    show.add("noise", built.cafe())
    show.speech(english, 2)
    show.speech(np.concatenate(emb[3:9])[-10 * built.RATE :], None)
    return show.write(tmp_path_factory.mktemp("routing") / "programme.wav"), show.truth


@pytest.fixture(scope="module")
def routed(programme, tmp_path_factory):
    from nr4dl_tasks.core import settings as settings_mod

    path, _ = programme
    work_dir = tmp_path_factory.mktemp("routed-work")
    settings = settings_mod.load(overrides={"paths.work_dir": str(work_dir)})
    work, _ = process_file(path, settings, until="slice")
    return work, settings


def test_music_is_found_and_speech_is_speech(programme, routed):
    _, truth = programme
    work, _ = routed
    total = truth[-1][1]
    found = [(s.start, s.end, s.label) for s in read_segments(work.input(SEGMENTS_CSV))]
    music_truth, music_found = built.frames(truth, total, {"music"}), built.frames(found, total, {"music"})
    recall = (music_truth & music_found).sum() / music_truth.sum()
    speech_truth, speech_found = (
        built.frames(truth, total, {"speech", "bed"}),
        built.frames(found, total, SPEECH_LABELS),
    )
    precision = (speech_truth & speech_found).sum() / speech_found.sum()
    assert recall >= 0.95, (recall, found)
    assert precision >= 0.98, (precision, found)


def test_only_speech_over_music_is_separated(programme, routed):
    import json

    _, truth = programme
    work, _ = routed
    record = json.loads(work.input(SEPARATED_JSON).read_text())
    beds = [(t0, t1) for t0, t1, kind in truth if kind == "bed"]
    assert record["mode"] == "routed" and record["beds"]
    # what was separated lies in the beds of the truth (speech just after music may score as a bed too)
    found = sum(b["end"] - b["start"] for b in record["beds"])
    inside = sum(max(0.0, min(t1, b["end"]) - max(t0, b["start"])) for b in record["beds"] for t0, t1 in beds)
    assert inside >= 0.9 * found, (record["beds"], beds)
    # and the speech found in each bed is separated (ina may call a pause, or a stretch, of a bed music)
    speech = [s for s in read_segments(work.input(SEGMENTS_CSV)) if s.label in SPEECH_LABELS]
    for t0, t1 in beds:
        in_bed = sum(max(0.0, min(t1, s.end) - max(t0, s.start)) for s in speech)
        covered = sum(max(0.0, min(t1, b["end"]) - max(t0, b["start"])) for b in record["beds"])
        assert in_bed > 0.3 * (t1 - t0) and covered >= 0.95 * in_bed, (t0, t1, in_bed, record["beds"])


def test_bed_clips_come_from_vocals_the_others_from_the_original(programme, routed):
    _, truth = programme
    work, _ = routed
    clips = read_manifest(work, "slice")
    assert clips
    seconds = {True: 0.0, False: 0.0}
    for clip in clips:
        middle = (clip.speech_start + clip.speech_end) / 2
        kind = next((k for t0, t1, k in truth if t0 <= middle <= t1), "gap")
        if kind == "bed":
            assert clip.cut_from == "vocals", clip
        elif kind == "speech":
            seconds[clip.cut_from == "original"] += clip.speech_end - clip.speech_start
    # speech without music is cut from the original (but for what scores as a bed, see the next test)
    assert seconds[True] >= 0.9 * (seconds[True] + seconds[False]), seconds


def test_no_sung_or_music_clip_passes_the_gate(programme, routed):
    _, truth = programme
    work, settings = routed
    song = [(t0, t1) for t0, t1, k in truth if k == "music"]
    passed = {kind: {True: 0.0, False: 0.0} for kind in ("speech", "bed")}
    for clip in read_manifest(work, "slice"):
        inside_music = sum(max(0.0, min(t1, clip.speech_end) - max(t0, clip.speech_start)) for t0, t1 in song)
        failed = music_checks(clip, settings.gates, {})
        middle = (clip.speech_start + clip.speech_end) / 2
        kind = next((k for t0, t1, k in truth if t0 <= middle <= t1), "")
        if inside_music > 0.5 * (clip.speech_end - clip.speech_start):
            assert failed, clip  # a clip of the song or the jingle never passes
        elif kind in passed:
            passed[kind][not failed] += clip.speech_end - clip.speech_start
    # Speech without music passes; speech over a bed passes where separation left little music in it. The bleed
    # gate was set on the tuning beds, whose vocals kept at most 0.067; here the second half of the 'Lets Go
    # Fishin' bed kept 0.118 and is dropped (docs/music.md).
    assert passed["speech"][True] >= 0.95 * sum(passed["speech"].values()), passed
    assert passed["bed"][True] >= 0.5 * sum(passed["bed"].values()), passed
