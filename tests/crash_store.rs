//! kill -9 at points spread over a prune and over a `repair index`: after each, check is
//! clean, every kept snapshot restores byte-exact, and the next run completes. (The bench
//! script `benches/crash_points.sh` runs a hundred points per command.)

mod common;

use common::{random_bytes, restored, Vault};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn fill(dir: &Path, seed: u64, files: usize, size: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("f{i:02}")),
            random_bytes(seed * 1000 + i as u64, size),
        )
        .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn set_pack_size(v: &Vault, bytes: u64) {
    // As the admin changes it: re-signed, so hosts keep trusting the config.
    v.edit_config(|c| c.pack_size = bytes as u32);
}

fn restore_exact(v: &Vault, id: &str, expected: &Path, src: &Path) {
    let out = v.dir.join(format!("restore-{id}"));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    v.restore(id, &out, &[]).restore_ok();
    let got = restored(&out, src);
    for e in fs::read_dir(expected).unwrap() {
        let e = e.unwrap();
        assert!(
            fs::read(e.path()).unwrap() == fs::read(got.join(e.file_name())).unwrap(),
            "snapshot {id}: {:?} differs",
            e.file_name()
        );
    }
    fs::remove_dir_all(&out).unwrap();
}

/// A store where prune has work: four snapshots of changing data, three forgotten.
fn world() -> (Vault, String, std::path::PathBuf, std::path::PathBuf) {
    let v = Vault::new();
    v.init();
    set_pack_size(&v, 1 << 20);
    let src = v.path("src");
    let mut last = String::new();
    for round in 0..4 {
        fill(&src, round + 10, 6, 400_000);
        v.ok(["snapshot", src.to_str().unwrap()]);
        last = v.snapshot_ids().last().unwrap().clone();
    }
    let expected = v.path("expected");
    fill(&expected, 13, 6, 400_000);
    for id in v.snapshot_ids() {
        if id != last {
            v.drop_snapshot(&id);
        }
    }
    (v, last, src, expected)
}

fn timed(v: &Vault, args: &[&str]) -> Duration {
    let t = Instant::now();
    v.ok(args);
    t.elapsed()
}

#[test]
fn killed_prune_at_many_points_leaves_a_healthy_store() {
    let (v, kept, src, expected) = world();
    let pristine = v.dir.join("pristine-store");
    copy_dir(&v.store, &pristine);
    let full = timed(&v, &["prune", "--repack-threshold", "0"]);
    let points = 5;
    for i in 0..points {
        copy_dir(&pristine, &v.store);
        let delay = full * i / points + Duration::from_millis(2);
        v.kill_after(["prune", "--repack-threshold", "0"], delay);
        v.ok(["check"]);
        restore_exact(&v, &kept, &expected, &src);
        v.ok(["prune", "--repack-threshold", "0"]);
        v.ok(["check", "--read-data"]);
        restore_exact(&v, &kept, &expected, &src);
    }
}

#[test]
fn killed_repair_index_at_many_points_leaves_a_usable_store() {
    let (v, kept, src, expected) = world();
    v.ok(["prune"]);
    let full = timed(&v, &["repair", "index", "--read-all-packs"]);
    let points = 5;
    for i in 0..points {
        let delay = full * i / points + Duration::from_millis(2);
        v.kill_after(["repair", "index", "--read-all-packs"], delay);
        v.ok(["check"]);
        restore_exact(&v, &kept, &expected, &src);
    }
    // From a damaged index: usable at every point, whole once a run completes.
    let index = v.store.join("index");
    for i in 0..4 {
        let name = fs::read_dir(&index)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut b = fs::read(&name).unwrap();
        b[20] ^= 1;
        fs::write(&name, b).unwrap();
        v.kill_after(["repair", "index"], full * i / 4 + Duration::from_millis(2));
        restore_exact(&v, &kept, &expected, &src);
        v.ok(["repair", "index"]);
        v.ok(["check", "--read-data"]);
    }
}
