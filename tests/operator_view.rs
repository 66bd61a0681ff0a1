//! What an operator sees: closed pipes, `--json` results, progress on a terminal and
//! without one, `--quiet`, help, completions, man pages and the metrics textfile.

mod common;

use common::{random_bytes, run_command, Vault};
use serde_json::Value;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// A small tree with many entries (so a listing is longer than a pipe's buffer), a
/// hardlinked file and some folders.
fn tree(v: &Vault) -> std::path::PathBuf {
    let src = v.path("src");
    for d in 0..20 {
        let dir = src.join(format!("dir-{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..60 {
            fs::write(dir.join(format!("file-{f:03}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    fs::write(src.join("big.bin"), random_bytes(7, 1 << 20)).unwrap();
    fs::hard_link(src.join("big.bin"), src.join("big-link-1.bin")).unwrap();
    fs::hard_link(src.join("big.bin"), src.join("big-link-2.bin")).unwrap();
    src
}

/// Bytes of the small files of [`tree`].
fn small_bytes() -> u64 {
    (0..20)
        .flat_map(|d| (0..60).map(move |f| format!("{d} {f}\n").len() as u64))
        .sum()
}

fn json_of(out: &common::Out) -> Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {}", out.describe()))
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Runs vault with its stdout a pipe whose reading end is already closed.
fn into_closed_pipe(v: &Vault, a: &[OsString]) -> common::Out {
    let mut cmd = v.command(a);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    common::Out {
        cmdline: format!("{a:?} | (closed)"),
        code: status.code(),
        stdout_bytes: Vec::new(),
        stdout: String::new(),
        stderr,
    }
}

#[test]
fn listings_into_a_closed_pipe_exit_0_without_a_panic() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    v.snapshot(&[&src]);
    v.snapshot(&[&src]);
    let target = v.dir.join("restore-target");
    for a in [
        args(&["snapshots"]),
        args(&["snapshots", "--json"]),
        args(&["ls", "latest"]),
        args(&["ls", "latest", "--json"]),
        args(&["forget", "--keep-last", "1", "--dry-run"]),
        vec![
            "restore".into(),
            "latest".into(),
            "--to".into(),
            target.clone().into(),
            "--dry-run".into(),
        ],
        args(&["stats"]),
        args(&["completions", "bash"]),
    ] {
        let out = into_closed_pipe(&v, &a);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
    // The same through a shell pipeline into head and true.
    for reader in ["head -1", "true"] {
        let line = format!(
            "{} snapshots | {reader}; echo \"status=${{PIPESTATUS[0]}}\"",
            shell_words(&v, &[])
        );
        let out = run_command({
            let mut c = Command::new("bash");
            c.arg("-c").arg(&line);
            c.env("VAULT_PASSPHRASE", &v.passphrase);
            c
        });
        assert!(out.stdout.contains("status=0"), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
    // A command that changes the store goes on to the end when its stdout is closed.
    let out = into_closed_pipe(&v, &args(&["forget", "--keep-last", "1"]));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(v.snapshots_json().len(), 1, "forget did its work");
}

fn shell_words(v: &Vault, extra: &[&str]) -> String {
    let mut words: Vec<String> = vec![v.bin.display().to_string()];
    words.extend(
        v.global_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    words.extend(extra.iter().map(|s| s.to_string()));
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn snapshot_summary_counts_hardlinks_once_and_new_data_never_exceeds_what_was_read() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    let out = v.run([
        OsString::from("snapshot"),
        OsString::from("--json"),
        src.clone().into(),
    ]);
    let j = json_of(&out.ok());
    let expected_bytes = (1u64 << 20) + small_bytes();
    assert_eq!(
        j["bytes"], expected_bytes,
        "hardlinked data counted once: {j}"
    );
    assert_eq!(j["bytes_read"], expected_bytes, "{j}");
    let new = j["bytes_new"].as_u64().unwrap();
    assert!(
        new <= j["bytes_read"].as_u64().unwrap(),
        "more new data than was read: {j}"
    );
    assert!(j["bytes_new_metadata"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["files"], 20 * 60 + 3, "{j}");
    // The human summary says the same.
    let out = v.run([OsString::from("snapshot"), src.into()]).ok();
    assert!(out.stdout.contains("0 B new data"), "{}", out.describe());
}

/// Every command's `--json` is one object on stdout holding the documented fields.
#[test]
fn every_command_prints_one_json_object_with_the_documented_fields() {
    let v = Vault::new();
    let j = json_of(&v.run(["init", "--json"]).ok());
    for k in [
        "store_id",
        "store",
        "writer_key",
        "passphrase",
        "exit_status",
    ] {
        assert!(j.get(k).is_some(), "init --json lacks {k}: {j}");
    }
    let src = tree(&v);
    let snap = json_of(
        &v.run([
            OsString::from("--json"),
            "snapshot".into(),
            src.clone().into(),
        ])
        .ok(),
    );
    for k in [
        "id",
        "short_id",
        "files",
        "dirs",
        "bytes",
        "bytes_read",
        "bytes_new",
        "bytes_stored",
        "problems",
        "command",
        "exit_status",
        "duration_ms",
        "error",
    ] {
        assert!(snap.get(k).is_some(), "snapshot --json lacks {k}: {snap}");
    }
    assert_eq!(snap["command"], "snapshot");
    assert_eq!(snap["exit_status"], 0);
    assert!(snap["error"].is_null());
    v.snapshot(&[&src]);

    let list = json_of(&v.run(["snapshots", "--json"]).ok());
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], snap["id"]);

    let ls = json_of(&v.run(["ls", "latest", "--json"]).ok());
    let entries = ls.as_array().unwrap();
    assert!(entries.len() > 1200, "{}", entries.len());
    assert!(entries
        .iter()
        .any(|e| e["type"] == "file" && e["path"].as_str().unwrap().ends_with("/big.bin")));

    let target = v.dir.join("target");
    let dry = json_of(
        &v.run([
            OsString::from("restore"),
            "latest".into(),
            "--to".into(),
            target.clone().into(),
            "--dry-run".into(),
            "--json".into(),
        ])
        .ok(),
    );
    assert_eq!(dry["dry_run"], true);
    assert!(dry["plan"].as_array().unwrap().len() > 1200);
    let restored = json_of(
        &v.run([
            OsString::from("restore"),
            "latest".into(),
            "--to".into(),
            target.into(),
            "--json".into(),
        ])
        .restore_ok(),
    );
    for k in [
        "files",
        "dirs",
        "bytes",
        "problems",
        "warnings",
        "exit_status",
    ] {
        assert!(
            restored.get(k).is_some(),
            "restore --json lacks {k}: {restored}"
        );
    }
    assert_eq!(restored["files"], 20 * 60 + 3);

    let stats = json_of(&v.run(["stats", "--json"]).ok());
    for k in [
        "store_bytes",
        "logical_bytes",
        "dedup_bytes",
        "stored_blob_bytes",
        "packs",
        "pack_bytes",
        "pack_used_bytes",
        "per_snapshot",
    ] {
        assert!(stats.get(k).is_some(), "stats --json lacks {k}: {stats}");
    }
    assert!(stats["logical_bytes"].as_u64() > stats["dedup_bytes"].as_u64());
    assert_eq!(stats["per_snapshot"].as_array().unwrap().len(), 2);

    let forget = json_of(
        &v.run(["forget", "--keep-last", "1", "--dry-run", "--json"])
            .ok(),
    );
    assert_eq!(forget["to_remove"], 1, "{forget}");
    assert_eq!(forget["snapshots"].as_array().unwrap().len(), 2);
    let forget = json_of(
        &v.run(["forget", "--keep-last", "1", "--prune", "--json"])
            .ok(),
    );
    assert_eq!(forget["removed"], 1, "{forget}");
    assert!(
        forget["prune"]["packs_total"].as_u64().is_some(),
        "{forget}"
    );

    let prune = json_of(&v.run(["prune", "--json"]).ok());
    for k in ["packs_total", "packs_deleted", "bytes_freed", "dry_run"] {
        assert!(prune.get(k).is_some(), "prune --json lacks {k}: {prune}");
    }

    let copy_to = v.dir.join("offsite");
    let copy = json_of(
        &v.run([
            OsString::from("copy"),
            "--from".into(),
            v.store.clone().into(),
            "--to".into(),
            copy_to.into(),
            "--json".into(),
        ])
        .ok(),
    );
    assert_eq!(copy["created"], true, "{copy}");
    assert!(copy["copied"]["objects"].as_u64().unwrap() > 0, "{copy}");

    let out = v.dir.join("identity.txt");
    let key = json_of(
        &v.run([
            OsString::from("key"),
            "export-identity".into(),
            "--out".into(),
            out.clone().into(),
            "--json".into(),
        ])
        .ok(),
    );
    assert_eq!(key["identity_file"], out.display().to_string());

    let secrets = json_of(&v.run(["secrets", "list", "--json"]).ok());
    assert!(secrets.is_array());

    // A failure is an object too, with the error and exit status.
    let lock = v.run(["lock", "extend", "--keep-last", "1", "--json"]);
    let j = json_of(&lock);
    assert_eq!(j["exit_status"].as_i64(), lock.code.map(i64::from), "{j}");
    if !lock.success() {
        assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    }
    let check = json_of(&v.run(["check", "--json"]).ok());
    assert_eq!(check["command"], "check");
    assert_eq!(check["exit_status"], 0);
}

#[test]
fn quiet_prints_nothing_on_success() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    for a in [
        vec![
            OsString::from("snapshot"),
            "--quiet".into(),
            src.clone().into(),
        ],
        vec![
            OsString::from("restore"),
            "latest".into(),
            "--to".into(),
            v.dir.join("t").into(),
            "-q".into(),
        ],
        args(&["forget", "--keep-last", "1", "--quiet"]),
        args(&["prune", "--quiet"]),
        args(&["check", "--quiet"]),
    ] {
        let out = v.run(&a).ok();
        assert_eq!(out.stdout, "", "{}", out.describe());
        assert_eq!(out.stderr, "", "{}", out.describe());
    }
}

/// A file big enough that snapshot and restore take a moment.
fn big_tree(v: &Vault) -> std::path::PathBuf {
    let src = v.path("big");
    fs::write(src.join("data.bin"), random_bytes(11, 96 << 20)).unwrap();
    src
}

#[test]
fn progress_shows_on_a_terminal_and_as_periodic_lines_without_one() {
    let v = Vault::new();
    v.init();
    let src = big_tree(&v);
    // Under a pseudo-terminal (script): the bar, with the step and bytes.
    let line = shell_words(&v, &["snapshot", &src.display().to_string()]);
    let out = run_command({
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"]);
        c.env("VAULT_PASSPHRASE", &v.passphrase);
        c
    });
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("snapshot: ") && out.stdout.contains("MiB"),
        "no progress bar on the terminal: {}",
        out.describe()
    );
    // Without a terminal: plain status lines on stderr at the interval.
    let target = v.dir.join("target");
    let out = v.run([
        OsString::from("restore"),
        "latest".into(),
        "--to".into(),
        target.into(),
        "--progress-interval".into(),
        "100ms".into(),
        "--verify".into(),
    ]);
    assert!(matches!(out.code, Some(0) | Some(3)), "{}", out.describe());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("vault: restore: "))
        .collect();
    assert!(!lines.is_empty(), "no status lines: {}", out.describe());
    assert!(
        lines[0].contains(" of 1, ") || lines[0].contains("files of 1"),
        "{}",
        lines[0]
    );
    // With --json: JSON lines on stderr, one object on stdout.
    let out = v
        .run([
            "check",
            "--read-data",
            "--json",
            "--progress-interval",
            "50ms",
        ])
        .ok();
    json_of(&out);
    let progress: Vec<Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        progress
            .iter()
            .any(|p| p["progress"] == "check --read-data"),
        "no JSON progress lines: {}",
        out.describe()
    );
}

#[test]
fn verbose_names_each_file_read() {
    let v = Vault::new();
    v.init();
    let src = v.path("few");
    fs::write(src.join("a.txt"), "a").unwrap();
    fs::write(src.join("b.txt"), "b").unwrap();
    // Files changed in the last 2 s are never trusted from the files cache (their stamp
    // could still change unseen); let a.txt age past that.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = v
        .run([
            OsString::from("snapshot"),
            "--verbose".into(),
            src.clone().into(),
        ])
        .ok();
    assert!(
        out.stdout
            .contains(&format!("changed   {}", src.join("a.txt").display())),
        "{}",
        out.describe()
    );
    fs::write(src.join("b.txt"), "bb").unwrap();
    let out = v
        .run([OsString::from("snapshot"), "-v".into(), src.clone().into()])
        .ok();
    assert!(out.stdout.contains("b.txt"), "{}", out.describe());
    assert!(
        !out.stdout.contains("a.txt"),
        "unchanged files are not named: {}",
        out.describe()
    );
}

#[test]
fn help_shows_global_options_apart_and_exit_statuses() {
    let v = Vault::new();
    let out = v.run(["--help"]).ok();
    assert!(out.stdout.contains("Global options:"), "{}", out.stdout);
    assert!(out.stdout.contains("Exit status:"), "{}", out.stdout);
    for code in ["  0 ", "  1 ", "  2 ", "  3 ", "130"] {
        assert!(out.stdout.contains(code), "exit status {code} undocumented");
    }
    assert!(out.stdout.contains("[env: VAULT_THREADS=]"));
    assert!(out.stdout.contains("number of cores + 1"));
    let out = v.run(["snapshot", "--help"]).ok();
    assert!(out.stdout.contains("Global options:"));
    let out = v.run(["--version"]).ok();
    assert!(out.stdout.starts_with("vault "));
    let out = v.run(["snapshots", "--no-such-flag"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
}

#[test]
fn completions_and_man_pages_generate() {
    let v = Vault::new();
    for (shell, marker) in [
        ("bash", "_vault()"),
        ("zsh", "#compdef vault"),
        ("fish", "complete -c vault"),
    ] {
        let out = v.run(["completions", shell]).ok();
        assert!(out.stdout.contains(marker), "{shell}: {}", out.describe());
        assert!(out.stdout.contains("snapshot"), "{shell}");
    }
    let dir = v.dir.join("man");
    v.run([OsString::from("manpages"), dir.clone().into()]).ok();
    for page in [
        "vault.1",
        "vault-snapshot.1",
        "vault-restore.1",
        "vault-key-export-identity.1",
        "vault-secrets-list.1",
        "vault-completions.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is no man page");
    }
    // man itself renders them.
    if Path::new("/usr/bin/man").exists() {
        let out = run_command({
            let mut c = Command::new("man");
            c.arg("-l").arg(dir.join("vault-snapshot.1"));
            c.env("MANPAGER", "cat").env("PAGER", "cat");
            c
        });
        assert!(out.success(), "{}", out.describe());
        assert!(out.stdout.contains("--tag"), "{}", out.describe());
    }
}

#[test]
fn metrics_textfile_is_written_after_each_command() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    let prom = v.dir.join("vault.prom");
    v.run([
        OsString::from("snapshot"),
        "--metrics-file".into(),
        prom.clone().into(),
        src.into(),
    ])
    .ok();
    fs::write(
        &v.config,
        format!("[metrics]\ntextfile = {:?}\n", prom.display().to_string()),
    )
    .unwrap();
    let out = v.run(["snapshots", "--store", "/nonexistent/store"]);
    assert_eq!(out.code, Some(1));
    let text = fs::read_to_string(&prom).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("vault_bytes_read{command=\"snapshot\"")
        .ends_with(&format!(" {}", (1 << 20) + small_bytes())));
    assert!(line("vault_exit_status{command=\"snapshot\"").ends_with(" 0"));
    assert!(line("vault_exit_status{command=\"snapshots\"").ends_with(" 1"));
    line("vault_last_success_timestamp_seconds{command=\"snapshot\"");
    assert!(!text.contains("vault_last_success_timestamp_seconds{command=\"snapshots\""));
    assert!(text.contains("# TYPE vault_duration_seconds gauge"));
    // Nothing left behind but the file itself.
    let leftovers: Vec<_> = fs::read_dir(&v.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn sigterm_stops_a_snapshot_cleanly_and_releases_its_lease() {
    let v = Vault::new();
    v.init();
    let src = v.path("many");
    for i in 0..400 {
        fs::write(src.join(format!("f{i}")), random_bytes(i, 256 << 10)).unwrap();
    }
    let child = v
        .command([OsString::from("snapshot"), src.clone().into()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has begun reading, ask it to stop.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id() as i32;
    // SAFETY: kill with a pid of our own child, which has not been waited for yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        // Finished before the signal arrived: nothing to check.
        Some(0) => return,
        Some(143) => {}
        other => panic!("exit {other:?}: {stderr}"),
    }
    assert!(stderr.contains("stopped on request"), "{stderr}");
    assert!(stderr.contains("no snapshot was recorded"), "{stderr}");
    assert!(v.snapshots_json().is_empty());
    let locks: Vec<_> = fs::read_dir(v.store.join("locks"))
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(locks.is_empty(), "lease left behind: {locks:?}");
    // The store is healthy and the next snapshot completes.
    v.run(["check"]).ok();
    v.snapshot(&[&src]);
}
