"""nr4dl_dataset: export every processed file into a training-ready dataset.

Runs whenever a `nr4dl_process_file` run finishes its gate task (the asset
`nr4dl_clips`), and on demand from the UI. Each run exports everything
processed so far: files already in the dataset are not copied again, and an
unchanged dataset is left as it is. Layouts, splits and tiers are the
`export:` settings, overridable per run. After each export the dataset report
(`<dataset_dir>/report.html`, also the "nr4dl dataset" page) is refreshed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from nr4dl_operators import CLIPS_ASSET, ExportOperator

with DAG(
    dag_id="nr4dl_dataset",
    description="Export all processed clips as LJSpeech, audiofolder and NeMo datasets",
    doc_md=__doc__,
    schedule=[CLIPS_ASSET],
    catchup=False,
    max_active_runs=1,  # exports of one dataset folder take turns (the export also holds a lock)
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["nr4dl"],
    params={
        "overrides": Param(
            {},
            type="object",
            title="Settings overrides",
            description='Dotted settings keys, e.g. {"export.split_by": "speaker", "export.tier_subsets": true}.',
        ),
    },
) as dag:
    ExportOperator(task_id="export", overrides="{{ params.overrides }}", report=True)
