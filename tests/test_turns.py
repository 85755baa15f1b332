"""Speaker turns inside a clip (voice/turns.py) on real recordings: rapid exchanges, overlap and one voice.

The mixes are built from held-out speakers (tests/speaker_sets.py): the turn
thresholds and guard were chosen on the tuning speakers' mixes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import speaker_sets as sets

from nr4dl_tasks.core.records import read_clips
from nr4dl_tasks.core.settings import SpeakerSettings
from nr4dl_tasks.dsp import audio
from nr4dl_tasks.pipeline import process_file, run_stage
from nr4dl_tasks.stages.speakers import find_turns, pure_pieces
from nr4dl_tasks.voice import campplus, turns
from nr4dl_tasks.voice import embedding as voices

THREADS = 2
MODELS = Path("models")
RATE = voices.RATE


def pieces(wav: np.ndarray) -> list[tuple[float, float]]:
    """The single-voice pieces (seconds) the speakers stage keeps of a clip at the default settings."""
    found = pure_pieces(wav, SpeakerSettings(), RATE, MODELS, THREADS)
    return [(p.start / RATE, p.end / RATE) for p in found]


def rttm_talk(media: Path, start: float, end: float) -> dict[str, float]:
    """Seconds each speaker of diarization/sample.rttm talks between start and end."""
    talk: dict[str, float] = {}
    for line in (media / "diarization" / "sample.rttm").read_text().splitlines():
        f = line.split()
        a, b = float(f[3]), float(f[3]) + float(f[4])
        talk[f[7]] = talk.get(f[7], 0.0) + max(0.0, min(b, end) - max(a, start))
    return talk


def test_rapid_turns_of_a_real_conversation_are_split_or_dropped(media, make_settings):
    """sample.wav's two speech clips hold several 1-4 s turns each; purity alone kept them whole."""
    settings = make_settings(separate__mode="off", denoise__method="none")
    work, _ = process_file(media / "diarization" / "sample.wav", settings, until="speakers")
    clips = read_clips(work.path("clips.jsonl"))
    parents = [c for c in clips if "split_from" not in c.extra]
    assert parents and all(c.extra.get("dropped", "").startswith("speakers: split") for c in parents), parents
    kept = [c for c in clips if not c.extra.get("dropped")]
    assert kept
    for clip in kept:
        talk = rttm_talk(media, clip.start, clip.end)
        assert max(talk.values()) >= 0.9 * sum(talk.values()), (clip.start, clip.end, talk)
        assert clip.extra["turn_similarity"] < SpeakerSettings().turn_threshold
        assert clip.extra["turn_voice_similarity"] < SpeakerSettings().turn_voice_threshold

    dropping = make_settings(separate__mode="off", denoise__method="none", speakers__purity_action="drop")
    assert not run_stage("speakers", work, dropping).skipped
    again = read_clips(work.path("clips.jsonl"))
    assert all(c.extra.get("dropped") == "speakers: more than one voice" for c in again)


@pytest.mark.parametrize("pair", sets.speaker_pairs(sets.KOREAN_HELD_OUT)[:2])
def test_a_rapid_exchange_is_cut_at_its_changes(pair):
    wav, changes = sets.turn_clip(*pair, seed=0)
    found = pieces(wav)
    assert len(found) >= 2, found
    for change in changes:  # no piece reaches across a true change by more than 0.5 s
        assert all(not (a < change - 0.5 and b > change + 0.5) for a, b in found), (change, found)


@pytest.mark.parametrize("pair", sets.speaker_pairs(sets.KOREAN_HELD_OUT)[:2])
def test_an_overlap_mix_is_not_kept_as_one_voice(pair):
    wav, _ = sets.overlap_clip(*pair, seed=0)
    found = pieces(wav)
    assert len(found) >= 2, found


@pytest.mark.xfail(
    strict=True,
    reason="known gap: a 1 s CAM++ window over two voices looks like one of them, so only the guard around the "
    "change found removes overlap; on held-out mixes 34 % of the overlapped seconds stay in a piece (docs/speakers.md)",
)
@pytest.mark.parametrize("pair", sets.speaker_pairs(sets.KOREAN_HELD_OUT)[:2])
def test_overlapped_speech_is_not_kept_in_a_single_voice_piece(pair):
    wav, (lo, hi) = sets.overlap_clip(*pair, seed=0)
    assert all(min(b, hi) - max(a, lo) <= 0.25 for a, b in pieces(wav))


@pytest.mark.parametrize("speaker", sets.VCTK_HELD_OUT)
def test_one_voice_is_not_cut_into_turns(speaker):
    wav = sets.one_voice_clip(speaker, seed=0)
    assert pieces(wav) == [(0.0, len(wav) / RATE)]


@pytest.mark.parametrize(("speaker", "seed"), [("nel", 5), ("pma", 10)])
def test_one_voice_whose_windows_fall_apart_is_kept_whole_by_the_check_of_the_cut(speaker, seed):
    """These held-out clips' 1 s windows split into groups below turn_threshold (a false cut before the check);
    each group's audio embedded whole is one voice."""
    wav = sets.one_voice_clip(speaker, seed)
    cfg = SpeakerSettings()
    found = find_turns(wav, cfg, MODELS, THREADS)
    assert found.similarity < cfg.turn_threshold, found
    assert cfg.turn_voice_threshold <= found.voice_similarity < 1.0, found
    assert not found.two_voices and pieces(wav) == [(0.0, len(wav) / RATE)]


@pytest.mark.xfail(
    strict=True,
    reason="known gap: 8 s of p228 (several VCTK recordings back to back) whose two window groups stay apart even "
    "embedded whole (0.51, below turn_voice_threshold 0.62; docs/speakers.md)",
)
def test_one_voice_across_two_recordings_is_not_cut():
    wav = sets.one_voice_clip("p228", 1)
    assert pieces(wav) == [(0.0, len(wav) / RATE)]


def test_a_clip_shorter_than_two_voices_need_is_kept_whole():
    """1.5 s: too few windows for two voices of MIN_WINDOWS each; the clip is left to purity, as before."""
    samples, rate = sf.read(str(sets.utterances("neb")[0]), dtype="float32", always_2d=True)
    wav = audio.resample(audio.mono(samples), rate, RATE)[: int(1.5 * RATE)]
    assert pieces(wav) == [(0.0, 1.5)]


def test_the_window_count_known_in_advance_is_the_count_embedded():
    """The speakers stage skips embedding a clip whose window_count is under SPLIT_WINDOWS; the count must be
    exactly what embed_windows gives, around that bound and on a long clip."""
    samples, rate = sf.read(str(sets.utterances("neb")[0]), dtype="float32", always_2d=True)
    speech = audio.resample(audio.mono(samples), rate, RATE)
    # the fewest samples with SPLIT_WINDOWS windows: frames up to the end of the last window, then one frame
    bound = campplus.FRAME + (turns.WINDOW + (turns.SPLIT_WINDOWS - 1) * turns.HOP - 1) * campplus.HOP
    for n in (campplus.FRAME - 1, bound - campplus.HOP - 1, bound - 1, bound, bound + 1, len(speech)):
        wav = np.resize(speech, n)
        count = campplus.window_count(n, turns.WINDOW, turns.HOP)
        assert count == len(campplus.embed_windows(wav, turns.WINDOW, turns.HOP, MODELS, THREADS)), n
    assert campplus.window_count(bound - 1, turns.WINDOW, turns.HOP) < turns.SPLIT_WINDOWS
    assert campplus.window_count(bound, turns.WINDOW, turns.HOP) == turns.SPLIT_WINDOWS
