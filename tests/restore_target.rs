//! Restoring into a target that is not empty is safe: nothing is overwritten unless asked,
//! a refused restore writes nothing, `--dry-run` writes nothing, and symlinks planted in
//! the target never redirect writes outside `--to`.

mod common;

use common::compare::{self, diff_scans, scan};
use common::{restored, Out, Vault};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A store with one snapshot of `DIR/src`: a.txt, sub/b.txt, sub/deeper/c.txt.
fn world() -> (Vault, PathBuf) {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("a.txt"), b"new a\n").unwrap();
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("sub/b.txt"), b"new b\n").unwrap();
    fs::write(src.join("sub/deeper/c.txt"), b"new c\n").unwrap();
    common::fixture::set_mtimes(&src);
    v.init();
    v.snapshot(&[&src]);
    (v, src)
}

/// A target folder in which `src/a.txt` already exists with other content.
fn target_with_conflict(v: &Vault, src: &Path, name: &str) -> PathBuf {
    let out = v.path(name);
    let dst = restored(&out, src);
    fs::create_dir_all(&dst).unwrap();
    fs::write(dst.join("a.txt"), b"old a, must survive\n").unwrap();
    fs::write(dst.join("unrelated.txt"), b"not in the snapshot\n").unwrap();
    common::sys::set_mtime(&dst.join("a.txt"), 1_600_000_000, 5).unwrap();
    out
}

#[track_caller]
fn assert_unchanged(before: &compare::Scan, dir: &Path, r: &Out, what: &str) {
    let d = diff_scans(before, &scan(dir));
    assert!(
        d.is_empty(),
        "{what} changed {}:\n  {}\n{}",
        dir.display(),
        d.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("\n  "),
        r.describe()
    );
}

#[test]
fn conflict_without_overwrite_refuses_and_writes_nothing() {
    let (v, src) = world();
    let out = target_with_conflict(&v, &src, "out");
    let before = scan(&out);
    let r = v.restore("latest", &out, &[]).failed();
    assert!(
        r.stderr.contains("a.txt"),
        "stderr should list the path in the way\n{}",
        r.describe()
    );
    assert_unchanged(&before, &out, &r, "a refused restore");
}

#[test]
fn overwrite_always_replaces() {
    let (v, src) = world();
    let out = target_with_conflict(&v, &src, "out");
    let dst = restored(&out, &src);
    fs::remove_file(dst.join("unrelated.txt")).unwrap();
    v.restore("latest", &out, &["--overwrite", "always"])
        .restore_ok();
    compare::assert_same(&src, &dst);
}

#[test]
fn overwrite_never_keeps_the_old_file_and_restores_the_rest() {
    let (v, src) = world();
    let out = target_with_conflict(&v, &src, "out");
    let dst = restored(&out, &src);
    let r = v
        .restore("latest", &out, &["--overwrite", "never"])
        .restore_ok();
    assert_eq!(
        fs::read(dst.join("a.txt")).unwrap(),
        b"old a, must survive\n",
        "{}",
        r.describe()
    );
    assert_eq!(compare::entry(&dst.join("a.txt")).mtime, (1_600_000_000, 5));
    assert_eq!(
        fs::read(dst.join("unrelated.txt")).unwrap(),
        b"not in the snapshot\n"
    );
    compare::assert_same(&src.join("sub"), &dst.join("sub"));
}

#[test]
fn overwrite_if_newer_and_if_changed() {
    let (v, src) = world();
    // Target a.txt newer than the snapshot's: if-newer keeps it.
    let out = target_with_conflict(&v, &src, "newer");
    let dst = restored(&out, &src);
    common::sys::set_mtime(&dst.join("a.txt"), 4_000_000_000, 0).unwrap();
    v.restore("latest", &out, &["--overwrite", "if-newer"])
        .restore_ok();
    assert_eq!(
        fs::read(dst.join("a.txt")).unwrap(),
        b"old a, must survive\n"
    );
    // Older: replaced.
    let out = target_with_conflict(&v, &src, "older");
    let dst = restored(&out, &src);
    common::sys::set_mtime(&dst.join("a.txt"), 1_000_000_000, 0).unwrap();
    v.restore("latest", &out, &["--overwrite", "if-newer"])
        .restore_ok();
    assert_eq!(fs::read(dst.join("a.txt")).unwrap(), b"new a\n");
    // if-changed: different content is replaced.
    let out = target_with_conflict(&v, &src, "changed");
    let dst = restored(&out, &src);
    v.restore("latest", &out, &["--overwrite", "if-changed"])
        .restore_ok();
    assert_eq!(fs::read(dst.join("a.txt")).unwrap(), b"new a\n");
    compare::assert_same(&src.join("sub"), &dst.join("sub"));
}

