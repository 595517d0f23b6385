#!/usr/bin/env bash
# redis_parity.sh DG_BIN - the Redis state backend against the memory one,
# on a private redis-server (unix socket in a temp dir: no port to collide):
#   - the same events give byte-identical decisions and window values;
#   - replaying them again changes nothing and returns the same bytes
#     (every event is recognised as decided);
#   - two processes writing the same keys at once lose no update: counts,
#     sums and distinct values equal a sequential run's;
#   - Redis restarted (scripts flushed, NOSCRIPT) between two runs: the
#     engine reloads its script and carries on;
#   - window keys deleted by hand under a running engine, then dg:wseq
#     raised: the engine checks its cached keys again;
#   - ACL users with and without EVAL/WATCH/MULTI/EXEC: transaction or
#     single-script commits, the same decisions;
#   - distinct sets that outgrow their blob (sorted sets) on both paths;
#   - reconciliation of outflows (tests/cases/reconcile-*) decides the same.
set -u
BIN=${1:?usage: redis_parity.sh path/to/drainguard}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
cd "$(dirname "$0")/../.."
EVENTS=tests/demo/events.jsonl
RULES=rules/default.yaml
T=$(mktemp -d "${TMPDIR:-/tmp}/dg-redis-parity.XXXXXX")
SOCK=$T/redis.sock
pass=0
fail=0

