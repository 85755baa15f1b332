"""Typed records exchanged between stages, and their files.

Segments are written as `segments.csv` (label,start,end in seconds, labels as
inaSpeechSegmenter names them); clips as JSON lines, one object per clip, so
later stages (denoise, speakers, transcribe) can add fields without a schema
migration. Audio is never held in a record: a clip points at its WAV file.

Like NeMo's speech-data-processor, every stage that handles clips reads the
manifest of the stage before it and writes its own, `manifests/<stage>.jsonl`,
never editing its input: rerunning a stage with other settings starts again
from exactly what it read the first time. `clips.jsonl` is a copy of the
manifest of the last stage that ran (or found its work done), the one file users
and exports read.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile as sf

from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.core.workdir import WorkDir

CLIPS_JSONL = "clips.jsonl"
MANIFESTS_DIR = "manifests"


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


def manifest_name(stage: str) -> str:
    return f"{MANIFESTS_DIR}/{stage}.jsonl"


def read_manifest(work: WorkDir, stage: str) -> list[Clip]:
    """The clips as `stage` wrote them (its own manifest, not the shared clips.jsonl)."""
    return read_clips(work.path(manifest_name(stage)))


def write_manifest(work: WorkDir, stage: str, clips: list[Clip]) -> str:
    """Write `stage`'s manifest; returns its name for the stamp."""
    work.path(MANIFESTS_DIR).mkdir(exist_ok=True)
    with work.atomic(manifest_name(stage)) as tmp:
        write_clips(tmp, clips)
    return manifest_name(stage)


def publish_manifest(work: WorkDir, stage: str) -> None:
    """Make `stage`'s manifest the current clips.jsonl (also when the stage was skipped as already done,
    so a rerun of an earlier stage never leaves clips.jsonl behind the stages after it)."""
    with work.atomic(CLIPS_JSONL) as tmp:
        shutil.copyfile(work.path(manifest_name(stage)), tmp)


def audio_path(clip: Clip, which: str) -> str:
    """The clip's file: its original audio, or with 'denoised' the denoise stage's output where it wrote one."""
    return (clip.extra.get("denoised_path") or clip.path) if which == "denoised" else clip.path


def read_clip_audio(work: WorkDir, rel: str, manifest_stage: str) -> tuple[np.ndarray, int]:
    """A clip's samples as (frames, channels) float32 and its rate, loaded only when a stage needs them.

    An unreadable file is a StageError naming the clip and the manifest that listed it.
    """
    path = work.path(rel)
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, sf.LibsndfileError) as exc:
        raise _unreadable(work, path, manifest_stage, str(exc)) from None
    return samples, rate


def clip_file(work: WorkDir, rel: str, manifest_stage: str) -> Path:
    """A clip's file, for stages that hand the path on (e.g. to a recogniser); a StageError when it is missing."""
    path = work.path(rel)
    if not path.is_file():
        raise _unreadable(work, path, manifest_stage, "no such file")
    return path


def _unreadable(work: WorkDir, path: Path, manifest_stage: str, cause: str) -> StageError:
    return StageError(f"{path}: clip listed in {manifest_name(manifest_stage)} is unreadable ({cause}); delete "
                      f"{work.path('stamps/slice.json')} to cut the clips again")
