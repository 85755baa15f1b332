"""Spectral gating with a noise profile that no human picks.

Like Audacity's noise reduction and `noisereduce`, each STFT bin is kept where
it stands clearly above the noise in that frequency band and attenuated where
it does not; the keep/attenuate mask is smoothed over time and frequency so it
does not chirp ("musical noise"). What differs is where the noise comes from:

* **stationary**: one profile per file, measured on the file's own non-speech
  (the segments ina labelled noise/noEnergy): per band, the mean and spread of
  the noise level, threshold = mean + `n_std` x spread.
* **minimum statistics** (Martin 2001): where speech pauses, the smoothed power
  of a band falls to the noise floor, so a running minimum over about a second
  tracks the noise without knowing where speech is. It is the fallback profile
  of a file with too little non-speech, and, run per clip, the
  **nonstationary** mode that follows noise changing within a clip.

Noise power in one STFT bin is exponentially distributed, so in dB its mean
lies 2.51 dB below the dB of its mean power and its spread is 5.57 dB: that
turns a minimum-statistics power estimate into the same mean/spread threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMOOTH_ALPHA = 0.85  # recursive smoothing of band power before taking minima
MIN_WINDOW_SECONDS = 1.0  # running-minimum span: longer than a syllable, short enough to follow the noise
MIN_BIAS_DB = 3.0  # a minimum of smoothed power underestimates the mean noise power by about this much
EXP_MEAN_OFFSET_DB = 2.51  # E[10 log10 X] - 10 log10 E[X] for exponentially distributed X
EXP_STD_DB = 5.57  # standard deviation of 10 log10 X for exponentially distributed X
SILENT_FRAME_DB = -100.0  # frames whose mean band level is below this are digital silence
MASK_SMOOTH_HZ = 300.0
MASK_SMOOTH_SECONDS = 0.05


@dataclass(frozen=True)
class NoiseProfile:
    """Per STFT band: mean and spread of the noise level in dB, at one sample rate."""

    rate: int
    mean_db: np.ndarray
    std_db: np.ndarray
    source: str  # 'non-speech' or 'minimum statistics'
    seconds: float  # audio it was measured on


def stft_size(rate: int) -> tuple[int, int]:
    """FFT length (about 46 ms, a power of two) and hop (a quarter of it) for a sample rate."""
    n_fft = 1 << int(round(np.log2(0.046 * rate)))
    return n_fft, n_fft // 4


def _stft(samples: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import stft

    n_fft, hop = stft_size(rate)
    if len(samples) < n_fft:  # scipy would shrink the frame, and the bands would no longer match the profile
        samples = np.pad(samples, (0, n_fft - len(samples)))
    return stft(samples, fs=rate, window="hann", nperseg=n_fft, noverlap=n_fft - hop)[2]


def _istft(spec: np.ndarray, rate: int, length: int) -> np.ndarray:
    from scipy.signal import istft

    n_fft, hop = stft_size(rate)
    out = istft(spec, fs=rate, window="hann", nperseg=n_fft, noverlap=n_fft - hop)[1]
    return out[:length].astype(np.float32)


def _power_db(spec: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.abs(spec) ** 2 + 1e-12)


def noise_floor_db(power_db: np.ndarray, rate: int) -> np.ndarray:
    """Minimum-statistics noise power (dB) per band and frame from a (bands, frames) power spectrogram."""
    from scipy.ndimage import minimum_filter1d
    from scipy.signal import lfilter

    _, hop = stft_size(rate)
    smoothed = lfilter([1 - SMOOTH_ALPHA], [1, -SMOOTH_ALPHA], 10 ** (power_db / 10), axis=1)
    smoothed[:, : min(8, smoothed.shape[1])] = smoothed[:, [min(8, smoothed.shape[1]) - 1]]  # filter warm-up
    span = max(1, int(MIN_WINDOW_SECONDS * rate / hop))
    minimum = minimum_filter1d(smoothed, size=span, axis=1, mode="nearest")
    return 10 * np.log10(minimum + 1e-12) + MIN_BIAS_DB


def profile_from_noise(signals: list[np.ndarray], rate: int) -> NoiseProfile:
    """The noise profile of non-speech audio: per-band mean and spread of its level."""
    frames = np.concatenate([_power_db(_stft(s, rate)) for s in signals], axis=1)
    # Digital silence (exact zeros, often labelled noEnergy) is not the noise and would drag the profile down.
    frames = frames[:, frames.mean(axis=0) > SILENT_FRAME_DB]
    if frames.shape[1] == 0:
        return profile_from_min_statistics(signals, rate)
    return NoiseProfile(
        rate, frames.mean(axis=1), frames.std(axis=1), "non-speech", round(sum(len(s) for s in signals) / rate, 2)
    )


def profile_from_min_statistics(signals: list[np.ndarray], rate: int) -> NoiseProfile:
    """A file-wide profile from the noise floor under speech (median over time of the running minimum)."""
    floors = np.concatenate([noise_floor_db(_power_db(_stft(s, rate)), rate) for s in signals], axis=1)
    mean_db = np.median(floors, axis=1) - EXP_MEAN_OFFSET_DB
    return NoiseProfile(
        rate,
        mean_db,
        np.full_like(mean_db, EXP_STD_DB),
        "minimum statistics",
        round(sum(len(s) for s in signals) / rate, 2),
    )


def _smooth_mask(mask: np.ndarray, rate: int) -> np.ndarray:
    """Average the 0/1 mask with a triangular kernel over about 300 Hz and 50 ms."""
    from scipy.signal import fftconvolve

    n_fft, hop = stft_size(rate)
    half_f = max(1, int(MASK_SMOOTH_HZ / (rate / n_fft)))
    half_t = max(1, int(MASK_SMOOTH_SECONDS * rate / hop))
    kernel = np.outer(np.bartlett(2 * half_f + 1)[1:-1], np.bartlett(2 * half_t + 1)[1:-1])
    return fftconvolve(mask, kernel / kernel.sum(), mode="same")


def gate(
    samples: np.ndarray, rate: int, profile: NoiseProfile | None, n_std: float, max_attenuation_db: float
) -> np.ndarray:
    """Gate one mono signal against `profile`, or against its own running noise floor when `profile` is None."""
    spec = _stft(samples, rate)
    level = _power_db(spec)
    if profile is None:
        threshold = noise_floor_db(level, rate) - EXP_MEAN_OFFSET_DB + n_std * EXP_STD_DB
    else:
        if profile.rate != rate:
            raise ValueError(f"noise profile is for {profile.rate} Hz, audio is {rate} Hz")
        threshold = (profile.mean_db + n_std * profile.std_db)[:, None]
    floor = 10 ** (-max_attenuation_db / 20)
    mask = np.clip(_smooth_mask((level > threshold).astype(np.float64), rate), 0.0, 1.0)
    return _istft(spec * (floor + (1 - floor) * mask), rate, len(samples))
