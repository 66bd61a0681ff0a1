//! Reading one regular file into chunks, holes left out. The file's stat is compared
//! before and after each read; a file that changed is read once more, and what the
//! second read got is stored with the length it really had (see the module docs of
//! [`crate::backup`]).

use super::ahead::Content;
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
    /// `ahead`: the file as read ahead of the walk (see [`super::ahead`]), which then
    /// stands for the first read.
    pub(super) fn read_stable(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        mut ahead: Option<Content>,
    ) -> std::result::Result<FileContent, ReadError> {
        let source = |what: &str, e: std::io::Error| ReadError::Source(format!("{what}: {e}"));
        let mut first_change = String::new();
        for attempt in 0..2 {
            let (read, before, after) = match ahead.take().filter(|_| attempt == 0) {
                Some(content) => {
                    self.files_read += 1;
                    let after = content.after.clone();
                    let read = self.cut_read_ahead(content, meta.len())?;
                    (read, meta.clone(), after)
                }
                None => {
                    let file = open_noatime(path).map_err(|e| source("cannot open", e))?;
                    self.files_read += 1;
                    // The first read trusts the stat the walk made (before opening, so a
                    // file swapped for another in between shows as a changed inode); the
                    // second stats what it opened.
                    let before = if attempt == 0 {
                        meta.clone()
                    } else {
                        file.metadata().map_err(|e| source("cannot stat", e))?
                    };
                    let read = self.read_file(&file, &before)?;
                    let after = file.metadata().map_err(|e| source("cannot stat", e))?;
                    (read, before, after)
                }
            };
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
        let mut extents = Vec::with_capacity(regions.len());
        let mut short_at = None;
        for (offset, len) in regions {
            let mut f = file;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| ReadError::Source(format!("cannot seek: {e}")))?;
            let n = self.cut(f.take(len), offset, &mut extents)?;
            if n < len {
                // The file ended early: there is nothing further to read.
                short_at = Some(offset + n);
                break;
            }
        }
        Ok(ReadOnce { extents, short_at })
    }

    /// Cuts a whole file read ahead of the walk (no holes; its data is what the reads
    /// returned, at most `size` bytes). A file of one chunk, hashed ahead, goes to the
    /// uploader as it is.
    fn cut_read_ahead(
        &mut self,
        content: Content,
        size: u64,
    ) -> std::result::Result<ReadOnce, ReadError> {
        let mut extents = Vec::with_capacity(1);
        let n = match content.id {
            Some(id) => {
                self.check_cancel().map_err(ReadError::Store)?;
                let n = content.data.len() as u64;
                let chunks = vec![ChunkRef { id, len: n as u32 }];
                crate::progress::get().add_bytes(n);
                self.add_blob(id, BlobKind::Data, content.data)
                    .map_err(ReadError::Store)?;
                self.summary.bytes_read += n;
                extents.push(Extent { offset: 0, chunks });
                n
            }
            None => self.cut(&content.data[..], 0, &mut extents)?,
        };
        Ok(ReadOnce {
            extents,
            short_at: (n < size).then_some(n),
        })
    }

    /// Cuts one data region read from `source` into chunks, hands the new ones to the
    /// uploader and adds the region's extent; returns the bytes read.
    fn cut(
        &mut self,
        source: impl Read,
        offset: u64,
        extents: &mut Vec<Extent>,
    ) -> std::result::Result<u64, ReadError> {
        self.cut_region(source, offset, extents, true)
            .map_err(|e| match e {
                ChunkError::Read(e) => ReadError::Source(format!("read failed: {e}")),
                ChunkError::Handler(e) => ReadError::Store(e),
            })
    }

    /// [`Self::cut`] for any stream, its errors as the chunker gives them;
    /// `progress`: count the bytes in the snapshot's progress.
    pub(super) fn cut_region(
        &mut self,
        source: impl Read,
        offset: u64,
        extents: &mut Vec<Extent>,
        progress: bool,
    ) -> std::result::Result<u64, ChunkError<Error>> {
        let mut chunker = self.chunker.take().unwrap_or_else(|| {
            Chunker::new(self.repo.config.chunker.clone(), self.keys.chunker_seed())
        });
        let mut chunks = Vec::new();
        let result = chunker.chunk(source, |data| {
            self.check_cancel()?;
            let id = self.keys.blob_id(data);
            chunks.push(ChunkRef {
                id,
                len: data.len() as u32,
            });
            if progress {
                crate::progress::get().add_bytes(data.len() as u64);
            }
            self.add_blob(id, BlobKind::Data, data.to_vec())
        });
        self.chunker = Some(chunker);
        let n = result?;
        self.summary.bytes_read += n;
        if !chunks.is_empty() {
            extents.push(Extent { offset, chunks });
        }
        Ok(n)
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
/// (only the owner or root may ask for that), and without blocking: a file swapped for a
/// FIFO after the walk's stat must not hang the snapshot (its inode then shows the swap);
/// `O_NONBLOCK` changes nothing for a regular file.
pub(super) fn open_noatime(path: &Path) -> std::io::Result<File> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::ahead::{Content, ReadAhead};
    use super::super::upload::Uploader;
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::cache::Cache;
    use crate::crypto::WriterKeys;
    use crate::repo::Repo;
    use std::sync::Arc;

    fn walk_with(
        repo: &Repo,
        keys: &WriterKeys,
        recipients: &[age::x25519::Recipient],
        cache: &mut Cache,
        f: impl FnOnce(&mut Walker),
    ) {
        let mut walker = Walker {
            keys,
            cache,
            repo,
            uploader: Uploader::start(repo, keys, recipients, 1, None),
            names: Default::default(),
            summary: Default::default(),
            problems: Vec::new(),
            file_rows: Vec::new(),
            file_rows_chunks: 0,
            links: Default::default(),
            excludes: Vec::new(),
            chunker: None,
            captures: Vec::new(),
            active: None,
            databases: Vec::new(),
            cancel: None,
            racy_after_ns: 0,
            files_read: 0,
            ahead: ReadAhead::start(1, None),
        };
        f(&mut walker);
        walker.uploader.finish().unwrap();
    }

    fn len_of(content: &FileContent) -> u64 {
        let chunks = content.extents.iter().flat_map(|e| &e.chunks);
        chunks.map(|c| c.len as u64).sum()
    }

    /// A file read ahead of the walk goes through the same change detection as one the
    /// walker reads: what was read ahead after the file changed under the walk's stat is
    /// never taken for the file; the walker reads it once more.
    #[test]
    fn a_file_read_ahead_after_it_changed_is_read_once_more() {
        let created = crate::repo::create_default(Arc::new(MemoryBackend::new("read-ahead")));
        let keys = WriterKeys::from_id_key(created.id_key);
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::open(&dir.path().join("cache"), "read-ahead").unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, vec![1u8; 1000]).unwrap();
        let stat = std::fs::symlink_metadata(&path).unwrap();

        let recipients = [created.identity.to_public()];
        walk_with(&created.repo, &keys, &recipients, &mut cache, |walker| {
            // Unchanged: what was read ahead is the file, and it is not read again. Hashed
            // ahead as one chunk or cut by the walker, it is saved the same.
            let ahead = Content {
                data: vec![1u8; 1000],
                after: std::fs::metadata(&path).unwrap(),
                id: Some(walker.keys.blob_id(&[1u8; 1000])),
            };
            let Ok(got) = walker.read_stable(&path, &stat, Some(ahead)) else {
                panic!("read")
            };
            assert!(got.reread.is_none() && got.changed.is_none());
            assert_eq!((got.size, len_of(&got), walker.files_read), (1000, 1000, 1));
            let ahead = Content {
                data: vec![1u8; 1000],
                after: std::fs::metadata(&path).unwrap(),
                id: None,
            };
            let Ok(cut) = walker.read_stable(&path, &stat, Some(ahead)) else {
                panic!("read")
            };
            assert_eq!(got.extents, cut.extents);
            let bytes_read = walker.summary.bytes_read;
            assert_eq!(bytes_read, 2000);
            walker.files_read = 1;

            // Rewritten longer between the walk's stat and the read ahead: the read
            // stopped at the old size, a prefix of the new content. The stat after
            // reading tells, and the file is read once more, whole.
            std::thread::sleep(std::time::Duration::from_millis(10));
            std::fs::write(&path, vec![2u8; 3000]).unwrap();
            let ahead = Content {
                data: vec![2u8; 1000],
                after: std::fs::metadata(&path).unwrap(),
                id: None,
            };
            let Ok(got) = walker.read_stable(&path, &stat, Some(ahead)) else {
                panic!("read")
            };
            assert!(got.reread.is_some(), "read once more");
            assert!(
                got.changed.is_none(),
                "it did not change during the second read"
            );
            assert_eq!((got.size, len_of(&got), walker.files_read), (3000, 3000, 3));

            // Shorter than the stat said, with a stat after reading that shows nothing
            // (a truncation and a rewrite within one timestamp): the short read tells.
            let stat = std::fs::symlink_metadata(&path).unwrap();
            let ahead = Content {
                data: vec![2u8; 10],
                after: stat.clone(),
                id: None,
            };
            let Ok(got) = walker.read_stable(&path, &stat, Some(ahead)) else {
                panic!("read")
            };
            assert!(got.reread.is_some(), "read once more");
            assert_eq!((got.size, len_of(&got)), (3000, 3000));
        });
    }
}
