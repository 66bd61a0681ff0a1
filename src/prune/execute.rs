//! Carrying out a [`PrunePlan`]: repack, new index files, old index files and packs
//! deleted, then stale leases and leftovers. The order is what keeps every interruption
//! safe (see the module docs of [`crate::prune`]).

use super::plan::{PackAction, PrunePlan};
use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::{Error, PruneStop, Result};
use crate::id::Id;
use crate::pack::{self, PackRecord, PackWriter};
use crate::reader::BlobReader;
use serde::Serialize;
use std::collections::HashSet;

/// Why an object stayed in the store although the plan removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptWhy {
    /// The store refused to delete it: it is under retention (S3 Object Lock).
    Retention,
    /// A pack an index file still names, and that index file is under retention.
    NamedByLockedIndex,
}

/// An object the plan removes that the store kept; a later run removes it once its
/// retention has passed.
#[derive(Clone, Debug, Serialize)]
pub struct KeptObject {
    #[serde(serialize_with = "kind_label")]
    pub kind: Kind,
    pub name: String,
    pub why: KeptWhy,
}

fn kind_label<S: serde::Serializer>(k: &Kind, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(k.label())
}

/// What a prune did.
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub snapshots: usize,
    /// Packs in the store when prune started.
    pub packs_total: usize,
    /// Packs deleted (unused or unindexed), repacked packs not counted.
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    /// Bytes of all packs in the store when prune started.
    pub bytes_before: u64,
    /// `bytes_before` less what the store holds now (new packs included): measured.
    pub bytes_freed: u64,
    /// Packs the index named that the store no longer holds, or holds at another size
    /// (dropped from the index; a truncated one goes as unindexed in the next run).
    pub packs_missing: usize,
    /// Partial writes removed from the store's scratch area, and their bytes.
    pub leftovers_removed: (usize, u64),
    pub index_files_replaced: usize,
    pub stale_leases_removed: usize,
    /// Objects the store refused to delete (for example under S3 Object Lock); they go
    /// in a later run once their retention has passed.
    pub kept_locked: Vec<KeptObject>,
}

/// Carries out `plan`, made by [`super::plan`] without `dry_run` (it holds the store's
/// exclusive lease until this returns). Before changing anything it checks that every
/// pack the plan keeps or copies from is still in the store at its planned size.
pub fn execute(reader: &BlobReader, cache: &mut Cache, plan: PrunePlan) -> Result<PruneReport> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    if plan.lease.is_none() {
        return Err(Error::Prune(PruneStop::DryRunPlan));
    }
    let mut report = PruneReport {
        snapshots: plan.snapshots,
        packs_total: plan.packs_total,
        bytes_before: plan.bytes_before,
        packs_deleted: plan.packs_to_delete(),
        packs_repacked: plan.packs_to_repack(),
        packs_missing: plan.packs_missing(),
        ..Default::default()
    };
    if plan.changes_nothing() {
        // Nothing to remove: rewriting the index would only add objects (and, under
        // object lock, index files that cannot be deleted for a whole lock period).
        report.stale_leases_removed = crate::lock::remove_stale(&repo.backend, keys).unwrap_or(0);
        report.leftovers_removed = crate::backend::remove_leftovers(
            repo.backend.as_ref(),
            crate::backend::LEFTOVER_GRACE,
        )?;
        return Ok(report);
    }
    recheck(reader, &plan)?;

    // Repack, then 3. new index files for everything that stays.
    let new_packs = repack(reader, &plan)?;
    report.packs_written = new_packs.len();
    let mut all: Vec<PackRecord> = plan.keep.clone();
    all.extend(new_packs);
    // In slices so no file grows huge.
    for slice in all.chunks(256) {
        repo.save_index(keys, slice)?;
    }
    // 4. The old index files go; the new ones name everything kept. One the store keeps
    // under retention still names its packs, so those packs must stay as long as it does:
    // deleting them would leave an index file pointing at nothing.
    let mut still_named: HashSet<Id> = HashSet::new();
    for name in &plan.index_files {
        if !delete_tolerant(repo, Kind::Index, name, &mut report)? {
            still_named.extend(repo.load_index(keys, name)?.into_iter().map(|r| r.id));
        }
    }
    report.index_files_replaced = plan.index_files.len();
    // 5. Packs nothing names any more.
    for p in plan
        .packs
        .iter()
        .filter(|p| matches!(p.action, PackAction::Delete | PackAction::Repack))
    {
        if Id::from_hex(&p.pack).is_some_and(|id| still_named.contains(&id)) {
            report.kept_locked.push(KeptObject {
                kind: Kind::Packs,
                name: p.pack.clone(),
                why: KeptWhy::NamedByLockedIndex,
            });
            continue;
        }
        delete_tolerant(repo, Kind::Packs, &p.pack, &mut report)?;
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

/// Stops before any change when a pack the plan keeps, or copies blobs from, is no longer
/// in the store at its planned size.
fn recheck(reader: &BlobReader, plan: &PrunePlan) -> Result<()> {
    let now: std::collections::HashMap<String, u64> = reader
        .repo
        .backend
        .list(Kind::Packs)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    let changed: Vec<String> = plan
        .keep
        .iter()
        .chain(plan.repack.iter().map(|(r, _)| r))
        .map(|r| r.id.to_hex())
        .filter(|n| now.get(n) != plan.stored.get(n))
        .collect();
    if changed.is_empty() {
        Ok(())
    } else {
        Err(Error::Prune(PruneStop::StoreChanged { packs: changed }))
    }
}

/// Copies the used blobs of the packs the plan repacks into new packs; returns them
/// saved. Blobs already in a kept pack are not copied, nor any blob twice.
fn repack(reader: &BlobReader, plan: &PrunePlan) -> Result<Vec<PackRecord>> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    if plan.repack.is_empty() {
        return Ok(Vec::new());
    }
    // From the verified config only: a writer must not be able to redirect repacked data.
    let recipients = repo.recipients()?;
    let max_blob = repo.config.chunker.max_size as usize + 1024;
    let mut new_packs: Vec<PackRecord> = Vec::new();
    let mut writer: Option<PackWriter> = None;
    let mut copied: HashSet<Id> = plan
        .keep
        .iter()
        .flat_map(|r| r.entries.iter().map(|e| e.id))
        .collect();
    let progress = crate::progress::get();
    progress.begin_items(
        "prune: repack",
        "packs",
        plan.repack.len() as u64,
        plan.repack.iter().map(|(r, _)| r.size).sum(),
    );
    for (record, used_idx) in &plan.repack {
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
                None => writer.insert(repo.new_pack(&recipients, max_blob)?),
            };
            w.add(
                entry.id,
                entry.kind,
                plain.len() as u32,
                compressed.is_some(),
                compressed.as_deref().unwrap_or(&plain),
            )?;
            if w.is_full() {
                new_packs.push(repo.save_pack(keys, writer.take().unwrap())?);
            }
        }
    }
    if let Some(w) = writer.take().filter(|w| !w.is_empty()) {
        new_packs.push(repo.save_pack(keys, w)?);
    }
    Ok(new_packs)
}

/// Deletes an object; one the store refuses to delete because it is retention-locked is
/// noted and left for a later run. True when it was deleted.
fn delete_tolerant(
    repo: &crate::repo::Repo,
    kind: Kind,
    name: &str,
    report: &mut PruneReport,
) -> Result<bool> {
    match repo.backend.delete(kind, name) {
        Ok(()) => Ok(true),
        Err(e) if e.is_retention_locked() => {
            report.kept_locked.push(KeptObject {
                kind,
                name: name.to_string(),
                why: KeptWhy::Retention,
            });
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
