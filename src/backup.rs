//! Taking a snapshot.
//!
//! The calling thread walks the sources in name order, reads each changed file and cuts
//! it into content-defined chunks (FastCDC v2020, gear table seeded from the id key),
//! hashes each chunk with the keyed blob-id hash, and hands chunks the store lacks to a
//! pool of workers. Each worker compresses, encrypts into a pack of its own and uploads
//! the pack when it is full, so packing and upload run on every core while the walk goes
//! on. Directory trees are built bottom-up as the walk leaves each directory and go
//! through the same pool.
//!
//! Order of durability: packs are uploaded first; an index file naming finished packs is
//! written every 32 packs or 30 s, whichever comes first, and at the end (the walker and
//! [`BlobSink`] share that code); the snapshot record goes last. Only then
//! does the local cache learn of the new blobs and files. A crash at any point leaves a
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

use crate::cache::{Cache, FileStamp};
use crate::chunker::{ChunkError, Chunker};
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::fsmeta::{self, Names};
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::pack::{self, BlobKind, PackRecord, PackWriter};
use crate::repo::{Repo, Snapshot, Summary};
use crate::tree::{ChunkRef, Extent, LinkKey, Node, NodeKind, Tree};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// An index file is written once this many packs (512 MiB at the default 16 MiB) wait
/// for one, so an interrupted snapshot keeps most of its uploads for the next run.
const INDEX_EVERY_PACKS: usize = 32;

/// ... or once this long has passed since the last index file, whichever comes first, so
/// that a snapshot killed at any point after this long keeps what it uploaded, however
/// slowly packs go out (32 packs take 3 s to a local disk but nearly a minute over a
/// 10 MB/s uplink). One small index object per 30 s costs nothing next to the packs (a
/// ten-hour first snapshot writes 1,200 of them, about 1 KiB per pack each; prune merges
/// them), while a shorter interval would only add objects: a kill loses at most what
/// finished since the last index file plus the packs the workers were still filling.
const INDEX_EVERY: Duration = Duration::from_secs(30);

/// Files-cache rows are handed to the cache's pending rows in batches of this many
/// (about 0.8 MiB held at most; one SQLite transaction per batch).
const FILE_ROWS_BATCH: usize = 1024;

