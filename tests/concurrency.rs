//! Two snapshots into one store at the same time both succeed; a snapshot killed half-way
//! leaves a store that `check` calls healthy and the next snapshot completes.

mod common;

use common::{random_bytes, restored, Vault};
use std::path::Path;
use std::process::Stdio;

fn write_tree(root: &Path, seed: u64, files: usize, size: usize) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        // Half text-like, half random: some of it compresses.
        let mut data = random_bytes(seed * 1000 + i as u64, size / 2);
        data.extend(b"travis ".iter().cycle().take(size - size / 2));
        std::fs::write(root.join(format!("file-{i:03}")), data).unwrap();
    }
}

#[test]
fn two_snapshots_at_once_both_succeed_and_restore() {
    let v = Vault::new();
    v.init();
    let a = v.path("src-a");
    let b = v.path("src-b");
    write_tree(&a, 1, 20, 600_000);
    write_tree(&b, 2, 20, 600_000);
    // Shared content, so both writers race to upload the same chunks.
    std::fs::copy(a.join("file-000"), b.join("shared")).unwrap();
    // Enrol both hosts first, so the two snapshots race only each other.
    drop(v.command_as_host("host-a", ["snapshots"]));
    drop(v.command_as_host("host-b", ["snapshots"]));
    let spawn = |host: &str, src: &Path| {
        v.command_as_host(host, ["snapshot", "--host", host, src.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ca = spawn("host-a", &a);
    let cb = spawn("host-b", &b);
    for child in [ca, cb] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = v.snapshots_json();
    assert_eq!(list.len(), 2, "both snapshots are listed");
    v.ok(["check", "--read-data"]);
    for snap in list {
        let id = snap["id"].as_str().unwrap();
        let target = v.path(&format!("out-{id}"));
        v.ok(["restore", id, "--to", target.to_str().unwrap(), "--verify"]);
        let src = if snap["hostname"] == "host-a" { &a } else { &b };
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            assert!(
                std::fs::read(entry.path()).unwrap()
                    == std::fs::read(restored(&target, src).join(entry.file_name())).unwrap(),
                "{:?}",
                entry.path()
            );
        }
    }
}

#[test]
fn killed_snapshot_leaves_a_healthy_store() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    write_tree(&src, 3, 60, 1_000_000);
    // Kill the snapshot at several points of its run; each time the store must check
    // clean, and a final snapshot must complete and restore.
    for delay_ms in [50u64, 150, 300, 600] {
        v.kill_after(
            ["snapshot", src.to_str().unwrap(), "--threads", "1"],
            std::time::Duration::from_millis(delay_ms),
        );
        v.ok(["check"]);
    }
    v.ok(["snapshot", src.to_str().unwrap()]);
    v.ok(["check", "--read-data"]);
    let out = v.path("out");
    v.ok([
        "restore",
        "latest",
        "--to",
        out.to_str().unwrap(),
        "--verify",
    ]);
    assert!(
        std::fs::read(src.join("file-059")).unwrap()
            == std::fs::read(restored(&out, &src).join("file-059")).unwrap()
    );
}
