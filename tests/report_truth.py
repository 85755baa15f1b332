"""What the manifests say, read here on its own (not through nr4dl_tasks.report.data), and the numbers a report
page shows.

The report tests compare the two: a page's `data-*` figures (every funnel step,
drop and yield cell) against sums taken straight from segments.csv, the
manifests, the stamps and the dataset's metadata.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

STAGES = ("slice", "denoise", "speakers", "transcribe", "gate")
# The plots every report page draws, by their data-plot names.
PLOTS = {
    "funnel",
    "yield against slice.min_duration",
    "histogram: DNSMOS OVRL",
    "histogram: speaker score",
    "histogram: characters per second",
    "histogram: language probability",
}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def kept(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("dropped")]


def folder_truth(folder: Path, exported_ids: set[str]) -> dict:
    """Seconds and clips after each step, and the gate's drops by check, from the folder's own files."""
    ingest = json.loads((folder / "stamps/ingest.json").read_text())
    with (folder / "segments.csv").open() as fh:
        segments = list(csv.DictReader(fh))
    by_label = Counter()
    for seg in segments:
        by_label[seg["label"]] += float(seg["end"]) - float(seg["start"])
    manifests = {stage: lines(folder / f"manifests/{stage}.jsonl") for stage in STAGES}
    steps = {
        "input": (ingest["info"]["duration"], None),
        "speech (segmenter)": (by_label["male"] + by_label["female"], None),
    }
    names = dict(zip(STAGES, ("clips (duration rules)", "denoised", "target speaker", "transcribed", "quality gates")))
    for stage in STAGES:
        records = kept(manifests[stage])
        steps[names[stage]] = (sum(r["duration"] for r in records), len(records))
    before = {r["id"] for r in kept(manifests["transcribe"])}
    gate_drops = Counter()
    for r in manifests["gate"]:
        if r["id"] in before and r.get("dropped"):
            gate_drops["gate: " + r["dropped"][len("gate ") :].split(":")[0]] += 1
    export_id = lambda cid: cid if cid.startswith(f"{folder.name}_") else f"{folder.name}_{cid}"  # noqa: E731
    done = [r for r in kept(manifests["gate"]) if export_id(r["id"]) in exported_ids]
    steps["exported"] = (sum(r["duration"] for r in done), len(done))
    silence = by_label["noEnergy"]
    return {
        "steps": steps,
        "gate_drops": gate_drops,
        "silence": silence,
        "music": by_label["music"],
        "noise": by_label["noise"],
        "gate": manifests["gate"],
    }


def nemo_ids(dataset: Path) -> set[str]:
    return {Path(r["audio_filepath"]).stem for m in (dataset / "all/nemo").glob("*_manifest.jsonl") for r in lines(m)}


class Figures(HTMLParser):
    """Every element with data-scope (funnel steps, drops, yield rows) and every audio source on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.cells: list[dict] = []
        self.audio: list[str] = []
        self.plots: list[str] = []
        self.external: list[str] = []
        self._yield: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag in ("tr",) and "data-scope" in a:
            self.rows.append(a)
            self._yield = a if "yield" in (a.get("class") or "") else None
        if tag == "td" and self._yield is not None and "data-key" in a:
            self.cells.append({**a, "scope": self._yield["data-scope"], "min": float(self._yield["data-min"])})
        if tag == "audio":
            self.audio.append(a["src"])
        if tag == "svg" and "data-plot" in a:
            self.plots.append(a["data-plot"])
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")) or tag in ("script", "link", "iframe"):
                self.external.append(f"{tag} {a}")

    def step(self, scope: str, name: str) -> dict:
        (row,) = [
            r
            for r in self.rows
            if r.get("data-scope") == scope and r.get("data-step") == name and "step" in r.get("class", "")
        ]
        return row

    def drops(self, scope: str, name: str) -> dict[str, dict]:
        return {
            r["data-reason"]: r
            for r in self.rows
            if r.get("data-scope") == scope and r.get("data-step") == name and "drop" in r.get("class", "")
        }


def figures(html_text: str) -> Figures:
    parser = Figures()
    parser.feed(html_text)
    return parser


def check_page(page: Figures, folders: dict[str, Path], dataset: Path, scope_total: bool = True) -> None:
    """Every funnel figure of the page equals the manifests, for each file it shows and (optionally) in total."""
    ids = nemo_ids(dataset)
    totals: Counter = Counter()
    for name, folder in folders.items():
        truth = folder_truth(folder, ids)
        for step, (seconds, clips) in truth["steps"].items():
            row = page.step(name, step)
            assert abs(float(row["data-seconds"]) - seconds) < 2e-3, (name, step, row, seconds)
            assert row["data-clips"] == ("" if clips is None else str(clips)), (name, step, row, clips)
            totals[step] += seconds
            totals[f"{step}/clips"] += clips or 0
        segment_drops = page.drops(name, "speech (segmenter)")
        for label, key in (("silence", "segment: silence"), ("music", "segment: music"), ("noise", "segment: noise")):
            shown = float(segment_drops[key]["data-seconds"]) if key in segment_drops else 0.0
            assert abs(shown - truth[label]) < 2e-3, (name, key, shown, truth[label])
        gate = {reason: int(r["data-clips"]) for reason, r in page.drops(name, "quality gates").items()}
        assert gate == dict(truth["gate_drops"]), (name, gate, truth["gate_drops"])
        for cell in [c for c in page.cells if c["scope"] == name and c["data-key"] == "kept_seconds"]:
            if cell["data-seconds"]:
                want = sum(
                    r["duration"]
                    for r in kept(truth["gate"])
                    if r.get("speech_end", r["end"]) - r.get("speech_start", r["start"]) >= cell["min"] - 1e-9
                )
                assert abs(float(cell["data-seconds"]) - want) < 2e-3, (name, cell, want)
    if scope_total:
        for step in ("input", "speech (segmenter)", "clips (duration rules)", "quality gates", "exported"):
            row = page.step("total", step)
            assert abs(float(row["data-seconds"]) - totals[step]) < 5e-3, (step, row, totals[step])
        assert int(page.step("total", "exported")["data-clips"]) == len(ids)
