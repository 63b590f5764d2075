# Shared by bench/ingest.sh and bench/otlp.sh (sourced, not run): a fresh database, Seismo
# started on it and stopped on exit, a project, and loadgen runs measured for CPU per process.
#
# Before sourcing, set DURATION (seconds per run), SKIP_BUILD and optionally DB_PREFIX
# (default seismo_bench), SEISMO_BIN and LOADGEN_BIN (default: the release builds in
# target/; e.g. other builds to compare with, with SKIP_BUILD=1). Before start_seismo, set PORT (Seismo's HTTP port) and optionally
# OTLP_HTTP_LISTEN and OTLP_GRPC_LISTEN (host:port, default off), and DB_SETTINGS: PostgreSQL
# settings for Seismo's sessions on the fresh database, e.g. "enable_seqscan=off
# plan_cache_mode=force_custom_plan" (set with ALTER DATABASE before Seismo connects), and
# DB_SQL: statements run on that database once Seismo has migrated it (a schema what-if).
# Sourcing changes to the repository root and installs the EXIT trap.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

SEISMO_BIN=${SEISMO_BIN:-./target/release/seismo}
LOADGEN_BIN=${LOADGEN_BIN:-./target/release/examples/loadgen}
DB="${DB_PREFIX:-seismo_bench}_$(date +%s)_$$"
BASE=""
WORK=$(mktemp -d -t seismo-bench.XXXXXX)
SEISMO_PID=""
# A command `seismo serve` runs under (a profiler, say), set by the benchmark; none by default.
SERVE_UNDER=()
DB_CREATED=0
SEISMO_LOG_SEEN=0

log() { printf '== %s\n' "$*"; }

cleanup() {
    local status=$?
    if [[ -n "${SINK_PID:-}" ]]; then
        kill "$SINK_PID" 2>/dev/null || true
    fi
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

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The first port from $1 up that nothing listens on and that is not among $2... (taken).
free_port() {
    local port=$1
    shift
    while port_in_use "$port" || [[ " $* " == *" $port "* ]]; do
        port=$((port + 1))
    done
    echo "$port"
}

build() {
    if [[ "$SKIP_BUILD" == 1 ]]; then return; fi
    log "building (release)"
    cargo build --release --bin seismo --example loadgen
}

# An OTLP/HTTP endpoint on 127.0.0.1 that answers 200 to every export and keeps nothing,
# so self-tracing can be measured without a collector; Seismo exports to it (the standard
# OTEL_* variables are exported for start_seismo). Stopped on exit with the rest.
SINK_PID=""
start_span_sink() {
    local port
    port=$(free_port 18500 "$PORT")
    python3 - "$port" <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
    SINK_PID=$!
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port"
    log "self-tracing on: spans go to a discarding sink at $OTEL_EXPORTER_OTLP_ENDPOINT"
}

# Starts `seismo serve` on a fresh database and waits for /healthz; sets BASE.
start_seismo() {
    local port
    BASE="http://127.0.0.1:${PORT}"
    OTLP_HTTP_LISTEN=${OTLP_HTTP_LISTEN:-off}
    OTLP_GRPC_LISTEN=${OTLP_GRPC_LISTEN:-off}
    for port in "$PORT" "${OTLP_HTTP_LISTEN##*:}" "${OTLP_GRPC_LISTEN##*:}"; do
        if [[ "$port" != off ]] && port_in_use "$port"; then
            echo "something already listens on 127.0.0.1:$port; pick other ports" >&2
            exit 1
        fi
    done
    # A script that prepared the database before starting Seismo has created it already.
    if [[ "$DB_CREATED" != 1 ]]; then
        log "creating database $DB"
        psql -d postgres -qc "create database \"$DB\"" >/dev/null
        DB_CREATED=1
    fi
    # A slower disk, simulated: every commit of this database waits COMMIT_DELAY_US before
    # its WAL flush (commit_siblings 0 makes the delay apply to every commit).
    if [[ "${COMMIT_DELAY_US:-0}" != 0 ]]; then
        log "every commit waits ${COMMIT_DELAY_US} µs before its flush"
        psql -d postgres -q -c "alter database \"$DB\" set commit_delay = ${COMMIT_DELAY_US}" \
            -c "alter database \"$DB\" set commit_siblings = 0" >/dev/null
    fi
    # What-ifs for the database side: the same build with another plan or setting.
    for setting in ${DB_SETTINGS:-}; do
        psql -d postgres -qc "alter database \"$DB\" set ${setting%%=*} = '${setting#*=}'" >/dev/null
    done
    export SEISMO_DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}"
    export SEISMO_LISTEN="127.0.0.1:${PORT}"
    export SEISMO_DATA_DIR="$WORK/data"
    # Off unless the benchmark measures them, so it never collides with another Seismo's ports.
    export SEISMO_OTLP_HTTP_LISTEN="$OTLP_HTTP_LISTEN" SEISMO_OTLP_GRPC_LISTEN="$OTLP_GRPC_LISTEN"
    export SEISMO_LOG=${SEISMO_LOG:-warn}
    # A benchmark that must prepare the database before the server starts defines this.
    if declare -F before_serve >/dev/null; then before_serve; fi
    "${SERVE_UNDER[@]}" "$SEISMO_BIN" serve >"$WORK/seismo.log" 2>&1 &
    SEISMO_PID=$!
    for _ in $(seq 1 $((4 * ${STARTUP_SECONDS:-30}))); do
        if curl -sf "$BASE/healthz" >/dev/null 2>&1; then
            log "seismo is up (pid $SEISMO_PID)"
            run_db_sql
            return
        fi
        if ! kill -0 "$SEISMO_PID" 2>/dev/null; then
            cat "$WORK/seismo.log" >&2
            echo "seismo exited during start-up" >&2
            exit 1
        fi
        sleep 0.25
    done
    echo "seismo did not answer /healthz within ${STARTUP_SECONDS:-30} s" >&2
    exit 1
}

