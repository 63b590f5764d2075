#!/usr/bin/env bash
# The live recovery run, in real time: a real `seismo serve`, a fake shop whose two services
# send real errors through the Sentry SDK (bench/deliver_live.rs), Seismo's restart and
# rollback webhooks to them, and its mail to an SMTP catcher.
#
#   bench/deliver_live.sh            # about 20 to 30 minutes
#
# The project is given six hours of steady history (3 errors a minute per service) before
# the server starts, as a service that has been running would have; then the shop sends a
# few errors a minute for BASELINE_MINUTES, then a burst on both services. checkout is
# cured by the restart; billing is not (the verification window, VERIFY_MINUTES, ends
# without recovery: escalation, mail, rollback), and is cured by the rollback. The run
# prints each incident change, each hook call (signature checked, releases), each mail,
# and Seismo's recovery stats at the end.
#
# Ports: PORT (28000) for Seismo, SMTP_PORT (28025), ADMIN_PORT (28100, and the next one).
set -euo pipefail
PORT=${PORT:-28000}
SMTP_PORT=${SMTP_PORT:-28025}
ADMIN_PORT=${ADMIN_PORT:-28100}
BASELINE_MINUTES=${BASELINE_MINUTES:-2}
VERIFY_MINUTES=${VERIFY_MINUTES:-8}
MINUTES=${MINUTES:-40}
SKIP_BUILD=${SKIP_BUILD:-0}
DB_PREFIX=seismo_live
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building (release)"
    cargo build --release --bin seismo --example deliver_live
fi

# Before the server starts: the project, its key, a token, and six hours of history.
before_serve() {
    "$SEISMO_BIN" migrate >/dev/null
    local json
    json=$("$SEISMO_BIN" project create shop --json)
    DSN=$(printf '%s' "$json" | sed -n 's/.*"dsn":"\([^"]*\)".*/\1/p' | sed "s/127.0.0.1:8000/127.0.0.1:${PORT}/")
    PROJECT=$(printf '%s' "$json" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
    TOKEN=$("$SEISMO_BIN" token create live --json | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    sql "insert into minute_counts (project_id, scope, service, issue_id, minute, events)
         select $PROJECT, s.scope, s.service, 0, m, 3
         from generate_series(date_trunc('minute', now()) - interval '6 hours',
                              date_trunc('minute', now()) - interval '1 minute', interval '1 minute') m,
              (values ('project', ''), ('service', 'checkout'), ('service', 'billing')) s (scope, service)
         on conflict do nothing" >/dev/null
    export SEISMO_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8
    export SEISMO_SMTP_URL="smtp://127.0.0.1:${SMTP_PORT}"
    export SEISMO_MAIL_FROM="Seismo <seismo@example.com>"
    export SEISMO_RECOVERY_VERIFY_MINUTES=$VERIFY_MINUTES
    export SEISMO_MAIL_GROUP_WAIT_SECONDS=10
    export SEISMO_MAIL_REPEAT_MINUTES=0
    export SEISMO_LOG=info
}

start_seismo
log "project $PROJECT, DSN $DSN"
./target/release/examples/deliver_live --api "$BASE" --token "$TOKEN" --dsn "$DSN" \
    --project "$PROJECT" --smtp-port "$SMTP_PORT" --admin-port "$ADMIN_PORT" \
    --baseline-minutes "$BASELINE_MINUTES" --minutes "$MINUTES"
log "deliveries"
sql "select id, kind, topic, action, status, attempts, last_status, incident_id from deliveries order by id"
log "recovery actions"
sql "select incident_id, action, \"order\", delivered_at, verify_until, outcome, decided_at from recovery_actions order by id"
log "metrics"
curl -s "$BASE/metrics" | grep -E '^seismo_(deliveries_total|delivery_duration_seconds_count|outbox_depth|deliveries_pending|endpoint_breakers|recovery_probability)' || true
log "warnings logged by seismo"
grep -ciE 'warn|error' "$WORK/seismo.log" || true
