"""Download: one discovered link into the data folder, safely, politely and resumably.

Everything is fetched by yt-dlp (audio only where the site offers it), which
understands video sites and plain media URLs alike, resumes a `.part` file left
by a killed task, and refuses a file larger than `crawl.max_megabytes`.

The file name never comes from the page as it is: it is the source name and a
slug of the link's title (letters, digits, `-`, `_`; at most 60 characters)
plus a hash of the URL, so `../../etc/passwd`, an absolute path, a 5,000
character title or two links with one title all land as distinct files inside
`download_dir/<source>/`. The final path is checked to be inside that folder
all the same.

Requests to one domain are spaced by `crawl.domain_interval_seconds`.

Before a byte of media is fetched, yt-dlp's metadata is checked: the page it
actually extracted (after redirects) must be on the source's allow-list, and
for plain links and embeds the media URL too; a playlist or a page of several
embeds and a live stream are refused. The size limit is enforced on the bytes
that arrive, not only on the Content-Length the server announces. Redirects of
the media request itself are left to yt-dlp.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.core.settings import CrawlSettings
from nr4dl_tasks.core.workdir import text_sha256
from nr4dl_tasks.crawl.discover import Link, allowed

log = logging.getLogger("nr4dl")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
SLUG_CHARS = 60


def safe_stem(link: Link) -> str:
    """A file stem made only of safe characters: slug of the title (or URL name) and a hash of the URL."""
    name = link.title or Path(unquote(urlparse(link.url).path)).stem or "media"
    slug = _UNSAFE.sub("-", name).strip("-_")[:SLUG_CHARS].strip("-_") or "media"
    return f"{slug}-{text_sha256(link.url)[:10]}"


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class DomainPacer:
    """Spaces requests to one domain by a minimum interval (per process; crawl tasks share a pool slot)."""

    def __init__(self, interval: float) -> None:
        self.interval, self._lock = interval, threading.Lock()
        self._last: dict[str, float] = {}

    def wait(self, url: str) -> None:
        domain = (urlparse(url).hostname or "").lower()
        with self._lock:
            delay = self._last.get(domain, -1e9) + self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last[domain] = time.monotonic()


class Refused(SourceError):
    """A link that will never be downloaded as it is (too large, a live stream, a playlist, off the allow-list):
    recorded as refused, not retried."""


def _not_live(info: dict, *, incomplete: bool) -> str | None:
    return f"{info.get('webpage_url')}: a live stream, which never ends" if info.get("is_live") else None


def _checked(info: dict, link: Link, domains: list[str]) -> None:
    """Refuse what is not one media item on an allowed domain, before a byte of media is fetched."""
    if info.get("_type", "video") != "video":
        count = len(list(info.get("entries") or []))
        raise Refused(
            f"{link.url}: holds {count} items (a playlist or a page of embeds), not one media file; "
            "list it as a ytdlp source instead"
        )
    page = info.get("webpage_url") or link.url
    urls = [page]
    if info.get("extractor") == "generic":  # a plain link or an embed: the media URL itself must be allowed too
        urls += [f.get("url") for f in info.get("requested_formats") or [info] if f.get("url")]
    for url in urls:
        if url.startswith("http") and not allowed(url, domains):
            raise Refused(f"{link.url}: leads to {url}, which is not on the allow-list {domains}")


def fetch(
    link: Link, source: str, cfg: CrawlSettings, download_dir: Path, pacer: DomainPacer, domains: list[str]
) -> Path:
    """Download `link` into `download_dir/<source>/`.

    Refused (recorded, not retried) for what must never be fetched; SourceError naming the URL and cause for
    a failure the next crawl may not meet again.
    """
    import yt_dlp

    folder = download_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(link)
    done = [p for p in folder.glob(f"{stem}.*") if p.stem == stem and p.suffix not in (".part", ".ytdl")]
    if done:
        return done[0]
    limit = int(cfg.max_megabytes * 1024 * 1024)

    def size_guard(progress: dict) -> None:  # Content-Length is not always sent: count what arrives
        if (progress.get("downloaded_bytes") or 0) > limit:
            raise Refused(f"{link.url}: larger than crawl.max_megabytes ({cfg.max_megabytes:g} MiB)")

    options = {
        "outtmpl": {"default": f"{stem}.%(ext)s"},
        "paths": {"home": str(folder), "temp": str(folder)},
        "format": "bestaudio/best",
        "max_filesize": limit,
        "continuedl": True,
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": 30,
        "retries": 3,
        "overwrites": False,
        "restrictfilenames": True,
        "windowsfilenames": True,
        "progress_hooks": [size_guard],
        "match_filter": _not_live,
    }
    pacer.wait(link.url)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(link.url, download=False)
            if info is None:
                raise Refused(f"{link.url}: a live stream, which never ends")
            _checked(info, link, domains)
            info = ydl.process_ie_result(info, download=True)
    except Refused:
        for partial in folder.glob(f"{stem}.*"):
            partial.unlink(missing_ok=True)
        raise
    except yt_dlp.utils.DownloadError as exc:
        message = str(exc).removeprefix("ERROR: ")
        if "max-filesize" in message or "larger than max" in message:
            raise Refused(f"{link.url}: larger than crawl.max_megabytes ({cfg.max_megabytes:g} MiB)") from None
        raise SourceError(f"{link.url}: download failed: {message}") from None
    downloads = (info or {}).get("requested_downloads") or []
    path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
    if path is None or not path.is_file():  # yt-dlp skips a file whose Content-Length is over the limit
        raise Refused(
            f"{link.url}: nothing was downloaded: larger than crawl.max_megabytes "
            f"({cfg.max_megabytes:g} MiB) by its Content-Length"
        )
    if not inside(path, folder):
        path.unlink(missing_ok=True)
        raise Refused(f"{link.url}: refused to write outside {folder}")
    return path
