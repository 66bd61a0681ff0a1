#!/usr/bin/env bash
# Runs the decoder fuzz harness (tests/fuzz_decoders.rs) with many inputs per decoder.
#   bash benches/fuzz.sh [INPUTS_PER_DECODER] [SEED]    (default 1000000)
# Niced, one decoder at a time per core; prints each decoder's count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
export VAULT_FUZZ_INPUTS="${1:-1000000}"
export VAULT_FUZZ_SEED="${2:-$RANDOM$RANDOM}"
echo "fuzz: $VAULT_FUZZ_INPUTS inputs per decoder, seed $VAULT_FUZZ_SEED" >&2
nice -n 19 cargo test --release --test fuzz_decoders -- --nocapture --test-threads="${FUZZ_THREADS:-2}" 2>&1 \
  | grep -E '^fuzz:|panicked|test result|error' 
