"""The contract every stage follows: fingerprint, skip if done, process, stamp.

A stage reads the outputs of the stages before it in the same work folder and
writes its own there. It names what it opens (`reads`: artifacts of the work
folder's layout) and never imports another stage; the pipeline derives from
those lists which stages it depends on. Its fingerprint covers its code version,
the fingerprints of those stages, and the settings that change its output, so it
reruns exactly when something that matters changed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nr4dl_tasks.core import layout, resources
from nr4dl_tasks.core.errors import DiskFull, Nr4dlError, StageError, is_disk_full
from nr4dl_tasks.core.layout import Artifact
from nr4dl_tasks.core.records import publish_manifest
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.workdir import WorkDir, fingerprint

log = logging.getLogger("nr4dl")


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float as None: the stamp is JSON, and Airflow refuses a task's return value
    holding them (a threshold with no impostor to set it is infinite)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


@dataclass
class StageResult:
    stage: str
    source_id: str
    skipped: bool
    outputs: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class Stage(ABC):
    name: ClassVar[str]
    version: ClassVar[int] = 1
    manifest: ClassVar[bool] = False  # writes manifests/<name>.jsonl, published as clips.jsonl

    @abstractmethod
    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        """The other stages' outputs this stage opens with these settings (`WorkDir.input` refuses any other)."""

    @abstractmethod
    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        """Besides upstream stamps, what changes this stage's output: settings, source hash (enters the fingerprint)."""

    @abstractmethod
    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        """Do the work; return the output names (relative to the work folder) and facts for the stamp."""

    def fingerprint(self, work: WorkDir, settings: Settings, upstream: Sequence[str]) -> str:
        stamps = {name: work.require(name)["fingerprint"] for name in upstream}
        return fingerprint(stage=self.name, version=self.version, upstream=stamps, inputs=self.inputs(work, settings))

    def run(
        self, work: WorkDir, settings: Settings, upstream: Sequence[str], expected: Mapping[str, str] | None = None
    ) -> StageResult:
        """Run (or skip as done) in `work`; `upstream`: every stage whose outputs this one depends on, in pipeline
        order (the pipeline derives it from `reads`); `expected`: their fingerprints under these settings."""
        work = work.reading(self.reads(settings))
        with work.lock():
            for name, fp in (expected or {}).items():
                if work.require(name)["fingerprint"] != fp:
                    raise StageError(
                        f"{work.root}: {name} was last made with settings other than this run's (another "
                        f"run of this file redid it); run the file again"
                    )
            try:
                result = self._run_locked(work, settings, upstream)
            except Exception as exc:
                error = exc
                if not isinstance(exc, Nr4dlError) and is_disk_full(exc, work.root):  # not a bad input: say so
                    where = getattr(exc, "filename", None) or work.root
                    error = DiskFull(f"{where}: the disk is full; {self.name} could not write its outputs")
                with contextlib.suppress(OSError):  # the disk may be full: the error itself must still come out
                    work.record_failure(self.name, error)
                if error is exc:
                    raise
                raise error from None
            work.clear_failure(self.name)
            if self.manifest:
                publish_manifest(work, self.name)
            return result

    def _run_locked(self, work: WorkDir, settings: Settings, upstream: Sequence[str]) -> StageResult:
        fp = self.fingerprint(work, settings, upstream)
        work = work.running(fp)
        # A folder from before manifests existed has a valid stamp but no manifest to publish: redo the stage.
        has_manifest = not self.manifest or work.path(layout.manifest(self.name).name).exists()
        if work.is_done(self.name, fp) and has_manifest:
            stamp = work.read_stamp(self.name) or {}
            log.info("%s: %s already done for these inputs and settings, skipped", work.source_id, self.name)
            return StageResult(self.name, work.source_id, True, stamp.get("outputs", []), stamp.get("info", {}))
        log.info("%s: %s started", work.source_id, self.name)
        work.clear_stamp(self.name)
        work.clear_dependants(self.name)
        work.remove_leftovers()
        began = time.monotonic()
        outputs, facts = self.process(work, settings)
        resources.return_freed_memory()
        info = json_safe(facts)
        seconds = time.monotonic() - began
        work.mark_done(self.name, fp, outputs, info=info, seconds=round(seconds, 3), upstream=list(upstream))
        log.info("%s: %s done in %.1f s %s", work.source_id, self.name, seconds, info)
        return StageResult(self.name, work.source_id, False, outputs, info, seconds)
