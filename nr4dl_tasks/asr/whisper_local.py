"""Offline speech recognition with Whisper through faster-whisper (CTranslate2), int8 on CPU.

Whisper's encoder always reads 30 s of audio, so a 5 s clip costs as much to
encode as a 30 s one. Clips of one file are therefore recognised in batches: one
encoder pass for the batch, one language detection on that encoder output (each
clip's own detection is recorded, its five likeliest languages, also when the
language is forced), one beam search for the batch, one word alignment (Whisper's
cross-attention, as faster-whisper's `word_timestamps`, the outer edges moved to
where the sound begins and ends: `asr/edges.py`). faster-whisper's
`transcribe()` does the same per clip and runs the encoder twice when it
detects the language. Clips longer than 30 s, which `slice.max_duration` keeps
rare, go through `transcribe()` as long-form audio.

With `transcribe.pack_seconds`, consecutive clips (of one language) share a
window instead (`asr/packing.py`): one encoder pass, detection, decoding and
alignment for up to 30 s of clips, the words split back to them. A packed clip
that comes back empty, fails the checks or whose split is doubtful is decoded
alone, as above.

Each clip is decoded in the language the caller names (the transcribe stage
decides one per file, `asr/language.py`), else the forced one, else its own
detection. With a known language, a clip failing the hallucination checks
(`asr/checks.py`) is decoded again (`_recover`): a wider beam, then Whisper's
temperature fallback, each attempt recorded. A language may have its own beam
width and initial prompt (`transcribe.by_language`: Korean is decoded with
beam 5 by default, bench/korean_asr.py). Sampling is seeded from the clip's
id, so a rerun gives the same text.

The model is loaded once per process and kept (`_load`), keyed on the model
and its settings. `base` is the copy scripts/setup.sh provisions; other names
go through faster-whisper's normal download.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.asr import packing
from nr4dl_tasks.asr.checks import recovery_reasons
from nr4dl_tasks.asr.edges import snap_edges
from nr4dl_tasks.asr.recognition import RATE, AudioClip, Transcript, Word
from nr4dl_tasks.core import models, resources
from nr4dl_tasks.core.errors import ModelError, SettingsError
from nr4dl_tasks.core.settings import GateSettings, Settings, TranscribeSettings
from nr4dl_tasks.core.workdir import text_sha256

log = logging.getLogger("nr4dl")

WINDOW_SECONDS = 30.0
WINDOW_FRAMES = 3000  # mel frames of one 30 s encoder window
PROVISIONED = "base"
HOP = 160  # samples per mel frame
DETECTED_TOP = 5  # languages recorded per clip's own detection
SAMPLES = 5  # sampled decodings per fallback temperature (Whisper's best_of)
PREPEND_PUNCTUATIONS = "\"'“¿([{-"  # faster-whisper's defaults
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


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
        self.gates: GateSettings = settings.gates
        self.model_name = self.cfg.model
        download_root = str(settings.resolve(settings.paths.models_dir) / "whisper-hub")
        self.model = _load(model_location(settings), self.cfg.compute_type, resources.threads(settings), download_root)
        self.forced = self.cfg.language.split("-")[0] if self.cfg.language else None
        if self.forced and self.forced not in self.model.supported_languages:
            raise SettingsError(f"transcribe.language {self.cfg.language!r}: Whisper knows no language {self.forced!r}")

    def transcribe(self, clips: Sequence[AudioClip], languages: Sequence[str] | None = None) -> list[Transcript]:
        """One transcript per clip, decoded in `languages` (one per clip), else the forced language, else the
        clip's own detection (its window's, where clips are packed); failing clips are decoded again only where
        the language is known (named or forced): a clip decoded in a guessed language may be decoded again in
        its file's anyway."""
        samples = [clip.samples() for clip in clips]
        wanted: list[str | None] = list(languages) if languages is not None else [self.forced] * len(clips)
        recover = self.cfg.recover and (languages is not None or self.forced is not None)
        out: list[Transcript | None] = [None] * len(clips)
        short = [i for i, s in enumerate(samples) if len(s) <= WINDOW_SECONDS * RATE]
        windows = packing.plan([len(samples[i]) for i in short], [wanted[i] for i in short], self._pack_seconds)
        alone = [short[w.members[0]] for w in windows if len(w.members) == 1]
        packed = [
            packing.Window(tuple(short[m] for m in w.members), w.starts, w.ends) for w in windows if len(w.members) > 1
        ]
        unpacked: dict[int, list[str]] = {}  # clip -> why its packed decoding was not kept
        for start in range(0, len(packed), self.cfg.batch_size):
            for i, (transcript, doubtful) in self._packed(
                packed[start : start + self.cfg.batch_size], samples, wanted
            ).items():
                failed = [f.split(":")[0] for f in self.failures(transcript, len(samples[i]) / RATE)]
                failed += ["empty"] * (not transcript.text) + ["word_across_gap"] * doubtful
                if failed:  # the packed decoding lost the clip, went astray there or split it uncertainly
                    unpacked[i] = failed
                else:
                    out[i] = transcript
        self._alone(sorted(alone + list(unpacked)), samples, wanted, clips, out)
        for i, reasons in unpacked.items():
            alone_again = out[i]
            assert alone_again is not None
            alone_again.details["unpacked"] = reasons
        for i in sorted(set(range(len(clips))) - set(short)):
            out[i] = self._long(samples[i], wanted[i], recover)
        if recover:
            for i in short:
                first = out[i]
                assert first is not None
                out[i] = self._recover(samples[i], clips[i].id, first)
        return [t for t in out if t is not None]

    @property
    def _pack_seconds(self) -> float:
        """The window length clips are packed into: one clip per window when packing is off."""
        return self.cfg.pack_seconds or 0.0

    def _alone(
        self,
        indices: list[int],
        samples: list[np.ndarray],
        wanted: list[str | None],
        clips: Sequence[AudioClip],
        out: list[Transcript | None],
    ) -> None:
        """Each clip of `indices` decoded in a window of its own, in batches."""
        for start in range(0, len(indices), self.cfg.batch_size):
            batch = indices[start : start + self.cfg.batch_size]
            done = self._batch([samples[i] for i in batch], [wanted[i] for i in batch], [clips[i].id for i in batch])
            for i, transcript in zip(batch, done, strict=True):
                out[i] = transcript

    def _tokenizer(self, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=language
        )

    def _batch(self, samples: list[np.ndarray], wanted: list[str | None], ids: list[str]) -> list[Transcript]:
        """One encoder pass, one language detection, one beam search and one word alignment for clips of at most
        30 s."""
        encoded = self._encode(samples)
        detections = self._detections(encoded, len(samples))
        languages = [lang or _top(found) for lang, found in zip(wanted, detections, strict=True)]
        decoded, beams = self._decode_each(encoded, languages)
        transcripts = [
            self._transcript(result, lang, found, {"beam_size": beam, "temperature": 0.0})
            for result, lang, found, beam in zip(decoded, languages, detections, beams, strict=True)
        ]
        self._align(encoded, samples, languages, decoded, transcripts)
        return transcripts

    def _encode(self, samples: list[np.ndarray]) -> Any:
        return self.model.encode(np.stack([self._features(s) for s in samples]))

    def _decode_each(self, encoded: Any, languages: list[str]) -> tuple[list[_Decoded], list[int]]:
        """Each row decoded with its language's beam width: one beam search per width (a language may have its own).
        Returns the hypotheses and the widths."""
        beams = [self._beam(lang) for lang in languages]
        decoded: list[_Decoded] = [_Decoded([], 0.0, 0.0)] * len(languages)
        for beam in sorted(set(beams)):
            members = [i for i, b in enumerate(beams) if b == beam]
            part = encoded if len(members) == len(languages) else _rows(encoded, members)
            for i, result in zip(members, self._decode(part, [languages[i] for i in members], beam), strict=True):
                decoded[i] = result
        return decoded, beams

    def _decode(self, encoded: Any, languages: list[str], beam_size: int, temperature: float = 0.0) -> list[_Decoded]:
        """The best hypothesis per clip: beam search at temperature 0, else the likeliest of five samples."""
        from faster_whisper.transcribe import get_suppressed_tokens

        tokenizers = {lang: self._tokenizer(lang) for lang in languages}
        prompts = [
            self.model.get_prompt(tokenizers[lang], self._previous(tokenizers[lang], lang), without_timestamps=True)
            for lang in languages
        ]
        sampling = temperature > 0
        results = self.model.model.generate(
            encoded,
            prompts,
            beam_size=1 if sampling else beam_size,
            num_hypotheses=SAMPLES if sampling else 1,
            sampling_topk=0 if sampling else 1,
            sampling_temperature=temperature if sampling else 1.0,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(next(iter(tokenizers.values())), [-1]),
        )
        best = []
        for lang, result in zip(languages, results, strict=True):
            tokenizer = tokenizers[lang]
            hypotheses = []
            for sequence, score in zip(result.sequences_ids, result.scores, strict=True):
                tokens = [t for t in sequence if t < tokenizer.eot]
                # CTranslate2's score is the summed log-probability divided by length (length_penalty 1);
                # like faster-whisper, average over the tokens plus the end-of-text token.
                hypotheses.append(_Decoded(tokens, score * len(tokens) / (len(tokens) + 1), result.no_speech_prob))
            best.append(max(hypotheses, key=lambda h: h.avg_logprob))
        return best

    def _beam(self, language: str) -> int:
        """The beam width for clips decoded in `language` (`transcribe.by_language`, else `beam_size`)."""
        own = self.cfg.by_language.get(language)
        return own.beam_size if own and own.beam_size else self.cfg.beam_size

    def _prompt(self, language: str) -> str | None:
        """The language's initial prompt (`transcribe.by_language`), or None."""
        own = self.cfg.by_language.get(language)
        return (own.prompt or "").strip() or None if own else None

    def _previous(self, tokenizer: Any, language: str) -> list[int]:
        """The language's initial prompt as tokens of Whisper's previous text."""
        prompt = self._prompt(language)
        return tokenizer.encode(" " + prompt) if prompt else []

    def _transcript(
        self, decoded: _Decoded, language: str, detection: dict[str, float], attempt: dict[str, Any]
    ) -> Transcript:
        return Transcript(
            text=self._tokenizer(language).decode(decoded.tokens).strip(),
            language=language,
            language_probability=detection.get(language, 0.0),
            confidence=math.exp(decoded.avg_logprob) if decoded.tokens else None,
            details={
                "avg_logprob": round(decoded.avg_logprob, 4),
                "no_speech_prob": round(decoded.no_speech_prob, 4),
                "model": self.model_name,
                "detected": detection,
                **attempt,
            },
            tokens=decoded.tokens,
        )

    def _features(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel features padded with silence to one 30 s window, as Whisper was trained."""
        mel = self.model.feature_extractor(samples)[:, :WINDOW_FRAMES]
        return np.pad(mel, ((0, 0), (0, WINDOW_FRAMES - mel.shape[1])))

    def _detections(self, encoded: Any, count: int) -> list[dict[str, float]]:
        """Each clip's own detection: its likeliest languages and their probabilities."""
        if not self.model.model.is_multilingual:
            return [{"en": 1.0}] * count
        found = []
        for ranked in self.model.model.detect_language(encoded):
            found.append({token[2:-2]: round(float(p), 4) for token, p in ranked[:DETECTED_TOP]})  # '<|en|>' -> 'en'
        return found

    def failures(self, transcript: Transcript, duration: float) -> list[str]:
        return recovery_reasons(
            transcript.text, duration, transcript.details, self.gates, self.cfg.recover_below_logprob
        )

    def _recover(self, samples: np.ndarray, clip_id: str, first: Transcript) -> Transcript:
        """`first`, or where it fails the checks the first later decoding that passes them (a wider beam, then
        each fallback temperature), else the attempt failing fewest checks; every attempt is recorded."""
        import ctranslate2

        duration = len(samples) / RATE
        failed = self.failures(first, duration)
        if not failed:
            return first
        reasons = [f.split(":")[0] for f in failed]
        attempts = [{"beam_size": first.details["beam_size"], "temperature": 0.0, "failed": reasons}]
        tried = [(len(failed), first)]
        encoded = self._encode([samples])
        language, detection = str(first.language), first.details["detected"]
        ctranslate2.set_random_seed(int(text_sha256(clip_id)[:8], 16))
        wider = [(self.cfg.recover_beam_size, 0.0)] if self.cfg.recover_beam_size > first.details["beam_size"] else []
        plan = wider + [(1, t) for t in self.cfg.recover_temperatures]
        for beam, temperature in plan:
            (decoded,) = self._decode(encoded, [language], beam_size=beam, temperature=temperature)
            transcript = self._transcript(decoded, language, detection, {"beam_size": beam, "temperature": temperature})
            failed = self.failures(transcript, duration)
            attempts.append(
                {"beam_size": beam, "temperature": temperature, "failed": [f.split(":")[0] for f in failed]}
            )
            tried.append((len(failed), transcript))
            if not failed:
                break
        best = min(tried, key=lambda entry: (entry[0], -entry[1].details["avg_logprob"]))[1]
        self._align(encoded, [samples], [language], [_Decoded(best.tokens or [], 0.0, 0.0)], [best])
        best.details["attempts"] = attempts
        return best

    def _align(
        self,
        encoded: Any,
        samples: list[np.ndarray],
        languages: list[str],
        decoded: list[_Decoded],
        transcripts: list[Transcript],
    ) -> None:
        """Each transcript's words, where word timings are on."""
        if not self.cfg.word_timestamps:
            return
        for i, alignment in enumerate(self._alignments(encoded, samples, languages, decoded)):
            if alignment is not None:
                transcripts[i].words = snap_edges(words_of(alignment), samples[i])

    def _alignments(
        self, encoded: Any, samples: list[np.ndarray], languages: list[str], decoded: list[_Decoded]
    ) -> list[list[dict[str, Any]] | None]:
        """faster-whisper's word alignment (Whisper's cross-attention over the encoder output and the text) of
        each decoded text, per language in the batch; None for an empty text."""

        out: list[list[dict[str, Any]] | None] = [None] * len(samples)
        for language in sorted(set(languages)):
            members = [i for i, lang in enumerate(languages) if lang == language and decoded[i].tokens]
            if not members:
                continue
            part = encoded if len(members) == len(samples) else _rows(encoded, members)
            frames = [min(WINDOW_FRAMES, len(samples[i]) // HOP) for i in members]
            tokenizer = self._tokenizer(language)
            found = self.model.find_alignment(tokenizer, [decoded[i].tokens for i in members], part, frames)
            for i, alignment in zip(members, found, strict=True):
                out[i] = alignment
        return out

    def _packed(
        self, windows: list[packing.Window], samples: list[np.ndarray], wanted: list[str | None]
    ) -> dict[int, tuple[Transcript, bool]]:
        """The clips of each window (one language each, `packing.plan`) decoded together: one encoder pass, one
        language detection (recorded for each of its clips), one decoding and one word alignment per window,
        the words then split back to the clips (`packing.split`). A packed clip's mean log-probability is
        estimated from its words' probabilities in the alignment (each word's mean token probability, weighted
        by its tokens); the window's own figures and its no-speech probability, which says nothing about one of
        its clips, are recorded under `packed`. With each transcript: whether a word ran across the gap beside
        the clip (`packing.split`), which makes its split doubtful."""
        from faster_whisper.transcribe import merge_punctuations

        audio = [packing.join(window, samples) for window in windows]
        encoded = self._encode(audio)
        detections = self._detections(encoded, len(windows))
        languages = [wanted[w.members[0]] or _top(found) for w, found in zip(windows, detections, strict=True)]
        decoded, beams = self._decode_each(encoded, languages)
        out = {}
        alignments = self._alignments(encoded, audio, languages, decoded)
        for window, language, found, result, alignment, beam in zip(
            windows, languages, detections, decoded, alignments, beams, strict=True
        ):
            merge_punctuations(alignment or [], PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
            words = [w for w in alignment or [] if w["word"].strip()]
            window_figures = {
                "clips": len(window.members),
                "window_avg_logprob": round(result.avg_logprob, 4),
                "window_no_speech_prob": round(result.no_speech_prob, 4),
            }
            split, doubtful = packing.split(words, window)
            for position, (i, own) in enumerate(zip(window.members, split, strict=True)):
                tokens = [t for w in own for t in w["tokens"]]
                logprob = (
                    sum(len(w["tokens"]) * math.log(max(float(w["probability"]), 1e-9)) for w in own) / len(tokens)
                    if tokens
                    else 0.0
                )
                transcript = self._transcript(
                    _Decoded(tokens, logprob, 0.0),
                    language,
                    found,
                    {"beam_size": beam, "temperature": 0.0, "packed": window_figures},
                )
                del transcript.details["no_speech_prob"]
                if self.cfg.word_timestamps:
                    transcript.words = snap_edges(as_words(own), samples[i])
                out[i] = transcript, position in doubtful
        return out

    def _long(self, samples: np.ndarray, wanted: str | None, recover: bool) -> Transcript:
        """A clip over 30 s, as long-form audio: the language from its first 30 s, temperature 0, and with
        `recover` Whisper's own temperature fallback (seeded by faster-whisper, so a rerun agrees)."""
        _, _, ranked = self.model.detect_language(samples)
        detection = {lang: round(float(p), 4) for lang, p in ranked[:DETECTED_TOP]}
        language = wanted or _top(detection)
        segments, _ = self.model.transcribe(
            samples,
            language=language,
            beam_size=self._beam(language),
            temperature=[0.0, *self.cfg.recover_temperatures] if recover else 0.0,
            log_prob_threshold=self.cfg.recover_below_logprob,
            condition_on_previous_text=False,
            initial_prompt=self._prompt(language),
            vad_filter=False,
            word_timestamps=self.cfg.word_timestamps,
        )
        segments = list(segments)
        tokens = sum(len(s.tokens) for s in segments)
        avg_logprob = sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens if tokens else None
        words = [Word(w.word.strip(), w.start, w.end, round(w.probability, 4)) for s in segments for w in s.words or []]
        return Transcript(
            text=" ".join(s.text.strip() for s in segments).strip(),
            language=language,
            language_probability=float(dict(ranked).get(language, 0.0)),
            confidence=math.exp(avg_logprob) if avg_logprob is not None else None,
            words=snap_edges(words, samples) if self.cfg.word_timestamps else None,
            details={
                "avg_logprob": None if avg_logprob is None else round(avg_logprob, 4),
                "model": self.model_name,
                "detected": detection,
                "long_form": True,
            },
        )


@dataclass(frozen=True)
class _Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float


def _rows(encoded: Any, members: list[int]) -> Any:
    """The encoder output of the batch members `members`, as CTranslate2 takes it."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[members]))


def _top(detection: dict[str, float]) -> str:
    return max(sorted(detection), key=detection.__getitem__)


def words_of(alignment: list[dict[str, Any]]) -> list[Word]:
    """faster-whisper's word alignment as Words, punctuation merged into its word (`as_words`)."""
    from faster_whisper.transcribe import merge_punctuations

    merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
    return as_words([w for w in alignment if w["word"].strip()])


def as_words(words: list[dict[str, Any]]) -> list[Word]:
    """Aligned words as Words, and (as faster-whisper does after a pause) a first word longer than twice the
    median word (at most 1.4 s) cut to that length: the alignment stretches it over the silence before it.
    The last word is left as it is: the alignment ends it early, not late (`asr/edges.py` moves both edges to
    the sound)."""
    words = [dict(w) for w in words]
    if not words:
        return []
    longest = packing.longest_word(words)
    if longest is not None:
        words[0]["start"] = max(words[0]["start"], words[0]["end"] - longest)
    return [
        Word(
            w["word"].strip(), round(float(w["start"]), 3), round(float(w["end"]), 3), round(float(w["probability"]), 4)
        )
        for w in words
    ]
