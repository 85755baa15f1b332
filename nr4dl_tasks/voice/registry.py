"""The dataset's speaker registry: one id per voice across every file processed into a work folder.

Without enrolled targets, each file's clips are clustered into voices, and each
voice is linked to the registry: to the known speaker it matches best (cosine
similarity of centroids at least `threshold`, one voice per speaker per file),
or to a new id. The registry keeps every file's contribution (centroid and clip
count per speaker), so a speaker's centroid is the clip-weighted mean over all
files, and reprocessing a file replaces its contribution instead of adding it
twice: its voices find their previous ids again.

It is one JSON file beside the work folders, changed under a file lock and
replaced atomically, so parallel Airflow tasks on one or many hosts (sharing
the folder) take turns. It records the encoder its centroids come from: a
CAM++ centroid and a Resemblyzer one are not comparable (nor of one size), so
a registry of one encoder refuses voices of the other.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.voice.embedding import unit

REGISTRY_NAME = "speaker_registry.json"


@dataclass(frozen=True)
class Voice:
    """One voice found in a file: its centroid and how many clips it has."""

    centroid: np.ndarray
    clips: int


class SpeakerRegistry:
    """The registry at `path`, linking voices embedded by `encoder` (reading its table needs no encoder)."""

    def __init__(self, path: Path, encoder: str = "resemblyzer") -> None:
        self.path, self.encoder = path, encoder

    @contextmanager
    def _locked(self, write: bool) -> Iterator[dict[str, Any]]:
        """The registry's state under its lock; written back atomically when `write`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            state = self._read()
            yield state
            if write:
                tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:12]}")
                tmp.write_text(json.dumps(state, indent=1))
                os.replace(tmp, self.path)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 1, "encoder": self.encoder, "next_id": 1, "sources": {}}
        try:
            state = json.loads(self.path.read_text())
            if state.get("version") != 1 or not isinstance(state["sources"], dict):
                raise ValueError(f"unknown layout (version {state.get('version')!r})")
            return state
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StageError(
                f"speaker registry {self.path} is unreadable ({exc}); restore it from a backup, or "
                "delete it to number the speakers again from spk0001"
            ) from None

    def link(self, source_id: str, voices: list[Voice], threshold: float) -> list[tuple[str, float]]:
        """(speaker id, similarity to that speaker) per voice; records the file's contribution."""
        with self._locked(write=True) as state:
            held = state.get("encoder", "resemblyzer")  # a registry written before encoders were recorded
            if held != self.encoder and state["sources"]:
                raise StageError(
                    f"speaker registry {self.path} holds {held} voices, but speakers.encoder is {self.encoder}: "
                    f"set speakers.encoder: {held} to keep its ids, or move the registry aside (a new one numbers "
                    f"the {self.encoder} voices from spk0001 again)"
                )
            state["encoder"] = self.encoder
            previous = state["sources"].pop(source_id, [])
            known: dict[str, np.ndarray] = {}
            for entries in [*state["sources"].values(), previous]:
                for entry in entries:
                    weighted = np.asarray(entry["centroid"]) * entry["clips"]
                    known[entry["speaker"]] = known.get(entry["speaker"], 0) + weighted
            ids = sorted(known)
            centroids = np.array([unit(known[i]) for i in ids]) if ids else np.zeros((0, 1))
            assigned: list[tuple[str, float] | None] = [None] * len(voices)
            if ids and voices:
                sims = np.array([v.centroid for v in voices]) @ centroids.T
                taken: set[str] = set()
                for flat in np.argsort(-sims, axis=None, kind="stable"):
                    v, k = divmod(int(flat), len(ids))
                    if sims[v, k] < threshold:
                        break
                    if assigned[v] is None and ids[k] not in taken:
                        assigned[v] = (ids[k], float(sims[v, k]))
                        taken.add(ids[k])
            # Numbers are never reused, even after the last file holding one was reprocessed, so an id in an
            # earlier export never comes to mean another voice. Ids renamed by hand ('alice') are kept as they are.
            number = max([state.get("next_id", 1)] + [int(i[3:]) + 1 for i in ids if re.fullmatch(r"spk\d+", i)])
            result = []
            for match in assigned:
                if match is None:
                    match = (f"spk{number:04d}", 1.0)
                    number += 1
                result.append(match)
            state["next_id"] = number
            state["sources"][source_id] = [
                {"speaker": sid, "clips": v.clips, "centroid": [round(float(x), 6) for x in v.centroid]}
                for (sid, _), v in zip(result, voices, strict=True)
            ]
            return result

    def speakers(self) -> dict[str, dict[str, Any]]:
        """Every speaker id with its clip count and the files it occurs in."""
        with self._locked(write=False) as state:
            table: dict[str, dict[str, Any]] = {}
            for source, entries in state["sources"].items():
                for entry in entries:
                    row = table.setdefault(entry["speaker"], {"clips": 0, "sources": []})
                    row["clips"] += entry["clips"]
                    row["sources"].append(source)
            return table
