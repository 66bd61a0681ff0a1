//! Differences between two snapshots: entries added, removed and changed, with what
//! changed, and a byte summary.
//!
//! The two root trees are walked side by side in name order. A subtree whose id is the
//! same on both sides is identical (ids are hashes of the content) and is not read. File
//! content is compared by chunk list and size, so no file data is read at all.

use crate::cache::Cache;
use crate::error::Result;
use crate::reader::BlobReader;
use crate::tree::{display_name, Node, NodeKind, Tree};
use crate::Id;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One entry that differs.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Absolute path, non-UTF-8 bytes shown as `\xNN`.
    pub path: String,
    pub change: ChangeKind,
    /// File type in the newer snapshot (the older one for a removed entry).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// For a changed entry, what differs: any of "type", "content", "mode", "owner",
    /// "mtime", "xattrs", "link target", "device", "hardlinks".
    pub what: Vec<&'static str>,
    /// Size in the older snapshot (files; absent for added entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_size: Option<u64>,
    /// Size in the newer snapshot (files; absent for removed entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_size: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// Sizes of the files added.
    pub added_bytes: u64,
    /// Sizes of the files removed.
    pub removed_bytes: u64,
    /// Sizes (in the newer snapshot) of the files whose content changed.
    pub changed_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffReport {
    pub changes: Vec<Change>,
    pub summary: DiffSummary,
}

pub fn kind_label(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::Socket => "socket",
    }
}

/// What differs between two versions of one entry (empty when nothing does). Two long
/// files read without their chunk lists have the same content when they name the same
/// lists (a list is a function of the extents); otherwise their extents are compared, so
/// a node with lists must have them loaded when the other has none.
pub fn node_changes(a: &Node, b: &Node) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push("type");
    }
    let same_content = if !a.lists.is_empty() && !b.lists.is_empty() {
        a.lists == b.lists
    } else {
        a.extents == b.extents
    };
    if a.kind == NodeKind::File && b.kind == NodeKind::File && (a.size != b.size || !same_content) {
        what.push("content");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if a.uid != b.uid || a.gid != b.gid || a.user != b.user || a.group != b.group {
        what.push("owner");
    }
    if (a.mtime, a.mtime_nsec) != (b.mtime, b.mtime_nsec) {
        what.push("mtime");
    }
    if a.xattrs != b.xattrs {
        what.push("xattrs");
    }
    if a.target != b.target {
        what.push("link target");
    }
    if a.rdev != b.rdev {
        what.push("device");
    }
    if a.link.is_some() != b.link.is_some() {
        what.push("hardlinks");
    }
    what
}

/// Compares the trees `a` (older) and `b` (newer). With `only` (path components below
/// `/`), only that entry and what lies below it.
pub fn diff(
    reader: &BlobReader,
    cache: &Cache,
    a: &Id,
    b: &Id,
    only: &[Vec<u8>],
) -> Result<DiffReport> {
    let mut w = Walk {
        reader,
        cache,
        only,
        report: DiffReport::default(),
    };
    w.trees(Some(a), Some(b), &mut Vec::new())?;
    Ok(w.report)
}

struct Walk<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    only: &'a [Vec<u8>],
    report: DiffReport,
}

