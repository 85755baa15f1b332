"""The gate stage: each quality gate drops what it should and records why; DNSMOS of the audio the export takes."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from helpers import references
from nr4dl_tasks.core.records import Clip, read_manifest, write_manifest
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.stages.gate import GateStage
from nr4dl_tasks.text.metrics import compression_ratio


def gate_folder(tmp_path: Path, media: Path, cases: dict[str, tuple[Path, str, dict]]) -> WorkDir:
    """A work folder whose transcribe manifest holds one real clip per case: (audio, text, extra fields)."""
    work = WorkDir(tmp_path / "gated")
    (work.root / "clips").mkdir()
    clips = []
    for name, (source, text, extra) in cases.items():
        samples, rate = sf.read(str(source), dtype="float32")
        sf.write(str(work.root / "clips" / f"{name}.wav"), samples, rate, subtype="PCM_16")
        duration = round(len(samples) / rate, 3)
        clips.append(
            Clip(
                name,
                "gated",
                "female",
                0.0,
                duration,
                duration,
                f"clips/{name}.wav",
                {"text": text, "language": "en", "language_probability": 0.99, **extra},
            )
        )
    write_manifest(work, "transcribe", clips)
    return work


def test_each_gate_drops_what_it_should_and_records_why(media, make_settings, tmp_path):
    rows = {r["file"]: r["text"] for r in references(media)}
    lj = media / "speech_en"
    cases = {
        "good": (lj / "LJ001-0006.wav", rows["LJ001-0006.wav"], {}),
        "empty": (lj / "LJ001-0002.wav", " ... ", {}),
        "other_language": (
            lj / "LJ001-0004.wav",
            rows["LJ001-0004.wav"],
            {"other_language": "fr", "detected_language_probability": 0.97, "file_language": "en"},
        ),
        "unsure": (lj / "LJ001-0006.wav", rows["LJ001-0006.wav"], {"language_probability": 0.2}),
        "short_loop": (lj / "LJ001-0009.wav", "i'n ysgwch " * 6, {}),
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
    assert not gated["unsure"].extra.get("dropped")  # a low probability of its own detection alone drops nothing
    expected = {
        "empty": "gate empty_text",
        "other_language": "gate other_language",
        "loop": "gate cps",
        "too_slow": "gate cps",
        "made_up": "gate no_speech",
        "noisy": "gate dnsmos",
        "long": "gate duration",
    }
    for name, reason in expected.items():
        assert gated[name].extra["dropped"].startswith(reason), (name, gated[name].extra)
    assert any(r.startswith("compression_ratio") for r in gated["loop"].extra["gates_failed"])
    assert any(r.startswith("repetition") for r in gated["short_loop"].extra["gates_failed"])
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
    work = gate_folder(
        tmp_path,
        media,
        {
            "whole": (noisy, "Ask her to bring these things", {"denoise": parent_scores}),
            "piece": (noisy, "Ask her to bring these things", {"denoise": parent_scores, "split_from": "x"}),
        },
    )
    GateStage().process(work, make_settings(gates__min_dnsmos_ovrl=None))
    gated = {c.id: c for c in read_manifest(work, "gate")}
    assert gated["whole"].extra["quality"]["dnsmos_ovrl"] == 4.5
    assert gated["piece"].extra["quality"]["dnsmos_ovrl"] < 3.5
