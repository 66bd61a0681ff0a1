//! Folders a [`Capture`](super::Capture) manages: `begin`, the walk under its rules,
//! `end`, its extra files, `release`; `abort` instead of the rest whenever anything failed
//! after `begin`.

use super::walker::Walker;
use super::{CaptureRules, ExtraFile};
use crate::error::{Error, Result};
use crate::tree::{NodeKind, Tree};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl Walker<'_, '_> {
    /// Saves a folder a capture manages: begin, walk under its rules, end, add its extra
    /// files, release; abort on any failure after begin.
    pub(super) fn save_captured(&mut self, i: usize, path: &Path) -> Result<Tree> {
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
                    let node =
                        self.node_from_meta(&child, name.clone(), &meta, NodeKind::Dir, None);
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
}
