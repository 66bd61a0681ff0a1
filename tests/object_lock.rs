//! S3 Object Lock against moto (which enforces retention as S3 does): locked objects
//! cannot be deleted or overwritten, leases stay free, retention only grows, a bucket
//! without Object Lock is refused; and end to end through the CLI: `init --object-lock`,
//! snapshots, `lock extend` moving forward exactly what the kept snapshots need, and
//! `forget`/`prune` skipping what is still locked and removing it once the lock passed.
//!
//! What vault wrote is read back through boto3 (tests/moto), not through vault's client.

mod common;
#[path = "moto/mod.rs"]
mod moto;

use common::{run_command, Out, Vault};
use moto::Moto;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use vault::backend::faulty::{Fault, FaultyBackend};
use vault::backend::retry::{RetryBackend, RetryPolicy};
use vault::backend::s3::S3Backend;
use vault::backend::{Backend, Kind, LockMode, ObjectLock};

const DAY: Duration = Duration::from_secs(86_400);

fn governance(days: u32) -> ObjectLock {
    ObjectLock {
        mode: LockMode::Governance,
        days,
    }
}

/// An S3 backend (no retries) on a prefix of `bucket`, with `lock` as its store's policy.
fn backend(m: &Moto, bucket: &str, prefix: &str, lock: Option<ObjectLock>) -> S3Backend {
    let b = S3Backend::new(&format!("s3://{bucket}/{prefix}"), &m.s3_config()).unwrap();
    b.set_object_lock(lock.as_ref()).unwrap();
    b
}

/// `|a - b| <= slack`.
#[track_caller]
fn assert_near(a: SystemTime, b: SystemTime, slack: Duration, what: &str) {
    let diff = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap();
    assert!(
        diff <= slack,
        "{what}: {a:?} is {diff:?} away from {b:?} (allowed {slack:?})"
    );
}

fn sleep_until(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        std::thread::sleep(d);
    }
}

#[test]
fn locked_objects_cannot_be_deleted_or_overwritten() {
    let m = Moto::start();
    let bucket = m.bucket("locked", true);
    let b = backend(&m, &bucket, "store", Some(governance(1)));
    b.create().unwrap();
    let name = "ab".repeat(32);
    let key = format!("store/packs/ab/{name}");
    let written = SystemTime::now();
    b.put(Kind::Packs, &name, b"original bytes").unwrap();

    // What S3 recorded, asked through boto3, and what vault reads agree: governance, one
    // day from the write.
    let (mode, until) = m
        .retention(&bucket, &key)
        .expect("the object carries a retention");
    assert_eq!(mode, "GOVERNANCE");
    assert_near(
        until,
        written + DAY,
        Duration::from_secs(60),
        "retain-until of a new object",
    );
    let seen = b.retention(Kind::Packs, &name).unwrap().expect("present");
    assert_eq!(seen.mode, Some(LockMode::Governance));
    assert_near(
        seen.until.unwrap(),
        until,
        Duration::from_secs(1),
        "vault's reading",
    );
    assert!(seen.locked_at(SystemTime::now()));

    // A delete is refused, and leaves no delete marker hiding the object.
    let err = b.delete(Kind::Packs, &name).unwrap_err();
    assert!(err.is_retention_locked(), "{err}");
    assert!(err.to_string().contains(&key), "{err}");
    assert_eq!(b.get(Kind::Packs, &name).unwrap(), b"original bytes");
    assert_eq!(
        m.versions(&bucket, &key),
        (1, 0),
        "the delete left a version or marker behind"
    );

    // Other bytes under the same name are refused (same length and other length), and
    // leave no new version that would hide the locked one.
    for other in [&b"changed bytes!"[..], b"other"] {
        let err = b.put(Kind::Packs, &name, other).unwrap_err();
        assert!(err.is_retention_locked(), "{err}");
        assert_eq!(b.get(Kind::Packs, &name).unwrap(), b"original bytes");
        assert_eq!(m.versions(&bucket, &key), (1, 0));
    }
    // The same bytes again are a harmless repeat.
    b.put(Kind::Packs, &name, b"original bytes").unwrap();
    assert_eq!(m.versions(&bucket, &key), (1, 0));

    // Through the wrappers the CLI uses: the policy is forwarded, refusals are not retried.
    let faulty = FaultyBackend::new(backend(&m, &bucket, "store", None));
    let wrapped = RetryBackend::new(faulty, RetryPolicy::fast(3));
    wrapped.set_object_lock(Some(&governance(1))).unwrap();
    wrapped
        .inner()
        .inner()
        .put(Kind::Config, "config", b"{}")
        .unwrap();
    let err = wrapped.delete(Kind::Packs, &name).unwrap_err();
    assert!(err.is_retention_locked(), "{err}");
    assert_eq!(wrapped.retries(), 0);
    let other = "cd".repeat(32);
    wrapped.put(Kind::Index, &other, b"index bytes").unwrap();
    assert!(
        m.retention(&bucket, &format!("store/index/{other}"))
            .is_some(),
        "a put through the wrappers carries no retention: set_object_lock was not forwarded"
    );

    // Once the lock has passed (an admin shortened it), delete removes every version.
    m.set_retention(
        &bucket,
        std::slice::from_ref(&key),
        SystemTime::now() + Duration::from_secs(2),
    );
    sleep_until(SystemTime::now() + Duration::from_secs(3));
    b.delete(Kind::Packs, &name).unwrap();
    assert!(!b.exists(Kind::Packs, &name).unwrap());
    assert_eq!(
        m.versions(&bucket, &key),
        (0, 0),
        "versions or markers left behind"
    );
    // Deleting it again is not an error.
    b.delete(Kind::Packs, &name).unwrap();
}

