"""Benchmark of the effective-bandwidth measure (dsp/bandwidth.py) and the gate's full-band rule, on held-out audio.

Each recording is resampled to the clip rate (22.05 kHz) three ways: as it is, through a 16 kHz recording (8 kHz
band) and through a telephone (8 kHz sampling, 4 kHz band). The table gives the measured bandwidth per kind and how
many clips the default rule (gates.full_band_fraction 0.9: below 0.9 x 11025 Hz is band-limited) calls band-limited.

Tuning set (looked at while choosing FLOOR_DB, the smoothing and the fraction): LJ001-0001..0004, LibriSpeech 1688,
VCTK p225, emotiontts ada. Held-out (measured here): LJ001-0007..0016 (22.05 kHz, full band), LibriSpeech 1998, 2033,
3080 and VCTK p226..p228 (16 kHz), so their 'as is' row is already an 8 kHz band.

Usage: nice -n 10 .venv/bin/python bench/bandwidth.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.dsp.audio import resample  # noqa: E402
from nr4dl_tasks.dsp.bandwidth import effective_bandwidth  # noqa: E402

MEDIA = (ROOT / ".." / "shared" / "media").resolve()
RATE, FRACTION = 22050, 0.9


def _flacs(folder: str, speakers: tuple[str, ...]) -> list[Path]:
    return sorted(p for speaker in speakers for p in (MEDIA / folder / speaker).glob("*.flac"))


def held_out() -> dict[str, list[Path]]:
    return {
        "LJ Speech 22.05 kHz": sorted(MEDIA.glob("speech_en/LJ001-00*.wav"))[6:16],
        "LibriSpeech 16 kHz": _flacs("speakers", ("1998", "2033", "3080")),
        "VCTK 16 kHz": _flacs("speakers_vctk", ("p226", "p227", "p228")),
    }


def main() -> None:
    limit = FRACTION * RATE / 2
    print(
        f"{'recordings':22} {'through':9} {'clips':>5} {'min Hz':>7} {'median':>7} {'max Hz':>7} {'band-limited':>12}"
    )
    for name, files in held_out().items():
        measured: dict[str, list[float]] = {"as is": [], "16 kHz": [], "telephone": []}
        for path in files:
            samples, rate = sf.read(str(path), dtype="float32")
            measured["as is"].append(effective_bandwidth(resample(samples, rate, RATE), RATE))
            for kind, band_rate in (("16 kHz", 16000), ("telephone", 8000)):
                banded = resample(resample(samples, rate, band_rate), band_rate, RATE)
                measured[kind].append(effective_bandwidth(banded, RATE))
        for kind, values in measured.items():
            limited = sum(v < limit for v in values)
            print(
                f"{name:22} {kind:9} {len(values):5} {min(values):7.0f} {statistics.median(values):7.0f} "
                f"{max(values):7.0f} {limited:>5} of {len(values)}"
            )


if __name__ == "__main__":
    main()
