#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target of the repo for FUZZTIME each (default
# 5s: CI's short budget; `FUZZTIME=5m scripts/fuzz.sh` for a real session).
# A crasher is written to testdata/fuzz/ by go test and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u); do
  for fn in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    echo "== fuzz ./$dir $fn for $fuzztime"
    go test -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" "./$dir"
  done
done
