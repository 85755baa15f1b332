"""The dataset report's numbers: what the media became, read from the work folders, never recomputed.

A user who ran the pipeline has WAV files and JSON lines; this module turns them
into the figures the report shows (`html.py` draws them):

* **funnel** per file and in total: input -> music, noise, silence -> speech ->
  clips after the duration rules -> target speaker -> quality gates -> exported,
  with every drop counted (clips and seconds) under its reason;
* **yield** against `slice.min_duration` (0.3 ... 2.0 s) and per DNSMOS tier;
* **clips** with their scores, drop reason and review flags, for histograms,
  timelines and players;
* the **speakers** of the registry and the **failed files** of nr4dl's database.

Everything comes from files the stages already wrote: `segments.csv`,
`manifests/<stage>.jsonl`, `stamps/`, the speaker registry, the export's
metadata and `export.json`. Manifest lines are read as plain JSON objects, so a
change of the typed clip record does not change the report. Seconds balance
exactly: each funnel step's kept seconds are the previous step's minus its
drops plus what it added (padding and merged gaps at slicing).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from nr4dl_tasks.core import layout
from nr4dl_tasks.core.records import Segment, read_segments
from nr4dl_tasks.core.settings import NOISE_LABELS, Settings
from nr4dl_tasks.pipeline import STAGE_NAMES

log = logging.getLogger("nr4dl")

CLIP_STAGES = STAGE_NAMES[STAGE_NAMES.index(layout.CLIPS_DIR.stage) :]  # from the one cutting clips on: a manifest each
LAST_STAGE = STAGE_NAMES[-1]
YIELD_THRESHOLDS = (0.3, 0.5, 1.0, 1.5, 2.0)  # slice.min_duration values of the yield table
REVIEW_SPEAKER_MARGIN = 0.05  # a speaker score this close to its threshold is listed for review
REVIEW_LANGUAGE_MARGIN = 0.1  # ... and a language probability this close above gates.min_language_probability
WAVEFORM_BINS = 1200
SILENCE_LABEL = "noEnergy"
EXPORT_FORMATS_READ = ("nemo", "ljspeech", "audiofolder")  # where exported ids are looked up, in this order


# --- records --------------------------------------------------------------------------------------------------------


@dataclass
class Drop:
    clips: int = 0
    seconds: float = 0.0

    def add(self, clips: int, seconds: float) -> None:
        self.clips += clips
        self.seconds += seconds


@dataclass
class Step:
    """One funnel step: what is left after it, what it dropped by reason, and what it added."""

    name: str
    seconds: float
    clips: int | None  # None before slicing (there are no clips yet)
    drops: dict[str, Drop] = field(default_factory=dict)
    added_seconds: float = 0.0  # padding and merged gaps (slice)
    added_clips: int = 0  # single-voice pieces of split clips (speakers)

    def drop(self, reason: str, clips: int, seconds: float) -> None:
        self.drops.setdefault(reason, Drop()).add(clips, seconds)


@dataclass
class ClipView:
    """One clip as the report shows it: times, audio, decision and scores."""

    id: str
    source: str
    label: str
    start: float
    end: float
    duration: float
    speech: float  # seconds of speech the slicing rules measured (no padding); the piece's length for split pieces
    path: str
    denoised_path: str | None
    kept: bool  # passed every stage that ran
    stage: str | None  # the stage that dropped it
    reason: str | None  # short drop reason (funnel key)
    detail: str | None  # the stage's own words
    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    speaker: str | None = None
    speaker_score: float | None = None
    dnsmos_ovrl: float | None = None
    cps: float | None = None
    tier: str | None = None
    exported: bool = False
    replaced: bool = False  # split into single-voice pieces (listed as clips of their own)
    review: list[str] = field(default_factory=list)


@dataclass
class FileReport:
    source: str
    media: str
    folder: Path
    duration: float
    segments: list[Segment]
    funnel: list[Step]
    clips: list[ClipView]
    yield_rows: list[dict[str, Any]]
    last_stage: str | None
    waveform: list[tuple[float, float]] = field(default_factory=list)  # (min, max) per bin of the analysis audio
    failed_stage: str | None = None  # the stage its latest Airflow run failed at (the failed-file list)


@dataclass
class SpeakerRow:
    id: str
    clips: int  # in the registry (all clips the voice had when linked)
    kept_seconds: float  # kept clips in the manifests
    gender: str | None
    files: list[str]


@dataclass
class FailedRow:
    media: str
    stage: str
    error: str
    run_id: str | None
    failed_at: str


@dataclass
class DatasetReport:
    work_dir: Path
    dataset_dir: Path
    files: list[FileReport]
    funnel: list[Step]
    yield_rows: list[dict[str, Any]]
    tiers: list[str]  # best first
    speakers: list[SpeakerRow]
    failed: list[FailedRow]
    export: dict[str, Any]  # export.json as written ({} before the first export)
    pending: list[str]  # work folders whose gate has not run

    @property
    def clips(self) -> list[ClipView]:
        return [clip for report in self.files for clip in report.clips]


# --- reading --------------------------------------------------------------------------------------------------------


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def reason_key(dropped: str) -> str:
    """The funnel's name for a drop: the stage's text without its figures ('gate cps: 41.0 ...' -> 'gate: cps')."""
    text = dropped.strip()
    if text.startswith("gate "):
        return "gate: " + text[5:].split(":")[0].strip()
    if text.startswith("speakers: split"):
        return "speakers: split at a voice change"
    if text.startswith("speakers: closest target"):
        return "speakers: not a target speaker"
    if text.startswith("speakers: more than one voice"):
        return "speakers: more than one voice"
    return re.sub(r"\d+(\.\d+)?", "N", text.split(",")[0])[:80]


def _speech_seconds(record: dict[str, Any]) -> float:
    if "speech_start" in record and "speech_end" in record:
        return round(float(record["speech_end"]) - float(record["speech_start"]), 3)
    return float(record["duration"])


def _ovrl(record: dict[str, Any]) -> float | None:
    quality = record.get("quality") or {}
    if isinstance(quality, dict) and quality.get("dnsmos_ovrl") is not None:
        return float(quality["dnsmos_ovrl"])
    after = ((record.get("denoise") or {}).get("dnsmos") or {}).get("after") or {}
    return float(after["ovrl"]) if after.get("ovrl") is not None else None


def exported_ids(dataset_dir: Path) -> set[str] | None:
    """Clip ids in the dataset's `all` subset, from the first format written; None when nothing is exported."""
    root = dataset_dir / "all"
    for name in EXPORT_FORMATS_READ:
        folder = root / name
        if not folder.is_dir():
            continue
        ids: set[str] = set()
        if name == "nemo":
            for manifest in folder.glob("*_manifest.jsonl"):
                ids |= {Path(r["audio_filepath"]).stem for r in read_json_lines(manifest)}
        elif name == "ljspeech":
            for meta in folder.glob("*/metadata.csv"):
                ids |= {line.split("|", 1)[0] for line in meta.read_text(encoding="utf-8").splitlines() if line}
        else:
            for meta in folder.glob("*/metadata.csv"):
                with meta.open(encoding="utf-8", newline="") as fh:
                    ids |= {Path(row["file_name"]).stem for row in csv.DictReader(fh)}
            for meta in folder.glob("*/metadata.parquet"):
                import pyarrow.parquet as pq

                ids |= {Path(n).stem for n in pq.read_table(meta, columns=["file_name"]).column(0).to_pylist()}
        return ids
    return None


