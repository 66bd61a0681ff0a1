//! The key model against an attacker who holds one host's writer key and can write any
//! object of the store: the config is authenticated by the admin, each host signs its own
//! snapshots, records are bound to their store and name, and weak passphrases are refused.

mod common;

use common::{run_command, Out, Vault};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `vault` as another host: its own writer key file and cache, with or without
/// the store passphrase.
fn on_host(v: &Vault, key: &Path, cache: &str, passphrase: bool, args: &[&str]) -> Out {
    let mut cmd = v.command(args);
    let mut global = v.global_args();
    let at = global.iter().position(|a| a == "--writer-key").unwrap();
    global[at + 1] = key.as_os_str().to_owned();
    let at = global.iter().position(|a| a == "--cache-dir").unwrap();
    global[at + 1] = v.dir.join(cache).into();
    let mut fresh = Command::new(&v.bin);
    fresh.args(global).args(args);
    for (k, val) in cmd.get_envs() {
        match val {
            Some(val) => fresh.env(k, val),
            None => fresh.env_remove(k),
        };
    }
    let _ = &mut cmd;
    if !passphrase {
        fresh.env_remove("VAULT_PASSPHRASE");
    }
    run_command(fresh)
}

/// Runs `vault` as a host holding only `key` (no passphrase, no identity).
fn as_writer(v: &Vault, key: &Path, cache: &str, args: &[&str]) -> Out {
    on_host(v, key, cache, false, args)
}

fn write_src(dir: &Path, tag: &str, files: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("f{i:02}")),
            common::random_bytes((i as u64) << 8 | tag.len() as u64, 300_000),
        )
        .unwrap();
    }
    fs::write(dir.join("travis.yml"), format!("written by {tag}\n")).unwrap();
}

fn config_json(v: &Vault) -> serde_json::Value {
    serde_json::from_slice(&fs::read(v.store.join("config")).unwrap()).unwrap()
}

fn put_config(v: &Vault, c: &serde_json::Value) {
    fs::write(
        v.store.join("config"),
        serde_json::to_vec_pretty(c).unwrap(),
    )
    .unwrap();
}

/// No pack in the store has a data key the attacker's identity unwraps.
fn no_pack_opens_for(v: &Vault, attacker: &age::x25519::Identity) -> usize {
    let mut n = 0;
    for e in fs::read_dir(v.store.join("packs")).unwrap() {
        let path = e.unwrap().path();
        let files: Vec<PathBuf> = if path.is_dir() {
            fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![path]
        };
        for f in files {
            let bytes = fs::read(&f).unwrap();
            let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            let (off, len) = vault::pack::header_range(header_len);
            let header = &bytes[off as usize..(off + len) as usize];
            let id = vault::Id::from_hex(f.file_name().unwrap().to_str().unwrap()).unwrap();
            assert!(
                vault::pack::open_header(attacker, header, &id).is_err(),
                "pack {} is wrapped to the attacker",
                f.display()
            );
            n += 1;
        }
    }
    n
}

