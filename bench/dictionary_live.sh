#!/usr/bin/env bash
# Compression dictionaries tried live, as a user would meet them: a real `seismo serve` on a
# fresh database, with its default settings (a dictionary check every 60 s), and the real
# Python `sentry_sdk` raising and sending exceptions for wall-clock minutes
# (bench/dictionary_live.py). Every 30 s it prints what is stored: rows and bytes per
# document without and with a dictionary, and the dictionaries trained. At the end it reads
# the newest event back through the API.
#
#   bench/dictionary_live.sh                 # about 4 minutes
#   MINUTES=2 RATE=40 SKIP_BUILD=1 bench/dictionary_live.sh
#
# Needs: PostgreSQL at 127.0.0.1:5432 (user postgres, trust), psql, curl, python3 with
# sentry-sdk (installed with pip when missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
DURATION=0
DB_PREFIX=seismo_dictionary
PORT=${PORT:-18410}
export MINUTES=${MINUTES:-4} RATE=${RATE:-20}
source "$here/lib.sh"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building (release)"
    cargo build --release --bin seismo
fi
python3 -c 'import sentry_sdk' 2>/dev/null || python3 -m pip install -q sentry-sdk

start_seismo
seismo_warnings >/dev/null # the start banner (the first project's DSN) is not a warning
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p"; }
project=$("$SEISMO_BIN" project create shop --json)
token=$("$SEISMO_BIN" token create dictionary-live --json | json_field token)
export SEISMO_DSN
SEISMO_DSN=$(printf '%s' "$project" | json_field dsn)
log "project shop, DSN $SEISMO_DSN; sending for $MINUTES minutes at $RATE events/s"

stored() {
    sql "select coalesce(string_agg(line, '; '), 'nothing yet') from (
           select case when dictionary is null then 'no dictionary' else 'dictionary v' || dictionary end
                  || ': ' || count(*) || ' rows, ' || round(avg(octet_length(data))) || ' bytes/document' as line
           from events group by dictionary order by dictionary nulls first) s"
}

python3 "$here/dictionary_live.py" &
sender=$!
while kill -0 "$sender" 2>/dev/null; do
    sleep 30
    trained=$(curl -sf "$BASE/metrics" | grep '^seismo_dictionaries_trained_total' | tr '\n' ' ')
    log "$(stored) | $trained"
done
wait "$sender"

echo "-- stored"
stored
sql "select 'dictionary v' || version || ': ' || octet_length(dictionary) || ' bytes, trained on ' || samples
            || ' documents, held-out ratio ' || round(ratio::numeric, 3) || ', at ' || created_at
     from event_dictionaries order by version"
echo "-- the newest event, read back through the API"
event_id=$(sql "select replace(event_id::text, '-', '') from events order by received_at desc limit 1")
curl -sf -H "Authorization: Bearer $token" "$BASE/api/v1/events/$event_id" \
    | python3 -c 'import json, sys; e = json.load(sys.stdin); x = e["exception"][0]
print("event", e["event_id"], "|", x["type"], ":", x["value"], "|", len(x["frames"]), "frames |",
      "tags", e["tags"], "| payload keys", len(e["payload"]))'
seismo_warnings
