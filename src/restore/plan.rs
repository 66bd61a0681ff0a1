//! The plan: the snapshot's trees walked alongside the target, deciding for every
//! entry what the restore does with it (create, replace, keep or merge).
//!
//! Invariants: every name is checked with [`is_safe_name`] before it is used; the
//! target is only inspected here (statat/readlinkat through folder descriptors opened
//! with `O_NOFOLLOW`), never changed; a conflict is recorded, not acted on.

use super::fsat::open_dir_at;
use super::{Action, Overwrite, PlanLine, Privileged, PrivilegedHandling, RestoreOptions};
use crate::backend::spool::PackNeeds;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::reader::BlobReader;
use crate::tree::{display_name, is_safe_name, Node, NodeKind};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::AtFlags;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An entry of the snapshot as the plan sees it.
pub(super) struct Item {
    /// Path components below the target.
    pub(super) comps: Vec<Vec<u8>>,
    pub(super) node: Node,
    pub(super) action: Action,
    /// A folder above a snapshot source, like `/etc` above `/etc/travis`: created when
    /// missing, but an existing one keeps its metadata.
    pub(super) ancestor: bool,
    /// The target already holds a regular file of this size and mtime here.
    pub(super) same_file: bool,
}

impl Item {
    pub(super) fn display(&self, target: &Path) -> String {
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

pub(super) struct Planner<'a> {
    pub(super) reader: &'a BlobReader,
    pub(super) cache: &'a Cache,
    pub(super) opts: &'a RestoreOptions,
    pub(super) sources: Vec<Vec<Vec<u8>>>,
    pub(super) includes: Vec<Vec<Vec<u8>>>,
    /// The first conflicts (enough to show), and how many there are.
    pub(super) conflicts: Vec<String>,
    pub(super) conflict_count: usize,
    pub(super) privileged: Vec<Privileged>,
    /// One byte per entry the plan visits, in walk order (see [`Planner::replay`]): the
    /// decision, so the writer and verify follow the plan without holding the listing.
    pub(super) log: Vec<u8>,
    /// Every line of the plan, kept for a dry run only.
    pub(super) lines: Option<Vec<PlanLine>>,
    /// Files and bytes of file content the plan writes, for progress.
    pub(super) totals: (u64, u64),
    /// For a spooled restore: the pack ranges the files to write need.
    pub(super) needed: Option<BTreeMap<String, PackNeeds>>,
    /// The packs of `needed` in the order the plan first needs them: the order the writer
    /// will read them in, so the order a spool downloads them in.
    pub(super) pack_order: Vec<String>,
    /// Entries of the target the snapshot lacks, parents first, and the first error
    /// met while listing them.
    pub(super) extras: Vec<super::delete::Extra>,
    pub(super) extras_error: Option<Error>,
}

impl<'a> Planner<'a> {
    /// A planner with nothing planned yet, restoring the snapshot paths `sources` (or
    /// only `includes` of them, when given).
    pub(super) fn new(
        reader: &'a BlobReader,
        cache: &'a Cache,
        opts: &'a RestoreOptions,
        sources: Vec<Vec<Vec<u8>>>,
        includes: Vec<Vec<Vec<u8>>>,
    ) -> Self {
        Planner {
            reader,
            cache,
            opts,
            sources,
            includes,
            conflicts: Vec::new(),
            conflict_count: 0,
            privileged: Vec::new(),
            log: Vec::new(),
            lines: opts.dry_run.then(Vec::new),
            totals: (0, 0),
            needed: (opts.spool.is_some() && !opts.dry_run).then(BTreeMap::new),
            pack_order: Vec::new(),
            extras: Vec::new(),
            extras_error: None,
        }
    }
}

/// How many conflicts the error message shows.
pub(super) const CONFLICTS_SHOWN: usize = 20;

const LOG_ACTION: u8 = 0b011;
const LOG_SAME_FILE: u8 = 0b100;
const LOG_SKIPPED: u8 = 0b1000;

fn action_code(a: Action) -> u8 {
    match a {
        Action::Create => 0,
        Action::Replace => 1,
        Action::Keep => 2,
        Action::Merge => 3,
    }
}

fn code_action(c: u8) -> Action {
    match c & LOG_ACTION {
        0 => Action::Create,
        1 => Action::Replace,
        2 => Action::Keep,
        _ => Action::Merge,
    }
}

/// Ranges per pack past which the needed ranges of a pack are merged where they touch,
/// so a restore of millions of small files holds a few ranges per pack, not one per blob.
const COMPACT_RANGES: usize = 4096;

fn compact(ranges: &mut Vec<(u64, u64)>) {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len() / 2);
    for &(off, len) in ranges.iter() {
        match out.last_mut() {
            Some((o, l)) if off <= *o + *l => *l = (*l).max(off + len - *o),
            _ => out.push((off, len)),
        }
    }
    *ranges = out;
}

pub(super) fn components(p: &[u8]) -> Vec<Vec<u8>> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

