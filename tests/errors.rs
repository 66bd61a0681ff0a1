//! Bad input gets a clear error, and nothing is restored wrong: wrong passphrase, missing
//! store, corrupt / truncated / missing objects in the store, unreadable source files.

mod common;

use common::{
    files_by_size, is_root, mentions_any, random_bytes, restored, sys, walk, Out, Vault, NOBODY,
};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const BIG: &str = "big.bin";

/// A store holding one snapshot of `DIR/src`: a 6 MiB random file (several chunks) and
/// two small ones.
fn world() -> (Vault, PathBuf) {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join(BIG), random_bytes(11, 6 << 20)).unwrap();
    fs::write(src.join("other.bin"), random_bytes(12, 100_000)).unwrap();
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/small.txt"), b"small file\n").unwrap();
    v.init();
    v.snapshot(&[&src]);
    (v, src)
}

/// `check` reports its findings on stdout and the verdict on stderr: look at both.
#[track_caller]
fn assert_reports(out: &Out, words: &[&str], why: &str) {
    assert!(
        mentions_any(&out.all(), words),
        "{why}: the output should mention one of {words:?}\n{}",
        out.describe()
    );
}

#[track_caller]
fn assert_mentions(out: &Out, words: &[&str], why: &str) {
    assert!(
        mentions_any(&out.stderr, words),
        "{why}: stderr should mention one of {words:?}\n{}",
        out.describe()
    );
}

/// Every regular file below `out` is a restored copy of a file of `src` with exactly its
/// content: a failed restore may leave files out, never leave wrong data behind.
#[track_caller]
fn assert_no_bad_data(out: &Path, src: &Path, run: &Out) {
    let base = restored(out, src);
    for p in walk(out) {
        let m = fs::symlink_metadata(&p).unwrap();
        if !m.is_file() {
            continue;
        }
        let rel = p.strip_prefix(&base).unwrap_or_else(|_| {
            panic!(
                "restore left {} outside the restored tree\n{}",
                p.display(),
                run.describe()
            )
        });
        let orig = src.join(rel);
        let ok = fs::read(&orig)
            .map(|o| o == fs::read(&p).unwrap())
            .unwrap_or(false);
        assert!(
            ok,
            "after a failed restore, {} holds data that is not the content of {}\n{}",
            p.display(),
            orig.display(),
            run.describe()
        );
    }
}

fn largest(dir: &Path) -> PathBuf {
    files_by_size(dir)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no files in {}", dir.display()))
        .0
}

fn truncate_half(p: &Path) {
    let len = fs::metadata(p).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_len(len / 2).unwrap();
}

#[test]
fn wrong_passphrase_is_refused() {
    let (v, src) = world();
    let out = v.path("out");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--to"),
    ];
    args.push(out.as_os_str());
    let r = v.run_with_passphrase("not the passphrase", &args).failed();
    assert_mentions(&r, &["passphrase"], "restore with a wrong passphrase");
    assert!(
        walk(&out).is_empty(),
        "restore with a wrong passphrase wrote files\n{}",
        r.describe()
    );

    let r = v
        .run_with_passphrase(
            "not the passphrase",
            [OsStr::new("ls"), OsStr::new("latest"), src.as_os_str()],
        )
        .failed();
    assert_mentions(&r, &["passphrase"], "ls with a wrong passphrase");
    // The right one still works.
    v.restore("latest", &out, &[]).restore_ok();
}

#[test]
fn missing_store_names_it_and_says_vault_init() {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("a"), b"a").unwrap();
    let store = v.store.to_str().unwrap().to_string();
    for args in [
        vec!["snapshots"],
        vec!["snapshot", src.to_str().unwrap()],
        vec!["check"],
    ] {
        let r = v.run(&args).failed();
        assert!(
            r.stderr.contains(&store) && r.stderr.contains("vault init"),
            "`vault {}` without a store: stderr should name {store} and say `vault init`\n{}",
            args.join(" "),
            r.describe()
        );
    }
    assert!(
        !v.store.exists(),
        "a command other than init created the store"
    );
}

#[test]
fn flipped_byte_in_a_pack_is_reported_and_never_restored() {
    let (v, src) = world();
    let pack = largest(&v.store.join("packs"));
    let mut data = fs::read(&pack).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(&pack, &data).unwrap();

    let out = v.path("out");
    let r = v.restore("latest", &out, &[]).failed();
    assert_mentions(&r, &["corrupt"], "restore from a pack with a flipped byte");
    assert_no_bad_data(&out, &src, &r);
    assert!(
        !restored(&out, &src).join(BIG).exists(),
        "{BIG} (whose chunk is corrupt) was restored\n{}",
        r.describe()
    );
    assert!(
        r.stderr.contains(BIG),
        "restore should name the damaged file {BIG}\n{}",
        r.describe()
    );

    let c = v.run(["check", "--read-data"]).failed();
    assert_reports(
        &c,
        &["corrupt"],
        "check --read-data of a pack with a flipped byte",
    );
    assert!(
        c.stderr.contains(BIG) || c.stdout.contains(BIG),
        "check --read-data should name the file affected by the corrupt chunk ({BIG})\n{}",
        c.describe()
    );
}

