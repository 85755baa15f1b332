"""Spleeter 2stems for the stages: a worker process in Spleeter's own environment.

Spleeter lives in its own virtual environment (see `spleeter_worker.py`); this
module keeps one worker process per Python process, which answers every request
of a file's separation with the model loaded once. The separate stage then
closes it (`release`): it holds about 2 GB that no later stage needs, so a CLI
run of many files starts it once per file. (It is not called spleeter.py: the
worker runs with this folder on its path and imports the real spleeter.)
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
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.dsp import audio

log = logging.getLogger("nr4dl")

WORKER = Path(__file__).resolve().with_name("spleeter_worker.py")


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
        release()
        log.info("starting the Spleeter worker (%s, %d CPU threads)", python, threads)
        _worker = SpleeterWorker(python, model_dir, threads)
    return _worker


def release() -> None:
    """Close the process-wide worker. Its TensorFlow graph holds about 2 GB, which every later stage of a file would
    carry on top of its own models; a CLI run pays a restart per file for it (see docs/memory.md)."""
    global _worker
    if _worker is not None:
        _worker.close()
        _worker = None


atexit.register(release)  # whatever worker is open when the process ends


def separate(
    settings: Settings, src: Path, vocals: Path, accompaniment: Path, spans: list[tuple[int, int]] | None, name: str
) -> dict[str, Any]:
    """Separate `src` into the two stems: all of it, or only `spans` (sample ranges on Spleeter's block grid) with
    the rest of both stems silent. `name` is the file the error names."""
    cfg = settings.separate
    reply = worker(settings).separate(
        {
            "input": str(src),
            "vocals": str(vocals),
            "accompaniment": str(accompaniment),
            "spans": None if spans is None else [list(span) for span in spans],
            "chunk_blocks": cfg.chunk_blocks,
            "margin_blocks": cfg.margin_blocks,
            "crossfade_seconds": cfg.crossfade_seconds,
        }
    )
    if not reply.get("ok"):
        raise StageError(f"{name}: separation failed: {reply.get('error')}")
    return reply
