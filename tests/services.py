"""Private PostgreSQL and Redis servers on 127.0.0.1 for the scale-out test, from Debian's packages.

Each server lives in a temporary folder on a free port and is stopped at the
end, so the test needs no system service and leaves nothing behind.
scripts/test.sh installs the packages (`postgresql`, `redis-server`).
PostgreSQL refuses to run as root, so as root it runs as Debian's `postgres`
user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def worker_name() -> str:
    """Airflow's `core.hostname_callable` for the scale-out test's workers, which share one machine: each worker
    reports the name it was started with, so the task instances tell which worker ran them."""
    return os.environ["NR4DL_TEST_WORKER"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql; scripts/test.sh installs it)")
    return found[-1].parent


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")


@contextmanager
def postgresql(databases: tuple[str, ...]) -> Iterator[str]:
    """A PostgreSQL server with these databases; yields the base URL (append a database name).

    Its folder is a fresh one under /tmp (pytest's own is closed to the `postgres` user), removed at the end."""
    bin_dir, port = _postgres_bin(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="nr4dl-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    try:
        _run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]))
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=200 -c fsync=off"
        _run(
            _as_postgres(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
            )
        )
        try:
            for name in databases:
                _run(
                    [
                        "psql",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "-q",
                        "-c",
                        f"CREATE DATABASE {name}",
                    ]
                )
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
        finally:
            subprocess.run(
                _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis(folder: Path) -> Iterator[str]:
    """A Redis server without persistence; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=open(folder / "redis.log", "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"redis-server did not answer on port {port}; see {folder / 'redis.log'}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=30)