#[test]
fn multipart_uploads_are_locked_too() {
    let m = Moto::start();
    let bucket = m.bucket("multipart", true);
    let cfg = vault::backend::s3::S3Config {
        multipart_threshold: Some(5 << 20),
        part_size: Some(5 << 20),
        ..m.s3_config()
    };
    let b = S3Backend::new(&format!("s3://{bucket}/big"), &cfg).unwrap();
    b.set_object_lock(Some(&governance(2))).unwrap();
    b.create().unwrap();
    let name = "5a".repeat(32);
    let key = format!("big/packs/5a/{name}");
    let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
    let written = SystemTime::now();
    b.put(Kind::Packs, &name, &data).unwrap();
    let (mode, until) = m
        .retention(&bucket, &key)
        .expect("the multipart upload carries no retention");
    assert_eq!(mode, "GOVERNANCE");
    assert_near(
        until,
        written + 2 * DAY,
        Duration::from_secs(60),
        "multipart retain-until",
    );
    // Repeated: fine; other bytes: refused; nothing new is stored either way.
    b.put(Kind::Packs, &name, &data).unwrap();
    let mut other = data.clone();
    other[17] ^= 1;
    let err = b.put(Kind::Packs, &name, &other).unwrap_err();
    assert!(err.is_retention_locked(), "{err}");
    assert_eq!(b.get(Kind::Packs, &name).unwrap(), data);
    assert_eq!(m.versions(&bucket, &key), (1, 0));
}

#[test]
fn leases_carry_no_retention_and_keys_may_be_rewrapped() {
    let m = Moto::start();
    let bucket = m.bucket("leases", true);
    let b = backend(&m, &bucket, "p", Some(governance(1)));
    b.create().unwrap();
    let lease = "ef".repeat(32);
    let key = format!("p/locks/{lease}");
    b.put(Kind::Locks, &lease, b"lease").unwrap();
    assert_eq!(m.retention(&bucket, &key), None, "a lease got a retention");
    // Released as a write-only host does (rewritten as expired), then deleted by an admin.
    b.put(Kind::Locks, &lease, b"expired lease").unwrap();
    assert_eq!(b.get(Kind::Locks, &lease).unwrap(), b"expired lease");
    b.delete(Kind::Locks, &lease).unwrap();
    assert!(!b.exists(Kind::Locks, &lease).unwrap());
    assert_eq!(
        m.versions(&bucket, &key),
        (0, 0),
        "lease versions left behind"
    );

    // The reader key may be re-wrapped under a new passphrase: a new version, while the
    // old one stays stored under its own retention.
    b.put(Kind::Keys, "reader", b"wrapped once").unwrap();
    b.put(Kind::Keys, "reader", b"wrapped twice").unwrap();
    assert_eq!(b.get(Kind::Keys, "reader").unwrap(), b"wrapped twice");
    assert_eq!(m.versions(&bucket, "p/keys/reader"), (2, 0));
    let err = b.delete(Kind::Keys, "reader").unwrap_err();
    assert!(err.is_retention_locked(), "{err}");
    assert_eq!(b.get(Kind::Keys, "reader").unwrap(), b"wrapped twice");
}

