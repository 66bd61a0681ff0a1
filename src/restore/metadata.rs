//! Applying an entry's metadata in the order the kernel demands: owner first (chown
//! clears setuid/setgid and capabilities), then mode, then xattrs, then times.
//!
//! Invariant: nothing here follows a symlink at the entry's name (`AT_SYMLINK_NOFOLLOW`,
//! or xattrs set through the held folder's `/proc/self/fd` link with `lsetxattr`).

use super::write::Shared;
use crate::tree::{display_name, Node, NodeKind};
use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, Mode};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub(super) fn uid(raw: u32) -> rustix::fs::Uid {
    // SAFETY: `from_raw` is marked unsafe only because the value u32::MAX means "leave the
    // owner unchanged" to chown; passing it (from a snapshot) just leaves the owner as it
    // is, which is no memory-safety concern.
    unsafe { rustix::fs::Uid::from_raw(raw) }
}

pub(super) fn gid(raw: u32) -> rustix::fs::Gid {
    // SAFETY: as for `uid`.
    unsafe { rustix::fs::Gid::from_raw(raw) }
}

pub(super) fn errno_is_perm(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::PERM || *e == rustix::io::Errno::ACCESS
}

/// Sets owner, mode, xattrs and times on `dir/name` without following a symlink there.
pub(super) fn apply_meta_at(
    dir: BorrowedFd<'_>,
    node: &Node,
    owner: (u32, u32),
    display: &str,
    is_root: bool,
    shared: &Shared,
) {
    let name = OsStr::from_bytes(&node.name);
    let warn = |m: String| shared.warnings.lock().unwrap().push(m);
    let chown = rustix::fs::chownat(
        dir,
        name,
        Some(uid(owner.0)),
        Some(gid(owner.1)),
        AtFlags::SYMLINK_NOFOLLOW,
    );
    if let Err(e) = chown {
        if errno_is_perm(&e) && !is_root {
            shared
                .owner_not_set
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            warn(format!("{display}: owner not set: {e}"));
        }
    }
    if node.kind != NodeKind::Symlink {
        // The entry was created by this restore (or is a folder opened without following
        // links), so chmodat cannot be redirected through a symlink here.
        if let Err(e) =
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(node.mode), AtFlags::empty())
        {
            warn(format!("{display}: mode not set: {e}"));
        }
    }
    if !node.xattrs.is_empty() {
        // lsetxattr through the folder's /proc/self/fd link: the folder is the one we
        // hold open, and the final name is not followed.
        let mut proc_path =
            format!("/proc/self/fd/{}/", rustix::fd::AsRawFd::as_raw_fd(&dir)).into_bytes();
        proc_path.extend_from_slice(&node.name);
        let path = OsStr::from_bytes(&proc_path);
        for x in &node.xattrs {
            if let Err(e) = rustix::fs::lsetxattr(
                path,
                OsStr::from_bytes(&x.name),
                &x.value,
                rustix::fs::XattrFlags::empty(),
            ) {
                warn(format!(
                    "{display}: extended attribute {} not set: {e}",
                    display_name(&x.name)
                ));
            }
        }
    }
    let ts = rustix::fs::Timespec {
        tv_sec: node.mtime,
        tv_nsec: node.mtime_nsec as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    if let Err(e) = rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW) {
        warn(format!("{display}: mtime not set: {e}"));
    }
}
