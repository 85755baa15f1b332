"""Crawl: discover each source's media, download what is new, and list the files to process.

For every source (or the one named): discover its links (`discover.py`), record
each in the catalog (`catalog.py`), download those that are new or failed last
time (`download.py`, through `web.Web`: allow-list, robots.txt, pacing, media
or nothing), and drop content the catalog already holds under another URL. The
result lists every downloaded file not yet handed to processing, which the
`nr4dl_crawl` DAG turns into one `nr4dl_process_file` run each, then marks
`triggered`.

A source that cannot be crawled (unreachable page, Chromium missing) and a link
that cannot be downloaded are recorded with their cause and reported; the other
sources and links go on. What is refused for good (off the allow-list,
disallowed by robots.txt, not media, too large) is reported as refused, apart
from failures; a selector that matched nothing is a warning. Each message names
its subject (source or URL) once.

Cookies and headers of a gated source come from `access_for(connection id)`,
which the Airflow operator fills from an Airflow connection; without it, the
connection is read from `AIRFLOW_CONN_<ID>` as Airflow itself would.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from nr4dl_tasks.core.errors import SettingsError, SourceError
from nr4dl_tasks.core.redact import hide
from nr4dl_tasks.core.settings import Settings, SourceSettings
from nr4dl_tasks.core.workdir import file_sha256, text_sha256
from nr4dl_tasks.crawl import catalog as cat
from nr4dl_tasks.crawl.discover import allow_list, discover
from nr4dl_tasks.crawl.download import fetch
from nr4dl_tasks.crawl.links import Link
from nr4dl_tasks.crawl.web import NO_ACCESS, Access, AccessFor, Refused, Web, access_from_env

log = logging.getLogger("nr4dl")


@dataclass
class NewFile:
    source: str
    url: str
    path: str
    title: str | None
    item: str | None = None  # the catalog identity when it is not the URL

    @property
    def identity(self) -> str:
        return self.item or self.url


@dataclass
class CrawlReport:
    new: list[NewFile] = field(default_factory=list)  # downloaded, not yet handed to processing
    seen: dict[str, int] = field(default_factory=dict)  # source -> links found
    refused: dict[str, str] = field(default_factory=dict)  # URL or "source x" -> why it is never fetched
    duplicates: list[str] = field(default_factory=list)  # URLs whose content the catalog already had
    failed: dict[str, str] = field(default_factory=dict)  # URL or "source x" -> cause (tried again next crawl)
    warnings: list[str] = field(default_factory=list)  # selectors that matched nothing, pages without links

    def summary(self) -> str:
        return (
            f"{len(self.new)} new file(s), {len(self.duplicates)} duplicate(s), {len(self.refused)} refused, "
            f"{len(self.failed)} failure(s), {len(self.warnings)} warning(s)"
        )


def run_id_for(new: NewFile) -> str:
    """A processing run id a person can read in the grid, the same for the same item on every crawl (so a file
    handed over twice is skipped by Airflow, not processed twice): source, file name, hash of the URL."""
    stem = Path(new.path).stem[:80]
    return re.sub(r"[^A-Za-z0-9_.~:+-]+", "_", f"{new.source}__{stem}__{_url_hash(new.url)}")


def _url_hash(url: str) -> str:
    return text_sha256(url)[:8]


def chosen_sources(settings: Settings, name: str | None) -> list[SourceSettings]:
    sources = settings.crawl.sources
    if name:
        sources = [s for s in sources if s.name == name]
        if not sources:
            raise SettingsError(
                f"no crawl source named {name!r}; the settings define {[s.name for s in settings.crawl.sources]}"
            )
    return sources


def crawl(
    settings: Settings,
    source_name: str | None = None,
    max_items: int | None = None,
    access_for: AccessFor = access_from_env,
) -> CrawlReport:
    """Crawl every source (or one), downloading at most `max_items` new items in all (default: settings)."""
    cfg = settings.crawl
    budget = max_items or cfg.max_items_per_run
    catalog = cat.Catalog(settings)
    web = Web(cfg)
    report = CrawlReport()
    for source in chosen_sources(settings, source_name):
        if source.path is not None:
            source = source.model_copy(update={"path": settings.resolve(source.path)})
        subject = f"source {source.name}"
        try:
            access = access_for(source.connection) if source.connection else NO_ACCESS
            hide(*access.secrets())
            found = discover(source, web, access, lambda identity: catalog.held(identity, cfg.max_attempts))
        except Exception as exc:  # one source that cannot be crawled never stops the others
            _failed(report, subject, exc, refused=isinstance(exc, Refused))
            continue
        report.seen[source.name] = len(found.links)
        for warning in found.warnings:
            log.warning("%s: %s", subject, warning)
        report.warnings += [f"{subject}: {w}" for w in found.warnings]
        for url, cause in found.refused.items():
            log.warning("%s: %s refused: %s", subject, url, cause)
            report.refused[url] = cause
            if catalog.seen(source.name, Link(url, None)).status in cat.TAKEN:
                catalog.mark(url, cat.REJECTED, error=cause)
        taken = 0
        for link in found.links:
            entry = catalog.seen(source.name, link)
            if entry.status == cat.DOWNLOADED and entry.path and Path(entry.path).is_file():
                report.new.append(NewFile(source.name, entry.url, entry.path, entry.title, link.item))  # never handed
                continue
            if entry.status not in cat.TAKEN or entry.attempts >= cfg.max_attempts:
                continue
            if budget <= 0 or (source.max_items and taken >= source.max_items):
                log.info("%s: %s left for the next crawl (max_items reached)", subject, link.url)
                continue
            budget, taken = budget - 1, taken + 1
            # the title first seen names the file, so a retitled episode resumes its partial download
            named = Link(entry.url, entry.title, link.item, link.published, link.extract)
            _take(named, source, settings, catalog, web, access, report)
    log.info("crawl: %s; links per source %s", report.summary(), report.seen)
    return report


def _failed(report: CrawlReport, subject: str, exc: BaseException, *, refused: bool) -> None:
    """Record one failure or refusal, its subject named once."""
    cause = str(exc) if isinstance(exc, (SourceError, SettingsError)) else f"{type(exc).__name__}: {exc}"
    cause = cause.strip().splitlines()[0] if cause.strip() else type(exc).__name__
    if refused:
        log.warning("%s refused: %s", subject, cause)
        report.refused[subject] = cause
    else:
        log.error("%s failed: %s", subject, cause)
        report.failed[subject] = cause


def _take(
    link: Link,
    source: SourceSettings,
    settings: Settings,
    catalog: cat.Catalog,
    web: Web,
    access: Access,
    report: CrawlReport,
) -> None:
    """Download one link (an inbox file is used where it is) and record the outcome."""
    try:
        path = (
            Path(url2pathname(urlparse(link.url).path))
            if source.kind == "inbox"
            else fetch(
                link,
                source.name,
                settings.crawl,
                settings.resolve(settings.crawl.download_dir),
                web,
                allow_list(source),
                access,
                extract=link.extract,
            )
        )
        sha256 = file_sha256(path)
    except Exception as exc:  # one bad link never stops the crawl
        refused = isinstance(exc, Refused)
        _failed(report, link.url, exc, refused=refused)
        catalog.mark(
            link.identity, cat.REFUSED if refused else cat.FAILED, error=(report.refused | report.failed)[link.url]
        )
        return
    holder = catalog.holder_of(sha256, link.identity)
    if holder:
        log.info("source %s: %s holds the same content as %s; not processed again", source.name, link.url, holder)
        catalog.mark(link.identity, cat.DUPLICATE, sha256=sha256, error=f"same content as {holder}")
        if source.kind != "inbox":
            path.unlink(missing_ok=True)
        report.duplicates.append(link.url)
        return
    catalog.mark(link.identity, cat.DOWNLOADED, sha256=sha256, path=str(path))
    log.info("source %s: new file %s from %s", source.name, path, link.url)
    report.new.append(NewFile(source.name, link.url, str(path), link.title, link.item))
