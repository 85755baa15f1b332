"""The crawl on a real local web site: JavaScript-rendered links, pagination, hostile names, real Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from helpers import NR4DL, ffmpeg, js_page, serve
from nr4dl_tasks.core.errors import SettingsError
from nr4dl_tasks.crawl import catalog as cat
from nr4dl_tasks.crawl.crawler import crawl
from nr4dl_tasks.crawl.discover import Link, discover
from nr4dl_tasks.crawl.download import safe_stem
from nr4dl_tasks.crawl.web import NO_ACCESS, Web

LONG_TITLE = "episode " * 700  # 5,600 characters


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A web site on 127.0.0.1: two pages of episodes (the second reached by a rendered 'next' link)."""
    root = tmp_path_factory.mktemp("site")
    (root / "media").mkdir()
    for name, text in (("ep1", "Episode one of the show."), ("ep2", "Episode two."), ("ep3", "Episode three.")):
        wav = root / f"{name}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        ffmpeg("-i", str(wav), str(root / "media" / f"{name}.mp3"))
        wav.unlink()
    (root / "media" / "ep1-again.mp3").write_bytes((root / "media" / "ep1.mp3").read_bytes())  # re-published
    # media (ffprobe reads a video stream) that processing cannot use: it has no sound
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=5", str(root / "media" / "mute.mp4"))
    (root / "index.html").write_text(
        js_page(
            [
                ["media/ep1.mp3", "Episode 1", "episode"],
                ["media/ep2.mp3", "../../../../etc/passwd", "episode"],  # hostile title
                ["http://evil.example.com/steal.mp3", "Off the allow-list", "episode"],
                ["page2.html", "next", "next"],
                ["about.html", "About us", "other"],
            ]
        )
    )
    (root / "page2.html").write_text(
        js_page(
            [
                ["/media/ep3.mp3", LONG_TITLE, "episode"],
                ["media/ep1-again.mp3", "/tmp/absolute/path", "episode"],  # same content as ep1
                ["media/..%2f..%2fsecret.mp3", "Missing", "episode"],  # a 404 with a hostile path
            ]
        )
    )
    (root / "shows.html").write_text(
        "<!doctype html><html><head><title>Shows</title></head><body>"
        '<audio controls src="media/ep2.mp3"></audio>'
        '<audio controls src="media/ep3.mp3"></audio></body></html>'
    )
    with serve(root) as base:
        # answers 302 to the same server under another name: a domain off the allow-list
        (root / "media" / "ep2.redirect").write_text(f"{base.replace('127.0.0.1', 'localhost')}/media/ep2.mp3")
        yield base


def page_source(base: str, **extra) -> dict:
    return {
        "name": "radio",
        "kind": "page",
        "url": f"{base}/index.html",
        "link_selector": "a.episode",
        "next_selector": "a.next",
        "max_pages": 3,
        "wait_seconds": 5,
        **extra,
    }


def settings_for(make_settings, tmp_path, *sources, **overrides):
    return make_settings(
        crawl__sources=list(sources),
        crawl__download_dir=str(tmp_path / "downloads"),
        crawl__domain_interval_seconds=0,
        **overrides,
    )


def test_links_exist_only_after_javascript_ran(site):
    raw = urllib.request.urlopen(f"{site}/index.html").read().decode()
    assert "ep1.mp3" in raw and "<a" not in raw.split("<script>")[0]  # only inside the script, not as links


def test_the_rendered_crawl_finds_exactly_the_links_across_pages(site, make_settings, tmp_path):
    settings = settings_for(make_settings, tmp_path, page_source(site))
    found = discover(settings.crawl.sources[0], Web(settings.crawl), NO_ACCESS, lambda _: False)
    assert sorted(link.url for link in found.links) == sorted(
        [
            f"{site}/media/ep1.mp3",
            f"{site}/media/ep2.mp3",
            f"{site}/media/ep3.mp3",
            f"{site}/media/ep1-again.mp3",
            f"{site}/media/..%2f..%2fsecret.mp3",
        ]
    )
    assert list(found.refused) == ["http://evil.example.com/steal.mp3"]


