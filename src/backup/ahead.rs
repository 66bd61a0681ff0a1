//! Reading ahead of the walk. The walker takes a folder's entries one by one, in name
//! order, on one thread; with small files most of its time goes to the system calls of
//! each entry (stat, extended attributes, open, read, the stat after reading, close), one
//! after the other. A few threads of their own make those calls for the entries of the
//! next window of the folder while the walker cuts, hashes and records the current one,
//! so several entries' calls are in flight at once and the walker seldom waits.
//!
//! Nothing the walker decides changes. It still takes every entry in order and decides
//! from the same facts; read-ahead only hands it the stat and extended attributes it would
//! have read itself and, for small files the files cache does not vouch for, the bytes
//! read and the stat of the open file taken after reading. Change detection compares
//! those just as for a file the walker reads itself, and a file that changed is read once
//! more by the walker. Whatever read-ahead could not do (a file it could not open or read,
//! a pool that stopped) the walker does itself, and reports what goes wrong as before.
//!
//! Bounds: a window holds at most [`WINDOW`] entries and at most [`WINDOW_BYTES`] of file
//! content, read only from files of at most [`SMALL_FILE`] bytes without holes. The
//! walker holds the window it works on and the next one of each folder on its path, so
//! what read-ahead holds grows with the depth of the tree, never with its size.

use crate::crypto::WriterKeys;
use crate::id::Id;
use crate::tree::{Extent, Xattr};
use std::fs::Metadata;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Entries per window: enough that the pool's hand-offs (two channel round trips per
/// window) cost little beside the entries' own system calls, few enough that the walker
/// waits for the first window of a folder only briefly.
pub(super) const WINDOW: usize = 256;

/// Files larger than this are read by the walker, through its chunking window: their
/// time goes to reading and cutting bytes, not to system calls.
pub(super) const SMALL_FILE: u64 = 128 << 10;

/// File content read ahead for one window, at most.
pub(super) const WINDOW_BYTES: u64 = 2 << 20;

/// What read-ahead learnt of one entry: its stat and, when that worked, its extended
/// attributes.
pub(super) struct Stat {
    pub(super) meta: std::io::Result<Metadata>,
    pub(super) xattrs: std::io::Result<Vec<Xattr>>,
}

/// A small file read whole.
pub(super) struct Content {
    /// What the reads returned, at most the size the walk's stat gave.
    pub(super) data: Vec<u8>,
    /// The stat of the open file once it was read.
    pub(super) after: Metadata,
    /// The blob id of `data` when it is one chunk: not empty and shorter than the
    /// smallest chunk, which the chunker never cuts.
    pub(super) id: Option<Id>,
}

/// Hashes the files read ahead that are one chunk each, off the walker's thread.
#[derive(Clone)]
pub(super) struct OneChunk {
    pub(super) keys: WriterKeys,
    /// The chunker's smallest chunk: content shorter than this is never cut.
    pub(super) min_size: u64,
}

/// What the walker has in hand for one entry when it comes to it.
#[derive(Default)]
pub(super) struct Prepared {
    /// The entry's stat and extended attributes, made ahead; `None`: the walker makes them.
    pub(super) stat: Option<Stat>,
    /// The files cache was asked ahead: `Some(extents)` when it vouches for the file,
    /// `None` when the file must be read. Unset: not asked yet.
    pub(super) vouched: Option<Option<Vec<Extent>>>,
    /// The file, read ahead.
    pub(super) content: Option<Content>,
}

/// Whether a file may be read ahead: a regular file small enough, and stored without
/// holes (a file with holes is read by regions, by the walker).
pub(super) fn readable_ahead(meta: &Metadata) -> bool {
    meta.file_type().is_file()
        && meta.len() <= SMALL_FILE
        && meta.blocks().saturating_mul(512) >= meta.len()
}

enum Task {
    Stat(Vec<PathBuf>),
    Read(Vec<(PathBuf, u64)>),
}

enum Answer {
    Stat(Vec<Stat>),
    Read(Vec<Option<Content>>),
}

struct Job {
    part: usize,
    task: Task,
    reply: mpsc::Sender<(usize, Answer)>,
}

/// The read-ahead threads of one snapshot.
pub(super) struct ReadAhead {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    parts: usize,
}

/// Answers still on their way; [`Pending::wait`] puts them back in order.
pub(super) struct Pending<T> {
    rx: mpsc::Receiver<(usize, Answer)>,
    parts: usize,
    take: fn(Answer) -> Option<Vec<T>>,
}

impl<T> Pending<T> {
    /// The answers in the order asked, or `None` when the pool could not give them all
    /// (the walker then does the work itself).
    pub(super) fn wait(self) -> Option<Vec<T>> {
        let mut parts: Vec<(usize, Vec<T>)> = Vec::with_capacity(self.parts);
        for _ in 0..self.parts {
            let (part, answer) = self.rx.recv().ok()?;
            parts.push((part, (self.take)(answer)?));
        }
        parts.sort_by_key(|(part, _)| *part);
        Some(parts.into_iter().flat_map(|(_, v)| v).collect())
    }
}

