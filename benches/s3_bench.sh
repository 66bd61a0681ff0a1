#!/usr/bin/env bash
# vault on a local folder store and on S3 (a single-node Garage on 127.0.0.1), side by side.
#
#   benches/s3_bench.sh [--size-gb G] [--work DIR] [--threads N] [--seed S]
#                       [--keep] [--no-build] [--vault-bin PATH]
#
# One tree is generated (gen_tree.py, about G GiB). Then, for each store (local folder,
# Garage), page cache warm, `sync` before each timed step:
#   init, first snapshot, unchanged re-run, restore of the latest snapshot (with the
#   passphrase, then with the reader identity exported to a file);
# then `vault copy` of the local store to a fresh Garage prefix, and of the Garage store to
# a local folder (whole packs, one GET each) followed by a restore from that folder.
# Measured per step: wall time and peak RSS (GNU time '%e %M'), and for Garage the S3
# requests the server answered, by kind (from its Prometheus metrics, so nothing sits in
# the data path), set against the packs written and the new data stored.
# Output: a table on stdout (also WORK/results.txt) and the raw figures in WORK/*.tsv.
# Garage runs without fsync (like the tests), on the same disk as the local store.
#
# Reading the figures: Garage 2.5.0 answers a request on a reused (keep-alive) connection
# about 40 ms late (Nagle on its side against delayed ACKs on ours; a fresh connection
# answers in 2 to 5 ms), so every step made of many small requests in a row, such as a
# restore that reads blob by blob, pays about 40 ms per request per worker here. Real S3
# first-byte latencies are of the same order (tens of ms), so the request count is what
# matters; the table shows it for every step.
set -euo pipefail

SIZE_GB=0.5
WORK="${TMPDIR:-/tmp}/vault-s3-bench"
THREADS=""
SEED=1
KEEP=0
BUILD=1
VAULT_BIN=""
PASSPHRASE="bench-passphrase-not-secret"
PACK_MIB=16

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --size-gb) SIZE_GB="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --vault-bin) VAULT_BIN="$2"; BUILD=0; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "s3_bench.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
log() { printf '[s3-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for c in /usr/bin/time python3 curl; do
    command -v "$c" >/dev/null 2>&1 || { echo "s3_bench.sh: $c is missing (Debian packages: time, python3, curl)" >&2; exit 1; }
done

# shellcheck source=benches/garage.sh
. "$HERE/garage.sh"

# Work folder: only ever delete what this script made.
if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -e "$WORK/.vault-s3-bench" ]; then
    echo "s3_bench.sh: $WORK exists, is not empty and was not made by s3_bench.sh; pick another --work" >&2
    exit 1
fi
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
touch "$WORK/.vault-s3-bench"
rm -rf "${WORK:?}/local" "${WORK:?}/s3" "${WORK:?}/copy" "${WORK:?}/back" "${WORK:?}/garage" "${WORK:?}/logs" "${WORK:?}/tree"
mkdir -p "$WORK/logs"
LOGS="$WORK/logs"
MEAS="$WORK/measurements.tsv"   # target step wall_s maxrss_kib rc
REQS="$WORK/requests.tsv"       # target step endpoint count
INFO="$WORK/info.tsv"           # key value
: > "$MEAS"; : > "$REQS"; : > "$INFO"
info() { printf '%s\t%s\n' "$1" "$2" >> "$INFO"; }

if [ -z "$VAULT_BIN" ]; then
    VAULT_BIN="$REPO_ROOT/target/release/vault"
    if [ "$BUILD" = 1 ]; then
        log "cargo build --release"
        (cd "$REPO_ROOT" && cargo build --release --bin vault 2>&1 | tail -3 >&2)
    fi
