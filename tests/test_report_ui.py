"""The report inside a real Airflow (standalone) seen through headless Chromium, logged in as a user would be.

Two recordings are processed by real `nr4dl_process_file` runs (their gate
schedules the export, which refreshes report.html). Then Chromium logs in,
opens the "nr4dl dataset" page and one run's "File report" tab, and checks that
the funnel figures equal the manifests, the plots are drawn, every audio
element loads (HTTP 200, an audio content type) and the console stays clean.
Without a login every page, audio and data endpoint is refused, and with one a
path out of the work folder is refused too. Screenshots go to
tests/artifacts/report/ (git-ignored).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from report_truth import PLOTS, check_page, figures, folder_truth, nemo_ids
from test_report import REPORT_SETTINGS

from helpers import ROOT, airflow_env
from nr4dl_tasks.crawl.browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS
from services import free_port

pytestmark = pytest.mark.airflow

ARTIFACTS = ROOT / "tests" / "artifacts" / "report"
WAIT = 60


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, media):
    """Airflow standalone with nr4dl's plugin, after two processing runs and their export."""
    root = tmp_path_factory.mktemp("report-ui")
    work, dataset = root / "work", root / "dataset"
    settings_file = root / "settings.yaml"
    settings_file.write_text(
        json.dumps({**REPORT_SETTINGS, "paths": {"work_dir": str(work)}, "export": {"dataset_dir": str(dataset)}})
    )
    port = free_port()
    env = {**airflow_env(root / "airflow", port), "NR4DL_SETTINGS": str(settings_file), "PYTHONPATH": str(ROOT)}
    broken = root / "broken-upload.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 100)
    files = [str(media / "segmentation/lamartine.wav"), str(media / "diarization/sample.wav"), str(broken)]
    subprocess.run(["bash", str(ROOT / "scripts/standalone.sh"), "start"], env=env, check=True)
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts/run_dag.py"), *files, "--timeout", "1200"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        out = result.stdout.splitlines()
        assert result.returncode == 1, result.stdout + result.stderr
        processed = [
            line for line in out if line.startswith("success ") and " run=" in line and "dataset export" not in line
        ]
        assert len(processed) == 2, result.stdout + result.stderr
        assert any(
            line.startswith("failed ") and "run=broken-upload" in line and "ingest=failed" in line for line in out
        ), result.stdout
        assert any(line.startswith("success  dataset export") for line in out), result.stdout
        password = json.loads((root / "airflow/simple_auth_manager_passwords.json.generated").read_text())["admin"]
        yield {
            "base": f"http://127.0.0.1:{port}",
            "password": password,
            "work": work,
            "dataset": dataset,
            "broken": broken,
        }
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/standalone.sh"), "stop"], env=env)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1440,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def log_in(driver, base: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/auth/login")
    wait = WebDriverWait(driver, WAIT)
    wait.until(lambda d: d.find_elements(By.NAME, "username"))
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "button[type=submit]").is_enabled())
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)
    wait.until(lambda d: d.get_cookie("_token"))


def plugin_frame(driver, url: str, marker: str) -> str:
    """Open a UI page holding a plugin view, wait for its iframe's page, switch into it; returns its HTML."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.switch_to.default_content()
    driver.get(url)
    wait = WebDriverWait(driver, WAIT)
    frame = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "iframe"))[0]
    driver.switch_to.frame(frame)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, marker))
    wait.until(
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)"
        )
    )
    return driver.page_source


def fetched(driver, url: str) -> dict:
    """Status and content type of a URL fetched by the page itself (with its session cookie).

    `no-store` keeps Chromium from answering out of the range request its audio player already made.
    """
    return driver.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0], {cache: 'no-store'}).then(r => done({status: r.status, type: "
        "r.headers.get('content-type')})).catch(e => done({status: 0, type: String(e)}));",
        url,
    )


def check_audio(driver) -> int:
    audio = driver.execute_script(
        "return [...document.querySelectorAll('audio')].map(a => [a.currentSrc, a.readyState, a.error && a.error.code])"
    )
    assert audio, "no players on the page"
    for src, ready, error in audio:
        assert error is None and ready >= 1, (src, ready, error)
        answer = fetched(driver, src)
        # 206 is a served file too: the server answers range requests, as players make them.
        assert answer["status"] in (200, 206) and answer["type"].startswith("audio/"), (src, answer)
    return len(audio)


def screenshot(driver, name: str, scroll_to: str | None = None) -> Path:
    """The UI page, with the plugin's frame first scrolled to `scroll_to` (a CSS selector) when given."""
    if scroll_to:
        driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", scroll_to)
    driver.switch_to.default_content()
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def work_folders(work: Path) -> dict[str, Path]:
    """The folders through the gate (the broken upload's folder stops at ingest)."""
    return {p.name: p for p in sorted(work.iterdir()) if (p / "stamps/gate.json").is_file()}