def test_hostile_names_never_leave_the_download_folder():
    for title in ("../../../../etc/passwd", "/tmp/absolute/path", LONG_TITLE, "..", "", "\x00\n|*?<>", "é" * 10):
        stem = safe_stem(Link("http://127.0.0.1/a.mp3", title or None))
        assert "/" not in stem and not stem.startswith(".") and len(stem) <= 71, stem
        assert (Path("/data") / f"{stem}.mp3").resolve().parent == Path("/data")
    assert safe_stem(Link("http://a/x.mp3", "same")) != safe_stem(Link("http://a/y.mp3", "same"))


def test_a_crawl_downloads_new_media_once_and_skips_it_next_time(site, make_settings, tmp_path):
    settings = settings_for(make_settings, tmp_path, page_source(site))
    first = crawl(settings)
    downloads = (tmp_path / "downloads").resolve()
    files = sorted(Path(n.path) for n in first.new)
    assert len(files) == 3 and all(f.is_file() and f.parent == downloads / "radio" for f in files)
    assert all(len(f.name) < 90 for f in files)
    assert first.duplicates == [f"{site}/media/ep1-again.mp3"]
    assert list(first.failed) == [f"{site}/media/..%2f..%2fsecret.mp3"]
    assert list(first.refused) == ["http://evil.example.com/steal.mp3"]
    assert sorted(downloads.rglob("*")) == [downloads / "radio", *files]  # nothing else written anywhere

    catalog = cat.Catalog(settings)
    catalog.mark_triggered(n.url for n in first.new)
    second = crawl(settings)
    assert second.new == [] and second.duplicates == []
    assert list(second.failed) == [f"{site}/media/..%2f..%2fsecret.mp3"]  # a failed download is tried again
    statuses = {e.url.rsplit("/", 1)[-1]: (e.status, e.attempts) for e in catalog.entries("radio")}
    assert statuses["..%2f..%2fsecret.mp3"] == (cat.FAILED, 2)
    assert statuses["ep1-again.mp3"][0] == cat.DUPLICATE and statuses["steal.mp3"][0] == cat.REJECTED


def test_max_items_limits_new_downloads_and_unhanded_files_are_handed_over_again(site, make_settings, tmp_path):
    settings = settings_for(make_settings, tmp_path, page_source(site, max_items=1))
    first = crawl(settings)
    again = crawl(settings)  # the first crawl's file was never handed over (no mark_triggered)
    assert len(first.new) == 1 and len(again.new) == 2  # that file again, and one more new download
    assert again.new[0].url == first.new[0].url and again.new[1].url != first.new[0].url


def test_an_unreachable_page_is_named_and_the_other_sources_still_run(site, make_settings, tmp_path):
    settings = settings_for(
        make_settings,
        tmp_path,
        page_source("http://127.0.0.1:9", name="down"),
        {"name": "direct", "kind": "url", "url": f"{site}/media/ep2.mp3"},
    )
    report = crawl(settings)
    assert "http://127.0.0.1:9/robots.txt is unreachable" in report.failed["source down"]
    assert [n.source for n in report.new] == ["direct"]


def test_a_ytdlp_source_lists_and_downloads_every_entry(site, make_settings, tmp_path):
    settings = settings_for(make_settings, tmp_path, {"name": "shows", "kind": "ytdlp", "url": f"{site}/shows.html"})
    report = crawl(settings)
    assert sorted(n.url for n in report.new) == [f"{site}/media/ep2.mp3", f"{site}/media/ep3.mp3"]
    assert all(Path(n.path).is_file() and Path(n.path).name.startswith("Shows-") for n in report.new)


def test_a_link_redirecting_off_the_allow_list_is_refused_before_download(site, make_settings, tmp_path):
    settings = settings_for(
        make_settings, tmp_path, {"name": "direct", "kind": "url", "url": f"{site}/media/ep2.redirect"}
    )
    report = crawl(settings)
    assert not report.new and "not on the allow-list" in report.refused[f"{site}/media/ep2.redirect"]
    assert not list((tmp_path / "downloads").rglob("*.mp3"))
    (entry,) = cat.Catalog(settings).entries("direct")
    assert entry.status == cat.REFUSED
    again = crawl(settings)
    assert not again.failed and not again.refused  # refused for good: not tried again


