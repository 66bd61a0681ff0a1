//! The command line as clap parses it: the global options, the commands, and the options
//! several commands share. Each command's own options live in its file under
//! `commands/` (or its module); `--help`, the man pages and the completion scripts are
//! made from these definitions.

use super::commands;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Printed at the end of `vault --help` (and of every subcommand's help).
const AFTER_HELP: &str = "\
Exit status:
  0    success
  1    failed (an error, or `check` found problems); nothing half-written is left
  2    usage: bad options or arguments
  3    partial: finished, but not everything could be done (listed on stderr): some
       source files were unreadable or changed while read, some metadata could not be
       restored, entries tar cannot hold (dump), packs unreadable (repair index),
       blobs in no pack (lock extend)
  130  stopped by SIGINT, 143 stopped by SIGTERM (what was kept is said on stderr)
  101  a bug in vault (it panicked): please report it with the message

Every global option can also be set in the environment variable shown with it.";

pub const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "vault",
    version,
    long_version = super::docs::LONG_VERSION,
    about = "Encrypted, deduplicating backups of Travis CI Enterprise hosts",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Configuration file [default: /etc/vault/vault.toml when present]
    #[arg(long, global = true, env = "VAULT_CONFIG", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Store location: a folder or s3://BUCKET/PREFIX [default: /var/backups/vault as root]
    #[arg(long, global = true, env = "VAULT_STORE", help_heading = GLOBAL)]
    pub store: Option<String>,
    /// age identity file of the store's reader (instead of the passphrase)
    #[arg(long, global = true, env = "VAULT_IDENTITY_FILE", help_heading = GLOBAL)]
    pub identity: Option<PathBuf>,
    /// File holding the store passphrase (the passphrase itself may be given in VAULT_PASSPHRASE)
    #[arg(long, global = true, env = "VAULT_PASSPHRASE_FILE", help_heading = GLOBAL)]
    pub passphrase_file: Option<PathBuf>,
    /// This host's writer key file [default: /etc/vault/writer-STOREID.json as root]
    #[arg(long, global = true, env = "VAULT_WRITER_KEY", help_heading = GLOBAL)]
    pub writer_key: Option<PathBuf>,
    /// Folder for the local cache database [default: /var/cache/vault as root]
    #[arg(long, global = true, env = "VAULT_CACHE_DIR", help_heading = GLOBAL)]
    pub cache_dir: Option<PathBuf>,
    /// Worker threads for packing and restoring [default: `threads` in the config, else number of cores + 1]
    #[arg(long, global = true, env = "VAULT_THREADS", help_heading = GLOBAL)]
    pub threads: Option<usize>,
    /// Seconds to wait for a snapshot or prune that holds the store
    #[arg(long, global = true, default_value_t = 600, env = "VAULT_LOCK_WAIT", help_heading = GLOBAL)]
    pub lock_wait: u64,
    /// Print one JSON object with the result on stdout (progress: JSON lines on stderr)
    #[arg(long, global = true, env = "VAULT_JSON", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL)]
    pub json: bool,
    /// Print only errors and warnings
    #[arg(long, short, global = true, env = "VAULT_QUIET", value_parser = clap::builder::BoolishValueParser::new(), conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    /// Also name each file read, skipped or restored
    #[arg(long, short, global = true, env = "VAULT_VERBOSE", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL)]
    pub verbose: bool,
    /// Time between status lines when stderr is no terminal, e.g. 60s, 5m [default: 60s, or [progress] interval]
    #[arg(long, global = true, env = "VAULT_PROGRESS_INTERVAL", value_name = "DURATION", help_heading = GLOBAL)]
    pub progress_interval: Option<String>,
    /// Write a Prometheus textfile with this run's metrics here [default: [metrics] textfile]
    #[arg(long, global = true, env = "VAULT_METRICS_FILE", value_name = "PATH", help_heading = GLOBAL)]
    pub metrics_file: Option<PathBuf>,
    /// Accept a new passphrase that the strength check calls weak
    #[arg(long, global = true, env = "VAULT_ALLOW_WEAK_PASSPHRASE", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL)]
    pub allow_weak_passphrase: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a new store and this host's keys
    Init(commands::InitArgs),
    /// Save the configured paths (default /etc/travis and /var/travis) into the store
    Snapshot(commands::SnapshotArgs),
    /// List snapshots (--json: an array of snapshot objects)
    Snapshots(commands::SnapshotsArgs),
    /// List the contents of a snapshot
    Ls(commands::LsArgs),
    /// Restore a snapshot into a folder (use --to / to put the trees back in place)
    Restore(commands::RestoreArgs),
    /// Remove snapshots by a retention policy (flags, else [retention] in the config)
    Forget(commands::ForgetArgs),
    /// Remove data that no snapshot needs (needs the reader identity)
    Prune(commands::PruneArgs),
    /// Check the store's integrity; --read-data also decrypts every blob
    Check(commands::CheckArgs),
    /// Copy a store (or chosen snapshots) to another location, shipping only what it lacks
    Copy(commands::CopyArgs),
    /// Manage the store's keys
    #[command(subcommand)]
    Key(commands::KeyCommand),
    /// Authorise, list and revoke snapshotting hosts
    #[command(subcommand)]
    Host(commands::HostCommand),
    /// Bring a store to the current format: signs a first-format one, enables chunk lists (needs the reader identity)
    Upgrade,
    /// The platform's encryption key and RabbitMQ password, sealed to escrow recipients
    #[command(subcommand)]
    Secrets(super::secrets::SecretsCommand),
    /// S3 Object Lock: keep what the retention policy keeps undeletable
    #[command(subcommand)]
    Lock(commands::LockCommand),
    /// Store size, data before and after deduplication and compression, per snapshot
    Stats(super::stats::StatsArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout
    Completions(super::docs::CompletionsArgs),
    /// Write man pages (vault.1 and one per subcommand) into a folder
    Manpages(super::docs::ManpagesArgs),
    /// Restore a snapshot into a scratch folder and prove it works (files, database, secrets)
    Drill(super::drill::DrillArgs),
    /// Turn tar archives (such as travis-backup-EPOCH.tar.gz) into snapshots
    ImportTar(super::import_tar::ImportTarArgs),
    /// Write a snapshot (or a path in it) as a tar stream to standard output
    Dump(super::dump::DumpArgs),
    /// Show what changed between two snapshots
    Diff(super::diff::DiffArgs),
    /// Find which snapshots hold a path or name (glob)
    Find(super::find::FindArgs),
    /// Browse snapshots read-only through FUSE, by host and time
    Mount(super::mount::MountArgs),
    /// Rebuild the index from the packs, or snapshots without the files whose data is lost
    #[command(subcommand)]
    Repair(super::repair::RepairCommand),
    /// Remove leases left by processes that died (and, with --force, a named one)
    Unlock(super::unlock::UnlockArgs),
}

impl Command {
    /// The command's name as `vault` spells it (for JSON results and metrics).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Snapshot(_) => "snapshot",
            Command::Snapshots(_) => "snapshots",
            Command::Ls(_) => "ls",
            Command::Restore(_) => "restore",
            Command::Forget(_) => "forget",
            Command::Prune(_) => "prune",
            Command::Check(_) => "check",
            Command::Copy(_) => "copy",
            Command::Key(_) => "key",
            Command::Secrets(_) => "secrets",
            Command::Lock(_) => "lock",
            Command::Stats(_) => "stats",
            Command::Completions(_) => "completions",
            Command::Manpages(_) => "manpages",
            Command::Repair(_) => "repair",
            Command::ImportTar(_) => "import-tar",
            Command::Dump(_) => "dump",
            Command::Diff(_) => "diff",
            Command::Find(_) => "find",
            Command::Mount(_) => "mount",
            Command::Unlock(_) => "unlock",
            Command::Host(_) => "host",
            Command::Upgrade => "upgrade",
            Command::Drill(_) => "drill",
        }
    }

    /// The store the command works on: `copy` reads the one --from names, every other
    /// command the one `global` (--store) names.
    pub fn store(&self, global: Option<String>) -> Option<String> {
        match self {
            Command::Copy(args) => Some(args.from.clone()),
            _ => global,
        }
    }

    /// Commands that change nothing: a closed stdout ends them at once with status 0.
    pub fn is_listing(&self) -> bool {
        match self {
            Command::Snapshots(_)
            | Command::Ls(_)
            | Command::Stats(_)
            | Command::Completions(_)
            | Command::Diff(_)
            | Command::Find(_)
            | Command::Dump(_)
            | Command::Key(commands::KeyCommand::List)
            | Command::Host(commands::HostCommand::List) => true,
            Command::Restore(args) => args.dry_run,
            Command::Forget(args) => args.dry_run,
            Command::Prune(args) => args.dry_run,
            Command::Lock(commands::LockCommand::Extend { dry_run, .. }) => *dry_run,
            Command::Secrets(cmd) => super::secrets::is_listing(cmd),
            _ => false,
        }
    }
}

