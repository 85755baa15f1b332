"""Radio-like programmes built from held-out material in ../shared/media, with exact truth and the clean speech.

Used by tests/test_music_routing.py and bench/music.py. The material is held out
from every music decision: the bed threshold was set on speech without music of
Korean `ada`, the bleed gate on `ada`, `adc`, LibriSpeech 1688 and VCTK p226 over
'Vibe Ace', the singing gate on read speech only (no song) (docs/music.md).
Never used here: the tuning speakers of the music decisions and 'Vibe Ace'.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import mixes
import numpy as np
import soundfile as sf

MEDIA = (Path(__file__).resolve().parent.parent / ".." / "shared" / "media").resolve()
RATE = 16000
KOREAN = MEDIA / "korean" / "emotiontts"
TUNING_KOREAN = ("ada", "adc")
BEDS = ("Karissa_Hobbs_-_Lets_Go_Fishin.ogg", "Hungarian_Dance*.ogg", "*Sugar_Plum*.ogg")
BED_START_S = 12  # the Sugar Plum Fairy's first bars are 10 dB quieter than the rest, and a bed is levelled whole
GAP = np.zeros(RATE // 2, dtype=np.float32)


def load(path: Path) -> np.ndarray:
    return mixes.load(path, RATE)


def under(bed: np.ndarray, speech: np.ndarray, snr_db: float) -> np.ndarray:
    """`speech` with `bed` (looped or cut to its length) `snr_db` under it."""
    return (speech + mixes.scaled(bed, speech, snr_db)).astype(np.float32)


def korean(speaker: str) -> list[np.ndarray]:
    rows = csv.DictReader((KOREAN / "utterances.tsv").open(), delimiter="\t")
    return [load(KOREAN / r["path"]) for r in rows if r["speaker"] == speaker]


def bed(index: int) -> np.ndarray:
    return load(next((MEDIA / "music").glob(BEDS[index % len(BEDS)])))[BED_START_S * RATE :]


@dataclass
class Programme:
    """The audio, the clean speech at the same offsets (silent elsewhere), and (start, end, kind) spans with kind
    speech, bed (speech over music), music (songs and jingles) or noise."""

    samples: list[np.ndarray] = field(default_factory=list)
    clean: list[np.ndarray] = field(default_factory=list)
    truth: list[tuple[float, float, str]] = field(default_factory=list)
    at: int = 0

    def add(self, kind: str, samples: np.ndarray, clean: np.ndarray | None = None) -> None:
        self.truth.append((self.at / RATE, (self.at + len(samples)) / RATE, kind))
        speech = clean if clean is not None else (samples if kind == "speech" else np.zeros_like(samples))
        self.samples += [samples.astype(np.float32), GAP]
        self.clean += [speech.astype(np.float32), GAP]
        self.at += len(samples) + len(GAP)

    def speech(self, samples: np.ndarray, bed_index: int | None, snr_db: float = 10) -> None:
        if bed_index is None:
            self.add("speech", samples)
        else:
            self.add("bed", under(bed(bed_index), samples, snr_db), samples)

    def write(self, path: Path) -> Path:
        sf.write(str(path), np.concatenate(self.samples), RATE)
        return path

    @property
    def clean_speech(self) -> np.ndarray:
        return np.concatenate(self.clean)

    @property
    def seconds(self) -> float:
        return self.at / RATE


def song() -> np.ndarray:
    return load(MEDIA / "music" / "audio_example.mp3")


def jingle(index: int, seconds: float = 4.0) -> np.ndarray:
    return bed(index + 1)[: int(seconds * RATE)]


def frames(spans: list[tuple[float, float, str]], total: float, kinds: set[str]) -> np.ndarray:
    """10 ms frames of `total` seconds covered by the (start, end, kind) spans of the given kinds."""
    mask = np.zeros(int(total * 100) + 1, bool)
    for start, end, kind in spans:
        if kind in kinds:
            mask[int(start * 100) : int(end * 100)] = True
    return mask


def cafe() -> np.ndarray:
    return load(MEDIA / "noise" / "cafe_short.wav")