#[test]
fn dry_run_writes_nothing_and_lists_what_it_would_do() {
    let (v, src) = world();
    // Empty target: everything would be created.
    let out = v.path("empty");
    let before = scan(&out);
    let r = v.restore("latest", &out, &["--dry-run"]).restore_ok();
    assert_unchanged(&before, &out, &r, "a dry run");
    for n in ["a.txt", "b.txt", "c.txt"] {
        assert!(
            r.all().contains(n),
            "dry run does not list {n}\n{}",
            r.describe()
        );
    }
    // With a conflict and --overwrite always: a.txt would be replaced; still nothing written.
    let out = target_with_conflict(&v, &src, "conflict");
    let before = scan(&out);
    let r = v
        .restore("latest", &out, &["--dry-run", "--overwrite", "always"])
        .restore_ok();
    assert_unchanged(&before, &out, &r, "a dry run with --overwrite always");
    assert!(
        r.all().contains("a.txt"),
        "dry run does not list a.txt\n{}",
        r.describe()
    );
}

/// Plants `link` (relative to the target) pointing at a fresh outside folder, restores with
/// every policy, and checks the outside folder is untouched.
/// What is planted in the target.
#[derive(Clone, Copy, PartialEq)]
enum Plant {
    /// A symlink to the outside folder.
    DirSymlink,
    /// A symlink to a file in the outside folder.
    FileSymlink,
    /// A hardlink to a file in the outside folder (same inode: writing into it in place,
    /// or changing its mode or mtime, changes the outside file).
    Hardlink,
}

fn planted_case(v: &Vault, src: &Path, link_rel: &Path, name: &str, plant: Plant) {
    for policy in [
        None,
        Some("always"),
        Some("never"),
        Some("if-changed"),
        Some("if-newer"),
    ] {
        let tag = format!("{name}-{}", policy.unwrap_or("default"));
        let outside = v.path(&format!("outside-{tag}"));
        fs::write(outside.join("victim.txt"), b"outside, must not change\n").unwrap();
        fs::write(outside.join("a.txt"), b"outside a\n").unwrap();
        let outside_before = scan(&outside);

        let out = v.path(&format!("out-{tag}"));
        let link = out.join(link_rel);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        match plant {
            Plant::DirSymlink => symlink(&outside, &link).unwrap(),
            Plant::FileSymlink => symlink(outside.join("victim.txt"), &link).unwrap(),
            Plant::Hardlink => fs::hard_link(outside.join("victim.txt"), &link).unwrap(),
        }
        let mut extra = vec![];
        if let Some(p) = policy {
            extra = vec!["--overwrite", p];
        }
        let r = v.restore("latest", &out, &extra);
        assert!(
            r.code.is_some() && !r.stderr.contains("panicked at"),
            "restore crashed\n{}",
            r.describe()
        );
        assert_unchanged(
            &outside_before,
            &outside,
            &r,
            &format!(
                "a restore into a target with {} planted as {} (policy {policy:?})",
                link_rel.display(),
                match plant {
                    Plant::DirSymlink => "a symlink to the outside folder",
                    Plant::FileSymlink => "a symlink to an outside file",
                    Plant::Hardlink => "a hardlink to an outside file",
                }
            ),
        );
        if policy == Some("always") && r.success() {
            // What was in the way was replaced by what the snapshot has.
            compare::assert_same(src, &restored(&out, src));
        }
    }
}

#[test]
fn planted_symlink_at_a_directory_inside_the_snapshot_does_not_redirect_writes() {
    let (v, src) = world();
    let rel = restored(Path::new(""), &src).join("sub");
    planted_case(&v, &src, &rel, "sub", Plant::DirSymlink);
}

#[test]
fn planted_symlink_at_a_parent_of_the_snapshot_path_does_not_redirect_writes() {
    let (v, src) = world();
    // The first component of the recorded path (e.g. OUT/tmp -> outside).
    let first: PathBuf = src.components().nth(1).unwrap().as_os_str().into();
    planted_case(&v, &src, &first, "parent", Plant::DirSymlink);
    // And the snapshot's own root (OUT/.../src -> outside).
    let root_rel = restored(Path::new(""), &src);
    planted_case(&v, &src, &root_rel, "root", Plant::DirSymlink);
}

#[test]
fn planted_symlink_at_a_file_position_is_not_written_through() {
    let (v, src) = world();
    let rel = restored(Path::new(""), &src).join("a.txt");
    planted_case(&v, &src, &rel, "file", Plant::FileSymlink);
}

#[test]
fn planted_hardlink_at_a_file_position_is_not_written_through() {
    let (v, src) = world();
    let rel = restored(Path::new(""), &src).join("a.txt");
    planted_case(&v, &src, &rel, "hardlink", Plant::Hardlink);
}
