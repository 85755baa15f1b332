"""The stages in order, what each depends on, and running them for one file.

The order is written here once. The CLI, the Airflow DAG and the benchmark take
it from `STAGES`; importing this module loads no stage (a stage class is
imported on first use), so a DAG file can read the order at parse time without
numpy, TensorFlow or a model. What a stage depends on is not written by hand: it
follows from the artifacts the stage reads (`Stage.reads`) and the stage that
writes each one (`nr4dl_tasks.core.layout`).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nr4dl_tasks.core import layout
from nr4dl_tasks.core.errors import MediaError
from nr4dl_tasks.core.runlock import run_lock
from nr4dl_tasks.core.workdir import WorkDir, file_sha256

if TYPE_CHECKING:
    from nr4dl_tasks.core.settings import Settings
    from nr4dl_tasks.core.stage import Stage, StageResult

log = logging.getLogger("nr4dl")


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline: its name, its class (`module:Class`) and whether it holds a model (the DAG runs
    those in the nr4dl_heavy pool, sized by resources.heavy_slots)."""

    name: str
    target: str
    heavy: bool


STAGES: tuple[StageSpec, ...] = (
    StageSpec("ingest", "nr4dl_tasks.stages.ingest:IngestStage", heavy=False),
    StageSpec("segment", "nr4dl_tasks.stages.segment:SegmentStage", heavy=True),
    StageSpec("separate", "nr4dl_tasks.stages.separate:SeparateStage", heavy=True),
    StageSpec("slice", "nr4dl_tasks.stages.slice:SliceStage", heavy=False),
    StageSpec("denoise", "nr4dl_tasks.stages.denoise:DenoiseStage", heavy=True),
    StageSpec("speakers", "nr4dl_tasks.stages.speakers:SpeakersStage", heavy=True),
    StageSpec("transcribe", "nr4dl_tasks.stages.transcribe:TranscribeStage", heavy=True),
    StageSpec("gate", "nr4dl_tasks.stages.gate:GateStage", heavy=False),
)
STAGE_NAMES: tuple[str, ...] = tuple(spec.name for spec in STAGES)


@functools.cache
def stage(name: str) -> Stage:
    """The stage called `name` (one instance per process, so its models stay loaded between files)."""
    (spec,) = [s for s in STAGES if s.name == name]
    module, _, cls = spec.target.partition(":")
    instance: Stage = getattr(importlib.import_module(module), cls)()
    if instance.name != name:
        raise RuntimeError(f"{spec.target} is stage {instance.name!r}, listed as {name!r}")
    return instance


def upstream(name: str, settings: Settings) -> list[str]:
    """Every stage whose outputs `name` depends on with these settings, directly or through the stages it reads,
    in pipeline order. A stage reading the output of a stage after it is a wiring error."""
    found: set[str] = set()
    todo = [name]
    while todo:
        for artifact in stage(todo.pop()).reads(settings):
            if artifact.stage != name and artifact.stage not in found:
                found.add(artifact.stage)
                todo.append(artifact.stage)
    late = [n for n in found if STAGE_NAMES.index(n) > STAGE_NAMES.index(name)]
    if late:
        raise RuntimeError(f"stage {name} reads the output of {late}, which run after it")
    return [n for n in STAGE_NAMES if n in found]


def run_stage(name: str, work: WorkDir, settings: Settings, instance: Stage | None = None) -> StageResult:
    """Run one stage in `work` (`instance`: a configured stage object, e.g. transcribe with Azure credentials).

    The stage is told the fingerprints its upstream stages have under these settings: if another run of the file
    with other settings redid one of them (two Airflow runs at once), it fails saying so instead of mixing the two."""
    names = upstream(name, settings)
    expected = {}
    for before in names:
        earlier = stage(before)
        expected[before] = earlier.fingerprint(
            work.reading(earlier.reads(settings)), settings, upstream(before, settings)
        )
    return (instance or stage(name)).run(work, settings, names, expected)


def source_id(media: Path, sha256: str) -> str:
    """`<safe stem>-<10 hex of the content hash>`: readable, filesystem-safe, stable for the same content."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", media.stem).strip("._-")[:60] or "media"
    return f"{stem}-{sha256[:10]}"


def open_work(media: str | Path, settings: Settings) -> WorkDir:
    """Check the file is there and non-empty, and return its work folder with `source.json` written.

    The folder is named by the file's stem and content hash: rerunning a file, or processing a copy of it with the
    same name from another folder, finds the same folder and skips what is done; a changed file gets a new folder.
    """
    try:
        path = Path(media).expanduser().resolve()
    except RuntimeError:  # Python's word for a symlink loop
        raise MediaError(f"{media}: a symbolic link loop (the link leads back to itself)") from None
    if not path.exists():
        raise MediaError(f"{path}: file does not exist")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise MediaError(f"{path}: cannot be read ({exc.strerror})") from None
    work = WorkDir(settings.resolve(settings.paths.work_dir) / source_id(path, sha))
    record = {"source_id": work.source_id, "path": str(path), "sha256": sha, "bytes": path.stat().st_size}
    known = work.path(layout.SOURCE_JSON.name)
    with work.lock():  # a stage of another run may be cleaning temporary files here
        if not known.exists() or json.loads(known.read_text()).get("path") != str(path):
            with work.atomic(layout.SOURCE_JSON.name) as tmp:
                tmp.write_text(json.dumps(record, indent=2))
    return work


def process_file(
    media: str | Path, settings: Settings, until: str = STAGE_NAMES[-1]
) -> tuple[WorkDir, list[StageResult]]:
    """Run every stage up to and including `until` for one media file."""
    work = open_work(media, settings)
    log.info("%s: processing %s in %s", work.source_id, media, work.root)
    with run_lock(work, settings):  # another run of this file with other settings waits, never interleaves
        results = [run_stage(name, work, settings) for name in STAGE_NAMES[: STAGE_NAMES.index(until) + 1]]
    return work, results
