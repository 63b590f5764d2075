#!/usr/bin/env bash
# Ingestion benchmark: builds Seismo and bench/loadgen.rs in release mode, starts Seismo on a
# fresh PostgreSQL database, runs loadgen at each concurrency, and reports throughput, ack
# latency, Seismo's CPU per event (user and kernel time), peak RSS, writer batch size, stored
# rows vs accepted events, and bytes per event.
# Everything it creates (database, work directory, server process) is removed on exit.
#
# Environment (all optional):
#   DURATION=20              seconds per run
#   CONCURRENCIES="16 64"    one run per value, on the same server and database
#   ISSUE_GROUPS=50          distinct issue groups in the generated events
#   GZIP=0                   1 sends gzip-compressed bodies
#   RESEND_EVERY=0           N > 0: every Nth request of each loadgen task sends its previous
#                            envelope again (an SDK's retry, a replay): stored once, answered
#                            200, reported as `resent`; the writer's batches by way follow
#   PORT=18390               where Seismo listens (127.0.0.1 only)
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   the PostgreSQL server (trust auth)
#   SKIP_BUILD=0             1 uses the binaries already in target/release
#   SEISMO_BIN, LOADGEN_BIN  the binaries (default: target/release's; another build to compare)
#   KEEP_IPS=0               1 sets the project's `keep_ip_addresses`: the generated events'
#                            client IP (their only value scrubbing replaces) stays, so their
#                            payloads are stored as received
#   SELF_TRACING=0           1 exports Seismo's own spans over OTLP/HTTP to a sink on
#                            127.0.0.1 that accepts and discards them (the cost of tracing on)
#   COMMIT_DELAY_US=0        every commit of the database waits this long before its WAL
#                            flush (PostgreSQL's commit_delay): a slower disk, simulated
#   DB_SETTINGS=""           PostgreSQL settings for Seismo's sessions, e.g. "enable_seqscan=off"
#   DB_SQL=""                SQL run on the database once Seismo has migrated it, before the
#                            runs: a schema what-if, e.g. "drop index issues_project_last_seen"
#   DICTIONARY_WARMUP=0      1 first sends 5 s of events at concurrency 16 and waits until
#                            the project's compression dictionary is trained (checked every
#                            5 s), so the measured runs see a project in its steady state
#                            rather than its first minute; a build without dictionaries
#                            just warms up
#   CALLGRIND=0              1 runs Seismo under valgrind's callgrind and reports the
#                            instructions it ran per stored event (user space, every thread,
#                            from loadgen's start to its end): a count that the machine's
#                            neighbours do not move, for an A/B of a change worth a few
#                            per cent (the server is ~50x slower there, so expect ~100
#                            events/s, larger writer batches, and CPU and latency figures
#                            that mean nothing); CALLGRIND_OUT=<file> keeps the last run's
#                            profile there, for callgrind_annotate
set -euo pipefail

DURATION=${DURATION:-20}
CONCURRENCIES=${CONCURRENCIES:-"16 64"}
ISSUE_GROUPS=${ISSUE_GROUPS:-50}
GZIP=${GZIP:-0}
RESEND_EVERY=${RESEND_EVERY:-0}
PORT=${PORT:-18390}
SKIP_BUILD=${SKIP_BUILD:-0}
SELF_TRACING=${SELF_TRACING:-0}
KEEP_IPS=${KEEP_IPS:-0}
DICTIONARY_WARMUP=${DICTIONARY_WARMUP:-0}
CALLGRIND=${CALLGRIND:-0}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# Totals carried from one run to the next, to report per-run deltas.
TOTAL_ACCEPTED=0
PREV_BATCH_SUM=0
PREV_BATCH_COUNT=0
PREV_COMMIT_SUM=0

run_load() {
    local concurrency=$1 out="$WORK/loadgen-$1.txt"
    local gzip_flag=()
    [[ "$GZIP" == 1 ]] && gzip_flag=(--gzip)
    log "loadgen: concurrency $concurrency, ${DURATION}s, $ISSUE_GROUPS groups"
    [[ "$CALLGRIND" == 1 ]] && callgrind_control --zero "$SEISMO_PID" >/dev/null
    measure_loadgen "$out" --dsn "$DSN" --concurrency "$concurrency" \
        --duration "$DURATION" --groups "$ISSUE_GROUPS" --report-every 5 "${gzip_flag[@]}" \
        --resend-every "$RESEND_EVERY"
    cat "$out"
    report_run "$concurrency" "$out"
    [[ "$CALLGRIND" == 1 ]] && report_instructions "$(field "$out" accepted)"
    return 0
}

