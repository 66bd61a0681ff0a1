//! A local spool in front of a remote store, for restores.
//!
//! A restore reads thousands of blobs; over S3 one ranged GET each would make request
//! latency, not bandwidth, the limit. So before writing files, the restore fetches every
//! byte range it will need, merged per pack (small gaps are fetched rather than split)
//! and many at a time, into sparse files in a spool folder, and then reads the blobs from
//! there. Only the ranges the snapshot needs are downloaded, each once. Everything but
//! those pack ranges goes to the store itself.
//!
//! One spool takes downloads in batches, all into the same files: a restore first
//! [`SpoolBackend::fetch`]es every folder listing (and waits for them), plans, then
//! [`SpoolBackend::start`]s the file data in the background, in the order given (the
//! order the restore will read), so files are written while later ranges still arrive.
//! A read is served from the spool when any download holding its range has arrived (a
//! folder listing read while writing never waits for the data download of its pack);
//! else it waits for the first download holding the range, and after a failed or
//! stopped download it goes to the store itself.
//!
//! Memory: a batch has up to its `fetchers` requests in flight. A store that streams
//! ranges ([`Backend::streams_ranges`], S3) writes each body into the spool as it arrives,
//! so requests hold no more than the pieces in transit; from any other store a body is
//! held whole, and never more than [`BYTES_IN_FLIGHT`] of them at once (one request larger
//! than that still goes alone).

use super::{Backend, BackendRef, Kind, ObjectInfo, ObjectLock};
use crate::error::{IoContext, Result};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

/// Ranges closer than this are fetched as one (the gap is cheaper than a request).
const MERGE_GAP: u64 = 1 << 20;
/// Longest single request.
const MAX_REQUEST: u64 = 4 << 20;
/// Response bodies held in memory at once, at most, from a store that does not stream
/// ranges.
pub const BYTES_IN_FLIGHT: u64 = 16 << 20;
/// A pack of which at least this share is needed is fetched whole (in requests of
/// [`MAX_REQUEST`]): fewer, larger requests beat skipping the few blobs not needed.
const WHOLE_PACK_SHARE: f64 = 0.5;

/// What a restore needs of one pack.
pub struct PackNeeds {
    /// The pack's size.
    pub size: u64,
    /// `(offset, len)` byte ranges.
    pub ranges: Vec<(u64, u64)>,
}

/// Per pack, `(offset, len, request number)` of each range the spool holds or fetches.
type SpooledRanges = HashMap<String, Vec<(u64, u64, usize)>>;

pub struct SpoolBackend {
    inner: BackendRef,
    dir: PathBuf,
    /// Per pack, the byte ranges the spool holds or is fetching (each with its request's
    /// number), in the order they were added; anything else goes to `inner`.
    spooled: RwLock<SpooledRanges>,
    state: Arc<(Mutex<FetchState>, Condvar)>,
    stop: Arc<AtomicBool>,
    fetchers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// What the background downloads have done so far.
#[derive(Default)]
struct FetchState {
    /// Per request: written to the spool.
    done: Vec<bool>,
    /// Per request: the batch it belongs to.
    batch: Vec<usize>,
    /// Per batch: ended (all done, or stopped by an error or on request), and its error.
    batches: Vec<(bool, Option<crate::error::Error>)>,
    /// Response bytes in memory now, over all batches' requests in flight.
    in_flight: u64,
}

/// Merges `(offset, len)` ranges that overlap or lie within [`MERGE_GAP`], then splits the
/// result into requests of at most [`MAX_REQUEST`] bytes.
fn plan_requests(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (off, len) in ranges {
        match merged.last_mut() {
            Some((m_off, m_len)) if off <= *m_off + *m_len + MERGE_GAP => {
                *m_len = (*m_len).max(off + len - *m_off);
            }
            _ => merged.push((off, len)),
        }
    }
    merged
        .into_iter()
        .flat_map(|(off, len)| {
            (0..len.div_ceil(MAX_REQUEST)).map(move |i| {
                let start = off + i * MAX_REQUEST;
                (start, MAX_REQUEST.min(off + len - start))
            })
        })
        .collect()
}

/// The requests for one pack's needs: the whole pack when most of it is needed, else
/// its ranges.
fn pack_requests(needs: &PackNeeds) -> Vec<(u64, u64)> {
    let wanted: u64 = needs.ranges.iter().map(|r| r.1).sum();
    if wanted as f64 >= WHOLE_PACK_SHARE * needs.size as f64 {
        plan_requests(vec![(0, needs.size)])
    } else {
        plan_requests(needs.ranges.clone())
    }
}

impl SpoolBackend {
    /// An empty spool in `dir` in front of `inner` (which serves everything until a
    /// download is added).
    pub fn new(inner: BackendRef, dir: &Path) -> Result<SpoolBackend> {
        std::fs::create_dir_all(dir).ctx(|| format!("create restore spool {}", dir.display()))?;
        Ok(SpoolBackend {
            inner,
            dir: dir.to_path_buf(),
            spooled: RwLock::default(),
            state: Arc::default(),
            stop: Arc::default(),
            fetchers: Mutex::default(),
        })
    }

