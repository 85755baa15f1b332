"""What the export reads: the kept clips of every work folder through the last stage, as `Item`s with their split
and subsets. A folder whose manifest is corrupt is skipped and named; a clip whose audio file is missing is left
out alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nr4dl_tasks.core import layout
from nr4dl_tasks.core.errors import SettingsError, StageError
from nr4dl_tasks.core.records import REST_TIER, Clip, read_clips
from nr4dl_tasks.core.settings import ExportSettings, Settings
from nr4dl_tasks.core.workdir import WorkDir, text_sha256
from nr4dl_tasks.pipeline import STAGE_NAMES
from nr4dl_tasks.text.normalize import normalize_numbers, pronunciation, sanitize_text

log = logging.getLogger("nr4dl")

LAST_STAGE = STAGE_NAMES[-1]  # a folder is ready once it went through the last stage (the gate)
READY_STAMP = layout.stamp_name(LAST_STAGE)
READY_MANIFEST = layout.manifest(LAST_STAGE).name
ALL_SUBSET = "all"
SPLITS = ("train", "validation", "test")
UNKNOWN_SPEAKER = "unknown"  # speaker of clips without one (also their split key with split_by: speaker)
UNKNOWN_LANGUAGE = "und"  # BCP 47 'undetermined', for clips without a language
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class MissingAudio(StageError):
    """One clip's audio file is gone (deleted, a damaged disk): that clip is left out, its folder still exported."""


@dataclass(frozen=True)
class Cut:
    """A clip's audio from `start` to `end` seconds (first word to last, padded by export.edge_pad_seconds), cut
    when the export writes the dataset's copy."""

    path: Path
    start: float
    end: float


@dataclass(frozen=True)
class Item:
    """One kept clip as the dataset sees it: its exported id, its audio file and its labels."""

    id: str  # <source>_<clip id>, filename-safe
    source: str  # the work folder's name
    audio: Path  # absolute path of the clip's audio in its work folder
    text: str  # sanitised: no '|', no line breaks, single spaces
    normalized_text: str  # text as spoken: numbers written out in words (Korean: the whole spoken form)
    pronunciation: str  # Korean clips: the Hangul as pronounced; "" for other languages
    speaker: str
    language: str
    duration: float
    dnsmos_ovrl: float | None
    tier: str
    split: str
    trim: tuple[float, float] | None = None  # [start, end] seconds of the clip's audio kept; None: all of it
    words: list[dict[str, Any]] | None = None  # word timings, seconds from the start of the exported audio

    @property
    def placed(self) -> Path | Cut:
        """What the dataset's audio file is made from: the clip's file (linked), or the trimmed part of it."""
        return self.audio if self.trim is None else Cut(self.audio, *self.trim)


def export_id(source: str, clip_id: str) -> str:
    """`<source>_<clip id>` made filename-safe (clip ids that already start with the source are not prefixed twice)."""
    raw = clip_id if clip_id.startswith(f"{source}_") else f"{source}_{clip_id}"
    return _SAFE_NAME.sub("_", raw).strip("._") or "clip"


def split_of(key: str, cfg: ExportSettings) -> str:
    """train/validation/test from the sha256 of the key mapped to [0, 1): stable forever for the same key."""
    point = int(text_sha256(key)[:16], 16) / 2**64
    if point < cfg.test_fraction:
        return "test"
    if point < cfg.test_fraction + cfg.validation_fraction:
        return "validation"
    return "train"