#[test]
fn retention_is_only_ever_extended() {
    let m = Moto::start();
    let bucket = m.bucket("extend", true);
    let b = backend(&m, &bucket, "s", Some(governance(1)));
    b.create().unwrap();
    let name = "12".repeat(32);
    let key = format!("s/snapshots/{name}");
    b.put(Kind::Snapshots, &name, b"record").unwrap();
    let (_, first) = m.retention(&bucket, &key).unwrap();

    let now = SystemTime::now();
    b.extend_retention(Kind::Snapshots, &name, now + 3 * DAY)
        .unwrap();
    let (mode, extended) = m.retention(&bucket, &key).unwrap();
    assert_eq!(mode, "GOVERNANCE");
    assert_near(
        extended,
        now + 3 * DAY,
        Duration::from_secs(2),
        "extended retain-until",
    );
    assert!(extended > first);

    // An earlier date changes nothing.
    b.extend_retention(Kind::Snapshots, &name, now + 2 * DAY)
        .unwrap();
    assert_eq!(
        m.retention(&bucket, &key).unwrap().1,
        extended,
        "the retention was shortened"
    );
    b.extend_retention(Kind::Snapshots, &name, now).unwrap();
    assert_eq!(
        m.retention(&bucket, &key).unwrap().1,
        extended,
        "the retention was shortened"
    );
    assert_eq!(
        m.versions(&bucket, &key),
        (1, 0),
        "extending wrote a new version"
    );

    // A missing object is reported as missing.
    let err = b
        .extend_retention(Kind::Snapshots, &"34".repeat(32), now + DAY)
        .unwrap_err();
    assert!(matches!(err, vault::Error::Missing { .. }), "{err}");

    // Through a link that fails once: the wrappers forward and retry it.
    let faulty = FaultyBackend::new(backend(&m, &bucket, "s", Some(governance(1))));
    faulty.script([Fault::Transient]);
    let wrapped = RetryBackend::new(faulty, RetryPolicy::fast(3));
    wrapped
        .extend_retention(Kind::Snapshots, &name, now + 5 * DAY)
        .unwrap();
    assert_eq!(wrapped.retries(), 1);
    assert_eq!(wrapped.inner().faults(), 1);
    assert_near(
        m.retention(&bucket, &key).unwrap().1,
        now + 5 * DAY,
        Duration::from_secs(2),
        "retried extension",
    );
}

#[test]
fn a_bucket_without_object_lock_is_refused() {
    let m = Moto::start();
    let plain = m.bucket("plain", false);
    let b = backend(&m, &plain, "store", Some(governance(7)));
    let err = b.create().unwrap_err().to_string();
    assert!(
        err.contains("was not created with object lock enabled"),
        "{err}"
    );
    assert!(err.contains(&plain), "{err}");
    // Without a lock policy the same bucket is fine.
    backend(&m, &plain, "store", None).create().unwrap();
    // A bucket with Object Lock passes the check.
    let locked = m.bucket("withlock", true);
    backend(&m, &locked, "store", Some(governance(7)))
        .create()
        .unwrap();
}

// --- The CLI end to end ------------------------------------------------------------------

struct World {
    m: Moto,
    v: Vault,
    bucket: String,
    prefix: String,
}

impl World {
    fn new() -> World {
        let m = Moto::start();
        let bucket = m.bucket("cli", true);
        let prefix = "host".to_string();
        let mut v = Vault::new();
        v.store = PathBuf::from(format!("s3://{bucket}/{prefix}"));
        World {
            m,
            v,
            bucket,
            prefix,
        }
    }

    fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.v.command(args);
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_ENDPOINT_URL_S3",
        ] {
            cmd.env_remove(var);
        }
        for (k, val) in self.m.env() {
            cmd.env(k, val);
        }
        run_command(cmd)
    }

    fn keys(&self, kind: &str) -> BTreeSet<String> {
        self.m
            .keys(&self.bucket, &format!("{}/{kind}", self.prefix))
            .into_iter()
            .collect()
    }

    fn until(&self, key: &str) -> SystemTime {
        self.m
            .retention(&self.bucket, key)
            .unwrap_or_else(|| panic!("{key} has no retention"))
            .1
    }
}

