"""Dataset export: the kept clips of every processed file as one training-ready dataset.

The stages leave one work folder per source file; training wants one dataset
in a layout its tools read. This module gathers the clips of every folder whose
quality gate has run (`stamps/gate.json`), skips the dropped ones, and writes
them under `export.dataset_dir` as

    <subset>/ljspeech/<split>/wavs/<id>.wav + <subset>/ljspeech/<split>/metadata.csv [+ pronunciation.csv]
    <subset>/audiofolder/<split>/<id>.wav + <subset>/audiofolder/<split>/metadata.csv|parquet
    <subset>/nemo/wavs/<id>.wav + <subset>/nemo/<split>_manifest.jsonl
    export.json

where subset is `all`, plus one cumulative subset per quality tier with
`tier_subsets` (the `silver` subset holds gold and silver clips).

`normalized_text` is the text as a TTS model should say it (text/normalize.py): Korean clips get their spoken
form, English clips num2words with years and ordinals, other languages num2words for whole numbers. Korean clips
also get `pronunciation`, the Hangul as pronounced: LJSpeech's metadata.csv keeps its three columns, and the
pronunciation goes into `pronunciation.csv` beside it (id|pronunciation, only where a split has one); audiofolder
has `normalized_text` and `pronunciation` columns (empty for a clip without one); NeMo manifests a
`normalized_text` field and, for Korean clips, a `pronunciation` field.

Why it is built this way:

- **Splits never leak.** A clip's split comes from the sha256 of its source
  folder (or speaker), so a source or speaker never sits in two splits, and a
  new file never moves an old one from train to test.
- **Incremental and cheap.** Audio is hard-linked from the work folders (copied
  only where a link fails, e.g. across filesystems), never re-encoded; a file
  already in place is left alone, so a rerun after one new episode links only
  that episode's clips. An export whose inputs and settings are unchanged
  (fingerprint in `export.json`) does nothing.
- **Readers never see half a file.** Metadata is written to a temporary name
  and renamed into place; new audio is placed before the metadata that lists
  it and stale audio removed after it; an exclusive lock on
  `<dataset_dir>/.lock` keeps two exports from interleaving.
- **One bad folder does not stop the dataset.** A folder whose manifest is
  corrupt or lists a missing audio file is skipped and named in the report.
- **Same inputs, same bytes.** Everything is sorted by clip id, so two exports
  of the same folders give byte-identical metadata files.

Like NeMo's speech-data-processor, the work is a chain of small steps: scan the
work folders, read each folder's clips into `Item`s, assign splits, pick the
subsets, lay out each format (a pure function returning files to write), and
sync that layout onto disk.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.workdir import file_sha256, fingerprint, flock
from nr4dl_tasks.export.formats import FORMAT_LAYOUTS
from nr4dl_tasks.export.items import (
    READY_MANIFEST,
    Item,
    by_split,
    read_items,
    scan_work_dir,
    subset_items,
    subset_names,
)
from nr4dl_tasks.export.writing import remove_empty_dirs, sync_tree, write_metadata

log = logging.getLogger("nr4dl")

EXPORT_VERSION = 3  # bump when the written files change for the same inputs
REPORT_NAME = "export.json"
LOCK_NAME = ".lock"


@dataclass
class ExportReport:
    dataset_dir: Path
    unchanged: bool  # inputs and settings as at the last export: nothing was done
    clips: int  # clips in the `all` subset
    hours: float  # their total duration
    counts: dict[str, dict[str, dict[str, int]]]  # subset -> format -> split -> clips
    skipped: dict[str, str]  # work folder -> why it was left out (corrupt manifest, missing audio)
    pending: list[str] = field(default_factory=list)  # work folders not yet through the gate
    failed: dict[str, str] = field(default_factory=dict)  # work folder -> the stage its last run failed in, and why
    dropped: dict[str, str] = field(default_factory=dict)  # "<folder>/<clip id>" -> why that clip alone was left out
    empty_splits: list[str] = field(default_factory=list)  # "<subset>/<split>" with no clips: no files written
    outputs: list[str] = field(default_factory=list)  # "<subset>/<format>" folders written
    linked: int = 0  # audio files placed by this export (new or changed clips)
    removed: int = 0  # files removed because their clip left the dataset (or its split)
    fingerprint: str = ""

    def to_json(self, settings: Settings) -> str:
        record = asdict(self)
        record.pop("dataset_dir")  # the report lives in it; keeps reports of two folders comparable
        record["complete"] = True
        record["settings"] = _settings_used(settings)
        return json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# --- the export -----------------------------------------------------------------------------------------------------


def _settings_used(settings: Settings) -> dict[str, Any]:
    """The settings the dataset was built with, without `dataset_dir`: the report lives in that folder, and an
    absolute path there would make a moved or copied dataset describe a folder it is no longer in."""
    export = settings.export.model_dump(mode="json", exclude={"dataset_dir"})
    return {"export": export, "gates.tiers": dict(settings.gates.tiers)}


def input_fingerprint(settings: Settings, work_root: Path, ready: dict[str, Path]) -> str:
    """Fingerprint of what the dataset depends on: code, settings, and the sha256 of every ready manifest."""
    manifests = {}
    for name, folder in ready.items():
        try:
            manifests[name] = file_sha256(folder / READY_MANIFEST)
        except OSError as exc:
            manifests[name] = f"unreadable: {exc}"
    export_cfg = settings.export.model_dump(mode="json", exclude={"dataset_dir"})
    fp = fingerprint(
        version=EXPORT_VERSION,
        num2words=importlib.metadata.version("num2words"),
        mecab_ko_dic=importlib.metadata.version("python-mecab-ko-dic"),
        export=export_cfg,
        tiers=settings.gates.tiers,
        work_dir=str(work_root),
        manifests=manifests,
    )
    return fp


def _read_previous(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / REPORT_NAME
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); exporting everything again", path, exc)
        return {}
    return previous if isinstance(previous, dict) else {}


def _is_unchanged(previous: dict[str, Any], fp: str, dataset_dir: Path) -> bool:
    """The last export completed with this fingerprint, skipped no folder and dropped no clip (both retried), and its
    folders still exist."""
    return (
        previous.get("complete") is True
        and previous.get("fingerprint") == fp
        and not previous.get("skipped")
        and not previous.get("dropped")
        and all((dataset_dir / out).is_dir() for out in previous.get("outputs", []))
    )


def _unchanged_report(
    previous: dict[str, Any], dataset_dir: Path, pending: list[str], failed: dict[str, str]
) -> ExportReport:
    return ExportReport(
        dataset_dir=dataset_dir,
        unchanged=True,
        clips=previous["clips"],
        hours=previous["hours"],
        counts=previous["counts"],
        skipped={},
        pending=pending,
        failed=failed,
        empty_splits=previous.get("empty_splits", []),
        outputs=previous.get("outputs", []),
        fingerprint=previous["fingerprint"],
    )


def _mark_in_progress(dataset_dir: Path, previous: dict[str, Any], planned: list[str]) -> None:
    """Before touching the dataset: no fingerprint (a crash then never reads as done), and every folder this
    export may write, so the next export can clean up after a crash."""
    outputs = sorted(set(previous.get("outputs", [])) | set(planned))
    marker = {**previous, "complete": False, "fingerprint": None, "outputs": outputs}
    write_metadata(dataset_dir / REPORT_NAME, (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode())


def _remove_stale_outputs(dataset_dir: Path, previous: dict[str, Any], planned: list[str]) -> int:
    """Delete `<subset>/<format>` folders an earlier export wrote that these settings no longer produce."""
    removed = 0
    for out in sorted(set(previous.get("outputs", [])) - set(planned)):
        folder = dataset_dir / out
        if len(Path(out).parts) != 2 or ".." in Path(out).parts or not folder.is_dir():
            continue
        log.info("%s: no longer produced by these settings; removed", folder)
        removed += sum(1 for path in folder.rglob("*") if path.is_file())
        shutil.rmtree(folder)
        remove_empty_dirs(folder.parent)
    return removed


def write_subset(dataset_dir: Path, subset: str, items: list[Item], settings: Settings, report: ExportReport) -> None:
    """Write every configured format of one subset and add its counts to the report."""
    splits = by_split(items)
    for split, rows in splits.items():
        hours = sum(item.duration for item in rows) / 3600
        if rows:
            log.info("%s: %s/%s: %d clips, %.2f h", dataset_dir, subset, split, len(rows), hours)
        else:
            log.warning("%s: %s/%s has no clips; no files written for it", dataset_dir, subset, split)
            report.empty_splits.append(f"{subset}/{split}")
    report.counts[subset] = {}
    for name in settings.export.formats:
        layout = FORMAT_LAYOUTS[name](items, settings.export)
        for warning in layout.warnings:
            log.warning("%s: %s", dataset_dir / subset / name, warning)
        linked, removed = sync_tree(dataset_dir / subset / name, layout)
        report.linked += linked
        report.removed += removed
        report.counts[subset][name] = {split: len(rows) for split, rows in splits.items()}
        if (dataset_dir / subset / name).is_dir():
            report.outputs.append(f"{subset}/{name}")


def export_dataset(settings: Settings) -> ExportReport:
    """Export the kept clips of every work folder through the gate to `export.dataset_dir`; see the module doc."""
    work_root = settings.resolve(settings.paths.work_dir)
    dataset_dir = settings.resolve(settings.export.dataset_dir)
    subsets = subset_names(settings)  # a bad tier name fails before anything is written
    dataset_dir.mkdir(parents=True, exist_ok=True)
    with flock(dataset_dir / LOCK_NAME):  # a second export waits instead of interleaving
        ready, pending, failed = scan_work_dir(work_root, dataset_dir)
        fp = input_fingerprint(settings, work_root, ready)
        previous = _read_previous(dataset_dir)
        if _is_unchanged(previous, fp, dataset_dir):
            log.info(
                "%s: unchanged since the last export (fingerprint %s, %d folders); nothing to do",
                dataset_dir,
                fp,
                len(ready),
            )
            return _unchanged_report(previous, dataset_dir, pending, failed)
        planned = [f"{subset}/{name}" for subset in subsets for name in settings.export.formats]
        _mark_in_progress(dataset_dir, previous, planned)
        items, skipped, dropped = read_items(ready, settings)
        report = ExportReport(
            dataset_dir=dataset_dir,
            unchanged=False,
            clips=len(items),
            hours=round(sum(item.duration for item in items) / 3600, 4),
            counts={},
            skipped=skipped,
            dropped=dropped,
            pending=pending,
            failed=failed,
            fingerprint=fp,
        )
        report.removed += _remove_stale_outputs(dataset_dir, previous, planned)
        for subset, chosen in subset_items(items, settings).items():
            write_subset(dataset_dir, subset, chosen, settings, report)
        write_metadata(dataset_dir / REPORT_NAME, report.to_json(settings).encode("utf-8"))
    log.info(
        "%s: exported %d clips (%.2f h) from %d folders; %d audio files linked, %d files removed; "
        "%d folders skipped, %d still processing",
        dataset_dir,
        report.clips,
        report.hours,
        len(ready) - len(skipped),
        report.linked,
        report.removed,
        len(skipped),
        len(pending),
    )
    return report
