#!/usr/bin/env bash
# Compares two ckp binaries back to back: each round starts `ckp serve` on a fresh SQLite file with binary A, runs
# `ckp bench` (K=10 chain, C=32), stops it, then does the same with binary B; rounds alternate A and B so that
# machine noise hits both alike. Prints each measurement and the median runs/s of each binary, and B / A.
# Usage: scripts/bench-compare.sh A_BINARY B_BINARY [RUNS=5000] [ROUNDS=3] [extra `ckp serve` flags for both...]
set -euo pipefail
A=${1:?usage: bench-compare.sh A_BINARY B_BINARY [RUNS] [ROUNDS] [serve flags...]}
B=${2:?usage: bench-compare.sh A_BINARY B_BINARY [RUNS] [ROUNDS] [serve flags...]}
RUNS=${3:-5000}
ROUNDS=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
PORT=18097
DIR=$(mktemp -d)
PID=
trap 'if [ -n "$PID" ]; then kill $PID 2>/dev/null || true; fi; rm -rf "$DIR"' EXIT

# One measurement: runs/s of binary $1 (the bench client is always binary A, so only the server differs).
measure() {
  local bin=$1; shift
  rm -rf "$DIR/data"
  "$bin" serve --bind 127.0.0.1:$PORT --data-dir "$DIR/data" "$@" >/dev/null 2>"$DIR/serve.log" &
  PID=$!
  until curl -sf http://127.0.0.1:$PORT/api/health >/dev/null; do sleep 0.01; done
  "$A" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c 32 --warmup 200 --json |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["runs_per_second"]))'
  kill -INT $PID; wait $PID || true
  PID=
}

a_runs=(); b_runs=()
for round in $(seq "$ROUNDS"); do
  a=$(measure "$A" "$@"); b=$(measure "$B" "$@")
  echo "round $round: A $a runs/s, B $b runs/s"
  a_runs+=("$a"); b_runs+=("$b")
done
python3 - "${a_runs[*]}" "${b_runs[*]}" <<'PY'
import statistics, sys
a = [int(x) for x in sys.argv[1].split()]
b = [int(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median: A {ma:.0f} runs/s, B {mb:.0f} runs/s, B/A = {mb / ma:.3f}")
PY