def test_dataset_page_and_file_report_in_the_airflow_ui(airflow, browser):
    from selenium.webdriver.common.by import By

    base = airflow["base"]
    log_in(browser, base, airflow["password"])
    console_errors(browser)  # the login page's own messages are not the report's

    html_text = plugin_frame(browser, f"{base}/plugin/nr4dl-dataset", "table.funnel")
    page = figures(html_text)
    folders = work_folders(airflow["work"])
    assert len(folders) == 2
    # The totals are the sums of both files' manifests, drop by drop.
    truths = [folder_truth(f, nemo_ids(airflow["dataset"])) for f in folders.values()]
    for name in (
        "input",
        "speech (segmenter)",
        "clips (duration rules)",
        "target speaker",
        "quality gates",
        "exported",
    ):
        row = page.step("total", name)
        assert abs(float(row["data-seconds"]) - sum(t["steps"][name][0] for t in truths)) < 5e-3, (name, row)
    gate = {reason: int(row["data-clips"]) for reason, row in page.drops("total", "quality gates").items()}
    assert gate == dict(sum((t["gate_drops"] for t in truths), Counter())) and gate, gate
    exported = json.loads((airflow["dataset"] / "export.json").read_text())["clips"]
    # The export DAG refreshed the static report, and it says the same.
    check_page(figures((airflow["dataset"] / "report.html").read_text(encoding="utf-8")), folders, airflow["dataset"])
    assert int(page.step("total", "exported")["data-clips"]) == exported
    assert set(page.plots) >= PLOTS
    assert browser.find_elements(By.CSS_SELECTOR, "svg.plot rect")  # drawn, not just declared
    players = check_audio(browser)
    assert browser.find_elements(By.CSS_SELECTOR, ".clip.dropped .why")  # a dropped clip says why
    (failed,) = browser.find_elements(By.CSS_SELECTOR, "tr.failed")  # the broken upload, at ingest
    cells = [td.text for td in failed.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == str(airflow["broken"]) and cells[1] == "ingest" and "not readable as media" in cells[2]
    (row,) = [r for r in browser.find_elements(By.CSS_SELECTOR, "tr.file") if "broken-upload" in r.text]
    assert "failed at ingest" in row.text
    assert browser.find_element(By.CSS_SELECTOR, ".summary").is_displayed()
    screenshot(browser, "dataset")
    browser.switch_to.frame(browser.find_elements(By.CSS_SELECTOR, "iframe")[0])
    screenshot(browser, "dataset-listen", "#listen")
    assert console_errors(browser) == []

    # The File report tab of the lamartine run.
    runs = api(base, airflow["password"], "/api/v2/dags/nr4dl_process_file/dagRuns?order_by=-run_after")["dag_runs"]
    (run,) = [r for r in runs if r["dag_run_id"].startswith("lamartine")]
    url = f"{base}/dags/nr4dl_process_file/runs/{quote(run['dag_run_id'], safe='')}/plugin/nr4dl-file-report"
    html_text = plugin_frame(browser, url, "svg[data-plot^='timeline']")
    page = figures(html_text)
    (source,) = [name for name in folders if name.startswith("lamartine")]
    check_page(page, {source: folders[source]}, airflow["dataset"], scope_total=False)
    marks = browser.find_elements(By.CSS_SELECTOR, "rect.clip-mark")  # one per clip of the gate manifest
    assert len(marks) == len((folders[source] / "manifests/gate.jsonl").read_text().splitlines())
    assert browser.find_elements(By.CSS_SELECTOR, "rect.segment") and browser.find_elements(
        By.CSS_SELECTOR, "path.waveform"
    )
    assert check_audio(browser) >= 2 and players >= 2
    screenshot(browser, "file-report")
    browser.switch_to.frame(browser.find_elements(By.CSS_SELECTOR, "iframe")[0])
    screenshot(browser, "file-report-timeline", "h3.timeline")
    assert console_errors(browser) == []


def api(base: str, password: str, path: str) -> dict:
    token = token_for(base, password)
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def token_for(base: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def status_of(base: str, path: str, token: str | None = None, cookie: bool = False) -> int:
    """The status of a GET sent exactly as written (no client-side '..' folding)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {}
    if token and cookie:
        headers["Cookie"] = f"_token={token}"
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("GET", path, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


def test_without_a_login_everything_is_refused_and_paths_stay_inside(airflow, browser):
    base, work = airflow["base"], airflow["work"]
    (folder,) = [p for p in work_folders(work).values() if p.name.startswith("lamartine")]
    clip = json.loads((folder / "manifests/gate.jsonl").read_text().splitlines()[0])
    audio = f"/nr4dl/audio/work/{folder.name}/{clip['path']}"
    endpoints = [
        "/nr4dl/dataset",
        f"/nr4dl/file/{folder.name}",
        "/nr4dl/run/nr4dl_process_file/x",
        audio,
        "/nr4dl/data/funnel.json",
        "/nr4dl/report.html",
    ]
    for path in endpoints:
        assert status_of(base, path) == 401, path
        assert status_of(base, path, "not-a-token") in (401, 403), path
    token = token_for(base, airflow["password"])
    for path in endpoints:
        assert status_of(base, path, token, cookie=True) == 200, path  # the same requests, logged in
    outside = [
        f"/nr4dl/audio/work/{folder.name}/../../../../etc/passwd",
        "/nr4dl/audio/work/..%2f..%2f..%2fetc%2fpasswd",
        f"/nr4dl/audio/work/{folder.name}/%2e%2e/%2e%2e/settings.yaml",
        "/nr4dl/audio/work/%2fetc%2fpasswd",
        f"/nr4dl/audio/work/{folder.name}/source.json",
        "/nr4dl/audio/dataset/../work/" + folder.name,
    ]
    (work / "escape.wav").symlink_to("/etc/passwd")  # a link inside the folder pointing out of it
    outside.append("/nr4dl/audio/work/escape.wav")
    for path in outside:
        assert status_of(base, path, token, cookie=True) in (403, 404), path
        assert status_of(base, path, token, cookie=True) != 200, path
    assert status_of(base, "/nr4dl/audio/work/escape.wav", token, cookie=True) == 403

    # In the browser: logged out, the page is refused.
    browser.switch_to.default_content()
    browser.delete_all_cookies()
    browser.get(f"{base}/nr4dl/dataset")
    assert "Not authenticated" in browser.page_source
    screenshot(browser, "logged-out")
