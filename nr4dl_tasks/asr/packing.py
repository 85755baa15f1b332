"""Short clips of one file packed into one Whisper window, and the window's words split back to its clips.

Whisper's encoder reads 30 s whatever the clip's length, so a 2 s clip costs as much to encode as 30 s of
audio. Consecutive clips of a file (in the same language) are therefore joined into windows of up to
`transcribe.pack_seconds`, with GAP_SECONDS of silence between them so that no word runs from one clip into
the next, decoded once and aligned once; each word then goes back to the clip whose span it overlaps most
(a word lying wholly in a gap to the nearer clip), with its times made relative to that clip. WhisperX does
the same with the speech regions its VAD finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nr4dl_tasks.asr.recognition import RATE

GAP_SECONDS = 0.5  # silence between two packed clips


@dataclass(frozen=True)
class Window:
    """Clips decoded together: their indices (in order) and where each starts and ends in the window, in s."""

    members: tuple[int, ...]
    starts: tuple[float, ...]
    ends: tuple[float, ...]


def plan(lengths: Sequence[int], keys: Sequence[object], seconds: float) -> list[Window]:
    """Consecutive clips (lengths in samples) grouped while they fit in `seconds`, gaps included; a clip whose
    key (its language) differs from the one before starts a new window. A clip longer than `seconds` stands
    alone."""
    windows: list[Window] = []
    members: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    for i, length in enumerate(lengths):
        duration = length / RATE
        start = ends[-1] + GAP_SECONDS if members else 0.0
        if members and (start + duration > seconds or keys[i] != keys[members[-1]]):
            windows.append(Window(tuple(members), tuple(starts), tuple(ends)))
            members, starts, ends, start = [], [], [], 0.0
        members.append(i)
        starts.append(start)
        ends.append(start + duration)
    if members:
        windows.append(Window(tuple(members), tuple(starts), tuple(ends)))
    return windows


def join(window: Window, samples: Sequence[np.ndarray]) -> np.ndarray:
    """The window's audio: its clips at their starts, silence between them."""
    out = np.zeros(round(window.ends[-1] * RATE), np.float32)
    for i, start in zip(window.members, window.starts, strict=True):
        at = round(start * RATE)
        clip = samples[i][: len(out) - at]
        out[at : at + len(clip)] = clip
    return out


def split(words: Sequence[dict[str, Any]], window: Window) -> list[list[dict[str, Any]]]:
    """The window's aligned words (faster-whisper's dicts: word, tokens, start, end, probability) per clip of
    the window, each word with its times relative to its clip and kept inside it."""
    out: list[list[dict[str, Any]]] = [[] for _ in window.members]
    spans = list(zip(window.starts, window.ends, strict=True))
    for word in words:
        start, end = float(word["start"]), float(word["end"])
        overlaps = [min(end, b) - max(start, a) for a, b in spans]
        best = int(np.argmax(overlaps))
        if overlaps[best] <= 0:  # wholly in a gap (or beyond the last clip): the nearer clip
            middle = (start + end) / 2
            best = int(np.argmin([max(a - middle, middle - b, 0.0) for a, b in spans]))
        a, b = spans[best]
        shifted = min(max(start, a), b) - a, min(max(end, a), b) - a
        out[best].append({**word, "start": shifted[0], "end": shifted[1]})
    return out
