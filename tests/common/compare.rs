//! Tree comparison: every difference between two trees that a restore must not introduce,
//! in human terms.
//!
//! Compared, for every path below the two roots and the roots themselves: presence, file
//! type, all 12 permission bits, uid, gid, size (regular files), content, symlink target,
//! device number, mtime to the nanosecond (every type, symlinks included), every extended
//! attribute in every namespace (so POSIX ACLs and capabilities too), the hole layout of
//! regular files (`SEEK_DATA`/`SEEK_HOLE`: a hole in one tree must be a hole in the other)
//! and hardlink groups (which paths share an inode).

use super::sys;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

const BLOCK: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Fifo => "FIFO",
            Kind::CharDevice => "character device",
            Kind::BlockDevice => "block device",
            Kind::Socket => "socket",
        })
    }
}

/// What we know about one path.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    /// The 12 permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    pub mtime: (i64, i64),
    pub target: Vec<u8>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Data extents of a regular file.
    pub extents: Vec<(u64, u64)>,
    /// Hash of the logical content of a regular file (holes read as zeros).
    pub digest: Option<[u8; 32]>,
    pub inode: (u64, u64),
    /// Anything that could not be read.
    pub errors: Vec<String>,
}

/// All entries of a tree, keyed by path relative to its root (the root is the empty path).
#[derive(Clone, Debug)]
pub struct Scan {
    pub root: PathBuf,
    pub entries: BTreeMap<PathBuf, Entry>,
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    /// Path relative to the compared roots (empty for the roots themselves).
    pub path: PathBuf,
    /// Which property: "missing", "extra", "type", "mode", "uid", "gid", "size", "content",
    /// "symlink target", "rdev", "mtime", "xattr", "holes", "hardlinks", "unreadable".
    pub what: &'static str,
    pub detail: String,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", show(&self.path), self.what, self.detail)
    }
}

/// A relative path for people: `.` for the root, else quoted with non-UTF-8 bytes and
/// control characters escaped.
pub fn show(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".to_string()
    } else {
        format!("{p:?}")
    }
}

fn show_bytes(b: &[u8]) -> String {
    const MAX: usize = 48;
    let printable = b.iter().all(|c| (0x20..0x7f).contains(c));
    let mut s = if printable {
        format!("{:?}", String::from_utf8_lossy(&b[..b.len().min(MAX)]))
    } else {
        format!("0x{}", hex::encode(&b[..b.len().min(MAX)]))
    };
    if b.len() > MAX {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}

fn show_time(t: (i64, i64)) -> String {
    format!("{}.{:09}", t.0, t.1)
}

fn show_extents(v: &[(u64, u64)]) -> String {
    const MAX: usize = 8;
    let mut parts: Vec<String> = v
        .iter()
        .take(MAX)
        .map(|(s, e)| format!("{s}..{e}"))
        .collect();
    if v.len() > MAX {
        parts.push(format!("... ({} extents)", v.len()));
    }
    format!("data [{}]", parts.join(", "))
}

/// Reads everything about `p` (not following symlinks).
pub fn entry(p: &Path) -> Entry {
    let mut errors = Vec::new();
    let m = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) => {
            return Entry {
                kind: Kind::File,
                mode: 0,
                uid: 0,
                gid: 0,
                size: 0,
                rdev: 0,
                mtime: (0, 0),
                target: Vec::new(),
                xattrs: BTreeMap::new(),
                extents: Vec::new(),
                digest: None,
                inode: (0, 0),
                errors: vec![format!("lstat: {e}")],
            }
        }
    };
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::Socket
    };
    let target = if kind == Kind::Symlink {
        match fs::read_link(p) {
            Ok(t) => t.as_os_str().as_bytes().to_vec(),
            Err(e) => {
                errors.push(format!("readlink: {e}"));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let xattrs = match sys::xattrs(p) {
        Ok(x) => x,
        Err(e) => {
            errors.push(format!("xattrs: {e}"));
            BTreeMap::new()
        }
    };
    let (mut extents, mut digest) = (Vec::new(), None);
    if kind == Kind::File {
        match File::open(p).and_then(|f| {
            let ext = sys::data_extents(&f, m.len())?;
            let d = content_digest(&f, &ext)?;
            Ok((ext, d))
        }) {
            Ok((e, d)) => {
                extents = e;
                digest = Some(d);
            }
            Err(e) => errors.push(format!("reading content: {e}")),
        }
    }
    Entry {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == Kind::File { m.len() } else { 0 },
        rdev: if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            m.rdev()
        } else {
            0
        },
        mtime: (m.mtime(), m.mtime_nsec()),
        target,
        xattrs,
        extents,
        digest,
        inode: (m.dev(), m.ino()),
        errors,
    }
}

/// Blocks of `BLOCK` bytes at fixed offsets inside the data extents that are not all
/// zero: the logical content, independent of where the holes are.
fn nonzero_blocks(
    f: &File,
    extents: &[(u64, u64)],
    mut each: impl FnMut(u64, &[u8]),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BLOCK as usize];
    let mut next_block = 0u64;
    for &(s, e) in extents {
        let mut off = (s / BLOCK * BLOCK).max(next_block);
        while off < e {
            let want = BLOCK.min(e.div_ceil(BLOCK) * BLOCK - off) as usize;
            let mut got = 0;
            while got < want {
                let n = f.read_at(&mut buf[got..want], off + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if buf[..got].iter().any(|b| *b != 0) {
                each(off, &buf[..got]);
            }
            off += BLOCK;
            next_block = off;
        }
    }
    Ok(())
}

fn content_digest(f: &File, extents: &[(u64, u64)]) -> std::io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    nonzero_blocks(f, extents, |off, data| {
        h.update(&off.to_le_bytes());
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(data);
    })?;
    Ok(*h.finalize().as_bytes())
}

/// First byte offset where two regular files differ, reading only their data extents.
fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let blocks = |p: &Path| -> Option<BTreeMap<u64, Vec<u8>>> {
        let f = File::open(p).ok()?;
        let len = f.metadata().ok()?.len();
        let ext = sys::data_extents(&f, len).ok()?;
        let mut m = BTreeMap::new();
        nonzero_blocks(&f, &ext, |off, d| {
            m.insert(off, d.to_vec());
        })
        .ok()?;
        Some(m)
    };
    let (ba, bb) = (blocks(a)?, blocks(b)?);
    let offsets: BTreeSet<u64> = ba.keys().chain(bb.keys()).copied().collect();
    let zero = vec![0u8; BLOCK as usize];
    for off in offsets {
        let x = ba.get(&off).map(|v| v.as_slice()).unwrap_or(&zero);
        let y = bb.get(&off).map(|v| v.as_slice()).unwrap_or(&zero);
        let n = x.len().max(y.len());
        for i in 0..n {
            if x.get(i).copied().unwrap_or(0) != y.get(i).copied().unwrap_or(0) {
                return Some(off + i as u64);
            }
        }
    }
    None
}