def scan_work_dir(work_root: Path, dataset_dir: Path) -> tuple[dict[str, Path], list[str], dict[str, str]]:
    """Work folders through the gate (name -> folder), the names of those still processing, and those whose last
    run failed (name -> stage and cause, from the folder's failure.json)."""
    ready: dict[str, Path] = {}
    pending: list[str] = []
    failed: dict[str, str] = {}
    if not work_root.is_dir():
        log.warning("%s: work folder does not exist; nothing to export", work_root)
        return ready, pending, failed
    for folder in sorted(work_root.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or folder.resolve() == dataset_dir.resolve():
            continue
        failure = WorkDir(folder).read_failure()
        if (folder / READY_STAMP).is_file():
            ready[folder.name] = folder
        elif failure:
            failed[folder.name] = f"{failure.get('stage')} failed: {failure.get('error')}"
        else:
            log.info("%s: not exported yet: no %s (still processing)", folder, READY_STAMP)
            pending.append(folder.name)
    return ready, pending, failed


def _audio_path(folder: Path, clip: Clip, cfg: ExportSettings) -> Path:
    rel = clip.audio(cfg.audio)
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise StageError(f"clip {clip.id}: audio path {rel!r} is not a path inside the folder")
    path = folder / rel
    if not path.is_file():
        raise MissingAudio(f"clip {clip.id}: audio file {rel} does not exist")
    return path


def _tier(clip: Clip, tiers: dict[str, float], folder: Path) -> str:
    tier = clip.tier or REST_TIER
    if tier != REST_TIER and tier not in tiers:
        log.warning(
            "%s: clip %s has tier %r, not one of gates.tiers %s; exported as %r",
            folder,
            clip.id,
            tier,
            sorted(tiers),
            REST_TIER,
        )
        return REST_TIER
    return str(tier)


def _item(folder: Path, clip: Clip, settings: Settings) -> Item:
    """A kept clip of `folder` as an Item; StageError when the record breaks the gate manifest's contract."""
    text = clip.text or ""  # no transcript: kept only with gates.drop_empty_text off
    if not isinstance(text, str):
        raise StageError(f"clip {clip.id}: text is {text!r}, not a string")
    language = clip.language or UNKNOWN_LANGUAGE
    speaker = clip.speaker or UNKNOWN_SPEAKER
    quality = clip.quality or {}
    ovrl = quality.get("dnsmos_ovrl") if isinstance(quality, dict) else None
    cfg = settings.export
    trim, words = trim_of(clip, settings.export.edge_pad_seconds)
    clean = sanitize_text(text)
    normalized = normalize_numbers(clean, str(language))
    return Item(
        id=export_id(folder.name, str(clip.id)),
        source=folder.name,
        audio=_audio_path(folder, clip, cfg),
        text=clean,
        normalized_text=normalized,
        pronunciation=pronunciation(normalized, str(language)),
        speaker=str(speaker),
        language=str(language),
        duration=round(trim[1] - trim[0] if trim else float(clip.duration), 3),
        dnsmos_ovrl=None if ovrl is None else round(float(ovrl), 3),
        tier=_tier(clip, settings.gates.tiers, folder),
        split=split_of(folder.name if cfg.split_by == "source" else str(speaker), cfg),
        trim=trim,
        words=words,
    )


def trim_of(clip: Clip, pad: float | None) -> tuple[tuple[float, float] | None, list[dict[str, Any]] | None]:
    """The part of the clip the dataset keeps, from its first word's start to its last word's end widened by `pad`
    (None where that is the whole clip, or without words or pad), and its words shifted to the cut's start."""
    words = clip.words
    trim = None
    if words and pad is not None:
        start = max(0.0, float(words[0]["start"]) - pad)
        end = min(float(clip.duration), float(words[-1]["end"]) + pad)
        if start < end and (start > 0 or end < clip.duration):
            trim = (round(start, 3), round(end, 3))
    offset = trim[0] if trim else 0.0
    shifted = [
        {**w, "start": round(float(w["start"]) - offset, 3), "end": round(float(w["end"]) - offset, 3)}
        for w in words or []
    ]
    return trim, (shifted if words is not None else None)


def _items(folder: Path, kept: list[Clip], settings: Settings) -> tuple[list[Item], dict[str, str]]:
    """The clips as Items; one whose audio file is missing is left out alone (returned with why), not with its
    whole folder."""
    items, dropped = [], {}
    for clip in kept:
        try:
            items.append(_item(folder, clip, settings))
        except MissingAudio as exc:
            log.error("%s: clip left out of the export: %s", folder, exc)
            dropped[f"{folder.name}/{clip.id}"] = str(exc)
    return items, dropped


def read_folder(folder: Path, settings: Settings) -> tuple[list[Item], dict[str, str]]:
    """The kept clips of one ready work folder and the clips left out (folder/clip id -> why); StageError naming
    the cause when the folder cannot be exported."""
    try:
        clips = read_clips(folder / READY_MANIFEST)
        kept = [clip for clip in clips if clip.kept]
        items, dropped = _items(folder, kept, settings)
        measured = {str(audio) for clip in kept if (audio := (clip.quality or {}).get("audio"))}
        if measured - {settings.export.audio}:
            log.warning(
                "%s: the gate scored the %s audio but the export takes the %s audio: its DNSMOS gate and "
                "tiers describe other files; rerun the gate with export.audio: %s",
                folder,
                "/".join(sorted(measured)),
                settings.export.audio,
                settings.export.audio,
            )
    except StageError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # missing, not JSON, not clip records
        raise StageError(f"{READY_MANIFEST} is unreadable ({type(exc).__name__}: {exc})") from None
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise StageError(f"{READY_MANIFEST} lists clip ids twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    return items, dropped


def read_items(ready: dict[str, Path], settings: Settings) -> tuple[list[Item], dict[str, str], dict[str, str]]:
    """The kept clips of every ready folder sorted by id, the folders skipped with why, and the clips left out."""
    items: list[Item] = []
    skipped: dict[str, str] = {}
    dropped: dict[str, str] = {}
    owner: dict[str, str] = {}  # exported id -> folder, to catch two folders whose ids meet after sanitising
    for name, folder in ready.items():
        try:
            found, left_out = read_folder(folder, settings)
            clash = sorted(item.id for item in found if item.id in owner)
            if clash:
                raise StageError(f"exported clip ids {clash[:3]} are already used by folder {owner[clash[0]]}")
        except StageError as exc:
            log.error("%s: skipped in the export: %s", folder, exc)
            skipped[name] = str(exc)
            continue
        owner.update((item.id, name) for item in found)
        items.extend(found)
        dropped.update(left_out)
    return sorted(items, key=lambda item: item.id), skipped, dropped


# --- subsets --------------------------------------------------------------------------------------------------------


def subset_names(settings: Settings) -> list[str]:
    """`all`, then with tier_subsets each tier from best to worst; a tier name must be usable as a folder name."""
    if not settings.export.tier_subsets:
        return [ALL_SUBSET]
    tiers = sorted(settings.gates.tiers, key=lambda name: -settings.gates.tiers[name])
    bad = [name for name in tiers if name == ALL_SUBSET or _SAFE_NAME.search(name) or name.startswith(".")]
    if bad:
        raise SettingsError(
            f"gates.tiers names {bad} cannot be export subset folders with export.tier_subsets: "
            f"use letters, digits, '.', '_' or '-', not starting with '.', and not '{ALL_SUBSET}'"
        )
    return [ALL_SUBSET, *tiers]


def subset_items(items: list[Item], settings: Settings) -> dict[str, list[Item]]:
    """Each subset's clips; a tier subset holds the clips of that tier and of every better one (higher minimum)."""
    names = subset_names(settings)
    rank = {name: i for i, name in enumerate(names[1:])}
    return {
        name: items if name == ALL_SUBSET else [item for item in items if rank.get(item.tier, len(rank)) <= rank[name]]
        for name in names
    }


def by_split(items: list[Item]) -> dict[str, list[Item]]:
    return {split: [item for item in items if item.split == split] for split in SPLITS}
