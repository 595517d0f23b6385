#!/bin/sh
# make demo: replay a sample stretch of exchange traffic that hides an attack
# (tests/demo/events.jsonl) through the embedded default rules, and show
# what a security engineer wants to see. Usage: demo.sh path/to/drainguard
set -eu
BIN=${1:-build/drainguard}
cd "$(dirname "$0")/../.."
OUT=build/demo
mkdir -p "$OUT"

cat <<TXT
== drainguard demo ==
Sample: tests/demo/events.jsonl - six hours of a small exchange: 270
withdrawal requests, account-security events and hot-wallet outflows. Hidden
in it: a Binance-2019-style drain (API keys enabled on nine accounts, then all
nine withdraw to one fresh address within minutes), an account takeover (2FA
reset from a new device, then a withdrawal), and one malformed message.
Rules: rules/default.yaml (drainguard check rules/ validates them).

TXT

"$BIN" replay --rules rules/default.yaml --input tests/demo/events.jsonl \
    --output "$OUT/decisions.jsonl" --explain 2>"$OUT/replay.txt"

echo "-- what was stopped, and why --"
# the explanations come first in replay's stderr, the summary after them
sed -n '1,/^replay: /p' "$OUT/replay.txt" | sed '$d' >"$OUT/explain.txt"
head -32 "$OUT/explain.txt"
n=$(wc -l <"$OUT/explain.txt")
[ "$n" -le 32 ] || echo "  ... ($((n - 32)) more lines in $OUT/replay.txt)"
echo
echo "-- summary --"
sed -n '/^replay: /,$p' "$OUT/replay.txt"
echo
echo "Full decision stream (one JSON decision per line, the decision contract):"
echo "  $OUT/decisions.jsonl ($(wc -l <"$OUT/decisions.jsonl") decisions)"
echo "Explanations and summary: $OUT/replay.txt"
# the same input must give byte-identical decisions
"$BIN" replay --rules rules/default.yaml --input tests/demo/events.jsonl --output "$OUT/again.jsonl" --quiet 2>/dev/null
cmp -s "$OUT/decisions.jsonl" "$OUT/again.jsonl" && echo "Replayed twice: byte-identical." || { echo "replays differ!"; exit 1; }
