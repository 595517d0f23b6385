#!/usr/bin/env bash
# kill9.sh DG_BIN - SIGKILL of `drainguard run` mid-stream, then a restart in
# the same consumer group, on a private redis-server (unix socket) and
# `drainguard broker`. Twelve day-shifted copies of the demo events (3,972
# messages), batches of 2 and offsets auto-committed every 500 ms, so that
# the engine is killed with some batches decided and committed, some decided
# (in Redis) but not committed, and some not decided. Checks that
#   - the kill came mid-stream: some but not all events decided;
#   - after the restart every withdrawal and outflow has a decision, equal
#     to replay's (by event_id, without the wall-clock decided_at);
#   - the restarted engine met redelivered events, and every decision that
#     is on the topic twice is the same bytes apart from decided_at (same
#     decision_id, same action, same rules): the stored decision was
#     republished, not a new one;
#   - the window values in Redis equal a clean (memory replay) run's, so no
#     redelivered event was counted twice.
set -u
. "$(dirname "$0")/lib.bash"
dg_setup kill9 "$@"

P=k9:
dg_make_events "$T/events.jsonl" 12
dg_replay "$T/events.jsonl" "$T/replay.jsonl" "$T/replay.win" || die "memory replay runs"
dg_counts "$T/replay.jsonl"
check "replay decides $N events (at least the 12 * 281 withdrawals and outflows)" [ "$N" -ge $((12 * 281)) ]

dg_start_redis unix || die "redis-server started"
dg_start_broker || die "broker started"
check "events produced" "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$T/events.jsonl" \
    --key-field account_id 2>"$T/produce.err"

dg_engine_config "$T/run.yaml" "$P" 2 consumer.auto.commit.interval.ms=500
"$BIN" run --config "$T/run.yaml" --group kill9 >"$T/run1.out" 2>"$T/run1.err" &
RUN=$!
dg_track $RUN
# a quarter of the events decided (recorded in Redis), then SIGKILL
if ! dg_wait_until 90 redis_count_ge "${P}e:*" $((VALID / 4)); then
    die "the engine decides a quarter of the events within 90 s"
fi
kill -KILL $RUN
wait $RUN 2>/dev/null
K1=$(redis_count "${P}e:*")
check "killed mid-stream: $K1 of $VALID events decided" between 0 "$K1" "$VALID"
dg_consume withdrawal-decisions "$T/before.jsonl"
D1=$(lines "$T/before.jsonl")
check "some but not all decisions arrived before the kill ($D1 of $N)" between 0 "$D1" "$N"

# the restart: same group, same prefix
"$BIN" run --config "$T/run.yaml" --group kill9 >"$T/run2.out" 2>"$T/run2.err" &
RUN=$!
dg_track $RUN
check "the restarted engine decides the rest" dg_wait_until 120 redis_count_ge "${P}e:*" "$VALID"
# SIGTERM finishes the batch in hand (delivered, committed): after exit 0
# every decision the engine made is on the topic
sleep 1
kill -TERM $RUN
wait $RUN
rc=$?
check "restarted run exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
check "restarted run logged no error" [ ! -s "$T/run2.err" ]
redelivered=$(sed -n 's/.* \([0-9]*\) redelivered events.*/\1/p' "$T/run2.out")
check "the restart met redelivered events (${redelivered:-none}): they are not new" [ "${redelivered:-0}" -gt 0 ]

dg_consume withdrawal-decisions "$T/all.jsonl" 5s
total=$(lines "$T/all.jsonl")
event_ids "$T/all.jsonl" | sort -u >"$T/ids"
check "every withdrawal and outflow has a decision ($(lines "$T/ids") of $N; $((total - N)) on the topic twice)" \
    cmp -s "$T/ids" <(event_ids "$T/replay.jsonl" | sort -u)
strip "$T/all.jsonl" | uniq >"$T/all.sorted"
strip "$T/replay.jsonl" >"$T/replay.sorted"
check "each event's decisions are one and the same apart from decided_at" \
    [ "$(lines "$T/all.sorted")" -eq "$(lines "$T/ids")" ]
check "the decisions equal replay's" diff -q "$T/all.sorted" "$T/replay.sorted"
# redelivered decisions come from Redis, so even decided_at should repeat
sort "$T/all.jsonl" | uniq -d >"$T/twice"
echo "# $(lines "$T/twice") decisions republished with identical bytes (decided_at included)," \
    "$((total - N - $(lines "$T/twice"))) with another decided_at"

dg_check_redis_state "$T/events.jsonl" "$P" "$T/replay.win" "$VALID" "after kill -9 and restart: "
finish