#[test]
fn truncated_pack_is_reported() {
    let (v, src) = world();
    let pack = largest(&v.store.join("packs"));
    truncate_half(&pack);
    let out = v.path("out");
    let r = v.restore("latest", &out, &[]).failed();
    assert_mentions(
        &r,
        &["corrupt", "truncated", "missing"],
        "restore from a truncated pack",
    );
    assert_no_bad_data(&out, &src, &r);
    let c = v.run(["check", "--read-data"]).failed();
    assert_reports(
        &c,
        &["corrupt", "truncated", "missing"],
        "check --read-data of a truncated pack",
    );
}

#[test]
fn deleted_pack_is_reported_missing() {
    let (v, src) = world();
    let pack = largest(&v.store.join("packs"));
    fs::remove_file(&pack).unwrap();
    let out = v.path("out");
    let r = v.restore("latest", &out, &[]).failed();
    assert_mentions(
        &r,
        &["missing", "not found", "corrupt"],
        "restore with a pack deleted",
    );
    assert_no_bad_data(&out, &src, &r);
    let c = v.run(["check"]).failed();
    assert_reports(&c, &["missing", "not found"], "check with a pack deleted");
}

#[test]
fn truncated_index_is_reported() {
    let (v, src) = world();
    let index = largest(&v.store.join("index"));
    truncate_half(&index);
    // Without the cache the index must be read from the store.
    fs::remove_dir_all(&v.cache).ok();
    let c = v.run(["check"]).failed();
    assert_reports(
        &c,
        &["corrupt", "truncated", "missing"],
        "check with a truncated index file",
    );

    fs::remove_dir_all(&v.cache).ok();
    let out = v.path("out");
    let r = v.restore("latest", &out, &[]);
    if r.success() {
        // Rebuilding from the packs is fine, as long as the result is right.
        common::compare::assert_same(&src, &restored(&out, &src));
    } else {
        let r = r.failed();
        assert_mentions(
            &r,
            &["corrupt", "truncated", "missing"],
            "restore with a truncated index file",
        );
        assert_no_bad_data(&out, &src, &r);
    }
}

#[test]
fn truncated_snapshot_is_reported() {
    let (v, src) = world();
    let snap = largest(&v.store.join("snapshots"));
    truncate_half(&snap);
    fs::remove_dir_all(&v.cache).ok();
    let out = v.path("out");
    let r = v.restore("latest", &out, &[]).failed();
    assert_mentions(
        &r,
        &["corrupt", "truncated", "missing"],
        "restore latest with a truncated snapshot",
    );
    assert_no_bad_data(&out, &src, &r);
    let c = v.run(["check"]).failed();
    assert_reports(
        &c,
        &["corrupt", "truncated", "missing"],
        "check with a truncated snapshot",
    );
    let l = v.run(["snapshots"]);
    assert_mentions(
        &l,
        &["corrupt", "truncated", "missing"],
        "snapshots with a truncated snapshot",
    );
}

#[test]
fn unreadable_source_file_gives_a_partial_snapshot() {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("readable.txt"), b"readable\n").unwrap();
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/ok.txt"), b"ok\n").unwrap();
    fs::write(src.join("secret.txt"), b"cannot be read\n").unwrap();
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();

    // As root every file is readable: run the binary as nobody, who owns everything here.
    let as_nobody = is_root();
    let cache = v.path("nbcache");
    let bin = if as_nobody {
        fs::set_permissions(&v.dir, fs::Permissions::from_mode(0o755)).unwrap();
        for p in std::iter::once(v.dir.clone()).chain(walk(&v.dir)) {
            sys::lchown(&p, NOBODY.0, NOBODY.1).unwrap();
        }
        v.bin_for(&cache)
    } else {
        v.bin.clone()
    };
    let run = |args: &[&OsStr]| -> Out {
        if as_nobody {
            v.run_as(NOBODY.0, NOBODY.1, &bin, &cache, args)
        } else {
            v.run(args)
        }
    };
    run(&[OsStr::new("init")]).ok();
    let r = run(&[OsStr::new("snapshot"), src.as_os_str()]);
    assert_eq!(
        r.code,
        Some(3),
        "a snapshot with an unreadable file must exit 3\n{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("secret.txt"),
        "stderr should name the unreadable file\n{}",
        r.describe()
    );
    let list = run(&[OsStr::new("snapshots"), OsStr::new("--json")]).ok();
    assert_eq!(
        common::snapshot_ids(&list).len(),
        1,
        "the partial snapshot is listed\n{}",
        list.describe()
    );

    let out = v.dir.join("out");
    fs::create_dir(&out).unwrap();
    if as_nobody {
        sys::lchown(&out, NOBODY.0, NOBODY.1).unwrap();
    }
    let rr = run(&[
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--to"),
        out.as_os_str(),
    ]);
    // 3 (and a warning) is right when some parent folder of src belongs to another user.
    assert!(
        matches!(rr.code, Some(0) | Some(3)),
        "restore of the partial snapshot\n{}",
        rr.describe()
    );
    let got = restored(&out, &src);
    assert_eq!(fs::read(got.join("readable.txt")).unwrap(), b"readable\n");
    assert_eq!(fs::read(got.join("sub/ok.txt")).unwrap(), b"ok\n");
    let secret = got.join("secret.txt");
    assert!(
        !secret.exists() || rr.stderr.contains("secret.txt"),
        "secret.txt was never read, yet the restore created it without a word\n{}",
        rr.describe()
    );
}
