//! `vault import-tar`: vendor tarballs made by GNU tar become snapshots that restore to
//! what extracting the tarball gives, timed by the epoch in their name, deduplicated
//! against each other; damaged archives are refused with an offset and leave nothing.

mod common;

use common::{compare, fixture, Vault};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH1: i64 = 1_700_000_000;
const EPOCH2: i64 = 1_700_086_400;

/// GNU tar as the vendor's recipe runs it, plus xattrs, ACLs and sparse files.
fn gnu_tar_create(dir: &Path, what: &str, out: &Path, compress: &str) {
    let mut cmd = Command::new("tar");
    cmd.arg("-C")
        .arg(dir)
        .args(["--xattrs", "--xattrs-include=*", "--acls", "-S"])
        .arg(compress)
        .arg("-cf")
        .arg(out)
        .arg(what);
    let out = common::run_command(cmd);
    assert!(out.success(), "GNU tar failed\n{}", out.describe());
}

fn gnu_tar_extract(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let mut cmd = Command::new("tar");
    cmd.args(["--xattrs", "--xattrs-include=*", "--acls", "-xpf"])
        .arg(archive)
        .arg("-C")
        .arg(into);
    let out = common::run_command(cmd);
    assert!(out.success(), "GNU tar -x failed\n{}", out.describe());
}

/// A Travis-like tree: the fixture as `var/travis` below `base`.
fn travis_tree(v: &Vault) -> (PathBuf, PathBuf) {
    let base = v.dir.join("host");
    fs::create_dir_all(base.join("var")).unwrap();
    let f = fixture::build(&base.join("var/travis"));
    (base, f.root)
}

/// Imports as the host the archive is recorded for (`--host NAME`), with that host's own
/// key, so the snapshot verifies as that host's; without `--host`, as this host.
fn import(v: &Vault, args: &[&std::ffi::OsStr]) -> common::Out {
    let mut all: Vec<OsString> = vec!["import-tar".into()];
    all.extend(args.iter().map(|a| a.to_os_string()));
    let host = args
        .windows(2)
        .find(|w| w[0] == "--host")
        .map(|w| w[1].to_string_lossy().into_owned());
    match host {
        Some(h) => common::run_command(v.command_as_host(&h, all)),
        None => v.run(all),
    }
}

fn store_size(v: &Vault) -> u64 {
    common::files_by_size(&v.store).iter().map(|(_, s)| s).sum()
}

fn snapshot_time(s: &serde_json::Value) -> i64 {
    let t = s["time"].as_str().expect("time");
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("time {t:?}: {e}"))
        .timestamp()
}

#[test]
fn vendor_tarball_imports_exactly_and_the_next_one_deduplicates() {
    let v = Vault::new();
    v.init();
    let (base, tree) = travis_tree(&v);
    let tgz1 = v.dir.join(format!("travis-backup-{EPOCH1}.tar.gz"));
    gnu_tar_create(&base, "var/travis", &tgz1, "-z");

    let before = store_size(&v);
    let out = import(
        &v,
        &[tgz1.as_os_str(), "--host".as_ref(), "platform-1".as_ref()],
    )
    .ok();
    let first_growth = store_size(&v) - before;
    let list = common::snapshot_list(&v.run(["snapshots", "--json"]).ok());
    assert_eq!(list.len(), 1, "{}", out.describe());
    assert_eq!(snapshot_time(&list[0]), EPOCH1, "{}", list[0]);
    assert_eq!(list[0]["hostname"], "platform-1", "{}", list[0]);
    assert!(list[0].to_string().contains("imported"), "{}", list[0]);
    assert!(
        list[0].to_string().contains("/var/travis"),
        "the snapshot's path is /var/travis as archived: {}",
        list[0]
    );

    // Restoring the snapshot gives what extracting the tarball gives.
    let restored = v.dir.join("restored");
    v.restore("latest:platform-1", &restored, &[]).restore_ok();
    let extracted = v.dir.join("extracted");
    gnu_tar_extract(&tgz1, &extracted);
    compare::assert_same(&extracted.join("var/travis"), &restored.join("var/travis"));
    // And both are the tree that was archived.
    compare::assert_same(&tree, &restored.join("var/travis"));

    // A day later: one small file changed, one added.
    fs::write(tree.join(fixture::SMALL), b"changed overnight\n").unwrap();
    fs::write(tree.join("files/new.log"), b"a new log line\n").unwrap();
    let tgz2 = v.dir.join(format!("travis-backup-{EPOCH2}.tar.gz"));
    gnu_tar_create(&base, "var/travis", &tgz2, "-z");
    let before = store_size(&v);
    import(
        &v,
        &[tgz2.as_os_str(), "--host".as_ref(), "platform-1".as_ref()],
    )
    .ok();
    let second_growth = store_size(&v) - before;
    assert!(
        first_growth > 4 << 20,
        "the first import stored only {first_growth} bytes"
    );
    assert!(
        second_growth < first_growth / 20,
        "the second tarball differs in two small files but stored {second_growth} bytes (the first {first_growth})"
    );
    let list = common::snapshot_list(&v.run(["snapshots", "--json"]).ok());
    let times: Vec<i64> = list.iter().map(snapshot_time).collect();
    assert_eq!(times, vec![EPOCH1, EPOCH2]);
    let restored2 = v.dir.join("restored2");
    v.restore("latest:platform-1", &restored2, &[]).restore_ok();
    compare::assert_same(&tree, &restored2.join("var/travis"));
}

