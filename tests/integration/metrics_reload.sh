#!/usr/bin/env bash
# metrics_reload.sh DG_BIN - operating the streaming engine, end to end on
# loopback: a private redis-server, `drainguard broker`, and
# `drainguard run --metrics` on a free port. Checks that
#   - /metrics counts what was produced: drainguard_decisions_total by action
#     equals the decisions on the topic, drainguard_events_total by type plus
#     the dead letters equals the input, the rejects equal the dead letters;
#   - /healthz and /readyz answer 200, and /readyz says 503 with a reason once
#     Redis is gone;
#   - SIGHUP with a valid changed rule file swaps the rules between batches:
#     later decisions carry the new rules_version, drainguard_rules_info
#     shows it, the reload is counted ok;
#   - SIGHUP with a broken rule file is refused: the error is logged as
#     FILE:LINE:COL, counted in drainguard_rule_reloads_total{result="refused"},
#     and the engine keeps deciding with the previous version;
#   - SIGTERM still stops it with exit status 0.
# Everything it starts is stopped on exit. Needs curl, awk, sed, sort.
set -u
. "$(dirname "$0")/lib.bash"
dg_setup metrics_reload "$@"
command -v curl >/dev/null || { echo "metrics_reload: curl missing"; exit 1; }

# http PATH: the body; HTTP_CODE gets the status
http() {
    local out
    out=$(curl -s -m 5 -w '\n%{http_code}' "http://127.0.0.1:$MPORT$1" 2>/dev/null) || out=$'\n000'
    HTTP_CODE=${out##*$'\n'}
    HTTP_BODY=${out%$'\n'*}
    HTTP_BODY=${HTTP_BODY%$'\n'}
}
scrape() { http /metrics && printf '%s\n' "$HTTP_BODY" >"$T/metrics.txt"; }
# metric NAME{LABELS}: its value in the last scrape (0 when absent)
metric() {
    awk -v k="$1" '$1 == k { v = $2 } END { printf "%d\n", v + 0 }' "$T/metrics.txt"
}
# sum NAME: the sum over every series of a family
msum() {
    awk -v n="$1" 'index($1, n "{") == 1 || $1 == n { s += $2 } END { printf "%d\n", s + 0 }' "$T/metrics.txt"
}
# actions FILE: "action count" lines for the decisions in FILE (the first
# "action" of a line is the decision's; the rules' come after it)
actions() {
    awk '{ match($0, /"action":"[a-z]+"/); print substr($0, RSTART + 10, RLENGTH - 11) }' "$1" |
        sort | uniq -c | awk '{ print $2, $1 }'
}
metric_actions() {
    for a in allow review hold freeze; do
        n=$(metric "drainguard_decisions_total{action=\"$a\"}")
        [ "$n" -gt 0 ] && echo "$a $n"
    done
}
# copy N: the demo events moved N days later, every id suffixed -rN (fresh
# event_ids, withdrawal ids and tx hashes)
copy() {
    local day
    day=$(printf '%02d' $((7 + $1)))
    sed -e "s/\"2019-05-07T/\"2019-05-${day}T/g" \
        -e "s/\"\\(event_id\\|tx_hash\\)\":\"\\([^\"]*\\)\"/\"\\1\":\"\\2-r$1\"/g" \
        -e "s/\"\\(wd-[^\"]*\\)\"/\"\\1-r$1\"/g" "$DEMO"
}
version_of() { sed -n 's/.*"rules_version":"\([^"]*\)".*/\1/p' "$1" | sort -u; }

dg_start_redis tcp || die "redis-server started"
dg_start_broker || die "broker started"
ok "redis on $REDIS_ADDR, broker on $B"

# the rules the engine runs: a copy we can rewrite
RULES=$T/rules.yaml
cp rules/default.yaml "$RULES"
dg_engine_config "$T/run.yaml" "mr:" 100
MPORT=$(dg_free_port)

N=$(wc -l <"$DEMO")
produce_demo() { "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$DEMO" --key-field account_id >/dev/null 2>>"$T/produce.err"; }
check "events produced ($N)" produce_demo
"$BIN" run --config "$T/run.yaml" --group mr --metrics "127.0.0.1:$MPORT" >"$T/run.out" 2>"$T/run.err" &
RUN=$!
dg_track $RUN
healthy() { http /healthz && [ "$HTTP_CODE" = 200 ]; }
dg_wait_until 30 healthy || die "/healthz answers 200"
ok "/healthz answers 200 on port $MPORT"

# 1. the first day, with the shipped rules
replay_n=$("$BIN" replay --rules "$RULES" --input "$DEMO" --output "$T/replay.jsonl" --quiet 2>/dev/null; wc -l <"$T/replay.jsonl")
"$BIN" consume --brokers "$B" --topic withdrawal-decisions --count "$replay_n" --timeout 60s \
    --output "$T/dec1.jsonl" 2>>"$T/consume.err"
D1=$(lines "$T/dec1.jsonl")
check "all $replay_n decisions of day one published (got $D1)" [ "$D1" -eq "$replay_n" ]
V1=$(version_of "$T/dec1.jsonl")
# the registry gets a batch's figures right after its delivery report
counted() { scrape && [ "$(msum drainguard_decisions_total)" -ge "$1" ]; }
dg_wait_until 10 counted "$D1"
check "drainguard_decisions_total sums to $D1 (got $(msum drainguard_decisions_total))" \
    [ "$(msum drainguard_decisions_total)" -eq "$D1" ]
actions "$T/dec1.jsonl" | sort >"$T/want-actions"
metric_actions | sort >"$T/got-actions"
check "decisions_total by action equals the topic's ($(tr '\n' ' ' <"$T/want-actions"))" \
    cmp -s "$T/want-actions" "$T/got-actions"
"$BIN" consume --brokers "$B" --topic withdrawal-events-dlq --timeout 3s --output "$T/dlq.jsonl" 2>/dev/null
DLQ=$(lines "$T/dlq.jsonl")
types_ok=1
for ty in $(sed -n 's/.*"type":"\([^"]*\)".*/\1/p' "$DEMO" | sort -u); do
    want=$(grep -c "\"type\":\"$ty\"" "$DEMO")
    bad=$(grep -c "\"type\":\"$ty\"" "$T/dlq.jsonl")
    got=$(metric "drainguard_events_total{type=\"$ty\"}")
    [ $((got + bad)) -eq "$want" ] || { types_ok=0; echo "  $ty: input $want, events_total $got, dead letters $bad"; }
done
check "events_total by type + dead letters equals the input's types" [ $types_ok -eq 1 ]
check "rejects_total equals the $DLQ dead letters" [ "$(msum drainguard_rejects_total)" -eq "$DLQ" ]
check "drainguard_dead_letters_total is $DLQ" [ "$(metric drainguard_dead_letters_total)" -eq "$DLQ" ]
check "rule hits are counted by rule and mode" \
    grep -q '^drainguard_rule_hits_total{rule="coordinated-destination",mode="enforce"} [1-9]' "$T/metrics.txt"
# the freezes in Redis are counted every 5 s, consumer lag every second
one_freeze() { scrape && [ "$(msum drainguard_active_freezes)" -eq 1 ]; }
check "one freeze in force (drainguard_active_freezes, read from Redis)" dg_wait_until 15 one_freeze
check "one freeze placed" [ "$(msum drainguard_freezes_placed_total)" -eq 1 ]
check "the freeze is logged once, with scope, key and rule" \
    [ "$(count_in "$T/run.out" "freeze placed: destination 'bc1q-thief-7000btc' by rule 'coordinated-destination'")" -eq 1 ]
check "decision latency histogram has one observation per decision" \
    [ "$(metric drainguard_decision_latency_seconds_count)" -eq "$D1" ]
check "latency histogram is cumulative, ending at +Inf" \
    grep -q "^drainguard_decision_latency_seconds_bucket{le=\"+Inf\"} $D1\$" "$T/metrics.txt"
check "batch decide histogram and Redis ping are exported" \
    [ "$(metric drainguard_batch_decide_seconds_count)" -ge 1 -a "$(metric drainguard_redis_ping_seconds_count)" -ge 1 ]
no_lag() { scrape && grep -q '^drainguard_consumer_lag{topic="withdrawal-events",partition="0"} 0$' "$T/metrics.txt"; }
check "consumer lag of partition 0 comes down to 0" dg_wait_until 10 no_lag
check "rules_info names the running version $V1" grep -q "^drainguard_rules_info{version=\"$V1\"} 1$" "$T/metrics.txt"
check "every series name has the drainguard_ prefix" \
    [ "$(grep -v '^#' "$T/metrics.txt" | grep -vc '^drainguard_')" -eq 0 ]
check "counters end in _total" \
    [ "$(grep '^# TYPE .* counter$' "$T/metrics.txt" | awk '$3 !~ /_total$/' | wc -l)" -eq 0 ]
http /readyz
check "/readyz answers 200 ready ($HTTP_CODE $HTTP_BODY)" [ "$HTTP_CODE" = 200 -a "$HTTP_BODY" = ready ]
http /nope
check "an unknown path is 404" [ "$HTTP_CODE" = 404 ]

# 2. a valid changed rule set: a threshold moved
sed -i 's/amount_usd >= 1000 and not acct_dest_seen_90d/amount_usd >= 1500 and not acct_dest_seen_90d/' "$RULES"
V2=$("$BIN" replay --rules "$RULES" --input "$DEMO" --output "$T/replay2.jsonl" --quiet 2>/dev/null && version_of "$T/replay2.jsonl")
check "the changed file has another version ($V2)" [ -n "$V2" -a "$V2" != "$V1" ]
kill -HUP $RUN
check "the reload is logged ($V1 -> $V2)" wait_for "$T/run.out" "rules reloaded: version $V1 -> $V2" 20
copy 1 >"$T/day2.jsonl"
"$BIN" produce --brokers "$B" --topic withdrawal-events --input "$T/day2.jsonl" --key-field account_id \
    >/dev/null 2>&1
"$BIN" consume --brokers "$B" --topic withdrawal-decisions --count $((2 * D1)) --timeout 60s \
    --output "$T/dec2.jsonl" 2>>"$T/consume.err"
grep -- '-r1"' "$T/dec2.jsonl" >"$T/day2-dec.jsonl"
check "day two decided ($(lines "$T/day2-dec.jsonl") decisions)" [ "$(lines "$T/day2-dec.jsonl")" -eq "$D1" ]
check "every decision of day two carries the new rules_version" \
    [ "$(version_of "$T/day2-dec.jsonl")" = "$V2" ]
dg_wait_until 10 counted $((2 * D1))
check "rules_info shows $V2 only" \
    [ "$(grep '^drainguard_rules_info' "$T/metrics.txt")" = "drainguard_rules_info{version=\"$V2\"} 1" ]
check "the reload is counted ok" [ "$(metric 'drainguard_rule_reloads_total{result="ok"}')" -eq 1 ]
# day two's decisions depend on day one's windows (90-day histories,
# near-threshold counts): equal to a replay of both days with the new rules,
# unlike a replay of day two alone
nodat() { sed -e 's/,"decided_at":"[^"]*"//' "$@" | sort; }
cat "$DEMO" "$T/day2.jsonl" >"$T/days12.jsonl"
"$BIN" replay --rules "$RULES" --input "$T/days12.jsonl" --output "$T/rep12.jsonl" --quiet 2>/dev/null
"$BIN" replay --rules "$RULES" --input "$T/day2.jsonl" --output "$T/rep2.jsonl" --quiet 2>/dev/null
grep -- '-r1"' "$T/rep12.jsonl" | nodat >"$T/want2"
nodat "$T/day2-dec.jsonl" >"$T/got2"
check "window state survived the reload: day two equals a replay of days one and two" \
    cmp -s "$T/want2" "$T/got2"
check "(and differs from a replay of day two alone)" \
    bash -c '! cmp -s "$1" <(sed -e "s/,\"decided_at\":\"[^\"]*\"//" "$2" | sort)' _ "$T/got2" "$T/rep2.jsonl"

# 3. a broken rule file: a misspelt key in the first hold rule
cp "$RULES" "$T/good.yaml"
BAD_LINE=$(grep -n '^    action: hold$' "$RULES" | head -1 | cut -d: -f1)
sed -i "${BAD_LINE}s/action:/actoin:/" "$RULES"
kill -HUP $RUN
check "the refusal is logged" wait_for "$T/run.err" "rule reload refused (SIGHUP): [0-9]* errors*; still running rules version $V2" 20
check "the error names FILE:LINE:COL ($RULES:$BAD_LINE:5)" grep -q -- "$RULES:$BAD_LINE:5: " "$T/run.err"
scrape
check "the refusal is counted" [ "$(metric 'drainguard_rule_reloads_total{result="refused"}')" -eq 1 ]
check "rules_info still shows $V2" grep -q "^drainguard_rules_info{version=\"$V2\"} 1$" "$T/metrics.txt"
copy 2 >"$T/day3.jsonl"
"$BIN" produce --brokers "$B" --topic withdrawal-events --input "$T/day3.jsonl" --key-field account_id \
    >/dev/null 2>&1
"$BIN" consume --brokers "$B" --topic withdrawal-decisions --count $((3 * D1)) --timeout 60s \
    --output "$T/dec3.jsonl" 2>>"$T/consume.err"
grep -- '-r2"' "$T/dec3.jsonl" >"$T/day3-dec.jsonl"
check "the engine kept deciding ($(lines "$T/day3-dec.jsonl") decisions of day three)" \
    [ "$(lines "$T/day3-dec.jsonl")" -eq "$D1" ]
check "with the previous version $V2" [ "$(version_of "$T/day3-dec.jsonl")" = "$V2" ]

# 4. totals over the three days
dg_wait_until 10 counted $((3 * D1))
actions "$T/dec3.jsonl" | sort >"$T/want-actions"
metric_actions | sort >"$T/got-actions"
check "decisions_total by action equals the topic's after three days ($(lines "$T/dec3.jsonl"))" \
    cmp -s "$T/want-actions" "$T/got-actions"
check "no event counted twice" [ "$(metric drainguard_duplicate_events_total)" -eq 0 ]

# 5. readiness follows Redis
kill -STOP "$REDIS_PID"
notready() { http /readyz && [ "$HTTP_CODE" = 503 ]; }
check "/readyz answers 503 while Redis is stopped" dg_wait_until 15 notready
check "and says why ($HTTP_BODY)" grep -q "state backend unavailable" <<<"$HTTP_BODY"
http /healthz
check "/healthz still answers 200" [ "$HTTP_CODE" = 200 ]
kill -CONT "$REDIS_PID"
readyagain() { http /readyz && [ "$HTTP_CODE" = 200 ]; }
check "/readyz answers 200 again once Redis is back" dg_wait_until 15 readyagain

kill -TERM $RUN
wait $RUN
rc=$?
check "run exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
finish
