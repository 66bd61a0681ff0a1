//! A snapshot of the fixture tree restores exactly: every kind of file and every piece of
//! metadata, for a first and an incremental snapshot, a subtree, with `--verify`, without
//! the cache; and a restore by a user who cannot set owners says so.

mod common;

use common::compare::{self, Diff};
use common::fixture::{self, Fixture};
use common::{is_root, restored, sys, Vault, NOBODY};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A world with an initialised store and the fixture at `DIR/fixture`.
fn world() -> (Vault, Fixture) {
    let v = Vault::new();
    let f = fixture::build(&v.dir.join("fixture"));
    v.init();
    (v, f)
}

fn store_size(v: &Vault) -> u64 {
    common::files_by_size(&v.store).iter().map(|(_, s)| s).sum()
}

// ---------------------------------------------------------------------------------------
// The comparison itself must see every kind of difference.
// ---------------------------------------------------------------------------------------

/// Runs `mutate` on a fresh copy of the fixture, keeping the mtimes of `keep` (so that one
/// property changes at a time), and asserts the differences are exactly `expected`.
fn detects(
    reference: &compare::Scan,
    name: &str,
    keep: &[&str],
    mutate: impl FnOnce(&Path),
    expected: &[(&str, &str)],
) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("copy");
    fixture::build(&root);
    let kept: Vec<(PathBuf, (i64, i64))> = keep
        .iter()
        .map(|k| {
            let p = if k.is_empty() {
                root.clone()
            } else {
                root.join(k)
            };
            let e = compare::entry(&p);
            (p, e.mtime)
        })
        .collect();
    mutate(&root);
    for (p, (s, ns)) in kept.iter().rev() {
        sys::set_mtime(p, *s, *ns).unwrap();
    }
    let got = compare::diff_scans(reference, &compare::scan(&root));
    let got_set: Vec<(String, &str)> = got
        .iter()
        .map(|d| (d.path.to_string_lossy().into_owned(), d.what))
        .collect();
    let mut want: Vec<(String, &str)> = expected.iter().map(|(p, w)| (p.to_string(), *w)).collect();
    let mut got_sorted = got_set.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(
        got_sorted,
        want,
        "case `{name}`: the comparison reported\n  {}",
        got.iter()
            .map(Diff::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    eprintln!(
        "compare case `{name}`: {}",
        got.iter()
            .map(Diff::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
}

#[test]
fn compare_detects_each_single_change() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    fixture::build(&a);
    let reference = compare::scan(&a);
    assert!(
        reference.entries.len() > 80,
        "the fixture is too small: {} entries",
        reference.entries.len()
    );

    // Two builds are identical: nothing to report.
    detects(&reference, "identical", &[], |_| {}, &[]);

    detects(
        &reference,
        "mode",
        &[],
        |r| {
            fs::set_permissions(r.join(fixture::SMALL), fs::Permissions::from_mode(0o600)).unwrap();
        },
        &[(fixture::SMALL, "mode")],
    );

    detects(
        &reference,
        "setuid bit",
        &[],
        |r| {
            fs::set_permissions(r.join("modes/setuid"), fs::Permissions::from_mode(0o755)).unwrap();
        },
        &[("modes/setuid", "mode")],
    );

    detects(
        &reference,
        "file mtime +1ns",
        &[],
        |r| {
            let p = r.join(fixture::SMALL);
            let (s, ns) = compare::entry(&p).mtime;
            sys::set_mtime(&p, s, ns + 1).unwrap();
        },
        &[(fixture::SMALL, "mtime")],
    );

    detects(
        &reference,
        "directory mtime +1ns",
        &[],
        |r| {
            let p = r.join(fixture::NESTED);
            let (s, ns) = compare::entry(&p).mtime;
            sys::set_mtime(&p, s, ns + 1).unwrap();
        },
        &[(fixture::NESTED, "mtime")],
    );

    detects(
        &reference,
        "symlink mtime +1ns",
        &[],
        |r| {
            let p = r.join("links/abs");
            let (s, ns) = compare::entry(&p).mtime;
            sys::set_mtime(&p, s, ns + 1).unwrap();
        },
        &[("links/abs", "mtime")],
    );

    detects(
        &reference,
        "xattr value",
        &[],
        |r| {
            sys::set_xattr(
                &r.join(fixture::USER_XATTRS),
                b"user.binary",
                b"\x00\x01\x02\xff\x00\x81",
            )
            .unwrap();
        },
        &[(fixture::USER_XATTRS, "xattr")],
    );

    detects(
        &reference,
        "xattr removed",
        &[],
        |r| {
            sys::remove_xattr(&r.join(fixture::USER_XATTRS), b"user.empty").unwrap();
        },
        &[(fixture::USER_XATTRS, "xattr")],
    );

    detects(
        &reference,
        "default ACL removed",
        &[],
        |r| {
            sys::remove_xattr(&r.join("acl/dir"), b"system.posix_acl_default").unwrap();
        },
        &[("acl/dir", "xattr")],
    );

    detects(
        &reference,
        "hole filled with zeros",
        &[fixture::SPARSE_MIDDLE],
        |r| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r.join(fixture::SPARSE_MIDDLE))
                .unwrap();
            f.write_all_at(&vec![0u8; 64 * 1024], 1 << 20).unwrap();
            f.sync_all().unwrap();
        },
        &[(fixture::SPARSE_MIDDLE, "holes")],
    );

    detects(
        &reference,
        "trailing hole filled",
        &["sparse/hole_end"],
        |r| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r.join("sparse/hole_end"))
                .unwrap();
            f.write_all_at(&vec![0u8; 4096], 3 * fixture::MIB - 4096)
                .unwrap();
            f.sync_all().unwrap();
        },
        &[("sparse/hole_end", "holes")],
    );

    detects(
        &reference,
        "one byte of content",
        &[fixture::BIG],
        |r| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r.join(fixture::BIG))
                .unwrap();
            f.write_all_at(b"#", 3 * fixture::MIB + 17).unwrap();
        },
        &[(fixture::BIG, "content")],
    );

    detects(
        &reference,
        "data in a hole",
        &["sparse/one_gib"],
        |r| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r.join("sparse/one_gib"))
                .unwrap();
            f.write_all_at(&[1u8; 4096], 512 * fixture::MIB).unwrap();
        },
        &[("sparse/one_gib", "content"), ("sparse/one_gib", "holes")],
    );

    detects(
        &reference,
        "size",
        &[fixture::SMALL],
        |r| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r.join(fixture::SMALL))
                .unwrap();
            f.set_len(5).unwrap();
        },
        &[(fixture::SMALL, "size"), (fixture::SMALL, "content")],
    );

    detects(
        &reference,
        "hardlink broken",
        &["hard", fixture::HARD_TWO_B],
        |r| {
            // Same content, mode, xattrs and mtime, but its own inode.
            let b = r.join(fixture::HARD_TWO_B);
            let tmp = r.join("hard/tmp");
            fs::copy(&b, &tmp).unwrap();
            sys::set_xattr(&tmp, b"user.linked", b"on a hardlinked inode").unwrap();
            fs::rename(&tmp, &b).unwrap();
        },
        &[
            (fixture::HARD_TWO_A, "hardlinks"),
            (fixture::HARD_TWO_B, "hardlinks"),
        ],
    );

    detects(
        &reference,
        "symlink target",
        &["links", "links/dangling"],
        |r| {
            let p = r.join("links/dangling");
            fs::remove_file(&p).unwrap();
            symlink("does-not-exist-2", &p).unwrap();
        },
        &[("links/dangling", "symlink target")],
    );

    detects(
        &reference,
        "missing file",
        &["names"],
        |r| {
            fs::remove_file(r.join(fixture::WITH_SPACE)).unwrap();
        },
        &[(fixture::WITH_SPACE, "missing")],
    );

    detects(
        &reference,
        "extra file",
        &[fixture::NESTED],
        |r| {
            fs::write(r.join("nested/extra.txt"), b"x").unwrap();
        },
        &[("nested/extra.txt", "extra")],
    );

    detects(
        &reference,
        "FIFO became a file",
        &["special", "special/fifo"],
        |r| {
            let p = r.join("special/fifo");
            fs::remove_file(&p).unwrap();
            fs::write(&p, b"").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o620)).unwrap();
        },
        &[("special/fifo", "type")],
    );

    if is_root() {
        detects(
            &reference,
            "uid",
            &[],
            |r| {
                sys::lchown(&r.join(fixture::SMALL), 4242, 0).unwrap();
            },
            &[(fixture::SMALL, "uid")],
        );

        detects(
            &reference,
            "gid of a symlink",
            &[],
            |r| {
                let p = r.join("owners/link");
                let e = compare::entry(&p);
                sys::lchown(&p, e.uid, 4243).unwrap();
            },
            &[("owners/link", "gid")],
        );

        detects(
            &reference,
            "device number",
            &["special", "special/char"],
            |r| {
                let p = r.join("special/char");
                fs::remove_file(&p).unwrap();
                sys::mknod(&p, false, 1, 5, 0o666).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
            },
            &[("special/char", "rdev")],
        );

        detects(
            &reference,
            "capability removed",
            &[],
            |r| {
                sys::remove_xattr(&r.join("xattrs/cap"), b"security.capability").unwrap();
            },
            &[("xattrs/cap", "xattr")],
        );

        detects(
            &reference,
            "trusted xattr on a symlink",
            &[],
            |r| {
                sys::set_xattr(
                    &r.join("xattrs/trusted_link"),
                    b"trusted.onlink",
                    b"changed",
                )
                .unwrap();
            },
            &[("xattrs/trusted_link", "xattr")],
        );
    } else {
        eprintln!("compare: not root, skipped the uid, gid, device and capability cases");
    }
}

