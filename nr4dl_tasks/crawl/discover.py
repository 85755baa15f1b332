"""Discover: the media links each crawl source offers right now.

Four kinds of source (`crawl.sources` in the settings):

* `page`: a web page rendered in headless Chromium through Selenium, because
  broadcasters' episode lists are built by JavaScript. Links are the elements
  matching `link_selector` (CSS, or XPath after `xpath:`), read once they have
  appeared; `next_selector` names the link to the next page, followed up to
  `max_pages`. Chromium runs with background networking, sync, extensions and
  component updates off, so the crawl makes no request but the pages' own.
* `ytdlp`: a video, playlist or channel URL, listed by yt-dlp without download.
* `url`: one direct media URL.
* `inbox`: a local folder; every file in it that has not changed for a minute
  (so files still being copied wait for the next crawl).

Each link is checked against the source's allow-list of domains before anything
is fetched; links elsewhere are reported and never followed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlparse

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.core.settings import SourceSettings

log = logging.getLogger("nr4dl")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--mute-audio",
    "--disable-features=MediaRouter,OptimizationHints,Translate",
)
INBOX_SETTLE_SECONDS = 60.0
PAGE_LOAD_SECONDS = 60
# Chromium shows its own error page instead of raising when a host refuses or does not resolve.
NETWORK_ERROR_JS = """
if (!location.href.startsWith("chrome-error://") && !document.querySelector("body.neterror")) return "";
var code = document.querySelector(".error-code");
return (code && code.textContent.trim()) || "network error";
"""


@dataclass(frozen=True)
class Link:
    url: str
    title: str | None  # link text or title attribute: only ever used, made safe, in the file name


def allowed(url: str, domains: list[str]) -> bool:
    """True when the URL is http(s) on one of the domains or a sub-domain of one."""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    return parsed.scheme in ("http", "https") and any(host == d or host.endswith("." + d) for d in domains)


def allow_list(source: SourceSettings) -> list[str]:
    """The source's allow-list, or the domain of its own URL."""
    if source.allow_domains:
        return [d.lower().lstrip(".") for d in source.allow_domains]
    return [(urlparse(source.url or "").hostname or "").lower()]


def discover(source: SourceSettings) -> tuple[list[Link], list[str]]:
    """(links to fetch, links refused by the allow-list). SourceError names the source and cause."""
    if source.kind == "inbox":
        return inbox_files(source), []
    if source.kind == "url":
        links = [Link(str(source.url), None)]
    elif source.kind == "ytdlp":
        links = ytdlp_entries(source)
    else:
        links = rendered_links(source)
    domains = allow_list(source)
    refused = [link.url for link in links if not allowed(link.url, domains)]
    kept = list({link.url: link for link in links if allowed(link.url, domains)}.values())  # first title wins
    for url in refused:
        log.warning("source %s: %s is not on the allow-list %s; not fetched", source.name, url, domains)
    return kept, refused


def inbox_files(source: SourceSettings) -> list[Link]:
    folder = Path(str(source.path))
    if not folder.is_dir():
        raise SourceError(f"source {source.name}: inbox {folder} is not a folder")
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


def ytdlp_entries(source: SourceSettings) -> list[Link]:
    """The videos of a playlist or channel (or the one video), listed without downloading."""
    import yt_dlp

    options = {
        "extract_flat": "in_playlist",
        "quiet": True,
        "no_warnings": True,
        "skip_download": True,
        "socket_timeout": 30,
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(str(source.url), download=False)
    except yt_dlp.utils.DownloadError as exc:
        raise SourceError(f"source {source.name}: yt-dlp cannot list {source.url}: {exc}") from None
    entries = info.get("entries") if info else None
    if entries is None:
        return [Link(info.get("webpage_url") or str(source.url), info.get("title"))]
    return [
        Link(e.get("url") or e.get("webpage_url"), e.get("title"))
        for e in entries
        if e and (e.get("url") or e.get("webpage_url"))
    ]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # explicit paths: Selenium Manager would try to download a driver
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def _locator(selector: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    if selector.startswith("xpath:"):
        return By.XPATH, selector.removeprefix("xpath:")
    return By.CSS_SELECTOR, selector


def rendered_links(source: SourceSettings) -> list[Link]:
    """Links matching `link_selector` on the rendered page and the pages `next_selector` leads to."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    links: list[Link] = []
    url: str | None = str(source.url)
    visited: set[str] = set()
    try:
        driver = _browser()
        driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
    except WebDriverException as exc:
        raise SourceError(
            f"source {source.name}: Chromium did not start ({exc.msg}); scripts/setup.sh installs "
            f"chromium and chromium-driver"
        ) from None
    try:
        while url and url not in visited and len(visited) < source.max_pages:
            visited.add(url)
            try:
                driver.get(url)
            except WebDriverException as exc:
                raise SourceError(
                    f"source {source.name}: page {url} is unreachable "
                    f"({(exc.msg or type(exc).__name__).splitlines()[0]})"
                ) from None
            if failure := driver.execute_script(NETWORK_ERROR_JS):
                raise SourceError(f"source {source.name}: page {url} is unreachable ({failure})")
            try:
                WebDriverWait(driver, source.wait_seconds).until(
                    ec.presence_of_element_located(_locator(source.link_selector))
                )
            except TimeoutException:
                log.warning(
                    "source %s: no link matching %r appeared on %s within %.0f s",
                    source.name,
                    source.link_selector,
                    url,
                    source.wait_seconds,
                )
            found = _read_links(driver, source, url)
            log.info("source %s: %d link(s) on %s", source.name, len(found), url)
            links += found
            url = _next_page(driver, source, url)
    finally:
        driver.quit()
    return links


def _read_links(driver, source: SourceSettings, url: str) -> list[Link]:
    """The matching links as they are now; read again once if the script redrew the page meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in (1, 2):
        try:
            return [
                Link(urljoin(url, href), (el.text or el.get_attribute("title") or "").strip() or None)
                for el in driver.find_elements(*_locator(source.link_selector))
                if (href := el.get_attribute("href"))
            ]
        except StaleElementReferenceException:
            if attempt == 2:
                raise SourceError(f"source {source.name}: the links on {url} kept changing while read") from None
            time.sleep(1)
    return []


def _next_page(driver, source: SourceSettings, current: str) -> str | None:
    if not source.next_selector:
        return None
    nxt = driver.find_elements(*_locator(source.next_selector))
    href = nxt[0].get_attribute("href") if nxt else None
    if not href:
        return None
    target = urljoin(current, href)
    if not allowed(target, allow_list(source)):
        log.warning("source %s: next page %s is not on the allow-list; pagination stops", source.name, target)
        return None
    return target
