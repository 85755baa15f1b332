"""Benchmark of a day-long input: ingest -> segment -> slice (separation off) on a synthetic N-hour recording.

The input is an ffconcat list that plays a real 14.6 s recording of two readers (segmentation/lamartine.wav) over and
over: a few kB on disk, N hours to decode. Past 6.8 h the 44.1 kHz copy passes WAV's 4 GiB limit, so this checks
that every stage sees the whole duration (the last clip ends near the end) with memory flat. Prints a table:
seconds per stage, peak memory of this process and of its largest child (ffmpeg), and the sizes written.

Usage: nice -n 10 .venv/bin/python bench/long_input.py [--hours 7] [--until slice] [--keep]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.core import settings as settings_mod  # noqa: E402
from nr4dl_tasks.core.layout import ANALYSIS_WAV, FULL_WAV  # noqa: E402
from nr4dl_tasks.core.records import read_clips  # noqa: E402
from nr4dl_tasks.dsp import audio  # noqa: E402
from nr4dl_tasks.pipeline import process_file  # noqa: E402

SOURCE = (ROOT / ".." / "shared" / "media" / "segmentation" / "lamartine.wav").resolve()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=7.0)
    parser.add_argument("--until", default="slice", choices=("ingest", "segment", "slice"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (it is gigabytes)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nr4dl-long-"))
    try:
        shutil.copy(SOURCE, folder / SOURCE.name)
        repeats = int(args.hours * 3600 / audio.duration(SOURCE)) + 1
        listing = folder / "day.ffconcat"
        listing.write_text("ffconcat version 1.0\n" + f"file {SOURCE.name}\n" * repeats)
        settings = settings_mod.load(overrides={"paths.work_dir": str(folder / "work"), "separate.mode": "off"})
        began = time.monotonic()
        work, results = process_file(listing, settings, args.until)
        total = time.monotonic() - began
        print(f"input: {repeats} x {SOURCE.name} = {repeats * audio.duration(SOURCE) / 3600:.2f} h")
        print(f"{'stage':10} {'seconds':>8}")
        for result in results:
            print(f"{result.stage:10} {result.seconds:8.1f}{'  (skipped)' if result.skipped else ''}")
        print(f"{'total':10} {total:8.1f}")
        for artifact in (ANALYSIS_WAV, FULL_WAV):
            path = work.path(artifact.name)
            size, hours = path.stat().st_size / 2**30, audio.duration(path) / 3600
            print(f"{artifact.name}: {size:.2f} GiB, {hours:.3f} h read back")
        if args.until == "slice":
            clips = read_clips(work.path("manifests/slice.jsonl"))
            print(f"clips: {len(clips)}, last ends at {max(c.end for c in clips) / 3600:.3f} h")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(f"peak memory: this process {own:.2f} GiB, largest child {child:.2f} GiB")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
