//! Taking a snapshot.
//!
//! The calling thread walks the sources in name order, reads each changed file and cuts
//! it into content-defined chunks (FastCDC v2020, gear table seeded from the id key),
//! hashes each chunk with the keyed blob-id hash, and hands chunks the store lacks to a
//! pool of workers. Read-ahead threads ([`ahead`]) make the stats of each folder's next
//! window of entries and read the small files among them that must be read, so that the
//! walk does not wait on one system call after another. The workers compress on every core and encrypt into one shared pack;
//! a thread of its own uploads each pack once it is full while the next one fills, so at
//! most two packs exist (built in staged files, not in memory) and upload overlaps
//! packing and the walk. Directory trees are built bottom-up as the walk leaves each directory and go
//! through the same pool.
//!
//! Order of durability: packs are uploaded first; an index file naming finished packs is
//! written every 32 packs, 32,768 blobs or 30 s, whichever comes first, and at the end
//! (the walker and [`BlobSink`] share that code); the snapshot record goes last. Only
//! then does the local cache learn of the new blobs and files. A crash at any point leaves a
//! store that holds, at worst, packs nobody references yet; the next snapshot re-uploads
//! whatever was not indexed. What the files cache will learn is streamed to the cache's
//! pending rows in batches of [`FILE_ROWS_BATCH`] as the walk goes (so memory does not
//! grow with the number of files) and becomes part of the files cache only after the
//! snapshot record is written.
//!
//! Additions ([`run_with`]): a [`Capture`] takes over one folder of the walk (a database
//! cluster saved as an online base backup): it is asked to begin when the walk reaches
//! that folder, names what to leave out below it, and once everything in it was read
//! names synthetic files to add (a backup label, the WAL the backup needs) before the
//! folder's tree is sealed. Whatever goes wrong after `begin`, its `abort` runs before the
//! error is returned. Synthetic files ([`ExtraSource`]) may also stand at top level (a
//! command's output). A cancel flag stops the walk at the next entry or chunk; the
//! snapshot is then not saved.
//!
//! Files that change while they are read: each file's size, mtime, ctime and inode are
//! compared before and after reading, and a read that ends before the size the stat gave
//! (a file truncated under us) counts as a change. A changed file is read once more; if
//! it changes again, what the second read got is stored with the length it really had
//! (never padded to the size first seen) and the path is reported as changed during the
//! snapshot, which makes the snapshot partial. A changed file never enters the files
//! cache.
//!
//! [`FILE_ROWS_BATCH`]: files_cache::FILE_ROWS_BATCH

use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::fsmeta::{self, Names};
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::repo::{Repo, Snapshot, Summary};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use upload::Uploader;
use walker::Walker;

/// Moves a long file's extents out of its node into chunk lists, each stored through
/// `put` (as a blob of kind tree), when the store takes chunk lists (version 3 and
/// later). A node whose lists are already set, or whose file fits inline, is left alone.
fn move_to_lists(
    repo: &Repo,
    keys: &WriterKeys,
    node: &mut crate::tree::Node,
    mut put: impl FnMut(Id, Vec<u8>) -> Result<()>,
) -> Result<()> {
    if !repo.has_chunk_lists() || !node.lists.is_empty() {
        return Ok(());
    }
    let Some(lists) = crate::tree::ChunkList::split(&node.extents) else {
        return Ok(());
    };
    for list in lists {
        let bytes = list.encode();
        let id = keys.blob_id(&bytes);
        put(id, bytes)?;
        node.lists.push(id);
    }
    node.extents = Vec::new();
    Ok(())
}

/// `tree` as it is stored: long files' extents moved to chunk lists (see
/// [`move_to_lists`]); `None` when it already is (nothing to copy).
fn with_lists(
    repo: &Repo,
    keys: &WriterKeys,
    tree: &crate::tree::Tree,
    mut put: impl FnMut(Id, Vec<u8>) -> Result<()>,
) -> Result<Option<crate::tree::Tree>> {
    let long = |n: &crate::tree::Node| {
        n.lists.is_empty()
            && n.extents.iter().map(|e| e.chunks.len()).sum::<usize>() > crate::tree::INLINE_CHUNKS
    };
    if !repo.has_chunk_lists() || !tree.nodes.iter().any(long) {
        return Ok(None);
    }
    let mut tree = tree.clone();
    for node in &mut tree.nodes {
        move_to_lists(repo, keys, node, &mut put)?;
    }
    Ok(Some(tree))
}

mod ahead;
mod capture;
mod extra;
mod files_cache;
mod read;
mod sink;
mod upload;
mod walker;

pub use sink::BlobSink;

pub struct SnapshotOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    pub hostname: String,
    /// Absolute paths to leave out, or names to leave out wherever they appear.
    pub excludes: Vec<String>,
    pub threads: usize,
    /// How long to wait for a running prune to finish before giving up.
    pub lock_wait: Duration,
}

