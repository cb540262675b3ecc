#!/usr/bin/env bash
# Counts the instructions a release `ckp serve` (SQLite) executes per K=10 run, under callgrind: unlike times, the
# count does not depend on what else the machine is doing, so two builds compare exactly. The server starts with
# instrumentation off; 50 runs warm it up; then RUNS runs at C=8 are counted (start-up excluded).
# Usage: scripts/bench-instructions.sh [CKP_BINARY] [RUNS] (default: the release build, 300).
set -euo pipefail
cd "$(dirname "$0")/.."
CKP=${1:-${CARGO_TARGET_DIR:-target}/release/ckp}
RUNS=${2:-300}
PORT=18094
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.%p.out" --dump-instr=no --instr-atstart=no \
  "$CKP" serve --bind 127.0.0.1:$PORT --data-dir "$DIR" >/dev/null 2>&1 &
PID=$!
until curl -sf http://127.0.0.1:$PORT/api/health >/dev/null; do sleep 0.1; done
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n 50 -c 8 >/dev/null
callgrind_control -i on $PID >/dev/null
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c 8 --warmup 0 >/dev/null
callgrind_control -i off $PID >/dev/null
kill -INT $PID
wait $PID 2>/dev/null || true
total=$(callgrind_annotate "$DIR"/cg.*.out 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
echo "$CKP: $((total / RUNS)) instructions per K=10 run (server, $RUNS runs at C=8)"
if [ -n "${KEEP:-}" ]; then cp "$DIR"/cg.*.out "$KEEP"; fi
