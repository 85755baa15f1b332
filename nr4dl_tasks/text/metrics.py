"""Text measures shared by the quality gates, the tests and the benchmark.

Word error rates are computed after Whisper's own text normalisers (the ones
its paper reports with): a reference "fifteenth" and a hypothesis "15th", or
"Mr." and "mister", are not recognition errors. English gets the English
normaliser (numbers, spellings, contractions); other languages the basic one
(case, punctuation, diacritics).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence


@functools.cache
def _normaliser(language: str) -> Callable[[str], str]:
    if language.split("-")[0] == "en":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize_for_wer(text: str, language: str = "en") -> str:
    return " ".join(_normaliser(language)(text).split())


def wer(references: Sequence[str], hypotheses: Sequence[str], language: str = "en") -> float:
    """Corpus word error rate of hypotheses against references, both normalised."""
    import jiwer

    return float(
        jiwer.wer(
            [normalize_for_wer(t, language) for t in references], [normalize_for_wer(t, language) for t in hypotheses]
        )
    )


def letter_count(text: str) -> int:
    """Letters and digits: what characters-per-second counts (spaces and punctuation are not spoken)."""
    return sum(ch.isalnum() for ch in text)


def compression_ratio(text: str) -> float:
    """UTF-8 length over zlib-compressed length; Whisper's repetition loops score above 2.4."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
