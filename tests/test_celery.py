"""Scale-out for real: Airflow on CeleryExecutor with PostgreSQL and Redis and two Celery workers.

The same components as docker-compose.yaml, without containers: private
PostgreSQL and Redis servers on 127.0.0.1 (tests/services.py), then
api-server, scheduler, dag-processor, triggerer and two workers sharing one
Airflow home and one data folder, as workers share a volume. Each worker
reports its own host name (`core.hostname_callable`), so Airflow records which
one ran each task. nr4dl's own database (crawl catalog, failed-file list) is a
second PostgreSQL database, given through an `NR4DL__` environment variable
as in the compose file.

One crawl fans out over five files on a script-rendered page. While it runs,
the test kills one worker (every process of it) while it is writing the
separated vocals, starts it again, and kills and restarts the scheduler. Then
the tests below check what a user of a cluster relies on: every good run
succeeded on both workers, the killed separation was retried and left no
half-written file, the outputs equal a single-machine run of the same files,
the bad file is on the failed-file list, and a rerun recomputes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import NR4DL, ROOT, airflow_env, ffmpeg, js_page, serve
from nr4dl_tasks.core.runlock import RUN_LOCK
from services import free_port, postgresql, redis

sys.path.insert(0, str(ROOT / "scripts"))
from run_dag import Api, password, wait_until  # noqa: E402  (the REST client the scripts use)

pytestmark = pytest.mark.airflow

AIRFLOW = Path(sys.executable).with_name("airflow")  # the console script of this environment
WORKERS = ("worker1", "worker2")
SPLEETER = "spleeter_worker.py"
BROKEN_RUN = "site__A-broken-upload-"  # run ids of the broken upload start so


def descendants(pid: int) -> list[int]:
    """The process and every process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def open_files(pid: int) -> list[str]:
    try:
        return [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return []


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a component and everything it started: a machine that died, not a clean shutdown."""
    for pid in descendants(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    api: Api | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.root / "logs" / f"{name}.log", "a")
        self.procs[name] = subprocess.Popen(
            command,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )

    def start_worker(self, name: str) -> None:
        """A Celery worker under its own host name, as on its own machine (scripts/celery-worker.sh)."""
        env = {
            **self.env,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "services.worker_name",
            "NR4DL_TEST_WORKER": name,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), self.env.get("PYTHONPATH")])),
        }
        self.start(name, ["bash", "scripts/celery-worker.sh", "--celery-hostname", f"{name}@%h"], env)

    def stop(self) -> None:
        for process in self.procs.values():
            if process.poll() is None:
                kill_tree(process)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
            for p in sorted((self.root / "logs").glob("*.log"))
        )


def make_site(site: Path, media: Path) -> list[list[str]]:
    """Five episodes: four real recordings (one made of LibriSpeech utterances of two readers) and a broken one."""
    site.mkdir()
    shutil.copy(media / "segmentation" / "musanmix.mp3", site / "musanmix.mp3")
    shutil.copy(media / "segmentation" / "lamartine.wav", site / "lamartine.wav")
    shutil.copy(media / "diarization" / "sample.wav", site / "interview.wav")
    readers = [media / "speakers" / "1688" / f"1688-142285-000{i}.flac" for i in (3, 4, 5)]
    readers += sorted((media / "speakers" / "3080").glob("*.flac"))[:2]
    inputs = [arg for path in readers for arg in ("-i", str(path))]
    ffmpeg(
        *inputs,
        "-filter_complex",
        "".join(f"[{i}:a]" for i in range(len(readers))) + f"concat=n={len(readers)}:v=0:a=1",
        str(site / "readers.wav"),
    )
    # media to the crawl (ffprobe reads a video stream), useless to processing: it has no sound
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=5", str(site / "broken.mp4"))
    return [
        [name, title, "ep"]
        for name, title in [
            ("musanmix.mp3", "Music noise and a reader"),
            ("lamartine.wav", "Lamartine"),
            ("interview.wav", "An interview"),
            ("readers.wav", "Two readers"),
            ("broken.mp4", "A broken upload"),
        ]
    ]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def snapshot(work: Path) -> dict[str, str]:
    """Every output file of every work folder with its content hash; stamps by fingerprint (they hold timings).
    Lock files are not outputs: the CLI's run lock records who held it."""
    found = {}
    for path in sorted(work.rglob("*")):
        rel = str(path.relative_to(work))
        if path.is_dir() or path.name in (".lock", RUN_LOCK):
            continue
        if path.parent.name == "stamps":
            found[rel] = json.loads(path.read_text())["fingerprint"]
        else:
            found[rel] = digest(path)
    return found


@pytest.fixture(scope="module")
def cluster(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("celery")
    (root / "logs").mkdir()
    enroll = root / "enroll" / "reader1688"
    enroll.mkdir(parents=True)
    for i in (0, 1):
        shutil.copy(media / "speakers" / "1688" / f"1688-142285-000{i}.flac", enroll)
    links = make_site(root / "site", media)
    (root / "site" / "index.html").write_text(js_page(links))
    with postgresql(("airflow", "nr4dl")) as pg, redis(root / "redis") as broker, serve(root / "site") as base:
        settings_file = root / "settings.yaml"
        settings_file.write_text(
            json.dumps(
                {
                    "paths": {"work_dir": str(root / "work")},
                    "export": {"dataset_dir": str(root / "dataset")},
                    "speakers": {"enroll_dir": str(root / "enroll"), "keep": "all"},
                    "crawl": {
                        # triggered over REST only: unpausing the DAG after the nightly hour would also start
                        # the night's scheduled crawl, which would take the new files first
                        "schedule": None,
                        "download_dir": str(root / "downloads"),
                        "domain_interval_seconds": 0,
                        "sources": [
                            {"name": "site", "kind": "page", "url": f"{base}/index.html", "link_selector": "a.ep"}
                        ],
                    },
                }
            )
        )
        env = {
            **airflow_env(root / "airflow", free_port()),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{pg}/airflow",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{pg.replace('+psycopg2', '')}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            # set once for every component, as docker-compose.yaml does
            "AIRFLOW__CORE__FERNET_KEY": "x2-hLEx0F6kVrUqXeQaMsmlm0G2rJrsUGVDdtgKt0F8=",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # a task whose worker died is failed (and retried) after 30 s without heartbeat instead of 5 min;
            # after a scheduler restart, the new scheduler adopts the old one's tasks at its next orphan check
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
            "NR4DL_SETTINGS": str(settings_file),
            "NR4DL__CRAWL__CATALOG_URL": f"{pg}/nr4dl",
            # one task at a time per worker; the pool admits one model-holding task per worker
            "NR4DL__RESOURCES__TASKS_PER_WORKER": "1",
            "NR4DL__RESOURCES__HEAVY_SLOTS": "2",
            "NR4DL__RESOURCES__THREADS": "1",
        }
        home = Path(env["AIRFLOW_HOME"])
        home.mkdir()
        (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "admin"}))
        subprocess.run(["bash", "scripts/airflow-init.sh"], env=env, cwd=ROOT, check=True)
        cluster = Cluster(root, env)
        try:
            for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
                cluster.start(component, [str(AIRFLOW), component])
            for name in WORKERS:
                cluster.start_worker(name)
            cluster.api = Api(f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}", "admin", password(home, "admin"))
            wait_until("the api-server", lambda: cluster.api.login() or True, 300)
            yield cluster
        finally:
            cluster.stop()


