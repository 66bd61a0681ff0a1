//! Restore day on a fresh host: `latest` is this host's snapshot (never another host's),
//! `restore --delete` makes the target identical under the restored paths and nothing
//! else, a store is never created with its only key silently left on the host, and the
//! README's restore procedure works as written.

mod common;

use common::{restored, Out, Vault};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes `cmd` run without a controlling terminal, as under cron or CI.
fn detach(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it runs
    // in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Runs as the host named `host` runs it: the configuration names the host.
fn on_host(v: &Vault, host: &str, args: &[&str]) -> Out {
    fs::write(&v.config, format!("hostname = {host:?}\n")).unwrap();
    // Each host writes with its own key, so its snapshots verify as its own.
    let mut cmd = v.command_as_host(host, args);
    detach(&mut cmd);
    common::run_command(cmd)
}

fn tree_of(v: &Vault, name: &str, marker: &str) -> PathBuf {
    let src = v.path(name);
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/marker"), marker).unwrap();
    fs::write(src.join(format!("{name}.only")), marker).unwrap();
    src
}

#[test]
fn latest_restores_each_hosts_own_tree_and_a_fresh_host_is_told_the_choices() {
    let v = Vault::new();
    v.init();
    let platform = tree_of(&v, "platform-src", "platform data");
    let worker = tree_of(&v, "worker-src", "worker data");
    // In turn: platform, worker, platform again, worker last (the store's newest).
    on_host(
        &v,
        "platform-1",
        &[
            "snapshot",
            "--host",
            "platform-1",
            platform.to_str().unwrap(),
        ],
    )
    .ok();
    on_host(
        &v,
        "worker-1",
        &["snapshot", "--host", "worker-1", worker.to_str().unwrap()],
    )
    .ok();
    fs::write(platform.join("etc/marker"), "platform data, second").unwrap();
    on_host(&v, "platform-1", &["snapshot", platform.to_str().unwrap()]).ok();
    fs::write(worker.join("etc/marker"), "worker data, second").unwrap();
    on_host(&v, "worker-1", &["snapshot", worker.to_str().unwrap()]).ok();

    for (host, src, marker) in [
        ("platform-1", &platform, "platform data, second"),
        ("worker-1", &worker, "worker data, second"),
    ] {
        let out = v.path(&format!("out-{host}"));
        on_host(
            &v,
            host,
            &["restore", "latest", "--to", out.to_str().unwrap()],
        )
        .restore_ok();
        let back = restored(&out, src);
        assert_eq!(
            fs::read_to_string(back.join("etc/marker")).unwrap(),
            marker,
            "{host}"
        );
        // Only this host's tree came back.
        let other = if src == &platform { &worker } else { &platform };
        assert!(
            !restored(&out, other).exists(),
            "{host} got another host's files"
        );
    }

    // Another host's snapshot, asked for by name, from the platform.
    let out = v.path("out-worker-from-platform");
    on_host(
        &v,
        "platform-1",
        &["restore", "latest:worker-1", "--to", out.to_str().unwrap()],
    )
    .restore_ok();
    assert!(restored(&out, &worker).join("worker-src.only").exists());
    let out = v.path("out-worker-by-flag");
    on_host(
        &v,
        "platform-1",
        &[
            "restore",
            "latest",
            "--host",
            "worker-1",
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .restore_ok();
    assert!(restored(&out, &worker).join("worker-src.only").exists());

    // A fresh host: refused, nothing written, both hosts listed with their newest snapshot.
    let ids: Vec<(String, String)> = v
        .snapshots_json()
        .iter()
        .map(|s| {
            (
                s["hostname"].as_str().unwrap().to_string(),
                s["short_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let newest = |host: &str| ids.iter().rev().find(|(h, _)| h == host).unwrap().1.clone();
    let out = v.dir.join("out-fresh");
    let r = on_host(
        &v,
        "fresh-host",
        &["restore", "latest", "--to", out.to_str().unwrap()],
    )
    .failed();
    assert!(r.stderr.contains("fresh-host"), "{}", r.describe());
    for host in ["platform-1", "worker-1"] {
        assert!(
            r.stderr
                .contains(&format!("{host}: latest {}", newest(host))),
            "{host} and its newest snapshot must be listed\n{}",
            r.describe()
        );
    }
    assert!(r.stderr.contains("latest:HOST"), "{}", r.describe());
    assert!(!out.exists(), "a refused restore created {}", out.display());

    // The same filters narrow the listing, and an id of another host's snapshot is
    // refused under a contradicting filter.
    fs::write(&v.config, "").unwrap();
    let listed = common::snapshot_list(&v.run(["snapshots", "--json", "--host", "worker-1"]).ok());
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["hostname"] == "worker-1"));
    let listed = common::snapshot_list(
        &v.run(["snapshots", "--json", "--path", platform.to_str().unwrap()])
            .ok(),
    );
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["hostname"] == "platform-1"));
    let worker_id = newest("worker-1");
    let r = v.run(["ls", &worker_id, "--host", "platform-1"]).failed();
    assert!(r.stderr.contains("does not match"), "{}", r.describe());
    let listing = v.ok(["ls", "latest:platform-1"]);
    assert!(
        listing.contains("platform-src.only") && !listing.contains("worker-src.only"),
        "{listing}"
    );
}

#[test]
fn tags_and_paths_select_what_forget_considers() {
    let v = Vault::new();
    v.init();
    let a = tree_of(&v, "a", "a");
    let b = tree_of(&v, "b", "b");
    v.ok(["snapshot", "--tag", "daily", a.to_str().unwrap()]);
    v.ok(["snapshot", "--tag", "daily", a.to_str().unwrap()]);
    v.ok(["snapshot", "--tag", "pre-upgrade", a.to_str().unwrap()]);
    v.ok(["snapshot", "--tag", "daily", b.to_str().unwrap()]);
    // Only a's daily snapshots are considered: the older of the two goes.
    v.ok([
        "forget",
        "--keep-last",
        "1",
        "--tag",
        "daily",
        "--path",
        a.to_str().unwrap(),
    ]);
    let left = v.snapshots_json();
    assert_eq!(left.len(), 3, "{left:?}");
    let tags_of = |path: &Path| -> Vec<String> {
        left.iter()
            .filter(|s| s["paths"][0] == path.to_str().unwrap())
            .map(|s| s["tags"][0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(tags_of(&a), ["daily", "pre-upgrade"]);
    assert_eq!(tags_of(&b), ["daily"]);
    let r = v.run(["lock", "extend", "--tag", "daily"]).failed();
    assert!(r.stderr.contains("--host only"), "{}", r.describe());
}

/// A store holding `src`: keep/, keep/inner/file, top.txt; and a target where it was
/// restored, then had extras added: an extra file, folder (with content), symlink, and a
/// symlink pointing out of the target at a folder whose files must survive.
struct DeleteWorld {
    v: Vault,
    src: PathBuf,
    out: PathBuf,
    outside: PathBuf,
    extras: Vec<PathBuf>,
}

fn delete_world() -> DeleteWorld {
    let v = Vault::new();
    let src = v.path("src");
    fs::create_dir_all(src.join("keep/inner")).unwrap();
    fs::write(src.join("keep/inner/file"), "kept").unwrap();
    fs::write(src.join("top.txt"), "top").unwrap();
    common::fixture::set_mtimes(&src);
    v.init();
    v.snapshot(&[&src]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    let dst = restored(&out, &src);
    let outside = v.path("outside");
    fs::write(outside.join("precious"), "must survive").unwrap();
    fs::write(dst.join("extra.txt"), "x").unwrap();
    fs::create_dir_all(dst.join("extra-dir/deeper")).unwrap();
    fs::write(dst.join("extra-dir/deeper/f"), "y").unwrap();
    symlink("top.txt", dst.join("extra-link")).unwrap();
    symlink(&outside, dst.join("keep/escape")).unwrap();
    fs::write(dst.join("keep/inner/extra-inner"), "z").unwrap();
    // Beside the restored path, inside the target: not restored, so never touched.
    fs::write(dst.parent().unwrap().join("beside.txt"), "not restored").unwrap();
    let extras = [
        "extra.txt",
        "extra-dir",
        "extra-dir/deeper",
        "extra-dir/deeper/f",
        "extra-link",
        "keep/escape",
        "keep/inner/extra-inner",
    ]
    .iter()
    .map(|p| dst.join(p))
    .collect();
    DeleteWorld {
        v,
        src,
        out,
        outside,
        extras,
    }
}

#[test]
fn restore_delete_removes_exactly_the_extras_and_never_follows_a_symlink_out() {
    let w = delete_world();
    let out = w.out.to_str().unwrap();
    let dst = restored(&w.out, &w.src);
    let all_there = |when: &str| {
        for e in &w.extras {
            assert!(
                e.symlink_metadata().is_ok(),
                "{when}: {} is gone",
                e.display()
            );
        }
    };

    // Without --delete: left, and counted.
    let r =
        w.v.run([
            "restore",
            "latest",
            "--to",
            out,
            "--overwrite",
            "always",
            "--dry-run",
        ])
        .ok();
    assert!(
        r.stdout
            .contains("7 entries not in the snapshot left in place"),
        "{}",
        r.describe()
    );
    let r =
        w.v.run(["restore", "latest", "--to", out, "--overwrite", "always"])
            .restore_ok();
    assert!(
        r.stdout
            .contains("7 entries not in the snapshot left in place"),
        "{}",
        r.describe()
    );
    all_there("restore without --delete");

    // Dry run with --delete: every extra listed, nothing removed.
    let r =
        w.v.run([
            "restore",
            "latest",
            "--to",
            out,
            "--overwrite",
            "always",
            "--delete",
            "--dry-run",
        ])
        .ok();
    for e in &w.extras {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("delete") && l.ends_with(e.to_str().unwrap())),
            "{} not listed\n{}",
            e.display(),
            r.describe()
        );
    }
    assert!(
        r.stdout.contains("7 entries not in the snapshot to delete"),
        "{}",
        r.describe()
    );
    all_there("dry run");

    // --include narrows it: only the extras below the included path go.
    let inner = w.src.join("keep/inner");
    w.v.run([
        "restore",
        "latest",
        "--to",
        out,
        "--overwrite",
        "always",
        "--delete",
        "--include",
        inner.to_str().unwrap(),
    ])
    .restore_ok();
    assert!(!dst.join("keep/inner/extra-inner").exists());
    for e in w.extras.iter().filter(|e| !e.ends_with("extra-inner")) {
        assert!(
            e.symlink_metadata().is_ok(),
            "{} removed outside --include",
            e.display()
        );
    }

    // The real thing: the restored path is identical to the snapshot.
    let r =
        w.v.run([
            "restore",
            "latest",
            "--to",
            out,
            "--overwrite",
            "always",
            "--delete",
        ])
        .restore_ok();
    assert!(
        r.stdout
            .contains("6 of 6 entries not in the snapshot deleted"),
        "{}",
        r.describe()
    );
    for e in &w.extras {
        assert!(
            e.symlink_metadata().is_err(),
            "{} survived --delete",
            e.display()
        );
    }
    common::compare::assert_same(&w.src, &dst);
    // Nothing beside the restored path, and nothing the escaping symlink pointed at.
    assert_eq!(
        fs::read_to_string(dst.parent().unwrap().join("beside.txt")).unwrap(),
        "not restored"
    );
    assert_eq!(
        fs::read_to_string(w.outside.join("precious")).unwrap(),
        "must survive"
    );
    // Identical now: nothing left to count.
    let r =
        w.v.run([
            "restore",
            "latest",
            "--to",
            out,
            "--overwrite",
            "always",
            "--dry-run",
        ])
        .ok();
    assert!(
        !r.stdout.contains("not in the snapshot"),
        "{}",
        r.describe()
    );
}

#[test]
fn restore_delete_never_enters_a_folder_swapped_for_a_symlink() {
    // A restored folder of the snapshot replaced in the target by a symlink to a folder
    // outside: the restore replaces the symlink, never lists or empties what it points at.
    let w = delete_world();
    let dst = restored(&w.out, &w.src);
    fs::remove_dir_all(dst.join("keep")).unwrap();
    symlink(&w.outside, dst.join("keep")).unwrap();
    w.v.run([
        "restore",
        "latest",
        "--to",
        w.out.to_str().unwrap(),
        "--overwrite",
        "always",
        "--delete",
    ])
    .restore_ok();
    assert_eq!(
        fs::read_to_string(w.outside.join("precious")).unwrap(),
        "must survive"
    );
    common::compare::assert_same(&w.src, &dst);
}

fn no_terminal(v: &Vault, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = v.command(args);
    cmd.env_remove("VAULT_PASSPHRASE");
    for (k, val) in env {
        cmd.env(k, val);
    }
    detach(&mut cmd);
    common::run_command(cmd)
}

#[test]
fn init_without_terminal_or_passphrase_refuses_and_writes_no_key() {
    let v = Vault::new();
    let r = no_terminal(&v, &["init"], &[]).failed();
    for what in [
        "VAULT_PASSPHRASE",
        "--recipient",
        "--no-passphrase",
        "--identity-out",
    ] {
        assert!(
            r.stderr.contains(what),
            "the refusal must name {what}\n{}",
            r.describe()
        );
    }
    assert!(
        !v.store.join("config").exists(),
        "a refused init created a store"
    );
    assert!(!v.writer_key.exists(), "a refused init wrote a writer key");
    assert!(
        !v.home.join(".config/vault").exists(),
        "a refused init wrote a key file"
    );

    // An identity file inside a folder that snapshots save is refused too.
    let saved = v.path("saved");
    fs::write(
        &v.config,
        format!("paths = [{:?}]\n", saved.to_str().unwrap()),
    )
    .unwrap();
    let inside = saved.join("keys/reader.txt");
    let r = no_terminal(
        &v,
        &[
            "init",
            "--no-passphrase",
            "--identity-out",
            inside.to_str().unwrap(),
        ],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("snapshots save"), "{}", r.describe());
    assert!(!inside.exists() && !v.store.join("config").exists());

    // The explicit choice: the identity goes where asked, 0600, and reads the store.
    fs::write(&v.config, "").unwrap();
    let id = v.dir.join("offline/reader.txt");
    fs::create_dir_all(id.parent().unwrap()).unwrap();
    no_terminal(
        &v,
        &[
            "init",
            "--no-passphrase",
            "--identity-out",
            id.to_str().unwrap(),
        ],
        &[],
    )
    .ok();
    assert_eq!(
        fs::metadata(&id).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !v.store.join("keys/reader").exists(),
        "--no-passphrase kept a copy in the store"
    );
    let src = tree_of(&v, "src", "data");
    no_terminal(&v, &["snapshot", src.to_str().unwrap()], &[]).ok();
    let out = v.path("out");
    let r = no_terminal(
        &v,
        &["restore", "latest", "--to", out.to_str().unwrap()],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("reader identity"), "{}", r.describe());
    no_terminal(
        &v,
        &[
            "--identity",
            id.to_str().unwrap(),
            "restore",
            "latest",
            "--to",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .restore_ok();
    assert!(restored(&out, &src).join("etc/marker").exists());
}

#[test]
fn init_with_only_an_offline_recipient_leaves_no_reader_key_on_the_host() {
    let v = Vault::new();
    let keyfile = v.dir.join("offline.txt");
    common::tool("age-keygen", &["-o".as_ref(), keyfile.as_os_str()], "age");
    let text = fs::read_to_string(&keyfile).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let r = no_terminal(&v, &["init", "--recipient", &public], &[]).ok();
    assert!(
        r.stdout.contains("no key that can read"),
        "{}",
        r.describe()
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(v.store.join("config")).unwrap()).unwrap();
    let name = format!("reader-{}.txt", config["store_id"].as_str().unwrap());
    for dir in [v.home.join(".config/vault"), PathBuf::from("/etc/vault")] {
        assert!(
            !dir.join(&name).exists(),
            "a reader identity was written to {}",
            dir.display()
        );
    }
    let src = tree_of(&v, "src", "data");
    no_terminal(&v, &["snapshot", src.to_str().unwrap()], &[]).ok();
    let out = v.path("out");
    no_terminal(
        &v,
        &[
            "--identity",
            keyfile.to_str().unwrap(),
            "restore",
            "latest",
            "--to",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .restore_ok();
    assert_eq!(
        fs::read_to_string(restored(&out, &src).join("etc/marker")).unwrap(),
        "data"
    );
}

#[test]
fn first_snapshot_into_the_default_store_refuses_without_a_passphrase() {
    // The default store is created on first use; without a terminal or passphrase that
    // must refuse rather than leave the only key on the host. Run as a user whose
    // default store lies inside this test's folder (as root it would be /var/backups).
    let v = Vault::new();
    let home = v.path("home-of-runner");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).unwrap();
    let src = tree_of(&v, "src", "data");
    fs::set_permissions(&v.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = if common::is_root() {
        let bin = v.bin_for(&home);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        Command::new(&v.bin)
    };
    cmd.arg("--config")
        .arg(&v.config)
        .arg("snapshot")
        .arg(&src)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home);
    detach(&mut cmd);
    let r = common::run_command(cmd).failed();
    assert!(r.stderr.contains("--no-passphrase"), "{}", r.describe());
    let store = home.join(".local/share/vault/store");
    assert!(
        !store.join("config").exists(),
        "a store was created at {}",
        store.display()
    );
    assert!(
        !home.join(".config/vault").exists(),
        "a key was written under {}",
        home.display()
    );
}

/// The README's restore-day block, as written there.
fn readme_restore_block() -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- tested: tests/restore_day.rs")
        .expect("the README marks its restore-day block");
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("a sh block follows the marker") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close].to_string()
}

#[test]
fn the_readme_restore_day_procedure_works_as_written() {
    let block = readme_restore_block();
    assert!(
        block.contains("--to /") && block.contains("--delete"),
        "{block}"
    );
    // The old platform host's snapshot.
    let v = Vault::new();
    v.init();
    let src = v.path("platform");
    fs::create_dir_all(src.join("etc/travis")).unwrap();
    fs::create_dir_all(src.join("var/travis/postgresql/pg_wal")).unwrap();
    fs::write(
        src.join("etc/travis/travis.yml"),
        "production:\n  encryption:\n    key: k\n",
    )
    .unwrap();
    fs::write(
        src.join("var/travis/postgresql/pg_wal/000000010000000000000001"),
        "old wal",
    )
    .unwrap();
    common::fixture::set_mtimes(&src);
    // The old platform host snapshots with its own key.
    let old_host = common::run_command(v.command_as_host(
        "platform-1",
        ["snapshot", "--host", "platform-1", src.to_str().unwrap()],
    ));
    assert!(old_host.success(), "{}", old_host.describe());

    // The new host: a fresh install put its own cluster there.
    let root = v.path("new-host-root");
    let fresh = restored(&root, &src);
    fs::create_dir_all(fresh.join("var/travis/postgresql/pg_wal")).unwrap();
    fs::write(
        fresh.join("var/travis/postgresql/pg_wal/000000010000000000000009"),
        "new wal",
    )
    .unwrap();
    fs::create_dir_all(fresh.join("etc/travis")).unwrap();
    fs::write(fresh.join("etc/travis/travis.yml"), "fresh install").unwrap();
    let passphrase = v.dir.join("passphrase");
    fs::write(&passphrase, format!("{}\n", common::PASSPHRASE)).unwrap();

    // The same commands, with the store and passphrase file of this test, and `--to /`
    // pointed at the new host's stand-in root; the host has no cache and no writer key.
    let script = block
        .replace("/var/backups/vault", v.store.to_str().unwrap())
        .replace("/root/vault-passphrase", passphrase.to_str().unwrap());
    let prelude = r#"
vault() {
  local args=() prev= a rc=0
  for a in "$@"; do
    if [ "$prev" = --to ] && [ "$a" = / ]; then a="$TEST_ROOT"; fi
    args+=("$a"); prev=$a
  done
  "$VAULT_BIN" --config "$TEST_CONFIG" --cache-dir "$TEST_CACHE" --writer-key "$TEST_WRITER" "${args[@]}" || rc=$?
  # Not root: owners of the folders above cannot be restored (exit 3, warned).
  if [ "$rc" -eq 3 ] && [ "$TEST_NOT_ROOT" = 1 ]; then rc=0; fi
  return "$rc"
}
"#;
    let mut cmd = Command::new("bash");
    cmd.arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(format!("{prelude}\n{script}"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &v.home)
        .env("VAULT_BIN", &v.bin)
        .env("TEST_ROOT", &root)
        .env("TEST_CONFIG", &v.config)
        .env("TEST_CACHE", v.dir.join("new-host-cache"))
        .env("TEST_WRITER", v.dir.join("new-host-writer.json"))
        .env("TEST_NOT_ROOT", if common::is_root() { "0" } else { "1" });
    detach(&mut cmd);
    let r = common::run_command(cmd).ok();
    let wal = fresh.join("var/travis/postgresql/pg_wal/000000010000000000000009");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("delete") && l.ends_with(wal.to_str().unwrap())),
        "the dry run must list the fresh cluster's WAL for deletion\n{}",
        r.describe()
    );
    assert!(!wal.exists(), "--delete left {}", wal.display());
    common::compare::assert_same(&src, &fresh);
}

/// `diff` and `find` choose snapshots as every other command does: `latest` is this host's
/// (not the store's newest, another host's), and `--host`, `--tag`, `--path` narrow them.
#[test]
fn diff_and_find_take_the_snapshot_filters_and_latest_is_this_hosts() {
    let v = Vault::new();
    v.init();
    let platform = tree_of(&v, "platform-src", "platform data");
    let worker = tree_of(&v, "worker-src", "worker data");
    on_host(&v, "platform-1", &["snapshot", platform.to_str().unwrap()]).ok();
    let first = v.snapshots_json()[0]["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::write(platform.join("etc/marker"), "platform data, second").unwrap();
    on_host(
        &v,
        "platform-1",
        &[
            "snapshot",
            "--tag",
            "pre-upgrade",
            platform.to_str().unwrap(),
        ],
    )
    .ok();
    // The store's newest snapshot is the worker's.
    on_host(&v, "worker-1", &["snapshot", worker.to_str().unwrap()]).ok();

    let changed_paths = |out: &Out| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["path"].as_str().unwrap().to_string())
            .collect()
    };
    // As the platform: `latest` is its second snapshot, which changed only the marker.
    let out = on_host(&v, "platform-1", &["--json", "diff", &first, "latest"]).ok();
    let changes = changed_paths(&out);
    assert!(
        !changes.is_empty() && changes.iter().all(|p| p.ends_with("etc/marker")),
        "diff against another host's snapshot? {changes:?}"
    );
    // The filters hold for both snapshots: the first is untagged and the platform's.
    for filter in [["--tag", "pre-upgrade"], ["--host", "worker-1"]] {
        let out = on_host(
            &v,
            "platform-1",
            &[
                &["--json", "diff", first.as_str(), "latest"][..],
                &filter[..],
            ]
            .concat(),
        )
        .failed();
        assert!(out.stderr.contains("does not match"), "{}", out.describe());
    }
    // --tag narrows `latest`: the platform's tagged snapshot is its latest.
    let out = on_host(
        &v,
        "platform-1",
        &["--json", "diff", "latest", "latest", "--tag", "pre-upgrade"],
    )
    .ok();
    assert!(changed_paths(&out).is_empty(), "{}", out.describe());
    // A fresh host has no `latest`: refused, with the hosts listed.
    let r = on_host(&v, "fresh-host", &["diff", &first, "latest"]).failed();
    assert!(
        r.stderr.contains("platform-1") && r.stderr.contains("worker-1"),
        "{}",
        r.describe()
    );

    // find: --tag and --path narrow the snapshots searched.
    let hosts_found = |args: &[&str]| -> Vec<String> {
        let out = on_host(
            &v,
            "platform-1",
            &[&["--json", "find", "*.only"], args].concat(),
        )
        .ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h["host"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(hosts_found(&[]).len(), 3);
    assert_eq!(hosts_found(&["--tag", "pre-upgrade"]), ["platform-1"]);
    assert_eq!(
        hosts_found(&["--path", worker.to_str().unwrap()]),
        ["worker-1"]
    );
    assert_eq!(hosts_found(&["--host", "platform-1"]).len(), 2);
}
