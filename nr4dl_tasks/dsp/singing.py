"""How much of a clip is sung: the share of its voiced time spent on held notes.

Speech glides: its pitch moves through a syllable and rarely holds one note. A
singer holds notes, each within a few cents for a tenth of a second or more. The
pitch is tracked by YIN (de Cheveigné and Kawahara, 2002) on 40 ms frames every
10 ms; a voiced frame is on a held note when the pitch over the 150 ms around it
stays within `HELD_CENTS`. The score is that share, 0 for a clip with no voicing.
What counts as sung (`gates.max_singing`) was set from read speech alone (every
Korean speaker and LibriSpeech reader here), so no song was tuned on (docs/music.md).
"""

from __future__ import annotations

import numpy as np

RATE = 16000
FRAME = 640  # 40 ms: two periods of the lowest voice
HOP = 160  # 10 ms
F0_MIN, F0_MAX = 70.0, 1000.0
VOICED = 0.2  # YIN's aperiodicity below which a frame is voiced
NOTE_FRAMES = 15  # 150 ms
HELD_CENTS = 30.0


def pitch(samples: np.ndarray) -> np.ndarray:
    """f0 in Hz per 10 ms frame of 16 kHz mono audio, NaN where unvoiced (YIN, without its parabolic refinement)."""
    if len(samples) < FRAME:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), FRAME)[::HOP]
    frames = frames - frames.mean(axis=1, keepdims=True)
    lo, hi = int(RATE / F0_MAX), int(RATE / F0_MIN)
    half = FRAME // 2
    spectrum = np.fft.rfft(frames, n=2 * FRAME, axis=1)
    acf = np.fft.irfft(spectrum * np.conj(np.fft.rfft(frames[:, :half], n=2 * FRAME, axis=1)), axis=1)[:, : hi + 1]
    energy = np.cumsum(frames**2, axis=1)
    window = energy[:, half - 1 : half - 1 + hi + 1] - np.concatenate(
        [np.zeros((len(frames), 1)), energy[:, :hi]], axis=1
    )
    diff = energy[:, half - 1 : half][:, [0]] + window - 2 * acf  # d(tau) over the first half-frame
    diff[:, 0] = 0
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, hi + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cumulative, 1e-12)
    tau = lo + np.argmin(cmnd[:, lo : hi + 1], axis=1)
    best = cmnd[np.arange(len(frames)), tau]
    loud = frames.std(axis=1) > 1e-3 * max(float(np.abs(samples).max()), 1e-9)
    return np.where((best < VOICED) & loud, RATE / tau, np.nan)


def score(samples: np.ndarray) -> float:
    """Share of the voiced 10 ms frames of 16 kHz mono `samples` that sit on a held note."""
    f0 = pitch(samples)
    voiced = np.isfinite(f0)
    if voiced.sum() < NOTE_FRAMES:
        return 0.0
    cents = 1200 * np.log2(np.where(voiced, f0, 1.0) / 55.0)
    held = np.zeros(len(f0), bool)
    for start in range(len(f0) - NOTE_FRAMES + 1):
        window = slice(start, start + NOTE_FRAMES)
        if voiced[window].all() and np.ptp(cents[window]) <= HELD_CENTS:
            held[window] = True
    return round(float(held[voiced].mean()), 3)
