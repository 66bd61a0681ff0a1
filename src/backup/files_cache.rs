//! The files cache during a snapshot. A file whose stamp matches its cached row and whose
//! chunks are all in the store (or on their way there) is not read again. What the cache
//! will learn goes to its pending rows in batches of [`FILE_ROWS_BATCH`] and becomes part
//! of the files cache only once the snapshot record is written. A file that changed while
//! it was read, or was modified too recently for its stamp to tell a later change apart,
//! never enters it.

use super::ahead::Prepared;
use super::read::{FileContent, ReadError};
use super::walker::Walker;
use crate::cache::FileStamp;
use crate::error::Result;
use crate::tree::{Extent, LinkKey};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Files-cache rows are handed to the cache's pending rows in batches of this many
/// (about 0.8 MiB held at most; one SQLite transaction per batch).
const FILE_ROWS_BATCH: usize = 1024;

/// ... or sooner, once the rows gathered hold this many chunk references (36 bytes each
/// in memory: about 0.6 MiB), so a folder of database segments of 16,000 chunks each
/// does not gather hundreds of thousands of them.
const FILE_ROWS_CHUNKS: usize = 16_384;

impl Walker<'_, '_> {
    /// Hands the files-cache rows gathered so far to the cache's pending rows.
    pub(super) fn flush_file_rows(&mut self) -> Result<()> {
        if !self.file_rows.is_empty() {
            self.cache.pending_files_add(&self.file_rows)?;
            self.file_rows.clear();
            self.file_rows_chunks = 0;
        }
        Ok(())
    }

    /// Outer error: the store failed, the snapshot stops. Inner error: this file could
    /// not be read, which is reported and the snapshot goes on.
    pub(super) fn save_file_content(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        link: Option<LinkKey>,
        ahead: Prepared,
    ) -> Result<std::result::Result<FileContent, String>> {
        if let Some(key) = link {
            if let Some(content) = self.links.get(&key) {
                return Ok(Ok(content.clone()));
            }
        }
        let stamp = stamp_of(meta);
        let path_bytes = path.as_os_str().as_bytes();
        let vouched = match ahead.vouched {
            Some(v) => v,
            None => self.vouched(path_bytes, &stamp)?,
        };
        let content = match vouched {
            Some(extents) => FileContent {
                extents,
                size: meta.len(),
                reread: None,
                changed: None,
            },
            None => {
                let x = match self.read_stable(path, meta, ahead.content) {
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
                    self.file_rows_chunks +=
                        x.extents.iter().map(|e| e.chunks.len()).sum::<usize>();
                    if self.file_rows.len() >= FILE_ROWS_BATCH
                        || self.file_rows_chunks >= FILE_ROWS_CHUNKS
                    {
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

    /// The file's chunks when the files cache vouches for it: the cached stamp matches
    /// and every chunk is in the store (or on its way there).
    pub(super) fn vouched(&self, path: &[u8], stamp: &FileStamp) -> Result<Option<Vec<Extent>>> {
        if let Some((old, cached)) = self.cache.file_lookup(path)? {
            if old == *stamp && self.all_present(&cached)? {
                return Ok(Some(cached));
            }
        }
        Ok(None)
    }

    fn all_present(&self, extents: &[Extent]) -> Result<bool> {
        for c in extents.iter().flat_map(|e| &e.chunks) {
            if !self.uploader.pending.contains(&c.id) && !self.cache.has_blob(&c.id)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

pub(super) fn stamp_of(meta: &std::fs::Metadata) -> FileStamp {
    FileStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    }
}
