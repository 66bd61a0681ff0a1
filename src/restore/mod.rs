//! Restoring a snapshot into a target folder, exactly and safely.
//!
//! Plan, then run. The plan walks the snapshot's trees alongside the target and decides
//! for every entry: create it, replace what is in the way, keep what is there, or merge
//! into an existing folder. Anything in the way with no `--overwrite` policy is a
//! conflict, and the restore stops before writing a byte. `--dry-run` prints the plan.
//!
//! Memory: the plan does not hold the snapshot's listing. It keeps one byte per entry
//! (its decision, in walk order), and the writer and `--verify` walk the same trees again,
//! one folder listing at a time, replaying those decisions; so a restore holds about one
//! folder listing per level of depth, the decisions, per-folder metadata for the end,
//! and the first path of each hardlink group. Only a dry run keeps every plan line (it
//! returns them). The price is reading each folder listing two or three times (from the
//! local store or the spool, never the remote store again).
//!
//! Order: files are written in the snapshot's order, which is the order their blobs were
//! packed, so reads go through each pack front to back; a spooled restore downloads the
//! packs in the order the plan first needs them, in the background, while files are
//! written.
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
//! Exactness: content is written at its offsets and a file whose content ends before its
//! size is sized with `ftruncate`, so holes stay holes. Metadata goes on in the order the kernel demands: owner first
//! (chown clears setuid/setgid and capabilities), then mode, then xattrs (ACLs,
//! capabilities), then times. Folders get their metadata last, deepest first, after
//! everything inside them exists, so their mtimes and restrictive modes stick.
//!
//! # Files
//!
//! - `plan.rs`: the planner (what to do with each entry; conflicts; privileged entries;
//!   the pack ranges a spooled restore fetches).
//! - `write.rs`: the writer (folders, files in parts on workers, special files,
//!   hardlinks, folder metadata at the end; leftovers of a killed restore removed).
//! - `metadata.rs`: owner, mode, xattrs and times, in that order.
//! - `verify.rs`: `--verify`, re-reading what was written.
//! - `delete.rs`: `--delete`, the target's entries the snapshot lacks.
//! - `fsat.rs`: descriptor-relative helpers (open without following, temporary names,
//!   rename into place) the others share.

pub mod delete;
mod fsat;
mod metadata;
mod plan;
mod verify;
mod write;

pub use fsat::is_temp_name;

use crate::backend::spool::{PackNeeds, SpoolBackend};
use crate::cache::Cache;
use crate::error::{Error, Remedy, Result};
use crate::reader::BlobReader;
use crate::tree::NodeKind;
use plan::{components, Planner, CONFLICTS_SHOWN};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use verify::verify;
use write::Runner;

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
    /// (see [`self::delete`]).
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

/// A privileged entry of the snapshot that the restore writes (or would write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privileged {
    /// The entry as shown: its path in the target.
    pub path: String,
    /// What makes it privileged: setuid, setgid, file capabilities, a device node.
    pub what: String,
    /// What the restore does with it.
    pub handling: PrivilegedHandling,
}

