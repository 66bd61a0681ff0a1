//! Small things that mislead or leak: a mistyped config key echoing its value, a
//! world-readable cache, OS errors printed twice, and a restore summary that counts files
//! that failed as restored.

mod common;

use common::{restored, Vault};
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn mistyped_config_key_does_not_echo_its_value() {
    let v = Vault::new();
    fs::write(
        &v.config,
        "[s3]\nregion = \"us-east-1\"\nsecret_acces_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCY\"\n",
    )
    .unwrap();
    let out = v.run(["snapshots"]).failed();
    assert!(
        out.stderr.contains("secret_acces_key"),
        "{}",
        out.describe()
    );
    assert!(
        !out.all().contains("wJalrXUtnFEMI"),
        "the value of the mistyped key was printed\n{}",
        out.describe()
    );
}

#[test]
fn cache_database_is_private() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fs::write(src.join("a"), b"private path names").unwrap();
    v.snapshot(&[&src]);
    let mut dbs = Vec::new();
    for p in common::walk(&v.cache) {
        if p.file_name().is_some_and(|n| n == "cache.sqlite") {
            dbs.push(p);
        }
    }
    assert!(
        !dbs.is_empty(),
        "a cache database under {}",
        v.cache.display()
    );
    for db in dbs {
        let mode = fs::metadata(&db).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", db.display());
        let folder = db.parent().unwrap();
        let mode = fs::metadata(folder).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", folder.display());
    }
}

#[test]
fn os_error_is_printed_once() {
    let v = Vault::new();
    v.init();
    let missing = v.dir.join("no-such-folder");
    let out = v.run(["snapshot".as_ref(), missing.as_os_str()]).failed();
    let os = "(os error 2)";
    assert_eq!(
        out.stderr.matches(os).count(),
        1,
        "the OS error once\n{}",
        out.describe()
    );
    assert!(out.stderr.contains("no-such-folder"), "{}", out.describe());
}

#[test]
fn restore_summary_does_not_count_failed_files_as_restored() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    // The first snapshot holds only b; the second adds a. Removing the first snapshot's
    // packs removes b's data and nothing the second snapshot's folders need.
    fs::write(src.join("b"), common::random_bytes(2, 300_000)).unwrap();
    v.snapshot(&[&src]);
    let first: Vec<_> = common::walk(&v.store.join("packs"));
    fs::write(src.join("a"), common::random_bytes(1, 300_000)).unwrap();
    v.snapshot(&[&src]);
    let mut removed = 0;
    for p in first {
        if p.is_file() {
            fs::remove_file(p).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "the first snapshot wrote a pack");
    let out = v.path("out");
    let res = v.restore("latest", &out, &[]);
    assert_ne!(res.code, Some(0), "{}", res.describe());
    assert!(restored(&out, &src).join("a").exists());
    assert!(!restored(&out, &src).join("b").exists());
    assert!(
        res.stdout.contains(": 1 files,"),
        "only the file that was written counts\n{}",
        res.describe()
    );
}