/// Reads the whole tree below `root` (the root included, as the empty path).
pub fn scan(root: &Path) -> Scan {
    let mut entries = BTreeMap::new();
    fn rec(root: &Path, rel: PathBuf, entries: &mut BTreeMap<PathBuf, Entry>) {
        let full = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        if rel.as_os_str().is_empty() && fs::symlink_metadata(&full).is_err() {
            return; // no root: everything will be reported missing
        }
        let e = entry(&full);
        let is_dir = e.kind == Kind::Dir && e.errors.is_empty();
        entries.insert(rel.clone(), e);
        if is_dir {
            match fs::read_dir(&full) {
                Ok(rd) => {
                    let mut names: Vec<_> =
                        rd.filter_map(|d| d.ok()).map(|d| d.file_name()).collect();
                    names.sort();
                    for n in names {
                        rec(root, rel.join(n), entries);
                    }
                }
                Err(err) => entries
                    .get_mut(&rel)
                    .unwrap()
                    .errors
                    .push(format!("readdir: {err}")),
            }
        }
    }
    rec(root, PathBuf::new(), &mut entries);
    Scan {
        root: root.to_path_buf(),
        entries,
    }
}

/// For each non-directory path, the other paths of the same tree sharing its inode.
fn link_groups(s: &Scan) -> BTreeMap<PathBuf, Vec<PathBuf>> {
    let mut by_inode: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    for (p, e) in &s.entries {
        if e.kind != Kind::Dir && e.errors.is_empty() {
            by_inode.entry(e.inode).or_default().push(p.clone());
        }
    }
    let mut out = BTreeMap::new();
    for paths in by_inode.values() {
        for p in paths {
            let others: Vec<PathBuf> = paths.iter().filter(|q| *q != p).cloned().collect();
            out.insert(p.clone(), others);
        }
    }
    out
}

fn show_paths(v: &[PathBuf]) -> String {
    if v.is_empty() {
        "no other path".to_string()
    } else {
        v.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
    }
}

