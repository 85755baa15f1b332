"""Segment: inaSpeechSegmenter labels -> `segments.csv` (label,start,end) and `music.npy`.

Labels are exactly ina's: male, female (or speech without gender), music,
noise, noEnergy. By default ina runs on the original mix, the broadcast audio it
was trained on: on Spleeter's vocals it took half of a song's singing for
speech. `music.npy` holds ina's music posterior per 20 ms decision, speech
frames included, from which the separate stage finds the speech that has music
under it and the slice stage measures each clip's music bed (`dsp/music.py`).

`segment.input: vocals` (the seed's way) segments Spleeter's vocals of the whole
file instead; this stage separates them itself, because separation runs after
segmentation, so that option costs one whole-file separation more.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.core.layout import ANALYSIS_RATE, FULL_WAV, MUSIC_NPY, SEGMENTS_CSV, Artifact, analysis_input
from nr4dl_tasks.core.records import write_segments
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp import audio, separation
from nr4dl_tasks.dsp.ina import resolve_precision, segmenter

log = logging.getLogger("nr4dl")


class SegmentStage(Stage):
    name = "segment"

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return (FULL_WAV,) if settings.segment.input == "vocals" else (analysis_input(settings),)

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        # window_seconds and batch_size change memory and speed, not the result.
        return {
            "segment": settings.segment.model_dump(exclude={"window_seconds", "batch_size", "precision"}),
            "precision": resolve_precision(settings.segment.precision),
            "input": analysis_input(settings).name,
        }

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg = settings.segment
        outputs = [SEGMENTS_CSV.name, MUSIC_NPY.name]
        if cfg.input == "vocals":
            self._separate_vocals(work, settings)
            outputs.append(analysis_input(settings).name)
        ina = segmenter(settings)
        found = ina(work.path(analysis_input(settings).name), cfg.energy_ratio, cfg.window_seconds, cfg.batch_size)
        with work.atomic(SEGMENTS_CSV.name) as tmp:
            write_segments(tmp, found.segments)
        with work.atomic(MUSIC_NPY.name) as tmp, tmp.open("wb") as out:
            np.save(out, found.music.astype(np.float16))
        totals: dict[str, float] = {}
        for seg in found.segments:
            totals[seg.label] = round(totals.get(seg.label, 0.0) + seg.duration, 2)
        return outputs, {
            "input": analysis_input(settings).name,
            "precision": ina.precision,
            "segments": len(found.segments),
            "seconds_by_label": totals,
        }

    @staticmethod
    def _separate_vocals(work: WorkDir, settings: Settings) -> None:
        """The whole file's vocals at 16 kHz mono, for `segment.input: vocals`."""
        with tempfile.TemporaryDirectory(dir=work.root, prefix=".segment-vocals-") as tmp_dir:
            vocals, rest = Path(tmp_dir) / "vocals.wav", Path(tmp_dir) / "accompaniment.wav"
            separation.separate(settings, work.input(FULL_WAV), vocals, rest, None, work.read_source()["path"])
            with work.atomic(analysis_input(settings).name) as tmp:
                audio.convert(vocals, tmp, ANALYSIS_RATE, 1)
