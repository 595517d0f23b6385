# lib.bash - helpers shared by the streaming-engine integration tests that
# use Redis (run_redis.sh, kill9.sh, redis_outage.sh, two_instances.sh).
# Sourced, never run: it is named .bash so that `make integration`, which
# runs tests/integration/*.sh, does not pick it up.
#
#   . "$(dirname "$0")/lib.bash"
#   dg_setup NAME "$@"        BIN, T (private temp dir), cd to the repo root,
#                             the exit trap that stops everything started
#   dg_track PID              stop PID on exit (SIGCONT, SIGTERM, then SIGKILL)
#   ok / not_ok / check / finish   TAP-like lines and the closing summary
#
# Everything listens on 127.0.0.1 or on a unix socket inside $T. Nothing
# here assumes the binary's speed: every wait is "until a condition holds,
# with a generous deadline", never a fixed sleep that the test relies on.
# Needs bash, sed, sort, awk, grep, redis-server and redis-cli.

dg_setup() {
    DG_NAME=$1
    BIN=${2:?usage: $DG_NAME.sh path/to/drainguard}
    case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
    cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
    ROOT=$PWD
    RULES=$ROOT/rules/default.yaml
    DEMO=$ROOT/tests/demo/events.jsonl
    T=$(mktemp -d "${TMPDIR:-/tmp}/dg-$DG_NAME.XXXXXX")
    DG_PIDS=()
    pass=0
    fail=0
    DG_T0=$SECONDS
    trap dg_cleanup EXIT
    trap 'exit 130' INT TERM
    for c in redis-server redis-cli; do
        command -v $c >/dev/null || { echo "$DG_NAME: $c missing (make deps)"; exit 1; }
    done
}

dg_track() { DG_PIDS+=("$1"); }

# stop PID: SIGCONT (it may be stopped), SIGTERM, up to 15 s, then SIGKILL
dg_stop() {
    local p=$1 i
    kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
    kill -CONT "$p" 2>/dev/null
    kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}

