//! Prune never deletes what a snapshot needs: with an index file gone (deleted, or moved
//! away by hand), the blobs it named look unreferenced, and a prune that trusted the
//! index it loaded would delete the packs a kept snapshot needs. Prune must prove every
//! used blob is located first, and otherwise stop before changing anything.

mod common;

use common::{random_bytes, restored, Vault};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Every file below `dir`, as relative names with sizes (packs live in `packs/XX/`).
fn objects(dir: &Path) -> BTreeSet<(PathBuf, u64)> {
    common::files_by_size(dir).into_iter().collect()
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Makes the store close packs at `bytes` (the config is plaintext JSON).
fn set_pack_size(v: &Vault, bytes: u64) {
    // As the admin changes it: re-signed, so hosts keep trusting the config.
    v.edit_config(|c| c.pack_size = bytes as u32);
}

/// Parses "(X of Y freed)" from prune's summary into byte counts (1 decimal, binary units).
fn freed(summary: &str) -> (f64, f64) {
    let at = summary
        .find(" freed)")
        .expect("summary says what was freed");
    let open = summary[..at].rfind('(').unwrap();
    let (a, b) = summary[open + 1..at].split_once(" of ").unwrap();
    let parse = |s: &str| {
        let (n, unit) = s.split_once(' ').unwrap();
        let n: f64 = n.parse().unwrap();
        n * match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            u => panic!("unit {u}"),
        }
    };
    (parse(a), parse(b))
}

fn assert_refused(out: common::Out, what: &str) {
    let out = out.failed();
    assert!(
        out.stderr.contains("repair index") && out.stderr.contains("before changing anything"),
        "{what}: prune should refuse, say nothing changed and name `vault repair index`\n{}",
        out.describe()
    );
}

#[test]
fn prune_refuses_when_an_index_file_is_missing() {
    let v = Vault::new();
    v.init();
    set_pack_size(&v, 1 << 20);
    let src = v.path("src");
    fs::write(src.join("big"), random_bytes(7, 50 << 20)).unwrap();
    v.snapshot(&[&src]);
    let index = v.store.join("index");
    let files = names(&index);
    let packs_before = objects(&v.store.join("packs"));
    assert!(
        packs_before.len() > 40,
        "1 MiB packs: {}",
        packs_before.len()
    );
    // Move the index file naming the most packs away.
    let victim = files
        .iter()
        .max_by_key(|n| fs::metadata(index.join(n)).unwrap().len())
        .unwrap()
        .clone();
    let aside = v.path("aside").join(&victim);
    fs::rename(index.join(&victim), &aside).unwrap();

    v.run(["check"]).failed();
    assert_refused(v.run(["prune"]), "prune with an index file missing");
    assert_eq!(
        objects(&v.store.join("packs")),
        packs_before,
        "every pack is still there"
    );
    // Also with a cache made afresh (no memory of the moved file).
    fs::remove_dir_all(&v.cache).unwrap();
    assert_refused(v.run(["prune"]), "prune with a fresh cache");
    assert_eq!(objects(&v.store.join("packs")), packs_before);

    // Putting the file back makes everything whole again.
    fs::rename(&aside, index.join(&victim)).unwrap();
    let summary = v.ok(["prune"]);
    let (f, of) = freed(&summary);
    assert!(f <= of, "prune's summary adds up: {summary}");
    v.ok(["check", "--read-data"]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    assert!(
        fs::read(restored(&out, &src).join("big")).unwrap() == random_bytes(7, 50 << 20),
        "the 50 MiB file restores byte-exact"
    );
}

#[test]
fn forget_then_prune_refuses_when_the_first_snapshots_index_is_moved_away() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    let big = random_bytes(11, 60 << 20);
    fs::write(src.join("big"), &big).unwrap();
    v.snapshot(&[&src]);
    let index = v.store.join("index");
    let first_index = names(&index);
    fs::write(src.join("small"), b"a small file\n").unwrap();
    v.snapshot(&[&src]);
    let packs_before = objects(&v.store.join("packs"));
    let aside = v.path("aside");
    for n in &first_index {
        fs::rename(index.join(n), aside.join(n)).unwrap();
    }
    // forget --prune: the forget happens, the prune refuses.
    assert_refused(
        v.run(["forget", "--keep-last", "1", "--prune"]),
        "forget --keep-last 1 --prune with the first snapshot's index moved away",
    );
    assert_eq!(v.snapshot_ids().len(), 1, "forget itself went ahead");
    assert_refused(v.run(["prune"]), "prune with the index moved away");
    assert_eq!(
        objects(&v.store.join("packs")),
        packs_before,
        "every pack is still there"
    );

    for n in &first_index {
        fs::rename(aside.join(n), index.join(n)).unwrap();
    }
    let dry = v.ok(["prune", "--dry-run"]);
    let (f, of) = freed(&dry);
    assert!(f <= of, "dry run summary adds up: {dry}");
    let summary = v.ok(["prune"]);
    let (f, of) = freed(&summary);
    assert!(f <= of, "prune's summary adds up: {summary}");
    v.ok(["check", "--read-data"]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    let got = restored(&out, &src);
    assert!(
        fs::read(got.join("big")).unwrap() == big,
        "big restores byte-exact"
    );
    assert_eq!(fs::read(got.join("small")).unwrap(), b"a small file\n");
}

#[test]
fn prune_refuses_when_an_index_file_is_damaged() {
    let v = Vault::new();
    v.init();
    set_pack_size(&v, 1 << 20);
    let src = v.path("src");
    fs::write(src.join("data"), random_bytes(3, 6 << 20)).unwrap();
    v.snapshot(&[&src]);
    let index = v.store.join("index");
    let name = names(&index).into_iter().next().unwrap();
    let mut bytes = fs::read(index.join(&name)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(index.join(&name), bytes).unwrap();
    fs::remove_dir_all(&v.cache).unwrap();
    let packs_before = objects(&v.store.join("packs"));
    let out = v.run(["prune"]).failed();
    assert!(
        out.stderr.contains(&name) && out.stderr.contains("repair index"),
        "prune names the damaged index file and what to run\n{}",
        out.describe()
    );
    assert_eq!(objects(&v.store.join("packs")), packs_before);
}
