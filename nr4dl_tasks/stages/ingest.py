"""Ingest: any media ffmpeg reads -> the WAV copies the later stages need.

Writes `source.json` (where the file came from, its hash and duration),
`audio_16k.wav` (mono, for segmentation) and `audio_44k.wav` (stereo, Spleeter's
native rate, and the full-quality source clips are cut from when separation is
off). The work folder is named by a
source id made of the file's stem and its content hash: rerunning a file, or
processing a copy of it with the same name from another folder, finds the same
folder and skips what is done; a changed file gets a new folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.dsp import audio
from nr4dl_tasks.core.errors import MediaError
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir, file_sha256

ANALYSIS_WAV = "audio_16k.wav"
FULL_WAV = "audio_44k.wav"
ANALYSIS_RATE = 16000  # inaSpeechSegmenter's features assume it
FULL_RATE = 44100  # Spleeter's training rate
SOURCE_JSON = "source.json"


def source_id(media: Path, sha256: str) -> str:
    """`<safe stem>-<10 hex of the content hash>`: readable, filesystem-safe, stable for the same content."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", media.stem).strip("._-")[:60] or "media"
    return f"{stem}-{sha256[:10]}"


def open_work(media: str | Path, settings: Settings) -> WorkDir:
    """Check the file is there and non-empty, and return its work folder with `source.json` written."""
    path = Path(media).expanduser().resolve()
    if not path.exists():
        raise MediaError(f"{path}: file does not exist")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    sha = file_sha256(path)
    work = WorkDir(settings.resolve(settings.paths.work_dir) / source_id(path, sha))
    record = {"source_id": work.source_id, "path": str(path), "sha256": sha, "bytes": path.stat().st_size}
    known = work.path(SOURCE_JSON)
    with work.lock():  # a stage of another run may be cleaning temporary files here
        if not known.exists() or json.loads(known.read_text()).get("path") != str(path):
            with work.atomic(SOURCE_JSON) as tmp:
                tmp.write_text(json.dumps(record, indent=2))
    return work


def read_source(work: WorkDir) -> dict[str, Any]:
    return json.loads(work.path(SOURCE_JSON).read_text())


def _peak(wav: Path) -> float:
    peak = 0.0
    for _, block in audio.blocks(wav, 1 << 20):
        if block.size:
            peak = max(peak, float(np.abs(block).max()))
    return peak


class IngestStage(Stage):
    name = "ingest"

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {"sha256": read_source(work)["sha256"]}

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        media = Path(read_source(work)["path"])
        streams = audio.probe(media).get("streams", [])
        if not any(s.get("codec_type") == "audio" for s in streams):
            kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["none"]
            raise MediaError(f"{media}: no audio stream (streams found: {', '.join(kinds)})")

        with work.atomic(ANALYSIS_WAV) as tmp:
            audio.convert(media, tmp, ANALYSIS_RATE, 1)
            seconds = audio.duration(tmp)
            if seconds <= 0:
                raise MediaError(f"{media}: the audio stream decodes to zero samples")
            if _peak(tmp) == 0.0:
                raise MediaError(f"{media}: the audio is digital silence from start to end ({seconds:.2f} s)")
        with work.atomic(FULL_WAV) as tmp:
            audio.convert(media, tmp, FULL_RATE, 2)
        return [SOURCE_JSON, ANALYSIS_WAV, FULL_WAV], {"duration": round(seconds, 3), "media": str(media)}