dg_cleanup() {
    local p
    # engines first (they talk to the broker and Redis), then the rest: the
    # list is in start order, so stop it backwards
    for ((p = ${#DG_PIDS[@]} - 1; p >= 0; p--)); do
        dg_stop "${DG_PIDS[p]}"
    done
    if [ "$fail" -eq 0 ] && [ -z "${DG_KEEP:-}" ]; then rm -rf "$T"; else echo "$DG_NAME: files kept in $T"; fi
}

# DG_TIMES=1 in the environment: each line starts with the seconds elapsed
dg_t() { [ -n "${DG_TIMES:-}" ] && printf '%3d ' $((SECONDS - DG_T0)); }
ok() { pass=$((pass + 1)); echo "$(dg_t)ok   - $1"; }
not_ok() { fail=$((fail + 1)); echo "$(dg_t)FAIL - $1"; }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
    echo "$DG_NAME: $pass passed, $fail failed ($((SECONDS - DG_T0)) s)"
    [ "$fail" -eq 0 ]
    exit
}
# bail out: a step the rest depends on failed
die() {
    not_ok "$1"
    finish
}

# dg_wait_until SECONDS command...: until the command succeeds (0.1 s polls)
dg_wait_until() {
    local n=$(($1 * 10)) i
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
# wait_for FILE PATTERN SECONDS: until a line of FILE matches
wait_for() { dg_wait_until "$3" grep -q -- "$2" "$1"; }
# count_in FILE PATTERN: matching lines (0 when the file is missing)
count_in() { grep -c -- "$2" "$1" 2>/dev/null || true; }

# ---- redis ----------------------------------------------------------------

# dg_free_port: a TCP port on 127.0.0.1 that nothing listens on now (probed
# with bash's /dev/tcp; a race with another process is caught by the caller,
# which retries)
dg_free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# rcli ARGS...: redis-cli against the test's server
rcli() {
    if [ -n "${REDIS_SOCK:-}" ]; then
        redis-cli -s "$REDIS_SOCK" "$@"
    else
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
    fi
}

# dg_start_redis unix|tcp [redis-server options]: a private redis-server in
# the foreground (so that its pid is ours: SIGSTOP, SIGKILL), data in $T.
# Sets REDIS_PID and REDIS_SOCK or REDIS_PORT (kept when already set, so a
# restart comes back on the same address), and REDIS_ADDR for --redis.
dg_start_redis() {
    local mode=$1 try
    shift
    for ((try = 0; try < 5; try++)); do
        if [ "$mode" = unix ]; then
            REDIS_SOCK=${REDIS_SOCK:-$T/redis.sock}
            REDIS_ADDR=unix:$REDIS_SOCK
            redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 --dir "$T" \
                --save '' --appendonly no "$@" >>"$T/redis.log" 2>&1 &
        else
            REDIS_PORT=${REDIS_PORT:-$(dg_free_port)}
            REDIS_ADDR=127.0.0.1:$REDIS_PORT
            redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$T" \
                --save '' --appendonly no "$@" >>"$T/redis.log" 2>&1 &
        fi
        REDIS_PID=$!
        dg_track "$REDIS_PID"
        if dg_wait_until 10 eval 'rcli ping 2>/dev/null | grep -q PONG'; then
            return 0
        fi
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
        [ "$mode" = tcp ] && [ -z "${DG_KEEP_PORT:-}" ] && REDIS_PORT=
    done
    echo "$DG_NAME: redis-server did not start (see $T/redis.log)" >&2
    return 1
}

# redis_count PATTERN: how many keys match (one round trip, KEYS in Lua)
redis_count() {
    rcli eval "return #redis.call('keys', ARGV[1])" 0 "$1" 2>/dev/null || echo -1
}
# redis_count_ge PATTERN N: at least N keys match
redis_count_ge() { [ "$(redis_count "$1")" -ge "$2" ]; }

# ---- broker, producer, consumer --------------------------------------------

# dg_start_broker [broker options]: sets B to its bootstrap address
dg_start_broker() {
    "$BIN" broker "$@" >"$T/broker.out" 2>"$T/broker.err" &
    dg_track $!
    wait_for "$T/broker.out" '^127\.0\.0\.1:[0-9]' 30 || return 1
    B=$(head -1 "$T/broker.out")
}

# dg_consume TOPIC OUT [TIMEOUT]: every message of TOPIC so far
dg_consume() {
    "$BIN" consume --brokers "$B" --topic "$1" --timeout "${3:-3s}" --output "$2" 2>>"$T/consume.err"
}

# dg_engine_config FILE PREFIX BATCH [redis.KEY=V | consumer.KEY=V |
# producer.KEY=V ...]: a `run` config on the test's broker and Redis, with
# more redis:, kafka.consumer: or kafka.producer: settings. The mock broker
# waits for the session timeout before a new member may join a group whose
# member vanished (kill -9): 6 s instead of 45 keeps tests short.
dg_engine_config() {
    local f=$1 prefix=$2 batch=$3 a
    shift 3
    local redis=() consumer=() producer=()
    for a in "$@"; do
        case $a in
        redis.*) a=${a#redis.} && redis+=("  ${a%%=*}: ${a#*=}") ;;
        consumer.*) a=${a#consumer.} && consumer+=("    ${a%%=*}: ${a#*=}") ;;
        producer.*) a=${a#producer.} && producer+=("    ${a%%=*}: ${a#*=}") ;;
        esac
    done
    {
        echo "brokers: $B"
        echo "rules: $RULES"
        echo "batch: $batch"
        echo "redis:"
        if [ -n "${REDIS_SOCK:-}" ]; then
            echo "  unix: $REDIS_SOCK"
        else
            echo "  host: 127.0.0.1"
            echo "  port: $REDIS_PORT"
        fi
        echo "  prefix: \"$prefix\""
        for a in "${redis[@]}"; do echo "$a"; done
        echo "kafka:"
        echo "  consumer:"
        echo "    session.timeout.ms: 6000"
        echo "    heartbeat.interval.ms: 1000"
        for a in "${consumer[@]}"; do echo "$a"; done
        [ ${#producer[@]} -eq 0 ] || echo "  producer:"
        for a in "${producer[@]}"; do echo "$a"; done
    } >"$f"
}

# ---- events and decisions ---------------------------------------------------

# dg_make_events OUT COPIES [split]: COPIES copies of the demo events, copy c
# moved c days later (so the file stays in time order and the 24h/30d/90d
# windows carry over from one copy to the next) with every id suffixed -cC
# (event_id, withdrawal_id and withdrawal_ids, tx_hash): COPIES * 331 lines,
# COPIES of them invalid (the demo's bad amount). With "split", every
# account, destination and wallet is suffixed too, so copies share no window
# key and no freeze, and each event gets a top-level "universe":"uC" to key
# it by. At most 24 copies (May 2019 has 24 days left after the 7th).
dg_make_events() {
    local out=$1 k=$2 split=${3:-} c day
    : >"$out"
    for ((c = 0; c < k; c++)); do
        day=$(printf '%02d' $((7 + c)))
        local args=(-e "s/\"2019-05-07T/\"2019-05-${day}T/g"
            -e "s/\"\\(event_id\\|tx_hash\\)\":\"\\([^\"]*\\)\"/\"\\1\":\"\\2-c$c\"/g"
            -e "s/\"\\(wd-[^\"]*\\)\"/\"\\1-c$c\"/g")
        if [ -n "$split" ]; then
            args+=(-e "s/\"\\(account_id\\|dest_address\\|wallet_id\\|hot_wallet\\)\":\"\\([^\"]*\\)\"/\"\\1\":\"\\2-u$c\"/g"
                -e "s/^{/{\"universe\":\"u$c\",/")
        fi
        sed "${args[@]}" "$DEMO" >>"$out"
    done
}

# strip FILE: decisions without the wall-clock decided_at, sorted
strip() { sed -e 's/,"decided_at":"[^"]*"//' "$1" | sort; }
# event_ids FILE: the event_id of every line, one a line, in file order
event_ids() { sed -n 's/.*"event_id":"\([^"]*\)".*/\1/p' "$1"; }
# lines FILE: non-empty lines
lines() { grep -c . "$1" 2>/dev/null || true; }

# dg_replay INPUT OUT WIN [replay options]: replay with the default rules;
# its stderr summary goes to OUT.err
dg_replay() {
    local in=$1 out=$2 win=$3
    shift 3
    "$BIN" replay --rules "$RULES" --input "$in" --output "$out" --dump-windows "$win" "$@" 2>"$out.err"
}

# dg_counts OUT: after dg_replay, N = the decisions it wrote to OUT and
# VALID = the events it decided (from its summary line)
dg_counts() {
    N=$(lines "$1")
    VALID=$(sed -n 's/^replay: [0-9]* inputs, \([0-9]*\) events.*/\1/p' "$1.err")
}

# dg_check_redis_state INPUT PREFIX MEMWIN VALID: the engine's Redis state,
# read back without changing it: a replay over the same events under the
# engine's prefix must find every valid event already decided (VALID
# duplicates) and dump the same window values as a memory replay (MEMWIN).
# A duplicate changes no window, so this proves the state the engine left
# equals the memory backend's, bit for bit.
dg_check_redis_state() {
    local in=$1 prefix=$2 memwin=$3 valid=$4 what=${5:-}
    dg_replay "$in" "$T/dup-$prefix.jsonl" "$T/dup-$prefix.win" --state redis --redis "$REDIS_ADDR" \
        --redis-prefix "$prefix"
    check "${what}replay under the engine's prefix finds all $valid events decided" \
        grep -q " $valid duplicates" "$T/dup-$prefix.jsonl.err"
    check "${what}window values in Redis equal a memory replay's ($(lines "$memwin") keys)" \
        cmp -s "$memwin" "$T/dup-$prefix.win"
}

# between LO X HI: LO < X < HI (numbers)
between() { [ "$2" -gt "$1" ] && [ "$2" -lt "$3" ]; }