// ---------------------------------------------------------------------------------------
// Round trips through the real binary.
// ---------------------------------------------------------------------------------------

#[test]
fn fixture_snapshot_restores_exactly() {
    let (v, f) = world();
    v.snapshot(&[&f.root]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&f.root, &restored(&out, &f.root));
    // Nothing else appeared beside the restored path.
    let top: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        top,
        vec![OsString::from(
            f.root.components().nth(1).unwrap().as_os_str()
        )],
        "unexpected entries in {}",
        out.display()
    );
}

/// Changes a few files of the fixture in different ways.
fn modify(f: &Fixture) {
    let mut small = fs::OpenOptions::new()
        .append(true)
        .open(f.path(fixture::SMALL))
        .unwrap();
    std::io::Write::write_all(&mut small, b"one more line\n").unwrap();
    let big = fs::OpenOptions::new()
        .write(true)
        .open(f.path(fixture::BIG))
        .unwrap();
    big.write_all_at(&common::random_bytes(5000, 100 * 1024), 2 * fixture::MIB)
        .unwrap();
    fs::remove_file(f.path(fixture::WITH_SPACE)).unwrap();
    fs::write(f.path("files/new.txt"), b"new in the second snapshot\n").unwrap();
    fs::set_permissions(f.path(fixture::READONLY), fs::Permissions::from_mode(0o400)).unwrap();
    sys::set_xattr(&f.path(fixture::USER_XATTRS), b"user.comment", b"changed").unwrap();
    fs::hard_link(f.path(fixture::HARD_TWO_A), f.path("hard/two_c")).unwrap();
    fs::remove_file(f.path("links/rel")).unwrap();
    symlink("../files/new.txt", f.path("links/rel")).unwrap();
    sys::set_mtime(&f.path("links/rel"), 1_700_000_000, 42).unwrap();
    // Same size, new content, old mtime (as `rsync -t` or `touch -r` leave it): only the
    // ctime tells.
    let dup2 = f.path(fixture::DUP2);
    let (s, ns) = compare::entry(&dup2).mtime;
    fs::OpenOptions::new()
        .write(true)
        .open(&dup2)
        .unwrap()
        .write_all_at(b"0123456789", fixture::MIB)
        .unwrap();
    sys::set_mtime(&dup2, s, ns).unwrap();
    if is_root() {
        sys::lchown(&f.path("owners/nobody.txt"), 1, 1).unwrap();
    }
}

