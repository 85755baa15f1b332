"""The contract every stage follows: fingerprint, skip if done, process, stamp.

A stage reads the outputs of the stages before it in the same work folder and
writes its own there. Its fingerprint covers its code version, the fingerprints
of the stages it reads, and the settings that change its output, so it reruns
exactly when something that matters changed.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nr4dl_tasks.core.records import manifest_name, publish_manifest
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.workdir import WorkDir, fingerprint

log = logging.getLogger("nr4dl")


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
    reads: ClassVar[tuple[str, ...]] = ()  # upstream stages whose outputs this one uses
    manifest: ClassVar[bool] = False  # writes manifests/<name>.jsonl, published as clips.jsonl

    @abstractmethod
    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        """Besides upstream stamps, what changes this stage's output: settings, source hash (enters the fingerprint)."""

    @abstractmethod
    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        """Do the work; return the output names (relative to the work folder) and facts for the stamp."""

    def fingerprint(self, work: WorkDir, settings: Settings) -> str:
        upstream = {name: work.require(name)["fingerprint"] for name in self.reads}
        return fingerprint(stage=self.name, version=self.version, upstream=upstream,
                           inputs=self.inputs(work, settings))

    def run(self, work: WorkDir, settings: Settings) -> StageResult:
        with work.lock():
            result = self._run_locked(work, settings)
            if self.manifest:
                publish_manifest(work, self.name)
            return result

    def _run_locked(self, work: WorkDir, settings: Settings) -> StageResult:
        fp = self.fingerprint(work, settings)
        # A folder from before manifests existed has a valid stamp but no manifest to publish: redo the stage.
        has_manifest = not self.manifest or work.path(manifest_name(self.name)).exists()
        if work.is_done(self.name, fp) and has_manifest:
            stamp = work.read_stamp(self.name) or {}
            log.info("%s: %s already done for these inputs and settings, skipped", work.source_id, self.name)
            return StageResult(self.name, work.source_id, True, stamp.get("outputs", []),
                               stamp.get("info", {}))
        log.info("%s: %s started", work.source_id, self.name)
        work.clear_stamp(self.name)
        work.clear_dependants(self.name)
        work.remove_leftovers()
        began = time.monotonic()
        outputs, info = self.process(work, settings)
        seconds = time.monotonic() - began
        work.mark_done(self.name, fp, outputs, info=info, seconds=round(seconds, 3), upstream=list(self.reads))
        log.info("%s: %s done in %.1f s %s", work.source_id, self.name, seconds, info)
        return StageResult(self.name, work.source_id, False, outputs, info, seconds)
