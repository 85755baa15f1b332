"""`nr4dl`: run the pipeline without Airflow, for one-off jobs and debugging.

    nr4dl process MEDIA... --out DIR [--settings FILE] [--set key=value ...] [--until STAGE]
    nr4dl export [--settings FILE] [--set key=value ...]
    nr4dl settings [--settings FILE] [--set key=value ...]

Each file runs through the same stage code as the Airflow DAG. A file that
fails is reported with its cause and the others still run; the exit status is
1 when any file failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from nr4dl_tasks import settings as settings_mod
from nr4dl_tasks.errors import Nr4dlError

# The order of pipeline.STAGES, named here so `--help` does not import the engine (a test keeps them equal).
STAGE_NAMES = ["ingest", "separate", "segment", "slice", "denoise", "speakers", "transcribe", "gate"]

log = logging.getLogger("nr4dl")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nr4dl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--settings", type=Path, help="settings file (default: settings.yaml of the project)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one setting, e.g. --set slice.min_duration=0.3 (repeatable)")

    process = sub.add_parser("process", help="process media files into clips")
    process.add_argument("media", nargs="+", type=Path)
    process.add_argument("--out", type=Path, help="work folder root (sets paths.work_dir)")
    process.add_argument("--until", default=STAGE_NAMES[-1], choices=STAGE_NAMES,
                         help="last stage to run (default: all)")
    common(process)
    export = sub.add_parser("export", help="build the dataset from every processed file (export.* settings)")
    common(export)
    show = sub.add_parser("settings", help="print the effective settings")
    common(show)
    return parser


def _process(args: argparse.Namespace, overrides: dict) -> int:
    from nr4dl_tasks.pipeline import process_file

    if args.out:
        overrides["paths.work_dir"] = str(args.out.resolve())
    settings = settings_mod.load(args.settings, overrides)
    failed = []
    for media in args.media:
        try:
            work, results = process_file(media, settings, args.until)
            done = ", ".join(f"{r.stage}{' (skipped)' if r.skipped else ''}" for r in results)
            print(f"ok      {media} -> {work.root} [{done}]")
        except Nr4dlError as exc:
            failed.append(media)
            print(f"FAILED  {media}: {exc}")
        except Exception as exc:  # one bad file never stops the others
            failed.append(media)
            log.exception("unexpected error on %s", media)
            print(f"FAILED  {media}: {type(exc).__name__}: {exc}")
    print(f"{len(args.media) - len(failed)} of {len(args.media)} file(s) processed, {len(failed)} failed")
    return 1 if failed else 0


def _export(args: argparse.Namespace, overrides: dict) -> int:
    from nr4dl_tasks.export import export_dataset

    report = export_dataset(settings_mod.load(args.settings, overrides))
    state = "unchanged" if report.unchanged else f"{report.linked} audio file(s) placed, {report.removed} removed"
    print(f"dataset {report.dataset_dir}: {report.clips} clips, {report.hours:.2f} h ({state})")
    for folder in report.pending:
        print(f"pending {folder}: not through the gate stage yet")
    for folder, reason in sorted(report.skipped.items()):
        print(f"SKIPPED {folder}: {reason}")
    return 1 if report.skipped else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        overrides = settings_mod.parse_assignments(args.overrides)
        if args.command == "settings":
            loaded = settings_mod.load(args.settings, overrides)
            print(yaml.safe_dump(loaded.model_dump(mode="json"), sort_keys=False), end="")
            return 0
        if args.command == "export":
            return _export(args, overrides)
        return _process(args, overrides)
    except Nr4dlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
