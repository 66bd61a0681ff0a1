//! `--verify`: every restored regular file re-read from the target and checked against
//! the snapshot's chunk ids.
//!
//! Invariant: files are opened through folder descriptors with `O_NOFOLLOW`, read
//! only; a mismatch is a failure in the report, never a change to the target.

use super::fsat::open_path;
use super::plan::{Item, Planner};
use super::{Action, RestoreReport};
use crate::error::Result;
use crate::reader::BlobReader;
use crate::tree::{NodeKind, Tree};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Re-reads every restored regular file of `tree` (the folder at `parent`) and below it
/// and checks it against the snapshot's chunk ids, following the plan from `cursor` on.
pub(super) fn verify(
    reader: &BlobReader,
    plan: &Planner<'_>,
    root: &OwnedFd,
    parent: &[Vec<u8>],
    tree: &Tree,
    cursor: &mut usize,
    report: &mut RestoreReport,
) -> Result<()> {
    for node in &tree.nodes {
        let Some(item) = plan.replay(node, parent, cursor)? else {
            continue;
        };
        if item.action == Action::Keep {
            continue;
        }
        match item.node.kind {
            NodeKind::Dir => {
                let subtree = plan.subtree(&item)?;
                verify(reader, plan, root, &item.comps, &subtree, cursor, report)?
            }
            NodeKind::File => {
                let display = item.display(Path::new(""));
                match verify_file(reader, root, &item) {
                    Ok(()) => report.verified_files += 1,
                    Err(msg) => report
                        .failures
                        .push(format!("{display}: verify failed: {msg}")),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn verify_file(
    reader: &BlobReader,
    root: &OwnedFd,
    item: &Item,
) -> std::result::Result<(), String> {
    let (parent, name) = item.comps.split_at(item.comps.len() - 1);
    let dir = open_path(root.as_fd(), parent).map_err(|e| e.to_string())?;
    let fd = rustix::fs::openat(
        dir.as_fd(),
        OsStr::from_bytes(&name[0]),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open: {e}"))?;
    let file = std::fs::File::from(fd);
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size != item.node.size {
        return Err(format!(
            "size is {size}, the snapshot says {}",
            item.node.size
        ));
    }
    use std::os::unix::fs::FileExt;
    let mut buf = Vec::new();
    for extent in &item.node.extents {
        let mut offset = extent.offset;
        for c in &extent.chunks {
            buf.resize(c.len as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| format!("cannot read: {e}"))?;
            if reader.keys.blob_id(&buf) != c.id {
                return Err(format!(
                    "content at offset {offset} differs from the snapshot"
                ));
            }
            offset += c.len as u64;
        }
    }
    Ok(())
}
