//! The Prometheus textfile (`--metrics-file`, `[metrics] textfile`), for node_exporter's
//! textfile collector.
//!
//! After every command the file is rewritten whole (a temporary file in the same folder,
//! fsynced, then renamed over it), so the collector never reads half a file. It holds one
//! series per metric for each (command, host) pair seen so far: a run replaces the series
//! of its own command and host and keeps the others, and a failed run keeps the last
//! success time of earlier runs.

use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `main` needs to finish a run: where the metrics go.
#[derive(Default)]
pub struct Finish {
    pub metrics_file: Option<PathBuf>,
    /// The configured host name (default: the system's).
    pub hostname: Option<String>,
}

/// Metric names, help texts, and the result field each comes from.
const METRICS: [(&str, &str); 11] = [
    (
        "vault_last_run_timestamp_seconds",
        "When the command last ended (Unix time).",
    ),
    (
        "vault_last_success_timestamp_seconds",
        "When the command last ended with exit status 0 or 3 (Unix time).",
    ),
    ("vault_duration_seconds", "How long the last run took."),
    (
        "vault_exit_status",
        "Exit status of the last run (0 ok, 1 failed, 2 usage, 3 partial).",
    ),
    (
        "vault_bytes_read",
        "Bytes of file content read by the last run.",
    ),
    (
        "vault_bytes_new",
        "Bytes of file content the last run added to the store (before compression).",
    ),
    (
        "vault_bytes_stored",
        "Bytes the last run wrote to the store (packs, compressed and encrypted).",
    ),
    (
        "vault_files",
        "Files the last run saved, restored or checked.",
    ),
    (
        "vault_problems",
        "Problems the last run reported (unreadable files, damaged objects).",
    ),
    (
        "vault_bytes",
        "Bytes of file content the last run covered (apparent size).",
    ),
    (
        "vault_drill_passed",
        "1 when the last vault drill passed every check, else 0.",
    ),
];

impl Finish {
    /// Writes the metrics file if one is configured; a failure is a warning.
    pub fn done(
        &self,
        command: &str,
        exit_status: u8,
        elapsed: Duration,
        result: Option<&serde_json::Value>,
        _error: Option<&anyhow::Error>,
    ) {
        let Some(path) = &self.metrics_file else {
            return;
        };
        let host = self.hostname.clone().unwrap_or_else(vault::host::hostname);
        if let Err(e) = write(path, &host, command, exit_status, elapsed, result) {
            errln!(
                "vault: warning: metrics file {} not written: {e:#}",
                path.display()
            );
        }
    }
}

type Series = BTreeMap<(String, String), f64>;

fn labels(command: &str, host: &str) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    format!("command=\"{}\",host=\"{}\"", esc(command), esc(host))
}

/// Reads the series of an earlier file (lines `name{labels} value`).
fn parse(text: &str) -> Series {
    let mut out = Series::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some(open) = line.find('{') else { continue };
        let Some(close) = line.rfind('}') else {
            continue;
        };
        let Ok(v) = line[close + 1..].trim().parse::<f64>() else {
            continue;
        };
        out.insert(
            (line[..open].to_string(), line[open + 1..close].to_string()),
            v,
        );
    }
    out
}

fn number(result: Option<&serde_json::Value>, key: &str) -> Option<f64> {
    let v = result?.get(key)?;
    match v {
        serde_json::Value::Array(a) => Some(a.len() as f64),
        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
        other => other.as_f64(),
    }
}

pub fn write(
    path: &Path,
    host: &str,
    command: &str,
    exit_status: u8,
    elapsed: Duration,
    result: Option<&serde_json::Value>,
) -> Result<()> {
    let mut series = match std::fs::read_to_string(path) {
        Ok(t) => parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Series::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let l = labels(command, host);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut set = |name: &str, v: Option<f64>| {
        let key = (name.to_string(), l.clone());
        match v {
            Some(v) => {
                series.insert(key, v);
            }
            None => {
                series.remove(&key);
            }
        }
    };
    set("vault_last_run_timestamp_seconds", Some(now));
    if exit_status == 0 || exit_status == 3 {
        set("vault_last_success_timestamp_seconds", Some(now));
    }
    set("vault_duration_seconds", Some(elapsed.as_secs_f64()));
    set("vault_exit_status", Some(exit_status as f64));
    for (metric, field) in [
        ("vault_bytes_read", "bytes_read"),
        ("vault_bytes_new", "bytes_new"),
        ("vault_bytes_stored", "bytes_stored"),
        ("vault_files", "files"),
        ("vault_problems", "problems"),
        ("vault_bytes", "bytes"),
        ("vault_drill_passed", "passed"),
    ] {
        set(metric, number(result, field));
    }
    let mut text = String::new();
    for (name, help) in METRICS {
        let rows: Vec<_> = series.iter().filter(|((n, _), _)| n == name).collect();
        if rows.is_empty() {
            continue;
        }
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for ((_, labels), v) in rows {
            text.push_str(&format!("{name}{{{labels}}} {v}\n"));
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    tmp.1.write_all(text.as_bytes())?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path).with_context(|| format!("rename onto {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path, path: &Path) -> Result<(PathBuf, std::fs::File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    Ok((tmp, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_replaces_its_own_series_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.prom");
        let ok = serde_json::json!({"bytes_read": 10, "bytes_new": 5, "files": 2, "problems": []});
        write(
            &path,
            "h1",
            "snapshot",
            0,
            Duration::from_secs(2),
            Some(&ok),
        )
        .unwrap();
        write(&path, "h1", "check", 1, Duration::from_secs(1), None).unwrap();
        write(&path, "h2", "check", 0, Duration::from_secs(1), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let s = parse(&text);
        let snap = labels("snapshot", "h1");
        let check = labels("check", "h1");
        assert_eq!(s[&("vault_bytes_read".into(), snap.clone())], 10.0);
        assert_eq!(s[&("vault_problems".into(), snap.clone())], 0.0);
        assert_eq!(s[&("vault_exit_status".into(), check.clone())], 1.0);
        assert!(s.contains_key(&("vault_last_success_timestamp_seconds".into(), snap)));
        assert!(!s.contains_key(&("vault_last_success_timestamp_seconds".into(), check)));
        assert_eq!(s[&("vault_exit_status".into(), labels("check", "h2"))], 0.0);
        assert!(text.contains("# TYPE vault_exit_status gauge"));
        assert_eq!(text.matches("# TYPE vault_exit_status gauge").count(), 1);
    }
}
