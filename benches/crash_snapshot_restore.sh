#!/usr/bin/env bash
# Kills `vault snapshot` and `vault restore` with SIGKILL at random points
# (tests/crash_points.rs) and checks, after each kill, that `check` passes, the next run
# completes, and every kept snapshot restores byte-exact.
#   bash benches/crash_snapshot_restore.sh [POINTS_PER_COMMAND] [SEED]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
export VAULT_CRASH_POINTS="${1:-100}"
export VAULT_CRASH_SEED="${2:-$RANDOM$RANDOM}"
echo "crash points: $VAULT_CRASH_POINTS per command, seed $VAULT_CRASH_SEED" >&2
nice -n 19 cargo test --release --test crash_points -- --nocapture --test-threads=1 2>&1 \
  | grep -E '^(snapshot|restore):|crash seed|panicked|differences|test result|error'
