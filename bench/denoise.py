"""Benchmark of the denoise stage: speed, SI-SDR and DNSMOS per method on noisy speech with a clean reference.

What it measures
    Each input goes through the real pipeline up to `slice` once (separation
    off: the clean reference must stay sample-aligned), then the real denoise
    stage runs once per method: none (notch only), gate (stationary and
    nonstationary), deepfilter and auto. Per method and input it reports

    * x real time: seconds of clip audio per second of stage wall time, in this
      process, after one warm-up run (model loading is a one-off per process);
    * SI-SDR of the clips against the clean reference cut at the same span
      (dB; before = the clip as sliced, after = `denoised_path`), over the
      clips that are mostly reference speech (ina also cuts clips from café
      babble, where SI-SDR has no meaning);
    * DNSMOS OVRL / SIG / BAK before and after, as the stage recorded them.

    The last table averages over all inputs.

The inputs (from ../shared/media, never seen while tuning anything but the
first two VoiceBank files)
    * vb_001..003: VoiceBank-DEMAND noisy utterances, clean pairs as reference
      (speech end to end: the stage falls back to minimum statistics).
    * cafe_0/5/10dB: fish.wav over real café noise at 0, 5 and 10 dB SNR,
      after 3 s of café noise alone (reversed, so not the same samples).
    * libri_cafe_5dB: one LibriSpeech utterance per speaker of speakers/
      (4 speakers) over looped café noise at 5 dB, with 2 s noise-only gaps.

Usage: .venv/bin/python bench/denoise.py [--methods auto,deepfilter,...]
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.dsp import audio  # noqa: E402

from nr4dl_tasks.dsp import quality

from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.pipeline import process_file, run_stage  # noqa: E402
from nr4dl_tasks.core.records import read_clips  # noqa: E402

MEDIA = (ROOT / ".." / "shared" / "media").resolve()
RATE = 44100
METHODS = {
    "none": {"denoise.method": "none"},
    "gate-stationary": {"denoise.method": "gate", "denoise.gate_mode": "stationary"},
    "gate-nonstationary": {"denoise.method": "gate", "denoise.gate_mode": "nonstationary"},
    "deepfilter": {"denoise.method": "deepfilter"},
    "auto": {"denoise.method": "auto"},
}


def load(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), rate, RATE)


def noise_at(speech: np.ndarray, noise: np.ndarray, snr_db: float, length: int) -> np.ndarray:
    """`noise` looped to `length` samples, scaled so that the power ratio of `speech` to it is `snr_db`."""
    gain = np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return gain * np.resize(noise, length)


def inputs(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (noisy file, clean reference at RATE, aligned with it)."""
    made: dict[str, tuple[Path, np.ndarray]] = {}
    for n in ("001", "002", "003"):
        name = f"p287_{n}.wav"
        made[f"vb_{n}"] = (MEDIA / "noisy" / "noisy" / name, load(MEDIA / "noisy" / "clean" / name))
    fish, cafe = load(MEDIA / "noise" / "fish.wav"), load(MEDIA / "noise" / "cafe_short.wav")
    for snr in (0, 5, 10):
        noise = noise_at(fish, cafe, snr, len(fish))
        lead = noise[::-1][: 3 * RATE]
        made[f"cafe_{snr}dB"] = _write(folder, f"cafe_{snr}dB", np.concatenate([lead, fish + noise]),
                                       np.concatenate([np.zeros_like(lead), fish]))
    gap = np.zeros(2 * RATE, np.float32)
    speakers = ("1688", "1998", "2033", "3080")
    utterances = [load(sorted((MEDIA / "speakers" / spk).glob("*.flac"))[0]) for spk in speakers]
    speech = np.concatenate([part for u in utterances for part in (gap, u)] + [gap])
    noise = noise_at(np.concatenate(utterances), cafe, 5, len(speech))
    made["libri_cafe_5dB"] = _write(folder, "libri_cafe_5dB", speech + noise, speech)
    return made