/// Writes a file of `len` bytes no other call produces (so nothing deduplicates).
fn random_file(path: &std::path::Path, len: usize) {
    let mut data = vec![0u8; len];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut data)
        .unwrap();
    std::fs::write(path, data).unwrap();
}

#[test]
fn cli_extends_what_the_policy_keeps_and_prune_waits_for_the_lock() {
    let w = World::new();
    let out = w.run(["init", "--object-lock", "governance:1"]).ok();
    assert!(out.stdout.contains("created store"), "{}", out.describe());
    assert!(w.keys("config").len() == 1 && w.keys("keys/").len() >= 2);

    // Two snapshots of the same folder whose only file is replaced in between: the second
    // shares no data with the first.
    let data = w.v.path("data");
    random_file(&data.join("payload"), 300_000);
    w.run([OsStr::new("snapshot"), data.as_os_str()]).ok();
    let packs1 = w.keys("packs/");
    let index1 = w.keys("index/");
    let snaps1 = w.keys("snapshots/");
    random_file(&data.join("payload"), 300_000);
    w.run([OsStr::new("snapshot"), data.as_os_str()]).ok();
    let packs2: BTreeSet<String> = w.keys("packs/").difference(&packs1).cloned().collect();
    let index2: BTreeSet<String> = w.keys("index/").difference(&index1).cloned().collect();
    let snaps2: BTreeSet<String> = w.keys("snapshots/").difference(&snaps1).cloned().collect();
    assert!(!packs1.is_empty() && !packs2.is_empty() && !index1.is_empty() && !index2.is_empty());
    assert_eq!((snaps1.len(), snaps2.len()), (1, 1));
    assert!(
        w.keys("locks/").is_empty(),
        "leases left behind: {:?}",
        w.keys("locks/")
    );

    // Every object was written with one day of retention.
    let all = w.m.keys(&w.bucket, &format!("{}/", w.prefix));
    let written = w.m.retentions(&w.bucket, &format!("{}/", w.prefix));
    assert_eq!(
        written.len(),
        all.len(),
        "objects without retention: {all:?} vs {written:?}"
    );
    for (key, until) in &written {
        assert_near(
            *until,
            SystemTime::now() + DAY,
            Duration::from_secs(600),
            key,
        );
    }

    // Pretend the objects are old: ten minutes of retention left on everything.
    let soon = SystemTime::now() + Duration::from_secs(600);
    w.m.set_retention(&w.bucket, &all, soon);
    let dry = w
        .run(["lock", "extend", "--keep-last", "1", "--dry-run"])
        .ok();
    assert!(
        dry.stdout.contains("would extend") && dry.stdout.contains("nothing was changed"),
        "{}",
        dry.describe()
    );
    assert_near(
        w.until(snaps2.iter().next().unwrap()),
        soon,
        Duration::from_secs(1),
        "a dry run changed a date",
    );

    let before = SystemTime::now();
    let out = w.run(["lock", "extend", "--keep-last", "1"]).ok();
    assert!(
        out.stdout.contains("1 snapshot records"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("1 snapshots the retention policy removes were not extended"),
        "{}",
        out.describe()
    );
    let extended = |key: &String| {
        let until = w.until(key);
        assert!(
            until >= before + DAY - Duration::from_secs(5),
            "{key} was not extended: {until:?}"
        );
    };
    let untouched = |key: &String| {
        assert_near(
            w.until(key),
            soon,
            Duration::from_secs(1),
            &format!("{key} was extended"),
        )
    };
    // What the kept snapshot needs moved forward by a day...
    for key in w
        .keys("config")
        .iter()
        .chain(&w.keys("keys/"))
        .chain(&snaps2)
        .chain(&packs2)
        .chain(&index2)
    {
        extended(key);
    }
    // ...what only the dropped one needs did not.
    for key in snaps1.iter().chain(&packs1).chain(&index1) {
        untouched(key);
    }

    // forget cannot remove the dropped snapshot while its record is locked.
    let out = w.run(["forget", "--keep-last", "1"]).ok();
    assert!(
        out.stdout.contains("still under object lock"),
        "{}",
        out.describe()
    );
    assert_eq!(w.keys("snapshots/").len(), 2);

    // Its record's lock passes first; its pack and index file stay locked a while longer.
    w.m.set_retention(
        &w.bucket,
        &snaps1.iter().cloned().collect::<Vec<_>>(),
        SystemTime::now() + Duration::from_secs(2),
    );
    sleep_until(SystemTime::now() + Duration::from_secs(3));
    let out = w.run(["forget", "--keep-last", "1"]).ok();
    assert!(
        out.stdout.contains("removed 1 of 2 snapshots"),
        "{}",
        out.describe()
    );
    assert_eq!(w.keys("snapshots/"), snaps2);
    // Locked from just before prune, long enough for a prune on a loaded machine.
    let data_lock = SystemTime::now() + Duration::from_secs(30);
    w.m.set_retention(
        &w.bucket,
        &packs1.iter().chain(&index1).cloned().collect::<Vec<_>>(),
        data_lock,
    );

    // prune skips what is locked, without failing...
    let out = w.run(["prune"]).ok();
    assert!(
        SystemTime::now() < data_lock,
        "prune took longer than the lock it was to respect; the test proves nothing"
    );
    assert!(
        out.stdout.contains("still under retention and were kept"),
        "{}",
        out.describe()
    );
    assert!(
        w.keys("packs/").is_superset(&packs1),
        "a locked pack was deleted"
    );
    assert!(
        w.keys("index/").is_superset(&index1),
        "a locked index file was deleted"
    );
    // ...and removes it in a later run, once the lock has passed.
    sleep_until(data_lock + Duration::from_secs(1));
    let out = w.run(["prune"]).ok();
    let packs_now = w.keys("packs/");
    assert!(
        packs_now.is_disjoint(&packs1),
        "{packs_now:?} still holds {packs1:?}\n{}",
        out.describe()
    );
    assert!(
        packs_now.is_superset(&packs2),
        "a needed pack went\n{}",
        out.describe()
    );
    assert!(w.keys("index/").is_disjoint(&index1), "{}", out.describe());
    for key in packs1.iter().chain(&index1).chain(&snaps1) {
        assert_eq!(
            w.m.versions(&w.bucket, key),
            (0, 0),
            "{key}: versions or markers left behind"
        );
    }

    // What is left is healthy and restores the kept snapshot exactly.
    w.run(["check", "--read-data"]).ok();
    let to = w.v.path("restored");
    w.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--to"),
        to.as_os_str(),
    ])
    .restore_ok();
    let restored = std::fs::read(to.join(data.strip_prefix("/").unwrap()).join("payload")).unwrap();
    assert_eq!(restored, std::fs::read(data.join("payload")).unwrap());
}

