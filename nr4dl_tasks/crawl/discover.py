"""Discover: the media links each crawl source offers right now.

Five kinds of source (`crawl.sources` in the settings):

* `page`: listing pages rendered in headless Chromium (`browser.py`), because
  broadcasters' episode lists are built by JavaScript. The source's `actions`
  run first (click "Load more" until it is gone, scroll until no new items,
  wait for N items or for the network to go idle); then the links matching
  `episode_selector` are read, once at least one of them has appeared;
  `next_selector` names the link to the next listing page, followed up to
  `max_pages`. With `media_selector`, each link is an episode page, opened in
  turn, whose matching `<audio>`, `<source>` or download link is the media (none
  matching: yt-dlp extracts the page); its title is the page's own. An episode
  page the catalog holds for good is not opened again.
* `feed`: an RSS/Atom/podcast feed (`feed.py`).
* `ytdlp`: a video, playlist or channel URL, listed by yt-dlp without download.
* `url`: one direct media URL.
* `inbox`: a local folder; every file in it that has not changed for a minute
  (so files still being copied wait for the next crawl).

Each link is checked against the source's allow-list before anything is
fetched; links elsewhere are reported and never followed. A selector that
matches nothing and a page that yields no link are warnings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlparse

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.core.settings import SourceSettings
from nr4dl_tasks.crawl.browser import Browser
from nr4dl_tasks.crawl.feed import feed_links
from nr4dl_tasks.crawl.links import Found, Link
from nr4dl_tasks.crawl.web import Access, Refused, Web, allowed
from nr4dl_tasks.crawl.ytdlp import guarded_class

log = logging.getLogger("nr4dl")

INBOX_SETTLE_SECONDS = 60.0
__all__ = ["Link", "allow_list", "discover"]


def allow_list(source: SourceSettings) -> list[str]:
    """The source's allow-list, or the domain of its own URL."""
    if source.allow_domains:
        return [d.lower().lstrip(".") for d in source.allow_domains]
    return [(urlparse(source.url or "").hostname or "").lower()]


def discover(source: SourceSettings, web: Web, access: Access, known: Callable[[str], bool]) -> Found:
    """What the source offers now; `known(identity)`: the catalog holds it for good (its page is not opened).

    SourceError (Refused) when the source itself cannot be read (may not be read)."""
    domains = allow_list(source)
    found = Found()
    if source.kind == "inbox":
        found.links = inbox_files(source)
        return found
    if source.kind == "url":
        links = [Link(str(source.url), None)]
    elif source.kind == "ytdlp":
        links = ytdlp_entries(source, web, domains, access)
    elif source.kind == "feed":
        links = feed_links(source, web, domains, access)
    else:
        return rendered(source, web, domains, access, known)
    found.links = _kept(links, domains, found)
    return found


def _kept(links: list[Link], domains: list[str], found: Found) -> list[Link]:
    """The links on the allow-list, each once (the first title wins); the others go to `found.refused`."""
    kept: dict[str, Link] = {}
    for link in links:
        if allowed(link.url, domains):
            kept.setdefault(link.identity, link)
        else:
            found.refused[link.url] = f"not on the allow-list {domains}"
    return list(kept.values())


def rendered(
    source: SourceSettings, web: Web, domains: list[str], access: Access, known: Callable[[str], bool]
) -> Found:
    """Listing pages (actions, then episode links), then each episode page's media when media_selector is set."""
    found = Found()
    listed: list[Link] = []
    with Browser(web, domains, access, source.name) as browser:
        url: str | None = str(source.url)
        visited: set[str] = set()
        while url and url not in visited and len(visited) < source.max_pages:
            visited.add(url)
            browser.load(url)
            for action in source.actions:
                if warning := browser.act(action):
                    found.warnings.append(f"{url}: {warning}")
            items = browser.wait_for_urls(source.episode_selector, source.wait_seconds)
            if not items:
                found.warnings.append(
                    f"{url}: no link matching {source.episode_selector!r} within {source.wait_seconds:g} s"
                )
            log.info("source %s: %d link(s) on %s", source.name, len(items), url)
            listed += [Link(urljoin(url, href), text) for href, text in items]
            url = _next_page(browser, source, url, domains, found)
        episodes = _kept(listed, domains, found)
        if not source.media_selector:
            found.links = episodes
            return found
        for episode in episodes:
            if known(episode.url):
                found.links.append(Link(episode.url, episode.title, item=episode.url))
                continue
            try:
                found.links.append(_episode_media(browser, source, episode, found))
            except Refused as exc:
                found.refused[episode.url] = str(exc)
            except SourceError as exc:
                found.links.append(Link(episode.url, episode.title, item=episode.url))  # fails again, recorded
                found.warnings.append(str(exc))
    return found


