//! The walk of the source trees. One [`Walker`] per snapshot visits the sources in name
//! order on the calling thread, builds each folder's tree bottom-up as it leaves the
//! folder, and hands every blob the store lacks to the [`Uploader`]. An entry that cannot
//! be read is reported as a [`SourceProblem`] and the walk goes on; only a failing store
//! and a cancel stop it.

use super::ahead::{self, Prepared, ReadAhead};
use super::read::FileContent;
use super::upload::Uploader;
use super::{Capture, CaptureRules, ExtraFile, SourceProblem};
use crate::cache::{Cache, FileStamp};
use crate::chunker::Chunker;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::fsmeta::{self, Names};
use crate::id::Id;
use crate::pack::BlobKind;
use crate::repo::{Repo, Summary};
use crate::tree::{Extent, LinkKey, Node, NodeKind, Tree, Xattr};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(super) struct Walker<'a, 'c> {
    pub(super) keys: &'a WriterKeys,
    pub(super) cache: &'a mut Cache,
    pub(super) repo: &'a Repo,
    pub(super) uploader: Uploader,
    pub(super) names: Names,
    pub(super) summary: Summary,
    pub(super) problems: Vec<SourceProblem>,
    pub(super) file_rows: Vec<(Vec<u8>, FileStamp, Vec<Extent>)>,
    /// Chunk references `file_rows` holds.
    pub(super) file_rows_chunks: usize,
    pub(super) links: HashMap<LinkKey, FileContent>,
    pub(super) excludes: Vec<String>,
    /// Taken out while a file is being cut (the cut calls back into the walker).
    pub(super) chunker: Option<Chunker>,
    pub(super) captures: Vec<&'c mut dyn Capture>,
    /// The rules of the capture whose folder is being walked.
    pub(super) active: Option<CaptureRules>,
    pub(super) databases: Vec<crate::repo::DatabaseCapture>,
    pub(super) cancel: Option<Arc<AtomicBool>>,
    /// Files modified after this moment are not put in the files cache: they could change
    /// again within the timestamp granularity without their stamp changing.
    pub(super) racy_after_ns: i64,
    /// Files opened and read so far (as opposed to taken from the files cache).
    pub(super) files_read: u64,
    pub(super) ahead: ReadAhead,
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
    pub(super) fn save_sources(&mut self, sources: &[PathBuf], extras: &[ExtraFile]) -> Result<Id> {
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
                    if let Some(node) = self.save_entry(path, name.clone(), Prepared::default())? {
                        nodes.push(node);
                    }
                }
                SkeletonEntry::Extra(i) => {
                    nodes.push(self.extra_node(name.clone(), &extras[*i])?);
                }
                SkeletonEntry::Ancestor(path, inner) => {
                    let meta = std::fs::symlink_metadata(path)
                        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
                    let mut node =
                        self.node_from_meta(path, name.clone(), &meta, NodeKind::Dir, None);
                    let tree = self.save_skeleton(inner, extras)?;
                    node.subtree = Some(self.put_tree(&tree)?);
                    nodes.push(node);
                }
            }
        }
        Ok(Tree { nodes })
    }

    pub(super) fn problem(&mut self, path: &Path, error: impl ToString) {
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

    pub(super) fn node_from_meta(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: &std::fs::Metadata,
        kind: NodeKind,
        xattrs: Option<std::io::Result<Vec<Xattr>>>,
    ) -> Node {
        let xattrs = match xattrs.unwrap_or_else(|| fsmeta::read_xattrs(path)) {
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
            lists: Vec::new(),
            subtree: None,
            target: None,
            rdev: 0,
            link: None,
        }
    }

    /// Saves one entry; `None` when it could not be read (reported as a problem).
    /// `ahead`: what was made of it ahead of the walk.
    fn save_entry(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        mut ahead: Prepared,
    ) -> Result<Option<Node>> {
        self.check_cancel()?;
        let (meta, xattrs) = match ahead.stat.take() {
            Some(stat) => (stat.meta, Some(stat.xattrs)),
            None => (std::fs::symlink_metadata(path), None),
        };
        let meta = match meta {
            Ok(m) => m,
            Err(e) if self.vanished_ok(&e) => return Ok(None),
            Err(e) => {
                self.problem(path, e);
                return Ok(None);
            }
        };
        let kind = node_kind(meta.file_type());
        crate::progress::check_cancelled("snapshot")?;
        let mut node = self.node_from_meta(path, name, &meta, kind, xattrs);
        if kind != NodeKind::Dir && meta.nlink() > 1 {
            node.link = Some(LinkKey {
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
        match kind {
            NodeKind::File => {
                if !self.save_file(path, &meta, &mut node, ahead)? {
                    return Ok(None);
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

    /// Saves a regular file's content into `node`; false when it could not be read
    /// (reported as a problem) or vanished where that is tolerated.
    fn save_file(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        node: &mut Node,
        ahead: Prepared,
    ) -> Result<bool> {
        self.summary.files += 1;
        let first_name = node.link.map_or(true, |k| !self.links.contains_key(&k));
        let progress = crate::progress::get();
        progress.set_current(&path.to_string_lossy());
        let read_before = self.summary.bytes_read;
        let files_read = self.files_read;
        match self.save_file_content(path, meta, node.link, ahead)? {
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
                let (repo, keys) = (self.repo, self.keys);
                super::move_to_lists(repo, keys, node, |id, bytes| {
                    self.add_blob(id, BlobKind::Tree, bytes)
                })?;
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
                return Ok(false);
            }
            Err(e) => {
                self.problem(path, e);
                crate::progress::file_event(crate::progress::FileEvent::Skipped, path);
                return Ok(false);
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
        Ok(true)
    }

    pub(super) fn check_cancel(&self) -> Result<()> {
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

    fn save_dir(&mut self, path: &Path) -> Result<Tree> {
        self.save_dir_filtered(path, |_| true)
    }

    pub(super) fn save_dir_filtered(
        &mut self,
        path: &Path,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Tree> {
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
        // Names only: a folder's full paths are made a window at a time.
        let mut kept = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            if !keep(&name) || self.excluded(&child, &name) {
                crate::progress::file_event(crate::progress::FileEvent::Skipped, &child);
                continue;
            }
            kept.push(name);
        }
        // Window by window: while the walker saves window k, the read-ahead threads read
        // the small files of window k + 1 that must be read and stat window k + 2 (see
        // `ahead`).
        let paths = |w: &[Vec<u8>]| w.iter().map(|n| path.join(OsStr::from_bytes(n))).collect();
        let mut nodes = Vec::with_capacity(kept.len());
        let mut windows = kept.chunks_mut(ahead::WINDOW);
        let mut stats_ahead = windows.next().map(|w| (self.ahead.stats(paths(w)), w));
        let mut planned = None;
        loop {
            if let Some((stats, w)) = stats_ahead.take() {
                let next = self.plan_reads(path, w, stats.wait());
                stats_ahead = windows.next().map(|w| (self.ahead.stats(paths(w)), w));
                if planned.is_none() {
                    // The first window: nothing to save while its reads are made.
                    planned = Some(next);
                    continue;
                }
                let current = planned.replace(next).expect("a planned window");
                self.save_window(path, current, &mut nodes)?;
            } else if let Some(current) = planned.take() {
                self.save_window(path, current, &mut nodes)?;
            } else {
                break;
            }
        }
        Ok(Tree { nodes })
    }

    /// Saves the entries of a window once its reads ahead are in.
    fn save_window(
        &mut self,
        dir: &Path,
        window: Planned<'_>,
        nodes: &mut Vec<Node>,
    ) -> Result<()> {
        let (window, prepared) = window.wait();
        for (name, ahead) in window.iter_mut().zip(prepared) {
            let child = dir.join(OsStr::from_bytes(name));
            if let Some(node) = self.save_entry(&child, std::mem::take(name), ahead)? {
                nodes.push(node);
            }
        }
        Ok(())
    }

    /// Asks the files cache about the window's small files (stat made ahead) and has the
    /// pool read those it does not vouch for, within the window's byte budget.
    fn plan_reads<'w>(
        &mut self,
        dir: &Path,
        window: &'w mut [Vec<u8>],
        stats: Option<Vec<ahead::Stat>>,
    ) -> Planned<'w> {
        let Some(stats) = stats else {
            return Planned {
                window,
                prepared: Vec::new(),
                reads: None,
            };
        };
        let mut prepared: Vec<Prepared> = Vec::with_capacity(stats.len());
        let mut wanted = Vec::new();
        let mut budget = ahead::WINDOW_BYTES;
        for (name, stat) in window.iter().zip(stats) {
            let mut entry = Prepared::default();
            let child = dir.join(OsStr::from_bytes(name));
            if let Ok(meta) = &stat.meta {
                let seen_link = meta.nlink() > 1
                    && self.links.contains_key(&LinkKey {
                        dev: meta.dev(),
                        ino: meta.ino(),
                    });
                if ahead::readable_ahead(meta) && !seen_link && meta.len() <= budget {
                    // A cache that fails is asked again, and fails, when the walker
                    // comes to the file.
                    if let Ok(vouched) = self.vouched(
                        child.as_os_str().as_bytes(),
                        &super::files_cache::stamp_of(meta),
                    ) {
                        if vouched.is_none() {
                            budget -= meta.len();
                            wanted.push((prepared.len(), child.clone(), meta.len()));
                        }
                        entry.vouched = Some(vouched);
                    }
                }
            }
            entry.stat = Some(stat);
            prepared.push(entry);
        }
        let reads = (!wanted.is_empty()).then(|| {
            let files = wanted.iter().map(|(_, p, n)| (p.clone(), *n)).collect();
            let at: Vec<usize> = wanted.iter().map(|(i, _, _)| *i).collect();
            (at, self.ahead.reads(files))
        });
        Planned {
            window,
            prepared,
            reads,
        }
    }

    pub(super) fn put_tree(&mut self, tree: &Tree) -> Result<Id> {
        let (repo, keys) = (self.repo, self.keys);
        let listed = super::with_lists(repo, keys, tree, |id, bytes| {
            self.add_blob(id, BlobKind::Tree, bytes)
        })?;
        let bytes = listed.as_ref().unwrap_or(tree).encode();
        let id = self.keys.blob_id(&bytes);
        self.add_blob(id, BlobKind::Tree, bytes)?;
        Ok(id)
    }

    pub(super) fn add_blob(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
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

    /// Indexes finished packs when an index file is due.
    fn drain_packs(&mut self) -> Result<()> {
        self.uploader
            .drain(self.repo, self.keys, self.cache, &mut self.summary)
    }

    /// Waits for the workers and indexes every pack they wrote.
    pub(super) fn finish_uploads(&mut self) -> Result<()> {
        self.uploader
            .finish_and_index(self.repo, self.keys, self.cache, &mut self.summary)
    }
}

/// A window whose stats are in hand and whose small files may be on their way.
struct Planned<'w> {
    window: &'w mut [Vec<u8>],
    /// One per entry of the window; empty when read-ahead had nothing to give.
    prepared: Vec<Prepared>,
    /// Where in the window each file read ahead goes, and the reads.
    reads: Option<(Vec<usize>, ahead::Pending<Option<ahead::Content>>)>,
}

impl<'w> Planned<'w> {
    /// The window and what was made ahead for each of its entries.
    fn wait(self) -> (&'w mut [Vec<u8>], Vec<Prepared>) {
        let mut prepared = self.prepared;
        if prepared.is_empty() {
            prepared.resize_with(self.window.len(), Prepared::default);
        }
        if let Some((at, reads)) = self.reads {
            if let Some(contents) = reads.wait() {
                for (i, content) in at.into_iter().zip(contents) {
                    prepared[i].content = content;
                }
            }
        }
        (self.window, prepared)
    }
}

fn node_kind(ft: std::fs::FileType) -> NodeKind {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
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
    }
}
