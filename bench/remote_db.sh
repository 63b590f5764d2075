#!/usr/bin/env bash
# bench/fastpath.sh against a PostgreSQL across a network: a throwaway cluster on loopback
# behind `delay_proxy` (bench/delay_proxy.rs), which holds what passes DELAY_MS each way,
# as a managed database in the next rack or zone would answer. Every round trip of the
# writer then costs 2 × DELAY_MS of wall time, which on a local socket it does not.
#
#   BUILDS="before=/path/seismo-a after=/path/seismo-b" bench/remote_db.sh
#   DELAY_MS=0.5 PG_PORT=55432 PROXY_PORT=55433   (the defaults; the rest as fastpath.sh)
#
# Needs: root (the cluster runs as user `postgres`), the PostgreSQL server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

DELAY_MS=${DELAY_MS:-0.5}
PG_PORT=${PG_PORT:-55432}
PROXY_PORT=${PROXY_PORT:-55433}
BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
DATA=$(mktemp -d -t seismo-remote-db.XXXXXX)
chown postgres "$DATA"
PROXY_PID=""

as_postgres() { su postgres -s /bin/sh -c "$*"; }

cleanup() {
    local status=$?
    [[ -n "$PROXY_PID" ]] && kill "$PROXY_PID" 2>/dev/null || true
    [[ -f "$DATA/pg/postmaster.pid" ]] && as_postgres "$BIN/pg_ctl -D '$DATA/pg' stop -m fast" >/dev/null || true
    rm -rf "$DATA"
    exit "$status"
}
trap cleanup EXIT

[[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --example delay_proxy
echo "== a throwaway cluster on 127.0.0.1:$PG_PORT"
as_postgres "$BIN/initdb -D '$DATA/pg' -U postgres -A trust" >/dev/null
as_postgres "$BIN/pg_ctl -D '$DATA/pg' -l '$DATA/pg.log' -w start \
    -o '-p $PG_PORT -k $DATA -c listen_addresses=127.0.0.1'" >/dev/null

./target/release/examples/delay_proxy "127.0.0.1:$PROXY_PORT" "127.0.0.1:$PG_PORT" "$DELAY_MS" &
PROXY_PID=$!
sleep 0.5
for port in "$PG_PORT" "$PROXY_PORT"; do
    took=$(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -c '\timing on' \
        -c 'select 1' -c 'select 1' -c 'select 1' | awk '/^Time:/ { t = $2 } END { print t }')
    echo "== port $port: select 1 answered in $took ms"
done

PGPORT=$PROXY_PORT bench/fastpath.sh