pub(super) fn is_prefix(a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
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

    pub(super) fn plan_children(
        &mut self,
        dir: Option<BorrowedFd<'_>>,
        parent: &[Vec<u8>],
        tree: &crate::tree::Tree,
    ) -> Result<Vec<Vec<u8>>> {
        let mut planned = Vec::new();
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
                    let path = item.display(&self.opts.target);
                    let note = |handling| Privileged {
                        path,
                        what,
                        handling,
                    };
                    if !self.opts.no_privileged {
                        self.privileged.push(note(PrivilegedHandling::Restored));
                    } else if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
                        self.privileged.push(note(PrivilegedHandling::Skipped));
                        self.log.push(LOG_SKIPPED);
                        continue;
                    } else {
                        item.node.mode &= !0o6000;
                        item.node.xattrs.retain(|x| x.name != CAPABILITY_XATTR);
                        self.privileged.push(note(PrivilegedHandling::Stripped));
                    }
                }
            }
            self.log
                .push(action_code(item.action) | if item.same_file { LOG_SAME_FILE } else { 0 });
            if let Some(lines) = &mut self.lines {
                lines.push(PlanLine {
                    action: item.action,
                    path: item.display(&self.opts.target),
                    kind: node.kind,
                });
            }
            if item.action != Action::Keep {
                self.count(&item)?;
            }
            planned.push(node.name.clone());
            if node.kind == NodeKind::Dir && item.action != Action::Keep {
                let subtree = self.subtree(&item)?;
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
                let extras_from = self.extras.len();
                let names = self.plan_children(
                    child_fd.as_ref().map(|f| f.as_fd()),
                    &item.comps,
                    &subtree,
                )?;
                if let (Some(fd), false) = (&child_fd, item.ancestor) {
                    self.list_extras(fd.as_fd(), &item, &names, extras_from);
                }
            }
        }
        Ok(planned)
    }

    /// The folder's tree.
    pub(super) fn subtree(&self, item: &Item) -> Result<crate::tree::Tree> {
        let subtree_id = item.node.subtree.ok_or_else(|| {
            Error::corrupt(
                "snapshot",
                format!("folder {} has no tree", item.display(&self.opts.target)),
            )
        })?;
        self.reader.tree(self.cache, &subtree_id)
    }

    /// Adds a planned entry to the totals, and its pack ranges to those a spool needs.
    fn count(&mut self, item: &Item) -> Result<()> {
        if item.node.kind == NodeKind::File {
            self.totals.0 += 1;
            self.totals.1 += item.node.size;
        }
        let Some(out) = &mut self.needed else {
            return Ok(());
        };
        for c in item.node.chunks() {
            // A blob the index lacks is reported when its file is written.
            if let Some(loc) = self.cache.locate(&c.id)? {
                let needs = match out.entry(loc.pack.to_hex()) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        self.pack_order.push(e.key().clone());
                        e.insert(PackNeeds {
                            size: self.cache.pack_size(&loc.pack)?.unwrap_or(0),
                            ranges: vec![crate::pack::header_range(loc.header_len)],
                        })
                    }
                };
                needs
                    .ranges
                    .push((loc.entry.offset as u64, loc.entry.length as u64));
                if needs.ranges.len() >= COMPACT_RANGES {
                    compact(&mut needs.ranges);
                }
            }
        }
        Ok(())
    }

    /// Lists the extras of a folder the restore merges into (planned entries `names`),
    /// placing them before those of the folders below it (listed while planning those),
    /// so extras stay parents first. After an error nothing more is listed.
    fn list_extras(&mut self, fd: BorrowedFd<'_>, item: &Item, names: &[Vec<u8>], at: usize) {
        if self.extras_error.is_some() {
            return;
        }
        let keep: HashSet<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
        let mut found = Vec::new();
        match super::delete::list(fd, &item.comps, Some(&keep), &self.opts.target, &mut found) {
            Ok(()) => {
                self.extras.splice(at..at, found);
            }
            Err(e) => self.extras_error = Some(e),
        }
    }

    /// The entry `node` of the folder at `parent` as the plan decided it, reading its
    /// decision from the log at `cursor`; `None` for an entry the plan leaves out. Walking
    /// the same trees in the same order as the plan did (folders not kept entered right
    /// after their entry) replays the plan exactly.
    pub(super) fn replay(
        &self,
        node: &Node,
        parent: &[Vec<u8>],
        cursor: &mut usize,
    ) -> Result<Option<Item>> {
        let mut comps = parent.to_vec();
        comps.push(node.name.clone());
        if !self.wanted(&comps) {
            return Ok(None);
        }
        let code = *self
            .log
            .get(*cursor)
            .ok_or_else(|| Error::Restore("the restore plan and the snapshot disagree".into()))?;
        *cursor += 1;
        if code & LOG_SKIPPED != 0 {
            return Ok(None);
        }
        let action = code_action(code);
        let mut node = node.clone();
        if action != Action::Keep && self.opts.no_privileged && privileged_bits(&node).is_some() {
            node.mode &= !0o6000;
            node.xattrs.retain(|x| x.name != CAPABILITY_XATTR);
        }
        Ok(Some(Item {
            ancestor: node.kind == NodeKind::Dir && self.is_ancestor(&comps),
            comps,
            node,
            action,
            same_file: code & LOG_SAME_FILE != 0,
        }))
    }

    /// The names of the folder's entries the plan may hold: what an interrupted
    /// restore's cleanup must leave.
    pub(super) fn wanted_names<'t>(
        &self,
        parent: &[Vec<u8>],
        tree: &'t crate::tree::Tree,
    ) -> HashSet<&'t [u8]> {
        let mut comps = parent.to_vec();
        tree.nodes
            .iter()
            .filter(|n| {
                comps.push(n.name.clone());
                let w = self.wanted(&comps);
                comps.pop();
                w
            })
            .map(|n| n.name.as_slice())
            .collect()
    }

    fn conflict_or_keep(&mut self, item: &Item) -> Action {
        if self.opts.overwrite.is_none() {
            self.conflict_count += 1;
            if self.conflicts.len() < CONFLICTS_SHOWN {
                self.conflicts.push(item.display(&self.opts.target));
            }
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

pub(super) const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// What makes an entry privileged: setuid or setgid on a file, file capabilities, or
/// being a device node. Setgid folders (group inheritance) are not privileged.
pub(super) fn privileged_bits(node: &Node) -> Option<String> {
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

pub(super) fn kind_word(kind: NodeKind) -> &'static str {
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
