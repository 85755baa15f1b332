"""Shared fixtures: the real test recordings in ../shared/media and a settings object per test."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from nr4dl_tasks.core import settings as settings_mod

# The suite runs on the project's own settings: a shell that exported a settings file or NR4DL__ overrides (a
# worker's production catalog URL, say) must not leak into the tests or have them write to its database.
for _name in [n for n in os.environ if n.startswith("NR4DL__") or n == "NR4DL_SETTINGS"]:
    del os.environ[_name]

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
NR4DL = Path(sys.executable).with_name("nr4dl")  # the console script of this environment


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.fail(f"test recordings not found at {MEDIA} (the project expects ../shared/media beside it)")
    return MEDIA


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings with the work folder in the test's temporary folder, plus any overrides."""

    def make(**overrides):
        dotted = {key.replace("__", "."): value for key, value in overrides.items()}
        return settings_mod.load(overrides={"paths.work_dir": str(tmp_path / "work"), **dotted})

    return make


def airflow_env(home: Path, port: int = 8080) -> dict[str, str]:
    """What scripts/airflow-env.sh sets, for a given Airflow home and API port (no AIRFLOW__* of ours leaks in)."""
    script = f'source "{ROOT}/scripts/airflow-env.sh" && env -0'
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__API__PORT": str(port)}
    env = {k: v for k, v in env.items() if not (k.startswith("AIRFLOW__") and k != "AIRFLOW__API__PORT")}
    dump = subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


# A page that writes its links only after a delay, from JavaScript: a plain HTTP client sees none of them.
_JS_PAGE = """<!doctype html><html><body><ul id="list"></ul><script>
setTimeout(function () {{
  var list = document.getElementById("list");
  {links}.forEach(function (l) {{
    var a = document.createElement("a"); a.href = l[0]; a.textContent = l[1]; a.className = l[2];
    var li = document.createElement("li"); li.appendChild(a); list.appendChild(li);
  }});
}}, 400);
</script></body></html>"""


def js_page(links: list[list[str]]) -> str:
    """HTML whose links ([href, text, class] each) exist only once its script has run."""
    return _JS_PAGE.format(links=json.dumps(links))


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files; a file named *.redirect answers 302 to the URL it holds."""

    def send_head(self):
        target = Path(self.translate_path(self.path))
        if target.suffix == ".redirect" and target.is_file():
            self.send_response(302)
            self.send_header("Location", target.read_text().strip())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
