#!/usr/bin/env bash
# Side-by-side benchmark: vault, restic, borg and rustic on the same Travis-CI-Enterprise-like
# tree.
#
#   benches/bench.sh [--size-gb G] [--work DIR] [--tools vault,restic,borg,rustic] [--seed S]
#                    [--fraction F] [--store local|s3] [--keep] [--no-build] [--vault-bin PATH]
#
# Steps, for every tool, on identical trees, page cache warm:
#   init, first snapshot, unchanged re-run, (tree mutated once for all tools)
#   snapshot after changes, restore of the latest snapshot into an empty directory.
# Measured: wall time and peak RSS of each step (GNU time), store size after the three
# snapshots (du -sb), restore correctness (diff -r plus a metadata listing).
# Output: a table on stdout (also WORK/results.txt) and WORK/results.json, with a
# vault/peer ratio column per peer (below 1: vault is better) and peak memory per step.
# Each tool runs with its own default settings; see benches/README.md. rustic is
# $RUSTIC_BIN, else `rustic` on PATH, else built once with `cargo install rustic-rs` into
# ${XDG_CACHE_HOME:-~/.cache}/vault-bench/rustic and reused.
# --store s3: every store is a bucket of one single-node Garage on 127.0.0.1 (started here,
# without fsync, as the tests and s3_bench.sh run it; killed at exit), one bucket per tool;
# borg, which has no S3 backend, is left out. Store sizes are then the bucket's bytes as
# Garage counts them.
# Restores: each goes into a fresh ext4 of its own (benches/fresh_fs.sh: a sparse image in
# WORK, mkfs.ext4 with inode tables and journal initialised up front, mount -o loop; unmounted
# and deleted after the check), so no restore pays for ext4's scan of the inodes that earlier
# restores deleted. Needs root and a loop device (e2fsprogs installed when missing); else one
# log line says so and the restores go into folders on WORK's file system, as before.
set -euo pipefail

SIZE_GB=2
WORK="${TMPDIR:-/tmp}/vault-bench"
TOOLS="vault,restic,borg"
SEED=1
MUTATE_SEED=2
FRACTION=0.03
KEEP=0
BUILD=1
VAULT_BIN=""
PASSPHRASE="bench-passphrase-not-secret"

STORE_KIND=local

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --size-gb) SIZE_GB="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --tools) TOOLS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --fraction) FRACTION="$2"; shift 2 ;;
        --store) STORE_KIND="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --vault-bin) VAULT_BIN="$2"; BUILD=0; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
case "$STORE_KIND" in local|s3) ;; *) echo "bench.sh: --store must be local or s3" >&2; exit 2 ;; esac
IFS=',' read -r -a TOOL_LIST <<< "$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case "$t" in vault|restic|borg|rustic) ;; *) echo "bench.sh: unknown tool: $t" >&2; exit 2 ;; esac
done
if [ "$STORE_KIND" = s3 ] && [[ ",$TOOLS," == *",borg,"* ]]; then
    log "borg has no S3 backend: left out with --store s3"
    mapfile -t TOOL_LIST < <(printf '%s\n' "${TOOL_LIST[@]}" | grep -vx borg || true)
    TOOLS=$(IFS=','; echo "${TOOL_LIST[*]}")
fi
[ "${#TOOL_LIST[@]}" -gt 0 ] || { echo "bench.sh: no tool left to run" >&2; exit 2; }
has_tool() { [[ ",$TOOLS," == *",$1,"* ]]; }

