"""The failed-file list: every source file whose latest processing run failed, with the stage and the cause.

Airflow's grid shows failed runs one DAG run at a time; with thousands of
episodes users want one list of files still failing. A task failure of
`nr4dl_process_file` records (file, stage, first line of the error, run id,
time) here through an Airflow callback; the run's last task, when it succeeds,
takes the file off the list. So the list always holds the files whose latest
run failed, whatever happened before. It lives in nr4dl's own database
(`statedb.py`) and is read by `nr4dl failures` and the `nr4dl_failed_files` DAG.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from nr4dl_tasks.core.redact import redact
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.workdir import text_sha256
from nr4dl_tasks.state.db import engine_for, metadata

FAILURES = sa.Table(
    "nr4dl_failures",
    metadata,
    sa.Column("media_sha256", sa.String(64), primary_key=True),  # of the path: paths can be long
    sa.Column("media", sa.Text, nullable=False),
    sa.Column("stage", sa.String(100), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(250)),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Failure:
    media: str
    stage: str
    error: str
    run_id: str | None
    failed_at: datetime


def first_line(error: BaseException | str) -> str:
    text = redact(str(error)).strip() or type(error).__name__
    return text.splitlines()[0][:1000]


def _key(media: str) -> str:
    return text_sha256(media)


class FailureLog:
    def __init__(self, settings: Settings) -> None:
        self.engine = engine_for(settings)
        FAILURES.create(self.engine, checkfirst=True)

    def record(self, media: str, stage: str, error: BaseException | str, run_id: str | None) -> None:
        """The file's latest run failed at `stage`: replace whatever was recorded for it."""
        row = {
            "media_sha256": _key(media),
            "media": media,
            "stage": stage,
            "error": first_line(error),
            "run_id": run_id,
            "failed_at": datetime.now(UTC),
        }
        with self.engine.begin() as db:
            db.execute(FAILURES.delete().where(FAILURES.c.media_sha256 == row["media_sha256"]))
            db.execute(FAILURES.insert().values(**row))

    def clear(self, media: str) -> None:
        """The file's latest run succeeded."""
        with self.engine.begin() as db:
            db.execute(FAILURES.delete().where(FAILURES.c.media_sha256 == _key(media)))

    def failures(self) -> list[Failure]:
        """Files whose latest run failed, most recent first."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(FAILURES).order_by(FAILURES.c.failed_at.desc(), FAILURES.c.media))
            return [Failure(r.media, r.stage, r.error, r.run_id, r.failed_at) for r in rows]
