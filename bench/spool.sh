#!/usr/bin/env bash
# The spool's cost and speed, on a throwaway PostgreSQL of its own (it is stopped on
# purpose):
#   1. what having a spool costs while the database is healthy: ingest throughput with the
#      spool on against off (SEISMO_SPOOL_DIR=off), alternating ROUNDS times in one run;
#   2. ingest throughput with the database stopped (every batch appended to the spool and
#      fsync'd) against direct writes;
#   3. the time the spool takes to drain once the database is back, and a check that the
#      stored rows equal the acknowledged events.
# Everything it creates is removed on exit.
#
# Environment (all optional): DURATION=15 (seconds per run), CONCURRENCY=16, ROUNDS=2,
# PORT=18392, SKIP_BUILD=0, SEISMO_BIN, LOADGEN_BIN (see bench/lib.sh).
set -euo pipefail

DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-16}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18392}
SKIP_BUILD=${SKIP_BUILD:-0}

PG_DIR=$(mktemp -d -t seismo-spool-pg.XXXXXX)
chmod 755 "$PG_DIR"
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG_BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PGPORT PGHOST=127.0.0.1 PGUSER=postgres
if [[ $(id -u) == 0 ]]; then chown postgres "$PG_DIR"; fi
pg() {
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/data/postgres.log" -w -t 60 \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" "$@" >/dev/null
}
as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
pg start

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
spool_cleanup() {
    local status=$?
    (cleanup) || true
    pg stop -m immediate 2>/dev/null || true
    rm -rf "$PG_DIR"
    exit "$status"
}
trap spool_cleanup EXIT

run() {
    local name=$1 out="$WORK/loadgen-$1.txt"
    measure_loadgen "$out" --dsn "$DSN" --concurrency "$CONCURRENCY" --duration "$DURATION" --groups 50
    echo "$name accepted_per_s $(field "$out" accepted_per_s) ack_p99_ms $(field "$out" ack_p99_ms) \
non_2xx $(($(field "$out" status_429) + $(field "$out" status_503) + $(field "$out" status_other) + $(field "$out" errors)))"
    ACCEPTED=$((ACCEPTED + $(field "$out" accepted)))
    RATE[$name]=$(field "$out" accepted_per_s)
}

# Stops the running Seismo and starts it again with the spool directory given ("off", or
# empty for the default under the data directory).
restart_with_spool() {
    kill -TERM "$SEISMO_PID"
    wait "$SEISMO_PID" 2>/dev/null || true
    if [[ -n "$1" ]]; then export SEISMO_SPOOL_DIR=$1; else unset SEISMO_SPOOL_DIR; fi
    start_seismo
}

declare -A RATE
declare -a ON OFF
ACCEPTED=0
build
start_seismo
create_project
for round in $(seq 1 "$ROUNDS"); do
    run "spool_on_$round"
    ON+=("${RATE[spool_on_$round]}")
    restart_with_spool off
    run "spool_off_$round"
    OFF+=("${RATE[spool_off_$round]}")
    restart_with_spool ""
done
run direct
log "stopping PostgreSQL: the next run is spooled"
pg stop -m fast
run spooled
curl -s "$BASE/readyz" | sed 's/^/readyz_during_outage /'
log "starting PostgreSQL again"
started=$(date +%s.%N)
pg start
for _ in $(seq 1 1200); do
    records=$(curl -s "$BASE/readyz" | sed -n 's/.*"records":\([0-9]*\).*/\1/p')
    [[ "$records" == 0 ]] && break
    sleep 0.25
done
drained=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
rows=$(sql 'select count(*) from events')
echo "-- result"
mean() { printf '%s\n' "$@" | awk '{ t += $1 } END { printf "%.0f", t / NR }'; }
echo "spool_on_accepted_per_s $(mean "${ON[@]}") (rounds: ${ON[*]})"
echo "spool_off_accepted_per_s $(mean "${OFF[@]}") (rounds: ${OFF[*]})"
awk -v on="$(mean "${ON[@]}")" -v off="$(mean "${OFF[@]}")" \
    'BEGIN { printf "spool_on_over_off %.2f (database up)\n", on / off }'
echo "direct_accepted_per_s ${RATE[direct]}"
echo "spooled_accepted_per_s ${RATE[spooled]}"
awk -v d="${RATE[direct]}" -v s="${RATE[spooled]}" 'BEGIN { printf "spooled_over_direct %.2f\n", s / d }'
echo "drain_seconds $drained (after PostgreSQL answered again)"
echo "rows_in_events $rows accepted $ACCEPTED $([[ "$rows" == "$ACCEPTED" ]] && echo MATCH || echo MISMATCH)"
[[ "$rows" == "$ACCEPTED" ]]
