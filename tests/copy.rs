//! `vault copy` between local folders: a whole store and chosen snapshots, incremental
//! re-runs, a copy killed part way and resumed, a damaged source pack, and a destination
//! that holds another store.

mod common;

use common::compare;
use common::fixture;
use common::{restored, Out, Vault};
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A world whose store is `store` (another world's folder, typically a copy).
fn world_at(store: &Path) -> Vault {
    let mut w = Vault::new();
    w.store = store.to_path_buf();
    w
}

fn copy_args(from: &Path, to: &Path, snapshots: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "copy".into(),
        "--from".into(),
        from.into(),
        "--to".into(),
        to.into(),
    ];
    args.extend(snapshots.iter().map(OsString::from));
    args
}

fn copy(v: &Vault, to: &Path, snapshots: &[&str]) -> Out {
    v.run(copy_args(&v.store, to, snapshots))
}

/// The `N` of the "copied N objects" line.
fn copied_objects(out: &Out) -> u64 {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("copied ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `copied N objects` line\n{}", out.describe()))
}

/// Names of the objects of one kind in a local store.
fn objects(store: &Path, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = common::walk(&store.join(kind))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every pack, index file and snapshot record of a local store.
fn data_objects(store: &Path) -> Vec<String> {
    ["packs", "index", "snapshots"]
        .iter()
        .flat_map(|k| {
            objects(store, k)
                .into_iter()
                .map(move |n| format!("{k}/{n}"))
        })
        .collect()
}

fn check_clean(w: &Vault) {
    let out = w.run(["check", "--read-data"]).ok();
    assert!(out.stdout.contains("no errors"), "{}", out.describe());
}

/// Makes the store close packs at 1 MiB instead of 16, so a few MiB make many packs.
/// Only for tests: the config is plaintext and read at every snapshot.
fn small_packs(v: &Vault) {
    v.edit_config(|c| c.pack_size = 1 << 20);
}

fn write_random_files(dir: &Path, count: u64, size: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        std::fs::write(
            dir.join(format!("f{i:03}.bin")),
            common::random_bytes(seed * 1000 + i, size),
        )
        .unwrap();
    }
}

#[test]
fn copy_restores_and_ships_only_what_is_new() {
    let v = Vault::new();
    v.init();
    let f = fixture::build(&v.dir.join("fixture"));
    let before = std::fs::read(f.path(fixture::SMALL)).unwrap();
    v.snapshot(&[&f.root]);
    std::fs::write(f.path(fixture::SMALL), b"changed between snapshots\n").unwrap();
    std::fs::write(f.path("files/new.txt"), b"new in the second snapshot\n").unwrap();
    fixture::set_mtimes(&f.root);
    v.snapshot(&[&f.root]);
    let ids = v.snapshot_ids();
    assert_eq!(ids.len(), 2);

    let dst = v.dir.join("offsite");
    let out = copy(&v, &dst, &[]).ok();
    assert!(out.stdout.contains("created a copy"), "{}", out.describe());
    // Every data object, the three key objects (reader, id key, host registry) and the config.
    assert_eq!(
        copied_objects(&out),
        data_objects(&v.store).len() as u64 + 4,
        "{}",
        out.describe()
    );
    assert_eq!(data_objects(&dst), data_objects(&v.store));
    assert_eq!(
        std::fs::read(dst.join("config")).unwrap(),
        std::fs::read(v.store.join("config")).unwrap()
    );

    // Both snapshots restore from the copy, with the passphrase of the original.
    let d = world_at(&dst);
    assert_eq!(d.snapshot_ids(), ids);
    let out_dir = d.dir.join("latest");
    d.restore("latest", &out_dir, &[]).ok();
    let diffs = compare::diff_scans(
        &compare::scan(&f.root),
        &compare::scan(&restored(&out_dir, &f.root)),
    );
    assert!(diffs.is_empty(), "restored tree differs: {diffs:?}");
    let first = d.dir.join("first");
    d.restore(&ids[0], &first, &[]).ok();
    assert_eq!(
        std::fs::read(restored(&first, &f.path(fixture::SMALL))).unwrap(),
        before
    );
    check_clean(&d);

    // Nothing new: nothing copied.
    let out = copy(&v, &dst, &[]).ok();
    assert_eq!(copied_objects(&out), 0, "{}", out.describe());
    assert!(out.stdout.contains("already there"), "{}", out.describe());

    // A new snapshot: exactly its new objects are copied.
    let old = data_objects(&v.store);
    write_random_files(&f.root.join("more"), 3, 300_000, 7);
    v.snapshot(&[&f.root]);
    let new: Vec<String> = data_objects(&v.store)
        .into_iter()
        .filter(|o| !old.contains(o))
        .collect();
    assert!(
        new.iter().any(|o| o.starts_with("packs/"))
            && new.iter().any(|o| o.starts_with("snapshots/")),
        "{new:?}"
    );
    let out = copy(&v, &dst, &[]).ok();
    assert_eq!(
        copied_objects(&out),
        new.len() as u64,
        "new objects {new:?}\n{}",
        out.describe()
    );
    assert_eq!(data_objects(&dst), data_objects(&v.store));
    assert_eq!(d.snapshot_ids().len(), 3);
    check_clean(&d);
}