/// A host whose snapshots no rule keeps still keeps its newest one in `forget` (the
/// guard), so `lock extend` with the same policy must extend that snapshot's retention:
/// it used to skip it, leaving a kept backup to lose its lock protection.
#[test]
fn lock_extend_extends_a_snapshot_only_the_guard_keeps() {
    let w = World::new();
    w.run(["init", "--object-lock", "governance:1"]).ok();
    let data = w.v.path("data");
    random_file(&data.join("payload"), 100_000);
    let snap = |host: &str, tags: &[&str]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("snapshot"),
            OsStr::new("--host"),
            OsStr::new(host),
        ];
        for t in tags {
            args.extend([OsStr::new("--tag"), OsStr::new(*t)]);
        }
        args.push(data.as_os_str());
        w.run(args).ok();
    };
    snap("platform-1", &["keep"]);
    let snaps_a = w.keys("snapshots/");
    random_file(&data.join("payload"), 100_000);
    snap("worker-1", &[]);
    let snaps_b: BTreeSet<String> = w.keys("snapshots/").difference(&snaps_a).cloned().collect();
    assert_eq!((snaps_a.len(), snaps_b.len()), (1, 1));

    let all = w.m.keys(&w.bucket, &format!("{}/", w.prefix));
    let soon = SystemTime::now() + Duration::from_secs(600);
    w.m.set_retention(&w.bucket, &all, soon);

    // forget keeps worker-1's only snapshot although no rule does.
    let dry = w.run(["forget", "--keep-tag", "keep", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains("newest of its group"),
        "{}",
        dry.describe()
    );
    assert!(
        dry.stdout.contains("0 of 2 snapshots would be removed"),
        "{}",
        dry.describe()
    );

    let before = SystemTime::now();
    let out = w.run(["lock", "extend", "--keep-tag", "keep"]).ok();
    assert!(
        out.stdout.contains("2 snapshot records"),
        "{}",
        out.describe()
    );
    assert!(
        !out.stdout.contains("were not extended"),
        "{}",
        out.describe()
    );
    for key in snaps_a.iter().chain(&snaps_b) {
        let until = w.until(key);
        assert!(
            until >= before + DAY - Duration::from_secs(5),
            "{key} (kept by forget) was not extended: {until:?}"
        );
    }
}