    /// Fetches `needed` (pack name -> needs) with up to `fetchers` requests in flight,
    /// reporting it as its own progress step, and waits until it is all in the spool.
    pub fn fetch(
        &self,
        needed: impl IntoIterator<Item = (String, PackNeeds)>,
        fetchers: usize,
    ) -> Result<()> {
        let batch = self.start(needed.into_iter().collect(), fetchers, true);
        let (lock, ended) = &*self.state;
        let mut state = lock.lock().unwrap();
        while !state.batches[batch].0 {
            state = ended.wait(state).unwrap();
        }
        match state.batches[batch].1.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts fetching `needed` in the background, packs in the order given, with up to
    /// `fetchers` requests in flight; reads are served as their ranges arrive.
    /// `show_progress` reports the download as its own step. Returns the batch's number.
    pub fn start(
        &self,
        needed: Vec<(String, PackNeeds)>,
        fetchers: usize,
        show_progress: bool,
    ) -> usize {
        let mut jobs: Vec<(usize, String, u64, u64)> = Vec::new();
        let batch;
        {
            let mut state = self.state.0.lock().unwrap();
            let mut spooled = self.spooled.write().unwrap();
            batch = state.batches.len();
            state.batches.push((false, None));
            for (pack, needs) in needed {
                let held = spooled.entry(pack.clone()).or_default();
                for (o, l) in pack_requests(&needs) {
                    let n = state.done.len();
                    state.done.push(false);
                    state.batch.push(batch);
                    held.push((o, l, n));
                    jobs.push((n, pack.clone(), o, l));
                }
            }
        }
        if show_progress {
            crate::progress::get().begin_items(
                "restore: download",
                "packs",
                jobs.len() as u64,
                jobs.iter().map(|j| j.3).sum(),
            );
        }
        let (inner, dir, state, stop) = (
            self.inner.clone(),
            self.dir.clone(),
            self.state.clone(),
            self.stop.clone(),
        );
        let streams = inner.streams_ranges();
        let fetcher = std::thread::spawn(move || {
            let result = crate::parallel::try_for_each(&jobs, fetchers, |(n, pack, off, len)| {
                crate::progress::check_cancelled("restore")?;
                if stop.load(Ordering::SeqCst) {
                    return Err(crate::error::Error::Cancelled {
                        operation: "restore",
                    });
                }
                let _held = (!streams).then(|| InFlight::take(&state, *len));
                fetch_one(inner.as_ref(), &dir, pack, *off, *len)?;
                if show_progress {
                    let progress = crate::progress::get();
                    progress.set_current(pack);
                    progress.add_bytes(*len);
                    progress.add_files(1);
                }
                let (lock, arrived) = &*state;
                lock.lock().unwrap().done[*n] = true;
                arrived.notify_all();
                Ok(())
            });
            let (lock, arrived) = &*state;
            lock.lock().unwrap().batches[batch] = (true, result.err());
            arrived.notify_all();
        });
        self.fetchers.lock().unwrap().push(fetcher);
        batch
    }

    /// The request to read `offset..offset + len` of pack `name` from: one that holds the
    /// range and has arrived, else the first that holds it and may still arrive (waiting
    /// for it); `None` when no download holds the range or every one holding it ended
    /// without it.
    fn request_for(&self, name: &str, offset: u64, len: u64) -> Option<usize> {
        let holding: Vec<usize> = self
            .spooled
            .read()
            .unwrap()
            .get(name)?
            .iter()
            .filter(|&&(o, l, _)| o <= offset && offset + len <= o + l)
            .map(|&(_, _, n)| n)
            .collect();
        let (lock, arrived) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(&n) = holding.iter().find(|&&n| state.done[n]) {
                return Some(n);
            }
            if holding.iter().all(|&n| state.batches[state.batch[n]].0) {
                return None;
            }
            state = arrived.wait(state).unwrap();
        }
    }
}

/// Response bytes of one request counted in [`FetchState::in_flight`] while it lives.
struct InFlight<'a> {
    state: &'a (Mutex<FetchState>, Condvar),
    len: u64,
}

