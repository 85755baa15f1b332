"""The small database nr4dl keeps for itself: the crawl catalog and the list of failed files.

SQLite by default (`paths.database`, or `catalog.sqlite` beside the work
folders, with a busy timeout so parallel tasks wait instead of failing); in scale-out any SQLAlchemy
URL in `crawl.catalog_url`, e.g. Airflow's own PostgreSQL. SQLAlchemy comes with
Airflow. Each table is created by the class that uses it, on first use.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa

from nr4dl_tasks.core.errors import SettingsError
from nr4dl_tasks.core.redact import redact
from nr4dl_tasks.core.settings import Settings

metadata = sa.MetaData()
DATABASE_FILE = "catalog.sqlite"


def database_file(settings: Settings) -> Path:
    """Where the SQLite database is when `crawl.catalog_url` is null."""
    if settings.paths.database is not None:
        return settings.resolve(settings.paths.database)
    return settings.resolve(settings.paths.work_dir).parent / DATABASE_FILE


def database_name(settings: Settings) -> str:
    """The database as a person can find it again: the SQLite file, or the URL with its password hidden."""
    url = settings.crawl.catalog_url
    return redact(url) if url else str(database_file(settings))


def engine_for(settings: Settings) -> sa.Engine:
    url = settings.crawl.catalog_url
    if url is None:
        path = database_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _engine(sa.URL.create("sqlite", database=str(path)))
    try:
        engine = _engine(sa.make_url(url))
        with engine.connect():  # an unreachable server is named here, not as a traceback at the first query
            pass
        return engine
    except (sa.exc.SQLAlchemyError, ValueError, ImportError) as exc:
        cause = (str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__).splitlines()[0]
        raise SettingsError(redact(f"crawl.catalog_url {url}: cannot open the database ({cause})")) from None


@functools.cache
def _engine(url: sa.URL) -> sa.Engine:
    """One engine (connection pool) per database and process."""
    return sa.create_engine(url, connect_args={"timeout": 30} if url.drivername.startswith("sqlite") else {})
