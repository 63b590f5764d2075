#!/usr/bin/env bash
# OTLP ingestion benchmark: builds Seismo and bench/loadgen.rs in release mode, starts Seismo
# on a fresh PostgreSQL database with its OTLP/HTTP and OTLP/gRPC listeners on free loopback
# ports, and sends traces with loadgen over OTLP/HTTP (protobuf) and then OTLP/gRPC at each
# concurrency. Reports spans/s, exceptions/s, ack latency, CPU per process and per span,
# writer transactions, stored rows vs accepted exceptions and spans, and at the end the
# gRPC/HTTP ratios. Everything it creates (database, work directory, server) is removed on exit.
#
# Environment (all optional):
#   DURATION=20              seconds per run
#   CONCURRENCIES="16"       one pair of runs (HTTP, gRPC) per value, same server and database
#   MODES="otlp-http otlp-grpc"   loadgen modes, run in this order at each concurrency
#   SPANS_PER_REQUEST=100    spans in each export request
#   EXCEPTION_EVERY=10       one span in this many fails with an `exception` event
#   EXCEPTION_TYPES=50       distinct exception types (issue groups)
#   GRPC_CONNECTIONS=0       HTTP/2 connections for gRPC (0: one per client task)
#   GZIP=0                   1 compresses request bodies (gzip)
#   PORT, OTLP_HTTP_PORT, OTLP_GRPC_PORT   Seismo's ports (127.0.0.1; default: free ones from 18410)
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   the PostgreSQL server (trust auth)
#   SKIP_BUILD=0             1 uses the binaries already in target/release
#   SEISMO_BIN, LOADGEN_BIN  the binaries (default: target/release's; another build to compare)
set -euo pipefail

DURATION=${DURATION:-20}
CONCURRENCIES=${CONCURRENCIES:-"16"}
MODES=${MODES:-"otlp-http otlp-grpc"}
SPANS_PER_REQUEST=${SPANS_PER_REQUEST:-100}
EXCEPTION_EVERY=${EXCEPTION_EVERY:-10}
EXCEPTION_TYPES=${EXCEPTION_TYPES:-50}
GRPC_CONNECTIONS=${GRPC_CONNECTIONS:-0}
GZIP=${GZIP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
DB_PREFIX=seismo_bench_otlp

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

PORT=${PORT:-$(free_port 18410)}
OTLP_HTTP_PORT=${OTLP_HTTP_PORT:-$(free_port 18411 "$PORT")}
OTLP_GRPC_PORT=${OTLP_GRPC_PORT:-$(free_port 18412 "$PORT" "$OTLP_HTTP_PORT")}
OTLP_HTTP_LISTEN="127.0.0.1:${OTLP_HTTP_PORT}"
OTLP_GRPC_LISTEN="127.0.0.1:${OTLP_GRPC_PORT}"

# Totals over all runs (the database accumulates), and per-run deltas of the writer metrics.
TOTAL_SPANS=0
TOTAL_EXCEPTIONS=0
PREV_BATCH_SUM=0
PREV_BATCH_COUNT=0
PREV_COMMIT_SUM=0
MISMATCHES=0
# Per "mode concurrency": spans/s and seismo CPU µs per span, for the ratios at the end.
declare -A SPANS_PER_S CPU_US_PER_SPAN

wait_for_grpc() {
    for _ in $(seq 1 40); do
        port_in_use "$OTLP_GRPC_PORT" && return
        sleep 0.25
    done
    echo "nothing listens on $OTLP_GRPC_LISTEN (OTLP/gRPC)" >&2
    exit 1
}

run_load() {
    local mode=$1 concurrency=$2 out="$WORK/loadgen-$1-$2.txt" target
    local extra=()
    [[ "$GZIP" == 1 ]] && extra+=(--gzip)
    case "$mode" in
        otlp-http) target=$OTLP_HTTP_LISTEN ;;
        otlp-grpc) target=$OTLP_GRPC_LISTEN; extra+=(--grpc-connections "$GRPC_CONNECTIONS") ;;
        *) echo "unknown mode $mode" >&2; exit 1 ;;
    esac
    log "loadgen $mode: concurrency $concurrency, ${DURATION}s, $SPANS_PER_REQUEST spans/request, exception every $EXCEPTION_EVERY, $EXCEPTION_TYPES types"
    measure_loadgen "$out" --mode "$mode" --key "$OTLP_KEY" --target "$target" \
        --concurrency "$concurrency" --duration "$DURATION" --groups "$EXCEPTION_TYPES" \
        --spans-per-request "$SPANS_PER_REQUEST" --exception-every "$EXCEPTION_EVERY" \
        --report-every 5 "${extra[@]}"
    cat "$out"
    report_run "$mode" "$concurrency" "$out"
}