#[test]
fn incremental_snapshot_restores_both_states() {
    let (v, f) = world();
    // An identical second build, to compare the first snapshot with after `f` changes.
    let reference = fixture::build(&v.dir.join("reference"));
    v.snapshot(&[&f.root]);
    let size1 = store_size(&v);
    modify(&f);
    v.snapshot(&[&f.root]);
    let size2 = store_size(&v);
    assert!(
        size2 - size1 < size1 / 2,
        "the second snapshot changed a few chunks but the store grew from {size1} to {size2} bytes: not incremental"
    );

    let out = v.path("out-latest");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&f.root, &restored(&out, &f.root));

    let ids = v.snapshot_ids();
    assert_eq!(ids.len(), 2, "expected two snapshots, got {ids:?}");
    let mut matched = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let out = v.path(&format!("out-{i}"));
        v.restore(id, &out, &[]).restore_ok();
        let got = restored(&out, &f.root);
        if compare::trees(&f.root, &got).is_empty() {
            matched.push("second");
        } else {
            let d = compare::trees(&reference.root, &got);
            assert!(
                d.is_empty(),
                "snapshot {id} restores neither the first nor the second state; against the first:\n  {}",
                d.join("\n  ")
            );
            matched.push("first");
        }
    }
    matched.sort();
    assert_eq!(matched, vec!["first", "second"], "snapshots {ids:?}");
}

