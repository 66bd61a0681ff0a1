//! The walks of the trees reachable from a snapshot's root, shared by everything that
//! needs "what does this snapshot use" or "what is wrong below this tree": prune's mark,
//! lock extend, copy and stats walk with [`trees`] (or [`reachable_blobs`]); check and
//! snapshot repair with [`fold`]. Walks that stream a listing by path (restore's plan,
//! diff, find, mount, dump, ls) visit a tree once per path it appears at, and are not
//! these.
//!
//! Invariants:
//! - [`trees`] reads each tree at most once per `seen` set: a tree already in `seen` is
//!   skipped with everything below it (everything below it was walked when it was added).
//!   Pass the same set across snapshots to walk a whole store once. A tree that cannot be
//!   read is handed to the visitor as an error; the walk then does not descend into it,
//!   and goes on or stops as the visitor says. Order is depth first, but callers must not
//!   rely on it.
//! - [`fold`] computes each tree's result once per `memo`, from the tree and the results
//!   of its subtrees (post order: every subtree's result is known before its parent's is
//!   computed), and keeps it in `memo` by tree id, so a tree shared by many folders and
//!   snapshots costs one read and one result. The fold's own [`Fold::read`] decides what
//!   an unreadable tree's result is; any error it or [`Fold::combine`] returns stops the
//!   walk and is returned. Besides `memo`, the walk holds only the trees on the path from
//!   the root to the tree being read, with their nodes' results so far (on its own stack,
//!   not the thread's, so deep trees cannot overflow it). Tree ids are hashes of their
//!   content, so no tree lies below itself.
//! - [`pack_usage`] holds every pack's entries at once; [`pack_usages`] one pack's.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::reader::BlobReader;
use crate::tree::{Node, Tree};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

