"""Helpers shared by the tests: where things are, an Airflow environment, a local web server, ffmpeg."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
NR4DL = Path(sys.executable).with_name("nr4dl")  # the console script of this environment


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
    """Static files; a file named *.redirect answers 302 to the URL it holds. Each request is noted in `requests`
    (Host header, path, time, headers) when a list is given."""

    def __init__(self, *args, requests: list | None = None, **kwargs):
        self.requests = requests
        super().__init__(*args, **kwargs)

    def send_head(self):
        if self.requests is not None:
            self.requests.append((self.headers.get("Host", ""), self.path, time.monotonic(), dict(self.headers)))
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
def serve(folder: Path, requests: list | None = None) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1; yields the base URL. `requests` collects (host, path, time, headers)."""
    handler = functools.partial(_Handler, directory=str(folder), requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def references(media: Path) -> list[dict[str, str]]:
    """The LJ Speech sentences in ../shared/media/speech_en with their transcripts (file, text)."""
    with (media / "speech_en" / "transcripts.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