#[test]
fn include_restores_only_that_subtree() {
    let (v, f) = world();
    v.snapshot(&[&f.root]);

    let out = v.path("out-dir");
    let nested = f.path(fixture::NESTED);
    v.restore("latest", &out, &["--include", nested.to_str().unwrap()])
        .restore_ok();
    // nested/a/b/three_3 is a hardlink whose other links are outside the subtree.
    compare::assert_same(&nested, &restored(&out, &nested));
    let here: Vec<_> = fs::read_dir(restored(&out, &f.root))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        here,
        vec![OsString::from("nested")],
        "--include {} restored more than that subtree",
        nested.display()
    );

    let out = v.path("out-file");
    let small = f.path(fixture::SMALL);
    v.restore("latest", &out, &["--include", small.to_str().unwrap()])
        .restore_ok();
    assert_eq!(
        fs::read(restored(&out, &small)).unwrap(),
        fs::read(&small).unwrap()
    );
    let e = compare::diff_scans(
        &compare::scan(&small),
        &compare::scan(&restored(&out, &small)),
    );
    assert!(e.is_empty(), "{e:?}");
    let files: Vec<_> = common::walk(&out)
        .into_iter()
        .filter(|p| !fs::symlink_metadata(p).unwrap().is_dir())
        .collect();
    assert_eq!(
        files,
        vec![restored(&out, &small)],
        "--include of one file restored other files"
    );
}

#[test]
fn restore_with_verify_passes() {
    let (v, f) = world();
    v.snapshot(&[&f.root]);
    let out = v.path("out");
    v.restore("latest", &out, &["--verify"]).restore_ok();
    compare::assert_same(&f.root, &restored(&out, &f.root));
}

#[test]
fn restore_with_numeric_owner_is_exact_on_the_same_host() {
    let (v, f) = world();
    v.snapshot(&[&f.root]);
    let out = v.path("out");
    v.restore("latest", &out, &["--numeric-owner"]).restore_ok();
    compare::assert_same(&f.root, &restored(&out, &f.root));
}

#[test]
fn hardlinked_fifo_and_symlink_stay_linked() {
    // link(2) works on any non-directory: a FIFO and a symlink with two names each.
    let v = Vault::new();
    let src = v.path("src");
    sys::mkfifo(&src.join("fifo"), 0o600).unwrap();
    fs::hard_link(src.join("fifo"), src.join("fifo_link")).unwrap();
    symlink("target", src.join("link")).unwrap();
    fs::hard_link(src.join("link"), src.join("link_hardlink")).unwrap();
    fs::write(src.join("file"), b"regular\n").unwrap();
    fs::hard_link(src.join("file"), src.join("file_link")).unwrap();
    fixture::set_mtimes(&src);
    v.init();
    v.snapshot(&[&src]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&src, &restored(&out, &src));
}

#[test]
fn several_paths_in_one_snapshot() {
    // Like /etc/travis and /var/travis: two trees, one snapshot.
    let v = Vault::new();
    let etc = v.path("etc/travis");
    let var = v.path("var/travis");
    fs::write(etc.join("travis.yml"), b"encryption:\n  key: abc\n").unwrap();
    fs::create_dir_all(var.join("postgresql/data")).unwrap();
    fs::write(
        var.join("postgresql/data/base.dat"),
        common::random_bytes(3, 3 << 20),
    )
    .unwrap();
    fs::set_permissions(var.join("postgresql"), fs::Permissions::from_mode(0o700)).unwrap();
    fixture::set_mtimes(&v.dir.join("etc"));
    fixture::set_mtimes(&v.dir.join("var"));
    v.init();
    v.snapshot(&[&etc, &var]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&etc, &restored(&out, &etc));
    compare::assert_same(&var, &restored(&out, &var));
}

