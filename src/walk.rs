//! One walk of the trees reachable from a snapshot's root, shared by everything that
//! needs "what does this snapshot use": prune's mark, lock extend, copy, check.
//!
//! Invariants:
//! - Each tree is read at most once per `seen` set: a tree already in `seen` is skipped
//!   with everything below it (everything below it was walked when it was added). Pass the
//!   same set across snapshots to walk a whole store once.
//! - A tree that cannot be read is handed to the visitor as an error; the walk then does
//!   not descend into it, and goes on or stops as the visitor says.
//! - Order is depth first, but callers must not rely on it.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::reader::BlobReader;
use crate::tree::Tree;
use std::collections::HashSet;
use std::ops::ControlFlow;

/// Visits every tree reachable from `root` that is not in `seen` (and adds it there).
/// `visit` gets the tree's id and the tree, or the error reading it; it returns
/// `Ok(Continue)` to go on, `Ok(Break(b))` to stop the walk with `b`, or an error to
/// stop it with that error.
pub fn trees<B>(
    reader: &BlobReader,
    cache: &Cache,
    root: &Id,
    seen: &mut HashSet<Id>,
    mut visit: impl FnMut(&Id, std::result::Result<&Tree, Error>) -> Result<ControlFlow<B>>,
) -> Result<ControlFlow<B>> {
    let mut stack = vec![*root];
    while let Some(tree_id) = stack.pop() {
        if !seen.insert(tree_id) {
            continue;
        }
        match reader.tree(cache, &tree_id) {
            Ok(tree) => {
                if let ControlFlow::Break(b) = visit(&tree_id, Ok(&tree))? {
                    return Ok(ControlFlow::Break(b));
                }
                stack.extend(tree.nodes.iter().filter_map(|n| n.subtree));
            }
            Err(e) => {
                if let ControlFlow::Break(b) = visit(&tree_id, Err(e))? {
                    return Ok(ControlFlow::Break(b));
                }
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Adds every blob reachable from the tree `root` to `used`: the trees and the chunks of
/// their files. A tree already in `used` is not read again (all below it is there). The
/// first tree that cannot be read is the error.
pub fn reachable_blobs(
    reader: &BlobReader,
    cache: &Cache,
    root: &Id,
    used: &mut HashSet<Id>,
) -> Result<()> {
    let mut chunks = Vec::new();
    let flow = trees::<()>(reader, cache, root, used, |_, tree| {
        for node in &tree?.nodes {
            chunks.extend(node.chunks().map(|c| c.id));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    debug_assert!(flow.is_continue());
    used.extend(chunks);
    Ok(())
}

/// How much of one pack the walked snapshots use.
#[derive(Clone, Debug)]
pub struct PackUsage {
    pub pack: Id,
    /// The pack's size in bytes.
    pub size: u64,
    /// Its entries, as the index lists them.
    pub entries: Vec<crate::pack::PackEntry>,
    /// Positions in `entries` of the blobs in use.
    pub used: Vec<usize>,
    /// Sealed bytes of the blobs in use.
    pub used_bytes: u64,
}

impl PackUsage {
    /// True when no blob of the pack is in use.
    pub fn is_unused(&self) -> bool {
        self.used.is_empty()
    }

    /// Bytes of the pack no used blob occupies (header, trailer and unused blobs).
    pub fn unused_bytes(&self) -> u64 {
        self.size - self.used_bytes.min(self.size)
    }

    /// The share of the pack's bytes that used blobs occupy.
    pub fn used_share(&self) -> f64 {
        self.used_bytes as f64 / self.size.max(1) as f64
    }
}

/// The usage of every pack the index (as `cache` holds it) names, given the blobs in use.
pub fn pack_usage(cache: &Cache, used: &HashSet<Id>) -> Result<Vec<PackUsage>> {
    cache
        .packs()?
        .into_iter()
        .map(|(pack, size)| {
            let entries = cache.pack_entries(&pack)?;
            let used_idx: Vec<usize> = (0..entries.len())
                .filter(|&i| used.contains(&entries[i].id))
                .collect();
            let used_bytes = used_idx.iter().map(|&i| entries[i].length as u64).sum();
            Ok(PackUsage {
                pack,
                size,
                entries,
                used: used_idx,
                used_bytes,
            })
        })
        .collect()
}
