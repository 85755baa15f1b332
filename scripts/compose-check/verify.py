"""The checks of scripts/compose-check.sh against a running compose stack (any engine, through its CLI).

    verify.py wait-healthy --timeout S   every service up and healthy, both workers answering Celery
    verify.py run --media /media/FILE --reference DIR --state DIR --port PORT [--kill-task TASK]
        trigger FILE over the REST API, kill the worker container running TASK of its run (speakers, the
        longest task on a clean recording, by default) 10 s into it, wait for the run and the export,
        compare the outputs with the bare-metal reference in DIR byte for byte, then trigger a broken file
        and read it on the failed-file list and in the compose PostgreSQL.

What the comparison sets aside, and why (everything else must be byte-identical):
  - lock files (.lock, .run.lock): empty files whose only job is flock();
  - a stage stamp's timings: stamps are compared by their fingerprint (the rest is how long the stage took);
  - source.json's `path`: the media file's path, /media/... in the cluster and the host's own on bare metal;
  - export.json's `fingerprint`: the export's cache key, which hashes the absolute work-folder root (so an
    export re-links when that root moves); /opt/nr4dl/data/work in the cluster, .compose-check/... here;
  - the dataset's report.html: the nr4dl_dataset DAG renders it, `nr4dl export` leaves it to `nr4dl report`.
The broken file is triggered only after the dataset is compared: its failed work folder would otherwise be in
the cluster's export.json (`failed`) and not in the bare-metal one, which processed the good file only.

The engine and compose commands come from ENGINE and COMPOSE_CMD (set by compose-check.sh). Exit status 1,
with the reason, on the first check that fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_dag import DAG_ID, Api, wait_until  # noqa: E402  (the REST client the scripts use)

ENGINE = os.environ.get("ENGINE", "docker")
COMPOSE = shlex.split(os.environ.get("COMPOSE_CMD", "docker compose"))
HEALTHY = ("postgres", "redis", "airflow-apiserver")  # services with a healthcheck
# These three report their heartbeats through the API (below); the workers answer a Celery ping.
RUNNING = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker")
DATA = "/opt/nr4dl/data"
KILL_AFTER_S = 10.0  # into the task: its models are loaded and it is working
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


class CheckFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def sh(*command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, input=stdin, capture_output=True, timeout=300)


def out(*command: str) -> str:
    done = sh(*command)
    check(done.returncode == 0, f"{shlex.join(command)} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout.decode()


def containers(service: str) -> list[str]:
    return out(*COMPOSE, "ps", "-q", service).split()


def inspect(container: str, template: str) -> str:
    return out(ENGINE, "inspect", "--format", template, container).strip()


def in_container(container: str, script: str) -> subprocess.CompletedProcess[bytes]:
    return sh(ENGINE, "exec", container, "sh", "-c", script)


def all_are(service: str, template: str, wanted: str) -> bool:
    found = containers(service)
    return bool(found) and all(inspect(c, template) == wanted for c in found)


def wait_healthy(timeout: float) -> None:
    def ready() -> str | None:
        init = containers("airflow-init")
        if init and inspect(init[0], "{{.State.Status}} {{.State.ExitCode}}") not in ("exited 0", "running 0"):
            status = inspect(init[0], "{{.State.Status}} {{.State.ExitCode}}")
            if status.startswith("exited"):
                raise CheckFailed(f"airflow-init ended with {status}:\n{out(*COMPOSE, 'logs', 'airflow-init')}")
        waiting = [s for s in HEALTHY if not all_are(s, "{{.State.Health.Status}}", "healthy")]
        waiting += [s for s in RUNNING if not all_are(s, "{{.State.Running}}", "true")]
        if len(containers("airflow-worker")) != 2:
            waiting.append("two airflow-worker containers")
        if waiting:
            print(f"waiting for: {', '.join(sorted(set(waiting)))}", flush=True)
            return None
        return "ready"

    wait_until("every service to be up and healthy", ready, timeout, every=10)
    api = containers("airflow-apiserver")[0]
    worker = containers("airflow-worker")[0]

    def heartbeats() -> dict | None:
        """The scheduler, dag-processor and triggerer, as the API reports their heartbeats."""
        health = json.loads(out(ENGINE, "exec", api, "python", "-c", MONITOR))
        return health if all(part.get("status") == "healthy" for part in health.values()) else None

    def pongs() -> str | None:
        replies = in_container(worker, f"celery --app {CELERY_APP} inspect ping --timeout 10").stdout.decode()
        return replies if replies.count("pong") == 2 else None

    health = wait_until("the Airflow components' heartbeats", heartbeats, timeout, every=10)
    print("Airflow components:", ", ".join(f"{name}={part['status']}" for name, part in sorted(health.items())))
    replies = wait_until("both Celery workers to answer a ping", pongs, timeout, every=10)
    print("Celery workers:", " ".join(line.split(":")[0].strip("-> ") for line in replies.splitlines() if "@" in line))


MONITOR = (
    "import json, urllib.request; "
    "print(urllib.request.urlopen('http://localhost:8080/api/v2/monitor/health').read().decode())"
)


def login(state: Path, port: int) -> Api:
    api_container = containers("airflow-apiserver")[0]
    passwords = json.loads(
        out(ENGINE, "exec", api_container, "cat", "/opt/airflow/simple_auth_manager_passwords.json.generated")
    )
    home = state / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(passwords))
    api = Api(f"http://127.0.0.1:{port}", "admin", passwords["admin"])
    api.login()
    return api


def kill_worker_running(api: Api, task_id: str, run: subprocess.Popen[str]) -> dict[str, object]:
    """SIGKILL the worker container that runs `task_id` of the triggered run, KILL_AFTER_S into the task, then
    start it again, as its restart policy would. The API names the worker's host name; the container is the
    worker whose host name that is. (Since the separate stage is routed, a clean recording never starts
    Spleeter: the task to kill is named, not found by its process.)"""
    while run.poll() is None:
        runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?state=running")["dag_runs"]
        for dag_run in runs:
            ti = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{dag_run['dag_run_id']}/taskInstances/{task_id}")
            if ti["state"] != "running" or not ti["hostname"] or not ti["start_date"]:
                continue
            running_s = time.time() - datetime.fromisoformat(ti["start_date"]).timestamp()
            if running_s < KILL_AFTER_S:
                continue
            hosts = {inspect(c, "{{.Config.Hostname}}"): c for c in containers("airflow-worker")}
            if ti["hostname"] not in hosts:
                raise CheckFailed(f"{task_id} runs on {ti['hostname']}, none of the workers {sorted(hosts)}")
            container = hosts[ti["hostname"]]
            out(ENGINE, "kill", container)
            killed = {"container": container[:12], "hostname": ti["hostname"], "task_running_s": round(running_s)}
            print(f"killed worker {ti['hostname']} ({container[:12]}) while it ran {task_id}: {killed}", flush=True)
            time.sleep(3)
            if inspect(container, "{{.State.Running}}") != "true":
                out(ENGINE, "start", container)
            return killed
        time.sleep(1)
    output, _ = run.communicate()
    raise CheckFailed(f"the run ended before any worker was seen running {task_id}:\n{output}")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def without(path: Path, key: str) -> str:
    """The hash of a JSON file's content with `key` set aside (see the module doc for which and why)."""
    return digest(json.dumps({**json.loads(path.read_text()), key: None}, sort_keys=True).encode())


