#!/usr/bin/env bash
# Runs each fuzz target for $1 seconds (default 600), one after the other. Needs `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
for t in ckp_parse template condition; do
  mkdir -p "corpus/$t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
done
