//! The CLI end to end on an S3 store (Garage on 127.0.0.1): init, snapshot, incremental
//! snapshot, exact restore and `check --read-data`, also through a link that drops, stalls
//! and throttles requests; what the user reads for bad credentials and a missing bucket; and
//! `vault copy` of a local store to S3 (one PUT per pack, restore from the copy, a faulty link).

mod common;
#[path = "garage/mod.rs"]
mod garage;

use common::compare;
use common::fixture;
use common::{restored, run_command, Out, Vault};
use garage::proxy::{FaultKind, FaultProxy, Settings};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A world whose store is a fresh prefix of a fresh bucket.
fn s3_world(base: &str) -> (Vault, String) {
    let g = garage::shared();
    let bucket = g.bucket(base);
    let mut v = Vault::new();
    v.store = PathBuf::from(format!("s3://{bucket}/{}", garage::unique("host")));
    (v, bucket)
}

/// Runs the CLI with S3 settings in the environment, the way an operator would.
fn run_s3<I, S>(v: &Vault, endpoint: &str, secret: &str, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let g = garage::shared();
    let mut cmd = v.command(args);
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ENDPOINT_URL_S3",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", garage::REGION)
        .env("AWS_ACCESS_KEY_ID", &g.key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    run_command(cmd)
}

fn run<I, S>(v: &Vault, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let g = garage::shared();
    run_s3(v, &g.endpoint, &g.secret, args)
}

