#!/usr/bin/env bash
# The cost of authentication on the run path: one release binary, rounds alternating `ckp serve --auth off` and
# `--auth on` (the first start's admin API key, read from the server's terminal output, sent by `ckp bench
# --api-key` as X-API-Key on every request), each on a fresh SQLite file, `ckp bench` K=10, C=32. Prints each
# measurement, the medians and on / off. Usage: scripts/bench-auth.sh [CKP_BINARY] [RUNS=5000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
CKP=${1:-${CARGO_TARGET_DIR:-target}/release/ckp}
RUNS=${2:-5000}
ROUNDS=${3:-3}
PORT=18096
DIR=$(mktemp -d)
PID=
trap 'if [ -n "$PID" ]; then kill $PID 2>/dev/null || true; fi; rm -rf "$DIR"' EXIT

measure() {
  local mode=$1
  rm -rf "$DIR/data"
  "$CKP" serve --bind 127.0.0.1:$PORT --data-dir "$DIR/data" --auth "$mode" >/dev/null 2>"$DIR/serve.log" &
  PID=$!
  until curl -s -o /dev/null http://127.0.0.1:$PORT/api/health; do sleep 0.01; done
  local key=()
  if [ "$mode" = on ]; then
    key=(--api-key "$(grep -o 'ckp_[0-9a-f]\{12\}_[A-Za-z0-9_-]\{43\}' "$DIR/serve.log" | head -1)")
  fi
  "$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c 32 --warmup 200 --json "${key[@]}" |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["runs_per_second"]))'
  kill -INT $PID; wait $PID || true
  PID=
}

off=(); on=()
for round in $(seq "$ROUNDS"); do
  a=$(measure off); b=$(measure on)
  echo "round $round: auth off $a runs/s, auth on (API key) $b runs/s"
  off+=("$a"); on+=("$b")
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
a = [int(x) for x in sys.argv[1].split()]
b = [int(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median: auth off {ma:.0f} runs/s, auth on {mb:.0f} runs/s, on / off = {mb / ma:.3f}")
PY
