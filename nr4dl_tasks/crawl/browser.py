"""Headless Chromium for pages drawn by JavaScript: load, act (click, scroll, wait), read elements.

Chromium never fetches media files (their URLs are blocked in it); the
downloader does, checked. Chromium runs with background networking, sync, extensions and component
updates off, so it makes no request but the pages' own, and with the crawl's
user agent. Every page load goes through `Web.check` and `Web.pace` first
(allow-list, robots.txt, spacing per host). A gated archive's cookies are set
for the source's allowed domains only.

The actions of a source (`crawl.sources[].actions`) run in order on every
listing page before its links are read; one that finds nothing to act on is a
warning, never a silent stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nr4dl_tasks.core.errors import SourceError
from nr4dl_tasks.core.settings import ActionSettings
from nr4dl_tasks.crawl.web import Access, Web

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
    "--autoplay-policy=user-gesture-required",
    "--disable-features=MediaRouter,OptimizationHints,Translate",
)
PAGE_LOAD_SECONDS = 60
POLL_SECONDS = 0.2
MAX_CLICKS = 1000
IDLE_SECONDS = 0.5
RETURN_SECONDS = 1.0  # how long a clicked button may stay away and still be clicked again
# Chromium shows its own error page instead of raising when a host refuses or does not resolve.
NETWORK_ERROR_JS = """
if (!location.href.startsWith("chrome-error://") && !document.querySelector("body.neterror")) return "";
var code = document.querySelector(".error-code");
return (code && code.textContent.trim()) || "network error";
"""
# The URL an element stands for: a link's href, a media element's (current) source, a <source>'s src.
ELEMENT_URL_JS = """
var el = arguments[0];
var inner = el.querySelector ? el.querySelector("source[src]") : null;
return el.currentSrc || el.getAttribute("src") && el.src || el.getAttribute("href") && el.href
    || (inner && inner.src) || "";
