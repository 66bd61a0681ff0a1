//! Synthetic files ([`ExtraFile`]): given bytes, a file read whole, or the standard output
//! of a command, each stored as one extent from offset 0. A command that exits non-zero
//! fails the snapshot; one whose output cannot be stored is killed.

use super::walker::Walker;
use super::{ExtraFile, ExtraSource};
use crate::chunker::ChunkError;
use crate::error::{Error, Result};
use crate::tree::{Extent, Node, NodeKind};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

impl Walker<'_, '_> {
    /// A node for a synthetic file, its content stored now.
    pub(super) fn extra_node(&mut self, name: Vec<u8>, f: &ExtraFile) -> Result<Node> {
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
            lists: Vec::new(),
            subtree: None,
            target: None,
            rdev: 0,
            link: None,
        })
    }

    /// Cuts a whole stream into chunks: one extent from offset 0 (no holes).
    fn chunk_reader(&mut self, r: impl Read, what: &Path) -> Result<(Vec<Extent>, u64)> {
        let mut extents = Vec::with_capacity(1);
        let n = self
            .cut_region(r, 0, &mut extents, false)
            .map_err(|e| match e {
                ChunkError::Read(e) => Error::io(format!("read {}", what.display()), e),
                ChunkError::Handler(e) => e,
            })?;
        Ok((extents, n))
    }
}
