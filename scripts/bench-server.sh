#!/usr/bin/env bash
# Measures the server figures of DESIGN §6 with `ckp bench` against a release `ckp serve` on a fresh SQLite file:
# start → healthy, idle RSS, K=10 throughput and latency at C=1/8/32/128, K=200, approval decision latency,
# storage per run after a WAL checkpoint. Usage: [SYNCHRONOUS=full] scripts/bench-server.sh [RUNS] (default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-2000}
cargo build --release -p ckp >/dev/null
CKP=${CARGO_TARGET_DIR:-target}/release/ckp
DIR=$(mktemp -d)
PORT=18099
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
start=$(date +%s%N)
"$CKP" serve --bind 127.0.0.1:$PORT --data-dir "$DIR" --synchronous "${SYNCHRONOUS:-normal}" >/dev/null &
PID=$!
until curl -sf http://127.0.0.1:$PORT/api/health >/dev/null; do sleep 0.001; done
echo "start → healthy: $(( ($(date +%s%N) - start) / 1000000 )) ms"
sleep 1
echo "idle RSS: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$PID/status)"
for c in 1 8 32 128; do
  "$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c $c --warmup 100 --pid $PID
done
"$CKP" bench --url http://127.0.0.1:$PORT -k 200 -n $((RUNS / 10)) -c 8 --pid $PID
"$CKP" bench --url http://127.0.0.1:$PORT --workload approval -n "$RUNS" -c 1 --pid $PID
kill -INT $PID; wait $PID || true
storage() {
python3 - "$1" "$2" <<'PY'
import os, sqlite3, sys
db, label = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
runs = c.execute("SELECT count(*) FROM runs").fetchone()[0]
events = c.execute("SELECT coalesce(sum(events), 0) FROM run_event_batches").fetchone()[0]
c.close()
size = os.path.getsize(db)
print(f"storage ({label}): {size / runs:.0f} bytes per run ({runs} runs, {events / runs:.1f} events per run, {size / 2**20:.1f} MiB)")
PY
}
storage "$DIR/ckp.db" "all runs above"
# Storage of 12-node runs alone: a fresh database with K=10 runs only.
rm -rf "$DIR/k10"
"$CKP" serve --bind 127.0.0.1:$PORT --data-dir "$DIR/k10" >/dev/null &
PID=$!
until curl -sf http://127.0.0.1:$PORT/api/health >/dev/null; do sleep 0.001; done
"$CKP" bench --url http://127.0.0.1:$PORT -k 10 -n "$RUNS" -c 32 >/dev/null
kill -INT $PID; wait $PID || true
storage "$DIR/k10/ckp.db" "K=10 runs only"