#[test]
fn every_compression_and_standard_input() {
    let v = Vault::new();
    v.init();
    let base = v.dir.join("host");
    fs::create_dir_all(base.join("etc/travis")).unwrap();
    fs::write(base.join("etc/travis/travis.yml"), b"encryption: key\n").unwrap();
    common::sys::set_mtime(&base.join("etc/travis/travis.yml"), 1_600_000_123, 5).unwrap();
    common::sys::set_mtime(&base.join("etc/travis"), 1_500_000_000, 0).unwrap();
    let mut expected = Vec::new();
    for (flag, name, tool) in [
        ("-z", "a.tar.gz", "gzip"),
        ("--zstd", "b.tar.zst", "zstd"),
        ("-J", "c.tar.xz", "xz"),
        ("--no-auto-compress", "d.tar", "tar"),
    ] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIP {name}: {tool} is not installed");
            continue;
        }
        let p = v.dir.join(name);
        gnu_tar_create(&base, "etc/travis", &p, flag);
        let out = import(&v, &[p.as_os_str()]).ok();
        expected.push(name);
        assert!(out.stdout.contains("imported"), "{}", out.describe());
    }
    // Standard input, with --time.
    let p = v.dir.join("a.tar.gz");
    let mut cmd = v.command(["import-tar", "-", "--time", "2024-05-01T03:00:00Z"]);
    cmd.stdin(fs::File::open(&p).unwrap());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "import from standard input failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = common::snapshot_list(&v.run(["snapshots", "--json"]).ok());
    assert_eq!(list.len(), expected.len() + 1);
    // Without a name or --time, the newest mtime inside.
    for s in &list[..expected.len()] {
        assert_eq!(snapshot_time(s), 1_600_000_123, "{s}");
    }
    assert_eq!(snapshot_time(&list[expected.len()]), 1_714_532_400);
    let out = v.dir.join("out");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&base.join("etc/travis"), &out.join("etc/travis"));
}

#[test]
fn damaged_or_truncated_archives_name_the_offset_and_leave_no_snapshot() {
    let v = Vault::new();
    v.init();
    let (base, _) = travis_tree(&v);
    let tgz = v.dir.join(format!("travis-backup-{EPOCH1}.tar.gz"));
    gnu_tar_create(&base, "var/travis", &tgz, "-z");
    let plain = v.dir.join(format!("travis-backup-{EPOCH1}.tar"));
    gnu_tar_create(&base, "var/travis", &plain, "--no-auto-compress");

    // Cut short in the middle.
    let bytes = fs::read(&tgz).unwrap();
    let cut = v.dir.join(format!("travis-backup-{EPOCH2}.tar.gz"));
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = import(&v, &[cut.as_os_str()]).failed();
    assert!(
        out.stderr.contains("byte ") && out.stderr.contains(cut.to_str().unwrap()),
        "the error names neither the archive nor an offset\n{}",
        out.describe()
    );

    // A header damaged in the middle of a plain tar.
    let mut bytes = fs::read(&plain).unwrap();
    let n = bytes.len();
    // Find a header (ustar magic) in the second half and break its checksum.
    let at = (n / 2..n - 512)
        .find(|&i| &bytes[i..i + 5] == b"ustar" && i >= 257)
        .expect("a header in the second half")
        - 257;
    bytes[at + 148] ^= 0x11;
    let broken = v.dir.join("travis-backup-1700000001.tar");
    fs::write(&broken, &bytes).unwrap();
    let out = import(&v, &[broken.as_os_str()]).failed();
    let named: Option<u64> = out
        .stderr
        .split("byte ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    assert!(
        named.is_some_and(|b| b >= at as u64 && b < at as u64 + 512),
        "the error does not name the damaged header at byte {at}\n{}",
        out.describe()
    );

    // Cut exactly after an entry (no end-of-archive blocks).
    let cut_plain = v.dir.join("travis-backup-1700000002.tar");
    fs::write(&cut_plain, &fs::read(&plain).unwrap()[..at]).unwrap();
    let out = import(&v, &[cut_plain.as_os_str()]).failed();
    assert!(out.stderr.contains("byte "), "{}", out.describe());

    let list = common::snapshot_list(&v.run(["snapshots", "--json"]).ok());
    assert!(list.is_empty(), "a damaged import left snapshots: {list:?}");
    v.run(["check"]).ok();
    // The intact archive still imports.
    import(&v, &[tgz.as_os_str()]).ok();
}
