"""`nr4dl`: run the pipeline without Airflow, for one-off jobs and debugging.

    nr4dl process MEDIA... --out DIR [--settings FILE] [--set key=value ...] [--until STAGE]
    nr4dl crawl [--source NAME] [--max-items N] [--settings FILE] [--set key=value ...]
    nr4dl export [--settings FILE] [--set key=value ...]
    nr4dl report [--settings FILE] [--set key=value ...]
    nr4dl failures [--settings FILE]
    nr4dl settings [--template] [--settings FILE] [--set key=value ...]
    nr4dl resources [tasks_per_worker|heavy_slots|task_threads]

Each file runs through the same stage code as the Airflow DAG. A file that
fails is reported with its cause and the others still run; the exit status is
1 when any file failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.errors import Nr4dlError
from nr4dl_tasks.core.redact import redact, redact_settings
from nr4dl_tasks.pipeline import STAGE_NAMES  # the order only: importing the pipeline loads no stage

if TYPE_CHECKING:
    from nr4dl_tasks.state.failures import FailureLog

log = logging.getLogger("nr4dl")
RESOURCE_FIGURES = ("tasks_per_worker", "heavy_slots", "task_threads")


def one_line(text: object) -> str:
    """`text` on one line: control characters (a newline in a file name) escaped, so a name cannot forge a line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def say(*fields: object, file=None) -> None:
    """Print one output line, each field on one line and with every secret hidden."""
    print(redact(" ".join(one_line(f) for f in fields)), file=file)


class _Redacting(logging.Filter):
    """Log records pass through `redact` (a URL with a password in an error, say)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nr4dl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--settings", type=Path, help="settings file (default: settings.yaml of the project)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one setting, e.g. --set slice.min_duration=0.3 (repeatable)",
        )

    process = sub.add_parser("process", help="process media files into clips")
    process.add_argument("media", nargs="+", type=Path)
    process.add_argument("--out", type=Path, help="work folder root (sets paths.work_dir)")
    process.add_argument(
        "--until", default=STAGE_NAMES[-1], choices=STAGE_NAMES, help="last stage to run (default: all)"
    )
    common(process)
    crawl = sub.add_parser("crawl", help="crawl the sources (crawl.* settings), then process the new files")
    crawl.add_argument("--source", help="crawl only this source")
    crawl.add_argument("--max-items", type=int, help="download at most this many new items")
    common(crawl)
    export = sub.add_parser("export", help="build the dataset from every processed file (export.* settings)")
    common(export)
    report = sub.add_parser(
        "report", help="write the dataset report, <export.dataset_dir>/report.html (offline, audio embedded)"
    )
    common(report)
    failures = sub.add_parser("failures", help="list the files whose latest processing run failed")
    common(failures)
    show = sub.add_parser("settings", help="print the effective settings")
    show.add_argument(
        "--template",
        action="store_true",
        help="print every setting with its default and description (the text of settings.yaml)",
    )
    common(show)
    sizes = sub.add_parser(
        "resources",
        help="print what this machine runs at once (resources.* settings, for the Airflow pool and Celery workers)",
    )
    sizes.add_argument("name", nargs="?", choices=RESOURCE_FIGURES, help="print only this number")
    common(sizes)
    return parser


def _process_all(
    media_files: list[Path], settings: settings_mod.Settings, until: str, failure_log: FailureLog | None = None
) -> list[Path]:
    """Process each file, reporting one line per file; returns the files that failed. With `failure_log`, each
    file's outcome also goes on the failed-file list, as an Airflow run's would."""
    from nr4dl_tasks.pipeline import process_file

    failed = []
    for media in media_files:
        try:
            work, results = process_file(media, settings, until)
            done = ", ".join(f"{r.stage}{' (skipped)' if r.skipped else ''}" for r in results)
            say("ok     ", media, "->", work.root, f"[{done}]")
            if failure_log:
                failure_log.clear(str(media))
            continue
        except Nr4dlError as exc:
            error: Exception = exc
            say("FAILED ", f"{one_line(media)}:", str(exc).removeprefix(f"{media}: "))  # the subject once
        except Exception as exc:  # one bad file never stops the others
            error = exc
            log.exception("unexpected error on %s", one_line(media))
            say("FAILED ", f"{one_line(media)}:", f"{type(exc).__name__}: {exc}")
        failed.append(media)
        if failure_log:
            failure_log.record(str(media), _failed_stage(media, settings), error, "nr4dl crawl")
    say(f"{len(media_files) - len(failed)} of {len(media_files)} file(s) processed, {len(failed)} failed")
    return failed


def _failed_stage(media: Path, settings: settings_mod.Settings) -> str:
    """The stage a file's run failed at, as its work folder recorded it (ingest when it has none)."""
    from nr4dl_tasks.pipeline import open_work

    try:
        return str((open_work(media, settings).read_failure() or {}).get("stage") or STAGE_NAMES[0])
    except Exception:  # the file cannot even be opened: its first stage failed
        return STAGE_NAMES[0]


