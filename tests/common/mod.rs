//! Shared helpers for the black-box tests: run the real `vault` binary against a store in a
//! per-test temporary folder, build the fixture tree, compare trees.
//!
//! Every run passes `--config` (an empty file), `--store`, `--cache-dir` and `--writer-key`
//! inside the test's temporary folder, and the passphrase through `VAULT_PASSPHRASE`, so no
//! test reads or writes `/etc/vault`, `/var/cache/vault` or `/var/backups`.

#![allow(dead_code)]

pub mod compare;
pub mod fixture;
pub mod sys;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The passphrase every test store is created with.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// uid and gid of `nobody` on Debian and Ubuntu.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// A command taking longer than this is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(900);

/// Path of the binary under test: the one cargo built, or `VAULT_TEST_BIN` when set (to
/// test an installed binary). Checked once to really be the vault CLI.
pub fn vault_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let bin = std::env::var_os("VAULT_TEST_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vault")));
            let mut cmd = Command::new(&bin);
            cmd.arg("--help");
            let out = run_command(cmd);
            assert!(
                out.success() && out.stdout.contains("restore") && out.stdout.contains("snapshot"),
                "{} does not look like the vault CLI (`--help` lists no snapshot/restore)\n{}",
                bin.display(),
                out.describe()
            );
            bin
        })
        .clone()
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Out {
    /// The command line, for failure messages.
    pub cmdline: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout_bytes: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both output streams, for "does the output mention X" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn stderr_lower(&self) -> String {
        self.stderr.to_lowercase()
    }

    /// A readable account of the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n------",
            self.cmdline,
            self.code,
            truncate(&self.stdout, 8000),
            truncate(&self.stderr, 8000)
        )
    }

    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert!(self.success(), "expected success\n{}", self.describe());
        self
    }

    /// For a restore: panics unless it exited 0. As a non-root user, exit 3 is accepted too
    /// when every warning is about ownership: snapshots record their parent folders (such
    /// as a root-owned /tmp), whose owners only root can restore.
    #[track_caller]
    pub fn restore_ok(self) -> Out {
        if !is_root() && self.code == Some(3) {
            let only_owners = self
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .all(|l| l.contains("warning") && l.contains("ownership"));
            assert!(
                only_owners,
                "a restore by a non-root user exited 3 for more than ownership\n{}",
                self.describe()
            );
            return self;
        }
        self.ok()
    }

    /// Panics unless the command exited with a non-zero code (not a signal, not 0).
    #[track_caller]
    pub fn failed(self) -> Out {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit code (and no crash)\n{}",
            self.describe()
        );
        assert!(
            !self.stderr.contains("panicked at"),
            "the binary panicked instead of reporting an error\n{}",
            self.describe()
        );
        self
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &s[..end], s.len() - end)
}

/// Runs `cmd` with no stdin, capturing both outputs, killing it after [`TIMEOUT`].
pub fn run_command(mut cmd: Command) -> Out {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break st;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {TIMEOUT:?}: {cmdline}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout_bytes = t_out.join().unwrap();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    Out {
        cmdline,
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr,
    }
}

