//! Reading one regular file into chunks, holes left out. The file's stat is compared
//! before and after each read; a file that changed is read once more, and what the
//! second read got is stored with the length it really had (see the module docs of
//! [`crate::backup`]).

use super::files_cache::stamp_of;
use super::walker::Walker;
use crate::chunker::{ChunkError, Chunker};
use crate::error::Error;
use crate::fsmeta;
use crate::pack::BlobKind;
use crate::tree::{ChunkRef, Extent};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

impl Walker<'_, '_> {
    /// Reads a file, once more if it changed while read; see the module docs.
    pub(super) fn read_stable(
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
pub(super) struct FileContent {
    pub(super) extents: Vec<Extent>,
    /// The size the snapshot records (what was read, for a file that kept changing).
    pub(super) size: u64,
    /// The stat of the second read, when the first saw the file change.
    pub(super) reread: Option<std::fs::Metadata>,
    /// Set when the file changed during both reads: what changed, for the report.
    pub(super) changed: Option<String>,
}

/// What one read of a file got.
struct ReadOnce {
    extents: Vec<Extent>,
    /// Where the file ended when a read stopped before the size the stat gave.
    short_at: Option<u64>,
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

pub(super) enum ReadError {
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