# What-ifs for the schema: DB_SQL runs on the database once Seismo has migrated it, before
# any event arrives (e.g. "alter table issues set (fillfactor = 50)").
run_db_sql() {
    if [[ -n "${DB_SQL:-}" ]]; then
        log "on $DB: $DB_SQL"
        psql -d "$DB" -v ON_ERROR_STOP=1 -qc "$DB_SQL" >/dev/null
    fi
}

# Creates the `bench` project; sets DSN (Sentry) and OTLP_KEY.
create_project() {
    local json
    json=$("$SEISMO_BIN" project create bench --json)
    DSN=$(printf '%s' "$json" | sed -n 's/.*"dsn":"\([^"]*\)".*/\1/p')
    OTLP_KEY=$(printf '%s' "$json" | sed -n 's/.*"otlp_key":"\([^"]*\)".*/\1/p')
    if [[ -z "$DSN" || -z "$OTLP_KEY" ]]; then
        echo "no DSN or OTLP key in: $json" >&2
        exit 1
    fi
    log "DSN $DSN"
    # What Seismo printed at start-up is not a warning of the runs.
    SEISMO_LOG_SEEN=$(wc -l <"$WORK/seismo.log")
}

# CPU time of process $1 in clock ticks: "user+system user system", or "0 0 0" once it is
# gone.
proc_ticks() {
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13, $12, $13 }' || echo 0 0 0
}

# PostgreSQL processes serving this benchmark: backends of $DB and the shared background
# processes (WAL writer, checkpointer, ...), which have no database. None while the
# database is down (bench/spool.sh stops it on purpose).
postgres_pids() {
    psql -d postgres -tAc "select pid from pg_stat_activity
                           where (datname = '$DB' or datname is null) and pid <> pg_backend_pid()" \
        2>/dev/null || true
}

# "pid ticks user_ticks system_ticks" for seismo and the postgres processes, taken before
# and after a run.
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
        FNR == NR { start[$1] = $2; user[$1] = $3; kernel[$1] = $4; next }
        {
            used = ($2 - start[$1]) / hz
            if ($1 == seismo) {
                s += used; su = ($3 - user[$1]) / hz; ss = ($4 - kernel[$1]) / hz
            } else p += used
        }
        END {
            split(mb, b, " "); split(ma, a, " ")
            busy = (a[1] - b[1]) / hz / t; iowait = (a[2] - b[2]) / hz / t
            printf "cpu_cores seismo=%.2f postgres=%.2f loadgen=%.2f machine_busy=%.2f other=%.2f iowait=%.2f\n",
                s / t, p / t, lg / t, busy, busy - (s + p + lg) / t, iowait
            printf "cpu_seconds seismo_s=%.2f postgres_s=%.2f loadgen_s=%.2f\n", s, p, lg
            # Seismo in its own code and libraries (user) and in the kernel for it (system):
            # sockets, wake-ups, memory; the part an instruction count does not see.
            printf "seismo_cpu_split user_s=%.2f system_s=%.2f\n", su, ss
        }' "$before" "$after"
}

