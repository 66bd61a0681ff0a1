//! Restoring a snapshot into a target folder, exactly and safely.
//!
//! Plan, then run. The plan walks the snapshot's trees alongside the target and decides
//! for every entry: create it, replace what is in the way, keep what is there, or merge
//! into an existing folder. Anything in the way with no `--overwrite` policy is a
//! conflict, and the restore stops before writing a byte. `--dry-run` prints the plan.
//!
//! Safety: every operation is relative to a folder descriptor opened with `O_NOFOLLOW`
//! from the target root down, names are checked ([`crate::tree::is_safe_name`]), and
//! files are created with `O_EXCL` under a temporary name and renamed into place. So no
//! entry of a snapshot (`..`, `/`, names repeated, a symlink restored earlier or planted in
//! the target) can make the restore write outside the target.
//!
//! Crash safety: every file, symlink and special file is made under a temporary name
//! (`.NAME.vault-tmp-RANDOM` in its own folder, see [`is_temp_name`]), gets its content
//! and metadata there, and is renamed into place only when complete (a new entry with
//! `RENAME_NOREPLACE`, so nothing that appeared meanwhile is overwritten). A killed
//! restore therefore leaves whole entries under real names and partial ones only under
//! temporary names, which the next restore into the target removes from every existing
//! folder it visits. Folders are created under their real names with mode 0700 and get
//! their metadata at the end, so a re-run (merging into them) sets it then.
//!
//! Exactness: content is written at its offsets and the file is sized with `ftruncate`,
//! so holes stay holes. Metadata goes on in the order the kernel demands: owner first
//! (chown clears setuid/setgid and capabilities), then mode, then xattrs (ACLs,
//! capabilities), then times. Folders get their metadata last, deepest first, after
//! everything inside them exists, so their mtimes and restrictive modes stick.

use crate::backend::spool::{PackNeeds, SpoolBackend};
use crate::cache::{Cache, Location};
use crate::error::{Error, Result};
use crate::fsmeta::Names;
use crate::reader::{locate, BlobReader};
use crate::tree::{display_name, is_safe_name, LinkKey, Node, NodeKind};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// The temporary name an entry named `name` is written under until it is complete.
fn temp_name(name: &[u8]) -> std::ffi::OsString {
    // Short enough for NAME_MAX (255) whatever the real name's length.
    let keep = &name[..name.len().min(200)];
    let mut t = Vec::with_capacity(keep.len() + 40);
    t.push(b'.');
    t.extend_from_slice(keep);
    t.extend_from_slice(TEMP_MARK);
    t.extend_from_slice(&crate::id::Id::random().to_hex().as_bytes()[..TEMP_RANDOM]);
    std::ffi::OsString::from_vec(t)
}

const TEMP_MARK: &[u8] = b".vault-tmp-";
const TEMP_RANDOM: usize = 16;

/// True for a name [`temp_name`] makes (and for the temporary names of earlier
/// releases, `.vault-restore-` and 8 hex digits): what a killed restore leaves behind.
pub fn is_temp_name(name: &[u8]) -> bool {
    let hex_tail = |tail: &[u8], n: usize| {
        tail.len() == n
            && tail
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if let Some(tail) = name.strip_prefix(b".vault-restore-".as_slice()) {
        return hex_tail(tail, 8);
    }
    if name.len() < 1 + TEMP_MARK.len() + TEMP_RANDOM || name[0] != b'.' {
        return false;
    }
    let (head, tail) = name.split_at(name.len() - TEMP_RANDOM);
    head.ends_with(TEMP_MARK) && hex_tail(tail, TEMP_RANDOM)
}

/// Removes what a killed restore left under temporary names in `dir` (regular files,
/// symlinks and special files only; never a folder, never a name in `keep`, which the
/// snapshot itself holds). Returns how many were removed.
fn remove_temp_files(dir: BorrowedFd<'_>, keep: &[Item]) -> rustix::io::Result<u64> {
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
            && !keep.iter().any(|i| i.node.name == name)
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

/// Moves `from` to `to` in `dir`: replacing what is there, or only when nothing is.
fn rename_into_place(
    dir: BorrowedFd<'_>,
    from: &OsStr,
    to: &OsStr,
    replace: bool,
) -> rustix::io::Result<()> {
    if replace {
        return rustix::fs::renameat(dir, from, dir, to);
    }
    match rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE) {
        // Filesystems without RENAME_NOREPLACE: link then unlink gives the same
        // no-overwrite guarantee (link fails when `to` exists).
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?;
            rustix::fs::unlinkat(dir, from, AtFlags::empty())
        }
        other => other,
    }
}

