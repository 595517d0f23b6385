#!/usr/bin/env bash
# bench/e2e.sh BUILD_DIR - the end-to-end benchmark (`make bench`, after the
# replay benchmark): `drainguard run` between `drainguard broker` and a local
# redis-server, everything on this machine (loopback and unix sockets).
#
#   1. sustained throughput: N generated events (BUILD_DIR/bench/gen_events)
#      are pre-loaded into withdrawal-events; the engine starts on an empty
#      Redis with a large batch, and BUILD_DIR/bench/e2e_count reports when
#      the decisions topic holds them all (the sum of its partitions' end
#      offsets, read every 10 ms: reading the 212,500 decisions themselves
#      cost the 2 shared cores about 0.7 s of CPU). events/s = N / (last decision -
#      engine start), and the same from the partition assignment on (the mock
#      broker delays a new group's first assignment by about 3 s);
#   2. the ceiling: the same engine run again on a fresh Redis with
#      DG_REDIS_RECORD=FILE (the Redis backend writes every command it sends,
#      as RESP, to FILE); the file is replayed into another fresh redis-server
#      with `redis-cli --pipe`: the same Redis work with no engine and no
#      round trips. ceiling = N / replay time; the table shows engine/ceiling;
#   3. latency: BUILD_DIR/bench/e2e_latency offers events at a fixed rate to
#      a running engine and measures, per event, decision received minus
#      event produced: p50, p99, p99.9, leaving out the first 5 s (the
#      engine starts with nothing of Redis A's state cached, and a new
#      group on the mock broker has been seen to stall ~3 s once after its
#      first assignment). This phase has a broker of its own with more
#      partitions per topic (E2E_LAT_PARTITIONS): the mock broker finds a
#      fetch offset by walking the partition's message sets from the first,
#      and at a fixed rate every event is a message set of its own, so the
#      broker's work per fetch grows with the run (a real broker indexes
#      offsets). Measured with 32 partitions: p99 65 ms after 20 s, of
#      which the broker alone is most; with 128: 6.3 ms.
# Targets (issue 3): >= 40,000 events/s sustained, >= 0.8 of the ceiling,
# p99 < 10 ms at 2,000 events/s offered. The machine is shared: the figures
# are printed, never judged by the exit status (0 unless something broke).
# The last row says how much CPU time the hypervisor took from this virtual
# machine during each phase (steal time, /proc/stat): 15-20% was seen on
# these machines, and a run with much of it is not comparable to one
# without.
#
# Environment: E2E_EVENTS (N, default 250000), E2E_BATCH (2000: the engine's
# `batch`, most events per batch; the engine's default is 500. Each batch
# costs a fetch, a transaction and a round of produce requests whatever its
# size, and the mock broker's cost grows with the number of message sets
# the decisions make; measured here with 250k events, alternating runs:
# 500 -> 27.0k/27.5k events/s, 1000 -> 31.1k/34.3k, 2000 -> 38.2k/31.7k,
# 3000-4000 no better than 2000, and the broker's CPU 2.4 s at 500, 1.0 s
# at 2000. At 2,000 events/s offered batches hold 2-3 events whatever the
# cap, so the latency phase is the same), E2E_RATE
# (2000), E2E_SECONDS (20), E2E_PARTITIONS (32: the mock broker keeps about
# 5 MiB per partition, and N events must all stay), E2E_LAT_PARTITIONS
# (128, the latency phase's broker), BENCH_DATA (data dir),
# E2E_CONSUMER_PROPS ("name=value ..." librdkafka consumer properties added
# to the engine's configuration; default fetch.wait.max.ms=1, because the
# mock broker answers a fetch of an empty partition only when that wait is
# over, where a real broker answers as soon as data arrives: with
# librdkafka's default of 500 ms the latency figures measure the mock; the
# latency client's own consumer uses 1 ms for the same reason).
set -u

