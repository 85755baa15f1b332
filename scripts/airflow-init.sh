#!/usr/bin/env bash
# Prepare Airflow's database for nr4dl: migrate it, then size the nr4dl_heavy pool from the settings
# (resources.heavy_slots; `nr4dl resources` shows the figures). Run before the scheduler starts, and again
# after changing resources.*. Used by scripts/standalone.sh, docker-compose.yaml and the tests.
set -euo pipefail
source "$(dirname "$0")/airflow-env.sh"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || {
  cat "$AIRFLOW_HOME/db-migrate.log" >&2; echo "airflow db migrate failed (log above)" >&2; exit 1; }
slots=$(nr4dl resources heavy_slots)
# The pool must exist before a run is triggered, or its model-holding tasks wait forever.
airflow pools set nr4dl_heavy "$slots" "nr4dl model-holding tasks (resources.heavy_slots)" >/dev/null
echo "Airflow database ready; nr4dl_heavy pool: $slots slot(s)"
