"""Typed records exchanged between stages, and their files.

Segments are written as `segments.csv` (label,start,end in seconds, labels as
inaSpeechSegmenter names them); clips as JSON lines, one object per clip. Audio
is never held in a record: a clip points at its WAV file.

A clip, like lhotse's `SupervisionSegment`, has typed fields for what several
stages share (where it lies, whether it is kept and why not, speaker, text,
language, quality) and one `extra` dict for facts private to the stage that
wrote them. In the JSON line every field is a top-level key, in the order the
stages added them, so manifests written before the fields were typed read back
the same and exports that read plain JSON keep working.

Like NeMo's speech-data-processor, every stage that handles clips reads the
manifest of the stage before it and writes its own, `manifests/<stage>.jsonl`,
never editing its input: rerunning a stage with other settings starts again
from exactly what it read the first time. `clips.jsonl` is a copy of the
manifest of the last stage that ran (or found its work done), the one file users
read.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import numpy as np
import soundfile as sf

from nr4dl_tasks.core import layout
from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.core.workdir import WorkDir

T = TypeVar("T")
REST_TIER = "rest"  # the tier of a clip below every gates.tiers minimum


@dataclass(frozen=True)
class Segment:
    label: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class Shared(Generic[T]):
    """A typed field of a clip that stages after its writer read. Stored in the clip's ordered field dict under its
    own name, so the manifest keeps the order in which stages added fields; None while no stage has set it.
    `del clip.field` removes it (a split piece does not inherit its parent's `dropped`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    @overload
    def __get__(self, clip: None, owner: type) -> Shared[T]: ...

    @overload
    def __get__(self, clip: Clip, owner: type) -> T | None: ...

    def __get__(self, clip: Clip | None, owner: type) -> T | None | Shared[T]:
        if clip is None:
            return self
        value: T | None = clip.extra.get(self.key)
        return value

    def __set__(self, clip: Clip, value: T | None) -> None:
        clip.extra[self.key] = value

    def __delete__(self, clip: Clip) -> None:
        clip.extra.pop(self.key, None)


@dataclass
class Clip:
    id: str
    source: str  # source id (the work folder's name)
    label: str
    start: float  # seconds in the source, padding included
    end: float
    duration: float
    path: str  # relative to the work folder
    # Every field after the core, in the order stages added them: the typed ones below, and facts private to a stage.
    extra: dict[str, Any] = field(default_factory=dict)

    # slice: the speech inside the padded span
    speech_start = Shared[float]()
    speech_end = Shared[float]()
    # slice: the audio it was cut from ("vocals" or "original"), the music under its speech in the mix, the music
    # left in the audio it was cut from, and the share of it that is sung (dsp/music.py, dsp/singing.py)
    cut_from = Shared[str]()
    music_bed = Shared[float]()
    music_bleed = Shared[float]()
    singing = Shared[float]()
    # denoise: the denoised file (the original's path when denoising left the clip as it was), and what it did
    denoised_path = Shared[str]()
    denoise = Shared[dict[str, Any]]()
    # speakers: who speaks, how close, and for a piece of a clip holding two voices, its parent
    speaker = Shared[str]()
    speaker_score = Shared[float]()  # raw cosine similarity to the speaker (or its nearest target)
    # with enrolled targets: the s-normalised score, the target's threshold on it, and whether it lies near it
    speaker_norm = Shared[float]()
    speaker_threshold = Shared[float]()
    speaker_review = Shared[bool]()
    split_from = Shared[str]()
    # transcribe
    text = Shared[str]()
    language = Shared[str]()
    language_probability = Shared[float]()
    asr = Shared[dict[str, Any]]()
    # transcribe: the clip's own language detection, its file's language (detected over all its clips, or
    # forced), the detected language where it confidently differs from the file's (unset otherwise) and the
    # words ({"word", "start", "end", "confidence"}, seconds from the clip's start; the export cuts the clip
    # from the first to the last, export.edge_pad_seconds)
    detected_language = Shared[str]()
    detected_language_probability = Shared[float]()
    file_language = Shared[str]()
    other_language = Shared[str]()
    words = Shared[list[dict[str, Any]]]()
    # gate: measured values, the failed gates, the DNSMOS score of the exported audio and its tier
    gates = Shared[dict[str, Any]]()
    gates_failed = Shared[list[str]]()
    quality = Shared[dict[str, Any]]()
    tier = Shared[str]()
    # any stage: why the clip is not kept ("<stage>: <reason>"); unset while it is
    dropped = Shared[str]()

    @property
    def kept(self) -> bool:
        """Not dropped by any stage so far."""
        return not self.dropped

    def audio(self, which: str) -> str:
        """The clip's file: its original audio, or with 'denoised' the denoise stage's output where it wrote one."""
        return (self.denoised_path or self.path) if which == "denoised" else self.path

    def to_json(self) -> str:
        record = {
            "id": self.id,
            "source": self.source,
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "path": self.path,
            **self.extra,
        }
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Clip:
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
    """The clip records of a manifest; a broken record is a ValueError naming its line of the file."""
    clips = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                clips.append(Clip.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path.name} line {number}: {type(exc).__name__}: {exc}") from None
    return clips


def read_manifest(work: WorkDir, stage: str) -> list[Clip]:
    """The clips as `stage` wrote them (its own manifest, not the shared clips.jsonl)."""
    return read_clips(work.input(layout.manifest(stage)))


def write_manifest(work: WorkDir, stage: str, clips: list[Clip]) -> str:
    """Write `stage`'s manifest; returns its name for the stamp."""
    name = layout.manifest(stage).name
    work.path(layout.MANIFESTS_DIR).mkdir(exist_ok=True)
    with work.atomic(name) as tmp:
        write_clips(tmp, clips)
    return name


def publish_manifest(work: WorkDir, stage: str) -> None:
    """Make `stage`'s manifest the current clips.jsonl (also when the stage was skipped as already done,
    so a rerun of an earlier stage never leaves clips.jsonl behind the stages after it)."""
    with work.atomic(layout.CLIPS_JSONL) as tmp:
        shutil.copyfile(work.path(layout.manifest(stage).name), tmp)


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
    return StageError(
        f"{path}: clip listed in {layout.manifest(manifest_stage).name} is unreadable ({cause}); "
        f"delete {work.path(layout.stamp_name(layout.CLIPS_DIR.stage))} to cut the clips again"
    )
