//! [`BlobSink`]: a snapshot's way into the store (chunker, deduplication, worker pool,
//! index files) for blobs that do not come from walking the local filesystem.

use super::upload::Uploader;
use crate::cache::Cache;
use crate::chunker::{ChunkError, Chunker};
use crate::crypto::WriterKeys;
use crate::error::Result;
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::pack::BlobKind;
use crate::repo::{Repo, Summary};
use crate::tree::{ChunkRef, Tree};
use std::io::Read;
use std::time::Duration;

/// Stores blobs that do not come from walking the local filesystem (an imported archive):
/// the same chunker, the same deduplication against the cache and the same worker pool,
/// pack writers and index files as a snapshot, so imported content deduplicates against
/// every snapshot and the store holds nothing a snapshot would not.
///
/// The caller writes the snapshot record with [`Repo::save_snapshot`] after
/// [`BlobSink::finish`] returned: only then is everything it names durable and indexed.
/// [`BlobSink::abort`] stops the workers; packs already written stay unreferenced until
/// prune, and no snapshot names them.
pub struct BlobSink<'a> {
    keys: &'a WriterKeys,
    repo: &'a Repo,
    cache: &'a mut Cache,
    uploader: Uploader,
    /// Taken out while a stream is being cut (the cut calls back into the sink).
    chunker: Option<Chunker>,
    /// New data, packs and stored bytes (the other counters are the caller's).
    pub summary: Summary,
    _lease: Lease,
}

impl<'a> BlobSink<'a> {
    /// Takes a shared lease (so prune keeps what this reuses) and syncs the cache's index.
    pub fn start(
        repo: &'a Repo,
        keys: &'a WriterKeys,
        recipients: &[age::x25519::Recipient],
        cache: &'a mut Cache,
        threads: usize,
        purpose: &str,
        lock_wait: Duration,
    ) -> Result<BlobSink<'a>> {
        let lease =
            Lease::acquire_waiting(&repo.backend, keys, LeaseKind::Shared, purpose, lock_wait)?;
        cache.sync_index(repo, keys)?;
        let staging = super::upload::staging(repo, cache);
        Ok(BlobSink {
            keys,
            repo,
            cache,
            uploader: Uploader::start(repo, keys, recipients, threads.max(1), Some(staging)),
            chunker: Some(Chunker::new(
                repo.config.chunker.clone(),
                keys.chunker_seed(),
            )),
            summary: Summary::default(),
            _lease: lease,
        })
    }

    fn add_blob(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        if self.uploader.pending.contains(&id) || self.cache.has_blob(&id)? {
            return Ok(());
        }
        self.summary.new_bytes += data.len() as u64;
        self.uploader.send(id, kind, data)?;
        self.uploader
            .drain(self.repo, self.keys, self.cache, &mut self.summary)
    }

    /// Stores a directory tree; returns its id. Long files' extents go to chunk lists
    /// where the store takes them.
    pub fn put_tree(&mut self, tree: &Tree) -> Result<Id> {
        let (repo, keys) = (self.repo, self.keys);
        let listed = super::with_lists(repo, keys, tree, |id, bytes| {
            self.add_blob(id, BlobKind::Tree, bytes)
        })?;
        let bytes = listed.as_ref().unwrap_or(tree).encode();
        let id = self.keys.blob_id(&bytes);
        self.add_blob(id, BlobKind::Tree, bytes)?;
        Ok(id)
    }

    /// Cuts everything `source` yields into chunks and stores those the store lacks.
    /// Outer error: the store failed. Inner error: reading `source` failed.
    pub fn put_data(
        &mut self,
        source: impl Read,
    ) -> Result<std::result::Result<Vec<ChunkRef>, std::io::Error>> {
        let mut chunks = Vec::new();
        let mut chunker = self.chunker.take().unwrap_or_else(|| {
            Chunker::new(self.repo.config.chunker.clone(), self.keys.chunker_seed())
        });
        let result = chunker.chunk(source, |data| {
            let id = self.keys.blob_id(data);
            chunks.push(ChunkRef {
                id,
                len: data.len() as u32,
            });
            self.add_blob(id, BlobKind::Data, data.to_vec())
        });
        self.chunker = Some(chunker);
        match result {
            Ok(n) => {
                self.summary.bytes_read += n;
                Ok(Ok(chunks))
            }
            Err(ChunkError::Read(e)) => Ok(Err(e)),
            Err(ChunkError::Handler(e)) => Err(e),
        }
    }

    /// Waits for every pack to be durable and indexes them. After this the caller may
    /// write a snapshot record naming what was stored.
    pub fn finish(mut self) -> Result<Summary> {
        self.uploader
            .finish_and_index(self.repo, self.keys, self.cache, &mut self.summary)?;
        Ok(self.summary)
    }

    /// Stops the workers after a failure; nothing stored so far is named by a snapshot.
    pub fn abort(mut self) {
        let _ = self.uploader.finish();
    }
}
