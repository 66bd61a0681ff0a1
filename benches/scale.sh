#!/usr/bin/env bash
# Scale benchmark (long; not part of CI): vault beside restic on many small files, and
# optionally on a large database-like tree.
#
#   benches/scale.sh [--files N] [--db-gb G] [--work DIR] [--tools vault,restic]
#                    [--vault-bin PATH] [--keep]
#
# --files N   small files (default 1000000): N/1000 folders (at least 1) of JSON job
#             records of 0.1-2 KB each, deterministic, mtimes a day old.
# --db-gb G   also a database-like tree of G GiB (benches/gen_tree.py), run as its own
#             round (default 0: none).
# For each tree and tool: first snapshot, unchanged re-run, restore into an empty folder;
# wall time, CPU time (user+sys) and peak RSS (GNU time) of each. Output: a table on stdout
# and in WORK/scale.txt (vault/peer ratio per row: below 1 means vault is better).
# Restores: each goes into a fresh ext4 of its own (benches/fresh_fs.sh: a sparse image in
# WORK sized from the tree, mkfs.ext4 with inode tables and journal initialised up front,
# mount -o loop; unmounted and deleted afterwards), so no restore pays for ext4's scan of the
# inodes that earlier restores deleted. Needs root and a loop device (e2fsprogs installed when
# missing); else one log line says so and the restores go into folders on WORK's file system.
set -euo pipefail

FILES=1000000
DB_GB=0
WORK="${TMPDIR:-/tmp}/vault-scale"
TOOLS="vault,restic"
VAULT_BIN=""
KEEP=0
PASSPHRASE="bench-passphrase-not-secret"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --files) FILES="$2"; shift 2 ;;
        --db-gb) DB_GB="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --tools) TOOLS="$2"; shift 2 ;;
        --vault-bin) VAULT_BIN="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "scale.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
IFS=',' read -r -a TOOL_LIST <<< "$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case "$t" in vault|restic) ;; *) echo "scale.sh: unknown tool: $t" >&2; exit 2 ;; esac
done
log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -x /usr/bin/time ] || { echo "scale.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
if [[ ",$TOOLS," == *",restic,"* ]]; then
    command -v restic >/dev/null || { echo "scale.sh: needs restic (apt-get install restic)" >&2; exit 1; }
fi
if [ -z "$VAULT_BIN" ]; then
    VAULT_BIN="$REPO_ROOT/target/release/vault"
    log "cargo build --release"
    (cd "$REPO_ROOT" && cargo build --release --bin vault 2>&1 | tail -3 >&2)
fi
[ -x "$VAULT_BIN" ] || { echo "scale.sh: no vault binary at $VAULT_BIN" >&2; exit 1; }

if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -e "$WORK/.vault-scale" ]; then
    echo "scale.sh: $WORK exists, is not empty and was not made by scale.sh; pick another --work" >&2
    exit 1
fi
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
touch "$WORK/.vault-scale"
MEAS="$WORK/measurements.tsv"   # tree tool step wall_s maxrss_kib rc cpu_s
: > "$MEAS"
mkdir -p "$WORK/logs"
# shellcheck source=benches/fresh_fs.sh
. "$HERE/fresh_fs.sh"
fresh_fs_setup "$WORK"  # sets the EXIT trap that unmounts and deletes restore file systems

gen_small() {  # gen_small DIR N
    python3 - "$1" "$2" <<'PY'
import json, os, random, sys, time
root, n = sys.argv[1], int(sys.argv[2])
folders = max(1, n // 1000)
rng = random.Random(14)
old = time.time() - 86400
states = ["passed", "failed", "errored", "canceled"]
# Log text: windows of one pool of build-log-like words (generating each file's text
# afresh is far slower than writing it).
words = ["npm", "install", "test", "passed", "ok", "build", "error", "warning", "travis_fold",
         "$", "bundle", "exec", "rake", "0.%d s" % rng.randrange(1000), "make", "-j2", "done"]
pool = " ".join(rng.choice(words) + ("\n" if rng.random() < 0.1 else "") for _ in range(400000))
made = 0
for d in range(folders):
    path = os.path.join(root, "jobs", "%04d" % d)
    os.makedirs(path, exist_ok=True)
    count = n // folders + (1 if d < n % folders else 0)
    for i in range(count):
        job = d * 1000 + i
        size = rng.randrange(20, 1900)
        start = rng.randrange(0, len(pool) - size)
        rec = {"id": job, "repository_id": rng.randrange(1, 5000), "state": rng.choice(states),
               "number": "%d.%d" % (job // 7, job % 7), "queue": "builds.linux",
               "started_at": "2026-11-%02dT%02d:%02d:%02dZ" % (rng.randrange(1, 29), rng.randrange(24),
                                                              rng.randrange(60), rng.randrange(60)),
               "log": pool[start:start + size]}
        f = os.path.join(path, "%d.json" % job)
        with open(f, "w") as out:
            json.dump(rec, out)
        os.utime(f, (old, old))
        made += 1
print("%d files in %d folders" % (made, folders), file=sys.stderr)
PY
}

tool_cmd() {  # tool_cmd TREE_NAME TOOL STEP SRC
    local tree=$1 tool=$2 step=$3 src=$4 dir
    dir="$WORK/$tree/$tool"
    mkdir -p "$dir"
    case "$tool" in
    vault)
        export VAULT_PASSPHRASE="$PASSPHRASE"
        [ -e "$dir/config.toml" ] || : > "$dir/config.toml"
        CMD=("$VAULT_BIN" --config "$dir/config.toml" --store "$dir/store" --cache-dir "$dir/cache"
             --writer-key "$dir/writer.key")
        case "$step" in
            init) CMD+=(init) ;;
            snap1|snap2) CMD+=(snapshot "$src") ;;
            restore) CMD+=(restore latest --to "$dir/restore") ;;
        esac ;;
    restic)
        export RESTIC_PASSWORD="$PASSPHRASE" RESTIC_REPOSITORY="$dir/store" RESTIC_CACHE_DIR="$dir/cache"
        case "$step" in
            init) CMD=(restic init) ;;
            snap1|snap2) CMD=(restic backup "$src") ;;
            restore) CMD=(restic restore latest --target "$dir/restore") ;;
        esac ;;
    esac
}