# Instructions Seismo ran since the counters were zeroed, per event of the run ($1).
report_instructions() {
    local dump
    callgrind_control --dump "$SEISMO_PID" >/dev/null
    dump=$(ls -t "$WORK"/callgrind.out.* | head -1)
    awk -v n="$1" '$1 == "summary:" && n > 0 {
        printf "callgrind_instructions_per_event %.0f\n", $2 / n }' "$dump"
    if [[ -n "${CALLGRIND_OUT:-}" ]]; then
        cp "$dump" "$CALLGRIND_OUT"
        log "the run's profile: callgrind_annotate $CALLGRIND_OUT"
    fi
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
    echo "statuses 200=$(field "$out" status_200) 429=$(field "$out" status_429) 503=$(field "$out" status_503) other=$(field "$out" status_other) errors=$(field "$out" errors) resent=$(field "$out" resent)"
    writer_ways "$WORK/metrics.txt"
    awk -v s="$batch_sum" -v ps="$PREV_BATCH_SUM" -v c="$batch_count" -v pc="$PREV_BATCH_COUNT" \
        -v t="$commit_sum" -v pt="$PREV_COMMIT_SUM" 'BEGIN {
            if (c > pc) printf "writer_batch_mean %.1f events, %.1f ms per transaction (%d transactions this run)\n",
                (s - ps) / (c - pc), (t - pt) * 1000 / (c - pc), c - pc }'
    PREV_BATCH_SUM=$batch_sum
    PREV_BATCH_COUNT=$batch_count
    PREV_COMMIT_SUM=$commit_sum
    echo "seismo_peak_rss $hwm (VmHWM, since start)"
    # Seismo's CPU (utime+stime from /proc/<pid>/stat over the run) per 1,000 stored events.
    awk -v s="$(cpu_of seismo_s)" -v p="$(cpu_of postgres_s)" -v n="$accepted" 'BEGIN {
        if (n > 0) printf "cpu_s_per_1k_events seismo=%.3f postgres=%.3f\n", s * 1000 / n, p * 1000 / n }'
    cat "$WORK/cpu.txt"
    echo "pg_backend_samples $(wait_report "$WORK/waits.txt")"
    seismo_warnings
    pg_health
    echo "rows_in_events $rows accepted_so_far $TOTAL_ACCEPTED $([[ "$rows" == "$TOTAL_ACCEPTED" ]] && echo MATCH || echo MISMATCH)"
}

# Committed writer batches by way, since start (a build without the metric prints nothing).
writer_ways() {
    awk -F'[{}" ]+' '/^seismo_writer_batches_total\{/ { for (i = 2; i < NF; i++) if ($i == "way=") w[$(i + 1)] = $NF }
        END { if (length(w)) printf "writer_batches_since_start whole=%d fell_back=%d step_by_step=%d\n", w["whole"], w["fell_back"], w["step_by_step"] }' "$1"
}

warm_up_dictionary() {
    local out="$WORK/warmup.txt"
    log "warm-up: 5 s at concurrency 16, then waiting for the project's dictionary"
    "$LOADGEN_BIN" --dsn "$DSN" --concurrency 16 --duration 5 --groups "$ISSUE_GROUPS" >"$out"
    TOTAL_ACCEPTED=$((TOTAL_ACCEPTED + $(field "$out" accepted)))
    # A wrapper that runs the build with SEISMO_DICTIONARY_CHECK_SECONDS=0 (an A/B of
    # dictionaries off and on) shows it in the process's environment.
    if tr '\0' '\n' <"/proc/$SEISMO_PID/environ" | grep -qx 'SEISMO_DICTIONARY_CHECK_SECONDS=0'; then
        log "dictionaries are off in this run"
        return
    fi
    for _ in $(seq 1 60); do
        curl -sf "$BASE/metrics" >"$WORK/metrics.txt"
        if ! grep -q '^seismo_dictionaries_trained_total' "$WORK/metrics.txt"; then
            log "this build has no dictionaries"
            return
        fi
        if [[ $(metric "$WORK/metrics.txt" 'seismo_dictionaries_trained_total{outcome="kept"}') -ge 1 ]]; then
            log "the project's dictionary is trained"
            return
        fi
        sleep 2
    done
    echo "FAIL: no dictionary was trained within 120 s" >&2
    exit 1
}

# Stored document bytes per event, with and without a dictionary (builds that have them).
report_documents() {
    local has_column
    has_column=$(sql "select count(*) from information_schema.columns
                      where table_name = 'events' and column_name = 'dictionary'")
    [[ "$has_column" == 1 ]] || return 0
    sql "select 'documents ' || case when dictionary is null then 'without' else 'with' end
                || '_dictionary rows=' || count(*) || ' bytes_per_document=' || round(avg(octet_length(data)))
         from events group by dictionary is null order by 1"
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
    report_documents
    echo "-- writer metrics (whole session)"
    grep -E '^seismo_(events_received_total|writer_batch_size_(sum|count)|writer_commit_duration_seconds_(sum|count))' \
        "$WORK/metrics.txt" || true
    if [[ "$rows" != "$TOTAL_ACCEPTED" ]]; then
        echo "FAIL: $rows rows stored but $TOTAL_ACCEPTED events acknowledged" >&2
        exit 1
    fi
}

build
if [[ "$DICTIONARY_WARMUP" == 1 ]]; then
    export SEISMO_DICTIONARY_CHECK_SECONDS=5
fi
if [[ "$CALLGRIND" == 1 ]]; then
    # Names uncompressed: each dump then reads on its own (callgrind_annotate).
    SERVE_UNDER=(valgrind --tool=callgrind --log-file="$WORK/valgrind.log" --compress-strings=no
        --callgrind-out-file="$WORK/callgrind.out.%p")
    STARTUP_SECONDS=300
    log "seismo runs under callgrind"
fi
if [[ "$SELF_TRACING" == 1 ]]; then
    start_span_sink
fi
start_seismo
create_project
if [[ "$KEEP_IPS" == 1 ]]; then
    # Before the first event: the key's settings are cached from then on.
    sql "update projects set scrub_settings = scrub_settings || '{\"keep_ip_addresses\": true}'" >/dev/null
    log "the project keeps client IP addresses (nothing in the events is scrubbed)"
fi
EMPTY_DB_BYTES=$(sql "select pg_database_size('$DB')")
if [[ "$DICTIONARY_WARMUP" == 1 ]]; then
    warm_up_dictionary
fi
for concurrency in $CONCURRENCIES; do
    run_load "$concurrency"
done
report_storage
log "done; stopping seismo and dropping $DB"
