//! The worker pool that compresses, encrypts, packs and uploads blobs, and the index
//! files that name finished packs: one once [`INDEX_EVERY_PACKS`] packs wait or
//! [`INDEX_EVERY`] passed, whichever comes first, and one at the end. A pack is named in
//! an index file only once it is durable, and the cache learns of its blobs only after
//! that index file is written. Blobs go to the workers in batches of about
//! [`BATCH_BYTES`]; a blob counts as pending from the moment it joins a batch.

use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{self, BlobKind, PackRecord, PackWriter};
use crate::repo::{Repo, Summary};
use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An index file is written once this many packs (512 MiB at the default 16 MiB) wait
/// for one, so an interrupted snapshot keeps most of its uploads for the next run.
const INDEX_EVERY_PACKS: usize = 32;

/// ... or once this long has passed since the last index file, whichever comes first, so
/// that a snapshot killed at any point after this long keeps what it uploaded, however
/// slowly packs go out (32 packs take 3 s to a local disk but nearly a minute over a
/// 10 MB/s uplink). One small index object per 30 s costs nothing next to the packs (a
/// ten-hour first snapshot writes 1,200 of them, about 1 KiB per pack each; prune merges
/// them), while a shorter interval would only add objects: a kill loses at most what
/// finished since the last index file plus the packs the workers were still filling.
const INDEX_EVERY: Duration = Duration::from_secs(30);

