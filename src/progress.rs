//! How far a long command has come, and whether it was asked to stop.
//!
//! The library never prints. Long loops (snapshot, restore, copy, check --read-data,
//! prune) update one process-wide [`Progress`] instead: counters of files and bytes done,
//! the totals where they are known in advance, the path being worked on, and the name of
//! the step. Whoever runs the library (the CLI) reads it from another thread to draw a
//! progress bar or write status lines, and may install an [`Observer`] that is told of
//! every file a snapshot or restore handles (for `--verbose`).
//!
//! Cancellation: [`cancel`] raises a flag (the CLI does it on SIGINT/SIGTERM); long loops
//! call [`check_cancelled`] at points where stopping leaves the store consistent (between
//! files, between packs), and return [`Error::Cancelled`]. Every lease is released by its
//! guard as the error unwinds, and nothing a stopped command wrote is half-visible: a
//! snapshot record or index file is written whole or not at all.
//!
//! The "files" counters count the step's items, named by its unit: files for snapshot
//! and restore, packs for copy, check --read-data, prune's repack and restore's download,
//! snapshots for prune's mark and stats. New long loops (repair, drill) call
//! [`Progress::begin_items`] once and then the `add_*`/`set_current` methods, and
//! [`check_cancelled`] where stopping is safe.
//!
//! Invariants: counters only grow between two [`Progress::begin`] calls; a total of 0
//! means "not known"; the observer is called on the thread doing the work, so it must be
//! quick and must not call back into the library.

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

/// What happened to one file, for `--verbose`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileEvent {
    /// Read and chunked: new, or changed since the last snapshot.
    Changed,
    /// Unchanged since the last snapshot: taken from the files cache, not read.
    Unchanged,
    /// Left out: excluded, or unreadable (reported separately).
    Skipped,
    /// Written by a restore.
    Restored,
}

impl FileEvent {
    pub fn label(self) -> &'static str {
        match self {
            FileEvent::Changed => "changed",
            FileEvent::Unchanged => "unchanged",
            FileEvent::Skipped => "skipped",
            FileEvent::Restored => "restored",
        }
    }
}

/// Told of every file a snapshot or restore handles.
pub type Observer = Box<dyn Fn(FileEvent, &Path) + Send + Sync>;

/// The counters of the running step. See the module docs.
#[derive(Default)]
pub struct Progress {
    step: Mutex<(&'static str, &'static str)>,
    files_done: AtomicU64,
    files_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    current: Mutex<String>,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub step: &'static str,
    /// What the "files" counters count: files, packs, snapshots.
    pub unit: &'static str,
    pub files_done: u64,
    /// 0 when not known.
    pub files_total: u64,
    pub bytes_done: u64,
    /// 0 when not known.
    pub bytes_total: u64,
    pub current: String,
}

static PROGRESS: OnceLock<Progress> = OnceLock::new();
static OBSERVER: RwLock<Option<Observer>> = RwLock::new(None);
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// The process-wide progress.
pub fn get() -> &'static Progress {
    PROGRESS.get_or_init(Progress::default)
}

impl Progress {
    /// Starts a new step: resets the counters and sets the totals (0: not known).
    pub fn begin(&self, step: &'static str, files_total: u64, bytes_total: u64) {
        self.begin_items(step, "files", files_total, bytes_total);
    }

    /// Like [`Progress::begin`], for a step whose items are not files (`unit`: "packs").
    pub fn begin_items(
        &self,
        step: &'static str,
        unit: &'static str,
        files_total: u64,
        bytes_total: u64,
    ) {
        *self.step.lock().unwrap() = (step, unit);
        self.files_done.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        self.files_total.store(files_total, Ordering::Relaxed);
        self.bytes_total.store(bytes_total, Ordering::Relaxed);
        self.current.lock().unwrap().clear();
    }

    pub fn set_totals(&self, files_total: u64, bytes_total: u64) {
        self.files_total.store(files_total, Ordering::Relaxed);
        self.bytes_total.store(bytes_total, Ordering::Relaxed);
    }

    pub fn add_files(&self, n: u64) {
        self.files_done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    /// The path (or object name) being worked on.
    pub fn set_current(&self, what: &str) {
        let mut c = self.current.lock().unwrap();
        c.clear();
        c.push_str(what);
    }

    pub fn snapshot(&self) -> Snapshot {
        let (step, unit) = *self.step.lock().unwrap();
        Snapshot {
            step,
            unit,
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            current: self.current.lock().unwrap().clone(),
        }
    }
}

/// Installs (or with `None` removes) the observer told of every file.
pub fn set_observer(observer: Option<Observer>) {
    *OBSERVER.write().unwrap() = observer;
}

/// Tells the observer, if any, what happened to `path`.
pub fn file_event(event: FileEvent, path: &Path) {
    if let Some(o) = OBSERVER.read().unwrap().as_ref() {
        o(event, path);
    }
}

/// Asks every long loop to stop at its next safe point.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// `Err(Error::Cancelled)` naming `operation` once [`cancel`] was called.
pub fn check_cancelled(operation: &'static str) -> Result<()> {
    if is_cancelled() {
        Err(Error::Cancelled { operation })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_resets_counters_and_sets_totals() {
        let p = Progress::default();
        p.begin("one", 0, 0);
        p.add_files(3);
        p.add_bytes(100);
        p.set_current("/a");
        assert_eq!(p.snapshot().files_done, 3);
        p.begin("two", 5, 500);
        let s = p.snapshot();
        assert_eq!(
            s,
            Snapshot {
                step: "two",
                unit: "files",
                files_done: 0,
                files_total: 5,
                bytes_done: 0,
                bytes_total: 500,
                current: String::new(),
            }
        );
    }
}
