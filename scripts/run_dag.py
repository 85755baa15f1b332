"""Trigger `nr4dl_process_file` runs (or a crawl) through Airflow's REST API and wait for them.

Used by scripts/up.sh for the demo and by the tests, the same way the UI does
it: log in for a token, wait until the DAG is parsed, post one run per file
with its path in the run conf (or, with --crawl, one `nr4dl_crawl` run, then
take the processing runs it started from its XCom), poll until every run has
finished, then print each run's state and per-task states. When any run
succeeded, it then waits for the `nr4dl_dataset` export those runs scheduled
(through the asset their gate task updates) and prints its state. Exit status
1 if any run failed.

    python scripts/run_dag.py MEDIA... [--overrides JSON] [--timeout SECONDS]
    python scripts/run_dag.py --crawl [--source NAME] [--overrides JSON] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DAG_ID = "nr4dl_process_file"
CRAWL_DAG_ID = "nr4dl_crawl"
EXPORT_DAG_ID = "nr4dl_dataset"
FINISHED = {"success", "failed"}
ATTEMPTS = 4
TIMEOUT_S = 60


class ApiError(urllib.error.URLError):
    """An error answer from the API, with its status and body (which says why)."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.code = code


class Api:
    def __init__(self, base: str, user: str, password: str) -> None:
        self.base, self.user, self.password, self.token = base.rstrip("/"), user, password, ""

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        attempt = 0
        while True:
            attempt += 1
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")[:500]
                error = ApiError(f"{method} {path}: HTTP {exc.code}: {body}", exc.code)
                # a busy SQLite standalone answers 5xx now and then; anything else is final
                if exc.code < 500 or attempt == ATTEMPTS:
                    raise error from exc
            except TimeoutError as exc:
                # a standalone on a loaded machine can hold a request while its scheduler writes
                error = ApiError(f"{method} {path}: no answer within {TIMEOUT_S} s", 0)
                if attempt == ATTEMPTS:
                    raise error from exc
            print(f"{error} (retrying, {attempt}/{ATTEMPTS})", file=sys.stderr, flush=True)
            time.sleep(2 * attempt)

    def login(self) -> None:
        self.token = self._call("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)[
            "access_token"
        ]

    def get(self, path: str) -> dict:
        return self._call("GET", path)

    def post(self, path: str, body: dict) -> dict:
        return self._call("POST", path, body)

    def patch(self, path: str, body: dict) -> dict:
        return self._call("PATCH", path, body)


def wait_until(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, KeyError) as exc:
            last_error = exc
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def password(airflow_home: Path, user: str) -> str:
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    return json.loads(generated.read_text())[user]


def run_id_for(media: Path, index: int) -> str:
    """Readable in the UI, unique even for two files with the same name triggered in the same second."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", media.stem)[:40]
    return f"{stem}__{time.strftime('%Y%m%dT%H%M%S')}_{os.getpid()}_{index}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("media", nargs="*", type=Path)
    parser.add_argument("--crawl", action="store_true", help="run the crawl and wait for the runs it starts")
    parser.add_argument("--source", default="", help="with --crawl: crawl only this source")
    parser.add_argument("--overrides", default="{}", help="settings overrides as a JSON object")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    if bool(args.media) == args.crawl:
        parser.error("name media files, or --crawl")

    home = Path(os.environ["AIRFLOW_HOME"])
    host, port = os.environ.get("AIRFLOW__API__HOST", "127.0.0.1"), os.environ.get("AIRFLOW__API__PORT", "8080")
    user = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(":")[0]
    api = Api(f"http://{host}:{port}", user, "")
    api.password = wait_until("Airflow's login password", lambda: password(home, user), 300)
    wait_until("the Airflow API server", lambda: api.login() or True, 300)
    wait_until(f"DAG {DAG_ID} to be parsed", lambda: api.get(f"/api/v2/dags/{DAG_ID}"), 300)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    overrides = json.loads(args.overrides)
    runs = crawl_runs(api, args.source, overrides, args.timeout) if args.crawl else {}
    for index, media in enumerate(args.media):
        run_id = run_id_for(media, index)
        conf = {"media": str(media.resolve()), "overrides": overrides}
        trigger(api, run_id, conf)
        runs[run_id] = media
        print(f"triggered {run_id} for {media}", flush=True)
    if not runs:
        print("nothing new to process")
        return 0

    def states() -> dict[str, str] | None:
        found = {rid: api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{rid}")["state"] for rid in runs}
        return found if set(found.values()) <= FINISHED else None

    final = wait_until("the runs to finish", states, args.timeout, every=5)
    for run_id, state in final.items():
        print(f"{state:8} {runs[run_id]}  run={run_id}  [{task_states(api, DAG_ID, run_id)}]")
    exported = "success"
    if "success" in final.values():
        gate_ends = [
            api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{rid}/taskInstances/gate")["end_date"]
            for rid, state in final.items()
            if state == "success"
        ]
        exported = wait_for_export(api, max(gate_ends), args.timeout)
    return 0 if set(final.values()) == {"success"} and exported == "success" else 1


def trigger(api: Api, run_id: str, conf: dict) -> None:
    """Post one run; a retried post that finds its run already there (the first try went through) is fine."""
    try:
        api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
    except ApiError as exc:
        if exc.code != 409 or api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["conf"] != conf:
            raise


def task_states(api: Api, dag_id: str, run_id: str) -> str:
    tasks = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return ", ".join(f"{t['task_id']}={t['state']}" for t in tasks)


def crawl_runs(api: Api, source: str, overrides: dict, timeout: float) -> dict[str, str]:
    """Run the crawl; the processing runs it started (run id -> media file)."""
    wait_until(f"DAG {CRAWL_DAG_ID} to be parsed", lambda: api.get(f"/api/v2/dags/{CRAWL_DAG_ID}"), 300)
    api.patch(f"/api/v2/dags/{CRAWL_DAG_ID}", {"is_paused": False})
    run_id = f"manual__crawl_{time.strftime('%Y%m%dT%H%M%S')}_{os.getpid()}"
    conf = {"source": source, "max_items": 0, "overrides": overrides}
    api.post(f"/api/v2/dags/{CRAWL_DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
    print(f"triggered {run_id}", flush=True)
    path = f"/api/v2/dags/{CRAWL_DAG_ID}/dagRuns/{run_id}"
    state = wait_until("the crawl to finish", lambda: (s := api.get(path)["state"]) in FINISHED and s, timeout, every=5)
    print(f"{state:8} crawl  run={run_id}  [{task_states(api, CRAWL_DAG_ID, run_id)}]")
    requests = api.get(f"{path}/taskInstances/crawl/xcomEntries/return_value?deserialize=true")["value"]
    if isinstance(requests, str):
        requests = json.loads(requests)
    return {r["trigger_run_id"]: r["conf"]["media"] for r in requests or []}


def wait_for_export(api: Api, after: str, timeout: float) -> str:
    """State of the export run that started after the last gate task ended, once no export is pending."""

    def latest() -> dict | None:
        runs = api.get(f"/api/v2/dags/{EXPORT_DAG_ID}/dagRuns?order_by=-run_after&limit=5")["dag_runs"]
        if any(r["state"] not in FINISHED for r in runs):
            return None
        # ISO timestamps in UTC compare as strings
        done = [r for r in runs if r["start_date"] and r["start_date"] >= after]
        return done[0] if done else None

    run = wait_until(f"the {EXPORT_DAG_ID} export", latest, timeout, every=5)
    print(f"{run['state']:8} dataset export  run={run['dag_run_id']}", flush=True)
    return run["state"]


if __name__ == "__main__":
    sys.exit(main())
