#!/usr/bin/env bash
# delivery.sh DG_BIN - decisions that cannot be delivered. A private
# redis-server and `drainguard broker --control`; the decisions topic loses
# its partition leaders before the engine starts, so every decision times
# out (kafka.producer.message.timeout.ms 1500). Checks that
#   - the engine says which batch was not delivered, keeps retrying, and
#     publishes nothing while the topic has no leader;
#   - SIGTERM still exits 0, and commits no offset of an undelivered batch:
#     once the leaders are back, a second engine in the same group reads
#     every event again (their state was committed, so they are
#     redeliveries) and publishes a decision for every withdrawal and
#     outflow, equal to replay's;
#   - nothing was counted twice: the window values in Redis equal a memory
#     replay's.
set -u
. "$(dirname "$0")/lib.bash"
dg_setup delivery "$@"

P=dl:
dg_make_events "$T/events.jsonl" 2
dg_replay "$T/events.jsonl" "$T/replay.jsonl" "$T/replay.win" || die "memory replay runs"
dg_counts "$T/replay.jsonl"

dg_start_redis unix || die "redis-server started"
mkfifo "$T/control"
"$BIN" broker --control <"$T/control" >"$T/broker.out" 2>"$T/broker.err" &
dg_track $!
exec 7>"$T/control" # held open: the broker reads commands until it closes
wait_for "$T/broker.out" '^127\.0\.0\.1:[0-9]' 30 || die "broker started"
B=$(head -1 "$T/broker.out")
check "events produced" "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$T/events.jsonl" \
    --key-field account_id 2>"$T/produce.err"

echo "leader withdrawal-decisions * none" >&7
check "the decisions topic has no leader" wait_for "$T/broker.out" "ok leader withdrawal-decisions/\* none" 10

dg_engine_config "$T/run.yaml" "$P" 50 producer.message.timeout.ms=1500
"$BIN" run --config "$T/run.yaml" --group delivery >"$T/run1.out" 2>"$T/run1.err" &
RUN=$!
dg_track $RUN
check "the engine reports decisions not delivered" wait_for "$T/run1.err" "not delivered" 30
check "...and tries again" dg_wait_until 30 sh -c "[ \$(grep -c 'not delivered' '$T/run1.err') -ge 2 ]"
check "the state of decided events is in Redis" redis_count_ge "${P}e:*" 1
kill -TERM $RUN
wait $RUN
rc=$?
check "SIGTERM while deliveries fail: exit 0 (got $rc)" [ $rc -eq 0 ]

echo "leader withdrawal-decisions * 1" >&7
check "the decisions topic has its leader back" wait_for "$T/broker.out" "ok leader withdrawal-decisions/\* 1" 10
dg_consume withdrawal-decisions "$T/none.jsonl" 3s
check "nothing was published while the topic had no leader" [ "$(lines "$T/none.jsonl")" -eq 0 ]

"$BIN" run --config "$T/run.yaml" --group delivery >"$T/run2.out" 2>"$T/run2.err" &
RUN=$!
dg_track $RUN
check "after the leaders are back: all $N decisions published" "$BIN" consume --brokers "$B" \
    --topic withdrawal-decisions --count "$N" --timeout 60s --output "$T/run.jsonl"
sleep 1
kill -TERM $RUN
wait $RUN
rc=$?
check "the second engine exits 0 (got $rc)" [ $rc -eq 0 ]
redelivered=$(sed -n 's/.* \([0-9]*\) redelivered events.*/\1/p' "$T/run2.out")
check "the second engine read the undelivered events again (${redelivered:-none} redelivered): no offset was committed for them" \
    [ "${redelivered:-0}" -gt 0 ]
strip "$T/run.jsonl" | sort -u >"$T/run.sorted"
strip "$T/replay.jsonl" >"$T/replay.sorted"
check "the decisions equal replay's" diff -q "$T/run.sorted" "$T/replay.sorted"
dg_check_redis_state "$T/events.jsonl" "$P" "$T/replay.win" "$VALID"
exec 7>&-
finish
