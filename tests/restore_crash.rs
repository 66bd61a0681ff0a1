//! A restore killed part way (SIGKILL, as a crash would stop it) leaves no partial file
//! under a real name; a re-run with any `--overwrite` policy ends exact, and removes the
//! killed run's temporary files.

mod common;

use common::compare;
use common::fixture;
use common::{random_bytes, restored, Vault};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn is_temp(p: &Path) -> bool {
    p.file_name().is_some_and(|n| {
        n.as_bytes().starts_with(b".") && n.as_bytes().windows(11).any(|w| w == b".vault-tmp-")
    })
}

/// A world whose snapshot takes a while to restore: the fixture plus larger files.
fn world() -> (Vault, PathBuf) {
    let v = Vault::new();
    let root = v.dir.join("fixture");
    fixture::build(&root);
    let bulk = root.join("bulk");
    fs::create_dir(&bulk).unwrap();
    for i in 0..4u64 {
        fs::write(
            bulk.join(format!("big{i}")),
            random_bytes(100 + i, 24 << 20),
        )
        .unwrap();
    }
    for i in 0..200u64 {
        fs::write(bulk.join(format!("small{i:03}")), random_bytes(i, 40_000)).unwrap();
    }
    fixture::set_mtimes(&root);
    v.init();
    let out = v.run(["snapshot".as_ref(), root.as_os_str()]);
    assert!(matches!(out.code, Some(0 | 3)), "{}", out.describe());
    (v, root)
}

/// Starts a restore into `out` and kills it as soon as it has begun writing files (a
/// regular file appears, under any name); returns false when it finished first.
fn kill_mid_restore(v: &Vault, out: &Path) -> bool {
    let mut child = v
        .command([
            "restore".as_ref(),
            "latest".as_ref(),
            "--to".as_ref(),
            out.as_os_str(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vault");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("restore finished ({status}) before it could be killed");
            return false;
        }
        let writing = out.exists()
            && common::walk(out).iter().any(|p| {
                p.symlink_metadata()
                    .is_ok_and(|m| m.is_file() && m.len() > 0)
            });
        if writing {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "restore hangs"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// No regular file under a real name holds anything but its whole content.
fn assert_no_partial_file(src: &Path, got: &Path) {
    for p in common::walk(got) {
        if is_temp(&p) || !p.symlink_metadata().unwrap().is_file() {
            continue;
        }
        let rel = p.strip_prefix(got).unwrap();
        let orig = src.join(rel);
        let (Ok(a), Ok(b)) = (fs::read(&orig), fs::read(&p)) else {
            continue;
        };
        assert!(
            a == b,
            "{} carries its real name but not its whole content",
            p.display()
        );
    }
}

#[test]
fn killed_restore_leaves_no_truncated_file_under_a_real_name() {
    let (v, src) = world();
    let mut killed = 0;
    for policy in ["if-newer", "never", "if-changed", "always"] {
        let out = v.dir.join(format!("out-{policy}"));
        if kill_mid_restore(&v, &out) {
            killed += 1;
            assert_no_partial_file(&src, &restored(&out, &src));
        }
        let res = v
            .restore("latest", &out, &["--overwrite", policy])
            .restore_ok();
        let left: Vec<_> = common::walk(&out)
            .into_iter()
            .filter(|p| is_temp(p))
            .collect();
        assert!(
            left.is_empty(),
            "temporary files left after the re-run: {left:?}\n{}",
            res.describe()
        );
        compare::assert_same(&src, &restored(&out, &src));
    }
    assert!(killed >= 2, "only {killed} restores were killed part way");
}
