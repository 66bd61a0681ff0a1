//! A local spool in front of a remote store, for restores.
//!
//! A restore reads thousands of blobs; over S3 one ranged GET each would make request
//! latency, not bandwidth, the limit. So before writing files, the restore fetches every
//! byte range it will need, merged per pack (small gaps are fetched rather than split)
//! and many at a time, into sparse files in a spool folder, and then reads the blobs from
//! there. Only the ranges the snapshot needs are downloaded, each once. Everything but
//! those pack ranges goes to the store itself.
//!
//! [`SpoolBackend::start`] downloads in the background, in the order given (the order
//! the restore will read), so files are written while later ranges still arrive: a read
//! of a range being fetched waits for it, and a read after a failed or stopped download
//! goes to the store itself. [`SpoolBackend::fetch`] waits for everything first.

use super::{Backend, BackendRef, Kind, ObjectInfo, ObjectLock};
use crate::error::{IoContext, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Ranges closer than this are fetched as one (the gap is cheaper than a request).
const MERGE_GAP: u64 = 1 << 20;
/// Longest single request; memory holds at most this per fetcher.
const MAX_REQUEST: u64 = 4 << 20;
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

pub struct SpoolBackend {
    inner: BackendRef,
    dir: PathBuf,
    /// Per pack, the byte ranges held in the spool (each with its request's number);
    /// anything else goes to `inner`.
    spooled: HashMap<String, Vec<(u64, u64, usize)>>,
    state: Arc<(Mutex<FetchState>, Condvar)>,
    stop: Arc<AtomicBool>,
    fetcher: Option<std::thread::JoinHandle<()>>,
}

/// What the background download has done so far.
struct FetchState {
    /// Per request: written to the spool.
    done: Vec<bool>,
    /// The download has ended (all done, or stopped by an error or on request).
    over: bool,
    error: Option<crate::error::Error>,
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

impl SpoolBackend {
    /// Fetches `needed` (pack name -> needs) into `dir` with `fetchers` requests in
    /// flight, and returns a backend that serves those ranges from the spool.
    pub fn fetch(
        inner: BackendRef,
        dir: &Path,
        needed: BTreeMap<String, PackNeeds>,
        fetchers: usize,
    ) -> Result<SpoolBackend> {
        let spool = SpoolBackend::start(inner, dir, needed.into_iter().collect(), fetchers, true)?;
        let (lock, ended) = &*spool.state;
        let mut state = lock.lock().unwrap();
        while !state.over {
            state = ended.wait(state).unwrap();
        }
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        drop(state);
        Ok(spool)
    }

    /// Starts fetching `needed` into `dir` in the background, packs in the order given,
    /// with `fetchers` requests in flight; reads are served as their ranges arrive.
    /// `show_progress` reports the download as its own step.
    pub fn start(
        inner: BackendRef,
        dir: &Path,
        needed: Vec<(String, PackNeeds)>,
        fetchers: usize,
        show_progress: bool,
    ) -> Result<SpoolBackend> {
        std::fs::create_dir_all(dir).ctx(|| format!("create restore spool {}", dir.display()))?;
        let mut jobs: Vec<(String, u64, u64)> = Vec::new();
        let mut spooled: HashMap<String, Vec<(u64, u64, usize)>> = HashMap::new();
        for (pack, needs) in &needed {
            let wanted: u64 = needs.ranges.iter().map(|r| r.1).sum();
            let requests = if wanted as f64 >= WHOLE_PACK_SHARE * needs.size as f64 {
                plan_requests(vec![(0, needs.size)])
            } else {
                plan_requests(needs.ranges.clone())
            };
            let held = spooled.entry(pack.clone()).or_default();
            for (o, l) in requests {
                held.push((o, l, jobs.len()));
                jobs.push((pack.clone(), o, l));
            }
        }
        drop(needed);
        if show_progress {
            crate::progress::get().begin_items(
                "restore: download",
                "packs",
                jobs.len() as u64,
                jobs.iter().map(|j| j.2).sum(),
            );
        }
        let state = Arc::new((
            Mutex::new(FetchState {
                done: vec![false; jobs.len()],
                over: false,
                error: None,
            }),
            Condvar::new(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let fetcher = {
            let (inner, dir, state, stop) = (
                inner.clone(),
                dir.to_path_buf(),
                state.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let numbered: Vec<(usize, &(String, u64, u64))> = jobs.iter().enumerate().collect();
                let result = crate::parallel::try_for_each(&numbered, fetchers, |(n, job)| {
                    let (pack, off, len) = job;
                    crate::progress::check_cancelled("restore")?;
                    if stop.load(Ordering::SeqCst) {
                        return Err(crate::error::Error::Cancelled {
                            operation: "restore",
                        });
                    }
                    let bytes = inner.get_range(Kind::Packs, pack, *off, *len)?;
                    let path = dir.join(pack);
                    OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(false)
                        .open(&path)
                        .and_then(|f| f.write_all_at(&bytes, *off))
                        .ctx(|| {
                            format!("write restore spool {} (is the disk full?)", path.display())
                        })?;
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
                let mut s = lock.lock().unwrap();
                s.over = true;
                s.error = result.err();
                arrived.notify_all();
            })
        };
        Ok(SpoolBackend {
            inner,
            dir: dir.to_path_buf(),
            spooled,
            state,
            stop,
            fetcher: Some(fetcher),
        })
    }

    /// Waits until request `n` is in the spool; false when the download ended without it.
    fn wait_for(&self, n: usize) -> bool {
        let (lock, arrived) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            if state.done[n] {
                return true;
            }
            if state.over {
                return false;
            }
            state = arrived.wait(state).unwrap();
        }
    }
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

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.inner.get(kind, name)
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let request = (kind == Kind::Packs)
            .then(|| self.spooled.get(name))
            .flatten()
            .and_then(|ranges| {
                ranges
                    .iter()
                    .find(|&&(o, l, _)| o <= offset && offset + len <= o + l)
            });
        // A range not held, or whose download failed, comes from the store.
        if !request.is_some_and(|&(_, _, n)| self.wait_for(n)) {
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
        if let Some(fetcher) = self.fetcher.take() {
            let _ = fetcher.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

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
        let spool = SpoolBackend::fetch(inner.clone(), &spool_dir, needed, 3).unwrap();
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
        let spool2 = SpoolBackend::fetch(inner, &dir.path().join("spool2"), whole, 2).unwrap();
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
        let spool = SpoolBackend::start(inner.clone(), &spool_dir, needed, 2, false).unwrap();
        assert!(
            spool.fetcher.is_some(),
            "the download runs in the background"
        );
        for (name, data) in &packs {
            assert_eq!(
                spool.get_range(Kind::Packs, name, 1000, 5000).unwrap(),
                &data[1000..6000]
            );
        }
        // Once every request is in, the store is not asked again for held ranges.
        assert!(spool.wait_for(0));
        let (lock, _) = &*spool.state;
        while !lock.lock().unwrap().over {
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
        let spool = SpoolBackend::start(inner.clone(), &spool_dir, needed, 2, false).unwrap();
        assert!(!spool.wait_for(0), "a failed request is never marked done");
        assert!(spool.get_range(Kind::Packs, &missing, 0, 10).is_err());
        assert_eq!(
            spool
                .get_range(Kind::Packs, &"ff".repeat(32), 0, 7)
                .unwrap(),
            b"present"
        );
        assert!(
            SpoolBackend::fetch(
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
}
