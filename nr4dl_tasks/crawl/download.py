"""Download: one discovered link into the data folder, safely, politely, resumably, and only if it is media.

A link is first requested through `web.Web` (allow-list, robots.txt, pacing,
user agent, every redirect hop checked): an answer that is media is saved by
`media.save` (Content-Type, then ffprobe on the first bytes, size limit). An
answer that is a web page goes to yt-dlp, which finds the media in it (an
`<audio>` element, an embed, a video site); a `ytdlp` source's entries go to
yt-dlp at once. Whatever extractor yt-dlp picked, the media URL it chose is
then fetched by `web.Web` too; only streams made of fragments (HLS, DASH) are
downloaded by yt-dlp itself, through a YoutubeDL whose every request (and the
URL it ended at) is checked the same way. Either way ffprobe reads the result
before it is handed over. A playlist or a page of several embeds and a live
stream are refused.

The file name never comes from the page as it is: it is a slug of the link's
title (letters, digits, `-`, `_`; at most 60 characters) plus a hash of the
URL, so `../../etc/passwd`, an absolute path, a 5,000 character title or two
links with one title all land as distinct files inside
`download_dir/<source>/`. The final path is checked to be inside that folder
all the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.core.settings import CrawlSettings
from nr4dl_tasks.core.workdir import text_sha256
from nr4dl_tasks.crawl import media
from nr4dl_tasks.crawl.links import Link
from nr4dl_tasks.crawl.web import Access, Refused, Web, allowed
from nr4dl_tasks.crawl.ytdlp import guarded_class, stopped

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


def _not_live(info: dict, *, incomplete: bool) -> str | None:
    return "a live stream, which never ends" if info.get("is_live") else None


def _checked(info: dict, domains: list[str]) -> None:
    """Refuse what is not one media item on an allowed domain, before a byte of media is fetched."""
    if info.get("_type", "video") != "video":
        count = len(list(info.get("entries") or []))
        raise Refused(
            f"holds {count} items (a playlist or a page of embeds), not one media file; list it as a ytdlp source"
        )
    if info.get("is_live"):
        raise Refused("a live stream, which never ends")
    for url in [info.get("webpage_url"), *(f.get("url") for f in info.get("requested_formats") or [info])]:
        if url and not allowed(url, domains):
            raise Refused(f"its media is on {url}, which is not on the allow-list {domains}")


def fetch(
    link: Link,
    source: str,
    cfg: CrawlSettings,
    download_dir: Path,
    web: Web,
    domains: list[str],
    access: Access,
    extract: bool = False,
) -> Path:
    """Download `link` into `download_dir/<source>/`; `extract`: hand it to yt-dlp at once (a ytdlp entry).

    Refused (recorded, not retried) for what must never be fetched; SourceError naming the cause for a failure
    the next crawl may not meet again. Messages do not repeat the link's URL: the caller names it.
    """
    folder = download_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    job = _Job(folder, safe_stem(link), int(cfg.max_megabytes * 1024 * 1024), web, domains, access)
    done = [p for p in folder.glob(f"{job.stem}.*") if p.stem == job.stem and p.suffix not in (".part", ".ytdl")]
    if done:
        return done[0]
    url = link.url
    if not extract:
        answer = job.open(url)
        if not media.is_page(answer):
            return job.save(answer, url)
        url = answer.url  # a page: the media is somewhere in it
        answer.close()
    info = job.ydl(url, _extracted)
    if info.get("protocol") in ("http", "https") and info.get("url"):
        # what the extractor says the media needs (a Referer, say); the user agent and cookies stay the crawl's
        sent = info.get("http_headers") or {}
        headers = {k: v for k, v in sent.items() if k.lower() not in ("cookie", "user-agent")}
        return job.save(job.open(info["url"], headers), info["url"])
    return job.ytdlp_download(info, url)


def _extracted(ydl: Any, url: str) -> dict:
    info = ydl.extract_info(url, download=False)
    if info is None:
        raise Refused("a live stream, which never ends")
    _checked(info, ydl.domains)
    return info


@dataclass(frozen=True)
class _Job:
    """One link's download: where it goes, its size limit, and the checked way onto the web."""

    folder: Path
    stem: str
    limit: int
    web: Web
    domains: list[str]
    access: Access

    @property
    def part(self) -> Path:
        return self.folder / f"{self.stem}.part"

    def open(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """GET through `Web`, asking for the rest of a `.part` a killed crawl left."""
        size = self.part.stat().st_size if self.part.is_file() else 0
        return self.web.open(
            url, self.domains, self.access, {**(headers or {}), **({"Range": f"bytes={size}-"} if size else {})}
        )

    def save(self, answer: Any, url: str) -> Path:
        final = self.folder / f"{self.stem}{media.extension(answer.url or url, media.content_type(answer))}"
        with answer:
            return self._inside(media.save(answer, self.part, final, self.limit))

    def _inside(self, path: Path) -> Path:
        if not inside(path, self.folder):
            path.unlink(missing_ok=True)
            raise Refused(f"refused to write outside {self.folder}")
        return path

    def options(self) -> dict[str, Any]:
        limit = self.limit

        def size_guard(progress: dict) -> None:  # Content-Length is not always sent: count what arrives
            if (progress.get("downloaded_bytes") or 0) > limit:
                raise stopped(Refused(f"larger than crawl.max_megabytes ({limit / 2**20:g} MiB)"))

        return {
            "outtmpl": {"default": f"{self.stem}.%(ext)s"},
            "paths": {"home": str(self.folder), "temp": str(self.folder)},
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
            "http_headers": {"User-Agent": self.web.user_agent, **self.access.request_headers()},
        }

    def ydl(self, url: str, work: Callable[[Any, str], Any]) -> Any:
        """`work(ydl, url)` in a guarded YoutubeDL; yt-dlp's errors become Refused or SourceError with their cause."""
        import yt_dlp

        try:
            with guarded_class()(self.options(), self.web, self.domains) as ydl:
                return work(ydl, url)
        except yt_dlp.utils.DownloadCancelled as exc:
            self.discard()
            raise (getattr(exc, "error", None) or SourceError(str(exc))) from None
        except Refused:
            self.discard()
            raise
        except yt_dlp.utils.DownloadError as exc:
            message = str(exc).removeprefix("ERROR: ")
            if "max-filesize" in message or "larger than max" in message:
                raise Refused(f"larger than crawl.max_megabytes ({self.limit / 2**20:g} MiB)") from None
            raise SourceError(f"yt-dlp: {message}") from None

    def ytdlp_download(self, info: dict, url: str) -> Path:
        """A stream of fragments (or separate audio and video): yt-dlp downloads it, every request checked."""
        done = self.ydl(url, lambda ydl, _: ydl.process_ie_result(info, download=True))
        downloads = (done or {}).get("requested_downloads") or []
        path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
        if path is None or not path.is_file():  # yt-dlp skips a file whose Content-Length is over the limit
            raise Refused(
                f"nothing was downloaded: larger than crawl.max_megabytes ({self.limit / 2**20:g} MiB) by its "
                "Content-Length"
            )
        if (reason := media.probe(path)) is not None:
            path.unlink(missing_ok=True)
            raise Refused(f"not audio or video: ffprobe: {reason}")
        return self._inside(path)

    def discard(self) -> None:
        for partial in self.folder.glob(f"{self.stem}.*"):
            partial.unlink(missing_ok=True)
