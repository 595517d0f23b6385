#!/bin/sh
# tests/fuzz/run.sh SECONDS - build the libFuzzer targets (engine sources
# plus tests/fuzz/fuzz_*.c, with ASan and UBSan) into build-fuzz/ and run each
# for SECONDS seconds on a copy of its seed corpus, so the checked-in corpus
# never churns. Exits non-zero when any target finds a crash, leak or timeout;
# the reproducer is left in build-fuzz/artifacts/TARGET/ (the previous run's
# in build-fuzz/artifacts/TARGET.prev/).
#
# Environment: CLANG (default clang, then clang-14), FUZZ_TARGETS (default
# "decode rules expr"), FUZZ_JOBS (parallel workers per target, default 1).
set -u

SECONDS_EACH=${1:-60}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build-fuzz
FUZZ=$ROOT/tests/fuzz
TARGETS=${FUZZ_TARGETS:-"decode rules expr"}
JOBS=${FUZZ_JOBS:-1}

if [ -z "${CLANG:-}" ]; then
    for c in clang clang-14; do
        if command -v "$c" >/dev/null 2>&1; then CLANG=$c; break; fi
    done
fi
if [ -z "${CLANG:-}" ]; then
    echo "fuzz: clang not found (libFuzzer needs clang; set CLANG=...)" >&2
    exit 2
fi

CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -Iengine -Iinclude -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
        -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Wshadow -Wno-unused-parameter"
LIBS="-lcjson -lyaml -lcrypto -lm"

cd "$ROOT" || exit 2
mkdir -p "$OUT/obj"

# engine objects, compiled once for all targets (-fsanitize=fuzzer on them
# adds coverage instrumentation; libFuzzer's main comes from the link). They
# go into an archive so a target links only the objects it reaches: the
# Kafka and Redis adapters and their libraries stay out of the fuzzers.
objs=""
for src in engine/*.c; do
    [ "$src" = engine/main.c ] && continue
    obj=$OUT/obj/$(basename "$src" .c).o
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find engine -name '*.h' -newer "$obj")" ]; then
        echo "fuzz: cc $src"
        # shellcheck disable=SC2086
        $CLANG $CFLAGS -c "$src" -o "$obj.$$" && mv "$obj.$$" "$obj" || exit 2
    fi
    objs="$objs $obj"
done

rm -f "$OUT/libdg-fuzz.a.$$"
# shellcheck disable=SC2086
ar rcs "$OUT/libdg-fuzz.a.$$" $objs && mv "$OUT/libdg-fuzz.a.$$" "$OUT/libdg-fuzz.a" || exit 2

for t in $TARGETS; do
    echo "fuzz: link fuzz_$t"
    # shellcheck disable=SC2086
    $CLANG $CFLAGS -o "$OUT/fuzz_$t" "$FUZZ/fuzz_$t.c" "$OUT/libdg-fuzz.a" $LIBS || exit 2
done

[ "$SECONDS_EACH" -gt 0 ] 2>/dev/null || { echo "fuzz: built; SECONDS=0, not running"; exit 0; }

status=0
for t in $TARGETS; do
    case $t in
        decode) maxlen=70000 ;;
        rules)  maxlen=8192 ;;
        expr)   maxlen=4096 ;;
        *)      maxlen=4096 ;;
    esac
    work=$OUT/corpus/$t
    art=$OUT/artifacts/$t
    # findings of the previous run move aside, so that only this run's
    # findings decide the exit status
    if [ -d "$art" ] && [ -n "$(ls "$art")" ]; then
        rm -rf "$art.prev" && mv "$art" "$art.prev"
    fi
    mkdir -p "$work" "$art"
    cp "$FUZZ/corpus/$t/"* "$work/" 2>/dev/null
    par=""
    [ "$JOBS" -gt 1 ] && par="-jobs=$JOBS -workers=$JOBS"
    dict=""
    [ -f "$FUZZ/$t.dict" ] && dict="-dict=$FUZZ/$t.dict"
    echo "fuzz: running fuzz_$t for ${SECONDS_EACH}s (max_len $maxlen)"
    # work is the corpus libFuzzer writes new inputs to; the seeds are read
    # from it as well (they were copied in above)
    # shellcheck disable=SC2086
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$OUT/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len="$maxlen" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 $par \
        -artifact_prefix="$art/" $dict "$work" >"$OUT/fuzz_$t.log" 2>&1
    rc=$?
    tail -n 12 "$OUT/fuzz_$t.log" | grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|Done|ERROR|SUMMARY' | sed "s/^/fuzz_$t: /"
    if [ $rc -ne 0 ] || ls "$art" | grep -qE '^(crash|leak|timeout|oom)-'; then
        echo "fuzz: fuzz_$t FAILED (exit $rc); see $OUT/fuzz_$t.log and $art/" >&2
        grep -E 'ERROR:|SUMMARY:' "$OUT/fuzz_$t.log" | head -5 >&2
        status=1
    fi
done
[ $status -eq 0 ] && echo "fuzz: no findings"
exit $status
