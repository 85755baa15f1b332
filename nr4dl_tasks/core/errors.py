"""Exceptions that carry a message a user can act on.

Every error raised for bad input names the file (or setting) and the cause, so a
failed Airflow task or CLI line tells the user what to fix without a traceback.
"""


class Nr4dlError(Exception):
    """Base class for errors the pipeline reports to the user as-is."""


class SettingsError(Nr4dlError):
    """A settings file or override is missing, malformed or out of range."""


class MediaError(Nr4dlError):
    """A source file cannot be used: missing, corrupt, empty, or without audio."""


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