B=${1:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
cd "$(dirname "$0")/.."
BIN=$B/drainguard
GEN=$B/bench/gen_events
COUNT=$B/bench/e2e_count
LAT=$B/bench/e2e_latency
DATA=${BENCH_DATA:-$B/bench-data}
N=${E2E_EVENTS:-250000}
BATCH=${E2E_BATCH:-2000}
RATE=${E2E_RATE:-2000}
SECS=${E2E_SECONDS:-20}
PARTS=${E2E_PARTITIONS:-32}
LPARTS=${E2E_LAT_PARTITIONS:-128}
RULES=rules/default.yaml
[ -f "$RULES" ] || RULES=bench/rules-bench.yaml
PIDS=()
T=""
ok=0

die() {
    echo "bench e2e: $*" >&2
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
    kill -0 "$1" 2>/dev/null && { echo "bench e2e: pid $1 ignored SIGTERM for 15 s; killed" >&2; kill -KILL "$1"; }
    wait "$1" 2>/dev/null
}
# everything still running, the last started first (engine before broker)
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do halt "${PIDS[i]}"; done
    [ -n "$T" ] || return
    if [ $ok -eq 1 ]; then rm -rf "$T"; else echo "bench e2e: logs kept in $T" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
# cpu_mark: "total steal" jiffies of all CPUs so far (/proc/stat); steal
# MARK: the share of CPU time the hypervisor took from this machine since
# MARK (a shared virtual machine: the figures below are only comparable
# between runs where it was small)
cpu_mark() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit }' /proc/stat 2>/dev/null; }
steal() {
    cpu_mark | awk -v m="$1" 'BEGIN { split(m, a, " ") } { d = $1 - a[1]; printf "%.0f%%", (d > 0 ? 100 * ($2 - a[2]) / d : 0) }'
}
# wait_for FILE PATTERN SECONDS
wait_for() {
    local i=0
    while [ $i -lt $(($3 * 50)) ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.02
        i=$((i + 1))
    done
    return 1
}
# assigned NAME: until the engine started as NAME has its partitions
assigned() {
    local i=0
    while [ $i -lt 3000 ]; do
        grep -q "assigned" "$T/$1.out" 2>/dev/null && return 0
        kill -0 "$EPID" 2>/dev/null || break
        sleep 0.02
        i=$((i + 1))
    done
    tail_log "$T/$1.err"
    die "$1: drainguard run got no partitions"
}
tail_log() {
    echo "--- last lines of $1 ---" >&2
    tail -n 15 "$1" >&2
}
# stop PID: SIGTERM and wait, and forget it
stop() {
    local p rest=() rc
    halt "$1"
    rc=$?
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
    PIDS=("${rest[@]}")
    return $rc
}
# start_redis NAME: a redis-server on $T/NAME.sock, no persistence; sets RPID
start_redis() {
    redis-server --port 0 --unixsocket "$T/$1.sock" --unixsocketperm 700 --dir "$T" \
        --save '' --appendonly no --daemonize no >"$T/$1.log" 2>&1 &
    RPID=$!
    PIDS+=($RPID)
    local i=0
    until redis-cli -s "$T/$1.sock" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { tail_log "$T/$1.log"; die "redis-server did not start"; }
        sleep 0.1
    done
}
# engine NAME REDIS_SOCK [run flags...]: start `drainguard run`; sets EPID, ESTART
engine() {
    local name=$1 sock=$2
    shift 2
    cat >"$T/$name.yaml" <<YAML
brokers: $BROKER
group: bench-$name
rules: $PWD/$RULES
state: redis
batch: $BATCH
redis:
  unix: $sock
kafka:
  client.id: bench-$name
  consumer:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 1000
YAML
    local kv
    for kv in ${E2E_CONSUMER_PROPS-fetch.wait.max.ms=1}; do
        echo "    ${kv%%=*}: ${kv#*=}" >>"$T/$name.yaml"
    done
    ESTART=$(now_ns)
    "$BIN" run --config "$T/$name.yaml" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    EPID=$!
    PIDS+=($EPID)
}
# throughput NAME TOPIC: the engine just started as NAME decides the
# pre-loaded events onto TOPIC; sets RES to "events_per_s_from_start
# events_per_s_from_assignment seconds inputs decisions"
throughput() {
    local name=$1 assigned res first last inputs
    assigned "$name"
    assigned=$(now_ns)
    res=$("$COUNT" --brokers "$BROKER" --topic "$2" --count "$EXPECT" --idle-ms 5000 --timeout-s 900) ||
        echo "bench e2e: $name: $(echo "$res" | awk '{ print $2 }') of $EXPECT decisions (stopped when none came for 5 s)" >&2
    [ -n "$res" ] || die "$name: e2e_count failed"
    stop "$EPID" || { tail_log "$T/$name.err"; die "$name: drainguard run did not exit 0 on SIGTERM"; }
    last=$(echo "$res" | awk '{ print $6 }')
    inputs=$(sed -n 's/.*stopped: [0-9]* batches, \([0-9]*\) inputs.*/\1/p' "$T/$name.out")
    [ "${inputs:-0}" -eq "$N" ] ||
        echo "bench e2e: $name: the engine read ${inputs:-?} inputs, not $N (broker retention?)" >&2
    RES=$(awk -v n="$N" -v s="$ESTART" -v a="$assigned" -v l="$last" -v i="${inputs:-0}" -v d="$(echo "$res" | awk '{ print $2 }')" \
        'BEGIN { printf "%.0f %.0f %.3f %d %d\n", n / ((l - s) / 1e9), n / ((l - a) / 1e9), (l - s) / 1e9, i, d }')
}

for f in "$BIN" "$GEN" "$COUNT" "$LAT"; do
    [ -x "$f" ] || die "$f missing (run make bench)"
done
for c in redis-server redis-cli; do
    command -v $c >/dev/null 2>&1 || die "'$c' not found: install Debian's redis-server package (make deps)"
done
mkdir -p "$DATA" || die "cannot create '$DATA'"
T=$(mktemp -d "${TMPDIR:-/tmp}/dg-e2e.XXXXXX") || die "cannot create a temporary directory"

# the events: N for throughput, then RATE * SECS more (continuing in event
# time) for the latency run; the same key space and rate as bench/run.sh
NL=$((RATE * SECS))
TOTAL=$((N + NL))
DAYS=$(awk -v n="$TOTAL" 'BEGIN { printf "%g", n * 400 / 1000000 }')
F=$DATA/events-n$TOTAL-a20000-d5000-s42-f$DAYS.jsonl
if [ ! -s "$F" ]; then
    echo "bench e2e: generating $TOTAL events -> $F" >&2
    "$GEN" --events "$TOTAL" --accounts 20000 --destinations 5000 --seed 42 --days "$DAYS" >"$F.tmp" &&
        mv "$F.tmp" "$F" || die "gen_events failed"
fi
head -n "$N" "$F" >"$T/throughput.jsonl"
tail -n +"$((N + 1))" "$F" >"$T/latency.jsonl"
"$BIN" replay --rules "$RULES" --input "$T/throughput.jsonl" --output "$T/replay.jsonl" --quiet 2>/dev/null ||
    die "drainguard replay failed"
EXPECT=$(wc -l <"$T/replay.jsonl")
rm -f "$T/replay.jsonl"

echo
echo "drainguard end-to-end benchmark (broker, engine and redis-server on this machine)"
echo "  events: $N pre-loaded ($EXPECT decisions expected); latency run: $RATE/s offered for $SECS s"
echo "  engine: batch $BATCH, rules $RULES, Redis over a unix socket; $PARTS partitions per topic ($LPARTS in the latency run)"
echo "  cpu:    $(nproc 2>/dev/null || echo ?) cores, shared by everything; $(awk -F: '/model name/ { sub(/^ /, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null)"

# start_broker NAME PARTITIONS TOPICS: `drainguard broker`; sets BROKER
start_broker() {
    "$BIN" broker --partitions "$2" --topics "$3" >"$T/$1.out" 2>"$T/$1.err" &
    PIDS+=($!)
    BPID=$!
    wait_for "$T/$1.out" '^127\.0\.0\.1:[0-9]' 20 || { tail_log "$T/$1.err"; die "drainguard broker did not start"; }
    BROKER=$(head -1 "$T/$1.out")
}

# the broker and Redis A
start_broker broker "$PARTS" rec-decisions,rec-dlq
BPID_1=$BPID
start_redis a
RPID_A=$RPID

t0=$(now_ns)
"$BIN" produce --brokers "$BROKER" --topic withdrawal-events --input "$T/throughput.jsonl" \
    --key-field account_id >"$T/produce.out" 2>&1 || { tail_log "$T/produce.out"; die "drainguard produce failed"; }
t1=$(now_ns)
echo "  loaded: $N events in $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e9 }') s (drainguard produce)"

# 1. sustained throughput on an empty Redis
M=$(cpu_mark)
engine run "$T/a.sock"
throughput run withdrawal-decisions
R1=$RES
ST1=$(steal "$M")

# 2. the same again, recording the Redis commands, on a fresh Redis B; then
# replay them into a fresh Redis C
start_redis b
RPID_B=$RPID
DG_REDIS_RECORD=$T/redis.resp engine rec "$T/b.sock" --decisions-topic rec-decisions --dlq-topic rec-dlq
throughput rec rec-decisions
R2=$RES
KEYS_B=$(redis-cli -s "$T/b.sock" dbsize)
stop "$RPID_B"
CEIL=""
if [ -s "$T/redis.resp" ]; then
    start_redis c
    RPID_C=$RPID
    RESP_MIB=$(awk -v s="$(wc -c <"$T/redis.resp")" 'BEGIN { printf "%.0f", s / 1048576 }')
    M=$(cpu_mark)
    t0=$(now_ns)
    redis-cli -s "$T/c.sock" --pipe <"$T/redis.resp" >"$T/pipe.out" 2>&1 || { tail_log "$T/pipe.out"; die "redis-cli --pipe failed"; }
    t1=$(now_ns)
    ST2=$(steal "$M")
    KEYS_C=$(redis-cli -s "$T/c.sock" dbsize)
    stop "$RPID_C"
    PIPE=$(sed -n 's/.*errors: \([0-9]*\), replies: \([0-9]*\).*/\1 \2/p' "$T/pipe.out")
    [ "$(echo "$PIPE" | awk '{ print $1 }')" = "0" ] || echo "bench e2e: the replay had errors: $PIPE" >&2
    [ "$KEYS_B" = "$KEYS_C" ] || echo "bench e2e: the replay left $KEYS_C keys, the engine $KEYS_B" >&2
    CEIL=$(awk -v n="$N" -v d=$((t1 - t0)) 'BEGIN { printf "%.0f %.3f", n / (d / 1e9), d / 1e9 }')
    rm -f "$T/redis.resp"
else
    echo "bench e2e: no DG_REDIS_RECORD file: this engine does not record its Redis commands; no ceiling" >&2
fi

# 3. latency at a fixed offered rate, on a broker of its own: first the
# broker alone (events produced and read back from one topic: the floor),
# then through the engine, on Redis A with its state in place
stop "$BPID_1"
start_broker lat-broker "$LPARTS" lat-events,lat-decisions,lat-dlq,echo
R0=$("$LAT" --brokers "$BROKER" --input "$T/latency.jsonl" --rate "$RATE" --seconds 5 \
    --events-topic echo --decisions-topic echo --warmup 1 --drain 5 --tag "echo$$" 2>"$T/echo-client.err") ||
    { tail_log "$T/echo-client.err"; die "e2e_latency (broker alone) failed"; }
engine lat "$T/a.sock" --input-topics lat-events --decisions-topic lat-decisions --dlq-topic lat-dlq
assigned lat
sleep 1
M=$(cpu_mark)
R3=$("$LAT" --brokers "$BROKER" --input "$T/latency.jsonl" --rate "$RATE" --seconds "$SECS" \
    --events-topic lat-events --decisions-topic lat-decisions --warmup 5 --drain 10 --tag "lat$$" 2>"$T/lat-client.err") ||
    { tail_log "$T/lat-client.err"; die "e2e_latency failed"; }
ST3=$(steal "$M")
stop "$EPID" || { tail_log "$T/lat.err"; die "lat: drainguard run did not exit 0 on SIGTERM"; }
sed 's/^/  /' "$T/lat-client.err"
LATB=$(sed -n 's/.*stopped: \([0-9]*\) batches, \([0-9]*\) inputs.*/\1 \2/p' "$T/lat.out")

# ---- the table ----
f() { echo "$1" | awk -v i="$2" '{ print $i }'; }
lv() { echo "${2:-$R3}" | awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }
EPS=$(f "$R1" 2)
echo
printf '%-52s %14s %16s\n' "measure" "value" "target"
printf '%-52s %14s %16s\n' "----------------------------------------------------" "-----" "------"
printf '%-52s %14s %16s\n' "sustained events/s, from partition assignment" "$EPS" ">= 40000"
printf '%-52s %14s %16s\n' "sustained events/s, from engine start ($(f "$R1" 3) s)" "$(f "$R1" 1)" ""
printf '%-52s %14s %16s\n' "  same, recording its Redis commands" "$(f "$R2" 2)" ""
if [ -n "$CEIL" ]; then
    printf '%-52s %14s %16s\n' "ceiling: its Redis work, redis-cli --pipe (${RESP_MIB} MiB)" "$(f "$CEIL" 1)" ""
    printf '%-52s %14s %16s\n' "engine / ceiling" "$(awk -v e="$EPS" -v c="$(f "$CEIL" 1)" 'BEGIN { printf "%.2f", e / c }')" ">= 0.80"
else
    printf '%-52s %14s %16s\n' "ceiling (needs DG_REDIS_RECORD in the engine)" "n/a" ""
fi
printf '%-52s %14s %16s\n' "latency p50 ms at $(lv rate)/s offered" "$(lv p50_ms)" ""
printf '%-52s %14s %16s\n' "latency p99 ms" "$(lv p99_ms)" "< 10"
printf '%-52s %14s %16s\n' "latency p99.9 ms" "$(lv p999_ms)" ""
printf '%-52s %14s %16s\n' "latency max ms ($(lv decided) decisions, $(lv missing) missing)" "$(lv max_ms)" ""
printf '%-52s %14s %16s\n' "  engine batches in the latency run: events/batch" "$(echo "$LATB" | awk '{ if ($1) printf "%.1f", $2 / $1; else print "?" }')" ""
printf '%-52s %14s %16s\n' "  broker alone (no engine): p50 / p99 ms" "$(lv p50_ms "$R0") / $(lv p99_ms "$R0")" ""
printf '%-52s %14s %16s\n' "host CPU stolen: throughput / ceiling / latency" "${ST1:-?} / ${ST2:-?} / ${ST3:-?}" ""
awk -v e="$EPS" -v c="$(f "$CEIL" 1)" -v p="$(lv p99_ms)" 'BEGIN {
    printf "targets: throughput %s, ceiling ratio %s, p99 %s\n",
        (e >= 40000 ? "met" : "NOT met"), (c == "" ? "n/a" : (e / c >= 0.8 ? "met" : "NOT met")),
        (p < 10 ? "met" : "NOT met")
}'
ok=1
