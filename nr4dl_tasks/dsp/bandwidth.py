"""Effective bandwidth: the highest frequency a clip really holds.

A telephone call (8 kHz sampling, 3.4 kHz band) or a 16 kHz recording becomes a
22.05 kHz clip like any other, and DNSMOS rates speech by its clarity, not its
band: such clips were rated `gold`. A TTS voice trained on them sounds muffled,
so each clip records its band and the gate can cap or drop band-limited ones.

The measure is cheap and needs no model: the clip's long-term average spectrum
(Welch), smoothed over 1/64 of the band, and the highest frequency still within
`FLOOR_DB` of its peak. Resampling leaves the band above the original Nyquist
frequency far below the speech (the resampler's stop band, past a transition of
about 1 kHz), while full-band speech keeps its sibilants within 60 dB of its peak
up to the top of the band. bench/bandwidth.py prints the measure on held-out
recordings of each kind.
"""

from __future__ import annotations

import numpy as np

FLOOR_DB = 60.0  # below the spectrum's peak: what remains above this is content, not a resampler's stop band
SEGMENT = 1024  # Welch segment (frames): about 43 Hz per bin at 44.1 kHz


def effective_bandwidth(samples: np.ndarray, rate: int) -> float:
    """The highest frequency (Hz) whose smoothed level is within FLOOR_DB of the spectrum's peak; 0 for silence."""
    from scipy.signal import welch

    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if mono.size < SEGMENT or not np.any(mono):
        return 0.0
    freqs, power = welch(mono.astype(np.float64), fs=rate, nperseg=SEGMENT)
    width = max(1, len(power) // 64)
    smooth = np.convolve(power, np.ones(width) / width, mode="same")
    level = 10 * np.log10(np.maximum(smooth, 1e-30))
    above = np.flatnonzero(level >= level.max() - FLOOR_DB)
    return float(freqs[above[-1]])
