//! S3 Object Lock: what the retention policy keeps stays undeletable, even for someone who
//! holds a snapshotting host's credentials or the admin's.
//!
//! A store created with `vault init --object-lock MODE:DAYS` (see
//! [`ObjectLock`]) gives every object it writes a retention of
//! DAYS days from the moment of writing (leases excepted). Until then S3 refuses to delete
//! that object version, whoever asks ([`LockMode::Compliance`](crate::backend::LockMode)),
//! or whoever lacks `s3:BypassGovernanceRetention` (governance). A snapshot taken today
//! reuses packs written months ago, though, and their retention has long passed; so the
//! retention of what the current snapshots need has to be moved forward regularly. That is
//! [`extend_needed`] (`vault lock extend`):
//!
//! 1. mark: walk every snapshot's trees, as [`crate::prune`] does, and collect the blobs
//!    they use. Snapshots the retention policy drops are left out ([`extend`] with
//!    [`ExtendOptions::skip_snapshots`]; the CLI applies the `[retention]` policy or the
//!    `--keep-*` flags), so that `forget` can remove them once their retention passes;
//! 2. packs: choose packs until every used blob lies in a chosen one, taking the packs whose
//!    bytes are most used first. A blob stored twice (a pack that prune repacked and could
//!    not delete yet, two snapshots that wrote the same chunk at once) keeps one copy locked,
//!    so the superseded pack can expire and be deleted;
//! 3. index files: choose index files until every chosen pack is named by a chosen one,
//!    preferring files that name only chosen packs. Index files that prune replaced (and
//!    could not delete while locked) name dropped packs, so they are not chosen and expire;
//! 4. extend the retention of: `config`, every `keys/*` and `secrets/*` object, the kept
//!    snapshot records, the chosen index files and the chosen packs, to `now + DAYS` days.
//!    An object that already lasts longer is left alone: retention only ever grows.
//!
//! Objects not extended keep the retention they were written with and become deletable when
//! it passes; `forget` and `prune` then remove them (they skip objects still locked and
//! report them, a later run removes them).
//!
//! # Schedule
//!
//! Run it from the admin's schedule (it needs the reader identity, as `forget` and `prune`
//! do), after `forget`/`prune`, and more often than the lock period: with
//! `--object-lock governance:30`, say daily or weekly. Each run restarts the protection of
//! everything kept at a full period, so between runs nothing kept is ever deletable; if it
//! stops running, the last extension still protects everything for one more period.
//!
//! Snapshotting hosts need no part in it and no permission for it: they only write, and
//! what they write is locked from the start.

use crate::backend::{Kind, ObjectLock};
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::reader::BlobReader;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Options of [`extend`].
#[derive(Clone, Debug)]
pub struct ExtendOptions {
    /// Count what would be extended, change nothing.
    pub dry_run: bool,
    /// Snapshots the retention policy drops: their records, and the data only they use,
    /// are left to expire.
    pub skip_snapshots: HashSet<Id>,
    /// Requests in flight at once.
    pub parallel: usize,
}

impl Default for ExtendOptions {
    fn default() -> Self {
        ExtendOptions {
            dry_run: false,
            skip_snapshots: HashSet::new(),
            parallel: 8,
        }
    }
}

/// What [`extend`] did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// The new retain-until date.
    pub until: Option<SystemTime>,
    pub lock: Option<ObjectLock>,
    pub dry_run: bool,
    pub config: usize,
    pub keys: usize,
    pub secrets: usize,
    /// Snapshot records extended.
    pub snapshots: usize,
    /// Snapshot records left to expire (the policy drops them).
    pub snapshots_skipped: usize,
    pub index_files: usize,
    pub index_files_total: usize,
    pub packs: usize,
    pub packs_total: usize,
    /// Objects extended (or to extend) in all.
    pub objects: usize,
    /// Objects chosen that were gone when their turn came (deleted meanwhile).
    pub vanished: Vec<String>,
    /// Blobs the snapshots use that no pack holds: the store is damaged (`vault check`).
    pub blobs_missing: usize,
}

/// Extends the retention of everything the store's snapshots need to `now` plus the
/// store's lock period. See the module docs.
pub fn extend_needed(reader: &BlobReader, cache: &mut Cache, now: SystemTime) -> Result<Report> {
    extend(reader, cache, now, &ExtendOptions::default())
}