/// The interval between index files: [`INDEX_EVERY`], unless the environment variable
/// `VAULT_TEST_INDEX_INTERVAL_MS` sets another (meant for tests that kill a snapshot
/// half-way; not a user setting).
fn index_interval() -> Duration {
    std::env::var("VAULT_TEST_INDEX_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(INDEX_EVERY, Duration::from_millis)
}

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
    for f in &additions.files {
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

    let mut walker = Walker {
        keys,
        cache,
        repo,
        uploader: Uploader::start(repo, keys, recipients, opts.threads.max(1)),
        names: Names::default(),
        summary: Summary::default(),
        problems: Vec::new(),
        file_rows: Vec::new(),
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
    };
    crate::progress::get().begin("snapshot", 0, 0);
    let walked = walker.save_sources(&sources, &additions.files);
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

    let mut summary = walker.summary;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time: chrono::DateTime::<chrono::Local>::from(started_wall).to_rfc3339(),
        hostname: opts.hostname.clone(),
        username: fsmeta::Names::default()
            .user(rustix::process::geteuid().as_raw())
            .unwrap_or_default(),
        paths: {
            let mut all: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
            all.extend(additions.files.iter().map(|f| f.path.as_path()));
            all.sort();
            all.iter()
                .map(|p| serde_bytes::ByteBuf::from(p.as_os_str().as_bytes().to_vec()))
                .collect()
        },
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

struct Walker<'a, 'c> {
    keys: &'a WriterKeys,
    cache: &'a mut Cache,
    repo: &'a Repo,
    uploader: Uploader,
    names: Names,
    summary: Summary,
    problems: Vec<SourceProblem>,
    file_rows: Vec<(Vec<u8>, FileStamp, Vec<Extent>)>,
    links: HashMap<LinkKey, FileContent>,
    excludes: Vec<String>,
    /// Taken out while a file is being cut (the cut calls back into the walker).
    chunker: Option<Chunker>,
    captures: Vec<&'c mut dyn Capture>,
    /// The rules of the capture whose folder is being walked.
    active: Option<CaptureRules>,
    databases: Vec<crate::repo::DatabaseCapture>,
    cancel: Option<Arc<AtomicBool>>,
    /// Files modified after this moment are not put in the files cache: they could change
    /// again within the timestamp granularity without their stamp changing.
    racy_after_ns: i64,
    /// Files opened and read so far (as opposed to taken from the files cache).
    files_read: u64,
}

/// A directory on the way from `/` to the sources.
#[derive(Default)]
struct Skeleton {
    children: BTreeMap<Vec<u8>, SkeletonEntry>,
}

enum SkeletonEntry {
    Source(PathBuf),
    Ancestor(PathBuf, Skeleton),
    /// Index into the synthetic top-level files.
    Extra(usize),
}

impl Walker<'_, '_> {
    fn save_sources(&mut self, sources: &[PathBuf], extras: &[ExtraFile]) -> Result<Id> {
        let mut root = Skeleton::default();
        let all = sources
            .iter()
            .map(|p| (p, None))
            .chain(extras.iter().enumerate().map(|(i, f)| (&f.path, Some(i))));
        for (src, extra) in all {
            let comps: Vec<&std::ffi::OsStr> = src
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect();
            let mut level = &mut root;
            let mut so_far = PathBuf::from("/");
            for (i, c) in comps.iter().enumerate() {
                so_far.push(c);
                let key = c.as_bytes().to_vec();
                if i + 1 == comps.len() {
                    let entry = match extra {
                        Some(i) => SkeletonEntry::Extra(i),
                        None => SkeletonEntry::Source(so_far.clone()),
                    };
                    level.children.insert(key, entry);
                } else {
                    let entry = level.children.entry(key).or_insert_with(|| {
                        SkeletonEntry::Ancestor(so_far.clone(), Skeleton::default())
                    });
                    match entry {
                        SkeletonEntry::Ancestor(_, s) => level = s,
                        SkeletonEntry::Source(_) | SkeletonEntry::Extra(_) => {
                            unreachable!("nested sources were dropped")
                        }
                    }
                }
            }
        }
        if sources.is_empty() && extras.is_empty() {
            return Err(Error::Usage("nothing to snapshot: no source paths".into()));
        }
        let tree = self.save_skeleton(&root, extras)?;
        self.put_tree(&tree)
    }

    fn save_skeleton(&mut self, sk: &Skeleton, extras: &[ExtraFile]) -> Result<Tree> {
        let mut nodes = Vec::new();
        for (name, entry) in &sk.children {
            match entry {
                SkeletonEntry::Source(path) => {
                    if let Some(node) = self.save_entry(path, name.clone())? {
                        nodes.push(node);
                    }
                }
                SkeletonEntry::Extra(i) => {
                    nodes.push(self.extra_node(name.clone(), &extras[*i])?);
                }
                SkeletonEntry::Ancestor(path, inner) => {
                    let meta = std::fs::symlink_metadata(path)
                        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
                    let mut node = self.node_from_meta(path, name.clone(), &meta, NodeKind::Dir);
                    let tree = self.save_skeleton(inner, extras)?;
                    node.subtree = Some(self.put_tree(&tree)?);
                    nodes.push(node);
                }
            }
        }
        Ok(Tree { nodes })
    }

    fn problem(&mut self, path: &Path, error: impl ToString) {
        self.summary.errors += 1;
        self.problems.push(SourceProblem {
            path: path.to_path_buf(),
            error: error.to_string(),
            changed: false,
        });
    }

    fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        if let Some(rules) = &self.active {
            if rules.skip_prefixes.iter().any(|p| name.starts_with(p)) {
                return true;
            }
        }
        self.excludes.iter().any(|ex| {
            if ex.starts_with('/') {
                path == Path::new(ex)
            } else {
                ex.as_bytes() == name
            }
        })
    }

    fn node_from_meta(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: &std::fs::Metadata,
        kind: NodeKind,
    ) -> Node {
        let xattrs = match fsmeta::read_xattrs(path) {
            Ok(x) => x,
            Err(e) => {
                self.problem(path, format!("cannot read extended attributes: {e}"));
                Vec::new()
            }
        };
        Node {
            name,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            user: self.names.user(meta.uid()),
            group: self.names.group(meta.gid()),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec() as u32,
            size: 0,
            xattrs,
            extents: Vec::new(),
            subtree: None,
            target: None,
            rdev: 0,
            link: None,
        }
    }

    /// Saves one entry; `None` when it could not be read (reported as a problem).
    fn save_entry(&mut self, path: &Path, name: Vec<u8>) -> Result<Option<Node>> {
        self.check_cancel()?;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if self.vanished_ok(&e) => return Ok(None),
            Err(e) => {
                self.problem(path, e);
                return Ok(None);
            }
        };
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_file() {
            NodeKind::File
        } else if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::CharDevice
        } else if ft.is_block_device() {
            NodeKind::BlockDevice
        } else {
            NodeKind::Socket
        };
        crate::progress::check_cancelled("snapshot")?;
        let mut node = self.node_from_meta(path, name, &meta, kind);
        if kind != NodeKind::Dir && meta.nlink() > 1 {
            node.link = Some(LinkKey {
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
        match kind {
            NodeKind::File => {
                self.summary.files += 1;
                let first_name = node.link.map_or(true, |k| !self.links.contains_key(&k));
                let progress = crate::progress::get();
                progress.set_current(&path.to_string_lossy());
                let read_before = self.summary.bytes_read;
                let files_read = self.files_read;
                match self.save_file_content(path, &meta, node.link)? {
                    Ok(content) => {
                        if let Some(m) = &content.reread {
                            // Saved from the second read: its stat is the one that holds.
                            node.mode = m.mode() & 0o7777;
                            node.uid = m.uid();
                            node.gid = m.gid();
                            node.user = self.names.user(m.uid());
                            node.group = self.names.group(m.gid());
                            node.mtime = m.mtime();
                            node.mtime_nsec = m.mtime_nsec() as u32;
                        }
                        node.size = content.size;
                        node.extents = content.extents;
                        // A hardlinked file's data counts once, at its first name.
                        if first_name {
                            self.summary.bytes += content.size;
                        }
                        // In a captured folder (an online base backup) files change while
                        // they are read by design: the WAL the capture adds repairs them.
                        if let Some(what) = content.changed.filter(|_| self.active.is_none()) {
                            self.summary.errors += 1;
                            self.problems.push(SourceProblem {
                                path: path.to_path_buf(),
                                error: what,
                                changed: true,
                            });
                        }
                    }
                    Err(_)
                        if self.active.as_ref().is_some_and(|r| r.tolerate_vanished)
                            && std::fs::symlink_metadata(path).is_err() =>
                    {
                        self.summary.files -= 1;
                        return Ok(None);
                    }
                    Err(e) => {
                        self.problem(path, e);
                        crate::progress::file_event(crate::progress::FileEvent::Skipped, path);
                        return Ok(None);
                    }
                }
                progress.add_files(1);
                // Packs that finished while this file was read get indexed when due,
                // also during long runs of unchanged files.
                self.drain_packs()?;
                if self.summary.bytes_read == read_before && self.files_read == files_read {
                    progress.add_bytes(if first_name { meta.len() } else { 0 });
                    crate::progress::file_event(crate::progress::FileEvent::Unchanged, path);
                } else {
                    crate::progress::file_event(crate::progress::FileEvent::Changed, path);
                }
            }
            NodeKind::Dir => {
                self.summary.dirs += 1;
                let tree = match self.captures.iter().position(|c| c.dir() == path) {
                    Some(i) if self.active.is_none() => self.save_captured(i, path)?,
                    _ => self.save_dir(path)?,
                };
                node.subtree = Some(self.put_tree(&tree)?);
            }
            NodeKind::Symlink => {
                self.summary.others += 1;
                match std::fs::read_link(path) {
                    Ok(t) => node.target = Some(t.as_os_str().as_bytes().to_vec()),
                    Err(e) => {
                        self.problem(path, e);
                        return Ok(None);
                    }
                }
            }
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                self.summary.others += 1;
                node.rdev = meta.rdev();
            }
            NodeKind::Fifo | NodeKind::Socket => self.summary.others += 1,
        }
        Ok(Some(node))
    }

    fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled {
                operation: "snapshot",
            }),
            _ => Ok(()),
        }
    }

    fn vanished_ok(&self, e: &std::io::Error) -> bool {
        e.kind() == std::io::ErrorKind::NotFound
            && self.active.as_ref().is_some_and(|r| r.tolerate_vanished)
    }

    /// Saves a folder a capture manages: begin, walk under its rules, end, add its extra
    /// files, release; abort on any failure after begin.
    fn save_captured(&mut self, i: usize, path: &Path) -> Result<Tree> {
        let rules = self.captures[i].begin()?;
        let walked = self.save_captured_inner(i, path, rules);
        self.active = None;
        match walked {
            Ok(tree) => {
                self.captures[i].release()?;
                Ok(tree)
            }
            Err(e) => match self.captures[i].abort() {
                Ok(()) => Err(e),
                Err(cleanup) => Err(Error::Backend(format!(
                    "{e}; cleaning up {} also failed: {cleanup}",
                    path.display()
                ))),
            },
        }
    }

    fn save_captured_inner(&mut self, i: usize, path: &Path, rules: CaptureRules) -> Result<Tree> {
        self.active = Some(rules.clone());
        let mut tree = self.save_dir_with(path, &rules)?;
        self.check_cancel()?;
        self.active = None;
        let end = self.captures[i].end()?;
        let mut by_dir: BTreeMap<Vec<u8>, Vec<&ExtraFile>> = BTreeMap::new();
        let mut top = Vec::new();
        for f in &end.extras {
            let comps: Vec<&[u8]> = f
                .path
                .components()
                .map(|c| c.as_os_str().as_bytes())
                .collect();
            match comps.as_slice() {
                [name] => top.push((name.to_vec(), f)),
                [dir, _] if rules.empty_top.iter().any(|d| d == dir) => {
                    by_dir.entry(dir.to_vec()).or_default().push(f)
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "extra file {} is not directly in {} or one of its emptied folders",
                        f.path.display(),
                        path.display()
                    )))
                }
            }
        }
        for node in &mut tree.nodes {
            if node.kind == NodeKind::Dir && node.subtree.is_none() {
                let mut sub = Tree::default();
                for f in by_dir.remove(&node.name).unwrap_or_default() {
                    let name = f.path.file_name().unwrap().as_bytes().to_vec();
                    sub.nodes.push(self.extra_node(name, f)?);
                }
                sub.nodes.sort_by(|a, b| a.name.cmp(&b.name));
                node.subtree = Some(self.put_tree(&sub)?);
            }
        }
        if let Some((dir, _)) = by_dir.into_iter().next() {
            return Err(Error::Usage(format!(
                "{}/{} is missing: cannot add files to it",
                path.display(),
                String::from_utf8_lossy(&dir)
            )));
        }
        for (name, f) in top {
            let node = self.extra_node(name, f)?;
            tree.nodes.retain(|n| n.name != node.name);
            tree.nodes.push(node);
        }
        tree.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.databases.push(end.record);
        Ok(tree)
    }

    /// Lists a captured folder under its rules; emptied folders get no subtree yet.
    fn save_dir_with(&mut self, path: &Path, rules: &CaptureRules) -> Result<Tree> {
        let mut tree = self.save_dir_filtered(path, |name| {
            !rules.skip_top.iter().any(|n| n == name) && !rules.empty_top.iter().any(|n| n == name)
        })?;
        for name in &rules.empty_top {
            let child = path.join(std::ffi::OsStr::from_bytes(name));
            // A symlinked folder (pg_wal elsewhere) is saved as the folder it points to.
            match std::fs::metadata(&child) {
                Ok(meta) if meta.is_dir() => {
                    self.summary.dirs += 1;
                    let node = self.node_from_meta(&child, name.clone(), &meta, NodeKind::Dir);
                    tree.nodes.push(node);
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.problem(&child, e),
            }
        }
        tree.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tree)
    }

    /// A node for a synthetic file, its content stored now.
    fn extra_node(&mut self, name: Vec<u8>, f: &ExtraFile) -> Result<Node> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let (extents, size, mtime, mtime_nsec) = match &f.source {
            ExtraSource::Bytes(b) => {
                let (x, n) = self.chunk_reader(&b[..], &f.path)?;
                (x, n, now.as_secs() as i64, now.subsec_nanos())
            }
            ExtraSource::File(p) => {
                let file =
                    File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e))?;
                let meta = file
                    .metadata()
                    .map_err(|e| Error::io(format!("stat {}", p.display()), e))?;
                let (x, n) = self.chunk_reader(&file, p)?;
                if n != meta.len() {
                    return Err(Error::Backend(format!(
                        "{} changed size while it was read ({} bytes, then {n})",
                        p.display(),
                        meta.len()
                    )));
                }
                (x, n, meta.mtime(), meta.mtime_nsec() as u32)
            }
            ExtraSource::Command(argv) => {
                let shown = argv
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ");
                let Some((prog, args)) = argv.split_first() else {
                    return Err(Error::Usage(format!(
                        "no command given for {}",
                        f.path.display()
                    )));
                };
                let mut child = std::process::Command::new(prog)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| Error::io(format!("start `{shown}`"), e))?;
                let out = child.stdout.take().expect("piped");
                let chunked = self.chunk_reader(out, &f.path);
                if chunked.is_err() {
                    let _ = child.kill();
                }
                let status = child
                    .wait()
                    .map_err(|e| Error::io(format!("wait for `{shown}`"), e))?;
                let (x, n) = chunked?;
                if !status.success() {
                    return Err(Error::Usage(format!(
                        "`{shown}` failed ({status}); its output was not saved as {}",
                        f.path.display()
                    )));
                }
                (x, n, now.as_secs() as i64, now.subsec_nanos())
            }
        };
        self.summary.files += 1;
        self.summary.bytes += size;
        Ok(Node {
            name,
            kind: NodeKind::File,
            mode: f.mode & 0o7777,
            uid: f.uid,
            gid: f.gid,
            user: self.names.user(f.uid),
            group: self.names.group(f.gid),
            mtime,
            mtime_nsec,
            size,
            xattrs: Vec::new(),
            extents,
            subtree: None,
            target: None,
            rdev: 0,
            link: None,
        })
    }

    /// Cuts a whole stream into chunks: one extent from offset 0 (no holes).
    fn chunk_reader(&mut self, r: impl Read, what: &Path) -> Result<(Vec<Extent>, u64)> {
        let mut chunker = self.chunker.take().unwrap_or_else(|| {
            Chunker::new(self.repo.config.chunker.clone(), self.keys.chunker_seed())
        });
        let mut chunks = Vec::new();
        let result = chunker.chunk(r, |data| {
            self.check_cancel()?;
            let id = self.keys.blob_id(data);
            chunks.push(ChunkRef {
                id,
                len: data.len() as u32,
            });
            self.add_blob(id, BlobKind::Data, data.to_vec())
        });
        self.chunker = Some(chunker);
        let n = match result {
            Ok(n) => n,
            Err(ChunkError::Read(e)) => {
                return Err(Error::io(format!("read {}", what.display()), e))
            }
            Err(ChunkError::Handler(e)) => return Err(e),
        };
        self.summary.bytes_read += n;
        let extents = if chunks.is_empty() {
            Vec::new()
        } else {
            vec![Extent { offset: 0, chunks }]
        };
        Ok((extents, n))
    }

    fn save_dir(&mut self, path: &Path) -> Result<Tree> {
        self.save_dir_filtered(path, |_| true)
    }

    fn save_dir_filtered(&mut self, path: &Path, keep: impl Fn(&[u8]) -> bool) -> Result<Tree> {
        let entries = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) if self.vanished_ok(&e) => return Ok(Tree::default()),
            Err(e) => {
                self.problem(path, format!("cannot list folder: {e}"));
                return Ok(Tree::default());
            }
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name().as_bytes().to_vec()),
                Err(e) => self.problem(path, format!("cannot list folder: {e}")),
            }
        }
        names.sort();
        let mut nodes = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            if !keep(&name) || self.excluded(&child, &name) {
                crate::progress::file_event(crate::progress::FileEvent::Skipped, &child);
                continue;
            }
            if let Some(node) = self.save_entry(&child, name)? {
                nodes.push(node);
            }
        }
        Ok(Tree { nodes })
    }

    fn put_tree(&mut self, tree: &Tree) -> Result<Id> {
        let bytes = tree.encode();
        let id = self.keys.blob_id(&bytes);
        self.add_blob(id, BlobKind::Tree, bytes)?;
        Ok(id)
    }

    fn add_blob(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        if self.uploader.pending.contains(&id) || self.cache.has_blob(&id)? {
            return Ok(());
        }
        // New data counts file content only (never more than was read); folder
        // listings are metadata, counted apart.
        match kind {
            BlobKind::Data => self.summary.new_bytes += data.len() as u64,
            _ => self.summary.new_meta_bytes += data.len() as u64,
        }
        self.uploader.send(id, kind, data)?;
        self.drain_packs()
    }

    /// Hands the files-cache rows gathered so far to the cache's pending rows.
    fn flush_file_rows(&mut self) -> Result<()> {
        if !self.file_rows.is_empty() {
            self.cache.pending_files_add(&self.file_rows)?;
            self.file_rows.clear();
        }
        Ok(())
    }

    /// Indexes finished packs when an index file is due.
    fn drain_packs(&mut self) -> Result<()> {
        self.uploader
            .drain(self.repo, self.keys, self.cache, &mut self.summary)
    }

    /// Waits for the workers and indexes every pack they wrote.
    fn finish_uploads(&mut self) -> Result<()> {
        self.uploader
            .finish_and_index(self.repo, self.keys, self.cache, &mut self.summary)
    }

    /// Outer error: the store failed, the snapshot stops. Inner error: this file could
    /// not be read, which is reported and the snapshot goes on.
    fn save_file_content(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        link: Option<LinkKey>,
    ) -> Result<std::result::Result<FileContent, String>> {
        if let Some(key) = link {
            if let Some(content) = self.links.get(&key) {
                return Ok(Ok(content.clone()));
            }
        }
        let stamp = stamp_of(meta);
        let path_bytes = path.as_os_str().as_bytes();
        let mut content = None;
        if let Some((old, cached)) = self.cache.file_lookup(path_bytes)? {
            if old == stamp && self.all_present(&cached)? {
                content = Some(FileContent {
                    extents: cached,
                    size: meta.len(),
                    reread: None,
                    changed: None,
                });
            }
        }
        let content = match content {
            Some(x) => x,
            None => {
                let x = match self.read_stable(path, meta) {
                    Ok(x) => x,
                    Err(ReadError::Source(msg)) => return Ok(Err(msg)),
                    Err(ReadError::Store(e)) => return Err(e),
                };
                let stamp = x.reread.as_ref().map_or(stamp, stamp_of);
                if x.changed.is_none()
                    && stamp.mtime_ns < self.racy_after_ns
                    && stamp.ctime_ns < self.racy_after_ns
                {
                    self.file_rows
                        .push((path_bytes.to_vec(), stamp, x.extents.clone()));
                    if self.file_rows.len() >= FILE_ROWS_BATCH {
                        self.flush_file_rows()?;
                    }
                }
                x
            }
        };
        if let Some(key) = link {
            self.links.insert(key, content.clone());
        }
        Ok(Ok(content))
    }

    /// Reads a file, once more if it changed while read; see the module docs.
    fn read_stable(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> std::result::Result<FileContent, ReadError> {
        let source = |what: &str, e: std::io::Error| ReadError::Source(format!("{what}: {e}"));
        let mut first_change = String::new();
        for attempt in 0..2 {
            let file = open_noatime(path).map_err(|e| source("cannot open", e))?;
            self.files_read += 1;
            // The first read trusts the stat the walk made (before opening, so a file
            // swapped for another in between shows as a changed inode); the second stats
            // what it opened.
            let before = if attempt == 0 {
                meta.clone()
            } else {
                file.metadata().map_err(|e| source("cannot stat", e))?
            };
            let read = self.read_file(&file, &before)?;
            let after = file.metadata().map_err(|e| source("cannot stat", e))?;
            let change = describe_change(&before, &after, &read);
            let Some(change) = change else {
                return Ok(FileContent {
                    extents: read.extents,
                    size: before.len(),
                    reread: (attempt > 0).then_some(before),
                    changed: None,
                });
            };
            if attempt == 0 {
                first_change = change;
                continue;
            }
            // What was read, with the length it really had: where a short read ended,
            // never the size the stat promised.
            let size = read.short_at.unwrap_or(before.len());
            return Ok(FileContent {
                extents: read.extents,
                size,
                reread: Some(before),
                changed: Some(format!(
                    "changed while it was read ({first_change}), and again when read once more \
                     ({change}); saved as read: {size} bytes"
                )),
            });
        }
        unreachable!("the loop returns on its second pass")
    }

    fn all_present(&self, extents: &[Extent]) -> Result<bool> {
        for c in extents.iter().flat_map(|e| &e.chunks) {
            if !self.uploader.pending.contains(&c.id) && !self.cache.has_blob(&c.id)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the data regions `meta` describes; notes where a read ended early.
    fn read_file(
        &mut self,
        file: &File,
        meta: &std::fs::Metadata,
    ) -> std::result::Result<ReadOnce, ReadError> {
        let regions = fsmeta::data_regions(file, meta.len(), meta.blocks())
            .map_err(|e| ReadError::Source(format!("cannot map holes: {e}")))?;
        let mut chunker = self.chunker.take().unwrap_or_else(|| {
            Chunker::new(self.repo.config.chunker.clone(), self.keys.chunker_seed())
        });
        let mut extents = Vec::with_capacity(regions.len());
        let mut outcome = Ok(());
        let mut short_at = None;
        for (offset, len) in regions {
            let mut f = file;
            if let Err(e) = f.seek(SeekFrom::Start(offset)) {
                outcome = Err(ReadError::Source(format!("cannot seek: {e}")));
                break;
            }
            let mut chunks = Vec::new();
            let result = chunker.chunk(f.take(len), |data| {
                self.check_cancel()?;
                let id = self.keys.blob_id(data);
                chunks.push(ChunkRef {
                    id,
                    len: data.len() as u32,
                });
                crate::progress::get().add_bytes(data.len() as u64);
                self.add_blob(id, BlobKind::Data, data.to_vec())
            });
            match result {
                Ok(n) => {
                    self.summary.bytes_read += n;
                    if n < len {
                        short_at = Some(offset + n);
                    }
                }
                Err(ChunkError::Read(e)) => {
                    outcome = Err(ReadError::Source(format!("read failed: {e}")));
                    break;
                }
                Err(ChunkError::Handler(e)) => {
                    outcome = Err(ReadError::Store(e));
                    break;
                }
            }
            if !chunks.is_empty() {
                extents.push(Extent { offset, chunks });
            }
            if short_at.is_some() {
                // The file ended early: there is nothing further to read.
                break;
            }
        }
        self.chunker = Some(chunker);
        outcome.map(|()| ReadOnce { extents, short_at })
    }
}

/// A regular file's saved content.
#[derive(Clone)]
struct FileContent {
    extents: Vec<Extent>,
    /// The size the snapshot records (what was read, for a file that kept changing).
    size: u64,
    /// The stat of the second read, when the first saw the file change.
    reread: Option<std::fs::Metadata>,
    /// Set when the file changed during both reads: what changed, for the report.
    changed: Option<String>,
}

/// What one read of a file got.
struct ReadOnce {
    extents: Vec<Extent>,
    /// Where the file ended when a read stopped before the size the stat gave.
    short_at: Option<u64>,
}

fn stamp_of(meta: &std::fs::Metadata) -> FileStamp {
    FileStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    }
}

/// `None` when the file stayed as it was during a read; otherwise what changed.
fn describe_change(
    before: &std::fs::Metadata,
    after: &std::fs::Metadata,
    read: &ReadOnce,
) -> Option<String> {
    if let Some(at) = read.short_at {
        return Some(format!(
            "it ended at {at} bytes, not the {} it had when read began",
            before.len()
        ));
    }
    let (b, a) = (stamp_of(before), stamp_of(after));
    if (b.dev, b.ino) != (a.dev, a.ino) {
        Some("it was replaced by another file".into())
    } else if b.size != a.size {
        Some(format!("its size went from {} to {} bytes", b.size, a.size))
    } else if b.mtime_ns != a.mtime_ns {
        Some("its modification time changed".into())
    } else if b.ctime_ns != a.ctime_ns {
        Some("its status-change time changed".into())
    } else {
        None
    }
}

enum ReadError {
    Source(String),
    Store(Error),
}

/// Opens for reading without updating the access time where the kernel allows it
/// (only the owner or root may ask for that).
fn open_noatime(path: &Path) -> std::io::Result<File> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        other => other,
    }
}

