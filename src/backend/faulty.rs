//! A fault-injecting wrapper, for tests of retries and of what callers do when a store
//! misbehaves.
//!
//! Each call to the wrapped backend first takes the next entry of a script (if any), else
//! draws from a seeded random source with the configured fault rate, and then:
//! - [`Fault::Pass`]: calls through;
//! - [`Fault::Transient`]: fails without calling through, with a transient error;
//! - [`Fault::Permanent`]: fails without calling through, with a permanent error;
//! - [`Fault::LostReply`]: calls through, then reports a transient error anyway (the
//!   request reached the store but its answer was lost), which retries must tolerate.

use super::{Backend, Kind, ObjectInfo, ObjectLock};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Transient,
    Permanent,
    LostReply,
}

pub struct FaultyBackend<B> {
    inner: B,
    script: Mutex<VecDeque<Fault>>,
    random: Mutex<(f64, StdRng)>,
    calls: AtomicU64,
    faults: AtomicU64,
}

impl<B: Backend> FaultyBackend<B> {
    pub fn new(inner: B) -> Self {
        FaultyBackend {
            inner,
            script: Mutex::default(),
            random: Mutex::new((0.0, StdRng::seed_from_u64(0))),
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Queues faults for the next calls, one per call, before any random ones.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().unwrap().extend(faults);
    }

    /// After the script runs out, fails this share of calls (0.0 to 1.0) with transient
    /// errors, or with lost replies for every third of them; `seed` makes runs repeatable.
    pub fn set_rate(&self, rate: f64, seed: u64) {
        *self.random.lock().unwrap() = (rate.clamp(0.0, 1.0), StdRng::seed_from_u64(seed));
    }

    /// Calls made to this wrapper so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Faults injected so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    fn next_fault(&self) -> Fault {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fault = match self.script.lock().unwrap().pop_front() {
            Some(f) => f,
            None => {
                let (rate, rng) = &mut *self.random.lock().unwrap();
                if *rate > 0.0 && rng.gen_bool(*rate) {
                    if rng.gen_ratio(1, 3) {
                        Fault::LostReply
                    } else {
                        Fault::Transient
                    }
                } else {
                    Fault::Pass
                }
            }
        };
        if fault != Fault::Pass {
            self.faults.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    fn call<T>(&self, what: impl Fn() -> String, op: impl FnOnce() -> Result<T>) -> Result<T> {
        match self.next_fault() {
            Fault::Pass => op(),
            Fault::Transient => Err(Error::Remote {
                message: format!("{}: injected transient failure", what()),
                transient: true,
            }),
            Fault::Permanent => Err(Error::Remote {
                message: format!("{}: injected permanent failure", what()),
                transient: false,
            }),
            Fault::LostReply => {
                let _ = op();
                Err(Error::Remote {
                    message: format!("{}: injected lost reply", what()),
                    transient: true,
                })
            }
        }
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
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
        self.call(|| "create".into(), || self.inner.create())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.call(
            || format!("put {}/{name}", kind.label()),
            || self.inner.put(kind, name, data),
        )
    }

    fn put_staged(
        &self,
        kind: Kind,
        name: &str,
        file: &mut super::staged::StagedFile,
    ) -> Result<()> {
        self.call(
            || format!("put {}/{name}", kind.label()),
            || self.inner.put_staged(kind, name, file),
        )
    }

    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.staging_dir()
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.call(
            || format!("get {}/{name}", kind.label()),
            || self.inner.get(kind, name),
        )
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.call(
            || format!("get {}/{name}", kind.label()),
            || self.inner.get_range(kind, name, offset, len),
        )
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.call(
            || format!("list {}", kind.label()),
            || self.inner.list(kind),
        )
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.call(
            || format!("delete {}/{name}", kind.label()),
            || self.inner.delete(kind, name),
        )
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        self.call(
            || format!("check {}/{name}", kind.label()),
            || self.inner.exists(kind, name),
        )
    }

    /// Forwarded without a fault: it only records the policy, no request is made.
    fn set_object_lock(&self, lock: Option<&ObjectLock>) -> Result<()> {
        self.inner.set_object_lock(lock)
    }

    fn extend_retention(&self, kind: Kind, name: &str, until: std::time::SystemTime) -> Result<()> {
        self.call(
            || format!("extend the retention of {}/{name}", kind.label()),
            || self.inner.extend_retention(kind, name, until),
        )
    }
}