# ---------------------------------------------------------------------------------------------
# Dependencies (installed when absent; Debian/Ubuntu packages)
# ---------------------------------------------------------------------------------------------
APT_UPDATED=0
ensure() {  # ensure COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    if [ "$(id -u)" != 0 ]; then echo "bench.sh: $1 missing; run as root or: apt-get install -y $2" >&2; exit 1; fi
    if [ "$APT_UPDATED" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || { echo "bench.sh: could not install $2" >&2; exit 1; }
}
ensure /usr/bin/time time
ensure python3 python3
ensure diff diffutils
[ "$STORE_KIND" = s3 ] && ensure curl curl
has_tool restic && ensure restic restic
has_tool borg && ensure borg borgbackup
# shellcheck source=benches/fresh_fs.sh
. "$HERE/fresh_fs.sh"  # restores into fresh file systems; also puts /usr/sbin on PATH
[ "$(id -u)" != 0 ] || ensure mkfs.ext4 e2fsprogs  # not root: restores on the shared file system
if has_tool rustic; then
    if [ -z "${RUSTIC_BIN:-}" ]; then
        RUSTIC_BIN="$(command -v rustic || true)"
    fi
    if [ -z "$RUSTIC_BIN" ]; then
        RUSTIC_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/vault-bench/rustic"
        RUSTIC_BIN="$RUSTIC_ROOT/bin/rustic"
        if [ ! -x "$RUSTIC_BIN" ]; then
            log "building rustic 0.11 once into $RUSTIC_ROOT (cargo install rustic-rs; takes a while)"
            cargo install rustic-rs --version "${RUSTIC_VERSION:-~0.11}" --locked --root "$RUSTIC_ROOT" >&2
        fi
    fi
    [ -x "$RUSTIC_BIN" ] || { echo "bench.sh: no rustic binary at $RUSTIC_BIN" >&2; exit 1; }
fi

# ---------------------------------------------------------------------------------------------
# Work directory: only ever delete what this script created.
# ---------------------------------------------------------------------------------------------
if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -e "$WORK/.vault-bench" ]; then
    echo "bench.sh: $WORK exists, is not empty and was not made by bench.sh; pick another --work" >&2
    exit 1
fi
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
touch "$WORK/.vault-bench"
if [ "$(df -T "$WORK" | awk 'NR == 2 { print $2 }')" = tmpfs ]; then
    log "warning: $WORK is on tmpfs; stores and restores will not touch a disk"
fi
TREE="$WORK/tree"
SRC=("$TREE/etc/travis" "$TREE/var/travis")
LOGS="$WORK/logs"
MEAS="$WORK/measurements.tsv"   # tool step wall_s maxrss_kib rc
INFO="$WORK/info.tsv"           # tool key value
fresh_fs_unmount_stale "$WORK"  # a restore file system a killed earlier run left mounted
for t in vault restic borg rustic; do rm -rf "${WORK:?}/$t"; done
rm -rf "$TREE" "$LOGS" "${WORK:?}/garage"
mkdir -p "$LOGS"
: > "$MEAS"
: > "$INFO"
info() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$INFO"; }

# ---------------------------------------------------------------------------------------------
# --store s3: Garage on 127.0.0.1, one bucket per tool, killed when this script exits.
# ---------------------------------------------------------------------------------------------
# shellcheck source=benches/garage.sh
. "$HERE/garage.sh"
stop_garage() {
    garage_stop
    [ "$KEEP" = 1 ] || rm -rf "${WORK:?}/garage"
}
trap stop_garage EXIT
fresh_fs_setup "$WORK"  # chains its cleanup (unmount, delete images) in front of stop_garage
bucket() { echo "bench-$1"; }
RESTIC_OPTS=()
if [ "$STORE_KIND" = s3 ]; then
    garage_start "$WORK/garage" "$LOGS/garage.log"
    for t in "${TOOL_LIST[@]}"; do garage_bucket "$(bucket "$t")"; done
    RESTIC_OPTS=(-o s3.region=garage)
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SHARED_CREDENTIALS_FILE AWS_ENDPOINT_URL_S3 || true
fi

store_bytes() {  # store_bytes TOOL: bytes the tool's store holds
    if [ "$STORE_KIND" = s3 ]; then
        curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" \
            "http://127.0.0.1:$ADMIN_PORT/v2/GetBucketInfo?globalAlias=$(bucket "$1")" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes"])'
    else
        du -sb "$WORK/$1/store" | cut -f1
    fi
}

# ---------------------------------------------------------------------------------------------
# The tools. Each step is one command line; these functions are the only place that knows
# a tool's flags.
# ---------------------------------------------------------------------------------------------
if has_tool vault; then
    if [ -z "$VAULT_BIN" ]; then
        VAULT_BIN="$REPO_ROOT/target/release/vault"
        if [ "$BUILD" = 1 ]; then
            log "cargo build --release"
            (cd "$REPO_ROOT" && cargo build --release --bin vault 2>&1 | tail -3 >&2)
        fi
    fi
    [ -x "$VAULT_BIN" ] || { echo "bench.sh: no vault binary at $VAULT_BIN" >&2; exit 1; }
fi

