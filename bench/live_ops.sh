#!/usr/bin/env bash
# Operating Seismo as a user would, in real time: a release `seismo serve` with its metrics
# on a listener of its own and its own traces sent to itself (a project "seismo-self"),
# a real Prometheus (Debian's) scraping it with the repository's scrape settings, and a
# Sentry load for MINUTES minutes. Every 30 s it prints what the Overview and Internals
# dashboards would show (their PromQL, as Grafana sends it), and at the end the incidents
# opened and the spans Seismo received about itself.
#
# Environment (all optional):
#   MINUTES=3  PORT=38000  METRICS_PORT=38090  PROM_PORT=38091  RATE_CONCURRENCY=4
#   SKIP_BUILD=0  PGHOST/PGPORT/PGUSER
set -euo pipefail

MINUTES=${MINUTES:-3}
PORT=${PORT:-38000}
METRICS_PORT=${METRICS_PORT:-38090}
PROM_PORT=${PROM_PORT:-38091}
RATE_CONCURRENCY=${RATE_CONCURRENCY:-4}
SKIP_BUILD=${SKIP_BUILD:-0}
DURATION=$((MINUTES * 60))
DB_PREFIX=seismo_live_ops
OTLP_HTTP_LISTEN=127.0.0.1:38318

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

PROM_PID=""
stop_prometheus() { [[ -n "$PROM_PID" ]] && kill "$PROM_PID" 2>/dev/null || true; }
trap 'status=$?; stop_prometheus; (exit $status); cleanup' EXIT

# The project Seismo sends its own spans to exists before it starts: its key goes in
# OTEL_EXPORTER_OTLP_HEADERS.
prepare_self_project() {
    psql -d postgres -qc "create database \"$DB\"" >/dev/null
    DB_CREATED=1
    local url="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}" json key
    SEISMO_DATABASE_URL=$url "$SEISMO_BIN" migrate >/dev/null
    json=$(SEISMO_DATABASE_URL=$url SEISMO_LISTEN="127.0.0.1:$PORT" "$SEISMO_BIN" project create seismo-self --json)
    key=$(printf '%s' "$json" | sed -n 's/.*"otlp_key":"\([^"]*\)".*/\1/p')
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PORT"
    export OTEL_EXPORTER_OTLP_HEADERS="x-seismo-key=$key"
    export SEISMO_METRICS_LISTEN="127.0.0.1:$METRICS_PORT"
}

start_prometheus() {
    mkdir -p "$WORK/prometheus"
    sed "s/seismo:9464/127.0.0.1:$METRICS_PORT/; s/localhost:9090/127.0.0.1:$PROM_PORT/" \
        deploy/prometheus.yml >"$WORK/prometheus/prometheus.yml"
    prometheus --config.file="$WORK/prometheus/prometheus.yml" \
        --storage.tsdb.path="$WORK/prometheus/data" \
        --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
    PROM_PID=$!
    for _ in $(seq 1 50); do
        curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && return
        sleep 0.2
    done
    echo "prometheus did not start" >&2
    exit 1
}

# An instant query: "labels=value" per series, on one line.
promql() {
    curl -sG "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(" ".join("{}={:.4g}".format(",".join(v for k, v in s["metric"].items() if k not in ("instance", "job")) or "all", float(s["value"][1])) for s in r) or "(no data)")'
}

report() {
    echo "-- $(date -u +%H:%M:%S) what the dashboards show"
    echo "ingest rate by source/outcome: $(promql 'sum by (source, outcome) (rate(seismo_events_received_total[1m]))')"
    echo "request p95 by route: $(promql 'histogram_quantile(0.95, sum by (le, route) (rate(seismo_http_request_duration_seconds_bucket[1m])))')"
    echo "writer batch mean: $(promql 'sum(rate(seismo_writer_batch_size_sum[1m])) / sum(rate(seismo_writer_batch_size_count[1m]))')"
    echo "open incidents by kind: $(promql 'sum by (kind) (seismo_incidents_open)')"
    echo "anomaly score by project: $(promql 'max by (project) (seismo_anomaly_score)')"
    echo "issues by status: $(promql 'max by (status) (seismo_issues)')"
    echo "P handle: $(promql 'max(seismo_handling_probability)')"
    echo "scrape duration: $(promql 'scrape_duration_seconds{job="seismo"}')"
}

build
prepare_self_project
start_seismo
create_project
start_prometheus
log "load: $RATE_CONCURRENCY clients for $MINUTES min; a report every 30 s"
"$LOADGEN_BIN" --dsn "$DSN" --concurrency "$RATE_CONCURRENCY" --duration "$DURATION" \
    --groups 20 >"$WORK/loadgen.txt" 2>&1 &
LOAD_PID=$!
while kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep 30
    report
done
wait "$LOAD_PID" || { cat "$WORK/loadgen.txt"; exit 1; }
grep -E '^(accepted|accepted_per_s|ack_p99_ms) ' "$WORK/loadgen.txt"
echo "-- incidents: $(sql "select count(*) || ' (' || coalesce(string_agg(distinct kind, ', '), '') || ')' from incidents")"
echo "-- Seismo's own spans received in project seismo-self: $(sql "select coalesce(sum(m.requests), 0) from minute_counts m join projects p on p.id = m.project_id where p.slug = 'seismo-self' and m.scope = 'project'")"
echo "-- /metrics on the main port: HTTP $(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics") (served on $SEISMO_METRICS_LISTEN instead)"
log "done"
