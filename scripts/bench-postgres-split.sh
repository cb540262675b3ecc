#!/usr/bin/env bash
# Where the CPU of a PostgreSQL run goes: one `ckp serve --no-workers` and W `ckp worker` processes on a fresh
# schema, K=10 runs at concurrency C, and the CPU time of each process class (API, workers, PostgreSQL backends,
# read from /proc) divided by the runs; also the transactions (pg_stat_database.xact_commit) and WAL bytes per run.
# Usage: [W=1] [C=32] [CKP=binary] [HOOK='SQL run after start'] scripts/bench-postgres-split.sh [RUNS] (3000).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3000}
W=${W:-1}
CKP=${CKP:-${CARGO_TARGET_DIR:-target}/release/ckp}
BASE=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
PORT=18097
psql -q "$BASE" -c "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench" >/dev/null 2>&1
URL="$BASE?options=-c%20search_path%3Dbench"
"$CKP" serve --no-workers --bind 127.0.0.1:$PORT --database-url "$URL" >/dev/null &
API=$!
WORKERS=()
for _ in $(seq 1 "$W"); do
  "$CKP" worker --workers 16 --database-url "$URL" >/dev/null &
  WORKERS+=("$!")
done
trap 'kill $API "${WORKERS[@]}" 2>/dev/null || true' EXIT
until curl -sf http://127.0.0.1:$PORT/api/health >/dev/null; do sleep 0.01; done
if [ -n "${HOOK:-}" ]; then psql -q "$BASE" -c "$HOOK"; fi
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n 300 -c 32 --warmup 50 >/dev/null
# Statistics as autovacuum keeps them on a database in use (it would not run within a few seconds of a fresh schema).
if [ -z "${NO_ANALYZE:-}" ]; then psql -q "$URL" -c "ANALYZE"; fi
ticks() { local s=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $s; }
backends() { pgrep -d' ' -f '^postgres: ' || true; }
xacts() { psql -Atq "$BASE" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
lsn() { psql -Atq "$BASE" -c "SELECT pg_current_wal_lsn()"; }
l0=$(lsn); x0=$(xacts); a0=$(ticks $API); w0=$(ticks "${WORKERS[@]}"); p0=$(ticks $(backends))
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c "${C:-32}" --warmup 0 | grep -E "runs/s|POST"
a1=$(ticks $API); w1=$(ticks "${WORKERS[@]}"); p1=$(ticks $(backends)); x1=$(xacts); l1=$(lsn)
wal=$(psql -Atq "$BASE" -c "SELECT pg_wal_lsn_diff('$l1', '$l0')::bigint / $RUNS")
hz=$(getconf CLK_TCK)
per() { echo $(( ($1) * 1000000 / hz / RUNS )); }
echo "  CPU per run: API $(per $((a1 - a0))) µs, workers $(per $((w1 - w0))) µs, PostgreSQL $(per $((p1 - p0))) µs; $(( (x1 - x0) / RUNS )) transactions and $wal bytes of WAL per run"
