//! Planning a prune: the mark (with its proof that every used blob can be found) and the
//! sorting of packs. Nothing here changes the store.

use super::PruneOptions;
use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::{Error, PruneStop, Result};
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::pack::PackRecord;
use crate::reader::BlobReader;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

/// What happens to a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackAction {
    /// The pack is deleted.
    Delete,
    /// Its used blobs are copied into new packs, then it is deleted.
    Repack,
    /// The index no longer names it (the store does not hold it whole).
    Unindex,
}

/// Why a pack is deleted, repacked or dropped from the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackReason {
    /// No snapshot uses any of its blobs.
    Unused,
    /// No index file names it: left by an interrupted snapshot or prune.
    Unindexed,
    /// Its unused share is above the repack threshold.
    AboveThreshold,
    /// The index names it but the store does not hold it.
    Missing,
    /// The store holds it at another size than the index recorded (truncated or
    /// altered); it goes as unindexed in the next run.
    SizeMismatch,
}

/// One pack the plan deletes, repacks or drops from the index.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedPack {
    /// The pack's name in the store (its id in hex).
    pub pack: String,
    /// Its size in the store (for a missing pack, the size the index recorded).
    pub size: u64,
    /// Sealed bytes of its blobs that snapshots use.
    pub used_bytes: u64,
    /// Sealed bytes of its blobs that no snapshot uses (its header and trailer are
    /// neither; for a pack no index names, its whole size).
    pub unused_bytes: u64,
    pub action: PackAction,
    pub reason: PackReason,
}

/// What a prune will do, made by [`plan`] and carried out by [`super::execute`].
///
/// Invariants: every pack the index names is either kept, repacked, deleted or dropped
/// from the index (missing); every pack the store holds that no index file names is
/// deleted; no pack holding a used blob is deleted without its used blobs being copied
/// first (repack) or lying in a kept pack.
pub struct PrunePlan {
    /// Made without the exclusive lease: shows what a prune would do, cannot be executed.
    pub dry_run: bool,
    /// Snapshots whose data was marked.
    pub snapshots: usize,
    /// Packs in the store when prune started, and their bytes.
    pub packs_total: usize,
    pub bytes_before: u64,
    /// Packs kept as they are.
    pub packs_kept: usize,
    /// Every pack deleted, repacked or dropped from the index, and why.
    pub packs: Vec<PlannedPack>,
    /// Bytes the plan frees: deleted packs, and the unused share of repacked ones.
    pub bytes_to_free: u64,
    /// Sealed bytes of the used blobs that repacking copies into new packs.
    pub bytes_to_copy: u64,
    /// Index files the store holds; executing replaces them all.
    pub(super) index_files: Vec<String>,
    /// The packs the store held (name -> size) when planned.
    pub(super) stored: HashMap<String, u64>,
    pub(super) keep: Vec<PackRecord>,
    pub(super) repack: Vec<(PackRecord, Vec<usize>)>,
    pub(super) lease: Option<Lease>,
}

impl PrunePlan {
    /// The packs with the given action.
    pub fn with_action(&self, action: PackAction) -> impl Iterator<Item = &PlannedPack> {
        self.packs.iter().filter(move |p| p.action == action)
    }

    /// Packs deleted (unused or unindexed; repacked ones not counted).
    pub fn packs_to_delete(&self) -> usize {
        self.with_action(PackAction::Delete).count()
    }

    pub fn packs_to_repack(&self) -> usize {
        self.with_action(PackAction::Repack).count()
    }

    /// Packs the index names that the store does not hold whole.
    pub fn packs_missing(&self) -> usize {
        self.with_action(PackAction::Unindex).count()
    }

    /// True when executing would change no pack and no index file.
    pub fn changes_nothing(&self) -> bool {
        self.packs.is_empty()
    }
}