impl<'a> InFlight<'a> {
    /// Waits until `len` more bytes fit in [`BYTES_IN_FLIGHT`] (or nothing is in flight).
    fn take(state: &'a (Mutex<FetchState>, Condvar), len: u64) -> InFlight<'a> {
        let (lock, changed) = state;
        let mut s = lock.lock().unwrap();
        while s.in_flight > 0 && s.in_flight + len > BYTES_IN_FLIGHT {
            s = changed.wait(s).unwrap();
        }
        s.in_flight += len;
        InFlight { state, len }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let (lock, changed) = self.state;
        lock.lock().unwrap().in_flight -= self.len;
        changed.notify_all();
    }
}

/// Downloads one range of a pack into its spool file, as it arrives.
fn fetch_one(inner: &dyn Backend, dir: &Path, pack: &str, off: u64, len: u64) -> Result<()> {
    let path = dir.join(pack);
    let failed = || format!("write restore spool {} (is the disk full?)", path.display());
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .ctx(failed)?;
    inner.get_range_into(Kind::Packs, pack, off, len, &mut |at, bytes| {
        file.write_all_at(bytes, off + at).ctx(failed)
    })
}

impl Backend for SpoolBackend {
    fn leftovers(&self) -> Result<Vec<super::Leftover>> {
        self.inner.leftovers()
    }

    fn remove_leftover(&self, name: &str) -> Result<()> {
        self.inner.remove_leftover(name)
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.put(kind, name, data)
    }

    fn put_bytes(&self, kind: Kind, name: &str, data: bytes::Bytes) -> Result<()> {
        self.inner.put_bytes(kind, name, data)
    }

    fn put_staged(
        &self,
        kind: Kind,
        name: &str,
        file: &mut super::staged::StagedFile,
    ) -> Result<()> {
        self.inner.put_staged(kind, name, file)
    }

    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.staging_dir()
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.inner.get(kind, name)
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        // A range not held, or whose download failed, comes from the store.
        if kind != Kind::Packs || self.request_for(name, offset, len).is_none() {
            return self.inner.get_range(kind, name, offset, len);
        }
        let path = self.dir.join(name);
        let mut buf = vec![0u8; len as usize];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut buf, offset))
            .ctx(|| format!("read restore spool {}", path.display()))?;
        Ok(buf)
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

    fn set_object_lock(&self, lock: Option<&ObjectLock>) -> Result<()> {
        self.inner.set_object_lock(lock)
    }

    fn extend_retention(&self, kind: Kind, name: &str, until: std::time::SystemTime) -> Result<()> {
        self.inner.extend_retention(kind, name, until)
    }
}

impl Drop for SpoolBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for fetcher in self.fetchers.get_mut().unwrap().drain(..) {
            let _ = fetcher.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use std::collections::BTreeMap;

    fn fetched(
        inner: BackendRef,
        dir: &Path,
        needed: BTreeMap<String, PackNeeds>,
        fetchers: usize,
    ) -> Result<SpoolBackend> {
        let spool = SpoolBackend::new(inner, dir)?;
        spool.fetch(needed, fetchers)?;
        Ok(spool)
    }

    fn started(
        inner: BackendRef,
        dir: &Path,
        needed: Vec<(String, PackNeeds)>,
        fetchers: usize,
    ) -> SpoolBackend {
        let spool = SpoolBackend::new(inner, dir).unwrap();
        spool.start(needed, fetchers, false);
        spool
    }

