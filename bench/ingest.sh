#!/usr/bin/env bash
# Ingestion benchmark: builds Seismo and bench/loadgen.rs in release mode, starts Seismo on a
# fresh PostgreSQL database, runs loadgen at each concurrency, and reports throughput, ack
# latency, peak RSS, writer batch size, stored rows vs accepted events, and bytes per event.
# Everything it creates (database, work directory, server process) is removed on exit.
#
# Environment (all optional):
#   DURATION=20              seconds per run
#   CONCURRENCIES="16 64"    one run per value, on the same server and database
#   ISSUE_GROUPS=50          distinct issue groups in the generated events
#   GZIP=0                   1 sends gzip-compressed bodies
#   PORT=18390               where Seismo listens (127.0.0.1 only)
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   the PostgreSQL server (trust auth)
#   SKIP_BUILD=0             1 uses the binaries already in target/release
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CONCURRENCIES=${CONCURRENCIES:-"16 64"}
ISSUE_GROUPS=${ISSUE_GROUPS:-50}
GZIP=${GZIP:-0}
PORT=${PORT:-18390}
SKIP_BUILD=${SKIP_BUILD:-0}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

DB="seismo_bench_$(date +%s)_$$"
BASE="http://127.0.0.1:${PORT}"
WORK=$(mktemp -d -t seismo-bench.XXXXXX)
SEISMO_PID=""
DB_CREATED=0

log() { printf '== %s\n' "$*"; }

cleanup() {
    local status=$?
    if [[ -n "$SEISMO_PID" ]] && kill -0 "$SEISMO_PID" 2>/dev/null; then
        kill -TERM "$SEISMO_PID"
        for _ in $(seq 1 60); do
            kill -0 "$SEISMO_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$SEISMO_PID" 2>/dev/null && kill -KILL "$SEISMO_PID"
        wait "$SEISMO_PID" 2>/dev/null || true
    fi
    if [[ "$DB_CREATED" == 1 ]]; then
        psql -d postgres -qc "drop database if exists \"$DB\" with (force)" >/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sql() { psql -d "$DB" -tAc "$1"; }

# `name value` lines from loadgen output file $1: the value of $2.
field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# A Prometheus sample's value: the line that starts with $2 in metrics file $1 (0 if none).
metric() { awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1"; }

build() {
    if [[ "$SKIP_BUILD" == 1 ]]; then return; fi
    log "building (release)"
    cargo build --release --bin seismo --example loadgen
}

start_seismo() {
    if curl -sf "$BASE/healthz" >/dev/null 2>&1; then
        echo "something already listens on $BASE; set PORT" >&2
        exit 1
    fi
    log "creating database $DB"
    psql -d postgres -qc "create database \"$DB\"" >/dev/null
    DB_CREATED=1
    export SEISMO_DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}"
    export SEISMO_LISTEN="127.0.0.1:${PORT}"
    export SEISMO_DATA_DIR="$WORK/data"
    # Not measured here; off so a benchmark never collides with another Seismo's ports.
    export SEISMO_OTLP_HTTP_LISTEN=off SEISMO_OTLP_GRPC_LISTEN=off
    export SEISMO_LOG=warn
    ./target/release/seismo serve >"$WORK/seismo.log" 2>&1 &
    SEISMO_PID=$!
    for _ in $(seq 1 120); do
        if curl -sf "$BASE/healthz" >/dev/null 2>&1; then
            log "seismo is up (pid $SEISMO_PID)"
            return
        fi
        if ! kill -0 "$SEISMO_PID" 2>/dev/null; then
            cat "$WORK/seismo.log" >&2
            echo "seismo exited during start-up" >&2
            exit 1
        fi
        sleep 0.25
    done
    echo "seismo did not answer /healthz within 30 s" >&2
    exit 1
}

create_project() {
    local json
    json=$(./target/release/seismo project create bench --json)
    DSN=$(printf '%s' "$json" | sed -n 's/.*"dsn":"\([^"]*\)".*/\1/p')
    if [[ -z "$DSN" ]]; then
        echo "no DSN in: $json" >&2
        exit 1
    fi
    log "DSN $DSN"
}

# CPU time (clock ticks, user+system) of process $1, or 0 once it is gone.
proc_ticks() {
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0
}

# PostgreSQL processes serving this benchmark: backends of $DB and the shared background
# processes (WAL writer, checkpointer, ...), which have no database.
postgres_pids() {
    psql -d postgres -tAc "select pid from pg_stat_activity
                           where (datname = '$DB' or datname is null) and pid <> pg_backend_pid()"
}

# "pid ticks" for seismo and the postgres processes, taken before and after a run.
cpu_sample() {
    local pid
    for pid in "$SEISMO_PID" $(postgres_pids); do
        echo "$pid $(proc_ticks "$pid")"
    done
}

# Machine-wide busy and iowait ticks from /proc/stat (all cores).
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $6 }' /proc/stat
}