def _write(folder: Path, name: str, noisy: np.ndarray, clean: np.ndarray) -> tuple[Path, np.ndarray]:
    """Write the noisy mix (scaled down if it would clip; the reference with it) and return both."""
    scale = min(1.0, 0.99 / float(np.abs(noisy).max()))
    path = folder / f"{name}.wav"
    sf.write(str(path), noisy * scale, RATE, subtype="FLOAT")
    return path, clean * scale


def measure(media: Path, clean: np.ndarray, method: str, work_root: Path) -> dict[str, float]:
    overrides = {"paths.work_dir": str(work_root), "separate.enabled": False, "slice.min_duration": 0.5,
                 **METHODS[method]}
    settings = settings_mod.load(overrides=overrides)
    work, _ = process_file(media, settings, until="slice")
    began = time.monotonic()
    result = run_stage("denoise", work, settings)
    wall = time.monotonic() - began
    clips = read_clips(work.path("clips.jsonl"))
    rate = settings.slice.sample_rate
    reference = audio.resample(clean, RATE, rate)
    speech_power = float(np.mean(reference[np.abs(reference) > 1e-4] ** 2))
    sdr_in, sdr_out, mos_in, mos_out = [], [], [], []
    for clip in clips:
        ref = reference[int(round(clip.start * rate)): int(round(clip.end * rate))]
        if np.mean(ref ** 2) > 0.1 * speech_power:  # ina may cut a clip from café babble alone: no reference
            for path, sink in ((clip.path, sdr_in), (clip.extra["denoised_path"], sdr_out)):
                sink.append(quality.si_sdr(sf.read(str(work.path(path)), dtype="float32")[0], ref))
        mos_in.append(clip.extra["denoise"]["dnsmos"]["before"])
        mos_out.append(clip.extra["denoise"]["dnsmos"]["after"])
    seconds = sum(c.duration for c in clips)
    row = {"x_rt": seconds / wall, "clips": len(clips), "method_used": result.info["method"],
           "sdr_in": float(np.mean(sdr_in)), "sdr_out": float(np.mean(sdr_out))}
    for key in ("ovrl", "sig", "bak"):
        row[f"{key}_in"] = float(np.mean([m[key] for m in mos_in]))
        row[f"{key}_out"] = float(np.mean([m[key] for m in mos_out]))
    return row


COLUMNS = ("x RT", "SI-SDR in→out", "OVRL in→out", "SIG in→out", "BAK in→out")


def cells(row: dict[str, float]) -> list[str]:
    return [f"{row['x_rt']:.1f}", f"{row['sdr_in']:.1f} → {row['sdr_out']:.1f}",
            *(f"{row[k + '_in']:.2f} → {row[k + '_out']:.2f}" for k in ("ovrl", "sig", "bak"))]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-denoise-") as tmp:
        folder = Path(tmp)
        made = inputs(folder)
        first = next(iter(made.values()))
        measure(*first, "auto", folder / "warmup")  # loads DNSMOS, DeepFilterNet and ina once
        results: dict[str, dict[str, dict[str, float]]] = {}
        for name, (media, clean) in made.items():
            for method in methods:
                results.setdefault(method, {})[name] = measure(media, clean, method, folder / "work")
                print(f"{name:16s} {method:20s} " + "  ".join(cells(results[method][name])), file=sys.stderr)
    print(f"# denoise benchmark ({platform.processor() or platform.machine()}, {len(made)} inputs)\n")
    for method in methods:
        rows = [[name, str(int(r["clips"])), r["method_used"], *cells(r)] for name, r in results[method].items()]
        print(f"## {method}\n\n" + table(["input", "clips", "applied", *COLUMNS], rows) + "\n")
    mean_rows = []
    for method in methods:
        rows = list(results[method].values())
        mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "method_used"}
        mean_rows.append([method, *cells(mean)])
    print("## mean over inputs\n\n" + table(["method", *COLUMNS], mean_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