    /// Waits until request `n` is in the spool; false when its download ended without it.
    fn arrives(spool: &SpoolBackend, n: usize) -> bool {
        let (lock, arrived) = &*spool.state;
        let mut state = lock.lock().unwrap();
        while !state.done[n] && !state.batches[state.batch[n]].0 {
            state = arrived.wait(state).unwrap();
        }
        state.done[n]
    }

    #[test]
    fn requests_merge_small_gaps_and_split_large_spans() {
        assert_eq!(
            plan_requests(vec![(100, 10), (0, 10), (200, 50)]),
            vec![(0, 250)]
        );
        assert_eq!(
            plan_requests(vec![(0, 10), (5 << 20, 10)]),
            vec![(0, 10), (5 << 20, 10)]
        );
        let split = plan_requests(vec![(0, 10 << 20)]);
        assert_eq!(
            split,
            vec![(0, 4 << 20), (4 << 20, 4 << 20), (8 << 20, 2 << 20)]
        );
    }

    #[test]
    fn serves_spooled_ranges_and_forwards_the_rest() {
        let inner: BackendRef = std::sync::Arc::new(MemoryBackend::new("spool"));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let name = "ab".repeat(32);
        inner.put(Kind::Packs, &name, &data).unwrap();
        inner.put(Kind::Packs, &"cd".repeat(32), b"other").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let needed = BTreeMap::from([(
            name.clone(),
            PackNeeds {
                size: data.len() as u64,
                ranges: vec![(10, 100), (50_000, 1000)],
            },
        )]);
        let spool = fetched(inner.clone(), &spool_dir, needed, 3).unwrap();
        assert_eq!(
            spool.get_range(Kind::Packs, &name, 10, 100).unwrap(),
            &data[10..110]
        );
        assert_eq!(
            spool.get_range(Kind::Packs, &name, 50_500, 100).unwrap(),
            &data[50_500..50_600]
        );
        assert!(
            std::fs::metadata(spool_dir.join(&name)).unwrap().len() < data.len() as u64,
            "a pack mostly not needed is fetched by ranges"
        );
        let whole = BTreeMap::from([(
            name.clone(),
            PackNeeds {
                size: data.len() as u64,
                ranges: vec![(0, 60_000)],
            },
        )]);
        let spool2 = fetched(inner, &dir.path().join("spool2"), whole, 2).unwrap();
        assert_eq!(
            spool2.get_range(Kind::Packs, &name, 99_000, 1000).unwrap(),
            &data[99_000..]
        );
        assert_eq!(
            spool
                .get_range(Kind::Packs, &"cd".repeat(32), 0, 5)
                .unwrap(),
            b"other"
        );
        assert_eq!(
            spool.get_range(Kind::Packs, &name, 90_000, 100).unwrap(),
            &data[90_000..90_100],
            "a range the spool does not hold comes from the store"
        );
        drop(spool);
        assert!(!spool_dir.exists(), "the spool is removed afterwards");
    }

