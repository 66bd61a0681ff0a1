//! Operator commands run around a snapshot or a restore (`[hooks]`, `[hooks.restore]`):
//! `before` (a failure aborts the operation), `after` (runs on every exit path once
//! `before` was tried, so a stopped platform is started again), `on_error` (runs when the
//! operation failed).
//!
//! Each hook is an argv (no shell unless the operator writes `sh -c`), started in its own
//! process group, so a Ctrl-C at the terminal reaches vault (which then finishes cleanly
//! and runs `after`) and not the hook, and a hook that outlives its timeout is killed
//! with everything it started (SIGTERM to the group, SIGKILL five seconds later).
//!
//! Environment: vault's own, less every `VAULT_*` variable and anything that looks like a
//! secret (names containing `PASSPHRASE`, `SECRET`, `TOKEN`, `PASSWORD`), plus
//! `VAULT_HOOK` (`before`, `after`, `on_error`), `VAULT_OPERATION` (`snapshot`,
//! `restore`), `VAULT_STORE` (the store's location), `VAULT_STATUS` (`running` for
//! `before`; then `ok`, `partial`, `failed` or `interrupted`) and `VAULT_SNAPSHOT_ID`
//! (for `after` and `on_error`, when a snapshot id is known). The hook's output is handed,
//! line by line, to the caller's log; this module prints nothing.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Default for a hook without `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `[hooks]`: the snapshot's hooks, and `[hooks.restore]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    pub on_error: Option<Vec<String>>,
    /// Per hook, e.g. "10m", "90s", "1h" [default 10m].
    pub timeout: Option<String>,
    pub restore: Option<HookSet>,
}

/// One operation's hooks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSet {
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    pub on_error: Option<Vec<String>>,
    pub timeout: Option<String>,
}

impl HooksConfig {
    pub fn snapshot(&self) -> HookSet {
        HookSet {
            before: self.before.clone(),
            after: self.after.clone(),
            on_error: self.on_error.clone(),
            timeout: self.timeout.clone(),
        }
    }

    pub fn restore(&self) -> HookSet {
        self.restore.clone().unwrap_or_default()
    }
}

impl HookSet {
    pub fn is_empty(&self) -> bool {
        self.before.is_none() && self.after.is_none() && self.on_error.is_none()
    }

    pub fn timeout(&self) -> Result<Duration> {
        match &self.timeout {
            None => Ok(DEFAULT_TIMEOUT),
            Some(t) => parse_duration(t).ok_or_else(|| {
                Error::Usage(format!(
                    "hooks timeout {t:?} is not a duration: write for example \"90s\", \"10m\" or \"1h\""
                ))
            }),
        }
    }

    pub fn get(&self, kind: HookKind) -> Option<&[String]> {
        match kind {
            HookKind::Before => self.before.as_deref(),
            HookKind::After => self.after.as_deref(),
            HookKind::OnError => self.on_error.as_deref(),
        }
    }
}

/// `90`, `90s`, `10m`, `1h`, `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Before,
    After,
    OnError,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Before => "before",
            HookKind::After => "after",
            HookKind::OnError => "on_error",
        }
    }
}

/// What the hook learns through its environment.
#[derive(Clone, Debug)]
pub struct HookEnv {
    /// `snapshot` or `restore`.
    pub operation: String,
    pub store: String,
    /// `running`, `ok`, `partial`, `failed` or `interrupted`.
    pub status: String,
    pub snapshot_id: Option<String>,
}

/// True for environment variables a hook must not inherit.
pub fn is_secret_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("VAULT_")
        || ["PASSPHRASE", "SECRET", "TOKEN", "PASSWORD"]
            .iter()
            .any(|w| upper.contains(w))
}

/// Runs one hook to its end (or its timeout), handing each output line to `log`.
/// Ok when it exited 0; otherwise an error naming the hook and what happened.
pub fn run(
    kind: HookKind,
    argv: &[String],
    timeout: Duration,
    env: &HookEnv,
    log: &mut dyn FnMut(&str),
) -> Result<Duration> {
    let name = kind.name();
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::Usage(format!(
            "hook {name} is an empty list: give the command and its arguments, or remove the key"
        )));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, _) in std::env::vars_os() {
        if is_secret_env(&k.to_string_lossy()) {
            cmd.env_remove(&k);
        }
    }
    cmd.env("VAULT_HOOK", name)
        .env("VAULT_OPERATION", &env.operation)
        .env("VAULT_STORE", &env.store)
        .env("VAULT_STATUS", &env.status);
    if let Some(id) = &env.snapshot_id {
        cmd.env("VAULT_SNAPSHOT_ID", id);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Hook(format!("hook {name} (`{prog}`) could not start: {e}")))?;
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if tx.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        });
    }
    drop(tx);
    let pgid = rustix::process::Pid::from_child(&child);
    let mut killed_at: Option<Instant> = None;
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            log(&l);
        }
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(Error::Hook(format!("hook {name}: cannot wait for it: {e}"))),
        }
        let now = Instant::now();
        if killed_at.is_none() && now.duration_since(started) > timeout {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::Term);
            killed_at = Some(now);
        }
        if let Some(t) = killed_at {
            if now.duration_since(t) > Duration::from_secs(5) {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::Kill);
            }
        }
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(20)) {
            log(&l);
        }
    };
    // The rest of the output; a process the hook left running may keep the pipes open,
    // so wait only a little for it.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => log(&l),
            Err(_) => break,
        }
    }
    if killed_at.is_some() {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::Kill);
        return Err(Error::Hook(format!(
            "hook {name} (`{prog}`) did not finish within {} s and was killed with its process group",
            timeout.as_secs()
        )));
    }
    if !status.success() {
        return Err(Error::Hook(format!(
            "hook {name} (`{prog}`) failed: {status}"
        )));
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5m3"), None);
    }

    #[test]
    fn hook_postgres_and_drill_tables_parse() {
        let c = crate::config::Config::parse(
            r#"
            [hooks]
            before = ["replicatedctl", "app", "stop"]
            after = ["replicatedctl", "app", "start"]
            on_error = ["/usr/local/bin/page-oncall"]
            timeout = "10m"
            [hooks.restore]
            before = ["true"]
            [[postgres]]
            data_dir = "/var/travis/postgresql/data"
            psql = ["docker", "exec", "-i", "travis", "psql", "-U", "postgres"]
            [drill]
            sql = ["select count(*) from builds"]
            "#,
        )
        .unwrap();
        let s = c.hooks.snapshot();
        assert_eq!(s.timeout().unwrap(), Duration::from_secs(600));
        assert_eq!(s.get(HookKind::After).unwrap()[2], "start");
        assert_eq!(c.hooks.restore().before.unwrap(), ["true"]);
        assert!(c.hooks.restore().after.is_none());
        assert_eq!(c.postgres[0].psql[0], "docker");
        assert_eq!(c.drill.sql.len(), 1);
        assert!(crate::config::Config::parse("[hooks]\nbefor = []").is_err());
    }

    #[test]
    fn secret_looking_variables_are_not_inherited() {
        assert!(is_secret_env("VAULT_PASSPHRASE"));
        assert!(is_secret_env("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_env("AWS_SESSION_TOKEN"));
        assert!(is_secret_env("PGPASSWORD"));
        assert!(!is_secret_env("PATH"));
        assert!(!is_secret_env("HOME"));
    }
}
