"""Benchmark of a day-long input: seconds and peak memory of every stage on a synthetic N-hour broadcast day.

Why: broadcast archives hold day-long recordings. Past 6.8 h the 44.1 kHz stereo copy written at ingest passes
WAV's 4 GiB limit (ingest then writes RF64), and any stage that held a whole recording in memory would show here
as memory growing with the hours. tests/test_long_input.py converts and reads back 7 hours (ingest's part); this
runs the whole pipeline, with the default settings (separation routed), too slow for a test, and prints its cost.

The input: a radio day, made cheaply. An ffconcat list (31 kB for 7 hours) alternates talk blocks, one Korean speaker
reading their utterances (../shared/media/korean/emotiontts, CC BY-NC-SA 4.0, testing only; and the three
azure_ko paragraphs, MIT), with music beds (../shared/media/music: Let's Go Fishin' by Karissa Hobbs, Dance of the
Sugar Plum Fairy and Vibe Ace by Kevin MacLeod, all CC BY 3.0; Brahms' Hungarian Dance no. 5, public domain):
after each block, beds until the talk is 1/6 of the time so far. ffmpeg reads the list as one recording. The
speech files are read where they lie (the media folders are linked into a temporary folder); the four beds are
decoded once to FLAC in the speech's format (16 kHz mono: the concat demuxer needs one codec and format
throughout), 8 MB. Nothing is copied into the repository. The figures are time and memory only: no threshold is
set or scored here.

What it measures, per stage, in one process as `nr4dl process FILE --until STAGE` runs them (models stay loaded
from one stage to the next, as in the CLI):
- seconds of the stage, and x real time (hours of input / hours of work) for it and for the whole pipeline
  (the machine may be shared: seconds are an upper bound, memory does not depend on it);
- this process: its exact peak RSS during the stage (the kernel's VmHWM, reset through /proc/self/clear_refs when
  the stage starts);
- largest child: the highest peak RSS (VmHWM, reset at stage start) of any child process (ffmpeg, the Spleeter
  worker) alive at one of the polls every 0.5 s, or of a child that ended during the stage (getrusage
  RUSAGE_CHILDREN: the largest child that has ended so far, taken when it rose during the stage);
- all together: the most this process and its children held at one moment (summed RSS at the same polls, so a
  peak shorter than 0.5 s may be missed; never below this process's own peak).
Then the sizes of the ingest copies and the hours read back, and the clips and how far into the day they reach.

Usage: nice -n 10 .venv/bin/python bench/long_input.py [--hours 7] [--until slice] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.core import layout  # noqa: E402
from nr4dl_tasks.core import settings as settings_mod  # noqa: E402
from nr4dl_tasks.core.layout import ANALYSIS_WAV, FULL_WAV  # noqa: E402
from nr4dl_tasks.core.records import read_clips  # noqa: E402
from nr4dl_tasks.dsp import audio  # noqa: E402
from nr4dl_tasks.pipeline import STAGE_NAMES, process_file  # noqa: E402

MEDIA = (ROOT / ".." / "shared" / "media").resolve()
KOREAN = MEDIA / "korean"
MUSIC = sorted((MEDIA / "music").glob("*.ogg"))
TALK_SHARE = 1 / 6
POLL_SECONDS = 0.5
GIB = 2**30


# ---------------------------------------------------------------- the input


def talk_blocks() -> list[list[str]]:
    """One block per speaker, their utterances in order, as paths below the `korean` link; then azure_ko."""
    blocks: dict[str, list[str]] = {}
    for row in csv.DictReader((KOREAN / "emotiontts" / "utterances.tsv").open(), delimiter="\t"):
        blocks.setdefault(row["speaker"], []).append(f"korean/emotiontts/{row['path']}")
    azure = [f"korean/azure_ko/{p.name}" for p in sorted((KOREAN / "azure_ko").glob("*.flac"))]
    return [*blocks.values(), azure]


def music_beds(folder: Path) -> list[str]:
    """The beds decoded to FLAC in the speech's format, named so the concat demuxer accepts them (`safe` names)."""
    (folder / "music").mkdir()
    names = []
    for i, source in enumerate(MUSIC):
        name = f"music/bed{i}.flac"
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(source), "-ar", "16000", "-ac", "1"]
        subprocess.run([*cmd, "-sample_fmt", "s16", str(folder / name)], check=True)
        names.append(name)
    return names


@dataclass(frozen=True)
class Day:
    listing: Path
    seconds: float
    talk_seconds: float
    last_talk_end: float
    entries: int


