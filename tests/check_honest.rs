//! check is honest: its verdict does not depend on the local cache (warm, stale or
//! fresh), plain check verifies every pack's header and trailer, `--read-data-subset`
//! reads a deterministic or random share, `--json` gives typed records, and leftovers in
//! the store's `tmp/` are listed with their size (and are not errors).

mod common;

use common::{random_bytes, run_command, Vault};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn set_pack_size(v: &Vault, bytes: u64) {
    // As the admin changes it: re-signed, so hosts keep trusting the config.
    v.edit_config(|c| c.pack_size = bytes as u32);
}

fn world() -> (Vault, PathBuf) {
    let v = Vault::new();
    v.init();
    set_pack_size(&v, 1 << 20);
    let src = v.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    fs::write(src.join("big"), random_bytes(5, 4 << 20)).unwrap();
    v.snapshot(&[&src]);
    fs::write(src.join("sub/more"), random_bytes(6, 2 << 20)).unwrap();
    v.snapshot(&[&src]);
    (v, src)
}

/// `check --json` with the given cache folder: (exit ok, set of (kind, object)).
fn verdict(v: &Vault, cache: Option<&str>) -> (bool, BTreeSet<(String, String)>) {
    let args = ["check", "--json"];
    let out = match cache {
        None => v.run(args),
        Some(host) => run_command(v.command_on_host(host, args)),
    };
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json prints one JSON object: {e}\n{}",
            out.describe()
        )
    });
    let problems = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            for field in ["kind", "object", "message", "snapshots", "paths"] {
                assert!(p.get(field).is_some(), "problem record has {field}: {p}");
            }
            (
                p["kind"].as_str().unwrap().to_string(),
                p["object"].as_str().unwrap().to_string(),
            )
        })
        .collect::<BTreeSet<_>>();
    assert_eq!(out.success(), problems.is_empty(), "{}", out.describe());
    (out.success(), problems)
}

#[test]
fn warm_and_fresh_caches_agree_after_an_index_file_is_removed() {
    let (v, _src) = world();
    v.ok(["check"]); // warms the cache
    let index = v.store.join("index");
    let victim = names(&index).into_iter().next().unwrap();
    fs::remove_file(index.join(&victim)).unwrap();
    let warm = verdict(&v, None);
    let fresh = verdict(&v, Some("fresh"));
    assert!(
        !warm.0,
        "the warm cache must not hide the removed index file"
    );
    assert_eq!(warm, fresh, "same verdict from a warm and a fresh cache");
}

#[test]
fn old_cache_agrees_with_a_fresh_one_after_another_hosts_prune() {
    let (v, src) = world();
    // Host b checks (its cache now knows the current index)...
    assert_eq!(verdict(&v, Some("b")), (true, BTreeSet::new()));
    // ...host a forgets the first snapshot and prunes (rewriting index, repacking)...
    fs::write(src.join("a.txt"), b"changed\n").unwrap();
    v.snapshot(&[&src]);
    let first = v.snapshot_ids()[0].clone();
    v.drop_snapshot(&first);
    v.ok(["prune", "--repack-threshold", "0"]);
    // ...and host b's old cache judges as a fresh one does, four times over.
    for _ in 0..4 {
        assert_eq!(verdict(&v, Some("b")), (true, BTreeSet::new()));
    }
    assert_eq!(verdict(&v, Some("fresh")), (true, BTreeSet::new()));
}

fn packs(v: &Vault) -> Vec<PathBuf> {
    let mut p: Vec<PathBuf> = common::files_by_size(&v.store.join("packs"))
        .into_iter()
        .map(|(p, _)| v.store.join("packs").join(p))
        .collect();
    p.sort();
    p
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x04;
    fs::write(path, b).unwrap();
}

#[test]
fn plain_check_verifies_every_pack_trailer() {
    let (v, _src) = world();
    for pack in packs(&v) {
        let len = fs::metadata(&pack).unwrap().len() as usize;
        flip(&pack, len - 10);
        let c = v.run(["check"]).failed();
        let name = pack.file_name().unwrap().to_str().unwrap();
        assert!(
            c.stdout.contains(name) && c.stdout.contains("trailer"),
            "plain check names the pack with the damaged trailer\n{}",
            c.describe()
        );
        flip(&pack, len - 10);
    }
    v.ok(["check"]);
}

#[test]
fn damaged_pack_header_is_reported_as_damaged() {
    let (v, _src) = world();
    let pack = packs(&v).into_iter().next().unwrap();
    // Inside the age header's stanza body (after magic, length and the age intro line).
    flip(&pack, 12 + 60);
    let c = v.run(["check"]).failed();
    let text = c.all().to_lowercase();
    assert!(
        (text.contains("damaged") || text.contains("corrupt"))
            && !text.contains("not written for this reader identity"),
        "a damaged header is damage, not a foreign identity\n{}",
        c.describe()
    );
    let out = v.path("out");
    let r = v.restore("latest", &out, &[]).failed();
    assert!(
        !r.stderr.contains("not written for this reader identity"),
        "{}",
        r.describe()
    );
}

#[test]
fn read_data_subsets_cover_the_store_once() {
    let (v, src) = world();
    let all = packs(&v);
    let victim = all
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let mid = fs::metadata(&victim).unwrap().len() as usize / 2;
    flip(&victim, mid);
    v.ok(["check"]); // a body flip is beyond plain check
    let m = 3;
    let mut failed = 0;
    let mut read = 0;
    for n in 1..=m {
        let out = v.run(["check", "--json", "--read-data-subset", &format!("{n}/{m}")]);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        read += report["packs_read"].as_u64().unwrap();
        if !out.success() {
            failed += 1;
            let big = format!("{}/big", src.display());
            let more = format!("{}/sub/more", src.display());
            let hit = report["problems"].as_array().unwrap().iter().any(|p| {
                p["kind"] == "blob_corrupt"
                    && p["paths"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x == big.as_str() || x == more.as_str())
            });
            assert!(
                hit,
                "the corrupt blob is named with its file\n{}",
                out.describe()
            );
        }
    }
    assert_eq!(
        read as usize,
        all.len(),
        "the slices 1/3..3/3 read every pack once"
    );
    assert_eq!(failed, 1, "exactly one slice holds the damaged pack");
    v.run(["check", "--read-data-subset", "100%"]).failed();
    for bad in ["0/3", "4/3", "0%", "150%", "half"] {
        v.run(["check", "--read-data-subset", bad]).failed();
    }
}

#[test]
fn leftovers_in_tmp_are_listed_and_removed_when_old() {
    let (v, src) = world();
    let tmp = v.store.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::write(tmp.join("packs-deadbeef"), vec![7u8; 300_000]).unwrap();
    fs::write(tmp.join("packs-0badf00d"), vec![7u8; 1000]).unwrap();
    // One left two hours ago, one just now (as a write in progress would be).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(tmp.join("packs-deadbeef"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let c = v.run(["check"]).ok();
    assert!(
        c.stdout.contains("2 partial writes") && c.stdout.contains("tmp/"),
        "check lists leftovers with their size, as no error\n{}",
        c.describe()
    );
    fs::write(src.join("new.txt"), b"new\n").unwrap();
    v.snapshot(&[&src]);
    assert!(
        !tmp.join("packs-deadbeef").exists(),
        "the old leftover is removed"
    );
    assert!(
        tmp.join("packs-0badf00d").exists(),
        "a recent one is kept (a write may be in progress)"
    );
}
