//! Step 4 of a check: every snapshot record opens and is verified, every tree loads,
//! and every blob lies in a sound pack.
//!
//! The trees are walked with [`crate::walk::fold`]: each tree's findings (the paths below
//! it, relative to it, and the problem that hits each) are computed once, from its own
//! files and its subtrees' findings, and kept for the whole check, so a tree shared by
//! many folders and snapshots is read once, and its findings are attributed to the file
//! paths they hit in every snapshot. A tree whose blob lies in no sound pack is not read;
//! its one finding is the problem that explains why.

use super::{Checker, Key, ProblemKind, Problems};
use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::Result;
use crate::id::Id;
use crate::reader::BlobReader;
use crate::tree::{display_name, Tree};
use crate::walk::Fold;
use std::collections::HashMap;
use std::rc::Rc;

impl Checker<'_> {
    /// Step 4, snapshots: every record opens and is verified, every tree loads, every blob
    /// lies in a sound pack.
    pub(super) fn snapshots(&mut self) -> Result<()> {
        let repo = &self.reader.repo;
        let keys = &self.reader.keys;
        let mut walk = Walk {
            reader: self.reader,
            cache: self.cache,
            bad_blobs: &self.bad_blobs,
            bad_packs: &self.bad_packs,
            stored: &self.stored,
            problems: &mut self.problems,
        };
        // What was found below each tree already walked.
        let mut memo = HashMap::new();
        for info in repo.backend.list(Kind::Snapshots)? {
            self.report.snapshots += 1;
            let Some(sid) = Id::from_hex(&info.name) else {
                continue;
            };
            let snap = match repo.load_snapshot_checked(keys, &sid) {
                Ok((s, verdict)) => {
                    for why in verdict.problems() {
                        walk.problems.add(
                            ProblemKind::SnapshotUnverified,
                            format!("snapshots/{}", info.name),
                            format!(
                                "snapshot {} (host {:?}, {}): {why}",
                                sid.short(),
                                s.hostname,
                                s.time
                            ),
                        );
                    }
                    s
                }
                Err(e) if e.is_damage() => {
                    walk.problems.add(
                        ProblemKind::SnapshotDamaged,
                        format!("snapshots/{}", info.name),
                        format!("snapshot {}: {e}", sid.short()),
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let findings = crate::walk::fold(&mut walk, &mut memo, &snap.tree)?;
            let label = sid.short();
            for f in findings.iter() {
                let parts: Vec<String> = f.0.iter().map(|c| display_name(c)).collect();
                walk.problems
                    .affect(&f.1, &label, format!("/{}", parts.join("/")));
            }
        }
        Ok(())
    }
}

/// A path below a tree (relative to it) and the problem that hits it.
type Finding = (Vec<Vec<u8>>, Key);

struct Walk<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    bad_blobs: &'a HashMap<Id, Key>,
    bad_packs: &'a HashMap<Id, Key>,
    stored: &'a HashMap<String, u64>,
    problems: &'a mut Problems,
}

impl Walk<'_> {
    /// Why a blob cannot be read, if it cannot: the key of the problem that explains it.
    fn blob_problem(&mut self, id: &Id) -> Result<Option<Key>> {
        if let Some(k) = self.bad_blobs.get(id) {
            return Ok(Some(k.clone()));
        }
        let locations = self.cache.locations(id)?;
        if locations.is_empty() {
            return Ok(Some(self.problems.add(
                ProblemKind::BlobMissing,
                "index",
                "blobs that snapshots use are named by no index file and lie in no pack's trailer \
                 (their packs are gone?); `vault repair snapshots` writes snapshots without the lost files",
            )));
        }
        let sound = locations.iter().find(|l| {
            !self.bad_packs.contains_key(&l.pack) && self.stored.contains_key(&l.pack.to_hex())
        });
        match sound {
            Some(_) => Ok(None),
            None => Ok(self.bad_packs.get(&locations[0].pack).cloned().or_else(|| {
                Some(self.problems.add(
                    ProblemKind::PackMissing,
                    format!("packs/{}", locations[0].pack),
                    format!("pack {} is missing from the store", locations[0].pack),
                ))
            })),
        }
    }
}

impl Fold for Walk<'_> {
    type Out = Rc<Vec<Finding>>;

    /// A tree whose blob lies in no sound pack, or does not open, is one finding: itself.
    fn read(&mut self, tree_id: &Id) -> Result<std::result::Result<Tree, Self::Out>> {
        let problem = match self.blob_problem(tree_id)? {
            Some(k) => k,
            // Lists unread: a long file whose chunk list is lost or damaged is a finding
            // of that file, made in `combine`.
            None => match self.reader.tree_shallow(self.cache, tree_id) {
                Ok(tree) => return Ok(Ok(tree)),
                Err(e) if e.is_damage() => self.problems.add(
                    ProblemKind::TreeUnreadable,
                    format!("tree {tree_id}"),
                    format!("folder tree {} cannot be read: {e}", tree_id.short()),
                ),
                Err(e) => return Err(e),
            },
        };
        Ok(Err(Rc::new(vec![(Vec::new(), problem)])))
    }

    /// A file with a chunk or chunk list that cannot be read, and what was found below
    /// each folder.
    fn combine(
        &mut self,
        tree_id: &Id,
        tree: Tree,
        below: Vec<Option<Self::Out>>,
    ) -> Result<Self::Out> {
        let (reader, cache) = (self.reader, self.cache);
        let mut found: Vec<Finding> = Vec::new();
        for (node, below) in tree.nodes.iter().zip(below) {
            // The first of its lists and chunks that cannot be read, if any.
            let mut problem = None;
            let opened = crate::walk::content(reader, cache, tree_id, node, |id| {
                if problem.is_none() {
                    problem = self.blob_problem(&id)?;
                }
                Ok(problem.is_none())
            })?;
            if let Err(e) = opened {
                problem = Some(self.problems.add(
                    ProblemKind::TreeUnreadable,
                    format!("tree {tree_id}"),
                    e.to_string(),
                ));
            }
            if let Some(k) = problem {
                found.push((vec![node.name.clone()], k));
            }
            for (rel, k) in below.iter().flat_map(|b| b.iter()) {
                let mut path = vec![node.name.clone()];
                path.extend(rel.iter().cloned());
                found.push((path, k.clone()));
            }
        }
        Ok(Rc::new(found))
    }
}