fi
[ -x "$VAULT_BIN" ] || { echo "s3_bench.sh: no vault binary at $VAULT_BIN" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Garage on 127.0.0.1, killed when this script exits.
# ---------------------------------------------------------------------------------------------
cleanup() {
    garage_stop
    if [ "$KEEP" = 0 ]; then
        rm -rf "${WORK:?}/garage" "${WORK:?}/local" "${WORK:?}/s3" "${WORK:?}/copy" "${WORK:?}/back" "${WORK:?}/tree"
    fi
}
trap cleanup EXIT

garage_start "$WORK/garage" "$LOGS/garage.log"
BUCKET=vault-bench
garage_bucket "$BUCKET"
info garage_version "$("$GARAGE" --version 2>/dev/null | awk '{ print $2 }')"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SHARED_CREDENTIALS_FILE AWS_ENDPOINT_URL_S3 || true

# S3 requests Garage has answered so far, as "Endpoint count" lines.
s3_counts() {
    curl -sf -H "Authorization: Bearer $METRICS_TOKEN" "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^api_s3_request_counter\{/ {
                 match($0, /api_endpoint="[^"]*"/); ep = substr($0, RSTART + 14, RLENGTH - 15)
                 n[ep] += $NF }
             END { for (e in n) printf "%s %d\n", e, n[e] }' | sort
}
probe=$(s3_counts || true)
[ -n "$probe" ] || { curl -s "http://127.0.0.1:$S3_PORT/$BUCKET" >/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------
log "generating a ${SIZE_GB} GiB tree"
python3 "$HERE/gen_tree.py" "$WORK/tree" --size-gb "$SIZE_GB" --seed "$SEED" --quiet >&2
SRC=("$WORK/tree/etc/travis" "$WORK/tree/var/travis")
TREE_BYTES=$(find "${SRC[@]}" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
info tree_bytes "$TREE_BYTES"
sync
sleep 3
warm() { find "${SRC[@]}" -type f -print0 | xargs -0 cat > /dev/null; }

vault_cmd() {  # vault_cmd TARGET ARGS...: sets CMD
    local target=$1; shift
    local dir="$WORK/$target" store
    mkdir -p "$dir"
    [ -e "$dir/config.toml" ] || : > "$dir/config.toml"
    case "$target" in
        local) store="$dir/store" ;;
        s3) store="s3://$BUCKET/s3" ;;
        copy) store="s3://$BUCKET/copy" ;;
        back) store="$WORK/back/store" ;;
    esac
    local keydir="$dir"
    # The copy runs on the host that snapshots into the local store, with its keys and cache.
    [ "$target" = copy ] && keydir="$WORK/local"
    CMD=("$VAULT_BIN" --config "$dir/config.toml" --store "$store" --cache-dir "$keydir/cache"
         --writer-key "$keydir/writer.key")
    [ -n "$THREADS" ] && [ "${1:-}" != --threads ] && CMD+=(--threads "$THREADS")
    CMD+=("$@")
}

