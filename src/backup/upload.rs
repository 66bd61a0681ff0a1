//! The worker pool that compresses, encrypts and packs blobs, the thread that uploads
//! packs, and the index files that name finished packs: one once [`INDEX_EVERY_PACKS`]
//! packs or [`INDEX_EVERY_BLOBS`] blobs wait or [`INDEX_EVERY`] passed, whichever comes
//! first, and one at the end. A pack
//! is named in an index file only once it is durable, and the cache learns of its blobs
//! only after that index file is written. Blobs go to the workers in batches of about
//! [`BATCH_BYTES`]; a blob counts as pending from the moment it joins a batch.
//!
//! Memory: at most two packs exist at any time, one being filled and one being uploaded,
//! and neither is held whole: each is built in a staged file ([`staging`]) through a
//! 1 MiB write-behind buffer, and stored by a rename (local store) or sent from its file
//! (S3). The workers compress on their own, then add to the one shared pack under its
//! lock (sealing a blob needs its position in the pack). The worker that fills the pack
//! hands it to the upload thread through a rendezvous channel while still holding the
//! lock, so the next pack starts only once the upload thread took the previous one (and
//! so once the one before that is durable). The upload thread gives each stored pack's
//! buffer back for the next pack, so two buffers serve the whole run.
//!
//! Errors: a failing worker stops the others; when the upload thread fails, the workers
//! stop at the next pack they fill or batch they take, and its error is the one reported.

use crate::backend::staged;
use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{self, BlobKind, PackRecord, PackWriter};
use crate::parallel::Batch;
use crate::repo::{Repo, Summary};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An index file is written once this many packs (512 MiB at the default 16 MiB) wait
/// for one, so an interrupted snapshot keeps most of its uploads for the next run.
const INDEX_EVERY_PACKS: usize = 32;

/// ... or once the waiting packs hold this many blobs: packs of small files hold tens of
/// thousands each, and what waits for an index file (the packs' entries, the pending
/// ids, then the index file itself) is held in memory. At a million 1 KB files, 30 s of
/// packs held 330,000 blobs and a 25 MB index file, which took the first snapshot's peak
/// from about 110 to 210 MiB; 32,768 blobs (two packs of 1 KB blobs) keep that near 3 MiB
/// for about 30 index files per million blobs, which prune merges.
const INDEX_EVERY_BLOBS: usize = 32_768;

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

/// Where a snapshot builds its packs: the store's own staging folder (the local store's
/// `tmp/`, from which storing a pack is a rename), else the cache's (for S3, which sends
/// each pack from its file), so that no pack is held whole in memory. A killed run's
/// staged packs in the cache's folder are removed here once untouched for
/// [`LEFTOVER_GRACE`](crate::backend::LEFTOVER_GRACE) (the store's own are leftovers
/// like any other).
pub(super) fn staging(repo: &Repo, cache: &Cache) -> PathBuf {
    repo.backend.staging_dir().unwrap_or_else(|| {
        let dir = cache.staging_dir();
        let _ = staged::remove_stale(&dir, crate::backend::LEFTOVER_GRACE);
        dir
    })
}

struct Job {
    id: Id,
    kind: BlobKind,
    data: Vec<u8>,
}

/// What the workers share: the one pack being filled, and the flag that stops them.
struct Packing {
    /// The pack being filled. Held while a full pack is handed to the upload thread, so
    /// no other pack starts before the previous one is being uploaded.
    filling: Mutex<Option<PackWriter>>,
    /// The buffer of the last pack uploaded, for the next pack: two buffers serve the
    /// whole run (a fresh one per pack would be mapped and faulted in anew each time).
    spare: Mutex<Option<Vec<u8>>>,
    /// Set when a worker failed or the upload thread stopped: the others stop too.
    stop: AtomicBool,
    recipients: Vec<age::x25519::Recipient>,
    /// Where packs are built ([`staging`]); in memory when `None`.
    staging: Option<PathBuf>,
    pack_size: usize,
    /// The largest blob a pack must have room for beyond `pack_size`.
    max_blob: usize,
    level: i32,
}