/// What to do with an entry that already exists in the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Keep what is there.
    Never,
    /// Replace it.
    Always,
    /// Replace it when type, size, mtime or symlink target differ.
    IfChanged,
    /// Replace it when the snapshot's copy is newer.
    IfNewer,
}

pub struct RestoreOptions {
    pub target: PathBuf,
    /// Absolute snapshot paths to restore (with what lies below them); empty means all.
    pub includes: Vec<PathBuf>,
    pub overwrite: Option<Overwrite>,
    pub dry_run: bool,
    pub verify: bool,
    pub numeric_owner: bool,
    /// Remove entries of the target that the snapshot lacks, below the restored paths
    /// (see [`crate::restore_delete`]).
    pub delete: bool,
    /// Restore setuid/setgid files and files with capabilities without those bits, and
    /// skip device nodes (for a snapshot one does not fully trust).
    pub no_privileged: bool,
    pub threads: usize,
    /// For remote stores: fetch the needed pack ranges into this folder first (many
    /// requests in flight), then restore from there; see [`crate::backend::spool`].
    pub spool: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Replace,
    /// Something is in the way and the policy keeps it.
    Keep,
    /// An existing folder that the snapshot's folder is merged into.
    Merge,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Merge => "merge",
        }
    }
}

/// One line of the plan, for `--dry-run` and the report.
#[derive(Clone, Debug)]
pub struct PlanLine {
    pub action: Action,
    pub path: String,
    pub kind: NodeKind,
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub plan: Vec<PlanLine>,
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Entries that could not be restored (corrupt or missing data).
    pub failures: Vec<String>,
    /// Metadata that could not be applied (for example ownership when not root).
    pub warnings: Vec<String>,
    /// Entries whose ownership could not be set because the restore does not run as root.
    pub owner_not_set: u64,
    pub verified_files: u64,
    /// Privileged entries the restore creates (setuid/setgid files, file capabilities,
    /// device nodes), each with what makes it privileged and what was done about it.
    pub privileged: Vec<String>,
    /// Temporary files of an earlier, interrupted restore that were removed.
    pub leftovers_removed: u64,
    /// Entries of the target below the restored paths that the snapshot lacks: removed
    /// with `delete` (unless a dry run), else left.
    pub extras: Vec<crate::restore_delete::Extra>,
    /// How many of `extras` were removed.
    pub extras_removed: u64,
}

/// An entry of the snapshot as the plan sees it.
struct Item {
    /// Path components below the target.
    comps: Vec<Vec<u8>>,
    node: Node,
    action: Action,
    /// A folder above a snapshot source, like `/etc` above `/etc/travis`: created when
    /// missing, but an existing one keeps its metadata.
    ancestor: bool,
    /// The target already holds a regular file of this size and mtime here.
    same_file: bool,
    children: Vec<Item>,
}

impl Item {
    fn display(&self, target: &Path) -> String {
        let mut s = target.display().to_string();
        for c in &self.comps {
            if !s.ends_with('/') {
                s.push('/');
            }
            s.push_str(&display_name(c));
        }
        s
    }
}

struct Planner<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    opts: &'a RestoreOptions,
    sources: Vec<Vec<Vec<u8>>>,
    includes: Vec<Vec<Vec<u8>>>,
    conflicts: Vec<String>,
    privileged: Vec<String>,
}

