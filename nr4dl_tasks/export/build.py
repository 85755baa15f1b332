"""Dataset export: the kept clips of every processed file as one training-ready dataset.

The stages leave one work folder per source file; training wants one dataset
in a layout its tools read. This module gathers the clips of every folder whose
quality gate has run (`stamps/gate.json`), skips the dropped ones, and writes
them under `export.dataset_dir` as

    <subset>/ljspeech/<split>/wavs/<id>.wav + <subset>/ljspeech/<split>/metadata.csv
    <subset>/audiofolder/<split>/<id>.wav + <subset>/audiofolder/<split>/metadata.csv|parquet
    <subset>/nemo/wavs/<id>.wav + <subset>/nemo/<split>_manifest.jsonl
    export.json

where subset is `all`, plus one cumulative subset per quality tier with
`tier_subsets` (the `silver` subset holds gold and silver clips).

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

import csv
import fcntl
import importlib.metadata
import io
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from nr4dl_tasks.core.errors import SettingsError, StageError
from nr4dl_tasks.stages.gate import REST_TIER
from nr4dl_tasks.core.records import Clip, audio_path, read_clips
from nr4dl_tasks.core.settings import ExportSettings, Settings
from nr4dl_tasks.core.workdir import WorkDir, file_sha256, fingerprint, text_sha256

log = logging.getLogger("nr4dl")

EXPORT_VERSION = 1  # bump when the written files change for the same inputs
REPORT_NAME = "export.json"
LOCK_NAME = ".lock"
GATE_STAMP = "stamps/gate.json"
GATE_MANIFEST = "manifests/gate.jsonl"
ALL_SUBSET = "all"
SPLITS = ("train", "validation", "test")
UNKNOWN_SPEAKER = "unknown"  # speaker of clips without one (also their split key with split_by: speaker)
UNKNOWN_LANGUAGE = "und"  # BCP 47 'undetermined', for clips without a language
AUDIOFOLDER_COLUMNS = ("file_name", "text", "speaker", "source", "duration", "language", "dnsmos_ovrl", "tier")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# --- records --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One kept clip as the dataset sees it: its exported id, its audio file and its labels."""

    id: str  # <source>_<clip id>, filename-safe
    source: str  # the work folder's name
    audio: Path  # absolute path of the clip's audio in its work folder
    text: str  # sanitised: no '|', no line breaks, single spaces
    normalized_text: str  # text with numbers written out in words
    speaker: str
    language: str
    duration: float
    dnsmos_ovrl: float | None
    tier: str
    split: str


@dataclass
class Layout:
    """What one format writes into its folder, by path relative to it: audio files to link and metadata bytes."""

    audio: dict[str, Path] = field(default_factory=dict)
    metadata: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # problems a reader of these files will meet


@dataclass
class ExportReport:
    dataset_dir: Path
    unchanged: bool  # inputs and settings as at the last export: nothing was done
    clips: int  # clips in the `all` subset
    hours: float  # their total duration
    counts: dict[str, dict[str, dict[str, int]]]  # subset -> format -> split -> clips
    skipped: dict[str, str]  # work folder -> why it was left out (corrupt manifest, missing audio)
    pending: list[str] = field(default_factory=list)  # work folders not yet through the gate
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


# --- text -----------------------------------------------------------------------------------------------------------


def sanitize_text(text: str) -> str:
    """One line of text safe for a '|'-separated file: '|' becomes a space, all whitespace runs one space."""
    return " ".join(text.replace("|", " ").split())


_EN_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(?!\w)")
_INTEGER = re.compile(r"(?<![\w.,])\d+(?!\w|[.,]\d)")


def _num2words_language(language: str) -> str | None:
    """num2words' code for a language tag ('en-US' -> 'en'), or None when it has no converter for it."""
    from num2words import CONVERTER_CLASSES

    base = language.split("-")[0].split("_")[0].lower()
    return base if base in CONVERTER_CLASSES else None


