#!/usr/bin/env bash
# freezes.sh DG_BIN - freeze administration against running engines:
# redis-server (unix socket), `drainguard broker` (2 partitions per topic)
# and TWO `drainguard run` instances in one consumer group sharing the
# Redis, each publishing to its own decisions topic (decisions-a,
# decisions-b) so that every decision names the instance that made it.
# The withdrawals are keyed by four accounts that the partitioner spreads
# over both partitions, so every phase reaches both instances.
#
#   1. `freezes add destination X` (alice): every withdrawal to X is held,
#      with freezes [{destination, X}] and rule dg:frozen-scope, on both
#      instances; `freezes list` shows it (text and --json);
#   2. `freezes release destination X`: the next withdrawals to X (fresh
#      event_ids) are allowed, on both instances;
#   3. `freezes add global` (bob, "incident"): every withdrawal anywhere is
#      held with freezes [{global, *}]; released; then allowed again;
#   4. refusals: adding a frozen scope and releasing one that is not frozen
#      exit 1 and change nothing (the freezes' version stays);
#   5. a Kafka that cannot be reached: the freeze stands in Redis, exit 3,
#      the audit line on stderr; no audit message;
#   6. a freeze a rule placed (coordinated-destination, three accounts
#      sending $40,000 each to one address) is listed with its rule, "by
#      engine" and the event time, and released like a manual one;
#   7. the audit topic holds every operator change that was acknowledged,
#      with its fields (a release carries the record it lifted), and not
#      the engine's freeze; the freezes' version went up once per change.
# The same events replayed without freezes are all allowed: every hold
# below is the freeze's doing.
set -u
. "$(dirname "$0")/lib.bash"
dg_setup freezes "$@"

