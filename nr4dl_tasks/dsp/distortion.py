"""How much a denoiser cost the speech, estimated without a clean reference.

DNSMOS judges how an output sounds, not what it lost: a spectral gate that cuts
the quiet half of every syllable out of clean read speech sounds cleaner to it
(OVRL up) while SI-SDR against the clean speech falls by 10 dB. What was lost
is in the residual, input minus output, and the input tells where the speech
is: a time-frequency bin standing well above the noise floor is dominated by
speech, and there an ideal denoiser changes almost nothing. With the noise
floor (the file's, measured before any method ran, so that no method grades
itself) and the gain the method applied where the input is only noise, the
SI-SDR change follows: `sdr_change_estimate_db`. One STFT per signal: a few
milliseconds per second of audio.

It was chosen on mixes with clean references (bench/mixes.py) against the
residual's energy in, and the energy kept in, the speech-dominated bins and
the residual's co-modulation with the output; bench/distortion.py compares
them. On 162 held-out outputs (54 mixes x gate stationary, gate
nonstationary, DeepFilterNet3; 80 of them lose more than 1 dB SI-SDR) its
Spearman correlation with the SI-SDR loss is 0.84 and its ROC AUC for
"harmful" 0.90, against 0.09-0.17 and 0.46-0.50 for the others. Its blind
spot: DeepFilterNet on near-clean speech (hum, quiet speech in faint noise)
loses 2-9 dB SI-SDR that it does not see.
"""

from __future__ import annotations

import numpy as np

from nr4dl_tasks.dsp.audio import mono
from nr4dl_tasks.dsp.spectral_gate import _power_db, _stft, noise_floor_db

SPEECH_DOMINATED_DB = 10.0  # input above its noise floor by this much: noise is under a tenth of the bin
NOISE_DOMINATED_DB = 3.0  # input within this of its noise floor: what a method takes there is noise


def _spectra(before: np.ndarray, after: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(before), len(after))
    return _stft(mono(before)[:n].astype(np.float32), rate), _stft(mono(after)[:n].astype(np.float32), rate)


def speech_dominated(spec: np.ndarray, rate: int) -> np.ndarray:
    """Bins of a (bands, frames) spectrogram standing SPEECH_DOMINATED_DB above the signal's own noise floor."""
    level = _power_db(spec)
    return level > noise_floor_db(level, rate) + SPEECH_DOMINATED_DB


def sdr_change_estimate_db(
    before: np.ndarray, after: np.ndarray, rate: int, noise_db: np.ndarray | None = None
) -> float:
    """The SI-SDR change a method made, estimated without the clean speech (dB; negative: it did harm).

    With x = s + n and the residual r = x - y split into removed noise and
    removed speech, SI-SDR(y) - SI-SDR(x) is about 10 log10(N / (N_left +
    S_removed)): N is the input's noise (per band, `noise_db`, the file's mean
    noise power in dB, else the clip's own minimum statistics, which a clip
    of unbroken speech overestimates), N_left that noise times the gain the
    method applied to noise-dominated bins, S_removed the residual in the
    input's speech-dominated bins.
    """
    x, y = _spectra(before, after, rate)
    px, py = np.abs(x) ** 2, np.abs(y) ** 2
    level = _power_db(x)
    floor_db = noise_floor_db(level, rate) if noise_db is None else np.broadcast_to(noise_db[:, None], level.shape)
    noise_in = float(np.minimum(10 ** (floor_db / 10), px).sum())
    noisy = level < floor_db + NOISE_DOMINATED_DB
    gain = float(py[noisy].sum() / max(px[noisy].sum(), 1e-20)) if noisy.any() else 1.0
    speech = level > floor_db + SPEECH_DOMINATED_DB
    removed = float(np.sum(np.abs(x[speech] - y[speech]) ** 2))
    return float(10 * np.log10(max(noise_in, 1e-20) / max(min(gain, 1.0) * noise_in + removed, 1e-20)))
