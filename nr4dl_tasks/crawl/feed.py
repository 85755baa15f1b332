"""Feeds: the episodes of an RSS 2.0, Atom or podcast feed, without a browser and without yt-dlp.

Each item's media is its enclosure (RSS `<enclosure url>`, Atom
`<link rel="enclosure">`, else Media RSS `<media:content url>`); its identity is
its guid (Atom `<id>`), so an episode whose enclosure URL changes (a new CDN, a
tracking prefix) is not fetched twice; its title and publication date go to the
catalog. Paged feeds (RFC 5005 `<atom:link rel="next">`) are followed up to
`max_pages`. Items come newest first, so `max_items` takes the latest episodes
first and works through the archive backwards over the following crawls.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.core.settings import SourceSettings
from nr4dl_tasks.crawl.links import Link
from nr4dl_tasks.crawl.web import Access, Web

ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
MAX_FEED_BYTES = 50 * 1024 * 1024


def feed_links(source: SourceSettings, web: Web, domains: list[str], access: Access) -> list[Link]:
    links: list[Link] = []
    url: str | None = str(source.url)
    visited: set[str] = set()
    while url and url not in visited and len(visited) < source.max_pages:
        visited.add(url)
        with web.open(url, domains, access) as answer:
            text = answer.read(MAX_FEED_BYTES + 1)
            final = answer.url or url
        if len(text) > MAX_FEED_BYTES:
            raise SourceError(f"feed {url} is larger than {MAX_FEED_BYTES >> 20} MiB")
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise SourceError(f"feed {url} is not XML ({exc})") from None
        links += [link for item in _items(root) if (link := _link(item, final, source.name))]
        nxt = next((el.get("href") for el in root.iter(f"{ATOM}link") if el.get("rel") == "next"), None)
        url = urljoin(final, nxt) if nxt else None
    return sorted(links, key=lambda link: link.published or datetime.min.replace(tzinfo=UTC), reverse=True)


def _items(root: ET.Element) -> list[ET.Element]:
    return root.findall("./channel/item") or root.findall(f"./{ATOM}entry")


def _text(item: ET.Element, *tags: str) -> str | None:
    for tag in tags:
        el = item.find(tag)
        if el is not None and (el.text or "").strip():
            return (el.text or "").strip()
    return None


def _enclosure(item: ET.Element) -> str | None:
    el = item.find("enclosure")
    if el is not None and el.get("url"):
        return el.get("url")
    for link in item.findall(f"{ATOM}link"):
        if link.get("rel") == "enclosure" and link.get("href"):
            return link.get("href")
    media = item.find(f".//{MEDIA}content")
    return media.get("url") if media is not None else None


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)  # RSS: RFC 822
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))  # Atom: RFC 3339
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _link(item: ET.Element, base: str, source: str) -> Link | None:
    enclosure = _enclosure(item)
    if not enclosure:
        return None  # an item without media (a text post)
    url = urljoin(base, enclosure)
    guid = _text(item, "guid", f"{ATOM}id")
    published = _date(_text(item, "pubDate", f"{ATOM}published", f"{ATOM}updated"))
    return Link(
        url, _text(item, "title", f"{ATOM}title"), item=f"{source}:guid:{guid}" if guid else None, published=published
    )
