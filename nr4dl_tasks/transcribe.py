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

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from nr4dl_tasks.recognition import AudioClip, Recognizer
from nr4dl_tasks.records import Clip, clip_file, read_manifest, write_manifest
from nr4dl_tasks.settings import Settings
from nr4dl_tasks.stage import Stage
from nr4dl_tasks.workdir import WorkDir

if TYPE_CHECKING:
    from nr4dl_tasks.azure_speech import AzureCredentials

log = logging.getLogger("nr4dl")

# Settings that change no transcript (speed, patience) stay out of the fingerprint, and so do the local model's
# settings under Azure: changing them must not send every file to the (paid) service again.
NOT_IN_FINGERPRINT = {"threads", "batch_size", "azure_retries", "azure_timeout_seconds"}
LOCAL_ONLY = {"model", "beam_size", "compute_type"}
PROGRESS_EVERY = 50  # clips between progress lines in the log


class TranscribeStage(Stage):
    name = "transcribe"
    manifest = True
    reads = ("ingest", "separate", "segment", "slice", "denoise", "speakers")

    def __init__(self, azure: AzureCredentials | None = None) -> None:
        self.azure = azure

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        cfg = settings.transcribe
        ignored = NOT_IN_FINGERPRINT | (LOCAL_ONLY if cfg.backend == "azure" else set())
        return {"transcribe": cfg.model_dump(exclude=ignored)}

    def recognizer(self, settings: Settings) -> Recognizer:
        """The configured backend (the Whisper model stays loaded in this process between files)."""
        if settings.transcribe.backend == "azure":
            from nr4dl_tasks.azure_speech import AzureRecognizer, credentials_from_env

            return AzureRecognizer(self.azure or credentials_from_env(), settings.transcribe)
        from nr4dl_tasks.whisper_local import LocalWhisper

        return LocalWhisper(settings)

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg = settings.transcribe
        clips = read_manifest(work, "speakers")
        todo = [c for c in clips if not c.extra.get("dropped")]
        recognizer = self.recognizer(settings)
        began = time.monotonic()
        step = max(cfg.batch_size, PROGRESS_EVERY)
        for start in range(0, len(todo), step):
            chunk = todo[start: start + step]
            audio = [AudioClip(clip.id, clip_file(work, self._audio(clip, cfg.input), "speakers")) for clip in chunk]
            for clip, transcript in zip(chunk, recognizer.transcribe(audio), strict=True):
                clip.extra.update(transcript.as_record(), asr_backend=recognizer.name)
            log.info("%s: transcribed %d of %d clips", work.source_id, start + len(chunk), len(todo))
        manifest = write_manifest(work, self.name, clips)
        elapsed = time.monotonic() - began
        seconds = sum(c.duration for c in todo)
        languages = Counter(c.extra.get("language") for c in todo)
        info = {"backend": recognizer.name, "clips": len(todo), "audio_seconds": round(seconds, 1),
                "realtime_factor": round(seconds / elapsed, 1) if elapsed > 0 and seconds else None,
                "languages": dict(languages.most_common()),
                "empty": sum(not c.extra.get("text") for c in todo)}
        log.info("%s: %s", work.source_id, info)
        return [manifest], info

    @staticmethod
    def _audio(clip: Clip, which: str) -> str:
        return clip.extra.get("denoised_path", clip.path) if which == "denoised" else clip.path
