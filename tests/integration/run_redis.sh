#!/usr/bin/env bash
# run_redis.sh DG_BIN - `drainguard run` with the Redis backend, end to end
# on loopback: a private redis-server on a unix socket, `drainguard broker`,
# three day-shifted copies of the demo events (windows of 24 h and more carry
# over between copies) plus a message over 64 KiB and one that is not UTF-8,
# produced through a real Kafka client; checks that
#   - run's decisions equal replay's on the same events (by event_id, with
#     the wall-clock decided_at removed), none twice;
#   - the window values the engine left in Redis equal a memory replay's:
#     a replay under the engine's prefix finds every event decided (so it
#     changes nothing) and dumps the same figures;
#   - the freezes are in Redis under the engine's prefix;
#   - the oversized and the non-UTF-8 message are in the dead-letter topic
#     with dg-reason too_large and bad_utf8 (the invalid amount with
#     bad_value);
#   - SIGTERM stops the engine with exit status 0.
set -u
. "$(dirname "$0")/lib.bash"
dg_setup run_redis "$@"

P=rr:
dg_make_events "$T/events.jsonl" 3
# two messages the decoder must refuse whole: 70,000 bytes (limit 64 KiB),
# and an account_id with the bytes ff fe (not UTF-8; it names a withdrawal,
# so it is held as well)
pad=$(head -c 70000 /dev/zero | tr '\0' x)
printf '{"type":"withdrawal.requested","withdrawal_id":"wd-big-1","event_id":"big-1","note":"%s"}\n' \
    "$pad" >>"$T/events.jsonl"
printf '{"type":"withdrawal.requested","withdrawal_id":"wd-utf-1","account_id":"acct-\xff\xfe","event_id":"utf-1","ts":"2019-05-10T12:00:00Z"}\n' \
    >>"$T/events.jsonl"

dg_replay "$T/events.jsonl" "$T/replay.jsonl" "$T/replay.win" || die "memory replay runs"
dg_counts "$T/replay.jsonl"
check "replay decides $N events (at least 3 * 281 + the non-UTF-8 withdrawal)" [ "$N" -ge 844 ]

dg_start_redis unix || die "redis-server started"
dg_start_broker || die "broker started"
ok "redis on $REDIS_ADDR, broker on $B"

check "events produced" "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$T/events.jsonl" \
    --key-field account_id 2>"$T/produce.err"

dg_engine_config "$T/run.yaml" "$P" 7
"$BIN" run --config "$T/run.yaml" --group run-redis >"$T/run.out" 2>"$T/run.err" &
RUN=$!
dg_track $RUN
check "all $N decisions published" "$BIN" consume --brokers "$B" --topic withdrawal-decisions \
    --count "$N" --timeout 60s --output "$T/run.jsonl"
# every valid event is recorded in Redis before its decision goes out; the
# dead letters of the last batch may still be on their way: wait for them
dg_wait_until 30 redis_count_ge "${P}e:*" "$VALID"
sleep 1
kill -TERM $RUN
wait $RUN
rc=$?
check "run exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
check "run logged the Redis backend" grep -q "^drainguard run: state: redis $REDIS_ADDR db 0 prefix '$P'" "$T/run.out"
check "run logged no error" [ ! -s "$T/run.err" ]

strip "$T/run.jsonl" >"$T/run.sorted"
strip "$T/replay.jsonl" >"$T/replay.sorted"
check "run's decisions equal replay's" diff -q "$T/run.sorted" "$T/replay.sorted"
check "no event decided twice" [ "$(event_ids "$T/run.jsonl" | sort | uniq -d | wc -l)" -eq 0 ]
"$BIN" consume --brokers "$B" --topic withdrawal-decisions --timeout 3s --output "$T/all.jsonl" 2>/dev/null
check "exactly $N decisions on the topic" [ "$(lines "$T/all.jsonl")" -eq "$N" ]

dg_check_redis_state "$T/events.jsonl" "$P" "$T/replay.win" "$VALID"
check "window values are not all empty" grep -q '"count":[1-9]' "$T/replay.win"
check "the freeze is in Redis under the engine's prefix" \
    sh -c "redis-cli -s '$REDIS_SOCK' hgetall '${P}freezes' | grep -q '\"rule\":\"coordinated-destination\"'"

"$BIN" consume --brokers "$B" --topic withdrawal-events-dlq --timeout 3s --with-headers \
    --output "$T/dlq.jsonl" 2>/dev/null
check "5 dead letters (3 bad amounts, too large, not UTF-8)" [ "$(lines "$T/dlq.jsonl")" -eq 5 ]
check "3 dead letters with dg-reason bad_value" [ "$(count_in "$T/dlq.jsonl" '"dg-reason":"bad_value"')" -eq 3 ]
check "the message over 64 KiB has dg-reason too_large" \
    sh -c "grep '\"dg-reason\":\"too_large\"' '$T/dlq.jsonl' | grep -q 'wd-big-1'"
check "the non-UTF-8 message has dg-reason bad_utf8" \
    sh -c "grep -a '\"dg-reason\":\"bad_utf8\"' '$T/dlq.jsonl' | grep -aq 'wd-utf-1'"
# the dead letters carry the original bytes (consume prints the values raw)
"$BIN" consume --brokers "$B" --topic withdrawal-events-dlq --timeout 3s --output "$T/dlq.raw" 2>/dev/null
check "the oversized dead letter holds the original 70 KB line" grep -qxF "$(grep big-1 "$T/events.jsonl")" "$T/dlq.raw"
check "the non-UTF-8 dead letter holds the original bytes" grep -aqxF "$(grep -a utf-1 "$T/events.jsonl")" "$T/dlq.raw"
check "the non-UTF-8 withdrawal is held" \
    sh -c "grep '\"withdrawal_id\":\"wd-utf-1\"' '$T/run.jsonl' | grep -q '\"action\":\"hold\"'"

finish