# Cores used during the run: seismo, postgres (processes present at the end of the run;
# one started during the run counts from 0), loadgen, and the whole machine.
cpu_report() {
    local before=$1 after=$2 machine_before=$3 machine_after=$4 loadgen_s=$5 seconds=$6
    local hz
    hz=$(getconf CLK_TCK)
    awk -v seismo="$SEISMO_PID" -v hz="$hz" -v t="$seconds" -v lg="$loadgen_s" \
        -v mb="$machine_before" -v ma="$machine_after" '
        FNR == NR { start[$1] = $2; next }
        { used = ($2 - start[$1]) / hz; if ($1 == seismo) s += used; else p += used }
        END {
            split(mb, b, " "); split(ma, a, " ")
            busy = (a[1] - b[1]) / hz / t; iowait = (a[2] - b[2]) / hz / t
            printf "cpu_cores seismo=%.2f postgres=%.2f loadgen=%.2f machine_busy=%.2f other=%.2f iowait=%.2f\n",
                s / t, p / t, lg / t, busy, busy - (s + p + lg) / t, iowait
        }' "$before" "$after"
}

# What this benchmark's busy PostgreSQL backends are doing, sampled every 0.5 s during a
# run: one line per non-idle backend and sample, `state/wait` ("CPU" when it waits for
# nothing), and a `sample` line per sample.
wait_sampler() {
    local _
    for _ in $(seq 1 $((DURATION * 2))); do
        echo sample
        psql -d postgres -tAc "select replace(state, ' ', '_') || '/'
                                      || coalesce(wait_event_type || ':' || wait_event, 'CPU')
                               from pg_stat_activity where datname = '$DB' and state <> 'idle'" || true
        sleep 0.5
    done
}

# The number of samples, then the five most frequent `state/wait` values, on one line.
wait_report() {
    printf 'samples=%d' "$(grep -c '^sample$' "$1")"
    grep -v '^sample$' "$1" | sort | uniq -c | sort -rn | head -5 | awk '{ printf " %s=%d", $2, $1 }'
    echo
}

# Totals carried from one run to the next, to report per-run deltas.
TOTAL_ACCEPTED=0
PREV_BATCH_SUM=0
PREV_BATCH_COUNT=0
PREV_COMMIT_SUM=0

run_load() {
    local concurrency=$1 out="$WORK/loadgen-$1.txt"
    local gzip_flag=() machine_before machine_after loadgen_s started elapsed
    [[ "$GZIP" == 1 ]] && gzip_flag=(--gzip)
    log "loadgen: concurrency $concurrency, ${DURATION}s, $ISSUE_GROUPS groups"
    cpu_sample >"$WORK/cpu-before.txt"
    machine_before=$(machine_ticks)
    wait_sampler >"$WORK/waits.txt" &
    local sampler_pid=$!
    started=$(date +%s.%N)
    local TIMEFORMAT='%U %S'
    { time ./target/release/examples/loadgen --dsn "$DSN" --concurrency "$concurrency" \
        --duration "$DURATION" --groups "$ISSUE_GROUPS" --report-every 5 "${gzip_flag[@]}" >"$out" 2>"$WORK/loadgen.err"; } \
        2>"$WORK/loadgen-time.txt" || { cat "$out" "$WORK/loadgen.err" >&2; exit 1; }
    elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
    machine_after=$(machine_ticks)
    cpu_sample >"$WORK/cpu-after.txt"
    wait "$sampler_pid" || true
    cat "$out"
    loadgen_s=$(awk '{ print $1 + $2 }' "$WORK/loadgen-time.txt")
    cpu_report "$WORK/cpu-before.txt" "$WORK/cpu-after.txt" "$machine_before" "$machine_after" \
        "$loadgen_s" "$elapsed" >"$WORK/cpu.txt"
    report_run "$concurrency" "$out"
}

