//! Repairing a store: the index from the packs, and snapshots whose data is partly gone.
//!
//! **Index.** Every pack carries its own blob list in an authenticated trailer (see
//! [`crate::pack`]), sealed with the metadata key, so a writer key suffices. Repair lists
//! the index files, then the packs (in that order: a snapshot writes its packs before its
//! index file, so every pack an already listed index file names is listed too), takes each
//! pack's record from a readable index file when its size matches, and otherwise reads the
//! pack's header and trailer with ranged reads. It writes new index files naming every
//! pack that reads, and only then deletes the index files it listed. An interruption
//! leaves old and new index files side by side, whose union names every pack: a usable
//! store, repaired by running again. It holds a shared lease, so prune (which deletes
//! packs) cannot run meanwhile; snapshots can.
//!
//! **Snapshots.** For each snapshot, the trees are walked (each tree once for the whole
//! store, with [`crate::walk::fold`]); a file with a chunk (or a chunk list) that lies
//! in no pack the store holds, or a chunk list that does not open, is left out, and a
//! folder whose tree cannot be read is kept empty. Changed trees are written as new tree
//! blobs (one new pack and index file), and a new snapshot record with the original's
//! time, host, paths and tags plus `repaired` is written. The original is deleted only
//! when asked, and only after the new record is durable. Files are judged by the index
//! only: a chunk that is present but corrupt is found by `check --read-data`, not here.

use crate::backend::Kind;
use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::Result;
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::pack::{BlobKind, PackRecord, PackWriter};
use crate::reader::BlobReader;
use crate::repo::Repo;
use crate::tree::{display_name, Node, Tree};
use crate::walk::Fold;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

/// The tag a repaired snapshot carries.
pub const REPAIRED_TAG: &str = "repaired";

#[derive(Debug, Default, Clone)]
pub struct IndexRepairOptions {
    /// Ignore the index files and read every pack's trailer.
    pub read_all_packs: bool,
    pub lock_wait: Duration,
}

/// An object that could not be read, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Unreadable {
    /// Its name in the store (an index file's or a pack's).
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct IndexRepairReport {
    pub packs: usize,
    /// Packs whose trailer was read (not named, or not trusted, by an index file).
    pub packs_read: usize,
    /// Index files that could not be read, with why.
    pub damaged: Vec<Unreadable>,
    /// Packs whose trailer could not be read: their blobs stay unindexed.
    pub unreadable_packs: Vec<Unreadable>,
    /// Packs index files named that the store does not hold.
    pub missing_packs: usize,
    pub index_files_written: usize,
    pub index_files_removed: usize,
    /// Old index files the store refused to delete (object lock).
    pub kept_locked: Vec<crate::prune::KeptObject>,
    /// True when the index needed no change.
    pub nothing_to_do: bool,
}