impl ReadAhead {
    /// `hash`: make the blob ids of one-chunk files too.
    pub(super) fn start(threads: usize, hash: Option<OneChunk>) -> ReadAhead {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .map(|i| {
                let (rx, hash) = (Arc::clone(&rx), hash.clone());
                std::thread::Builder::new()
                    .name(format!("read-ahead-{i}"))
                    .spawn(move || serve(&rx, hash.as_ref()))
                    .expect("spawn a read-ahead thread")
            })
            .collect();
        ReadAhead {
            jobs: Some(tx),
            threads: handles,
            parts: threads,
        }
    }

    /// Stats `paths` (and reads their extended attributes) on the pool.
    pub(super) fn stats(&self, paths: Vec<PathBuf>) -> Pending<Stat> {
        let take = |a| match a {
            Answer::Stat(v) => Some(v),
            Answer::Read(_) => None,
        };
        self.submit(paths, Task::Stat, take)
    }

    /// Reads each file whole, at most the given size, on the pool.
    pub(super) fn reads(&self, files: Vec<(PathBuf, u64)>) -> Pending<Option<Content>> {
        let take = |a| match a {
            Answer::Read(v) => Some(v),
            Answer::Stat(_) => None,
        };
        self.submit(files, Task::Read, take)
    }

    /// Splits `items` into one contiguous part per thread and hands the parts over.
    fn submit<I, T>(
        &self,
        mut items: Vec<I>,
        task: fn(Vec<I>) -> Task,
        take: fn(Answer) -> Option<Vec<T>>,
    ) -> Pending<T> {
        let (reply, rx) = mpsc::channel();
        let per_part = items.len().div_ceil(self.parts).max(1);
        let mut parts = 0;
        let mut part_items = Vec::new();
        while !items.is_empty() {
            let rest = items.split_off(per_part.min(items.len()));
            part_items.push(std::mem::replace(&mut items, rest));
        }
        for (part, chunk) in part_items.into_iter().enumerate() {
            let job = Job {
                part,
                task: task(chunk),
                reply: reply.clone(),
            };
            // A pool that stopped drops the job; `wait` then sees a missing answer.
            if let Some(jobs) = &self.jobs {
                let _ = jobs.send(job);
            }
            parts += 1;
        }
        Pending { rx, parts, take }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(rx: &Mutex<mpsc::Receiver<Job>>, hash: Option<&OneChunk>) {
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let answer = match job.task {
            Task::Stat(paths) => Answer::Stat(paths.iter().map(|p| stat(p)).collect()),
            Task::Read(files) => {
                Answer::Read(files.iter().map(|(p, n)| read(p, *n, hash)).collect())
            }
        };
        let _ = job.reply.send((job.part, answer));
    }
}

fn stat(path: &std::path::Path) -> Stat {
    let meta = std::fs::symlink_metadata(path);
    let xattrs = match &meta {
        Ok(_) => crate::fsmeta::read_xattrs(path),
        Err(_) => Ok(Vec::new()),
    };
    Stat { meta, xattrs }
}

/// Reads at most `size` bytes of the file and stats it once read; `None` on any error
/// (the walker then reads the file itself and reports what fails).
fn read(path: &std::path::Path, size: u64, hash: Option<&OneChunk>) -> Option<Content> {
    let file = super::read::open_noatime(path).ok()?;
    let mut data = Vec::with_capacity(size as usize);
    (&file).take(size).read_to_end(&mut data).ok()?;
    let after = file.metadata().ok()?;
    let id = hash
        .filter(|h| !data.is_empty() && (data.len() as u64) < h.min_size)
        .map(|h| h.keys.blob_id(&data));
    Some(Content { data, after, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_back_in_the_order_asked_whatever_thread_made_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..50u64 {
            let p = dir.path().join(format!("f{i:02}"));
            std::fs::write(&p, vec![i as u8; i as usize]).unwrap();
            files.push((p, i));
        }
        let pool = ReadAhead::start(3, None);
        let stats = pool
            .stats(files.iter().map(|(p, _)| p.clone()).collect())
            .wait()
            .unwrap();
        let sizes: Vec<u64> = stats
            .iter()
            .map(|s| s.meta.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, (0..50).collect::<Vec<_>>());
        // Ask for less than each file holds: never more than asked is read.
        let asked = files.iter().map(|(p, n)| (p.clone(), n / 2)).collect();
        let read = pool.reads(asked).wait().unwrap();
        for (i, c) in read.iter().enumerate() {
            let c = c.as_ref().unwrap();
            assert_eq!(c.data, vec![i as u8; i / 2]);
            assert_eq!(c.after.len(), i as u64);
        }
    }

    #[test]
    fn what_cannot_be_read_ahead_is_left_to_the_walker() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ReadAhead::start(2, None);
        let missing = dir.path().join("missing");
        let stats = pool.stats(vec![missing.clone()]).wait().unwrap();
        assert!(stats[0].meta.is_err());
        let read = pool.reads(vec![(missing, 10)]).wait().unwrap();
        assert!(read[0].is_none());
        assert!(pool.stats(Vec::new()).wait().unwrap().is_empty());
    }
}