/// What a [`Capture`] leaves out of the folder it manages.
#[derive(Clone, Debug, Default)]
pub struct CaptureRules {
    /// Names left out directly inside the folder.
    pub skip_top: Vec<Vec<u8>>,
    /// Folders directly inside the folder saved empty (contents left out); a symlink to a
    /// folder is saved as that folder. Extra files may be added to them.
    pub empty_top: Vec<Vec<u8>>,
    /// Entries whose name starts with one of these are left out at any depth.
    pub skip_prefixes: Vec<Vec<u8>>,
    /// Entries that vanish while the folder is walked are skipped silently (the files
    /// were removed by the running server; its log replay accounts for them).
    pub tolerate_vanished: bool,
}

/// Where a synthetic file's bytes come from.
#[derive(Clone, Debug)]
pub enum ExtraSource {
    Bytes(Vec<u8>),
    /// A file on this host, read whole (it must exist).
    File(PathBuf),
    /// The standard output of a command (argv); a non-zero exit fails the snapshot.
    Command(Vec<std::ffi::OsString>),
}

/// A file the snapshot holds that is not (as such) on disk.
#[derive(Clone, Debug)]
pub struct ExtraFile {
    /// For a capture: relative to its folder, either a plain name or `EMPTY_DIR/NAME` for
    /// one of its [`CaptureRules::empty_top`] folders. At top level: an absolute path.
    pub path: PathBuf,
    pub source: ExtraSource,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What a [`Capture`] hands back once the walk of its folder is done.
pub struct CaptureEnd {
    pub extras: Vec<ExtraFile>,
    pub record: crate::repo::DatabaseCapture,
}

/// Takes over one folder of a snapshot. Calls, in order: `begin` when the walk reaches
/// the folder; `end` once everything in it was read; `release` after the extra files
/// were read. `abort` instead of the rest when anything failed after `begin` returned.
pub trait Capture {
    fn dir(&self) -> &Path;
    fn begin(&mut self) -> Result<CaptureRules>;
    fn end(&mut self) -> Result<CaptureEnd>;
    fn release(&mut self) -> Result<()>;
    fn abort(&mut self) -> Result<()>;
}

/// Everything a snapshot may add to the plain walk of its sources.
#[derive(Default)]
pub struct Additions<'a> {
    pub captures: Vec<&'a mut dyn Capture>,
    /// Synthetic files at absolute paths outside every source path.
    pub files: Vec<ExtraFile>,
    /// Set (by a signal handler) to stop the snapshot; it then fails with
    /// [`Error::Cancelled`] and saves nothing.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// A source entry that could not be read.
#[derive(Clone, Debug)]
pub struct SourceProblem {
    pub path: PathBuf,
    pub error: String,
    /// True when the entry was saved but changed while it was read (twice), so what the
    /// snapshot holds may not be any state the file was ever in as a whole.
    pub changed: bool,
}

pub struct SnapshotResult {
    pub id: Id,
    pub snapshot: Snapshot,
    pub problems: Vec<SourceProblem>,
}

/// Takes a snapshot of `opts.paths` into `repo`.
pub fn run(
    repo: &Repo,
    keys: &WriterKeys,
    recipients: &[age::x25519::Recipient],
    cache: &mut Cache,
    opts: &SnapshotOptions,
) -> Result<SnapshotResult> {
    run_with(repo, keys, recipients, cache, opts, Additions::default())
}

/// [`run`] with captured folders, synthetic files and a cancel flag.
pub fn run_with(
    repo: &Repo,
    keys: &WriterKeys,
    recipients: &[age::x25519::Recipient],
    cache: &mut Cache,
    opts: &SnapshotOptions,
    additions: Additions<'_>,
) -> Result<SnapshotResult> {
    let started = Instant::now();
    let started_wall = SystemTime::now();
    // Held until the snapshot record is written: prune must not delete packs this
    // snapshot finds in the index and reuses.
    let _lease = Lease::acquire_waiting(
        &repo.backend,
        keys,
        LeaseKind::Shared,
        "snapshot",
        opts.lock_wait,
    )?;
    cache.sync_index(repo, keys)?;
    cache.pending_files_begin()?;
    let sources = normalise_sources(&opts.paths)?;
    check_top_level_extras(&additions.files, &sources)?;

    let staging = upload::staging(repo, cache);
    let mut walker = Walker {
        keys,
        cache,
        repo,
        uploader: Uploader::start(repo, keys, recipients, opts.threads.max(1), Some(staging)),
        names: Names::default(),
        summary: Summary::default(),
        problems: Vec::new(),
        file_rows: Vec::new(),
        file_rows_chunks: 0,
        links: HashMap::new(),
        excludes: opts.excludes.clone(),
        chunker: None,
        captures: additions.captures,
        active: None,
        databases: Vec::new(),
        cancel: additions.cancel,
        racy_after_ns: started_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64 - 2_000_000_000)
            .unwrap_or(0),
        files_read: 0,
        ahead: ahead::ReadAhead::start(
            opts.threads.max(1),
            Some(ahead::OneChunk {
                keys: keys.clone(),
                min_size: repo.config.chunker.min_size as u64,
            }),
        ),
    };
    crate::progress::get().begin("snapshot", 0, 0);
    let root = walk_and_upload(&mut walker, &sources, &additions.files)?;

