//! Step 4 of a check: every snapshot record opens and is verified, every tree loads,
//! and every blob lies in a sound pack. Each tree is walked once; what was found below
//! it is remembered and re-attributed wherever the same tree appears again.
//!
//! This walk is not [`crate::walk::trees`]: it must attribute each problem to the file
//! paths it hits in every snapshot, which needs the findings below each tree remembered
//! per tree, not only whether the tree was seen.

use super::{Checker, Key, ProblemKind, Problems};
use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::reader::BlobReader;
use crate::tree::display_name;
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
            memo: HashMap::new(),
            problems: &mut self.problems,
        };
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
                Err(e) if e.is_corruption() || matches!(e, Error::Missing { .. }) => {
                    walk.problems.add(
                        ProblemKind::SnapshotDamaged,
                        format!("snapshots/{}", info.name),
                        format!("snapshot {}: {e}", sid.short()),
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let findings = walk.walk(&snap.tree)?;
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
    /// What was found below each tree already walked.
    memo: HashMap<Id, Rc<Vec<Finding>>>,
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

    fn walk(&mut self, tree_id: &Id) -> Result<Rc<Vec<Finding>>> {
        if let Some(found) = self.memo.get(tree_id) {
            return Ok(found.clone());
        }
        let mut found: Vec<Finding> = Vec::new();
        let tree = match self.blob_problem(tree_id)? {
            Some(k) => Err(k),
            None => match self.reader.tree(self.cache, tree_id) {
                Ok(t) => Ok(t),
                Err(e) if e.is_corruption() || matches!(e, Error::Missing { .. }) => {
                    Err(self.problems.add(
                        ProblemKind::TreeUnreadable,
                        format!("tree {tree_id}"),
                        format!("folder tree {} cannot be read: {e}", tree_id.short()),
                    ))
                }
                Err(e) => return Err(e),
            },
        };
        match tree {
            Err(k) => found.push((Vec::new(), k)),
            Ok(tree) => {
                for node in &tree.nodes {
                    for c in node.chunks() {
                        if let Some(k) = self.blob_problem(&c.id)? {
                            found.push((vec![node.name.clone()], k));
                            break;
                        }
                    }
                    if let Some(sub) = &node.subtree {
                        for (rel, k) in self.walk(sub)?.iter() {
                            let mut path = vec![node.name.clone()];
                            path.extend(rel.iter().cloned());
                            found.push((path, k.clone()));
                        }
                    }
                }
            }
        }
        let found = Rc::new(found);
        self.memo.insert(*tree_id, found.clone());
        Ok(found)
    }
}
