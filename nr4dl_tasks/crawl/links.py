"""What discovery hands to the crawler: one link, and everything found on one source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Link:
    url: str  # the media (or the page yt-dlp reads): a clean URL, never yt-dlp's internals
    title: str | None  # only ever used, made safe, in the file name
    item: str | None = None  # the identity when it is not the URL: a feed item's guid, an episode page
    published: datetime | None = None
    extract: bool = False  # an entry yt-dlp listed: yt-dlp reads it again to download it

    @property
    def identity(self) -> str:
        return self.item or self.url


@dataclass
class Found:
    """A source's links, what was refused before any request (cause by URL), and warnings for the summary."""

    links: list[Link] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
