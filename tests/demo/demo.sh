#!/usr/bin/env bash
# make demo: the streaming engine on a sample stretch of exchange traffic
# that hides an attack (tests/demo/events.jsonl), end to end on this machine:
#
#   1. a private redis-server (temporary directory, unix socket) and
#      `drainguard broker` (a Kafka-protocol broker on 127.0.0.1);
#   2. the events produced to withdrawal-events through a real Kafka client;
#   3. `drainguard run` with its windows in that Redis, until every decision
#      is on withdrawal-decisions; then SIGTERM (it finishes, commits, exits 0);
#   4. what a security engineer wants to see: decisions by action, every
#      freeze as Redis holds it (what the exchange's own tools read), the
#      withdrawals held or sent to review and why, the dead-lettered message.
#
# Everything it starts is stopped on exit, on failure too. Needs bash, awk,
# sed, redis-server and redis-cli (make deps installs them).
# Usage: demo.sh path/to/drainguard
set -u
BIN=${1:-build/drainguard}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
cd "$(dirname "$0")/../.."
EVENTS=tests/demo/events.jsonl
RULES=rules/default.yaml
OUT=build/demo
PIDS=()
T=""
ok=0

die() {
    echo "demo: $*" >&2
    exit 1
}

# halt PID: SIGTERM, up to 15 s to exit (an engine whose broker is gone can
# hang in its final commit), then SIGKILL; returns its exit status
halt() {
    local i=0
    kill -TERM "$1" 2>/dev/null
    while kill -0 "$1" 2>/dev/null && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$1" 2>/dev/null && { echo "demo: pid $1 ignored SIGTERM for 15 s; killed" >&2; kill -KILL "$1"; }
    wait "$1" 2>/dev/null
}

# everything still running, the last started first (engine, broker, Redis)
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do halt "${PIDS[i]}"; done
    [ -n "$T" ] || return
    if [ "$ok" -eq 1 ]; then
        rm -rf "$T"
    else
        echo "demo: logs kept in $T" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# show the last lines of a log after a failure
tail_log() {
    echo "--- last lines of $1 ---" >&2
    tail -n 15 "$1" >&2
}

for c in redis-server redis-cli; do
    command -v $c >/dev/null 2>&1 ||
        die "'$c' not found: install Debian's redis-server package (make deps does, as root)"
done
[ -x "$BIN" ] || die "'$BIN' not found: run make first"
[ -f "$EVENTS" ] || die "'$EVENTS' not found"