def waveform(wav: Path, bins: int = WAVEFORM_BINS) -> list[tuple[float, float]]:
    """(min, max) sample per bin over the whole file, read block by block (a 40-minute file never sits in memory)."""
    try:
        info = sf.info(str(wav))
    except (OSError, sf.LibsndfileError):
        return []
    per_bin = max(1, info.frames // bins)
    out: list[tuple[float, float]] = []
    with sf.SoundFile(str(wav)) as snd:
        while len(out) < bins:
            block = snd.read(per_bin * 64, dtype="float32", always_2d=True)
            if not len(block):
                break
            mono = block.mean(axis=1)
            for at in range(0, len(mono), per_bin):
                part = mono[at : at + per_bin]
                out.append((round(float(part.min()), 3), round(float(part.max()), 3)))
    return out[:bins]


# --- one work folder ------------------------------------------------------------------------------------------------


def _label_seconds(segments: list[Segment]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for seg in segments:
        totals[seg.label] = totals.get(seg.label, 0.0) + seg.duration
    return totals


def _overlap(spans: list[tuple[float, float]], segments: list[Segment]) -> float:
    """Seconds of `segments` inside the union of `spans` (clips may overlap through their padding)."""
    merged: list[list[float]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return sum(max(0.0, min(hi, seg.end) - max(lo, seg.start)) for lo, hi in merged for seg in segments)


def _segment_steps(duration: float, segments: list[Segment], wanted: set[str]) -> list[Step]:
    """input -> speech: every second of the file is music, noise, silence, an unwanted label, or speech."""
    by_label = _label_seconds(segments)
    speech = sum(s for label, s in by_label.items() if label in wanted)
    step = Step("speech (segmenter)", speech, None)
    for label, seconds in sorted(by_label.items()):
        if label in wanted:
            continue
        name = "silence" if label == SILENCE_LABEL else label if label in NOISE_LABELS else f"{label} (not sliced)"
        step.drop(f"segment: {name}", 0, seconds)
    unlabelled = duration - sum(by_label.values())
    if abs(unlabelled) > 1e-6:
        step.drop("segment: not labelled", 0, unlabelled)
    return [Step("input", duration, None), step]


def _slice_step(speech: float, records: list[dict[str, Any]], segments: list[Segment], wanted: set[str]) -> Step:
    spans = [(float(r.get("speech_start", r["start"])), float(r.get("speech_end", r["end"]))) for r in records]
    in_clips = _overlap(spans, [s for s in segments if s.label in wanted])
    kept = sum(float(r["duration"]) for r in records)
    step = Step("clips (duration rules)", kept, len(records))
    step.drop("slice: shorter than slice.min_duration", 0, speech - in_clips)
    step.added_seconds = kept - in_clips  # padding, and the gaps merge_gap joined
    return step


_STEP_NAMES = {
    "denoise": "denoised",
    "speakers": "target speaker",
    "transcribe": "transcribed",
    "gate": "quality gates",
}


def _clip_step(stage: str, before: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> Step:
    """The step from the kept clips `before` this stage to the kept clips of its manifest."""
    step = Step(_STEP_NAMES.get(stage, stage), 0.0, 0)
    seen = {r["id"] for r in records}
    split_parents = {
        r["id"]
        for r in records
        if r["id"] in before and r.get("dropped") and reason_key(r["dropped"]) == "speakers: split at a voice change"
    }
    for record in records:  # drops first: a split piece's seconds are netted against its parent's drop
        if record["id"] in before and record.get("dropped"):
            step.drop(reason_key(record["dropped"]), 1, float(record["duration"]))
    for record in records:
        cid, seconds = record["id"], float(record["duration"])
        if cid in before:
            continue
        if record.get("split_from") in split_parents:  # a piece: netted against its parent's drop
            step.drops["speakers: split at a voice change"].seconds -= seconds
            step.added_clips += 1
            if record.get("dropped"):
                step.drop(reason_key(record["dropped"]), 1, seconds)
        elif not record.get("dropped"):
            step.added_clips += 1
            step.added_seconds += seconds
    for cid, record in before.items():  # a clip a stage left out of its manifest counts as dropped
        if cid not in seen:
            step.drop(f"{stage}: missing from its manifest", 1, float(record["duration"]))
    kept = [r for r in records if not r.get("dropped")]
    step.seconds, step.clips = sum(float(r["duration"]) for r in kept), len(kept)
    return step


def _review(record: dict[str, Any], settings: Settings, speaker_mode: str | None, language: str | None) -> list[str]:
    """Why a person should listen to this clip: decisions taken close to a threshold, or disagreements."""
    flags = []
    score = record.get("speaker_score")
    if record.get("speaker_review"):  # enrolled targets: the speakers stage marks clips near their own threshold
        flags.append(
            f"speaker score {float(record['speaker_norm']):.2f} (normalised) near the threshold "
            f"{float(record['speaker_threshold']):.2f}"
        )
    elif score is not None and speaker_mode == "clustered":
        threshold = settings.speakers.clustering()[0]
        if abs(float(score) - threshold) <= REVIEW_SPEAKER_MARGIN:
            flags.append(f"speaker score {float(score):.2f} near the threshold {threshold}")
    if language and record.get("language") and record["language"] != language:
        flags.append(f"language {record['language']}, the file's is {language}")
    probability, minimum = record.get("language_probability"), settings.gates.min_language_probability
    if probability is not None and minimum is not None and minimum <= probability <= minimum + REVIEW_LANGUAGE_MARGIN:
        flags.append(f"language probability {probability:.2f} near {minimum}")
    if record.get("gender_mismatch"):
        flags.append("segmenter gender differs from the speaker's")
    return flags


def _clip_views(
    folder: Path,
    manifests: dict[str, list[dict[str, Any]]],
    settings: Settings,
    exported: set[str] | None,
    speaker_mode: str | None,
) -> list[ClipView]:
    """Every clip of the last manifest, with the stage and reason of its drop (from the first manifest saying so)."""
    from nr4dl_tasks.export.items import export_id

    stages = [s for s in CLIP_STAGES if s in manifests]
    dropped_at: dict[str, str] = {}
    for stage in stages:
        for record in manifests[stage]:
            if record.get("dropped") and record["id"] not in dropped_at:
                dropped_at[record["id"]] = stage
    last = manifests[stages[-1]]
    languages = Counter(r.get("language") for r in last if not r.get("dropped") and r.get("language"))
    language = languages.most_common(1)[0][0] if languages else None
    views = []
    for r in last:
        gates = r.get("gates") or {}
        dropped = r.get("dropped")
        kept = not dropped
        views.append(
            ClipView(
                id=r["id"],
                source=folder.name,
                label=r.get("label", ""),
                start=float(r["start"]),
                end=float(r["end"]),
                duration=float(r["duration"]),
                speech=_speech_seconds(r),
                path=r["path"],
                denoised_path=r.get("denoised_path"),
                kept=kept,
                stage=dropped_at.get(r["id"]) if dropped else None,
                reason=reason_key(dropped) if dropped else None,
                detail=dropped,
                text=r.get("text") or "",
                language=r.get("language"),
                language_probability=r.get("language_probability"),
                speaker=r.get("speaker"),
                speaker_score=r.get("speaker_score"),
                dnsmos_ovrl=_ovrl(r),
                cps=gates.get("cps"),
                tier=r.get("tier"),
                exported=exported is not None and kept and export_id(folder.name, r["id"]) in exported,
                replaced=dropped is not None and reason_key(dropped) == "speakers: split at a voice change",
                review=_review(r, settings, speaker_mode, language),
            )
        )
    return views


def _yield_rows(
    folder: Path,
    settings: Settings,
    segments: list[Segment],
    duration: float,
    clips: list[ClipView],
    cut: list[tuple[float, float]] | None,
    gated: bool,
) -> list[dict[str, Any]]:
    """Per slice.min_duration: the clips the slicing rules cut from the segments, and the hours kept in total and
    per tier by this run's decisions.

    Kept hours are known from the smallest minimum whose cut equals the clips the file was actually cut into
    (`cut`, padded spans of the slice manifest): a larger minimum only removes clips, so its kept clips are this
    run's kept clips with at least that much speech. Below it, clips this run never cut would need judging.
    """
    from nr4dl_tasks.stages.slice import loudness_of, plan_clips

    loudness = loudness_of(folder / layout.analysis_input(settings).name)
    tiers = tier_order(settings)
    rows, known = [], False
    for minimum in YIELD_THRESHOLDS:
        cfg = settings.slice.model_copy(
            update={"min_duration": minimum, "max_duration": max(settings.slice.max_duration, minimum)}
        )
        plan = [span for _, span in plan_clips(segments, cfg, loudness, duration)] if segments else []
        known = known or (gated and cut is not None and _same_spans(plan, cut))
        row: dict[str, Any] = {
            "min_duration": minimum,
            "clips": len(plan),
            "clip_seconds": sum(span.duration for span in plan),
        }
        kept = [c for c in clips if c.kept and c.speech >= minimum - 1e-9] if known else None
        row["kept_seconds"] = sum(c.duration for c in kept) if kept is not None else None
        for index, tier in enumerate(tiers):
            better = set(tiers[: index + 1])
            row[f"tier:{tier}"] = sum(c.duration for c in kept if c.tier in better) if kept is not None else None
        rows.append(row)
    return rows


def _same_spans(plan: list[Segment], cut: list[tuple[float, float]]) -> bool:
    return len(plan) == len(cut) and all(
        abs(s.start - a) < 2e-3 and abs(s.end - b) < 2e-3 for s, (a, b) in zip(plan, sorted(cut))
    )


def tier_order(settings: Settings) -> list[str]:
    return sorted(settings.gates.tiers, key=lambda name: -settings.gates.tiers[name])


def file_report(
    folder: Path,
    settings: Settings,
    exported: set[str] | None,
    skipped: dict[str, str] | None = None,
    with_waveform: bool = True,
) -> FileReport:
    """The report of one work folder, from whatever stages have run there."""
    analysis_wav, segments_csv = layout.ANALYSIS_WAV.name, layout.SEGMENTS_CSV.name

    source = read_json(folder / "source.json")
    stamps = {stage: read_json(folder / layout.stamp_name(stage)) for stage in ("ingest", *CLIP_STAGES)}
    duration = float((stamps["ingest"].get("info") or {}).get("duration") or 0.0)
    if not duration and (folder / analysis_wav).is_file():
        duration = sf.info(str(folder / analysis_wav)).duration
    segments = read_segments(folder / segments_csv) if (folder / segments_csv).is_file() else []
    wanted = settings.slice.wanted_labels()
    manifests = {
        stage: read_json_lines(folder / layout.manifest(stage).name)
        for stage in CLIP_STAGES
        if stamps.get(stage) and (folder / layout.manifest(stage).name).is_file()
    }
    funnel = _segment_steps(duration, segments, wanted) if segments else [Step("input", duration, None)]
    cut = [(float(r["start"]), float(r["end"])) for r in manifests["slice"]] if "slice" in manifests else None
    if "slice" in manifests:
        funnel.append(_slice_step(funnel[-1].seconds, manifests["slice"], segments, wanted))
        before = {r["id"]: r for r in manifests["slice"] if not r.get("dropped")}
        for stage in CLIP_STAGES[1:]:
            if stage not in manifests:
                break
            funnel.append(_clip_step(stage, before, manifests[stage]))
            before = {r["id"]: r for r in manifests[stage] if not r.get("dropped")}
    speaker_mode = (stamps["speakers"].get("info") or {}).get("mode")
    clips = _clip_views(folder, manifests, settings, exported, speaker_mode) if manifests else []
    if LAST_STAGE in manifests:
        funnel.append(_export_step(folder.name, clips, exported, (skipped or {}).get(folder.name)))
    last = next((s for s in reversed(CLIP_STAGES) if s in manifests), None)
    return FileReport(
        source=folder.name,
        media=str(source.get("path") or folder.name),
        folder=folder,
        duration=duration,
        segments=segments,
        funnel=funnel,
        clips=clips,
        yield_rows=_yield_rows(folder, settings, segments, duration, clips, cut, LAST_STAGE in manifests),
        last_stage=last,
        waveform=waveform(folder / analysis_wav) if with_waveform else [],
    )


def _export_step(source: str, clips: list[ClipView], exported: set[str] | None, skipped: str | None) -> Step:
    kept = [c for c in clips if c.kept]
    done = [c for c in kept if c.exported]
    step = Step("exported", sum(c.duration for c in done), len(done))
    missing = [c for c in kept if not c.exported]
    if missing:
        reason = (
            f"export: folder skipped ({skipped})"
            if skipped
            else "export: not exported yet"
            if exported is None
            else "export: not in the dataset (export is older)"
        )
        step.drop(reason, len(missing), sum(c.duration for c in missing))
    return step


# --- the dataset ----------------------------------------------------------------------------------------------------


def total_funnel(files: list[FileReport]) -> list[Step]:
    """The funnel of all files: each step summed over the files that reached it, drops merged by reason."""
    steps: dict[str, Step] = {}
    for report in files:
        for step in report.funnel:
            total = steps.setdefault(step.name, Step(step.name, 0.0, None if step.clips is None else 0))
            total.seconds += step.seconds
            if step.clips is not None:
                total.clips = (total.clips or 0) + step.clips
            total.added_seconds += step.added_seconds
            total.added_clips += step.added_clips
            for reason, drop in step.drops.items():
                total.drop(reason, drop.clips, drop.seconds)
    return list(steps.values())


def total_yield(files: list[FileReport]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, minimum in enumerate(YIELD_THRESHOLDS):
        row: dict[str, Any] = {"min_duration": minimum}
        for report in files:
            if index >= len(report.yield_rows):
                continue
            for key, value in report.yield_rows[index].items():
                if key == "min_duration":
                    continue
                if value is None or row.get(key, 0) is None:
                    row[key] = None  # a file that cannot say makes the total unknown
                else:
                    row[key] = row.get(key, 0) + value
        rows.append(row)
    return rows


def speaker_rows(work_dir: Path, clips: list[ClipView]) -> list[SpeakerRow]:
    from nr4dl_tasks.core.errors import StageError
    from nr4dl_tasks.voice.registry import REGISTRY_NAME, SpeakerRegistry

    try:
        registry = SpeakerRegistry(work_dir / REGISTRY_NAME).speakers() if (work_dir / REGISTRY_NAME).is_file() else {}
    except StageError as exc:
        log.warning("%s", exc)
        registry = {}
    kept: dict[str, list[ClipView]] = {}
    for clip in clips:
        if clip.speaker and clip.kept:
            kept.setdefault(clip.speaker, []).append(clip)
    rows = []
    for sid in sorted(set(registry) | set(kept)):
        own = kept.get(sid, [])
        genders = Counter(c.label for c in own if c.label in ("male", "female"))
        rows.append(
            SpeakerRow(
                sid,
                int(registry.get(sid, {}).get("clips", len(own))),
                sum(c.duration for c in own),
                genders.most_common(1)[0][0] if genders else None,
                sorted(set(registry.get(sid, {}).get("sources", [])) | {c.source for c in own}),
            )
        )
    return rows


def failed_rows(settings: Settings) -> list[FailedRow]:
    from nr4dl_tasks.state.failures import FailureLog

    try:
        failures = FailureLog(settings).failures()
    except Exception as exc:  # the report still shows everything else when nr4dl's database is unreachable
        log.warning("failed-file list unavailable: %s", exc)
        return []
    return [FailedRow(f.media, f.stage, f.error, f.run_id, f.failed_at.isoformat(timespec="seconds")) for f in failures]


def work_folders(work_dir: Path, dataset_dir: Path) -> Iterator[Path]:
    """The source files' work folders (the dataset folder may sit inside the work folder)."""
    if not work_dir.is_dir():
        return
    for folder in sorted(work_dir.iterdir()):
        if (
            folder.is_dir()
            and not folder.name.startswith(".")
            and folder.resolve() != dataset_dir.resolve()
            and (folder / "source.json").is_file()
        ):
            yield folder


def build(settings: Settings, with_waveforms: bool = True) -> DatasetReport:
    """The whole report, from the work folders, the export and nr4dl's database."""
    work_dir = settings.resolve(settings.paths.work_dir)
    dataset_dir = settings.resolve(settings.export.dataset_dir)
    export = read_json(dataset_dir / "export.json")
    exported = exported_ids(dataset_dir)
    skipped = export.get("skipped") or {}
    files = [
        file_report(folder, settings, exported, skipped, with_waveforms)
        for folder in work_folders(work_dir, dataset_dir)
    ]
    clips = [clip for report in files for clip in report.clips]
    failed = failed_rows(settings)
    failed_at = {row.media: row.stage for row in failed}
    for report in files:
        report.failed_stage = failed_at.get(report.media)
    return DatasetReport(
        work_dir=work_dir,
        dataset_dir=dataset_dir,
        files=files,
        funnel=total_funnel(files),
        yield_rows=total_yield(files),
        tiers=tier_order(settings),
        speakers=speaker_rows(work_dir, clips),
        failed=failed,
        export=export,
        pending=[f.source for f in files if f.last_stage != LAST_STAGE and not f.failed_stage],
    )


def find_file(settings: Settings, source: str) -> FileReport | None:
    """One work folder's report by its name; None when there is no such folder."""
    work_dir = settings.resolve(settings.paths.work_dir)
    dataset_dir = settings.resolve(settings.export.dataset_dir)
    for folder in work_folders(work_dir, dataset_dir):
        if folder.name == source:
            export = read_json(dataset_dir / "export.json")
            return file_report(folder, settings, exported_ids(dataset_dir), export.get("skipped") or {})
    return None


def histogram(values: list[float], bins: int, lo: float, hi: float) -> tuple[list[float], np.ndarray]:
    """Bin edges and counts of `values` over [lo, hi] (values outside go into the edge bins)."""
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges) if values else (np.zeros(bins, int), edges)
    return [float(e) for e in edges], counts