stop_redis() {
    [ -f "$T/redis.pid" ] && kill "$(cat "$T/redis.pid")" 2>/dev/null
    for _ in $(seq 50); do [ -S "$SOCK" ] || break; sleep 0.1; done
    rm -f "$T/redis.pid"
}
start_redis() {
    redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save '' --appendonly no \
        --dir "$T" --daemonize yes --pidfile "$T/redis.pid" --logfile "$T/redis.log" >/dev/null
    for _ in $(seq 50); do redis-cli -s "$SOCK" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis_parity: redis-server did not start" >&2
    return 1
}
cleanup() {
    stop_redis
    if [ "$fail" -eq 0 ]; then rm -rf "$T"; else echo "redis_parity: files kept in $T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
not_ok() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
replay() { # replay OUT WIN [more options]
    local out=$1 win=$2
    shift 2
    "$BIN" replay --rules "$RULES" --input "$EVENTS" --output "$out" --dump-windows "$win" --quiet "$@" 2>>"$T/replay.err"
}
redis_replay() { replay "$@" --state redis --redis "unix:$SOCK"; }

command -v redis-server >/dev/null || { echo "redis_parity: redis-server missing (make deps)"; exit 1; }
start_redis || exit 1

replay "$T/mem.jsonl" "$T/mem.win"
check "memory replay writes decisions" test -s "$T/mem.jsonl"
redis_replay "$T/redis.jsonl" "$T/redis.win"
check "redis and memory: byte-identical decisions" cmp -s "$T/mem.jsonl" "$T/redis.jsonl"
check "redis and memory: identical window values ($(wc -l <"$T/mem.win") keys)" cmp -s "$T/mem.win" "$T/redis.win"
check "window values are not all empty" grep -q '"count":[1-9]' "$T/redis.win"

"$BIN" replay --rules "$RULES" --input "$EVENTS" --output "$T/again.jsonl" --dump-windows "$T/again.win" \
    --state redis --redis "unix:$SOCK" 2>"$T/again.err"
check "a redelivery returns the same decision bytes" cmp -s "$T/mem.jsonl" "$T/again.jsonl"
check "a redelivery changes no window" cmp -s "$T/mem.win" "$T/again.win"
n=$(grep -c . "$EVENTS")
check "every redelivered event is recognised as decided" grep -q "$((n - 1)) duplicates" "$T/again.err"
check "freezes are visible in Redis for the exchange's tools" \
    sh -c "redis-cli -s '$SOCK' hgetall dg:freezes | grep -q '\"rule\":\"coordinated-destination\"'"

# reconciliation state (which requests were allowed and paid) lives in Redis
# too: the outflow cases must decide the same way there, at any batch size
for c in reconcile-outflows reconcile-amounts; do
    d=tests/cases/$c
    "$BIN" replay --rules "$d/rules.yaml" --input "$d/events.jsonl" --output "$T/$c.mem" --quiet 2>>"$T/replay.err"
    for b in 1 64; do
        "$BIN" replay --rules "$d/rules.yaml" --input "$d/events.jsonl" --output "$T/$c.redis$b" --quiet \
            --batch "$b" --state redis --redis "unix:$SOCK" --redis-prefix "$c$b:" 2>>"$T/replay.err"
    done
    check "reconciliation in Redis ($c, batch 1 and 64) equals memory" \
        sh -c "cmp -s '$T/$c.mem' '$T/$c.redis1' && cmp -s '$T/$c.mem' '$T/$c.redis64'"
done

# every state key expires when idle: one event per batch rewrites busy keys
# many times (a key's TTL is kept, KEEPTTL, while the one set lasts long
# enough), and still no window, decision or request key is left without one
"$BIN" replay --rules "$RULES" --input "$EVENTS" --output "$T/ttl.jsonl" --quiet --batch 1 \
    --state redis --redis "unix:$SOCK" --redis-prefix ttl: 2>>"$T/replay.err"
check "one event per batch: decisions equal memory's" cmp -s "$T/mem.jsonl" "$T/ttl.jsonl"
no_ttl() {
    redis-cli -s "$SOCK" eval "local c, n = 0, 0
        for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
            n = n + 1
            if redis.call('PTTL', k) < 0 then c = c + 1 end
        end
        return {n, c}" 0 "$1" | tr '\n' ' '
}
keys_ttl=$(no_ttl 'ttl:[gerd]:*')
check "every window, decision and request key has a TTL (keys, without: $keys_ttl)" \
    sh -c "echo '$keys_ttl' | awk '{ exit !(\$1 > 100 && \$2 == 0) }'"

# two writers at once on the same keys: split the events into odd and even
# lines, run both halves concurrently under one prefix, compare the
# order-free figures (count, sum, distinct) with a sequential run's
awk 'NR % 2 == 1' "$EVENTS" >"$T/odd.jsonl"
awk 'NR % 2 == 0' "$EVENTS" >"$T/even.jsonl"
for half in odd even; do
    "$BIN" replay --rules "$RULES" --input "$T/$half.jsonl" --output "$T/$half.out" --quiet \
        --state redis --redis "unix:$SOCK" --redis-prefix par: --batch 4 2>>"$T/replay.err" &
done
wait
"$BIN" replay --rules "$RULES" --input "$EVENTS" --output /dev/null --dump-windows "$T/par.win" --quiet \
    --state redis --redis "unix:$SOCK" --redis-prefix par: 2>>"$T/replay.err"
figures() { sed 's/"max".*"distinct"/"distinct"/; s/,"last_ts".*//' "$1"; }
figures "$T/mem.win" >"$T/mem.fig"
figures "$T/par.win" >"$T/par.fig"
check "two concurrent writers lose no update (count, sum, distinct per key)" cmp -s "$T/mem.fig" "$T/par.fig"

# scripts flushed under a live connection (what a Redis restart does): the
# next write gets NOSCRIPT and the engine must load the script again
mkfifo "$T/fifo"
"$BIN" replay --rules "$RULES" --input "$T/fifo" --output "$T/noscript.jsonl" --quiet --batch 1 \
    --state redis --redis "unix:$SOCK" --redis-prefix ns: 2>>"$T/replay.err" &
rp=$!
exec 3>"$T/fifo"
half=$((n / 2))
head -n "$half" "$EVENTS" >&3
for _ in $(seq 100); do [ "$(redis-cli -s "$SOCK" --scan --pattern 'ns:e:*' | wc -l)" -ge $((half - 5)) ] && break; sleep 0.05; done
redis-cli -s "$SOCK" script flush >/dev/null
tail -n +"$((half + 1))" "$EVENTS" >&3
exec 3>&-
wait "$rp"
check "scripts flushed mid-stream (NOSCRIPT): reloaded, decisions identical" cmp -s "$T/mem.jsonl" "$T/noscript.jsonl"

# window state changed by hand under a running engine (docs/redis.md):
# the engine's cache does not know, unless dg:wseq is raised; then every
# key is checked again. Here all window keys are deleted halfway: the
# windows at the end are those of the second half alone (without the
# events the first half decided already: redeliveries change nothing)
awk -v h="$half" '{ id = ""; if (match($0, /"event_id":"[^"]*"/)) id = substr($0, RSTART, RLENGTH) }
    NR <= h { if (id != "") seen[id] = 1; next } !(id in seen)' "$EVENTS" >"$T/second.jsonl"
"$BIN" replay --rules "$RULES" --input "$T/second.jsonl" --output /dev/null --dump-windows "$T/second.win" --quiet \
    2>>"$T/replay.err"
mkfifo "$T/fifo2"
"$BIN" replay --rules "$RULES" --input "$T/fifo2" --output /dev/null --dump-windows "$T/wiped.win" --quiet \
    --batch 1 --state redis --redis "unix:$SOCK" --redis-prefix wipe: 2>>"$T/replay.err" &
rp=$!
exec 3>"$T/fifo2"
head -n "$half" "$EVENTS" >&3
for _ in $(seq 100); do [ "$(redis-cli -s "$SOCK" --scan --pattern 'wipe:e:*' | wc -l)" -ge $((half - 5)) ] && break; sleep 0.05; done
sleep 0.5
redis-cli -s "$SOCK" --scan --pattern 'wipe:[gd]:*' | xargs -r redis-cli -s "$SOCK" del >/dev/null
redis-cli -s "$SOCK" incr wipe:wseq >/dev/null
tail -n +"$((half + 1))" "$EVENTS" >&3
exec 3>&-
wait "$rp"
nonempty() { grep -v '"count":0,"sum":0,"max":0,"min":0,"distinct":0,"last_ts":0,' "$1" | sort; }
nonempty "$T/second.win" >"$T/second.ne"
nonempty "$T/wiped.win" >"$T/wiped.ne"
check "window keys deleted by hand, dg:wseq raised: the engine starts them afresh (= the second half alone, $(wc -l <"$T/second.ne") keys)" \
    sh -c "test -s '$T/second.ne' && cmp -s '$T/second.ne' '$T/wiped.ne'"

# ACL users: with the commands docs/security.md lists, batches commit as a
# check script and a transaction; with only those of the single commit
# script (no EVAL, WATCH, MULTI, EXEC), the engine says so once and commits
# every batch with that script; both decide the same
acl_cmds=$(sed -n 's/^ACL SETUSER drainguard reset on >ENGINE-PASSWORD ~dg:\* resetchannels //p' docs/security.md)
redis-cli -s "$SOCK" acl setuser full reset on '>pw-full' '~acl-full:*' resetchannels $acl_cmds >/dev/null
redis-cli -s "$SOCK" acl setuser single reset on '>pw-single' '~acl-single:*' resetchannels -@all +ping +select \
    +script\|load +evalsha +get +mget +hgetall +zmscore +set +zadd +zremrangebyscore +pexpire +hsetnx +incr +exists >/dev/null
for u in full single; do
    DG_REDIS_USER=$u DG_REDIS_PASSWORD=pw-$u "$BIN" replay --rules "$RULES" --input "$EVENTS" --output "$T/acl-$u.jsonl" \
        --state redis --redis "unix:$SOCK" --redis-prefix "acl-$u:" 2>"$T/acl-$u.err"
done
check "ACL user with the documented commands: decisions identical, no warning ($(echo $acl_cmds | wc -w) rules)" \
    sh -c "test -n '$acl_cmds' && cmp -s '$T/mem.jsonl' '$T/acl-full.jsonl' && ! grep -q 'single script' '$T/acl-full.err'"
check "ACL user without EVAL/WATCH/MULTI/EXEC: warned once, single script, decisions identical" \
    sh -c "cmp -s '$T/mem.jsonl' '$T/acl-single.jsonl' && test \"\$(grep -c 'refused.*single script' '$T/acl-single.err')\" = 1"

# distinct sets that outgrow their blob (more than 64 values: kept as
# sorted sets, written with ZADD/ZREMRANGEBYSCORE/PEXPIRE) decide and count
# as in memory, committed as a transaction and by the single script: 600
# withdrawals from 600 accounts to 3 destinations, in batches of 50
for i in $(seq 1 600); do
    printf '{"event_id":"dz-%04d","type":"withdrawal.requested","ts":"2024-01-01T00:%02d:%02d.000Z","withdrawal_id":"wdz-%04d","account_id":"acct-z%04d","asset":"USDT","chain":"tron","amount":"10","amount_usd":10.0,"dest_address":"Tdest%d","hot_wallet":"hw-trx-1"}\n' \
        "$i" $((i / 60)) $((i % 60)) "$i" "$i" $((i % 3))
done >"$T/wide.jsonl"
EVENTS=$T/wide.jsonl replay "$T/wide-mem.jsonl" "$T/wide-mem.win" --batch 50
EVENTS=$T/wide.jsonl redis_replay "$T/wide-tx.jsonl" "$T/wide-tx.win" --batch 50 --redis-prefix wide-tx:
DG_REDIS_USER=single DG_REDIS_PASSWORD=pw-single EVENTS=$T/wide.jsonl \
    redis_replay "$T/wide-single.jsonl" "$T/wide-single.win" --batch 50 --redis-prefix acl-single:wide:
check "distinct sets kept as sorted sets: $(redis-cli -s "$SOCK" --scan --pattern 'wide-tx:d:*' | wc -l) keys written" \
    test "$(redis-cli -s "$SOCK" --scan --pattern 'wide-tx:d:*' | wc -l)" -gt 0
check "distinct sets kept as sorted sets: decisions and windows identical (transaction, single script)" \
    sh -c "test -s '$T/wide-mem.jsonl' && cmp -s '$T/wide-mem.jsonl' '$T/wide-tx.jsonl' && cmp -s '$T/wide-mem.win' '$T/wide-tx.win' &&
           cmp -s '$T/wide-mem.jsonl' '$T/wide-single.jsonl' && cmp -s '$T/wide-mem.win' '$T/wide-single.win'"

# Redis restarted between runs: state is gone (no persistence here), the
# engine connects afresh and decides the same way
stop_redis
start_redis || exit 1
redis_replay "$T/restart.jsonl" "$T/restart.win" --redis-prefix r2:
check "after a Redis restart decisions are still identical" cmp -s "$T/mem.jsonl" "$T/restart.jsonl"

echo "redis_parity: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