impl Walk<'_> {
    /// Reads a tree without its chunk lists: two versions of a long file compare by the
    /// lists they name, so a listing diff reads one blob per folder.
    fn load(&self, id: Option<&Id>) -> Result<Tree> {
        match id {
            Some(id) => self.reader.tree_shallow(self.cache, id),
            None => Ok(Tree::default()),
        }
    }

    /// `node`, an entry of tree `tree`, with its chunk lists loaded into its extents.
    fn with_extents(&self, tree: Option<&Id>, node: &Node) -> Result<Node> {
        let mut node = node.clone();
        if let (Some(tree), false) = (tree, node.lists.is_empty()) {
            let mut lists = Vec::with_capacity(node.lists.len());
            for list in &node.lists {
                lists.push(self.reader.chunk_list(self.cache, tree, &node.name, list)?);
            }
            node.extents = crate::tree::ChunkList::join(lists);
        }
        Ok(node)
    }

    /// True when `path` is on the way to, at, or below the `only` path.
    fn relevant(&self, path: &[Vec<u8>]) -> bool {
        let n = path.len().min(self.only.len());
        path[..n] == self.only[..n]
    }

    fn reported(&self, path: &[Vec<u8>]) -> bool {
        path.len() >= self.only.len() && self.relevant(path)
    }

    fn trees(&mut self, a: Option<&Id>, b: Option<&Id>, path: &mut Vec<Vec<u8>>) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let ta = self.load(a)?;
        let tb = self.load(b)?;
        let (mut i, mut j) = (0, 0);
        while i < ta.nodes.len() || j < tb.nodes.len() {
            let na = ta.nodes.get(i);
            let nb = tb.nodes.get(j);
            let order = match (na, nb) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (x, y) = match order {
                std::cmp::Ordering::Less => {
                    i += 1;
                    (na, None)
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    (None, nb)
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (na, nb)
                }
            };
            let name = x.or(y).map(|n| n.name.clone()).unwrap_or_default();
            path.push(name);
            if self.relevant(path) {
                self.entry(x, y, (a, b), path)?;
            }
            path.pop();
        }
        Ok(())
    }

    /// Compares two versions of one entry, of the trees `in_a` and `in_b`.
    fn entry(
        &mut self,
        a: Option<&Node>,
        b: Option<&Node>,
        (in_a, in_b): (Option<&Id>, Option<&Id>),
        path: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let shown = format!(
            "/{}",
            path.iter()
                .map(|c| display_name(c))
                .collect::<Vec<_>>()
                .join("/")
        );
        let file_size = |n: &Node| (n.kind == NodeKind::File).then_some(n.size);
        if self.reported(path) {
            let what = match (a, b) {
                (Some(o), Some(n)) if o.lists.is_empty() != n.lists.is_empty() => {
                    // One version from before chunk lists (a store upgraded since):
                    // compare extents, the lists loaded.
                    let (o, n) = (self.with_extents(in_a, o)?, self.with_extents(in_b, n)?);
                    Some(node_changes(&o, &n))
                }
                (Some(o), Some(n)) => Some(node_changes(o, n)),
                _ => None,
            };
            let s = &mut self.report.summary;
            let change = match (a, b) {
                (None, Some(n)) => {
                    s.added += 1;
                    s.added_bytes += file_size(n).unwrap_or(0);
                    Some(Change {
                        path: shown,
                        change: ChangeKind::Added,
                        kind: kind_label(n.kind),
                        what: Vec::new(),
                        old_size: None,
                        new_size: file_size(n),
                    })
                }
                (Some(o), None) => {
                    s.removed += 1;
                    s.removed_bytes += file_size(o).unwrap_or(0);
                    Some(Change {
                        path: shown,
                        change: ChangeKind::Removed,
                        kind: kind_label(o.kind),
                        what: Vec::new(),
                        old_size: file_size(o),
                        new_size: None,
                    })
                }
                (Some(o), Some(n)) => {
                    let what = what.unwrap_or_default();
                    if what.is_empty() {
                        None
                    } else {
                        s.changed += 1;
                        if what.contains(&"content") {
                            s.changed_bytes += file_size(n).unwrap_or(0);
                        }
                        Some(Change {
                            path: shown,
                            change: ChangeKind::Changed,
                            kind: kind_label(n.kind),
                            what,
                            old_size: file_size(o),
                            new_size: file_size(n),
                        })
                    }
                }
                (None, None) => None,
            };
            self.report.changes.extend(change);
        }
        let sub = |n: Option<&Node>| n.and_then(|n| n.subtree);
        let (sa, sb) = (sub(a), sub(b));
        if sa.is_some() || sb.is_some() {
            self.trees(sa.as_ref(), sb.as_ref(), path)?;
        }
        Ok(())
    }
}
