//! Prune removes what no snapshot needs, never what a kept or running snapshot needs, and
//! an interrupted prune leaves a healthy store.

mod common;

use common::{random_bytes, restored, Vault};
use std::path::Path;
use std::process::Stdio;

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

fn pack_bytes(v: &Vault) -> u64 {
    common::files_by_size(&v.store.join("packs"))
        .iter()
        .map(|(_, size)| size)
        .sum()
}

fn restore_and_compare(v: &Vault, id: &str, expected: &Path, src: &Path) {
    let out = v.path(&format!("restore-{id}"));
    v.ok(["restore", id, "--to", out.to_str().unwrap(), "--verify"]);
    let got = restored(&out, src);
    let names = |d: &Path| {
        let mut n: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(expected),
        names(&got),
        "snapshot {id}: same file names"
    );
    for n in names(expected) {
        assert!(
            std::fs::read(expected.join(&n)).unwrap() == std::fs::read(got.join(&n)).unwrap(),
            "snapshot {id}: {n:?} differs"
        );
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn prune_frees_forgotten_data_and_keeps_the_rest() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fill(&src, 1, 8, 400_000);
    v.ok(["snapshot", src.to_str().unwrap()]);
    let first = v.snapshot_ids()[0].clone();
    // Replace most files: the second snapshot shares only two of them.
    fill(&src, 2, 6, 400_000);
    let expected = v.path("expected");
    fill(&expected, 2, 6, 400_000);
    for kept in ["f06", "f07"] {
        std::fs::copy(src.join(kept), expected.join(kept)).unwrap();
    }
    v.ok(["snapshot", src.to_str().unwrap()]);
    let before = pack_bytes(&v);
    let dry = v.ok(["prune", "--dry-run"]);
    assert!(dry.contains("dry run"), "{dry}");
    assert_eq!(pack_bytes(&v), before, "a dry run changes nothing");
    v.drop_snapshot(&first);
    v.ok(["prune"]);
    let after = pack_bytes(&v);
    assert!(
        after < before * 2 / 3,
        "prune freed the forgotten data: {before} -> {after}"
    );
    v.ok(["check", "--read-data"]);
    let second = v.snapshot_ids()[0].clone();
    restore_and_compare(&v, &second, &expected, &src);
    // A second prune finds nothing more to do.
    v.ok(["prune"]);
    assert_eq!(pack_bytes(&v), after);
}

#[test]
fn prune_while_two_hosts_snapshot_in_a_loop() {
    let v = Vault::new();
    v.init();
    let rounds = 4;
    // Each host's rounds, written out first: what every snapshot must restore to.
    let plans: Vec<(String, std::path::PathBuf, Vec<std::path::PathBuf>)> = ["host-a", "host-b"]
        .iter()
        .enumerate()
        .map(|(h, host)| {
            let src = v.path(&format!("src-{host}"));
            let rounds = (0..rounds)
                .map(|round| {
                    let expected = v.path(&format!("expected-{host}-{round}"));
                    fill(&expected, (h * 100 + round) as u64 + 1, 3, 300_000);
                    expected
                })
                .collect();
            (host.to_string(), src, rounds)
        })
        .collect();
    // Each host writes with its own authorised key (enrolled here, before they race).
    for (host, _, _) in &plans {
        drop(v.command_as_host(host, ["snapshots"]));
    }
    std::thread::scope(|scope| {
        let writers: Vec<_> = plans
            .iter()
            .map(|(host, src, rounds)| {
                let v = &v;
                scope.spawn(move || {
                    for expected in rounds {
                        for e in std::fs::read_dir(expected).unwrap() {
                            let e = e.unwrap();
                            std::fs::copy(e.path(), src.join(e.file_name())).unwrap();
                        }
                        let tag = expected.file_name().unwrap().to_str().unwrap();
                        let out = v
                            .command_as_host(
                                host,
                                [
                                    "snapshot",
                                    "--host",
                                    host,
                                    "--tag",
                                    tag,
                                    src.to_str().unwrap(),
                                ],
                            )
                            .stdin(Stdio::null())
                            .output()
                            .unwrap();
                        assert!(
                            out.status.success(),
                            "{host}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                })
            })
            .collect();
        // Meanwhile: forget the oldest snapshots now and then, and prune repeatedly.
        let mut prunes = 0;
        while writers.iter().any(|w| !w.is_finished()) || prunes < 3 {
            let list = v.snapshots_json();
            if list.len() > 3 {
                v.drop_snapshot(list[0]["id"].as_str().unwrap());
            }
            v.ok(["prune"]);
            prunes += 1;
        }
        for w in writers {
            w.join().unwrap();
        }
    });
    v.ok(["prune"]);
    v.ok(["check", "--read-data"]);
    let list = v.snapshots_json();
    assert!(!list.is_empty());
    for snap in &list {
        let tag = snap["tags"][0].as_str().unwrap();
        let host = snap["hostname"].as_str().unwrap();
        restore_and_compare(
            &v,
            snap["id"].as_str().unwrap(),
            &v.dir.join(tag),
            &v.dir.join(format!("src-{host}")),
        );
    }
}

#[test]
fn killed_prune_leaves_a_healthy_store_and_the_next_one_completes() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    let mut ids = Vec::new();
    for round in 0..4 {
        fill(&src, round + 10, 12, 500_000);
        v.ok(["snapshot", src.to_str().unwrap()]);
        ids.push(v.snapshot_ids().last().unwrap().clone());
    }
    let expected = v.path("expected");
    fill(&expected, 13, 12, 500_000);
    for id in &ids[..3] {
        v.drop_snapshot(id);
    }
    for delay_ms in [20u64, 60, 120, 250] {
        v.kill_after(
            ["prune", "--repack-threshold", "0"],
            std::time::Duration::from_millis(delay_ms),
        );
        v.ok(["check"]);
        restore_and_compare(&v, &ids[3], &expected, &src);
    }
    v.ok(["prune"]);
    v.ok(["check", "--read-data"]);
    restore_and_compare(&v, &ids[3], &expected, &src);
}
