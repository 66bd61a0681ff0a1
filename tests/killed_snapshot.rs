//! A first snapshot killed (SIGKILL) half-way keeps what it uploaded and indexed: the next
//! run reads the files again but uploads only what is missing, the killed run's leftovers
//! (its lease, a partial write in `tmp/`) do not get in the way, and `check` is clean.
//!
//! The index-file time budget is made tiny through `VAULT_TEST_INDEX_INTERVAL_MS` (a knob
//! for tests), so the killed run indexes packs as they finish instead of every 30 s.

mod common;

use common::{random_bytes, restored, Vault};
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const FILES: usize = 24;
const FILE_SIZE: usize = 1 << 20;
const PACK_SIZE: u32 = 1 << 20;

fn fill(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..FILES {
        fs::write(
            dir.join(format!("f{i:02}")),
            random_bytes(7000 + i as u64, FILE_SIZE),
        )
        .unwrap();
    }
    // Old files, so the files cache may trust them.
    common::fixture::set_mtimes(dir);
}

fn count(dir: &Path) -> usize {
    common::walk(dir).iter().filter(|p| p.is_file()).count()
}

fn bytes(dir: &Path) -> u64 {
    common::walk(dir)
        .iter()
        .filter(|p| p.is_file())
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn world() -> Vault {
    let v = Vault::new();
    v.init().ok();
    // Packs of 1 MiB, so the tree fills two dozen of them (fewer than the 32 packs after
    // which index files are written whatever the time).
    v.edit_config(|c| c.pack_size = PACK_SIZE);
    v
}

#[test]
fn a_killed_first_snapshot_keeps_what_it_uploaded() {
    // From scratch, for comparison.
    let fresh = world();
    let src = fresh.path("src");
    fill(&src);
    fresh.snapshot(&[&src]).ok();
    let fresh_packs = count(&fresh.store.join("packs"));
    let fresh_bytes = bytes(&fresh.store.join("packs"));
    assert!(fresh_packs >= 16, "the tree fills {fresh_packs} packs");

    let v = world();
    let src = v.path("src");
    fill(&src);
    // The walk reads the tree first, then a command whose output is saved as `/zz-hold`;
    // it signals that the tree was read and waits, so the kill falls after the tree's
    // packs were uploaded and before the snapshot could finish.
    let ready = v.dir.join("ready");
    let mut cmd = v.command([
        std::ffi::OsStr::new("snapshot"),
        src.as_os_str(),
        "--stdin-from-command".as_ref(),
        "zz-hold".as_ref(),
        "--".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        format!("touch {}; exec sleep 600", ready.display()).as_ref(),
    ]);
    cmd.env("VAULT_TEST_INDEX_INTERVAL_MS", "0")
        .env("VAULT_THREADS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start vault");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the snapshot never read the tree"
        );
        assert!(child.try_wait().unwrap().is_none(), "vault stopped early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the workers finish what they were packing.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        v.snapshot_ids().is_empty(),
        "the killed run saved no snapshot"
    );
    let killed_packs = count(&v.store.join("packs"));
    let killed_bytes = bytes(&v.store.join("packs"));
    let indexed = count(&v.store.join("index"));
    assert!(indexed > 0, "the killed run wrote no index file");
    // What a kill during a write leaves: a partial object in tmp/.
    fs::create_dir_all(v.store.join("tmp")).unwrap();
    fs::write(v.store.join("tmp").join("packs-0123456789ab"), b"partial").unwrap();

    let out = v.run(["snapshot", src.to_str().unwrap()]).ok();
    let new_packs = count(&v.store.join("packs")) - killed_packs;
    let new_bytes = bytes(&v.store.join("packs")) - killed_bytes;
    eprintln!(
        "from scratch {fresh_packs} packs ({fresh_bytes} bytes); killed run {killed_packs} packs, \
         {indexed} index files; rerun {new_packs} new packs ({new_bytes} bytes)"
    );
    // The rerun uploads only the packs the killed run had not indexed: what the workers
    // still held and what finished after the last index file, a few packs at most.
    assert!(
        new_packs * 3 <= fresh_packs && new_bytes * 3 <= fresh_bytes,
        "the rerun uploaded {new_packs} packs ({new_bytes} bytes), from scratch takes \
         {fresh_packs} ({fresh_bytes} bytes); the killed run left {killed_packs} packs and \
         {indexed} index files\n{}",
        out.describe()
    );

    // Clean: the killed run's unindexed packs and leftovers are not damage.
    v.run(["check", "--read-data"]).ok();
    let ids = v.snapshot_ids();
    assert_eq!(ids.len(), 1);
    let to = v.path("restored");
    v.restore(&ids[0], &to, &[]).restore_ok();
    common::compare::assert_same(&src, &restored(&to, &src));
}