#[test]
fn swapped_recipients_in_config_are_refused_by_prune_and_new_host_setup() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    // Several snapshots, then forget most, so that prune has packs to repack.
    for round in 0..3 {
        write_src(&src, &format!("round{round}"), 6);
        v.snapshot(&[&src]);
    }
    v.ok(["forget", "--keep-last", "1"]);

    let attacker = age::x25519::Identity::generate();
    let genuine = config_json(&v);

    // 1. Recipients swapped, signature left as it was.
    let mut swapped = genuine.clone();
    swapped["recipients"] = serde_json::json!([attacker.to_public().to_string()]);
    put_config(&v, &swapped);
    let out = v.run(["prune", "--repack-threshold", "5"]).failed();
    assert!(out.stderr.contains("config"), "{}", out.describe());
    assert!(out.stderr.contains("signature"), "{}", out.describe());
    // A new host set up with the passphrase (no writer key yet) refuses too.
    let new_key = v.dir.join("new-host.key");
    let out = on_host(
        &v,
        &new_key,
        "cache-new",
        true,
        &["snapshot", src.to_str().unwrap()],
    )
    .failed();
    assert!(out.stderr.contains("config"), "{}", out.describe());
    assert!(!new_key.exists(), "no writer key pinned to the attacker");
    // The host with a writer key refuses to write into it as well.
    let out = v.run(["snapshot", src.to_str().unwrap()]).failed();
    assert!(out.stderr.contains("config"), "{}", out.describe());

    // 2. Recipients swapped and the config re-signed with the attacker's own admin key.
    let mut forged: vault::repo::StoreConfig = serde_json::from_value(genuine.clone()).unwrap();
    forged.recipients = vec![attacker.to_public().to_string()];
    let fake_admin = vault::sign::SigningSecret::admin_from_identity(&attacker);
    forged.admin_key = Some(vault::sign::public_hex(&fake_admin.public()));
    forged.signature = None;
    let sig = vault::sign::sign_json(
        &fake_admin,
        "config",
        &forged.store_id,
        "config",
        "config",
        &forged,
    );
    forged.signature = Some(sig);
    fs::write(
        v.store.join("config"),
        serde_json::to_vec_pretty(&forged).unwrap(),
    )
    .unwrap();
    let out = v.run(["prune", "--repack-threshold", "5"]).failed();
    assert!(out.stderr.contains("config"), "{}", out.describe());
    let out = on_host(
        &v,
        &new_key,
        "cache-new",
        true,
        &["snapshot", src.to_str().unwrap()],
    )
    .failed();
    assert!(!new_key.exists(), "{}", out.describe());
    let out = v.run(["snapshot", src.to_str().unwrap()]).failed();
    assert!(out.stderr.contains("config"), "{}", out.describe());

    // Nothing was ever wrapped to the attacker; the genuine config back, all is well.
    assert!(no_pack_opens_for(&v, &attacker) > 0);
    put_config(&v, &genuine);
    v.ok(["prune", "--repack-threshold", "5"]);
    no_pack_opens_for(&v, &attacker);
    v.ok(["check", "--read-data"]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    assert_eq!(
        fs::read(common::restored(&out, &src).join("travis.yml")).unwrap(),
        b"written by round2\n"
    );
}

