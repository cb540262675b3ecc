#!/usr/bin/env bash
# Counts the instructions a release `ckp serve` (SQLite) executes per K=10 run, under callgrind: unlike times, the
# count does not depend on what else the machine is doing, so two builds compare exactly. The server starts with
# instrumentation off; 50 runs warm it up; then RUNS runs at C=8 are counted (start-up excluded).
# Usage: [AUTH=on] scripts/bench-instructions.sh [CKP_BINARY] [RUNS] (default: the release build, 300). With AUTH=on
# the server requires credentials and the bench sends the first start's admin API key (`--auth on` / `--api-key`).
set -euo pipefail
cd "$(dirname "$0")/.."
CKP=${1:-${CARGO_TARGET_DIR:-target}/release/ckp}
RUNS=${2:-300}
PORT=18094
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.%p.out" --dump-instr=no --instr-atstart=no \
  "$CKP" serve --bind 127.0.0.1:$PORT --data-dir "$DIR" ${AUTH:+--auth "$AUTH"} >/dev/null 2>"$DIR/serve.log" &
PID=$!
until curl -s -o /dev/null http://127.0.0.1:$PORT/api/health; do sleep 0.1; done
KEY=()
if [ "${AUTH:-}" = on ]; then KEY=(--api-key "$(grep -o 'ckp_[0-9a-f]\{12\}_[A-Za-z0-9_-]\{43\}' "$DIR/serve.log" | head -1)"); fi
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n 50 -c 8 "${KEY[@]}" >/dev/null
callgrind_control -i on $PID >/dev/null
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c 8 --warmup 0 "${KEY[@]}" >/dev/null
callgrind_control -i off $PID >/dev/null
kill -INT $PID
wait $PID 2>/dev/null || true
total=$(callgrind_annotate "$DIR"/cg.*.out 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
echo "$CKP: $((total / RUNS)) instructions per K=10 run (server, $RUNS runs at C=8)"
if [ -n "${KEEP:-}" ]; then cp "$DIR"/cg.*.out "$KEEP"; fi
