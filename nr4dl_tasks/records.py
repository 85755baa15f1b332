"""Typed records exchanged between stages, and their files.

Segments are written as `segments.csv` (label,start,end in seconds, labels as
inaSpeechSegmenter names them); clips as `clips.jsonl`, one JSON object per clip,
so later stages (denoise, speakers, transcribe) can add fields without a schema
migration. Audio is never held in a record: a clip points at its WAV file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable


@dataclass(frozen=True)
class Segment:
    label: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Clip:
    id: str
    source: str  # source id (the work folder's name)
    label: str
    start: float  # seconds in the source, padding included
    end: float
    duration: float
    path: str  # relative to the work folder
    extra: dict[str, Any] = field(default_factory=dict)  # fields added by later stages

    def to_json(self) -> str:
        record = asdict(self)
        record.update(record.pop("extra"))
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> "Clip":
        record = json.loads(line)
        known = {name: record.pop(name) for name in ("id", "source", "label", "start", "end", "duration", "path")}
        return cls(**known, extra=record)


def write_segments(path: Path, segments: Iterable[Segment]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "start", "end"])
        for seg in segments:
            writer.writerow([seg.label, f"{seg.start:.3f}", f"{seg.end:.3f}"])


def read_segments(path: Path) -> list[Segment]:
    with path.open(newline="") as fh:
        return [Segment(row["label"], float(row["start"]), float(row["end"])) for row in csv.DictReader(fh)]


def write_clips(path: Path, clips: Iterable[Clip]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for clip in clips:
            fh.write(clip.to_json() + "\n")


def read_clips(path: Path) -> list[Clip]:
    with path.open(encoding="utf-8") as fh:
        return [Clip.from_json(line) for line in fh if line.strip()]