fn components(p: &[u8]) -> Vec<Vec<u8>> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// Restores `snapshot_tree` into `opts.target`.
pub fn run(
    reader: &BlobReader,
    cache: &Cache,
    snapshot: &crate::repo::Snapshot,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let includes: Vec<Vec<Vec<u8>>> = opts
        .includes
        .iter()
        .map(|p| components(p.as_os_str().as_bytes()))
        .collect();
    let sources = snapshot.paths.iter().map(|p| components(p)).collect();
    if !opts.dry_run {
        std::fs::create_dir_all(&opts.target).map_err(|e| {
            Error::io(
                format!("create restore target {}", opts.target.display()),
                e,
            )
        })?;
    }
    let root_fd = match rustix::fs::open(
        &opts.target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::NOENT) if opts.dry_run => None,
        Err(e) => {
            return Err(Error::io(
                format!("open restore target {}", opts.target.display()),
                e.into(),
            ))
        }
    };

    let _batch = cache.read_batch()?;
    // From a remote store, every folder listing the plan reads would be one request in a
    // row; fetch them all at once first.
    let tree_spool;
    let reader = match &opts.spool {
        Some(dir) => {
            let mut needed: BTreeMap<String, PackNeeds> = BTreeMap::new();
            for blob in cache.tree_blob_ranges()? {
                needed
                    .entry(blob.pack.to_hex())
                    .or_insert_with(|| PackNeeds {
                        size: blob.pack_size,
                        ranges: vec![crate::pack::header_range(blob.header_len)],
                    })
                    .ranges
                    .push((blob.offset, blob.length));
            }
            let spool = SpoolBackend::fetch(
                reader.repo.backend.clone(),
                &dir.join("trees"),
                needed,
                SPOOL_FETCHERS,
            )?;
            tree_spool = reader.with_backend(Arc::new(spool));
            &tree_spool
        }
        None => reader,
    };
    let mut planner = Planner {
        reader,
        cache,
        opts,
        sources,
        includes,
        conflicts: Vec::new(),
        privileged: Vec::new(),
    };
    let root_tree = reader.tree(cache, &snapshot.tree)?;
    let items = planner.plan_children(root_fd.as_ref().map(|f| f.as_fd()), &[], &root_tree)?;
    if !planner.includes.is_empty() && items.is_empty() {
        return Err(Error::Usage(format!(
            "--include matched nothing in this snapshot (its paths: {})",
            snapshot.paths_display().join(", ")
        )));
    }

    let mut report = RestoreReport {
        privileged: std::mem::take(&mut planner.privileged),
        ..Default::default()
    };
    collect_plan(&items, &opts.target, &mut report.plan);
    if let Some(root) = &root_fd {
        let mut dirs = Vec::new();
        expected_dirs(&items, &mut dirs);
        // Without --delete the extras are only counted: a folder this user cannot list
        // must not stop a restore that would not touch it.
        report.extras = match crate::restore_delete::find(root.as_fd(), &dirs, &opts.target) {
            Ok(extras) => extras,
            Err(e) if opts.delete => return Err(e),
            Err(_) => Vec::new(),
        };
    }
    if !planner.conflicts.is_empty() {
        let n = planner.conflicts.len();
        let shown: Vec<String> = planner
            .conflicts
            .iter()
            .take(20)
            .map(|c| format!("  {c}"))
            .collect();
        return Err(Error::Restore(format!(
            "{n} entr{} of the snapshot already exist{} in {} and nothing was written:\n{}{}\n\
             choose what to do with them: --overwrite never (keep them), always (replace them), \
             if-changed, or if-newer; or restore into an empty folder",
            if n == 1 { "y" } else { "ies" },
            if n == 1 { "s" } else { "" },
            opts.target.display(),
            shown.join("\n"),
            if n > 20 {
                format!("\n  ... and {} more", n - 20)
            } else {
                String::new()
            },
        )));
    }
    if opts.dry_run {
        return Ok(report);
    }
    let root_fd = root_fd.expect("target exists when not a dry run");
    // Before anything is written, so folders get their snapshot mtimes afterwards.
    if opts.delete {
        let (removed, failures) = crate::restore_delete::remove(root_fd.as_fd(), &report.extras);
        report.extras_removed = removed;
        report.failures.extend(failures);
    }
    let spooled;
    let reader = match &opts.spool {
        Some(dir) => {
            let mut needed = BTreeMap::new();
            needed_ranges(cache, &items, &mut needed)?;
            let spool = SpoolBackend::fetch(
                reader.repo.backend.clone(),
                &dir.join("data"),
                needed,
                SPOOL_FETCHERS,
            )?;
            spooled = reader.with_backend(Arc::new(spool));
            &spooled
        }
        None => reader,
    };
    let (files_total, bytes_total) = planned_totals(&items);
    crate::progress::get().begin("restore", files_total, bytes_total);
    let mut report = std::thread::scope(|scope| -> Result<RestoreReport> {
        let mut runner = Runner::new(scope, reader, cache, opts, &root_fd, report);
        runner.run(&items)?;
        runner.finish()
    })?;
    if opts.verify {
        verify(reader, &root_fd, &items, &mut report)?;
    }
    Ok(report)
}

