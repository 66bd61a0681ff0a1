# shellcheck shell=bash
# Sourced by bench.sh and scale.sh: every timed restore goes into a freshly made, loop-mounted
# ext4 of its own, so that no restore pays for ext4's scan of recently deleted inodes (left by
# the restores before it, which made the restore row swing with the run and the tool order).
# Needs root, mkfs.ext4 (e2fsprogs, installed with apt when missing) and a loop device; without
# them every restore goes into a plain folder on the shared file system, as before, and one log
# line says so. Needs `log` defined by the caller.
#
#   fresh_fs_setup WORKDIR       decide once (a test mount under WORKDIR) and chain
#                                fresh_fs_cleanup in front of the EXIT trap already set; sets
#                                FRESH_FS to 1 (fresh file systems) or 0 (shared file system).
#   fresh_fs_size PATH...        print "BYTES INODES" for a file system to restore PATH... into:
#                                the larger of their apparent and allocated size x 1.3 + 1 GiB;
#                                INODES is 0 unless mkfs.ext4's default would be too few.
#   fresh_fs_mount DIR BYTES [INODES]
#                                an empty DIR to restore into: a sparse DIR.img, mkfs.ext4
#                                (itable and journal initialised at once: no background init
#                                thread during the restore), mounted -o loop on DIR. With
#                                FRESH_FS=0, or when this fails (logged; then FRESH_FS=0 from
#                                here on), just mkdir -p DIR.
#   fresh_fs_release DIR [KEEP]  unmount DIR and delete DIR.img and DIR; KEEP=1 keeps the image
#                                (unmounted: mount -o loop DIR.img DIR to look at it), or the
#                                plain folder.
#   fresh_fs_unmount_stale ROOT  unmount what a killed earlier run left mounted below ROOT (loop
#                                mounts of a DIR.img on DIR only).
#   fresh_fs_cleanup             the EXIT trap: unmount and delete whatever is still mounted.
#   FRESH_FS_RESTORES_FRESH, FRESH_FS_RESTORES_SHARED: how many restore folders went where.

FRESH_FS=0
FRESH_FS_MOUNTS=()   # mount points this shell mounted and has not unmounted yet
FRESH_FS_IMAGES=()   # images this shell made and has not released yet
FRESH_FS_RESTORES_FRESH=0
FRESH_FS_RESTORES_SHARED=0
FRESH_FS_MKFS=(mkfs.ext4 -q -F -E "lazy_itable_init=0,lazy_journal_init=0")
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac

fresh_fs_forget() {  # fresh_fs_forget mounts|images ITEM: drop ITEM from the list
    local rest=() x
    if [ "$1" = mounts ]; then
        for x in "${FRESH_FS_MOUNTS[@]}"; do [ "$x" = "$2" ] || rest+=("$x"); done
        FRESH_FS_MOUNTS=("${rest[@]}")
    else
        for x in "${FRESH_FS_IMAGES[@]}"; do [ "$x" = "$2" ] || rest+=("$x"); done
        FRESH_FS_IMAGES=("${rest[@]}")
    fi
}

fresh_fs_umount() {  # fresh_fs_umount DIR: unmount (retried, lazily as a last resort); never fails
    local i
    for i in 1 2 3 4 5; do
        umount "$1" 2>/dev/null && { fresh_fs_forget mounts "$1"; return 0; }
        mountpoint -q "$1" 2>/dev/null || { fresh_fs_forget mounts "$1"; return 0; }
        [ "$i" = 5 ] || sleep 1
    done
    log "umount $1 failed (busy?); detaching it lazily"
    umount -l "$1" 2>/dev/null || log "umount -l $1 failed too; unmount it by hand"
    fresh_fs_forget mounts "$1"
    return 0
}

fresh_fs_cleanup() {
    local m i
    for m in "${FRESH_FS_MOUNTS[@]}"; do fresh_fs_umount "$m"; rmdir "$m" 2>/dev/null || true; done
    for i in "${FRESH_FS_IMAGES[@]}"; do rm -f "$i" || true; done
    FRESH_FS_IMAGES=()
    return 0
}

