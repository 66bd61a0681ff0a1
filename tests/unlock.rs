//! A killed process's lease: "store is busy" says which lease, whose, since when and how
//! to clear it; `vault unlock` removes leases whose process is gone, and with `--force` a
//! named lease of a host that is down.

mod common;

use common::{random_bytes, Vault};
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a snapshot as host `host` (its own UTS namespace) and kills it with SIGKILL
/// as soon as its lease is in the store; returns the lease's name.
fn killed_snapshot_lease(v: &Vault, host: Option<&str>) -> String {
    let src = v.path("src");
    fs::write(src.join("big"), random_bytes(3, 64 << 20)).unwrap();
    let locks = v.store.join("locks");
    for _ in 0..10 {
        let vault = v.command(["snapshot", src.to_str().unwrap()]);
        let mut cmd = match host {
            Some(h) => {
                let mut c = Command::new("unshare");
                c.arg("--uts")
                    .arg("sh")
                    .arg("-c")
                    .arg(format!("hostname {h} && exec \"$0\" \"$@\""))
                    .arg(vault.get_program())
                    .args(vault.get_args());
                for (k, val) in vault.get_envs() {
                    match val {
                        Some(val) => c.env(k, val),
                        None => c.env_remove(k),
                    };
                }
                c
            }
            None => vault,
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vault");
        let started = Instant::now();
        let lease = loop {
            let found = fs::read_dir(&locks)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .next()
                })
                .unwrap_or(None);
            if found.is_some() || started.elapsed() > Duration::from_secs(30) {
                break found;
            }
            if child.try_wait().unwrap().is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let _ = child.kill();
        let _ = child.wait();
        if let Some(l) = lease {
            if locks.join(&l).exists() {
                return l;
            }
        }
    }
    panic!("could not catch a snapshot holding its lease");
}

#[test]
fn a_lease_of_a_dead_process_on_this_host_does_not_block_and_unlock_removes_it() {
    let v = Vault::new();
    v.init();
    let lease = killed_snapshot_lease(&v, None);
    v.ok(["prune"]);
    // prune removed it as stale; plant another and let unlock do it.
    let lease2 = killed_snapshot_lease(&v, None);
    assert_ne!(lease, lease2);
    let out = v.ok(["unlock"]);
    assert!(
        out.contains("removed lease") && out.contains(&lease2[..8]),
        "{out}"
    );
    assert!(!v.store.join("locks").join(&lease2).exists());
    v.ok(["check"]);
}

#[test]
fn a_lease_of_a_host_that_is_down_is_named_and_cleared_with_force() {
    let v = Vault::new();
    v.init();
    let lease = killed_snapshot_lease(&v, Some("downhost"));
    let busy = v.run(["--lock-wait", "0", "prune"]).failed();
    for what in [
        "busy",
        &lease[..8],
        "downhost",
        "since",
        "vault unlock --force",
    ] {
        assert!(
            busy.stderr.contains(what),
            "busy message names {what:?}\n{}",
            busy.describe()
        );
    }
    let out = v.ok(["unlock"]);
    assert!(
        out.contains("kept live lease"),
        "unlock alone keeps a live lease of another host: {out}"
    );
    assert!(v.store.join("locks").join(&lease).exists());
    v.run(["unlock", "--force", "ffffffffffff"]).failed();
    let out = v.ok(["unlock", "--force", &lease[..8]]);
    assert!(out.contains("removed lease"), "{out}");
    assert!(!v.store.join("locks").join(&lease).exists());
    v.ok(["--lock-wait", "0", "prune"]);
    v.ok(["check"]);
}