struct Job {
    id: Id,
    kind: BlobKind,
    data: Vec<u8>,
}

/// The worker pool that compresses, encrypts, packs and uploads blobs.
struct Uploader {
    tx: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<Result<()>>>,
    done_rx: Receiver<PackRecord>,
    /// Blobs handed to workers whose pack is not yet in an index file.
    pending: HashSet<Id>,
    /// Durable packs not yet in an index file.
    finished: Vec<PackRecord>,
    /// When the last index file was written (or the uploads began).
    last_index: Instant,
    /// At most this long between index files while packs finish.
    index_every: Duration,
}

impl Uploader {
    fn start(
        repo: &Repo,
        keys: &WriterKeys,
        recipients: &[age::x25519::Recipient],
        threads: usize,
    ) -> Uploader {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (done_tx, done_rx) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let done_tx = done_tx.clone();
                let repo = repo.clone();
                let keys = keys.clone();
                let recipients = recipients.to_vec();
                std::thread::spawn(move || -> Result<()> {
                    let pack_size = repo.config.pack_size as usize;
                    let level = repo.config.compression_level;
                    // Trees may exceed the chunker's maximum; they are rare and small next to a pack.
                    let max_blob = repo.config.chunker.max_size as usize + 1024;
                    let mut writer: Option<PackWriter> = None;
                    loop {
                        let job = rx.lock().unwrap().recv();
                        let Ok(job) = job else { break };
                        let compressed = pack::compress(&job.data, level);
                        let payload = compressed.as_deref().unwrap_or(&job.data);
                        if writer.is_none() {
                            writer = Some(PackWriter::new(&recipients, pack_size, max_blob)?);
                        }
                        let w = writer.as_mut().unwrap();
                        w.add(
                            job.id,
                            job.kind,
                            job.data.len() as u32,
                            compressed.is_some(),
                            payload,
                        );
                        if w.len() >= pack_size {
                            let record = repo.save_pack(&keys, writer.take().unwrap())?;
                            let _ = done_tx.send(record);
                        }
                    }
                    if let Some(w) = writer.take().filter(|w| !w.is_empty()) {
                        let record = repo.save_pack(&keys, w)?;
                        let _ = done_tx.send(record);
                    }
                    Ok(())
                })
            })
            .collect();
        Uploader {
            tx: Some(tx),
            workers,
            done_rx,
            pending: HashSet::new(),
            finished: Vec::new(),
            last_index: Instant::now(),
            index_every: index_interval(),
        }
    }

    /// Collects the packs the workers finished and writes an index file naming them once
    /// [`INDEX_EVERY_PACKS`] wait or [`index_interval`] passed since the last one. Cheap
    /// when nothing is due: callers may call it for every blob and every file.
    fn drain(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        cache: &mut Cache,
        summary: &mut Summary,
    ) -> Result<()> {
        while let Ok(record) = self.done_rx.try_recv() {
            self.finished.push(record);
        }
        if self.finished.len() >= INDEX_EVERY_PACKS
            || (!self.finished.is_empty() && self.last_index.elapsed() >= self.index_every)
        {
            let records = std::mem::take(&mut self.finished);
            self.index(repo, keys, cache, summary, records)?;
        }
        Ok(())
    }

    /// Waits for the workers, then writes the index file naming every pack not yet in one.
    fn finish_and_index(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        cache: &mut Cache,
        summary: &mut Summary,
    ) -> Result<()> {
        let records = self.finish()?;
        self.index(repo, keys, cache, summary, records)
    }

    /// Writes one index file naming `records` (durable packs), then tells the cache: the
    /// order that keeps the cache from ever claiming a blob the store lacks.
    fn index(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        cache: &mut Cache,
        summary: &mut Summary,
        records: Vec<PackRecord>,
    ) -> Result<()> {
        self.last_index = Instant::now();
        if records.is_empty() {
            return Ok(());
        }
        for r in &records {
            summary.packs += 1;
            summary.stored_bytes += r.size;
        }
        let name = repo.save_index(keys, &records)?;
        cache.add_index(&name, &records)?;
        for r in &records {
            for e in &r.entries {
                self.pending.remove(&e.id);
            }
        }
        Ok(())
    }

    fn send(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        self.pending.insert(id);
        let sent = self
            .tx
            .as_ref()
            .expect("uploader running")
            .send(Job { id, kind, data });
        if sent.is_err() {
            // Every worker has stopped, which only happens on an error: report it.
            self.tx = None;
            for w in self.workers.drain(..) {
                if let Ok(Err(e)) = w.join() {
                    return Err(e);
                }
            }
            return Err(Error::Backend("pack workers stopped unexpectedly".into()));
        }
        Ok(())
    }

    /// Waits for the workers and returns every durable pack not yet indexed.
    fn finish(&mut self) -> Result<Vec<PackRecord>> {
        self.tx = None;
        let mut first_err = None;
        for w in self.workers.drain(..) {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Backend("a pack worker panicked".into()));
                }
            }
        }
        let mut records = std::mem::take(&mut self.finished);
        while let Ok(r) = self.done_rx.recv_timeout(Duration::from_millis(0)) {
            records.push(r);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }
}