"""
# The episode page's own title: its og:title, else its first heading, else the document title.
TITLE_JS = """
var og = document.querySelector('meta[property="og:title"]');
var h1 = document.querySelector("h1");
return (og && og.content) || (h1 && h1.textContent) || document.title || "";
"""
# Chromium never fetches media itself (an <audio preload> would reach any host): the downloader does, checked.
MEDIA_PATTERNS = [
    f"*.{ext}*" for ext in ("mp3", "m4a", "aac", "ogg", "opus", "wav", "flac", "mp4", "webm", "m3u8", "mpd")
]
RESOURCES_JS = "return performance.getEntriesByType('resource').length + (document.readyState == 'complete' ? 0 : 1e6)"


def locator(selector: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    if selector.startswith("xpath:"):
        return By.XPATH, selector.removeprefix("xpath:")
    return By.CSS_SELECTOR, selector


class Browser:
    """One Chromium for one source; `with Browser(...) as b:` quits it whatever happens."""

    def __init__(self, web: Web, domains: list[str], access: Access, source: str) -> None:
        self.web, self.domains, self.access, self.source = web, domains, access, source
        self.driver: Any = None

    def __enter__(self) -> Browser:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM  # explicit paths: Selenium Manager would try to download a driver
        for flag in (*CHROMIUM_FLAGS, f"--user-agent={self.web.user_agent}"):
            options.add_argument(flag)
        try:
            self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        except WebDriverException as exc:
            raise SourceError(
                f"Chromium did not start ({exc.msg}); scripts/setup.sh installs chromium and chromium-driver"
            ) from None
        self.driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": MEDIA_PATTERNS})
        if self.access.cookies:
            for domain in self.domains:
                for name, value in self.access.cookies.items():
                    self.driver.execute_cdp_cmd(
                        "Network.setCookie", {"name": name, "value": value, "domain": domain, "path": "/"}
                    )
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.quit()

    def load(self, url: str) -> None:
        """Open `url` (checked and spaced like any request); SourceError when it cannot be reached."""
        from selenium.common.exceptions import WebDriverException

        self.web.check(url, self.domains)
        self.web.pace(url)
        try:
            self.driver.get(url)
            self.web.answered(url)
        except WebDriverException as exc:
            raise SourceError(
                f"page {url} is unreachable ({(exc.msg or type(exc).__name__).splitlines()[0]})"
            ) from None
        if failure := self.driver.execute_script(NETWORK_ERROR_JS):
            raise SourceError(f"page {url} is unreachable ({failure})")

    def count(self, selector: str) -> int:
        return len(self.driver.find_elements(*locator(selector)))

    def _until(self, find: Callable[..., Any], seconds: float) -> Any:
        """Poll `find()` until it gives something true or `seconds` pass; what it gave (None: it never did), so a
        caller acts on what was found rather than looking it up again."""
        end = time.monotonic() + seconds
        while True:
            if found := find():
                return found
            if time.monotonic() >= end:
                return None
            time.sleep(POLL_SECONDS)

    def act(self, action: ActionSettings) -> str | None:
        """Do one action; a warning when it found nothing to act on or waited in vain."""
        if action.click:
            return self._click(action.click, action.times or MAX_CLICKS, action.timeout_seconds)
        if action.scroll:
            return self._scroll(action.scroll, action.timeout_seconds)
        if action.wait_for:
            wanted, selector = action.count, action.wait_for
            if not self._until(lambda: self.count(selector) >= wanted, action.timeout_seconds):
                return f"fewer than {wanted} element(s) matching {selector!r} after {action.timeout_seconds:g} s"
            return None
        return self._idle(action.timeout_seconds)

    def _visible(self, selector: str) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            return next((el for el in self.driver.find_elements(*locator(selector)) if el.is_displayed()), None)
        except StaleElementReferenceException:
            return None

    def _click(self, selector: str, times: int, timeout: float) -> str | None:
        """Click the first visible match until it is gone (or `times` clicks), each time waiting for the page to
        change, so a button that loads the next items is pressed again only once they are there."""
        from selenium.common.exceptions import StaleElementReferenceException

        clicks, wait = 0, timeout
        while clicks < times and (button := self._until(lambda: self._visible(selector), wait)) is not None:
            size = self._size()
            try:  # the element found, not a second lookup: the button may go between the two
                self.driver.execute_script("arguments[0].click()", button)
            except StaleElementReferenceException:
                continue  # redrawn meanwhile: look again
            clicks, wait = clicks + 1, min(timeout, RETURN_SECONDS)
            if not self._until(lambda size=size: self._size() != size, timeout):
                return f"clicking {selector!r} changed nothing within {timeout:g} s (after {clicks} click(s))"
        return None if clicks else f"no element matching {selector!r} to click within {timeout:g} s"

    def _scroll(self, selector: str, timeout: float) -> str | None:
        """Scroll to the bottom until the number of items stops growing for `timeout` seconds."""
        if not self._until(lambda: self.count(selector) > 0, timeout):
            return f"no element matching {selector!r} to scroll through within {timeout:g} s"
        while True:
            seen = self.count(selector)
            self.driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
            if not self._until(lambda seen=seen: self.count(selector) > seen, timeout):
                return None

    def _idle(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < end:
            now = self.driver.execute_script(RESOURCES_JS)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= IDLE_SECONDS:
                return None
            time.sleep(POLL_SECONDS)
        return f"the page kept loading for {timeout:g} s"

    def _size(self) -> int:
        return self.driver.execute_script("return document.getElementsByTagName('*').length")

    def elements(self, selector: str) -> list[tuple[str, str | None]]:
        """(URL, text) of each match that stands for a URL, read again once if the script redrew the page."""
        from selenium.common.exceptions import StaleElementReferenceException

        for attempt in (1, 2):
            try:
                found = []
                for el in self.driver.find_elements(*locator(selector)):
                    if url := self.driver.execute_script(ELEMENT_URL_JS, el):
                        found.append((url, (el.text or el.get_attribute("title") or "").strip() or None))
                return found
            except StaleElementReferenceException:
                if attempt == 2:
                    raise SourceError(f"the elements matching {selector!r} kept changing while read") from None
                time.sleep(1)
        return []

    def wait_for_urls(self, selector: str, seconds: float) -> list[tuple[str, str | None]]:
        """The matches once at least one of them stands for a URL (a static button matching too ends no wait)."""
        return self._until(lambda: self.elements(selector), seconds) or []

    def title(self) -> str | None:
        return (self.driver.execute_script(TITLE_JS) or "").strip() or None
