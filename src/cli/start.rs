//! What every command that works on a store shares before it runs: the configuration, the
//! metrics textfile, the progress reporter and the [`Context`] made from the global
//! options. The documentation commands (`completions`, `manpages`) need none of it.

use super::args::{Cli, Command};
use super::context::{Context, Overrides};
use super::metrics::Finish;
use super::progress::Reporter;
use anyhow::Result;
use std::path::PathBuf;

/// A command's surroundings, kept while it runs.
pub struct Started {
    pub ctx: Context,
    /// Where `vault drill` writes its own textfile (vault_drill_*): the --metrics-file
    /// given to it, which then takes the place of the per-command series.
    pub drill_metrics: Option<PathBuf>,
    /// Prints status lines until dropped.
    _progress: Reporter,
}

/// Loads the configuration, fills in `finish` (the metrics textfile and host name), starts
/// the progress reporter and makes the context; returns the command to run in it.
pub fn start(cli: Cli, finish: &mut Finish) -> Result<(Command, Started)> {
    let config = vault::config::Config::load(cli.config.as_deref())?;
    finish.metrics_file = cli
        .metrics_file
        .clone()
        .or_else(|| config.metrics.textfile.clone());
    finish.hostname = config.hostname.clone();
    // A [metrics] textfile keeps the per-command series for drills too.
    let drill_metrics = match &cli.command {
        Command::Drill(_) if cli.metrics_file.is_some() => finish.metrics_file.take(),
        _ => None,
    };
    let interval = match cli
        .progress_interval
        .as_deref()
        .or(config.progress.interval.as_deref())
    {
        Some(text) => super::progress::parse_interval(text).map_err(|e| {
            vault::Error::Usage(format!(
                "progress interval (--progress-interval or [progress] interval): {e}"
            ))
        })?,
        None => super::progress::DEFAULT_INTERVAL,
    };
    let progress = Reporter::start(super::output::mode(), interval);
    let ctx = Context::new(
        config,
        Overrides {
            store: cli.command.store(cli.store),
            identity: cli.identity,
            passphrase_file: cli.passphrase_file,
            writer_key: cli.writer_key,
            cache_dir: cli.cache_dir,
            threads: cli.threads,
            lock_wait: std::time::Duration::from_secs(cli.lock_wait),
            allow_weak_passphrase: cli.allow_weak_passphrase,
        },
    );
    let started = Started {
        ctx,
        drill_metrics,
        _progress: progress,
    };
    Ok((cli.command, started))
}
