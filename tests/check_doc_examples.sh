#!/bin/sh
# Every ```yaml block of the rule language docs must be a valid rule file
# (test-file examples, which have `cases:`, are run as rule tests instead).
# Usage: check_doc_examples.sh path/to/drainguard
set -eu
BIN=$1
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0; bad=0
for doc in rules/README.md; do
    awk -v dir="$tmp" '
        /^```yaml/ { n++; f = sprintf("%s/ex%02d.yaml", dir, n); inblk = 1; next }
        /^```/ && inblk { inblk = 0; close(f); next }
        inblk { print > f }
    ' "$doc"
    for f in "$tmp"/ex*.yaml; do
        n=$((n + 1))
        if grep -q '^cases:' "$f"; then
            cp rules/default.yaml "$tmp/default.yaml"
            mv "$f" "$tmp/case.test.yaml"
            out=$("$BIN" test --no-coverage "$tmp/case.test.yaml" 2>&1) || { echo "$doc: test example fails:"; echo "$out"; bad=1; }
            rm -f "$tmp/case.test.yaml" "$tmp/default.yaml"
            continue
        fi
        echo "bc1q-example-exchange-deposit" >"$tmp/exchanges.txt"
        out=$("$BIN" check "$f" 2>&1) || { echo "$doc: example $(basename "$f") is not a valid rule file:"; echo "$out"; bad=1; }
        rm -f "$f"
    done
done
[ "$bad" = 0 ] && echo "doc examples: $n checked, all valid"
exit $bad
