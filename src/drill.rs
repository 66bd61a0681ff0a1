//! Restore drill: proves, before the day it is needed, that a snapshot restores to a
//! working platform.
//!
//! Checks, in order, each reported by name with its outcome:
//! - `restore`: the snapshot is restored into a fresh scratch folder with a fresh cache
//!   (the caller gives only the store and the reader identity), every file re-read and
//!   compared with the snapshot (`verify`);
//! - for every PostgreSQL cluster in the restored tree (a folder holding `PG_VERSION` and
//!   `global/pg_control`): `postgresql start` (the server of that major version starts in a
//!   sandbox: as the folder's owner, or `nobody` when root owns it; its own socket folder
//!   in the scratch folder, `listen_addresses = ''`, a private port, WAL archiving off,
//!   trust authentication on the socket only; recovery ends), `pg_amcheck` (when the
//!   binary exists: `--heapallindexed` over every database), `sql: QUERY` for each
//!   configured check; the server is stopped afterwards;
//! - `secrets`: the sealed platform secrets match the restored `travis.yml`;
//! - `cleanup`: the scratch folder is removed.
//!
//! The drill never writes outside its scratch folder, and the scratch folder is removed
//! whatever failed. This module prints nothing; the caller formats [`DrillReport`].

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::reader::BlobReader;
use crate::repo::Snapshot;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `[drill]` in the configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// SQL statements that must succeed against the restored cluster.
    #[serde(default)]
    pub sql: Vec<String>,
    /// Database the SQL checks run in [default: postgres].
    pub database: Option<String>,
    /// Folder for the scratch folder [default: the system's temporary folder].
    pub scratch_dir: Option<PathBuf>,
    /// How long the restored server may take to finish recovery, e.g. "30m" [default 30m].
    pub start_timeout: Option<String>,
    /// Folder holding PostgreSQL's binaries [default: /usr/lib/postgresql/MAJOR/bin].
    pub postgres_bin: Option<PathBuf>,
}

pub struct DrillOptions {
    pub scratch_parent: PathBuf,
    pub config: DrillConfig,
    pub threads: usize,
    pub secrets: crate::secrets::SecretsConfig,
    /// Derived from the store's id key, to compare secret fingerprints.
    pub fingerprint_key: [u8; 32],
}

/// How one drill check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

impl Outcome {
    /// `passed`, `failed` or `skipped`, as the JSON report has it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    pub duration_ms: u64,
}

impl Check {
    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Failed
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub snapshot: String,
    pub snapshot_time: String,
    pub hostname: String,
    pub started: String,
    pub duration_ms: u64,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl DrillReport {
    /// Names of the failed checks.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.failed())
            .map(|c| c.name.as_str())
            .collect()
    }
}

struct Recorder {
    checks: Vec<Check>,
}

impl Recorder {
    fn add(
        &mut self,
        name: impl Into<String>,
        started: Instant,
        r: std::result::Result<String, String>,
    ) -> bool {
        let ok = r.is_ok();
        let (outcome, detail) = match r {
            Ok(d) => (Outcome::Passed, d),
            Err(d) => (Outcome::Failed, d),
        };
        self.checks.push(Check {
            name: name.into(),
            outcome,
            detail,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        ok
    }

    fn skip(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            outcome: Outcome::Skipped,
            detail: detail.into(),
            duration_ms: 0,
        });
    }
}