T=$(mktemp -d "${TMPDIR:-/tmp}/dg-demo.XXXXXX") || die "cannot create a temporary directory"
mkdir -p "$OUT" || die "cannot create '$OUT'"
rm -f "$OUT"/*

cat <<TXT
== drainguard demo: the streaming engine ==
Sample: $EVENTS - six hours of a small exchange: 270 withdrawal
requests, account-security events and hot-wallet outflows. Hidden in it: a
Binance-2019-style drain (API keys enabled on nine accounts, then all nine
withdraw to one fresh address within minutes), an account takeover (2FA reset
from a new device, then a withdrawal), and one malformed message.
Rules: $RULES. Private redis-server and Kafka-protocol broker in $T.

TXT

# 1. Redis on a unix socket of its own: no port to collide with, no disk
SOCK=$T/redis.sock
redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$T" \
    --save '' --appendonly no --daemonize no >"$T/redis.log" 2>&1 &
PIDS+=($!)
i=0
until redis-cli -s "$SOCK" ping >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 100 ] || { tail_log "$T/redis.log"; die "redis-server did not start"; }
    sleep 0.1
done
echo "redis-server:     unix:$SOCK"

# 2. the broker, on a port of its own choosing
"$BIN" broker >"$T/broker.out" 2>"$T/broker.err" &
PIDS+=($!)
wait_for "$T/broker.out" '^127\.0\.0\.1:[0-9]' 20 || { tail_log "$T/broker.err"; die "drainguard broker did not start"; }
BROKER=$(head -1 "$T/broker.out")
echo "drainguard broker: $BROKER"

# 3. how many decisions to expect: replay decides the same events offline
"$BIN" replay --rules "$RULES" --input "$EVENTS" --output "$T/replay.jsonl" --quiet 2>"$T/replay.err" ||
    { tail_log "$T/replay.err"; die "drainguard replay failed"; }
N=$(wc -l <"$T/replay.jsonl")

# 4. the traffic, keyed by account as a payment service would key it
"$BIN" produce --brokers "$BROKER" --topic withdrawal-events --input "$EVENTS" \
    --key-field account_id >"$T/produce.out" 2>&1 || { tail_log "$T/produce.out"; die "drainguard produce failed"; }
echo "produced:         $(wc -l <"$EVENTS") messages to withdrawal-events"

# 5. the engine. The mock broker holds a group for the session timeout after
# its last member leaves; a short one keeps the shutdown quick.
cat >"$T/drainguard.yaml" <<YAML
brokers: $BROKER
group: drainguard-demo
rules: $PWD/$RULES
state: redis
redis:
  unix: $SOCK
kafka:
  client.id: drainguard-demo
  consumer:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 1000
YAML
t0=$(date +%s%N)
"$BIN" run --config "$T/drainguard.yaml" >"$T/run.out" 2>"$T/run.err" &
RUN=$!
PIDS+=($RUN)
echo "drainguard run:   pid $RUN, config $T/drainguard.yaml"
echo "waiting for $N decisions on withdrawal-decisions ..."
if ! "$BIN" consume --brokers "$BROKER" --topic withdrawal-decisions --count "$N" --timeout 40s \
    --output "$OUT/decisions.jsonl" 2>"$T/consume.err"; then
    tail_log "$T/run.out"
    tail_log "$T/run.err"
    die "only $(wc -l <"$OUT/decisions.jsonl") of $N decisions arrived within 40 s"
fi
t1=$(date +%s%N)
sleep 1 # let the engine store the last batch's offsets
halt $RUN
rc=$?
PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}") # the engine was the last one started
cp "$T/run.out" "$OUT/run.log"
[ $rc -eq 0 ] || { tail_log "$T/run.err"; die "drainguard run exited with status $rc on SIGTERM"; }
echo "all $N decisions in $(( (t1 - t0) / 1000000 )) ms (engine start included); engine stopped by SIGTERM, exit 0"
echo

# ---- what a user wants to see ----

# The awk below reads the JSON the engine writes (one object per line). It
# is no general JSON parser: str(s, name) is the first "name":"..." string
# in s, unescaped.
AWK_LIB='
function str(s, name,    i, j, c, v) {
    i = index(s, "\"" name "\":\"")
    if (!i) return ""
    s = substr(s, i + length(name) + 4)
    v = ""
    for (j = 1; j <= length(s); j++) {
        c = substr(s, j, 1)
        if (c == "\\") { j++; c = substr(s, j, 1); if (c == "n") c = " "; v = v c; continue }
        if (c == "\"") break
        v = v c
    }
    return v
}
function num(s, name,    i) {
    i = index(s, "\"" name "\":")
    if (!i) return ""
    s = substr(s, i + length(name) + 3)
    sub(/[,}].*/, "", s)
    return s
}
function short(s, n) { return length(s) > n ? substr(s, 1, n - 3) "..." : s }
# epoch milliseconds as UTC ISO 8601 (days to civil date: H. Hinnant)
function iso(ms,    d, sec, z, era, doe, yoe, doy, mp, y, m, dd) {
    if (ms == "") return "?"
    sec = int(ms / 1000); d = int(sec / 86400); sec -= d * 86400
    z = d + 719468; era = int(z / 146097); doe = z - era * 146097
    yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
    y = yoe + era * 400; doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
    mp = int((5 * doy + 2) / 153); dd = doy - int((153 * mp + 2) / 5) + 1
    m = mp < 10 ? mp + 3 : mp - 9; if (m <= 2) y++
    return sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, dd, int(sec / 3600), int(sec % 3600 / 60), sec % 60)
}
'

