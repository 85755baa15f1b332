"""Offline speech recognition with Whisper through faster-whisper (CTranslate2), int8 on CPU.

Whisper's encoder always reads 30 s of audio, so a 5 s clip costs as much to
encode as a 30 s one. Clips of one file are therefore recognised in batches: one
encoder pass for the batch, one language detection on that encoder output (each
clip gets its own language and probability, also when the language is forced:
then it is the probability of the forced language, which the gate uses to catch
clips in another language), one beam search for the batch. faster-whisper's
`transcribe()` does the same per clip and runs the encoder twice when it
detects the language. Clips longer than 30 s, which `slice.max_duration` keeps
rare, go through `transcribe()` as long-form audio.

No temperature fallback is tried: a repetition loop or a hallucination on
noise is caught by the gate stage (compression ratio, characters per second).

The model is loaded once per process and kept (`_load`), keyed on the model
and its settings. `base` is the copy scripts/setup.sh provisions; other names
go through faster-whisper's normal download.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.asr.recognition import RATE, AudioClip, Transcript
from nr4dl_tasks.core import models, resources
from nr4dl_tasks.core.errors import ModelError, SettingsError
from nr4dl_tasks.core.settings import Settings, TranscribeSettings

log = logging.getLogger("nr4dl")

WINDOW_SECONDS = 30.0
WINDOW_FRAMES = 3000  # mel frames of one 30 s encoder window
PROVISIONED = "base"


def model_location(settings: Settings) -> str:
    """The model folder (the provisioned base, after its checksum check) or a name faster-whisper downloads."""
    name = settings.transcribe.model
    if name == PROVISIONED:
        models_dir = settings.resolve(settings.paths.models_dir)
        models.check(models_dir, models.WHISPER_BASE_PACKAGE.files)
        return str(models_dir / models.WHISPER_BASE_DIR)
    folder = settings.resolve(Path(name))
    if folder.is_dir():
        if not (folder / "model.bin").is_file():
            raise SettingsError(f"transcribe.model {folder} holds no CTranslate2 model (model.bin is missing)")
        return str(folder)
    if name.startswith(("/", "./", "../", "~")):
        raise SettingsError(f"transcribe.model {folder} does not exist")
    return name  # a size name ('small') or a Hugging Face repo id ('Systran/faster-whisper-small')


@functools.cache
def _load(location: str, compute_type: str, threads: int, download_root: str) -> Any:
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(
            location, device="cpu", compute_type=compute_type, cpu_threads=threads, download_root=download_root
        )
    except Exception as exc:  # a failed download or a damaged folder: say which model and why
        raise ModelError(
            f"Whisper model {location!r} could not be loaded ({type(exc).__name__}: {exc}); without "
            f"internet use transcribe.model 'base', which scripts/setup.sh provisions"
        ) from None


class LocalWhisper:
    """The `Recognizer` for faster-whisper."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.cfg: TranscribeSettings = settings.transcribe
        self.model_name = self.cfg.model
        download_root = str(settings.resolve(settings.paths.models_dir) / "whisper-hub")
        self.model = _load(model_location(settings), self.cfg.compute_type, resources.threads(settings), download_root)
        self.forced = self.cfg.language.split("-")[0] if self.cfg.language else None
        if self.forced and self.forced not in self.model.supported_languages:
            raise SettingsError(f"transcribe.language {self.cfg.language!r}: Whisper knows no language {self.forced!r}")

    def transcribe(self, clips: Sequence[AudioClip]) -> list[Transcript]:
        samples = [clip.samples() for clip in clips]
        out: list[Transcript | None] = [None] * len(clips)
        short = [i for i, s in enumerate(samples) if len(s) <= WINDOW_SECONDS * RATE]
        for start in range(0, len(short), self.cfg.batch_size):
            batch = short[start : start + self.cfg.batch_size]
            for i, transcript in zip(batch, self._batch([samples[i] for i in batch]), strict=True):
                out[i] = transcript
        for i in sorted(set(range(len(clips))) - set(short)):
            out[i] = self._long(samples[i])
        return [t for t in out if t is not None]

    def _tokenizer(self, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=language
        )

    def _batch(self, samples: list[np.ndarray]) -> list[Transcript]:
        """One encoder pass, one language detection and one beam search for clips of at most 30 s."""
        from faster_whisper.transcribe import get_suppressed_tokens

        features = np.stack([self._features(s) for s in samples])
        encoded = self.model.encode(features)
        languages = self._languages(encoded, len(samples))
        tokenizers = {lang: self._tokenizer(lang) for lang, _ in languages}
        prompts = [self.model.get_prompt(tokenizers[lang], [], without_timestamps=True) for lang, _ in languages]
        suppress = get_suppressed_tokens(next(iter(tokenizers.values())), [-1])
        results = self.model.model.generate(
            encoded,
            prompts,
            beam_size=self.cfg.beam_size,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
        )
        transcripts = []
        for (lang, probability), result in zip(languages, results, strict=True):
            tokenizer = tokenizers[lang]
            tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            # CTranslate2's score is the summed log-probability divided by length (length_penalty 1);
            # like faster-whisper, average over the tokens plus the end-of-text token.
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            transcripts.append(
                Transcript(
                    text=tokenizer.decode(tokens).strip(),
                    language=lang,
                    language_probability=probability,
                    confidence=math.exp(avg_logprob) if tokens else None,
                    details={
                        "avg_logprob": round(avg_logprob, 4),
                        "no_speech_prob": round(result.no_speech_prob, 4),
                        "model": self.model_name,
                    },
                )
            )
        return transcripts

    def _features(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel features padded with silence to one 30 s window, as Whisper was trained."""
        mel = self.model.feature_extractor(samples)[:, :WINDOW_FRAMES]
        return np.pad(mel, ((0, 0), (0, WINDOW_FRAMES - mel.shape[1])))

    def _languages(self, encoded: Any, count: int) -> list[tuple[str, float]]:
        """(language, probability) per clip: the most likely language, or the forced one with its probability."""
        if not self.model.model.is_multilingual:
            return [("en", 1.0)] * count
        found = []
        for ranked in self.model.model.detect_language(encoded):
            probabilities = {token[2:-2]: p for token, p in ranked}  # '<|en|>' -> 'en'
            language = self.forced or max(probabilities, key=probabilities.__getitem__)
            found.append((language, float(probabilities.get(language, 0.0))))
        return found

    def _long(self, samples: np.ndarray) -> Transcript:
        """A clip over 30 s, as long-form audio: the language from its first 30 s, and temperature 0 (no
        sampling), so a rerun gives the same text."""
        detected, _, ranked = self.model.detect_language(samples)
        language = self.forced or detected
        segments, _ = self.model.transcribe(
            samples,
            language=language,
            beam_size=self.cfg.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        segments = list(segments)
        tokens = sum(len(s.tokens) for s in segments)
        avg_logprob = sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens if tokens else None
        return Transcript(
            text=" ".join(s.text.strip() for s in segments).strip(),
            language=language,
            language_probability=float(dict(ranked).get(language, 0.0)),
            confidence=math.exp(avg_logprob) if avg_logprob is not None else None,
            details={
                "avg_logprob": None if avg_logprob is None else round(avg_logprob, 4),
                "model": self.model_name,
                "long_form": True,
            },
        )
