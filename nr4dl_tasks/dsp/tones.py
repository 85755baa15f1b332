"""Find persistent narrow-band tones (mains hum and its harmonics, a whine, a carrier) and notch exactly those.

A tone is a peak that stands well above the spectrum around it in the median
spectrum of many 1 s frames, and does so in most frames: speech harmonics move
with the pitch and drop out of the median, a hum does not. Frequencies are
refined between FFT bins by parabolic interpolation, and each notch's Q comes
from the measured width of its peak, so a drifting carrier gets a wider notch
than a crystal-clean 50 Hz. A tone must also be loud enough to matter
(`min_level_dbfs`, as a sine's peak level): studio recordings carry hum at -80
dBFS that nobody hears, and notching it would only touch a clean file. Filters
run forwards and backwards (zero phase, and twice the attenuation in dB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANALYSIS_SECONDS = 1.0  # frame length: 1 Hz bins
BACKGROUND_HZ = 41  # width of the running median that stands for the spectrum around a peak
PERSISTENT_DB = 6.0  # a tone must stand this far above the background ...
PERSISTENT_SHARE = 0.8  # ... in at least this share of frames
MIN_HZ = 20.0
MIN_BANDWIDTH_HZ = 3.0  # narrower notches would miss a tone that drifts by a fraction of a hertz
MAX_TONES = 24


@dataclass(frozen=True)
class Tone:
    hz: float
    q: float
    prominence_db: float  # above the spectrum around it
    level_dbfs: float  # peak level of the sine

    def as_dict(self) -> dict[str, float]:
        return {"hz": round(self.hz, 2), "q": round(self.q, 1), "prominence_db": round(self.prominence_db, 1),
                "level_dbfs": round(self.level_dbfs, 1)}


def _frames_db(samples: np.ndarray, rate: int) -> np.ndarray:
    """Power spectra in dB of 1 s Hann frames with half overlap, shape (frames, bins)."""
    from scipy.signal import stft

    n = int(rate * ANALYSIS_SECONDS)
    _, _, spec = stft(samples, fs=rate, window="hann", nperseg=n, noverlap=n // 2, boundary=None, padded=False)
    return 10 * np.log10(np.abs(spec.T) ** 2 + 1e-20)


def _refine(spectrum_db: np.ndarray, k: int) -> float:
    """Sub-bin peak position by fitting a parabola through the peak bin and its neighbours."""
    a, b, c = spectrum_db[k - 1], spectrum_db[k], spectrum_db[k + 1]
    denom = a - 2 * b + c
    return k + (0.5 * (a - c) / denom if denom < 0 else 0.0)


def find_tones(samples: np.ndarray, rate: int, min_prominence_db: float, min_level_dbfs: float) -> list[Tone]:
    """Persistent, audible narrow-band tones in a mono signal (at least 2 s of it), strongest first."""
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks, peak_widths

    if len(samples) < 2 * rate * ANALYSIS_SECONDS:
        return []
    frames = _frames_db(samples.astype(np.float64), rate)
    hz_per_bin = 1.0 / ANALYSIS_SECONDS
    median = np.median(frames, axis=0)
    background = median_filter(median, size=int(BACKGROUND_HZ / hz_per_bin), mode="nearest")
    prominence = median - background
    top = int(0.95 * (rate / 2) / hz_per_bin)
    peaks, _ = find_peaks(prominence[:top], height=min_prominence_db, distance=3)
    # scipy's stft scales a sine of amplitude A to a bin of magnitude A/2: +6 dB gives the sine's level.
    peaks = peaks[(peaks * hz_per_bin >= MIN_HZ) & (median[peaks] + 6.02 >= min_level_dbfs)]
    persistent = np.mean(frames[:, peaks] - background[peaks] > PERSISTENT_DB, axis=0) >= PERSISTENT_SHARE
    peaks = peaks[persistent]
    if not len(peaks):
        return []
    widths = peak_widths(10 ** (prominence / 10), peaks, rel_height=0.5)[0] * hz_per_bin
    tones = []
    for k, width in zip(peaks, widths, strict=True):
        hz = _refine(median, int(k)) * hz_per_bin
        bandwidth = max(MIN_BANDWIDTH_HZ, 2 * width)
        tones.append(Tone(float(hz), float(hz / bandwidth), float(prominence[k]), float(median[k] + 6.02)))
    return sorted(tones, key=lambda t: -t.prominence_db)[:MAX_TONES]


def filter_design(rate: int, tones: list[Tone], highpass_hz: float | None,
                  lowpass_hz: float | None) -> np.ndarray | None:
    """One second-order-sections cascade for every notch and band edge, or None when there is nothing to do."""
    from scipy.signal import butter, iirnotch, tf2sos

    sections = [tf2sos(*iirnotch(t.hz, t.q, fs=rate)) for t in tones if t.hz < 0.98 * rate / 2]
    if highpass_hz:
        sections.append(butter(4, highpass_hz, "highpass", fs=rate, output="sos"))
    if lowpass_hz:
        sections.append(butter(4, lowpass_hz, "lowpass", fs=rate, output="sos"))
    return np.concatenate(sections) if sections else None


def apply_filter(samples: np.ndarray, sos: np.ndarray | None) -> np.ndarray:
    """Zero-phase filtering along the time axis (a no-op without filters)."""
    if sos is None or len(samples) < 16:
        return samples
    from scipy.signal import sosfiltfilt

    padlen = min(3 * (2 * len(sos) + 1), len(samples) - 1)  # scipy's default, capped for very short clips
    return sosfiltfilt(sos, samples, axis=0, padlen=padlen).astype(np.float32)
