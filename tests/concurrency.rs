//! Two snapshots into one store at the same time both succeed; a snapshot killed half-way
//! leaves a store that `check` calls healthy and the next snapshot completes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = env.vault(&["init"]).output().unwrap();
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Every host shares the store but has its own cache, as separate machines would.
    fn vault_as(&self, host: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
        c.arg("--config")
            .arg(self.path("none.toml"))
            .arg("--store")
            .arg(self.path("store"))
            .arg("--cache-dir")
            .arg(self.path(&format!("cache-{host}")))
            .arg("--writer-key")
            .arg(self.path("writer.json"))
            .env("VAULT_PASSPHRASE", "concurrency test")
            .env_remove("VAULT_IDENTITY_FILE")
            .stdin(Stdio::null())
            .args(args);
        std::fs::write(self.path("none.toml"), "").unwrap();
        c
    }

    fn vault(&self, args: &[&str]) -> Command {
        self.vault_as("main", args)
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.vault(args).output().unwrap();
        assert!(
            out.status.success(),
            "vault {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn write_tree(root: &Path, seed: u64, files: usize, size: usize) {
    std::fs::create_dir_all(root).unwrap();
    let mut x = seed | 1;
    for i in 0..files {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half text-like, half random: some of it compresses.
                if (x >> 60) & 1 == 0 {
                    b"travis "[(x % 7) as usize]
                } else {
                    x as u8
                }
            })
            .collect();
        std::fs::write(root.join(format!("file-{i:03}")), data).unwrap();
    }
}

#[test]
fn two_snapshots_at_once_both_succeed_and_restore() {
    let env = Env::new();
    let a = env.path("src-a");
    let b = env.path("src-b");
    write_tree(&a, 1, 20, 600_000);
    write_tree(&b, 2, 20, 600_000);
    // Shared content, so both writers race to upload the same chunks.
    std::fs::copy(a.join("file-000"), b.join("shared")).unwrap();
    let spawn = |host: &str, src: &Path| {
        env.vault_as(host, &["snapshot", "--host", host, src.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ca = spawn("host-a", &a);
    let cb = spawn("host-b", &b);
    for child in [ca, cb] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let list: serde_json::Value = serde_json::from_str(&env.run_ok(&["snapshots", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "both snapshots are listed");
    env.run_ok(&["check", "--read-data"]);
    for snap in list {
        let id = snap["id"].as_str().unwrap();
        let target = env.path(&format!("out-{id}"));
        env.run_ok(&["restore", id, "--to", target.to_str().unwrap(), "--verify"]);
        let src = if snap["hostname"] == "host-a" { &a } else { &b };
        let restored = target.join(src.strip_prefix("/").unwrap());
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            assert_eq!(
                std::fs::read(entry.path()).unwrap(),
                std::fs::read(restored.join(entry.file_name())).unwrap(),
                "{:?}",
                entry.path()
            );
        }
    }
}

#[test]
fn killed_snapshot_leaves_a_healthy_store() {
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 3, 60, 1_000_000);
    // Kill the snapshot at several points of its run; each time the store must check
    // clean, and a final snapshot must complete and restore.
    for delay_ms in [50u64, 150, 300, 600] {
        let mut child = env
            .vault(&["snapshot", src.to_str().unwrap(), "--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        env.run_ok(&["check"]);
    }
    env.run_ok(&["snapshot", src.to_str().unwrap()]);
    env.run_ok(&["check", "--read-data"]);
    let out = env.path("out");
    env.run_ok(&["restore", "latest", "--to", out.to_str().unwrap(), "--verify"]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(src.join("file-059")).unwrap(),
        std::fs::read(restored.join("file-059")).unwrap()
    );
}
