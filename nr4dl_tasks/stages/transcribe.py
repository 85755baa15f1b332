"""Transcribe: the text of every kept clip, from the offline Whisper backend or Azure AI Speech.

Reads `manifests/speakers.jsonl`, writes `manifests/transcribe.jsonl` with, per
kept clip: `text`, `language`, `language_probability`, `confidence`, `words`
(where the backend gives word timings), `asr` (backend details, with `detected`,
the clip's own language detection, and `attempts` where it was decoded again) and
`asr_backend`, and the typed `detected_language`, `file_language` and
`other_language`. Clips dropped by an earlier stage are passed on
untouched.

In two passes: every clip is first decoded in the forced language or, without
one, in its own detection; then the file's language is decided over all its
clips (`asr/language.py`) and the clips decoded in another (and, without a
forced language, those failing the hallucination checks, which the recogniser
recovers only where it knows the language) are decoded again. A one-language
file costs one pass. Both passes go through the journal. The local backend packs
consecutive short clips into one Whisper window (`transcribe.pack_seconds`,
`asr/packing.py`), so it is handed a journal step's clips at once.

The words are only recorded here: no stage rewrites a clip's audio. The export
cuts each clip from its first word to its last (`export.edge_pad_seconds`) when
it writes the dataset's copy (`export/writing.py`), so every stage stays
idempotent, the audio of the work folder stays the one every stage measured,
and another pad reruns the export alone.

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

from nr4dl_tasks.asr.checks import recovery_reasons
from nr4dl_tasks.asr.language import file_language, other_language
from nr4dl_tasks.asr.recognition import AudioClip, Recognizer
from nr4dl_tasks.core import layout
from nr4dl_tasks.core.layout import Artifact
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import Clip, clip_file, read_manifest, write_manifest
from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir

if TYPE_CHECKING:
    from nr4dl_tasks.asr.azure_speech import AzureCredentials

log = logging.getLogger("nr4dl")

# Settings that change no transcript (speed, patience) stay out of the fingerprint, and so do the local model's
# settings under Azure: changing them must not send every file to the (paid) service again.
NOT_IN_FINGERPRINT = {"batch_size", "azure_retries", "azure_timeout_seconds"}
LOCAL_ONLY = {
    "model",
    "beam_size",
    "by_language",
    "compute_type",
    "other_language_probability",
    "recover",
    "recover_beam_size",
    "recover_temperatures",
    "recover_below_logprob",
    "word_timestamps",
    "pack_seconds",
}
# The gates a failing clip is decoded again for (asr/checks.py): their thresholds change which clips are.
RECOVERY_CHECKS = {"max_no_speech_prob", "min_cps", "max_cps", "max_compression_ratio", "max_repeats"}
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
    # 2: one language per file, failing clips decoded again, word timings; 3: short clips packed; 4: beam and
    # prompt per language (Korean 5)
    version = 4
    manifest = True

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return layout.manifest("speakers"), *layout.clip_audio(settings.transcribe.input)

    def __init__(self, azure: AzureCredentials | None = None) -> None:
        self.azure = azure

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        cfg = settings.transcribe
        ignored = NOT_IN_FINGERPRINT | (LOCAL_ONLY if cfg.backend == "azure" else set())
        checks = settings.gates.model_dump(include=RECOVERY_CHECKS) if cfg.recover and cfg.backend == "local" else {}
        return {"transcribe": cfg.model_dump(exclude=ignored), "checks": checks}

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
        self._recognise(work, settings, recognizer, journal, done, missing, None)
        language = file_language_of(todo, done, cfg.language)
        targets = {c.id: target_language(done[c.id], language, cfg.other_language_probability) for c in todo}
        again = [c for c in todo if redo(c, done[c.id], targets[c.id], settings, recognizer.name)]
        if again:
            log.info(
                "%s: %d clips decoded again in the file's language %s or to recover them",
                work.source_id,
                len(again),
                language,
            )
        self._recognise(work, settings, recognizer, journal, done, again, targets)
        for clip in todo:
            clip.extra.update(done[clip.id])
            mark(clip, language, targets[clip.id])
        manifest = write_manifest(work, self.name, clips)
        journal.remove()
        elapsed = time.monotonic() - began
        seconds = sum(c.duration for c in missing)
        languages = Counter(c.language for c in todo)
        attempted = [c for c in todo if "attempts" in (c.asr or {})]
        info = {
            "backend": recognizer.name,
            "clips": len(todo),
            "resumed": len(todo) - len(missing),
            "audio_seconds": round(seconds, 1),
            "realtime_factor": round(seconds / elapsed, 1) if elapsed > 0 and seconds else None,
            "file_language": language,
            "languages": dict(languages.most_common()),
            "other_language": sum(bool(c.other_language) for c in todo),
            "decoded_again": len(again),
            "recovery_tried": len(attempted),
            "recovered": sum(not (c.asr or {})["attempts"][-1]["failed"] for c in attempted),
            "empty": sum(not c.text for c in todo),
        }
        log.info("%s: %s", work.source_id, info)
        return [manifest], info

    @staticmethod
    def _recognise(
        work: WorkDir,
        settings: Settings,
        recognizer: Recognizer,
        journal: Journal,
        done: dict[str, dict[str, Any]],
        clips: list[Clip],
        targets: dict[str, str | None] | None,
    ) -> None:
        """Recognise `clips` (in their `targets` languages where given), journaled batch by batch into `done`."""
        cfg = settings.transcribe
        step = max(cfg.batch_size, PROGRESS_EVERY)
        progress = Progress(f"{work.source_id}: transcribing", sum(c.duration for c in clips))
        for start in range(0, len(clips), step):
            chunk = clips[start : start + step]
            audio = [AudioClip(clip.id, clip_file(work, clip.audio(cfg.input), "speakers")) for clip in chunk]
            transcripts = []
            # the recogniser's own batches, each one counted; packed clips go in windows of many clips each
            at_once = step if cfg.pack_seconds and recognizer.name == "local" else cfg.batch_size
            for at in range(0, len(audio), at_once):
                batch = chunk[at : at + at_once]
                wanted = [targets[c.id] or "" for c in batch] if targets is not None else None
                transcripts += recognizer.transcribe(audio[at : at + at_once], wanted)
                progress.add(sum(c.duration for c in batch))
            records = {
                clip.id: {**transcript.as_record(), "asr_backend": recognizer.name}
                for clip, transcript in zip(chunk, transcripts, strict=True)
            }
            journal.add(records)
            done.update(records)


def _detection(record: dict[str, Any]) -> dict[str, float]:
    return dict((record.get("asr") or {}).get("detected") or {})


def file_language_of(clips: list[Clip], records: dict[str, dict[str, Any]], forced: str | None) -> str | None:
    """The forced language (as Whisper names it), else the one detected over all the file's clips."""
    if forced:
        return forced
    return file_language((_detection(records[c.id]), c.duration) for c in clips)


