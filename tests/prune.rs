//! Prune removes what no snapshot needs, never what a kept or running snapshot needs, and
//! an interrupted prune leaves a healthy store.

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
        std::fs::write(env.path("none.toml"), "").unwrap();
        env.ok(&["init"]);
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

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
            .env("VAULT_PASSPHRASE", "prune test")
            .env_remove("VAULT_IDENTITY_FILE")
            .stdin(Stdio::null())
            .args(args);
        c
    }

    fn ok_as(&self, host: &str, args: &[&str]) -> String {
        let out = self.vault_as(host, args).output().unwrap();
        assert!(
            out.status.success(),
            "vault {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_as("admin", args)
    }

    fn snapshots(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Forgets a snapshot the way `forget` does: its record goes, its data stays until prune.
    fn drop_snapshot(&self, id: &str) {
        std::fs::remove_file(self.path("store/snapshots").join(id)).unwrap();
    }

    fn store_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        walk(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        }
        walk(&self.path("store/packs"))
    }
}

fn fill(dir: &Path, seed: u64, files: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x = seed | 1;
    for i in 0..files {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i:02}")), data).unwrap();
    }
}

fn restore_and_compare(env: &Env, id: &str, expected: &Path, src: &Path) {
    let out = env.path(&format!("restore-{id}"));
    env.ok(&["restore", id, "--to", out.to_str().unwrap(), "--verify"]);
    let restored = out.join(src.strip_prefix("/").unwrap());
    let mut names: Vec<_> = std::fs::read_dir(expected).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    let mut got: Vec<_> = std::fs::read_dir(&restored).unwrap().map(|e| e.unwrap().file_name()).collect();
    got.sort();
    assert_eq!(names, got, "snapshot {id}: same file names");
    for n in names {
        assert!(
            std::fs::read(expected.join(&n)).unwrap() == std::fs::read(restored.join(&n)).unwrap(),
            "snapshot {id}: {n:?} differs"
        );
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn prune_frees_forgotten_data_and_keeps_the_rest() {
    let env = Env::new();
    let src = env.path("src");
    fill(&src, 1, 8, 400_000);
    env.ok(&["snapshot", src.to_str().unwrap()]);
    let first = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    // Replace most files: the second snapshot shares only two of them.
    fill(&src, 2, 6, 400_000);
    let keep_copy = env.path("expected");
    fill(&keep_copy, 2, 6, 400_000);
    std::fs::copy(src.join("f06"), keep_copy.join("f06")).unwrap();
    std::fs::copy(src.join("f07"), keep_copy.join("f07")).unwrap();
    env.ok(&["snapshot", src.to_str().unwrap()]);
    let before = env.store_bytes();
    let dry = env.ok(&["prune", "--dry-run"]);
    assert!(dry.contains("dry run"), "{dry}");
    assert_eq!(env.store_bytes(), before, "a dry run changes nothing");
    env.drop_snapshot(&first);
    env.ok(&["prune"]);
    let after = env.store_bytes();
    assert!(after < before * 2 / 3, "prune freed the forgotten data: {before} -> {after}");
    env.ok(&["check", "--read-data"]);
    let second = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    restore_and_compare(&env, &second, &keep_copy, &src);
    // A second prune finds nothing more to do.
    env.ok(&["prune"]);
    assert_eq!(env.store_bytes(), after);
}

#[test]
fn prune_while_two_hosts_snapshot_in_a_loop() {
    let env = Env::new();
    let hosts = ["host-a", "host-b"];
    let rounds = 4;
    let writers: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(h, host)| {
            let src = env.path(&format!("src-{host}"));
            let mut cmds = Vec::new();
            for round in 0..rounds {
                // Each round rewrites part of the tree, keeps part, shares one file across hosts.
                fill(&src, (h * 100 + round) as u64 + 1, 3, 300_000);
                let expected = env.path(&format!("expected-{host}-{round}"));
                std::fs::create_dir_all(&expected).unwrap();
                for e in std::fs::read_dir(&src).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(e.path(), expected.join(e.file_name())).unwrap();
                }
                cmds.push(expected);
            }
            (host.to_string(), src, cmds)
        })
        .collect();
    // The trees above are the expected contents; now replay them concurrently.
    let mut handles = Vec::new();
    for (host, src, expected) in writers {
        let env_path = env.dir.path().to_path_buf();
        handles.push(std::thread::spawn(move || {
            let mut made = Vec::new();
            for exp in &expected {
                for e in std::fs::read_dir(exp).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(e.path(), src.join(e.file_name())).unwrap();
                }
                let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
                let out = c
                    .arg("--config")
                    .arg(env_path.join("none.toml"))
                    .arg("--store")
                    .arg(env_path.join("store"))
                    .arg("--cache-dir")
                    .arg(env_path.join(format!("cache-{host}")))
                    .arg("--writer-key")
                    .arg(env_path.join("writer.json"))
                    .args(["snapshot", "--host", &host, "--tag", exp.file_name().unwrap().to_str().unwrap()])
                    .arg(&src)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{host}: {}", String::from_utf8_lossy(&out.stderr));
                made.push(exp.clone());
            }
            made
        }));
    }
    // Meanwhile: forget the oldest snapshots now and then, and prune repeatedly.
    let mut prunes = 0;
    while handles.iter().any(|h| !h.is_finished()) || prunes < 3 {
        let list = env.snapshots();
        if list.len() > 3 {
            env.drop_snapshot(list[0]["id"].as_str().unwrap());
        }
        env.ok(&["prune"]);
        prunes += 1;
    }
    for h in handles {
        h.join().unwrap();
    }
    env.ok(&["prune"]);
    env.ok(&["check", "--read-data"]);
    let list = env.snapshots();
    assert!(!list.is_empty());
    for snap in &list {
        let tag = snap["tags"][0].as_str().unwrap();
        let host = snap["hostname"].as_str().unwrap();
        let expected = env.path(tag);
        let src = env.path(&format!("src-{host}"));
        restore_and_compare(&env, snap["id"].as_str().unwrap(), &expected, &src);
    }
}

#[test]
fn killed_prune_leaves_a_healthy_store_and_the_next_one_completes() {
    let env = Env::new();
    let src = env.path("src");
    let mut ids = Vec::new();
    for round in 0..4 {
        fill(&src, round + 10, 12, 500_000);
        env.ok(&["snapshot", src.to_str().unwrap()]);
        ids.push(env.snapshots().last().unwrap()["id"].as_str().unwrap().to_string());
    }
    let expected = env.path("expected");
    fill(&expected, 13, 12, 500_000);
    for id in &ids[..3] {
        env.drop_snapshot(id);
    }
    for delay_ms in [20u64, 60, 120, 250] {
        let mut child = env
            .vault_as("admin", &["prune", "--repack-threshold", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        env.ok(&["check"]);
        restore_and_compare(&env, &ids[3], &expected, &src);
    }
    env.ok(&["prune"]);
    env.ok(&["check", "--read-data"]);
    restore_and_compare(&env, &ids[3], &expected, &src);
}