impl Packing {
    /// Compresses the batch's blobs and adds them to the shared pack; hands every pack
    /// that fills up to the upload thread. Returns once the job channel closes, or early
    /// when told to stop or when the upload thread is gone (its error is the one to
    /// report).
    fn work(&self, jobs: &Mutex<Receiver<Vec<Job>>>, packs: &SyncSender<PackWriter>) -> Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            let batch = jobs.lock().map_err(|_| panicked())?.recv();
            let Ok(batch) = batch else { break };
            for job in batch {
                let compressed = pack::compress(&job.data, self.level);
                if !self.add(&job, compressed.as_deref(), packs)? {
                    self.stop.store(true, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Adds one blob (`compressed`, or its data as is) to the shared pack, sealing it at
    /// its position there; hands the pack over once it is full. False when the upload
    /// thread is gone.
    fn add(
        &self,
        job: &Job,
        compressed: Option<&[u8]>,
        packs: &SyncSender<PackWriter>,
    ) -> Result<bool> {
        let mut filling = self.filling.lock().map_err(|_| panicked())?;
        let writer = match filling.as_mut() {
            Some(w) => w,
            None => {
                let buf = self.spare.lock().map_err(|_| panicked())?.take();
                filling.insert(PackWriter::reusing(
                    buf.unwrap_or_default(),
                    &self.recipients,
                    self.pack_size,
                    self.max_blob,
                    self.staging.as_deref(),
                )?)
            }
        };
        writer.add(
            job.id,
            job.kind,
            job.data.len() as u32,
            compressed.is_some(),
            compressed.unwrap_or(&job.data),
        )?;
        if !writer.is_full() {
            return Ok(true);
        }
        let full = filling.take().expect("a pack is being filled");
        // A rendezvous, with the lock held: this returns once the upload thread took the
        // pack, that is once the previous one is durable.
        Ok(packs.send(full).is_ok())
    }
}

fn panicked() -> Error {
    Error::Backend("a pack worker panicked".into())
}

/// Uploads the packs the workers hand over, one at a time, reports each once it is
/// durable and gives its buffer back for the next pack.
fn upload(
    repo: &Repo,
    keys: &WriterKeys,
    packing: &Packing,
    packs: Receiver<PackWriter>,
    done_tx: mpsc::Sender<PackRecord>,
) -> Result<()> {
    for writer in packs {
        let (record, buf) = repo.save_pack_reclaiming(keys, writer)?;
        let _ = done_tx.send(record);
        *packing.spare.lock().map_err(|_| panicked())? = buf;
    }
    Ok(())
}

/// The worker pool that compresses and packs blobs, and the thread that uploads packs.
pub(super) struct Uploader {
    tx: Option<SyncSender<Vec<Job>>>,
    /// Blobs not yet handed to a worker.
    batch: Batch<Job>,
    workers: Vec<JoinHandle<Result<()>>>,
    packing: Arc<Packing>,
    /// For the last, partly filled pack once the workers are done.
    packs_tx: Option<SyncSender<PackWriter>>,
    upload: Option<JoinHandle<Result<()>>>,
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
        staging: Option<PathBuf>,
    ) -> Uploader {
        let (tx, rx) = mpsc::sync_channel::<Vec<Job>>(threads * 2);
        let jobs = Arc::new(Mutex::new(rx));
        let (packs_tx, packs_rx) = mpsc::sync_channel::<PackWriter>(0);
        let (done_tx, done_rx) = mpsc::channel();
        let packing = Arc::new(Packing {
            filling: Mutex::new(None),
            spare: Mutex::new(None),
            stop: AtomicBool::new(false),
            recipients: recipients.to_vec(),
            staging,
            pack_size: repo.config.pack_size as usize,
            // Trees may exceed the chunker's maximum; they are rare and small next to a pack.
            max_blob: repo.config.chunker.max_size as usize + 1024,
            level: repo.config.compression_level,
        });
        let workers = (0..threads)
            .map(|_| {
                let (jobs, packing, packs_tx) = (jobs.clone(), packing.clone(), packs_tx.clone());
                std::thread::spawn(move || {
                    let worked = packing.work(&jobs, &packs_tx);
                    if worked.is_err() {
                        packing.stop.store(true, Ordering::Relaxed);
                    }
                    worked
                })
            })
            .collect();
        let (repo, keys, shared) = (repo.clone(), keys.clone(), packing.clone());
        let upload = std::thread::spawn(move || upload(&repo, &keys, &shared, packs_rx, done_tx));
        Uploader {
            tx: Some(tx),
            batch: Batch::new(BATCH_BYTES as u64),
            workers,
            packing,
            packs_tx: Some(packs_tx),
            upload: Some(upload),
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
        let waiting = self.finished.len();
        while let Ok(record) = self.done_rx.try_recv() {
            self.finished.push(record);
        }
        // The blob count changes only when packs arrive: count only then.
        let arrived = self.finished.len() > waiting;
        if self.finished.len() >= INDEX_EVERY_PACKS
            || (arrived
                && self.finished.iter().map(|r| r.entries.len()).sum::<usize>()
                    >= INDEX_EVERY_BLOBS)
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
        let bytes = data.len() as u64;
        if self.batch.push(Job { id, kind, data }, bytes) {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Hands the batch to the workers.
    fn hand_over(&mut self) -> Result<()> {
        let Some(batch) = self.batch.take() else {
            return Ok(());
        };
        let sent = self.tx.as_ref().expect("uploader running").send(batch);
        if sent.is_err() {
            // Every worker has stopped, which only happens on an error: report it.
            self.stop()?;
            return Err(Error::Backend("pack workers stopped unexpectedly".into()));
        }
        Ok(())
    }

    /// Waits for the workers and returns every durable pack not yet indexed.
    pub(super) fn finish(&mut self) -> Result<Vec<PackRecord>> {
        if self.tx.is_some() {
            self.hand_over()?;
        }
        self.stop()?;
        let mut records = std::mem::take(&mut self.finished);
        records.extend(self.done_rx.try_iter());
        Ok(records)
    }

    /// Closes the job channel, waits for the workers, hands the last pack (when no
    /// worker failed) to the upload thread and waits for it. The upload thread's error
    /// comes first: a worker that stopped early may only have seen it go.
    fn stop(&mut self) -> Result<()> {
        self.tx = None;
        let mut first_err = None;
        for w in self.workers.drain(..) {
            let joined = w.join().unwrap_or_else(|_| Err(panicked()));
            if let Err(e) = joined {
                first_err.get_or_insert(e);
            }
        }
        if let Some(packs_tx) = self.packs_tx.take() {
            let last = self.packing.filling.lock().map_err(|_| panicked())?.take();
            if let Some(w) = last.filter(|w| !w.is_empty() && first_err.is_none()) {
                // Refused only when the upload thread failed: joining it says why.
                let _ = packs_tx.send(w);
            }
        }
        if let Some(upload) = self.upload.take() {
            let uploaded = upload
                .join()
                .unwrap_or_else(|_| Err(Error::Backend("the pack upload thread panicked".into())));
            uploaded?;
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::backend::{Backend, BackendRef, Kind, ObjectInfo};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Condvar;

    const PACK: usize = 4 << 20;
    const BLOB: usize = 64 << 10;
    const THREADS: usize = 4;

    /// A store whose pack uploads wait until the gate opens (or fail, when asked to), and
    /// which counts how many run at once.
    struct Gate {
        inner: MemoryBackend,
        open: Mutex<bool>,
        opened: Condvar,
        fail_packs: bool,
        uploading: AtomicUsize,
        most_uploading: AtomicUsize,
    }

    impl Gate {
        fn new(fail_packs: bool) -> Arc<Gate> {
            Arc::new(Gate {
                inner: MemoryBackend::new("gate"),
                open: Mutex::new(false),
                opened: Condvar::new(),
                fail_packs,
                uploading: AtomicUsize::new(0),
                most_uploading: AtomicUsize::new(0),
            })
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }

        fn put_pack(&self, name: &str, data: &[u8]) -> Result<()> {
            if self.fail_packs {
                return Err(Error::Backend("injected: no space left".into()));
            }
            let now = self.uploading.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_uploading.fetch_max(now, Ordering::SeqCst);
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            drop(open);
            self.uploading.fetch_sub(1, Ordering::SeqCst);
            self.inner.put(Kind::Packs, name, data)
        }
    }

    impl Backend for Gate {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn create(&self) -> Result<()> {
            self.inner.create()
        }
        fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
            match kind {
                Kind::Packs => self.put_pack(name, data),
                _ => self.inner.put(kind, name, data),
            }
        }
        fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
            self.inner.get(kind, name)
        }
        fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.inner.get_range(kind, name, offset, len)
        }
        fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
            self.inner.list(kind)
        }
        fn delete(&self, kind: Kind, name: &str) -> Result<()> {
            self.inner.delete(kind, name)
        }
        fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
            self.inner.exists(kind, name)
        }
    }

    fn store(backend: BackendRef) -> (Repo, WriterKeys, Vec<age::x25519::Recipient>) {
        let created = crate::repo::create_default(backend);
        let mut repo = created.repo;
        repo.config.pack_size = PACK as u32;
        let recipients = vec![created.identity.to_public()];
        (repo, WriterKeys::from_id_key(created.id_key), recipients)
    }

    /// Incompressible bytes (so a blob takes its own size in a pack).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Starts sending `blobs` blobs on a thread of its own; returns the bytes handed over
    /// so far (counted once `send` returned) and the thread, which ends with `finish`.
    fn feed(
        repo: &Repo,
        keys: &WriterKeys,
        recipients: &[age::x25519::Recipient],
        blobs: u64,
        staging: Option<PathBuf>,
    ) -> (
        Arc<AtomicUsize>,
        std::thread::JoinHandle<Result<Vec<PackRecord>>>,
    ) {
        let mut uploader = Uploader::start(repo, keys, recipients, THREADS, staging);
        let sent = Arc::new(AtomicUsize::new(0));
        let (counter, keys) = (sent.clone(), keys.clone());
        let feeder = std::thread::spawn(move || {
            for i in 0..blobs {
                let data = noise(i, BLOB);
                let result = uploader.send(keys.blob_id(&data), BlobKind::Data, data);
                if let Err(e) = result {
                    let _ = uploader.finish();
                    return Err(e);
                }
                counter.fetch_add(BLOB, Ordering::SeqCst);
            }
            uploader.finish()
        });
        (sent, feeder)
    }

    /// Waits until `sent` reached `at_least` and then stopped moving for a second;
    /// returns where it stopped.
    fn stalled(sent: &AtomicUsize, at_least: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut last, mut still) = (usize::MAX, 0);
        while still < 10 {
            assert!(
                Instant::now() < deadline,
                "{last} bytes taken in: the next pack was not filled while one uploads"
            );
            std::thread::sleep(Duration::from_millis(100));
            let now = sent.load(Ordering::SeqCst);
            still = if now == last && now >= at_least {
                still + 1
            } else {
                0
            };
            last = now;
        }
        last
    }

    #[test]
    fn one_pack_filled_while_one_uploads_and_no_more() {
        let gate = Gate::new(false);
        let (repo, keys, recipients) = store(gate.clone());
        let blobs = (10 * PACK / BLOB) as u64;
        let (sent, feeder) = feed(&repo, &keys, &recipients, blobs, None);
        // The pack uploading and the next one, full: the pool fills one while one uploads.
        let held = stalled(&sent, 2 * PACK);
        assert_eq!(gate.uploading.load(Ordering::SeqCst), 1);
        // Two whole packs (the one uploading and the full one waiting for the upload
        // thread), each up to a blob over the pack size, plus the batches the workers
        // hold, the channel queues and the caller is filling. One pack per worker
        // (four) would not fit.
        let bound = 2 * (PACK + BLOB) + (3 * THREADS + 1) * BATCH_BYTES;
        assert!(
            held <= bound,
            "{held} bytes taken in while one upload waits: more than two packs are buffered (bound {bound})"
        );
        gate.open();
        let records = feeder.join().unwrap().unwrap();
        assert_eq!(gate.most_uploading.load(Ordering::SeqCst), 1);
        let stored: usize = records.iter().map(|r| r.entries.len()).sum();
        assert_eq!(stored as u64, blobs);
        assert_eq!(gate.inner.list(Kind::Packs).unwrap().len(), records.len());
    }

    #[test]
    fn staged_packs_are_built_on_disk_two_at_most_and_none_is_left_behind() {
        let staging = tempfile::tempdir().unwrap();
        let gate = Gate::new(false);
        let (repo, keys, recipients) = store(gate.clone());
        let blobs = (6 * PACK / BLOB) as u64;
        let dir = Some(staging.path().to_path_buf());
        let (sent, feeder) = feed(&repo, &keys, &recipients, blobs, dir);
        stalled(&sent, 2 * PACK);
        // The pack uploading and the full one waiting for the upload thread: on disk.
        let files = std::fs::read_dir(staging.path()).unwrap().count();
        assert_eq!(files, 2, "staged packs while one upload waits");
        gate.open();
        let records = feeder.join().unwrap().unwrap();
        let stored: usize = records.iter().map(|r| r.entries.len()).sum();
        assert_eq!(stored as u64, blobs);
        for r in &records {
            let bytes = gate.inner.get(Kind::Packs, &r.id.to_hex()).unwrap();
            assert_eq!(
                r.id,
                Id::hash_public(&bytes),
                "a staged pack is named by its bytes"
            );
            assert_eq!(r.size, bytes.len() as u64);
        }
        let left = std::fs::read_dir(staging.path()).unwrap().count();
        assert_eq!(left, 0, "staged packs left behind");
    }

    #[test]
    fn a_failed_upload_is_the_error_reported_and_nothing_hangs() {
        for staged in [false, true] {
            let staging = tempfile::tempdir().unwrap();
            let (repo, keys, recipients) = store(Gate::new(true));
            let dir = staged.then(|| staging.path().to_path_buf());
            let (_, feeder) = feed(&repo, &keys, &recipients, (10 * PACK / BLOB) as u64, dir);
            let err = feeder.join().unwrap().unwrap_err();
            assert!(err.to_string().contains("injected"), "{err}");
            let left = std::fs::read_dir(staging.path()).unwrap().count();
            assert_eq!(left, 0, "staged packs left behind by a failed snapshot");
        }
    }
}
