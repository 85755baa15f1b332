"""Writing a layout onto disk so that readers never see half a file: audio hard-linked first (never re-encoded),
metadata by temporary name and rename, stale files removed last.

A clip cut to its words (first word to last, `export.edge_pad_seconds`) is the one file not linked: its cut is
written by temporary name and rename, the same samples in the same format. Cutting here, and not in a stage,
leaves every stage's output as the stage wrote it (idempotent, measured by the gate as it is) and costs one read
of the kept clips only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import soundfile as sf

from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.export.formats import Layout
from nr4dl_tasks.export.items import Cut


@contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` that replaces it on success (the work folders' own atomic writer)."""
    with WorkDir(path.parent).atomic(path.name) as tmp:
        yield tmp


def _in_place(src: Path, dst: Path) -> bool:
    """True when dst already holds src: the same file (a link), or a copy of the same size and modification time."""
    try:
        have, want = dst.stat(), src.stat()
    except FileNotFoundError:
        return False
    if (have.st_dev, have.st_ino) == (want.st_dev, want.st_ino):
        return True
    return have.st_nlink == 1 and have.st_size == want.st_size and have.st_mtime_ns == want.st_mtime_ns


def _frames(cut: Cut) -> tuple[int, int]:
    rate = sf.info(str(cut.path)).samplerate
    return round(cut.start * rate), round(cut.end * rate)


def _cut_in_place(cut: Cut, dst: Path) -> bool:
    """True when dst already holds this cut: its modification time is the source's plus the first frame (in ns,
    which no copy by other means gets) and it holds the cut's number of frames."""
    try:
        have, want = dst.stat(), cut.path.stat()
    except FileNotFoundError:
        return False
    first, last = _frames(cut)
    return have.st_mtime_ns == want.st_mtime_ns + first and sf.info(str(dst)).frames == last - first


def _write_cut(cut: Cut, tmp: Path) -> None:
    """The cut's frames in the source's own format and sample type: the same samples, nothing re-encoded
    (PCM clips)."""
    first, last = _frames(cut)
    info = sf.info(str(cut.path))
    dtype = "float32" if info.subtype in ("FLOAT", "DOUBLE") else "int32"  # int32 holds PCM_16/24/32 exactly
    samples, rate = sf.read(str(cut.path), start=first, stop=last, dtype=dtype, always_2d=True)
    sf.write(str(tmp), samples, rate, subtype=info.subtype, format=info.format)
    mtime = cut.path.stat().st_mtime_ns + first
    os.utime(tmp, ns=(mtime, mtime))


def place_audio(src: Path | Cut, dst: Path) -> bool:
    """Hard-link src at dst (a copy where linking fails), or write the cut of a trimmed clip; False when it was
    already there. Never re-encodes: a cut holds the very samples of its clip."""
    if isinstance(src, Cut):
        if _cut_in_place(src, dst):
            return False
        with _atomic_file(dst) as tmp:
            _write_cut(src, tmp)
        return True
    if _in_place(src, dst):
        return False
    with _atomic_file(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:  # another filesystem, or links not allowed: copy, keeping the time _in_place compares
            shutil.copy2(src, tmp)
    return True


def write_metadata(path: Path, data: bytes) -> None:
    """Write a metadata file by temporary name and rename, and not at all when it already holds these bytes."""
    if path.is_file() and path.read_bytes() == data:
        return
    with _atomic_file(path) as tmp:
        tmp.write_bytes(data)


def remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass  # not empty


def sync_tree(root: Path, layout: Layout) -> tuple[int, int]:
    """Make `root` hold exactly the layout: new audio first, then metadata, then stale files go.

    Returns (audio files placed, files removed). In that order a reader of a
    metadata file, old or new, finds every file it lists.
    """
    linked = sum(place_audio(src, root / rel) for rel, src in layout.audio.items())
    for rel, data in layout.metadata.items():
        write_metadata(root / rel, data)
    wanted = {root / rel for rel in (*layout.audio, *layout.metadata)}
    removed = 0
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path not in wanted and (path.is_file() or path.is_symlink()):
                path.unlink()
                removed += 1
    remove_empty_dirs(root)
    return linked, removed
