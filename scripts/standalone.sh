#!/usr/bin/env bash
# Start, stop or query the embedded Airflow (airflow standalone: SQLite + LocalExecutor) in the background.
#   scripts/standalone.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/airflow-env.sh"
mkdir -p "$AIRFLOW_HOME"
PIDFILE=$AIRFLOW_HOME/standalone.pid
LOGFILE=$AIRFLOW_HOME/standalone.log
# Running: the recorded process is alive and is still airflow (a PID file can outlive a reboot).
running() { [ -f "$PIDFILE" ] && grep -qa airflow "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "Airflow is already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    # One password for the admin user, generated once; Airflow keeps an existing file.
    pw_file=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
    [ -s "$pw_file" ] || python3 -c 'import json, secrets; print(json.dumps({"admin": secrets.token_urlsafe(12)}))' > "$pw_file"
    bash "$(dirname "$0")/airflow-init.sh"
    echo "starting airflow standalone (log: $LOGFILE)"
    # setsid: its own process group, so stop can end the scheduler, api-server and workers together.
    setsid nohup airflow standalone >"$LOGFILE" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    ;;
  stop)
    if running; then
      pid=$(cat "$PIDFILE")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "Airflow stopped"
    else
      echo "Airflow is not running"
    fi
    rm -f "$PIDFILE"
    ;;
  status)
    if running; then echo "Airflow is running (pid $(cat "$PIDFILE")) at http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT"; else echo "Airflow is not running"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