report_run() {
    local concurrency=$1 out=$2
    local accepted rows hwm batch_sum batch_count commit_sum
    accepted=$(field "$out" accepted)
    TOTAL_ACCEPTED=$((TOTAL_ACCEPTED + accepted))
    rows=$(sql 'select count(*) from events')
    hwm=$(awk '/^VmHWM/ { print $2, $3 }' "/proc/$SEISMO_PID/status")
    curl -sf "$BASE/metrics" >"$WORK/metrics.txt"
    batch_sum=$(metric "$WORK/metrics.txt" seismo_writer_batch_size_sum)
    batch_count=$(metric "$WORK/metrics.txt" seismo_writer_batch_size_count)
    commit_sum=$(metric "$WORK/metrics.txt" seismo_writer_commit_duration_seconds_sum)
    echo "-- result at concurrency $concurrency"
    echo "accepted_per_s $(field "$out" accepted_per_s)"
    echo "ack_ms p50=$(field "$out" ack_p50_ms) p90=$(field "$out" ack_p90_ms) p99=$(field "$out" ack_p99_ms) max=$(field "$out" ack_max_ms)"
    echo "accepted_per_s_each_5s $(awk '$1 == "interval" { printf "%s%.0f", (n++ ? " " : ""), $3 }' "$out")"
    echo "statuses 200=$(field "$out" status_200) 429=$(field "$out" status_429) 503=$(field "$out" status_503) other=$(field "$out" status_other) errors=$(field "$out" errors)"
    awk -v s="$batch_sum" -v ps="$PREV_BATCH_SUM" -v c="$batch_count" -v pc="$PREV_BATCH_COUNT" \
        -v t="$commit_sum" -v pt="$PREV_COMMIT_SUM" 'BEGIN {
            if (c > pc) printf "writer_batch_mean %.1f events, %.1f ms per transaction (%d transactions this run)\n",
                (s - ps) / (c - pc), (t - pt) * 1000 / (c - pc), c - pc }'
    PREV_BATCH_SUM=$batch_sum
    PREV_BATCH_COUNT=$batch_count
    PREV_COMMIT_SUM=$commit_sum
    echo "seismo_peak_rss $hwm (VmHWM, since start)"
    cat "$WORK/cpu.txt"
    echo "pg_backend_samples $(wait_report "$WORK/waits.txt")"
    pg_health
    echo "rows_in_events $rows accepted_so_far $TOTAL_ACCEPTED $([[ "$rows" == "$TOTAL_ACCEPTED" ]] && echo MATCH || echo MISMATCH)"
}

# Signs of PostgreSQL trouble that grow with time: sequential scans of the events partitions
# (a write-path lookup that stopped using the primary key) and dead issue rows (every event
# updates its issue; without autovacuum nothing reclaims the old versions).
pg_health() {
    local scans dead autovacuum
    scans=$(sql "select coalesce(sum(seq_scan), 0) || ' scans, ' || coalesce(sum(seq_tup_read), 0) || ' rows read'
                 from pg_stat_user_tables where relname like 'events_p%'")
    dead=$(sql "select n_dead_tup from pg_stat_user_tables where relname = 'issues'")
    autovacuum=$(sql 'show autovacuum')
    echo "pg_events_seq_scans $scans (since start)"
    echo "pg_issues_dead_rows $dead (autovacuum $autovacuum)"
}

report_storage() {
    local rows db_bytes events_bytes issues
    rows=$(sql 'select count(*) from events')
    issues=$(sql 'select count(*) from issues')
    db_bytes=$(sql "select pg_database_size('$DB')")
    # events is partitioned: its own size is 0, so sum heap+TOAST+indexes of the partitions.
    events_bytes=$(sql "select coalesce(sum(pg_total_relation_size(inhrelid)), 0)
                        from pg_inherits where inhparent = 'events'::regclass")
    echo "-- storage"
    echo "issues $issues"
    echo "rows_in_events $rows accepted_total $TOTAL_ACCEPTED"
    awk -v d="$db_bytes" -v e="$events_bytes" -v b="$EMPTY_DB_BYTES" -v n="$rows" 'BEGIN {
        if (n == 0) exit
        printf "database_size %.1f MB, %.0f bytes/event (growth since empty: %.0f bytes/event)\n", d / 1e6, d / n, (d - b) / n
        printf "events_partitions %.1f MB, %.0f bytes/event (heap+TOAST+indexes)\n", e / 1e6, e / n
    }'
    echo "-- writer metrics (whole session)"
    grep -E '^seismo_(events_received_total|writer_batch_size_(sum|count)|writer_commit_duration_seconds_(sum|count))' \
        "$WORK/metrics.txt" || true
    if [[ "$rows" != "$TOTAL_ACCEPTED" ]]; then
        echo "FAIL: $rows rows stored but $TOTAL_ACCEPTED events acknowledged" >&2
        exit 1
    fi
}

build
start_seismo
create_project
EMPTY_DB_BYTES=$(sql "select pg_database_size('$DB')")
for concurrency in $CONCURRENCIES; do
    run_load "$concurrency"
done
report_storage
log "done; stopping seismo and dropping $DB"
