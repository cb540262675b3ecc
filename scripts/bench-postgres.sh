#!/usr/bin/env bash
# Measures ckp on PostgreSQL with `ckp bench`: one API process (`ckp serve --no-workers`) and 1 or 2 worker
# processes (`ckp worker`) on a fresh schema, K=10 runs at C=32 (issue 8's target: ≥ 1,000 runs/s with 2 workers).
# Usage: [DATABASE_URL=postgres://…] scripts/bench-postgres.sh [RUNS] (default 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5000}
BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p ckp >/dev/null
CKP=${CARGO_TARGET_DIR:-target}/release/ckp
PORT=18098
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
for workers in 1 2; do
  psql -q "$BASE_URL" -c "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench" >/dev/null 2>&1
  URL="$BASE_URL?options=-c%20search_path%3Dbench"
  "$CKP" serve --no-workers --bind 127.0.0.1:$PORT --database-url "$URL" >/dev/null &
  API=$!
  PIDS=("$API")
  for _ in $(seq 1 "$workers"); do
    "$CKP" worker --workers 16 --database-url "$URL" >/dev/null &
    PIDS+=("$!")
  done
  until curl -sf http://127.0.0.1:$PORT/api/health >/dev/null; do sleep 0.01; done
  echo "== 1 API process + $workers worker process(es) (16 workers each)"
  "$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c 32 --warmup 200 --pid "$API"
  "$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n $((RUNS / 5)) -c 1 --warmup 50
  kill -INT "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null || true
done
