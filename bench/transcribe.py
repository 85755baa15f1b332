"""Benchmark of transcription: word error rate and speed of the offline Whisper base backend.

What it measures (on ../shared/media/speech_en: 16 LJ Speech sentences, 1.8-10 s, with reference texts)
    * WER after Whisper's English normaliser, and x real time of the recogniser
      alone (model loaded and warmed up first), for beam 1 and 5 and batch 1 and 8;
    * x real time for the same audio cut into 2 s clips: Whisper encodes 30 s
      whatever the clip length, so short clips cost more per second;
    * x real time of the real transcribe stage on one file made of the 16
      sentences with 1 s pauses (separation and denoising off), from its
      manifest to its manifest, as its stamp records it;
    * per setting of the language decision and the recovery (`settings_rows`), through the real transcribe
      stage and the gate's text checks: WER (English) or CER against spoken-form references (Korean, the
      hypothesis put in spoken form, spaces and punctuation ignored), yield (share of clips passing the
      gate's text checks) and x real time, on held-out material only:
        - Korean read speech: the held-out emotiontts speakers of bench/korean_text.py (every second one),
          the first three utterances of each, each speaker's utterances one file;
        - noisy mixes: bench/mixes.py's held-out mixes (café noise 0-20 dB, hum, quiet speech, music and pink
          noise) of LJ Speech, emotiontts and VCTK/LibriSpeech utterances, the VoiceBank pair p287_003; one
          file per language; WER/CER where a reference text exists (LJ Speech, emotiontts), yield on all.
      Nothing here was tuned on these: the recovery thresholds are the gates' defaults and Whisper's own
      (-1 log-probability, temperatures 0.2-1.0), other_language_probability 0.9 was set without data.

    * clip edges (`--edges`): held-out clean utterances with 1 s of silence each side, cut as the export cuts
      them: how many cuts fall inside speech, and the silence left.

    * packing (`--packing`): clips of at most 5 s (held-out VCTK p227/p228, LJ001-0009..0014, held-out
      emotiontts speakers), packing off and on side by side through the real transcribe stage: WER/CER, yield,
      how many packed clips were decoded alone again, x real time and its ratio to packing off.

Usage: .venv/bin/python bench/transcribe.py [--settings-only | --edges | --packing]
"""

from __future__ import annotations

import csv
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.asr.recognition import RATE, AudioClip  # noqa: E402
from nr4dl_tasks.asr.whisper_local import LocalWhisper  # noqa: E402
from nr4dl_tasks.core import settings as settings_mod  # noqa: E402
from nr4dl_tasks.pipeline import process_file, run_stage  # noqa: E402
from nr4dl_tasks.text.korean import spoken_form  # noqa: E402
from nr4dl_tasks.text.metrics import wer  # noqa: E402