#[derive(clap::Args)]
pub struct KeepArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this (e.g. 30d, 2w, 1y6m, 12h)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every snapshot carrying this tag; repeatable
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Only consider these snapshots (--host, --tag, --path)
    #[command(flatten)]
    pub filter: super::filter::FilterArgs,
    /// Apply the policy per group: any of host,paths,tags (default host,paths)
    #[arg(long, value_name = "FIELDS")]
    pub group_by: Option<String>,
}

impl KeepArgs {
    /// The policy from the flags when any rule is given, else from the configuration.
    pub fn into_config(
        self,
        configured: &vault::retention::RetentionConfig,
    ) -> vault::retention::RetentionConfig {
        let any_rule = self.keep_last.is_some()
            || self.keep_hourly.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
            || self.keep_within.is_some()
            || !self.keep_tags.is_empty();
        let mut c = if any_rule {
            vault::retention::RetentionConfig {
                keep_last: self.keep_last.unwrap_or(0),
                keep_hourly: self.keep_hourly.unwrap_or(0),
                keep_daily: self.keep_daily.unwrap_or(0),
                keep_weekly: self.keep_weekly.unwrap_or(0),
                keep_monthly: self.keep_monthly.unwrap_or(0),
                keep_yearly: self.keep_yearly.unwrap_or(0),
                keep_within: self.keep_within,
                keep_tags: self.keep_tags,
                hosts: configured.hosts.clone(),
                group_by: configured.group_by.clone(),
            }
        } else {
            configured.clone()
        };
        if !self.filter.hosts.is_empty() {
            c.hosts = self.filter.hosts;
        }
        if self.group_by.is_some() {
            c.group_by = self.group_by;
        }
        c
    }
}
