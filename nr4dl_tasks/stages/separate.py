"""Separate: Spleeter 2stems -> `vocals.wav` and `accompaniment.wav` (44.1 kHz stereo).

Spleeter lives in its own virtual environment (see `spleeter_worker.py`); this
module keeps one worker process per Python process, so the model is loaded once
however many files a CLI run or worker handles. It also writes `vocals_16k.wav`,
the mono analysis copy the segmenter reads when it segments the vocals.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from nr4dl_tasks.core import models, resources
from nr4dl_tasks.core.children import die_with_parent
from nr4dl_tasks.core.errors import StageError, WorkerDied
from nr4dl_tasks.core.layout import (
    ACCOMPANIMENT_WAV,
    ANALYSIS_RATE,
    FULL_WAV,
    SOURCE_JSON,
    VOCALS_ANALYSIS_WAV,
    VOCALS_WAV,
    Artifact,
)
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp import audio

log = logging.getLogger("nr4dl")

WORKER = Path(__file__).resolve().parents[1] / "dsp" / "spleeter_worker.py"


class SpleeterWorker:
    """A long-lived `.venv-spleeter` process that answers one JSON request per line."""

    def __init__(self, python: Path, model_dir: Path, threads: int) -> None:
        if not python.exists():
            raise StageError(f"Spleeter environment not found at {python}; run scripts/setup.sh")
        self.key = (python, model_dir, threads)
        # TensorFlow sizes its thread pools from these when the process starts (the default: one per core).
        env = {
            **os.environ,
            "TF_NUM_INTRAOP_THREADS": str(threads),
            "TF_NUM_INTEROP_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
        }
        self.proc = subprocess.Popen(
            [str(python), str(WORKER), str(model_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            preexec_fn=die_with_parent,
        )
        ready = self._expect("loading the model")
        if not ready.get("ok"):
            self.proc.wait()
            raise StageError(f"the Spleeter worker could not start: {ready.get('error')}")

    def _expect(self, doing: str, seconds: float = 0.0) -> dict[str, Any]:
        """Read the worker's answer, logging its progress (of `seconds` of audio) on the way."""
        assert self.proc.stdout is not None
        progress = Progress(doing, seconds)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                code = self.proc.wait()
                raise WorkerDied(f"the Spleeter worker exited (code {code}) while {doing}; its log is above")
            message = json.loads(line)
            if "progress" not in message:
                return message
            progress.set(seconds * message["progress"] / message["of"])

    def separate(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._expect(f"separating {request['input']}", audio.duration(Path(request["input"])))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_worker: SpleeterWorker | None = None


def worker(settings: Settings) -> SpleeterWorker:
    """The process-wide worker, started on first use (never at import time)."""
    global _worker
    python = settings.resolve(settings.paths.spleeter_python)
    model_dir = settings.resolve(settings.paths.models_dir) / "spleeter" / "2stems"
    models.check(settings.resolve(settings.paths.models_dir), models.SPLEETER_PACKAGE.files)
    threads = resources.threads(settings)
    if _worker is None or _worker.key != (python, model_dir, threads) or _worker.proc.poll() is not None:
        if _worker is not None:
            _worker.close()
        log.info("starting the Spleeter worker (%s, %d CPU threads)", python, threads)
        _worker = SpleeterWorker(python, model_dir, threads)
        atexit.register(_worker.close)
    return _worker


class SeparateStage(Stage):
    name = "separate"

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return (FULL_WAV, SOURCE_JSON) if settings.separate.enabled else ()

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {"separate": settings.separate.model_dump()}

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        if not settings.separate.enabled:
            log.info("%s: separation is switched off (separate.enabled=false)", work.source_id)
            return [], {"enabled": False}
        src = work.input(FULL_WAV)
        with work.atomic(VOCALS_WAV.name) as vocals, work.atomic(ACCOMPANIMENT_WAV.name) as accompaniment:
            reply = worker(settings).separate(
                {
                    "input": str(src),
                    "vocals": str(vocals),
                    "accompaniment": str(accompaniment),
                    **settings.separate.model_dump(exclude={"enabled"}),
                }
            )
            if not reply.get("ok"):
                raise StageError(f"{work.read_source()['path']}: separation failed: {reply.get('error')}")
        with work.atomic(VOCALS_ANALYSIS_WAV.name) as tmp:
            audio.convert(work.path(VOCALS_WAV.name), tmp, ANALYSIS_RATE, 1)
        seconds = reply["frames"] / reply["rate"]
        info = {
            "enabled": True,
            "chunks": reply["chunks"],
            "audio_seconds": round(seconds, 3),
            "x_realtime": round(seconds / max(reply["seconds"], 1e-6), 1),
        }
        return [VOCALS_WAV.name, ACCOMPANIMENT_WAV.name, VOCALS_ANALYSIS_WAV.name], info
