//! Copying a store to another location: an offsite replica, shipped incrementally.
//!
//! The destination (DST) is a *replica* of the source (SRC): the same store, with the same
//! `store_id` and the same keys, so objects move verbatim and nothing is re-encrypted. An
//! empty DST becomes a replica by receiving SRC's `keys/*` objects and then, last, its
//! `config` (whose presence is what makes a store a store). A DST holding a different store
//! is refused. Nothing at DST is ever deleted, and an object DST already has is never
//! replaced, except a pack whose size differs from SRC's: packs are named by their hash, so
//! SRC's verified bytes are the only right content for that name.
//!
//! Healing: a pack that DST's index names but DST lacks is copied again (and reported as
//! healed). With [`CopyOptions::verify`] DST's objects are read back as well: a pack whose
//! content does not hash to its name, and an index file or snapshot record that differs
//! from SRC's, is replaced by SRC's (verified) bytes, and the report lists each one.
//!
//! Two modes:
//! - **Whole store** ([`copy_all`]): every pack, then every index file, then every snapshot
//!   record (and sealed platform secret) DST lacks. Only the metadata key is needed, so a
//!   snapshotting host can ship its store offsite with its writer key alone. SRC is listed
//!   in the opposite order (snapshots, index files, packs), so everything a listed snapshot
//!   needs is in the later listings even while snapshots are being taken.
//! - **Chosen snapshots** ([`copy_snapshots`]): the trees of the named snapshots are walked
//!   (this needs the reader identity) to find the packs holding their blobs; those packs are
//!   copied, then *new* index files are written at DST naming exactly the packs copied (and
//!   any DST already held without indexing them), then the snapshot records.
//!
//! Every object is verified on the way: a pack's BLAKE3 is recomputed and must equal its
//! name, and its trailer must open with the metadata key; index files and snapshot records
//! must open with the metadata key. A damaged SRC object is reported by name and not copied;
//! a snapshot is copied only when everything it needs is at DST (in whole-store mode, where
//! trees cannot be read, that means: only when nothing failed). The order of writes (packs,
//! index files, snapshots) keeps the rule that a snapshot is visible only once everything it
//! needs is durable, so a copy killed at any moment leaves DST healthy, and the next run
//! continues where it stopped: objects already at DST are skipped.
//!
//! Objects move on `threads` workers, each holding at most one object in memory; packs
//! move (and are read back) on at most [`PACKS_AT_ONCE`] of them, so a copy never holds
//! more than that many packs whatever `threads` says.

use crate::backend::{memory::MemoryBackend, BackendRef, Kind, ObjectInfo};
use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::{Error, Remedy, Result};
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::pack::{self, PackRecord};
use crate::reader::BlobReader;
use crate::repo::{Repo, Snapshot};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Packs held in memory at once, each by one worker. Two keep a download and an upload
/// going at the same time, and two 16 MiB packs fit the memory a snapshot takes; each
/// worker more would add a whole pack to the peak.
const PACKS_AT_ONCE: usize = 2;

/// Packs named per index file written at DST in snapshot mode: a copy killed part way loses
/// at most this many packs' worth of indexing (the next run re-reads them, without upload).
const INDEX_BATCH: usize = 64;

#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Objects moved at a time.
    pub threads: usize,
    /// How long to wait for a prune holding either store to finish.
    pub lock_wait: Duration,
    /// Also read back what DST already holds: packs must hash to their names, index files
    /// and snapshot records must equal SRC's; whatever does not is replaced from SRC.
    pub verify: bool,
}

/// Shared leases on both stores (see [`crate::lock`]): a prune of SRC must not delete a
/// pack being copied, nor a prune of DST a pack copied but not yet indexed there.
fn leases(src: &Repo, dst: &Repo, keys: &WriterKeys, opts: &CopyOptions) -> Result<(Lease, Lease)> {
    let purpose = format!("copy to {}", dst.location());
    let a = Lease::acquire_waiting(
        &src.backend,
        keys,
        LeaseKind::Shared,
        &purpose,
        opts.lock_wait,
    )?;
    let purpose = format!("copy from {}", src.location());
    let b = Lease::acquire_waiting(
        &dst.backend,
        keys,
        LeaseKind::Shared,
        &purpose,
        opts.lock_wait,
    )?;
    Ok((a, b))
}

