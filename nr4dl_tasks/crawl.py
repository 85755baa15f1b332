"""Crawl: discover each source's media, download what is new, and list the files to process.

For every source (or the one named): discover its links (`discover.py`), record
each in the catalog (`catalog.py`), download those that are new or failed last
time (`download.py`), and drop content the catalog already holds under another
URL. The result lists every downloaded file not yet handed to processing, which
the `nr4dl_crawl` DAG turns into one `nr4dl_process_file` run each, then marks
`triggered`.

A source that cannot be crawled (unreachable page, Chromium missing) and a link
that cannot be downloaded are recorded with their cause and reported; the other
sources and links go on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from nr4dl_tasks import catalog as cat
from nr4dl_tasks.discover import Link, discover
from nr4dl_tasks.download import DomainPacer, fetch
from nr4dl_tasks.errors import SettingsError, SourceError
from nr4dl_tasks.settings import Settings, SourceSettings
from nr4dl_tasks.workdir import file_sha256

log = logging.getLogger("nr4dl")

CATALOG_FILE = "catalog.sqlite"


@dataclass
class NewFile:
    source: str
    url: str
    path: str
    title: str | None


@dataclass
class CrawlReport:
    new: list[NewFile] = field(default_factory=list)  # downloaded, not yet handed to processing
    seen: dict[str, int] = field(default_factory=dict)  # source -> links found
    refused: dict[str, list[str]] = field(default_factory=dict)  # source -> links off the allow-list
    duplicates: list[str] = field(default_factory=list)  # URLs whose content the catalog already had
    failed: dict[str, str] = field(default_factory=dict)  # URL or source -> cause


def run_id_for(new: NewFile, crawl_run_id: str) -> str:
    """A processing run id a person can read in the grid: source, file, and the crawl that found it."""
    stem = Path(new.path).stem
    return re.sub(r"[^A-Za-z0-9_.~:+-]+", "_", f"{new.source}__{stem}__{crawl_run_id}")[:250]


def catalog_for(settings: Settings) -> cat.Catalog:
    url = settings.crawl.catalog_url
    if url is None:
        work = settings.resolve(settings.paths.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{work.parent / CATALOG_FILE}"
    return cat.Catalog(url)


def chosen_sources(settings: Settings, name: str | None) -> list[SourceSettings]:
    sources = settings.crawl.sources
    if name:
        sources = [s for s in sources if s.name == name]
        if not sources:
            raise SettingsError(f"no crawl source named {name!r}; the settings define "
                                f"{[s.name for s in settings.crawl.sources]}")
    return sources


def crawl(settings: Settings, source_name: str | None = None, max_items: int | None = None) -> CrawlReport:
    """Crawl every source (or one), downloading at most `max_items` new items in all (default: settings)."""
    cfg = settings.crawl
    budget = max_items or cfg.max_items_per_run
    catalog = catalog_for(settings)
    download_dir = settings.resolve(cfg.download_dir)
    pacer = DomainPacer(cfg.domain_interval_seconds)
    report = CrawlReport()
    for source in chosen_sources(settings, source_name):
        try:
            links, refused = discover(source)
        except SourceError as exc:
            log.error("%s", exc)
            report.failed[f"source {source.name}"] = str(exc)
            continue
        report.seen[source.name] = len(links)
        if refused:
            report.refused[source.name] = refused
            for url in refused:
                catalog.seen(source.name, url, None)
                catalog.mark(url, cat.REJECTED, error="not on the source's allow-list")
        for link in links:
            entry = catalog.seen(source.name, link.url, link.title)
            if entry.status == cat.DOWNLOADED and entry.path and Path(entry.path).is_file():
                report.new.append(NewFile(source.name, link.url, entry.path, entry.title))  # never handed over
                continue
            if entry.status not in (cat.NEW, cat.FAILED) or entry.attempts >= cfg.max_attempts:
                continue
            if budget <= 0:
                log.info("source %s: %s left for the next crawl (max_items reached)", source.name, link.url)
                continue
            budget -= 1
            _take(link, source, settings, catalog, download_dir, pacer, report)
    log.info("crawl: %d new file(s), %d duplicate(s), %d failure(s), links per source %s", len(report.new),
             len(report.duplicates), len(report.failed), report.seen)
    return report


def _take(link: Link, source: SourceSettings, settings: Settings, catalog: cat.Catalog, download_dir: Path,
          pacer: DomainPacer, report: CrawlReport) -> None:
    """Download one link (an inbox file is used where it is) and record the outcome."""
    try:
        path = Path(url2pathname(urlparse(link.url).path)) if source.kind == "inbox" else \
            fetch(link, source.name, settings.crawl, download_dir, pacer)
    except SourceError as exc:
        log.error("source %s: %s", source.name, exc)
        catalog.mark(link.url, cat.FAILED, error=str(exc))
        report.failed[link.url] = str(exc)
        return
    sha256 = file_sha256(path)
    holder = catalog.holder_of(sha256, link.url)
    if holder:
        log.info("source %s: %s holds the same content as %s; not processed again", source.name, link.url, holder)
        catalog.mark(link.url, cat.DUPLICATE, sha256=sha256, error=f"same content as {holder}")
        if source.kind != "inbox":
            path.unlink(missing_ok=True)
        report.duplicates.append(link.url)
        return
    catalog.mark(link.url, cat.DOWNLOADED, sha256=sha256, path=str(path))
    log.info("source %s: new file %s from %s", source.name, path, link.url)
    report.new.append(NewFile(source.name, link.url, str(path), link.title))
