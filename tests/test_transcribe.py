"""Transcription with the real offline Whisper base model, and the quality gates on real audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import ffmpeg, references
from nr4dl_tasks.asr import packing
from nr4dl_tasks.asr.recognition import RATE, AudioClip
from nr4dl_tasks.asr.whisper_local import LocalWhisper
from nr4dl_tasks.core.errors import SettingsError, WorkerDied
from nr4dl_tasks.core.records import read_manifest
from nr4dl_tasks.pipeline import process_file, run_stage
from nr4dl_tasks.stages import transcribe
from nr4dl_tasks.text.metrics import wer


def test_word_error_rate_on_english_read_speech_is_at_most_5_percent(media, make_settings):
    rows = references(media)
    clips = [AudioClip(r["file"], media / "speech_en" / r["file"]) for r in rows]
    transcripts = LocalWhisper(make_settings()).transcribe(clips)
    assert len(transcripts) == len(rows)
    assert {t.language for t in transcripts} == {"en"}
    error = wer([r["text"] for r in rows], [t.text for t in transcripts])
    assert error <= 0.05, [(r["text"], t.text) for r, t in zip(rows, transcripts, strict=True)]


def test_language_is_detected_with_its_probability(media, make_settings):
    (french,) = LocalWhisper(make_settings()).transcribe(
        [AudioClip("lamartine", media / "segmentation" / "lamartine.wav")]
    )
    assert french.language == "fr" and french.language_probability > 0.9
    assert "vie" in french.text.lower()


def test_a_forced_language_keeps_its_probability_so_the_gate_can_catch_other_languages(media, make_settings):
    (forced,) = LocalWhisper(make_settings(transcribe__language="ko")).transcribe(
        [AudioClip("lj", media / "speech_en" / "LJ001-0002.wav")]
    )
    assert forced.language == "ko" and forced.language_probability < 0.05


def test_a_clip_over_30_seconds_is_transcribed_as_long_form_audio(media, make_settings, tmp_path):
    rows = references(media)[:5]
    long = tmp_path / "long.wav"
    sf.write(
        str(long),
        np.concatenate([sf.read(str(media / "speech_en" / r["file"]), dtype="float32")[0] for r in rows]),
        22050,
    )
    assert sf.info(str(long)).duration > 30
    (forced,) = LocalWhisper(make_settings(transcribe__language="en")).transcribe([AudioClip("long", long)])
    assert forced.details["long_form"] and forced.language == "en" and forced.language_probability > 0.9
    assert wer([" ".join(r["text"] for r in rows)], [forced.text]) <= 0.1, forced.text


def test_unknown_language_and_missing_model_folder_are_named(make_settings, tmp_path):
    with pytest.raises(SettingsError, match="'xx'"):
        LocalWhisper(make_settings(transcribe__language="xx"))
    with pytest.raises(SettingsError, match="does not exist"):
        LocalWhisper(make_settings(transcribe__model=str(tmp_path / "nowhere/model")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="model.bin is missing"):
        LocalWhisper(make_settings(transcribe__model=str(tmp_path / "empty")))
    with pytest.raises(SettingsError, match="azure backend needs transcribe.language set to a locale"):
        make_settings(transcribe__backend="azure", transcribe__language="en")


SHORT = ("LJ001-0002.wav", "LJ001-0008.wav", "LJ001-0013.wav", "LJ001-0011.wav")  # 1.8-4.5 s


def test_short_clips_packed_into_one_window_each_get_their_own_words(media, make_settings):
    """Four short LJ Speech sentences decoded in one window: each clip gets its own sentence, its words inside
    its own span, the first and last word of every sentence on the right side of the clip boundaries (its
    first word the one the clip decoded alone begins with)."""
    texts = {r["file"]: r["text"] for r in references(media)}
    clips = [AudioClip(name, media / "speech_en" / name) for name in SHORT]
    transcripts = LocalWhisper(make_settings(transcribe__language="en")).transcribe(clips)
    alone = LocalWhisper(make_settings(transcribe__language="en", transcribe__pack_seconds=None)).transcribe(clips)
    for clip, transcript, by_itself in zip(clips, transcripts, alone, strict=True):
        reference = texts[clip.id]
        assert "packed" not in by_itself.details
        assert transcript.details["packed"]["clips"] == len(SHORT) and "unpacked" not in transcript.details
        assert wer([reference], [transcript.text]) <= 0.2, (reference, transcript.text)
        duration = sf.info(str(clip.path)).duration
        words = transcript.words or []
        assert words and all(0 <= w.start <= w.end <= duration for w in words), words
        spoken = [w.word.strip(".,;").lower() for w in words]
        assert spoken[-1] == reference.split()[-1].strip(".,;"), spoken  # not run into the next clip
        assert spoken[0] == (by_itself.words or [])[0].word.lower(), spoken  # nor the previous one into it
        assert transcript.details["avg_logprob"] > -1 and "no_speech_prob" not in transcript.details


def test_a_word_on_a_clip_boundary_goes_to_the_clip_it_overlaps_most():
    window = packing.plan([2 * RATE, 3 * RATE], ["en", "en"], 30.0)[0]
    assert window.starts == (0.0, 2.5) and window.ends == (2.0, 5.5)

    def word(text, start, end):
        return {"word": text, "start": start, "end": end}

    words = [
        word(" one", 0.2, 0.5),
        word(" across", 1.6, 2.1),  # mostly in the first clip, runs into the gap
        word(" gap", 2.3, 2.45),  # wholly in the gap, nearer the second clip
        word(" late", 2.4, 2.9),  # mostly in the second clip
        word(" stretched", 1.7, 3.4),  # back over the gap from the second clip: cut to 0.9 s (twice the median)
        word(" two", 3.4, 3.8),
    ]
    (first, second), doubtful = packing.split(words, window)
    assert not doubtful
    assert [(w["word"], w["start"], w["end"]) for w in first] == [(" one", 0.2, 0.5), (" across", 1.6, 2.0)]
    assert [(w["word"], round(w["start"], 3), round(w["end"], 3)) for w in second] == [
        (" gap", 0.0, 0.0),
        (" late", 0.0, 0.4),
        (" stretched", 0.0, 0.9),
        (" two", 0.9, 1.3),
    ]
    slow = [word(" a", 0.2, 0.8), word(" b", 0.8, 1.4), word(" over", 1.6, 2.8), word(" c", 3.0, 3.6)]
    assert packing.split(slow, window)[1] == {0, 1}  # right across the gap, a quarter second into both clips
    assert [len(w.members) for w in packing.plan([2 * RATE, 3 * RATE], ["en", "ko"], 30.0)] == [1, 1]
    assert [len(w.members) for w in packing.plan([20 * RATE, 10 * RATE], ["en", "en"], 30.0)] == [1, 1]


class InterruptedTranscribe(transcribe.TranscribeStage):
    """The real stage, whose process dies while recognising its second batch."""

    def recognizer(self, settings):
        real, calls = super().recognizer(settings), []

        class DiesOnSecondBatch:
            name = real.name

            def transcribe(self, clips, languages=None):
                calls.append(len(clips))
                if len(calls) > 1:
                    raise WorkerDied("killed")
                return real.transcribe(clips, languages)

        return DiesOnSecondBatch()


def test_a_file_through_transcribe_and_gate(media, make_settings, tmp_path, monkeypatch):
    """Four LJ Speech sentences with pauses, processed to the end, the transcription resumed after a kill:
    every clip transcribed and gated."""
    rows = references(media)[:4]
    parts = " ".join(f"-i {media / 'speech_en' / r['file']}" for r in rows).split()
    joined = tmp_path / "four.wav"
    pads = "".join(f"[{i}]apad=pad_dur=1.5[a{i}];" for i in range(4))
    ffmpeg(*parts, "-filter_complex", pads + "".join(f"[a{i}]" for i in range(4)) + "concat=n=4:v=0:a=1", str(joined))
    settings = make_settings(separate__mode="off", slice__labels=["speech"])
    work, _ = process_file(joined, settings, until="speakers")
    monkeypatch.setattr(transcribe, "PROGRESS_EVERY", 1)  # one clip per batch and journal write
    with pytest.raises(WorkerDied):  # killed after its first clip
        run_stage(
            "transcribe",
            work,
            make_settings(separate__mode="off", slice__labels=["speech"], transcribe__batch_size=1),
            InterruptedTranscribe(),
        )
    work, results = process_file(joined, settings)
    assert results[-2].info["resumed"] == 1 and not work.path(transcribe.JOURNAL).exists()
    assert [r.stage for r in results][-2:] == ["transcribe", "gate"]
    clips = read_manifest(work, "gate")
    kept = [c for c in clips if not c.extra.get("dropped")]
    assert kept and all(c.extra["language"] == "en" and c.extra["asr_backend"] == "local" for c in kept)
    assert all({"dnsmos_ovrl", "cps", "compression_ratio"} <= set(c.extra["gates"]) for c in kept)
    assert all(c.extra["tier"] in ("gold", "silver", "rest") for c in kept)
    heard = " ".join(c.extra["text"] for c in sorted(kept, key=lambda c: c.start))
    assert wer([" ".join(r["text"] for r in rows)], [heard]) <= 0.1, heard
    again = process_file(joined, settings)[1]
    assert all(r.skipped for r in again)
    run_stage("slice", work, make_settings(separate__mode="off", slice__labels=["speech"], slice__max_duration=3))
    assert work.read_stamp("transcribe") is None and work.read_stamp("gate") is None  # not exported meanwhile


# --- gates ---------------------------------------------------------------------------------------------------------
