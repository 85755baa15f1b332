"""Airflow operators for the nr4dl stages: thin wrappers over `nr4dl_tasks`.

Following Airflow's provider conventions, an operator only stores its templated
arguments; `execute` loads the settings (file + the run's overrides) and hands
off to the engine. Engine modules are imported inside `execute`, so parsing a
DAG never loads numpy, TensorFlow or a model (a process that has run TensorFlow
hangs when the scheduler forks it).

Errors the engine reports (unreadable media, bad settings, missing models, a
separation that failed on this input, a full disk) fail the task at once with
`AirflowFailException` and the engine's one-line message, secrets hidden:
retrying cannot fix them. Transient errors (a helper process that died, Azure
still throttled after its own retries) and any unexpected error are retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from nr4dl_tasks.core.redact import redact  # plain `re`: nothing heavy at DAG parse time

if TYPE_CHECKING:
    from nr4dl_tasks.core.settings import Settings
    from nr4dl_tasks.core.stage import Stage
    from nr4dl_tasks.core.workdir import WorkDir

# Updated by every processing run that finishes its gate task; schedules the nr4dl_dataset export.
CLIPS_ASSET = Asset(name="nr4dl_clips", uri="file:///nr4dl/clips")


class _SettingsOperator(BaseOperator):
    """An operator that reads the settings file (`settings_file`, else the default) with the run's overrides."""

    template_fields: Sequence[str] = (*BaseOperator.template_fields, "overrides", "settings_file")

    def __init__(
        self, *, overrides: dict[str, Any] | str | None = None, settings_file: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.overrides = overrides
        self.settings_file = settings_file

    def load_settings(self) -> Settings:
        """The validated settings; a bad override or setting fails the task at once (a retry cannot fix it)."""
        from nr4dl_tasks.core import settings
        from nr4dl_tasks.core.errors import SettingsError

        overrides = self.overrides or {}
        if not isinstance(overrides, dict):
            raise AirflowFailException(redact(f"overrides must be a JSON object of settings, got {overrides!r}"))
        try:
            return settings.load(self.settings_file or None, overrides)
        except SettingsError as exc:
            raise AirflowFailException(redact(str(exc))) from exc


class StageOperator(_SettingsOperator):
    """Run one engine stage (`stage`, a name of ``nr4dl_tasks.pipeline.STAGES``) in the work folder that the
    ingest task made; skipped in the engine when already done for these inputs and settings.

    :param stage: the stage's name.
    :param work_dir: the work folder (templated: the ingest task's XCom).
    """

    template_fields: Sequence[str] = (*_SettingsOperator.template_fields, "work_dir")

    def __init__(self, *, stage: str, work_dir: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.work_dir = work_dir

    def work(self, settings: Settings) -> WorkDir:
        """The work folder this task reads and writes."""
        from nr4dl_tasks.core.workdir import WorkDir

        if not self.work_dir or not Path(self.work_dir).is_dir():
            raise AirflowFailException(f"work folder {self.work_dir!r} does not exist; did the ingest task succeed?")
        return WorkDir(Path(self.work_dir))

    def engine_stage(self, settings: Settings) -> Stage | None:
        """A configured stage object, or None for the pipeline's own instance."""
        return None

    def execute(self, context: Context) -> dict[str, Any]:
        from nr4dl_tasks import pipeline
        from nr4dl_tasks.core import resources
        from nr4dl_tasks.core.errors import Nr4dlError, Transient

        # The worker runs other tasks beside this one: take a share of its cores, not all of them.
        loaded = resources.shared_worker(self.load_settings())
        self.log.info("%d CPU thread(s) for this task (resources.threads)", loaded.resources.threads)
        try:
            work = self.work(loaded)
            result = pipeline.run_stage(self.stage, work, loaded, self.engine_stage(loaded))
        except Transient:
            raise  # e.g. the Spleeter worker was killed, Azure stayed throttled: worth a retry
        except Nr4dlError as exc:
            raise AirflowFailException(redact(str(exc))) from exc
        return {
            "work_dir": str(work.root),
            "source_id": work.source_id,
            "stage": result.stage,
            "skipped": result.skipped,
            "seconds": round(result.seconds, 2),
            **result.info,
        }


class IngestOperator(StageOperator):
    """Decode a media file into the WAV copies the pipeline needs; pushes the work folder as XCom.

    :param media: the file to process (templated: the run's ``media`` param).
    """

    template_fields: Sequence[str] = (*_SettingsOperator.template_fields, "media")
    ui_color = "#e8f1fb"

    def __init__(self, *, media: str, **kwargs: Any) -> None:
        super().__init__(stage="ingest", **kwargs)
        self.media = media

    def work(self, settings: Settings) -> WorkDir:
        from nr4dl_tasks.pipeline import open_work

        if not self.media:
            raise AirflowFailException("no media file given: set the 'media' param when triggering the run")
        return open_work(self.media, settings)


class TranscribeOperator(StageOperator):
    """Transcribe every kept clip (manifests/transcribe.jsonl) with local Whisper or Azure AI Speech.

    :param azure_conn_id: Airflow connection holding the Azure Speech key (password) and region (extra
        ``{"region": "westeurope"}``); read only when ``transcribe.backend`` is ``azure``.
    """

    template_fields: Sequence[str] = (*StageOperator.template_fields, "azure_conn_id")

    def __init__(self, *, azure_conn_id: str = "nr4dl_azure_speech", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.azure_conn_id = azure_conn_id

    def engine_stage(self, settings: Settings) -> Stage | None:
        if settings.transcribe.backend != "azure":
            return None
        from nr4dl_azure_hook import AzureSpeechHook
        from nr4dl_tasks.stages.transcribe import TranscribeStage

        return TranscribeStage(azure=AzureSpeechHook(self.azure_conn_id).get_credentials())


class ExportOperator(_SettingsOperator):
    """Build the dataset (LJSpeech, audiofolder, NeMo) from every processed file; incremental and atomic.

    The dataset is written even when some work folders cannot be read; the task then fails afterwards, naming
    them, so they show up in the Airflow UI. With ``report`` (the default) the static dataset report
    ``report.html`` is rewritten after each export.
    """

    ui_color = "#e0f0f8"

    def __init__(self, *, report: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report = report  # also refresh the static dataset report (report.html)

    def execute(self, context: Context) -> dict[str, Any]:
        from dataclasses import asdict

        from nr4dl_tasks.core.errors import Nr4dlError
        from nr4dl_tasks.export.build import export_dataset

        loaded = self.load_settings()
        try:
            report = export_dataset(loaded)
        except Nr4dlError as exc:
            raise AirflowFailException(redact(str(exc))) from exc
        self._refresh_report(loaded)
        if report.skipped:
            raise AirflowFailException(
                f"dataset written to {report.dataset_dir} without {len(report.skipped)} unreadable work folder(s): "
                + "; ".join(f"{folder}: {reason}" for folder, reason in sorted(report.skipped.items()))
            )
        return {key: str(value) if key == "dataset_dir" else value for key, value in asdict(report).items()}

    def _refresh_report(self, loaded: Any) -> None:
        """Rewrite <dataset_dir>/report.html after the export; a report that cannot be written never fails the
        export (the dataset is what matters), it is logged."""
        if not self.report:
            return
        from nr4dl_tasks.report.html import write_static

        try:
            self.log.info("dataset report: %s", write_static(loaded))
        except Exception:
            self.log.exception("the dataset report could not be written")


def crawl_schedule() -> str | None:
    """The crawl's cron from the settings file, read when the DAG is parsed (YAML only, no engine imports).

    A broken settings file is this DAG's import error (shown in the UI), never a crawl that silently stops.
    """
    from nr4dl_tasks.core import settings
    from nr4dl_tasks.core.errors import SettingsError

    try:
        return settings.load().crawl.schedule
    except SettingsError as exc:  # shown as the DAG's import error in the UI, instead of a crawl that never runs
        raise ValueError(f"nr4dl_crawl cannot read its schedule: {exc}") from None


def crawl_access(conn_id: str) -> Any:
    """A gated source's cookies and headers (the engine's `Access`) from the extra of Airflow connection
    `conn_id`, e.g. `{"headers": {"Authorization": "..."}, "cookies": {"session": "..."}}`; every value is masked
    in Airflow's logs before the crawl can log anything."""
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    from nr4dl_tasks.crawl.web import access_from_extra

    conn = BaseHook.get_connection(conn_id)
    access = access_from_extra(conn_id, conn.extra_dejson)
    for value in access.secrets():
        mask_secret(value)
    return access


class CrawlOperator(_SettingsOperator):
    """Discover and download new media from the crawl sources; returns one trigger request per new file.

    The list it returns is what ``TriggerDagRunOperator.partial(...).expand_kwargs`` takes: a readable
    ``trigger_run_id`` and the ``conf`` of one ``nr4dl_process_file`` run. Sources and links that failed are
    logged with their cause and listed in the XCom ``report``; the task still succeeds, so the files that did
    arrive are processed, and the catalog retries the failed links on the next crawl.

    :param source: crawl only the source of this name; None takes the run's ``source`` param (read as given: a
        template rendered as a native object would turn a source named "2024" into a number), empty: all.
    :param max_items: download at most this many new items (0: ``crawl.max_items_per_run``).
    """

    template_fields: Sequence[str] = ("source", "max_items", "overrides", "settings_file")
    ui_color = "#f0e8fb"

    def __init__(self, *, source: str | None = None, max_items: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source, self.max_items = source, max_items

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from nr4dl_tasks.core.errors import Nr4dlError
        from nr4dl_tasks.crawl.crawler import crawl, run_id_for

        loaded = self.load_settings()
        source = self.source if self.source is not None else context["params"].get("source")
        try:
            report = crawl(loaded, str(source or "") or None, int(self.max_items or 0) or None, crawl_access)
        except Nr4dlError as exc:
            raise AirflowFailException(redact(str(exc))) from exc
        if not report.seen and (report.failed or report.refused):  # nothing crawled at all: say so in red
            causes = [f"{subject}: {cause}" for subject, cause in (report.failed | report.refused).items()]
            raise AirflowFailException(redact("no source could be crawled: " + "; ".join(causes)))
        requests = [
            {
                "trigger_run_id": run_id_for(new),
                "conf": {"media": new.path, "overrides": self.overrides or {}, "source_url": new.url},
            }
            for new in report.new
        ]
        context["ti"].xcom_push(
            key="report",
            value={
                "new": len(report.new),
                "seen": report.seen,
                "duplicates": report.duplicates,
                "failed": report.failed,
                "refused": report.refused,
                "warnings": report.warnings,
            },
        )
        return requests


class MarkTriggeredOperator(_SettingsOperator):
    """Record in the crawl catalog that the new files were handed to processing, so no crawl hands them again."""

    template_fields: Sequence[str] = ("requests", "overrides", "settings_file")

    def __init__(self, *, requests: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests = requests

    def execute(self, context: Context) -> int:
        from nr4dl_tasks.crawl.catalog import Catalog

        urls = [r["conf"]["source_url"] for r in self.requests or []]
        Catalog(self.load_settings()).mark_triggered(urls)
        self.log.info("handed %d new file(s) to nr4dl_process_file", len(urls))
        return len(urls)


def _run_settings(context: Context) -> Any:
    """The settings a processing run used (its overrides, or the file alone when they are invalid)."""
    from nr4dl_tasks.core import settings
    from nr4dl_tasks.core.errors import SettingsError

    overrides = context["params"].get("overrides") or {}
    try:
        return settings.load(None, overrides if isinstance(overrides, dict) else {})
    except SettingsError:
        return settings.load()


def record_failure(context: Context) -> None:
    """``on_failure_callback`` of the processing tasks: the file goes on the failed-file list with its stage and
    the error's first line (called once retries are spent). A callback must never fail, so it only logs."""
    from nr4dl_tasks.state.failures import FailureLog

    ti = context["ti"]
    media = str(context["params"].get("media") or "")
    try:
        FailureLog(_run_settings(context)).record(
            media, ti.task_id, context.get("exception") or "failed", context["run_id"]
        )
    except Exception:  # the task's own failure is what the user must see
        # the runtime task instance has a logger; its protocol does not declare it
        ti.log.exception("could not record the failure of %s on the failed-file list", media)  # type: ignore[attr-defined]


def clear_failure(context: Context) -> None:
    """``on_success_callback`` of the run's last task: the file's latest run succeeded, off the list it goes."""
    from nr4dl_tasks.state.failures import FailureLog

    media = str(context["params"].get("media") or "")
    try:
        FailureLog(_run_settings(context)).clear(media)
    except Exception:  # never fail a run that succeeded
        context["ti"].log.exception("could not take %s off the failed-file list", media)  # type: ignore[attr-defined]


class FailedFilesOperator(_SettingsOperator):
    """Lists the files whose latest processing run failed: stage, first line of the error, run id, time."""

    ui_color = "#fbe0e0"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from nr4dl_tasks.state.failures import FailureLog

        failures = FailureLog(self.load_settings()).failures()
        for f in failures:
            self.log.info(
                "%s  %s failed at %s: %s  (run %s)",
                f.failed_at.isoformat(timespec="seconds"),
                f.media,
                f.stage,
                f.error,
                f.run_id,
            )
        self.log.info("%d file(s) whose latest run failed", len(failures))
        return [
            {
                "media": f.media,
                "stage": f.stage,
                "error": f.error,
                "run_id": f.run_id,
                "failed_at": f.failed_at.isoformat(),
            }
            for f in failures
        ]
