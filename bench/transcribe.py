"""Benchmark of transcription: word error rate and speed of the offline Whisper base backend.

What it measures (on ../shared/media/speech_en: 16 LJ Speech sentences, 1.8-10 s, with reference texts)
    * WER after Whisper's English normaliser, and x real time of the recogniser
      alone (model loaded and warmed up first), for beam 1 and 5 and batch 1 and 8;
    * x real time for the same audio cut into 2 s clips: Whisper encodes 30 s
      whatever the clip length, so short clips cost more per second;
    * x real time of the real transcribe stage on one file made of the 16
      sentences with 1 s pauses (separation and denoising off), from its
      manifest to its manifest, as its stamp records it.

Usage: .venv/bin/python bench/transcribe.py
"""

from __future__ import annotations

import csv
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.asr.recognition import RATE, AudioClip  # noqa: E402
from nr4dl_tasks.asr.whisper_local import LocalWhisper  # noqa: E402
from nr4dl_tasks.core import settings as settings_mod  # noqa: E402
from nr4dl_tasks.pipeline import process_file, run_stage  # noqa: E402
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


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-asr-") as tmp:
        print("## Whisper base (int8, CPU) on speech_en, recogniser only\n")
        header = ["beam", "batch", "WER", "x real time", "x real time, 2 s clips"]
        print(table(header, recogniser_rows(Path(tmp))))
        print("\n## transcribe stage on one file of the 16 sentences (defaults: beam 1, batch 8)\n")
        print(table(["clips", "audio s", "stage s", "x real time"], [stage_row(Path(tmp))]))


if __name__ == "__main__":
    main()