fresh_fs_unmount_stale() {
    local root target source back
    root="$(cd "$1" && pwd)"
    command -v findmnt >/dev/null 2>&1 || return 0
    while read -r target source; do
        target="$(printf '%b' "$target")"
        case "$target" in "$root"/*) ;; *) continue ;; esac
        case "$source" in /dev/loop*) ;; *) continue ;; esac
        back="$(losetup -n -O BACK-FILE "$source" 2>/dev/null | sed 's/ *$//' || true)"
        [ "$back" = "$target.img" ] || continue
        log "unmounting $target, left mounted by an earlier run"
        fresh_fs_umount "$target"
    done < <(findmnt -rn -o TARGET,SOURCE 2>/dev/null || true)
    return 0
}

fresh_fs_install() {  # mkfs.ext4 present, or installed with apt (as root); never exits
    command -v mkfs.ext4 >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then return 1; fi
    log "installing e2fsprogs"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs >/dev/null 2>&1 || true
    command -v mkfs.ext4 >/dev/null 2>&1
}

fresh_fs_setup() {
    local work why="" probe err fstype prev="" parts=()
    work="$(cd "$1" && pwd)"
    probe="$work/.fresh-fs-probe"
    parts=()
    eval "parts=( $(trap -p EXIT) )"   # trap -- 'COMMAND' EXIT, quoted by bash
    [ "${#parts[@]}" -lt 3 ] || prev="${parts[2]}"
    # shellcheck disable=SC2064  # expanded now on purpose: the trap already set, run after ours
    trap "fresh_fs_cleanup${prev:+; $prev}" EXIT
    fresh_fs_unmount_stale "$work"
    if [ "$(id -u)" != 0 ]; then
        why="not root"
    elif ! fresh_fs_install; then
        why="no mkfs.ext4 (apt-get install e2fsprogs)"
    elif ! command -v mount >/dev/null 2>&1 || ! command -v umount >/dev/null 2>&1; then
        why="no mount/umount"
    elif [ ! -e /dev/loop-control ] && ! compgen -G '/dev/loop[0-9]*' >/dev/null; then
        why="no loop device"
    else
        rm -rf "$probe" "$probe.img"
        mkdir -p "$probe"
        FRESH_FS_IMAGES+=("$probe.img")
        if ! err="$(truncate -s 64M "$probe.img" 2>&1 && "${FRESH_FS_MKFS[@]}" "$probe.img" 2>&1)"; then
            why="mkfs.ext4 failed: $(printf '%s' "$err" | tail -n 1)"
        elif ! err="$(mount -o loop "$probe.img" "$probe" 2>&1)"; then
            why="mount -o loop failed: $(printf '%s' "$err" | tail -n 1)"
        else
            FRESH_FS_MOUNTS+=("$probe")
            fresh_fs_umount "$probe"
        fi
        rm -f "$probe.img"; fresh_fs_forget images "$probe.img"
        rmdir "$probe" 2>/dev/null || true
    fi
    fstype="$(df -T "$work" | awk 'NR == 2 { print $2 }')"
    if [ -n "$why" ]; then
        FRESH_FS=0
        log "no fresh file system per restore ($why): restore figures are on the shared file system ($fstype of $work), as before"
    else
        FRESH_FS=1
        log "each restore goes into a fresh loop-mounted ext4 (sparse image in $work, on $fstype)"
    fi
}

fresh_fs_size() {
    local apparent allocated entries bytes inodes
    # one walk: apparent bytes, allocated bytes (512-byte blocks), entries
    read -r apparent allocated entries < <(find "$@" -printf '%s %b\n' |
        awk '{ s += $1; b += $2 * 512; n++ } END { printf "%.0f %.0f %.0f\n", s, b, n }')
    [ "$allocated" -gt "$apparent" ] && apparent=$allocated
    bytes=$(( apparent * 13 / 10 + 1024 * 1024 * 1024 ))
    inodes=$(( entries * 13 / 10 + 16384 ))
    # mke2fs.conf's default inode_ratio is 16384 bytes per inode (a million small files need more)
    [ "$inodes" -gt $(( bytes / 16384 )) ] || inodes=0
    echo "$bytes $inodes"
}

fresh_fs_mount() {
    local dir=$1 bytes=$2 inodes=${3:-0} img="$1.img" err mkfs
    if [ "$FRESH_FS" = 1 ]; then
        mkfs=("${FRESH_FS_MKFS[@]}")
        [ "$inodes" = 0 ] || mkfs+=(-N "$inodes")
        rm -f "$img"
        mkdir -p "$dir"
        FRESH_FS_IMAGES+=("$img")
        if ! err="$(truncate -s "$bytes" "$img" 2>&1 && "${mkfs[@]}" "$img" 2>&1)"; then
            err="mkfs.ext4 failed: $(printf '%s' "$err" | tail -n 1)"
        elif ! err="$(mount -o loop "$img" "$dir" 2>&1)"; then
            err="mount -o loop failed: $(printf '%s' "$err" | tail -n 1)"
        else
            FRESH_FS_MOUNTS+=("$dir")
            FRESH_FS_RESTORES_FRESH=$((FRESH_FS_RESTORES_FRESH + 1))
            return 0
        fi
        rm -f "$img"; fresh_fs_forget images "$img"
        FRESH_FS=0
        log "no fresh file system for $dir ($err): this and later restore figures are on the shared file system"
    fi
    mkdir -p "$dir"
    FRESH_FS_RESTORES_SHARED=$((FRESH_FS_RESTORES_SHARED + 1))
}

fresh_fs_release() {
    local dir=$1 keep=${2:-0} m mounted=0
    for m in "${FRESH_FS_MOUNTS[@]}"; do [ "$m" = "$dir" ] && mounted=1; done
    if [ "$mounted" = 1 ]; then
        fresh_fs_umount "$dir"
        if [ "$keep" = 1 ]; then
            fresh_fs_forget images "$dir.img"
            log "restored copy kept in $dir.img (mount -o loop $dir.img $dir)"
        else
            rm -f "$dir.img"; fresh_fs_forget images "$dir.img"
            rmdir "$dir" 2>/dev/null || true
        fi
    elif [ "$keep" != 1 ]; then
        rm -rf "${dir:?}"
    fi
}
