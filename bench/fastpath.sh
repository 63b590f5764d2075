#!/usr/bin/env bash
# A/B(/C…) of Seismo builds on the ingest benchmark: ROUNDS rounds, each running
# bench/ingest.sh once with every build in BUILDS, in turn (alternating, so drift of the
# shared machine hits them all; each round starts with the next build), with the same
# loadgen. Prints one line per run and concurrency, then the median of each build: stored
# events/s, ack p99, Seismo CPU seconds per 1,000 stored events (utime+stime from
# /proc/<pid>/stat over the run), peak RSS, the events partitions' bytes on disk per event
# (heap+TOAST+indexes, after the run's concurrencies) and the kernel's share of Seismo's CPU
# (stime over utime+stime); and each build's least CPU per 1,000 events over its rounds (a
# busy neighbour only ever adds to it). `load` is the 1-minute load average before each
# run: how busy the machine was.
#
#   BUILDS="before=/path/seismo-a after=/path/seismo-b" LOADGEN_BIN=… bench/fastpath.sh
#   ROUNDS=3 CONCURRENCIES="64 16" DURATION=15   (the defaults)
#   CALLGRIND=1   also the instructions Seismo ran per event, under callgrind (see ingest.sh)
#   DB_SQL_<build>="…"   a schema what-if for that build only (ingest.sh's DB_SQL), e.g.
#                 BUILDS="now=$bin hot=$bin" DB_SQL_hot="alter table issues set (fillfactor = 50)"
set -euo pipefail

BUILDS=${BUILDS:?name=binary pairs, e.g. "before=/tmp/seismo-a after=/tmp/seismo-b"}
LOADGEN_BIN=${LOADGEN_BIN:-./target/release/examples/loadgen}
ROUNDS=${ROUNDS:-3}
CONCURRENCIES=${CONCURRENCIES:-"64 16"}
DURATION=${DURATION:-15}
cd "$(dirname "$0")/.."
RESULTS=$(mktemp -t seismo-fastpath.XXXXXX)
trap 'rm -f "$RESULTS"' EXIT

# The ingest.sh output in file $1 as one line per concurrency, labelled with build $2,
# round $3 and load $4.
summarize() {
    awk -v build="$2" -v round="$3" -v loadavg="$4" '
        # ingest.sh prints loadgen'"'"'s own lines (also `accepted_per_s`) before each
        # result block: only the block'"'"'s lines count.
        /^== / { c = "" }
        /^-- result at concurrency/ { c = $5; order[++n] = c }
        c == "" { next }
        /^accepted_per_s / { rate[c] = $2 }
        /^ack_ms / { split($4, p, "="); p99[c] = p[2] }
        /^cpu_s_per_1k_events / { split($2, s, "="); cpu[c] = s[2]; split($3, s, "="); pg[c] = s[2] }
        /^seismo_peak_rss / { rss[c] = $2 }
        /^events_partitions / { bytes = $4 }
        /^callgrind_instructions_per_event / { instructions[c] = $2 }
        /^seismo_cpu_split / {
            split($2, u, "="); split($3, k, "=")
            if (u[2] + k[2] > 0) kernel[c] = sprintf("%.2f", k[2] / (u[2] + k[2]))
        }
        END {
            for (i = 1; i <= n; i++) {
                c = order[i]
                printf "%s round=%s c=%s events_s=%s p99_ms=%s seismo_cpu_s_per_1k=%s rss_kb=%s bytes_per_event=%s load=%s",
                    build, round, c, rate[c], p99[c], cpu[c], rss[c], bytes, loadavg
                if (c in kernel) printf " kernel_share=%s", kernel[c]
                if (c in pg) printf " postgres_cpu_s_per_1k=%s", pg[c]
                if (c in instructions) printf " instructions_per_event=%s", instructions[c]
                printf "\n"
            }
        }' "$1"
}

read -ra PAIRS <<<"$BUILDS"
for round in $(seq 1 "$ROUNDS"); do
    # Each round starts with the next build, so a machine getting busier or quieter
    # during the session does not always favour the same one.
    for i in "${!PAIRS[@]}"; do
        pair=${PAIRS[$(((i + round - 1) % ${#PAIRS[@]}))]}
        build=${pair%%=*}
        bin=${pair#*=}
        sql_of_build="DB_SQL_${build}"
        load=$(cut -d' ' -f1 /proc/loadavg)
        out=$(mktemp -t seismo-fastpath-run.XXXXXX)
        if ! SKIP_BUILD=1 SEISMO_BIN="$bin" LOADGEN_BIN="$LOADGEN_BIN" CONCURRENCIES="$CONCURRENCIES" \
            DURATION="$DURATION" DB_SQL="${!sql_of_build:-${DB_SQL:-}}" bench/ingest.sh >"$out" 2>&1; then
            cat "$out" >&2
            rm -f "$out"
            exit 1
        fi
        summarize "$out" "$build" "$round" "$load" | tee -a "$RESULTS"
        rm -f "$out"
    done
done

echo "-- median per build and concurrency"
for c in $CONCURRENCIES; do
    for pair in $BUILDS; do
        build=${pair%%=*}
        awk -v b="$build" -v c="c=$c" '$1 == b && $3 == c' "$RESULTS" | awk -v b="$build" -v c="$c" '
            function median(k,    i, j, t, m, v) {
                m = 0
                for (i = 1; i <= NR; i++) v[++m] = col[k, i]
                for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
                return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
            }
            # Every name=value field from the fourth on, but the load average (field 9).
            { for (f = 4; f <= NF; f++) { split($f, kv, "="); name[f] = kv[1]; col[f, NR] = kv[2] + 0 } }
            END {
                printf "%s c=%s", b, c
                for (f = 4; f in name; f++) if (f != 9) printf " %s=%s", name[f], median(f)
                # Noise from a shared machine only adds CPU: the least is the steadiest.
                least = col[6, 1]
                for (i = 2; i <= NR; i++) if (col[6, i] < least) least = col[6, i]
                printf " least_seismo_cpu_s_per_1k=%s\n", least
            }'
    done
done