pub fn repair_index(
    repo: &Repo,
    keys: &WriterKeys,
    cache: &mut Cache,
    opts: &IndexRepairOptions,
) -> Result<IndexRepairReport> {
    let _lease = Lease::acquire_waiting(
        &repo.backend,
        keys,
        LeaseKind::Shared,
        "repair index",
        opts.lock_wait,
    )?;
    let mut report = IndexRepairReport::default();
    let index_files: Vec<String> = repo
        .backend
        .list(Kind::Index)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let mut known: HashMap<Id, PackRecord> = HashMap::new();
    for name in &index_files {
        match repo.load_index(keys, name) {
            Ok(records) => {
                for r in records {
                    known.entry(r.id).or_insert(r);
                }
            }
            Err(e) if e.is_damage() => report.damaged.push(Unreadable {
                name: name.clone(),
                reason: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    let stored = repo.backend.list(Kind::Packs)?;
    report.packs = stored.len();
    let stored_names: HashSet<&str> = stored.iter().map(|o| o.name.as_str()).collect();
    report.missing_packs = known
        .keys()
        .filter(|id| !stored_names.contains(id.to_hex().as_str()))
        .count();
    let mut records: Vec<PackRecord> = Vec::with_capacity(stored.len());
    let progress = crate::progress::get();
    progress.begin_items(
        "repair index",
        "packs",
        stored.len() as u64,
        stored.iter().map(|o| o.size).sum(),
    );
    for info in &stored {
        // Nothing is written before this loop ends: stopping here changes nothing.
        crate::progress::check_cancelled("repair index")?;
        progress.set_current(&info.name);
        progress.add_files(1);
        progress.add_bytes(info.size);
        let Some(id) = Id::from_hex(&info.name) else {
            continue;
        };
        if !opts.read_all_packs {
            if let Some(r) = known.get(&id).filter(|r| r.size == info.size) {
                records.push(r.clone());
                continue;
            }
        }
        report.packs_read += 1;
        match crate::pack::read_trailer_ranged(repo.backend.as_ref(), keys, &id, info.size) {
            Ok(r) => records.push(r),
            Err(e) if e.is_damage() => report.unreadable_packs.push(Unreadable {
                name: info.name.clone(),
                reason: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    if !opts.read_all_packs
        && report.damaged.is_empty()
        && report.packs_read == 0
        && report.missing_packs == 0
    {
        report.nothing_to_do = true;
        return Ok(report);
    }
    records.sort_by_key(|r| r.id);
    for slice in records.chunks(256) {
        repo.save_index(keys, slice)?;
        report.index_files_written += 1;
    }
    for name in &index_files {
        match repo.backend.delete(Kind::Index, name) {
            Ok(()) => report.index_files_removed += 1,
            Err(e) if e.is_retention_locked() => {
                report.kept_locked.push(crate::prune::KeptObject {
                    kind: Kind::Index,
                    name: name.clone(),
                    why: crate::prune::KeptWhy::Retention,
                })
            }
            Err(e) => return Err(e),
        }
    }
    cache.sync_index(repo, keys)?;
    Ok(report)
}

#[derive(Debug, Default, Clone)]
pub struct SnapshotRepairOptions {
    /// Delete each original once its repaired snapshot is written.
    pub forget_originals: bool,
    /// Report what is lost and write nothing.
    pub dry_run: bool,
    pub lock_wait: Duration,
}

#[derive(Debug, Serialize)]
pub struct RepairedSnapshot {
    #[serde(serialize_with = "id_hex")]
    pub original: Id,
    pub time: String,
    pub hostname: String,
    /// The snapshot written without the lost files (none in a dry run, or when nothing
    /// of the snapshot could be read).
    #[serde(serialize_with = "opt_id_hex")]
    pub repaired: Option<Id>,
    /// Paths of the files left out, and of folders whose listing is lost (kept empty).
    pub lost: Vec<String>,
    pub original_forgotten: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct SnapshotRepairReport {
    pub snapshots: usize,
    /// Only the snapshots that lost something.
    pub damaged: Vec<RepairedSnapshot>,
}

fn id_hex<S: serde::Serializer>(id: &Id, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

fn opt_id_hex<S: serde::Serializer>(id: &Option<Id>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&id.to_hex()),
        None => s.serialize_none(),
    }
}

/// Result of repairing one tree: its new id (the same when nothing below it is lost),
/// and the lost paths below it, relative to it.
struct Fixed {
    id: Id,
    lost: Vec<Vec<Vec<u8>>>,
}

/// Repairs trees with [`crate::walk::fold`]: each tree once, children first; a tree that
/// cannot be read folds to `None`.
struct Fixer<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    stored: &'a HashSet<String>,
    /// Tree blobs to write: id and encoding.
    new_trees: Vec<(Id, Vec<u8>)>,
}

impl Fixer<'_> {
    fn present(&self, id: &Id) -> Result<bool> {
        Ok(self
            .cache
            .locations(id)?
            .iter()
            .any(|l| self.stored.contains(&l.pack.to_hex())))
    }

    /// True when every blob of `node`'s content (an entry of tree `tree_id`, read
    /// without its chunk lists) lies in a pack the store holds: its lists, which must
    /// also open, and every chunk they and its inline extents name.
    fn whole(&self, tree_id: &Id, node: &Node) -> Result<bool> {
        let mut whole = true;
        let opened = crate::walk::content(self.reader, self.cache, tree_id, node, |id| {
            whole = whole && self.present(&id)?;
            Ok(whole)
        })?;
        Ok(whole && opened.is_ok())
    }

    fn put_tree(&mut self, tree: &Tree) -> Result<Id> {
        let bytes = tree.encode();
        let id = self.reader.keys.blob_id(&bytes);
        if !self.present(&id)? && !self.new_trees.iter().any(|(i, _)| *i == id) {
            self.new_trees.push((id, bytes));
        }
        Ok(id)
    }
}

impl Fold for Fixer<'_> {
    type Out = Option<Rc<Fixed>>;

    fn read(&mut self, tree_id: &Id) -> Result<std::result::Result<Tree, Self::Out>> {
        if !self.present(tree_id)? {
            return Ok(Err(None));
        }
        // Lists unread: a long file whose chunk list is lost is judged in `combine`,
        // and only that file is left out.
        match self.reader.tree_shallow(self.cache, tree_id) {
            Ok(t) => Ok(Ok(t)),
            Err(e) if e.is_damage() => Ok(Err(None)),
            Err(e) => Err(e),
        }
    }

    /// Leaves out files with a chunk in no pack the store holds, keeps a folder whose
    /// listing is lost empty, and writes the tree anew when anything below it changed.
    fn combine(
        &mut self,
        tree_id: &Id,
        tree: Tree,
        below: Vec<Option<Self::Out>>,
    ) -> Result<Self::Out> {
        let mut lost: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let mut changed = false;
        for (mut node, below) in tree.nodes.into_iter().zip(below) {
            if !self.whole(tree_id, &node)? {
                lost.push(vec![node.name.clone()]);
                changed = true;
                continue;
            }
            match below {
                None => {}
                Some(Some(f)) => {
                    if Some(f.id) != node.subtree {
                        node.subtree = Some(f.id);
                        changed = true;
                    }
                    for rel in &f.lost {
                        let mut p = vec![node.name.clone()];
                        p.extend(rel.iter().cloned());
                        lost.push(p);
                    }
                }
                Some(None) => {
                    // The folder's listing is lost: keep the folder, empty.
                    node.subtree = Some(self.put_tree(&Tree::default())?);
                    lost.push(vec![node.name.clone()]);
                    changed = true;
                }
            }
            nodes.push(node);
        }
        let id = if changed {
            self.put_tree(&Tree { nodes })?
        } else {
            *tree_id
        };
        Ok(Some(Rc::new(Fixed { id, lost })))
    }
}

fn show(path: &[Vec<u8>]) -> String {
    let parts: Vec<String> = path.iter().map(|c| display_name(c)).collect();
    format!("/{}", parts.join("/"))
}

pub fn repair_snapshots(
    reader: &BlobReader,
    cache: &mut Cache,
    opts: &SnapshotRepairOptions,
) -> Result<SnapshotRepairReport> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    // Shared: like a snapshot, it relies on packs prune must not delete meanwhile.
    let _lease = if opts.dry_run {
        None
    } else {
        Some(Lease::acquire_waiting(
            &repo.backend,
            keys,
            LeaseKind::Shared,
            "repair snapshots",
            opts.lock_wait,
        )?)
    };
    cache.sync_index(repo, keys)?;
    let stored: HashSet<String> = repo
        .backend
        .list(Kind::Packs)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let snapshots = repo.snapshots(keys)?;
    let mut report = SnapshotRepairReport {
        snapshots: snapshots.len(),
        ..Default::default()
    };
    let mut fixer = Fixer {
        reader,
        cache,
        stored: &stored,
        new_trees: Vec::new(),
    };
    let mut memo = HashMap::new();
    let mut plans = Vec::new();
    let progress = crate::progress::get();
    progress.begin_items("repair snapshots", "snapshots", snapshots.len() as u64, 0);
    for (id, snap) in &snapshots {
        // Nothing is written before this loop ends: stopping here changes nothing.
        crate::progress::check_cancelled("repair snapshots")?;
        progress.set_current(&id.short());
        progress.add_files(1);
        let fixed = crate::walk::fold(&mut fixer, &mut memo, &snap.tree)?;
        let (new_root, lost) = match fixed {
            Some(f) if f.lost.is_empty() => continue,
            Some(f) => (Some(f.id), f.lost.iter().map(|p| show(p)).collect()),
            None => (None, vec!["/".to_string()]),
        };
        plans.push((*id, snap.clone(), new_root, lost));
    }
    let new_trees = std::mem::take(&mut fixer.new_trees);
    if !opts.dry_run && !new_trees.is_empty() {
        let recipients = crate::crypto::parse_recipients(&repo.config.recipients)?;
        let mut records = Vec::new();
        let mut writer: Option<PackWriter> = None;
        for (id, bytes) in &new_trees {
            let compressed = crate::pack::compress(bytes, repo.config.compression_level);
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(repo.new_pack(&recipients, bytes.len() + 1024)?),
            };
            w.add(
                *id,
                BlobKind::Tree,
                bytes.len() as u32,
                compressed.is_some(),
                compressed.as_deref().unwrap_or(bytes),
            )?;
            if w.is_full() {
                records.push(repo.save_pack(keys, writer.take().unwrap())?);
            }
        }
        if let Some(w) = writer.take() {
            records.push(repo.save_pack(keys, w)?);
        }
        let name = repo.save_index(keys, &records)?;
        cache.add_index(&name, &records)?;
    }
    for (id, snap, new_root, lost) in plans {
        let mut entry = RepairedSnapshot {
            original: id,
            time: snap.time.clone(),
            hostname: snap.hostname.clone(),
            repaired: None,
            lost,
            original_forgotten: false,
        };
        if let (false, Some(root)) = (opts.dry_run, new_root) {
            let mut repaired = snap.clone();
            repaired.tree = root;
            if !repaired.tags.iter().any(|t| t == REPAIRED_TAG) {
                repaired.tags.push(REPAIRED_TAG.to_string());
            }
            repaired.program = format!("vault {} (repair snapshots)", env!("CARGO_PKG_VERSION"));
            let new_id = repo.save_snapshot(keys, &repaired)?;
            entry.repaired = Some(new_id);
            if opts.forget_originals {
                repo.backend.delete(Kind::Snapshots, &id.to_hex())?;
                entry.original_forgotten = true;
            }
        }
        report.damaged.push(entry);
    }
    Ok(report)
}
