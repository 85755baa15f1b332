"""Transcription with the real offline Whisper base model, and the quality gates on real audio."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nr4dl_tasks.stages import transcribe
from nr4dl_tasks.core.errors import SettingsError, WorkerDied
from nr4dl_tasks.stages.gate import GateStage
from nr4dl_tasks.pipeline import process_file, run_stage
from nr4dl_tasks.asr.recognition import AudioClip
from nr4dl_tasks.core.records import Clip, read_manifest, write_manifest
from nr4dl_tasks.text.metrics import compression_ratio, wer
from nr4dl_tasks.asr.whisper_local import LocalWhisper
from nr4dl_tasks.core.workdir import WorkDir

from helpers import ffmpeg


def references(media: Path) -> list[dict[str, str]]:
    with (media / "speech_en" / "transcripts.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


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
        [AudioClip("lamartine", media / "segmentation" / "lamartine.wav")])
    assert french.language == "fr" and french.language_probability > 0.9
    assert "vie" in french.text.lower()


def test_a_forced_language_keeps_its_probability_so_the_gate_can_catch_other_languages(media, make_settings):
    (forced,) = LocalWhisper(make_settings(transcribe__language="ko")).transcribe(
        [AudioClip("lj", media / "speech_en" / "LJ001-0002.wav")])
    assert forced.language == "ko" and forced.language_probability < 0.05


def test_a_clip_over_30_seconds_is_transcribed_as_long_form_audio(media, make_settings, tmp_path):
    rows = references(media)[:5]
    long = tmp_path / "long.wav"
    sf.write(str(long), np.concatenate([sf.read(str(media / "speech_en" / r["file"]), dtype="float32")[0]
                                        for r in rows]), 22050)
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


class InterruptedTranscribe(transcribe.TranscribeStage):
    """The real stage, whose process dies while recognising its second batch."""

    def recognizer(self, settings):
        real, calls = super().recognizer(settings), []

        class DiesOnSecondBatch:
            name = real.name

            def transcribe(self, clips):
                calls.append(len(clips))
                if len(calls) > 1:
                    raise WorkerDied("killed")
                return real.transcribe(clips)

        return DiesOnSecondBatch()


def test_a_file_through_transcribe_and_gate(media, make_settings, tmp_path, monkeypatch):
    """Four LJ Speech sentences with pauses, processed to the end, the transcription resumed after a kill:
    every clip transcribed and gated."""
    rows = references(media)[:4]
    parts = " ".join(f"-i {media / 'speech_en' / r['file']}" for r in rows).split()
    joined = tmp_path / "four.wav"
    pads = "".join(f"[{i}]apad=pad_dur=1.5[a{i}];" for i in range(4))
    ffmpeg(*parts, "-filter_complex", pads + "".join(f"[a{i}]" for i in range(4)) + "concat=n=4:v=0:a=1",
           str(joined))
    settings = make_settings(separate__enabled=False, slice__labels=["speech"])
    work, _ = process_file(joined, settings, until="speakers")
    monkeypatch.setattr(transcribe, "PROGRESS_EVERY", 1)  # one clip per batch and journal write
    with pytest.raises(WorkerDied):  # killed after its first clip
        run_stage("transcribe", work, make_settings(separate__enabled=False, slice__labels=["speech"],
                                                    transcribe__batch_size=1), InterruptedTranscribe())
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
    run_stage("slice", work, make_settings(separate__enabled=False, slice__labels=["speech"], slice__max_duration=3))
    assert work.read_stamp("transcribe") is None and work.read_stamp("gate") is None  # not exported meanwhile


# --- gates ---------------------------------------------------------------------------------------------------------


def gate_folder(tmp_path: Path, media: Path, cases: dict[str, tuple[Path, str, dict]]) -> WorkDir:
    """A work folder whose transcribe manifest holds one real clip per case: (audio, text, extra fields)."""
    work = WorkDir(tmp_path / "gated")
    (work.root / "clips").mkdir()
    clips = []
    for name, (source, text, extra) in cases.items():
        samples, rate = sf.read(str(source), dtype="float32")
        sf.write(str(work.root / "clips" / f"{name}.wav"), samples, rate, subtype="PCM_16")
        duration = round(len(samples) / rate, 3)
        clips.append(Clip(name, "gated", "female", 0.0, duration, duration, f"clips/{name}.wav",
                          {"text": text, "language": "en", "language_probability": 0.99, **extra}))
    write_manifest(work, "transcribe", clips)
    return work


def test_each_gate_drops_what_it_should_and_records_why(media, make_settings, tmp_path):
    rows = {r["file"]: r["text"] for r in references(media)}
    lj = media / "speech_en"
    cases = {
        "good": (lj / "LJ001-0006.wav", rows["LJ001-0006.wav"], {}),
        "empty": (lj / "LJ001-0002.wav", " ... ", {}),
        "other_language": (lj / "LJ001-0004.wav", rows["LJ001-0004.wav"], {"language_probability": 0.2}),
        "loop": (lj / "LJ001-0005.wav", "Thank you. " * 40, {}),
        "too_slow": (lj / "LJ001-0007.wav", "Yes.", {}),
        "made_up": (lj / "LJ001-0008.wav", "Thank you.", {"asr": {"no_speech_prob": 0.9, "avg_logprob": -1.4}}),
        "noisy": (media / "noisy" / "noisy" / "p287_001.wav", "Ask her to bring these things", {}),
        "long": (lj / "LJ001-0001.wav", rows["LJ001-0001.wav"], {}),  # 9.7 s
    }
    work = gate_folder(tmp_path, media, cases)
    settings = make_settings(gates__max_duration=9.0, gates__min_dnsmos_ovrl=2.6, gates__cps_outlier_factor=None)
    GateStage().process(work, settings)
    gated = {c.id: c for c in read_manifest(work, "gate")}
    assert not gated["good"].extra.get("dropped")
    expected = {"empty": "gate empty_text", "other_language": "gate language_probability",
                "loop": "gate cps", "too_slow": "gate cps", "made_up": "gate no_speech", "noisy": "gate dnsmos",
                "long": "gate duration"}
    for name, reason in expected.items():
        assert gated[name].extra["dropped"].startswith(reason), (name, gated[name].extra)
    assert any(r.startswith("compression_ratio") for r in gated["loop"].extra["gates_failed"])
    assert gated["noisy"].extra["gates"]["dnsmos_ovrl"] < 2.6 <= gated["good"].extra["gates"]["dnsmos_ovrl"]
    assert gated["good"].extra["tier"] in ("gold", "silver")
    assert compression_ratio("Thank you. " * 40) > 2.4


def test_cps_outliers_are_judged_against_their_file(media, make_settings, tmp_path):
    rows = references(media)
    cases = {f"c{i}": (media / "speech_en" / r["file"], r["text"], {}) for i, r in enumerate(rows[:6])}
    cases["c6"] = (media / "speech_en" / rows[6]["file"], "Printing.", {})  # a tenth of the usual rate
    work = gate_folder(tmp_path, media, cases)
    GateStage().process(work, make_settings(gates__min_cps=0.1, gates__min_dnsmos_ovrl=None))
    gated = {c.id: c for c in read_manifest(work, "gate")}
    assert gated["c6"].extra["dropped"].startswith("gate cps_outlier")
    assert not any(gated[f"c{i}"].extra.get("dropped") for i in range(6))


def test_split_pieces_are_scored_again_not_given_their_parents_score(media, make_settings, tmp_path):
    noisy = media / "noisy" / "noisy" / "p287_001.wav"
    parent_scores = {"dnsmos": {"before": {"ovrl": 4.5}, "after": {"ovrl": 4.5}}}
    work = gate_folder(tmp_path, media, {
        "whole": (noisy, "Ask her to bring these things", {"denoise": parent_scores}),
        "piece": (noisy, "Ask her to bring these things", {"denoise": parent_scores, "split_from": "x"}),
    })
    GateStage().process(work, make_settings(gates__min_dnsmos_ovrl=None))
    gated = {c.id: c for c in read_manifest(work, "gate")}
    assert gated["whole"].extra["quality"]["dnsmos_ovrl"] == 4.5
    assert gated["piece"].extra["quality"]["dnsmos_ovrl"] < 3.5
