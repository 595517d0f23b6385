#!/usr/bin/env bash
# run_basic.sh DG_BIN - the streaming engine end to end on loopback:
# `drainguard broker`, the demo events produced through a real Kafka client,
# `drainguard run --state memory`, and checks that
#   - run's decisions equal replay's on the same events (by event_id, with
#     the wall-clock decided_at removed),
#   - SIGTERM stops it with exit status 0,
#   - the invalid line is in the dead-letter topic, unchanged, with its
#     dg-reason header,
#   - a second run in the same group decides nothing new (offsets were
#     committed).
# Everything it starts is stopped on exit. Needs bash, sed, sort, diff.
set -u
BIN=${1:?usage: run_basic.sh path/to/drainguard}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
cd "$(dirname "$0")/../.."
EVENTS=tests/demo/events.jsonl
RULES=rules/default.yaml
T=$(mktemp -d "${TMPDIR:-/tmp}/dg-run-basic.XXXXXX")
PIDS=()
pass=0
fail=0

cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [ "$fail" -eq 0 ]; then rm -rf "$T"; else echo "run_basic: logs kept in $T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { pass=$((pass + 1)); echo "ok   - $1"; }
not_ok() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
    echo "run_basic: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

# wait_for FILE PATTERN SECONDS: until a line of FILE matches
wait_for() {
    local i=0
    while [ $i -lt $(($3 * 10)) ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# 1. the broker, on a port of its own choosing
"$BIN" broker >"$T/broker.out" 2>"$T/broker.err" &
PIDS+=($!)
if ! wait_for "$T/broker.out" '^127\.0\.0\.1:[0-9]' 20; then
    not_ok "broker started"
    finish
fi
B=$(head -1 "$T/broker.out")
ok "broker started on $B"

# 2. what replay decides on the same events
"$BIN" replay --rules "$RULES" --input "$EVENTS" --output "$T/replay.jsonl" --quiet 2>/dev/null
N=$(wc -l <"$T/replay.jsonl")
check "replay decides $N events (281 expected)" [ "$N" -eq 281 ]

# 3. the events, keyed by account
check "events produced" "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$EVENTS" \
    --key-field account_id

# 4. the engine, until every decision arrived. A config file, with flags
# over it. The mock broker keeps a group "rebalancing" for the session
# timeout after its last member leaves, so the second run below would wait
# about 45 s with the default; 6 s keeps the test short.
cat >"$T/run.yaml" <<YAML
brokers: $B
group: not-this-one        # --group below overrides it
rules: $PWD/$RULES
state: memory
kafka:
  client.id: run-basic
  consumer:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 1000
YAML
"$BIN" run --config "$T/run.yaml" --group run-basic >"$T/run1.out" 2>"$T/run1.err" &
RUN=$!
PIDS+=($RUN)
check "all $N decisions published" "$BIN" consume --brokers "$B" --topic withdrawal-decisions \
    --count "$N" --timeout 60s --output "$T/run.jsonl"
# give the engine a moment to store the last batch's offsets, then stop it
sleep 1
kill -TERM $RUN
wait $RUN
rc=$?
check "run exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
check "run logged its shutdown" grep -q "shutting down" "$T/run1.out"
check "run logged its configuration" grep -q "^drainguard run: state: memory" "$T/run1.out"
check "flags override the file" grep -q "group: run-basic" "$T/run1.out"

# 5. the same decisions as replay, by event_id
strip() { sed -e 's/,"decided_at":"[^"]*"//' "$1" | sort; }
strip "$T/run.jsonl" >"$T/run.sorted"
strip "$T/replay.jsonl" >"$T/replay.sorted"
check "run's decisions equal replay's" diff -q "$T/run.sorted" "$T/replay.sorted"
# (the hold of an invalid event has none yet: see the pipeline's reject path)
check "every decision of a valid event has decided_at" \
    [ "$(grep -v '"dg:invalid-event"' "$T/run.jsonl" | grep -vc '"decided_at":"')" -eq 0 ]
ids_run=$(sed -n 's/.*"event_id":"\([^"]*\)".*/\1/p' "$T/run.jsonl" | sort | uniq -d | wc -l)
check "no event decided twice" [ "$ids_run" -eq 0 ]

# 6. the dead letter: the invalid line, unchanged, with its reason
"$BIN" consume --brokers "$B" --topic withdrawal-events-dlq --timeout 3s --with-headers \
    --output "$T/dlq.jsonl" 2>/dev/null
check "one dead letter" [ "$(wc -l <"$T/dlq.jsonl")" -eq 1 ]
check "dead letter has dg-reason bad_value" grep -q '"dg-reason":"bad_value"' "$T/dlq.jsonl"
check "dead letter has dg-field amount" grep -q '"dg-field":"amount"' "$T/dlq.jsonl"
check "dead letter has dg-source" grep -q '"dg-source":"withdrawal-events/0/150"' "$T/dlq.jsonl"
"$BIN" consume --brokers "$B" --topic withdrawal-events-dlq --timeout 3s --output "$T/dlq.raw" 2>/dev/null
bad=$(grep -n '"amount":"-3"' "$EVENTS" | head -1 | cut -d: -f2-)
check "dead letter holds the original bytes" [ "$(cat "$T/dlq.raw")" = "$bad" ]

# 7. a second run in the same group starts after the committed offsets
"$BIN" run --config "$T/run.yaml" --group run-basic >"$T/run2.out" 2>"$T/run2.err" &
RUN=$!
PIDS+=($RUN)
check "second run joins the group" wait_for "$T/run2.out" "assigned 1 partition" 30
sleep 2
kill -TERM $RUN
wait $RUN
rc=$?
check "second run exits 0 (got $rc)" [ $rc -eq 0 ]
check "second run decided nothing" grep -q "stopped: 0 batches, 0 inputs" "$T/run2.out"
"$BIN" consume --brokers "$B" --topic withdrawal-decisions --timeout 3s --output "$T/all.jsonl" 2>/dev/null
check "still exactly $N decisions on the topic" [ "$(wc -l <"$T/all.jsonl")" -eq "$N" ]

finish
