"""Text as a TTS or ASR model should read it: one clean line, in the form it is spoken.

Korean gets its whole spoken form (text/korean.py: numbers read by their counter, dates, units, acronyms in
Hangul) and a pronunciation (the Hangul as pronounced); English gets numbers in words with grouping commas,
decimals, ordinals and years; other languages that num2words supports get whole numbers in words.
"""

from __future__ import annotations

import re


def sanitize_text(text: str) -> str:
    """One line of text safe for a '|'-separated file: '|' becomes a space, all whitespace runs one space."""
    return " ".join(text.replace("|", " ").split())


_EN_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(?!\w)")
_INTEGER = re.compile(r"(?<![\w.,])\d+(?!\w|[.,]\d)")


def _num2words_language(language: str) -> str | None:
    """num2words' code for a language tag ('en-US' -> 'en'), or None when it has no converter for it."""
    from num2words import CONVERTER_CLASSES

    base = language.split("-")[0].split("_")[0].lower()
    return base if base in CONVERTER_CLASSES else None


def _english_number(match: re.Match[str]) -> str:
    from num2words import num2words

    whole, fraction, suffix = match.group(1), match.group(2), match.group(3)
    value = int(whole.replace(",", ""))
    if fraction is not None:
        return num2words(f"{value}.{fraction}", lang="en") + (suffix or "")
    if suffix:
        return num2words(value, lang="en", to="ordinal")
    if "," not in whole and 1000 < value < 3000:  # spoken as a year, as the LJSpeech normaliser does
        return num2words(value, lang="en", to="year")
    return num2words(value, lang="en")


def is_korean(language: str) -> bool:
    return language.split("-")[0].split("_")[0].lower() == "ko"


def pronunciation(normalized: str, language: str) -> str:
    """The Hangul as pronounced of a Korean clip's spoken form; "" for other languages."""
    if not is_korean(language):
        return ""
    from nr4dl_tasks.text.korean import pronunciation as korean_pronunciation

    return sanitize_text(korean_pronunciation(normalized))


def normalize_numbers(text: str, language: str) -> str:
    """Text as spoken (LJSpeech's normalized_text), in the clip's language.

    Korean gets its whole spoken form: numbers read by their counter, Latin acronyms in Hangul.
    English gets grouping commas, decimals, ordinals (1st) and years (1984 -> nineteen eighty-four);
    other languages num2words supports get whole numbers only, since '1.500' or '1,5' mean different
    things in different languages. Digits stay where num2words has no converter for the language.
    """
    if is_korean(language):
        from nr4dl_tasks.text.korean import spoken_form

        return sanitize_text(spoken_form(text))
    lang = _num2words_language(language)
    if lang is None or not any(ch.isdigit() for ch in text):
        return text
    try:
        if lang == "en":
            return sanitize_text(_EN_NUMBER.sub(_english_number, text))
        from num2words import num2words

        return sanitize_text(_INTEGER.sub(lambda m: num2words(int(m.group(0)), lang=lang), text))
    except (NotImplementedError, OverflowError, ValueError, ArithmeticError):
        return text