run_step() {  # run_step TARGET STEP ARGS...
    local target=$1 step=$2; shift 2
    local out="$LOGS/$target.$step" rc=0 before after t0 t1 wall rss
    vault_cmd "$target" "$@"
    export VAULT_PASSPHRASE="$PASSPHRASE"
    sync
    before=$(s3_counts)
    t0=$(date +%s%N)
    /usr/bin/time -o "$out.time" -f '%e %M' "${CMD[@]}" > "$out.out" 2> "$out.err" || rc=$?
    t1=$(date +%s%N)
    after=$(s3_counts)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    rss=$(tail -n 1 "$out.time" | awk '{ print $2 }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$step" "$wall" "${rss:-0}" "$rc" >> "$MEAS"
    join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$before") <(echo "$after") 2>/dev/null |
        awk -v t="$target" -v s="$step" '$3 - $2 > 0 { printf "%s\t%s\t%s\t%d\n", t, s, $1, $3 - $2 }' >> "$REQS"
    if [ "$rc" != 0 ]; then
        log "$target $step FAILED (exit $rc):"; tail -n 5 "$out.err" | sed 's/^/    /' >&2
        return 0
    fi
    log "$target $step: $wall s, peak $(( ${rss:-0} / 1024 )) MiB"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
info load_before "$(load)"
for target in local s3; do
    run_step "$target" init init
    warm; run_step "$target" snap1 snapshot "${SRC[@]}"
    warm; run_step "$target" snap2 snapshot "${SRC[@]}"
    rm -rf "$WORK/$target/restore"
    run_step "$target" restore restore latest --to "$WORK/$target/restore"
    # The same with many more requests in flight than cores (restore reads blob by blob).
    rm -rf "$WORK/$target/restore16"
    run_step "$target" restore16 --threads 16 restore latest --to "$WORK/$target/restore16"
    rm -rf "$WORK/$target/restore16"
    # With the reader identity file instead of the passphrase (no scrypt).
    vault_cmd "$target" key export-identity --out "$WORK/$target/identity"
    VAULT_PASSPHRASE="$PASSPHRASE" "${CMD[@]}" > /dev/null 2>&1 || true
    rm -rf "$WORK/$target/restoreid"
    run_step "$target" restoreid --identity "$WORK/$target/identity" restore latest --to "$WORK/$target/restoreid"
    rm -rf "$WORK/$target/restoreid"
    # The passphrase once more, after the other restores: tells the unlock's cost apart
    # from what the first restore of a store pays once.
    rm -rf "$WORK/$target/restore2"
    run_step "$target" restore2 restore latest --to "$WORK/$target/restore2"
    rm -rf "$WORK/$target/restore2"
    vault_cmd "$target" snapshots --json
    VAULT_PASSPHRASE="$PASSPHRASE" "${CMD[@]}" > "$LOGS/$target.snapshots.json" 2>/dev/null || true
    bad=0
    for p in "${SRC[@]}"; do
        bad=$((bad + $(diff -rq --no-dereference "$p" "$WORK/$target/restore$p" 2>&1 | wc -l)))
    done
    info "$target.restore_differences" "$bad"
    rm -rf "$WORK/$target/restore"
done
# Shipping the local store offsite: a copy to another prefix of the bucket.
run_step copy copy copy --from "$WORK/local/store" --to "s3://$BUCKET/copy"
# Reading whole packs instead of blob by blob: copy the S3 store to a local folder (one GET
# per pack), then restore from there.
run_step s3 copyback copy --from "s3://$BUCKET/s3" --to "$WORK/back/store"
rm -rf "$WORK/back/restore"
run_step back restore restore latest --to "$WORK/back/restore"
rm -rf "$WORK/back/restore"
info load_after "$(load)"

# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------
python3 - "$WORK" "$PACK_MIB" "${THREADS:-$(nproc)}" <<'PY' | tee "$WORK/results.txt"
import json, sys, os
work, pack_mib, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
meas = {}
for line in open(os.path.join(work, "measurements.tsv")):
    t, s, wall, rss, rc = line.rstrip("\n").split("\t")
    meas[(t, s)] = (float(wall), int(rss), int(rc))
reqs = {}
for line in open(os.path.join(work, "requests.tsv")):
    t, s, ep, n = line.rstrip("\n").split("\t")
    reqs.setdefault((t, s), {})[ep] = int(n)
info = dict(l.rstrip("\n").split("\t", 1) for l in open(os.path.join(work, "info.tsv")))

def summary(target):
    try:
        snaps = json.load(open(os.path.join(work, "logs", f"{target}.snapshots.json")))
        return snaps[0]["summary"]
    except Exception:
        return {}

first = summary("s3") or summary("local")
stored = first.get("stored_bytes", 0)
packs = first.get("packs", 0)
MiB = 1 << 20
print(f"tree: {int(info.get('tree_bytes', 0)) / MiB:.0f} MiB; first snapshot: {first.get('new_bytes', 0) / MiB:.0f} MiB new data, "
      f"{stored / MiB:.0f} MiB stored in {packs} packs ({stored / MiB / max(packs, 1):.1f} MiB each); "
      f"ideal PUTs for that = stored / {pack_mib} MiB = {stored / (pack_mib * MiB):.1f}")
print(f"load average (1/5/15 min) before: {info.get('load_before')}, after: {info.get('load_after')}; garage {info.get('garage_version')}")
print()
steps = [("init", "init"), ("snap1", "first snapshot"), ("snap2", "unchanged re-run"), ("restore", "restore latest"),
         ("restore16", "restore latest, --threads 16"), ("restoreid", "restore latest, identity file"),
         ("restore2", "restore latest, passphrase again"),
         ("copy", "copy local -> S3"),
         ("copyback", "copy S3 -> local (whole packs)"), ("back", "restore from that local copy")]
print(f"| step | local s | local peak MiB | S3 s | S3 peak MiB | S3 requests (PUT / GET / other) |")
print(f"| --- | ---: | ---: | ---: | ---: | --- |")
for step, label in steps:
    def cell(target):
        m = meas.get((target, step))
        if not m:
            return ("", "")
        wall, rss, rc = m
        flag = "" if rc == 0 else f" (exit {rc})"
        return (f"{wall:.2f}{flag}", f"{rss / 1024:.0f}")
    if step == "copy":
        l = ("", "")
        s = cell("copy")
        r = reqs.get(("copy", step), {})
    elif step == "back":
        m = meas.get(("back", "restore"))
        l = (f"{m[0]:.2f}", f"{m[1] / 1024:.0f}") if m else ("", "")
        s = ("", "")
        r = {}
    else:
        l, s = cell("local"), cell("s3")
        r = reqs.get(("s3", step), {})
    puts = sum(n for e, n in r.items() if e in ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload"))
    gets = sum(n for e, n in r.items() if e == "GetObject")
    other = sum(r.values()) - puts - gets
    detail = ", ".join(f"{e} {n}" for e, n in sorted(r.items()))
    print(f"| {label} | {l[0]} | {l[1]} | {s[0]} | {s[1]} | {puts} / {gets} / {other} ({detail}) |")
print()
snap1 = reqs.get(("s3", "snap1"), {})
puts = snap1.get("PutObject", 0)
mp = snap1.get("UploadPart", 0)
if packs:
    print(f"first snapshot to S3: {puts} PutObject + {mp} UploadPart for {packs} packs "
          f"({(puts + mp) / packs:.2f} PUTs per pack; {(puts + mp) / max(stored / (pack_mib * MiB), 1e-9):.2f} per {pack_mib} MiB stored)")
rest = reqs.get(("s3", "restore"), {})
gets = rest.get("GetObject", 0)
restored = int(info.get("tree_bytes", 0))
if gets:
    print(f"restore from S3: {gets} GETs for {restored / MiB:.0f} MiB restored ({restored / gets / 1024:.0f} KiB per GET)")
    for step, workers in (("restore", threads), ("restore16", 16)):
        m = meas.get(("s3", step))
        n = sum(v for e, v in reqs.get(("s3", step), {}).items() if e == "GetObject")
        l = meas.get(("local", step))
        if m and n:
            print(f"  {step}: {m[0]:.1f} s with {workers} workers = {m[0] * workers / n * 1000:.1f} ms per GET per worker"
                  + (f"; {m[0] / l[0]:.0f} times the local restore" if l and l[0] > 0 else ""))
for t in ("local", "s3"):
    d = info.get(f"{t}.restore_differences")
    if d not in (None, "0"):
        print(f"WARNING: the {t} restore differs from the tree in {d} places (see logs)")
PY