/// Files and bytes of file content the plan writes, for progress.
fn planned_totals(items: &[Item]) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for item in items {
        if item.action == Action::Keep {
            continue;
        }
        match item.node.kind {
            NodeKind::Dir => {
                let (f, b) = planned_totals(&item.children);
                files += f;
                bytes += b;
            }
            NodeKind::File => {
                files += 1;
                bytes += item.node.size;
            }
            _ => {}
        }
    }
    (files, bytes)
}

/// Requests in flight while spooling (each holds up to 4 MiB).
const SPOOL_FETCHERS: usize = 4;

/// The byte ranges of every pack the files to write need: their blobs and the headers
/// that hold the packs' data keys.
fn needed_ranges(
    cache: &Cache,
    items: &[Item],
    out: &mut BTreeMap<String, PackNeeds>,
) -> Result<()> {
    for item in items {
        if item.action == Action::Keep {
            continue;
        }
        if item.node.kind == NodeKind::Dir {
            needed_ranges(cache, &item.children, out)?;
        }
        for c in item.node.chunks() {
            // A blob the index lacks is reported when its file is written.
            if let Some(loc) = cache.locate(&c.id)? {
                let needs = match out.entry(loc.pack.to_hex()) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => e.insert(PackNeeds {
                        size: cache.pack_size(&loc.pack)?.unwrap_or(0),
                        ranges: vec![crate::pack::header_range(loc.header_len)],
                    }),
                };
                needs
                    .ranges
                    .push((loc.entry.offset as u64, loc.entry.length as u64));
            }
        }
    }
    Ok(())
}

/// The folders the restore merges into (existing in the target, at or below a restored
/// path), each with the names the snapshot holds there.
fn expected_dirs<'a>(items: &'a [Item], out: &mut Vec<crate::restore_delete::ExpectedDir<'a>>) {
    for item in items {
        if item.node.kind != NodeKind::Dir || item.action != Action::Merge {
            continue;
        }
        if !item.ancestor {
            out.push(crate::restore_delete::ExpectedDir {
                comps: &item.comps,
                names: item
                    .children
                    .iter()
                    .map(|c| c.node.name.as_slice())
                    .collect(),
            });
        }
        expected_dirs(&item.children, out);
    }
}

fn collect_plan(items: &[Item], target: &Path, out: &mut Vec<PlanLine>) {
    for item in items {
        out.push(PlanLine {
            action: item.action,
            path: item.display(target),
            kind: item.node.kind,
        });
        collect_plan(&item.children, target, out);
    }
}