#[test]
fn ls_shows_names_and_escapes_non_utf8() {
    let (v, f) = world();
    v.snapshot(&[&f.root]);
    let names = f.path("names");
    let out = v
        .run([OsStr::new("ls"), OsStr::new("latest"), names.as_os_str()])
        .ok();
    let text = std::str::from_utf8(&out.stdout_bytes).unwrap_or_else(|e| {
        panic!(
            "`vault ls` wrote raw non-UTF-8 bytes instead of escaping them ({e})\n{}",
            out.describe()
        )
    });
    for n in [
        "with space.txt",
        "-leading-dash",
        "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{2713}.txt",
    ] {
        assert!(
            text.contains(n),
            "`vault ls` does not show {n:?}\n{}",
            out.describe()
        );
    }
    // caf\xe9.txt: shown, escaped in some way that is not the valid UTF-8 name "café.txt".
    let shown = text.lines().any(|l| {
        l.contains("caf")
            && l.contains(".txt")
            && !l.contains("caf\u{e9}.txt")
            && (l.contains("e9") || l.contains("E9") || l.contains("351"))
    });
    assert!(
        shown,
        "`vault ls` does not show the non-UTF-8 name caf\\xe9.txt escaped\n{}",
        out.describe()
    );
    assert!(
        text.contains("dir-"),
        "`vault ls` does not show the non-UTF-8 directory\n{}",
        out.describe()
    );
    // A newline in a name must not split it over two lines.
    assert!(
        !text
            .lines()
            .any(|l| l.trim() == "break" || l.ends_with("line")),
        "`vault ls` printed a raw newline of the name \"line\\nbreak\"\n{}",
        out.describe()
    );

    // Without a path it lists the snapshot (at least the fixture's root).
    let all = v.run(["ls", "latest"]).ok();
    assert!(all.stdout.contains("fixture"), "{}", all.describe());
}

#[test]
fn snapshots_json_lists_every_snapshot() {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("a.txt"), b"a").unwrap();
    v.init();
    v.snapshot(&[&src]);
    fs::write(src.join("b.txt"), b"b").unwrap();
    let mut args: Vec<OsString> = vec!["snapshot".into(), "--tag".into(), "second-tag".into()];
    args.push(src.clone().into());
    v.run(args).ok();
    let out = v.run(["snapshots", "--json"]).ok();
    let list = common::snapshot_list(&out);
    assert_eq!(list.len(), 2, "{}", out.describe());
    let ids = common::snapshot_ids(&out);
    assert_ne!(ids[0], ids[1], "{}", out.describe());
    for s in &list {
        assert!(
            s.to_string().contains(src.to_str().unwrap()),
            "snapshot entry does not name its path {}: {s}",
            src.display()
        );
    }
    assert_eq!(
        list.iter()
            .filter(|s| s.to_string().contains("second-tag"))
            .count(),
        1,
        "exactly one snapshot carries the tag\n{}",
        out.describe()
    );
    // Plain output lists both ids too (at least a prefix of each).
    let plain = v.run(["snapshots"]).ok();
    for id in &ids {
        assert!(
            plain.stdout.contains(&id[..8.min(id.len())]),
            "`vault snapshots` does not list {id}\n{}",
            plain.describe()
        );
    }
}

#[test]
fn cache_is_only_a_cache() {
    let (v, f) = world();
    v.snapshot(&[&f.root]);
    fs::remove_dir_all(&v.cache).unwrap();
    let out = v.path("out1");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&f.root, &restored(&out, &f.root));

    // Snapshot again without the cache it had, change things, snapshot, lose it again.
    fs::remove_dir_all(&v.cache).ok();
    v.snapshot(&[&f.root]);
    modify(&f);
    v.snapshot(&[&f.root]);
    fs::remove_dir_all(&v.cache).unwrap();
    v.run(["check"]).ok();
    let out = v.path("out2");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&f.root, &restored(&out, &f.root));
    assert_eq!(v.snapshot_ids().len(), 3);
}

