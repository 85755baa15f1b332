"""Benchmark of the denoise stage on held-out noisy speech with a clean reference: SI-SDR, DNSMOS, tones, checks.

What it measures
    Each input goes through the real pipeline up to `slice` once (separation
    off: the clean reference must stay sample-aligned), then the real denoise
    stage runs once per method: none (notch only), gate (stationary and
    nonstationary), deepfilter, auto, and auto without its clean-clip rule
    (`denoise.clean_snr_db` off). Per method and input it reports

    * x real time: seconds of clip audio per second of stage wall time, in this
      process, after one warm-up run (model loading is a one-off per process);
    * SI-SDR of the clips against the clean reference cut at the same span
      (dB; before = the clip as sliced, after = `denoised_path`) and the worst
      clip's change, over the clips that are mostly reference speech;
    * DNSMOS OVRL / SIG before and after, as the stage recorded them;
    * for inputs with injected hum, the worst harmonic: dB left above the clean
      level, and how many harmonics x clips fail "at most 3 dB above the clean
      level, or 30 dB down";
    * reverts by check: for auto, the clips whose chosen method failed the
      DNSMOS or the distortion check (and took the next method, the notches
      alone or the input); for the other methods, how many clips each check
      would have reverted.

    The last table averages over all inputs.

The inputs: held-out material only (bench/mixes.py says which is which; nothing
here was used to tune a threshold). One recording per condition, its held-out
mixes back to back with 0.6 s of their own noise between them: cafe0/5/10/20
(café noise at that SNR), hum50, hum60 (mains hum with 2nd-5th harmonics over
faint pink noise), quiet (speech at -38 dBFS over white noise 30-35 dB down),
music10 (a music bed at 10 dB), and VoiceBank p287_003 as recorded.

Usage: nice .venv/bin/python bench/denoise.py [--methods auto,deepfilter,...]
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

sys.path.insert(0, str(ROOT / "bench"))

from mixes import Mix, mixes, tone_left  # noqa: E402

from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.records import read_clips  # noqa: E402
from nr4dl_tasks.dsp import (
    audio,  # noqa: E402
    quality,
)
from nr4dl_tasks.dsp.quality import Mos  # noqa: E402
from nr4dl_tasks.pipeline import process_file, run_stage  # noqa: E402
from nr4dl_tasks.stages.denoise import acceptable  # noqa: E402

RATE = 44100
METHODS = {
    "none": {"denoise.method": "none"},
    "gate-stationary": {"denoise.method": "gate", "denoise.gate_mode": "stationary"},
    "gate-nonstationary": {"denoise.method": "gate", "denoise.gate_mode": "nonstationary"},
    "deepfilter": {"denoise.method": "deepfilter"},
    "auto": {"denoise.method": "auto"},
    "auto without clean_snr_db": {"denoise.method": "auto", "denoise.clean_snr_db": None},
}


def inputs(folder: Path) -> dict[str, tuple[Path, np.ndarray, tuple[float, ...]]]:
    """name -> (noisy file, clean reference at RATE aligned with it, injected tone frequencies)."""
    groups: dict[str, list[Mix]] = {}
    for mix in mixes(RATE, held_out=True):
        groups.setdefault(mix.name if mix.name.startswith("vb_") else mix.name.rsplit("_", 1)[-1], []).append(mix)
    made = {}
    for name, group in groups.items():
        parts = [(m.noisy, m.clean) for m in group]
        gap = int(0.6 * RATE)
        noise_gaps = [((m.noisy - m.clean)[-gap:], np.zeros(gap, np.float32)) for m in group]
        noisy = np.concatenate([x for (n, _), (g, _) in zip(parts, noise_gaps, strict=True) for x in (g, n)])
        clean = np.concatenate([x for (_, c), (_, z) in zip(parts, noise_gaps, strict=True) for x in (z, c)])
        path = folder / f"{name}.wav"
        sf.write(str(path), noisy, RATE, subtype="FLOAT")
        made[name] = (path, clean, group[0].hum_hz)
    return made


def measure(media: Path, clean: np.ndarray, tones: tuple[float, ...], method: str, work_root: Path) -> dict[str, float]:
    overrides = {
        "paths.work_dir": str(work_root),
        "separate.mode": "off",
        "slice.min_duration": 0.5,
        **METHODS[method],
    }
    settings = settings_mod.load(overrides=overrides)
    work, _ = process_file(media, settings, until="slice")
    began = time.monotonic()
    result = run_stage("denoise", work, settings)
    wall = time.monotonic() - began
    clips = read_clips(work.path("clips.jsonl"))
    rate, cfg = settings.slice.sample_rate, settings.denoise
    reference = audio.resample(clean, RATE, rate)
    speech_power = float(np.mean(reference[np.abs(reference) > 1e-4] ** 2))
    sdr_in, sdr_out, above, failing = [], [], [], 0
    would = {"dnsmos": 0, "distortion": 0}
    for clip in clips:
        ref = reference[int(round(clip.start * rate)) : int(round(clip.end * rate))]
        if np.mean(ref**2) > 0.1 * speech_power:  # ina may cut a clip from noise alone: no reference
            before = sf.read(str(work.path(clip.path)), dtype="float32")[0]
            after = sf.read(str(work.path(clip.extra["denoised_path"])), dtype="float32")[0]
            ref = aligned(ref, before)
            sdr_in.append(quality.si_sdr(before, ref))
            sdr_out.append(quality.si_sdr(after, ref))
            for hz in tones:
                up, down = tone_left(after, before, ref, hz, rate)
                above.append(up)
                failing += not (up <= 3.0 or down >= 30.0)
        record = clip.extra["denoise"]
        mos_in, mos_out = (Mos(**record["dnsmos"][k]) for k in ("before", "after"))
        if record["method"] not in ("none",) and not acceptable(mos_in, mos_out, cfg.sig_tolerance):
            would["dnsmos"] += 1
        elif record["sdr_loss_est_db"] > cfg.max_sdr_loss_db:
            would["distortion"] += 1
    reverts = result.info["reverted_by"] if method.startswith("auto") else would
    seconds = sum(c.duration for c in clips)
    deltas = np.array(sdr_out) - np.array(sdr_in)
    row = {
        "x_rt": seconds / wall,
        "clips": len(clips),
        "method_used": result.info["method"],
        "sdr_in": float(np.mean(sdr_in)),
        "sdr_out": float(np.mean(sdr_out)),
        "worst": float(deltas.min()),
        "tone_above": max(above) if above else float("nan"),
        "tone_fail": failing,
        "rev_dnsmos": reverts.get("dnsmos", 0),
        "rev_distortion": reverts.get("distortion", 0),
    }
    for key in ("ovrl", "sig"):
        row[f"{key}_in"] = float(np.mean([c.extra["denoise"]["dnsmos"]["before"][key] for c in clips]))
        row[f"{key}_out"] = float(np.mean([c.extra["denoise"]["dnsmos"]["after"][key] for c in clips]))
    return row


def aligned(ref: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """`ref` shifted by the fraction of a sample that best matches `clip` (clip starts are rounded to 1 ms)."""
    n = min(len(ref), len(clip))
    spectrum, freqs = np.fft.rfft(ref[:n]), np.fft.rfftfreq(n)
    shifts = [np.fft.irfft(spectrum * np.exp(-2j * np.pi * freqs * d), n) for d in np.arange(-1.0, 1.01, 0.05)]
    return max(shifts, key=lambda r: float(r @ clip[:n])).astype(np.float32)


COLUMNS = (
    "x RT",
    "SI-SDR in→out",
    "worst clip ΔSI-SDR",
    "OVRL in→out",
    "SIG in→out",
    "tone: worst dB above clean",
    "tones failing",
    "reverted: DNSMOS / distortion",
)


def cells(row: dict[str, float]) -> list[str]:
    tone = "–" if np.isnan(row["tone_above"]) else f"{row['tone_above']:+.1f}"
    return [
        f"{row['x_rt']:.1f}",
        f"{row['sdr_in']:.1f} → {row['sdr_out']:.1f}",
        f"{row['worst']:+.1f}",
        *(f"{row[k + '_in']:.2f} → {row[k + '_out']:.2f}" for k in ("ovrl", "sig")),
        tone,
        f"{row['tone_fail']:.0f}",
        f"{row['rev_dnsmos']:.0f} / {row['rev_distortion']:.0f}",
    ]


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
        for name, (media, clean, tones) in made.items():
            for method in methods:
                results.setdefault(method, {})[name] = measure(media, clean, tones, method, folder / "work")
                print(f"{name:16s} {method:26s} " + "  ".join(cells(results[method][name])), file=sys.stderr)
    print(f"# denoise benchmark ({platform.processor() or platform.machine()}, {len(made)} inputs)\n")
    for method in methods:
        rows = [[name, str(int(r["clips"])), r["method_used"], *cells(r)] for name, r in results[method].items()]
        print(f"## {method}\n\n" + table(["input", "clips", "applied", *COLUMNS], rows) + "\n")
    mean_rows = []
    for method in methods:
        rows = list(results[method].values())
        mean = {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0] if key != "method_used"}
        mean.update(
            worst=min(r["worst"] for r in rows),
            tone_above=float(np.nanmax([r["tone_above"] for r in rows])),
            **{k: sum(r[k] for r in rows) for k in ("tone_fail", "rev_dnsmos", "rev_distortion")},
        )
        mean_rows.append([method, *cells(mean)])
    print(
        "## over all inputs (means; worst clip, worst tone and counts over all)\n\n"
        + table(["method", *COLUMNS], mean_rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
