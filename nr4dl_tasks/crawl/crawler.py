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

from nr4dl_tasks.core.errors import SettingsError, SourceError
from nr4dl_tasks.core.settings import Settings, SourceSettings
from nr4dl_tasks.core.workdir import file_sha256, text_sha256
from nr4dl_tasks.crawl import catalog as cat
from nr4dl_tasks.crawl.discover import Link, allow_list, discover
from nr4dl_tasks.crawl.download import DomainPacer, Refused, fetch

log = logging.getLogger("nr4dl")


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


def crawl(settings: Settings, source_name: str | None = None, max_items: int | None = None) -> CrawlReport:
    """Crawl every source (or one), downloading at most `max_items` new items in all (default: settings)."""
    cfg = settings.crawl
    budget = max_items or cfg.max_items_per_run
    catalog = cat.Catalog(settings)
    download_dir = settings.resolve(cfg.download_dir)
    pacer = DomainPacer(cfg.domain_interval_seconds)
    report = CrawlReport()
    for source in chosen_sources(settings, source_name):
        if source.path is not None:
            source = source.model_copy(update={"path": settings.resolve(source.path)})
        try:
            links, refused = discover(source)
        except Exception as exc:  # one source that cannot be crawled never stops the others
            cause = str(exc) if isinstance(exc, SourceError) else f"source {source.name}: {type(exc).__name__}: {exc}"
            log.error("%s", cause)
            report.failed[f"source {source.name}"] = cause
            continue
        report.seen[source.name] = len(links)
        if refused:
            report.refused[source.name] = refused
            for url in refused:
                if catalog.seen(source.name, url, None).status == cat.NEW:
                    catalog.mark(url, cat.REJECTED, error="not on the source's allow-list")
        taken = 0
        for link in links:
            entry = catalog.seen(source.name, link.url, link.title)
            if entry.status == cat.DOWNLOADED and entry.path and Path(entry.path).is_file():
                report.new.append(NewFile(source.name, link.url, entry.path, entry.title))  # never handed over
                continue
            if entry.status not in cat.TAKEN or entry.attempts >= cfg.max_attempts:
                continue
            if budget <= 0 or (source.max_items and taken >= source.max_items):
                log.info("source %s: %s left for the next crawl (max_items reached)", source.name, link.url)
                continue
            budget, taken = budget - 1, taken + 1
            # the title first seen names the file, so a retitled episode resumes its partial download
            _take(Link(link.url, entry.title), source, settings, catalog, download_dir, pacer, report)
    log.info(
        "crawl: %d new file(s), %d duplicate(s), %d failure(s), links per source %s",
        len(report.new),
        len(report.duplicates),
        len(report.failed),
        report.seen,
    )
    return report


def _take(
    link: Link,
    source: SourceSettings,
    settings: Settings,
    catalog: cat.Catalog,
    download_dir: Path,
    pacer: DomainPacer,
    report: CrawlReport,
) -> None:
    """Download one link (an inbox file is used where it is) and record the outcome."""
    try:
        path = (
            Path(url2pathname(urlparse(link.url).path))
            if source.kind == "inbox"
            else fetch(link, source.name, settings.crawl, download_dir, pacer, allow_list(source))
        )
        sha256 = file_sha256(path)
    except Exception as exc:  # one bad link never stops the crawl
        cause = str(exc) if isinstance(exc, SourceError) else f"{link.url}: {type(exc).__name__}: {exc}"
        log.error("source %s: %s", source.name, cause)
        if isinstance(exc, Refused):
            catalog.mark(link.url, cat.REFUSED, error=cause)
        else:
            catalog.mark(link.url, cat.FAILED, error=cause)
        report.failed[link.url] = cause
        return
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