/// Runs a helper program (setfacl, setcap, ...) and panics, naming the package, if it fails.
#[track_caller]
pub fn tool(program: &str, args: &[&OsStr], package: &str) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let cmdline = format!("{cmd:?}");
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {program} ({e}); install the Debian package `{package}` \
             (`bash .ci/test` does)"
        ),
    };
    assert!(
        out.status.success(),
        "{cmdline} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One test's world: a temporary folder holding the store, the cache, the writer key, an
/// empty config file and whatever else the test puts there.
pub struct Vault {
    pub tmp: tempfile::TempDir,
    /// Canonical path of `tmp` (so recorded snapshot paths match what we compute).
    pub dir: PathBuf,
    pub store: PathBuf,
    pub cache: PathBuf,
    pub writer_key: PathBuf,
    pub config: PathBuf,
    pub home: PathBuf,
    pub passphrase: String,
    pub bin: PathBuf,
}

impl Vault {
    /// A fresh world; nothing is created in the store yet (call [`Vault::init`]).
    pub fn new() -> Vault {
        let mut tmp = tempfile::Builder::new()
            .prefix("vault-test-")
            .tempdir()
            .expect("tempdir");
        // VAULT_TEST_KEEP=1 keeps every test's folder, for looking at after a failure.
        if std::env::var_os("VAULT_TEST_KEEP").is_some() {
            tmp.disable_cleanup(true);
            eprintln!("keeping {}", tmp.path().display());
        }
        let dir = fs::canonicalize(tmp.path()).unwrap();
        let home = dir.join("home");
        fs::create_dir(&home).unwrap();
        let config = dir.join("vault.toml");
        fs::write(&config, "").unwrap();
        Vault {
            store: dir.join("store"),
            cache: dir.join("cache"),
            writer_key: dir.join("writer.key"),
            config,
            home,
            passphrase: PASSPHRASE.to_string(),
            bin: vault_bin(),
            dir,
            tmp,
        }
    }

    /// A new folder (created) inside this world.
    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// The global options every run gets.
    pub fn global_args(&self) -> Vec<OsString> {
        vec![
            "--config".into(),
            self.config.clone().into(),
            "--store".into(),
            self.store.clone().into(),
            "--cache-dir".into(),
            self.cache.clone().into(),
            "--writer-key".into(),
            self.writer_key.clone().into(),
        ]
    }

    fn prepare(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars_os() {
            if k.as_bytes().starts_with(b"VAULT_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("VAULT_PASSPHRASE", &self.passphrase)
            .env("RUST_BACKTRACE", "1");
    }

    /// The command `vault <global options> <args>`, not yet run.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        cmd.args(self.global_args()).args(args);
        self.prepare(&mut cmd);
        cmd
    }

    /// The command as another host sharing this store runs it: same store and keys, its
    /// own cache folder (as on a separate machine).
    pub fn command_on_host<I, S>(&self, host: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut global = self.global_args();
        let at = global
            .iter()
            .position(|a| a == "--cache-dir")
            .expect("global args name a cache");
        global[at + 1] = self.dir.join(format!("cache-{host}")).into();
        let mut cmd = Command::new(&self.bin);
        cmd.args(global).args(args);
        self.prepare(&mut cmd);
        cmd
    }

    /// Like [`Vault::command_on_host`], for a host the admin authorised by name: its own
    /// writer key (made here with `vault host add HOST` on first use), so the snapshots
    /// it records as HOST verify.
    pub fn command_as_host<I, S>(&self, host: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let key = self.dir.join(format!("writer-{host}.key"));
        if !key.exists() {
            self.run(["host", "add", host, "--out", key.to_str().unwrap()])
                .ok();
        }
        let mut cmd = self.command_on_host(host, std::iter::empty::<&str>());
        let mut global: Vec<OsString> = cmd.get_args().map(|a| a.to_owned()).collect();
        let at = global
            .iter()
            .position(|a| a == "--writer-key")
            .expect("global args name a writer key");
        global[at + 1] = key.into();
        let mut fresh = Command::new(&self.bin);
        fresh.args(global).args(args);
        self.prepare(&mut fresh);
        let _ = &mut cmd;
        fresh
    }

    /// Changes the store's config as its admin would: with the reader identity (exported
    /// once into this world), re-signed, so hosts keep trusting it.
    pub fn edit_config(&self, edit: impl FnOnce(&mut vault::repo::StoreConfig)) {
        let id_path = self.dir.join("admin-identity.txt");
        if !id_path.exists() {
            self.run(["key", "export-identity", "--out", id_path.to_str().unwrap()])
                .ok();
        }
        let identity = vault::keys::load_identity_file(&id_path).unwrap();
        let backend =
            std::sync::Arc::new(vault::backend::local::LocalBackend::new(self.store.clone()));
        let mut repo = vault::repo::Repo::open(backend).unwrap();
        edit(&mut repo.config);
        repo.sign_config(&vault::sign::SigningSecret::admin_from_identity(&identity))
            .unwrap();
    }

    /// Starts `vault <args>` and kills it (SIGKILL) after `delay`, as a crash or power
    /// loss would stop it; whether it had finished by then does not matter.
    pub fn kill_after<I, S>(&self, args: I, delay: Duration)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vault");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Runs `vault <args>` and returns its standard output; panics unless it exited 0.
    #[track_caller]
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(args).ok().stdout
    }

    /// `vault snapshots --json`, parsed.
    pub fn snapshots_json(&self) -> Vec<serde_json::Value> {
        snapshot_list(&self.run(["snapshots", "--json"]).ok())
    }

    /// Drops a snapshot record the way `forget` does: its data stays until prune.
    pub fn drop_snapshot(&self, id: &str) {
        fs::remove_file(self.store.join("snapshots").join(id)).expect("remove a snapshot record");
    }

    /// Runs `vault <global options> <args>`.
    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_command(self.command(args))
    }

    /// Runs with a different passphrase.
    pub fn run_with_passphrase<I, S>(&self, passphrase: &str, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        cmd.env("VAULT_PASSPHRASE", passphrase);
        run_command(cmd)
    }

    /// Runs the binary as `uid:gid` (with `setpriv`; only root can do that), with the
    /// given cache folder and writer key (which that user must be able to use).
    pub fn run_as<I, S>(&self, uid: u32, gid: u32, bin: &Path, cache: &Path, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(bin)
            .arg("--config")
            .arg(&self.config)
            .arg("--store")
            .arg(&self.store)
            .arg("--cache-dir")
            .arg(cache)
            .arg("--writer-key")
            .arg(cache.join("writer.key"))
            .args(args);
        self.prepare(&mut cmd);
        cmd.env("HOME", cache);
        cmd.env("XDG_CACHE_HOME", cache.join(".cache"));
        run_command(cmd)
    }

    /// `vault init`, which must succeed.
    pub fn init(&self) -> Out {
        self.run(["init"]).ok()
    }

    /// `vault snapshot PATHS`, which must exit 0.
    pub fn snapshot(&self, paths: &[&Path]) -> Out {
        let mut args: Vec<OsString> = vec!["snapshot".into()];
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        self.run(args).ok()
    }

    /// `vault restore SNAP --to DIR EXTRA...`.
    pub fn restore(&self, snap: &str, to: &Path, extra: &[&str]) -> Out {
        let mut args: Vec<OsString> = vec!["restore".into(), snap.into(), "--to".into()];
        args.push(to.as_os_str().to_owned());
        args.extend(extra.iter().map(OsString::from));
        self.run(args)
    }

    /// The ids listed by `vault snapshots --json`, oldest first as listed.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let out = self.run(["snapshots", "--json"]).ok();
        snapshot_ids(&out)
    }

    /// Copies the binary into a folder that `uid` owns (the build folder may not be
    /// reachable by other users) and returns its path.
    pub fn bin_for(&self, dir: &Path) -> PathBuf {
        let bin = dir.join("vault");
        fs::copy(&self.bin, &bin).expect("copy the vault binary");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }
}