P=fz:
X=bc1q-fz-target
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# wd PHASE N DEST: one small withdrawal (no rule of the default pack fires
# on it) from account acct-fz-N to DEST, event_id PHASE-N
wd() {
    printf '{"type":"withdrawal.requested","withdrawal_id":"wd-%s-%s","account_id":"acct-fz-%s","asset":"BTC","chain":"bitcoin","amount":"0.001","amount_usd":50.0,"dest_address":"%s","hot_wallet":"btc-hot-1","balance_usd":9540.14,"channel":"web","event_id":"%s-%s","ts":"%s"}\n' \
        "$1" "$2" "$2" "$3" "$1" "$2" "$NOW"
}
# phase NAME DEST...: four withdrawals (accounts 1-4), each to the next DEST
phase() {
    local name=$1 n=0 d
    shift
    : >"$T/$name.jsonl"
    for n in 1 2 3 4; do
        d=${1:-$X}
        [ $# -gt 1 ] && shift
        wd "$name" "$n" "$d" >>"$T/$name.jsonl"
    done
}
phase p1 "$X"
phase p2 "$X"
phase p3 bc1q-fz-g1 bc1q-fz-g2 "$X" bc1q-fz-g3
phase p4 bc1q-fz-g4
cat "$T"/p[1-4].jsonl >"$T/all.jsonl"
dg_replay "$T/all.jsonl" "$T/replay.jsonl" "$T/replay.win" || die "memory replay runs"
check "without freezes, replay allows all 16 withdrawals" \
    [ "$(count_in "$T/replay.jsonl" '"action":"allow"')" -eq 16 ]

dg_start_redis unix || die "redis-server started"
dg_start_broker --partitions 2 --topics decisions-a,decisions-b,drainguard-audit || die "broker started"
ok "redis on $REDIS_ADDR, broker on $B with 2 partitions per topic"

dg_engine_config "$T/run.yaml" "$P" 5
for i in a b; do
    "$BIN" run --config "$T/run.yaml" --group fz --decisions-topic "decisions-$i" \
        >"$T/run-$i.out" 2>"$T/run-$i.err" &
    dg_track $!
done
one_each() { # the latest assignment of each instance holds 1 partition
    local i
    for i in a b; do
        cat "$T/run-$i.out" "$T/run-$i.err" 2>/dev/null | grep 'assigned [0-9]* partition' | tail -1 |
            grep -q 'assigned 1 partition' || return 1
    done
}
check "the group settles with one partition per instance" dg_wait_until 40 one_each

# the operator's command: the same config file as the engines (redis:,
# brokers), so it talks to their Redis under their prefix
fz() { "$BIN" freezes "$1" --config "$T/run.yaml" "${@:2}"; }
fver() { rcli get "${P}freezes:v"; }
# list_to OUT [--json]: `freezes list` into OUT; fails on a non-zero exit or
# anything on stderr (a sanitizer report, say)
list_to() {
    local out=$1
    shift
    fz list "$@" >"$out" 2>"$out.err" && [ ! -s "$out.err" ]
}
# stored PHASE N: the decision the engine stored for event PHASE-N
stored() { rcli get "${P}e:$1-$2" | sed 's/^D//'; }
# decide PHASE [N]: produce the phase's events, wait until all N (4) are decided
decide() {
    "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$T/$1.jsonl" \
        --key-field account_id 2>>"$T/produce.err" || return 1
    dg_wait_until 30 redis_count_ge "${P}e:$1-*" "${2:-4}"
}
# all_stored PHASE PATTERN: every decision of the phase matches
all_stored() {
    local n
    for n in 1 2 3 4; do stored "$1" "$n" | grep -q -- "$2" || return 1; done
}

check "freezes list runs cleanly" list_to "$T/list0.out"
check "list before: no freezes in force" grep -q '^no freezes in force' "$T/list0.out"

# ---- 1. a manual freeze of destination X ----
fz add destination "$X" --reason "phishing report #4711" --by alice >"$T/add1.out" 2>"$T/add1.err"
rc=$?
check "freezes add destination exits 0 (got $rc)" [ $rc -eq 0 ]
check "add reports the freeze and the audit message" \
    grep -q "^froze destination '$X' (manual, by alice)" "$T/add1.out"
check "the record is in ${P}freezes under 'destination|$X', rule manual, by alice" \
    sh -c "redis-cli -s '$REDIS_SOCK' hget '${P}freezes' 'destination|$X' |
        grep -q '\"rule\":\"manual\",\"reason\":\"phishing report #4711\",.*\"by\":\"alice\"'"
check "the freezes' version went to 1 (got $(fver))" [ "$(fver)" = 1 ]
check "freezes list runs cleanly" list_to "$T/list1.out"
check "list shows the manual freeze" \
    grep -Eq "^destination +$X +manual +alice +[0-9T:.-]+Z +- +phishing report #4711$" "$T/list1.out"
check "freezes list --json runs cleanly" list_to "$T/list1.json" --json
check "list --json gives the stored record" \
    grep -q "{\"scope\":\"destination\",\"key\":\"$X\",\"rule\":\"manual\"" "$T/list1.json"

check "phase 1: four withdrawals to $X decided" decide p1
check "phase 1: all held, with freezes [{destination, $X}] and rule dg:frozen-scope" \
    all_stored p1 "\"action\":\"hold\",\"freezes\":\[{\"scope\":\"destination\",\"key\":\"$X\"}\],\"rules\":\[{\"id\":\"dg:frozen-scope\",\"action\":\"hold\""

fz add destination "$X" --reason again --by mallory >"$T/add1b.out" 2>"$T/add1b.err"
rc=$?
check "adding it again exits 1 (got $rc), naming the freeze in force; version unchanged" \
    sh -c "[ $rc -eq 1 ] && grep -q \"destination '$X' is already frozen (manual by alice\" '$T/add1b.err' &&
        [ \"\$(redis-cli -s '$REDIS_SOCK' get '${P}freezes:v')\" = 1 ]"

# ---- 2. released: the next withdrawals to X go through ----
fz release destination "$X" --reason "false positive, customer verified" --by carol \
    >"$T/rel1.out" 2>"$T/rel1.err"
rc=$?
check "freezes release destination exits 0 (got $rc)" [ $rc -eq 0 ]
check "release reports what it lifted" \
    grep -q "^released destination '$X' (was: manual by alice at .*: phishing report #4711)" "$T/rel1.out"
check "the field is gone and the version went to 2" \
    sh -c "[ -z \"\$(redis-cli -s '$REDIS_SOCK' hget '${P}freezes' 'destination|$X')\" ] &&
        [ \"\$(redis-cli -s '$REDIS_SOCK' get '${P}freezes:v')\" = 2 ]"
check "freezes list runs cleanly" list_to "$T/list2.out"
check "list after the release: no freezes in force" grep -q '^no freezes in force' "$T/list2.out"
check "phase 2: four fresh withdrawals to $X decided" decide p2
check "phase 2: all allowed, no freeze" all_stored p2 '"action":"allow","rules":\[\]'

fz release destination "$X" --reason twice --by carol >"$T/rel1b.out" 2>"$T/rel1b.err"
rc=$?
check "releasing it again exits 1 (got $rc), naming the scope; version unchanged" \
    sh -c "[ $rc -eq 1 ] && grep -q \"destination '$X' is not frozen; nothing released\" '$T/rel1b.err' &&
        [ \"\$(redis-cli -s '$REDIS_SOCK' get '${P}freezes:v')\" = 2 ]"

# ---- 3. a global stop ----
fz add global --reason "incident" --by bob >"$T/add2.out" 2>"$T/add2.err"
rc=$?
check "freezes add global exits 0 (got $rc)" [ $rc -eq 0 ]
check "the record is under 'global|*'" \
    sh -c "redis-cli -s '$REDIS_SOCK' hget '${P}freezes' 'global|*' | grep -q '\"scope\":\"global\",\"key\":\"\*\"'"
check "freezes list runs cleanly" list_to "$T/list3.out"
check "list shows the global freeze" grep -Eq '^global +\* +manual +bob +.* incident$' "$T/list3.out"
check "phase 3: four withdrawals to four destinations decided" decide p3
check "phase 3: all held, with freezes [{global, *}] and rule dg:frozen-scope" \
    all_stored p3 '"action":"hold","freezes":\[{"scope":"global","key":"\*"}\],"rules":\[{"id":"dg:frozen-scope","action":"hold","mode":"enforce","reason":"all withdrawals are frozen (global)"'
fz release global '*' --reason "incident over" --by bob >"$T/rel2.out" 2>"$T/rel2.err"
rc=$?
check "freezes release global '*' exits 0 (got $rc)" [ $rc -eq 0 ]
check "phase 4: four withdrawals decided after the release" decide p4
check "phase 4: all allowed" all_stored p4 '"action":"allow","rules":\[\]'

# ---- 5. Kafka unreachable: the freeze stands, the operator is told ----
DEAD=127.0.0.1:$(dg_free_port)
t0=$SECONDS
fz add account acct-fz-9 --reason "kafka down drill" --by dave --brokers "$DEAD" --audit-timeout 2s \
    >"$T/add3.out" 2>"$T/add3.err"
rc=$?
check "with the brokers unreachable, add exits 3 (got $rc) within $((SECONDS - t0)) s" \
    sh -c "[ $rc -eq 3 ] && [ $((SECONDS - t0)) -lt 15 ]"
check "...the freeze stands in Redis" \
    sh -c "redis-cli -s '$REDIS_SOCK' hexists '${P}freezes' 'account|acct-fz-9' | grep -q 1"
check "...stderr says so and gives the audit line to publish by hand" \
    sh -c "grep -q \"the freeze of account 'acct-fz-9' stands in Redis, but the audit message to 'drainguard-audit' was not delivered\" '$T/add3.err' &&
        grep -q '^{\"op\":\"add\",\"scope\":\"account\",\"key\":\"acct-fz-9\",\"reason\":\"kafka down drill\",\"by\":\"dave\",\"at\":\"' '$T/add3.err'"
fz release account acct-fz-9 --reason "drill over" --by dave >"$T/rel3.out" 2>"$T/rel3.err"
rc=$?
check "...and is released with the brokers back (exit $rc)" [ $rc -eq 0 ]
check "the freezes' version counts the 6 changes (got $(fver))" [ "$(fver)" = 6 ]

# ---- 6. a freeze the engine placed: listed with its rule, released ----
for n in 1 2 3; do
    printf '{"type":"withdrawal.requested","withdrawal_id":"wd-p5-%s","account_id":"acct-fz-%s","asset":"BTC","chain":"bitcoin","amount":"0.7","amount_usd":40000.0,"dest_address":"bc1q-fz-drain","hot_wallet":"btc-hot-1","balance_usd":95400.14,"channel":"web","event_id":"p5-%s","ts":"%s"}\n' \
        "$n" "$n" "$n" "$NOW"
done >"$T/p5.jsonl"
check "phase 5: three accounts send \$40,000 each to bc1q-fz-drain" decide p5 3
check "...coordinated-destination froze it (the engine's record, by engine)" \
    sh -c "redis-cli -s '$REDIS_SOCK' hget '${P}freezes' 'destination|bc1q-fz-drain' |
        grep -q '\"rule\":\"coordinated-destination\",.*\"by\":\"engine\"'"
check "freezes list runs cleanly" list_to "$T/list5.out"
check "list shows the engine's freeze with rule, placed at and event time" \
    grep -Eq "^destination +bc1q-fz-drain +coordinated-destination +engine +[0-9T:.-]+Z +${NOW%Z}Z +3 accounts sent" \
    "$T/list5.out"
fz release destination bc1q-fz-drain --reason "known exchange deposit address" --by erin \
    >"$T/rel5.out" 2>"$T/rel5.err"
rc=$?
check "an engine's freeze is released like a manual one (exit $rc)" \
    sh -c "[ $rc -eq 0 ] && grep -q \"^released destination 'bc1q-fz-drain' (was: rule coordinated-destination by engine\" '$T/rel5.out'"
check "the freezes' version counts the engine's freeze and the release (got $(fver))" [ "$(fver)" = 8 ]

# ---- 7. the audit topic ----
"$BIN" consume --brokers "$B" --topic drainguard-audit --count 6 --timeout 20s --with-headers \
    --output "$T/audit.jsonl" 2>/dev/null
check "6 audit messages: the engine's freeze and the add Kafka refused are not there (got $(lines "$T/audit.jsonl"))" \
    [ "$(lines "$T/audit.jsonl")" -eq 6 ]
check "audit messages are keyed by scope|key (2 for destination|$X, 2 for global|*)" \
    sh -c "[ \$(grep -c '^{\"key\":\"destination|$X\"' '$T/audit.jsonl') -eq 2 ] &&
        [ \$(grep -c '^{\"key\":\"global|\*\"' '$T/audit.jsonl') -eq 2 ]"
"$BIN" consume --brokers "$B" --topic drainguard-audit --count 6 --timeout 20s \
    --output "$T/audit.values" 2>/dev/null
av() { grep -c -- "$1" "$T/audit.values"; }
check "audit: add destination by alice" [ "$(av \
    "^{\"op\":\"add\",\"scope\":\"destination\",\"key\":\"$X\",\"reason\":\"phishing report #4711\",\"by\":\"alice\",\"at\":\"[0-9T:.-]*Z\"}$")" -eq 1 ]
check "audit: release destination by carol, with the released record as previous" [ "$(av \
    "^{\"op\":\"release\",\"scope\":\"destination\",\"key\":\"$X\",\"reason\":\"false positive, customer verified\",\"by\":\"carol\",\"at\":\"[^\"]*\",\"previous\":{\"scope\":\"destination\",\"key\":\"$X\",\"rule\":\"manual\",\"reason\":\"phishing report #4711\",\"ts\":null,\"event_id\":null,\"at\":\"[^\"]*\",\"by\":\"alice\"}}$")" -eq 1 ]
check "audit: add global by bob, reason incident" [ "$(av \
    '^{"op":"add","scope":"global","key":"\*","reason":"incident","by":"bob","at":"[^"]*"}$')" -eq 1 ]
check "audit: release global by bob" [ "$(av \
    '^{"op":"release","scope":"global","key":"\*","reason":"incident over","by":"bob",.*"previous":{"scope":"global","key":"\*","rule":"manual","reason":"incident"')" -eq 1 ]
check "audit: release of account acct-fz-9 (its add is missing: Kafka was down)" \
    sh -c "[ $(av '"op":"release","scope":"account","key":"acct-fz-9"') -eq 1 ] &&
        [ $(av '"op":"add","scope":"account"') -eq 0 ]"

check "audit: release of the engine's freeze by erin, previous naming its rule and event" [ "$(av \
    '^{"op":"release","scope":"destination","key":"bc1q-fz-drain","reason":"known exchange deposit address","by":"erin",.*"previous":{"scope":"destination","key":"bc1q-fz-drain","rule":"coordinated-destination",.*"event_id":"p5-')" -eq 1 ]

# ---- which instance decided what ----
pids=()
for i in a b; do
    "$BIN" consume --brokers "$B" --topic "decisions-$i" --timeout 4s --output "$T/dec-$i.jsonl" \
        2>/dev/null &
    pids+=($!)
done
wait "${pids[@]}"
for p in p1 p2 p3; do
    what=hold
    [ $p = p2 ] && what=allow
    check "$p: both instances decided some ($what): a $(grep -c "\"event_id\":\"$p-" "$T/dec-a.jsonl"), b $(grep -c "\"event_id\":\"$p-" "$T/dec-b.jsonl")" \
        sh -c "grep '\"event_id\":\"$p-' '$T/dec-a.jsonl' | grep -q '\"action\":\"$what\"' &&
            grep '\"event_id\":\"$p-' '$T/dec-b.jsonl' | grep -q '\"action\":\"$what\"'"
done
cat "$T/dec-a.jsonl" "$T/dec-b.jsonl" >"$T/dec.jsonl"
check "19 decisions published ($(lines "$T/dec.jsonl")), one per event" \
    sh -c "[ $(lines "$T/dec.jsonl") -eq 19 ] && [ $(event_ids "$T/dec.jsonl" | sort -u | wc -l) -eq 19 ]"
for i in a b; do
    check "instance $i logged no error" [ "$(grep -ci 'error' "$T/run-$i.err")" -eq 0 ]
done
finish
