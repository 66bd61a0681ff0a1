//! Retries for any backend.
//!
//! [`RetryBackend`] wraps a backend and repeats an operation that failed with a *transient*
//! error ([`is_transient`]): a timeout, a reset or refused connection, an HTTP 5xx, or
//! throttling (429, `SlowDown`). It waits between attempts with exponential backoff and full
//! jitter (a random delay between zero and `initial_delay * 2^attempt`, capped at
//! `max_delay`), and gives up after `max_attempts` attempts or once `max_elapsed` has passed,
//! whichever comes first. The error it then returns names the operation, the object, how
//! many attempts were made, and the last failure.
//!
//! Permanent errors (wrong credentials, access denied, a missing bucket, a missing object,
//! corruption, bad names) are returned at once: repeating them cannot help and would only
//! delay the message the user needs.
//!
//! Every backend operation is idempotent (`put` of the same bytes, `delete` of an absent
//! object), so repeating one after an ambiguous failure (the request may or may not have
//! reached the store) is always safe.

use super::{Backend, Kind, ObjectInfo, ObjectLock};
use crate::error::{Error, Result};
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// True for errors that may go away when the operation is repeated.
pub fn is_transient(err: &Error) -> bool {
    use std::io::ErrorKind::*;
    match err {
        Error::Remote { transient, .. } => *transient,
        Error::Io { source, .. } => matches!(
            source.kind(),
            TimedOut
                | Interrupted
                | ConnectionReset
                | ConnectionAborted
                | ConnectionRefused
                | BrokenPipe
                | NotConnected
                | WouldBlock
        ),
        _ => false,
    }
}

/// How often and how long to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Upper bound of the first wait; each further wait doubles it.
    pub initial_delay: Duration,
    /// Upper bound of any single wait.
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first one.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy with short waits, for tests (feature `testing`; not in release builds).
    #[cfg(any(test, feature = "testing"))]
    pub fn fast(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_elapsed: Duration::from_secs(60),
        }
    }

    /// The wait before attempt `attempt + 1` (after `attempt` failures), with full jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        if cap.is_zero() {
            return cap;
        }
        let nanos = rand::thread_rng().gen_range(0..=cap.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }
}

/// Wraps a backend and retries its transient failures. See the module docs.
pub struct RetryBackend<B> {
    inner: B,
    policy: RetryPolicy,
    retries: AtomicU64,
}

impl<B: Backend> RetryBackend<B> {
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        RetryBackend {
            inner,
            policy: RetryPolicy {
                max_attempts: policy.max_attempts.max(1),
                ..policy
            },
            retries: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// How many repeated attempts this wrapper has made so far (all operations).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn run<T>(&self, what: impl Fn() -> String, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match op() {
                Ok(v) => return Ok(v),
                Err(e) if !is_transient(&e) => return Err(e),
                Err(e) => e,
            };
            let wait = self.policy.delay(attempt);
            let out_of_attempts = attempt >= self.policy.max_attempts;
            let out_of_time = start.elapsed() + wait > self.policy.max_elapsed;
            if out_of_attempts || out_of_time {
                return Err(Error::Remote {
                    message: format!(
                        "{} on {}: gave up after {attempt} attempt{} in {:.1} s{}; last error: {err} \
                         (the store is unreachable or failing: check it and the network, then \
                         run the command again)",
                        what(),
                        self.inner.location(),
                        if attempt == 1 { "" } else { "s" },
                        start.elapsed().as_secs_f64(),
                        if out_of_attempts {
                            ""
                        } else {
                            " (retry time limit reached)"
                        },
                    ),
                    transient: true,
                });
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
    }
}

fn obj(kind: Kind, name: &str) -> String {
    if kind == Kind::Config {
        "config".into()
    } else {
        format!("{}/{name}", kind.label())
    }
}

