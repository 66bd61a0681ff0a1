//! Entries of the restore target that the snapshot lacks ("extras"), and removing them
//! for `restore --delete`.
//!
//! Invariants:
//! - Only folders the restore writes into are looked at: folders of the snapshot at or
//!   below a restored path (a source path, or an `--include`) that already exist in the
//!   target. Folders above them (`/etc` above `/etc/travis`) are never listed, so nothing
//!   outside the restored paths is found or removed.
//! - Every step is relative to a folder descriptor opened from the target root down
//!   with `O_NOFOLLOW`: a symlink among the extras is removed itself, never followed, and
//!   a folder swapped for a symlink while we work makes that one removal fail instead of
//!   reaching outside the target.
//! - A folder on another filesystem (a mount point) is neither entered nor removed; it
//!   is reported instead.
//! - The planner lists each such folder as it plans it ([`list`]).
//! - Extras are listed parents first; removal goes children first, so each folder is
//!   empty when it is removed.

use super::fsat::{open_dir_at, open_path};
use crate::error::{Error, Result};
use crate::tree::display_name;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One entry of the target that the snapshot lacks.
#[derive(Clone, Debug)]
pub struct Extra {
    /// Path components below the target.
    pub comps: Vec<Vec<u8>>,
    pub kind: FileType,
    /// The full path, for messages.
    pub path: String,
    /// A mount point: listed, but never entered or removed.
    pub mount_point: bool,
}

impl Extra {
    pub fn kind_word(&self) -> &'static str {
        match self.kind {
            FileType::Directory => "folder",
            FileType::Symlink => "symlink",
            FileType::RegularFile => "file",
            FileType::Fifo => "FIFO",
            FileType::Socket => "socket",
            FileType::CharacterDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Unknown => "entry",
        }
    }
}

fn display(target: &Path, comps: &[Vec<u8>]) -> String {
    let mut s = target.display().to_string();
    for c in comps {
        if !s.ends_with('/') {
            s.push('/');
        }
        s.push_str(&display_name(c));
    }
    s
}

/// Lists `dir` (at `comps`): the entries not in `keep` (every entry when `keep` is
/// `None`), descending into extra folders.
pub(super) fn list(
    dir: BorrowedFd<'_>,
    comps: &[Vec<u8>],
    keep: Option<&HashSet<&[u8]>>,
    target: &Path,
    out: &mut Vec<Extra>,
) -> Result<()> {
    let here = || display(target, comps);
    let dir_dev = rustix::fs::fstat(dir)
        .map_err(|e| Error::io(format!("inspect {}", here()), e.into()))?
        .st_dev;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)
        .map_err(|e| Error::io(format!("list {}", here()), e.into()))?
    {
        let entry = entry.map_err(|e| Error::io(format!("list {}", here()), e.into()))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." || keep.is_some_and(|k| k.contains(name)) {
            continue;
        }
        names.push(name.to_vec());
    }
    names.sort();
    for name in names {
        let mut sub = comps.to_vec();
        sub.push(name.clone());
        let st = match rustix::fs::statat(dir, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)
        {
            Ok(st) => st,
            // Gone since the listing: nothing to remove.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => {
                return Err(Error::io(
                    format!("inspect {}", display(target, &sub)),
                    e.into(),
                ))
            }
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        let mount_point = kind == FileType::Directory && st.st_dev != dir_dev;
        let path = display(target, &sub);
        out.push(Extra {
            comps: sub.clone(),
            kind,
            path,
            mount_point,
        });
        if kind == FileType::Directory && !mount_point {
            let fd = open_dir_at(dir, &name)
                .map_err(|e| Error::io(format!("open {}", display(target, &sub)), e.into()))?;
            list(fd.as_fd(), &sub, None, target, out)?;
        }
    }
    Ok(())
}

/// Removes `extras` (as [`find`] listed them), children first. Returns how many were
/// removed and a message for each that could not be.
pub fn remove(root: BorrowedFd<'_>, extras: &[Extra]) -> (u64, Vec<String>) {
    let mut removed = 0;
    let mut failures = Vec::new();
    // Entries inside a mount point or a folder that failed are skipped with it.
    let mut blocked: Vec<&[Vec<u8>]> = Vec::new();
    for e in extras {
        if e.mount_point {
            failures.push(format!(
                "{} is a mount point (another filesystem): not removed; unmount it or remove it by hand",
                e.path
            ));
            blocked.extend(parents(&e.comps));
        }
    }
    for e in extras.iter().rev() {
        if e.mount_point || blocked.contains(&e.comps.as_slice()) {
            continue;
        }
        let (name, parent) = e.comps.split_last().expect("an extra has a name");
        let result = open_path(root, parent).and_then(|fd| {
            let flags = if e.kind == FileType::Directory {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            rustix::fs::unlinkat(fd.as_fd(), OsStr::from_bytes(name), flags)
        });
        match result {
            Ok(()) | Err(rustix::io::Errno::NOENT) => removed += 1,
            Err(err) => {
                failures.push(format!(
                    "{}: could not remove the {}: {err}",
                    e.path,
                    e.kind_word()
                ));
                blocked.extend(parents(&e.comps));
            }
        }
    }
    (removed, failures)
}

/// Every proper prefix of `comps`: the folders above an entry.
fn parents(comps: &[Vec<u8>]) -> impl Iterator<Item = &[Vec<u8>]> {
    (1..comps.len()).map(move |n| &comps[..n])
}
