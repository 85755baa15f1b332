"""A killed `nr4dl` leaves no ffmpeg running on its own."""

import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import NR4DL, ROOT, ffmpeg


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killing_nr4dl_kills_its_ffmpeg(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=10", "-ac", "2", str(tmp_path / "t.wav"))
    long_input = tmp_path / "long.ffconcat"  # two hours: ingest's ffmpeg runs for a good while
    long_input.write_text("ffconcat version 1.0\n" + "file t.wav\n" * 720)
    run = subprocess.Popen(
        [str(NR4DL), "process", str(long_input), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            children = [c for c in _children(run.pid) if "ffmpeg" in (Path("/proc") / str(c) / "comm").read_text()]
        assert children, "ingest never started ffmpeg"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        time.sleep(1)
        assert not [c for c in children if _alive(c)], "ffmpeg kept running after nr4dl was killed"
    finally:
        run.kill()
        for child in [c for c in children if _alive(c)]:  # the test's own leftovers when it fails
            os.kill(child, signal.SIGKILL)
