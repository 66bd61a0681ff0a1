//! Leases: how snapshots and prune stay out of each other's way.
//!
//! A snapshot relies on blobs that already exist in the store (that is deduplication), so
//! prune must never delete a pack while a snapshot that might reuse it is running. Every
//! snapshot therefore holds a *shared* lease and prune an *exclusive* one, each an object
//! `locks/ID` (sealed with the metadata key) naming host, process, kind and an expiry.
//!
//! Taking a lease: write it, then list the others; if one conflicts (exclusive against
//! anything live), withdraw ours and report who holds the store. Two processes taking
//! conflicting leases at once both see each other, so at most one goes ahead.
//!
//! Leases expire: a holder refreshes its lease every [`REFRESH`]; one not refreshed for
//! [`TTL`] belongs to a process that died and is ignored (and removed by prune). A lease of
//! this host whose process no longer exists is stale at once. Releasing rewrites the lease
//! as expired before deleting it, so a host whose credentials may not delete (a write-only
//! S3 policy) still frees the store. [`unlock`] removes stale leases on demand and, when
//! named, the live lease of a host that is down (never one of a running process here).

use crate::backend::{BackendRef, Kind};
use crate::crypto::WriterKeys;
use crate::error::{Error, Remedy, Result};
use crate::id::Id;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TTL: Duration = Duration::from_secs(30 * 60);
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
const LABEL: &[u8] = b"vault v1 lease";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseKind {
    Shared,
    Exclusive,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub kind: LeaseKind,
    pub host: String,
    pub pid: u32,
    pub purpose: String,
    pub created: u64,
    pub expires: u64,
}

impl LeaseRecord {
    fn is_live(&self, now: u64, this_host: &str) -> bool {
        if self.expires <= now {
            return false;
        }
        if self.host == this_host && self.pid != std::process::id() {
            return process_exists(self.pid);
        }
        true
    }

    pub fn describe(&self) -> String {
        format!(
            "{} on {} (pid {}) since {}",
            self.purpose,
            self.host,
            self.pid,
            chrono::DateTime::from_timestamp(self.created as i64, 0)
                .map(|t| t
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string())
                .unwrap_or_default()
        )
    }
}

