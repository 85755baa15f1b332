"""The first word's start and the last word's end moved to where the sound really begins and ends.

Whisper's cross-attention alignment places word boundaries some tenths of a second off, and it ends the last
word early: on an LJ Speech sentence its last word ended 0.3 s before the speech did. A clip cut there loses
the end of its last word. So the first word's start moves back to the end of the last 50 ms of quiet before it,
and the last word's end forward to the first 50 ms of quiet after it, by at most MAX_SHIFT seconds (a dip
inside a word, a stop's closure, is shorter). A 10 ms frame is quiet below a fifth of the way from the clip's
noise floor (its 10th percentile frame level, digital silence left out) to its speech level (the 95th), in dB,
so the rule holds in a quiet room and under steady noise alike.
"""

from __future__ import annotations

import numpy as np

from nr4dl_tasks.asr.recognition import RATE, Word

FRAME = RATE // 100  # 10 ms
MAX_SHIFT = 0.6  # seconds a boundary may move
QUIET_FRACTION = 0.2  # of the way from the noise floor to the speech level, in dB
DIGITAL_SILENCE_DB = -100.0
QUIET_RUN = 5  # frames: 50 ms of quiet ends the sound


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """dB level of each 10 ms frame."""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def snap_edges(words: list[Word], samples: np.ndarray) -> list[Word]:
    """`words` with the first start and the last end moved out to the nearest quiet frame."""
    levels = frame_levels(samples)
    if not words or len(levels) < 2:
        return words
    heard = levels[levels > DIGITAL_SILENCE_DB]  # zeros (padding, a muted stretch) are no noise floor
    if len(heard) < 2:
        return words
    floor, speech = np.percentile(heard, 10), np.percentile(heard, 95)
    below = levels < floor + QUIET_FRACTION * (speech - floor)
    # quiet[i]: frames i .. i + QUIET_RUN - 1 all below (a dip inside a word, a stop's closure, is no end)
    quiet = np.convolve(below, np.ones(QUIET_RUN), "full")[QUIET_RUN - 1 :] == QUIET_RUN
    quiet_before = np.convolve(below, np.ones(QUIET_RUN), "full")[: len(below)] == QUIET_RUN  # i-QUIET_RUN+1 .. i
    reach = int(MAX_SHIFT * 100)
    first = min(int(words[0].start * 100), len(levels) - 1)
    start = first
    while start > 0 and start > first - reach and not quiet_before[start]:
        start -= 1
    last = min(int(np.ceil(words[-1].end * 100)), len(levels) - 1)
    end = last
    while end < len(levels) - 1 and end < last + reach and not quiet[end]:
        end += 1
    head, tail = words[0], words[-1]
    words = list(words)
    words[0] = Word(head.word, round(min(head.start, start / 100), 3), head.end, head.confidence)
    words[-1] = Word(tail.word, words[-1].start, round(max(tail.end, end / 100), 3), tail.confidence)
    return words
