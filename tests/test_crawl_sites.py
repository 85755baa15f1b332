"""The crawl on a local radio-style site built for it: a JavaScript list behind a "Load more" button, infinite
scroll, listing -> episode page -> audio, a podcast feed, and every way a site can lead astray (an <audio> on another
host, a redirect chain off the allow-list, HTML served as .mp3, a 404, robots.txt). Real Chromium, real HTTP.

The other host is the same server under the name `localhost`: off the allow-list [127.0.0.1], and every request
it receives is in the server's log, so "never contacted" is checked, not assumed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, ffmpeg, serve
from nr4dl_tasks.core.errors import SettingsError
from nr4dl_tasks.core.redact import redact
from nr4dl_tasks.crawl import catalog as cat
from nr4dl_tasks.crawl.crawler import crawl
from nr4dl_tasks.crawl.discover import discover
from nr4dl_tasks.crawl.web import NO_ACCESS, Access, Web

EPISODES = 9
# Episodes 1-3 are drawn 600 ms after load; each click on the static "Load more" button adds three more after
# 300 ms; the button goes once all nine are there. Header and footer links are navigation, not episodes.
ARCHIVE = """<!doctype html><html><head><title>Radio archive</title></head><body>
<header><a href="/">Home</a> <a href="/about.html">About</a></header>
<ul id="list"></ul><button class="more">Load more</button>
<footer><a href="/about.html">About us</a></footer>
<script>
var shown = 0;
function more() {
  setTimeout(function () {
    for (var i = 0; i < 3 && shown < %(n)d; i++) {
      shown++;
      var a = document.createElement("a"); a.href = "episodes/ep" + shown + ".html"; a.className = "episode";
      a.textContent = "Episode " + shown;
      var li = document.createElement("li"); li.appendChild(a); document.getElementById("list").appendChild(li);
    }
    if (shown >= %(n)d) document.querySelector("button.more").remove();
  }, shown ? 300 : 600);
}
document.querySelector("button.more").addEventListener("click", more);
more();
</script></body></html>"""
# Four items at a time, the next four when the bottom is reached.
SCROLL = """<!doctype html><html><body><ul id="list"></ul><script>
var shown = 0;
function more() {
  for (var i = 0; i < 4 && shown < %(n)d; i++) {
    shown++;
    var li = document.createElement("li"); li.style.height = "400px";
    var a = document.createElement("a"); a.href = "/media/ep" + shown + ".mp3"; a.className = "item";
    a.textContent = "Item " + shown; li.appendChild(a); document.getElementById("list").appendChild(li);
  }
}
window.addEventListener("scroll", function () {
  if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 10) setTimeout(more, 200);
});
more();
</script></body></html>"""
EPISODE = """<!doctype html><html><head><title>site title</title></head><body><h1>{title}</h1>
<audio controls preload="auto"><source src="{audio}" type="audio/mpeg"></audio>
<p><a class="download" href="{audio}">Download</a></p></body></html>"""
FEED = """<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
<title>Podcast</title>{next}{items}</channel></rss>"""
NEXT = '<atom:link rel="next" href="feed-older.xml"/>'
ATOM = """<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Older</title>
<entry><title>Show 4</title><id>urn:show-4</id><updated>2025-05-30T06:00:00Z</updated>
<link rel="alternate" href="/episodes/ep4.html"/><link rel="enclosure" href="/media/ep4.mp3"/></entry>
<entry><title>A text post</title><id>urn:post</id><updated>2025-05-31T06:00:00Z</updated></entry></feed>"""
ITEM = """<item><title>Show {n}</title><guid isPermaLink="false">show-{n}</guid>
<pubDate>Mon, 0{n} Jun 2025 06:00:00 +0000</pubDate><enclosure url="{url}" type="audio/mpeg" length="1"/></item>"""


@pytest.fixture(scope="module")
def radio(tmp_path_factory):
    """(base URL, request log, site folder). Episode 7's audio is on another host, episode 8's `.mp3` is an HTML
    page, episode 9's audio is missing (404); the rest are real MP3s, each with its own content."""
    root = tmp_path_factory.mktemp("radio")
    (root / "media").mkdir()
    (root / "episodes").mkdir()
    (root / "private").mkdir()
    for n in range(1, EPISODES + 1):
        wav = root / f"ep{n}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), f"Radio show number {n}."], check=True)
        ffmpeg("-i", str(wav), "-b:a", "32k", str(root / "media" / f"ep{n}.mp3"))
        wav.unlink()
    (root / "private" / "ep1.mp3").write_bytes((root / "media" / "ep1.mp3").read_bytes())
    (root / "media" / "html8.mp3").write_text("<!doctype html><html><body>Error: not found</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (root / "archive.html").write_text(ARCHIVE % {"n": EPISODES})
    (root / "scroll.html").write_text(SCROLL % {"n": EPISODES})
    requests: list = []
    with serve(root, requests) as base:
        other = base.replace("127.0.0.1", "localhost")
        audio = {7: f"{other}/media/ep7.mp3", 8: "/media/html8.mp3", 9: "/media/missing9.mp3"}
        for n in range(1, EPISODES + 1):
            page = EPISODE.format(title=f"Morning show, part {n}", audio=audio.get(n, f"/media/ep{n}.mp3"))
            (root / "episodes" / f"ep{n}.html").write_text(page)
        (root / "media" / "hop1.redirect").write_text(f"{base}/media/hop2.redirect")
        (root / "media" / "hop2.redirect").write_text(f"{other}/media/ep1.mp3")
        write_feed(root, base, "")
        yield base, requests, root


def write_feed(root: Path, base: str, query: str) -> None:
    items = "".join(ITEM.format(n=n, url=f"{base}/media/ep{n}.mp3{query}") for n in (1, 2, 3))
    (root / "feed.xml").write_text(FEED.format(items=items, next=NEXT))
    (root / "feed-older.xml").write_text(ATOM)


def contacted_other_host(requests: list) -> list:
    return [r for r in requests if r[0].startswith("localhost")]


def archive(base: str, **extra) -> dict:
    return {
        "name": "radio",
        "kind": "page",
        "url": f"{base}/archive.html",
        "actions": [{"click": "button.more", "timeout_seconds": 5}],
        "episode_selector": "a.episode",
        "media_selector": "audio",
        "wait_seconds": 5,
        **extra,
    }


def settings_for(make_settings, tmp_path, *sources, **overrides):
    return make_settings(
        **{
            "crawl__sources": list(sources),
            "crawl__download_dir": str(tmp_path / "downloads"),
            "crawl__domain_interval_seconds": 0,
            **overrides,
        }
    )


def found_on(settings) -> tuple[list[str], list[str]]:
    found = discover(settings.crawl.sources[0], Web(settings.crawl), NO_ACCESS, lambda _: False)
    return [link.url.rsplit("/", 1)[-1] for link in found.links], found.warnings


def test_load_more_is_clicked_until_gone_and_navigation_is_not_an_episode(radio, make_settings, tmp_path):
    base, _, _ = radio
    clicked = settings_for(make_settings, tmp_path, archive(base, media_selector=None))
    urls, warnings = found_on(clicked)
    assert urls == [f"ep{n}.html" for n in range(1, EPISODES + 1)] and warnings == []
    # without the action: the three drawn episodes, not zero, although the XPath matches the static button too;
    # a next_selector naming the button says why it cannot page
    both = "xpath://a[@class='episode'] | //button[@class='more']"
    plain = archive(base, media_selector=None, actions=[], episode_selector=both, next_selector="button.more")
    urls, warnings = found_on(settings_for(make_settings, tmp_path, plain))
    assert urls == ["ep1.html", "ep2.html", "ep3.html"]
    assert (
        len(warnings) == 1
        and "next_selector 'button.more' matches no link (a button? use a click action)" in warnings[0]
    )
    once = [
        {"wait_for": "a.episode", "count": 3},
        {"click": "button.more", "times": 1},
        {"wait_for": "a.episode", "count": 6},
    ]
    assert (
        len(found_on(settings_for(make_settings, tmp_path, archive(base, media_selector=None, actions=once)))[0]) == 6
    )


def test_infinite_scroll_and_selectors_that_match_nothing_warn(radio, make_settings, tmp_path):
    base, _, _ = radio
    source = {"name": "scroll", "kind": "page", "url": f"{base}/scroll.html", "episode_selector": "a.item"}
    scrolled = settings_for(
        make_settings,
        tmp_path,
        {**source, "actions": [{"network_idle": True}, {"scroll": "a.item", "timeout_seconds": 2}]},
    )
    assert found_on(scrolled) == ([f"ep{n}.mp3" for n in range(1, EPISODES + 1)], [])
    wrong = {**source, "wait_seconds": 1, "actions": [{"click": "button.nothing", "timeout_seconds": 1}]}
    wrong["episode_selector"] = "a.nothing"
    urls, warnings = found_on(settings_for(make_settings, tmp_path, wrong))
    assert urls == [] and len(warnings) == 2
    assert "no element matching 'button.nothing' to click" in warnings[0]
    assert "no link matching 'a.nothing'" in warnings[1]


def test_listing_episode_audio_downloads_every_episode_and_refuses_every_stray(radio, make_settings, tmp_path):
    base, requests, _ = radio
    settings = settings_for(make_settings, tmp_path, archive(base))
    before = len(requests)
    report = crawl(settings)
    names = sorted(Path(n.path).name.split("-")[:4] == ["Morning", "show", "part", n.url[-5]] for n in report.new)
    assert len(report.new) == 6 and all(names), [n.path for n in report.new]  # titles from the episode pages
    assert sorted(n.url.rsplit("/", 1)[-1] for n in report.new) == [f"ep{n}.mp3" for n in range(1, 7)]
    assert "not on the allow-list" in report.refused[f"{base.replace('127.0.0.1', 'localhost')}/media/ep7.mp3"]
    assert "not audio or video" in report.refused[f"{base}/media/html8.mp3"]
    assert "HTTP 404" in report.failed[f"{base}/media/missing9.mp3"] and len(report.failed) == 1
    assert not contacted_other_host(requests[before:])  # neither the crawler nor Chromium's <audio preload>
    downloads = tmp_path / "downloads" / "radio"
    assert sorted(p.suffix for p in downloads.iterdir()) == [".mp3"] * 6  # nothing else, no .part
    catalog = cat.Catalog(settings)
    statuses = {e.item.rsplit("/", 1)[-1]: e.status for e in catalog.entries("radio") if e.item}
    assert statuses["ep7.html"] == statuses["ep8.html"] == cat.REFUSED and statuses["ep9.html"] == cat.FAILED

    catalog.mark_triggered(n.identity for n in report.new)
    before = len(requests)
    again = crawl(settings)
    assert again.new == [] and again.refused == {} and list(again.failed) == [f"{base}/media/missing9.mp3"]
    opened = sorted(path for _, path, *_ in requests[before:] if path.startswith("/episodes/"))
    assert opened == ["/episodes/ep9.html"]  # only the failed one is looked at again, and no media is fetched
    assert not [path for _, path, *_ in requests[before:] if path.startswith("/media/ep")]


def test_an_audio_embed_on_another_host_is_refused_when_yt_dlp_finds_it(radio, make_settings, tmp_path):
    base, requests, _ = radio
    before = len(requests)
    settings = settings_for(make_settings, tmp_path, {"name": "one", "kind": "url", "url": f"{base}/episodes/ep7.html"})
    report = crawl(settings)
    assert not report.new and "not on the allow-list" in report.refused[f"{base}/episodes/ep7.html"]
    assert not contacted_other_host(requests[before:])


def test_a_redirect_chain_leaving_the_allow_list_is_refused_before_the_host_is_contacted(
    radio, make_settings, tmp_path
):
    base, requests, _ = radio
    before = len(requests)
    settings = settings_for(
        make_settings, tmp_path, {"name": "hop", "kind": "url", "url": f"{base}/media/hop1.redirect"}
    )
    report = crawl(settings)
    cause = report.refused[f"{base}/media/hop1.redirect"]
    assert cause.startswith("redirected to http://localhost:") and "not on the allow-list" in cause
    assert [path for _, path, *_ in requests[before:]] == [
        "/robots.txt",
        "/media/hop1.redirect",
        "/media/hop2.redirect",
    ]
    assert not list((tmp_path / "downloads").rglob("*.*"))


def test_robots_txt_is_honoured_unless_turned_off(radio, make_settings, tmp_path):
    base, _, _ = radio
    source = {"name": "private", "kind": "url", "url": f"{base}/private/ep1.mp3"}
    report = crawl(settings_for(make_settings, tmp_path, source))
    assert "disallowed by the robots.txt" in report.refused[f"{base}/private/ep1.mp3"]
    refused = crawl(settings_for(make_settings, tmp_path, source))
    assert not refused.refused and not refused.new  # refused for good: not even looked at again
    off = settings_for(make_settings, tmp_path, source, crawl__robots_txt=False, paths__database=str(tmp_path / "b.db"))
    assert len(crawl(off).new) == 1 and (tmp_path / "b.db").is_file()


def test_html_served_as_mp3_and_a_size_limit_are_refused_with_nothing_left(radio, make_settings, tmp_path):
    base, _, _ = radio
    html = {"name": "html", "kind": "url", "url": f"{base}/media/html8.mp3"}
    big = {"name": "big", "kind": "url", "url": f"{base}/media/ep1.mp3"}
    report = crawl(settings_for(make_settings, tmp_path, html, big, crawl__max_megabytes=0.005))
    assert report.refused[f"{base}/media/html8.mp3"].startswith("not audio or video: ffprobe")
    assert "larger than crawl.max_megabytes" in report.refused[f"{base}/media/ep1.mp3"]
    assert not report.new and not [p for p in (tmp_path / "downloads").rglob("*") if p.is_file()]


def test_a_feed_uses_enclosures_with_guid_identity_and_dates(radio, make_settings, tmp_path):
    """An RSS feed whose older items are on an Atom page it links as `next`."""
    base, requests, root = radio
    settings = settings_for(make_settings, tmp_path, {"name": "pod", "kind": "feed", "url": f"{base}/feed.xml"})
    report = crawl(settings)
    assert [n.url for n in report.new] == [f"{base}/media/ep{n}.mp3" for n in (3, 2, 1, 4)]  # newest first
    catalog = cat.Catalog(settings)
    entries = {e.item: e for e in catalog.entries("pod")}
    assert sorted(entries) == ["pod:guid:show-1", "pod:guid:show-2", "pod:guid:show-3", "pod:guid:urn:show-4"]
    assert entries["pod:guid:show-2"].title == "Show 2" and entries["pod:guid:show-2"].published.day == 2
    catalog.mark_triggered(n.identity for n in report.new)
    try:
        write_feed(root, base, "?tracking=1")  # the same episodes at new URLs
        before = len(requests)
        again = crawl(settings)
    finally:
        write_feed(root, base, "")
    assert again.new == [] and not again.failed
    assert [path for _, path, *_ in requests[before:]] == ["/robots.txt", "/feed.xml", "/feed-older.xml"]


def test_page_loads_and_media_of_a_two_level_crawl_are_spaced(radio, make_settings, tmp_path):
    base, requests, _ = radio
    source = archive(base, actions=[], max_items=2)  # three episode pages on the list, two of them fetched
    settings = settings_for(make_settings, tmp_path, source, crawl__domain_interval_seconds=0.5)
    before = len(requests)
    assert len(crawl(settings).new) == 2
    made = [r for r in requests[before:] if r[1] != "/favicon.ico"]  # Chromium's own, for its tab
    assert [r[1] for r in made] == [
        "/robots.txt",
        "/archive.html",
        "/episodes/ep1.html",
        "/episodes/ep2.html",
        "/episodes/ep3.html",
        "/media/ep1.mp3",
        "/media/ep2.mp3",
    ]
    gaps = [b[2] - a[2] for a, b in zip(made, made[1:])]
    assert min(gaps) >= 0.49, gaps


def test_requests_to_one_host_are_spaced_and_carry_the_user_agent_and_access(radio, make_settings, tmp_path):
    base, requests, _ = radio
    settings = settings_for(
        make_settings,
        tmp_path,
        {"name": "pod", "kind": "feed", "url": f"{base}/feed.xml", "max_items": 2, "connection": "archive"},
        crawl__domain_interval_seconds=0.4,
    )
    before = len(requests)
    access = Access(headers={"X-Archive": "opensesame"}, cookies={"session": "s3cr3t"})
    report = crawl(settings, access_for=lambda conn: access)
    assert len(report.new) == 2
    made = requests[before:]
    times = [r[2] for r in made]
    assert len(made) == 5 and all(b - a >= 0.39 for a, b in zip(times, times[1:])), times  # robots, 2 feeds, 2 media
    assert all(r[3].get("User-Agent") == settings.crawl.user_agent for r in made)
    assert all(r[3].get("X-Archive") == "opensesame" and r[3].get("Cookie") == "session=s3cr3t" for r in made[1:])


CONNECTION = {"conn_type": "http", "extra": {"headers": {"X-Archive": "opensesame"}, "cookies": {"session": "s3cr3t"}}}


@pytest.mark.parametrize("reader", ["airflow", "environment"])
def test_a_connection_gives_a_gated_archive_its_headers_and_cookies_hidden_from_logs(
    reader, radio, make_settings, tmp_path, monkeypatch, caplog, request
):
    """The operator reads the connection through Airflow; the CLI reads AIRFLOW_CONN_<ID> as Airflow would."""
    base, requests, _ = radio
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE", json.dumps(CONNECTION))
    kwargs = {}
    if reader == "airflow":
        request.getfixturevalue("airflow_home")
        monkeypatch.syspath_prepend(str(ROOT / "plugins"))
        from nr4dl_operators import crawl_access

        kwargs["access_for"] = crawl_access
    source = {"name": "gated", "kind": "url", "url": f"{base}/media/hop1.redirect", "connection": "archive"}
    before = len(requests)
    report = crawl(settings_for(make_settings, tmp_path, source), **kwargs)
    assert list(report.refused) == [f"{base}/media/hop1.redirect"]
    sent = [r[3] for r in requests[before:] if r[1] != "/robots.txt"]
    assert len(sent) == 2 and all(
        h.get("X-Archive") == "opensesame" and h.get("Cookie") == "session=s3cr3t" for h in sent
    )
    assert redact("cookie s3cr3t, header opensesame") == "cookie ***, header ***"
    assert not [r for r in caplog.records if "s3cr3t" in r.getMessage() or "opensesame" in r.getMessage()]


def test_what_yt_dlp_fetches_itself_is_checked_too(radio, make_settings, tmp_path):
    """A ytdlp source is listed and extracted by yt-dlp: the URL its request ended at, after the redirects yt-dlp
    followed, is refused before a byte is saved (yt-dlp follows redirects itself: the other host may see it)."""
    base, _, _ = radio
    source = {"name": "listed", "kind": "ytdlp", "url": f"{base}/media/hop1.redirect"}
    report = crawl(settings_for(make_settings, tmp_path, source))
    assert "redirected to http://localhost:" in report.refused["source listed"]
    assert not report.new and not list((tmp_path / "downloads").rglob("*.*"))


def test_an_action_is_one_thing_and_the_old_selector_name_still_reads(make_settings, tmp_path):
    source = {"name": "r", "kind": "page", "url": "https://radio.example/", "link_selector": "a.ep"}
    assert settings_for(make_settings, tmp_path, source).crawl.sources[0].episode_selector == "a.ep"
    both = {**source, "actions": [{"click": "button.more", "scroll": "li"}]}
    with pytest.raises(SettingsError, match="exactly one of click, scroll, wait_for, network_idle"):
        settings_for(make_settings, tmp_path, both)
