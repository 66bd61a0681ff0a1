//! The writer: runs a plan, creating folders in the planning thread and handing file
//! content to workers in parts, small files many to a hand-off ([`BATCH_BYTES`]).
//!
//! Invariants: every file, symlink and special file is made under a temporary name in
//! its own folder and moved into place only when its content and metadata are complete;
//! a file whose content failed is removed, never left with partial data; hardlinks are
//! made once every file is in place; folders get their metadata last, deepest first.

use super::fsat::{is_temp_name, open_dir_at, open_path, rename_into_place, temp_name};
use super::metadata::{apply_meta_at, errno_is_perm, gid, uid};
use super::plan::{Item, Planner};
use super::{Action, RestoreOptions, RestoreReport};
use crate::cache::{Cache, Location};
use crate::error::{Error, Result};
use crate::fsmeta::Names;
use crate::parallel::Batch;
use crate::reader::{locate, BlobReader};
use crate::tree::{display_name, LinkKey, Node, NodeKind, Tree};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Removes what a killed restore left under temporary names in `dir` (regular files,
/// symlinks and special files only; never a folder, never a name in `keep`, which the
/// snapshot itself holds). Returns how many were removed.
pub(super) fn remove_temp_files(
    dir: BorrowedFd<'_>,
    keep: &HashSet<&[u8]>,
) -> rustix::io::Result<u64> {
    let listing = rustix::fs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut removed = 0;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&listing)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if is_temp_name(name)
            && entry.file_type() != rustix::fs::FileType::Directory
            && !keep.contains(name)
        {
            names.push(name.to_vec());
        }
    }
    for name in names {
        match rustix::fs::unlinkat(dir, OsStr::from_bytes(&name), AtFlags::empty()) {
            Ok(()) => removed += 1,
            // A folder (file type unknown in the listing) or already gone: leave it.
            Err(rustix::io::Errno::ISDIR | rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Path components of an entry below the target.
pub(super) type Components = Vec<Vec<u8>>;

/// A later path of a hardlink group: (first path, this path, this path for messages,
/// whether it is a regular file).
pub(super) type PendingLink = (Components, Components, String, bool);

/// A regular file being restored. Its content is written in parts, possibly by several
/// workers at once (a 1 GiB database segment should not keep one core busy while the
/// other idles); whoever finishes the last part sets the metadata and, for a replacement,
/// renames it into place.
pub(super) struct OpenFile {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    /// The name it is written under: its own, or a temporary one when it replaces a file.
    write_name: std::ffi::OsString,
    display: String,
    node: Node,
    owner: (u32, u32),
    replace: bool,
    /// Created by the first worker to reach it, so file creation (slow on some
    /// filesystems) runs on every worker rather than in the planning thread.
    file: std::sync::OnceLock<std::result::Result<std::fs::File, String>>,
    parts_left: std::sync::atomic::AtomicUsize,
    failed: Mutex<Option<String>>,
}

impl OpenFile {
    pub(super) fn new(
        dir: Arc<OwnedFd>,
        node: &Node,
        display: String,
        owner: (u32, u32),
        replace: bool,
    ) -> OpenFile {
        let write_name = temp_name(&node.name);
        OpenFile {
            dir,
            name: node.name.clone(),
            write_name,
            display,
            node: node.clone(),
            owner,
            replace,
            file: std::sync::OnceLock::new(),
            parts_left: Default::default(),
            failed: Mutex::default(),
        }
    }

    /// The file, created on first use with `O_EXCL` under a temporary name, so no
    /// partial file ever carries the real name (and an old file stays until the new one
    /// is whole).
    fn handle(&self) -> std::result::Result<&std::fs::File, String> {
        self.file
            .get_or_init(|| {
                rustix::fs::openat(
                    self.dir.as_fd(),
                    self.write_name.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map(std::fs::File::from)
                .map_err(|e| format!("cannot create: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// True once this restore created the file (and so may remove it again).
    fn created(&self) -> bool {
        matches!(self.file.get(), Some(Ok(_)))
    }
}

/// One part of a file's content, written by a worker.
pub(super) struct FileJob {
    file: Arc<OpenFile>,
    chunks: Vec<(u64, Location)>,
}

/// Largest part of a file one worker writes before another may take the next.
pub(super) const PART_BYTES: u64 = 8 << 20;

/// Parts go to the workers in batches of at least this many bytes of content (or one
/// part, when larger): one hand-off per file of a few kilobytes cost three futex calls
/// and a worker wake-up per file. Memory: the batch holds chunk locations only.
pub(super) const BATCH_BYTES: u64 = 256 << 10;

/// Splits a file's chunks into parts of about [`PART_BYTES`]; always at least one part,
/// so an empty file is finished like any other.
pub(super) fn split_parts(chunks: Vec<(u64, Location)>) -> Vec<Vec<(u64, Location)>> {
    let mut parts = vec![Vec::new()];
    let mut size = 0u64;
    for c in chunks {
        if size >= PART_BYTES {
            parts.push(Vec::new());
            size = 0;
        }
        size += c.1.entry.raw_len as u64;
        parts.last_mut().expect("never empty").push(c);
    }
    parts
}

pub(super) struct Shared {
    /// Regular files completely restored.
    pub(super) files: std::sync::atomic::AtomicU64,
    pub(super) failures: Mutex<Vec<String>>,
    pub(super) warnings: Mutex<Vec<String>>,
    pub(super) bytes: std::sync::atomic::AtomicU64,
    pub(super) owner_not_set: std::sync::atomic::AtomicU64,
}

pub(super) struct Runner<'a, 'scope> {
    cache: &'a Cache,
    opts: &'a RestoreOptions,
    root: &'a OwnedFd,
    report: RestoreReport,
    names: Names,
    is_root: bool,
    shared: Arc<Shared>,
    tx: Option<mpsc::SyncSender<Vec<FileJob>>>,
    /// Parts not yet handed to a worker (counted by the bytes of content they write).
    batch: Batch<FileJob>,
    workers: Vec<std::thread::ScopedJoinHandle<'scope, ()>>,
    /// First restored path of each hardlink group.
    links: HashMap<LinkKey, Vec<Vec<u8>>>,
    /// Hardlinks to make once every file is in place.
    pending_links: Vec<PendingLink>,
    /// Folders whose metadata goes on at the end, deepest first.
    dir_meta: Vec<(Vec<Vec<u8>>, Node, String)>,
}

impl<'a, 'scope> Runner<'a, 'scope>
where
    'a: 'scope,
{
    pub(super) fn new(
        scope: &'scope std::thread::Scope<'scope, '_>,
        reader: &'a BlobReader,
        cache: &'a Cache,
        opts: &'a RestoreOptions,
        root: &'a OwnedFd,
        report: RestoreReport,
    ) -> Self {
        let shared = Arc::new(Shared {
            files: Default::default(),
            failures: Mutex::default(),
            warnings: Mutex::default(),
            bytes: Default::default(),
            owner_not_set: Default::default(),
        });
        let threads = opts.threads.max(1);
        // Bounded, so open folder descriptors and queued chunk lists stay few.
        let (tx, rx) = mpsc::sync_channel::<Vec<FileJob>>(threads * 4);
        let rx = Arc::new(Mutex::new(rx));
        let is_root = rustix::process::geteuid().is_root();
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                scope.spawn(move || loop {
                    let batch = rx.lock().unwrap().recv();
                    let Ok(batch) = batch else { break };
                    for job in batch {
                        write_part(reader, &shared, job, is_root);
                    }
                })
            })
            .collect();
        Runner {
            cache,
            opts,
            root,
            report,
            names: Names::default(),
            is_root,
            shared,
            tx: Some(tx),
            batch: Batch::new(BATCH_BYTES),
            workers,
            links: HashMap::new(),
            pending_links: Vec::new(),
            dir_meta: Vec::new(),
        }
    }

    pub(super) fn run(&mut self, plan: &Planner<'_>, root_tree: &Tree) -> Result<()> {
        let root = Arc::new(
            open_path(self.root.as_fd(), &[])
                .map_err(|e| Error::io("open restore target", e.into()))?,
        );
        let keep = plan.wanted_names(&[], root_tree);
        self.clean_leftovers(&root, &self.opts.target.display().to_string(), &keep)?;
        self.run_dir(plan, &root, &[], root_tree, &mut 0)
    }

    /// Removes an interrupted restore's temporary files from an existing folder.
    fn clean_leftovers(
        &mut self,
        dir: &OwnedFd,
        display: &str,
        keep: &HashSet<&[u8]>,
    ) -> Result<()> {
        let n = remove_temp_files(dir.as_fd(), keep).map_err(|e| {
            Error::io(
                format!("remove an interrupted restore's temporary files in {display}"),
                e.into(),
            )
        })?;
        self.report.leftovers_removed += n;
        Ok(())
    }

    fn owner(&mut self, node: &Node) -> (u32, u32) {
        if self.opts.numeric_owner {
            return (node.uid, node.gid);
        }
        let uid = node
            .user
            .as_deref()
            .and_then(|u| self.names.uid(u))
            .unwrap_or(node.uid);
        let gid = node
            .group
            .as_deref()
            .and_then(|g| self.names.gid(g))
            .unwrap_or(node.gid);
        (uid, gid)
    }

    fn warn(&self, msg: String) {
        self.shared.warnings.lock().unwrap().push(msg);
    }

    fn fail(&self, msg: String) {
        self.shared.failures.lock().unwrap().push(msg);
    }

    /// Restores the entries of `tree` (the folder at `parent`, open as `dir`) as the plan
    /// decided them, reading its decisions from `cursor` on.
    fn run_dir(
        &mut self,
        plan: &Planner<'_>,
        dir: &Arc<OwnedFd>,
        parent: &[Vec<u8>],
        tree: &Tree,
        cursor: &mut usize,
    ) -> Result<()> {
        for node in &tree.nodes {
            let Some(item) = plan.replay(node, parent, cursor)? else {
                continue;
            };
            let item = &item;
            if item.action == Action::Keep {
                // A kept file that is the snapshot's own (say, restored by an interrupted
                // run) can carry the snapshot's other links to it.
                if let (true, Some(key)) = (item.same_file, item.node.link) {
                    self.links.entry(key).or_insert_with(|| item.comps.clone());
                }
                continue;
            }
            crate::progress::check_cancelled("restore")?;
            let display = item.display(&self.opts.target);
            let name = OsStr::from_bytes(&item.node.name);
            let node = &item.node;
            match node.kind {
                NodeKind::Dir => {
                    if item.action == Action::Replace {
                        rustix::fs::unlinkat(dir.as_fd(), name, AtFlags::empty()).map_err(|e| {
                            Error::io(format!("remove {display} to replace it"), e.into())
                        })?;
                    }
                    if item.action != Action::Merge {
                        rustix::fs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o700))
                            .map_err(|e| Error::io(format!("create folder {display}"), e.into()))?;
                    }
                    let child = Arc::new(
                        open_dir_at(dir.as_fd(), &node.name)
                            .map_err(|e| Error::io(format!("open folder {display}"), e.into()))?,
                    );
                    let subtree = plan.subtree(item)?;
                    if item.action == Action::Merge {
                        let keep = plan.wanted_names(&item.comps, &subtree);
                        self.clean_leftovers(&child, &display, &keep)?;
                    }
                    self.report.dirs += 1;
                    self.run_dir(plan, &child, &item.comps, &subtree, cursor)?;
                    if !(item.ancestor && item.action == Action::Merge) {
                        self.dir_meta
                            .push((item.comps.clone(), node.clone(), display));
                    }
                }
                NodeKind::File => {
                    let progress = crate::progress::get();
                    progress.set_current(&display);
                    progress.add_files(1);
                    crate::progress::file_event(
                        crate::progress::FileEvent::Restored,
                        Path::new(&display),
                    );
                    if self.linked_to_earlier(dir, item, &display)? {
                        continue;
                    }
                    let mut chunks = Vec::new();
                    let mut ok = true;
                    for extent in &node.extents {
                        let mut offset = extent.offset;
                        for c in &extent.chunks {
                            match locate(self.cache, &c.id, "data") {
                                Ok(loc) => chunks.push((offset, loc)),
                                Err(e) => {
                                    self.fail(format!("{display}: not restored: {e}"));
                                    ok = false;
                                    break;
                                }
                            }
                            offset += c.len as u64;
                        }
                    }
                    if !ok {
                        continue;
                    }
                    let owner = self.owner(node);
                    let file = Arc::new(OpenFile::new(
                        dir.clone(),
                        node,
                        display,
                        owner,
                        item.action == Action::Replace,
                    ));
                    let parts = split_parts(chunks);
                    file.parts_left
                        .store(parts.len(), std::sync::atomic::Ordering::SeqCst);
                    for part in parts {
                        self.send(FileJob {
                            file: file.clone(),
                            chunks: part,
                        })?;
                    }
                }
                _ => {
                    self.report.others += 1;
                    // Symlinks and FIFOs can be hardlinked too.
                    if self.linked_to_earlier(dir, item, &display)? {
                        continue;
                    }
                    self.make_special(dir, item, &display)?;
                }
            }
        }
        Ok(())
    }

    /// Adds a part to the batch for the workers; hands the batch over once it holds
    /// [`BATCH_BYTES`].
    fn send(&mut self, job: FileJob) -> Result<()> {
        let bytes = job.chunks.iter().map(|c| c.1.entry.raw_len as u64).sum();
        if self.batch.push(job, bytes) {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Hands the batch to the workers.
    fn hand_over(&mut self) -> Result<()> {
        let Some(batch) = self.batch.take() else {
            return Ok(());
        };
        let tx = self.tx.as_ref().expect("workers running");
        tx.send(batch)
            .map_err(|_| Error::Restore("file workers stopped unexpectedly".into()))
    }

    /// For a later path of a hardlink group: schedules the link to the first path and
    /// returns true. For the first path: remembers it and returns false.
    fn linked_to_earlier(&mut self, dir: &OwnedFd, item: &Item, display: &str) -> Result<bool> {
        let Some(key) = item.node.link else {
            return Ok(false);
        };
        if let Some(first) = self.links.get(&key) {
            if item.action == Action::Replace {
                self.unlink(dir, OsStr::from_bytes(&item.node.name), display)?;
            }
            self.pending_links.push((
                first.clone(),
                item.comps.clone(),
                display.to_string(),
                item.node.kind == NodeKind::File,
            ));
            return Ok(true);
        }
        self.links.insert(key, item.comps.clone());
        Ok(false)
    }

    fn unlink(&self, dir: &OwnedFd, name: &OsStr, display: &str) -> Result<()> {
        rustix::fs::unlinkat(dir.as_fd(), name, AtFlags::empty())
            .map_err(|e| Error::io(format!("remove {display} to replace it"), e.into()))
    }

    /// Makes a symlink, FIFO or device node under a temporary name, sets its metadata,
    /// and renames it into place.
    fn make_special(&mut self, dir: &OwnedFd, item: &Item, display: &str) -> Result<()> {
        let node = &item.node;
        let temp = temp_name(&node.name);
        let name = temp.as_os_str();
        let created = match node.kind {
            NodeKind::Symlink => {
                let target = node.target.clone().unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), dir.as_fd(), name)
            }
            NodeKind::Fifo => rustix::fs::mknodat(
                dir.as_fd(),
                name,
                rustix::fs::FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            ),
            NodeKind::CharDevice | NodeKind::BlockDevice => rustix::fs::mknodat(
                dir.as_fd(),
                name,
                if node.kind == NodeKind::CharDevice {
                    rustix::fs::FileType::CharacterDevice
                } else {
                    rustix::fs::FileType::BlockDevice
                },
                Mode::from_raw_mode(0o600),
                node.rdev,
            ),
            // A socket is only meaningful to the process that bound it; restic and borg
            // skip them too.
            NodeKind::Socket => return Ok(()),
            NodeKind::File | NodeKind::Dir => unreachable!("handled by the caller"),
        };
        if let Err(e) = created {
            if e == rustix::io::Errno::PERM && !self.is_root {
                self.warn(format!(
                    "{display}: not created: only root may create device nodes"
                ));
                return Ok(());
            }
            return Err(Error::io(format!("create {display}"), e.into()));
        }
        let owner = self.owner(node);
        let is_root = self.is_root;
        let mut at_temp = node.clone();
        at_temp.name = temp.as_bytes().to_vec();
        apply_meta_at(dir.as_fd(), &at_temp, owner, display, is_root, &self.shared);
        let real = OsStr::from_bytes(&node.name);
        rename_into_place(dir.as_fd(), name, real, item.action == Action::Replace).map_err(|e| {
            let _ = rustix::fs::unlinkat(dir.as_fd(), name, AtFlags::empty());
            Error::io(format!("move {display} into place"), e.into())
        })
    }

    pub(super) fn finish(mut self) -> Result<RestoreReport> {
        self.hand_over()?;
        self.join_workers();
        for (first, link, display, is_file) in std::mem::take(&mut self.pending_links) {
            let (fdir, fname) = first.split_at(first.len() - 1);
            let (ldir, lname) = link.split_at(link.len() - 1);
            let made = open_path(self.root.as_fd(), fdir).and_then(|from| {
                let to = open_path(self.root.as_fd(), ldir)?;
                rustix::fs::linkat(
                    from.as_fd(),
                    OsStr::from_bytes(&fname[0]),
                    to.as_fd(),
                    OsStr::from_bytes(&lname[0]),
                    AtFlags::empty(),
                )
            });
            match made {
                Err(e) => self.fail(format!("{display}: hardlink not created: {e}")),
                Ok(()) if is_file => self.report.files += 1,
                Ok(()) => {}
            }
        }
        // Deepest first: a folder's mtime is set after nothing more changes inside it.
        let mut dirs = std::mem::take(&mut self.dir_meta);
        dirs.sort_by_key(|(comps, _, _)| std::cmp::Reverse(comps.len()));
        for (comps, node, display) in dirs {
            let (parent, name) = comps.split_at(comps.len() - 1);
            let owner = self.owner(&node);
            match open_path(self.root.as_fd(), parent) {
                Ok(pfd) => {
                    let mut node = node;
                    node.name = name[0].clone();
                    apply_meta_at(
                        pfd.as_fd(),
                        &node,
                        owner,
                        &display,
                        self.is_root,
                        &self.shared,
                    );
                }
                Err(e) => self.warn(format!("{display}: metadata not set: {e}")),
            }
        }
        let mut report = std::mem::take(&mut self.report);
        report
            .failures
            .extend(std::mem::take(&mut *self.shared.failures.lock().unwrap()));
        report.warnings = std::mem::take(&mut self.shared.warnings.lock().unwrap());
        report.bytes = self.shared.bytes.load(std::sync::atomic::Ordering::Relaxed);
        report.files += self.shared.files.load(std::sync::atomic::Ordering::Relaxed);
        report.owner_not_set = self
            .shared
            .owner_not_set
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(report)
    }

    fn join_workers(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Longest run of back-to-back blobs fetched with one read.
pub(super) const MAX_RUN_BYTES: u64 = 8 << 20;

/// Writes one part of a file; the worker that writes the last part finishes the file.
pub(super) fn write_part(reader: &BlobReader, shared: &Shared, job: FileJob, is_root: bool) {
    let of = &job.file;
    if of.failed.lock().unwrap().is_none() {
        let written = of
            .handle()
            .and_then(|file| write_chunks(reader, shared, file, &job.chunks));
        if let Err(msg) = written {
            of.failed.lock().unwrap().get_or_insert(msg);
        }
    }
    if of
        .parts_left
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
        == 1
    {
        finish_file(shared, of, is_root);
    }
}

pub(super) fn write_chunks(
    reader: &BlobReader,
    shared: &Shared,
    file: &std::fs::File,
    chunks: &[(u64, Location)],
) -> std::result::Result<(), String> {
    use std::os::unix::fs::FileExt;
    let mut i = 0;
    while i < chunks.len() {
        // Blobs that follow each other in a pack are fetched together.
        let mut j = i + 1;
        let mut run_len = chunks[i].1.entry.length as u64;
        while j < chunks.len() {
            let (prev, next) = (&chunks[j - 1].1, &chunks[j].1);
            let adjacent = next.pack == prev.pack
                && next.entry.offset == prev.entry.offset + prev.entry.length;
            if !adjacent || run_len + next.entry.length as u64 > MAX_RUN_BYTES {
                break;
            }
            run_len += next.entry.length as u64;
            j += 1;
        }
        let run: Vec<&Location> = chunks[i..j].iter().map(|(_, loc)| loc).collect();
        let blobs = reader.read_run(&run).map_err(|e| e.to_string())?;
        for ((offset, _), data) in chunks[i..j].iter().zip(blobs) {
            file.write_all_at(&data, *offset)
                .map_err(|e| format!("write failed: {e}"))?;
            shared
                .bytes
                .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            crate::progress::get().add_bytes(data.len() as u64);
        }
        i = j;
    }
    Ok(())
}

/// Where a file's content ends: the end of its last chunk (0 for a file of holes only).
fn content_end(node: &Node) -> u64 {
    node.extents.last().map_or(0, |e| {
        e.offset + e.chunks.iter().map(|c| c.len as u64).sum::<u64>()
    })
}

/// Sizes the file (so trailing holes stay holes), sets owner, mode, xattrs and times in
/// that order, and moves a replacement into place. A file whose content failed is
/// removed: no file is left holding unverified or partial data.
pub(super) fn finish_file(shared: &Shared, of: &OpenFile, is_root: bool) {
    let warn = |m: String| shared.warnings.lock().unwrap().push(m);
    let result = of.failed.lock().unwrap().take().map_or_else(
        || {
            let file = of.handle()?;
            // Made empty with O_EXCL, the file ends where its last chunk was written.
            if of.node.size != content_end(&of.node) {
                file.set_len(of.node.size)
                    .map_err(|e| format!("cannot set size: {e}"))?;
            }
            if let Err(e) = rustix::fs::fchown(file, Some(uid(of.owner.0)), Some(gid(of.owner.1))) {
                if errno_is_perm(&e) && !is_root {
                    shared
                        .owner_not_set
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    warn(format!("{}: owner not set: {e}", of.display));
                }
            }
            if let Err(e) = rustix::fs::fchmod(file, Mode::from_raw_mode(of.node.mode)) {
                warn(format!("{}: mode not set: {e}", of.display));
            }
            for x in &of.node.xattrs {
                if let Err(e) = rustix::fs::fsetxattr(
                    file,
                    OsStr::from_bytes(&x.name),
                    &x.value,
                    rustix::fs::XattrFlags::empty(),
                ) {
                    warn(format!(
                        "{}: extended attribute {} not set: {e}",
                        of.display,
                        display_name(&x.name)
                    ));
                }
            }
            let ts = rustix::fs::Timespec {
                tv_sec: of.node.mtime,
                tv_nsec: of.node.mtime_nsec as _,
            };
            rustix::fs::futimens(
                file,
                &rustix::fs::Timestamps {
                    last_access: ts,
                    last_modification: ts,
                },
            )
            .map_err(|e| format!("cannot set mtime: {e}"))?;
            rename_into_place(
                of.dir.as_fd(),
                of.write_name.as_os_str(),
                OsStr::from_bytes(&of.name),
                of.replace,
            )
            .map_err(|e| format!("cannot move into place: {e}"))?;
            shared
                .files
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        },
        Err,
    );
    if let Err(msg) = result {
        // Only what this restore created is removed: a create that failed because
        // something already had the name must not delete that something.
        if of.created() {
            let _ =
                rustix::fs::unlinkat(of.dir.as_fd(), of.write_name.as_os_str(), AtFlags::empty());
        }
        shared
            .failures
            .lock()
            .unwrap()
            .push(format!("{}: not restored: {msg}", of.display));
    }
}
