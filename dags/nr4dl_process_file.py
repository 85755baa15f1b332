"""nr4dl_process_file: one media file through every stage of the pipeline, one task per stage, in the order of
`nr4dl_tasks.pipeline.STAGES` (ingest, then separation, segmentation, slicing, denoising, speakers, transcription,
and the quality gate).

Trigger it from the Airflow UI ("Trigger DAG" shows a form) or the CLI:

    airflow dags trigger nr4dl_process_file --conf '{"media": "/data/show.mp3",
        "overrides": {"slice.min_duration": 0.3}}'

Each run handles one file; runs for different files proceed in parallel. The
DAG file only wires operators together: nothing is imported or computed at
parse time beyond the operator classes and the stage order (no stage module). The gate task updates the asset
`nr4dl_clips`, which schedules the `nr4dl_dataset` export.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, chain

from nr4dl_operators import (
    CLIPS_ASSET,
    IngestOperator,
    StageOperator,
    TranscribeOperator,
    clear_failure,
    record_failure,
)
from nr4dl_tasks.pipeline import STAGES

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
            "",
            type="string",
            minLength=1,
            title="Media file",
            description="Path of the audio or video file to process, as seen by the Airflow workers.",
        ),
        "overrides": Param(
            {},
            type="object",
            title="Settings overrides",
            description='Dotted settings keys from settings.yaml, e.g. {"slice.min_duration": 0.3, '
            '"separate.mode": "off"}.',
        ),
    },
) as dag:
    ingest, *stages = STAGES
    tasks = [IngestOperator(task_id=ingest.name, media="{{ params.media }}", overrides=OVERRIDES)]
    for spec in stages:
        last = spec == STAGES[-1]  # its success schedules the export and takes the file off the failed list
        operator = TranscribeOperator if spec.name == "transcribe" else StageOperator
        tasks.append(
            operator(
                task_id=spec.name,
                stage=spec.name,
                work_dir=WORK_DIR,
                overrides=OVERRIDES,
                **({"pool": HEAVY_POOL} if spec.heavy else {}),
                **({"outlets": [CLIPS_ASSET], "on_success_callback": clear_failure} if last else {}),
            )
        )
    chain(*tasks)