# Sets CMD (argv) and CMD_DIR (working directory) for TOOL STEP.
tool_cmd() {
    local tool=$1 step=$2 dir="$WORK/$1"
    CMD_DIR="$WORK"
    case "$tool" in
    vault)
        export VAULT_PASSPHRASE="$PASSPHRASE"
        [ -e "$dir/config.toml" ] || : > "$dir/config.toml"  # empty: built-in defaults, nothing from /etc
        local store="$dir/store"
        [ "$STORE_KIND" = s3 ] && store="s3://$(bucket vault)/store"
        CMD=("$VAULT_BIN" --config "$dir/config.toml" --store "$store" --cache-dir "$dir/cache"
             --writer-key "$dir/writer.key")
        case "$step" in
            init) CMD+=(init) ;;
            snap1|snap2|snap3) CMD+=(snapshot "${SRC[@]}") ;;
            restore) CMD+=(restore latest --to "$dir/restore") ;;
        esac ;;
    restic)
        export RESTIC_PASSWORD="$PASSPHRASE" RESTIC_REPOSITORY="$dir/store" RESTIC_CACHE_DIR="$dir/cache"
        if [ "$STORE_KIND" = s3 ]; then
            RESTIC_REPOSITORY="s3:$S3_ENDPOINT/$(bucket restic)/store"
        fi
        CMD=(restic "${RESTIC_OPTS[@]}")
        case "$step" in
            init) CMD+=(init) ;;
            snap1|snap2|snap3) CMD+=(backup "${SRC[@]}") ;;
            restore) CMD+=(restore latest --target "$dir/restore") ;;
        esac ;;
    borg)
        export BORG_PASSPHRASE="$PASSPHRASE" BORG_REPO="$dir/store" BORG_BASE_DIR="$dir/home"
        export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_DISPLAY_PASSPHRASE=no
        case "$step" in
            init) CMD=(borg init --encryption "$BORG_ENCRYPTION") ;;
            snap1|snap2|snap3) CMD=(borg create "::$step" "${SRC[@]}") ;;
            restore) CMD=(borg extract "::snap3"); CMD_DIR="$dir/restore" ;;
        esac ;;
    rustic)
        # HOME inside the work folder: no profile from the user's ~/.config/rustic.
        export RUSTIC_PASSWORD="$PASSPHRASE" RUSTIC_REPOSITORY="$dir/store" RUSTIC_CACHE_DIR="$dir/cache"
        CMD=(env HOME="$dir/home" XDG_CONFIG_HOME="$dir/home/.config" "$RUSTIC_BIN" --no-progress)
        mkdir -p "$dir/home"
        if [ "$STORE_KIND" = s3 ]; then
            # OpenDAL's S3 service takes its settings from the profile (rustic.toml).
            RUSTIC_REPOSITORY="opendal:s3"
            mkdir -p "$dir/home/.config/rustic"
            cat > "$dir/home/.config/rustic/rustic.toml" <<EOF
[repository.options]
bucket = "$(bucket rustic)"
root = "/store"
endpoint = "$S3_ENDPOINT"
region = "garage"
access_key_id = "$S3_KEY_ID"
secret_access_key = "$S3_SECRET"
EOF
        fi
        case "$step" in
            init) CMD+=(init) ;;
            snap1|snap2|snap3) CMD+=(backup "${SRC[@]}") ;;
            restore) CMD+=(restore latest "$dir/restore") ;;
        esac ;;
    esac
}

# borg 1.x has no default encryption mode; repokey-blake2 unless the installed borg lacks it.
BORG_ENCRYPTION="${BENCH_BORG_ENCRYPTION:-repokey-blake2}"
if has_tool borg && [ "$BORG_ENCRYPTION" = repokey-blake2 ] && ! borg init --help 2>/dev/null | grep -q repokey-blake2; then
    BORG_ENCRYPTION=repokey
fi

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
declare -A FAILED=()

warm() {  # read the whole tree once so every timed step starts with a warm page cache
    find "$TREE" -type f -print0 | xargs -0 cat > /dev/null
}

step_name() {
    case "$1" in
        init) echo "init" ;; snap1) echo "first snapshot" ;; snap2) echo "unchanged re-run" ;;
        snap3) echo "after changes" ;; restore) echo "restore" ;; *) echo "$1" ;;
    esac
}

