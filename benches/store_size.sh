#!/usr/bin/env bash
# Store size by compression level and chunk sizes, on the benchmark's Travis-like tree.
#
#   benches/store_size.sh [--size-gb G] [--work DIR] [--vault-bin PATH] [--seed S]
#                         [--fraction F] [--configs "LEVEL/MIN/AVG/MAX ..."] [--breakdown]
#                         [--rounds N]
#
# For every configuration (zstd level, chunker min/avg/max in KiB; default: the sweep in
# benches/README.md), on a fresh copy of the same generated tree: init, first snapshot,
# unchanged re-run, "a day of database activity" (gen_tree.py --mutate), third snapshot,
# restore of the latest snapshot. Printed, one row per configuration: the store after the
# second and the third snapshot (du -sb, MiB), what the day added, and the CPU time
# (user+sys, seconds; GNU time) of the first snapshot, the third and the restore. Store
# sizes vary by about 0.5 % between stores (the chunker is seeded from each store's key);
# CPU times move with the machine's load, so --rounds N (default 3) then runs init and the
# first snapshot alone N times, the configurations interleaved, and prints the median CPU.
# --breakdown also prints, per configuration, where the final store's bytes go (from the
# local cache's blob index: blob payloads raw and stored, AEAD tags, pack headers and
# trailers, index files, snapshot records, keys; du -sb also counts the folders).
# Needs target/release/vault (or --vault-bin), python3, GNU time, sqlite3 (python module).
set -euo pipefail

SIZE_GB=2
WORK="${TMPDIR:-/tmp}/vault-store-size"
VAULT_BIN=""
SEED=1
MUTATE_SEED=2
FRACTION=0.03
BREAKDOWN=0
ROUNDS=3
CONFIGS="2/128/256/1024 1/128/256/1024 3/128/256/1024 2/64/128/512 1/64/128/512
         2/32/64/256 1/32/64/256 3/32/64/256 2/16/64/256 1/16/64/256"
PASSPHRASE="bench-passphrase-not-secret"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --size-gb) SIZE_GB="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --vault-bin) VAULT_BIN="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --fraction) FRACTION="$2"; shift 2 ;;
        --configs) CONFIGS="$2"; shift 2 ;;
        --breakdown) BREAKDOWN=1; shift ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "store_size.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VAULT_BIN="${VAULT_BIN:-$HERE/../target/release/vault}"
[ -x "$VAULT_BIN" ] || { echo "store_size.sh: no vault binary at $VAULT_BIN" >&2; exit 1; }
log() { printf '[store_size %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Only ever delete what this script created.
if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -e "$WORK/.vault-store-size" ]; then
    echo "store_size.sh: $WORK exists, is not empty and was not made by store_size.sh" >&2
    exit 1
fi
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
touch "$WORK/.vault-store-size"
PRISTINE="$WORK/pristine-$SIZE_GB-$SEED"
if [ ! -d "$PRISTINE" ]; then
    log "generating the tree ($SIZE_GB GiB, seed $SEED)"
    python3 "$HERE/gen_tree.py" "$PRISTINE.tmp" --size-gb "$SIZE_GB" --seed "$SEED" >&2
    mv "$PRISTINE.tmp" "$PRISTINE"
fi

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# cpu_of FILE: user+sys seconds from GNU time's '%U %S'.
cpu_of() { awk '{ printf "%.1f", $1 + $2 }' "$1"; }

run() {  # run NAME STEP ARGS...: vault ARGS, CPU time into NAME.STEP.time
    local name=$1 step=$2; shift 2
    local d="$WORK/run"
    VAULT_PASSPHRASE="$PASSPHRASE" /usr/bin/time -o "$d/$step.time" -f '%U %S' \
        "$VAULT_BIN" --config "$d/config.toml" --store "$d/store" --cache-dir "$d/cache" \
        --writer-key "$d/writer.key" "$@" >"$d/$step.out" 2>"$d/$step.err" || {
        echo "store_size.sh: $name: $step failed; last lines of its output:" >&2
        tail -n 5 "$d/$step.err" >&2
        exit 1
    }
}

