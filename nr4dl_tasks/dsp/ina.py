"""inaSpeechSegmenter's networks and decoding, with flat memory, and the music posterior of every frame.

Labels are exactly ina's: male, female (or speech without gender), music,
noise, noEnergy. ina's `Segmenter` turns the whole file into features and then
into overlapping 68x24 patches at once (about 2.3 GB of patches per hour of
audio), so long recordings do not fit. This module runs ina's own models and
decoding with two changes that keep memory flat and results unchanged:

* features are computed window by window on the 10 ms frame grid (each MFCC
  frame depends on its own 25 ms of samples only), and concatenated;
* patches are built and classified a window at a time; the per-frame network
  outputs (a few floats each) are collected for the whole file, and the energy
  detection and Viterbi smoothing then run over the whole file exactly as in ina.

So the output equals a whole-file ina run everywhere, not only away from window
edges; `tests/test_segment.py` checks it against ina's own expected outputs.

Beside the segments it keeps what ina computes and then throws away: the
speech/music/noise network's music posterior on every 20 ms frame with energy,
speech frames included. Inside speech it says whether music plays under the
voice (ina itself only labels the louder class), which is what the routing of
separation and the music-bleed measure are built on (`dsp/music.py`).

ina's networks cost about 15 GFLOP per second of speech, which caps a float32
run near 10x real time on two cores. On CPUs with bfloat16 instructions
(AVX512-BF16, AMX) oneDNN runs them in bfloat16 about 1.8x faster; the Viterbi
smoothing absorbs the tiny numeric differences, and the segments came out
identical on every test and benchmark file (also checked by the tests).
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.core import models, resources
from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import Segment
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.dsp import audio

log = logging.getLogger("nr4dl")

FRAME = 160  # samples per 10 ms feature frame at 16 kHz
WINDOW = 400  # samples per 25 ms analysis window
PATCH = 68  # frames per network input patch
STEP = 2  # frames between patches (one decision per 20 ms)
DECISION_S = STEP / 100  # seconds per network decision


@functools.cache
def cpu_has_bfloat16() -> bool:
    """True when the CPU has native bfloat16 dot products (else oneDNN would emulate them, slowly)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "bfloat16" if cpu_has_bfloat16() else "float32"
    return precision


@dataclass
class Segmentation:
    """ina's segments, and the music posterior per 20 ms decision (NaN where ina ran no network: no energy)."""

    segments: list[Segment]
    music: np.ndarray


@dataclass
class _Network:
    """One of ina's keras models, compiled for inference, with the metadata ina's class attaches to it."""

    predict: Any  # float32 batch (n, PATCH, nmel, 1) -> class probabilities (n, classes)
    outlabels: tuple[str, ...]
    inlabel: str
    nmel: int
    viterbi_arg: int


