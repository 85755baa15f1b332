"""Short clips of one file packed into one Whisper window, and the window's words split back to its clips.

Whisper's encoder reads 30 s whatever the clip's length, so a 2 s clip costs as much to encode as 30 s of
audio. Consecutive clips of a file (in the same language) are therefore joined into windows of up to
`transcribe.pack_seconds`, with GAP_SECONDS of silence between them so that no word runs from one clip into
the next, decoded once and aligned once; each word then goes back to the clip whose span it overlaps most
(a word lying wholly in a gap to the nearer clip), with its times made relative to that clip. A word after a
gap is first cut to a plausible length (`longest_word`): the alignment stretches it back over the silence. A word
still running right across a gap marks the clips on both sides as doubtful (`split`); the recogniser decodes them
alone.
WhisperX packs the speech regions its VAD finds in the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nr4dl_tasks.asr.recognition import RATE

GAP_SECONDS = 0.5  # silence between two packed clips
# How far into both clips a word running across a gap reaches before the split is doubtful: the alignment
# moves word edges by a tenth of a second or two, and stretches a first word back over the silence before it
# (`whisper_local.as_words`). Set without data, at half a gap.
REACH = GAP_SECONDS / 2


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


def split(words: Sequence[dict[str, Any]], window: Window) -> tuple[list[list[dict[str, Any]]], set[int]]:
    """The window's aligned words (faster-whisper's dicts: word, tokens, start, end, probability) per clip of
    the window, each word with its times relative to its clip and kept inside it; and the clips (positions in
    the window) on either side of a word that runs right across the silence between them, REACH into both.
    No word does that where the decoder heard every clip: the alignment stretches a word over a clip whose
    speech the decoder skipped (an English clip among Korean ones got the next clip's first word), so these
    clips are not to be trusted."""
    out: list[list[dict[str, Any]]] = [[] for _ in window.members]
    doubtful: set[int] = set()
    spans = list(zip(window.starts, window.ends, strict=True))
    longest = longest_word(words)
    for word in words:
        start, end = float(word["start"]), float(word["end"])
        if longest is not None and end - start > longest and any(start < b < end for _, b in spans[:-1]):
            start = end - longest  # stretched back over the silence before it, cut as after any pause
        overlaps = [min(end, b) - max(start, a) for a, b in spans]
        best = int(np.argmax(overlaps))
        if overlaps[best] <= 0:  # wholly in a gap (or beyond the last clip): the nearer clip
            middle = (start + end) / 2
            best = int(np.argmin([max(a - middle, middle - b, 0.0) for a, b in spans]))
        a, b = spans[best]
        out[best].append({**word, "start": min(max(start, a), b) - a, "end": min(max(end, a), b) - a})
        for k in range(len(spans) - 1):
            if start < spans[k][1] - REACH and end > spans[k + 1][0] + REACH:
                doubtful |= {k, k + 1}
    return out, doubtful


def longest_word(words: Sequence[dict[str, Any]]) -> float | None:
    """faster-whisper's longest plausible word: twice the median word, at most 1.4 s (None without words). The
    alignment stretches the first word after a pause back over the silence; such a word is cut to this."""
    lengths = [w["end"] - w["start"] for w in words if w["end"] > w["start"]]
    return 2 * min(0.7, float(np.median(lengths))) if lengths else None