def broadcast_day(folder: Path, hours: float) -> Day:
    """Talk blocks in turn, each followed by beds in turn until talk is TALK_SHARE of the time so far; it ends with
    the piece that reaches `hours`."""
    (folder / "korean").symlink_to(KOREAN)
    beds = itertools.cycle(music_beds(folder))
    seconds = {}

    def length(name: str) -> float:
        if name not in seconds:
            seconds[name] = audio.duration(folder / name)
        return seconds[name]

    names: list[str] = []
    talk = music = 0.0
    for block in itertools.cycle(talk_blocks()):
        names += block
        talk += sum(length(name) for name in block)
        last_talk_end = talk + music
        while music < talk * (1 / TALK_SHARE - 1) and talk + music < hours * 3600:
            names.append(next(beds))
            music += length(names[-1])
        if talk + music >= hours * 3600:
            break
    listing = folder / "day.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file {name}\n" for name in names))
    return Day(listing, talk + music, talk, last_talk_end, len(names))


# ---------------------------------------------------------------- memory


def _hwm(pid: int | str) -> int:
    """Peak RSS of a process since its last reset, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_hwm(pid: int | str) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS


@dataclass
class Peaks:
    own: int = 0
    child: int = 0
    together: int = 0


class MemoryWatch:
    """Peak RSS of this process and of its children during one stage (see the module docstring for how)."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.peaks = Peaks()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        threading.Thread(target=self._poll_forever, daemon=True).start()

    def _poll(self) -> None:
        children, together = [], self.me.memory_info().rss
        for child in self.me.children(recursive=True):
            try:
                children.append(_hwm(child.pid))
                together += child.memory_info().rss
            except (OSError, psutil.Error):
                pass  # ended between the listing and the reading
        with self.lock:
            self.peaks.child = max([self.peaks.child, *children])
            self.peaks.together = max(self.peaks.together, together)

    def _poll_forever(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            self._poll()

    @contextmanager
    def stage(self) -> Iterator[Peaks]:
        """Peaks of the code run inside; the yielded object is filled in when it ends."""
        ended_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        with self.lock:
            for pid in ["self", *(c.pid for c in self.me.children(recursive=True))]:
                try:
                    _reset_hwm(pid)
                except OSError:
                    pass
            self.peaks = Peaks()
        result = Peaks()
        yield result
        self._poll()
        ended = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        with self.lock:
            result.own = _hwm("self")
            result.child = max(self.peaks.child, ended if ended > ended_before else 0)
            result.together = max(self.peaks.together, result.own)


# ---------------------------------------------------------------- run


def row(name: str, seconds: float, audio_seconds: float, peaks: Peaks) -> str:
    speed = audio_seconds / seconds if seconds else float("inf")
    memory = f"{peaks.own / GIB:9.2f} {peaks.child / GIB:9.2f} {peaks.together / GIB:9.2f}"
    return f"{name:11} {seconds:9.1f} {speed:8.1f} {memory}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=7.0)
    parser.add_argument("--until", default="slice", choices=STAGE_NAMES, help="last stage to run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (it is gigabytes)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nr4dl-long-"))
    try:
        day = broadcast_day(folder, args.hours)
        print(
            f"input: {day.seconds / 3600:.3f} h broadcast day, {day.entries} entries "
            f"({day.listing.stat().st_size / 1024:.1f} kB list), talk share {day.talk_seconds / day.seconds:.3f}, "
            f"last talk ends at {day.last_talk_end / 3600:.3f} h"
        )
        print(f"{'stage':11} {'seconds':>9} {'x real':>8} {'this GiB':>9} {'child GiB':>9} {'all GiB':>9}", flush=True)
        settings = settings_mod.load(overrides={"paths.work_dir": str(folder / "work")})
        watch, total, overall = MemoryWatch(), 0.0, Peaks()
        for name in STAGE_NAMES[: STAGE_NAMES.index(args.until) + 1]:
            began = time.monotonic()
            with watch.stage() as peaks:
                work, _ = process_file(day.listing, settings, name)  # the stages before are done: skipped
            seconds = time.monotonic() - began
            total += seconds
            overall = Peaks(
                max(overall.own, peaks.own), max(overall.child, peaks.child), max(overall.together, peaks.together)
            )
            print(row(name, seconds, day.seconds, peaks), flush=True)
        print(row("pipeline", total, day.seconds, overall))
        watch.stop.set()
        for artifact in (ANALYSIS_WAV, FULL_WAV):
            path = work.path(artifact.name)
            print(
                f"{artifact.name}: {path.stat().st_size / GIB:.2f} GiB, {audio.duration(path) / 3600:.3f} h read back"
            )
        for stage in STAGE_NAMES[STAGE_NAMES.index("slice") : STAGE_NAMES.index(args.until) + 1]:
            manifest = work.path(layout.manifest(stage).name)
            if manifest.exists():
                clips = read_clips(manifest)
                last = max((c.end for c in clips), default=0.0)
                print(
                    f"{stage} clips: {len(clips)}, {sum(c.duration for c in clips) / 3600:.3f} h, last ends at "
                    f"{last / 3600:.3f} h"
                )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
