"""Secrets never printed: a password in a setting stays out of every output, whatever path it takes."""

import subprocess

from helpers import NR4DL, ROOT
from nr4dl_tasks.core.redact import redact, redact_settings
from nr4dl_tasks.state.failures import first_line

SECRET = "s3cretPASSWORD"
URL = f"postgresql://u:{SECRET}@127.0.0.1:1/db"  # port 1: nothing listens there


def nr4dl(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([str(NR4DL), *args], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})


def test_no_output_of_a_failing_run_holds_the_password(tmp_path):
    runs = {
        "bad other key": nr4dl("settings", "--set", f"crawl.catalog_url={URL}", "--set", "slice.min_duration=abc"),
        "bad key itself": nr4dl("settings", "--set", "crawl.catalog_url=[1]", "--set", f"x.password={SECRET}"),
        "shown": nr4dl("settings", "--set", f"crawl.catalog_url={URL}"),
        "unreachable": nr4dl("failures", "--set", f"crawl.catalog_url={URL}"),
        "environment": nr4dl("crawl", "--set", "slice.min_duration=abc", NR4DL__CRAWL__CATALOG_URL=URL),
        "process": nr4dl(
            "process",
            str(tmp_path / "missing.mp3"),
            "--out",
            str(tmp_path / "out"),
            "--set",
            f"crawl.catalog_url={URL}",
            "--set",
            f"paths.models_dir=/x/{URL}",
        ),
    }
    for name, run in runs.items():
        assert SECRET not in run.stdout + run.stderr, name
        assert "Traceback" not in run.stderr, name
    assert runs["bad other key"].returncode == 2 and "slice.min_duration" in runs["bad other key"].stderr
    assert "catalog_url: postgresql://u:***@127.0.0.1:1/db" in runs["shown"].stdout
    unreachable = runs["unreachable"]
    assert unreachable.returncode == 2
    assert "postgresql://u:***@127.0.0.1:1/db" in unreachable.stderr and "Connection refused" in unreachable.stderr


def test_redaction_covers_urls_named_secrets_and_failure_records():
    assert redact(f"open {URL} failed") == "open postgresql://u:***@127.0.0.1:1/db failed"
    assert redact(f"{{'azure.key': '{SECRET}'}}") == "{'azure.key': ***}"
    assert redact_settings({"azure": {"key": SECRET, "region": "koreacentral"}}) == {
        "azure": {"key": "***", "region": "koreacentral"}
    }
    assert SECRET not in first_line(ConnectionError(f"{URL} refused"))
