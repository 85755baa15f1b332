"""Benchmark of the speakers stage: speed, target selection and purity splits on LibriSpeech speakers.

What it measures (on ../shared/media/speakers: 4 speakers x 10 utterances)
    * x real time of the real stage on a 6-minute file made of all 40
      utterances with 1 s pauses (separation and denoising off, so the stage
      is timed alone), with enrolled targets and without (clustering and the
      registry), in this process after a warm-up;
    * target selection: each speaker in turn is enrolled with its first 3
      utterances; the other 37 utterances are scored against it. Precision and
      recall at the default threshold, and a threshold sweep;
    * purity: every ordered pair of different speakers (utterance 0 of one,
      then utterance 1 of the other) is one clip; share split into two, and
      mean/max distance of the cut from the join; and the share of same-speaker
      pairs wrongly split.

Usage: .venv/bin/python bench/speakers.py
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from itertools import permutations
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.core import resources
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.dsp import audio  # noqa: E402
from nr4dl_tasks.pipeline import process_file, run_stage  # noqa: E402
from nr4dl_tasks.stages.speakers import single_voice_pieces  # noqa: E402
from nr4dl_tasks.voice import embedding as voices

MEDIA = (ROOT / ".." / "shared" / "media").resolve()
SPEAKERS = ("1688", "1998", "2033", "3080")
ENROLL = 3
THREADS = resources.cores()  # one job on the machine, as with nr4dl process


def files(speaker: str) -> list[Path]:
    return sorted((MEDIA / "speakers" / speaker).glob("*.flac"))


def load(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), rate, voices.RATE)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def stage_speed(tmp: Path) -> list[list[str]]:
    gap = np.zeros(voices.RATE, np.float32)
    episode = tmp / "episode.wav"
    sf.write(str(episode), np.concatenate([x for s in SPEAKERS for f in files(s) for x in (load(f), gap)]), voices.RATE)
    enroll = tmp / "enroll" / "target"
    enroll.mkdir(parents=True)
    for f in files("1998")[:ENROLL]:
        shutil.copy(f, enroll / f.name)
    rows = []
    for mode, extra in (("warm-up", {}), ("clustered", {}), ("enrolled", {"speakers.enroll_dir": str(enroll.parent)})):
        settings = settings_mod.load(
            overrides={
                "paths.work_dir": str(tmp / "work" / mode),
                "separate.mode": "off",
                "denoise.method": "none",
                **extra,
            }
        )
        work, _ = process_file(episode, settings, until="denoise")
        began = time.monotonic()
        result = run_stage("speakers", work, settings)
        wall = time.monotonic() - began
        seconds = audio.duration(work.path("audio_16k.wav"))
        if mode != "warm-up":
            rows.append(
                [
                    mode,
                    f"{seconds:.0f}",
                    f"{wall:.1f}",
                    f"{seconds / wall:.1f}",
                    str(result.info["clips_in"]),
                    str(result.info["clips_kept"]),
                ]
            )
    return rows


def selection() -> tuple[list[list[str]], dict[str, np.ndarray]]:
    emb = {f: voices.voiceprint(load(f), THREADS).embedding for s in SPEAKERS for f in files(s)}
    scores, truth = [], []
    for target in SPEAKERS:
        voice = voices.unit([emb[f] for f in files(target)[:ENROLL]])
        for s in SPEAKERS:
            for f in files(s)[ENROLL if s == target else 0 :]:
                scores.append(float(emb[f] @ voice))
                truth.append(s == target)
    scores_a, truth_a = np.array(scores), np.array(truth)
    default = settings_mod.SpeakerSettings().threshold
    rows = []
    for threshold in sorted({0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, default}):
        chosen = scores_a >= threshold
        tp = int((chosen & truth_a).sum())
        precision = tp / max(1, int(chosen.sum()))
        recall = tp / int(truth_a.sum())
        rows.append(
            [
                f"{threshold:.2f}{' (default)' if threshold == default else ''}",
                f"{precision:.3f}",
                f"{recall:.3f}",
                str(int(chosen.sum())),
            ]
        )
    return rows, emb


def purity() -> list[list[str]]:
    cfg = settings_mod.SpeakerSettings()
    errors, split, wrong = [], 0, 0
    pairs = list(permutations(SPEAKERS, 2))
    for a, b in pairs:
        first, second = load(files(a)[0]), load(files(b)[1])
        pieces = single_voice_pieces(np.concatenate([first, second]), cfg, voices.RATE, THREADS)
        if len(pieces) == 2:
            split += 1
            errors.append(abs(pieces[0].end - len(first)) / voices.RATE)
    for s in SPEAKERS:
        wav = np.concatenate([load(files(s)[0]), load(files(s)[1])])
        wrong += len(single_voice_pieces(wav, cfg, voices.RATE, THREADS)) != 1
    return [
        [
            f"{split}/{len(pairs)}",
            f"{np.mean(errors):.2f}" if errors else "-",
            f"{np.max(errors):.2f}" if errors else "-",
            f"{wrong}/{len(SPEAKERS)}",
        ]
    ]


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-speakers-") as tmp:
        speed = stage_speed(Path(tmp))
    sweep, _ = selection()
    print("# speakers benchmark\n")
    print("## stage speed (6-minute file, 40 utterances)\n")
    print(table(["mode", "audio s", "wall s", "x real time", "clips", "kept"], speed) + "\n")
    print(f"## target selection ({ENROLL} enrollment utterances per target, 37 candidates each)\n")
    print(table(["threshold", "precision", "recall", "selected"], sweep) + "\n")
    print("## purity (two utterances of different speakers back to back)\n")
    print(table(["split", "mean cut error s", "max cut error s", "same speaker split"], purity()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
