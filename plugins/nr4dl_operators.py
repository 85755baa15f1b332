"""Airflow operators for the nr4dl stages: thin wrappers over `nr4dl_tasks`.

Following Airflow's provider conventions, an operator only stores its templated
arguments; `execute` loads the settings (file + the run's overrides) and hands
off to the engine. Engine modules are imported inside `execute`, so parsing a
DAG never loads numpy, TensorFlow or a model (a process that has run TensorFlow
hangs when the scheduler forks it).

Errors the engine reports (unreadable media, bad settings, missing models, a
separation that failed on this input) fail the task at once with
`AirflowFailException`: retrying cannot fix them. A helper process that died
(killed, out of memory) and any unexpected error (a full disk) are retried.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from airflow.sdk import Asset, BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

# Updated by every processing run that finishes its gate task; schedules the nr4dl_dataset export.
CLIPS_ASSET = Asset(name="nr4dl_clips", uri="file:///nr4dl/clips")


class _Nr4dlOperator(BaseOperator):
    template_fields: Sequence[str] = ("overrides", "settings_file")
    stage: ClassVar[str]

    def __init__(self, *, overrides: dict[str, Any] | str | None = None, settings_file: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.overrides = overrides
        self.settings_file = settings_file

    def _work(self, settings: Any) -> Any:
        """The work folder this task reads and writes."""
        raise NotImplementedError

    def _stage(self, settings: Any) -> Any:
        """The engine stage this task runs."""
        from nr4dl_tasks.pipeline import STAGES

        return STAGES[self.stage]

    def execute(self, context: Context) -> dict[str, Any]:
        from nr4dl_tasks import settings
        from nr4dl_tasks.errors import Nr4dlError, Transient

        overrides = self.overrides or {}
        if not isinstance(overrides, dict):
            raise AirflowFailException(f"overrides must be a JSON object of settings, got {overrides!r}")
        try:
            loaded = settings.load(self.settings_file or None, overrides)
            work = self._work(loaded)
            result = self._stage(loaded).run(work, loaded)
        except Transient:
            raise  # e.g. the Spleeter worker was killed, Azure stayed throttled: worth a retry
        except Nr4dlError as exc:
            raise AirflowFailException(str(exc)) from exc
        return {"work_dir": str(work.root), "source_id": work.source_id, "stage": result.stage,
                "skipped": result.skipped, "seconds": round(result.seconds, 2), **result.info}


class IngestOperator(_Nr4dlOperator):
    """Decode a media file into the WAV copies the pipeline needs; pushes the work folder as XCom."""

    template_fields: Sequence[str] = ("media", "overrides", "settings_file")
    stage = "ingest"
    ui_color = "#e8f1fb"

    def __init__(self, *, media: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.media = media

    def _work(self, settings: Any) -> Any:
        from nr4dl_tasks.ingest import open_work

        if not self.media:
            raise AirflowFailException("no media file given: set the 'media' param when triggering the run")
        return open_work(self.media, settings)


class _WorkDirOperator(_Nr4dlOperator):
    """A stage that reads and writes one work folder made by ingest."""

    template_fields: Sequence[str] = ("work_dir", "overrides", "settings_file")

    def __init__(self, *, work_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.work_dir = work_dir

    def _work(self, settings: Any) -> Any:
        from pathlib import Path

        from nr4dl_tasks.workdir import WorkDir

        if not self.work_dir or not Path(self.work_dir).is_dir():
            raise AirflowFailException(f"work folder {self.work_dir!r} does not exist; did the ingest task succeed?")
        return WorkDir(Path(self.work_dir))


class SeparateOperator(_WorkDirOperator):
    """Remove background music with Spleeter 2stems (vocals.wav, accompaniment.wav)."""

    stage = "separate"
    ui_color = "#f3e8fb"


class SegmentOperator(_WorkDirOperator):
    """Label speech (male/female), music, noise and silence with inaSpeechSegmenter (segments.csv)."""

    stage = "segment"
    ui_color = "#e8fbea"


class SliceOperator(_WorkDirOperator):
    """Cut the wanted segments into clips/*.wav and clips.jsonl."""

    stage = "slice"
    ui_color = "#fbf6e8"


class DenoiseOperator(_WorkDirOperator):
    """Notch persistent tones and denoise the clips (clips_denoised/*.wav, manifests/denoise.jsonl)."""

    stage = "denoise"
    ui_color = "#e8fbf8"


class SpeakersOperator(_WorkDirOperator):
    """Name each clip's voice, split clips holding two voices, keep the target speakers (manifests/speakers.jsonl)."""

    stage = "speakers"
    ui_color = "#fbe8ee"


class TranscribeOperator(_WorkDirOperator):
    """Transcribe every kept clip (manifests/transcribe.jsonl) with local Whisper or Azure AI Speech.

    :param azure_conn_id: Airflow connection holding the Azure Speech key (password) and region (extra
        ``{"region": "westeurope"}``); read only when ``transcribe.backend`` is ``azure``.
    """

    template_fields: Sequence[str] = ("work_dir", "overrides", "settings_file", "azure_conn_id")
    stage = "transcribe"
    ui_color = "#eef8e0"

    def __init__(self, *, azure_conn_id: str = "nr4dl_azure_speech", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.azure_conn_id = azure_conn_id

    def _stage(self, settings: Any) -> Any:
        from nr4dl_tasks.transcribe import TranscribeStage

        if settings.transcribe.backend != "azure":
            return super()._stage(settings)
        from nr4dl_azure_hook import AzureSpeechHook

        return TranscribeStage(azure=AzureSpeechHook(self.azure_conn_id).get_credentials())


class GateOperator(_WorkDirOperator):
    """Drop clips failing the quality gates, recording why, and give each a DNSMOS tier (manifests/gate.jsonl)."""

    stage = "gate"
    ui_color = "#f8f0e0"


class ExportOperator(BaseOperator):
    """Build the dataset (LJSpeech, audiofolder, NeMo) from every processed file; incremental and atomic.

    The dataset is written even when some work folders cannot be read; the task then fails afterwards, naming
    them, so they show up in the Airflow UI.
    """

    template_fields: Sequence[str] = ("overrides", "settings_file")
    ui_color = "#e0f0f8"

    def __init__(self, *, overrides: dict[str, Any] | str | None = None, settings_file: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.overrides = overrides
        self.settings_file = settings_file

    def execute(self, context: Context) -> dict[str, Any]:
        from dataclasses import asdict

        from nr4dl_tasks import settings
        from nr4dl_tasks.errors import Nr4dlError
        from nr4dl_tasks.export import export_dataset

        overrides = self.overrides or {}
        if not isinstance(overrides, dict):
            raise AirflowFailException(f"overrides must be a JSON object of settings, got {overrides!r}")
        try:
            report = export_dataset(settings.load(self.settings_file or None, overrides))
        except Nr4dlError as exc:
            raise AirflowFailException(str(exc)) from exc
        if report.skipped:
            raise AirflowFailException(
                f"dataset written to {report.dataset_dir} without {len(report.skipped)} unreadable work folder(s): "
                + "; ".join(f"{folder}: {reason}" for folder, reason in sorted(report.skipped.items())))
        return {key: str(value) if key == "dataset_dir" else value for key, value in asdict(report).items()}
