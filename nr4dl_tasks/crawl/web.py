"""The crawl's one way onto the web: every request checked, spaced, identified and authorised the same way.

Before any request (a page load in Chromium, a feed, robots.txt, a media file,
each hop of a redirect) the URL must be http(s) on the source's allow-list and
allowed by its host's robots.txt (`crawl.robots_txt`, default on). Requests to
one host are at least `crawl.domain_interval_seconds` apart, whoever makes
them, and carry `crawl.user_agent`. Redirects are followed here, one hop at a
time, so a redirect chain that leaves the allow-list is refused before the
host it points to is ever contacted.

Cookies and headers for a gated archive (`Access`) come from an Airflow
connection, which the operator reads and hands in; the engine never reads
Airflow and never logs them (the CLI reads `AIRFLOW_CONN_<ID>` the way Airflow
would). They are sent only to hosts on the source's allow-list.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import urllib.robotparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPResponse
from urllib.parse import urljoin, urlparse

from nr4dl_tasks.core.errors import SettingsError, SourceError
from nr4dl_tasks.core.settings import CrawlSettings

MAX_REDIRECTS = 10
TIMEOUT_SECONDS = 30


class Refused(SourceError):
    """What will never be fetched as it is (off the allow-list, disallowed by robots.txt, not media, too large, a
    live stream, a playlist): recorded as refused, not retried."""


@dataclass(frozen=True)
class Access:
    """Headers and cookies a gated archive needs. Only ever filled from an Airflow connection."""

    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        """The values to hide from every log."""
        return [v for v in (*self.headers.values(), *self.cookies.values()) if v]

    def request_headers(self) -> dict[str, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {**self.headers, **({"Cookie": cookie} if cookie else {})}


NO_ACCESS = Access()
# connection id -> its Access: what the operator (Airflow) or the CLI (environment) hands to the crawl.
AccessFor = Callable[[str], Access]


def access_from_extra(conn_id: str, extra: Mapping[str, object]) -> Access:
    """The Access in a connection's extra, `{"headers": {...}, "cookies": {...}}`; SettingsError names the
    connection (never a value) when it is malformed."""
    parts = {}
    for key in ("headers", "cookies"):
        value = extra.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SettingsError(f"connection {conn_id!r}: extra.{key} must be an object of strings")
        parts[key] = dict(value)
    return Access(**parts)


def access_from_env(conn_id: str) -> Access:
    """The connection as Airflow reads it from the environment: `AIRFLOW_CONN_<ID>` holding JSON."""
    text = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if text is None:
        raise SettingsError(f"connection {conn_id!r}: set AIRFLOW_CONN_{conn_id.upper()} (JSON with an extra)")
    try:
        conn = json.loads(text)
        extra = conn.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
    except (ValueError, AttributeError):
        raise SettingsError(f"connection {conn_id!r}: AIRFLOW_CONN_{conn_id.upper()} is not JSON") from None
    return access_from_extra(conn_id, extra)


def host_of(url: str) -> str:
    return (urlparse(url).hostname or "").lower()


def allowed(url: str, domains: list[str]) -> bool:
    """True when the URL is http(s) on one of the domains or a sub-domain of one."""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    return parsed.scheme in ("http", "https") and any(host == d or host.endswith("." + d) for d in domains)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx comes back as an HTTPError: Web.open checks the next hop itself


class Web:
    """Checks, spaces and sends the crawl's requests (one per crawl, shared by every source)."""

    def __init__(self, cfg: CrawlSettings) -> None:
        self.interval, self.user_agent, self.robots = cfg.domain_interval_seconds, cfg.user_agent, cfg.robots_txt
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._rules: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._opener = urllib.request.build_opener(_NoRedirects)

    def pace(self, url: str) -> None:
        """Wait until the host has had no request from this crawl for the interval."""
        host = host_of(url)
        with self._lock:
            delay = self._last.get(host, -1e9) + self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last[host] = time.monotonic()

    def answered(self, url: str) -> None:
        """The host answered: the interval counts from now (a request that took long to arrive still gets it)."""
        with self._lock:
            self._last[host_of(url)] = time.monotonic()

    def check(self, url: str, domains: list[str]) -> None:
        """Refused unless the URL may be requested at all: on the allow-list and allowed by robots.txt."""
        if not allowed(url, domains):
            raise Refused(f"host {host_of(url) or url!r} is not on the allow-list {domains}")
        if self.robots and not self._robots_for(url).can_fetch(self.user_agent, url):
            raise Refused(f"{urlparse(url).path or '/'} is disallowed by the robots.txt of {host_of(url)}")

    def _robots_for(self, url: str) -> urllib.robotparser.RobotFileParser:
        """The host's robots.txt (RFC 9309): none (4xx) allows everything; unreachable or 5xx fails this crawl
        for the host's links (retried next crawl) rather than guessing."""
        parsed = urlparse(url)
        site = f"{parsed.scheme}://{parsed.netloc}"
        if site not in self._rules:
            rules = urllib.robotparser.RobotFileParser(f"{site}/robots.txt")
            self.pace(site)
            try:
                with self._opener.open(self._request(f"{site}/robots.txt", {}), timeout=TIMEOUT_SECONDS) as answer:
                    rules.parse(answer.read(512 * 1024).decode("utf-8", "replace").splitlines())
            except urllib.error.HTTPError as exc:
                if exc.code >= 500:
                    raise SourceError(f"{site}/robots.txt answered HTTP {exc.code}; tried again next crawl") from None
                rules.parse([])  # none (or a redirect, taken as none): everything allowed
            except OSError as exc:
                raise SourceError(f"{site}/robots.txt is unreachable ({_reason(exc)})") from None
            self._rules[site] = rules
        return self._rules[site]

    def _request(self, url: str, headers: Mapping[str, str]) -> urllib.request.Request:
        return urllib.request.Request(url, headers={"User-Agent": self.user_agent, **headers})

    def open(
        self, url: str, domains: list[str], access: Access = NO_ACCESS, headers: Mapping[str, str] | None = None
    ) -> HTTPResponse:
        """GET `url`, following redirects one checked hop at a time; the answer (2xx) is open, unread.

        Refused for a hop off the allow-list or disallowed by robots.txt; SourceError naming the status for an
        HTTP error or an unreachable host."""
        sent = {**(headers or {}), **access.request_headers()}
        for _ in range(MAX_REDIRECTS + 1):
            self.check(url, domains)
            self.pace(url)
            try:
                answer = self._opener.open(self._request(url, sent), timeout=TIMEOUT_SECONDS)
                self.answered(url)
                return answer
            except urllib.error.HTTPError as exc:
                self.answered(url)
                location = exc.headers.get("Location") if 300 <= exc.code < 400 else None
                exc.close()
                if not location:
                    raise SourceError(f"{url} answered HTTP {exc.code} {exc.reason}") from None
                target = urljoin(url, location)
                if not allowed(target, domains):
                    raise Refused(f"redirected to {target}, which is not on the allow-list {domains}") from None
                url = target
            except OSError as exc:
                raise SourceError(f"{url} is unreachable ({_reason(exc)})") from None
        raise SourceError(f"more than {MAX_REDIRECTS} redirects")


def _reason(exc: OSError) -> str:
    return str(getattr(exc, "reason", None) or exc) or type(exc).__name__
