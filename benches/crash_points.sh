#!/usr/bin/env bash
# Crash points: kill -9 vault at many random moments during prune and `repair index`, and
# judge the store after each.
#
#   benches/crash_points.sh [--points N] [--commands prune,repair] [--work DIR] [--vault-bin PATH] [--keep]
#
# For each command, N times (default 100): reset the store to a saved state where the
# command has work, start the command, SIGKILL it after a random delay within its
# measured run time, then
#   check      `vault check` must exit 0 (leftovers in tmp/ and unindexed packs are not errors)
#   restore    the kept snapshot must restore byte-exact
#   rerun      the same command must then complete, and `check --read-data` pass
# repair runs in two modes on alternate points: `--read-all-packs` on a sound store, and
# plain on a store whose first index file has a flipped byte (then check is not required
# to pass before the rerun, but the restore is).
# Prints one line per command with the counts; exits 1 if any point failed.
set -euo pipefail

POINTS=100
COMMANDS="prune,repair"
WORK="${TMPDIR:-/tmp}/vault-crash-points"
VAULT_BIN=""
KEEP=0
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --points) POINTS="$2"; shift 2 ;;
        --commands) COMMANDS="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --vault-bin) VAULT_BIN="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "crash_points.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
cd "$(dirname "$0")/.."
if [ -z "$VAULT_BIN" ]; then
    VAULT_BIN="$PWD/target/release/vault"
    [ -x "$VAULT_BIN" ] || { echo "build first (cargo build --release) or give --vault-bin" >&2; exit 2; }
fi

rm -rf "$WORK"
mkdir -p "$WORK"
[ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
export VAULT_PASSPHRASE="crash-points-not-secret"
: > "$WORK/vault.toml"
STORE="$WORK/store"
v() {
    "$VAULT_BIN" --config "$WORK/vault.toml" --store "$STORE" --cache-dir "$WORK/cache" \
        --writer-key "$WORK/writer.key" "$@"
}

# A store where prune has work: four snapshots of changing data, three forgotten.
v init >/dev/null
sed -i 's/"pack_size": [0-9]*/"pack_size": 1048576/' "$STORE/config"
SRC="$WORK/src"
mkdir -p "$SRC"
for round in 1 2 3 4; do
    for i in 1 2 3 4 5 6; do head -c 400000 /dev/urandom > "$SRC/f$i"; done
    v snapshot "$SRC" >/dev/null
done
mapfile -t IDS < <(v snapshots --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("snapshots",d) if isinstance(d,dict) else d; print("\n".join(s["id"] for s in d))')
KEPT="${IDS[-1]}"
for id in "${IDS[@]:0:3}"; do rm "$STORE/snapshots/$id"; done
cp -a "$SRC" "$WORK/expected"
cp -a "$STORE" "$WORK/pristine"

ms_now() { date +%s%3N; }
measure() { local t0; t0=$(ms_now); v "$@" >/dev/null; echo $(( $(ms_now) - t0 )); }

restore_exact() {
    rm -rf "$WORK/out"
    mkdir -p "$WORK/out"
    v restore "$KEPT" --to "$WORK/out" >/dev/null 2>&1 || [ $? = 3 ] || return 1
    diff -r "$WORK/expected" "$WORK/out$SRC" >/dev/null
}

kill_after_ms() {
    local ms="$1"; shift
    # The binary itself in the background (not the shell function, whose subshell
    # would take the signal while vault went on).
    "$VAULT_BIN" --config "$WORK/vault.toml" --store "$STORE" --cache-dir "$WORK/cache" \
        --writer-key "$WORK/writer.key" "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

failures=0
run_points() {
    local name="$1"
    local n_check=0 n_restore=0 n_rerun=0 n_finished_first=0 n_damaged=0
    local dur
    case "$name" in
        prune) rm -rf "$STORE"; cp -a "$WORK/pristine" "$STORE"; dur=$(measure prune --repack-threshold 0) ;;
        repair) v prune >/dev/null; dur=$(measure repair index --read-all-packs) ;;
    esac
    for ((i = 1; i <= POINTS; i++)); do
        local delay=$(( RANDOM % (dur + 1) ))
        local damaged=0
        local args
        case "$name" in
            prune)
                rm -rf "$STORE"; cp -a "$WORK/pristine" "$STORE"
                args=(prune --repack-threshold 0) ;;
            repair)
                if (( i % 2 == 0 )); then
                    damaged=1; n_damaged=$((n_damaged + 1))
                    f=$(ls "$STORE/index" | head -1)
                    python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[20]^=1; open(p,"wb").write(b)' "$STORE/index/$f"
                    args=(repair index)
                else
                    args=(repair index --read-all-packs)
                fi ;;
        esac
        kill_after_ms "$delay" "${args[@]}"
        if [ "$damaged" = 1 ] || v check >"$WORK/check.txt" 2>&1; then n_check=$((n_check + 1)); else
            echo "$name point $i (${delay} ms): check failed after the kill:" >&2
            sed 's/^/    /' "$WORK/check.txt" >&2
            failures=$((failures + 1)); fi
        if restore_exact; then n_restore=$((n_restore + 1)); else
            echo "$name point $i (${delay} ms): kept snapshot does not restore exact" >&2; failures=$((failures + 1)); fi
        if v "${args[@]}" >/dev/null 2>&1 && v check --read-data >/dev/null 2>&1 && restore_exact; then
            n_rerun=$((n_rerun + 1)); else
            echo "$name point $i (${delay} ms): the next run did not complete cleanly" >&2; failures=$((failures + 1)); fi
        echo "  $name $i/$POINTS (killed at ${delay} ms): check clean $n_check, restore exact $n_restore, next run completes $n_rerun" >&2
    done
    echo "$name: $POINTS kill points over ${dur} ms ($n_damaged from a damaged index): check clean $n_check, restore exact $n_restore, next run completes $n_rerun"
}

IFS=, read -r -a cmds <<< "$COMMANDS"
for c in "${cmds[@]}"; do run_points "$c"; done
[ "$failures" = 0 ] || { echo "$failures failures" >&2; exit 1; }
