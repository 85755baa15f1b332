"""The dataset layouts (LJSpeech, Hugging Face audiofolder, NeMo): pure functions from items to the files to write,
so what a format holds is testable without touching a disk.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nr4dl_tasks.core.settings import ExportSettings
from nr4dl_tasks.export.items import Cut, Item, by_split

AUDIOFOLDER_COLUMNS = (
    "file_name",
    "text",
    "normalized_text",
    "pronunciation",
    "speaker",
    "source",
    "duration",
    "language",
    "dnsmos_ovrl",
    "tier",
)


@dataclass
class Layout:
    """What one format writes into its folder, by path relative to it: audio files to link and metadata bytes."""

    audio: dict[str, Path | Cut] = field(default_factory=dict)
    metadata: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # problems a reader of these files will meet


def ljspeech_layout(items: list[Item], cfg: ExportSettings) -> Layout:
    """`<split>/wavs/<id>.wav` and `<split>/metadata.csv`: id|text|normalized_text, no header, no quoting;
    `<split>/pronunciation.csv` (id|pronunciation) where the split has Korean clips (metadata.csv keeps the three
    columns its readers split on)."""
    layout = Layout()
    for split, rows in by_split(items).items():
        if not rows:
            continue
        lines = [f"{item.id}|{item.text}|{item.normalized_text}\n" for item in rows]
        layout.metadata[f"{split}/metadata.csv"] = "".join(lines).encode("utf-8")
        if any(item.pronunciation for item in rows):
            lines = [f"{item.id}|{item.pronunciation}\n" for item in rows if item.pronunciation]
            layout.metadata[f"{split}/pronunciation.csv"] = "".join(lines).encode("utf-8")
        layout.audio.update({f"{split}/wavs/{item.id}.wav": item.placed for item in rows})
    return layout


def _audiofolder_row(item: Item) -> dict[str, Any]:
    return {
        "file_name": f"{item.id}.wav",
        "text": item.text,
        "normalized_text": item.normalized_text,
        "pronunciation": item.pronunciation,
        "speaker": item.speaker,
        "source": item.source,
        "duration": item.duration,
        "language": item.language,
        "dnsmos_ovrl": item.dnsmos_ovrl,
        "tier": item.tier,
    }


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
            clashes.append(
                f"column {column} reads as {kinds} in metadata.csv, and datasets' audiofolder refuses "
                "splits of different types; set export.audiofolder_metadata: parquet (typed columns)"
            )
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
        layout.audio.update({f"{split}/{item.id}.wav": item.placed for item in rows})
    if cfg.audiofolder_metadata == "csv":
        layout.warnings.extend(_csv_type_clashes(tables))
    return layout


def _nemo_row(item: Item) -> dict[str, Any]:
    row = {
        "audio_filepath": f"wavs/{item.id}.wav",
        "duration": item.duration,
        "text": item.text,
        "normalized_text": item.normalized_text,
        "speaker": item.speaker,
        "source": item.source,
        "language": item.language,
        "dnsmos_ovrl": item.dnsmos_ovrl,
        "tier": item.tier,
    }
    row |= {"pronunciation": item.pronunciation} if item.pronunciation else {}
    return row | {"words": item.words} if item.words is not None else row


def nemo_layout(items: list[Item], cfg: ExportSettings) -> Layout:
    """NeMo: `wavs/<id>.wav` shared by all splits and `<split>_manifest.jsonl` pointing at them (relative paths)."""
    layout = Layout()
    for split, rows in by_split(items).items():
        if not rows:
            continue
        lines = [json.dumps(_nemo_row(item), ensure_ascii=False) + "\n" for item in rows]
        layout.metadata[f"{split}_manifest.jsonl"] = "".join(lines).encode("utf-8")
        layout.audio.update({f"wavs/{item.id}.wav": item.placed for item in rows})
    return layout


FORMAT_LAYOUTS: dict[str, Callable[[list[Item], ExportSettings], Layout]] = {
    "ljspeech": ljspeech_layout,
    "audiofolder": audiofolder_layout,
    "nemo": nemo_layout,
}
