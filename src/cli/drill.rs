//! `vault drill`: restore a snapshot into a scratch folder and prove it works.

use crate::cli::context::Context;
use anyhow::{anyhow, bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct DrillArgs {
    /// Snapshot id (or unique prefix), or "latest" (the latest of this host)
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Host whose latest snapshot "latest" means [default: this host]
    #[arg(long)]
    pub host: Option<String>,
    /// Folder to create the scratch folder in [default: [drill] scratch_dir, else the temporary folder]
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
}

/// With the global `--json` the report is the JSON result. `metrics_file` is an explicit
/// global `--metrics-file`: it gets the drill's own textfile (last run, duration, passed);
/// without it, `[metrics] textfile` records the drill like any command.
pub fn run(ctx: &Context, args: DrillArgs, metrics_file: Option<&Path>) -> Result<u8> {
    let started = Instant::now();
    let outcome = drill(ctx, &args);
    let passed = matches!(&outcome, Ok(r) if r.passed);
    if let Some(path) = metrics_file {
        write_metrics(path, started.elapsed().as_secs_f64(), passed)
            .with_context(|| format!("write the metrics file {}", path.display()))?;
    }
    let report = outcome?;
    crate::cli::output::set_result(serde_json::to_value(&report)?);
    // With --json the report is the result object; nothing else goes to stdout.
    if !crate::cli::output::json() {
        outln!(
            "drill of snapshot {} ({}, {}): {} in {:.1} s",
            &report.snapshot[..8.min(report.snapshot.len())],
            report.hostname,
            report.snapshot_time,
            if report.passed { "PASSED" } else { "FAILED" },
            report.duration_ms as f64 / 1000.0
        );
        for c in &report.checks {
            let mut lines = c.detail.lines();
            outln!(
                "  {:<8} {}: {}",
                c.outcome.as_str(),
                c.name,
                lines.next().unwrap_or_default()
            );
            if c.failed() {
                for l in lines {
                    outln!("           {l}");
                }
            }
        }
    }
    if !report.passed {
        bail!(
            "drill failed: {} (see the report above)",
            report.failed_checks().join(", ")
        );
    }
    Ok(0)
}

fn drill(ctx: &Context, args: &DrillArgs) -> Result<vault::drill::DrillReport> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let (id, snap) = if args.snapshot == "latest" {
        let host = args.host.clone().unwrap_or_else(|| ctx.hostname());
        let all = repo.snapshots(&keys)?;
        let hosts: std::collections::BTreeSet<String> =
            all.iter().map(|(_, s)| s.hostname.clone()).collect();
        all.into_iter()
            .rev()
            .find(|(_, s)| s.hostname == host)
            .ok_or_else(|| {
                anyhow!(
                    "no snapshot of host {host:?} in {}; hosts in the store: {} (pick one with --host, or name a snapshot id)",
                    repo.location(),
                    if hosts.is_empty() {
                        "none".to_string()
                    } else {
                        hosts.into_iter().collect::<Vec<_>>().join(", ")
                    }
                )
            })?
    } else {
        repo.find_snapshot(&keys, &args.snapshot)?
    };
    let scratch_parent = args
        .scratch_dir
        .clone()
        .or_else(|| ctx.config.drill.scratch_dir.clone())
        .unwrap_or_else(std::env::temp_dir);
    // Only the store and the reader identity: a fresh cache, removed afterwards.
    let cache_dir = scratch_parent.join(format!(
        "vault-drill-cache-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    let result = (|| -> Result<vault::drill::DrillReport> {
        let mut cache = vault::cache::Cache::open(&cache_dir, &repo.config.store_id)?;
        cache.sync_index(&repo, &keys)?;
        let fingerprint_key = keys.derive(vault::crypto::SECRET_FINGERPRINT_CONTEXT);
        let reader = vault::reader::BlobReader::new(repo.clone(), keys.clone(), identity.clone());
        let opts = vault::drill::DrillOptions {
            scratch_parent: scratch_parent.clone(),
            config: ctx.config.drill.clone(),
            threads: ctx.threads(),
            secrets: ctx.config.secrets.clone(),
            fingerprint_key,
        };
        Ok(vault::drill::run(&reader, &cache, &id, &snap, &opts)?)
    })();
    let _ = std::fs::remove_dir_all(&cache_dir);
    result
}

/// node_exporter's textfile format, written whole under a temporary name and renamed.
fn write_metrics(path: &Path, secs: f64, passed: bool) -> std::io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let text = format!(
        "# HELP vault_drill_last_run_timestamp_seconds When the last vault drill ended.\n\
         # TYPE vault_drill_last_run_timestamp_seconds gauge\n\
         vault_drill_last_run_timestamp_seconds {now}\n\
         # HELP vault_drill_duration_seconds How long the last vault drill took.\n\
         # TYPE vault_drill_duration_seconds gauge\n\
         vault_drill_duration_seconds {secs:.3}\n\
         # HELP vault_drill_passed 1 when the last vault drill passed every check, else 0.\n\
         # TYPE vault_drill_passed gauge\n\
         vault_drill_passed {}\n",
        u8::from(passed)
    );
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
