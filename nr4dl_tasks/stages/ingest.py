"""Ingest: any media ffmpeg reads -> the WAV copies the later stages need.

Reads `source.json` (where the file came from, its hash and size; written by the
pipeline's `open_work`) and writes `audio_16k.wav` (mono, for segmentation) and
`audio_44k.wav` (stereo, Spleeter's native rate, and the full-quality source clips
are cut from when separation is off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.core.errors import MediaError
from nr4dl_tasks.core.layout import ANALYSIS_RATE, ANALYSIS_WAV, FULL_RATE, FULL_WAV, SOURCE_JSON, Artifact
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp import audio


def _peak(wav: Path) -> float:
    peak = 0.0
    for _, block in audio.blocks(wav, 1 << 20):
        if block.size:
            peak = max(peak, float(np.abs(block).max()))
    return peak


class IngestStage(Stage):
    name = "ingest"

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return (SOURCE_JSON,)

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {"sha256": work.read_source()["sha256"]}

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        media = Path(work.read_source()["path"])
        streams = audio.probe(media).get("streams", [])
        if not any(s.get("codec_type") == "audio" for s in streams):
            kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["none"]
            raise MediaError(f"{media}: no audio stream (streams found: {', '.join(kinds)})")

        with work.atomic(ANALYSIS_WAV.name) as tmp:
            audio.convert(media, tmp, ANALYSIS_RATE, 1)
            seconds = audio.duration(tmp)
            if seconds <= 0:
                raise MediaError(f"{media}: the audio stream decodes to zero samples")
            if _peak(tmp) == 0.0:
                raise MediaError(f"{media}: the audio is digital silence from start to end ({seconds:.2f} s)")
        with work.atomic(FULL_WAV.name) as tmp:
            audio.convert(media, tmp, FULL_RATE, 2)
        return [SOURCE_JSON.name, ANALYSIS_WAV.name, FULL_WAV.name], {
            "duration": round(seconds, 3),
            "media": str(media),
        }