fn snapshot_and_restore_exactly(v: &Vault, via: &dyn Fn(&[&OsStr]) -> Out) {
    let f = fixture::build(&v.dir.join("fixture"));
    let root = f.root.as_os_str();
    via(&["init".as_ref()]).ok();
    via(&["snapshot".as_ref(), root]).ok();
    // Change one file and add one: the second snapshot is incremental.
    std::fs::write(f.path(fixture::SMALL), b"changed between snapshots\n").unwrap();
    std::fs::write(f.path("files/new.txt"), b"new in the second snapshot\n").unwrap();
    fixture::set_mtimes(&f.root);
    via(&["snapshot".as_ref(), root]).ok();
    let listed = via(&["snapshots".as_ref(), "--json".as_ref()]).ok();
    assert_eq!(
        common::snapshot_ids(&listed).len(),
        2,
        "{}",
        listed.describe()
    );

    let out = v.dir.join("out");
    via(&[
        "restore".as_ref(),
        "latest".as_ref(),
        "--to".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    let diffs = compare::diff_scans(
        &compare::scan(&f.root),
        &compare::scan(&restored(&out, &f.root)),
    );
    assert!(diffs.is_empty(), "restored tree differs: {diffs:?}");
    via(&["check".as_ref(), "--read-data".as_ref()]).ok();
}

#[test]
fn snapshot_restore_and_check_on_s3() {
    let (v, _) = s3_world("cli");
    snapshot_and_restore_exactly(&v, &|args| run(&v, args));
}

#[test]
fn snapshot_restore_and_check_on_s3_through_a_faulty_link() {
    let g = garage::shared();
    let proxy = FaultProxy::start(
        g.s3_addr,
        Settings {
            fault_rate: 0.1,
            stall: Duration::from_millis(300),
            seed: 7,
            ..Settings::default()
        },
    );
    let (v, _) = s3_world("cli-faults");
    let endpoint = proxy.endpoint();
    snapshot_and_restore_exactly(&v, &|args| run_s3(&v, &endpoint, &g.secret, args));
    eprintln!(
        "{} requests, {} faults injected",
        proxy.requests().len(),
        proxy.faults()
    );
    assert!(proxy.faults() > 0, "the proxy injected faults");
}

#[test]
fn wrong_secret_is_reported_at_once_with_the_bucket() {
    let g = garage::shared();
    let (v, bucket) = s3_world("cli-secret");
    run(&v, ["init"]).ok();
    let start = Instant::now();
    let out = run_s3(&v, &g.endpoint, &"0".repeat(64), ["snapshots"]).failed();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let err = out.stderr.clone();
    assert!(
        err.contains(&bucket) && err.contains("secret access key"),
        "{}",
        out.describe()
    );
    assert!(!err.contains(&g.secret), "the secret is never printed");
}

#[test]
fn missing_bucket_is_named() {
    let name = garage::unique("no-such-bucket");
    let mut v = Vault::new();
    v.store = PathBuf::from(format!("s3://{name}/host"));
    let out = run(&v, ["init"]).failed();
    assert!(
        out.stderr.contains(&name) && out.stderr.contains("does not exist"),
        "{}",
        out.describe()
    );
}

/// A local store with two snapshots of the fixture plus `extra` bytes of random data.
fn local_store_with_snapshots(extra: usize) -> (Vault, fixture::Fixture) {
    let v = Vault::new();
    v.init();
    let f = fixture::build(&v.dir.join("fixture"));
    v.snapshot(&[&f.root]);
    std::fs::write(
        f.path(fixture::SMALL),
        b"changed before the second snapshot\n",
    )
    .unwrap();
    if extra > 0 {
        std::fs::write(f.path("files/extra.bin"), common::random_bytes(99, extra)).unwrap();
    }
    fixture::set_mtimes(&f.root);
    v.snapshot(&[&f.root]);
    (v, f)
}

fn copy_to(v: &Vault, to: &str, endpoint: &str) -> Out {
    let g = garage::shared();
    run_s3(
        v,
        endpoint,
        &g.secret,
        [
            OsStr::new("copy"),
            OsStr::new("--from"),
            v.store.as_os_str(),
            OsStr::new("--to"),
            OsStr::new(to),
        ],
    )
}

/// Restores the latest snapshot of the S3 store `s3` and compares it with the fixture;
/// then `check --read-data`.
fn restore_from_s3_matches(s3: &str, f: &fixture::Fixture, passphrase: &str) {
    let mut d = Vault::new();
    d.store = PathBuf::from(s3);
    d.passphrase = passphrase.to_string();
    let out = d.dir.join("out");
    run(
        &d,
        [
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--to"),
            out.as_os_str(),
        ],
    )
    .ok();
    let diffs = compare::diff_scans(
        &compare::scan(&f.root),
        &compare::scan(&restored(&out, &f.root)),
    );
    assert!(diffs.is_empty(), "restored tree differs: {diffs:?}");
    let checked = run(&d, ["check", "--read-data"]).ok();
    assert!(
        checked.stdout.contains("no errors"),
        "{}",
        checked.describe()
    );
}

fn local_objects(store: &std::path::Path, kind: &str) -> usize {
    common::walk(&store.join(kind))
        .iter()
        .filter(|p| p.is_file())
        .count()
}

#[test]
fn copy_local_store_to_s3_then_restore_from_s3() {
    let g = garage::shared();
    // Enough new data for packs of full size: each must go up as one PUT.
    // (Every worker fills its own pack, so this is several packs per worker.)
    let (v, f) = local_store_with_snapshots(72 << 20);
    let packs = local_objects(&v.store, "packs");
    let bucket = g.bucket("copy");
    let s3 = format!("s3://{bucket}/offsite");
    let proxy = FaultProxy::start(g.s3_addr, Settings::default());
    let out = copy_to(&v, &s3, &proxy.endpoint()).ok();
    assert!(out.stdout.contains("created a copy"), "{}", out.describe());
    let requests = proxy.requests();
    let pack_puts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("/packs/"))
        .count();
    let multipart = requests
        .iter()
        .filter(|r| r.target.contains("uploadId") || r.target.contains("?uploads"))
        .count();
    let big = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.body_len > 16 << 20)
        .count();
    eprintln!(
        "{} requests for {packs} packs: {pack_puts} pack PUTs ({big} over 16 MiB), {multipart} multipart",
        requests.len()
    );
    assert_eq!((pack_puts, multipart), (packs, 0), "one PUT per pack");
    assert!(big >= 2, "full-size packs were sent ({big})");
    drop(proxy);

    restore_from_s3_matches(&s3, &f, &v.passphrase);

    // Incremental: nothing new, nothing sent.
    let again = copy_to(&v, &s3, &g.endpoint).ok();
    assert!(
        again.stdout.starts_with("copied 0 objects"),
        "{}",
        again.describe()
    );
}

#[test]
fn copy_to_s3_through_a_faulty_link_completes_and_checks_clean() {
    let g = garage::shared();
    let (v, f) = local_store_with_snapshots(20 << 20);
    let bucket = g.bucket("copy-faults");
    let s3 = format!("s3://{bucket}/offsite");
    let proxy = FaultProxy::start(
        g.s3_addr,
        Settings {
            fault_rate: 0.15,
            kinds: vec![FaultKind::Reset, FaultKind::SlowDown, FaultKind::Stall],
            stall: Duration::from_millis(200),
            seed: 11,
            ..Settings::default()
        },
    );
    let out = copy_to(&v, &s3, &proxy.endpoint()).ok();
    eprintln!(
        "{} requests, {} faults injected\n{}",
        proxy.requests().len(),
        proxy.faults(),
        out.stdout
    );
    assert!(proxy.faults() > 0, "the proxy injected faults");
    drop(proxy);
    restore_from_s3_matches(&s3, &f, &v.passphrase);
    let again = copy_to(&v, &s3, &g.endpoint).ok();
    assert!(
        again.stdout.starts_with("copied 0 objects"),
        "{}",
        again.describe()
    );
}