#[test]
fn worker_posing_as_the_platform_is_never_latest_and_is_flagged() {
    let v = Vault::new();
    v.init();
    let platform_key = v.dir.join("platform.key");
    let worker_key = v.dir.join("worker.key");
    v.ok([
        "host",
        "add",
        "platform-1",
        "--out",
        platform_key.to_str().unwrap(),
    ]);
    v.ok([
        "host",
        "add",
        "worker-1",
        "--out",
        worker_key.to_str().unwrap(),
    ]);
    let list = v.ok(["host", "list"]);
    assert!(
        list.contains("platform-1") && list.contains("worker-1"),
        "{list}"
    );

    let platform_src = v.path("platform");
    write_src(&platform_src, "the platform", 2);
    as_writer(
        &v,
        &platform_key,
        "cache-platform",
        &[
            "snapshot",
            "--host",
            "platform-1",
            platform_src.to_str().unwrap(),
        ],
    )
    .ok();

    // The worker writes a snapshot claiming to be the platform, of the same paths, later.
    let worker_src = v.path("worker");
    write_src(&worker_src, "the attacker", 2);
    fs::remove_dir_all(&platform_src).unwrap();
    fs::rename(&worker_src, &platform_src).unwrap();
    let forged = as_writer(
        &v,
        &worker_key,
        "cache-worker",
        &[
            "snapshot",
            "--host",
            "platform-1",
            platform_src.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(forged.stderr.contains("worker-1"), "{}", forged.describe());

    let list = v.snapshots_json();
    assert_eq!(list.len(), 2);
    let fake = list
        .iter()
        .find(|s| s["verified"] == false)
        .expect("the forged record is flagged");
    assert_eq!(fake["hostname"], "platform-1");
    let why = fake["problems"].to_string();
    assert!(why.contains("worker-1"), "{why}");
    let real = list.iter().find(|s| s["verified"] == true).unwrap();
    assert_eq!(real["verified_host"], "platform-1");

    // `latest`, for the admin and for the platform's own writer key, is the platform's.
    let out = v.path("out");
    let restore = v.restore("latest:platform-1", &out, &[]).restore_ok();
    assert!(
        restore.stderr.contains("signed by host platform-1"),
        "{}",
        restore.describe()
    );
    assert_eq!(
        fs::read(common::restored(&out, &platform_src).join("travis.yml")).unwrap(),
        b"written by the platform\n"
    );
    // Restoring the forged one by id says plainly that it is not verified.
    let out2 = v.path("out2");
    let r = v
        .restore(fake["id"].as_str().unwrap(), &out2, &[])
        .restore_ok();
    assert!(r.stderr.contains("NOT VERIFIED"), "{}", r.describe());
    let ls = v.run(["ls", "latest:platform-1"]).ok();
    assert!(ls.stderr.contains("platform-1"), "{}", ls.describe());
    // check reports the forgery.
    let check = v.run(["check"]).failed();
    assert!(
        check
            .stdout
            .contains(&fake["short_id"].as_str().unwrap().to_string()),
        "{}",
        check.describe()
    );

    // The worker cannot slip itself in as the platform through the registry either.
    let reg_path = v.store.join("keys").join("hosts");
    let mut reg: serde_json::Value = serde_json::from_slice(&fs::read(&reg_path).unwrap()).unwrap();
    let genuine = reg.clone();
    for h in reg["hosts"].as_array_mut().unwrap() {
        if h["name"] == "worker-1" {
            h["name"] = "platform-1".into();
        }
    }
    fs::write(&reg_path, serde_json::to_vec(&reg).unwrap()).unwrap();
    let out = v.run(["snapshots"]).failed();
    assert!(out.stderr.contains("keys/hosts"), "{}", out.describe());
    fs::write(&reg_path, serde_json::to_vec(&genuine).unwrap()).unwrap();

    // A revoked worker's new records are flagged; the admin can do that, the worker cannot.
    let out = as_writer(
        &v,
        &worker_key,
        "cache-worker",
        &["host", "revoke", "platform-1"],
    );
    assert!(!out.success(), "{}", out.describe());
    v.ok(["host", "revoke", "worker-1"]);
    assert!(v.ok(["host", "list"]).contains("revoked"));
}

#[test]
fn writer_key_cannot_change_recipients_or_enrol_hosts() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    write_src(&src, "x", 1);
    v.snapshot(&[&src]);
    let before = fs::read(v.store.join("config")).unwrap();
    let hosts_before = fs::read(v.store.join("keys").join("hosts")).unwrap();
    let other = age::x25519::Identity::generate().to_public().to_string();
    let key = v.writer_key.clone();
    for args in [
        vec!["key", "add-recipient", other.as_str()],
        vec!["key", "remove-recipient", other.as_str()],
        vec!["host", "add", "intruder", "--out", "/nonexistent-dir/x.key"],
        vec!["host", "revoke", "anything"],
    ] {
        let out = as_writer(&v, &key, "cache", &args);
        assert!(!out.success(), "{}", out.describe());
        assert!(
            out.stderr.contains("reader identity") || out.stderr.contains("passphrase"),
            "{}",
            out.describe()
        );
    }
    assert_eq!(fs::read(v.store.join("config")).unwrap(), before);
    assert_eq!(
        fs::read(v.store.join("keys").join("hosts")).unwrap(),
        hosts_before
    );
    // The writer still writes, lists, and still cannot read.
    as_writer(&v, &key, "cache", &["snapshot", src.to_str().unwrap()]).ok();
    as_writer(&v, &key, "cache", &["snapshots"]).ok();
    let out = v.path("out");
    let r = as_writer(
        &v,
        &key,
        "cache",
        &["restore", "latest", "--to", out.to_str().unwrap()],
    );
    assert!(!r.success(), "{}", r.describe());

    // The admin can: an offline key added reaches the writer's next packs.
    let offline = age::x25519::Identity::generate();
    v.ok(["key", "add-recipient", &offline.to_public().to_string()]);
    assert!(v
        .ok(["key", "list"])
        .contains(&offline.to_public().to_string()));
    write_src(&src, "after add-recipient", 1);
    as_writer(&v, &key, "cache", &["snapshot", src.to_str().unwrap()]).ok();
    let n_before = no_pack_count(&v);
    let mut opened = 0;
    for p in pack_files(&v) {
        let bytes = fs::read(&p).unwrap();
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        let (off, len) = vault::pack::header_range(header_len);
        let id = vault::Id::from_hex(p.file_name().unwrap().to_str().unwrap()).unwrap();
        if vault::pack::open_header(&offline, &bytes[off as usize..(off + len) as usize], &id)
            .is_ok()
        {
            opened += 1;
        }
    }
    assert!(opened >= 1 && opened < n_before, "{opened} of {n_before}");
    v.ok(["key", "remove-recipient", &offline.to_public().to_string()]);
    assert!(!v
        .ok(["key", "list"])
        .contains(&offline.to_public().to_string()));
}

fn pack_files(v: &Vault) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(v.store.join("packs")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push(p);
        }
    }
    out
}