echo "-- decisions by action (from the withdrawal-decisions topic) --"
# the decision's own action comes before its "rules" array
sed -n 's/"rules":.*//; s/.*"action":"\([a-z]*\)".*/\1/p' "$OUT/decisions.jsonl" |
    awk '{ n[$1]++ } END {
        split("allow review hold freeze", order, " ")
        for (i = 1; i <= 4; i++) printf "  %-8s %5d\n", order[i], n[order[i]]
    }'
echo

echo "-- freezes in force (redis-cli -s $SOCK hgetall dg:freezes) --"
# hgetall prints field, value, field, value ...; each value a JSON record
redis-cli -s "$SOCK" hgetall dg:freezes >"$T/freezes.txt" || die "redis-cli hgetall dg:freezes failed"
awk "$AWK_LIB"'
    NR % 2 == 0 {
        n++
        printf "  %s %s\n", str($0, "scope"), str($0, "key")
        printf "    rule:   %s\n", str($0, "rule")
        printf "    reason: %s\n", str($0, "reason")
        printf "    since:  event %s at %s (event time); stored %s by %s\n", str($0, "event_id"), iso(num($0, "ts")), str($0, "at"), str($0, "by")
    }
    END { if (!n) print "  (none)" }' "$T/freezes.txt"
echo

echo "-- withdrawals stopped, and why (the deciding rule first) --"
awk "$AWK_LIB"'
    {
        act = str($0, "action")
        if (act == "allow") next
        id = str($0, "withdrawal_id"); if (id == "") id = str($0, "wallet_id"); if (id == "") id = str($0, "event_id")
        acct = str($0, "account_id")
        # the rules array: one {"id":...,"action":...,"reason":...} each;
        # show the rule that set the action, then how many more matched
        rules = substr($0, index($0, "\"rules\":["))
        m = split(rules, part, "{\"id\":")
        why = ""; more = 0
        for (k = 2; k <= m; k++) {
            r = "{\"id\":" part[k]
            if (why == "" && str(r, "action") == act) why = str(r, "id") ": " str(r, "reason")
            else more++
        }
        printf "  %-6s %-10s %-10s %s%s\n", act, id, acct, short(why, 100), more ? sprintf(" (+%d more)", more) : ""
    }' "$OUT/decisions.jsonl"
echo

echo "-- dead letters (withdrawal-events-dlq) --"
"$BIN" consume --brokers "$BROKER" --topic withdrawal-events-dlq --count 1 --timeout 10s --with-headers \
    --output "$OUT/dead-letters.jsonl" 2>"$T/dlq.err" || { tail_log "$T/dlq.err"; die "the dead letter did not arrive"; }
awk "$AWK_LIB"'
    {
        printf "  %s (%s): %s\n", str($0, "dg-reason"), str($0, "dg-field"), str($0, "dg-message")
        printf "    from %s; the message, unchanged: %s\n", str($0, "dg-source"), short(str($0, "value"), 90)
    }' "$OUT/dead-letters.jsonl"
echo

# the streaming engine decides exactly as replay does (wall-clock decided_at aside)
sed -e 's/,"decided_at":"[^"]*"//' "$OUT/decisions.jsonl" | sort >"$T/run.sorted"
sort "$T/replay.jsonl" >"$T/replay.sorted"
if cmp -s "$T/run.sorted" "$T/replay.sorted"; then
    same="yes, decision for decision"
else
    same="NO: compare $OUT/decisions.jsonl with drainguard replay's output"
fi

echo "Full decision stream, read back from the topic (one JSON decision per line):"
echo "  $OUT/decisions.jsonl ($(wc -l <"$OUT/decisions.jsonl") decisions; same as 'drainguard replay': $same)"
echo "Dead letters with their headers: $OUT/dead-letters.jsonl"
echo "Engine log: $OUT/run.log"
ok=1