report_run() {
    local mode=$1 concurrency=$2 out=$3
    local spans exceptions seconds rows requests hwm batch_sum batch_count commit_sum seismo_cpu
    spans=$(field "$out" spans)
    exceptions=$(field "$out" exceptions)
    seconds=$(field "$out" elapsed_s)
    TOTAL_SPANS=$((TOTAL_SPANS + spans))
    TOTAL_EXCEPTIONS=$((TOTAL_EXCEPTIONS + exceptions))
    rows=$(sql 'select count(*) from events')
    requests=$(sql "select coalesce(sum(requests), 0) from minute_counts where scope = 'service'")
    hwm=$(awk '/^VmHWM/ { print $2, $3 }' "/proc/$SEISMO_PID/status")
    curl -sf "$BASE/metrics" >"$WORK/metrics.txt"
    batch_sum=$(metric "$WORK/metrics.txt" seismo_writer_batch_size_sum)
    batch_count=$(metric "$WORK/metrics.txt" seismo_writer_batch_size_count)
    commit_sum=$(metric "$WORK/metrics.txt" seismo_writer_commit_duration_seconds_sum)
    seismo_cpu=$(cpu_of seismo)
    echo "-- result: $mode at concurrency $concurrency"
    echo "spans_per_s $(field "$out" spans_per_s) exceptions_per_s $(field "$out" exceptions_per_s) requests_per_s $(field "$out" accepted_per_s)"
    echo "ack_ms p50=$(field "$out" ack_p50_ms) p90=$(field "$out" ack_p90_ms) p99=$(field "$out" ack_p99_ms) max=$(field "$out" ack_max_ms)"
    echo "spans_per_s_each_5s $(awk '$1 == "interval" { printf "%s%.0f", (n++ ? " " : ""), $3 }' "$out")"
    echo "statuses ok=$(field "$out" status_200) 429/resource_exhausted=$(field "$out" status_429) 503/unavailable=$(field "$out" status_503) other=$(field "$out" status_other) errors=$(field "$out" errors) rejected_spans=$(field "$out" rejected_spans)"
    awk -v s="$batch_sum" -v ps="$PREV_BATCH_SUM" -v c="$batch_count" -v pc="$PREV_BATCH_COUNT" \
        -v t="$commit_sum" -v pt="$PREV_COMMIT_SUM" -v n="$spans" -v r="$(field "$out" accepted)" 'BEGIN {
            if (c > pc) printf "writer %d transactions: %.1f requests, %.0f spans, %.1f exceptions and %.1f ms each\n",
                c - pc, r / (c - pc), n / (c - pc), (s - ps) / (c - pc), (t - pt) * 1000 / (c - pc) }'
    PREV_BATCH_SUM=$batch_sum
    PREV_BATCH_COUNT=$batch_count
    PREV_COMMIT_SUM=$commit_sum
    echo "seismo_peak_rss $hwm (VmHWM, since start)"
    cat "$WORK/cpu.txt"
    awk -v c="$seismo_cpu" -v t="$seconds" -v n="$spans" -v e="$exceptions" 'BEGIN {
        if (n > 0) printf "seismo_cpu_per_span %.1f us (per exception %.0f us, all CPU charged)\n", c * t * 1e6 / n, (e > 0 ? c * t * 1e6 / e : 0) }'
    echo "pg_backend_samples $(wait_report "$WORK/waits.txt")"
    seismo_warnings
    pg_health
    check "rows_in_events" "$rows" "exceptions_accepted_so_far" "$TOTAL_EXCEPTIONS"
    check "service_requests_in_minute_counts" "$requests" "spans_accepted_so_far" "$TOTAL_SPANS"
    echo "issues $(sql 'select count(*) from issues') (expected: the number of exception types, $EXCEPTION_TYPES)"
    SPANS_PER_S["$mode $concurrency"]=$(field "$out" spans_per_s)
    CPU_US_PER_SPAN["$mode $concurrency"]=$(awk -v c="$seismo_cpu" -v t="$seconds" -v n="$spans" \
        'BEGIN { if (n > 0) printf "%.2f", c * t * 1e6 / n; else print 0 }')
}

# Prints `$1 $2 $3 $4 MATCH|MISMATCH`; a mismatch fails the script at the end.
check() {
    local verdict=MATCH
    if [[ "$2" != "$4" ]]; then
        verdict=MISMATCH
        MISMATCHES=$((MISMATCHES + 1))
    fi
    echo "$1 $2 $3 $4 $verdict"
}

report_ratios() {
    local concurrency http grpc
    echo "-- gRPC / HTTP"
    for concurrency in $CONCURRENCIES; do
        http=${SPANS_PER_S["otlp-http $concurrency"]:-}
        grpc=${SPANS_PER_S["otlp-grpc $concurrency"]:-}
        [[ -n "$http" && -n "$grpc" ]] || continue
        awk -v c="$concurrency" -v h="$http" -v g="$grpc" \
            -v hc="${CPU_US_PER_SPAN["otlp-http $concurrency"]}" -v gc="${CPU_US_PER_SPAN["otlp-grpc $concurrency"]}" 'BEGIN {
            printf "concurrency %s: spans/s %.0f / %.0f = %.2f; seismo CPU per span %.2f / %.2f us = %.2f\n",
                c, g, h, (h > 0 ? g / h : 0), gc, hc, (hc > 0 ? gc / hc : 0) }'
    done
}

build
start_seismo
wait_for_grpc
create_project
log "OTLP/HTTP $OTLP_HTTP_LISTEN, OTLP/gRPC $OTLP_GRPC_LISTEN"
for concurrency in $CONCURRENCIES; do
    for mode in $MODES; do
        run_load "$mode" "$concurrency"
    done
done
report_ratios
if [[ "$MISMATCHES" != 0 ]]; then
    echo "FAIL: stored rows or span counts differ from what loadgen saw accepted" >&2
    exit 1
fi
log "done; stopping seismo and dropping $DB"