run_step() {  # run_step TOOL STEP
    local tool=$1 step=$2 rc=0 t0 t1 wall rss out="$LOGS/$1.$2"
    [ -n "${FAILED[$tool]:-}" ] && return 0
    tool_cmd "$tool" "$step"
    sync
    t0=$(date +%s%N)
    (cd "$CMD_DIR" && exec /usr/bin/time -o "$out.time" -f '%e %M' "${CMD[@]}") >"$out.out" 2>"$out.err" || rc=$?
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    rss=$(tail -n 1 "$out.time" | awk '{ print $2 }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "${rss:-0}" "$rc" >> "$MEAS"
    # borg exits 1 for warnings (e.g. a file changed while read); anything else is a failure.
    if [ "$rc" != 0 ] && ! { [ "$tool" = borg ] && [ "$rc" = 1 ]; }; then
        FAILED[$tool]="$step"
        log "$tool: $(step_name "$step") FAILED (exit $rc); last lines of $out.err:"
        tail -n 5 "$out.err" | sed 's/^/    /' >&2
        return 0
    fi
    log "$tool: $(step_name "$step") $wall s, peak $(( ${rss:-0} / 1024 )) MiB"
}

verify_restore() {  # verify_restore TOOL: compare the restored copy with the tree
    local tool=$1 r="$WORK/$1/restore" content=0 meta=0 files_src files_dst p
    for p in "${SRC[@]}"; do
        if [ ! -d "$r$p" ]; then
            content=$((content + 1)); echo "missing: $r$p" >> "$LOGS/$tool.verify"; continue
        fi
        content=$((content + $(diff -rq --no-dereference "$p" "$r$p" 2>&1 | tee -a "$LOGS/$tool.verify" | wc -l)))
        # type, mode, owner, size (files), mtime (ns), link target
        (cd "$p" && { find . -type f -printf '%P\tf\t%m\t%u:%g\t%s\t%T@\n'; find . ! -type f -printf '%P\t%y\t%m\t%u:%g\t-\t%T@\t%l\n'; } | sort) > "$LOGS/$tool.meta.src"
        (cd "$r$p" && { find . -type f -printf '%P\tf\t%m\t%u:%g\t%s\t%T@\n'; find . ! -type f -printf '%P\t%y\t%m\t%u:%g\t-\t%T@\t%l\n'; } | sort) > "$LOGS/$tool.meta.dst"
        meta=$((meta + $(comm -3 "$LOGS/$tool.meta.src" "$LOGS/$tool.meta.dst" | tee -a "$LOGS/$tool.verify" | wc -l)))
    done
    files_src=$(find "${SRC[@]}" | wc -l)
    files_dst=0
    for p in "${SRC[@]}"; do [ -d "$r$p" ] && files_dst=$((files_dst + $(find "$r$p" | wc -l))); done
    info "$tool" verify_content_diffs "$content"
    info "$tool" verify_meta_diffs "$meta"
    info "$tool" verify_entries "$files_dst/$files_src"
    if [ "$content" = 0 ] && [ "$meta" = 0 ]; then
        log "$tool: restore verified: $files_dst entries identical (content and metadata)"
    else
        log "$tool: restore MISMATCH: $content content differences, $meta metadata lines differ (see $LOGS/$tool.verify)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
info bench size_gb "$SIZE_GB"
info bench seed "$SEED"
info bench mutate_seed "$MUTATE_SEED"
info bench mutate_fraction "$FRACTION"
info bench nproc "$(nproc)"
info bench cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
info bench kernel "$(uname -r)"
info bench mem_total_mib "$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)"
info bench filesystem "$(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
if [ "$STORE_KIND" = s3 ]; then
    info bench store "S3: garage $("$GARAGE" --version 2>/dev/null | awk '{ print $2 }') on 127.0.0.1, no fsync"
else
    info bench store "local folder"
fi
info bench date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
info bench loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
if has_tool vault; then
    info vault version "$("$VAULT_BIN" --version 2>/dev/null | head -n 1 || echo unknown) ($(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    info vault settings "defaults"
fi
if has_tool restic; then
    info restic version "$(restic version | awk '{ print $2 }')"
fi
if has_tool borg; then
    info borg version "$(borg --version | awk '{ print $2 }')"
    info borg settings "encryption $BORG_ENCRYPTION, default compression (lz4), default chunker"
fi
if has_tool rustic; then
    info rustic version "$("$RUSTIC_BIN" --version 2>/dev/null | awk '{ print $2 }')"
    info rustic settings "defaults (compression and chunker as rustic init sets them)"
fi

log "generating a ${SIZE_GB} GiB tree in $TREE"
t0=$(date +%s%N)
python3 "$HERE/gen_tree.py" "$TREE" --size-gb "$SIZE_GB" --seed "$SEED" >&2
t1=$(date +%s%N)
info bench gen_seconds "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
info bench tree_bytes "$(find "${SRC[@]}" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
info bench tree_entries "$(find "${SRC[@]}" | wc -l)"
sync
# On a real host the files were written long before the backup. Tools that do not trust their
# file-change cache for files changed in the last moments before a snapshot (timestamp
# granularity races) would otherwise re-read part of the fresh tree in the unchanged re-run.
sleep 3

for tool in "${TOOL_LIST[@]}"; do
    mkdir -p "$WORK/$tool"
    run_step "$tool" init
    if [ "$tool" = restic ] && [ -z "${FAILED[restic]:-}" ]; then
        tool_cmd restic init
        info restic settings "repository version $(restic "${RESTIC_OPTS[@]}" cat config 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("version"))' 2>/dev/null || echo '?'), default compression (auto), default chunker"
    fi
    warm; run_step "$tool" snap1
    warm; run_step "$tool" snap2
    [ -z "${FAILED[$tool]:-}" ] && info "$tool" store_bytes_first "$(store_bytes "$tool")"
done

log "mutating the tree (a day of database activity)"
t0=$(date +%s%N)
python3 "$HERE/gen_tree.py" "$TREE" --mutate --seed "$MUTATE_SEED" --fraction "$FRACTION" >&2
t1=$(date +%s%N)
info bench mutate_seconds "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
info bench tree_bytes_after "$(find "${SRC[@]}" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
sync

for tool in "${TOOL_LIST[@]}"; do
    warm; run_step "$tool" snap3
    if [ -z "${FAILED[$tool]:-}" ]; then
        info "$tool" store_bytes "$(store_bytes "$tool")"
        cache=0
        for d in "$WORK/$tool/cache" "$WORK/$tool/home"; do
            [ -d "$d" ] && cache=$((cache + $(du -sb "$d" | cut -f1)))
        done
        info "$tool" cache_bytes "$cache"
    fi
done

# Each restore into a fresh ext4 of its own (when possible), sized for the tree with margin.
RESTORE_FS=(0 0)
if [ "$FRESH_FS" = 1 ]; then read -r -a RESTORE_FS < <(fresh_fs_size "${SRC[@]}"); fi
for tool in "${TOOL_LIST[@]}"; do
    [ -n "${FAILED[$tool]:-}" ] && continue
    rm -rf "${WORK:?}/$tool/restore"; fresh_fs_mount "$WORK/$tool/restore" "${RESTORE_FS[@]}"
    run_step "$tool" restore
    sync
    [ -z "${FAILED[$tool]:-}" ] && verify_restore "$tool"
    fresh_fs_release "$WORK/$tool/restore" "$KEEP"
done
if [ "$FRESH_FS_RESTORES_SHARED" = 0 ]; then
    info bench restore_fs "fresh loop-mounted ext4 per restore"
elif [ "$FRESH_FS_RESTORES_FRESH" = 0 ]; then
    info bench restore_fs "shared file system"
else
    info bench restore_fs "$FRESH_FS_RESTORES_FRESH on fresh ext4, $FRESH_FS_RESTORES_SHARED on the shared file system"
fi
for tool in "${TOOL_LIST[@]}"; do
    [ -n "${FAILED[$tool]:-}" ] && info "$tool" failed_at "${FAILED[$tool]}"
done
info bench loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$WORK" "$TOOLS" <<'PY' | tee "$WORK/results.txt"
import json, os, sys
work, tools = sys.argv[1], sys.argv[2].split(",")
meas, info = {}, {}
for line in open(os.path.join(work, "measurements.tsv")):
    tool, step, wall, rss, rc = line.rstrip("\n").split("\t")
    meas.setdefault(tool, {})[step] = {"wall_s": float(wall), "max_rss_mib": round(int(rss) / 1024, 1), "exit": int(rc)}
for line in open(os.path.join(work, "info.tsv")):
    tool, key, value = line.rstrip("\n").split("\t", 2)
    info.setdefault(tool, {})[key] = value
MIB = 1024 * 1024
STEPS = [("snap1", "first snapshot (s)"), ("snap2", "unchanged re-run (s)"),
         ("snap3", "after changes (s)"), ("restore", "restore (s)")]

def ok(tool, step):
    m = meas.get(tool, {}).get(step)
    return m is not None and (m["exit"] == 0 or (tool == "borg" and m["exit"] == 1))

rows = []  # (label, {tool: number or None}, fmt)
for step, label in STEPS:
    rows.append((label, {t: meas[t][step]["wall_s"] if ok(t, step) else None for t in tools}, "%.2f"))
rows.append(("store after 2 unchanged snapshots (MiB)",
             {t: int(info[t]["store_bytes_first"]) / MIB if "store_bytes_first" in info.get(t, {}) else None
              for t in tools}, "%.1f"))
rows.append(("store after 3 snapshots (MiB)",
             {t: int(info[t]["store_bytes"]) / MIB if "store_bytes" in info.get(t, {}) else None for t in tools}, "%.1f"))
rows.append(("cache after 3 snapshots (MiB)",
             {t: int(info[t]["cache_bytes"]) / MIB if "cache_bytes" in info.get(t, {}) else None for t in tools}, "%.1f"))
peak = {}
for t in tools:
    vals = [meas[t][s]["max_rss_mib"] for s, _ in STEPS if ok(t, s)]
    peak[t] = max(vals) if vals else None
rows.append(("peak memory, max of steps (MiB)", peak, "%.0f"))
for step, label in STEPS:
    rows.append(("  peak MiB: " + label.replace(" (s)", ""),
                 {t: meas[t][step]["max_rss_mib"] if ok(t, step) else None for t in tools}, "%.0f"))

ratio_cols = [t for t in ("restic", "borg", "rustic") if t in tools] if "vault" in tools else []
header = ["step"] + tools + ["vault/%s" % t for t in ratio_cols]
table = []
for label, vals, fmt in rows:
    line = [label] + [("FAIL" if "failed_at" in info.get(t, {}) else "-") if vals[t] is None else fmt % vals[t]
                      for t in tools]
    for t in ratio_cols:
        a, b = vals.get("vault"), vals.get(t)
        line.append("%.2f" % (a / b) if a is not None and b else "-")
    table.append(line)
verify = ["restore verified"]
for t in tools:
    i = info.get(t, {})
    if "verify_content_diffs" not in i:
        verify.append("FAIL at " + i.get("failed_at", "?") if "failed_at" in i else "-")
    elif i["verify_content_diffs"] == "0" and i["verify_meta_diffs"] == "0":
        verify.append("ok")
    else:
        verify.append("MISMATCH c%s/m%s" % (i["verify_content_diffs"], i["verify_meta_diffs"]))
table.append(verify + [""] * len(ratio_cols))
widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
b = info.get("bench", {})
out = []
out.append("tree: %.2f GiB requested, %.1f MiB in %s entries (generated in %s s, mutated in %s s); %s cores, %s, fs %s, load %s -> %s"
           % (float(b.get("size_gb", 0)), int(b.get("tree_bytes", 0)) / MIB, b.get("tree_entries"), b.get("gen_seconds"),
              b.get("mutate_seconds"), b.get("nproc"), b.get("cpu"), b.get("filesystem"), b.get("loadavg_start"),
              b.get("loadavg_end")))
out.append("stores: %s" % b.get("store", "local folder"))
for t in tools:
    out.append("%-6s %s; %s" % (t, info.get(t, {}).get("version", "?"), info.get(t, {}).get("settings", "")))
out.append("")
out.append("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
for r in table:
    out.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
if ratio_cols:
    out.append("(ratio columns: vault / other tool, so below 1 means vault is better)")
print("\n".join(out))
res = {"bench": b, "tools": {}}
for t in tools:
    res["tools"][t] = {"info": info.get(t, {}), "steps": meas.get(t, {}),
                       "store_bytes": int(info[t]["store_bytes"]) if "store_bytes" in info.get(t, {}) else None,
                       "cache_bytes": int(info[t]["cache_bytes"]) if "cache_bytes" in info.get(t, {}) else None,
                       "store_bytes_first": int(info[t]["store_bytes_first"]) if "store_bytes_first" in info.get(t, {}) else None,
                       "peak_rss_mib": peak[t]}
res["table"] = {"header": header, "rows": table}
with open(os.path.join(work, "results.json"), "w") as f:
    json.dump(res, f, indent=2)
PY
log "results: $WORK/results.txt, $WORK/results.json; logs of every step in $LOGS"
[ "$KEEP" = 1 ] || rm -rf "$TREE"