/// Plans a prune: reconciles the cache with the index files, marks what every snapshot
/// uses (proving each used blob lies in a pack the index names and the store holds
/// whole) and sorts the packs. Unless `opts.dry_run`, takes the store's exclusive lease
/// first and hands it to the plan, so nothing changes between planning and executing.
pub fn plan(reader: &BlobReader, cache: &mut Cache, opts: &PruneOptions) -> Result<PrunePlan> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    let lease = if opts.dry_run {
        None
    } else {
        Some(Lease::acquire_waiting(
            &repo.backend,
            keys,
            LeaseKind::Exclusive,
            "prune",
            opts.lock_wait,
        )?)
    };
    // 0. Reconcile.
    let index_files: Vec<String> = repo
        .backend
        .list(Kind::Index)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let sync = cache.sync_index(repo, keys)?;
    if !sync.damaged.is_empty() {
        return Err(Error::Prune(PruneStop::IndexUnreadable {
            names: sync.damaged.iter().map(|(n, _)| n.clone()).collect(),
            first: sync.damaged[0].1.clone(),
        }));
    }
    let stored: HashMap<String, u64> = repo
        .backend
        .list(Kind::Packs)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();

    // 1. Mark, proving every used blob can be found.
    let snapshots = repo.snapshots(keys)?;
    let used = mark_all(reader, cache, &snapshots, &stored)?;

    // 2. Sort packs.
    let mut plan = PrunePlan {
        dry_run: opts.dry_run,
        snapshots: snapshots.len(),
        packs_total: stored.len(),
        bytes_before: stored.values().sum(),
        packs_kept: 0,
        packs: Vec::new(),
        bytes_to_free: 0,
        bytes_to_copy: 0,
        index_files,
        stored: HashMap::new(),
        keep: Vec::new(),
        repack: Vec::new(),
        lease,
    };
    sort_packs(&mut plan, cache, &used, &stored, opts.repack_threshold)?;
    plan.stored = stored;
    Ok(plan)
}

/// Step 2: decides for every pack the index names or the store holds whether it stays,
/// goes, is repacked or is dropped from the index, and adds up what that frees and copies.
fn sort_packs(
    plan: &mut PrunePlan,
    cache: &Cache,
    used: &HashSet<Id>,
    stored: &HashMap<String, u64>,
    repack_threshold: f64,
) -> Result<()> {
    let usage = crate::walk::pack_usage(cache, used)?;
    let indexed: HashSet<String> = usage.iter().map(|u| u.pack.to_hex()).collect();
    for u in usage {
        let name = u.pack.to_hex();
        let planned = |action, reason| PlannedPack {
            pack: name.clone(),
            size: u.size,
            used_bytes: u.used_bytes,
            unused_bytes: u.unused_blob_bytes(),
            action,
            reason,
        };
        match stored.get(&name) {
            // Named by the index but gone from the store (or not whole): the proof above
            // showed no used blob depends on it; the new index no longer names it.
            None => {
                plan.packs
                    .push(planned(PackAction::Unindex, PackReason::Missing));
                continue;
            }
            Some(&size) if size != u.size => {
                plan.packs
                    .push(planned(PackAction::Unindex, PackReason::SizeMismatch));
                continue;
            }
            Some(_) => {}
        }
        if u.is_unused() {
            plan.packs
                .push(planned(PackAction::Delete, PackReason::Unused));
            plan.bytes_to_free += u.size;
            continue;
        }
        // Only unused blobs count against the threshold: a pack's header and trailer
        // are not waste (a small pack with every blob in use would otherwise be
        // repacked by every prune, into another small pack).
        let unused = u.unused_blob_bytes();
        let repack = unused > 0 && unused as f64 > repack_threshold * u.size as f64;
        if repack {
            plan.packs
                .push(planned(PackAction::Repack, PackReason::AboveThreshold));
            plan.bytes_to_free += unused;
        } else {
            plan.packs_kept += 1;
        }
        let record = PackRecord {
            id: u.pack,
            size: u.size,
            header_len: cache.pack_header_len(&u.pack)?.unwrap_or(0),
            entries: u.entries,
        };
        if repack {
            plan.repack.push((record, u.used));
        } else {
            plan.keep.push(record);
        }
    }
    // Packs in the store that no index names: left by an interrupted snapshot or prune.
    let mut orphans: Vec<(&String, &u64)> = stored
        .iter()
        .filter(|(n, _)| !indexed.contains(*n))
        .collect();
    orphans.sort();
    for (name, &size) in orphans {
        plan.packs.push(PlannedPack {
            pack: name.clone(),
            size,
            used_bytes: 0,
            unused_bytes: size,
            action: PackAction::Delete,
            reason: PackReason::Unindexed,
        });
        plan.bytes_to_free += size;
    }
    plan.bytes_to_free = plan.bytes_to_free.min(plan.bytes_before);
    // What repacking copies: used blobs not already in a kept pack, each once.
    let mut copied: HashSet<Id> = plan
        .keep
        .iter()
        .flat_map(|r| r.entries.iter().map(|e| e.id))
        .collect();
    for (record, used_idx) in &plan.repack {
        for &i in used_idx {
            let e = &record.entries[i];
            if copied.insert(e.id) {
                plan.bytes_to_copy += e.length as u64;
            }
        }
    }
    Ok(())
}