/// Opens a folder below `dir` without following a symlink in its place.
fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_path(root: BorrowedFd<'_>, comps: &[Vec<u8>]) -> rustix::io::Result<OwnedFd> {
    let mut fd = rustix::fs::openat(
        root,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for c in comps {
        fd = open_dir_at(fd.as_fd(), c)?;
    }
    Ok(fd)
}

fn is_prefix(a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl Planner<'_> {
    fn wanted(&self, comps: &[Vec<u8>]) -> bool {
        self.includes.is_empty()
            || self
                .includes
                .iter()
                .any(|inc| is_prefix(inc, comps) || is_prefix(comps, inc))
    }

    fn is_ancestor(&self, comps: &[Vec<u8>]) -> bool {
        let strictly_above =
            |outer: &Vec<Vec<u8>>| comps.len() < outer.len() && is_prefix(comps, outer);
        self.sources.iter().any(strictly_above) || self.includes.iter().any(strictly_above)
    }

    fn plan_children(
        &mut self,
        dir: Option<BorrowedFd<'_>>,
        parent: &[Vec<u8>],
        tree: &crate::tree::Tree,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        for node in &tree.nodes {
            if !is_safe_name(&node.name) {
                return Err(Error::corrupt(
                    "snapshot",
                    format!(
                        "it holds an entry named {:?} below /{}; refusing to restore a name that could leave the target",
                        display_name(&node.name),
                        parent.iter().map(|c| display_name(c)).collect::<Vec<_>>().join("/")
                    ),
                ));
            }
            let mut comps = parent.to_vec();
            comps.push(node.name.clone());
            if !self.wanted(&comps) {
                continue;
            }
            let ancestor = node.kind == NodeKind::Dir && self.is_ancestor(&comps);
            let existing = match dir {
                Some(d) => match rustix::fs::statat(
                    d,
                    OsStr::from_bytes(&node.name),
                    AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) => Some(st),
                    Err(rustix::io::Errno::NOENT) => None,
                    Err(e) => {
                        return Err(Error::io(
                            format!("inspect {} in the target", display_name(&node.name)),
                            e.into(),
                        ))
                    }
                },
                None => None,
            };
            let mut item = Item {
                comps,
                node: node.clone(),
                action: Action::Create,
                ancestor,
                same_file: false,
                children: Vec::new(),
            };
            if let Some(st) = &existing {
                item.same_file = node.kind == NodeKind::File
                    && rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::RegularFile
                    && st.st_size as u64 == node.size
                    && (st.st_mtime as i64, st.st_mtime_nsec as i64)
                        == (node.mtime, node.mtime_nsec as i64);
            }
            let existing_is_dir = existing.as_ref().map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
            });
            item.action = match (existing, node.kind) {
                (None, _) => Action::Create,
                (Some(_), NodeKind::Dir) if existing_is_dir == Some(true) => Action::Merge,
                (Some(st), _) => {
                    if existing_is_dir == Some(true) {
                        // Replacing a whole folder by a file would delete data the
                        // snapshot knows nothing of: never done implicitly.
                        if self.opts.overwrite.is_none()
                            || self.opts.overwrite == Some(Overwrite::Never)
                        {
                            self.conflict_or_keep(&item)
                        } else {
                            return Err(Error::Restore(format!(
                                "{} is a folder in the target but a {} in the snapshot; remove or move it by hand, then restore again",
                                item.display(&self.opts.target),
                                kind_word(node.kind)
                            )));
                        }
                    } else {
                        self.decide(&item, &st, dir)
                    }
                }
            };
            if item.action != Action::Keep {
                if let Some(what) = privileged_bits(&item.node) {
                    let shown = item.display(&self.opts.target);
                    if !self.opts.no_privileged {
                        self.privileged.push(format!("{shown}: {what}"));
                    } else if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
                        self.privileged
                            .push(format!("{shown}: {what} (skipped: --no-privileged)"));
                        continue;
                    } else {
                        item.node.mode &= !0o6000;
                        item.node.xattrs.retain(|x| x.name != CAPABILITY_XATTR);
                        self.privileged.push(format!(
                            "{shown}: {what} (restored without it: --no-privileged)"
                        ));
                    }
                }
            }
            if node.kind == NodeKind::Dir && item.action != Action::Keep {
                let subtree_id = node.subtree.ok_or_else(|| {
                    Error::corrupt(
                        "snapshot",
                        format!("folder {} has no tree", item.display(&self.opts.target)),
                    )
                })?;
                let subtree = self.reader.tree(self.cache, &subtree_id)?;
                let child_fd = if item.action == Action::Merge {
                    let d = dir.expect("merge implies the parent exists");
                    Some(open_dir_at(d, &node.name).map_err(|e| {
                        Error::io(
                            format!("open {} in the target", item.display(&self.opts.target)),
                            e.into(),
                        )
                    })?)
                } else {
                    None
                };
                item.children = self.plan_children(
                    child_fd.as_ref().map(|f| f.as_fd()),
                    &item.comps.clone(),
                    &subtree,
                )?;
            }
            items.push(item);
        }
        Ok(items)
    }

    fn conflict_or_keep(&mut self, item: &Item) -> Action {
        if self.opts.overwrite.is_none() {
            self.conflicts.push(item.display(&self.opts.target));
        }
        Action::Keep
    }

    fn decide(
        &mut self,
        item: &Item,
        st: &rustix::fs::Stat,
        dir: Option<BorrowedFd<'_>>,
    ) -> Action {
        let node = &item.node;
        match self.opts.overwrite {
            None => self.conflict_or_keep(item),
            Some(Overwrite::Never) => Action::Keep,
            Some(Overwrite::Always) => Action::Replace,
            Some(Overwrite::IfNewer) => {
                let newer = (node.mtime, node.mtime_nsec as i64)
                    > (st.st_mtime as i64, st.st_mtime_nsec as i64);
                if newer {
                    Action::Replace
                } else {
                    Action::Keep
                }
            }
            Some(Overwrite::IfChanged) => {
                let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                let same_kind = matches!(
                    (ft, node.kind),
                    (rustix::fs::FileType::RegularFile, NodeKind::File)
                        | (rustix::fs::FileType::Symlink, NodeKind::Symlink)
                        | (rustix::fs::FileType::Fifo, NodeKind::Fifo)
                        | (rustix::fs::FileType::CharacterDevice, NodeKind::CharDevice)
                        | (rustix::fs::FileType::BlockDevice, NodeKind::BlockDevice)
                        | (rustix::fs::FileType::Socket, NodeKind::Socket)
                );
                let same_target = node.kind != NodeKind::Symlink
                    || dir
                        .and_then(|d| {
                            rustix::fs::readlinkat(d, OsStr::from_bytes(&node.name), Vec::new())
                                .ok()
                        })
                        .map(|t| Some(t.as_bytes().to_vec()) == node.target)
                        .unwrap_or(false);
                let same = same_kind
                    && same_target
                    && (node.kind != NodeKind::File || st.st_size as u64 == node.size)
                    && (node.kind == NodeKind::Symlink
                        || (st.st_mtime as i64, st.st_mtime_nsec as i64)
                            == (node.mtime, node.mtime_nsec as i64));
                if same {
                    Action::Keep
                } else {
                    Action::Replace
                }
            }
        }
    }
}