def _episode_media(browser: Browser, source: SourceSettings, episode: Link, found: Found) -> Link:
    """The media of one episode page, identified by the page; the page itself when no element matches."""
    selector = str(source.media_selector)
    browser.load(episode.url)
    items = browser.wait_for_urls(selector, source.wait_seconds)
    title = browser.title() or episode.title
    if not items:
        found.warnings.append(f"{episode.url}: nothing matching media_selector {selector!r}; yt-dlp reads the page")
        return Link(episode.url, title, item=episode.url)
    return Link(urljoin(episode.url, items[0][0]), title, item=episode.url)


def _next_page(browser: Browser, source: SourceSettings, current: str, domains: list[str], found: Found) -> str | None:
    if not source.next_selector:
        return None
    if not browser.count(source.next_selector):
        return None  # the last page
    items = browser.elements(source.next_selector)
    if not items:
        found.warnings.append(
            f"{current}: next_selector {source.next_selector!r} matches no link (a button? use a click action)"
        )
        return None
    target = urljoin(current, items[0][0])
    if not allowed(target, domains):
        found.warnings.append(f"{current}: next page {target} is not on the allow-list; pagination stops")
        return None
    return target


def inbox_files(source: SourceSettings) -> list[Link]:
    folder = Path(str(source.path))
    if not folder.is_dir():
        raise SourceError(f"inbox {folder} is not a folder")
    settled = time.time() - INBOX_SETTLE_SECONDS
    files = sorted(
        f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".") and f.stat().st_mtime <= settled
    )
    return [Link(f.resolve().as_uri(), f.stem) for f in files if _inside(f, folder, source.name)]


def _inside(file: Path, folder: Path, source: str) -> bool:
    """Whether `file` (a link, maybe) really lies in the inbox: a link out of it (to /etc/passwd) is not taken."""
    if file.resolve().is_relative_to(folder.resolve()):
        return True
    log.warning("source %s: %r links outside the inbox (to %r), not taken", source, str(file), str(file.resolve()))
    return False


def ytdlp_entries(source: SourceSettings, web: Web, domains: list[str], access: Access) -> list[Link]:
    """The videos of a playlist or channel (or the one video), listed without downloading, every request
    checked."""
    import yt_dlp

    options = {
        "extract_flat": "in_playlist",
        "quiet": True,
        "no_warnings": True,
        "skip_download": True,
        "socket_timeout": 30,
        "http_headers": {"User-Agent": web.user_agent, **access.request_headers()},
    }
    try:
        with guarded_class()(options, web, domains) as ydl:
            info = ydl.extract_info(str(source.url), download=False)
    except yt_dlp.utils.DownloadCancelled as exc:
        raise getattr(exc, "error", None) or SourceError(f"yt-dlp cannot list {source.url}: {exc}") from None
    except yt_dlp.utils.DownloadError as exc:
        raise SourceError(f"yt-dlp cannot list {source.url}: {str(exc).removeprefix('ERROR: ')}") from None
    entries = info.get("entries") if info else None
    if entries is None:
        return [Link(_clean(info.get("webpage_url") or str(source.url)), info.get("title"), extract=True)]
    return [
        Link(_clean(e.get("url") or e.get("webpage_url")), e.get("title"), extract=True)
        for e in entries
        if e and (e.get("url") or e.get("webpage_url"))
    ]


def _clean(url: str) -> str:
    """The URL without yt-dlp's internal `#__youtubedl_smuggle=` fragment (the catalog stores what a person
    can open)."""
    from yt_dlp.utils import unsmuggle_url

    return unsmuggle_url(url)[0]
