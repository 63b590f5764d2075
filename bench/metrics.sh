#!/usr/bin/env bash
# The cost of /metrics with many projects: starts Seismo on a fresh database with PROJECTS
# projects (each with the default rules), sends some traffic so every route and histogram
# has samples, waits until the detector has scored every project (one
# seismo_anomaly_score{project} series each), then scrapes /metrics SCRAPES times and
# reports its size, its number of series and the scrape time (mean, p50, p99, max).
#
# Environment (all optional):
#   PROJECTS=1000   SCRAPES=200   PORT=18392   SKIP_BUILD=0   SEISMO_BIN, PGHOST/PGPORT/PGUSER
set -euo pipefail

PROJECTS=${PROJECTS:-1000}
SCRAPES=${SCRAPES:-200}
PORT=${PORT:-18392}
SKIP_BUILD=${SKIP_BUILD:-0}
DURATION=${DURATION:-5}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

add_projects() {
    log "adding $PROJECTS projects"
    sql "INSERT INTO projects (slug, name)
         SELECT 'bench-' || g, 'Bench ' || g FROM generate_series(1, $PROJECTS) AS g" >/dev/null
    sql "INSERT INTO detection_rules (project_id, kind)
         SELECT p.id, k.kind FROM projects p
         CROSS JOIN (VALUES ('new_issue'), ('regression'), ('anomaly'), ('error_rate')) AS k (kind)
         WHERE p.slug LIKE 'bench-%'" >/dev/null
}

# Routes and histograms with samples: envelopes (with loadgen), API reads, health.
some_traffic() {
    "$LOADGEN_BIN" --dsn "$DSN" --concurrency 8 --duration "$DURATION" >/dev/null
    for _ in $(seq 1 20); do
        curl -s -o /dev/null "$BASE/readyz"
        curl -s -o /dev/null "$BASE/api/v1/projects"
        curl -s -o /dev/null "$BASE/nowhere"
    done
}

wait_for_scores() {
    local scored=0
    for _ in $(seq 1 120); do
        scored=$(curl -sf "$BASE/metrics" | grep -c '^seismo_anomaly_score{' || true)
        if ((scored > PROJECTS)); then
            log "the detector has scored $scored projects"
            return
        fi
        sleep 1
    done
    echo "only $scored projects scored after 120 s" >&2
    exit 1
}

scrape() {
    local i
    for i in $(seq 1 "$SCRAPES"); do
        curl -s -o "$WORK/metrics.txt" -w '%{time_total} %{size_download}\n' "$BASE/metrics"
    done >"$WORK/scrapes.txt"
    echo "-- /metrics with $PROJECTS projects, $SCRAPES scrapes"
    echo "series $(grep -vc '^#' "$WORK/metrics.txt") (lines without #), of which seismo_anomaly_score $(grep -c '^seismo_anomaly_score{' "$WORK/metrics.txt")"
    sort -n "$WORK/scrapes.txt" | awk '{ t[NR] = $1 * 1000; s += $1 * 1000; b = $2 }
        END { printf "size_bytes %d\nscrape_ms mean=%.2f p50=%.2f p99=%.2f max=%.2f\n",
              b, s / NR, t[int(NR * 0.5)], t[int(NR * 0.99)], t[NR] }'
    echo "seismo_peak_rss $(awk '/^VmHWM/ { print $2, $3 }' "/proc/$SEISMO_PID/status")"
}

build
start_seismo
add_projects
create_project
some_traffic
wait_for_scores
scrape
log "done; stopping seismo and dropping $DB"