const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// What makes an entry privileged: setuid or setgid on a file, file capabilities, or
/// being a device node. Setgid folders (group inheritance) are not privileged.
fn privileged_bits(node: &Node) -> Option<String> {
    let mut what = Vec::new();
    if node.kind != NodeKind::Dir {
        if node.mode & 0o4000 != 0 {
            what.push("setuid".to_string());
        }
        if node.mode & 0o2000 != 0 {
            what.push("setgid".to_string());
        }
    }
    if node.xattrs.iter().any(|x| x.name == CAPABILITY_XATTR) {
        what.push("file capabilities".to_string());
    }
    if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        what.push(format!(
            "{} {}:{}, mode {:04o}",
            kind_word(node.kind),
            rustix::fs::major(node.rdev as _),
            rustix::fs::minor(node.rdev as _),
            node.mode
        ));
    }
    (!what.is_empty()).then(|| what.join(", "))
}

fn kind_word(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "folder",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "FIFO",
        NodeKind::CharDevice => "character device",
        NodeKind::BlockDevice => "block device",
        NodeKind::Socket => "socket",
    }
}

/// Path components of an entry below the target.
type Components = Vec<Vec<u8>>;

/// A later path of a hardlink group: (first path, this path, this path for messages,
/// whether it is a regular file).
type PendingLink = (Components, Components, String, bool);

