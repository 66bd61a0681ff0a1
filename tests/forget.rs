//! `vault forget`: the policy from flags or from the configuration, a dry run that changes
//! nothing, removal of exactly what the policy drops, and refusal on a writer-only host.

mod common;

use common::Vault;

fn setup() -> Vault {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    for (i, tag) in ["pre-upgrade", "a", "b", "c", "d"].iter().enumerate() {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 300_000]).unwrap();
        v.ok(["snapshot", "--tag", tag, src.to_str().unwrap()]);
    }
    v
}

fn tags(v: &Vault) -> Vec<String> {
    v.snapshots_json()
        .iter()
        .map(|s| s["tags"][0].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn flags_decide_and_dry_run_changes_nothing() {
    let v = setup();
    let before = v.snapshot_ids();
    assert_eq!(before.len(), 5);
    let dry = v.ok([
        "forget",
        "--keep-last",
        "2",
        "--keep-tag",
        "pre-upgrade",
        "--dry-run",
    ]);
    assert!(dry.contains("tag pre-upgrade"), "{dry}");
    assert!(dry.contains("last 1") && dry.contains("last 2"), "{dry}");
    let removals = dry
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "remove"))
        .count();
    assert_eq!(removals, 2, "{dry}");
    assert_eq!(v.snapshot_ids(), before, "dry run removes nothing");
    v.ok([
        "forget",
        "--keep-last",
        "2",
        "--keep-tag",
        "pre-upgrade",
        "--prune",
    ]);
    assert_eq!(tags(&v), ["pre-upgrade", "c", "d"]);
    v.ok(["check", "--read-data"]);
    let out = v.path("out");
    v.ok([
        "restore",
        "latest",
        "--to",
        out.to_str().unwrap(),
        "--verify",
    ]);
}

#[test]
fn policy_from_the_configuration() {
    let v = setup();
    std::fs::write(&v.config, "[retention]\nkeep_last = 1\n").unwrap();
    let out = v.ok(["forget"]);
    assert!(out.contains("removed 4 of 5"), "{out}");
    assert_eq!(tags(&v), ["d"]);
}

#[test]
fn empty_policy_and_writer_only_host_are_refused() {
    let v = setup();
    let out = v.run(["forget"]).failed();
    assert!(out.stderr.contains("no keep rule"), "{}", out.describe());
    // Without the passphrase (or identity) this host holds only its writer key.
    for args in [&["forget", "--keep-last", "1"][..], &["prune"]] {
        let mut cmd = v.command(args);
        cmd.env_remove("VAULT_PASSPHRASE");
        let out = common::run_command(cmd).failed();
        assert!(out.stderr.contains("reader identity"), "{}", out.describe());
    }
    assert_eq!(v.snapshot_ids().len(), 5);
}
