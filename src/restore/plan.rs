//! The plan: the snapshot's trees walked alongside the target, deciding for every
//! entry what the restore does with it (create, replace, keep or merge).
//!
//! Invariants: every name is checked with [`is_safe_name`] before it is used; the
//! target is only inspected here (statat/readlinkat through folder descriptors opened
//! with `O_NOFOLLOW`), never changed; a conflict is recorded, not acted on.

use super::fsat::open_dir_at;
use super::{Action, Overwrite, PlanLine, RestoreOptions};
use crate::backend::spool::PackNeeds;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::reader::BlobReader;
use crate::tree::{display_name, is_safe_name, Node, NodeKind};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::AtFlags;
use std::collections::BTreeMap;
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
    pub(super) children: Vec<Item>,
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
    pub(super) conflicts: Vec<String>,
    pub(super) privileged: Vec<String>,
}

pub(super) fn components(p: &[u8]) -> Vec<Vec<u8>> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// Files and bytes of file content the plan writes, for progress.
pub(super) fn planned_totals(items: &[Item]) -> (u64, u64) {
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

/// The byte ranges of every pack the files to write need: their blobs and the headers
/// that hold the packs' data keys.
pub(super) fn needed_ranges(
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
pub(super) fn expected_dirs<'a>(items: &'a [Item], out: &mut Vec<super::delete::ExpectedDir<'a>>) {
    for item in items {
        if item.node.kind != NodeKind::Dir || item.action != Action::Merge {
            continue;
        }
        if !item.ancestor {
            out.push(super::delete::ExpectedDir {
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

pub(super) fn collect_plan(items: &[Item], target: &Path, out: &mut Vec<PlanLine>) {
    for item in items {
        out.push(PlanLine {
            action: item.action,
            path: item.display(target),
            kind: item.node.kind,
        });
        collect_plan(&item.children, target, out);
    }
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
