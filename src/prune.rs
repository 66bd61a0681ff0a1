//! Removing data no snapshot needs.
//!
//! Under an exclusive lease (so no snapshot runs meanwhile, see [`crate::lock`]):
//! 0. reconcile the cache with the store's index files; if any cannot be read, stop;
//! 1. mark: walk every snapshot's trees and collect the blobs they use, and prove that
//!    every one of them lies in a pack the loaded index names and the store holds, and
//!    that every tree reads; if not, stop before changing anything (the index is
//!    incomplete: deleting "unreferenced" packs would delete what snapshots need);
//! 2. sort packs: fully used packs stay; packs with no used blob go; packs whose unused
//!    share exceeds the repack threshold have their used blobs copied into new packs;
//! 3. write new index files naming every pack that stays and every new pack;
//! 4. delete the index files that existed before;
//! 5. delete the packs that went or were repacked, then stale leases.
//!
//! Any interruption leaves a healthy store: until step 4 the old index files still name
//! every old pack; after it the new ones name everything kept, and a pack is deleted only
//! once no index file names it. Packs left behind by an interrupted run are unreferenced
//! and go in the next run. Partial writes in the store's `tmp/` older than
//! [`crate::backend::LEFTOVER_GRACE`] go at the end.

use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::pack::{self, PackRecord, PackWriter};
use crate::reader::BlobReader;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The repack threshold when none is given: packs more than this many percent unused are
/// repacked.
pub const DEFAULT_REPACK_THRESHOLD_PERCENT: u8 = 20;

pub struct PruneOptions {
    pub dry_run: bool,
    /// Packs whose unused bytes exceed this share of the pack are repacked.
    pub repack_threshold: f64,
    pub lock_wait: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_threshold: DEFAULT_REPACK_THRESHOLD_PERCENT as f64 / 100.0,
            lock_wait: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub snapshots: usize,
    /// Packs in the store when prune started.
    pub packs_total: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    /// Bytes of all packs in the store when prune started.
    pub bytes_before: u64,
    /// `bytes_before` less what is left (or, in a dry run, would be left).
    pub bytes_freed: u64,
    /// Packs the index names that the store no longer holds, or holds at another size
    /// (dropped from the index; a truncated one goes as unreferenced in the next run).
    pub packs_missing: usize,
    /// Partial writes removed from the store's scratch area, and their bytes.
    pub leftovers_removed: (usize, u64),
    pub index_files_replaced: usize,
    pub stale_leases_removed: usize,
    /// Objects the store refused to delete (for example under S3 Object Lock); they go
    /// in a later run once their retention has passed.
    pub kept_locked: Vec<String>,
}

