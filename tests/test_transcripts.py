"""Transcripts a TTS model can train on: one language per file, recovery before dropping, word timings and clip
edges cut at words (issue 16). Real Whisper base on real recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from helpers import references
from nr4dl_tasks.asr.checks import hallucinations, longest_repeat
from nr4dl_tasks.asr.edges import snap_edges
from nr4dl_tasks.asr.language import file_language, other_language
from nr4dl_tasks.asr.recognition import AudioClip, Word
from nr4dl_tasks.asr.whisper_local import LocalWhisper
from nr4dl_tasks.core.records import Clip, read_manifest, write_manifest
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp.audio import resample
from nr4dl_tasks.export.items import Cut, trim_of
from nr4dl_tasks.export.writing import place_audio
from nr4dl_tasks.stages.transcribe import TranscribeStage

RATE = 16000


def _korean(media: Path, count: int) -> list[Path]:
    return sorted((media / "korean" / "emotiontts" / "nea").glob("*.flac"))[:count]


def test_the_file_language_weighs_each_clip_by_duration_and_confidence():
    clips = [({"cy": 0.55, "en": 0.45}, 2.0), ({"en": 0.9, "cy": 0.05}, 6.0), ({"en": 0.3, "ja": 0.6}, 1.0)]
    assert file_language(clips) == "en"
    assert file_language([({"cy": 0.99}, 1.0), ({"en": 0.8, "cy": 0.2}, 3.0)]) == "en"  # 2.4 against 0.99 + 0.6
    assert file_language([]) is None
    assert other_language({"cy": 0.55, "en": 0.45}, "en", 0.9) is None  # unsure: decoded in the file's language
    assert other_language({"fr": 0.97, "en": 0.01}, "en", 0.9) == "fr"
    assert other_language({"fr": 0.97}, "en", None) is None


def test_repetition_loops_too_short_for_the_compression_ratio_are_caught(make_settings):
    gates = make_settings().gates
    assert longest_repeat("i'n ysgwch i'n ysgwch i'n ysgwch i'n ysgwch") == 4
    assert longest_repeat("Printing, in the only sense with which we are at present concerned") == 1
    failed = hallucinations("i'n ysgwch " * 4, 3.0, {}, gates)
    assert [f.split(":")[0] for f in failed] == ["repetition"]
    assert not hallucinations("네, 알겠습니다. 내일 다시 오세요.", 3.0, {}, gates)


def _speakers_folder(tmp_path: Path, files: list[Path]) -> WorkDir:
    """A work folder whose speakers manifest lists these recordings as the clips of one file."""
    work = WorkDir(tmp_path / "file")
    (work.root / "clips").mkdir(parents=True)
    clips = []
    for number, path in enumerate(files):
        samples, rate = sf.read(str(path), dtype="float32")
        rel = f"clips/{number:03d}.wav"
        sf.write(str(work.root / rel), samples, rate, subtype="PCM_16")
        seconds = round(len(samples) / rate, 3)
        clips.append(Clip(f"{number:03d}", "file", "speech", 0.0, seconds, seconds, rel, {}))
    write_manifest(work, "speakers", clips)
    return work


def test_one_language_per_file_and_a_guest_in_another_is_marked(media, make_settings, tmp_path):
    """Five Korean sentences and one English one, packed into one window with four of them: the file is Korean,
    every Korean clip is decoded in Korean, the English clip (skipped by the window's Korean decoding, so it
    gets no words) is decoded alone, keeps its own detection, marked other_language and decoded in English."""
    korean_files = _korean(media, 5)
    work = _speakers_folder(tmp_path, [*korean_files[:2], media / "speech_en" / "LJ001-0002.wav", *korean_files[2:]])
    _, info = TranscribeStage().process(work, make_settings())
    clips = read_manifest(work, "transcribe")
    assert info["file_language"] == "ko" and info["other_language"] == 1
    korean, guest = clips[:2] + clips[3:], clips[2]
    assert clips[0].asr and clips[0].asr["packed"]["clips"] == 5 and guest.asr and guest.asr["unpacked"] == ["empty"]
    assert all(c.language == "ko" and c.file_language == "ko" and not c.other_language for c in korean)
    assert all(c.detected_language and c.asr and c.asr["detected"] for c in clips)
    assert guest.other_language == "en" and guest.language == "en" and guest.detected_language == "en"
    assert "modern" in (guest.text or "").lower()


def test_a_language_has_its_own_beam_and_prompt_and_a_mixed_batch_decodes_as_each_clip_alone(media, make_settings):
    """Korean's beam 5 (the default) and a prompt apply to the Korean clips of a batch, the English clip keeps beam
    1; split by beam width inside the batch, every clip comes out as it does on its own, in its place."""
    whisper = LocalWhisper(make_settings(transcribe__by_language__ko__prompt="네, 오늘은 삼월 이십일 일입니다."))
    clips = [AudioClip(p.stem, p) for p in [*_korean(media, 2), media / "speech_en" / "LJ001-0002.wav"]]
    together = whisper.transcribe(clips, ["ko", "ko", "en"])
    alone = [whisper.transcribe([c], [lang])[0] for c, lang in zip(clips, ["ko", "ko", "en"], strict=True)]
    assert [t.details["beam_size"] for t in together] == [5, 5, 1]
    assert [t.text for t in together] == [t.text for t in alone]
    assert all(t.words for t in together)
    plain = LocalWhisper(make_settings(transcribe__by_language__ko__beam_size=1))
    assert plain.transcribe(clips[:1], ["ko"])[0].details["beam_size"] == 1
    assert whisper._previous(whisper._tokenizer("ko"), "ko") and not whisper._previous(whisper._tokenizer("en"), "en")


def test_a_failing_clip_is_decoded_again_and_the_attempts_are_recorded(media, make_settings):
    """Korean speech forced to English loops under greedy decoding; the recovery keeps a decoding that passes the
    checks, and records every attempt."""
    path = media / "korean" / "emotiontts" / "ada" / "ada00001.flac"
    whisper = LocalWhisper(make_settings(transcribe__language="en"))
    (first,) = LocalWhisper(make_settings(transcribe__language="en", transcribe__recover=False)).transcribe(
        [AudioClip("k", path)]
    )
    (recovered,) = whisper.transcribe([AudioClip("k", path)])
    duration = sf.info(str(path)).duration
    attempts = recovered.details["attempts"]
    assert whisper.failures(first, duration), first.text  # the greedy decoding fails a check
    assert attempts[0]["failed"] and len(attempts) >= 2
    assert {"beam_size", "temperature", "failed"} <= set(attempts[-1])
    chosen = min(len(a["failed"]) for a in attempts)
    assert len(whisper.failures(recovered, duration)) == chosen < len(attempts[0]["failed"]), attempts
    (again,) = whisper.transcribe([AudioClip("k", path)])
    assert again.text == recovered.text  # sampling is seeded from the clip id: reruns agree


def test_words_have_timings_and_the_trim_keeps_every_word(media, make_settings, tmp_path):
    """An LJ Speech sentence with 1.5 s of silence before and after: its words lie inside the speech, and the
    export's cut drops most of the silence and none of the speech."""
    samples, rate = sf.read(str(media / "speech_en" / "LJ001-0006.wav"), dtype="float32")
    pad = np.zeros(int(1.5 * rate), np.float32)
    padded = tmp_path / "padded.wav"
    sf.write(str(padded), np.concatenate([pad, samples, pad]), rate, subtype="PCM_16")
    work = _speakers_folder(tmp_path, [padded])
    TranscribeStage().process(work, make_settings(transcribe__language="en"))
    (clip,) = read_manifest(work, "transcribe")
    trim, shifted = trim_of(clip, 0.2)
    words = clip.words
    assert words and trim and shifted
    assert shifted[0]["start"] == round(words[0]["start"] - trim[0], 3)  # the NeMo words: times in the cut
    speech = np.flatnonzero(np.abs(samples) > 0.02)
    first_sound, last_sound = 1.5 + speech[0] / rate, 1.5 + speech[-1] / rate
    assert [w["word"].strip(",.").lower() for w in words][:3] == references(media)[5]["text"].lower().split()[:3]
    assert all(w["start"] <= w["end"] for w in words)
    assert trim[0] <= first_sound and trim[1] >= last_sound, (trim, first_sound, last_sound)
    assert trim[0] >= first_sound - 0.8 and trim[1] <= last_sound + 0.8, (trim, first_sound, last_sound)


