//! `prune --dry-run` shows prune's plan, pack by pack with the reason, and changes
//! nothing; `prune` then carries out that same plan.

mod common;

use common::{random_bytes, Vault};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn fill(dir: &Path, seed: u64, files: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        std::fs::write(
            dir.join(format!("f{i:02}")),
            random_bytes(seed * 1000 + i as u64, size),
        )
        .unwrap();
    }
}

fn packs(v: &Vault) -> BTreeSet<String> {
    common::files_by_size(&v.store.join("packs"))
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect()
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON value ({e}): {out}"))
}

/// (pack, action, reason) of every entry of a plan.
fn entries(plan: &Value) -> BTreeSet<(String, String, String)> {
    plan.as_array()
        .expect("plan is an array")
        .iter()
        .map(|p| {
            (
                p["pack"].as_str().unwrap().to_string(),
                p["action"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn prune_dry_run_shows_the_plan_that_prune_then_carries_out() {
    let v = Vault::new();
    v.init();
    v.edit_config(|c| c.pack_size = 1 << 20);
    let src = v.path("src");
    fill(&src, 1, 8, 400_000);
    v.ok(["snapshot", src.to_str().unwrap()]);
    let first = v.snapshot_ids()[0].clone();
    // The second snapshot shares two files with the first.
    fill(&src, 2, 6, 400_000);
    v.ok(["snapshot", src.to_str().unwrap()]);
    v.drop_snapshot(&first);
    // A pack no index file names, as an interrupted snapshot leaves one.
    let stray = "ab".repeat(32);
    let shard = v.store.join("packs").join(&stray[..2]);
    std::fs::create_dir_all(&shard).unwrap();
    std::fs::write(shard.join(&stray), b"left by a killed run").unwrap();
    let before = packs(&v);

    let text = v.ok(["prune", "--dry-run"]);
    assert!(text.contains("dry run: nothing was changed"), "{text}");
    let dry = json_of(&v.ok(["prune", "--dry-run", "--json"]));
    assert_eq!(packs(&v), before, "a dry run changes nothing");
    assert_eq!(dry["dry_run"], true, "{dry}");
    let plan = entries(&dry["plan"]);
    assert!(
        plan.contains(&(stray.clone(), "delete".into(), "unindexed".into())),
        "the stray pack is planned for deletion as unindexed: {plan:?}"
    );
    // Which of the first snapshot's packs go whole and which are repacked depends on how
    // the packers filled them; some of them go one way or the other.
    assert!(
        plan.iter().any(|(p, _, _)| *p != stray),
        "packs only the forgotten snapshot used are planned to go: {plan:?}"
    );
    for (pack, action, reason) in &plan {
        let fits = matches!(
            (action.as_str(), reason.as_str()),
            ("delete", "unused" | "unindexed")
                | ("repack", "above_threshold")
                | ("unindex", "missing" | "size_mismatch")
        );
        assert!(fits, "{pack}: {action} because {reason}");
        assert!(before.contains(pack), "{pack} is in the store");
        // The text names the same pack with the same action.
        assert!(
            text.contains(&format!("{action} packs/{pack}")),
            "the dry run's text names {action} packs/{pack}:\n{text}"
        );
    }
    assert_eq!(
        dry["packs_deleted"].as_u64().unwrap() as usize,
        plan.iter().filter(|(_, a, _)| a == "delete").count()
    );
    assert_eq!(
        dry["packs_repacked"].as_u64().unwrap() as usize,
        plan.iter().filter(|(_, a, _)| a == "repack").count()
    );

    // prune does exactly that plan: every planned pack goes, every other pack stays.
    let done = json_of(&v.ok(["prune", "--json"]));
    assert_eq!(done["dry_run"], false, "{done}");
    assert_eq!(
        entries(&done["plan"]),
        plan,
        "prune carried out the dry run's plan"
    );
    let after = packs(&v);
    for (pack, _, _) in &plan {
        assert!(!after.contains(pack), "{pack} was planned to go and went");
    }
    let planned: BTreeSet<&String> = plan.iter().map(|(p, _, _)| p).collect();
    for pack in before.iter().filter(|p| !planned.contains(p)) {
        assert!(
            after.contains(pack),
            "{pack} was not planned to go and stayed"
        );
    }
    v.ok(["check", "--read-data"]);
    // Nothing is left to do.
    let again = json_of(&v.ok(["prune", "--dry-run", "--json"]));
    assert_eq!(again["plan"].as_array().unwrap().len(), 0, "{again}");
}

#[test]
fn prune_refusal_names_what_to_run() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fill(&src, 3, 2, 100_000);
    v.ok(["snapshot", src.to_str().unwrap()]);
    for e in std::fs::read_dir(v.store.join("index")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::remove_dir_all(&v.cache).unwrap();
    let before = packs(&v);
    let out = v.run(["prune", "--json"]).failed();
    let j = json_of(&out.stdout);
    let error = j["error"].as_str().unwrap();
    assert!(
        error.contains("prune stopped before changing anything")
            && error.contains("vault repair index")
            && error.contains("vault check"),
        "{error}"
    );
    assert!(
        out.stderr.contains("vault repair index"),
        "{}",
        out.describe()
    );
    assert_eq!(packs(&v), before);
}

/// A pack's header and trailer are not unused data: a small pack whose every blob is in
/// use (a small snapshot's one pack, or the tail a repack writes) is not repacked, where
/// counting its header and trailer as waste put it above the threshold on every prune,
/// so prune never settled.
#[test]
fn prune_does_not_repack_a_small_pack_for_its_header_and_trailer() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fill(&src, 7, 3, 300);
    v.ok(["snapshot", src.to_str().unwrap()]);
    let sizes: Vec<u64> = common::files_by_size(&v.store.join("packs"))
        .iter()
        .map(|(_, s)| *s)
        .collect();
    assert!(
        sizes.iter().all(|&s| s < 8192),
        "the snapshot's packs are small: {sizes:?}"
    );
    let dry = json_of(&v.ok(["prune", "--dry-run", "--json"]));
    assert_eq!(
        dry["plan"].as_array().unwrap().len(),
        0,
        "nothing is unused, so nothing is repacked: {dry}"
    );
}