/// As [`extend_needed`], leaving out the snapshots in `opts.skip_snapshots`.
pub fn extend(
    reader: &BlobReader,
    cache: &mut Cache,
    now: SystemTime,
    opts: &ExtendOptions,
) -> Result<Report> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    let lock = repo.config.object_lock.clone().ok_or_else(|| {
        Error::ObjectLock(format!(
            "store {} has no object lock (it was created without one): there is no retention to extend",
            repo.location()
        ))
    })?;
    let until = now + Duration::from_secs(u64::from(lock.days) * 86_400);
    let mut report = Report {
        until: Some(until),
        lock: Some(lock),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    cache.sync_index(repo, keys)?;

    // 1. Mark.
    let snapshots = repo.snapshots(keys)?;
    let mut used: HashSet<Id> = HashSet::new();
    let mut records = Vec::new();
    for (id, snap) in &snapshots {
        if opts.skip_snapshots.contains(id) {
            report.snapshots_skipped += 1;
            continue;
        }
        mark(reader, cache, &snap.tree, &mut used)?;
        records.push(id.to_hex());
    }
    report.snapshots = records.len();

    // 2. Packs, most used first, until every used blob is covered.
    let usage = crate::walk::pack_usage(cache, &used)?;
    report.packs_total = usage.len();
    let mut candidates = Vec::new();
    for u in usage.iter().filter(|u| !u.is_unused()) {
        let needed: Vec<Id> = u.used.iter().map(|&i| u.entries[i].id).collect();
        candidates.push((u.pack, u.used_share(), needed));
    }
    candidates.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.2.len().cmp(&a.2.len()))
            .then(a.0.cmp(&b.0))
    });
    let mut covered: HashSet<Id> = HashSet::new();
    let mut packs: Vec<Id> = Vec::new();
    for (pack, _, needed) in &candidates {
        if needed.iter().any(|id| !covered.contains(id)) {
            covered.extend(needed.iter().copied());
            packs.push(*pack);
        }
    }
    report.blobs_missing = used.len() - covered.len().min(used.len());
    report.packs = packs.len();

    // 3. Index files naming the chosen packs, cleanest first.
    let chosen: HashSet<Id> = packs.iter().copied().collect();
    let mut files: Vec<(String, usize, usize, Vec<Id>)> = Vec::new();
    for info in repo.backend.list(Kind::Index)? {
        report.index_files_total += 1;
        let records = match repo.load_index(keys, &info.name) {
            Ok(r) => r,
            Err(Error::Missing { .. }) => continue, // Replaced by a prune meanwhile.
            Err(e) => return Err(e),
        };
        let named: Vec<Id> = records
            .iter()
            .map(|r| r.id)
            .filter(|id| chosen.contains(id))
            .collect();
        if !named.is_empty() {
            files.push((info.name, records.len() - named.len(), named.len(), named));
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    let mut named: HashSet<Id> = HashSet::new();
    let mut index_files = Vec::new();
    for (name, _, _, ids) in files {
        if ids.iter().any(|id| !named.contains(id)) {
            named.extend(ids);
            index_files.push(name);
        }
    }
    report.index_files = index_files.len();

    // 4. Extend.
    let mut objects: Vec<(Kind, String)> = vec![(Kind::Config, "config".to_string())];
    report.config = 1;
    for kind in [Kind::Keys, Kind::Secrets] {
        let names = repo.backend.list(kind)?;
        match kind {
            Kind::Keys => report.keys = names.len(),
            _ => report.secrets = names.len(),
        }
        objects.extend(names.into_iter().map(|o| (kind, o.name)));
    }
    objects.extend(records.into_iter().map(|n| (Kind::Snapshots, n)));
    objects.extend(index_files.into_iter().map(|n| (Kind::Index, n)));
    objects.extend(packs.iter().map(|p| (Kind::Packs, p.to_hex())));
    report.objects = objects.len();
    if opts.dry_run {
        return Ok(report);
    }
    report.vanished = extend_all(reader, &objects, until, opts.parallel.max(1))?;
    Ok(report)
}

/// Extends every object, `parallel` at a time; returns the ones that no longer exist.
fn extend_all(
    reader: &BlobReader,
    objects: &[(Kind, String)],
    until: SystemTime,
    parallel: usize,
) -> Result<Vec<String>> {
    let backend = &reader.repo.backend;
    let vanished = Mutex::new(Vec::new());
    crate::parallel::try_for_each(objects, parallel, |(kind, name)| {
        match backend.extend_retention(*kind, name, until) {
            Ok(()) => Ok(()),
            Err(Error::Missing { .. }) => {
                vanished
                    .lock()
                    .unwrap()
                    .push(format!("{}/{name}", kind.label()));
                Ok(())
            }
            Err(e) => Err(e),
        }
    })?;
    Ok(vanished.into_inner().unwrap())
}

/// Collects every blob below `root`: trees and the chunks of their files.
fn mark(reader: &BlobReader, cache: &Cache, root: &Id, used: &mut HashSet<Id>) -> Result<()> {
    crate::walk::reachable_blobs(reader, cache, root, used).map_err(|e| {
        Error::ObjectLock(format!(
            "lock extend stopped before extending anything: a snapshot's folder cannot be read ({e})"
        ))
        .with_remedy(crate::error::Remedy::Check)
    })
}