    #[test]
    fn background_download_serves_reads_as_they_arrive_and_falls_back_to_the_store() {
        let inner: BackendRef = std::sync::Arc::new(MemoryBackend::new("spool"));
        let packs: Vec<(String, Vec<u8>)> = (0..6u8)
            .map(|i| {
                let data: Vec<u8> = (0..300_000u32).map(|j| (j as u8) ^ i).collect();
                (format!("{i:02x}").repeat(32), data)
            })
            .collect();
        for (name, data) in &packs {
            inner.put(Kind::Packs, name, data).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        // Needed in reverse name order: the order given is the order fetched.
        let needed: Vec<(String, PackNeeds)> = packs
            .iter()
            .rev()
            .map(|(name, data)| {
                (
                    name.clone(),
                    PackNeeds {
                        size: data.len() as u64,
                        ranges: vec![(0, data.len() as u64)],
                    },
                )
            })
            .collect();
        let spool = started(inner.clone(), &spool_dir, needed, 2);
        assert!(
            !spool.fetchers.lock().unwrap().is_empty(),
            "the download runs in the background"
        );
        for (name, data) in &packs {
            assert_eq!(
                spool.get_range(Kind::Packs, name, 1000, 5000).unwrap(),
                &data[1000..6000]
            );
        }
        // Once every request is in, the store is not asked again for held ranges.
        assert!(arrives(&spool, 0));
        let (lock, _) = &*spool.state;
        while !lock.lock().unwrap().batches[0].0 {
            std::thread::yield_now();
        }
        for (name, _) in &packs {
            inner.delete(Kind::Packs, name).unwrap();
        }
        let (name, data) = &packs[3];
        assert_eq!(
            spool.get_range(Kind::Packs, name, 299_000, 1000).unwrap(),
            &data[299_000..],
            "held ranges come from the spool"
        );
        drop(spool);
        assert!(!spool_dir.exists(), "the spool is removed afterwards");

        // A download that fails leaves reads to the store itself.
        let missing = "ee".repeat(32);
        inner
            .put(Kind::Packs, &"ff".repeat(32), b"present")
            .unwrap();
        let needed = vec![(
            missing.clone(),
            PackNeeds {
                size: 10,
                ranges: vec![(0, 10)],
            },
        )];
        let spool = started(inner.clone(), &spool_dir, needed, 2);
        assert!(!arrives(&spool, 0), "a failed request is never marked done");
        assert!(spool.get_range(Kind::Packs, &missing, 0, 10).is_err());
        assert_eq!(
            spool
                .get_range(Kind::Packs, &"ff".repeat(32), 0, 7)
                .unwrap(),
            b"present"
        );
        assert!(
            fetched(
                inner,
                &dir.path().join("spool3"),
                BTreeMap::from([(
                    missing,
                    PackNeeds {
                        size: 10,
                        ranges: vec![(0, 10)],
                    }
                )]),
                1
            )
            .is_err(),
            "fetch reports a failed download"
        );
    }

    /// A store whose ranged reads wait while the gate is closed.
    struct Gated {
        inner: MemoryBackend,
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gated {
        fn set(&self, open: bool) {
            *self.open.lock().unwrap() = open;
            self.opened.notify_all();
        }
    }

    impl Backend for Gated {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn create(&self) -> Result<()> {
            self.inner.create()
        }
        fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
            self.inner.put(kind, name, data)
        }
        fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
            self.inner.get(kind, name)
        }
        fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            drop(open);
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

    #[test]
    fn a_range_already_spooled_never_waits_for_a_later_download_of_its_pack() {
        let gated = Arc::new(Gated {
            inner: MemoryBackend::new("spool"),
            open: Mutex::new(true),
            opened: Condvar::new(),
        });
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let name = "ab".repeat(32);
        gated.put(Kind::Packs, &name, &data).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolBackend::new(gated.clone(), &dir.path().join("spool")).unwrap();
        let needs = |ranges| PackNeeds {
            size: data.len() as u64,
            ranges,
        };
        spool
            .fetch([(name.clone(), needs(vec![(1000, 500)]))], 2)
            .unwrap();
        // The whole pack comes next, and cannot arrive while the gate is closed.
        gated.set(false);
        spool.start(vec![(name.clone(), needs(vec![(0, 200_000)]))], 2, false);
        let (sent, got) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = sent.send(spool.get_range(Kind::Packs, &name, 1100, 100).unwrap());
            });
            let read = got.recv_timeout(std::time::Duration::from_secs(10));
            gated.set(true);
            assert_eq!(
                read.expect("the read is served without waiting"),
                &data[1100..1200]
            );
        });
        assert_eq!(
            spool.get_range(Kind::Packs, &name, 150_000, 100).unwrap(),
            &data[150_000..150_100],
            "a range only the later download holds waits for it"
        );
    }

    #[test]
    fn bodies_in_flight_stay_within_the_bound() {
        let state: Arc<(Mutex<FetchState>, Condvar)> = Arc::default();
        let peak = Mutex::new(0u64);
        let sizes: Vec<u64> = (0..40)
            .map(|i| if i % 3 == 0 { MAX_REQUEST } else { 1 << 16 })
            .collect();
        crate::parallel::try_for_each(&sizes, 16, |&len| {
            let _held = InFlight::take(&state, len);
            let now = state.0.lock().unwrap().in_flight;
            let mut p = peak.lock().unwrap();
            *p = (*p).max(now);
            drop(p);
            std::thread::sleep(std::time::Duration::from_millis(2));
            Ok(())
        })
        .unwrap();
        let peak = *peak.lock().unwrap();
        assert!(peak <= BYTES_IN_FLIGHT && peak > MAX_REQUEST, "{peak}");
        assert_eq!(state.0.lock().unwrap().in_flight, 0);
    }
}
