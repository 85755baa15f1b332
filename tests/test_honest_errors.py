"""Errors that name the file and the cause, in one line, without a traceback: full disk, links, settings files."""

import os
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import NR4DL, ROOT
from nr4dl_tasks.core.errors import DiskFull, MediaError
from nr4dl_tasks.pipeline import open_work, run_stage


def nr4dl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(NR4DL), *args], capture_output=True, text=True, cwd=ROOT)


@contextmanager
def _file_system(folder: Path, size: str) -> Iterator[Path]:
    """A small file system (tmpfs: needs root, as in the project's containers), so a stage can fill it."""
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small file system here (not root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with _file_system(tmp_path / "disk", "2m") as folder:
        yield folder


@pytest.fixture
def disk_for_clips(tmp_path: Path) -> Iterator[Path]:
    with _file_system(tmp_path / "disk", "8m") as folder:
        yield folder


def _fill(disk: Path) -> None:
    with pytest.raises(OSError), (disk / "filler").open("wb") as fill:
        while True:
            fill.write(b"\0" * 4096)


def test_a_full_disk_at_ingest_is_named_as_such(media, make_settings, small_disk):
    settings = make_settings(paths__work_dir=str(small_disk))
    work = open_work(media / "segmentation" / "lamartine.wav", settings)  # its 44.1 kHz copy needs 2.6 MB more
    with pytest.raises(DiskFull, match=f"{work.root}: the disk is full; ffmpeg could not write"):
        run_stage("ingest", work, settings)
    assert not [p for p in work.root.iterdir() if ".tmp-" in p.name]


def test_a_full_disk_in_slice_is_named_as_such(media, make_settings, small_disk):
    settings = make_settings(paths__work_dir=str(small_disk), separate__mode="off")
    work = open_work(media / "segmentation" / "0021.mp3", settings)
    for name in ("ingest", "separate", "segment"):
        run_stage(name, work, settings)
    _fill(small_disk)
    with pytest.raises(DiskFull, match="the disk is full; slice could not write its outputs"):
        run_stage("slice", work, settings)


def test_random_bytes_report_the_decoders_reason(tmp_path, make_settings):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(random.Random(0).randbytes(200_000))
    settings = make_settings()
    with pytest.raises(MediaError, match=f"{noise}: decoding failed \\(Header missing"):
        run_stage("ingest", open_work(noise, settings), settings)


def test_a_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop.mp3"
    os.symlink(tmp_path / "back.mp3", loop)
    os.symlink(loop, tmp_path / "back.mp3")
    run = nr4dl("process", str(loop), "--out", str(tmp_path / "out"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"FAILED  {loop}: a symbolic link loop" in run.stdout


@pytest.mark.parametrize("kind", ["folder", "not utf-8"])
def test_an_unusable_settings_file_exits_2_with_one_line(tmp_path, kind):
    path = tmp_path / "settings.yaml"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"slice:\n  min_duration: \xff\xfe\n")
    run = nr4dl("settings", "--settings", str(path))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: settings file {path} "
        + ("is a folder, not a file" if kind == "folder" else "is not UTF-8 text (byte 23)")
    ]


def test_a_full_disk_in_denoise_is_named_as_such(media, make_settings, disk_for_clips):
    settings = make_settings(paths__work_dir=str(disk_for_clips), separate__mode="off")
    work = open_work(media / "segmentation" / "lamartine.wav", settings)
    for name in ("ingest", "separate", "segment", "slice"):
        run_stage(name, work, settings)
    assert list(work.path("clips").glob("*.wav")), "no clip to denoise"
    _fill(disk_for_clips)
    with pytest.raises(DiskFull, match="the disk is full; denoise could not write its outputs"):
        run_stage("denoise", work, settings)
