#!/usr/bin/env bash
# Detection tried live, as a new user would: a real `seismo serve` on a fresh database, a
# real Sentry SDK and two real OpenTelemetry SDK services sending for wall-clock minutes
# (bench/live_detection.py), then the incidents the API lists. See bench/README.md.
#
#   bench/live_detection.sh                       # about 19 minutes
#   FRESH_MINUTES=6 RATE_MINUTES=6 CHANGE_MINUTES=3 bench/live_detection.sh
#   SKIP_BUILD=1 PORT=18000 OTLP_PORT=18318 bench/live_detection.sh
#
# Needs: PostgreSQL at 127.0.0.1:5432 (user postgres, trust), psql, curl, python3 with
# sentry-sdk, opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http (installed with
# pip when missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
DURATION=0
DB_PREFIX=seismo_live
PORT=${PORT:-18000}
OTLP_PORT=${OTLP_PORT:-18318}
OTLP_HTTP_LISTEN="127.0.0.1:${OTLP_PORT}"
source "$here/lib.sh"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building (release)"
    cargo build --release --bin seismo
fi
python3 -c 'import sentry_sdk, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' 2>/dev/null \
    || python3 -m pip install -q sentry-sdk opentelemetry-sdk opentelemetry-exporter-otlp-proto-http

start_seismo
project() { "$SEISMO_BIN" project create "$1" --json; }
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p"; }
fresh=$(project fresh)
services=$(project services)
token=$("$SEISMO_BIN" token create live-detection --json | json_field token)

export SEISMO_BASE="$BASE" SEISMO_TOKEN="$token" OTLP_ENDPOINT="http://${OTLP_HTTP_LISTEN}"
FRESH_DSN=$(printf '%s' "$fresh" | json_field dsn)
FRESH_ID=$(printf '%s' "$fresh" | json_field id)
SERVICES_KEY=$(printf '%s' "$services" | json_field otlp_key)
SERVICES_ID=$(printf '%s' "$services" | json_field id)
export FRESH_DSN FRESH_ID SERVICES_KEY SERVICES_ID
log "fresh project $FRESH_ID, services project $SERVICES_ID"

python3 "$here/live_detection.py"

echo
log "seismo_anomaly_score now (Prometheus):"
curl -s "$BASE/metrics" | grep '^seismo_anomaly_score' || true
seismo_warnings