/// A count of objects and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub objects: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }

    fn plus(self, other: Tally) -> Tally {
        Tally {
            objects: self.objects + other.objects,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// Copied and already-present counts for one kind of object.
#[derive(Clone, Copy, Debug, Default)]
pub struct KindTally {
    pub copied: Tally,
    pub present: Tally,
}

/// What a copy did.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// DST held no store and was made a replica of SRC by this copy.
    pub created: bool,
    pub config: KindTally,
    pub keys: KindTally,
    pub packs: KindTally,
    pub index: KindTally,
    pub snapshots: KindTally,
    pub secrets: KindTally,
    /// Index files written at DST (snapshot mode) for the packs it received.
    pub new_index_files: Tally,
    /// Packs DST held without an index naming them, now indexed (snapshot mode).
    pub reindexed_packs: u64,
    /// Snapshots copied, oldest first where known.
    pub copied_snapshots: Vec<Id>,
    /// Snapshots not copied because DST lacks (or SRC could not supply) what they need.
    pub withheld: Vec<Id>,
    /// Damaged or missing SRC objects, by name: each one makes the copy incomplete.
    pub problems: Vec<CopyProblem>,
    /// Things worth knowing that do not make the copy fail.
    pub notes: Vec<CopyNote>,
    /// Objects at DST read back and checked (`verify`).
    pub verified: Tally,
    /// DST objects that were damaged or missing and were replaced from SRC.
    pub healed: Vec<Healed>,
}

/// A SRC object that was not copied, or a snapshot held back for it. `location` is the
/// store's location; `error` the reason, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyProblem {
    /// An object SRC lists is damaged or vanished.
    Unreadable {
        kind: Kind,
        name: String,
        location: String,
        error: String,
    },
    /// An index file of SRC does not open.
    IndexUnopenable { name: String, error: String },
    /// An index file names a pack DST could not receive.
    IndexNeedsPack {
        name: String,
        pack: Id,
        location: String,
    },
    /// A pack's content does not hash to its name.
    PackCorrupt { pack: Id, location: String },
    /// A pack's trailer does not open.
    PackTrailer { error: String, location: String },
    /// A snapshot record of SRC does not open.
    SnapshotUnopenable { name: String, error: String },
    /// A snapshot's trees could not be walked to find its packs.
    SnapshotUnwalkable { snapshot: Id, problem: WalkProblem },
    /// A snapshot needs a pack that could not be copied.
    SnapshotNeedsPack { snapshot: Id, pack: Id },
}

impl std::fmt::Display for CopyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyProblem::Unreadable {
                kind,
                name,
                location,
                error,
            } => write!(
                f,
                "{}/{name} at {location}: {error}; not copied",
                kind.label()
            ),
            CopyProblem::IndexUnopenable { name, error } => {
                write!(f, "index file {name}: {error}; not copied")
            }
            CopyProblem::IndexNeedsPack {
                name,
                pack,
                location,
            } => write!(
                f,
                "index file {name} not copied: it names pack {pack}, which {location} could not receive"
            ),
            CopyProblem::PackCorrupt { pack, location } => write!(
                f,
                "corrupt pack {pack} at {location}: its content does not match its name (altered or damaged); not copied"
            ),
            CopyProblem::PackTrailer { error, location } => {
                write!(f, "{error} (at {location}); not copied")
            }
            CopyProblem::SnapshotUnopenable { name, error } => {
                write!(f, "snapshot record {name}: {error}; not copied")
            }
            CopyProblem::SnapshotUnwalkable { snapshot, problem } => {
                write!(f, "snapshot {}: {problem}; not copied", snapshot.short())
            }
            CopyProblem::SnapshotNeedsPack { snapshot, pack } => write!(
                f,
                "snapshot {} not copied: it needs pack {pack}, which could not be copied",
                snapshot.short()
            ),
        }
    }
}

/// Why a snapshot's trees could not be walked to find the packs it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkProblem {
    /// A folder tree is in no index file.
    TreeUnindexed { tree: Id },
    /// A folder tree cannot be read from its pack.
    TreeUnreadable { tree: Id, pack: Id, error: String },
    /// A data blob is in no index file.
    BlobUnindexed { blob: Id },
}

impl std::fmt::Display for WalkProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkProblem::TreeUnindexed { tree } => {
                write!(f, "tree {} is in no index file", tree.short())
            }
            WalkProblem::TreeUnreadable { tree, pack, error } => write!(
                f,
                "tree {} in pack {pack} cannot be read: {error}",
                tree.short()
            ),
            WalkProblem::BlobUnindexed { blob } => {
                write!(f, "data blob {} is in no index file", blob.short())
            }
        }
    }
}

/// Something worth knowing about a copy that does not make it fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyNote {
    /// A key object differs between SRC and DST; DST keeps its own.
    KeyDiffers {
        name: String,
        source: String,
        destination: String,
    },
    /// An index file at DST does not open; with `reindexed`, the packs it names are
    /// indexed again (snapshot mode).
    DestinationIndexUnopenable {
        name: String,
        location: String,
        error: String,
        reindexed: bool,
    },
}

impl std::fmt::Display for CopyNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyNote::KeyDiffers {
                name,
                source,
                destination,
            } => write!(
                f,
                "keys/{name} differs between {source} and {destination} (changed at the source since an earlier copy?); \
                 the copy keeps its own"
            ),
            CopyNote::DestinationIndexUnopenable {
                name,
                location,
                error,
                reindexed,
            } => {
                write!(f, "index file {name} at {location} does not open ({error})")?;
                if *reindexed {
                    write!(f, "; the packs it names are indexed again")?;
                }
                Ok(())
            }
        }
    }
}

