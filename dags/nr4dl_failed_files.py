"""nr4dl_failed_files: the files whose latest processing run failed, with the stage and the error's first line.

Every task of `nr4dl_process_file` records its final failure on this list, and a run whose last task
succeeds takes its file off it. Trigger this DAG to see the list in the task log and its XCom (it also
runs daily); the same list is `nr4dl failures` on the command line. Rerun a listed file by triggering
`nr4dl_process_file` with its path: finished stages are skipped.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from nr4dl_operators import FailedFilesOperator

with DAG(
    dag_id="nr4dl_failed_files",
    description="List the files whose latest processing run failed",
    doc_md=__doc__,
    schedule="@daily",
    catchup=False,
    render_template_as_native_obj=True,
    tags=["nr4dl"],
    params={"overrides": Param({}, type="object", title="Settings overrides")},
) as dag:
    FailedFilesOperator(task_id="list", overrides="{{ params.overrides }}")