/// The interval between index files: [`INDEX_EVERY`], unless the environment variable
/// `VAULT_TEST_INDEX_INTERVAL_MS` sets another (meant for tests that kill a snapshot
/// half-way; not a user setting).
fn index_interval() -> Duration {
    std::env::var("VAULT_TEST_INDEX_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(INDEX_EVERY, Duration::from_millis)
}

/// Blobs are handed to the workers in batches of at least this many bytes (or one blob,
/// when it is larger). One hand-off per blob cost more than the blob itself for small
/// files: on 100,000 JSON files of 0.1-2 KB, the channel's wake-ups and the contended
/// receiver lock took about a fifth of the snapshot's CPU time. 256 KiB (about 200 such
/// blobs, a 64th of a pack) cut the context switches from 230,000 to 5,000 there. Memory:
/// each of the `2 x threads` jobs the channel queues holds at most 256 KiB more than one
/// blob did, plus the batch being filled (under 2 MiB more with three workers).
const BATCH_BYTES: usize = 256 << 10;

struct Job {
    id: Id,
    kind: BlobKind,
    data: Vec<u8>,
}

/// The worker pool that compresses, encrypts, packs and uploads blobs.
pub(super) struct Uploader {
    tx: Option<SyncSender<Vec<Job>>>,
    /// Blobs not yet handed to a worker, and their total size.
    batch: Vec<Job>,
    batch_bytes: usize,
    workers: Vec<JoinHandle<Result<()>>>,
    done_rx: Receiver<PackRecord>,
    /// Blobs handed to workers whose pack is not yet in an index file.
    pub(super) pending: HashSet<Id>,
    /// Durable packs not yet in an index file.
    finished: Vec<PackRecord>,
    /// When the last index file was written (or the uploads began).
    last_index: Instant,
    /// At most this long between index files while packs finish.
    index_every: Duration,
}

impl Uploader {
    pub(super) fn start(
        repo: &Repo,
        keys: &WriterKeys,
        recipients: &[age::x25519::Recipient],
        threads: usize,
    ) -> Uploader {
        let (tx, rx) = mpsc::sync_channel::<Vec<Job>>(threads * 2);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (done_tx, done_rx) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let done_tx = done_tx.clone();
                let repo = repo.clone();
                let keys = keys.clone();
                let recipients = recipients.to_vec();
                std::thread::spawn(move || -> Result<()> {
                    let pack_size = repo.config.pack_size as usize;
                    let level = repo.config.compression_level;
                    // Trees may exceed the chunker's maximum; they are rare and small next to a pack.
                    let max_blob = repo.config.chunker.max_size as usize + 1024;
                    let mut writer: Option<PackWriter> = None;
                    loop {
                        let batch = rx.lock().unwrap().recv();
                        let Ok(batch) = batch else { break };
                        for job in batch {
                            let compressed = pack::compress(&job.data, level);
                            let payload = compressed.as_deref().unwrap_or(&job.data);
                            if writer.is_none() {
                                writer = Some(PackWriter::new(&recipients, pack_size, max_blob)?);
                            }
                            let w = writer.as_mut().unwrap();
                            w.add(
                                job.id,
                                job.kind,
                                job.data.len() as u32,
                                compressed.is_some(),
                                payload,
                            );
                            if w.len() >= pack_size {
                                let record = repo.save_pack(&keys, writer.take().unwrap())?;
                                let _ = done_tx.send(record);
                            }
                        }
                    }
                    if let Some(w) = writer.take().filter(|w| !w.is_empty()) {
                        let record = repo.save_pack(&keys, w)?;
                        let _ = done_tx.send(record);
                    }
                    Ok(())
                })
            })
            .collect();
        Uploader {
            tx: Some(tx),
            batch: Vec::new(),
            batch_bytes: 0,
            workers,
            done_rx,
            pending: HashSet::new(),
            finished: Vec::new(),
            last_index: Instant::now(),
            index_every: index_interval(),
        }
    }

    /// Collects the packs the workers finished and writes an index file naming them once
    /// [`INDEX_EVERY_PACKS`] wait or [`index_interval`] passed since the last one. Cheap
    /// when nothing is due: callers may call it for every blob and every file.
    pub(super) fn drain(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        cache: &mut Cache,
        summary: &mut Summary,
    ) -> Result<()> {
        while let Ok(record) = self.done_rx.try_recv() {
            self.finished.push(record);
        }
        if self.finished.len() >= INDEX_EVERY_PACKS
            || (!self.finished.is_empty() && self.last_index.elapsed() >= self.index_every)
        {
            let records = std::mem::take(&mut self.finished);
            self.index(repo, keys, cache, summary, records)?;
        }
        Ok(())
    }

    /// Waits for the workers, then writes the index file naming every pack not yet in one.
    pub(super) fn finish_and_index(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        cache: &mut Cache,
        summary: &mut Summary,
    ) -> Result<()> {
        let records = self.finish()?;
        self.index(repo, keys, cache, summary, records)
    }

    /// Writes one index file naming `records` (durable packs), then tells the cache: the
    /// order that keeps the cache from ever claiming a blob the store lacks.
    fn index(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        cache: &mut Cache,
        summary: &mut Summary,
        records: Vec<PackRecord>,
    ) -> Result<()> {
        self.last_index = Instant::now();
        if records.is_empty() {
            return Ok(());
        }
        for r in &records {
            summary.packs += 1;
            summary.stored_bytes += r.size;
        }
        let name = repo.save_index(keys, &records)?;
        cache.add_index(&name, &records)?;
        for r in &records {
            for e in &r.entries {
                self.pending.remove(&e.id);
            }
        }
        Ok(())
    }

    /// Adds a blob to the batch for the workers; hands the batch over once it holds
    /// [`BATCH_BYTES`].
    pub(super) fn send(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        self.pending.insert(id);
        self.batch_bytes += data.len();
        self.batch.push(Job { id, kind, data });
        if self.batch_bytes >= BATCH_BYTES {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Hands the batch to the workers.
    fn hand_over(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        let sent = self.tx.as_ref().expect("uploader running").send(batch);
        if sent.is_err() {
            // Every worker has stopped, which only happens on an error: report it.
            self.tx = None;
            for w in self.workers.drain(..) {
                if let Ok(Err(e)) = w.join() {
                    return Err(e);
                }
            }
            return Err(Error::Backend("pack workers stopped unexpectedly".into()));
        }
        Ok(())
    }

    /// Waits for the workers and returns every durable pack not yet indexed.
    pub(super) fn finish(&mut self) -> Result<Vec<PackRecord>> {
        if self.tx.is_some() {
            self.hand_over()?;
        }
        self.tx = None;
        let mut first_err = None;
        for w in self.workers.drain(..) {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Backend("a pack worker panicked".into()));
                }
            }
        }
        let mut records = std::mem::take(&mut self.finished);
        while let Ok(r) = self.done_rx.recv_timeout(Duration::from_millis(0)) {
            records.push(r);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }
}
