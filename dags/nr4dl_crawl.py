"""nr4dl_crawl: the nightly crawl. Finds new episodes, downloads them, and starts one processing run per file.

Scheduled by `crawl.schedule` (cron, in the settings file; no catch-up of missed nights). Trigger it from
the UI to crawl now, optionally one source and a limit. Each new file becomes its own
`nr4dl_process_file` run, named `<source>__<file>__<hash of its URL>`, so a failed file is a red run of its
own.
Items already downloaded or processed are never fetched again (the crawl catalog); failed downloads are
retried by the next crawl.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param

from nr4dl_operators import CrawlOperator, MarkTriggeredOperator, crawl_schedule

OVERRIDES = "{{ params.overrides }}"

with DAG(
    dag_id="nr4dl_crawl",
    description="Discover and download new media, then process each new file",
    doc_md=__doc__,
    schedule=crawl_schedule(),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["nr4dl"],
    params={
        "source": Param(
            "",
            type="string",
            title="Source",
            description="Name of one source from crawl.sources; empty crawls them all.",
        ),
        "max_items": Param(
            0,
            type="integer",
            minimum=0,
            title="Most new items",
            description="Download at most this many new items (0: crawl.max_items_per_run).",
        ),
        "overrides": Param(
            {},
            type="object",
            title="Settings overrides",
            description="Dotted settings keys for the crawl and the runs it starts.",
        ),
    },
) as dag:
    crawl = CrawlOperator(task_id="crawl", max_items="{{ params.max_items }}", overrides=OVERRIDES)
    # A run id is the same for an item on every crawl: an item handed over twice (its marking failed) is skipped.
    process = TriggerDagRunOperator.partial(
        task_id="process",
        trigger_dag_id="nr4dl_process_file",
        retries=2,
        skip_when_already_exists=True,
    ).expand_kwargs(crawl.output)
    handed = MarkTriggeredOperator(
        task_id="mark_handed_over", requests=crawl.output, overrides=OVERRIDES, trigger_rule="none_failed"
    )  # runs skipped as already there count as handed
    process >> handed