def _process(args: argparse.Namespace, overrides: dict) -> int:
    if args.out:
        overrides["paths.work_dir"] = str(args.out.resolve())
    settings = settings_mod.load(args.settings, overrides)
    return 1 if _process_all(args.media, settings, args.until) else 0


def _crawl(args: argparse.Namespace, overrides: dict) -> int:
    """Crawl, then process every new file here (what nr4dl_crawl hands to Airflow runs)."""
    from nr4dl_tasks.crawl.catalog import Catalog
    from nr4dl_tasks.crawl.crawler import crawl
    from nr4dl_tasks.state.db import database_name
    from nr4dl_tasks.state.failures import FailureLog

    settings = settings_mod.load(args.settings, overrides)
    report = crawl(settings, args.source, args.max_items)
    for where, cause in report.refused.items():
        say("refused", f"{one_line(where)}:", cause)
    for where, cause in report.failed.items():
        say("FAILED ", f"{one_line(where)}:", cause)
    for warning in report.warnings:
        say("warning", warning)
    say(f"{report.summary()}; catalog {database_name(settings)}")
    new = [Path(n.path) for n in report.new]
    failed = _process_all(new, settings, STAGE_NAMES[-1], FailureLog(settings)) if new else []
    Catalog(settings).mark_triggered(n.identity for n in report.new)  # a failed file is a processing failure now
    return 1 if failed or report.failed else 0


def _export(args: argparse.Namespace, overrides: dict) -> int:
    from nr4dl_tasks.export.build import export_dataset

    report = export_dataset(settings_mod.load(args.settings, overrides))
    state = "unchanged" if report.unchanged else f"{report.linked} audio file(s) placed, {report.removed} removed"
    say(f"dataset {one_line(report.dataset_dir)}: {report.clips} clips, {report.hours:.2f} h ({state})")
    for folder in report.pending:
        say("pending", f"{one_line(folder)}:", "not through the gate stage yet")
    for folder, cause in sorted(report.failed.items()):
        say("FAILED ", f"{one_line(folder)}:", cause)
    for clip, reason in sorted(report.dropped.items()):
        say("DROPPED", f"{one_line(clip)}:", reason)
    for folder, reason in sorted(report.skipped.items()):
        say("SKIPPED", f"{one_line(folder)}:", reason)
    return 1 if report.skipped else 0


def _report(args: argparse.Namespace, overrides: dict) -> int:
    from nr4dl_tasks.report.html import write_static

    print(f"report {write_static(settings_mod.load(args.settings, overrides))}")
    return 0


def _failures(args: argparse.Namespace, overrides: dict) -> int:
    from nr4dl_tasks.state.failures import FailureLog

    failures = FailureLog(settings_mod.load(args.settings, overrides)).failures()
    for f in failures:
        say(f"{f.failed_at:%Y-%m-%d %H:%M}  {f.stage:10} ", f"{one_line(f.media)}:", f.error, f" (run {f.run_id})")
    say(f"{len(failures)} file(s) whose latest run failed")
    return 1 if failures else 0


def _resources(args: argparse.Namespace, overrides: dict) -> int:
    from nr4dl_tasks.core import resources

    loaded = settings_mod.load(args.settings, overrides)
    figures = {
        "tasks_per_worker": resources.tasks_per_worker(loaded.resources),
        "heavy_slots": resources.heavy_slots(loaded.resources),
        "task_threads": resources.threads(resources.shared_worker(loaded)),
    }
    if args.name:
        print(figures[args.name])
        return 0
    print(
        f"machine: {resources.cores()} cores, {resources.memory_gb():.1f} GB; "
        f"task_memory_gb {loaded.resources.task_memory_gb}"
    )
    for name, value in figures.items():
        print(f"{name} {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Redacting())
    try:
        overrides = settings_mod.parse_assignments(args.overrides)
        if args.command == "settings" and args.template:
            print(settings_mod.template(), end="")
            return 0
        if args.command == "settings":
            shown = redact_settings(settings_mod.load(args.settings, overrides).model_dump(mode="json"))
            print(yaml.safe_dump(shown, sort_keys=False), end="")
            return 0
        if args.command == "export":
            return _export(args, overrides)
        if args.command == "crawl":
            return _crawl(args, overrides)
        if args.command == "report":
            return _report(args, overrides)
        if args.command == "failures":
            return _failures(args, overrides)
        if args.command == "resources":
            return _resources(args, overrides)
        return _process(args, overrides)
    except Nr4dlError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