def wait_for_separation_writing(cluster: Cluster, timeout: float = 900) -> tuple[str, Path]:
    """A worker whose Spleeter process has its half-written vocals open; (worker, that temp file)."""

    def writing() -> tuple[str, Path] | None:
        if dead := [name for name in WORKERS if cluster.procs[name].poll() is not None]:
            pytest.fail(f"worker {dead} exited before any separation:\n{cluster.log_tail()}")
        for name in WORKERS:
            for pid in descendants(cluster.procs[name].pid):
                if SPLEETER in cmdline(pid):
                    temps = [f for f in open_files(pid) if ".vocals.tmp-" in f]
                    if temps:
                        return name, Path(temps[0])
        return None

    return wait_until("a separation task writing its vocals", writing, timeout, every=0.2)


@pytest.fixture(scope="module")
def crawl(cluster):
    """The crawl with its faults: a worker killed mid-separation, the scheduler killed mid-run."""
    crawl = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/run_dag.py"), "--crawl", "--timeout", "2400"],
        env=cluster.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    faults: dict[str, Any] = {}
    try:
        killed, temp = wait_for_separation_writing(cluster)
        kill_tree(cluster.procs[killed])
        work = temp.parent
        faults["killed"] = {
            "worker": killed,
            "work": work,
            "temp": temp,
            "temp_left": temp.exists(),
            "files_after_kill": sorted(p.name for p in work.iterdir()),
            "stamped_after_kill": (work / "stamps" / "separate.json").exists(),
        }
        cluster.start_worker(killed)  # its supervisor brings it back

        # The scheduler dies while runs are under way; a new one takes over.
        wait_until(
            "a task running",
            lambda: any(
                ti["state"] == "running"
                for run in cluster.runs("nr4dl_process_file")
                for ti in cluster.task_instances("nr4dl_process_file", run["dag_run_id"])
            ),
            600,
            every=1,
        )
        faults["running_at_scheduler_kill"] = [
            (run["dag_run_id"], ti["task_id"])
            for run in cluster.runs("nr4dl_process_file")
            for ti in cluster.task_instances("nr4dl_process_file", run["dag_run_id"])
            if ti["state"] == "running"
        ]
        kill_tree(cluster.procs["scheduler"])
        time.sleep(5)
        cluster.start("scheduler", [str(AIRFLOW), "scheduler"])
        output, _ = crawl.communicate(timeout=2700)
    finally:
        if crawl.poll() is None:
            crawl.kill()
            crawl.communicate()
    faults["output"] = output
    faults["returncode"] = crawl.returncode
    return faults