fn no_pack_count(v: &Vault) -> usize {
    pack_files(v).len()
}

#[test]
fn record_copied_under_a_new_name_or_from_another_store_is_refused_and_reported() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    write_src(&src, "genuine", 1);
    v.snapshot(&[&src]);
    let ids = v.snapshot_ids();
    assert_eq!(ids.len(), 1);
    let renamed = "ab".repeat(32);
    fs::copy(
        v.store.join("snapshots").join(&ids[0]),
        v.store.join("snapshots").join(&renamed),
    )
    .unwrap();

    // Another store's record, dropped in under a fresh name.
    let w = Vault::new();
    w.init();
    let wsrc = w.path("src");
    write_src(&wsrc, "foreign", 1);
    w.snapshot(&[&wsrc]);
    let foreign_id = &w.snapshot_ids()[0];
    fs::copy(
        w.store.join("snapshots").join(foreign_id),
        v.store.join("snapshots").join(foreign_id),
    )
    .unwrap();

    let list = v.snapshots_json();
    let verified: Vec<_> = list.iter().filter(|s| s["verified"] == true).collect();
    assert_eq!(verified.len(), 1, "{list:?}");
    assert_eq!(verified[0]["id"], ids[0].as_str());
    let copy = list.iter().find(|s| s["id"] == renamed.as_str()).unwrap();
    assert!(copy["problems"].to_string().contains("renamed"), "{copy}");
    assert!(list
        .iter()
        .any(|s| s["id"] == foreign_id.as_str() && s["verified"] == false));

    let check = v.run(["check"]).failed();
    assert!(check.stdout.contains(&renamed[..8]), "{}", check.describe());
    assert!(
        check.stdout.contains(&foreign_id[..8]),
        "{}",
        check.describe()
    );
    assert!(check.stdout.contains("renamed"), "{}", check.describe());
    // `latest` is the genuine one; the foreign record does not restore.
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    assert_eq!(
        fs::read(common::restored(&out, &src).join("travis.yml")).unwrap(),
        b"written by genuine\n"
    );
    let out2 = v.path("out2");
    assert!(!v.restore(foreign_id, &out2, &[]).success());
}

#[test]
fn weak_passphrase_is_refused_with_the_reason() {
    let mut v = Vault::new();
    v.passphrase = "travis1".into();
    let out = v.run(["init"]).failed();
    assert!(out.stderr.contains("too weak"), "{}", out.describe());
    assert!(
        out.stderr.contains("--allow-weak-passphrase"),
        "{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains(".."),
        "each reason ends in one period: {}",
        out.describe()
    );
    assert!(!v.store.join("config").exists(), "nothing is created");
    v.ok(["--allow-weak-passphrase", "init"]);

    // set-passphrase rates the new one too (the reader identity from a file, the new
    // passphrase from VAULT_PASSPHRASE).
    let s = Vault::new();
    s.init();
    let id = s.dir.join("reader.txt");
    s.ok(["key", "export-identity", "--out", id.to_str().unwrap()]);
    let before = fs::read(s.store.join("keys").join("reader")).unwrap();
    let mut cmd = s.command(["--identity", id.to_str().unwrap(), "key", "set-passphrase"]);
    cmd.env("VAULT_PASSPHRASE", "abc123");
    let out = run_command(cmd).failed();
    assert!(out.stderr.contains("too weak"), "{}", out.describe());
    assert_eq!(
        fs::read(s.store.join("keys").join("reader")).unwrap(),
        before
    );
    let mut cmd = s.command(["--identity", id.to_str().unwrap(), "key", "set-passphrase"]);
    cmd.env("VAULT_PASSPHRASE", "ochre marmot quasar plinth gully");
    run_command(cmd).ok();
    assert!(s
        .run_with_passphrase("ochre marmot quasar plinth gully", ["snapshots"])
        .success());
}