    let mut summary = walker.summary;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time: chrono::DateTime::<chrono::Local>::from(started_wall).to_rfc3339(),
        hostname: opts.hostname.clone(),
        username: fsmeta::Names::default()
            .user(rustix::process::geteuid().as_raw())
            .unwrap_or_default(),
        paths: record_paths(&sources, &additions.files),
        tags: opts.tags.clone(),
        tree: root,
        summary,
        program: format!("vault {}", env!("CARGO_PKG_VERSION")),
        databases: std::mem::take(&mut walker.databases),
    };
    let id = match repo.save_snapshot(keys, &snapshot) {
        Ok(id) => id,
        Err(e) => {
            let _ = walker.cache.pending_files_discard();
            return Err(e);
        }
    };
    // Best effort: partial writes of killed runs, long untouched (`check` lists them).
    let _ = crate::backend::remove_leftovers(repo.backend.as_ref(), crate::backend::LEFTOVER_GRACE);
    // The snapshot is durable; only now may the cache trust the files it read.
    walker.cache.pending_files_commit()?;
    Ok(SnapshotResult {
        id,
        snapshot,
        problems: walker.problems,
    })
}

/// Top-level synthetic files stand at absolute paths outside every source path.
fn check_top_level_extras(files: &[ExtraFile], sources: &[PathBuf]) -> Result<()> {
    for f in files {
        if !f.path.is_absolute() || f.path.parent().is_none() {
            return Err(Error::Usage(format!(
                "{} must be an absolute file path",
                f.path.display()
            )));
        }
        if let Some(s) = sources
            .iter()
            .find(|s| f.path.starts_with(s) || s.starts_with(&f.path))
        {
            return Err(Error::Usage(format!(
                "{} overlaps the saved path {}; choose a name outside the saved paths",
                f.path.display(),
                s.display()
            )));
        }
    }
    Ok(())
}

/// Walks the sources, then waits until every pack is durable and indexed; returns the
/// root tree. On any failure the files cache learns nothing; after a cancel the packs
/// already uploaded are indexed, so the next snapshot reuses them.
fn walk_and_upload(
    walker: &mut Walker<'_, '_>,
    sources: &[PathBuf],
    extras: &[ExtraFile],
) -> Result<Id> {
    let walked = walker.save_sources(sources, extras);
    let root = match walked {
        Ok(root) => root,
        Err(e @ Error::Cancelled { .. }) => {
            let _ = walker.cache.pending_files_discard();
            // Keep what was uploaded: indexed packs are reused by the next snapshot.
            walker.finish_uploads()?;
            return Err(e);
        }
        Err(e) => {
            let _ = walker.cache.pending_files_discard();
            // Let the workers stop; the packs they wrote stay unreferenced until prune.
            let _ = walker.uploader.finish();
            return Err(e);
        }
    };
    let ended = walker
        .finish_uploads()
        .and_then(|()| walker.check_cancel())
        .and_then(|()| walker.flush_file_rows());
    if let Err(e) = ended {
        let _ = walker.cache.pending_files_discard();
        return Err(e);
    }
    Ok(root)
}

/// The paths a snapshot record names: the sources and the top-level synthetic files, in
/// order, as raw bytes.
fn record_paths(sources: &[PathBuf], extras: &[ExtraFile]) -> Vec<serde_bytes::ByteBuf> {
    let mut all: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
    all.extend(extras.iter().map(|f| f.path.as_path()));
    all.sort();
    all.iter()
        .map(|p| serde_bytes::ByteBuf::from(p.as_os_str().as_bytes().to_vec()))
        .collect()
}

/// Makes source paths absolute and lexically clean, and drops paths inside other sources.
/// Each must exist.
pub fn normalise_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("read the current folder", e))?;
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        };
        let mut clean = PathBuf::from("/");
        for c in abs.components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::ParentDir => {
                    clean.pop();
                }
                _ => {}
            }
        }
        std::fs::symlink_metadata(&clean)
            .map_err(|e| Error::io(format!("source path {}", clean.display()), e))?;
        out.push(clean);
    }
    out.sort();
    out.dedup();
    let all = out.clone();
    out.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(out)
}