class InaSegmenter:
    """ina's models, loaded once per process from the provisioned files."""

    def __init__(self, models_dir: Path, vad_engine: str, detect_gender: bool, precision: str, threads: int) -> None:
        import tensorflow as tf
        from inaSpeechSegmenter import segmenter as ina
        from tensorflow import keras

        models.check(models_dir, models.INA_PACKAGE.files)
        try:  # TensorFlow's thread pools are process-wide and fixed once it has run anything
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            log.warning(
                "TensorFlow already runs in this process; keeping its thread pools (asked for %d threads)", threads
            )
        classes = [ina.SpeechMusicNoise if vad_engine == "smn" else ina.SpeechMusic]
        if detect_gender:
            classes.append(ina.Gender)
        # TensorFlow's graph-rewrite option is process-wide, so one process runs one precision.
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": precision == "bfloat16"})
        self.networks = []
        for cls in classes:
            model = keras.models.load_model(models_dir / "ina" / cls.model_fname, compile=False)
            shape = tf.TensorSpec([None, PATCH, cls.nmel, 1], tf.float32)
            predict = tf.function(lambda batch, model=model: model(batch, training=False), input_signature=[shape])
            self.networks.append(_Network(predict, cls.outlabels, cls.inlabel, cls.nmel, cls.viterbi_arg))
        self.precision = precision
        log.info("inaSpeechSegmenter networks loaded (%s, %s)", vad_engine, precision)
        self._ina = ina

    def features(self, wav: Path, window_s: float) -> tuple[np.ndarray, np.ndarray]:
        """ina's log-mel spectrogram and log-energy, computed window by window on the exact frame grid."""
        frames_per_window = max(1, int(window_s * 100))
        mspecs, loges = [], []
        progress = Progress(f"features of {wav}", audio.duration(wav))
        for start, sig in audio.blocks(wav, frames_per_window * FRAME, overlap=WINDOW - FRAME):
            progress.set((start + len(sig)) / (FRAME * 100))
            if len(sig) < WINDOW:
                break
            frames = (len(sig) - WINDOW) // FRAME + 1
            if frames == 1:  # ina's framing squeezes a single frame to 1-D; a padded second frame is dropped
                sig = np.pad(sig, (0, FRAME))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="divide by zero encountered in log", category=RuntimeWarning)
                _, loge, _, mspec = self._ina.mfcc(sig.astype(np.float32), get_mspec=True)
            mspecs.append(mspec[: min(frames, frames_per_window)])
            loges.append(loge[: min(frames, frames_per_window)])
        if not mspecs:
            return np.zeros((0, 24)), np.zeros(0)
        return np.concatenate(mspecs), np.concatenate(loges)

    def _predict(
        self, net: _Network, mspec: np.ndarray, indices: np.ndarray, chunk: int, batch_size: int, doing: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs for the given patch indices (ina's padded numbering), a chunk at a time."""
        from skimage.util import view_as_windows

        mspec = mspec[:, : net.nmel]
        n_raw = (len(mspec) - PATCH) // STEP + 1
        lpad = PATCH // (2 * STEP)
        preds: list[np.ndarray] = []
        finite: list[np.ndarray] = []
        progress = Progress(f"{doing}: {'/'.join(net.outlabels)} network", len(indices) * STEP / 100)
        for at in range(0, len(indices), chunk):
            raw = np.clip(indices[at : at + chunk] - lpad, 0, n_raw - 1)
            lo, hi = int(raw.min()), int(raw.max())
            windows = view_as_windows(mspec[STEP * lo : STEP * hi + PATCH], (PATCH, net.nmel), step=STEP)
            data = windows.reshape(len(windows), PATCH * net.nmel)[raw - lo]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
                data = (data - data.mean(axis=1, keepdims=True)) / data.std(axis=1, keepdims=True)
            finite.append(np.all(np.isfinite(data), axis=1))
            batch = data.astype(np.float32).reshape(len(data), PATCH, net.nmel, 1)
            preds.extend(
                net.predict(batch[at_b : at_b + batch_size]).numpy() for at_b in range(0, len(batch), batch_size)
            )
            progress.set(min(at + chunk, len(indices)) * STEP / 100)
        return np.concatenate(preds), np.concatenate(finite)

    def _apply(
        self, net: _Network, mspec: np.ndarray, lseg: list, chunk: int, batch_size: int, doing: str, music: np.ndarray
    ) -> list:
        """ina's DnnSegmenter.__call__, with patches built chunk by chunk; a network with a music output also
        fills `music` (one posterior per decision)."""
        ina = self._ina
        wanted = [(start, stop) for lab, start, stop in lseg if lab == net.inlabel]
        if not wanted:
            return lseg
        indices = np.concatenate([np.arange(start, stop) for start, stop in wanted])
        rawpred, finite = self._predict(net, mspec, indices, chunk, batch_size, doing)
        rawpred[~finite, :] = 0.5
        if "music" in net.outlabels:
            music[indices[indices < len(music)]] = rawpred[indices < len(music), net.outlabels.index("music")]
        ret, at = [], 0
        for lab, start, stop in lseg:
            if lab != net.inlabel:
                ret.append((lab, start, stop))
                continue
            r = rawpred[at : at + stop - start]
            at += stop - start
            pred = ina.viterbi_decoding(np.log(r), ina.diag_trans_exp(net.viterbi_arg, len(net.outlabels)))
            for lab2, start2, stop2 in ina._binidx2seglist(pred):
                ret.append((net.outlabels[int(lab2)], start2 + start, stop2 + start))
        return ret

    def __call__(self, wav: Path, energy_ratio: float, window_s: float, batch_size: int) -> Segmentation:
        ina = self._ina
        mspec, loge = self.features(wav, window_s)
        music = np.full((len(loge) + 1) // STEP, np.nan, dtype=np.float32)
        if len(loge) == 0:
            return Segmentation([], music)
        if len(loge) < PATCH:  # ina pads very short inputs the same way
            mspec = np.concatenate((mspec, np.ones((PATCH - len(loge), 24)) * np.min(mspec)))
        lseg = [
            ("energy" if lab else "noEnergy", start, stop)
            for lab, start, stop in ina._binidx2seglist(ina._energy_activity(loge, energy_ratio)[::2])
        ]
        chunk = max(1, int(window_s * 100 / STEP))
        for net in self.networks:
            lseg = self._apply(net, mspec, lseg, chunk, batch_size, f"segmenting {wav}", music)
        segments = [
            Segment(lab, round(start * DECISION_S, 3), round(stop * DECISION_S, 3)) for lab, start, stop in lseg
        ]
        return Segmentation(segments, music)


_segmenters: dict[tuple, InaSegmenter] = {}


def segmenter(settings: Settings) -> InaSegmenter:
    """The process-wide segmenter for these settings (models are loaded on first use only)."""
    precision = resolve_precision(settings.segment.precision)
    in_use = {seg.precision for seg in _segmenters.values()}
    if in_use and precision not in in_use:
        raise StageError(
            f"segment.precision={precision} was asked for in a process already running "
            f"{in_use.pop()} (TensorFlow's setting is process-wide); use one precision per run"
        )
    key = (
        settings.resolve(settings.paths.models_dir),
        settings.segment.vad_engine,
        settings.segment.detect_gender,
        precision,
    )
    if key not in _segmenters:  # TensorFlow's thread pools are fixed once it ran: threads count only at first
        _segmenters[key] = InaSegmenter(*key, resources.threads(settings))
    return _segmenters[key]