/// A store exactly as the first release wrote it keeps opening, snapshotting and
/// restoring (with a warning that it is unauthenticated), and `vault upgrade` signs it.
#[test]
fn first_format_store_works_and_upgrades() {
    let v = Vault::new();
    let backend: vault::backend::BackendRef =
        std::sync::Arc::new(vault::backend::local::LocalBackend::new(v.store.clone()));
    let pass = secrecy::SecretString::from(common::PASSPHRASE.to_string());
    let created = vault::repo::create(
        backend.clone(),
        vault::repo::ChunkerParams::default(),
        vault::repo::DEFAULT_COMPRESSION_LEVEL,
        &[],
        Some(&pass),
        None,
    )
    .unwrap();
    let mut config = created.repo.config.clone();
    config.version = 1;
    config.admin_key = None;
    config.signature = None;
    fs::write(
        v.store.join("config"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    fs::remove_file(v.store.join("keys").join("hosts")).unwrap();
    let keyfile = vault::keys::WriterKeyFile {
        store_id: config.store_id.clone(),
        store: v.store.display().to_string(),
        id_key: created.id_key.to_hex().to_string(),
        recipients: config.recipients.clone(),
        admin_key: None,
        host: None,
        host_key: None,
    };
    keyfile.save(&v.writer_key).unwrap();

    let src = v.path("src");
    write_src(&src, "legacy", 1);
    let snap = v.snapshot(&[&src]);
    assert!(snap.stderr.contains("vault upgrade"), "{}", snap.describe());
    let list = v.snapshots_json();
    assert_eq!(list[0]["verified"], true);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();

    let up = v.ok(["upgrade"]);
    assert!(up.contains("upgraded"), "{up}");
    let c = config_json(&v);
    assert_eq!(c["version"], vault::repo::FORMAT_VERSION);
    let after = v.run(["snapshot", src.to_str().unwrap()]).ok();
    assert!(
        !after.stderr.contains("vault upgrade"),
        "{}",
        after.describe()
    );
    let list = v.snapshots_json();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|s| s["verified"] == true), "{list:?}");
    assert!(list.iter().any(|s| s["verified_host"].is_string()));
    v.ok(["check", "--read-data"]);
    let out2 = v.path("out2");
    v.restore(list[0]["id"].as_str().unwrap(), &out2, &[])
        .restore_ok();
}

#[test]
fn restore_lists_privileged_entries_and_can_leave_their_bits_off() {
    use std::os::unix::fs::PermissionsExt;
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fs::write(src.join("shell"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("shell"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(src.join("plain"), b"x").unwrap();
    let dev = common::is_root()
        && Command::new("mknod")
            .arg(src.join("mem"))
            .args(["c", "1", "3"])
            .status()
            .is_ok_and(|s| s.success());
    v.snapshot(&[&src]);

    let out = v.path("out");
    let dry = v.restore("latest", &out, &["--dry-run"]).ok();
    assert!(
        dry.stdout.contains("privileged entries"),
        "{}",
        dry.describe()
    );
    assert!(dry.stdout.contains("shell: setuid"), "{}", dry.describe());
    assert!(!dry.stdout.contains("plain:"), "{}", dry.describe());
    if dev {
        assert!(
            dry.stdout.contains("character device 1:3"),
            "{}",
            dry.describe()
        );
    }

    let r = v.restore("latest", &out, &["--no-privileged"]).restore_ok();
    assert!(r.stdout.contains("without it"), "{}", r.describe());
    let restored = common::restored(&out, &src);
    let mode = fs::metadata(restored.join("shell"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert!(!restored.join("mem").exists());

    let out2 = v.path("out2");
    let r = v.restore("latest", &out2, &[]).restore_ok();
    assert!(r.stdout.contains("shell: setuid"), "{}", r.describe());
    let mode = fs::metadata(common::restored(&out2, &src).join("shell"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
}
