//! Snapshots and restores killed with SIGKILL at random points of their run: after each
//! kill `check` passes, the next run completes, and every snapshot kept restores
//! byte-exact.
//!
//! `VAULT_CRASH_POINTS` sets the kill points per command (default 3, for CI);
//! `VAULT_CRASH_SEED` the seed; `benches/crash_snapshot_restore.sh` runs 100 or more.

mod common;

use common::compare;
use common::{random_bytes, restored, Vault};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn points() -> u64 {
    std::env::var("VAULT_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn rng() -> Rng {
    let seed = std::env::var("VAULT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xC0FFEE);
    eprintln!("crash seed {seed}");
    Rng(seed | 1)
}

/// Runs `vault ARGS` and kills it after `delay`; true when it was still running.
fn kill_after(v: &Vault, args: &[&std::ffi::OsStr], delay: Duration) -> bool {
    let mut child = v
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vault");
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// How long a full run of `vault ARGS` takes (which must succeed or be partial).
fn timed(v: &Vault, args: &[&std::ffi::OsStr]) -> Duration {
    let t = Instant::now();
    let out = v.run(args);
    assert!(matches!(out.code, Some(0 | 3)), "{}", out.describe());
    t.elapsed()
}

/// `check` after a kill: clean, or naming only leftovers the next run removes.
fn check_after_kill(v: &Vault) {
    let out = v.run(["check"]);
    assert!(
        out.success() || (out.code == Some(3) && out.all().to_lowercase().contains("leftover")),
        "check after a kill\n{}",
        out.describe()
    );
}

fn is_temp(p: &Path) -> bool {
    p.file_name().is_some_and(|n| {
        n.as_bytes().starts_with(b".") && n.as_bytes().windows(11).any(|w| w == b".vault-tmp-")
    })
}

fn source(v: &Vault) -> std::path::PathBuf {
    let src = v.path("src");
    for d in 0..3 {
        let dir = src.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..40u64 {
            let seed = d * 100 + f;
            let len = if f % 13 == 0 {
                3_000_000
            } else {
                20_000 + (seed as usize * 977) % 90_000
            };
            fs::write(dir.join(format!("f{f:02}")), random_bytes(seed, len)).unwrap();
        }
    }
    std::os::unix::fs::symlink("d0/f01", src.join("link")).unwrap();
    fs::hard_link(src.join("d1/f02"), src.join("hard")).unwrap();
    src
}

#[test]
fn killed_snapshots_at_random_points_leave_a_store_that_checks_and_restores() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    let snap = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["snapshot".into(), src.clone().into()];
        a.extend(extra.iter().map(Into::into));
        a
    };
    let args = snap(&[]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mut last = timed(&v, &args);
    let mut rng = rng();
    let (mut killed, n) = (0, points());
    for i in 0..n {
        // New data each time, so every run has packs to write.
        fs::write(
            src.join(format!("d{}/new{i:04}", i % 3)),
            random_bytes(10_000 + i, 2_000_000 + (i as usize % 7) * 1_000_000),
        )
        .unwrap();
        // A point anywhere in a run like the last one (and a little after).
        let delay = Duration::from_micros(rng.next() % (last.as_micros() as u64 * 11 / 10 + 1));
        if kill_after(&v, &args, delay) {
            killed += 1;
        }
        check_after_kill(&v);
        // The next run completes.
        last = timed(&v, &args);
        if i % 10 == 9 {
            // Older snapshots go, so the store does not grow without end.
            v.ok(["forget", "--keep-last", "3", "--prune"]);
        }
    }
    v.ok(["check", "--read-data"]);
    let ids = v.snapshot_ids();
    for id in &ids {
        let out = v.dir.join(format!("out-{id}"));
        v.restore(id, &out, &["--verify"]).restore_ok();
        fs::remove_dir_all(&out).unwrap();
    }
    let out = v.dir.join("out-latest");
    v.restore("latest", &out, &[]).restore_ok();
    compare::assert_same(&src, &restored(&out, &src));
    eprintln!(
        "snapshot: {n} kill points, {killed} killed mid-run, {} snapshots kept, each restored and verified",
        ids.len()
    );
}

#[test]
fn killed_restores_at_random_points_end_exact_on_the_next_run() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    v.snapshot(&[&src]);
    let out = v.dir.join("out");
    let restore = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            "restore".into(),
            "latest".into(),
            "--to".into(),
            out.clone().into(),
        ];
        a.extend(extra.iter().map(Into::into));
        a
    };
    let first = restore(&[]);
    let first: Vec<&std::ffi::OsStr> = first.iter().map(|a| a.as_os_str()).collect();
    let full = timed(&v, &first);
    fs::remove_dir_all(&out).unwrap();
    let policies = ["if-newer", "never", "if-changed", "always"];
    let mut rng = rng();
    let (mut killed, n) = (0, points());
    for i in 0..n {
        let policy = policies[i as usize % policies.len()];
        let args = restore(&["--overwrite", policy]);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        // Start from an empty target half of the time, from a finished one otherwise.
        if i % 2 == 0 && out.exists() {
            fs::remove_dir_all(&out).unwrap();
        }
        let delay = Duration::from_micros(rng.next() % (full.as_micros() as u64 + 1));
        if kill_after(&v, &args, delay) {
            killed += 1;
        }
        timed(&v, &args);
        let left: Vec<_> = common::walk(&out)
            .into_iter()
            .filter(|p| is_temp(p))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        compare::assert_same(&src, &restored(&out, &src));
    }
    eprintln!("restore: {n} kill points, {killed} killed mid-run, every re-run exact");
}
