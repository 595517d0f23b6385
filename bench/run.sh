#!/bin/sh
# bench/run.sh BUILD_DIR - the replay benchmark (`make bench`).
#
# Generates events with BUILD_DIR/bench/gen_events (cached in
# BUILD_DIR/bench-data, keyed by the generator's arguments) and replays them
# with BUILD_DIR/drainguard on one core (taskset -c 0 when available):
#   1. throughput and peak RSS: 1,000,000 events, 20,000 accounts, 5,000
#      destinations, 400 days, with rules/default.yaml (bench/rules-bench.yaml
#      while that does not exist);
#   2. RSS flatness: the same key space and events-per-day rate at 250k,
#      500k and 1M events (100, 200 and 400 days): state is bounded by the keys
#      and the window lengths, so peak RSS should not grow with the input;
#   3. cost split: the same 1M events with bench/rules-empty.yaml (no rules,
#      no windows: read + decode + encode only) against the real rules.
# Targets: >= 300,000 events/s on one core, flat RSS.
#
# Environment: BENCH_EVENTS (default 1000000), BENCH_REPEAT (runs per timed
# figure, best is shown; default 3), BENCH_DATA (data directory).
set -eu

B=${1:-build}
BIN=$B/drainguard
GEN=$B/bench/gen_events
DATA=${BENCH_DATA:-$B/bench-data}
EVENTS=${BENCH_EVENTS:-1000000}
REPEAT=${BENCH_REPEAT:-3}
ACCOUNTS=20000
DESTS=5000
SEED=42
RATE_DAYS=400         # days per 1,000,000 events: the fixed events-per-day rate;
                      # even 250k events then span 100 days, past the longest window
EMPTY=bench/rules-empty.yaml
if [ -f rules/default.yaml ]; then RULES=rules/default.yaml; else RULES=bench/rules-bench.yaml; fi

for f in "$BIN" "$GEN"; do
    [ -x "$f" ] || { echo "bench: $f missing (run make bench)" >&2; exit 2; }
done
PIN=""
if command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null; then
    PIN="taskset -c 0"
fi
mkdir -p "$DATA"

# events FILE for N events at the fixed rate; generated once
events() {
    n=$1
    days=$(awk -v n="$n" -v r="$RATE_DAYS" 'BEGIN { printf "%g", n * r / 1000000 }')
    f=$DATA/events-n$n-a$ACCOUNTS-d$DESTS-s$SEED-f$days.jsonl
    if [ ! -s "$f" ]; then
        echo "bench: generating $n events over $days days -> $f" >&2
        "$GEN" --events "$n" --accounts "$ACCOUNTS" --destinations "$DESTS" --seed "$SEED" \
            --days "$days" >"$f.tmp"
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}

# replay RULES FILE -> "seconds events_per_s peak_rss_kib" (best of REPEAT
# by time; RSS of that run)
replay() {
    best=""
    i=0
    while [ $i -lt "$REPEAT" ]; do
        i=$((i + 1))
        # shellcheck disable=SC2086
        if ! $PIN "$BIN" replay --rules "$1" --input "$2" --output /dev/null 2>"$DATA/replay.err"; then
            echo "bench: replay failed:" >&2
            tail -5 "$DATA/replay.err" >&2
            exit 1
        fi
        line=$(awk '/^time: / { print $2, $4, $8 }' "$DATA/replay.err")
        [ -n "$line" ] || { echo "bench: no 'time:' line in the replay summary" >&2; exit 1; }
        if [ -z "$best" ] || awk -v a="$line" -v b="$best" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then
            best=$line
        fi
    done
    echo "$best"
}

field() { echo "$1" | awk -v i="$2" '{ print $i }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

F_FULL=$(events "$EVENTS")
Q=$((EVENTS / 4))
H=$((EVENTS / 2))
F_Q=$(events $Q)
F_H=$(events $H)
SIZE=$(wc -c <"$F_FULL")

echo "drainguard replay benchmark"
echo "  rules:  $RULES ($("$BIN" check "$RULES" 2>&1 | sed -n 's/.*ok: \([0-9]* rules, [0-9]* windows\).*/\1/p'))"
echo "  input:  $EVENTS events, $ACCOUNTS accounts, $DESTS destinations, $(awk -v s="$SIZE" -v n="$EVENTS" 'BEGIN { printf "%.0f bytes/event, %.0f MiB", s / n, s / 1048576 }')"
echo "  cpu:    ${PIN:-unpinned (no taskset)}; $(awk -F: '/model name/ { sub(/^ /, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null)"
echo "  runs:   best of $REPEAT for timed figures"
echo

R_FULL=$(replay "$RULES" "$F_FULL")
R_EMPTY=$(replay "$EMPTY" "$F_FULL")
REPEAT=1
R_Q=$(replay "$RULES" "$F_Q")
R_H=$(replay "$RULES" "$F_H")

EPS=$(field "$R_FULL" 2)
printf '%-36s %12s %10s %12s\n' "run" "events/s" "time s" "peak RSS MiB"
printf '%-36s %12s %10s %12s\n' "------------------------------------" "--------" "------" "------------"
printf '%-36s %12.0f %10.3f %12s\n' "$EVENTS events, rules (1 core)" "$EPS" "$(field "$R_FULL" 1)" "$(mib "$(field "$R_FULL" 3)")"
printf '%-36s %12.0f %10.3f %12s\n' "$EVENTS events, no rules (decode+out)" "$(field "$R_EMPTY" 2)" "$(field "$R_EMPTY" 1)" "$(mib "$(field "$R_EMPTY" 3)")"
printf '%-36s %12.0f %10.3f %12s\n' "$Q events, rules" "$(field "$R_Q" 2)" "$(field "$R_Q" 1)" "$(mib "$(field "$R_Q" 3)")"
printf '%-36s %12.0f %10.3f %12s\n' "$H events, rules" "$(field "$R_H" 2)" "$(field "$R_H" 1)" "$(mib "$(field "$R_H" 3)")"
echo
awk -v full="$(field "$R_FULL" 1)" -v empty="$(field "$R_EMPTY" 1)" -v eps="$EPS" \
    -v q="$(field "$R_Q" 3)" -v h="$(field "$R_H" 3)" -v f="$(field "$R_FULL" 3)" 'BEGIN {
    printf "cost split: decode + output %.3f s (%.0f%% of the run), rules + windows %.3f s (%.0f%%)\n",
           empty, 100 * empty / full, full - empty, 100 * (full - empty) / full
    printf "RSS flatness: %.1f / %.1f / %.1f MiB at 1/4, 1/2, 1x; ratio 1x/(1/4) = %.2f\n",
           q / 1024, h / 1024, f / 1024, f / q
    printf "target >= 300000 events/s on one core: %s\n", (eps >= 300000 ? "met" : "NOT met")
    printf "target flat RSS (ratio <= 1.25):      %s\n", (f / q <= 1.25 ? "met" : "NOT met")
}'