/// A DST object that was damaged or missing and was replaced from SRC. `location` is
/// DST's location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Healed {
    /// A pack DST's index names was missing: copied again.
    PackMissing { pack: Id, location: String },
    /// A pack had the wrong size: replaced.
    PackWrongSize {
        pack: Id,
        location: String,
        size: u64,
    },
    /// A pack read back (`verify`) was damaged: replaced.
    PackDamaged {
        pack: Id,
        location: String,
        why: String,
    },
    /// An index file or snapshot record differed from SRC's (`verify`): replaced.
    Differed {
        kind: Kind,
        name: String,
        location: String,
    },
}

impl std::fmt::Display for Healed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Healed::PackMissing { pack, location } => write!(
                f,
                "pack {pack} was missing at {location} although its index names it: copied again"
            ),
            Healed::PackWrongSize {
                pack,
                location,
                size,
            } => write!(
                f,
                "pack {pack} at {location} had the wrong size ({size} bytes): replaced"
            ),
            Healed::PackDamaged {
                pack,
                location,
                why,
            } => write!(
                f,
                "pack {pack} at {location}: {why}; replaced from the source"
            ),
            Healed::Differed {
                kind,
                name,
                location,
            } => write!(
                f,
                "{}/{name} at {location} differed from the source's: replaced",
                kind.label()
            ),
        }
    }
}