def target_language(record: dict[str, Any], language: str | None, threshold: float | None) -> str | None:
    """The language a clip is decoded in: its own where it confidently differs from the file's, else the file's."""
    if language is None:
        return record.get("language")
    return other_language(_detection(record), language.split("-")[0], threshold) or language


def redo(clip: Clip, record: dict[str, Any], target: str | None, settings: Settings, backend: str) -> bool:
    """Whether a clip is decoded again: it was decoded in a guessed language that is not its target, or (in a
    file whose language was detected, so that its first decoding was not yet recovered) it fails the checks."""
    cfg = settings.transcribe
    if backend != "local" or target is None:
        return False
    if record.get("language") != target.split("-")[0]:
        return True
    asr = record.get("asr") or {}
    if not cfg.recover or cfg.language or "attempts" in asr:
        return False
    return bool(
        recovery_reasons(record.get("text") or "", clip.duration, asr, settings.gates, cfg.recover_below_logprob)
    )


def mark(clip: Clip, language: str | None, target: str | None) -> None:
    """The clip's language decision, as typed fields."""
    detection = _detection(clip.extra)
    if detection:
        top = max(sorted(detection), key=detection.__getitem__)
        clip.detected_language, clip.detected_language_probability = top, detection[top]
    clip.file_language = language
    if target and language and target != language:
        clip.other_language = target
