#!/usr/bin/env bash
# Build the image and run docker-compose.yaml end to end, for real, then tear it all down.
#
#   bash scripts/compose-check.sh            # build, run, check, tear down (images kept as a cache)
#   bash scripts/compose-check.sh --purge    # the same, then remove the images and every cached layer too
#
# Engine: Docker where a Docker engine answers, else podman (Debian's podman, buildah, debootstrap, ... are
# installed with apt when missing). Podman runs from this script's own folder, .compose-check/ (git-ignored):
# its configuration, image store, networks, socket and logs live there and nothing system-wide is changed.
# Images: the upstream ones where a registry answers, else stand-ins built here from Debian's packages
# (scripts/compose-check/standins.Containerfile on a debootstrap root file system); the output says which.
# NR4DL_PYTHON_IMAGE, NR4DL_POSTGRES_IMAGE, NR4DL_REDIS_IMAGE and NR4DL_IMAGE name them explicitly.
#
# What it proves (scripts/compose-check/verify.py does the checking):
#   - postgres, redis, airflow-init, api-server, scheduler, dag-processor, triggerer and two workers come up;
#   - a real recording from the shared media folder (mounted read-only, never copied into an image) is
#     triggered over the REST API, processed by nr4dl_process_file to gate, and exported;
#   - the worker container running that file's speakers task (its longest) is killed 10 s into it: the task
#     is retried, no temporary file is left, and every output is byte-identical to a bare-metal
#     `nr4dl process` of the same file (what the comparison sets aside, and why: verify.py's docstring);
#   - a broken file is on the failed-file list, in the compose PostgreSQL's nr4dl database.
# Timings and sizes go to .compose-check/report.txt (docs/scale-out.md quotes them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HERE=$ROOT/scripts/compose-check
STATE=$ROOT/.compose-check
PURGE=0
PODMAN_SERVICE=""
HEALTH_LOOP=""
COMPOSE_UP=""
case "${1:-}" in
  "") ;;
  --purge) PURGE=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
MEDIA_DIR=$(cd "${NR4DL_MEDIA:-$ROOT/../shared/media}" && pwd)
MEDIA_FILE=${NR4DL_CHECK_MEDIA:-diarization/sample.wav}
[ -f "$MEDIA_DIR/$MEDIA_FILE" ] || { echo "no media file $MEDIA_DIR/$MEDIA_FILE (set NR4DL_MEDIA)" >&2; exit 1; }
export COMPOSE_PROJECT_NAME=nr4dlcheck
NICE="nice -n 15"  # builds share the machine
mkdir -p "$STATE"
REPORT=$STATE/report.txt
: >"$REPORT"
log() { printf '\033[1m[compose-check]\033[0m %s\n' "$*" >&2; }
record() { log "$*"; echo "$*" >>"$REPORT"; }
now() { date +%s; }

