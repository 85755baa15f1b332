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
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from nr4dl_tasks.discover import Link
from nr4dl_tasks.errors import SourceError
from nr4dl_tasks.settings import CrawlSettings

log = logging.getLogger("nr4dl")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
SLUG_CHARS = 60


def safe_stem(link: Link) -> str:
    """A file stem made only of safe characters: slug of the title (or URL name) and a hash of the URL."""
    name = link.title or Path(unquote(urlparse(link.url).path)).stem or "media"
    slug = _UNSAFE.sub("-", name).strip("-_")[:SLUG_CHARS].strip("-_") or "media"
    return f"{slug}-{hashlib.sha256(link.url.encode()).hexdigest()[:10]}"


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class DomainPacer:
    """Spaces requests to one domain by a minimum interval (per process; crawl tasks share a pool slot)."""

    def __init__(self, interval: float) -> None:
        self.interval, self._last, self._lock = interval, {}, threading.Lock()

    def wait(self, url: str) -> None:
        domain = (urlparse(url).hostname or "").lower()
        with self._lock:
            delay = self._last.get(domain, -1e9) + self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last[domain] = time.monotonic()


def fetch(link: Link, source: str, cfg: CrawlSettings, download_dir: Path, pacer: DomainPacer) -> Path:
    """Download `link` into `download_dir/<source>/`; SourceError naming the URL and cause when it fails."""
    import yt_dlp

    folder = download_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(link)
    done = [p for p in folder.glob(f"{stem}.*") if not p.name.endswith((".part", ".ytdl"))]
    if done:
        return done[0]
    limit = int(cfg.max_megabytes * 1024 * 1024)
    options = {
        "outtmpl": {"default": f"{stem}.%(ext)s"}, "paths": {"home": str(folder), "temp": str(folder)},
        "format": "bestaudio/best", "max_filesize": limit, "continuedl": True, "noplaylist": True,
        "quiet": True, "no_warnings": True, "noprogress": True, "socket_timeout": 30, "retries": 3,
        "overwrites": False, "restrictfilenames": True, "windowsfilenames": True,
    }
    pacer.wait(link.url)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(link.url, download=True)
            path = Path(ydl.prepare_filename(info)) if info else None
    except yt_dlp.utils.DownloadError as exc:
        raise SourceError(f"{link.url}: download failed: {str(exc).removeprefix('ERROR: ')}") from None
    if path is None or not path.is_file():
        # yt-dlp skips a file over max_filesize without an error
        raise SourceError(f"{link.url}: nothing was downloaded (larger than crawl.max_megabytes "
                          f"{cfg.max_megabytes:g}, or no media found)")
    if not inside(path, folder):
        path.unlink(missing_ok=True)
        raise SourceError(f"{link.url}: refused to write outside {folder}")
    if path.stat().st_size > limit:
        path.unlink()
        raise SourceError(f"{link.url}: larger than crawl.max_megabytes {cfg.max_megabytes:g}")
    return path
