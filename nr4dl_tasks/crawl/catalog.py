"""The crawl catalog: every item a crawl has seen, in a real database table.

One row per URL (a local inbox file is `file://` + its path): its source, title,
content hash, first and last time seen, status, file and last error. It is what
makes a nightly crawl incremental:

* an item `downloaded` or `triggered` before is not fetched again;
* content already in the catalog under another URL (an episode re-published
  with a new link) is marked `duplicate` and never processed twice;
* a `failed` download is tried again on the next crawl, up to `max_attempts`;
  one `refused` for good (too large, a live stream, a playlist) is not;
* an item `downloaded` whose processing run was never triggered (the crawl
  died in between) is handed over again.

It lives in nr4dl's own database (`statedb.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.workdir import text_sha256
from nr4dl_tasks.state.db import engine_for, metadata

log = logging.getLogger("nr4dl")

NEW, DOWNLOADED, TRIGGERED, DUPLICATE, FAILED, REJECTED, REFUSED = (
    "new",
    "downloaded",
    "triggered",
    "duplicate",
    "failed",
    "rejected",
    "refused",
)
# Taken by a crawl: never seen, failed before (up to crawl.max_attempts), or off the allow-list before (the
# allow-list may have grown). `refused` (too large, live, a playlist) and the rest are never taken again.
TAKEN = (NEW, FAILED, REJECTED)

ITEMS = sa.Table(
    "nr4dl_catalog",
    metadata,
    sa.Column("url_sha256", sa.String(64), primary_key=True),  # URLs can be longer than an index allows
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False, index=True),
    sa.Column("title", sa.Text),
    sa.Column("sha256", sa.String(64), index=True),
    sa.Column("path", sa.String(4096)),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Entry:
    url: str
    source: str
    title: str | None
    status: str
    attempts: int
    path: str | None
    sha256: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self.engine = engine_for(settings)
        ITEMS.create(self.engine, checkfirst=True)

    def seen(self, source: str, url: str, title: str | None) -> Entry:
        """Record that a crawl found `url`; returns its entry (a new one with status `new`)."""
        now = _now()
        with self.engine.begin() as db:
            row = db.execute(sa.select(ITEMS).where(ITEMS.c.url_sha256 == _key(url))).mappings().first()
            if row is None:
                db.execute(
                    ITEMS.insert().values(
                        url_sha256=_key(url),
                        url=url,
                        source=source,
                        title=title,
                        status=NEW,
                        attempts=0,
                        first_seen=now,
                        last_seen=now,
                    )
                )
                return Entry(url, source, title, NEW, 0, None, None)
            db.execute(ITEMS.update().where(ITEMS.c.url_sha256 == _key(url)).values(last_seen=now))
            return _entry(row)

    def holder_of(self, sha256: str, url: str) -> str | None:
        """Another URL whose content is this one's, already downloaded or processed."""
        with self.engine.connect() as db:
            return (
                db.execute(
                    sa.select(ITEMS.c.url).where(
                        ITEMS.c.sha256 == sha256,
                        ITEMS.c.url_sha256 != _key(url),
                        ITEMS.c.status.in_((DOWNLOADED, TRIGGERED)),
                    )
                )
                .scalars()
                .first()
            )

    def mark(self, url: str, status: str, **fields: Any) -> None:
        """Set an item's status (and path, sha256, error); a failure also counts an attempt."""
        values = {"status": status, **fields}
        if status == FAILED:
            values["attempts"] = ITEMS.c.attempts + 1
        elif "error" not in fields:
            values["error"] = None
        with self.engine.begin() as db:
            db.execute(ITEMS.update().where(ITEMS.c.url_sha256 == _key(url)).values(**values))

    def mark_triggered(self, urls: Iterable[str]) -> None:
        with self.engine.begin() as db:
            db.execute(ITEMS.update().where(ITEMS.c.url_sha256.in_([_key(u) for u in urls])).values(status=TRIGGERED))

    def entries(self, source: str | None = None) -> list[Entry]:
        query = sa.select(ITEMS).order_by(ITEMS.c.source, ITEMS.c.url)
        if source:
            query = query.where(ITEMS.c.source == source)
        with self.engine.connect() as db:
            return [_entry(row) for row in db.execute(query).mappings()]


def _key(url: str) -> str:
    return text_sha256(url)


def _entry(row: Any) -> Entry:
    return Entry(row["url"], row["source"], row["title"], row["status"], row["attempts"], row["path"], row["sha256"])
