"""The stages in order, and running them for one file.

The CLI and the Airflow operators both go through `STAGES`, so a file processed
either way runs the same code and lands in the same work folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nr4dl_tasks.stages.denoise import DenoiseStage
from nr4dl_tasks.stages.gate import GateStage
from nr4dl_tasks.stages.ingest import IngestStage, open_work
from nr4dl_tasks.stages.segment import SegmentStage
from nr4dl_tasks.stages.separate import SeparateStage
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.stages.slice import SliceStage
from nr4dl_tasks.stages.speakers import SpeakersStage
from nr4dl_tasks.core.stage import Stage, StageResult
from nr4dl_tasks.stages.transcribe import TranscribeStage
from nr4dl_tasks.core.workdir import WorkDir

log = logging.getLogger("nr4dl")

STAGES: dict[str, Stage] = {stage.name: stage for stage in (IngestStage(), SeparateStage(), SegmentStage(),
                                                             SliceStage(), DenoiseStage(), SpeakersStage(),
                                                             TranscribeStage(), GateStage())}


def run_stage(name: str, work: WorkDir, settings: Settings) -> StageResult:
    return STAGES[name].run(work, settings)


def process_file(media: str | Path, settings: Settings, until: str = "gate") -> tuple[WorkDir, list[StageResult]]:
    """Run every stage up to and including `until` for one media file."""
    names = list(STAGES)
    work = open_work(media, settings)
    log.info("%s: processing %s in %s", work.source_id, media, work.root)
    results = [run_stage(name, work, settings) for name in names[: names.index(until) + 1]]
    return work, results
