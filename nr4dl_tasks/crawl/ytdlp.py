"""yt-dlp held to the crawl's checks: a YoutubeDL whose every request goes through `Web.check` and `Web.pace`.

yt-dlp fetches pages to extract them and, for streams made of fragments, the
media itself; all of it goes through `YoutubeDL.urlopen`, which this subclass
checks (allow-list, robots.txt, spacing) before the request and again on the URL
the answer came from (after redirects). A refusal leaves yt-dlp as a
`DownloadCancelled`, which yt-dlp lets through every layer unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.crawl.web import Refused, Web, allowed


@functools.cache
def guarded_class() -> type:
    """A YoutubeDL whose every request is checked by `Web` (and the URL it ended at, after redirects)."""
    import yt_dlp

    class Guarded(yt_dlp.YoutubeDL):
        def __init__(self, params: dict, web: Web, domains: list[str]) -> None:
            super().__init__(params)
            self.web, self.domains = web, domains

        def urlopen(self, req: Any) -> Any:
            url = req if isinstance(req, str) else getattr(req, "url", None) or req.get_full_url()
            try:
                self.web.check(url, self.domains)
            except SourceError as exc:
                raise stopped(exc) from None
            self.web.pace(url)
            answer = super().urlopen(req)
            if not allowed(answer.url, self.domains):
                answer.close()
                raise stopped(Refused(f"redirected to {answer.url}, which is not on the allow-list {self.domains}"))
            return answer

    return Guarded


@functools.cache
def _stopped_class() -> type:
    import yt_dlp

    class Stopped(yt_dlp.utils.DownloadCancelled):
        """Carries a refusal out of yt-dlp, which lets a cancellation through every layer unchanged."""

        def __init__(self, error: SourceError) -> None:
            super().__init__(str(error))
            self.error = error

    return Stopped


def stopped(error: SourceError) -> Exception:
    return _stopped_class()(error)