/// Marks every blob the snapshots use. Stops with [`PruneStop`] when a used blob lies in
/// no pack that the index names and the store holds with the recorded size, or a tree
/// cannot be read: nothing below it could be marked.
fn mark_all(
    reader: &BlobReader,
    cache: &Cache,
    snapshots: &[(Id, crate::repo::Snapshot)],
    stored: &HashMap<String, u64>,
) -> Result<HashSet<Id>> {
    // In a pack the store holds with the size the index recorded (a truncated pack
    // does not count).
    let present = |id: &Id| -> Result<bool> {
        for l in cache.locations(id)? {
            if let Some(size) = stored.get(&l.pack.to_hex()) {
                if cache.pack_size(&l.pack)? == Some(*size) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    };
    let mut trees: HashSet<Id> = HashSet::new();
    let mut chunks: HashSet<Id> = HashSet::new();
    let mut unlocated: Vec<(Id, Id)> = Vec::new();
    let mut unlocated_count = 0usize;
    let progress = crate::progress::get();
    progress.begin_items("prune: mark", "snapshots", snapshots.len() as u64, 0);
    for (snap_id, snap) in snapshots {
        crate::progress::check_cancelled("prune")?;
        progress.set_current(&snap_id.short());
        progress.add_files(1);
        let flow = crate::walk::trees(reader, cache, &snap.tree, &mut trees, |tree_id, tree| {
            if !present(tree_id)? {
                return Ok(ControlFlow::Break(PruneStop::TreeUnlocated {
                    tree: *tree_id,
                    snapshot: *snap_id,
                }));
            }
            let tree = match tree {
                Ok(t) => t,
                Err(e) => {
                    return Ok(ControlFlow::Break(PruneStop::TreeUnreadable {
                        snapshot: *snap_id,
                        error: e.to_string(),
                    }))
                }
            };
            // A chunk list is checked like a chunk before it is read: one that lies in
            // no pack is counted with the unlocated blobs (the index may only be
            // incomplete), and a list already marked is not read again.
            for node in &tree.nodes {
                let opened = crate::walk::content(reader, cache, tree_id, node, |id| {
                    if !chunks.insert(id) {
                        return Ok(false);
                    }
                    if present(&id)? {
                        return Ok(true);
                    }
                    unlocated_count += 1;
                    if unlocated.len() < 5 {
                        unlocated.push((*snap_id, id));
                    }
                    Ok(false)
                })?;
                if let Err(e) = opened {
                    return Ok(ControlFlow::Break(PruneStop::TreeUnreadable {
                        snapshot: *snap_id,
                        error: e.to_string(),
                    }));
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let ControlFlow::Break(stop) = flow {
            return Err(Error::Prune(stop));
        }
    }
    if unlocated_count > 0 {
        return Err(Error::Prune(PruneStop::BlobsUnlocated {
            count: unlocated_count,
            examples: unlocated,
        }));
    }
    trees.extend(chunks);
    Ok(trees)
}