/// Stores blobs that do not come from walking the local filesystem (an imported archive):
/// the same chunker, the same deduplication against the cache and the same worker pool,
/// pack writers and index files as a snapshot, so imported content deduplicates against
/// every snapshot and the store holds nothing a snapshot would not.
///
/// The caller writes the snapshot record with [`Repo::save_snapshot`] after
/// [`BlobSink::finish`] returned: only then is everything it names durable and indexed.
/// [`BlobSink::abort`] stops the workers; packs already written stay unreferenced until
/// prune, and no snapshot names them.
pub struct BlobSink<'a> {
    keys: &'a WriterKeys,
    repo: &'a Repo,
    cache: &'a mut Cache,
    uploader: Uploader,
    /// Taken out while a stream is being cut (the cut calls back into the sink).
    chunker: Option<Chunker>,
    /// New data, packs and stored bytes (the other counters are the caller's).
    pub summary: Summary,
    _lease: Lease,
}

impl<'a> BlobSink<'a> {
    /// Takes a shared lease (so prune keeps what this reuses) and syncs the cache's index.
    pub fn start(
        repo: &'a Repo,
        keys: &'a WriterKeys,
        recipients: &[age::x25519::Recipient],
        cache: &'a mut Cache,
        threads: usize,
        purpose: &str,
        lock_wait: Duration,
    ) -> Result<BlobSink<'a>> {
        let lease =
            Lease::acquire_waiting(&repo.backend, keys, LeaseKind::Shared, purpose, lock_wait)?;
        cache.sync_index(repo, keys)?;
        Ok(BlobSink {
            keys,
            repo,
            cache,
            uploader: Uploader::start(repo, keys, recipients, threads.max(1)),
            chunker: Some(Chunker::new(
                repo.config.chunker.clone(),
                keys.chunker_seed(),
            )),
            summary: Summary::default(),
            _lease: lease,
        })
    }

    fn add_blob(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        if self.uploader.pending.contains(&id) || self.cache.has_blob(&id)? {
            return Ok(());
        }
        self.summary.new_bytes += data.len() as u64;
        self.uploader.send(id, kind, data)?;
        self.uploader
            .drain(self.repo, self.keys, self.cache, &mut self.summary)
    }

    /// Stores a directory tree; returns its id.
    pub fn put_tree(&mut self, tree: &Tree) -> Result<Id> {
        let bytes = tree.encode();
        let id = self.keys.blob_id(&bytes);
        self.add_blob(id, BlobKind::Tree, bytes)?;
        Ok(id)
    }

    /// Cuts everything `source` yields into chunks and stores those the store lacks.
    /// Outer error: the store failed. Inner error: reading `source` failed.
    pub fn put_data(
        &mut self,
        source: impl Read,
    ) -> Result<std::result::Result<Vec<ChunkRef>, std::io::Error>> {
        let mut chunks = Vec::new();
        let mut chunker = self.chunker.take().unwrap_or_else(|| {
            Chunker::new(self.repo.config.chunker.clone(), self.keys.chunker_seed())
        });
        let result = chunker.chunk(source, |data| {
            let id = self.keys.blob_id(data);
            chunks.push(ChunkRef {
                id,
                len: data.len() as u32,
            });
            self.add_blob(id, BlobKind::Data, data.to_vec())
        });
        self.chunker = Some(chunker);
        match result {
            Ok(n) => {
                self.summary.bytes_read += n;
                Ok(Ok(chunks))
            }
            Err(ChunkError::Read(e)) => Ok(Err(e)),
            Err(ChunkError::Handler(e)) => Err(e),
        }
    }

    /// Waits for every pack to be durable and indexes them. After this the caller may
    /// write a snapshot record naming what was stored.
    pub fn finish(mut self) -> Result<Summary> {
        self.uploader
            .finish_and_index(self.repo, self.keys, self.cache, &mut self.summary)?;
        Ok(self.summary)
    }

    /// Stops the workers after a failure; nothing stored so far is named by a snapshot.
    pub fn abort(mut self) {
        let _ = self.uploader.finish();
    }
}
