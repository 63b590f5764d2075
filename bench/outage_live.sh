#!/usr/bin/env bash
# A quiet project through a database outage, live. Seismo runs on its embedded PostgreSQL
# (no database configured) and is restarted, so its project's key has sent nothing since
# the process started. Then the database is stopped and the Python `sentry_sdk` sends one
# exception: the key was cached at start, so the event is acknowledged into the spool
# instead of refused (a Sentry SDK drops an event answered 503). Once the database is
# back, the event is stored.
#
#   bench/outage_live.sh                               # builds the release binary first
#   SKIP_BUILD=1 SEISMO_BIN=/path/seismo bench/outage_live.sh
#
# Needs: root (the embedded cluster runs as user `postgres`, and is stopped as it), the
# PostgreSQL server binaries, curl, python3 with sentry-sdk (installed with pip when
# missing). Uses a fresh data folder and port 18420 (PORT=…).
set -euo pipefail
cd "$(dirname "$0")/.."

SEISMO_BIN=${SEISMO_BIN:-./target/release/seismo}
PORT=${PORT:-18420}
[[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --bin seismo
python3 -c 'import sentry_sdk' 2>/dev/null || python3 -m pip install -q sentry-sdk

DATA=$(mktemp -d -t seismo-outage.XXXXXX)
chmod 755 "$DATA"
PG_DIR="$DATA/pg"
PG_CTL=$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)
SEISMO_PID=""

log() { printf '== %s\n' "$*"; }
pg() { su postgres -s /bin/sh -c "$PG_CTL -D '$PG_DIR' $*" >/dev/null; }

stop_seismo() {
    [[ -n "$SEISMO_PID" ]] || return 0
    kill -TERM "$SEISMO_PID" 2>/dev/null || true
    wait "$SEISMO_PID" 2>/dev/null || true
    SEISMO_PID=""
}

cleanup() {
    local status=$?
    stop_seismo
    [[ -f "$PG_DIR/postmaster.pid" ]] && pg "stop -m fast" || true
    rm -rf "$DATA"
    exit "$status"
}
trap cleanup EXIT

start_seismo() {
    SEISMO_DATA_DIR="$DATA" SEISMO_LISTEN="127.0.0.1:$PORT" SEISMO_SPOOL_AFTER_MS=1000 \
        "$SEISMO_BIN" serve >>"$DATA/seismo.log" 2>&1 &
    SEISMO_PID=$!
    for _ in $(seq 1 120); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
        sleep 0.5
    done
    cat "$DATA/seismo.log" >&2
    echo "seismo did not start" >&2
    exit 1
}

readyz() { curl -s "http://127.0.0.1:$PORT/readyz"; }

log "first start: the embedded database and the first project"
start_seismo
DSN=$(awk '/DSN:/ { print $2; exit }' "$DATA/seismo.log")
[[ -n "$DSN" ]] || { echo "no DSN in the log" >&2; exit 1; }
log "DSN $DSN"
stop_seismo

log "second start: the key has sent nothing since"
start_seismo
PORT_PG=$(sed -n 4p "$PG_DIR/postmaster.pid")
log "stopping the database (port $PORT_PG)"
pg "stop -m fast"
sleep 1

log "the Python SDK sends one exception"
EVENT_ID=$(SENTRY_DSN="$DSN" python3 - <<'EOF'
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], default_integrations=False)
try:
    {}["sku"]
except KeyError:
    event_id = sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
print(event_id)
EOF
)
log "event $EVENT_ID sent; /readyz: $(readyz)"
spooled=$(readyz | python3 -c 'import json, sys; print(json.load(sys.stdin).get("spool", {}).get("records", 0))')

log "starting the database again, on the port Seismo knows"
pg "start -w -l '$PG_DIR/restart.log' \
    -o \"-c listen_addresses=127.0.0.1 -p $PORT_PG -c unix_socket_directories=''\""
stored=0
for _ in $(seq 1 120); do
    stored=$(psql -h 127.0.0.1 -p "$PORT_PG" -U postgres -d seismo -tAc \
        "select count(*) from events where event_id = '$EVENT_ID'" 2>/dev/null || echo 0)
    [[ "$stored" == 1 ]] && break
    sleep 0.5
done
warnings=$(grep -c ' WARN ' "$DATA/seismo.log" || true)
echo "-- result"
echo "spooled_during_outage $spooled"
echo "stored_after_outage $stored"
echo "seismo_log_warnings $warnings"
[[ "$stored" == 1 && "$spooled" -ge 1 ]]