def test_size_limit_and_unknown_source(site, make_settings, tmp_path):
    settings = settings_for(
        make_settings,
        tmp_path,
        {"name": "direct", "kind": "url", "url": f"{site}/media/ep1.mp3"},
        crawl__max_megabytes=0.001,
    )
    report = crawl(settings)
    assert not report.new and "max_megabytes" in report.refused[f"{site}/media/ep1.mp3"]
    assert not list((tmp_path / "downloads").rglob("*.mp3"))
    with pytest.raises(SettingsError, match="no crawl source named 'nope'"):
        crawl(settings, "nope")


def test_inbox_files_are_taken_where_they_are(make_settings, tmp_path, media):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "show.wav").write_bytes((media / "segmentation" / "lamartine.wav").read_bytes())
    os.utime(inbox / "show.wav", (1e9, 1e9))  # settled long ago
    (inbox / "copying.wav").write_bytes(b"RIFF")  # still being written: waits for the next crawl
    settings = settings_for(make_settings, tmp_path, {"name": "inbox", "kind": "inbox", "path": str(inbox)})
    report = crawl(settings)
    assert [Path(n.path) for n in report.new] == [(inbox / "show.wav").resolve()]


def test_the_cli_crawls_and_processes_new_files_once(site, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        json.dumps(
            {
                "paths": {"work_dir": str(tmp_path / "work")},
                "separate": {"mode": "off"},
                "crawl": {
                    "download_dir": str(tmp_path / "downloads"),
                    "domain_interval_seconds": 0,
                    "sources": [
                        {"name": "one", "kind": "url", "url": f"{site}/media/ep1.mp3"},
                        {"name": "mute", "kind": "url", "url": f"{site}/media/mute.mp4"},
                        {"name": "far", "kind": "url", "url": f"{site}/media/ep2.redirect"},
                    ],
                },
            }
        )
    )
    nr4dl = [str(NR4DL), "crawl", "--settings", str(settings)]
    first = subprocess.run(nr4dl, capture_output=True, text=True)
    assert first.returncode == 1, first.stdout + first.stderr  # one file failed processing
    assert "2 new file(s), 0 duplicate(s), 1 refused, 0 failure(s)" in first.stdout
    assert f"catalog {tmp_path / 'catalog.sqlite'}" in first.stdout
    assert f"refused {site}/media/ep2.redirect: redirected to http://localhost:" in first.stdout
    assert "1 of 2 file(s) processed, 1 failed" in first.stdout
    failures = subprocess.run([str(NR4DL), "failures", "--settings", str(settings)], capture_output=True, text=True)
    (line,) = [line for line in failures.stdout.splitlines() if "mute" in line]
    assert " ingest " in line and "(run nr4dl crawl)" in line, failures.stdout
    second = subprocess.run(nr4dl, capture_output=True, text=True)
    assert "0 new file(s)" in second.stdout and second.returncode == 0, second.stdout


def test_a_catalog_from_before_feeds_gets_the_new_columns_and_keeps_its_rows(make_settings, tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "catalog.sqlite")  # beside the work folder: where the default puts it
    old.execute(
        "CREATE TABLE nr4dl_catalog (url_sha256 VARCHAR(64) PRIMARY KEY, url TEXT NOT NULL, source VARCHAR(200) "
        "NOT NULL, title TEXT, sha256 VARCHAR(64), path VARCHAR(4096), status VARCHAR(20) NOT NULL, attempts "
        "INTEGER NOT NULL, error TEXT, first_seen DATETIME NOT NULL, last_seen DATETIME NOT NULL)"
    )
    url = "http://radio.example/ep1.mp3"
    old.execute(
        "INSERT INTO nr4dl_catalog VALUES (?, ?, 'radio', 'Ep 1', NULL, NULL, 'triggered', 0, NULL, "
        "'2025-01-01 00:00:00', '2025-01-01 00:00:00')",
        (cat._key(url), url),
    )
    old.commit()
    old.close()
    catalog = cat.Catalog(make_settings())
    assert catalog.seen("radio", Link(url, "Ep 1")).status == cat.TRIGGERED
    (entry,) = catalog.entries()
    assert entry.item is None and entry.published is None and catalog.held(url, 3)