impl CopyReport {
    /// Every kind with its label, in the order objects are written.
    pub fn kinds(&self) -> [(&'static str, KindTally); 6] {
        [
            ("keys", self.keys),
            ("config", self.config),
            ("packs", self.packs),
            ("index files", self.index),
            ("snapshots", self.snapshots),
            ("secrets", self.secrets),
        ]
    }

    pub fn copied(&self) -> Tally {
        self.kinds()
            .iter()
            .fold(self.new_index_files, |t, (_, k)| t.plus(k.copied))
    }

    pub fn present(&self) -> Tally {
        self.kinds()
            .iter()
            .fold(Tally::default(), |t, (_, k)| t.plus(k.present))
    }

    pub fn is_complete(&self) -> bool {
        self.problems.is_empty() && self.withheld.is_empty()
    }
}

/// Opens DST as a replica of `src`, making it one when it holds no store yet: SRC's
/// `keys/*` objects are copied verbatim, then its `config`, last. A DST holding another
/// store is refused. Key objects SRC has gained since (a passphrase set later) are added;
/// key objects that differ are left alone and noted.
pub fn open_destination(src: &Repo, dst: BackendRef, report: &mut CopyReport) -> Result<Repo> {
    if src.location() == dst.location() {
        return Err(Error::Usage(format!(
            "the source and destination locations both name {}",
            src.location()
        ))
        .with_remedy(Remedy::OtherCopyDestination));
    }
    let src_config = src.backend.get(Kind::Config, "config")?;
    let existing = dst.exists(Kind::Config, "config")?;
    if !existing {
        dst.create()?;
        report.created = true;
    } else {
        let repo = Repo::open(dst.clone())?;
        if repo.config.store_id != src.config.store_id {
            return Err(Error::Usage(format!(
                "the store at {} is a different store (id {}) than the one at {} (id {}): a copy only goes \
                 into an empty location or into an earlier copy of the same store",
                repo.location(),
                repo.config.store_id,
                src.location(),
                src.config.store_id
            )));
        }
        // Trees with chunk lists must not reach a store whose readers would miss them.
        if repo.config.version < src.config.version {
            return Err(Error::Usage(format!(
                "the copy at {} is of store format {} and the source at {} of format {}: its trees may \
                 hold what format-{} readers cannot see; run `vault upgrade` on the copy (with --store {} and \
                 the reader identity), then copy again",
                repo.location(),
                repo.config.version,
                src.location(),
                src.config.version,
                repo.config.version,
                repo.location()
            )));
        }
    }
    let dst_keys: HashMap<String, u64> = if existing {
        dst.list(Kind::Keys)?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect()
    } else {
        HashMap::new()
    };
    for info in src.backend.list(Kind::Keys)? {
        let bytes = src.backend.get(Kind::Keys, &info.name)?;
        match dst_keys.get(&info.name) {
            None => {
                dst.put(Kind::Keys, &info.name, &bytes)?;
                report.keys.copied.add(bytes.len() as u64);
            }
            Some(_) => {
                let theirs = dst.get(Kind::Keys, &info.name)?;
                if theirs != bytes {
                    report.notes.push(CopyNote::KeyDiffers {
                        name: info.name.clone(),
                        source: src.location(),
                        destination: dst.location(),
                    });
                }
                report.keys.present.add(theirs.len() as u64);
            }
        }
    }
    if existing {
        report.config.present.add(src_config.len() as u64);
    } else {
        dst.put(Kind::Config, "config", &src_config)?;
        report.config.copied.add(src_config.len() as u64);
    }
    Repo::open(dst)
}

/// Copies every pack, index file and snapshot record (and sealed secret) DST lacks, in
/// that order. Needs only the metadata key. See the module docs.
pub fn copy_all(
    src: &Repo,
    dst: &Repo,
    keys: &WriterKeys,
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<()> {
    let _leases = leases(src, dst, keys, opts)?;
    // Snapshots first, packs last: whatever a listed snapshot or index file needs was
    // durable before it appeared, so it is in the later listings.
    let src_snaps = src.backend.list(Kind::Snapshots)?;
    let src_index = src.backend.list(Kind::Index)?;
    let src_packs = src.backend.list(Kind::Packs)?;
    let dst_snaps = sizes(dst.backend.list(Kind::Snapshots)?);
    let dst_index = sizes(dst.backend.list(Kind::Index)?);
    let dst_packs = sizes(dst.backend.list(Kind::Packs)?);

    let (at_dst, mut failed) =
        copy_all_packs(src, dst, keys, opts, report, &src_packs, &dst_packs)?;

    // Index files: verbatim, once every pack they name is at DST.
    let todo = meta_todo(src, dst, Kind::Index, &src_index, &dst_index, opts, report)?;
    let (copied, problems) = copy_index_files(src, dst, keys, opts, &todo, &at_dst)?;
    report.index.copied = report.index.copied.plus(copied);
    failed += problems.len();
    report.problems.extend(problems);

    // Snapshot records, only when nothing they could need failed.
    let todo = meta_todo(
        src,
        dst,
        Kind::Snapshots,
        &src_snaps,
        &dst_snaps,
        opts,
        report,
    )?;
    if failed > 0 {
        for info in &todo {
            if let Some(id) = Id::from_hex(&info.name) {
                report.withheld.push(id);
            }
        }
    } else {
        let (copied, problems, ids) = copy_snapshot_records(src, dst, keys, opts, &todo)?;
        report.snapshots.copied = report.snapshots.copied.plus(copied);
        report.problems.extend(problems);
        report.copied_snapshots.extend(ids);
    }
    copy_secrets(src, dst, report)
}

/// Copies the packs SRC lists that DST lacks or holds at another size (and, verifying,
/// those DST holds damaged), noting the ones DST's own index names as healed. Returns the
/// packs DST holds afterwards, with their sizes, and how many failed to copy.
fn copy_all_packs(
    src: &Repo,
    dst: &Repo,
    keys: &WriterKeys,
    opts: &CopyOptions,
    report: &mut CopyReport,
    src_packs: &[ObjectInfo],
    dst_packs: &HashMap<String, u64>,
) -> Result<(HashMap<Id, u64>, usize)> {
    // Packs DST's own index names: one it lacks was lost there and is healed by the copy.
    let dst_indexed = dst_index_packs(dst, keys, report)?;
    let mut todo = Vec::new();
    let mut present = Vec::new();
    for info in src_packs {
        let Some(id) = Id::from_hex(&info.name) else {
            continue;
        };
        if dst_packs.get(&info.name) == Some(&info.size) {
            present.push((id, info.size));
        } else {
            if dst_indexed.contains(&id) {
                report
                    .healed
                    .push(missing_pack_note(&id, dst, dst_packs.get(&info.name)));
            }
            todo.push(id);
        }
    }
    let replace = check_present_packs(dst, &present, opts, report)?;
    todo.extend(replace.iter().copied());
    let moved = transfer_packs(src, dst, keys, &todo, dst_packs, &replace, false, opts)?;
    report.packs.copied = report.packs.copied.plus(moved.copied);
    report.problems.extend(moved.problems);
    let mut at_dst: HashMap<Id, u64> = dst_packs
        .iter()
        .filter_map(|(n, s)| Id::from_hex(n).map(|id| (id, *s)))
        .collect();
    at_dst.extend(moved.ok.iter().map(|r| (r.id, r.size)));
    Ok((at_dst, moved.failed.len()))
}

/// The objects of `kind` (index files or snapshot records) in SRC's `listed` to copy: those
/// DST lacks or holds at another size, then those it holds the same that fail a check.
fn meta_todo<'i>(
    src: &Repo,
    dst: &Repo,
    kind: Kind,
    listed: &'i [ObjectInfo],
    at_dst: &HashMap<String, u64>,
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<Vec<&'i ObjectInfo>> {
    let same = listed
        .iter()
        .filter(|o| at_dst.get(&o.name) == Some(&o.size))
        .collect::<Vec<_>>();
    Ok(listed
        .iter()
        .filter(|o| at_dst.get(&o.name) != Some(&o.size))
        .chain(check_present_meta(src, dst, kind, &same, opts, report)?)
        .collect())
}

/// Copies the index files `todo` verbatim, each once every pack it names is at DST
/// (`at_dst`); the others are problems.
fn copy_index_files(
    src: &Repo,
    dst: &Repo,
    keys: &WriterKeys,
    opts: &CopyOptions,
    todo: &[&ObjectInfo],
    at_dst: &HashMap<Id, u64>,
) -> Result<(Tally, Vec<CopyProblem>)> {
    let state = Mutex::new((Tally::default(), Vec::<CopyProblem>::new()));
    crate::parallel::try_for_each(todo, opts.threads, |info| {
        let bytes = match fetch(src, Kind::Index, &info.name) {
            Fetched::Ok(b) => b,
            Fetched::Problem(p) => {
                state.lock().unwrap().1.push(p);
                return Ok(());
            }
            Fetched::Fatal(e) => return Err(e),
        };
        let records = match open_index(src, keys, &info.name, &bytes) {
            Ok(r) => r,
            Err(e) => {
                state.lock().unwrap().1.push(CopyProblem::IndexUnopenable {
                    name: info.name.clone(),
                    error: e.to_string(),
                });
                return Ok(());
            }
        };
        if let Some(r) = records.iter().find(|r| at_dst.get(&r.id) != Some(&r.size)) {
            state.lock().unwrap().1.push(CopyProblem::IndexNeedsPack {
                name: info.name.clone(),
                pack: r.id,
                location: dst.location(),
            });
            return Ok(());
        }
        dst.backend.put(Kind::Index, &info.name, &bytes)?;
        state.lock().unwrap().0.add(bytes.len() as u64);
        Ok(())
    })?;
    Ok(state.into_inner().unwrap())
}

/// Copies the snapshot records `todo`: what was copied, the problems, and the ids of the
/// snapshots copied.
fn copy_snapshot_records(
    src: &Repo,
    dst: &Repo,
    keys: &WriterKeys,
    opts: &CopyOptions,
    todo: &[&ObjectInfo],
) -> Result<(Tally, Vec<CopyProblem>, Vec<Id>)> {
    let state = Mutex::new((
        Tally::default(),
        Vec::<CopyProblem>::new(),
        Vec::<Id>::new(),
    ));
    crate::parallel::try_for_each(todo, opts.threads, |info| {
        let Some(id) = Id::from_hex(&info.name) else {
            return Ok(());
        };
        match copy_snapshot_record(src, dst, keys, &id)? {
            Ok(bytes) => {
                let mut s = state.lock().unwrap();
                s.0.add(bytes);
                s.2.push(id);
            }
            Err(p) => state.lock().unwrap().1.push(p),
        }
        Ok(())
    })?;
    Ok(state.into_inner().unwrap())
}

/// Sealed platform secrets: age files for the escrow recipients, which vault cannot open
/// here; they are immutable, so those DST lacks are copied as they are.
fn copy_secrets(src: &Repo, dst: &Repo, report: &mut CopyReport) -> Result<()> {
    let dst_secrets = sizes(dst.backend.list(Kind::Secrets)?);
    for info in src.backend.list(Kind::Secrets)? {
        if dst_secrets.contains_key(&info.name) {
            report.secrets.present.add(info.size);
            continue;
        }
        match fetch(src, Kind::Secrets, &info.name) {
            Fetched::Ok(bytes) => {
                dst.backend.put(Kind::Secrets, &info.name, &bytes)?;
                report.secrets.copied.add(bytes.len() as u64);
            }
            Fetched::Problem(p) => report.problems.push(p),
            Fetched::Fatal(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies the given snapshots (resolved at SRC) and exactly what they need: their packs,
/// new index files naming those packs at DST, then their records. `cache` must hold SRC's
/// index (see [`Cache::sync_index`]). See the module docs.
pub fn copy_snapshots(
    reader: &BlobReader,
    cache: &Cache,
    dst: &Repo,
    snapshots: &[(Id, Snapshot)],
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<()> {
    let src = &reader.repo;
    let keys = &reader.keys;
    let _leases = leases(src, dst, keys, opts)?;
    let dst_snaps = sizes(dst.backend.list(Kind::Snapshots)?);
    let dst_packs = sizes(dst.backend.list(Kind::Packs)?);

    // What each snapshot needs.
    let mut seen = HashSet::new();
    let mut wanted: Vec<(Id, HashSet<Id>)> = Vec::new();
    for (id, snap) in snapshots {
        if !seen.insert(*id) {
            continue;
        }
        if let Some(size) = dst_snaps.get(&id.to_hex()) {
            report.snapshots.present.add(*size);
            continue;
        }
        match packs_needed(reader, cache, &snap.tree)? {
            Ok(packs) => wanted.push((*id, packs)),
            Err(problem) => {
                report.problems.push(CopyProblem::SnapshotUnwalkable {
                    snapshot: *id,
                    problem,
                });
                report.withheld.push(*id);
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }

    // Which packs DST's own index files already name.
    let mut indexed: HashSet<Id> = HashSet::new();
    for info in dst.backend.list(Kind::Index)? {
        match dst.load_index(keys, &info.name) {
            Ok(records) => indexed.extend(records.iter().map(|r| r.id)),
            Err(e) if e.is_damage() => report.notes.push(CopyNote::DestinationIndexUnopenable {
                name: info.name.clone(),
                location: dst.location(),
                error: e.to_string(),
                reindexed: true,
            }),
            Err(e) => return Err(e),
        }
    }

    let mut needed: Vec<Id> = wanted.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    needed.sort();
    needed.dedup();
    let mut todo = Vec::new();
    let mut present = Vec::new();
    for id in needed {
        let name = id.to_hex();
        match dst_packs.get(&name) {
            Some(size) if indexed.contains(&id) => present.push((id, *size)),
            None if indexed.contains(&id) => {
                report.healed.push(missing_pack_note(&id, dst, None));
                todo.push(id);
            }
            _ => todo.push(id),
        }
    }
    let replace = check_present_packs(dst, &present, opts, report)?;
    todo.extend(replace.iter().copied());
    let moved = transfer_packs(src, dst, keys, &todo, &dst_packs, &replace, true, opts)?;
    report.packs.copied = report.packs.copied.plus(moved.copied);
    report.packs.present = report.packs.present.plus(moved.reindexed);
    report.reindexed_packs += moved.reindexed.objects;
    report.new_index_files = report.new_index_files.plus(moved.index_files);
    report.problems.extend(moved.problems);

    for (id, packs) in &wanted {
        if let Some(bad) = packs.iter().find(|p| moved.failed.contains(p)) {
            report.problems.push(CopyProblem::SnapshotNeedsPack {
                snapshot: *id,
                pack: *bad,
            });
            report.withheld.push(*id);
            continue;
        }
        match copy_snapshot_record(src, dst, keys, id)? {
            Ok(bytes) => {
                report.snapshots.copied.add(bytes);
                report.copied_snapshots.push(*id);
            }
            Err(p) => report.problems.push(p),
        }
    }
    Ok(())
}

/// The packs holding a tree's blobs and everything below it. `Ok(Err(problem))` when the
/// walk found a blob no index names or a tree that cannot be read.
fn packs_needed(
    reader: &BlobReader,
    cache: &Cache,
    root: &Id,
) -> Result<std::result::Result<HashSet<Id>, WalkProblem>> {
    let mut packs = HashSet::new();
    // Content blobs located so far: a chunk list shared by many files is read once.
    let mut blobs = HashSet::new();
    let flow = crate::walk::trees(reader, cache, root, &mut HashSet::new(), |tree_id, tree| {
        let Some(loc) = cache.locate(tree_id)? else {
            return Ok(ControlFlow::Break(WalkProblem::TreeUnindexed {
                tree: *tree_id,
            }));
        };
        packs.insert(loc.pack);
        // The tree, or one of its files' chunk lists, does not open.
        let unreadable = |e: crate::error::Error| {
            ControlFlow::Break(WalkProblem::TreeUnreadable {
                tree: *tree_id,
                pack: loc.pack,
                error: e.to_string(),
            })
        };
        let tree = match tree {
            Ok(t) => t,
            Err(e) if e.is_damage() => return Ok(unreadable(e)),
            Err(e) => return Err(e),
        };
        for node in &tree.nodes {
            let mut unindexed = None;
            let opened = crate::walk::content(reader, cache, tree_id, node, |blob| {
                if unindexed.is_some() {
                    return Ok(false);
                }
                match cache.locate(&blob)? {
                    Some(loc) => {
                        packs.insert(loc.pack);
                        Ok(blobs.insert(blob))
                    }
                    None => {
                        unindexed = Some(blob);
                        Ok(false)
                    }
                }
            })?;
            if let Err(e) = opened {
                return Ok(unreadable(e));
            }
            if let Some(blob) = unindexed {
                return Ok(ControlFlow::Break(WalkProblem::BlobUnindexed { blob }));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(match flow {
        ControlFlow::Continue(()) => Ok(packs),
        ControlFlow::Break(problem) => Err(problem),
    })
}

/// What moving a list of packs did.
#[derive(Default)]
struct Moved {
    copied: Tally,
    /// Packs DST already had, read back from SRC only to index them.
    reindexed: Tally,
    /// Records of the packs now at DST (copied or re-read).
    ok: Vec<PackRecord>,
    failed: HashSet<Id>,
    problems: Vec<CopyProblem>,
    index_files: Tally,
}

/// Downloads, verifies and uploads packs on `threads` workers, at most [`PACKS_AT_ONCE`].
/// A pack DST already holds with the right size is not uploaded again. With `index`,
/// index files naming the packs are written at DST as they arrive ([`INDEX_BATCH`] packs
/// each).
#[allow(clippy::too_many_arguments)]
fn transfer_packs(
    src: &Repo,
    dst: &Repo,
    keys: &WriterKeys,
    packs: &[Id],
    dst_sizes: &HashMap<String, u64>,
    replace: &HashSet<Id>,
    index: bool,
    opts: &CopyOptions,
) -> Result<Moved> {
    let state = Mutex::new(Moved::default());
    let pending: Mutex<Vec<PackRecord>> = Mutex::new(Vec::new());
    let flush = |records: Vec<PackRecord>| -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        dst.save_index(keys, &records)?;
        // The sealed size: the CBOR list plus a 24-byte nonce and a 16-byte tag.
        let mut plain = Vec::new();
        ciborium::into_writer(&records, &mut plain).expect("serialisable");
        state
            .lock()
            .unwrap()
            .index_files
            .add(plain.len() as u64 + 40);
        Ok(())
    };
    let progress = crate::progress::get();
    progress.begin_items("copy", "packs", packs.len() as u64, 0);
    crate::parallel::try_for_each(packs, opts.threads.min(PACKS_AT_ONCE), |id| {
        crate::progress::check_cancelled("copy")?;
        let name = id.to_hex();
        progress.set_current(&name);
        let bytes = match fetch(src, Kind::Packs, &name) {
            Fetched::Ok(b) => b,
            Fetched::Problem(p) => {
                let mut s = state.lock().unwrap();
                s.failed.insert(*id);
                s.problems.push(p);
                return Ok(());
            }
            Fetched::Fatal(e) => return Err(e),
        };
        let record = if Id::hash_public(&bytes) != *id {
            Err(CopyProblem::PackCorrupt {
                pack: *id,
                location: src.location(),
            })
        } else {
            pack::read_trailer(keys, id, &bytes).map_err(|e| CopyProblem::PackTrailer {
                error: e.to_string(),
                location: src.location(),
            })
        };
        let record = match record {
            Ok(r) => r,
            Err(p) => {
                let mut s = state.lock().unwrap();
                s.failed.insert(*id);
                s.problems.push(p);
                return Ok(());
            }
        };
        let size = bytes.len() as u64;
        let upload = dst_sizes.get(&name) != Some(&size) || replace.contains(id);
        if upload {
            // Handed over, not copied: on S3 the pack is sent from this buffer.
            dst.backend.put_bytes(Kind::Packs, &name, bytes.into())?;
        } else {
            drop(bytes);
        }
        progress.add_files(1);
        progress.add_bytes(size);
        {
            let mut s = state.lock().unwrap();
            if upload {
                s.copied.add(size);
            } else {
                s.reindexed.add(size);
            }
        }
        if index {
            let batch = {
                let mut p = pending.lock().unwrap();
                p.push(record.clone());
                if p.len() >= INDEX_BATCH {
                    std::mem::take(&mut *p)
                } else {
                    Vec::new()
                }
            };
            flush(batch)?;
        }
        state.lock().unwrap().ok.push(record);
        Ok(())
    })?;
    flush(std::mem::take(&mut *pending.lock().unwrap()))?;
    Ok(state.into_inner().unwrap())
}

/// Every pack DST's own index files name. An index file that does not open is noted (and,
/// in a whole-store copy, replaced from SRC by the index check).
fn dst_index_packs(dst: &Repo, keys: &WriterKeys, report: &mut CopyReport) -> Result<HashSet<Id>> {
    let mut named = HashSet::new();
    for info in dst.backend.list(Kind::Index)? {
        match dst.load_index(keys, &info.name) {
            Ok(records) => named.extend(records.iter().map(|r| r.id)),
            Err(e) if e.is_damage() => report.notes.push(CopyNote::DestinationIndexUnopenable {
                name: info.name.clone(),
                location: dst.location(),
                error: e.to_string(),
                reindexed: false,
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(named)
}

fn missing_pack_note(id: &Id, dst: &Repo, size: Option<&u64>) -> Healed {
    match size {
        None => Healed::PackMissing {
            pack: *id,
            location: dst.location(),
        },
        Some(s) => Healed::PackWrongSize {
            pack: *id,
            location: dst.location(),
            size: *s,
        },
    }
}

/// Packs DST holds with the right size: counted as present, and with `verify` read back;
/// those whose content does not hash to their name are returned, to be replaced.
fn check_present_packs(
    dst: &Repo,
    present: &[(Id, u64)],
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<HashSet<Id>> {
    if !opts.verify {
        for (_, size) in present {
            report.packs.present.add(*size);
        }
        return Ok(HashSet::new());
    }
    let state = Mutex::new((Tally::default(), Vec::<(Id, u64, String)>::new()));
    crate::parallel::try_for_each(present, opts.threads.min(PACKS_AT_ONCE), |(id, size)| {
        let verdict = match dst.backend.get(Kind::Packs, &id.to_hex()) {
            Ok(bytes) if Id::hash_public(&bytes) == *id => None,
            Ok(_) => Some("its content does not match its name (damaged)".to_string()),
            Err(e) if e.is_damage() => Some(e.to_string()),
            Err(e) => return Err(e),
        };
        let mut s = state.lock().unwrap();
        s.0.add(*size);
        if let Some(why) = verdict {
            s.1.push((*id, *size, why));
        }
        Ok(())
    })?;
    let (verified, bad) = state.into_inner().unwrap();
    report.verified = report.verified.plus(verified);
    let mut replace = HashSet::new();
    for (id, _, why) in bad {
        report.healed.push(Healed::PackDamaged {
            pack: id,
            location: dst.location(),
            why,
        });
        replace.insert(id);
    }
    for (id, size) in present {
        if !replace.contains(id) {
            report.packs.present.add(*size);
        }
    }
    Ok(replace)
}

/// Index files or snapshot records DST holds with SRC's size: counted as present, and with
/// `verify` compared byte for byte with SRC's; those that differ are returned, to be
/// copied again (after the usual check that SRC's opens).
fn check_present_meta<'i>(
    src: &Repo,
    dst: &Repo,
    kind: Kind,
    same: &[&'i ObjectInfo],
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<Vec<&'i ObjectInfo>> {
    let tally = match kind {
        Kind::Index => &mut report.index.present,
        _ => &mut report.snapshots.present,
    };
    if !opts.verify {
        for o in same {
            tally.add(o.size);
        }
        return Ok(Vec::new());
    }
    let bad = Mutex::new(Vec::new());
    let checked = Mutex::new(Tally::default());
    crate::parallel::try_for_each(same, opts.threads, |info| {
        let theirs = match dst.backend.get(kind, &info.name) {
            Ok(b) => Some(b),
            Err(e) if e.is_damage() => None,
            Err(e) => return Err(e),
        };
        let ours = match src.backend.get(kind, &info.name) {
            Ok(b) => b,
            // A damaged SRC object cannot heal anything; DST's stays.
            Err(e) if e.is_damage() => return Ok(()),
            Err(e) => return Err(e),
        };
        checked.lock().unwrap().add(info.size);
        if theirs.as_deref() != Some(&ours[..]) {
            bad.lock().unwrap().push(*info);
        }
        Ok(())
    })?;
    let bad = bad.into_inner().unwrap();
    report.verified = report.verified.plus(checked.into_inner().unwrap());
    let tally = match kind {
        Kind::Index => &mut report.index.present,
        _ => &mut report.snapshots.present,
    };
    for o in same {
        if !bad.iter().any(|b| b.name == o.name) {
            tally.add(o.size);
        }
    }
    for o in &bad {
        report.healed.push(Healed::Differed {
            kind,
            name: o.name.clone(),
            location: dst.location(),
        });
    }
    Ok(bad)
}

/// Copies one snapshot record verbatim after checking it opens: `Ok(Ok(bytes copied))`, or
/// `Ok(Err(problem))` for a damaged or vanished record.
fn copy_snapshot_record(
    src: &Repo,
    dst: &Repo,
    keys: &WriterKeys,
    id: &Id,
) -> Result<std::result::Result<u64, CopyProblem>> {
    let name = id.to_hex();
    let bytes = match fetch(src, Kind::Snapshots, &name) {
        Fetched::Ok(b) => b,
        Fetched::Problem(p) => return Ok(Err(p)),
        Fetched::Fatal(e) => return Err(e),
    };
    if let Err(e) = open_sealed(src, keys, Kind::Snapshots, &name, &bytes) {
        return Ok(Err(CopyProblem::SnapshotUnopenable {
            name,
            error: e.to_string(),
        }));
    }
    dst.backend.put(Kind::Snapshots, &name, &bytes)?;
    Ok(Ok(bytes.len() as u64))
}

enum Fetched {
    Ok(Vec<u8>),
    /// The object is damaged or vanished: a problem to report, the copy goes on.
    Problem(CopyProblem),
    /// The store cannot be read at all: the copy stops.
    Fatal(Error),
}

fn fetch(src: &Repo, kind: Kind, name: &str) -> Fetched {
    match src.backend.get(kind, name) {
        Ok(b) => Fetched::Ok(b),
        Err(e) if e.is_damage() => Fetched::Problem(CopyProblem::Unreadable {
            kind,
            name: name.to_string(),
            location: src.location(),
            error: e.to_string(),
        }),
        Err(e) => Fetched::Fatal(e),
    }
}

/// Opens a sealed index file or snapshot record given as bytes, with the same code that
/// reads them from a store (so the check is exactly the one every reader applies).
fn open_sealed(
    src: &Repo,
    keys: &WriterKeys,
    kind: Kind,
    name: &str,
    bytes: &[u8],
) -> Result<Option<Vec<PackRecord>>> {
    let probe = Repo {
        backend: Arc::new(MemoryBackend::new("copy-verify")),
        config: src.config.clone(),
        trust: src.trust.clone(),
    };
    probe.backend.put(kind, name, bytes)?;
    match kind {
        Kind::Index => probe.load_index(keys, name).map(Some),
        Kind::Snapshots => {
            let id = Id::from_hex(name)
                .ok_or_else(|| Error::corrupt(format!("snapshot {name}"), "name is not an id"))?;
            probe.load_snapshot(keys, &id).map(|_| None)
        }
        _ => Ok(None),
    }
}

fn open_index(src: &Repo, keys: &WriterKeys, name: &str, bytes: &[u8]) -> Result<Vec<PackRecord>> {
    Ok(open_sealed(src, keys, Kind::Index, name, bytes)?.unwrap_or_default())
}

fn sizes(list: Vec<ObjectInfo>) -> HashMap<String, u64> {
    list.into_iter().map(|o| (o.name, o.size)).collect()
}
