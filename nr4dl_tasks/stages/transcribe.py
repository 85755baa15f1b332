"""Transcribe: the text of every kept clip, from the offline Whisper backend or Azure AI Speech.

Reads `manifests/speakers.jsonl`, writes `manifests/transcribe.jsonl` with, per
kept clip: `text`, `language`, `language_probability`, `confidence`, `words`
(where the backend gives word timings), `asr` (backend details) and
`asr_backend`. Clips dropped by an earlier stage are passed on untouched.

The original clip audio is recognised by default (`transcribe.input`):
denoising removes cues a recogniser uses and raised Whisper's error rate on
noisy speech in the project owner's measurement.

Azure credentials never enter the settings, the fingerprint or a log line: the
Airflow operator hands them in from its connection (`TranscribeStage(azure=...)`),
the CLI from the environment.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nr4dl_tasks.asr.recognition import AudioClip, Recognizer
from nr4dl_tasks.core import layout
from nr4dl_tasks.core.layout import Artifact
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import clip_file, read_manifest, write_manifest
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir

if TYPE_CHECKING:
    from nr4dl_tasks.asr.azure_speech import AzureCredentials

log = logging.getLogger("nr4dl")

# Settings that change no transcript (speed, patience) stay out of the fingerprint, and so do the local model's
# settings under Azure: changing them must not send every file to the (paid) service again.
NOT_IN_FINGERPRINT = {"batch_size", "azure_retries", "azure_timeout_seconds"}
LOCAL_ONLY = {"model", "beam_size", "compute_type"}
PROGRESS_EVERY = 50  # clips between journal writes (a killed task resumes from the last one)
JOURNAL = "manifests/transcribe.partial.jsonl"


class Journal:
    """Transcripts an earlier attempt got for the same fingerprint, kept across a killed or retried task.

    Without it, an Airflow retry after Azure stayed throttled would pay for every clip of the file again,
    and a killed local run of a 2-hour file would lose its twenty minutes. The first line holds the
    fingerprint; then one line per clip, appended and flushed after each batch. A line cut short by a kill
    is ignored, and a journal of other settings is discarded.
    """

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = path, fingerprint

    def load(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        if not lines or _parse(lines[0]).get("fingerprint") != self.fingerprint:
            self.path.parent.mkdir(exist_ok=True)
            self.path.write_text(json.dumps({"fingerprint": self.fingerprint}) + "\n", encoding="utf-8")
            return records
        for line in lines[1:]:
            entry = _parse(line)
            if "id" in entry:
                records[entry.pop("id")] = entry
        return records

    def add(self, records: dict[str, dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.writelines(
                json.dumps({"id": cid, **record}, ensure_ascii=False) + "\n" for cid, record in records.items()
            )
            fh.flush()
            os.fsync(fh.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _parse(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return entry if isinstance(entry, dict) else {}


class TranscribeStage(Stage):
    name = "transcribe"
    manifest = True

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return layout.manifest("speakers"), *layout.clip_audio(settings.transcribe.input)

    def __init__(self, azure: AzureCredentials | None = None) -> None:
        self.azure = azure

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        cfg = settings.transcribe
        ignored = NOT_IN_FINGERPRINT | (LOCAL_ONLY if cfg.backend == "azure" else set())
        return {"transcribe": cfg.model_dump(exclude=ignored)}

    def recognizer(self, settings: Settings) -> Recognizer:
        """The configured backend (the Whisper model stays loaded in this process between files)."""
        if settings.transcribe.backend == "azure":
            from nr4dl_tasks.asr.azure_speech import AzureRecognizer, credentials_from_env

            return AzureRecognizer(self.azure or credentials_from_env(), settings.transcribe)
        from nr4dl_tasks.asr.whisper_local import LocalWhisper

        return LocalWhisper(settings)

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg = settings.transcribe
        clips = read_manifest(work, "speakers")
        todo = [c for c in clips if c.kept]
        journal = Journal(work.path(JOURNAL), work.fingerprint or "")
        done = journal.load()
        if done:
            log.info(
                "%s: resuming: %d of %d clips were transcribed by an earlier attempt",
                work.source_id,
                len(done),
                len(todo),
            )
        recognizer = self.recognizer(settings)
        began = time.monotonic()
        missing = [c for c in todo if c.id not in done]
        step = max(cfg.batch_size, PROGRESS_EVERY)
        progress = Progress(f"{work.source_id}: transcribing", sum(c.duration for c in missing))
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            audio = [AudioClip(clip.id, clip_file(work, clip.audio(cfg.input), "speakers")) for clip in chunk]
            transcripts = []
            for at in range(0, len(audio), cfg.batch_size):  # the recogniser's own batches, each one counted
                transcripts += recognizer.transcribe(audio[at : at + cfg.batch_size])
                progress.add(sum(c.duration for c in chunk[at : at + cfg.batch_size]))
            records = {
                clip.id: {**transcript.as_record(), "asr_backend": recognizer.name}
                for clip, transcript in zip(chunk, transcripts, strict=True)
            }
            journal.add(records)
            done.update(records)
        for clip in todo:
            clip.extra.update(done[clip.id])
        manifest = write_manifest(work, self.name, clips)
        journal.remove()
        elapsed = time.monotonic() - began
        seconds = sum(c.duration for c in missing)
        languages = Counter(c.language for c in todo)
        info = {
            "backend": recognizer.name,
            "clips": len(todo),
            "resumed": len(todo) - len(missing),
            "audio_seconds": round(seconds, 1),
            "realtime_factor": round(seconds / elapsed, 1) if elapsed > 0 and seconds else None,
            "languages": dict(languages.most_common()),
            "empty": sum(not c.text for c in todo),
        }
        log.info("%s: %s", work.source_id, info)
        return [manifest], info
