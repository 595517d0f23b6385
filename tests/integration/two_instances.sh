#!/usr/bin/env bash
# two_instances.sh DG_BIN - two `drainguard run` instances in one consumer
# group, sharing one redis-server (unix socket), against one instance.
#
# What is compared, and why. With several partitions an instance interleaves
# them in whatever order its fetches return, and windows depend on order:
# two runs over a 4-partition topic may legitimately decide differently when
# one window key gets events from several partitions (even two runs of ONE
# instance may). So the input is built so that order across partitions
# cannot matter: eight copies of the demo events, each with its own
# accounts, destinations, wallets and ids (dg_make_events ... split), keyed
# by a "universe" field naming the copy, so every window key and every
# freeze lives in one partition, read in file order by whichever instance
# owns it. On that input the decisions are fully determined, and the test
# compares whole decisions (action, rules, reasons, decision_id), not just
# order-free parts:
#   - the copies spread over at least three of the four partitions (read
#     from the dead letters' dg-source: each copy has one invalid line) and
#     both instances decided some of them;
#   - two instances: every withdrawal and outflow decided, an event that is
#     on the topic twice (redelivered after a rebalance) with the same bytes
#     apart from decided_at, and the decisions equal replay's (by event_id);
#   - one instance over the same topic (another group, prefix and decisions
#     topic) gives the same decisions as the two;
#   - the window values the two left in Redis equal a memory replay's and
#     the single instance's.
# (Concurrent writers on the SAME keys are covered by redis_parity.sh.)
set -u
. "$(dirname "$0")/lib.bash"
dg_setup two_instances "$@"

dg_make_events "$T/events.jsonl" 8 split
dg_replay "$T/events.jsonl" "$T/replay.jsonl" "$T/replay.win" || die "memory replay runs"
dg_counts "$T/replay.jsonl"
check "replay decides $N events (at least the 8 * 281 withdrawals and outflows)" [ "$N" -ge $((8 * 281)) ]

dg_start_redis unix || die "redis-server started"
dg_start_broker --partitions 4 --topics decisions-one,dlq-one || die "broker started"
ok "redis on $REDIS_ADDR, broker on $B with 4 partitions per topic"

# both instances first, so that both own partitions when the events come;
# the single instance (another group, prefix, decisions and dead-letter
# topic) runs at the same time, over the same input topic
dg_engine_config "$T/run.yaml" two: 5
dg_engine_config "$T/one.yaml" one: 5
"$BIN" run --config "$T/one.yaml" --group one --decisions-topic decisions-one --dlq-topic dlq-one \
    >"$T/run-one.out" 2>"$T/run-one.err" &
RUN_one=$!
dg_track $RUN_one
for i in a b; do
    "$BIN" run --config "$T/run.yaml" --group two >"$T/run-$i.out" 2>"$T/run-$i.err" &
    eval "RUN_$i=$!"
    dg_track $!
done
two_each() { # the latest assignment of each instance holds 2 partitions
    local i
    for i in a b; do
        grep 'assigned' "$T/run-$i.out" 2>/dev/null | tail -1 | grep -q 'assigned 2 partitions' || return 1
    done
}
check "the group settles with two partitions per instance" dg_wait_until 60 two_each

check "events produced, keyed by universe" "$BIN" produce --brokers "$B" --topic withdrawal-events \
    --input "$T/events.jsonl" --key-field universe 2>"$T/produce.err"