#[test]
fn killed_copy_resumes_and_leaves_a_healthy_copy() {
    let v = Vault::new();
    v.init();
    small_packs(&v);
    let src = v.dir.join("src");
    write_random_files(&src, 40, 1_200_000, 1);
    v.snapshot(&[&src]);
    let src_packs = objects(&v.store, "packs");
    assert!(src_packs.len() >= 30, "{} packs", src_packs.len());

    let dst = v.dir.join("offsite");
    let mut cmd = v.command(copy_args(&v.store, &dst, &[]));
    cmd.args(["--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the copy finished ({status}) before it could be killed");
        }
        if dst.join("packs").is_dir() && objects(&dst, "packs").len() >= 5 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the copy wrote no packs"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let copied = objects(&dst, "packs").len();
    assert!(
        copied < src_packs.len(),
        "killed part way: {copied} of {} packs",
        src_packs.len()
    );
    assert!(
        objects(&dst, "snapshots").is_empty(),
        "no snapshot before all of its data"
    );

    // What the killed copy left is a healthy (if empty-looking) store.
    let d = world_at(&dst);
    check_clean(&d);

    let out = copy(&v, &dst, &[]).ok();
    let left = data_objects(&v.store).len() - copied;
    assert_eq!(copied_objects(&out), left as u64, "{}", out.describe());
    assert_eq!(data_objects(&dst), data_objects(&v.store));
    check_clean(&d);
    let out_dir = d.dir.join("out");
    d.restore("latest", &out_dir, &[]).ok();
    assert!(compare::diffs(&src, &restored(&out_dir, &src)).is_empty());
}

#[test]
fn a_corrupt_source_pack_is_named_and_not_copied() {
    let v = Vault::new();
    v.init();
    let a = v.dir.join("a");
    write_random_files(&a, 3, 400_000, 2);
    v.snapshot(&[&a]);
    let first_packs = objects(&v.store, "packs");
    write_random_files(&a.join("later"), 3, 400_000, 3);
    v.snapshot(&[&a]);
    let ids = v.snapshot_ids();
    let new_packs: Vec<String> = objects(&v.store, "packs")
        .into_iter()
        .filter(|p| !first_packs.contains(p))
        .collect();
    let bad = &new_packs[0];
    let bad_path = v.store.join("packs").join(&bad[..2]).join(bad);
    let mut bytes = std::fs::read(&bad_path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&bad_path, bytes).unwrap();

    let dst = v.dir.join("offsite");
    let out = copy(&v, &dst, &[]).failed();
    assert!(
        out.stderr.contains(bad.as_str()) && out.stderr.contains("corrupt"),
        "{}",
        out.describe()
    );
    assert!(
        !dst.join("packs").join(&bad[..2]).join(bad).exists(),
        "the damaged pack was not copied"
    );
    assert!(objects(&dst, "snapshots").is_empty(), "{}", out.describe());
    let d = world_at(&dst);
    check_clean(&d);

    // Named snapshots: the first needs nothing damaged and is copied; the second is not.
    let out = copy(&v, &dst, &[&ids[1]]).failed();
    assert!(out.stderr.contains(bad.as_str()), "{}", out.describe());
    assert!(objects(&dst, "snapshots").is_empty());
    let out = copy(&v, &dst, &[&ids[0][..8]]).ok();
    assert!(
        out.stdout
            .contains(&format!("copied snapshot {}", &ids[0][..8])),
        "{}",
        out.describe()
    );
    assert_eq!(d.snapshot_ids(), vec![ids[0].clone()]);
    check_clean(&d);
    let out_dir = d.dir.join("out");
    d.restore(&ids[0], &out_dir, &[]).ok();
    let got = restored(&out_dir, &a);
    for i in 0..3 {
        let name = format!("f{i:03}.bin");
        assert_eq!(
            std::fs::read(got.join(&name)).unwrap(),
            std::fs::read(a.join(&name)).unwrap()
        );
    }
    assert!(!got.join("later").exists());
}

