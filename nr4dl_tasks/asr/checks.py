"""The hallucination checks on one recognised text, shared by the transcribe stage (which decodes a failing clip
again before giving up on it) and the gate stage (which drops what still fails).

Each check is one of Whisper's own signs that the decoder went astray:

* no speech: Whisper's rule, no-speech probability above `gates.max_no_speech_prob` and a mean token
  log-probability below -1 (a short sentence made up on noise);
* characters per second outside [`gates.min_cps`, `gates.max_cps`] (a sentence made up on a noise burst is
  far too fast, skipped speech far too slow);
* compression ratio above `gates.max_compression_ratio` (zlib: long repetition loops);
* a repetition loop: the same piece of text, 2 to 30 characters, four or more times in a row
  (`gates.max_repeats`). A short loop ("i'n ysgwch i'n ysgwch ...") compresses too little for the ratio
  to catch it.

The mean log-probability alone (`transcribe.recover_below_logprob`, Whisper's -1) sends a clip to be decoded
again but drops nothing: a noisy clip can be recognised right at a low probability.
"""

from __future__ import annotations

import re
from typing import Any

from nr4dl_tasks.core.settings import GateSettings
from nr4dl_tasks.text.metrics import compression_ratio, letter_count

NO_SPEECH_LOGPROB = -1.0  # Whisper's rule: no speech when also the text's mean log-probability is below this


def longest_repeat(text: str) -> int:
    """How many times in a row the most repeated piece of 2-30 characters follows itself (1: none), spaces and
    case ignored so that "thank you thank you" counts as "thankyou" twice."""
    squeezed = re.sub(r"[\W_]+", "", text.lower())
    best = 1
    for match in re.finditer(r"(.{2,30}?)\1+", squeezed):
        best = max(best, len(match.group(0)) // len(match.group(1)))
    return best


def hallucinations(text: str, duration: float, asr: dict[str, Any] | None, cfg: GateSettings) -> list[str]:
    """The reasons this text looks made up, each '<check>: <why>'; empty when it passes. An empty text passes:
    there is nothing to judge (the gate's empty-text check drops it)."""
    letters = letter_count(text)
    if letters == 0:
        return []
    failed = []
    asr = asr or {}
    no_speech, logprob = asr.get("no_speech_prob"), asr.get("avg_logprob")
    if (
        cfg.max_no_speech_prob is not None
        and no_speech is not None
        and logprob is not None
        and no_speech > cfg.max_no_speech_prob
        and logprob < NO_SPEECH_LOGPROB
    ):
        failed.append(
            f"no_speech: Whisper's no-speech probability {no_speech:.2f} with mean log-probability "
            f"{logprob:.2f} (text made up on noise)"
        )
    cps = letters / duration if duration > 0 else 0.0
    if not cfg.min_cps <= cps <= cfg.max_cps:
        failed.append(f"cps: {cps:.1f} characters/s outside [{cfg.min_cps}, {cfg.max_cps}]")
    ratio = compression_ratio(text)
    if cfg.max_compression_ratio is not None and ratio > cfg.max_compression_ratio:
        failed.append(f"compression_ratio: {ratio:.2f} above {cfg.max_compression_ratio} (repeated text)")
    repeats = longest_repeat(text)
    if cfg.max_repeats is not None and repeats > cfg.max_repeats:
        failed.append(f"repetition: a piece of the text {repeats} times in a row (above {cfg.max_repeats})")
    return failed


def recovery_reasons(
    text: str, duration: float, asr: dict[str, Any] | None, cfg: GateSettings, logprob_floor: float | None
) -> list[str]:
    """Why a clip should be decoded again: the hallucination checks, and a mean log-probability below the floor."""
    failed = hallucinations(text, duration, asr, cfg)
    logprob = (asr or {}).get("avg_logprob")
    if logprob_floor is not None and logprob is not None and text and logprob < logprob_floor:
        failed.append(f"avg_logprob: {logprob:.2f} below {logprob_floor}")
    return failed
