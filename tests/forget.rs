//! `vault forget`: the policy from flags or from the configuration, a dry run that changes
//! nothing, removal of exactly what the policy drops, and refusal on a writer-only host.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn run(&self, config: &str, pass: bool, args: &[&str]) -> Output {
        std::fs::write(self.path("vault.toml"), config).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
        c.arg("--config")
            .arg(self.path("vault.toml"))
            .arg("--store")
            .arg(self.path("store"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--writer-key")
            .arg(self.path("writer.json"))
            .env_remove("VAULT_PASSPHRASE")
            .env_remove("VAULT_IDENTITY_FILE")
            .env("HOME", self.path("home"))
            .stdin(Stdio::null())
            .args(args);
        if pass {
            c.env("VAULT_PASSPHRASE", "forget test");
        }
        c.output().unwrap()
    }

    fn ok(&self, config: &str, args: &[&str]) -> String {
        let out = self.run(config, true, args);
        assert!(
            out.status.success(),
            "vault {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn snapshot_ids(&self) -> Vec<(String, Vec<String>)> {
        let v: serde_json::Value = serde_json::from_str(&self.ok("", &["snapshots", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect(),
                )
            })
            .collect()
    }
}

fn setup() -> Env {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    env.ok("", &["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for (i, tag) in ["pre-upgrade", "a", "b", "c", "d"].iter().enumerate() {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 300_000]).unwrap();
        env.ok("", &["snapshot", "--tag", tag, src.to_str().unwrap()]);
    }
    env
}

#[test]
fn flags_decide_and_dry_run_changes_nothing() {
    let env = setup();
    let before = env.snapshot_ids();
    assert_eq!(before.len(), 5);
    let dry = env.ok("", &["forget", "--keep-last", "2", "--keep-tag", "pre-upgrade", "--dry-run"]);
    assert!(dry.contains("tag pre-upgrade"), "{dry}");
    assert!(dry.contains("last 1") && dry.contains("last 2"), "{dry}");
    let removals = dry.lines().filter(|l| l.split_whitespace().any(|w| w == "remove")).count();
    assert_eq!(removals, 2, "{dry}");
    assert_eq!(env.snapshot_ids(), before, "dry run removes nothing");
    env.ok("", &["forget", "--keep-last", "2", "--keep-tag", "pre-upgrade", "--prune"]);
    let after: Vec<Vec<String>> = env.snapshot_ids().into_iter().map(|(_, t)| t).collect();
    assert_eq!(after, vec![vec!["pre-upgrade".to_string()], vec!["c".into()], vec!["d".into()]]);
    env.ok("", &["check", "--read-data"]);
    let out = env.path("out");
    env.ok("", &["restore", "latest", "--to", out.to_str().unwrap(), "--verify"]);
}

#[test]
fn policy_from_the_configuration() {
    let env = setup();
    let config = "[retention]\nkeep_last = 1\n";
    let out = env.ok(config, &["forget"]);
    assert!(out.contains("removed 4 of 5"), "{out}");
    assert_eq!(env.snapshot_ids().len(), 1);
}

#[test]
fn empty_policy_and_writer_only_host_are_refused() {
    let env = setup();
    let out = env.run("", true, &["forget"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no keep rule"));
    // Without the passphrase (or identity) this host holds only its writer key.
    let out = env.run("", false, &["forget", "--keep-last", "1"]);
    assert!(!out.status.success(), "a writer-only host must not forget");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reader identity"), "{err}");
    let out = env.run("", false, &["prune"]);
    assert!(!out.status.success(), "a writer-only host must not prune");
    assert_eq!(env.snapshot_ids().len(), 5);
}