/// Visits every tree reachable from `root` that is not in `seen` (and adds it there).
/// `visit` gets the tree's id and the tree as [`BlobReader::tree_shallow`] reads it
/// (a long file's chunk lists unread: see [`content`]), or the error reading it; it returns
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
        match reader.tree_shallow(cache, &tree_id) {
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

/// Calls `visit` for every blob the content of `node` (an entry of tree `tree_id`, read
/// by [`trees`]) uses: each chunk list, then, where `visit` answered `true` for the list,
/// the chunks it names; and the chunks of inline extents. `visit` answers `false` for a
/// list it has seen (or found missing) so that it is not read again. A list that is
/// read and does not open is `Ok(Err(damage))` (damage to `tree_id`, naming the entry),
/// and its file's remaining blobs are not visited; any other error, and any error of
/// `visit`, is `Err`.
pub fn content(
    reader: &BlobReader,
    cache: &Cache,
    tree_id: &Id,
    node: &Node,
    mut visit: impl FnMut(Id) -> Result<bool>,
) -> Result<std::result::Result<(), Error>> {
    for list_id in &node.lists {
        if visit(*list_id)? {
            let list = match reader.chunk_list(cache, tree_id, &node.name, list_id) {
                Ok(list) => list,
                Err(e) if e.is_damage() => return Ok(Err(e)),
                Err(e) => return Err(e),
            };
            for chunk in list.extents.iter().flat_map(|e| e.chunks.iter()) {
                visit(chunk.id)?;
            }
        }
    }
    for chunk in node.chunks() {
        visit(chunk.id)?;
    }
    Ok(Ok(()))
}

/// Adds every blob reachable from the tree `root` to `used`: the trees, the chunk lists
/// of long files and the chunks of all files. A tree already in `used` is not read again
/// (all below it is there), nor is a chunk list. The first tree or list that cannot be
/// read is the error.
pub fn reachable_blobs(
    reader: &BlobReader,
    cache: &Cache,
    root: &Id,
    used: &mut HashSet<Id>,
) -> Result<()> {
    let mut chunks = HashSet::new();
    let flow = trees::<()>(reader, cache, root, used, |tree_id, tree| {
        for node in &tree?.nodes {
            content(reader, cache, tree_id, node, |id| Ok(chunks.insert(id)))??;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    debug_assert!(flow.is_continue());
    used.extend(chunks);
    Ok(())
}

/// What [`fold`] computes for each tree.
pub trait Fold {
    /// A tree's result, shared wherever the tree appears (cheap to clone: an `Rc`).
    type Out: Clone;

    /// Reads tree `id`: `Ok(Ok(tree))` to fold it, `Ok(Err(out))` when it cannot be read
    /// (`out` is then its result and nothing below it is visited), `Err` to stop the walk.
    fn read(&mut self, id: &Id) -> Result<std::result::Result<Tree, Self::Out>>;

    /// The result of tree `id`, read as `tree`, given its nodes' subtree results: one per
    /// node, in node order, `None` for a node without a subtree.
    fn combine(&mut self, id: &Id, tree: Tree, below: Vec<Option<Self::Out>>) -> Result<Self::Out>;
}

/// A tree being folded: read, with the results of its first `below.len()` nodes known.
struct Frame<T> {
    id: Id,
    tree: Tree,
    below: Vec<Option<T>>,
}

/// The result of `root` under `f`: every tree below it folded once (results kept in
/// `memo`, which may carry results over from earlier roots), children before parents.
pub fn fold<F: Fold>(f: &mut F, memo: &mut HashMap<Id, F::Out>, root: &Id) -> Result<F::Out> {
    let mut stack: Vec<Frame<F::Out>> = Vec::new();
    let mut next = Some(*root);
    loop {
        // The result of the tree this step finished, if it finished one.
        let finished = match next.take() {
            Some(id) => match memo.get(&id) {
                Some(out) => Some(out.clone()),
                None => match f.read(&id)? {
                    Ok(tree) => {
                        let below = Vec::with_capacity(tree.nodes.len());
                        stack.push(Frame { id, tree, below });
                        None
                    }
                    Err(out) => {
                        memo.insert(id, out.clone());
                        Some(out)
                    }
                },
            },
            None => {
                let top = stack.last_mut().expect("a tree is being folded");
                match top.tree.nodes.get(top.below.len()).map(|n| n.subtree) {
                    Some(Some(sub)) => {
                        next = Some(sub);
                        None
                    }
                    Some(None) => {
                        top.below.push(None);
                        None
                    }
                    None => {
                        let Frame { id, tree, below } = stack.pop().expect("it is there");
                        let out = f.combine(&id, tree, below)?;
                        memo.insert(id, out.clone());
                        Some(out)
                    }
                }
            }
        };
        if let Some(out) = finished {
            match stack.last_mut() {
                Some(parent) => parent.below.push(Some(out)),
                None => return Ok(out),
            }
        }
    }
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

    /// Sealed bytes of the blobs no snapshot uses: what repacking the pack would free
    /// (its header and trailer are not waste: the new pack has its own).
    pub fn unused_blob_bytes(&self) -> u64 {
        let all: u64 = self.entries.iter().map(|e| e.length as u64).sum();
        all.saturating_sub(self.used_bytes)
    }

    /// The share of the pack's bytes that used blobs occupy.
    pub fn used_share(&self) -> f64 {
        self.used_bytes as f64 / self.size.max(1) as f64
    }
}

/// The usage of every pack the index (as `cache` holds it) names, given the blobs in use.
pub fn pack_usage(cache: &Cache, used: &HashSet<Id>) -> Result<Vec<PackUsage>> {
    pack_usages(cache, |id| used.contains(id))?.collect()
}

/// As [`pack_usage`], one pack at a time (only one pack's entries held at once), with
/// `in_use` saying which blobs are in use.
pub fn pack_usages<'a>(
    cache: &'a Cache,
    in_use: impl Fn(&Id) -> bool + 'a,
) -> Result<impl Iterator<Item = Result<PackUsage>> + 'a> {
    Ok(cache.packs()?.into_iter().map(move |(pack, size)| {
        let entries = cache.pack_entries(&pack)?;
        let used: Vec<usize> = (0..entries.len())
            .filter(|&i| in_use(&entries[i].id))
            .collect();
        let used_bytes = used.iter().map(|&i| entries[i].length as u64).sum();
        Ok(PackUsage {
            pack,
            size,
            entries,
            used,
            used_bytes,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Node, NodeKind};

    fn node(name: &str, subtree: Option<Id>) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind: if subtree.is_some() {
                NodeKind::Dir
            } else {
                NodeKind::File
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            mtime_nsec: 0,
            size: 0,
            xattrs: Vec::new(),
            extents: Vec::new(),
            lists: Vec::new(),
            subtree,
            target: None,
            rdev: 0,
            link: None,
        }
    }

    fn id(n: u32) -> Id {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        Id(bytes)
    }

    /// Trees held in a map; each result is the sorted paths of the files below a tree,
    /// and `!` for a tree that is not in the map.
    #[derive(Default)]
    struct Paths {
        trees: HashMap<Id, Tree>,
        reads: Vec<Id>,
        fail_on: Option<Id>,
    }

    impl Fold for Paths {
        type Out = std::rc::Rc<Vec<String>>;

        fn read(&mut self, id: &Id) -> Result<std::result::Result<Tree, Self::Out>> {
            self.reads.push(*id);
            if self.fail_on == Some(*id) {
                return Err(Error::Backend("unreachable store".into()));
            }
            Ok(self
                .trees
                .get(id)
                .cloned()
                .ok_or_else(|| vec!["!".to_string()].into()))
        }

        fn combine(
            &mut self,
            _: &Id,
            tree: Tree,
            below: Vec<Option<Self::Out>>,
        ) -> Result<Self::Out> {
            assert_eq!(below.len(), tree.nodes.len(), "one result per node");
            let mut out = Vec::new();
            for (node, below) in tree.nodes.iter().zip(below) {
                let name = String::from_utf8_lossy(&node.name);
                assert_eq!(below.is_some(), node.subtree.is_some());
                match below {
                    None => out.push(name.into_owned()),
                    Some(b) => out.extend(b.iter().map(|p| format!("{name}/{p}"))),
                }
            }
            Ok(out.into())
        }
    }

    #[test]
    fn shared_trees_are_read_once_and_their_results_reused() {
        let mut f = Paths::default();
        let shared = id(1);
        f.trees.insert(
            shared,
            Tree {
                nodes: vec![node("a", None), node("b", None)],
            },
        );
        f.trees.insert(
            id(2),
            Tree {
                nodes: vec![
                    node("x", Some(shared)),
                    node("y", Some(shared)),
                    node("z", Some(id(99))),
                    node("f", None),
                ],
            },
        );
        f.trees.insert(
            id(3),
            Tree {
                nodes: vec![node("again", Some(shared))],
            },
        );
        let mut memo = HashMap::new();
        let out = fold(&mut f, &mut memo, &id(2)).unwrap();
        assert_eq!(*out, ["x/a", "x/b", "y/a", "y/b", "z/!", "f"]);
        let out = fold(&mut f, &mut memo, &id(3)).unwrap();
        assert_eq!(*out, ["again/a", "again/b"]);
        assert_eq!(
            f.reads,
            [id(2), shared, id(99), id(3)],
            "each tree read once"
        );
        assert_eq!(memo.len(), 4);
        // A root already folded is not read again.
        fold(&mut f, &mut memo, &id(2)).unwrap();
        assert_eq!(f.reads.len(), 4);
    }

    #[test]
    fn an_error_stops_the_walk_and_is_returned() {
        let mut f = Paths::default();
        f.trees.insert(
            id(1),
            Tree {
                nodes: vec![node("d", Some(id(2))), node("e", Some(id(3)))],
            },
        );
        f.fail_on = Some(id(2));
        let err = fold(&mut f, &mut HashMap::new(), &id(1)).unwrap_err();
        assert_eq!(err.to_string(), "unreachable store");
        assert_eq!(f.reads, [id(1), id(2)], "nothing is read after the error");
    }

    /// The depth of the deepest file below a tree.
    struct Depth(HashMap<Id, Tree>);

    impl Fold for Depth {
        type Out = u32;

        fn read(&mut self, id: &Id) -> Result<std::result::Result<Tree, u32>> {
            Ok(self.0.get(id).cloned().ok_or(0))
        }

        fn combine(&mut self, _: &Id, _: Tree, below: Vec<Option<u32>>) -> Result<u32> {
            Ok(1 + below.into_iter().flatten().max().unwrap_or(0))
        }
    }

    #[test]
    fn deep_trees_do_not_overflow_the_stack() {
        let depth = 200_000;
        let trees = (0..depth)
            .map(|n| {
                let below = (n + 1 < depth).then(|| id(n + 1));
                (
                    id(n),
                    Tree {
                        nodes: vec![node("d", below)],
                    },
                )
            })
            .collect();
        let out = fold(&mut Depth(trees), &mut HashMap::new(), &id(0)).unwrap();
        assert_eq!(out, depth);
    }
}