def _english_number(match: re.Match[str]) -> str:
    from num2words import num2words

    whole, fraction, suffix = match.group(1), match.group(2), match.group(3)
    value = int(whole.replace(",", ""))
    if fraction is not None:
        return num2words(f"{value}.{fraction}", lang="en") + (suffix or "")
    if suffix:
        return num2words(value, lang="en", to="ordinal")
    if "," not in whole and 1000 < value < 3000:  # spoken as a year, as the LJSpeech normaliser does
        return num2words(value, lang="en", to="year")
    return num2words(value, lang="en")


def normalize_numbers(text: str, language: str) -> str:
    """Text with numbers written out in words (LJSpeech's normalized_text), in the clip's language.

    English gets grouping commas, decimals, ordinals (1st) and years (1984 -> nineteen eighty-four);
    other languages num2words supports get whole numbers only, since '1.500' or '1,5' mean different
    things in different languages. Digits stay where num2words has no converter for the language.
    """
    lang = _num2words_language(language)
    if lang is None or not any(ch.isdigit() for ch in text):
        return text
    try:
        if lang == "en":
            return sanitize_text(_EN_NUMBER.sub(_english_number, text))
        from num2words import num2words

        return sanitize_text(_INTEGER.sub(lambda m: num2words(int(m.group(0)), lang=lang), text))
    except (NotImplementedError, OverflowError, ValueError, ArithmeticError):
        return text


# --- reading the work folders ---------------------------------------------------------------------------------------


def export_id(source: str, clip_id: str) -> str:
    """`<source>_<clip id>` made filename-safe (clip ids that already start with the source are not prefixed twice)."""
    raw = clip_id if clip_id.startswith(f"{source}_") else f"{source}_{clip_id}"
    return _SAFE_NAME.sub("_", raw).strip("._") or "clip"


def split_of(key: str, cfg: ExportSettings) -> str:
    """train/validation/test from the sha256 of the key mapped to [0, 1): stable forever for the same key."""
    point = int(text_sha256(key)[:16], 16) / 2 ** 64
    if point < cfg.test_fraction:
        return "test"
    if point < cfg.test_fraction + cfg.validation_fraction:
        return "validation"
    return "train"