/// Every difference between two scans (`a` is the reference, `b` the copy).
pub fn diff_scans(a: &Scan, b: &Scan) -> Vec<Diff> {
    let mut out = Vec::new();
    let mut push = |path: &Path, what: &'static str, detail: String| {
        out.push(Diff {
            path: path.to_path_buf(),
            what,
            detail,
        })
    };
    let (la, lb) = (link_groups(a), link_groups(b));
    let paths: BTreeSet<&PathBuf> = a.entries.keys().chain(b.entries.keys()).collect();
    for p in paths {
        let (ea, eb) = match (a.entries.get(p), b.entries.get(p)) {
            (Some(x), Some(y)) => (x, y),
            (Some(x), None) => {
                push(p, "missing", format!("{} is missing from the copy", x.kind));
                continue;
            }
            (None, Some(y)) => {
                push(p, "extra", format!("{} exists only in the copy", y.kind));
                continue;
            }
            (None, None) => unreachable!(),
        };
        for (side, e) in [("original", ea), ("copy", eb)] {
            for err in &e.errors {
                push(p, "unreadable", format!("{side}: {err}"));
            }
        }
        if ea.kind != eb.kind {
            push(p, "type", format!("{} became {}", ea.kind, eb.kind));
            continue;
        }
        if ea.mode != eb.mode {
            push(p, "mode", format!("{:04o} became {:04o}", ea.mode, eb.mode));
        }
        if ea.uid != eb.uid {
            push(p, "uid", format!("{} became {}", ea.uid, eb.uid));
        }
        if ea.gid != eb.gid {
            push(p, "gid", format!("{} became {}", ea.gid, eb.gid));
        }
        if ea.kind == Kind::File {
            if ea.size != eb.size {
                push(p, "size", format!("{} bytes became {}", ea.size, eb.size));
            }
            if ea.digest.is_some() && eb.digest.is_some() && ea.digest != eb.digest {
                let at = first_difference(&a.root.join(p), &b.root.join(p))
                    .map(|o| format!(" (first difference at byte {o})"))
                    .unwrap_or_default();
                push(p, "content", format!("content differs{at}"));
            }
            if ea.size == eb.size
                && ea.errors.is_empty()
                && eb.errors.is_empty()
                && ea.extents != eb.extents
            {
                push(
                    p,
                    "holes",
                    format!(
                        "hole layout differs: {} became {}",
                        show_extents(&ea.extents),
                        show_extents(&eb.extents)
                    ),
                );
            }
        }
        if ea.target != eb.target {
            push(
                p,
                "symlink target",
                format!(
                    "{} became {}",
                    show_bytes(&ea.target),
                    show_bytes(&eb.target)
                ),
            );
        }
        if ea.rdev != eb.rdev {
            push(
                p,
                "rdev",
                format!(
                    "device {}:{} became {}:{}",
                    sys::major(ea.rdev),
                    sys::minor(ea.rdev),
                    sys::major(eb.rdev),
                    sys::minor(eb.rdev)
                ),
            );
        }
        if ea.mtime != eb.mtime {
            push(
                p,
                "mtime",
                format!("{} became {}", show_time(ea.mtime), show_time(eb.mtime)),
            );
        }
        let names: BTreeSet<&Vec<u8>> = ea.xattrs.keys().chain(eb.xattrs.keys()).collect();
        for n in names {
            let name = String::from_utf8_lossy(n);
            match (ea.xattrs.get(n), eb.xattrs.get(n)) {
                (Some(x), Some(y)) if x != y => push(
                    p,
                    "xattr",
                    format!("{name}: value {} became {}", show_bytes(x), show_bytes(y)),
                ),
                (Some(x), None) => push(
                    p,
                    "xattr",
                    format!("{name}: missing from the copy (was {})", show_bytes(x)),
                ),
                (None, Some(y)) => push(
                    p,
                    "xattr",
                    format!("{name}: only in the copy ({})", show_bytes(y)),
                ),
                _ => {}
            }
        }
        if ea.kind != Kind::Dir {
            let ga = la.get(p).cloned().unwrap_or_default();
            let gb = lb.get(p).cloned().unwrap_or_default();
            if ga != gb {
                push(
                    p,
                    "hardlinks",
                    format!(
                        "shares its inode with {} in the original, with {} in the copy",
                        show_paths(&ga),
                        show_paths(&gb)
                    ),
                );
            }
        }
    }
    out
}

/// Every difference between the trees at `a` (reference) and `b` (copy).
pub fn diffs(a: &Path, b: &Path) -> Vec<Diff> {
    diff_scans(&scan(a), &scan(b))
}

/// Every difference between the trees at `a` and `b`, one line each, in human terms.
pub fn trees(a: &Path, b: &Path) -> Vec<String> {
    diffs(a, b).iter().map(|d| d.to_string()).collect()
}

/// Panics, listing the differences, unless the trees are identical.
#[track_caller]
pub fn assert_same(a: &Path, b: &Path) {
    let d = trees(a, b);
    assert!(
        d.is_empty(),
        "{} differences between {} and {}:\n  {}",
        d.len(),
        a.display(),
        b.display(),
        d.iter().take(200).cloned().collect::<Vec<_>>().join("\n  ")
    );
}
