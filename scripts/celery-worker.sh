#!/usr/bin/env bash
# Start a Celery worker for nr4dl (scale-out): it takes as many tasks at once as this machine's cores and
# memory allow (resources.tasks_per_worker; `nr4dl resources` shows it), and each task then uses its share
# of the cores. Extra arguments go to `airflow celery worker` (e.g. --celery-hostname worker2@%h).
set -euo pipefail
source "$(dirname "$0")/airflow-env.sh"
concurrency=$(nr4dl resources tasks_per_worker)
echo "Celery worker: $concurrency task(s) at once, $(nr4dl resources task_threads) CPU thread(s) each"
exec airflow celery worker --concurrency "$concurrency" "$@"