/// Runs the drill on snapshot `id`. Errors only when the drill could not begin (no
/// scratch folder); every failed check is in the report.
pub fn run(
    reader: &BlobReader,
    cache: &Cache,
    id: &Id,
    snap: &Snapshot,
    opts: &DrillOptions,
) -> Result<DrillReport> {
    let started = Instant::now();
    let started_wall = chrono::Local::now().to_rfc3339();
    let scratch = make_scratch(&opts.scratch_parent)?;
    let mut rec = Recorder { checks: Vec::new() };
    let target = scratch.join("root");
    drill_in(reader, cache, snap, opts, &scratch, &target, &mut rec);
    let t = Instant::now();
    let removed = std::fs::remove_dir_all(&scratch)
        .map(|()| format!("removed {}", scratch.display()))
        .map_err(|e| format!("cannot remove {}: {e}", scratch.display()));
    rec.add("cleanup", t, removed);
    let passed = !rec.checks.iter().any(Check::failed);
    Ok(DrillReport {
        snapshot: id.to_hex(),
        snapshot_time: snap.time.clone(),
        hostname: snap.hostname.clone(),
        started: started_wall,
        duration_ms: started.elapsed().as_millis() as u64,
        passed,
        checks: rec.checks,
    })
}

fn make_scratch(parent: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    let dir = parent.join(format!(
        "vault-drill-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    std::fs::create_dir(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    // Others may pass through (the sandboxed server runs as the cluster's owner), not list.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
    Ok(dir)
}

fn drill_in(
    reader: &BlobReader,
    cache: &Cache,
    snap: &Snapshot,
    opts: &DrillOptions,
    scratch: &Path,
    target: &Path,
    rec: &mut Recorder,
) {
    let t = Instant::now();
    let restore_opts = crate::restore::RestoreOptions {
        target: target.to_path_buf(),
        includes: Vec::new(),
        overwrite: None,
        dry_run: false,
        verify: true,
        numeric_owner: true,
        threads: opts.threads,
        spool: None,
        delete: false,
        no_privileged: false,
    };
    let restored = match crate::restore::run(reader, cache, snap, &restore_opts) {
        Ok(r) => r,
        Err(e) => {
            rec.add("restore", t, Err(e.to_string()));
            rec.skip("verify", "nothing restored");
            return;
        }
    };
    let restore_ok = rec.add(
        "restore",
        t,
        if restored.failures.is_empty() {
            Ok(format!(
                "{} files, {} folders, {} other, {} bytes",
                restored.files, restored.dirs, restored.others, restored.bytes
            ))
        } else {
            Err(format!(
                "{} entries could not be restored: {}",
                restored.failures.len(),
                restored
                    .failures
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        },
    );
    rec.add(
        "verify",
        t,
        if restore_ok && restored.verified_files == restored.files {
            Ok(format!(
                "{} files match the snapshot",
                restored.verified_files
            ))
        } else {
            Err(format!(
                "{} of {} files verified",
                restored.verified_files, restored.files
            ))
        },
    );

    for data in find_clusters(target) {
        let shown = Path::new("/").join(data.strip_prefix(target).unwrap_or(&data));
        if !restore_ok {
            // Files are missing from it: starting it proves nothing, and a server short of
            // a WAL segment or relation file can wait in recovery for as long as it is let.
            rec.skip(
                format!("postgresql {}: start", shown.display()),
                "not started: the restore was incomplete, so this is not the snapshot's cluster",
            );
            continue;
        }
        drill_cluster(&data, &shown, scratch, opts, rec);
    }

    let t = Instant::now();
    match check_secrets(reader.repo.backend.as_ref(), target, &snap.hostname, opts) {
        Ok(Some(detail)) => {
            rec.add("secrets", t, Ok(detail));
        }
        Ok(None) => rec.skip(
            "secrets",
            "no platform secrets are sealed or in the snapshot",
        ),
        Err(e) => {
            rec.add("secrets", t, Err(e));
        }
    }
}

/// Folders below `root` holding a PostgreSQL cluster (not looking inside one).
fn find_clusters(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("PG_VERSION").is_file() && d.join("global/pg_control").is_file() {
            out.push(d);
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn drill_cluster(
    data: &Path,
    shown: &Path,
    scratch: &Path,
    opts: &DrillOptions,
    rec: &mut Recorder,
) {
    let label = format!("postgresql {}", shown.display());
    let t = Instant::now();
    let mut server = match Sandbox::start(data, scratch, opts) {
        Ok(s) => s,
        Err(e) => {
            rec.add(format!("{label}: start"), t, Err(e));
            return;
        }
    };
    rec.add(
        format!("{label}: start"),
        t,
        Ok(format!(
            "PostgreSQL {} finished recovery and accepts connections (as uid {}, socket in the scratch folder, no TCP)",
            server.major, server.uid
        )),
    );
    let t = Instant::now();
    let amcheck = server.bin.join("pg_amcheck");
    if amcheck.exists() {
        let r = server.tool(
            &amcheck,
            &["--all", "--install-missing", "--heapallindexed"],
        );
        rec.add(
            format!("{label}: pg_amcheck"),
            t,
            r.map(|_| "no corruption found (--heapallindexed, every database)".to_string()),
        );
    } else {
        rec.skip(
            format!("{label}: pg_amcheck"),
            format!("{} is not installed", amcheck.display()),
        );
    }
    let db = opts
        .config
        .database
        .clone()
        .unwrap_or_else(|| "postgres".into());
    for q in &opts.config.sql {
        let t = Instant::now();
        let r = server.sql(&db, q);
        rec.add(
            format!("{label}: sql: {q}"),
            t,
            r.map(|out| format!("returned {out:?}")),
        );
    }
    let t = Instant::now();
    let stopped = server.stop();
    rec.add(
        format!("{label}: stop"),
        t,
        stopped.map(|()| "stopped".to_string()),
    );
}

/// A restored cluster started for the drill.
struct Sandbox {
    child: Option<Child>,
    bin: PathBuf,
    sock: PathBuf,
    port: u16,
    uid: u32,
    major: String,
    user: String,
    log: PathBuf,
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The data folder's PostgreSQL major version, the folder of its binaries (the configured
/// one, else Debian's), and its server binary, which must exist.
fn server_binary(
    data: &Path,
    opts: &DrillOptions,
) -> std::result::Result<(String, PathBuf, PathBuf), String> {
    let major = std::fs::read_to_string(data.join("PG_VERSION"))
        .map_err(|e| format!("read PG_VERSION: {e}"))?
        .trim()
        .to_string();
    let bin = opts
        .config
        .postgres_bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    let postgres = bin.join("postgres");
    if !postgres.exists() {
        return Err(format!(
            "{} is missing: install PostgreSQL {major} (Debian/Ubuntu: postgresql-{major}) or set [drill] postgres_bin",
            postgres.display()
        ));
    }
    Ok((major, bin, postgres))
}

/// The user and group the server runs as: the data folder's owner, unless that is root or
/// (for a non-root drill) another user; then the folder is given to nobody (as root) or to
/// this user. The folder is made private to them.
fn give_data_to_server(data: &Path) -> std::result::Result<(u32, u32), String> {
    let meta = std::fs::metadata(data).map_err(|e| format!("stat {}: {e}", data.display()))?;
    let (mut uid, mut gid) = (meta.uid(), meta.gid());
    let euid = rustix::process::geteuid().as_raw();
    if uid == 0 || (euid != 0 && uid != euid) {
        // PostgreSQL refuses root; a non-root drill can only run as itself.
        let (u, g) = if euid == 0 {
            (65534, 65534)
        } else {
            (euid, rustix::process::getegid().as_raw())
        };
        chown_tree(data, u, g).map_err(|e| format!("give {} to uid {u}: {e}", data.display()))?;
        uid = u;
        gid = g;
    }
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", data.display()))?;
    Ok((uid, gid))
}

/// Makes the server's socket folder in `scratch` with its trust-only `hba.conf` and its
/// log, owned by the server's user, and empty configuration files where the data folder
/// lacks them. Returns the socket folder, the hba file and the log.
fn server_files(
    data: &Path,
    scratch: &Path,
    uid: u32,
    gid: u32,
) -> std::result::Result<(PathBuf, PathBuf, PathBuf), String> {
    let sock = scratch.join(format!("pg-{}", hex::encode(rand::random::<[u8; 3]>())));
    std::fs::create_dir(&sock).map_err(|e| format!("create {}: {e}", sock.display()))?;
    let hba = sock.join("hba.conf");
    std::fs::write(&hba, "local all all trust\n").map_err(|e| e.to_string())?;
    let log = sock.join("server.log");
    std::fs::write(&log, "").map_err(|e| e.to_string())?;
    for p in [&sock, &hba, &log] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    // Debian keeps the configuration outside the data directory: start from nothing.
    for f in ["postgresql.conf", "pg_ident.conf"] {
        let p = data.join(f);
        if !p.exists() {
            std::fs::write(&p, "").map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
    }
    Ok((sock, hba, log))
}

/// The command that runs `postgres` on `data` as `uid`:`gid` (through `setpriv` when this
/// is root), listening only on a socket in `sock`, with archiving, replication and TLS off.
fn server_command(
    postgres: &Path,
    data: &Path,
    sock: &Path,
    hba: &Path,
    port: u16,
    uid: u32,
    gid: u32,
) -> Command {
    let euid = rustix::process::geteuid().as_raw();
    let mut cmd = if euid == 0 && uid != 0 {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(postgres);
        c
    } else {
        Command::new(postgres)
    };
    cmd.arg("-D").arg(data);
    for (k, v) in [
        ("listen_addresses", String::new()),
        ("unix_socket_directories", sock.display().to_string()),
        ("port", port.to_string()),
        ("hba_file", hba.display().to_string()),
        (
            "ident_file",
            data.join("pg_ident.conf").display().to_string(),
        ),
        ("archive_mode", "off".into()),
        ("ssl", "off".into()),
        ("logging_collector", "off".into()),
        ("log_destination", "stderr".into()),
        ("max_wal_senders", "0".into()),
        ("hot_standby", "off".into()),
    ] {
        cmd.arg("-c").arg(format!("{k}={v}"));
    }
    cmd
}

impl Sandbox {
    /// Starts a PostgreSQL server of the data folder's version on `data`, reachable only
    /// through a socket folder in `scratch`, and waits until it has finished recovery.
    fn start(
        data: &Path,
        scratch: &Path,
        opts: &DrillOptions,
    ) -> std::result::Result<Sandbox, String> {
        let (major, bin, postgres) = server_binary(data, opts)?;
        let (uid, gid) = give_data_to_server(data)?;
        // Leftovers of a server that ran when the snapshot was taken.
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let (sock, hba, log) = server_files(data, scratch, uid, gid)?;
        let port = 20000 + (rand::random::<u16>() % 30000);
        let logf = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .map_err(|e| e.to_string())?;
        let mut cmd = server_command(&postgres, data, &sock, &hba, port, uid, gid);
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("start {}: {e}", postgres.display()))?;
        let user = crate::fsmeta::Names::default()
            .user(uid)
            .unwrap_or_else(|| "postgres".into());
        let sb = Sandbox {
            child: Some(child),
            bin,
            sock,
            port,
            uid,
            major,
            user,
            log,
        };
        let limit = opts
            .config
            .start_timeout
            .as_deref()
            .and_then(crate::hooks::parse_duration)
            .unwrap_or(Duration::from_secs(1800));
        sb.wait_ready(limit)
    }

    /// Waits until the started server accepts connections and has left recovery; stops it
    /// when it does not within `limit`, or on a stop request.
    fn wait_ready(mut self, limit: Duration) -> std::result::Result<Sandbox, String> {
        let t = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "the server exited ({st}) before it accepted connections:\n{}",
                        tail(&self.log)
                    ));
                }
            }
            // Any role name: trust authentication tells "no such role" from "not ready".
            match self.sql_as("postgres", "postgres", "select pg_is_in_recovery()") {
                Ok(v) if v == "f" => return Ok(self),
                Ok(_) => {}
                Err(e) if e.contains("does not exist") => {
                    let owner = self.user.clone();
                    if let Ok(v) = self.sql_as(&owner, "postgres", "select pg_is_in_recovery()") {
                        if v == "f" {
                            return Ok(self);
                        }
                    }
                }
                Err(_) => {}
            }
            if let Err(e) = crate::progress::check_cancelled("drill") {
                let _ = self.stop();
                return Err(e.to_string());
            }
            if t.elapsed() > limit {
                let _ = self.stop();
                return Err(format!(
                    "the server did not finish recovery within {} s:\n{}",
                    limit.as_secs(),
                    tail(&self.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn conn(&self, user: &str, db: &str) -> Vec<String> {
        vec![
            "-h".into(),
            self.sock.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            user.into(),
            "-d".into(),
            db.into(),
        ]
    }

    fn sql_as(&self, user: &str, db: &str, sql: &str) -> std::result::Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(self.conn(user, db))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// SQL as a superuser: `postgres` when that role exists, else the owner's name.
    fn sql(&self, db: &str, sql: &str) -> std::result::Result<String, String> {
        match self.sql_as("postgres", db, sql) {
            Err(e) if e.contains("role \"postgres\" does not exist") => {
                self.sql_as(&self.user, db, sql)
            }
            r => r,
        }
    }

    fn tool(&self, prog: &Path, args: &[&str]) -> std::result::Result<String, String> {
        let user = if self.sql_as("postgres", "postgres", "select 1").is_ok() {
            "postgres".to_string()
        } else {
            self.user.clone()
        };
        let out = Command::new(prog)
            .args([
                "-h",
                &self.sock.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                &user,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", prog.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            let lines: Vec<&str> = text.lines().take(20).collect();
            Err(format!(
                "{} ({}):\n{}",
                prog.display(),
                out.status,
                lines.join("\n")
            ))
        }
    }

    /// Fast shutdown (SIGINT), then SIGKILL after a minute.
    fn stop(&mut self) -> std::result::Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::Int);
        let t = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if t.elapsed() < Duration::from_secs(60) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::Kill);
                    let _ = child.wait();
                    return Err("the server did not stop within 60 s; killed it".into());
                }
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
    let meta = std::fs::symlink_metadata(p)?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Ok(None) when there is nothing to check; Ok(Some(detail)) when every secret sealed on
/// `host` (the snapshot's) matches the restored source; Err naming each that does not.
fn check_secrets(
    backend: &dyn crate::backend::Backend,
    root: &Path,
    host: &str,
    opts: &DrillOptions,
) -> std::result::Result<Option<String>, String> {
    use crate::secrets::{Origin, VerifyStatus};
    let sources = opts.secrets.sources().map_err(|e| e.to_string())?;
    if sources.is_empty() {
        return Ok(None);
    }
    let outcomes = crate::secrets::verify_on(
        backend,
        &sources,
        Some(root),
        Some(&opts.fingerprint_key),
        None,
        &[host.to_string()],
    )
    .map_err(|e| e.to_string())?;
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (o, src) in outcomes.iter().zip(&sources) {
        match &o.status {
            VerifyStatus::Matches => ok.push(o.name.clone()),
            // A command source cannot run against the restored tree; nothing sealed and
            // nothing restored means this host has no such secret (a worker).
            VerifyStatus::Absent { .. } if matches!(src.origin, Origin::Command(_)) => {}
            VerifyStatus::Absent { .. } if o.newest.is_none() => {}
            VerifyStatus::NotSealed => {
                bad.push(format!("{}: in the restored tree but never sealed", o.name))
            }
            VerifyStatus::MatchesOlder { number } => bad.push(format!(
                "{}: matches the older sealed version {number}, not the newest",
                o.name
            )),
            VerifyStatus::Differs => bad.push(format!(
                "{}: the restored value is not the sealed one",
                o.name
            )),
            VerifyStatus::Absent { reason } => bad.push(format!(
                "{}: sealed, but missing from the restored tree: {reason}",
                o.name
            )),
            VerifyStatus::Failed(e) => bad.push(format!("{}: {e}", o.name)),
        }
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    if ok.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("{} match the sealed values", ok.join(", "))))
}