def process_runs(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {r["dag_run_id"]: r for r in cluster.runs("nr4dl_process_file")}


def returned(cluster: Cluster, run_id: str, task_id: str) -> dict[str, Any]:
    """What a task of nr4dl_process_file returned (its XCom)."""
    value = cluster.api.get(
        f"/api/v2/dags/nr4dl_process_file/dagRuns/{run_id}/taskInstances/{task_id}"
        "/xcomEntries/return_value?deserialize=true"
    )["value"]
    return value if isinstance(value, dict) else json.loads(value)


def test_fan_out_spreads_over_both_workers_and_only_the_bad_file_fails(cluster, crawl):
    lines = crawl["output"].splitlines()
    assert crawl["returncode"] == 1, crawl["output"] + cluster.log_tail()  # the broken upload
    states = {run_id: run["state"] for run_id, run in process_runs(cluster).items()}
    assert len(states) == 5, crawl["output"]
    assert sorted(states.values()) == ["failed"] + ["success"] * 4, crawl["output"] + cluster.log_tail()
    (bad,) = [run_id for run_id, state in states.items() if state == "failed"]
    assert bad.startswith(BROKEN_RUN)
    assert any(line.startswith("success  dataset export") for line in lines), crawl["output"]
    hosts = {
        ti["hostname"]
        for run_id in states
        for ti in cluster.task_instances("nr4dl_process_file", run_id)
        if ti["state"] == "success"
    }
    assert hosts == set(WORKERS), hosts


def test_killed_worker_separation_is_retried_and_leaves_no_half_written_file(cluster, crawl):
    killed = crawl["killed"]
    work: Path = killed["work"]
    # At the kill: the half-written vocals were a temp file; no vocals.wav, no stamp that would skip the stage.
    assert killed["temp_left"] and "vocals.wav" not in killed["files_after_kill"], killed
    assert not killed["stamped_after_kill"]
    assert (work / "vocals.wav").exists() and not list(work.rglob("*.tmp-*")), sorted(work.iterdir())
    source = json.loads((work / "source.json").read_text())["path"]
    (run_id,) = [rid for rid, run in process_runs(cluster).items() if run["conf"]["media"] == source]
    separate = cluster.api.get(f"/api/v2/dags/nr4dl_process_file/dagRuns/{run_id}/taskInstances/separate")
    assert separate["state"] == "success" and separate["try_number"] >= 2, separate
    assert not list((cluster.root / "work").rglob("*.tmp-*"))


def test_scheduler_restart_mid_run_loses_no_task(cluster, crawl):
    """Every task that was running when the scheduler died was taken over by the new one and ended as it would
    have without the restart: success (the one on the killed worker through its retry), except the broken
    upload's ingest, which fails for its own cause (the failed-file list test checks that cause)."""
    running = crawl["running_at_scheduler_kill"]
    assert running
    for run_id, task_id in running:
        ti = cluster.api.get(f"/api/v2/dags/nr4dl_process_file/dagRuns/{run_id}/taskInstances/{task_id}")
        expected = "failed" if run_id.startswith(BROKEN_RUN) else "success"
        assert ti["state"] == expected, ti


def test_outputs_equal_a_single_machine_run(cluster, crawl):
    """`nr4dl process` on one machine, same files and settings: the same files byte for byte, and the same
    fingerprints in every stamp, so a cluster and a laptop build the same dataset. The reference runs at the
    workers' one thread per task: with two, TensorFlow's sums in Spleeter differed in the last bit on a loaded
    machine (a handful of samples), and threads are in no fingerprint."""
    downloads = sorted(p for p in (cluster.root / "downloads" / "site").iterdir() if "broken" not in p.name.lower())
    reference = cluster.root / "reference"
    env = cluster.env
    done = subprocess.run(
        [str(NR4DL), "process", *map(str, downloads), "--set", f"paths.work_dir={reference}/work"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ours = {name: value for name, value in snapshot(cluster.root / "work").items() if "A-broken-upload" not in name}
    theirs = snapshot(reference / "work")
    assert ours.keys() == theirs.keys()
    assert {k for k in ours if ours[k] != theirs[k]} == set()
    exported = subprocess.run(
        [
            str(NR4DL),
            "export",
            "--set",
            f"paths.work_dir={reference}/work",
            "--set",
            f"export.dataset_dir={reference}/dataset",
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    written = sorted((cluster.root / "dataset").rglob("ljspeech/*/metadata.csv"))
    assert written, "the cluster's export wrote no LJSpeech metadata.csv"
    for metadata in written:
        twin = reference / "dataset" / metadata.relative_to(cluster.root / "dataset")
        assert metadata.read_bytes() == twin.read_bytes(), metadata


def test_the_catalog_and_the_failed_file_list_are_in_postgresql(cluster, crawl):
    import sqlalchemy as sa

    listed = subprocess.run([str(NR4DL), "failures"], env=cluster.env, capture_output=True, text=True)
    lines = [line for line in listed.stdout.splitlines() if "A-broken-upload" in line]
    assert len(lines) == 1 and " ingest " in lines[0] and "no audio stream" in lines[0], listed.stdout
    assert "1 file(s) whose latest run failed" in listed.stdout
    assert not (cluster.root / "catalog.sqlite").exists()  # the SQLite default beside the work folders
    with sa.create_engine(cluster.env["NR4DL__CRAWL__CATALOG_URL"]).connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM nr4dl_catalog")).scalar() == 5
        assert db.execute(sa.text("SELECT count(*) FROM nr4dl_failures")).scalar() == 1


def test_rerun_of_a_finished_file_recomputes_nothing(cluster, crawl):
    runs = process_runs(cluster)
    run = next(r for r in runs.values() if r["state"] == "success" and "Lamartine" in r["dag_run_id"])
    work = cluster.root / "work"
    before = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    contents = snapshot(work)
    rerun_id = run["dag_run_id"] + "__again"
    cluster.api.post(
        "/api/v2/dags/nr4dl_process_file/dagRuns", {"dag_run_id": rerun_id, "logical_date": None, "conf": run["conf"]}
    )
    path = f"/api/v2/dags/nr4dl_process_file/dagRuns/{rerun_id}"
    state = wait_until(
        "the rerun", lambda: (s := cluster.api.get(path)["state"]) in ("success", "failed") and s, 600, every=3
    )
    assert state == "success"
    skipped = {
        ti["task_id"]: returned(cluster, rerun_id, ti["task_id"])["skipped"]
        for ti in cluster.task_instances("nr4dl_process_file", rerun_id)
    }
    assert skipped == {task: True for task in skipped} and len(skipped) == 8, skipped
    # Not one file written again, but clips.jsonl: each skipped stage republishes its manifest as that copy
    # (identical in the end), so it always follows the last stage that ran.
    after = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    assert {p for p in after if after[p] != before.get(p)} <= {p for p in after if p.name == "clips.jsonl"}
    assert snapshot(work) == contents