check "two instances: every event decided" dg_wait_until 90 redis_count_ge "two:e:*" "$VALID"
check "one instance: every event decided" dg_wait_until 90 redis_count_ge "one:e:*" "$VALID"
# Scale down the way an operator does: stop a, let b take over a's
# partitions, then stop b. (SIGTERM to b while the group still rebalances
# after a left makes b's final commit fail with "Group rebalance in
# progress" and b exit 1: librdkafka's mock broker refuses OffsetCommit
# while the group is joining, where a real Kafka broker accepts commits of
# the current generation. Not what is tested here.)
sleep 1
kill -TERM "$RUN_a"
wait "$RUN_a"
rc=$?
check "instance a exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
check "instance b takes over all 4 partitions" wait_for "$T/run-b.out" "assigned 4 partitions" 30
kill -TERM "$RUN_b"
wait "$RUN_b"
rc=$?
check "instance b exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
published=0 # decisions the two published (all acknowledged before exit)
for i in a b; do
    d=$(sed -n 's/.*stopped: [0-9]* batches, [0-9]* inputs, \([0-9]*\) decisions.*/\1/p' "$T/run-$i.out")
    published=$((published + ${d:-0}))
    check "instance $i decided some (${d:-no}) events" [ "${d:-0}" -gt 0 ]
    # the only error allowed: the mock broker refuses offset commits while
    # the group rebalances (real Kafka accepts them from the current
    # generation), so b's revoke-time commit can fail when a leaves
    check "instance $i logged no error (but commits refused during a rebalance)" \
        [ "$(grep -vc 'Group rebalance in progress' "$T/run-$i.err")" -eq 0 ]
done
r=$(sed -n 's/.* \([0-9]*\) redelivered events.*/\1/p' "$T/run-b.out")
echo "# b met ${r:-?} redelivered events after the handover (its own partitions' offsets since the" \
    "last auto-commit, when the mock broker refused its revoke-time commit)"

"$BIN" consume --brokers "$B" --topic withdrawal-events-dlq --count 8 --timeout 30s --with-headers \
    --output "$T/dlq.jsonl" 2>/dev/null
parts=$(sed -n 's/.*"dg-source":"withdrawal-events\/\([0-9]*\)\/.*/\1/p' "$T/dlq.jsonl" | sort -u | wc -l)
check "8 dead letters" [ "$(lines "$T/dlq.jsonl")" -eq 8 ]
check "the 8 copies spread over $parts partitions (at least 3)" [ "$parts" -ge 3 ]

# a rebalance may redeliver a few events (at-least-once): their decisions
# are on the topic twice, the same bytes; compare each event's decision
"$BIN" consume --brokers "$B" --topic withdrawal-decisions --count "$published" --timeout 30s \
    --output "$T/two.jsonl" 2>/dev/null
event_ids "$T/two.jsonl" | sort -u >"$T/two.ids"
check "two instances: every withdrawal and outflow decided ($(lines "$T/two.ids") of $N; $(($(lines "$T/two.jsonl") - N)) on the topic twice)" \
    cmp -s "$T/two.ids" <(event_ids "$T/replay.jsonl" | sort -u)
strip "$T/two.jsonl" | uniq >"$T/two.sorted"
check "two instances: each event's decisions are one and the same apart from decided_at" \
    [ "$(lines "$T/two.sorted")" -eq "$(lines "$T/two.ids")" ]
strip "$T/replay.jsonl" >"$T/replay.sorted"
check "two instances: decisions equal replay's" diff -q "$T/two.sorted" "$T/replay.sorted"
dg_check_redis_state "$T/events.jsonl" two: "$T/replay.win" "$VALID" "two instances: "

# the single instance
kill -TERM $RUN_one
wait $RUN_one
rc=$?
check "one instance exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
check "one instance owned all 4 partitions" grep -q "assigned 4 partitions" "$T/run-one.out"
check "one instance logged no error" [ ! -s "$T/run-one.err" ]
d=$(sed -n 's/.*stopped: [0-9]* batches, [0-9]* inputs, \([0-9]*\) decisions.*/\1/p' "$T/run-one.out")
"$BIN" consume --brokers "$B" --topic decisions-one --count "${d:-1}" --timeout 30s --output "$T/one.jsonl" 2>/dev/null
strip "$T/one.jsonl" | uniq >"$T/one.sorted"
check "two instances decide as one ($(lines "$T/one.sorted") decisions)" diff -q "$T/two.sorted" "$T/one.sorted"
dg_replay "$T/events.jsonl" "$T/dup-one2.jsonl" "$T/one.win" --state redis --redis "$REDIS_ADDR" --redis-prefix one:
check "two instances leave the same window values as one" cmp -s "$T/dup-two:.win" "$T/one.win"
finish
