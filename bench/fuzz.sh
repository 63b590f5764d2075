#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes (fuzz/fuzz_targets/*.rs, cargo-fuzz and
# libFuzzer) for a bounded time each and prints, per target: executions, executions per
# second, crashes. The corpus of each target is kept in fuzz/corpus/<target>/ (gitignored)
# and grows from run to run; it is seeded from tests/fixtures/stacktraces and a few
# hand-written payloads. A crash leaves its input in fuzz/artifacts/<target>/; turn it into
# a regression test, then fix it.
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly
# flags. No sanitizer (`--sanitizer none`): the code is safe Rust, so what is looked for is
# panics, overflows (debug assertions are on), endless loops and runaway memory.
#
# Environment (all optional): FUZZ_SECONDS=60 (per target), TARGETS="envelope store_json
# stored_payload otlp_protobuf otlp_json stacktrace spool", FUZZ_MAX_LEN=65536, FUZZ_RSS_MB=2048.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TARGETS=${TARGETS:-"envelope store_json stored_payload otlp_protobuf otlp_json stacktrace spool"}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-65536}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
export RUSTC_BOOTSTRAP=1

seed() {
    local dir=corpus/$1
    mkdir -p "$dir"
    case $1 in
        envelope)
            printf '{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"event","length":41}\n{"message":"hello","level":"error","x":1}\n' >"$dir/seed-envelope"
            printf '{}\n{"type":"event"}\n{"exception":{"values":[{"type":"E","value":"v","stacktrace":{"frames":[{"function":"f","in_app":true}]}}]}}\n' >"$dir/seed-envelope-nolength"
            ;;
        store_json | stored_payload)
            printf '{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","timestamp":1700000000.5,"platform":"python","level":"error","tags":{"a":"b"},"exception":{"values":[{"type":"ValueError","value":"bad password=x","stacktrace":{"frames":[{"function":"f","module":"m","filename":"m.py","lineno":3,"in_app":true,"vars":{"Authorization":"Bearer x"}}]}}]},"request":{"headers":[["Cookie","a=b"]],"url":"https://u:p@h/?token=1"},"user":{"ip_address":"{{auto}}"}}' >"$dir/seed-event"
            printf '{"user":{"id":"1","ip_address":"10.1.2.3"},"request":{"data":{"password":"hunter2"}},"extra":{"k":{"token":"a","token":"b"}},"request":{"url":"https://h/"}}' >"$dir/seed-repeated-keys"
            # A repeated key makes the payload be serialized from its tree: this number read
            # back one unit in the last place off before serde_json's float_roundtrip was on
            # in the binary (the test build always had it, so only this target can see it).
            printf '{"n":170555555555555555555555555555555555555500,"n":1,"x":{"n":170555555555555555555555555555555555555500}}' >"$dir/seed-long-number"
            ;;
        otlp_json)
            printf '{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":17,"body":{"stringValue":"boom"},"attributes":[{"key":"exception.type","value":{"stringValue":"ValueError"}},{"key":"exception.stacktrace","value":{"stringValue":"Traceback (most recent call last):\\n  File \\"a.py\\", line 1, in f\\nValueError: x"}}]}]}]}]}' >"$dir/seed-logs"
            printf '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000","status":{"code":2},"events":[{"name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"E"}}]}]}]}]}]}' >"$dir/seed-traces"
            ;;
        stacktrace)
            for file in ../tests/fixtures/stacktraces/*; do
                # The first byte picks the language; 0 lets the parser detect it.
                { printf '\x00'; cat "$file"; } >"$dir/seed-$(basename "$file")"
            done
            ;;
        *) ;;
    esac
}

cargo fuzz build --sanitizer none -O >/dev/null

printf '%-14s %12s %10s %8s\n' target executions exec/s crashes
for target in $TARGETS; do
    seed "$target"
    mkdir -p "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    log=$(mktemp)
    # libFuzzer stops at the first crash; its exit status is not ours.
    cargo fuzz run --sanitizer none -O "$target" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -max_len="$FUZZ_MAX_LEN" \
        -rss_limit_mb="$FUZZ_RSS_MB" -timeout=10 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || true
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    after=$(find "artifacts/$target" -type f | wc -l)
    printf '%-14s %12s %10s %8s\n' "$target" "${runs:-0}" "${rate:-0}" "$((after - before))"
    if ((after > before)); then
        grep -m1 -A3 'panicked\|ERROR: libFuzzer' "$log" | sed 's/^/    /' || true
    fi
    rm -f "$log"
done