impl<B: Backend> Backend for RetryBackend<B> {
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
        self.run(|| "create store".into(), || self.inner.create())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.run(
            || format!("put {}", obj(kind, name)),
            || self.inner.put(kind, name, data),
        )
    }

    fn put_bytes(&self, kind: Kind, name: &str, data: bytes::Bytes) -> Result<()> {
        self.run(
            || format!("put {}", obj(kind, name)),
            || self.inner.put_bytes(kind, name, data.clone()),
        )
    }

    fn put_staged(
        &self,
        kind: Kind,
        name: &str,
        file: &mut super::staged::StagedFile,
    ) -> Result<()> {
        self.run(
            || format!("put {}", obj(kind, name)),
            || self.inner.put_staged(kind, name, file),
        )
    }

    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.staging_dir()
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.run(
            || format!("get {}", obj(kind, name)),
            || self.inner.get(kind, name),
        )
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.run(
            || format!("get {} bytes {offset}+{len}", obj(kind, name)),
            || self.inner.get_range(kind, name, offset, len),
        )
    }

    fn get_range_into(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        len: u64,
        sink: &mut super::RangeSink<'_>,
    ) -> Result<()> {
        self.run(
            || format!("get {} bytes {offset}+{len}", obj(kind, name)),
            || self.inner.get_range_into(kind, name, offset, len, sink),
        )
    }

    fn streams_ranges(&self) -> bool {
        self.inner.streams_ranges()
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.run(
            || format!("list {}", kind.label()),
            || self.inner.list(kind),
        )
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.run(
            || format!("delete {}", obj(kind, name)),
            || self.inner.delete(kind, name),
        )
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        self.run(
            || format!("check {}", obj(kind, name)),
            || self.inner.exists(kind, name),
        )
    }

    fn set_object_lock(&self, lock: Option<&ObjectLock>) -> Result<()> {
        self.inner.set_object_lock(lock)
    }

    fn extend_retention(&self, kind: Kind, name: &str, until: SystemTime) -> Result<()> {
        self.run(
            || format!("extend the retention of {}", obj(kind, name)),
            || self.inner.extend_retention(kind, name, until),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::{Fault, FaultyBackend};
    use crate::backend::memory::MemoryBackend;

    fn name() -> String {
        "ab".repeat(32)
    }

    fn scripted(script: Vec<Fault>) -> RetryBackend<FaultyBackend<MemoryBackend>> {
        let inner = FaultyBackend::new(MemoryBackend::new("retry-test"));
        inner.script(script);
        RetryBackend::new(inner, RetryPolicy::fast(4))
    }

    #[test]
    fn transient_then_success_succeeds() {
        let b = scripted(vec![Fault::Transient, Fault::Transient]);
        b.put(Kind::Packs, &name(), b"data").unwrap();
        assert_eq!(b.retries(), 2);
        assert_eq!(b.inner().calls(), 3);
        assert_eq!(b.get(Kind::Packs, &name()).unwrap(), b"data");
    }

    #[test]
    fn permanent_is_not_retried() {
        let b = scripted(vec![Fault::Permanent]);
        let err = b.put(Kind::Packs, &name(), b"data").unwrap_err();
        assert!(!is_transient(&err), "{err}");
        assert_eq!(
            b.inner().calls(),
            1,
            "a permanent error is returned at once"
        );
        assert_eq!(b.retries(), 0);
        // The object was not written, and the next call goes through.
        assert!(!b.exists(Kind::Packs, &name()).unwrap());
    }

    #[test]
    fn missing_is_not_retried() {
        let b = scripted(vec![]);
        assert!(matches!(
            b.get(Kind::Index, &name()),
            Err(Error::Missing { .. })
        ));
        assert_eq!(b.inner().calls(), 1);
    }

    #[test]
    fn exhausted_attempts_name_the_attempts_and_the_object() {
        let b = scripted(vec![Fault::Transient; 10]);
        let err = b.get(Kind::Snapshots, &name()).unwrap_err().to_string();
        assert!(err.contains("gave up after 4 attempts"), "{err}");
        assert!(err.contains(&format!("snapshots/{}", name())), "{err}");
        assert!(err.contains("memory://retry-test"), "{err}");
        assert!(err.contains("injected transient failure"), "{err}");
        assert_eq!(b.inner().calls(), 4);
    }

    #[test]
    fn time_limit_stops_retries() {
        let inner = FaultyBackend::new(MemoryBackend::new("slow"));
        inner.script(vec![Fault::Transient; 100]);
        let b = RetryBackend::new(
            inner,
            RetryPolicy {
                max_attempts: 100,
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(20),
                max_elapsed: Duration::from_millis(100),
            },
        );
        let start = Instant::now();
        let err = b.list(Kind::Index).unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(err.contains("retry time limit"), "{err}");
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(60),
        };
        for attempt in 1..30 {
            let cap = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(Duration::from_secs(1));
            for _ in 0..20 {
                assert!(p.delay(attempt) <= cap);
            }
        }
        // Full jitter: waits are spread out, not all at the cap.
        let waits: Vec<_> = (0..50).map(|_| p.delay(5)).collect();
        assert!(waits.iter().any(|w| *w < Duration::from_millis(900)));
    }

    #[test]
    fn suite_passes_through_random_transient_faults() {
        let inner = FaultyBackend::new(MemoryBackend::new("flaky"));
        inner.set_rate(0.3, 7);
        let b = RetryBackend::new(inner, RetryPolicy::fast(12));
        crate::backend::testsuite::run_all(&b);
        assert!(b.retries() > 0);
    }

    /// A store that keeps an object-lock policy and records extensions, as S3 does.
    #[derive(Default)]
    struct Lockable {
        objects: MemoryBackend,
        lock: std::sync::Mutex<Option<ObjectLock>>,
        extended: std::sync::Mutex<Vec<(Kind, String, SystemTime)>>,
    }

    impl Backend for Lockable {
        fn location(&self) -> String {
            "lockable".into()
        }
        fn create(&self) -> Result<()> {
            self.objects.create()
        }
        fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
            self.objects.put(kind, name, data)
        }
        fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
            self.objects.get(kind, name)
        }
        fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.objects.get_range(kind, name, offset, len)
        }
        fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
            self.objects.list(kind)
        }
        fn delete(&self, kind: Kind, name: &str) -> Result<()> {
            self.objects.delete(kind, name)
        }
        fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
            self.objects.exists(kind, name)
        }
        fn set_object_lock(&self, lock: Option<&ObjectLock>) -> Result<()> {
            *self.lock.lock().unwrap() = lock.cloned();
            Ok(())
        }
        fn extend_retention(&self, kind: Kind, name: &str, until: SystemTime) -> Result<()> {
            self.extended
                .lock()
                .unwrap()
                .push((kind, name.to_string(), until));
            Ok(())
        }
    }

    #[test]
    fn object_lock_calls_reach_the_store_through_both_wrappers() {
        let inner = FaultyBackend::new(Lockable::default());
        inner.script([Fault::Transient]);
        let b = RetryBackend::new(inner, RetryPolicy::fast(3));
        let lock: ObjectLock = "compliance:9".parse().unwrap();
        b.set_object_lock(Some(&lock)).unwrap();
        assert_eq!(*b.inner().inner().lock.lock().unwrap(), Some(lock));
        let until = SystemTime::now();
        b.extend_retention(Kind::Packs, &name(), until).unwrap();
        assert_eq!(
            b.retries(),
            1,
            "a transient failure of an extension is retried"
        );
        assert_eq!(
            *b.inner().inner().extended.lock().unwrap(),
            vec![(Kind::Packs, name(), until)]
        );
    }

    #[test]
    fn io_errors_are_classified() {
        let reset = Error::io(
            "x",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        let denied = Error::io(
            "x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(is_transient(&reset));
        assert!(!is_transient(&denied));
        assert!(!is_transient(&Error::corrupt("a", "b")));
    }
}