run_step() {  # run_step TREE_NAME TOOL STEP SRC
    local rc=0 t0 t1 wall rss cpu out="$WORK/logs/$1.$2.$3"
    tool_cmd "$@"
    sync
    t0=$(date +%s%N)
    /usr/bin/time -o "$out.time" -f '%e %M %U %S' "${CMD[@]}" >"$out.out" 2>"$out.err" || rc=$?
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    rss=$(tail -n 1 "$out.time" | awk '{ print $2 }')
    cpu=$(tail -n 1 "$out.time" | awk '{ printf "%.2f", $3 + $4 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$wall" "${rss:-0}" "$rc" "${cpu:-0}" >> "$MEAS"
    log "$1 $2 $3: $wall s, CPU $cpu s, peak $(( ${rss:-0} / 1024 )) MiB, exit $rc"
}

round() {  # round TREE_NAME SRC
    local t fs=(0 0)
    if [ "$FRESH_FS" = 1 ]; then read -r -a fs < <(fresh_fs_size "$2"); fi  # bytes, inodes
    for t in "${TOOL_LIST[@]}"; do
        rm -rf "${WORK:?}/$1/$t"
        run_step "$1" "$t" init "$2"
        find "$2" -type f -print0 | xargs -0 cat > /dev/null   # warm page cache
        run_step "$1" "$t" snap1 "$2"
        run_step "$1" "$t" snap2 "$2"
        rm -rf "${WORK:?}/$1/$t/restore"
        fresh_fs_mount "$WORK/$1/$t/restore" "${fs[@]}"   # a fresh ext4, else a plain folder
        run_step "$1" "$t" restore "$2"
        fresh_fs_release "$WORK/$1/$t/restore" "$KEEP"
    done
}

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
SMALL="$WORK/small"
if [ ! -e "$SMALL/.done-$FILES" ]; then
    rm -rf "$SMALL"
    log "generating $FILES small files in $SMALL"
    gen_small "$SMALL" "$FILES"
    touch "$SMALL/.done-$FILES"
fi
round small "$SMALL/jobs"
if [ "$DB_GB" != 0 ]; then
    DB="$WORK/db"
    if [ ! -e "$DB/.done-$DB_GB" ]; then
        rm -rf "$DB"
        log "generating a $DB_GB GiB database-like tree in $DB"
        python3 "$HERE/gen_tree.py" "$DB" --size-gb "$DB_GB" --seed 1 >&2
        touch "$DB/.done-$DB_GB"
        sleep 3
    fi
    round db "$DB/var/travis"
fi
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$MEAS" "$TOOLS" "$FILES" "$DB_GB" "$LOAD_START" "$LOAD_END" <<'PY' | tee "$WORK/scale.txt"
import sys
meas_path, tools, files, db_gb, l0, l1 = sys.argv[1:7]
tools = tools.split(",")
m = {}
for line in open(meas_path):
    tree, tool, step, wall, rss, rc, cpu = line.rstrip("\n").split("\t")
    m[(tree, tool, step)] = (float(wall), float(cpu), int(rss) / 1024, int(rc))
print("%s small files, database-like tree %s GiB; %s cores; load %s -> %s"
      % (files, db_gb, open("/proc/cpuinfo").read().count("processor\t:"), l0, l1))
peers = [t for t in tools if t != "vault"] if "vault" in tools else []
# Per tool: wall s, CPU s, peak MiB; per peer: vault/peer ratios of the three.
kinds = (("s", "%.2f"), ("cpu s", "%.2f"), ("MiB", "%.0f"))
ratio_kinds = ("time", "cpu", "peak")
head = ["tree", "step"] + ["%s %s" % (t, k) for k, _ in kinds for t in tools] + \
       ["vault/%s %s" % (p, k) for k in ratio_kinds for p in peers]
rows = []
for tree in ("small", "db"):
    for step, label in (("snap1", "first snapshot"), ("snap2", "unchanged re-run"), ("restore", "restore")):
        got = {t: m.get((tree, t, step)) for t in tools}
        if not any(got.values()):
            continue
        cell = lambda v, i: "-" if v is None else ("FAIL" if v[3] else kinds[i][1] % v[i])
        row = [tree, label] + [cell(got[t], i) for i in range(3) for t in tools]
        for i in range(3):
            for p in peers:
                a, b = got.get("vault"), got.get(p)
                row.append("%.2f" % (a[i] / b[i]) if a and b and not a[3] and not b[3] and b[i] else "-")
        rows.append(row)
w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
print("  ".join(h.ljust(w[i]) if i < 2 else h.rjust(w[i]) for i, h in enumerate(head)))
for r in rows:
    print("  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r)))
PY
