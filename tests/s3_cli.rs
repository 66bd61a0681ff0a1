//! The CLI end to end on an S3 store (Garage on 127.0.0.1): init, snapshot, incremental
//! snapshot, exact restore and `check --read-data`, also through a link that drops, stalls
//! and throttles requests; and what the user reads for bad credentials and a missing bucket.

mod common;
#[path = "garage/mod.rs"]
mod garage;

use common::compare;
use common::fixture;
use common::{restored, run_command, Out, Vault};
use garage::proxy::{FaultProxy, Settings};
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
