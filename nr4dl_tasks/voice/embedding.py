"""Voice embeddings: Resemblyzer's speaker encoder, once per process, on windows of a clip.

Resemblyzer's `VoiceEncoder` (a GE2E LSTM; its weights ship inside the wheel)
maps 1.6 s of 40-band mel spectrogram to a 256-d unit vector; two windows of the
same voice point the same way. `embed_utterance` hides its windows, so this
module computes the mel spectrogram of a clip once and cuts windows from it
where it is told: at resemblyzer's own spacing (1.3 per second) for the clip's
embedding, and densely around a suspected speaker change to place it. All
windows of a clip go through the network as one batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from nr4dl_tasks.core.errors import ModelError

RATE = 16000  # the encoder's sample rate
FRAME_SECONDS = 0.01  # mel hop
WINDOW = 160  # frames per window (1.6 s), as the encoder was trained
CLIP_HOP = 77  # frames between a clip's windows: resemblyzer's default 1.3 windows per second
MIN_COVERAGE = 0.75  # a last window must hold this much audio, as in resemblyzer
NORM_DBFS = -30  # resemblyzer's loudness normalisation target
BATCH = 256  # windows per forward pass


@functools.cache
def _encoder(threads: int) -> Any:
    """The encoder, with torch using `threads` CPU threads."""
    import torch

    torch.set_num_threads(threads)
    try:
        from resemblyzer import VoiceEncoder

        return VoiceEncoder("cpu", verbose=False)
    except Exception as exc:  # a missing package or a damaged weights file
        raise ModelError(f"Resemblyzer's voice encoder could not be loaded: {exc}") from exc


def mel(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram of 16 kHz mono audio, loudness-normalised like resemblyzer's input."""
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    wav = wav.astype(np.float32)
    if wav.any():  # normalising digital silence would divide by zero
        wav = normalize_volume(wav, NORM_DBFS, increase_only=True)
    return wav_to_mel_spectrogram(wav)


def embed_windows(frames: np.ndarray, starts: list[int], threads: int) -> np.ndarray:
    """Unit embeddings (n, 256) of the WINDOW-frame windows starting at `starts` (zero-padded past the end)."""
    import torch

    end = max(starts) + WINDOW
    if end > len(frames):
        frames = np.pad(frames, ((0, end - len(frames)), (0, 0)))
    encoder = _encoder(threads)
    out = []
    with torch.inference_mode():
        for i in range(0, len(starts), BATCH):  # bounded memory for long recordings
            batch = np.stack([frames[s : s + WINDOW] for s in starts[i : i + BATCH]])
            out.append(encoder(torch.from_numpy(batch)).numpy())
    return np.concatenate(out)


def clip_starts(n_frames: int) -> list[int]:
    """Window starts covering a clip at resemblyzer's spacing; a short last window is dropped (unless alone)."""
    starts = list(range(0, max(1, n_frames - WINDOW + CLIP_HOP + 1), CLIP_HOP))
    if len(starts) > 1 and (n_frames - starts[-1]) / WINDOW < MIN_COVERAGE:
        starts.pop()
    return starts


def unit(vectors: np.ndarray) -> np.ndarray:
    """The normalised mean of unit vectors (a voice's direction)."""
    mean = np.asarray(vectors, dtype=np.float64).reshape(-1, np.shape(vectors)[-1]).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


@dataclass
class VoicePrint:
    """A clip's windows and their embeddings; the clip's embedding is their normalised mean."""

    frames: np.ndarray  # mel, kept to embed more windows when a change must be placed
    starts: list[int]
    windows: np.ndarray  # (len(starts), 256)

    @property
    def embedding(self) -> np.ndarray:
        return unit(self.windows)


def voiceprint(wav: np.ndarray, threads: int) -> VoicePrint:
    frames = mel(wav)
    starts = clip_starts(len(frames))
    return VoicePrint(frames, starts, embed_windows(frames, starts, threads))