def snapshot(root: Path) -> dict[str, str]:
    """Every output with its content hash, as tests/test_celery.py compares them, less what the module doc
    lists: lock files left out, stamps by fingerprint, source.json without its path, export.json without its
    fingerprint."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")):
        rel = str(path.relative_to(root))
        if path.parent.name == "stamps":
            found[rel] = json.loads(path.read_text())["fingerprint"]
        elif path.name == "source.json":
            found[rel] = without(path, "path")
        elif rel == "export.json":
            found[rel] = without(path, "fingerprint")
        else:
            found[rel] = digest(path.read_bytes())
    return found


def compare(ours: Path, reference: Path, what: str, only_ours: frozenset[str] = frozenset()) -> int:
    """Byte-identical outputs; `only_ours`: files the DAGs write that the bare-metal command does not."""
    mine, theirs = snapshot(ours), snapshot(reference)
    check(mine, f"the cluster wrote no {what}")
    mine = {k: v for k, v in mine.items() if k not in only_ours}
    check(mine.keys() == theirs.keys(), f"{what}: different files: {sorted(mine.keys() ^ theirs.keys())}")
    differ = sorted(k for k in mine if mine[k] != theirs[k])
    check(not differ, f"{what}: files differ from bare metal: {differ}")
    return len(mine)


def run(args: argparse.Namespace) -> None:
    state, reference = Path(args.state), Path(args.reference)
    api = login(state, args.port)
    wait_until(f"DAG {DAG_ID} to be parsed", lambda: api.get(f"/api/v2/dags/{DAG_ID}"), 300)
    env = {**os.environ, "AIRFLOW_HOME": str(state / "airflow-home"), "AIRFLOW__API__PORT": str(args.port)}
    started = time.monotonic()
    trigger = subprocess.Popen(
        [sys.executable, str(Path(__file__).parents[1] / "run_dag.py"), args.media, "--timeout", "2400"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        killed = kill_worker_running(api, args.kill_task, trigger)
        output, _ = trigger.communicate(timeout=2700)
    finally:
        if trigger.poll() is None:
            trigger.kill()
    print(output, end="")
    check(trigger.returncode == 0, "the run or its export did not succeed")
    print(f"run + export over REST, worker {killed['hostname']} killed on the way: {time.monotonic() - started:.0f} s")
    (run_id,) = [line.split("run=")[1].split()[0] for line in output.splitlines() if f"{args.media}  run=" in line]
    tasks = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    retried = next(t for t in tasks if t["task_id"] == args.kill_task)
    check(retried["state"] == "success" and retried["try_number"] >= 2, f"{args.kill_task} was not retried: {retried}")
    hosts = sorted({t["hostname"] for t in tasks})
    print(f"{args.kill_task}: {retried['state']} on try {retried['try_number']}; tasks ran on {hosts}")

    worker = containers("airflow-worker")[0]
    temps = in_container(worker, f"find {DATA} -name '*.tmp-*'").stdout.decode().split()
    check(not temps, f"temporary files left: {temps}")
    print("temporary files left on the shared volume: none")
    cluster = state / "cluster"
    subprocess.run(["rm", "-rf", str(cluster)], check=True)
    cluster.mkdir()
    tar = sh(ENGINE, "exec", worker, "tar", "-C", DATA, "-cf", "-", "work", "dataset")
    check(tar.returncode == 0, f"cannot read the shared volume: {tar.stderr.decode()}")
    with tarfile.open(fileobj=BytesIO(tar.stdout)) as archive:
        archive.extractall(cluster, filter="data")
    work = [p for p in (cluster / "work").iterdir() if p.is_dir()]
    good = [p for p in work if (p / "stamps" / "gate.json").exists()]
    check(len(good) == 1, f"expected one processed work folder, found {[p.name for p in work]}")
    (ref,) = [p for p in (reference / "work").iterdir() if p.name == good[0].name]
    files = compare(good[0], ref, "work folder")
    print(f"work folder {good[0].name}: {files} files byte-identical to bare-metal `nr4dl process`")
    # The nr4dl_dataset DAG also renders the dataset report, which `nr4dl export` leaves to its own command.
    files = compare(cluster / "dataset", reference / "dataset", "dataset", frozenset({"report.html"}))
    print(f"dataset: {files} files byte-identical to bare-metal `nr4dl export` (report.html aside)")
    check_failed_file(api)


def check_failed_file(api: Api) -> None:
    """A file that is not media fails at ingest, and is on the failed-file list in the compose PostgreSQL."""
    broken_run = f"broken__{int(time.time())}"
    api.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"dag_run_id": broken_run, "logical_date": None, "conf": {"media": "/media/README.md"}},
    )

    def finished() -> str | None:
        state = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{broken_run}")["state"]
        return state if state in ("success", "failed") else None

    broken = wait_until("the broken file's run", finished, 600, every=5)
    check(broken == "failed", f"the broken file's run is {broken}, not failed")
    print(f"broken file /media/README.md: run {broken_run} {broken}")

    listing = sh(*COMPOSE, "exec", "-T", "airflow-worker", "nr4dl", "failures")
    failures = listing.stdout.decode()
    # Exit status 1 says that some file's latest run failed, which is what this check wants to see.
    check(listing.returncode == 1, f"nr4dl failures: exit status {listing.returncode}:\n{failures}")
    listed = [line for line in failures.splitlines() if "README" in line]
    check(len(listed) == 1 and " ingest " in listed[0], f"the broken file is not on the failed-file list:\n{failures}")
    print(f"failed-file list (nr4dl failures): {listed[0].strip()}")
    postgres = containers("postgres")[0]
    # nr4dl_catalog is created by the first crawl, and no crawl runs here: only the failed-file list is read.
    rows = out(
        ENGINE,
        "exec",
        postgres,
        "psql",
        "-U",
        "airflow",
        "-d",
        "nr4dl",
        "-Atc",
        "SELECT media, stage, run_id FROM nr4dl_failures ORDER BY media",
    ).split()
    check(rows == [f"/media/README.md|ingest|{broken_run}"], f"nr4dl_failures in the compose PostgreSQL: {rows}")
    print(f"compose PostgreSQL, database nr4dl, table nr4dl_failures: {rows[0]} (its only row)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("wait-healthy").add_argument("--timeout", type=float, default=900)
    checked = sub.add_parser("run")
    checked.add_argument("--media", required=True)
    checked.add_argument("--reference", required=True)
    checked.add_argument("--state", required=True)
    checked.add_argument("--port", type=int, required=True)
    checked.add_argument("--kill-task", default="speakers", help="the task whose worker is killed")
    args = parser.parse_args()
    try:
        wait_healthy(args.timeout) if args.command == "wait-healthy" else run(args)
    except CheckFailed as failed:
        print(f"CHECK FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
