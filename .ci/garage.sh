#!/bin/sh
# Makes sure a `garage` binary (the S3 server the backend tests run against) is installed.
# Idempotent: does nothing when one is found in $GARAGE_BIN, $PATH or ~/.cargo/bin.
# Building it takes several minutes; run this before `cargo test` so the tests do not.
set -eu

GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

found=""
if [ -n "${GARAGE_BIN:-}" ] && [ -x "$GARAGE_BIN" ]; then
    found="$GARAGE_BIN"
elif command -v garage >/dev/null 2>&1; then
    found="$(command -v garage)"
elif [ -x "$CARGO_BIN/garage" ]; then
    found="$CARGO_BIN/garage"
fi

if [ -n "$found" ]; then
    echo "garage: $found ($("$found" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

echo "garage: not found, building $GARAGE_VERSION with cargo install (several minutes)"
cargo install garage --locked --version "$GARAGE_VERSION"
"$CARGO_BIN/garage" --version
