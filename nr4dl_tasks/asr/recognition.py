"""What every speech recogniser returns, and the interface the transcribe stage calls.

Two backends implement `Recognizer`: `whisper_local.LocalWhisper` (faster-whisper,
offline, the default) and `azure_speech.AzureRecognizer` (Azure AI Speech). The
stage hands a recogniser the clips of one file at once, so a backend can batch
them; it gets one `Transcript` back per clip, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from nr4dl_tasks.core.errors import MediaError
from nr4dl_tasks.dsp.audio import mono, resample

RATE = 16000  # both backends recognise 16 kHz mono


@dataclass(frozen=True)
class AudioClip:
    """One clip to recognise: its id and WAV file; samples are read only when a backend asks (lhotse style)."""

    id: str
    path: Path

    def samples(self) -> np.ndarray:
        """The clip as 16 kHz mono float32."""
        try:
            data, rate = sf.read(str(self.path), dtype="float32", always_2d=True)
        except (OSError, sf.LibsndfileError) as exc:
            raise MediaError(f"{self.path}: clip {self.id} is unreadable ({exc})") from None
        return resample(mono(data), rate, RATE)


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the clip
    end: float
    confidence: float | None = None


@dataclass
class Transcript:
    text: str
    language: str | None  # ISO code ('en') or locale ('en-US') of the text
    language_probability: float | None  # how sure the backend is the clip is in `language`
    confidence: float | None = None  # 0-1; Azure's NBest confidence, Whisper's exp(mean token log-probability)
    words: list[Word] | None = None  # word timings where the backend gives them
    details: dict[str, Any] = field(default_factory=dict)  # backend specifics (no_speech_prob, Azure status, ...)
    tokens: list[int] | None = field(default=None, repr=False)  # Whisper's text tokens, for its word alignment

    def as_record(self) -> dict[str, Any]:
        """The fields this transcript adds to a clip's manifest record."""
        record: dict[str, Any] = {
            "text": self.text,
            "language": self.language,
            "language_probability": None if self.language_probability is None else round(self.language_probability, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
        }
        if self.words is not None:
            record["words"] = [asdict(w) for w in self.words]
        if self.details:
            record["asr"] = self.details
        return record


class Recognizer(Protocol):
    name: str  # backend name, recorded per clip

    def transcribe(self, clips: Sequence[AudioClip], languages: Sequence[str] | None = None) -> list[Transcript]:
        """One transcript per clip, in order, in `languages` (one per clip) where the backend can choose.
        Raises Nr4dlError subclasses for problems a user must fix."""
        ...