def scan_work_dir(work_root: Path, dataset_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Work folders through the gate (name -> folder), and the names of those still processing."""
    ready: dict[str, Path] = {}
    pending: list[str] = []
    if not work_root.is_dir():
        log.warning("%s: work folder does not exist; nothing to export", work_root)
        return ready, pending
    for folder in sorted(work_root.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or folder.resolve() == dataset_dir.resolve():
            continue
        if (folder / GATE_STAMP).is_file():
            ready[folder.name] = folder
        else:
            log.info("%s: not exported yet: no %s (still processing)", folder, GATE_STAMP)
            pending.append(folder.name)
    return ready, pending


def _audio_path(folder: Path, clip: Clip, cfg: ExportSettings) -> Path:
    rel = audio_path(clip, cfg.audio)
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise StageError(f"clip {clip.id}: audio path {rel!r} is not a path inside the folder")
    path = folder / rel
    if not path.is_file():
        raise StageError(f"clip {clip.id}: audio file {rel} does not exist")
    return path


def _tier(clip: Clip, tiers: dict[str, float], folder: Path) -> str:
    tier = clip.extra.get("tier") or REST_TIER
    if tier != REST_TIER and tier not in tiers:
        log.warning("%s: clip %s has tier %r, not one of gates.tiers %s; exported as %r",
                    folder, clip.id, tier, sorted(tiers), REST_TIER)
        return REST_TIER
    return str(tier)


def _item(folder: Path, clip: Clip, settings: Settings) -> Item:
    """A kept clip of `folder` as an Item; StageError when the record breaks the gate manifest's contract."""
    text = clip.extra.get("text") or ""  # no transcript: kept only with gates.drop_empty_text off
    if not isinstance(text, str):
        raise StageError(f"clip {clip.id}: text is {text!r}, not a string")
    language = clip.extra.get("language") or UNKNOWN_LANGUAGE
    speaker = clip.extra.get("speaker") or UNKNOWN_SPEAKER
    quality = clip.extra.get("quality") or {}
    ovrl = quality.get("dnsmos_ovrl") if isinstance(quality, dict) else None
    cfg = settings.export
    clean = sanitize_text(text)
    return Item(
        id=export_id(folder.name, str(clip.id)),
        source=folder.name,
        audio=_audio_path(folder, clip, cfg),
        text=clean,
        normalized_text=normalize_numbers(clean, str(language)),
        speaker=str(speaker),
        language=str(language),
        duration=round(float(clip.duration), 3),
        dnsmos_ovrl=None if ovrl is None else round(float(ovrl), 3),
        tier=_tier(clip, settings.gates.tiers, folder),
        split=split_of(folder.name if cfg.split_by == "source" else str(speaker), cfg),
    )


def read_folder(folder: Path, settings: Settings) -> list[Item]:
    """The kept clips of one ready work folder; StageError naming the cause when the folder cannot be exported."""
    try:
        clips = read_clips(folder / GATE_MANIFEST)
        kept = [clip for clip in clips if not clip.extra.get("dropped")]
        items = [_item(folder, clip, settings) for clip in kept]
        measured = {(clip.extra.get("quality") or {}).get("audio") for clip in kept} - {None}
        if measured - {settings.export.audio}:
            log.warning("%s: the gate scored the %s audio but the export takes the %s audio: its DNSMOS gate and "
                        "tiers describe other files; rerun the gate with export.audio: %s", folder,
                        "/".join(sorted(measured)), settings.export.audio, settings.export.audio)
    except StageError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # missing, not JSON, not clip records
        raise StageError(f"{GATE_MANIFEST} is unreadable ({type(exc).__name__}: {exc})") from None
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise StageError(f"{GATE_MANIFEST} lists clip ids twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    return items


def read_items(ready: dict[str, Path], settings: Settings) -> tuple[list[Item], dict[str, str]]:
    """The kept clips of every ready folder sorted by id, and the folders skipped with why."""
    items: list[Item] = []
    skipped: dict[str, str] = {}
    owner: dict[str, str] = {}  # exported id -> folder, to catch two folders whose ids meet after sanitising
    for name, folder in ready.items():
        try:
            found = read_folder(folder, settings)
            clash = sorted(item.id for item in found if item.id in owner)
            if clash:
                raise StageError(f"exported clip ids {clash[:3]} are already used by folder {owner[clash[0]]}")
        except StageError as exc:
            log.error("%s: skipped in the export: %s", folder, exc)
            skipped[name] = str(exc)
            continue
        owner.update((item.id, name) for item in found)
        items.extend(found)
    return sorted(items, key=lambda item: item.id), skipped


# --- subsets --------------------------------------------------------------------------------------------------------


def subset_names(settings: Settings) -> list[str]:
    """`all`, then with tier_subsets each tier from best to worst; a tier name must be usable as a folder name."""
    if not settings.export.tier_subsets:
        return [ALL_SUBSET]
    tiers = sorted(settings.gates.tiers, key=lambda name: -settings.gates.tiers[name])
    bad = [name for name in tiers if name == ALL_SUBSET or _SAFE_NAME.search(name) or name.startswith(".")]
    if bad:
        raise SettingsError(f"gates.tiers names {bad} cannot be export subset folders with export.tier_subsets: "
                            f"use letters, digits, '.', '_' or '-', not starting with '.', and not '{ALL_SUBSET}'")
    return [ALL_SUBSET, *tiers]


def subset_items(items: list[Item], settings: Settings) -> dict[str, list[Item]]:
    """Each subset's clips; a tier subset holds the clips of that tier and of every better one (higher minimum)."""
    names = subset_names(settings)
    rank = {name: i for i, name in enumerate(names[1:])}
    return {name: items if name == ALL_SUBSET else
            [item for item in items if rank.get(item.tier, len(rank)) <= rank[name]] for name in names}


def by_split(items: list[Item]) -> dict[str, list[Item]]:
    return {split: [item for item in items if item.split == split] for split in SPLITS}


# --- format layouts (pure: what to write, not writing it) -----------------------------------------------------------


def ljspeech_layout(items: list[Item], cfg: ExportSettings) -> Layout:
    """`<split>/wavs/<id>.wav` and `<split>/metadata.csv`: id|text|normalized_text, no header, no quoting."""
    layout = Layout()
    for split, rows in by_split(items).items():
        if not rows:
            continue
        lines = [f"{item.id}|{item.text}|{item.normalized_text}\n" for item in rows]
        layout.metadata[f"{split}/metadata.csv"] = "".join(lines).encode("utf-8")
        layout.audio.update({f"{split}/wavs/{item.id}.wav": item.audio for item in rows})
    return layout


def _audiofolder_row(item: Item) -> dict[str, Any]:
    return {"file_name": f"{item.id}.wav", "text": item.text, "speaker": item.speaker, "source": item.source,
            "duration": item.duration, "language": item.language, "dnsmos_ovrl": item.dnsmos_ovrl, "tier": item.tier}


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=AUDIOFOLDER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _pandas_kind(values: list[Any]) -> str:
    """The type pandas (which datasets uses to read metadata.csv) infers for a column: int, float or text."""
    kinds = set()
    for value in values:
        text = "" if value is None else str(value)
        for kind, parse in (("int", int), ("float", float)):
            try:
                parse(text)
            except ValueError:
                continue
            kinds.add(kind)
            break
        else:
            kinds.add("float" if text == "" else "text")  # an empty cell is NaN, a float
    return "text" if "text" in kinds else "float" if "float" in kinds else "int"


def _csv_type_clashes(rows_by_split: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Columns read as numbers in one split's metadata.csv and as another type in another's: datasets refuses
    to load such an audiofolder (e.g. speakers named 1688, 1998 in one split and alice in another)."""
    clashes = []
    for column in AUDIOFOLDER_COLUMNS[1:]:
        kinds = {split: _pandas_kind([row[column] for row in rows]) for split, rows in rows_by_split.items()}
        if len(set(kinds.values())) > 1:
            clashes.append(f"column {column} reads as {kinds} in metadata.csv, and datasets' audiofolder refuses "
                           "splits of different types; set export.audiofolder_metadata: parquet (typed columns)")
    return clashes


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    numeric = {"duration", "dnsmos_ovrl"}
    schema = pa.schema([(name, pa.float64() if name in numeric else pa.string()) for name in AUDIOFOLDER_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def audiofolder_layout(items: list[Item], cfg: ExportSettings) -> Layout:
    """Hugging Face audiofolder: `<split>/<id>.wav` beside `<split>/metadata.csv` (or .parquet)."""
    layout = Layout()
    splits = {split: rows for split, rows in by_split(items).items() if rows}  # datasets cannot load an empty one
    tables = {split: [_audiofolder_row(item) for item in rows] for split, rows in splits.items()}
    encode = _parquet_bytes if cfg.audiofolder_metadata == "parquet" else _csv_bytes
    for split, rows in splits.items():
        layout.metadata[f"{split}/metadata.{cfg.audiofolder_metadata}"] = encode(tables[split])
        layout.audio.update({f"{split}/{item.id}.wav": item.audio for item in rows})
    if cfg.audiofolder_metadata == "csv":
        layout.warnings.extend(_csv_type_clashes(tables))
    return layout


def nemo_layout(items: list[Item], cfg: ExportSettings) -> Layout:
    """NeMo: `wavs/<id>.wav` shared by all splits and `<split>_manifest.jsonl` pointing at them (relative paths)."""
    layout = Layout()
    for split, rows in by_split(items).items():
        if not rows:
            continue
        lines = [json.dumps({"audio_filepath": f"wavs/{item.id}.wav", "duration": item.duration, "text": item.text,
                             "speaker": item.speaker, "source": item.source, "language": item.language,
                             "dnsmos_ovrl": item.dnsmos_ovrl, "tier": item.tier}, ensure_ascii=False) + "\n"
                 for item in rows]
        layout.metadata[f"{split}_manifest.jsonl"] = "".join(lines).encode("utf-8")
        layout.audio.update({f"wavs/{item.id}.wav": item.audio for item in rows})
    return layout


FORMAT_LAYOUTS: dict[str, Callable[[list[Item], ExportSettings], Layout]] = {
    "ljspeech": ljspeech_layout,
    "audiofolder": audiofolder_layout,
    "nemo": nemo_layout,
}


# --- writing --------------------------------------------------------------------------------------------------------


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


def place_audio(src: Path, dst: Path) -> bool:
    """Hard-link src at dst (a copy where linking fails); False when it was already there. Never re-encodes."""
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


def _remove_empty_dirs(root: Path) -> None:
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
    _remove_empty_dirs(root)
    return linked, removed


# --- the export -----------------------------------------------------------------------------------------------------


@contextmanager
def _export_lock(dataset_dir: Path) -> Iterator[None]:
    """Hold `<dataset_dir>/.lock` exclusively: a second export waits instead of interleaving with this one."""
    with (dataset_dir / LOCK_NAME).open("a") as handle:  # "a": never truncates
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _settings_used(settings: Settings) -> dict[str, Any]:
    return {"export": settings.export.model_dump(mode="json"), "gates.tiers": dict(settings.gates.tiers)}


def input_fingerprint(settings: Settings, work_root: Path, ready: dict[str, Path]) -> str:
    """Fingerprint of what the dataset depends on: code, settings, and the sha256 of every ready manifest."""
    manifests = {}
    for name, folder in ready.items():
        try:
            manifests[name] = file_sha256(folder / GATE_MANIFEST)
        except OSError as exc:
            manifests[name] = f"unreadable: {exc}"
    export_cfg = settings.export.model_dump(mode="json", exclude={"dataset_dir"})
    fp = fingerprint(version=EXPORT_VERSION, num2words=importlib.metadata.version("num2words"),
                     export=export_cfg, tiers=settings.gates.tiers, work_dir=str(work_root), manifests=manifests)
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
    """The last export completed with this fingerprint, skipped no folder (retried), and its folders still exist."""
    return (previous.get("complete") is True and previous.get("fingerprint") == fp and not previous.get("skipped")
            and all((dataset_dir / out).is_dir() for out in previous.get("outputs", [])))


def _unchanged_report(previous: dict[str, Any], dataset_dir: Path, pending: list[str]) -> ExportReport:
    return ExportReport(dataset_dir=dataset_dir, unchanged=True, clips=previous["clips"], hours=previous["hours"],
                        counts=previous["counts"], skipped={}, pending=pending,
                        empty_splits=previous.get("empty_splits", []), outputs=previous.get("outputs", []),
                        fingerprint=previous["fingerprint"])


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
        _remove_empty_dirs(folder.parent)
    return removed


def write_subset(dataset_dir: Path, subset: str, items: list[Item], settings: Settings,
                 report: ExportReport) -> None:
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
    with _export_lock(dataset_dir):
        ready, pending = scan_work_dir(work_root, dataset_dir)
        fp = input_fingerprint(settings, work_root, ready)
        previous = _read_previous(dataset_dir)
        if _is_unchanged(previous, fp, dataset_dir):
            log.info("%s: unchanged since the last export (fingerprint %s, %d folders); nothing to do",
                     dataset_dir, fp, len(ready))
            return _unchanged_report(previous, dataset_dir, pending)
        planned = [f"{subset}/{name}" for subset in subsets for name in settings.export.formats]
        _mark_in_progress(dataset_dir, previous, planned)
        items, skipped = read_items(ready, settings)
        report = ExportReport(dataset_dir=dataset_dir, unchanged=False, clips=len(items),
                              hours=round(sum(item.duration for item in items) / 3600, 4), counts={},
                              skipped=skipped, pending=pending, fingerprint=fp)
        report.removed += _remove_stale_outputs(dataset_dir, previous, planned)
        for subset, chosen in subset_items(items, settings).items():
            write_subset(dataset_dir, subset, chosen, settings, report)
        write_metadata(dataset_dir / REPORT_NAME, report.to_json(settings).encode("utf-8"))
    log.info("%s: exported %d clips (%.2f h) from %d folders; %d audio files linked, %d files removed; "
             "%d folders skipped, %d still processing", dataset_dir, report.clips, report.hours,
             len(ready) - len(skipped), report.linked, report.removed, len(skipped), len(pending))
    return report