/// What a restore does with a privileged entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivilegedHandling {
    /// Restored as it is in the snapshot.
    Restored,
    /// Not restored: a device node, with privileged entries refused.
    Skipped,
    /// Restored without its setuid/setgid bits and capabilities (privileged entries
    /// refused).
    Stripped,
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
    /// Every line of the plan, for a dry run (a real run leaves it empty rather than hold
    /// a line per entry of the snapshot).
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
    pub privileged: Vec<Privileged>,
    /// Temporary files of an earlier, interrupted restore that were removed.
    pub leftovers_removed: u64,
    /// Entries of the target below the restored paths that the snapshot lacks: removed
    /// with `delete` (unless a dry run), else left.
    pub extras: Vec<delete::Extra>,
    /// How many of `extras` were removed.
    pub extras_removed: u64,
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
    let root_fd = open_target(opts)?;

    let _batch = cache.read_batch()?;
    // From a remote store, every folder listing the plan reads would be one request in a
    // row; fetch them all at once first. The file data goes into the same spool later.
    let spool = match &opts.spool {
        Some(dir) => {
            let spool = SpoolBackend::new(reader.repo.backend.clone(), &dir.join("packs"))?;
            let spool = Arc::new(spool);
            spool.fetch(tree_needs(cache)?, SPOOL_FETCHERS)?;
            Some(spool)
        }
        None => None,
    };
    let spooled = spool.as_ref().map(|s| reader.with_backend(s.clone()));
    let reader = spooled.as_ref().unwrap_or(reader);
    let mut planner = Planner::new(reader, cache, opts, sources, includes);
    let root_tree = reader.tree(cache, &snapshot.tree)?;
    let planned = planner.plan_children(root_fd.as_ref().map(|f| f.as_fd()), &[], &root_tree)?;
    if !planner.includes.is_empty() && planned.is_empty() {
        return Err(Error::Usage(format!(
            "no path to include is in this snapshot (its paths: {})",
            snapshot.paths_display().join(", ")
        ))
        .with_remedy(Remedy::IncludeSnapshotPaths));
    }

    let mut report = RestoreReport {
        privileged: std::mem::take(&mut planner.privileged),
        plan: planner.lines.take().unwrap_or_default(),
        ..Default::default()
    };
    if root_fd.is_some() {
        // Without --delete the extras are only counted: a folder this user cannot list
        // must not stop a restore that would not touch it.
        report.extras = match planner.extras_error.take() {
            None => std::mem::take(&mut planner.extras),
            Some(e) if opts.delete => return Err(e),
            Some(_) => Vec::new(),
        };
    }
    if planner.conflict_count > 0 {
        return Err(conflicts_error(&planner, opts));
    }
    if opts.dry_run {
        return Ok(report);
    }
    let root_fd = root_fd.expect("target exists when not a dry run");
    // Before anything is written, so folders get their snapshot mtimes afterwards.
    if opts.delete {
        let (removed, failures) = delete::remove(root_fd.as_fd(), &report.extras);
        report.extras_removed = removed;
        report.failures.extend(failures);
    }
    if let Some(spool) = &spool {
        spool.start(data_needs(&mut planner), SPOOL_FETCHERS, false);
    }
    let (files_total, bytes_total) = planner.totals;
    crate::progress::get().begin("restore", files_total, bytes_total);
    let mut report = std::thread::scope(|scope| -> Result<RestoreReport> {
        let mut runner = Runner::new(scope, reader, cache, opts, &root_fd, report);
        runner.run(&planner, &root_tree)?;
        runner.finish()
    })?;
    if opts.verify {
        verify(
            reader,
            &planner,
            &root_fd,
            &[],
            &root_tree,
            &mut 0,
            &mut report,
        )?;
    }
    Ok(report)
}

/// The restore target, made first unless a dry run; `None` for a dry run into a target
/// that does not exist.
fn open_target(opts: &RestoreOptions) -> Result<Option<OwnedFd>> {
    if !opts.dry_run {
        std::fs::create_dir_all(&opts.target).map_err(|e| {
            Error::io(
                format!("create restore target {}", opts.target.display()),
                e,
            )
        })?;
    }
    match rustix::fs::open(
        &opts.target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) if opts.dry_run => Ok(None),
        Err(e) => Err(Error::io(
            format!("open restore target {}", opts.target.display()),
            e.into(),
        )),
    }
}

/// The ranges of every folder listing the index knows, by pack, to spool before planning.
fn tree_needs(cache: &Cache) -> Result<BTreeMap<String, PackNeeds>> {
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
    Ok(needed)
}

/// The file data the plan reads, by pack, in the order the writer reads it: spooled
/// while it writes, so a file waits only for its own ranges.
fn data_needs(planner: &mut Planner<'_>) -> Vec<(String, PackNeeds)> {
    let mut needed = planner.needed.take().unwrap_or_default();
    std::mem::take(&mut planner.pack_order)
        .into_iter()
        .filter_map(|pack| needed.remove(&pack).map(|needs| (pack, needs)))
        .collect()
}

/// The error for entries of the snapshot that already exist in the target (the first
/// [`CONFLICTS_SHOWN`] named).
fn conflicts_error(planner: &Planner<'_>, opts: &RestoreOptions) -> Error {
    let n = planner.conflict_count;
    let shown: Vec<String> = planner.conflicts.iter().map(|c| format!("  {c}")).collect();
    Error::Restore(format!(
        "{n} entr{} of the snapshot already exist{} in {} and nothing was written:\n{}{}",
        if n == 1 { "y" } else { "ies" },
        if n == 1 { "s" } else { "" },
        opts.target.display(),
        shown.join("\n"),
        if n > CONFLICTS_SHOWN {
            format!("\n  ... and {} more", n - CONFLICTS_SHOWN)
        } else {
            String::new()
        },
    ))
    .with_remedy(Remedy::ChooseOverwrite)
}

/// Requests in flight while spooling, at most: many small ones hide the request latency,
/// and from S3 each body goes into the spool as it arrives (see [`crate::backend::spool`]).
const SPOOL_FETCHERS: usize = 16;
