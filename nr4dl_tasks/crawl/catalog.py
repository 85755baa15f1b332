"""The crawl catalog: every item a crawl has seen, in a real database table.

One row per item, keyed by its identity: its URL (a local inbox file is
`file://` + its path), or a feed item's guid, or the episode page its media was
found on. A row holds the item's source, media URL, title, publication date,
content hash, first and last time seen, status, file and last error. It is
what makes a nightly crawl incremental:

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
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.workdir import text_sha256
from nr4dl_tasks.crawl.links import Link
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
    # of the identity (the URL unless `item` is set): URLs can be longer than an index allows
    sa.Column("url_sha256", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("item", sa.Text),  # the identity when it is not the URL: a guid, an episode page
    sa.Column("published", sa.DateTime(timezone=True)),
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
    item: str | None = None
    published: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self.engine = engine_for(settings)
        ITEMS.create(self.engine, checkfirst=True)
        _add_new_columns(self.engine)

    def seen(self, source: str, link: Link) -> Entry:
        """Record that a crawl found `link`; returns its entry (a new one with status `new`). An item still to be
        taken keeps the latest media URL it was found at."""
        now = _now()
        key = _key(link.identity)
        with self.engine.begin() as db:
            row = db.execute(sa.select(ITEMS).where(ITEMS.c.url_sha256 == key)).mappings().first()
            if row is None:
                db.execute(
                    ITEMS.insert().values(
                        url_sha256=key,
                        url=link.url,
                        item=link.item,
                        published=link.published,
                        source=source,
                        title=link.title,
                        status=NEW,
                        attempts=0,
                        first_seen=now,
                        last_seen=now,
                    )
                )
                return Entry(link.url, source, link.title, NEW, 0, None, None, link.item, link.published)
            moved = row["status"] in TAKEN and link.url != link.identity and link.url != row["url"]
            db.execute(
                ITEMS.update()
                .where(ITEMS.c.url_sha256 == key)
                .values(last_seen=now, **({"url": link.url} if moved else {}))
            )
            entry = _entry(row)
            return Entry(link.url, *astuple(entry)[1:]) if moved else entry

    def held(self, identity: str, max_attempts: int) -> bool:
        """Whether the item is in the catalog for good: nothing a crawl would take again."""
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(ITEMS.c.status, ITEMS.c.attempts).where(ITEMS.c.url_sha256 == _key(identity))
            ).first()
        return row is not None and (row.status not in TAKEN or row.attempts >= max_attempts)

    def holder_of(self, sha256: str, identity: str) -> str | None:
        """The URL of another item whose content is this one's, already downloaded or processed."""
        with self.engine.connect() as db:
            return (
                db.execute(
                    sa.select(ITEMS.c.url).where(
                        ITEMS.c.sha256 == sha256,
                        ITEMS.c.url_sha256 != _key(identity),
                        ITEMS.c.status.in_((DOWNLOADED, TRIGGERED)),
                    )
                )
                .scalars()
                .first()
            )

    def mark(self, identity: str, status: str, **fields: Any) -> None:
        """Set an item's status (and path, sha256, error); a failure also counts an attempt."""
        values = {"status": status, **fields}
        if status == FAILED:
            values["attempts"] = ITEMS.c.attempts + 1
        elif "error" not in fields:
            values["error"] = None
        with self.engine.begin() as db:
            db.execute(ITEMS.update().where(ITEMS.c.url_sha256 == _key(identity)).values(**values))

    def mark_triggered(self, identities: Iterable[str]) -> None:
        with self.engine.begin() as db:
            keys = [_key(i) for i in identities]
            db.execute(ITEMS.update().where(ITEMS.c.url_sha256.in_(keys)).values(status=TRIGGERED))

    def entries(self, source: str | None = None) -> list[Entry]:
        query = sa.select(ITEMS).order_by(ITEMS.c.source, ITEMS.c.url)
        if source:
            query = query.where(ITEMS.c.source == source)
        with self.engine.connect() as db:
            return [_entry(row) for row in db.execute(query).mappings()]


def _key(url: str) -> str:
    return text_sha256(url)


def _entry(row: Any) -> Entry:
    return Entry(
        row["url"],
        row["source"],
        row["title"],
        row["status"],
        row["attempts"],
        row["path"],
        row["sha256"],
        row["item"],
        row["published"],
    )


def _add_new_columns(engine: sa.Engine) -> None:
    """A catalog made before `item` and `published` existed gets them (empty), so old catalogs keep working."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(ITEMS.name)}
    with engine.begin() as db:
        for column in ITEMS.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                db.execute(sa.text(f'ALTER TABLE {ITEMS.name} ADD COLUMN "{column.name}" {kind}'))
