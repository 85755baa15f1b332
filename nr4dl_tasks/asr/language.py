"""One language decision per file, from the language detections of all its clips.

Whisper's detection on a 2 s noisy clip is a coin toss (one noisy English utterance was read as Welsh and
decoded into a loop), while a 40-minute programme is in one language. So the file's language is the one with
the most evidence over its clips: each clip's detected probabilities, weighted by its duration (a longer clip
carries more speech to judge by). A clip's probabilities are its confidence, so an unsure clip counts little.

A clip whose own detection names another language with at least `other_language_probability` is not decoded
in the file's language: it is marked `other_language` (code-switching, a guest) and decoded in its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


def file_language(detections: Iterable[tuple[Mapping[str, float], float]]) -> str | None:
    """The language with the most duration-weighted probability over (probabilities, seconds) per clip; None
    when no clip has a detection."""
    evidence: defaultdict[str, float] = defaultdict(float)
    for probabilities, seconds in detections:
        for language, probability in probabilities.items():
            evidence[language] += probability * max(seconds, 0.0)
    return max(sorted(evidence), key=evidence.__getitem__) if evidence else None


def other_language(probabilities: Mapping[str, float], file_lang: str, threshold: float | None) -> str | None:
    """The clip's own language where its detection confidently names another one than the file's, else None."""
    if threshold is None or not probabilities:
        return None
    top = max(sorted(probabilities), key=probabilities.__getitem__)
    return top if top != file_lang and probabilities[top] >= threshold else None
