#!/usr/bin/env bash
# README command 1: set everything up, start the embedded Airflow and process media through the DAG.
#   scripts/up.sh [MEDIA...]     (default: the demo recordings in ../shared/media, else a spoken demo file)
# Airflow keeps running afterwards so you can look at the runs; scripts/standalone.sh stop ends it.
set -euo pipefail
media=()
for path in "$@"; do media+=("$(realpath -- "$path")"); done  # before the cd below
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/airflow-env.sh

if ((${#media[@]} == 0)); then
  if shared=$(cd "$NR4DL_ROOT/../shared/media" 2>/dev/null && pwd); then
    media=("$shared/segmentation/musanmix.mp3" "$shared/music/audio_example.mp3" "$shared/segmentation/lamartine.wav")
  else
    mkdir -p data/demo
    [ -s data/demo/demo.wav ] || espeak-ng -w data/demo/demo.wav \
      "This is the nr4dl demo. It turns long recordings into clean speech clips for training speech models."
    media=("$NR4DL_ROOT/data/demo/demo.wav")
  fi
fi

bash scripts/standalone.sh start
status=0
python3 scripts/run_dag.py "${media[@]}" || status=$?
cat <<MSG

Airflow UI: http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT  login: admin  password: $(python3 -c "import json;print(json.load(open('$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated'))['admin'])")
Outputs:    $NR4DL_ROOT/data/work/<source_id>/{segments.csv,clips/,clips_denoised/,clips.jsonl}
Dataset:    $NR4DL_ROOT/data/dataset/all/{ljspeech,audiofolder,nemo}/ (export.json: counts, hours)
Report:     $NR4DL_ROOT/data/dataset/report.html (offline copy of the dataset page)
Stop:       scripts/standalone.sh stop

Dataset page (funnel, timelines, players): http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT/plugin/nr4dl-dataset
MSG
exit $status
