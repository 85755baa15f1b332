"""One work folder per source file: atomic outputs and completion stamps.

Each stage writes to a temporary name beside its output and renames it into
place only when complete, so a killed task never leaves a half-written file
under a real name. When a stage finishes it writes `stamps/<stage>.json` with a
fingerprint of its input and settings; a rerun with the same fingerprint and
outputs present is skipped, a changed setting or input recomputes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.core.layout import FAILURE_JSON, SOURCE_JSON, STAMPS_DIR, Artifact, stamp_name
from nr4dl_tasks.core.redact import redact

log = logging.getLogger("nr4dl")


def file_sha256(path: Path) -> str:
    """Content hash of a file, read in 1 MiB blocks so large media never sits in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """Hex sha256 of a string (URL, path, key): a fixed-length, filename-safe name for it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(**parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (stage version, upstream fingerprint, settings)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _tmp_sibling(path: Path) -> Path:
    # Unique across hosts sharing the folder (PIDs are not); the suffix stays so ffmpeg and soundfile infer the format.
    return path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:12]}{path.suffix}")


@dataclass(frozen=True)
class WorkDir:
    root: Path
    # While a stage runs: the artifacts it declared it reads (`Stage.reads`); `input` refuses any other.
    reads: frozenset[Artifact] | None = field(default=None, compare=False)
    # While a stage runs: its fingerprint (a stage's own journal of partial work is keyed by it).
    fingerprint: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def source_id(self) -> str:
        return self.root.name

    def path(self, name: str) -> Path:
        return self.root / name

    def reading(self, artifacts: Iterable[Artifact]) -> WorkDir:
        """This folder as seen by a stage that reads exactly `artifacts` of other stages."""
        return replace(self, reads=frozenset(artifacts))

    def running(self, fp: str) -> WorkDir:
        """This folder as seen by a stage running with fingerprint `fp`."""
        return replace(self, fingerprint=fp)

    def input(self, artifact: Artifact) -> Path:
        """The path of another stage's output. A stage may open only what it lists in `reads`: that list is what
        the pipeline orders the stages and fingerprints by, so an unlisted read would go stale unnoticed."""
        if self.reads is not None and artifact not in self.reads:
            raise RuntimeError(
                f"{self.root}: {artifact.name} (written by {artifact.stage}) is read by a stage that "
                "does not list it in its reads"
            )
        return self.root / artifact.name

    def lock(self) -> AbstractContextManager[None]:
        """Hold the folder's lock: two runs of the same file take turns at each stage instead of interleaving."""
        return flock(self.path(".lock"))

    def read_source(self) -> dict[str, Any]:
        """`source.json`: where the file came from, its hash and size."""
        record: dict[str, Any] = json.loads(self.input(SOURCE_JSON).read_text())
        return record

    def clear_stamp(self, stage: str) -> None:
        """Forget a completion before redoing a stage, so a crash half-way cannot leave a stale 'done'."""
        self.path(stamp_name(stage)).unlink(missing_ok=True)

    def clear_dependants(self, stage: str) -> None:
        """Forget every stage that read `stage`'s outputs: while `stage` is redone, their outputs describe the old
        ones, and the export must not take a folder whose gate stamp pairs old texts with new clips."""
        for path in self.root.glob(f"{STAMPS_DIR}/*.json"):
            stamp = json.loads(path.read_text())
            if stage in stamp.get("upstream", ()):
                path.unlink(missing_ok=True)
                log.info("%s: %s must be redone after %s", self.source_id, path.stem, stage)

    def remove_leftovers(self) -> None:
        """Delete temporary files a killed task left behind (they can be gigabytes for long inputs)."""
        for leftover in self.root.glob(".*.tmp-*"):
            _remove(leftover)

    @contextmanager
    def atomic(self, name: str) -> Iterator[Path]:
        """Yield a temporary path; on success it replaces `name`, on error it is removed."""
        final = self.path(name)
        tmp = _tmp_sibling(final)
        try:
            yield tmp
            if not tmp.exists():
                raise RuntimeError(f"{final}: the stage wrote no output")
            os.replace(tmp, final)
        finally:
            _remove(tmp)

    def is_done(self, stage: str, fp: str) -> bool:
        """True when `stage` last completed with fingerprint `fp` and all its outputs still exist."""
        stamp = self.read_stamp(stage)
        if not stamp or stamp.get("fingerprint") != fp:
            return False
        return all(self.path(name).exists() for name in stamp.get("outputs", []))

    def read_stamp(self, stage: str) -> dict[str, Any] | None:
        path = self.path(stamp_name(stage))
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def mark_done(self, stage: str, fp: str, outputs: list[str], **info: Any) -> None:
        """Record completion last, after every output is in place."""
        self.path(STAMPS_DIR).mkdir(exist_ok=True)
        with self.atomic(stamp_name(stage)) as tmp:
            tmp.write_text(json.dumps({"fingerprint": fp, "outputs": outputs, **info}, indent=2, default=str))

    def record_failure(self, stage: str, error: BaseException) -> None:
        """Note that `stage` failed here and why, so the export reports the file as failed, not as still pending."""
        cause = redact(str(error).strip() or type(error).__name__).splitlines()[0]
        with self.atomic(FAILURE_JSON) as tmp:
            tmp.write_text(json.dumps({"stage": stage, "error": cause}))

    def clear_failure(self, stage: str) -> None:
        """`stage` succeeded: a failure recorded for it is history."""
        if (self.read_failure() or {}).get("stage") == stage:
            self.path(FAILURE_JSON).unlink(missing_ok=True)

    def read_failure(self) -> dict[str, Any] | None:
        try:
            found = json.loads(self.path(FAILURE_JSON).read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def require(self, stage: str) -> dict[str, Any]:
        """The stamp of an upstream stage, or a clear error saying which stage must run first."""
        stamp = self.read_stamp(stage)
        if stamp is None:
            raise StageError(f"{self.root}: stage '{stage}' has not completed here; run it first")
        return stamp


@contextmanager
def flock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing, never truncated, so taking it changes nothing)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in place of `final` in one rename."""
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        old = final.with_name(f".{final.name}.tmp-old-{uuid.uuid4().hex[:12]}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
