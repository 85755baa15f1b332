#!/usr/bin/env bash
# README command 2: set up (quick when already done) and run the whole test suite on real audio,
# real models, real ffmpeg and a real Airflow. Extra arguments go to pytest (e.g. -k slicing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-services  # the scale-out test starts its own PostgreSQL and Redis
export TF_CPP_MIN_LOG_LEVEL=2
# Code checks first (seconds): lint, formatting, types of the engine and the plugins.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -p no:cacheprovider "$@" tests
