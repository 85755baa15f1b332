"""Exceptions that carry a message a user can act on.

Every error raised for bad input names the file (or setting) and the cause, so a
failed Airflow task or CLI line tells the user what to fix without a traceback.
"""

import errno
import shutil
from pathlib import Path


class Nr4dlError(Exception):
    """Base class for errors the pipeline reports to the user as-is."""


class SettingsError(Nr4dlError):
    """A settings file or override is missing, malformed or out of range."""


class MediaError(Nr4dlError):
    """A source file cannot be used: missing, corrupt, empty, or without audio."""


class DiskFull(Nr4dlError):
    """A stage could not write its outputs: the disk (or quota) is full. Nothing half-written is left."""


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether `exc` means the disk is full: errno 28, or libsndfile's bare 'System error.' on a full folder (it
    keeps the errno to itself)."""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc):
        return True
    try:
        return type(exc).__name__ == "LibsndfileError" and shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


class ModelError(Nr4dlError):
    """A model file is missing or does not match its recorded checksum."""


class StageError(Nr4dlError):
    """A stage cannot run, e.g. because the stage it depends on has not run."""


class Transient(StageError):
    """A failure that may pass on its own: Airflow retries the task instead of failing it at once."""


class WorkerDied(Transient):
    """A helper process died mid-task (killed, out of memory)."""


class SourceError(Nr4dlError):
    """A crawl source or link cannot be read: unreachable page, failed or refused download."""