# Whatever happens, leave nothing running: the stack, the healthcheck loop, podman's API service.
teardown() {
  local code=$?
  set +eu
  [ -z "$HEALTH_LOOP" ] || kill "$HEALTH_LOOP" 2>/dev/null
  if [ -n "$COMPOSE_UP" ]; then
    "${COMPOSE[@]}" logs --no-color >"$STATE/compose.log" 2>&1
    "${COMPOSE[@]}" down --volumes --remove-orphans >/dev/null 2>&1
  fi
  if ((PURGE)); then
    "$ENGINE" rmi -f "$NR4DL_IMAGE" >/dev/null 2>&1
    [ "$ENGINE" != podman ] || "$ENGINE" system reset -f >/dev/null 2>&1
  fi
  if [ -n "$PODMAN_SERVICE" ]; then
    kill "$PODMAN_SERVICE" 2>/dev/null
    wait "$PODMAN_SERVICE" 2>/dev/null
  fi
  # podman's overlay driver keeps its layer store mounted on itself; left mounted, the checkout cannot be deleted
  [ "$ENGINE" != podman ] || umount "$STATE/storage/overlay" 2>/dev/null || true
  ((PURGE)) && rm -rf "$STATE/storage" "$STATE/run"
  left=$("$ENGINE" ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" 2>/dev/null | wc -l)
  record "teardown: $left container(s) left, networks: $("$ENGINE" network ls -q --filter "name=$COMPOSE_PROJECT_NAME" 2>/dev/null | wc -l), volumes: $("$ENGINE" volume ls -q --filter "name=$COMPOSE_PROJECT_NAME" 2>/dev/null | wc -l)"
  exit "$code"
}
trap teardown EXIT

# --- Engine ------------------------------------------------------------------------------------
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=docker
  if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
else
  ENGINE=podman
  need=()
  # iptables: netavark sets up the stack's network with it (without it: "netavark: No such file or directory").
  for pkg in podman buildah debootstrap fuse-overlayfs slirp4netns catatonit runc netavark aardvark-dns iptables \
    docker-compose; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if ((${#need[@]})); then
    log "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # podman's own configuration, store and networks in this folder only (see the header). runc with
  # cgroupfs: this kernel refuses crun's resource limits; no systemd, so events go to a file.
  mkdir -p "$STATE/conf" "$STATE/run" "$STATE/networks"
  cat >"$STATE/conf/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "/usr/bin/catatonit"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/run/events.log"
tmp_dir = "$STATE/run/libpod"
[network]
network_backend = "netavark"
network_config_dir = "$STATE/networks"
EOF
  cat >"$STATE/conf/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run/storage"
EOF
  cat >"$STATE/conf/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
  export CONTAINERS_CONF=$STATE/conf/containers.conf CONTAINERS_STORAGE_CONF=$STATE/conf/storage.conf
  export CONTAINERS_REGISTRIES_CONF=$STATE/conf/registries.conf
  # docker-compose talks to podman's Docker-compatible API on a socket of our own.
  SOCKET=$STATE/run/podman.sock
  rm -f "$SOCKET"
  podman system service --time=0 "unix://$SOCKET" >"$STATE/run/service.log" 2>&1 &
  PODMAN_SERVICE=$!
  export DOCKER_HOST=unix://$SOCKET
  for _ in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.2; done
  COMPOSE=(docker-compose)
fi
record "engine: $ENGINE $($ENGINE --version | head -1); compose: $("${COMPOSE[@]}" version 2>/dev/null | head -1)"

# --- Images ------------------------------------------------------------------------------------
# pull IMAGE: whether a registry gave it (a closed network refuses at once or hangs: bounded either way).
pull() { timeout 90 "$ENGINE" pull -q "$1" >/dev/null 2>&1; }
standin() { # standin TARGET: build the stand-in image TARGET from Debian's packages; print its name
  local image=localhost/nr4dl-standin/$1:bookworm base=localhost/nr4dl-standin/debian:bookworm
  if ! "$ENGINE" image inspect "$base" >/dev/null 2>&1; then
    local started rootfs=$STATE/rootfs
    started=$(now)
    rm -rf "$rootfs"
    $NICE debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
      || { tail -20 "$STATE/debootstrap.log" >&2; exit 1; }
    # The host's own Debian sources (updates and security too), so packages match the bare-metal ones.
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      rm -f "$rootfs/etc/apt/sources.list"
      cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$ENGINE" import - "$base" >/dev/null
    rm -rf "$rootfs"
    record "stand-in base $base: debootstrap --variant=minbase bookworm in $(($(now) - started)) s"
  fi
  $NICE "$ENGINE" build -q --network host --target "$1" -t "$image" -f "$HERE/standins.Containerfile" "$HERE" \
    >"$STATE/standin-$1.log" 2>&1 || { tail -20 "$STATE/standin-$1.log" >&2; exit 1; }
  echo "$image"
}
REGISTRY=1
started=$(now)
if [ -z "${NR4DL_PYTHON_IMAGE:-}" ]; then
  if pull python:3.11-slim-bookworm; then NR4DL_PYTHON_IMAGE=python:3.11-slim-bookworm; else REGISTRY=0; fi
fi
: "${NR4DL_PYTHON_IMAGE:=$(standin python)}"
: "${NR4DL_POSTGRES_IMAGE:=$( ((REGISTRY)) && pull postgres:16 && echo postgres:16 || standin postgres)}"
: "${NR4DL_REDIS_IMAGE:=$( ((REGISTRY)) && pull redis:7.2-bookworm && echo redis:7.2-bookworm || standin redis)}"
((REGISTRY)) || record "no image registry answered: stand-ins built in $(($(now) - started)) s"
: "${NR4DL_IMAGE:=localhost/nr4dl:check}"
export NR4DL_PYTHON_IMAGE NR4DL_POSTGRES_IMAGE NR4DL_REDIS_IMAGE NR4DL_IMAGE
record "images: python=$NR4DL_PYTHON_IMAGE postgres=$NR4DL_POSTGRES_IMAGE redis=$NR4DL_REDIS_IMAGE"

# The build reaches packages the way this host does: podman hands it the host's pip configuration, local
# wheel folders and CA certificates (read-only, for the build only; none of it lands in the image). The
# torch CPU wheel comes from PyTorch's index where that answers, else from what the host's pip finds.
build_args=(--build-arg "PYTHON_IMAGE=$NR4DL_PYTHON_IMAGE")
if [ -z "${NR4DL_TORCH_INDEX_URL+set}" ]; then
  NR4DL_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
  curl -fsS -m 15 -o /dev/null "$NR4DL_TORCH_INDEX_URL/torch/" 2>/dev/null || NR4DL_TORCH_INDEX_URL=""
fi
build_args+=(--build-arg "TORCH_INDEX_URL=$NR4DL_TORCH_INDEX_URL")
record "torch CPU wheel from: ${NR4DL_TORCH_INDEX_URL:-the pip configuration handed to the build}"
if [ "$ENGINE" = podman ]; then
  mapfile -t host_pip < <(python3 "$HERE/host_pip.py" "$STATE/pip")
  build_args+=("${host_pip[@]}")
fi
started=$(now)
log "building $NR4DL_IMAGE (log: .compose-check/build.log)"
$NICE "$ENGINE" build --network host "${build_args[@]}" -t "$NR4DL_IMAGE" . >"$STATE/build.log" 2>&1 \
  || { tail -40 "$STATE/build.log" >&2; exit 1; }
record "image build: $(($(now) - started)) s"
record "image size: $("$ENGINE" image inspect --format '{{.Size}}' "$NR4DL_IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"

# --- Bare-metal reference (before the stack starts: the two cores are the cluster's afterwards) ----------
REF=$STATE/bare-metal
rm -rf "$REF"
mkdir -p "$REF"
started=$(now)
log "bare-metal reference: nr4dl process $MEDIA_FILE (one thread, as a one-core worker task)"
# The host's math-library variables (OPENBLAS_CORETYPE, OMP_*, ...) are not handed to the containers, so the
# reference runs without them too: a pinned OpenBLAS core type changes numpy's sums in the last bits, which
# changes Whisper's text and ina's music scores (seen on the development machine, OPENBLAS_CORETYPE=Haswell).
mapfile -t math_vars < <(compgen -e | grep -E '^(OPENBLAS|GOTO|OMP|MKL)_' || true)
unset_math=()
for name in "${math_vars[@]}"; do unset_math+=(-u "$name"); done
((${#math_vars[@]} == 0)) || record "bare-metal reference without the host's ${math_vars[*]}"
nr4dl=(env "${unset_math[@]}" PYTHONPATH="$ROOT" NR4DL__RESOURCES__THREADS=1 .venv/bin/python -m nr4dl_tasks.cli)
$NICE "${nr4dl[@]}" process "$MEDIA_DIR/$MEDIA_FILE" --set "paths.work_dir=$REF/work" >"$REF/process.log" 2>&1 \
  || { tail -20 "$REF/process.log" >&2; exit 1; }
$NICE "${nr4dl[@]}" export --set "paths.work_dir=$REF/work" --set "export.dataset_dir=$REF/dataset" \
  >"$REF/export.log" 2>&1 || { tail -20 "$REF/export.log" >&2; exit 1; }
record "bare-metal process + export: $(($(now) - started)) s"

# --- The stack ---------------------------------------------------------------------------------

export AIRFLOW__CORE__FERNET_KEY AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY
AIRFLOW__CORE__FERNET_KEY=$(python3 -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
AIRFLOW__API_AUTH__JWT_SECRET=$(openssl rand -hex 32)
AIRFLOW__API__SECRET_KEY=$(openssl rand -hex 32)
export NR4DL_MEDIA=$MEDIA_DIR NR4DL_API_PORT
NR4DL_API_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
# Two one-core workers on this two-core host: each sizes itself to its limits (one task, one thread).
export NR4DL_WORKER_CPUS=${NR4DL_WORKER_CPUS:-1} NR4DL_WORKER_MEMORY=${NR4DL_WORKER_MEMORY:-6g}
# A task whose worker died is failed and retried after 30 s without a heartbeat (5 min by default).
export AIRFLOW_HEARTBEAT_TIMEOUT=30

if [ "$ENGINE" = podman ]; then
  # No systemd here to run podman's healthchecks on their timers: run them from a loop instead.
  (while sleep 5; do
    for id in $(podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"); do
      podman healthcheck run "$id" >/dev/null 2>&1 || true
    done
  done) &
  HEALTH_LOOP=$!
fi
started=$(now)
COMPOSE_UP=1
log "starting the stack with two workers"
"${COMPOSE[@]}" up -d --no-build --scale airflow-worker=2 >"$STATE/up.log" 2>&1 \
  || { cat "$STATE/up.log" >&2; exit 1; }
export COMPOSE_CMD="${COMPOSE[*]}" ENGINE
python3 "$HERE/verify.py" wait-healthy --timeout 900
record "stack start (compose up to every service healthy and both workers registered): $(($(now) - started)) s"

# --- The checks --------------------------------------------------------------------------------
.venv/bin/python "$HERE/verify.py" run --media "/media/$MEDIA_FILE" --reference "$REF" --state "$STATE" \
  --port "$NR4DL_API_PORT" | tee -a "$REPORT"
record "compose check passed"
