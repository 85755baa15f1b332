"""One settings set per work folder at a time: the run lock.

A stage already holds the folder's lock while it runs, but a run is several
stages: two runs of one file with different settings (say `slice.min_duration`
0.3 and the default) used to take turns stage by stage, each redoing what the
other had just made, so one failed with "has not completed here" and the other
printed `ok` over the other's clips. A run of the pipeline (`process_file`) now
holds `.run.lock` from its first stage to its last. A second run waits for it,
saying whose run it waits for (the settings fingerprint, process and start time
of the holder are written in the lock file), and then redoes only what its own
settings change. The lock is an flock: a killed run releases it with its process,
so nothing stale is left to clear.

Airflow runs a file as one task per stage, in several processes, so no process
can hold a lock across the run; there each stage checks instead that the stages
it reads were last made with its own settings (`Stage.run`'s `expected`) and
fails with that cause if another run has redone them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from nr4dl_tasks.core.workdir import WorkDir, fingerprint

if TYPE_CHECKING:
    from nr4dl_tasks.core.settings import Settings

log = logging.getLogger("nr4dl")
RUN_LOCK = ".run.lock"


def settings_fingerprint(settings: Settings) -> str:
    """The whole settings set but `resources` (threads and slots change speed, not outputs)."""
    return fingerprint(settings=settings.model_dump(mode="json", exclude={"resources"}))


@contextmanager
def run_lock(work: WorkDir, settings: Settings) -> Iterator[None]:
    """Hold the work folder for one whole run; wait (and say for whom) while another run holds it."""
    mine = {
        "settings": settings_fingerprint(settings),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with open(work.path(RUN_LOCK), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            same = "the same" if holder.get("settings") == mine["settings"] else "other"
            log.info(
                "%s: waiting for another run of this file (%s settings, process %s on %s since %s)",
                work.source_id,
                same,
                holder.get("pid", "?"),
                holder.get("host", "?"),
                holder.get("since", "?"),
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.truncate(0)
            handle.write(json.dumps(mine))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(text: str) -> dict:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
