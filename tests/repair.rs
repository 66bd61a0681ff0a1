//! A damaged or missing index file degrades, it does not block: restore skips it with a
//! warning and finds the blobs in the packs; `vault repair index` rebuilds the index from
//! the packs (a writer key suffices); `vault repair snapshots` writes snapshots without
//! the files whose data is gone.

mod common;

use common::{random_bytes, restored, run_command, Vault};
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

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x10;
    fs::write(path, b).unwrap();
}

/// A store with two snapshots (so several index files) of a small varied tree.
fn world() -> (Vault, PathBuf) {
    let v = Vault::new();
    v.init();
    set_pack_size(&v, 1 << 20);
    let src = v.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    fs::write(src.join("big"), random_bytes(5, 3 << 20)).unwrap();
    v.snapshot(&[&src]);
    fs::write(src.join("sub/b.txt"), b"beta\n").unwrap();
    fs::write(src.join("more"), random_bytes(6, 2 << 20)).unwrap();
    v.snapshot(&[&src]);
    (v, src)
}

fn restore_exact(v: &Vault, snap: &str, src: &Path, name: &str) -> common::Out {
    let out = v.path(name);
    let r = v.restore(snap, &out, &[]).restore_ok();
    common::compare::assert_same(src, &restored(&out, src));
    r
}

#[test]
fn damaged_index_file_does_not_block_restore() {
    let (v, src) = world();
    let index = v.store.join("index");
    let victim = names(&index).into_iter().next().unwrap();
    flip(&index.join(&victim), 40);
    for fresh in [true, false] {
        if fresh {
            fs::remove_dir_all(&v.cache).unwrap();
        }
        let r = restore_exact(
            &v,
            "latest",
            &src,
            if fresh { "out-fresh" } else { "out-warm" },
        );
        if fresh {
            assert!(
                r.stderr.contains("warning") && r.stderr.contains(&victim),
                "restore warns, naming the damaged index file\n{}",
                r.describe()
            );
        }
    }
    let c = v.run(["check"]).failed();
    assert!(
        c.stdout.contains(&victim),
        "check names the damaged index file\n{}",
        c.describe()
    );

    let rep = v.ok(["repair", "index"]);
    assert!(rep.contains("wrote"), "{rep}");
    assert!(
        !index.join(&victim).exists(),
        "the damaged file is replaced"
    );
    v.ok(["check", "--read-data"]);
    let r = restore_exact(&v, "latest", &src, "out-repaired");
    assert!(!r.stderr.contains(&victim), "{}", r.describe());
    let again = v.ok(["repair", "index"]);
    assert!(again.contains("nothing to repair"), "{again}");
}

#[test]
fn repair_index_rebuilds_a_lost_index_from_the_packs_with_a_writer_key() {
    let (v, src) = world();
    let index = v.store.join("index");
    for n in names(&index) {
        fs::remove_file(index.join(n)).unwrap();
    }
    v.run(["check"]).failed();
    // Only the writer key: no passphrase, no identity.
    let mut cmd = v.command(["repair", "index"]);
    cmd.env_remove("VAULT_PASSPHRASE");
    let out = run_command(cmd).ok();
    assert!(
        out.stdout.contains("read from their trailers"),
        "{}",
        out.describe()
    );
    v.ok(["check", "--read-data"]);
    for id in v.snapshot_ids() {
        let out = v.path(&format!("out-{id}"));
        v.restore(&id, &out, &[]).restore_ok();
    }
    restore_exact(&v, "latest", &src, "out-latest");
    // Ignoring the (now sound) index gives the same store.
    v.ok(["repair", "index", "--read-all-packs"]);
    v.ok(["check", "--read-data"]);
    v.ok(["prune"]);
    restore_exact(&v, "latest", &src, "out-after-prune");
}

/// Packs in the order they were written (oldest first).
fn packs_by_age(store: &Path) -> Vec<(PathBuf, u64)> {
    let mut p = common::files_by_size(&store.join("packs"));
    p.sort_by_key(|(path, _)| {
        fs::metadata(store.join("packs").join(path))
            .unwrap()
            .modified()
            .unwrap()
    });
    p
}

#[test]
fn repair_snapshots_writes_snapshots_without_the_lost_files() {
    let v = Vault::new();
    v.init();
    set_pack_size(&v, 1 << 20);
    let src = v.path("src");
    fs::write(src.join("keep.txt"), b"kept\n").unwrap();
    v.snapshot(&[&src]);
    let before: Vec<PathBuf> = packs_by_age(&v.store).into_iter().map(|(p, _)| p).collect();
    fs::write(src.join("big"), random_bytes(9, 8 << 20)).unwrap();
    v.ok(["--threads", "1", "snapshot", src.to_str().unwrap()]);
    // The first pack the second snapshot wrote holds only chunks of `big` (one worker
    // fills packs in order; the trees come last).
    let lost_pack = packs_by_age(&v.store)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| !before.contains(p))
        .unwrap();
    fs::rename(
        v.store.join("packs").join(&lost_pack),
        v.dir.join("lost-pack"),
    )
    .unwrap();

    let json = v.run(["check", "--json"]).failed();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    let big = format!("{}/big", src.display());
    for p in problems {
        assert_eq!(p["kind"], "pack_missing", "{p}");
        assert!(
            p["paths"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x == big.as_str()),
            "{p}"
        );
        assert_eq!(p["snapshots"].as_array().unwrap().len(), 1, "{p}");
    }

    let dry = v.ok(["repair", "snapshots", "--dry-run"]);
    assert!(dry.contains(&big) && dry.contains("dry run"), "{dry}");
    assert_eq!(v.snapshot_ids().len(), 2, "a dry run writes nothing");
    let out = v.ok(["repair", "snapshots"]);
    assert!(out.contains(&big) && out.contains("lost 1 paths"), "{out}");
    let list = v.snapshots_json();
    assert_eq!(list.len(), 3, "the original is kept: {list:?}");
    let repaired: Vec<&serde_json::Value> = list
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "repaired")
        })
        .collect();
    assert_eq!(repaired.len(), 1);
    let rid = repaired[0]["id"].as_str().unwrap();
    let to = v.path("out");
    v.restore(rid, &to, &[]).restore_ok();
    let got = restored(&to, &src);
    assert_eq!(fs::read(got.join("keep.txt")).unwrap(), b"kept\n");
    assert!(!got.join("big").exists(), "the lost file is left out");

    // Prune still refuses while the damaged original is kept...
    v.run(["prune"]).failed();
    // ...and goes ahead once it is forgotten.
    let out = v.ok(["repair", "snapshots", "--forget-originals"]);
    assert!(out.contains("original was removed"), "{out}");
    v.ok(["prune"]);
    v.ok(["check", "--read-data"]);
    let last = v.ok(["repair", "snapshots"]);
    assert!(last.contains("0 of 3 snapshots lost data"), "{last}");
}