# A cpu_cores line's value for process class $1 (seismo, postgres, loadgen, other, ...).
cpu_of() { tr ' ' '\n' <"$WORK/cpu.txt" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

# What this benchmark's busy PostgreSQL backends are doing, sampled every 0.5 s during a
# run: one line per non-idle backend and sample, `state/wait` ("CPU" when it waits for
# nothing), and a `sample` line per sample.
wait_sampler() {
    local _
    for _ in $(seq 1 $((DURATION * 2))); do
        echo sample
        psql -d postgres -tAc "select replace(state, ' ', '_') || '/'
                                      || coalesce(wait_event_type || ':' || wait_event, 'CPU')
                               from pg_stat_activity where datname = '$DB' and state <> 'idle'" \
            2>/dev/null || true
        sleep 0.5
    done
}

# The number of samples, then the five most frequent `state/wait` values, on one line.
wait_report() {
    printf 'samples=%d' "$(grep -c '^sample$' "$1")"
    grep -v '^sample$' "$1" | sort | uniq -c | sort -rn | head -5 | awk '{ printf " %s=%d", $2, $1 }'
    echo
}

# Sequential scans of the events partitions so far, and the rows they read: "scans rows"
# ("0 0" while the database is down).
events_seq_scans() {
    sql "select coalesce(sum(seq_scan), 0) || ' ' || coalesce(sum(seq_tup_read), 0)
         from pg_stat_user_tables where relname like 'events_p%'" 2>/dev/null || echo "0 0"
}

# Runs loadgen with arguments $2... and its output in file $1, sampling CPU and the
# backends' waits meanwhile; leaves `cpu_cores ...` in $WORK/cpu.txt, the samples in
# $WORK/waits.txt, and the run's events seq scans in $WORK/seqscans.txt. Exits the script
# if loadgen fails.
measure_loadgen() {
    local out=$1 machine_before machine_after loadgen_s started elapsed sampler_pid scans_before
    shift
    scans_before=$(events_seq_scans)
    cpu_sample >"$WORK/cpu-before.txt"
    machine_before=$(machine_ticks)
    wait_sampler >"$WORK/waits.txt" &
    sampler_pid=$!
    started=$(date +%s.%N)
    local TIMEFORMAT='%U %S'
    { time "$LOADGEN_BIN" "$@" >"$out" 2>"$WORK/loadgen.err"; } \
        2>"$WORK/loadgen-time.txt" || { cat "$out" "$WORK/loadgen.err" >&2; exit 1; }
    elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
    machine_after=$(machine_ticks)
    cpu_sample >"$WORK/cpu-after.txt"
    # Statistics reach pg_stat_user_tables when a backend's transaction ends: let them land.
    sleep 1
    awk -v b="$scans_before" -v a="$(events_seq_scans)" 'BEGIN {
        split(b, x, " "); split(a, y, " "); print y[1] - x[1], y[2] - x[2] }' >"$WORK/seqscans.txt"
    wait "$sampler_pid" || true
    loadgen_s=$(awk '{ print $1 + $2 }' "$WORK/loadgen-time.txt")
    cpu_report "$WORK/cpu-before.txt" "$WORK/cpu-after.txt" "$machine_before" "$machine_after" \
        "$loadgen_s" "$elapsed" >"$WORK/cpu.txt"
}

# Warnings and errors Seismo logged since the previous call (SEISMO_LOG=warn): their number
# and the three most frequent messages, digits masked. A writer deadlock shows here as a
# slow `UPDATE issues` (over 1 s: PostgreSQL's deadlock_timeout), and in PostgreSQL's log.
seismo_warnings() {
    local total new
    total=$(wc -l <"$WORK/seismo.log")
    new=$((total - SEISMO_LOG_SEEN))
    printf 'seismo_log_warnings %d' "$new"
    tail -n "+$((SEISMO_LOG_SEEN + 1))" "$WORK/seismo.log" | head -n "$new" \
        | sed -E 's/\x1b\[[0-9;]*m//g; s/^[^ ]+ +//; s/[0-9]+/N/g' | cut -c1-140 \
        | sort | uniq -c | sort -rn | head -3 | awk '{ n = $1; $1 = ""; printf " [%dx%s]", n, $0 }'
    echo
    SEISMO_LOG_SEEN=$total
}

# Signs of PostgreSQL trouble that grow with time: sequential scans of the events partitions
# during the run (a write-path lookup that stopped using the primary key; the scripts' own
# count(*) checks run after it and are not counted) and the updates since the start of the
# rows every batch adds to (issues, about one per event, and the per-minute counts): those
# in place (HOT) leave no index entries and are pruned as the page is next read; any other
# leaves a dead row that only a vacuum reclaims.
pg_health() {
    local table autovacuum
    autovacuum=$(sql 'show autovacuum')
    echo "pg_events_seq_scans $(awk '{ print $1 " scans, " $2 " rows read" }' "$WORK/seqscans.txt") (during the run)"
    for table in issues minute_counts; do
        echo "pg_${table}_rows $(sql "select n_tup_upd || ' updated, ' || n_tup_hot_upd ||
                ' in place, ' || n_dead_tup || ' dead, ' || pg_total_relation_size(relid) / 1024 || ' kB'
            from pg_stat_user_tables where relname = '$table'") (autovacuum $autovacuum)"
    done
}
