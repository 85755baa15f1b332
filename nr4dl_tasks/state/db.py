"""The small database nr4dl keeps for itself: the crawl catalog and the list of failed files.

SQLite by default (`catalog.sqlite` beside the work folders, with a busy
timeout so parallel tasks wait instead of failing); in scale-out any SQLAlchemy
URL in `crawl.catalog_url`, e.g. Airflow's own PostgreSQL. SQLAlchemy comes with
Airflow. Each table is created by the class that uses it, on first use.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from nr4dl_tasks.core.errors import SettingsError
from nr4dl_tasks.core.redact import redact
from nr4dl_tasks.core.settings import Settings

metadata = sa.MetaData()
DATABASE_FILE = "catalog.sqlite"


def engine_for(settings: Settings) -> sa.Engine:
    url = settings.crawl.catalog_url
    if url is None:
        work = settings.resolve(settings.paths.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        return _engine(sa.URL.create("sqlite", database=str(work.parent / DATABASE_FILE)))
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
