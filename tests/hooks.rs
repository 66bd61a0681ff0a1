//! `[hooks]` around `vault snapshot` and `[hooks.restore]` around `vault restore`: order,
//! environment, a failure of each hook, a timeout (the hook's process group is killed),
//! SIGTERM during the snapshot (`after` still runs), and no secret in a hook's environment
//! or in vault's log. Also `--stdin-from-command`.

mod common;

use common::{restored, Vault, PASSPHRASE};
use std::fs;
use std::path::{Path, PathBuf};

/// A hook that appends "HOOK STATUS SNAPSHOT_ID SNAPSHOTS_IN_STORE" to `log` and dumps its
/// environment to `env-HOOK`, then exits with `code`.
fn hook(dir: &Path, code: i32) -> String {
    let script = format!(
        "n=$(ls \"{store}/snapshots\" 2>/dev/null | wc -l); \
         echo \"$VAULT_HOOK $VAULT_STATUS ${{VAULT_SNAPSHOT_ID:-none}} $n\" >> \"{log}\"; \
         env > \"{dir}/env-$VAULT_HOOK\"; echo \"hello from $VAULT_HOOK\"; exit {code}",
        store = dir.join("store").display(),
        log = dir.join("hooks.log").display(),
        dir = dir.display(),
    );
    format!("[\"sh\", \"-c\", {script:?}]")
}

fn write_hooks(v: &Vault, table: &str, before: &str, after: &str, on_error: &str, extra: &str) {
    fs::write(
        &v.config,
        format!("[{table}]\nbefore = {before}\nafter = {after}\non_error = {on_error}\n{extra}"),
    )
    .unwrap();
}

fn log(v: &Vault) -> Vec<String> {
    fs::read_to_string(v.dir.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn source(v: &Vault) -> PathBuf {
    let src = v.path("src");
    fs::write(src.join("a.txt"), b"some data").unwrap();
    src
}

#[test]
fn hooks_run_in_order_with_their_environment_and_no_secrets() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    write_hooks(
        &v,
        "hooks",
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        "timeout = \"1m\"\n",
    );
    let mut cmd = v.command([std::ffi::OsStr::new("snapshot"), src.as_os_str()]);
    cmd.env("AWS_SECRET_ACCESS_KEY", "s3-secret-value");
    let out = common::run_command(cmd).ok();
    let id = v.snapshot_ids().pop().unwrap();
    assert_eq!(
        log(&v),
        [
            "before running none 0".to_string(),
            format!("after ok {id} 1")
        ],
        "before ran before the snapshot existed, after once it did; on_error did not run"
    );
    assert!(
        out.stderr.contains("vault: hook before: hello from before"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("vault: hook after: hello from after"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("snapshot window"),
        "the summary reports the window between before and after\n{}",
        out.describe()
    );
    for h in ["before", "after"] {
        let env = fs::read_to_string(v.dir.join(format!("env-{h}"))).unwrap();
        assert!(env.contains(&format!("VAULT_HOOK={h}")), "{env}");
        assert!(
            env.contains(&format!("VAULT_STORE={}", v.store.display())),
            "{env}"
        );
        assert!(
            !env.contains(PASSPHRASE),
            "the passphrase is not in the hook's environment"
        );
        assert!(!env.contains("VAULT_PASSPHRASE"), "{env}");
        assert!(!env.contains("s3-secret-value"), "{env}");
    }
    assert!(
        !out.all().contains(PASSPHRASE),
        "the passphrase is not in vault's log"
    );
}

#[test]
fn failing_before_aborts_the_snapshot_and_still_runs_after() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    write_hooks(
        &v,
        "hooks",
        &hook(&v.dir, 7),
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        "",
    );
    let out = v
        .run([std::ffi::OsStr::new("snapshot"), src.as_os_str()])
        .failed();
    assert!(
        out.stderr.contains("hook before") && out.stderr.contains("not started"),
        "{}",
        out.describe()
    );
    assert!(v.snapshot_ids().is_empty());
    assert_eq!(
        log(&v),
        [
            "before running none 0",
            "after failed none 0",
            "on_error failed none 0"
        ]
    );
}

#[test]
fn failing_snapshot_runs_after_and_on_error() {
    let v = Vault::new();
    v.init();
    write_hooks(
        &v,
        "hooks",
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        "",
    );
    let missing = v.dir.join("no-such-folder");
    let out = v
        .run([std::ffi::OsStr::new("snapshot"), missing.as_os_str()])
        .failed();
    assert!(out.stderr.contains("no-such-folder"), "{}", out.describe());
    assert_eq!(
        log(&v),
        [
            "before running none 0",
            "after failed none 0",
            "on_error failed none 0"
        ]
    );
}

#[test]
fn failing_after_fails_the_run_but_keeps_the_snapshot() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    write_hooks(
        &v,
        "hooks",
        &hook(&v.dir, 0),
        &hook(&v.dir, 5),
        &hook(&v.dir, 0),
        "",
    );
    let out = v
        .run([std::ffi::OsStr::new("snapshot"), src.as_os_str()])
        .failed();
    assert!(out.stderr.contains("hook after"), "{}", out.describe());
    let id = v.snapshot_ids().pop().expect("the snapshot was saved");
    assert_eq!(
        log(&v),
        [
            "before running none 0".to_string(),
            format!("after ok {id} 1"),
            format!("on_error failed {id} 1")
        ]
    );
}

#[test]
fn failing_on_error_is_reported_and_the_run_still_fails() {
    let v = Vault::new();
    v.init();
    write_hooks(
        &v,
        "hooks",
        &hook(&v.dir, 1),
        &hook(&v.dir, 0),
        &hook(&v.dir, 9),
        "",
    );
    let src = source(&v);
    let out = v
        .run([std::ffi::OsStr::new("snapshot"), src.as_os_str()])
        .failed();
    assert!(out.stderr.contains("hook on_error"), "{}", out.describe());
    assert_eq!(log(&v).len(), 3);
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_process_group() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    let pidfile = v.dir.join("bg.pid");
    let slow = format!(
        "[\"sh\", \"-c\", {:?}]",
        format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display())
    );
    write_hooks(
        &v,
        "hooks",
        &slow,
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        "timeout = \"2s\"\n",
    );
    let started = std::time::Instant::now();
    let out = v
        .run([std::ffi::OsStr::new("snapshot"), src.as_os_str()])
        .failed();
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        out.stderr.contains("did not finish within 2 s"),
        "{}",
        out.describe()
    );
    let pid = fs::read_to_string(&pidfile).unwrap();
    // Gone, or a zombie nobody reaped yet (in a container, PID 1 may not reap).
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let alive = stat
        .rsplit(')')
        .next()
        .map(|rest| !rest.trim_start().starts_with('Z'))
        .unwrap_or(false)
        && !stat.is_empty();
    assert!(!alive, "the hook's background process was killed too");
    assert_eq!(log(&v), ["after failed none 0", "on_error failed none 0"]);
    assert!(v.snapshot_ids().is_empty());
}

