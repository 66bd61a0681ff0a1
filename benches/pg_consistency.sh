#!/usr/bin/env bash
# Repeats the PostgreSQL consistency round (tests/postgres_capture.rs): a pgbench cluster
# under load with checkpoints forced every 200 ms is snapshotted, restored into a scratch
# folder and started; a round holds when recovery ends, `pg_amcheck --heapallindexed` is
# clean and pgbench's balances agree. Each round runs twice on the same load: with online
# capture ([[postgres]]) and with plain file-by-file capture.
#
#   bash benches/pg_consistency.sh            # 10 rounds, pgbench scale 10
#   ROUNDS=20 SCALE=30 bash benches/pg_consistency.sh
#
# Needs root (the cluster runs as nobody) and Debian's PostgreSQL 15 (`bash .ci/test`
# installs it). Runs niced: it is meant to share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export VAULT_PG_ROUNDS="${ROUNDS:-10}" VAULT_PG_SCALE="${SCALE:-10}"
exec nice -n 15 cargo test --release --test postgres_capture -- \
  --ignored --exact consistency_rounds --nocapture --test-threads 1