#[test]
fn chosen_snapshots_bring_only_what_they_need() {
    let v = Vault::new();
    v.init();
    let a = v.dir.join("a");
    let b = v.dir.join("b");
    write_random_files(&a, 4, 500_000, 4);
    write_random_files(&b, 4, 500_000, 5);
    v.snapshot(&[&a]);
    v.snapshot(&[&b]);
    let ids = v.snapshot_ids();

    let dst = v.dir.join("offsite");
    let out = copy(&v, &dst, &[&ids[0]]).ok();
    assert!(out.stdout.contains("created a copy"), "{}", out.describe());
    let d = world_at(&dst);
    assert_eq!(d.snapshot_ids(), vec![ids[0].clone()]);
    assert!(objects(&dst, "packs").len() < objects(&v.store, "packs").len());
    assert_eq!(
        objects(&dst, "index").len(),
        1,
        "one new index file for the packs copied"
    );
    check_clean(&d);
    let out_dir = d.dir.join("out");
    d.restore(&ids[0], &out_dir, &[]).ok();
    assert!(compare::diffs(&a, &restored(&out_dir, &a)).is_empty());

    // Again: nothing to do. Then `latest`, then the whole store.
    assert_eq!(copied_objects(&copy(&v, &dst, &[&ids[0]]).ok()), 0);
    let out = copy(&v, &dst, &["latest"]).ok();
    assert!(
        out.stdout
            .contains(&format!("copied snapshot {}", &ids[1][..8])),
        "{}",
        out.describe()
    );
    assert_eq!(d.snapshot_ids(), ids);
    check_clean(&d);
    let out = copy(&v, &dst, &[]).ok();
    assert_eq!(
        objects(&dst, "packs"),
        objects(&v.store, "packs"),
        "{}",
        out.describe()
    );
    assert_eq!(objects(&dst, "snapshots"), objects(&v.store, "snapshots"));
    check_clean(&d);
}

#[test]
fn a_writer_key_alone_ships_the_whole_store() {
    let v = Vault::new();
    v.init();
    let a = v.dir.join("a");
    write_random_files(&a, 2, 300_000, 6);
    v.snapshot(&[&a]);
    let dst = v.dir.join("offsite");
    // No passphrase, no identity: only the writer key.
    let out = v
        .run_with_passphrase("", copy_args(&v.store, &dst, &[]))
        .ok();
    assert!(copied_objects(&out) >= 3, "{}", out.describe());
    assert_eq!(data_objects(&dst), data_objects(&v.store));
    check_clean(&world_at(&dst));
    // Choosing snapshots needs to read their trees: a clear refusal.
    let out = v
        .run_with_passphrase("", copy_args(&v.store, &v.dir.join("other"), &["latest"]))
        .failed();
    assert!(out.stderr.contains("reader identity"), "{}", out.describe());
}

#[test]
fn copying_into_another_store_is_refused() {
    let v = Vault::new();
    v.init();
    let a = v.dir.join("a");
    write_random_files(&a, 1, 100_000, 8);
    v.snapshot(&[&a]);
    let other = Vault::new();
    other.init();
    let out = copy(&v, &other.store, &[]).failed();
    assert!(out.stderr.contains("different store"), "{}", out.describe());
    assert!(
        objects(&other.store, "packs").is_empty() && objects(&other.store, "snapshots").is_empty()
    );
    let same = copy(&v, &v.store, &[]).failed();
    assert!(same.stderr.contains("both name"), "{}", same.describe());
}