#[test]
fn cli_refuses_object_lock_on_a_store_without_it() {
    let w = World::new();
    let plain = w.m.bucket("nolock", false);
    let mut v = Vault::new();
    v.store = PathBuf::from(format!("s3://{plain}/x"));
    let w2 = World {
        m: w.m,
        v,
        bucket: plain.clone(),
        prefix: "x".into(),
    };
    let out = w2.run(["init", "--object-lock", "compliance:30"]).failed();
    assert!(
        out.stderr
            .contains("was not created with object lock enabled"),
        "{}",
        out.describe()
    );
    assert!(
        w2.m.keys(&plain, "x/").is_empty(),
        "a refused init left objects behind"
    );
    // lock extend on a store created without object lock says so.
    w2.run(["init"]).ok();
    let out = w2.run(["lock", "extend"]).failed();
    assert!(
        out.stderr.contains("has no object lock"),
        "{}",
        out.describe()
    );
}

/// prune must not delete a pack while an index file it could not delete (still locked)
/// names it: `check` would report the pack missing, and a snapshot deduplicating against
/// the index would reference blobs that are gone.
#[test]
fn prune_keeps_packs_that_a_locked_index_file_still_names() {
    let w = World::new();
    w.run(["init", "--object-lock", "governance:1"]).ok();
    // One snapshot writing two packs named by one index file: the first pack holds `a` and
    // the start of `b`, the second the rest of `b`.
    let data = w.v.path("data");
    random_file(&data.join("a"), 12 << 20);
    random_file(&data.join("b"), 12 << 20);
    w.run([
        OsStr::new("--threads"),
        OsStr::new("1"),
        OsStr::new("snapshot"),
        data.as_os_str(),
    ])
    .ok();
    let packs1 = w.keys("packs/");
    let index1 = w.keys("index/");
    let snaps1 = w.keys("snapshots/");
    assert_eq!(
        (packs1.len(), index1.len()),
        (2, 1),
        "{packs1:?} {index1:?}"
    );
    // The second snapshot keeps `a` and replaces `b`.
    random_file(&data.join("b"), 12 << 20);
    w.run([
        OsStr::new("--threads"),
        OsStr::new("1"),
        OsStr::new("snapshot"),
        data.as_os_str(),
    ])
    .ok();
    let all = w.m.keys(&w.bucket, &format!("{}/", w.prefix));
    w.m.set_retention(
        &w.bucket,
        &all,
        SystemTime::now() + Duration::from_secs(600),
    );
    w.run(["lock", "extend", "--keep-last", "1"]).ok();
    // The first index file is extended (it names the pack holding `a`); the pack holding
    // only the old `b` is not.
    let dropped: Vec<String> = packs1
        .iter()
        .filter(|k| w.until(k) < SystemTime::now() + Duration::from_secs(700))
        .cloned()
        .collect();
    assert_eq!(dropped.len(), 1, "{packs1:?}");
    assert!(w.until(index1.iter().next().unwrap()) > SystemTime::now() + DAY / 2);
    // The dropped snapshot and its pack run out of retention; forget, prune.
    let soon = SystemTime::now() + Duration::from_secs(2);
    w.m.set_retention(
        &w.bucket,
        &snaps1.iter().chain(&dropped).cloned().collect::<Vec<_>>(),
        soon,
    );
    sleep_until(soon + Duration::from_secs(1));
    w.run(["forget", "--keep-last", "1"]).ok();
    let out = w.run(["prune"]).ok();
    assert!(
        out.stdout.contains("still under retention and were kept"),
        "{}",
        out.describe()
    );
    // The old index file is still there (locked), so the pack it names must be too.
    assert!(w.keys("index/").is_superset(&index1));
    let check = w.run(["check"]);
    assert!(check.success(), "{}", check.describe());
}