/// Parses a lease's plaintext (JSON); `None` when it is not one.
pub fn decode_lease(plain: &[u8]) -> Option<LeaseRecord> {
    serde_json::from_slice(plain).ok()
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A held lease; released (and its refresher stopped) on drop.
pub struct Lease {
    backend: BackendRef,
    name: String,
    stop: Arc<crate::parallel::Stop>,
    state: Arc<Mutex<(LeaseRecord, WriterKeys)>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

fn write(backend: &BackendRef, keys: &WriterKeys, name: &str, record: &LeaseRecord) -> Result<()> {
    let plain = serde_json::to_vec(record).expect("serialisable");
    backend.put(Kind::Locks, name, &keys.seal_meta(LABEL, &plain))
}

/// All leases in the store with their names; unreadable ones are skipped (they cannot
/// belong to a vault of this store).
pub fn list(backend: &BackendRef, keys: &WriterKeys) -> Result<Vec<(String, LeaseRecord)>> {
    let mut out = Vec::new();
    for info in backend.list(Kind::Locks)? {
        let sealed = match backend.get(Kind::Locks, &info.name) {
            Ok(s) => s,
            Err(Error::Missing { .. }) => continue,
            Err(e) => return Err(e),
        };
        let Ok(plain) = keys.open_meta(LABEL, &sealed, "lease") else {
            continue;
        };
        if let Some(record) = decode_lease(&plain) {
            out.push((info.name, record));
        }
    }
    Ok(out)
}

impl Lease {
    /// Takes a lease, or fails with [`Error::Busy`] naming who holds a conflicting one (with
    /// [`Remedy::ForceUnlockOrWait`] attached when another host holds it; [`Error::is_busy`]).
    pub fn acquire(
        backend: &BackendRef,
        keys: &WriterKeys,
        kind: LeaseKind,
        purpose: &str,
    ) -> Result<Lease> {
        let host = crate::host::hostname();
        let created = now();
        let record = LeaseRecord {
            kind,
            host: host.clone(),
            pid: std::process::id(),
            purpose: purpose.to_string(),
            created,
            expires: created + TTL.as_secs(),
        };
        let name = Id::random().to_hex();
        write(backend, keys, &name, &record)?;
        let conflict = list(backend, keys)?.into_iter().find(|(other, r)| {
            other != &name
                && r.is_live(now(), &host)
                && (kind == LeaseKind::Exclusive || r.kind == LeaseKind::Exclusive)
        });
        if let Some((other_name, other)) = conflict {
            // Withdraw: expire it first, so a host that may not delete still frees it.
            let mut withdrawn = record.clone();
            withdrawn.expires = 0;
            let _ = write(backend, keys, &name, &withdrawn);
            let _ = backend.delete(Kind::Locks, &name);
            return Err(busy(&other_name, &other, &host));
        }
        let stop = Arc::new(crate::parallel::Stop::new());
        let state = Arc::new(Mutex::new((record, keys.clone())));
        let refresher = {
            let (backend, name, stop, state) =
                (backend.clone(), name.clone(), stop.clone(), state.clone());
            std::thread::spawn(move || {
                // Woken at once by the drop, which waits for this thread.
                while stop.sleep(REFRESH) {
                    let mut guard = state.lock().unwrap();
                    guard.0.expires = now() + TTL.as_secs();
                    let _ = write(&backend, &guard.1, &name, &guard.0);
                }
            })
        };
        Ok(Lease {
            backend: backend.clone(),
            name,
            stop,
            state,
            refresher: Some(refresher),
        })
    }

    /// Takes a lease, waiting up to `wait` for conflicting holders to finish.
    pub fn acquire_waiting(
        backend: &BackendRef,
        keys: &WriterKeys,
        kind: LeaseKind,
        purpose: &str,
        wait: Duration,
    ) -> Result<Lease> {
        let deadline = std::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(200);
        loop {
            match Lease::acquire(backend, keys, kind, purpose) {
                Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                    // Randomised, so two waiters do not retry in lockstep forever.
                    let jitter = Duration::from_millis(rand::random::<u64>() % 200);
                    std::thread::sleep(pause + jitter);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let guard = self.state.lock().unwrap();
        let mut expired = guard.0.clone();
        expired.expires = 0;
        let _ = write(&self.backend, &guard.1, &self.name, &expired);
        let _ = self.backend.delete(Kind::Locks, &self.name);
    }
}

/// The error for a store held by lease `name`: whose it is, since when, and how to clear
/// it. A lease of another host may be removed by force if that host is down
/// ([`Remedy::ForceUnlockOrWait`]).
fn busy(name: &str, lease: &LeaseRecord, this_host: &str) -> Error {
    let short = &name[..8.min(name.len())];
    let left = lease.expires.saturating_sub(now());
    let held = format!(
        "lease {short} is held by {} (expires in {} min unless renewed)",
        lease.describe(),
        left.div_ceil(60)
    );
    if lease.host == this_host {
        Error::Busy(format!(
            "{held}; if process {} is stuck, stop it; its lease goes with it",
            lease.pid
        ))
    } else {
        Error::Busy(held).with_remedy(Remedy::ForceUnlockOrWait {
            host: lease.host.clone(),
            lease: short.to_string(),
        })
    }
}

/// What `unlock` removed.
#[derive(Debug, Default)]
pub struct Unlocked {
    /// Lease names and what they were.
    pub removed: Vec<(String, LeaseRecord)>,
    /// Live leases left in place.
    pub live: Vec<(String, LeaseRecord)>,
}

/// Removes stale leases (expired, or of this host with no such process any more) and,
/// when `force` names one (by name or unique prefix), that lease even though it is live:
/// for a host that is down. A lease of this host whose process runs is never forced.
pub fn unlock(backend: &BackendRef, keys: &WriterKeys, force: Option<&str>) -> Result<Unlocked> {
    let host = crate::host::hostname();
    let mut out = Unlocked::default();
    let leases = list(backend, keys)?;
    let forced = match force {
        None => None,
        Some(prefix) => {
            let prefix = prefix.to_ascii_lowercase();
            let hits: Vec<&(String, LeaseRecord)> = leases
                .iter()
                .filter(|(n, _)| n.starts_with(&prefix))
                .collect();
            match hits.as_slice() {
                [one] => {
                    if one.1.host == host
                        && one.1.pid != std::process::id()
                        && process_exists(one.1.pid)
                    {
                        return Err(Error::Usage(format!(
                            "lease {prefix} belongs to process {} on this host, which is still running; stop it instead",
                            one.1.pid
                        )));
                    }
                    Some(one.0.clone())
                }
                [] => {
                    return Err(Error::Usage(format!("no lease {prefix:?} in the store"))
                        .with_remedy(Remedy::ListLeases))
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "lease prefix {prefix:?} matches {} leases; give more digits",
                        hits.len()
                    )))
                }
            }
        }
    };
    for (name, record) in leases {
        if !record.is_live(now(), &host) || forced.as_deref() == Some(name.as_str()) {
            backend.delete(Kind::Locks, &name)?;
            out.removed.push((name, record));
        } else {
            out.live.push((name, record));
        }
    }
    Ok(out)
}

/// Removes leases that have expired or whose process is gone; returns how many.
pub fn remove_stale(backend: &BackendRef, keys: &WriterKeys) -> Result<usize> {
    let host = crate::host::hostname();
    let mut removed = 0;
    for (name, record) in list(backend, keys)? {
        if !record.is_live(now(), &host) {
            backend.delete(Kind::Locks, &name)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::crypto::SecretKey;

    #[test]
    fn exclusive_excludes_and_shared_share() {
        let b: BackendRef = Arc::new(MemoryBackend::new("locks"));
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let s1 = Lease::acquire(&b, &keys, LeaseKind::Shared, "snapshot").unwrap();
        let s2 = Lease::acquire(&b, &keys, LeaseKind::Shared, "snapshot").unwrap();
        let err = Lease::acquire(&b, &keys, LeaseKind::Exclusive, "prune")
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::Busy(ref who) if who.contains("snapshot")),
            "{err}"
        );
        drop(s1);
        drop(s2);
        assert!(
            b.list(Kind::Locks).unwrap().is_empty(),
            "released leases are gone"
        );
        let x = Lease::acquire(&b, &keys, LeaseKind::Exclusive, "prune").unwrap();
        assert!(matches!(
            Lease::acquire(&b, &keys, LeaseKind::Shared, "snapshot"),
            Err(Error::Busy(ref who)) if who.contains("prune")
        ));
        drop(x);
        Lease::acquire(&b, &keys, LeaseKind::Shared, "snapshot").unwrap();
    }

    #[test]
    fn expired_and_dead_leases_do_not_block() {
        let b: BackendRef = Arc::new(MemoryBackend::new("stale"));
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let mut dead = LeaseRecord {
            kind: LeaseKind::Exclusive,
            host: crate::host::hostname(),
            pid: u32::MAX - 1,
            purpose: "prune".into(),
            created: now(),
            expires: now() + 3600,
        };
        write(&b, &keys, &"aa".repeat(32), &dead).unwrap();
        dead.host = "elsewhere".into();
        dead.expires = now() - 1;
        write(&b, &keys, &"bb".repeat(32), &dead).unwrap();
        Lease::acquire(&b, &keys, LeaseKind::Shared, "snapshot").expect("stale leases are ignored");
        assert_eq!(remove_stale(&b, &keys).unwrap(), 2);
    }
}