breakdown() {  # breakdown DIR: where the store's bytes go, from the cache's blob index
    python3 - "$1" <<'EOF'
import glob, os, sqlite3, sys
d = sys.argv[1]
db = sqlite3.connect(glob.glob(os.path.join(d, "cache", "*", "cache.sqlite"))[0])
def size(sub):
    return sum(os.path.getsize(os.path.join(r, f))
               for r, _, fs in os.walk(os.path.join(d, "store", sub)) for f in fs)
rows = []
for kind, name in ((0, "data"), (1, "tree")):
    n, raw, sealed = db.execute(
        "select count(*), coalesce(sum(raw_len), 0), coalesce(sum(length), 0) "
        "from blobs where kind = ?", (kind,)).fetchone()
    rows.append((f"{name} blobs ({n}): payload", sealed - 16 * n, raw))
    rows.append((f"{name} blobs: AEAD tags", 16 * n, None))
packs = size("packs")
headers = db.execute("select coalesce(sum(12 + header_len), 0) from packs").fetchone()[0]
ends = db.execute("select coalesce(sum(size - e), 0) from (select p.size, max(b.offset + b.length) e "
                  "from packs p join blobs b on b.pack = p.id group by p.id)").fetchone()[0]
npacks = db.execute("select count(*) from packs").fetchone()[0]
rows.append((f"pack headers ({npacks})", headers, None))
rows.append(("pack trailers", ends, None))
blob_total = sum(r[1] for r in rows[:4])
rows.append(("pack bytes not in a blob, header or trailer", packs - blob_total - headers - ends, None))
for sub in sorted(os.listdir(os.path.join(d, "store"))):
    if sub != "packs":
        p = os.path.join(d, "store", sub)
        rows.append((sub, size(sub) if os.path.isdir(p) else os.path.getsize(p), None))
total = sum(r[1] for r in rows)
print(f"  {'part':46} {'stored B':>12} {'raw B':>12}")
for name, stored, raw in rows:
    print(f"  {name:46} {stored:12d} {'' if raw is None else raw:>12}")
print(f"  {'files in the store':46} {total:12d}")
EOF
}

printf '%-16s %10s %10s %10s %10s %10s %10s\n' "level/chunks" "store@2" "store@3" "day_adds" \
    "cpu_snap1" "cpu_snap3" "cpu_rest" | tee "$WORK/results.txt"
fresh() {  # fresh CONFIG: an empty run folder with the configuration file for CONFIG
    local level min avg max
    IFS=/ read -r level min avg max <<< "$1"
    rm -rf "$WORK/run"
    mkdir -p "$WORK/run"
    printf '[chunker]\nmin_size = %d\navg_size = %d\nmax_size = %d\n[compression]\nlevel = %d\n' \
        $((min * 1024)) $((avg * 1024)) $((max * 1024)) "$level" > "$WORK/run/config.toml"
}

for cfg in $CONFIGS; do
    d="$WORK/run"
    fresh "$cfg"
    cp -a "$PRISTINE" "$d/tree"
    log "$cfg: init and three snapshots"
    src=("$d/tree/etc/travis" "$d/tree/var/travis")
    run "$cfg" init init
    run "$cfg" snap1 snapshot "${src[@]}"
    run "$cfg" snap2 snapshot "${src[@]}"
    after2=$(du -sb "$d/store" | cut -f1)
    python3 "$HERE/gen_tree.py" "$d/tree" --mutate --seed "$MUTATE_SEED" --fraction "$FRACTION" >/dev/null
    run "$cfg" snap3 snapshot "${src[@]}"
    after3=$(du -sb "$d/store" | cut -f1)
    mkdir "$d/restore"
    run "$cfg" restore restore latest --to "$d/restore"
    printf '%-16s %10s %10s %10s %10s %10s %10s\n' "$cfg" "$(mib "$after2")" "$(mib "$after3")" \
        "$(mib $((after3 - after2)))" "$(cpu_of "$d/snap1.time")" "$(cpu_of "$d/snap3.time")" \
        "$(cpu_of "$d/restore.time")" | tee -a "$WORK/results.txt"
    if [ "$BREAKDOWN" = 1 ]; then
        breakdown "$d" | tee -a "$WORK/results.txt"
    fi
done
if [ "$ROUNDS" -gt 0 ]; then
    : > "$WORK/paired.tsv"
    for round in $(seq "$ROUNDS"); do
        log "paired first snapshots, round $round of $ROUNDS"
        for cfg in $CONFIGS; do
            fresh "$cfg"
            run "$cfg" init init
            run "$cfg" snap1 snapshot "$PRISTINE/etc/travis" "$PRISTINE/var/travis"
            printf '%s\t%s\n' "$cfg" "$(cpu_of "$WORK/run/snap1.time")" >> "$WORK/paired.tsv"
        done
    done
    printf '\n%-16s %s\n' "level/chunks" "first-snapshot CPU, median of $ROUNDS interleaved runs" \
        | tee -a "$WORK/results.txt"
    for cfg in $CONFIGS; do
        printf '%-16s %s\n' "$cfg" "$(awk -F'\t' -v c="$cfg" '$1 == c { print $2 }' "$WORK/paired.tsv" \
            | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" | tee -a "$WORK/results.txt"
    done
fi
rm -rf "$WORK/run"
log "table in $WORK/results.txt (sizes in MiB, CPU in seconds)"
