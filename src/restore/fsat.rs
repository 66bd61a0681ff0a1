//! Steps relative to a folder descriptor, shared by the writer, verify and `--delete`.
//!
//! Invariants: a folder is opened with `O_NOFOLLOW` from the target root down, so a
//! symlink in the place of a folder makes the step fail rather than lead outside the
//! target; an entry is written under a temporary name ([`temp_name`]) and moved into its
//! real name only when complete ([`rename_into_place`]).

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The temporary name an entry named `name` is written under until it is complete.
pub(super) fn temp_name(name: &[u8]) -> std::ffi::OsString {
    // Short enough for NAME_MAX (255) whatever the real name's length.
    let keep = &name[..name.len().min(200)];
    let mut t = Vec::with_capacity(keep.len() + 40);
    t.push(b'.');
    t.extend_from_slice(keep);
    t.extend_from_slice(TEMP_MARK);
    // From the thread's generator (seeded from the OS): one system call per file to the
    // OS generator cost a restore of small files more than the name is worth.
    let random: [u8; TEMP_RANDOM / 2] = rand::Rng::gen(&mut rand::thread_rng());
    t.extend_from_slice(hex::encode(random).as_bytes());
    std::ffi::OsString::from_vec(t)
}

pub(super) const TEMP_MARK: &[u8] = b".vault-tmp-";
pub(super) const TEMP_RANDOM: usize = 16;

/// True for a name [`temp_name`] makes (and for the temporary names of earlier
/// releases, `.vault-restore-` and 8 hex digits): what a killed restore leaves behind.
pub fn is_temp_name(name: &[u8]) -> bool {
    let hex_tail = |tail: &[u8], n: usize| {
        tail.len() == n
            && tail
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if let Some(tail) = name.strip_prefix(b".vault-restore-".as_slice()) {
        return hex_tail(tail, 8);
    }
    if name.len() < 1 + TEMP_MARK.len() + TEMP_RANDOM || name[0] != b'.' {
        return false;
    }
    let (head, tail) = name.split_at(name.len() - TEMP_RANDOM);
    head.ends_with(TEMP_MARK) && hex_tail(tail, TEMP_RANDOM)
}

/// Moves `from` to `to` in `dir`: replacing what is there, or only when nothing is.
pub(super) fn rename_into_place(
    dir: BorrowedFd<'_>,
    from: &OsStr,
    to: &OsStr,
    replace: bool,
) -> rustix::io::Result<()> {
    if replace {
        return rustix::fs::renameat(dir, from, dir, to);
    }
    match rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE) {
        // Filesystems without RENAME_NOREPLACE: link then unlink gives the same
        // no-overwrite guarantee (link fails when `to` exists).
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?;
            rustix::fs::unlinkat(dir, from, AtFlags::empty())
        }
        other => other,
    }
}

/// Opens a folder below `dir` without following a symlink in its place.
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

pub(super) fn open_path(root: BorrowedFd<'_>, comps: &[Vec<u8>]) -> rustix::io::Result<OwnedFd> {
    let mut fd = rustix::fs::openat(
        root,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for c in comps {
        fd = open_dir_at(fd.as_fd(), c)?;
    }
    Ok(fd)
}