/// A regular file being restored. Its content is written in parts, possibly by several
/// workers at once (a 1 GiB database segment should not keep one core busy while the
/// other idles); whoever finishes the last part sets the metadata and, for a replacement,
/// renames it into place.
struct OpenFile {
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
    fn new(
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
struct FileJob {
    file: Arc<OpenFile>,
    chunks: Vec<(u64, Location)>,
}

/// Largest part of a file one worker writes before another may take the next.
const PART_BYTES: u64 = 8 << 20;

/// Splits a file's chunks into parts of about [`PART_BYTES`]; always at least one part,
/// so an empty file is finished like any other.
fn split_parts(chunks: Vec<(u64, Location)>) -> Vec<Vec<(u64, Location)>> {
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

struct Shared {
    /// Regular files completely restored.
    files: std::sync::atomic::AtomicU64,
    failures: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    bytes: std::sync::atomic::AtomicU64,
    owner_not_set: std::sync::atomic::AtomicU64,
}

struct Runner<'a, 'scope> {
    cache: &'a Cache,
    opts: &'a RestoreOptions,
    root: &'a OwnedFd,
    report: RestoreReport,
    names: Names,
    is_root: bool,
    shared: Arc<Shared>,
    tx: Option<mpsc::SyncSender<FileJob>>,
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
    fn new(
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
        let (tx, rx) = mpsc::sync_channel::<FileJob>(threads * 4);
        let rx = Arc::new(Mutex::new(rx));
        let is_root = rustix::process::geteuid().is_root();
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                scope.spawn(move || loop {
                    let job = rx.lock().unwrap().recv();
                    let Ok(job) = job else { break };
                    write_part(reader, &shared, job, is_root);
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
            workers,
            links: HashMap::new(),
            pending_links: Vec::new(),
            dir_meta: Vec::new(),
        }
    }

    fn run(&mut self, items: &[Item]) -> Result<()> {
        let root = Arc::new(
            open_path(self.root.as_fd(), &[])
                .map_err(|e| Error::io("open restore target", e.into()))?,
        );
        self.clean_leftovers(&root, &self.opts.target.display().to_string(), items)?;
        self.run_dir(&root, items)
    }

    /// Removes an interrupted restore's temporary files from an existing folder.
    fn clean_leftovers(&mut self, dir: &OwnedFd, display: &str, items: &[Item]) -> Result<()> {
        let n = remove_temp_files(dir.as_fd(), items).map_err(|e| {
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

    fn run_dir(&mut self, dir: &Arc<OwnedFd>, items: &[Item]) -> Result<()> {
        for item in items {
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
                    if item.action == Action::Merge {
                        self.clean_leftovers(&child, &display, &item.children)?;
                    }
                    self.report.dirs += 1;
                    self.run_dir(&child, &item.children)?;
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
                        let job = FileJob {
                            file: file.clone(),
                            chunks: part,
                        };
                        if self
                            .tx
                            .as_ref()
                            .expect("workers running")
                            .send(job)
                            .is_err()
                        {
                            return Err(Error::Restore("file workers stopped unexpectedly".into()));
                        }
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

    fn finish(mut self) -> Result<RestoreReport> {
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

fn uid(raw: u32) -> rustix::fs::Uid {
    // SAFETY: `from_raw` is marked unsafe only because the value u32::MAX means "leave the
    // owner unchanged" to chown; passing it (from a snapshot) just leaves the owner as it
    // is, which is no memory-safety concern.
    unsafe { rustix::fs::Uid::from_raw(raw) }
}

fn gid(raw: u32) -> rustix::fs::Gid {
    // SAFETY: as for `uid`.
    unsafe { rustix::fs::Gid::from_raw(raw) }
}

fn errno_is_perm(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::PERM || *e == rustix::io::Errno::ACCESS
}

/// Sets owner, mode, xattrs and times on `dir/name` without following a symlink there.
fn apply_meta_at(
    dir: BorrowedFd<'_>,
    node: &Node,
    owner: (u32, u32),
    display: &str,
    is_root: bool,
    shared: &Shared,
) {
    let name = OsStr::from_bytes(&node.name);
    let warn = |m: String| shared.warnings.lock().unwrap().push(m);
    let chown = rustix::fs::chownat(
        dir,
        name,
        Some(uid(owner.0)),
        Some(gid(owner.1)),
        AtFlags::SYMLINK_NOFOLLOW,
    );
    if let Err(e) = chown {
        if errno_is_perm(&e) && !is_root {
            shared
                .owner_not_set
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            warn(format!("{display}: owner not set: {e}"));
        }
    }
    if node.kind != NodeKind::Symlink {
        // The entry was created by this restore (or is a folder opened without following
        // links), so chmodat cannot be redirected through a symlink here.
        if let Err(e) =
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(node.mode), AtFlags::empty())
        {
            warn(format!("{display}: mode not set: {e}"));
        }
    }
    if !node.xattrs.is_empty() {
        // lsetxattr through the folder's /proc/self/fd link: the folder is the one we
        // hold open, and the final name is not followed.
        let mut proc_path =
            format!("/proc/self/fd/{}/", rustix::fd::AsRawFd::as_raw_fd(&dir)).into_bytes();
        proc_path.extend_from_slice(&node.name);
        let path = OsStr::from_bytes(&proc_path);
        for x in &node.xattrs {
            if let Err(e) = rustix::fs::lsetxattr(
                path,
                OsStr::from_bytes(&x.name),
                &x.value,
                rustix::fs::XattrFlags::empty(),
            ) {
                warn(format!(
                    "{display}: extended attribute {} not set: {e}",
                    display_name(&x.name)
                ));
            }
        }
    }
    let ts = rustix::fs::Timespec {
        tv_sec: node.mtime,
        tv_nsec: node.mtime_nsec as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    if let Err(e) = rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW) {
        warn(format!("{display}: mtime not set: {e}"));
    }
}

/// Longest run of back-to-back blobs fetched with one read.
const MAX_RUN_BYTES: u64 = 8 << 20;

/// Writes one part of a file; the worker that writes the last part finishes the file.
fn write_part(reader: &BlobReader, shared: &Shared, job: FileJob, is_root: bool) {
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

fn write_chunks(
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

/// Sizes the file (so trailing holes stay holes), sets owner, mode, xattrs and times in
/// that order, and moves a replacement into place. A file whose content failed is
/// removed: no file is left holding unverified or partial data.
fn finish_file(shared: &Shared, of: &OpenFile, is_root: bool) {
    let warn = |m: String| shared.warnings.lock().unwrap().push(m);
    let result = of.failed.lock().unwrap().take().map_or_else(
        || {
            let file = of.handle()?;
            file.set_len(of.node.size)
                .map_err(|e| format!("cannot set size: {e}"))?;
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

/// Re-reads every restored regular file and checks it against the snapshot's chunk ids.
fn verify(
    reader: &BlobReader,
    root: &OwnedFd,
    items: &[Item],
    report: &mut RestoreReport,
) -> Result<()> {
    for item in items {
        if item.action == Action::Keep {
            continue;
        }
        match item.node.kind {
            NodeKind::Dir => verify(reader, root, &item.children, report)?,
            NodeKind::File => {
                let display = item.display(Path::new(""));
                match verify_file(reader, root, item) {
                    Ok(()) => report.verified_files += 1,
                    Err(msg) => report
                        .failures
                        .push(format!("{display}: verify failed: {msg}")),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn verify_file(
    reader: &BlobReader,
    root: &OwnedFd,
    item: &Item,
) -> std::result::Result<(), String> {
    let (parent, name) = item.comps.split_at(item.comps.len() - 1);
    let dir = open_path(root.as_fd(), parent).map_err(|e| e.to_string())?;
    let fd = rustix::fs::openat(
        dir.as_fd(),
        OsStr::from_bytes(&name[0]),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open: {e}"))?;
    let file = std::fs::File::from(fd);
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size != item.node.size {
        return Err(format!(
            "size is {size}, the snapshot says {}",
            item.node.size
        ));
    }
    use std::os::unix::fs::FileExt;
    let mut buf = Vec::new();
    for extent in &item.node.extents {
        let mut offset = extent.offset;
        for c in &extent.chunks {
            buf.resize(c.len as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| format!("cannot read: {e}"))?;
            if reader.keys.blob_id(&buf) != c.id {
                return Err(format!(
                    "content at offset {offset} differs from the snapshot"
                ));
            }
            offset += c.len as u64;
        }
    }
    Ok(())
}
