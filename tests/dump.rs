//! `vault dump`: the tar stream stock GNU tar extracts (as root) to the snapshot's tree,
//! and importing that stream gives the same snapshot back.

mod common;

use common::{compare, fixture, Vault};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// What `vault dump ARGS > FILE` did.
struct Dumped {
    ok: bool,
    stderr: String,
}

impl Dumped {
    fn ok(self) -> Dumped {
        assert!(self.ok, "vault dump failed: {}", self.stderr);
        self
    }
}

/// `vault dump ARGS > FILE`.
fn dump_to(v: &Vault, args: &[&str], file: &Path) -> Dumped {
    let mut all = vec!["dump"];
    all.extend_from_slice(args);
    let mut cmd = v.command(all);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(fs::File::create(file).unwrap()))
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    Dumped {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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

#[test]
fn gnu_tar_extracts_a_dump_to_the_snapshot_tree() {
    if !common::is_root() {
        eprintln!("SKIP: extracting owners, devices and capabilities with tar needs root");
        return;
    }
    let v = Vault::new();
    let f = fixture::build(&v.dir.join("fixture"));
    v.init();
    v.snapshot(&[&f.root]);
    let tar = v.dir.join("out.tar");
    dump_to(&v, &["latest"], &tar).ok();
    let ext = v.dir.join("extracted");
    gnu_tar_extract(&tar, &ext);
    compare::assert_same(&f.root, &common::restored(&ext, &f.root));

    // One path only: just that subtree, under its full path.
    let part = v.dir.join("part.tar");
    let sub = f.path("files");
    dump_to(&v, &["latest", sub.to_str().unwrap()], &part).ok();
    let ext2 = v.dir.join("extracted-part");
    gnu_tar_extract(&part, &ext2);
    compare::assert_same(&sub, &common::restored(&ext2, &sub));
    assert!(
        !common::restored(&ext2, &f.path("hard")).exists(),
        "a dump of one path held others"
    );
}

#[test]
fn importing_a_dump_gives_the_same_snapshot() {
    let v = Vault::new();
    let f = fixture::build(&v.dir.join("fixture"));
    v.init();
    v.snapshot(&[&f.root]);
    let tar = v.dir.join("round.tar");
    dump_to(&v, &["latest"], &tar).ok();
    let first = v.snapshot_ids()[0].clone();
    v.run([
        "import-tar".as_ref(),
        tar.as_os_str(),
        "--time".as_ref(),
        "2030-01-01T00:00:00Z".as_ref(),
    ])
    .ok();
    let ids = v.snapshot_ids();
    assert_eq!(ids.len(), 2);
    let second = ids.iter().find(|i| **i != first).unwrap().clone();
    // No entry differs in anything a snapshot records.
    let out = v
        .run([
            "diff".as_ref(),
            first.as_str().as_ref(),
            second.as_str().as_ref(),
            f.root.as_os_str(),
            "--json".as_ref(),
        ])
        .ok();
    let d: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        d["changes"].as_array().unwrap().len(),
        0,
        "import(dump(snapshot)) differs from the snapshot\n{}",
        out.stdout
    );
    // And it restores to the fixture.
    let restored = v.dir.join("restored");
    v.restore(&second, &restored, &[]).restore_ok();
    compare::assert_same(&f.root, &common::restored(&restored, &f.root));
}

#[test]
fn dump_names_a_missing_path() {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("a"), b"a").unwrap();
    v.init();
    v.snapshot(&[&src]);
    let out = dump_to(&v, &["latest", "/no/such/path"], &v.dir.join("x.tar"));
    assert!(!out.ok);
    assert!(out.stderr.contains("/no/such/path"), "{}", out.stderr);
}
