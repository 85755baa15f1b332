"""Separate: Spleeter 2stems on the speech that has music under it -> `vocals.wav`, `accompaniment.wav`.

`separate.mode: routed` (the default) separates only the speech segments whose
music score (`dsp/music.py`, from ina's posteriors on the mix) reaches
`separate.bed_threshold`, each widened by a second and rounded out to Spleeter's
block grid, so the network sees the blocks a whole-file run sees and the samples
equal that run's (`spleeter_worker.py` says how closely). Music, silence, noise
and clean speech are never separated; the stems are silent there, and the clips
of that speech are cut from the original. `all` separates the whole file, `off`
nothing.

It also measures the music left in the vocals (ina's music posterior on
`vocals_16k.wav`), which the slice stage turns into each clip's music bleed.
`separated.json` lists the separated spans and the speech regions they cover.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import soundfile as sf

from nr4dl_tasks.core.layout import (
    ACCOMPANIMENT_WAV,
    ANALYSIS_RATE,
    FULL_WAV,
    MUSIC_NPY,
    SEGMENTS_CSV,
    SEPARATED_JSON,
    SOURCE_JSON,
    VOCALS_ANALYSIS_WAV,
    VOCALS_MUSIC_NPY,
    VOCALS_WAV,
    Artifact,
)
from nr4dl_tasks.core.records import read_segments
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp import audio, music, separation
from nr4dl_tasks.dsp.ina import segmenter
from nr4dl_tasks.dsp.spleeter_worker import BLOCK

log = logging.getLogger("nr4dl")

CONTEXT_S = 1.0  # separated around each region, so a padded clip lies inside what was separated


class SeparateStage(Stage):
    name = "separate"
    version = 2  # 2: routed (only speech with music under it), the music left in the vocals measured

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return () if settings.separate.mode == "off" else (FULL_WAV, SOURCE_JSON, SEGMENTS_CSV, MUSIC_NPY)

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {"separate": settings.separate.model_dump(), "segment": settings.segment.model_dump()}

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg = settings.separate
        if cfg.mode == "off":
            log.info("%s: separation is switched off (separate.mode=off)", work.source_id)
            return [], {"mode": "off"}
        src = work.input(FULL_WAV)
        info = sf.info(str(src))
        rate, total = info.samplerate, info.frames
        segments = read_segments(work.input(SEGMENTS_CSV))
        beds = music.bed_regions(segments, music.load(work.input(MUSIC_NPY)), cfg.bed_threshold)
        speech = sum(seg.duration for seg in segments if seg.label in music.SPEECH)
        if cfg.mode == "all":
            spans = [(0, total)]
        else:
            spans = music.block_spans([seg for seg, _ in beds], rate, total, BLOCK, CONTEXT_S)
        bed_seconds = sum(seg.duration for seg, _ in beds)
        log.info(
            "%s: %.1f of %.1f s of speech has music under it; separating %.1f of %.1f s (%s)",
            work.source_id,
            bed_seconds,
            speech,
            sum(b - a for a, b in spans) / rate,
            total / rate,
            cfg.mode,
        )
        outputs = [VOCALS_MUSIC_NPY, SEPARATED_JSON]
        reply = {"separated_frames": 0, "chunks": 0, "seconds": 0.0}
        residual = np.full(int(total / rate / music.DECISION_S) + 1, np.nan, dtype=np.float32)
        if spans:  # else no clip is cut from vocals, and the worker is not even started
            with work.atomic(VOCALS_WAV.name) as vocals, work.atomic(ACCOMPANIMENT_WAV.name) as accompaniment:
                reply = separation.separate(
                    settings,
                    src,
                    vocals,
                    accompaniment,
                    None if cfg.mode == "all" else spans,
                    work.read_source()["path"],
                )
            separation.release()  # before ina runs on the vocals below, and before every later stage's models
            with work.atomic(VOCALS_ANALYSIS_WAV.name) as tmp:
                audio.convert(work.path(VOCALS_WAV.name), tmp, ANALYSIS_RATE, 1)
            residual = self._residual_music(work, settings, spans, rate)
            outputs = [VOCALS_WAV, ACCOMPANIMENT_WAV, VOCALS_ANALYSIS_WAV, *outputs]
        with work.atomic(VOCALS_MUSIC_NPY.name) as tmp, tmp.open("wb") as out:
            np.save(out, residual.astype(np.float16))
        record = {
            "mode": cfg.mode,
            "spans": [[round(a / rate, 3), round(b / rate, 3)] for a, b in spans],
            "beds": [{"start": seg.start, "end": seg.end, "label": seg.label, "score": value} for seg, value in beds],
        }
        with work.atomic(SEPARATED_JSON.name) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
        seconds = reply["separated_frames"] / rate
        facts = {
            "mode": cfg.mode,
            "speech_seconds": round(speech, 2),
            "bed_seconds": round(bed_seconds, 2),
            "separated_seconds": round(seconds, 2),
            "chunks": reply["chunks"],
            "x_realtime": round(seconds / max(reply["seconds"], 1e-6), 1),
        }
        return [artifact.name for artifact in outputs], facts

    @staticmethod
    def _residual_music(work: WorkDir, settings: Settings, spans: list[tuple[int, int]], rate: int) -> np.ndarray:
        """ina's music posterior on the vocals, inside the separated spans (NaN elsewhere)."""
        cfg = settings.segment
        found = segmenter(settings)(
            work.path(VOCALS_ANALYSIS_WAV.name), cfg.energy_ratio, cfg.window_seconds, cfg.batch_size
        )
        inside = np.zeros(len(found.music), bool)
        for a, b in spans:
            inside[int(a / rate / music.DECISION_S) : int(b / rate / music.DECISION_S) + 1] = True
        return np.where(inside, found.music, np.nan)