pub fn run(reader: &BlobReader, cache: &mut Cache, opts: &PruneOptions) -> Result<PruneReport> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    let _lease = if opts.dry_run {
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
    let index_files: Vec<String> = repo
        .backend
        .list(Kind::Index)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let sync = cache.sync_index(repo, keys)?;
    if !sync.damaged.is_empty() {
        let names: Vec<&str> = sync.damaged.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::Refused(format!(
            "prune stopped before changing anything: {} index files cannot be read ({}: {}); \
             run `vault repair index` to rebuild the index from the packs, then prune again",
            names.len(),
            names.join(", "),
            sync.damaged[0].1
        )));
    }
    let stored: HashMap<String, u64> = repo
        .backend
        .list(Kind::Packs)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();

    // 1. Mark, proving every used blob can be found.
    let mut used: HashSet<Id> = HashSet::new();
    let snapshots = repo.snapshots(keys)?;
    let mut unlocated: Vec<(Id, Id)> = Vec::new();
    let mut unlocated_count = 0usize;
    let progress = crate::progress::get();
    progress.begin_items("prune: mark", "snapshots", snapshots.len() as u64, 0);
    for (snap_id, snap) in &snapshots {
        crate::progress::check_cancelled("prune")?;
        progress.set_current(&snap_id.short());
        progress.add_files(1);
        mark(
            reader,
            cache,
            snap_id,
            &snap.tree,
            &stored,
            &mut used,
            &mut |blob| {
                unlocated_count += 1;
                if unlocated.len() < 5 {
                    unlocated.push((*snap_id, blob));
                }
            },
        )?;
    }
    if unlocated_count > 0 {
        let examples: Vec<String> = unlocated
            .iter()
            .map(|(s, b)| format!("blob {} of snapshot {}", b.short(), s.short()))
            .collect();
        return Err(Error::Refused(format!(
            "prune stopped before changing anything: {unlocated_count} blobs that snapshots use lie in no pack \
             the index names and the store holds (e.g. {}); the index is incomplete or packs are gone. \
             Run `vault repair index` (rebuilds the index from the packs), then `vault check`; \
             if data is really lost, `vault repair snapshots` writes snapshots without the lost files",
            examples.join(", ")
        )));
    }

    // 2. Sort packs.
    let mut report = PruneReport {
        snapshots: snapshots.len(),
        packs_total: stored.len(),
        bytes_before: stored.values().sum(),
        ..Default::default()
    };
    let mut keep: Vec<PackRecord> = Vec::new();
    let mut repack: Vec<(PackRecord, Vec<usize>)> = Vec::new();
    let mut delete: Vec<Id> = Vec::new();
    let mut dropped_missing = false;
    let indexed: HashSet<String> = cache
        .packs()?
        .into_iter()
        .map(|(id, _)| id.to_hex())
        .collect();
    for (pack_id, size) in cache.packs()? {
        if stored.get(&pack_id.to_hex()) != Some(&size) {
            // Named by the index but gone from the store (or not whole): the proof above
            // showed no used blob depends on it; the new index no longer names it.
            report.packs_missing += 1;
            dropped_missing = true;
            continue;
        }
        let entries = cache.pack_entries(&pack_id)?;
        let used_idx: Vec<usize> = (0..entries.len())
            .filter(|&i| used.contains(&entries[i].id))
            .collect();
        let used_bytes: u64 = used_idx.iter().map(|&i| entries[i].length as u64).sum();
        let record = PackRecord {
            id: pack_id,
            size,
            header_len: cache.pack_header_len(&pack_id)?.unwrap_or(0),
            entries,
        };
        if used_idx.is_empty() {
            delete.push(pack_id);
        } else if (size - used_bytes.min(size)) as f64 > opts.repack_threshold * size as f64 {
            repack.push((record, used_idx));
        } else {
            keep.push(record);
        }
    }
    // Packs in the store that no index names: left by an interrupted snapshot or prune.
    let orphans: Vec<String> = stored
        .keys()
        .filter(|n| !indexed.contains(*n))
        .cloned()
        .collect();
    report.packs_deleted = delete.len() + orphans.len();
    report.packs_repacked = repack.len();
    report.bytes_freed = delete
        .iter()
        .map(|id| stored.get(&id.to_hex()).copied().unwrap_or(0))
        .sum::<u64>()
        + orphans.iter().map(|n| stored[n]).sum::<u64>();
    if opts.dry_run {
        // Repacking frees a pack's unused share (the copies take the used share).
        report.bytes_freed += repack
            .iter()
            .map(|(r, idx)| {
                r.size
                    .saturating_sub(idx.iter().map(|&i| r.entries[i].length as u64).sum::<u64>())
            })
            .sum::<u64>();
        report.bytes_freed = report.bytes_freed.min(report.bytes_before);
        return Ok(report);
    }

    if delete.is_empty() && repack.is_empty() && orphans.is_empty() && !dropped_missing {
        // Nothing to remove: rewriting the index would only add objects (and, under
        // object lock, index files that cannot be deleted for a whole lock period).
        report.stale_leases_removed = crate::lock::remove_stale(&repo.backend, keys).unwrap_or(0);
        report.leftovers_removed = crate::backend::remove_leftovers(
            repo.backend.as_ref(),
            crate::backend::LEFTOVER_GRACE,
        )?;
        return Ok(report);
    }

    // Repack: copy the used blobs of sparse packs into new packs. Blobs already written
    // into a kept pack are not copied twice.
    // From the verified config only: a writer must not be able to redirect repacked data.
    let recipients = repo.recipients()?;
    let pack_size = repo.config.pack_size as usize;
    let max_blob = repo.config.chunker.max_size as usize + 1024;
    let mut new_packs: Vec<PackRecord> = Vec::new();
    let mut writer: Option<PackWriter> = None;
    let mut copied: HashSet<Id> = keep
        .iter()
        .flat_map(|r| r.entries.iter().map(|e| e.id))
        .collect();
    progress.begin_items(
        "prune: repack",
        "packs",
        repack.len() as u64,
        repack.iter().map(|(r, _)| r.size).sum(),
    );
    for (record, used_idx) in &repack {
        // Stopping here leaves only new packs nothing names yet; from step 3 on, prune
        // goes to the end.
        crate::progress::check_cancelled("prune")?;
        progress.set_current(&record.id.to_hex());
        progress.add_files(1);
        progress.add_bytes(record.size);
        for &i in used_idx {
            let entry = &record.entries[i];
            if !copied.insert(entry.id) {
                continue;
            }
            let loc = crate::cache::Location {
                pack: record.id,
                header_len: record.header_len,
                entry: entry.clone(),
            };
            let plain = reader.read(&loc)?;
            let compressed = pack::compress(&plain, repo.config.compression_level);
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(PackWriter::new(&recipients, pack_size, max_blob)?),
            };
            w.add(
                entry.id,
                entry.kind,
                plain.len() as u32,
                compressed.is_some(),
                compressed.as_deref().unwrap_or(&plain),
            );
            if w.len() >= pack_size {
                new_packs.push(repo.save_pack(keys, writer.take().unwrap())?);
            }
        }
    }
    if let Some(w) = writer.take().filter(|w| !w.is_empty()) {
        new_packs.push(repo.save_pack(keys, w)?);
    }
    report.packs_written = new_packs.len();

    // 3. New index files for everything that stays, in slices so no file grows huge.
    let mut all: Vec<PackRecord> = keep;
    all.extend(new_packs);
    for slice in all.chunks(256) {
        repo.save_index(keys, slice)?;
    }
    // 4. The old index files go; the new ones name everything kept. One the store keeps
    // under retention still names its packs, so those packs must stay as long as it does:
    // deleting them would leave an index file pointing at nothing.
    let mut still_named: HashSet<Id> = HashSet::new();
    for name in &index_files {
        let kept_before = report.kept_locked.len();
        delete_tolerant(repo, Kind::Index, name, &mut report)?;
        if report.kept_locked.len() > kept_before {
            still_named.extend(repo.load_index(keys, name)?.into_iter().map(|r| r.id));
        }
    }
    report.index_files_replaced = index_files.len();
    // 5. Packs nothing names any more.
    for id in delete.iter().chain(repack.iter().map(|(r, _)| &r.id)) {
        if still_named.contains(id) {
            report.kept_locked.push(format!(
                "packs/{} (named by a locked index file)",
                id.to_hex()
            ));
            continue;
        }
        delete_tolerant(repo, Kind::Packs, &id.to_hex(), &mut report)?;
    }
    for name in &orphans {
        delete_tolerant(repo, Kind::Packs, name, &mut report)?;
    }
    report.stale_leases_removed = crate::lock::remove_stale(&repo.backend, keys).unwrap_or(0);
    report.leftovers_removed =
        crate::backend::remove_leftovers(repo.backend.as_ref(), crate::backend::LEFTOVER_GRACE)?;
    let after: u64 = repo.backend.list(Kind::Packs)?.iter().map(|o| o.size).sum();
    // Freed is measured, never estimated: what the store held before less what it holds
    // now (new packs written by the repack included).
    report.bytes_freed = report.bytes_before.saturating_sub(after);
    cache.sync_index(repo, keys)?;
    Ok(report)
}