#[test]
fn restore_as_non_root_restores_what_it_can_and_reports_ownership() {
    if !is_root() {
        eprintln!(
            "SKIPPED restore_as_non_root...: needs root to build a snapshot with other owners \
             and to run the binary as nobody"
        );
        return;
    }
    let (v, f) = world();
    v.snapshot(&[&f.root]);

    // nobody may read the store (as a backup operator's account would), and has its own
    // cache and output folders.
    fs::set_permissions(&v.dir, fs::Permissions::from_mode(0o755)).unwrap();
    common::chmod_readable_by_all(&v.store);
    let nob = v.path("nobody");
    let out = nob.join("out");
    fs::create_dir(&out).unwrap();
    let bin = v.bin_for(&nob);
    for p in [&nob, &out] {
        sys::lchown(p, NOBODY.0, NOBODY.1).unwrap();
    }
    let cache = nob.join("cache");
    let r = v.run_as(
        NOBODY.0,
        NOBODY.1,
        &bin,
        &cache,
        [
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--to"),
            out.as_os_str(),
        ],
    );
    assert!(
        matches!(r.code, Some(c) if c != 0),
        "a restore that could not set owners must not exit 0 (nor crash)\n{}",
        r.describe()
    );
    assert!(
        common::mentions_any(&r.stderr, &["owner", "chown"]),
        "stderr does not say that ownership could not be restored\n{}",
        r.describe()
    );
    assert!(!r.stderr.contains("panicked at"), "{}", r.describe());

    // Everything else is there and exact.
    let diffs = compare::diffs(&f.root, &restored(&out, &f.root));
    let unexpected: Vec<String> = diffs
        .iter()
        .filter(|d| {
            let p = d.path.as_os_str().as_bytes();
            let allowed = match d.what {
                "uid" | "gid" => true,
                "missing" => p.starts_with(b"special/") && d.detail.contains("device"),
                "xattr" => {
                    d.detail.starts_with("trusted.") || d.detail.starts_with("security.capability")
                }
                _ => false,
            };
            !allowed
        })
        .map(|d| d.to_string())
        .collect();
    assert!(
        unexpected.is_empty(),
        "a restore as nobody lost more than owners, device nodes and privileged xattrs:\n  {}\n{}",
        unexpected.join("\n  "),
        r.describe()
    );
    assert!(
        diffs.iter().any(|d| d.what == "uid"),
        "expected owners to differ after a restore as nobody (is the comparison blind?)"
    );
}

/// A folder of many entries is walked window by window, its small files read ahead on
/// other threads: every kind of entry, sizes on both sides of what is read ahead, holes,
/// hardlinks whose names fall in different windows, and folders among the files, restore
/// exactly after a first snapshot and after one that finds some files changed.
#[test]
fn a_folder_of_many_entries_read_ahead_restores_exactly() {
    let v = Vault::new();
    v.init();
    let root = v.path("many");
    fs::create_dir_all(&root).unwrap();
    let sizes = [0usize, 1, 100, 4096, 40_000, 128 << 10, (128 << 10) + 1];
    for i in 0..700usize {
        let p = root.join(format!("e{i:04}"));
        match i % 50 {
            10 => {
                fs::create_dir(&p).unwrap();
                for j in 0..3 {
                    fs::write(
                        p.join(format!("in{j}")),
                        common::random_bytes(i as u64, 300),
                    )
                    .unwrap();
                }
            }
            20 => symlink(format!("e{:04}", i - 1), &p).unwrap(),
            30 => {
                // A file with a hole: read by regions, never ahead.
                let f = fs::File::create(&p).unwrap();
                f.write_all_at(b"after the hole", 100_000).unwrap();
            }
            _ => {
                let len = sizes[i % sizes.len()];
                fs::write(&p, common::random_bytes(i as u64, len)).unwrap();
            }
        }
    }
    // Names 300 apart: two windows between a file's first name and its second.
    fs::hard_link(root.join("e0003"), root.join("e0303-link")).unwrap();
    common::fixture::set_mtimes(&root);
    // Files changed within two seconds of a snapshot never enter the files cache.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    v.snapshot(&[&root]);
    let out = v.path("out-first");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&root, &restored(&out, &root));

    // Rewrite a few files in place across windows (one grows past what is read ahead),
    // then snapshot again: those are read, the rest come from the files cache.
    for (i, len) in [
        (2usize, 50usize),
        (258, 4096),
        (513, (128 << 10) + 7),
        (699, 0),
    ] {
        fs::write(
            root.join(format!("e{i:04}")),
            common::random_bytes(9000 + i as u64, len),
        )
        .unwrap();
        sys::set_mtime(&root.join(format!("e{i:04}")), 1_700_000_000, i as i64).unwrap();
    }
    v.snapshot(&[&root]);
    let out = v.path("out-second");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&root, &restored(&out, &root));
    let list = v.snapshots_json();
    let read = list[1]["summary"]["bytes_read"].as_u64().unwrap();
    assert_eq!(
        read,
        50 + 4096 + (128 << 10) + 7,
        "the second snapshot reads exactly the rewritten files"
    );
}
