"""Speech quality measures: DNSMOS P.835, a blind SNR estimate, and SI-SDR.

DNSMOS (Microsoft's non-intrusive MOS predictor) scores a clip without a clean
reference: SIG (speech distortion), BAK (background intrusiveness) and OVRL, on a
1-5 scale. Its ONNX model ships in the `speechmos` wheel; this module loads that
file with onnxruntime directly, once per process, instead of importing
`speechmos.dnsmos` (which pulls librosa for the P.808 model nr4dl does not use).

The model reads exactly 9.01 s of 16 kHz audio. Like the reference script, a
shorter clip is repeated to fill the window and the polynomial calibration of
P.835 is applied. One difference: nr4dl's clips last a whole number of 10 ms,
i.e. of the model's 160-sample hop, and a clip repeated back to back on that
grid feeds the network identical frames every repetition, which it scores as
nonsense (noisy VoiceBank p287_001: OVRL 1.08, against 1.8-2.4 at other
offsets). Each repetition is therefore followed by enough silence to put the
next one half a hop off the grid. Unlike the reference script, which steps a window by 1 s
(up to 7 windows for a 15 s clip), a longer clip is covered by the fewest
evenly spaced windows: one window costs about 0.19 s of two cores, and
denoising scores every clip twice. For the same reason clips are scored on a
pool of threads with one onnxruntime thread each (`DnsmosPool`), which keeps
both cores busy while DeepFilterNet, itself single-threaded, runs beside it.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from math import ceil
from typing import Any

import numpy as np

from nr4dl_tasks.dsp.audio import mono, resample

DNSMOS_RATE = 16000
DNSMOS_WINDOW = int(9.01 * DNSMOS_RATE)
DNSMOS_HOP = 160  # the model's frame hop (10 ms)
# P.835 calibration of the raw network outputs (from DNSMOS' reference script, non-personalised model).
_CALIBRATION = {
    "sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
    "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
    "ovrl": np.poly1d([-0.06766283, 1.11546468, 0.04602535]),
}


@dataclass(frozen=True)
class Mos:
    sig: float
    bak: float
    ovrl: float

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 3) for key, value in asdict(self).items()}


@functools.cache
def _dnsmos_session() -> Any:
    import importlib.resources

    import onnxruntime as ort

    from nr4dl_tasks.core.errors import ModelError

    model = importlib.resources.files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"
    if not model.is_file():
        raise ModelError(f"DNSMOS model {model} is missing; run scripts/setup.sh (it installs speechmos)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # parallelism comes from DnsmosPool's threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def _windows(samples: np.ndarray) -> np.ndarray:
    """The 9.01 s windows DNSMOS scores: the clip repeated to fill one, or evenly spaced windows covering it."""
    if len(samples) <= DNSMOS_WINDOW:
        gap = (DNSMOS_HOP // 2 - len(samples)) % DNSMOS_HOP  # each repetition starts half a hop off the grid
        period = np.concatenate([samples, np.zeros(gap, samples.dtype)])
        return np.tile(period, ceil(DNSMOS_WINDOW / len(period)))[None, :DNSMOS_WINDOW]
    count = ceil(len(samples) / DNSMOS_WINDOW)
    starts = np.linspace(0, len(samples) - DNSMOS_WINDOW, count).round().astype(int)
    return np.stack([samples[s : s + DNSMOS_WINDOW] for s in starts])


def dnsmos(samples: np.ndarray, rate: int) -> Mos:
    """DNSMOS P.835 SIG/BAK/OVRL of one clip (any rate, mono or multi-channel, float in [-1, 1])."""
    speech = np.clip(resample(mono(samples).astype(np.float32), rate, DNSMOS_RATE), -1.0, 1.0)
    if not speech.any():
        return Mos(1.0, 1.0, 1.0)  # silence: the network's output is meaningless there
    session = _dnsmos_session()
    raw = session.run(None, {"input_1": _windows(speech).astype(np.float32)})[0]
    sig, bak, ovrl = (float(np.mean(_CALIBRATION[key](raw[:, i]))) for i, key in enumerate(("sig", "bak", "ovrl")))
    return Mos(sig, bak, ovrl)


class DnsmosPool:
    """Scores clips on `threads` worker threads (onnxruntime releases the GIL), one onnxruntime thread each."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="dnsmos")

    def submit(self, samples: np.ndarray, rate: int) -> Future[Mos]:
        return self._pool.submit(dnsmos, samples, rate)

    def __enter__(self) -> DnsmosPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(cancel_futures=True)


def snr_estimate(samples: np.ndarray, rate: int, frame_seconds: float = 0.02) -> float | None:
    """Blind SNR in dB: mean power of the louder half of 20 ms frames over that of the quietest tenth.

    A rough, reference-free figure for comparing a clip before and after
    denoising (the quiet frames are pauses between words, i.e. background).
    """
    x = mono(samples).astype(np.float64)
    hop = max(1, int(rate * frame_seconds))
    frames = len(x) // hop
    if frames < 10:
        return None  # under 0.2 s: too few frames to tell pauses from speech (and NaN is not valid JSON)
    power = np.sort((x[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1))
    noise = power[: max(1, frames // 10)].mean()
    loud = power[frames // 2 :].mean()
    return round(float(10 * np.log10(max(loud - noise, 1e-12) / max(noise, 1e-12))), 2)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (needs a clean reference; used by tests and the bench)."""
    n = min(len(estimate), len(reference))
    est = mono(estimate)[:n].astype(np.float64) - np.mean(mono(estimate)[:n])
    ref = mono(reference)[:n].astype(np.float64) - np.mean(mono(reference)[:n])
    target = (est @ ref) / (ref @ ref) * ref
    return float(10 * np.log10((target @ target) / max(((est - target) ** 2).sum(), 1e-12)))