/// Deletes an object; one the store refuses to delete because it is retention-locked is
/// noted and left for a later run.
fn delete_tolerant(
    repo: &crate::repo::Repo,
    kind: Kind,
    name: &str,
    report: &mut PruneReport,
) -> Result<()> {
    match repo.backend.delete(kind, name) {
        Ok(()) => Ok(()),
        Err(e) if e.is_retention_locked() => {
            report.kept_locked.push(format!("{}/{name}", kind.label()));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Marks every blob reachable from `root` as used, calling `unlocated` for each data
/// blob that lies in no pack both indexed and present (whole) in the store. A tree that cannot be
/// read stops prune (nothing below it could be marked).
#[allow(clippy::too_many_arguments)]
fn mark(
    reader: &BlobReader,
    cache: &Cache,
    snap: &Id,
    root: &Id,
    stored: &HashMap<String, u64>,
    used: &mut HashSet<Id>,
    unlocated: &mut dyn FnMut(Id),
) -> Result<()> {
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
    let mut stack = vec![*root];
    while let Some(tree_id) = stack.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        if !present(&tree_id)? {
            return Err(Error::Refused(format!(
                "prune stopped before changing anything: folder tree {} of snapshot {} lies in no pack the index names \
                 and the store holds; run `vault repair index`, then `vault check`",
                tree_id.short(),
                snap.short()
            )));
        }
        let tree = reader.tree(cache, &tree_id).map_err(|e| {
            Error::Refused(format!(
                "prune stopped before changing anything: a folder of snapshot {} cannot be read ({e}); run `vault check`",
                snap.short()
            ))
        })?;
        for node in &tree.nodes {
            for c in node.chunks() {
                if used.insert(c.id) && !present(&c.id)? {
                    unlocated(c.id);
                }
            }
            stack.extend(node.subtree);
        }
    }
    Ok(())
}