impl Drop for Vault {
    /// A non-root user cannot delete what lies in folders without write permission (the
    /// fixture has some): give them back before the temporary folder is removed.
    fn drop(&mut self) {
        if is_root() {
            return;
        }
        fn open_up(d: &Path) {
            let Ok(m) = fs::symlink_metadata(d) else {
                return;
            };
            if !m.is_dir() {
                return;
            }
            let mode = (m.permissions().mode() & 0o7777) | 0o700;
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(mode));
            if let Ok(rd) = fs::read_dir(d) {
                for e in rd.flatten() {
                    open_up(&e.path());
                }
            }
        }
        open_up(&self.dir);
    }
}

impl Default for Vault {
    fn default() -> Self {
        Vault::new()
    }
}

/// Parses `vault snapshots --json` output: a list of objects (at top level, or under a
/// `snapshots` key) each with an `id`. Panics with the output when it does not parse.
pub fn snapshot_list(out: &Out) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "`snapshots --json` output is not JSON ({e})\n{}",
            out.describe()
        )
    });
    let list = match &v {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(o) => match o.get("snapshots") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            _ => panic!(
                "`snapshots --json`: expected a list of snapshots\n{}",
                out.describe()
            ),
        },
        _ => panic!(
            "`snapshots --json`: expected a list of snapshots\n{}",
            out.describe()
        ),
    };
    list
}

pub fn snapshot_ids(out: &Out) -> Vec<String> {
    snapshot_list(out)
        .iter()
        .map(|s| {
            s.get("id")
                .and_then(|i| i.as_str())
                .unwrap_or_else(|| {
                    panic!(
                        "`snapshots --json`: snapshot without a string `id`: {s}\n{}",
                        out.describe()
                    )
                })
                .to_string()
        })
        .collect()
}

/// True when the tests run as root (device nodes, ownership, trusted.* and capabilities).
pub fn is_root() -> bool {
    sys::is_root()
}

/// Where `restore --to out` puts the snapshotted absolute path `src`.
pub fn restored(out: &Path, src: &Path) -> PathBuf {
    out.join(src.strip_prefix("/").expect("absolute source path"))
}

/// Every file below `dir` (recursively), not following symlinks; `dir` itself excluded.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    fn rec(d: &Path, v: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let is_dir = fs::symlink_metadata(&p)
                .map(|m| m.file_type().is_dir())
                .unwrap_or(false);
            v.push(p.clone());
            if is_dir {
                rec(&p, v);
            }
        }
    }
    rec(dir, &mut v);
    v
}

/// Regular files below `dir`, largest first.
pub fn files_by_size(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = walk(dir)
        .into_iter()
        .filter_map(|p| {
            let m = fs::symlink_metadata(&p).ok()?;
            m.file_type().is_file().then_some((p, m.len()))
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Makes `path` and everything below it readable (and folders enterable) by everyone.
pub fn chmod_readable_by_all(path: &Path) {
    let mut all = vec![path.to_path_buf()];
    all.extend(walk(path));
    for p in all {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        let extra = if m.is_dir() { 0o555 } else { 0o444 };
        let mode = (m.permissions().mode() & 0o7777) | extra;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), never a whole zero 4 KiB block.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let x = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// True when `text` (case-insensitive) contains any of `words`.
pub fn mentions_any(text: &str, words: &[&str]) -> bool {
    let t = text.to_lowercase();
    words.iter().any(|w| t.contains(&w.to_lowercase()))
}
