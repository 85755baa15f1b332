"""nr4dl_process_file: one media file through ingest -> separate -> segment -> slice -> denoise -> speakers ->
transcribe -> gate.

Trigger it from the Airflow UI ("Trigger DAG" shows a form) or the CLI:

    airflow dags trigger nr4dl_process_file --conf '{"media": "/data/show.mp3",
        "overrides": {"slice.min_duration": 0.3}}'

Each run handles one file; runs for different files proceed in parallel. The
DAG file only wires operators together: nothing is imported or computed at
parse time beyond the operator classes. The gate task updates the asset
`nr4dl_clips`, which schedules the `nr4dl_dataset` export.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param
from nr4dl_operators import (CLIPS_ASSET, DenoiseOperator, GateOperator, IngestOperator, SegmentOperator,
                             SeparateOperator, SliceOperator, SpeakersOperator, TranscribeOperator, clear_failure,
                             record_failure)

WORK_DIR = "{{ ti.xcom_pull(task_ids='ingest')['work_dir'] }}"
# Separation, segmentation, denoising, speaker embedding and transcription each hold a model (up to ~2.7 GiB), so they
# share a pool sized from resources.heavy_slots (scripts/airflow-init.sh) instead of running as many as parallelism
# allows; each task uses its share of the worker's cores (resources.threads).
HEAVY_POOL = "nr4dl_heavy"
OVERRIDES = "{{ params.overrides }}"

with DAG(
    dag_id="nr4dl_process_file",
    description="Process one media file into speech clips",
    doc_md=__doc__,
    schedule=None,
    catchup=False,
    max_active_runs=8,
    render_template_as_native_obj=True,
    # A task failing for good puts the file on the failed-file list (nr4dl_failed_files, `nr4dl failures`).
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "on_failure_callback": record_failure},
    tags=["nr4dl"],
    params={
        "media": Param(
            "", type="string", minLength=1, title="Media file",
            description="Path of the audio or video file to process, as seen by the Airflow workers.",
        ),
        "overrides": Param(
            {}, type="object", title="Settings overrides",
            description='Dotted settings keys from settings.yaml, e.g. {"slice.min_duration": 0.3, '
                        '"separate.enabled": false}.',
        ),
    },
) as dag:
    ingest = IngestOperator(task_id="ingest", media="{{ params.media }}", overrides=OVERRIDES)
    separate = SeparateOperator(task_id="separate", work_dir=WORK_DIR, overrides=OVERRIDES, pool=HEAVY_POOL)
    segment = SegmentOperator(task_id="segment", work_dir=WORK_DIR, overrides=OVERRIDES, pool=HEAVY_POOL)
    slice_ = SliceOperator(task_id="slice", work_dir=WORK_DIR, overrides=OVERRIDES)
    denoise = DenoiseOperator(task_id="denoise", work_dir=WORK_DIR, overrides=OVERRIDES, pool=HEAVY_POOL)
    speakers = SpeakersOperator(task_id="speakers", work_dir=WORK_DIR, overrides=OVERRIDES, pool=HEAVY_POOL)
    transcribe = TranscribeOperator(task_id="transcribe", work_dir=WORK_DIR, overrides=OVERRIDES, pool=HEAVY_POOL)
    gate = GateOperator(task_id="gate", work_dir=WORK_DIR, overrides=OVERRIDES, outlets=[CLIPS_ASSET],
                        on_success_callback=clear_failure)

    ingest >> separate >> segment >> slice_ >> denoise >> speakers >> transcribe >> gate