MEDIA = (ROOT / ".." / "shared" / "media").resolve()
SPEECH = MEDIA / "speech_en"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def references() -> list[dict[str, str]]:
    with (SPEECH / "transcripts.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def recogniser_rows(tmp: Path) -> list[list[str]]:
    rows = references()
    clips = [AudioClip(r["file"], SPEECH / r["file"]) for r in rows]
    seconds = sum(len(c.samples()) for c in clips) / RATE
    pieces = []
    for clip in clips:  # the same audio as 2 s clips
        samples = clip.samples()
        for k in range(0, len(samples) - RATE, 2 * RATE):
            path = tmp / f"{clip.id}-{k}.wav"
            sf.write(str(path), samples[k : k + 2 * RATE], RATE)
            pieces.append(AudioClip(path.stem, path))
    out = []
    for beam, batch in ((1, 1), (1, 8), (5, 1), (5, 8)):
        settings = settings_mod.load(overrides={"transcribe.beam_size": beam, "transcribe.batch_size": batch})
        recogniser = LocalWhisper(settings)
        recogniser.transcribe(clips[:2])  # warm-up
        began = time.perf_counter()
        texts = [t.text for t in recogniser.transcribe(clips)]
        elapsed = time.perf_counter() - began
        began = time.perf_counter()
        recogniser.transcribe(pieces)
        short = time.perf_counter() - began
        out.append(
            [
                str(beam),
                str(batch),
                f"{wer([r['text'] for r in rows], texts):.2%}",
                f"{seconds / elapsed:.1f}",
                f"{sum(p.samples().size for p in pieces) / RATE / short:.1f}",
            ]
        )
    return out


def stage_row(tmp: Path) -> list[str]:
    gap = np.zeros(22050, np.float32)
    parts = []
    for r in references():
        samples, rate = sf.read(str(SPEECH / r["file"]), dtype="float32")
        parts += [samples, gap]
    joined = tmp / "speech_en.wav"
    sf.write(str(joined), np.concatenate(parts), 22050)
    settings = settings_mod.load(
        overrides={
            "paths.work_dir": str(tmp / "work"),
            "separate.mode": "off",
            "denoise.method": "none",
            "slice.labels": ["speech"],
        }
    )
    work, _ = process_file(joined, settings, until="speakers")
    result = run_stage("transcribe", work, settings)
    return [
        f"{result.info['clips']}",
        f"{result.info['audio_seconds']:.0f}",
        f"{result.seconds:.1f}",
        f"{result.info['audio_seconds'] / result.seconds:.1f}",
    ]


KOREAN_PER_SPEAKER = 3  # utterances of each held-out speaker (the 2-core machine is shared)
SETTINGS = {  # name -> overrides
    "per clip, no recovery (before)": {
        "transcribe.other_language_probability": 1e-9,  # every clip in its own detection, as before
        "transcribe.recover": False,
        "gates.min_language_probability": 0.5,
        "gates.drop_other_language": False,
        "gates.max_repeats": None,
    },
    "file language, no recovery": {"transcribe.recover": False},
    "file language + recovery (default)": {},
}


def _clip_files(tmp: Path, name: str, items: list[tuple[str, np.ndarray]]) -> list[tuple[str, Path, float]]:
    folder = tmp / "audio" / name
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for cid, samples in items:
        path = folder / f"{cid}.wav"
        sf.write(str(path), samples, RATE, subtype="PCM_16")
        out.append((cid, path, len(samples) / RATE))
    return out


def held_out_sets(tmp: Path) -> list[tuple[str, str, dict[str, list[tuple[str, Path, float]]], dict[str, str]]]:
    """(set name, language, files: name -> [(clip id, wav, seconds)], references: clip id -> text)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import korean_text
    import mixes as mixes_mod

    rows = korean_text.utterances("emotiontts")
    _, held = korean_text.held_out(rows)
    korean_refs = {Path(r["path"]).stem: r["text"] for r in rows}
    ko_files = {}
    for speaker in held:
        items = [
            (Path(r["path"]).stem, mixes_mod.load(korean_text.KOREAN / "emotiontts" / r["path"], RATE))
            for r in rows
            if r["speaker"] == speaker
        ][:KOREAN_PER_SPEAKER]
        ko_files[speaker] = _clip_files(tmp, speaker, items)
    lj_refs = {Path(r["file"]).stem: r["text"] for r in references()}
    made = mixes_mod.mixes(RATE, held_out=True)
    korean_stems = set(korean_refs)
    ko_mix = [(m.name, m.noisy) for m in made if m.name.rsplit("_", 1)[0] in korean_stems]
    en_mix = [(m.name, m.noisy) for m in made if m.name.rsplit("_", 1)[0] not in korean_stems]
    mix_refs = {m.name: (korean_refs | lj_refs).get(m.name.rsplit("_", 1)[0], "") for m in made}
    return [
        ("Korean read, held-out speakers", "ko", ko_files, korean_refs),
        ("noisy English mixes, held-out", "en", {"mix_en": _clip_files(tmp, "mix_en", en_mix)}, mix_refs),
        ("noisy Korean mixes, held-out", "ko", {"mix_ko": _clip_files(tmp, "mix_ko", ko_mix)}, mix_refs),
    ]


def _through_stage(tmp: Path, name: str, clips: list[tuple[str, Path, float]], overrides: dict) -> tuple:
    """The clips as one file through the real transcribe stage, then the gate's text checks."""
    from nr4dl_tasks.core.records import Clip, read_manifest, write_manifest
    from nr4dl_tasks.core.workdir import WorkDir
    from nr4dl_tasks.stages.gate import file_median_cps, text_checks
    from nr4dl_tasks.stages.transcribe import TranscribeStage

    work = WorkDir(tmp / "work" / name)
    work.root.mkdir(parents=True, exist_ok=True)
    records = [Clip(cid, name, "speech", 0.0, sec, round(sec, 3), str(path), {}) for cid, path, sec in clips]
    write_manifest(work, "speakers", records)
    settings = settings_mod.load(overrides=overrides)
    began = time.perf_counter()
    _, info = TranscribeStage().process(work, settings)
    elapsed = time.perf_counter() - began
    done = read_manifest(work, "transcribe")
    median = file_median_cps(done)
    kept = {c.id for c in done if not text_checks(c, settings.gates, median)[1]}
    return done, kept, elapsed, info


def setting_row(
    tmp: Path,
    title: str,
    label: str,
    language: str,
    files: dict[str, list[tuple[str, Path, float]]],
    reference: Callable[[str], str | None],
    overrides: dict,
) -> list[str]:
    """One table row: every file through the stage with `overrides`; yield, error over all and over kept clips
    (`reference` gives a clip id's text; Korean hypotheses in spoken form), recovery, x real time."""
    refs_used, hyps, all_hyps = [], [], []
    kept_n = total = tried = recovered = 0
    seconds = elapsed = 0.0
    for name, clips in files.items():
        done, kept, took, info = _through_stage(tmp, name, clips, overrides)
        elapsed += took
        seconds += sum(sec for _, _, sec in clips)
        total += len(done)
        kept_n += len(kept)
        tried += info["recovery_tried"]
        recovered += info["recovered"]
        for clip in done:
            ref = reference(clip.id)
            if ref:
                text = clip.text or ""
                hyp = spoken_form(text) if language == "ko" else text
                all_hyps.append((ref, hyp))
                if clip.id in kept:
                    refs_used.append(ref)
                    hyps.append(hyp)
    return [
        title,
        label,
        str(total),
        f"{kept_n / total:.1%}",
        _error(language, [r for r, _ in all_hyps], [h for _, h in all_hyps]),
        _error(language, refs_used, hyps),
        f"{tried}/{recovered}",
        f"{seconds / elapsed:.1f}",
    ]


def settings_rows(tmp: Path) -> list[list[str]]:
    """Before and after on every set (the noisy mixes first); the language decision without the recovery on the
    noisy English mixes only (the 2-core machine is shared)."""
    out = []
    korean_read, noisy_en, noisy_ko = held_out_sets(tmp)
    before, middle, after = SETTINGS
    plan = [(noisy_en, before), (noisy_en, after), (noisy_ko, before), (noisy_ko, after)]
    plan += [(korean_read, before), (korean_read, after), (noisy_en, middle)]
    for step, ((title, language, files, refs), label) in enumerate(plan):
        out.append(setting_row(tmp / f"run{step}", title, label, language, files, refs.get, SETTINGS[label]))
        print("| " + " | ".join(out[-1]) + " |", flush=True)
    return out


SHORT_SECONDS = 5.0  # the clips packing is for
PACKING = {"packing off": {"transcribe.pack_seconds": None}, "packing on (30 s windows)": {}}
FORCED_KO = {  # the README's setting for a Korean archive: one pass, no language detection to decide by
    "packing off, ko forced": {"transcribe.pack_seconds": None, "transcribe.language": "ko"},
    "packing on, ko forced": {"transcribe.language": "ko"},
}


def short_sets(tmp: Path) -> list[tuple[str, str, dict[str, list[tuple[str, Path, float]]], dict[str, str]]]:
    """Held-out clips of at most SHORT_SECONDS with reference texts, each speaker one file, in the form of
    `held_out_sets`: VCTK p227 and p228 (the held-out speakers of bench/mixes.py; their 1-3 s of room noise
    before and after cut to 0.25 s beyond `_speech_bounds`, as the slice stage would cut them; references from
    bench/vctk_passage.tsv, the passage every VCTK speaker reads) and LJ001-0009..0014 (held out in mixes.py),
    and the utterances of the held-out emotiontts speakers of bench/korean_text.py."""
    sys.path.insert(0, str(ROOT / "bench"))
    import korean_text
    import mixes as mixes_mod

    with (ROOT / "bench" / "vctk_passage.tsv").open(encoding="utf-8") as fh:
        passage = {r["number"]: r["text"] for r in csv.DictReader(fh, delimiter="\t")}
    english: dict[str, list[tuple[str, np.ndarray]]] = {}
    refs = {}
    for speaker in ("p227", "p228"):
        for path in sorted((MEDIA / "speakers_vctk" / speaker).glob("*.flac")):
            samples = mixes_mod.load(path, RATE)
            first, last = _speech_bounds(samples)
            cut = samples[max(0, round((first - 0.25) * RATE)) : round((last + 0.25) * RATE)]
            if len(cut) <= SHORT_SECONDS * RATE and path.stem[-3:] in passage:
                english.setdefault(speaker, []).append((path.stem, cut))
                refs[path.stem] = passage[path.stem[-3:]]
    for row in references():
        stem = Path(row["file"]).stem
        samples = mixes_mod.load(SPEECH / row["file"], RATE)
        if 9 <= int(stem[-4:]) <= 14 and len(samples) <= SHORT_SECONDS * RATE:
            english.setdefault("lj", []).append((stem, samples))
            refs[stem] = row["text"]
    rows = korean_text.utterances("emotiontts")
    _, held = korean_text.held_out(rows)
    korean: dict[str, list[tuple[str, np.ndarray]]] = {}
    for r in rows:
        if r["speaker"] in held:
            samples = mixes_mod.load(korean_text.KOREAN / "emotiontts" / r["path"], RATE)
            if len(samples) <= SHORT_SECONDS * RATE:
                korean.setdefault(r["speaker"], []).append((Path(r["path"]).stem, samples))
                refs[Path(r["path"]).stem] = r["text"]
    return [
        (
            "English VCTK + LJ Speech, held-out, <= 5 s",
            "en",
            {k: _clip_files(tmp, k, v) for k, v in english.items()},
            refs,
        ),
        ("Korean emotiontts, held-out, <= 5 s", "ko", {k: _clip_files(tmp, k, v) for k, v in korean.items()}, refs),
    ]


def packing_rows(tmp: Path) -> list[list[str]]:
    """Packing off and on, side by side: every file through the real transcribe stage (default settings
    otherwise: language detected per file, recovery on; for Korean also with `ko` forced) and the gate's text
    checks, the settings one after the other file by file, so that all see the same load on the shared machine.
    The model is loaded and warmed up first."""
    sets = short_sets(tmp)
    _, _, files, _ = sets[0]
    _through_stage(tmp / "warm", "warm", next(iter(files.values()))[:2], {})
    out = []
    for title, language, files, refs in sets:
        plan = PACKING | (FORCED_KO if language == "ko" else {})
        totals = {label: {"clips": 0, "kept": 0, "seconds": 0.0, "elapsed": 0.0, "unpacked": 0} for label in plan}
        pairs: dict[str, list[tuple[str, str]]] = {label: [] for label in plan}
        kept_pairs: dict[str, list[tuple[str, str]]] = {label: [] for label in plan}
        for name, clips in files.items():
            for step, (label, overrides) in enumerate(plan.items()):
                done, kept, took, _ = _through_stage(tmp / f"setting{step}", name, clips, overrides)
                total = totals[label]
                total["elapsed"] += took
                total["seconds"] += sum(sec for _, _, sec in clips)
                total["clips"] += len(done)
                total["kept"] += len(kept)
                total["unpacked"] += sum("unpacked" in (c.asr or {}) for c in done)
                for clip in done:
                    text = clip.text or ""
                    hyp = spoken_form(text) if language == "ko" else text
                    pairs[label].append((refs[clip.id], hyp))
                    if clip.id in kept:
                        kept_pairs[label].append((refs[clip.id], hyp))
        speed = {label: t["seconds"] / t["elapsed"] for label, t in totals.items()}
        for step, (label, total) in enumerate(totals.items()):
            off = speed[list(totals)[step - step % 2]]  # the packing-off row of the pair
            out.append(
                [
                    title,
                    label,
                    str(total["clips"]),
                    f"{total['seconds']:.0f}",
                    f"{total['kept'] / total['clips']:.1%}",
                    _error(language, [r for r, _ in pairs[label]], [h for _, h in pairs[label]]),
                    _error(language, [r for r, _ in kept_pairs[label]], [h for _, h in kept_pairs[label]]),
                    str(total["unpacked"]),
                    f"{speed[label]:.1f}",
                    f"{speed[label] / off:.2f}",
                ]
            )
            print("| " + " | ".join(out[-1]) + " |", flush=True)
    return out


def _speech_bounds(samples: np.ndarray) -> tuple[float, float]:
    """Start of the first and end of the last run of at least 50 ms of 10 ms frames louder than half way (in dB)
    from the recording's noise floor (10th percentile frame) to its speech level (95th), in seconds: VCTK files
    begin with a click and hold 1-3 s of room noise 25 dB below the speech, which a level relative to the loudest
    frame counts as speech. Stricter than the cut's own rule (a fifth of the way, asr/edges.py)."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    heard = level[level > -100]
    floor, speech = np.percentile(heard, 10), np.percentile(heard, 95)
    loud = level > floor + 0.5 * (speech - floor)
    runs = np.convolve(loud, np.ones(5), "valid") == 5  # runs[i]: frames i..i+4 all loud
    starts = np.flatnonzero(runs)
    return starts[0] * 0.01, (starts[-1] + 5) * 0.01


def edges_rows() -> list[list[str]]:
    """Clean held-out utterances with 1 s of silence before and after, recognised with word timings, cut as the
    export cuts them (export.edge_pad_seconds): how often the cut falls inside speech (more than 20 ms inside the
    `_speech_bounds` of the clean recording), and how much of the silence around them is left."""
    sys.path.insert(0, str(ROOT / "bench"))
    import korean_text
    import mixes as mixes_mod

    from nr4dl_tasks.core.records import Clip
    from nr4dl_tasks.export.items import trim_of

    rows = korean_text.utterances("emotiontts")
    _, held = korean_text.held_out(rows)
    korean = [korean_text.KOREAN / "emotiontts" / r["path"] for r in rows if r["speaker"] in held]
    sets = {  # name -> (language, files)
        "LJ Speech": ("en", [SPEECH / f"LJ001-{n:04d}.wav" for n in range(9, 17)]),
        "VCTK p227, p228": (
            "en",
            [p for spk in ("p227", "p228") for p in sorted((MEDIA / "speakers_vctk" / spk).glob("*.flac"))[:4]],
        ),
        "emotiontts": ("ko", korean[::14]),
    }
    settings = settings_mod.load()
    whisper = LocalWhisper(settings)
    out = []
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-edges-") as tmp:
        for name, (language, files) in sets.items():
            cut_in, left, counted = 0, [], 0
            for path in files:
                samples = mixes_mod.load(path, RATE)
                first, last = _speech_bounds(samples)
                silence = np.zeros(RATE, np.float32)
                padded = Path(tmp) / f"{path.stem}.wav"
                sf.write(str(padded), np.concatenate([silence, samples, silence]), RATE)
                (transcript,) = whisper.transcribe([AudioClip(path.stem, padded)], [language])
                seconds = len(samples) / RATE + 2
                clip = Clip(path.stem, "x", "speech", 0, seconds, seconds, "", transcript.as_record())
                trim, _ = trim_of(clip, settings.export.edge_pad_seconds)
                start, end = trim or (0.0, seconds)
                counted += 1
                cut_in += start > 1 + first + 0.02 or end < 1 + last - 0.02
                left.append((1 + first - start) + (end - 1 - last))
            out.append(
                [
                    name,
                    str(counted),
                    str(cut_in),
                    f"{np.mean(left):.2f}",
                    f"{np.min(left):.2f}",
                ]
            )
    return out


def _error(language: str, refs: list[str], hyps: list[str]) -> str:
    if not refs:
        return "-"
    if language == "ko":
        import korean_text

        return f"CER {korean_text.cer(refs, hyps):.1%}"
    return f"WER {wer(refs, hyps):.1%}"


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    if "--edges" in sys.argv:
        print("## clip edges: cut as the export cuts (held-out clean utterances, 1 s of silence each side)\n")
        header = ["set", "clips", "cut inside speech", "mean silence left, s", "least silence left, s"]
        print(table(header, edges_rows()))
        return
    if "--packing" in sys.argv:
        with tempfile.TemporaryDirectory(prefix="nr4dl-bench-pack-") as tmp:
            header = ["set", "setting", "clips", "audio s", "yield", "error, all clips", "error, kept clips"]
            print(table(header + ["decoded alone again", "x real time", "speed vs off"], []))
            packing_rows(Path(tmp))
        return
    if "--settings-only" in sys.argv:
        with tempfile.TemporaryDirectory(prefix="nr4dl-bench-asr-") as tmp:
            header = [
                "set",
                "setting",
                "clips",
                "yield",
                "error, all clips",
                "error, kept clips",
                "tried/recovered",
                "x real time",
            ]
            print(table(header, []))
            settings_rows(Path(tmp))
        return
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-asr-") as tmp:
        print("## Whisper base (int8, CPU) on speech_en, recogniser only\n")
        header = ["beam", "batch", "WER", "x real time", "x real time, 2 s clips"]
        print(table(header, recogniser_rows(Path(tmp))))
        print("\n## transcribe stage on one file of the 16 sentences (defaults: beam 1, batch 8)\n")
        print(table(["clips", "audio s", "stage s", "x real time"], [stage_row(Path(tmp))]))


if __name__ == "__main__":
    main()