#[test]
fn sigterm_during_the_snapshot_stops_it_and_runs_after() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    write_hooks(
        &v,
        "hooks",
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        &hook(&v.dir, 0),
        "",
    );
    // The command runs inside the snapshot and signals vault (its parent) from there.
    let out = v
        .run([
            std::ffi::OsStr::new("snapshot"),
            src.as_os_str(),
            "--stdin-from-command".as_ref(),
            "zz-dump".as_ref(),
            "--".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            "kill -TERM $PPID; sleep 1; echo data".as_ref(),
        ])
        .failed();
    // Stopped by SIGTERM: 128 + 15, and the message says what was kept.
    assert_eq!(out.code, Some(143), "{}", out.describe());
    assert!(
        out.stderr.contains("stopped on request"),
        "{}",
        out.describe()
    );
    assert_eq!(
        log(&v),
        [
            "before running none 0",
            "after interrupted none 0",
            "on_error interrupted none 0"
        ]
    );
    assert!(v.snapshot_ids().is_empty(), "nothing was saved");
}

#[test]
fn restore_hooks_surround_the_restore() {
    let v = Vault::new();
    v.init();
    let src = source(&v);
    v.snapshot(&[&src]);
    let target = v.path("target");
    let marker = restored(&target, &src.join("a.txt"));
    let after = format!(
        "[\"sh\", \"-c\", {:?}]",
        format!(
            "test -f {} && echo \"after $VAULT_OPERATION $VAULT_STATUS\" >> {}",
            marker.display(),
            v.dir.join("hooks.log").display()
        )
    );
    let before = format!(
        "[\"sh\", \"-c\", {:?}]",
        format!(
            "test ! -e {} && echo \"before $VAULT_OPERATION\" >> {}",
            marker.display(),
            v.dir.join("hooks.log").display()
        )
    );
    write_hooks(&v, "hooks.restore", &before, &after, "[\"false\"]", "");
    v.restore("latest", &target, &[]).ok();
    assert_eq!(log(&v), ["before restore", "after restore ok"]);
}

#[test]
fn command_output_is_stored_as_a_file() {
    let v = Vault::new();
    v.init();
    v.run([
        "snapshot",
        "--stdin-from-command",
        "dump.sql",
        "--",
        "sh",
        "-c",
        "printf 'create table t();\\n'; head -c 3000000 /dev/zero",
    ])
    .ok();
    let target = v.path("target");
    v.restore("latest", &target, &[]).restore_ok();
    let got = fs::read(target.join("dump.sql")).unwrap();
    assert!(got.starts_with(b"create table t();\n"));
    assert_eq!(got.len(), 18 + 3_000_000);
    let list = v.snapshots_json();
    assert_eq!(list[0]["paths"][0], "/dump.sql");
}

#[test]
fn failing_command_saves_nothing() {
    let v = Vault::new();
    v.init();
    let out = v
        .run([
            "snapshot",
            "--stdin-from-command",
            "dump.sql",
            "--",
            "sh",
            "-c",
            "printf partial; exit 3",
        ])
        .failed();
    assert!(
        out.stderr.contains("output was not saved"),
        "{}",
        out.describe()
    );
    assert!(
        v.snapshot_ids().is_empty(),
        "partial output is never a snapshot"
    );
}
