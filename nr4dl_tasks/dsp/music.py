"""Where music plays under speech, from ina's per-frame music posterior (`music.npy`, one value per 20 ms).

ina labels a frame by its louder class, so a host over a music bed is "speech".
Its speech/music/noise network still gives the frame a music posterior, and over
a stretch of speech the mean of it tells a bed from none: a tuning speaker's
clean and café-noise speech stayed at or below 0.01, the same speech over beds
10 dB down at 0.12-0.31 and 20 dB down at 0.01-0.12 (docs/music.md).
The same measure on the audio a clip is cut from (the vocals where separation
ran) is the clip's residual music, which the gate bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nr4dl_tasks.core.records import Segment

DECISION_S = 0.02  # ina's decision step: seconds per posterior
EDGE_S = 0.34  # half of ina's patch: a decision this close to a span's edge also sees what lies beyond it
SPEECH = ("male", "female", "speech")


def load(path: Path) -> np.ndarray:
    return np.load(path).astype(np.float32)


def score(music: np.ndarray, start: float, end: float) -> float:
    """Mean music posterior over [start, end) seconds, frames without energy left out (0 when there are none).

    A decision sees the 0.34 s on each side of its frame (ina's 68-frame patch), so the frames that close to the
    span's edges are left out where the span is long enough: speech that ends just before a jingle is not a bed."""
    if end - start > 2 * EDGE_S + 0.2:
        start, end = start + EDGE_S, end - EDGE_S
    frames = music[int(start / DECISION_S) : max(int(start / DECISION_S) + 1, int(round(end / DECISION_S)))]
    frames = frames[np.isfinite(frames)]
    return round(float(frames.mean()), 4) if len(frames) else 0.0


def bed_regions(segments: list[Segment], music: np.ndarray, threshold: float) -> list[tuple[Segment, float]]:
    """The speech segments whose music score reaches `threshold`, with their scores."""
    scored = [(seg, score(music, seg.start, seg.end)) for seg in segments if seg.label in SPEECH]
    return [(seg, value) for seg, value in scored if value >= threshold]


def block_spans(regions: list[Segment], rate: int, total: int, block: int, pad_s: float) -> list[tuple[int, int]]:
    """The sample ranges, on the separator's block grid, that cover every region widened by `pad_s`; touching
    blocks are joined into one range."""
    blocks = sorted(
        {
            index
            for seg in regions
            for index in range(
                int(max(0.0, seg.start - pad_s) * rate) // block, int(min(total, (seg.end + pad_s) * rate)) // block + 1
            )
        }
    )
    spans: list[tuple[int, int]] = []
    for index in blocks:
        a, b = index * block, min(total, (index + 1) * block)
        if a >= total:
            continue
        if spans and spans[-1][1] == a:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return spans


def covered(spans: list[tuple[float, float]], start: float, end: float) -> bool:
    """True when [start, end] seconds lies inside one of the (start, end) spans."""
    return any(a <= start + 1e-6 and end <= b + 1e-6 for a, b in spans)