def test_the_export_writes_the_cut_once_with_the_very_samples(media, tmp_path):
    src = tmp_path / "clip.wav"
    samples, rate = sf.read(str(media / "speech_en" / "LJ001-0002.wav"), dtype="int16")
    sf.write(str(src), samples, rate, subtype="PCM_16")
    dst = tmp_path / "dataset" / "clip.wav"
    dst.parent.mkdir()
    cut = Cut(src, 0.25, 1.5)
    assert place_audio(cut, dst)
    out, out_rate = sf.read(str(dst), dtype="int16")
    assert out_rate == rate and sf.info(str(dst)).subtype == "PCM_16"
    assert np.array_equal(out, samples[round(0.25 * rate) : round(1.5 * rate)])
    assert not place_audio(cut, dst)  # already there: not written again
    assert place_audio(Cut(src, 0.3, 1.5), dst)  # another trim is another file
    assert place_audio(src, dst) and dst.stat().st_ino == src.stat().st_ino  # no trim: the clip linked


def test_the_last_word_ends_where_the_sound_does_not_where_the_alignment_says(media):
    """Whisper's alignment ends a last word early; the edge moves to the first quiet frame after it, and no
    further than the sound goes."""
    samples, rate = sf.read(str(media / "speech_en" / "LJ001-0006.wav"), dtype="float32")
    assert rate == 22050
    speech = resample(samples, rate, RATE)
    clip = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    loud = np.flatnonzero(np.abs(clip) > 0.02)
    first, last = loud[0] / RATE, loud[-1] / RATE
    words = [Word("and", first + 0.3, first + 0.6), Word("typography", last - 0.8, last - 0.3)]
    (head, tail) = snap_edges(words, clip)
    assert first - 0.1 <= head.start <= first and last <= tail.end <= last + 0.3, (head, tail, first, last)
