//! The `vault` command line: parses options, finds keys and passphrases, calls the library
//! and prints. Nothing else happens here.

#[macro_use]
mod cli;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use cli::context::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use vault::restore::Overwrite;

/// Exit code when a command finished but could not do everything (some source files were
/// unreadable, some metadata could not be restored).
const EXIT_PARTIAL: u8 = 3;

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

const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "vault",
    version,
    long_version = cli::docs::LONG_VERSION,
    about = "Encrypted, deduplicating backups of Travis CI Enterprise hosts",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Configuration file [default: /etc/vault/vault.toml when present]
    #[arg(long, global = true, env = "VAULT_CONFIG", help_heading = GLOBAL)]
    config: Option<PathBuf>,
    /// Store location: a folder or s3://BUCKET/PREFIX [default: /var/backups/vault as root]
    #[arg(long, global = true, env = "VAULT_STORE", help_heading = GLOBAL)]
    store: Option<String>,
    /// age identity file of the store's reader (instead of the passphrase)
    #[arg(long, global = true, env = "VAULT_IDENTITY_FILE", help_heading = GLOBAL)]
    identity: Option<PathBuf>,
    /// File holding the store passphrase (the passphrase itself may be given in VAULT_PASSPHRASE)
    #[arg(long, global = true, env = "VAULT_PASSPHRASE_FILE", help_heading = GLOBAL)]
    passphrase_file: Option<PathBuf>,
    /// This host's writer key file [default: /etc/vault/writer-STOREID.json as root]
    #[arg(long, global = true, env = "VAULT_WRITER_KEY", help_heading = GLOBAL)]
    writer_key: Option<PathBuf>,
    /// Folder for the local cache database [default: /var/cache/vault as root]
    #[arg(long, global = true, env = "VAULT_CACHE_DIR", help_heading = GLOBAL)]
    cache_dir: Option<PathBuf>,
    /// Worker threads for packing and restoring [default: `threads` in the config, else number of cores + 1]
    #[arg(long, global = true, env = "VAULT_THREADS", help_heading = GLOBAL)]
    threads: Option<usize>,
    /// Seconds to wait for a snapshot or prune that holds the store
    #[arg(long, global = true, default_value_t = 600, env = "VAULT_LOCK_WAIT", help_heading = GLOBAL)]
    lock_wait: u64,
    /// Print one JSON object with the result on stdout (progress: JSON lines on stderr)
    #[arg(long, global = true, env = "VAULT_JSON", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL)]
    json: bool,
    /// Print only errors and warnings
    #[arg(long, short, global = true, env = "VAULT_QUIET", value_parser = clap::builder::BoolishValueParser::new(), conflicts_with = "verbose", help_heading = GLOBAL)]
    quiet: bool,
    /// Also name each file read, skipped or restored
    #[arg(long, short, global = true, env = "VAULT_VERBOSE", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL)]
    verbose: bool,
    /// Time between status lines when stderr is no terminal, e.g. 60s, 5m [default: 60s, or [progress] interval]
    #[arg(long, global = true, env = "VAULT_PROGRESS_INTERVAL", value_name = "DURATION", help_heading = GLOBAL)]
    progress_interval: Option<String>,
    /// Write a Prometheus textfile with this run's metrics here [default: [metrics] textfile]
    #[arg(long, global = true, env = "VAULT_METRICS_FILE", value_name = "PATH", help_heading = GLOBAL)]
    metrics_file: Option<PathBuf>,
    /// Accept a new passphrase that the strength check calls weak
    #[arg(long, global = true, env = "VAULT_ALLOW_WEAK_PASSPHRASE", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL)]
    allow_weak_passphrase: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new store and this host's keys
    Init {
        /// Extra age recipient that can read the store (for example an offline key); repeatable
        #[arg(long = "recipient")]
        recipients: Vec<String>,
        /// S3 Object Lock for every object: MODE:DAYS (governance or compliance), e.g. governance:30
        #[arg(long)]
        object_lock: Option<vault::backend::ObjectLock>,
        #[command(flatten)]
        escrow: cli::secrets::EscrowInitArgs,
        #[command(flatten)]
        reader: cli::commands::ReaderChoice,
    },
    /// Save the configured paths (default /etc/travis and /var/travis) into the store
    Snapshot {
        /// Tag to attach to the snapshot (for example pre-upgrade); repeatable
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Host name to record [default: the system's]
        #[arg(long)]
        host: Option<String>,
        /// Paths to save instead of the configured ones
        paths: Vec<PathBuf>,
        /// Save the standard output of the command after `--` as this file (a bare name
        /// lands at /NAME); only paths named on the command line go along
        #[arg(long, value_name = "NAME", requires = "command")]
        stdin_from_command: Option<String>,
        /// The command for --stdin-from-command; its exit status must be 0
        #[arg(last = true, value_name = "CMD", requires = "stdin_from_command")]
        command: Vec<String>,
    },
    /// List snapshots (--json: an array of snapshot objects)
    Snapshots {
        #[command(flatten)]
        filter: cli::filter::FilterArgs,
    },
    /// List the contents of a snapshot
    Ls {
        /// Snapshot id (or unique prefix), "latest" (this host's) or "latest:HOST"
        snapshot: String,
        /// Only this path and what lies below it
        path: Option<PathBuf>,
        /// Long listing like `ls -l`: type and mode, owner, group, size, mtime
        #[arg(short = 'l', long = "long")]
        long: bool,
        #[command(flatten)]
        filter: cli::filter::FilterArgs,
    },
    /// Restore a snapshot into a folder (use --to / to put the trees back in place)
    Restore {
        /// Snapshot id (or unique prefix), "latest" (this host's) or "latest:HOST"
        snapshot: String,
        /// Target folder; the snapshot's absolute paths are recreated below it
        #[arg(long)]
        to: PathBuf,
        /// Restore only this absolute path from the snapshot (and what lies below); repeatable
        #[arg(long = "include")]
        includes: Vec<PathBuf>,
        /// Show what would be created, replaced or kept, and write nothing
        #[arg(long)]
        dry_run: bool,
        /// Re-read every restored file and check it against the snapshot
        #[arg(long)]
        verify: bool,
        /// What to do with entries already in the target [default: stop and list them]
        #[arg(long, value_enum)]
        overwrite: Option<OverwriteArg>,
        /// Use the numeric uid/gid of the snapshot even where the names exist on this host
        #[arg(long)]
        numeric_owner: bool,
        /// Make the target identical under the restored paths: remove what the snapshot lacks
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        filter: cli::filter::FilterArgs,
        /// Restore setuid/setgid files and files with capabilities without those bits, skip device nodes
        #[arg(long)]
        no_privileged: bool,
    },
    /// Remove snapshots by a retention policy (flags, else [retention] in the config)
    Forget {
        #[command(flatten)]
        keep: KeepArgs,
        /// Show each snapshot with keep/remove and the rule that decided it; remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Then remove the data no kept snapshot needs
        #[arg(long)]
        prune: bool,
    },
    /// Remove data that no snapshot needs (needs the reader identity)
    Prune {
        /// Show what would be removed and write nothing
        #[arg(long)]
        dry_run: bool,
        /// Repack packs whose unused share exceeds this percentage
        #[arg(long, default_value_t = vault::prune::DEFAULT_REPACK_THRESHOLD_PERCENT)]
        repack_threshold: u8,
    },
    /// Check the store's integrity; --read-data also decrypts every blob
    Check {
        /// Also download every pack and decrypt and verify every blob in it
        #[arg(long)]
        read_data: bool,
        /// Read only a share of the packs: N/M (deterministic, 1/M..M/M cover all) or P% (random)
        #[arg(long, value_name = "N/M|P%")]
        read_data_subset: Option<String>,
    },
    /// Copy a store (or chosen snapshots) to another location, shipping only what it lacks
    Copy {
        /// Store to copy from: a folder or s3://BUCKET/PREFIX (the global --store is not used)
        #[arg(long)]
        from: String,
        /// Store to copy to; an empty location becomes a copy of the same store (same keys)
        #[arg(long)]
        to: String,
        /// Snapshots to copy (id, unique prefix or "latest") [default: everything the store holds]
        snapshots: Vec<String>,
        /// Also read back what the destination already holds and replace whatever is
        /// damaged there (packs that do not match their hash, differing index files or records)
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        filter: cli::filter::FilterArgs,
    },
    /// Manage the store's keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Authorise, list and revoke snapshotting hosts
    #[command(subcommand)]
    Host(cli::commands::HostCommand),
    /// Sign a store of the first format: config, host registry, bound records (needs the reader identity)
    Upgrade,
    /// The platform's encryption key and RabbitMQ password, sealed to escrow recipients
    #[command(subcommand)]
    Secrets(cli::secrets::SecretsCommand),
    /// S3 Object Lock: keep what the retention policy keeps undeletable
    #[command(subcommand)]
    Lock(LockCommand),
    /// Store size, data before and after deduplication and compression, per snapshot
    Stats(cli::stats::StatsArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout
    Completions(cli::docs::CompletionsArgs),
    /// Write man pages (vault.1 and one per subcommand) into a folder
    Manpages(cli::docs::ManpagesArgs),
    /// Restore a snapshot into a scratch folder and prove it works (files, database, secrets)
    Drill(cli::drill::DrillArgs),
    /// Turn tar archives (such as travis-backup-EPOCH.tar.gz) into snapshots
    ImportTar(cli::import_tar::ImportTarArgs),
    /// Write a snapshot (or a path in it) as a tar stream to standard output
    Dump(cli::dump::DumpArgs),
    /// Show what changed between two snapshots
    Diff(cli::diff::DiffArgs),
    /// Find which snapshots hold a path or name (glob)
    Find(cli::find::FindArgs),
    /// Browse snapshots read-only through FUSE, by host and time
    Mount(cli::mount::MountArgs),
    /// Rebuild the index from the packs, or snapshots without the files whose data is lost
    #[command(subcommand)]
    Repair(cli::repair::RepairCommand),
    /// Remove leases left by processes that died (and, with --force, a named one)
    Unlock(cli::unlock::UnlockArgs),
}

impl Command {
    /// The command's name as `vault` spells it (for JSON results and metrics).
    fn name(&self) -> &'static str {
        match self {
            Command::Init { .. } => "init",
            Command::Snapshot { .. } => "snapshot",
            Command::Snapshots { .. } => "snapshots",
            Command::Ls { .. } => "ls",
            Command::Restore { .. } => "restore",
            Command::Forget { .. } => "forget",
            Command::Prune { .. } => "prune",
            Command::Check { .. } => "check",
            Command::Copy { .. } => "copy",
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

    /// Commands that change nothing: a closed stdout ends them at once with status 0.
    fn is_listing(&self) -> bool {
        match self {
            Command::Snapshots { .. }
            | Command::Ls { .. }
            | Command::Stats(_)
            | Command::Completions(_)
            | Command::Diff(_)
            | Command::Find(_)
            | Command::Dump(_)
            | Command::Key(KeyCommand::List)
            | Command::Host(cli::commands::HostCommand::List) => true,
            Command::Restore { dry_run, .. } => *dry_run,
            Command::Forget { dry_run, .. } => *dry_run,
            Command::Prune { dry_run, .. } => *dry_run,
            Command::Lock(LockCommand::Extend { dry_run, .. }) => *dry_run,
            Command::Secrets(cmd) => cli::secrets::is_listing(cmd),
            _ => false,
        }
    }
}

#[derive(Subcommand)]
enum LockCommand {
    /// Extend the retention of everything the kept snapshots need by the store's lock
    /// period (needs the reader identity; run after forget/prune, more often than the period)
    Extend {
        /// Snapshots this policy removes are not extended (flags, else [retention] in the config)
        #[command(flatten)]
        keep: KeepArgs,
        /// Count what would be extended and change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Write the reader identity as a plain age identity file (keep it offline)
    ExportIdentity {
        /// File to create (must not exist); readable by its owner only
        #[arg(long)]
        out: PathBuf,
    },
    /// Store the reader identity in the store wrapped with a (new) passphrase
    SetPassphrase,
    /// Also wrap new packs to this age recipient, e.g. an offline key (needs the reader identity)
    AddRecipient {
        /// The age recipient (age1...) to add
        recipient: String,
    },
    /// Stop wrapping new packs to this age recipient (needs the reader identity)
    RemoveRecipient {
        /// The age recipient (age1...) to remove
        recipient: String,
    },
    /// Show the recipients and the admin key, and whether the config verified
    List,
}

#[derive(clap::Args)]
struct KeepArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this (e.g. 30d, 2w, 1y6m, 12h)
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot carrying this tag; repeatable
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Only consider these snapshots (--host, --tag, --path)
    #[command(flatten)]
    filter: cli::filter::FilterArgs,
    /// Apply the policy per group: any of host,paths,tags (default host,paths)
    #[arg(long, value_name = "FIELDS")]
    group_by: Option<String>,
}

impl KeepArgs {
    /// The policy from the flags when any rule is given, else from the configuration.
    fn into_config(
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

#[derive(Clone, Copy, ValueEnum)]
enum OverwriteArg {
    Never,
    Always,
    IfChanged,
    IfNewer,
}

impl From<OverwriteArg> for Overwrite {
    fn from(o: OverwriteArg) -> Overwrite {
        match o {
            OverwriteArg::Never => Overwrite::Never,
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::IfNewer => Overwrite::IfNewer,
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    use cli::output::Mode;
    cli::output::set_mode(if cli.json {
        Mode::Json
    } else if cli.quiet {
        Mode::Quiet
    } else if cli.verbose {
        Mode::Verbose
    } else {
        Mode::Normal
    });
    let command = cli.command.name();
    cli::output::set_listing(cli.command.is_listing());
    if matches!(cli.command, Command::Dump(_)) {
        cli::output::set_result_on_stderr();
    }
    cli::output::install_panic_hook();
    if let Err(e) = cli::signals::install() {
        errln!("vault: warning: SIGINT/SIGTERM will not stop cleanly: {e}");
    }
    let started = std::time::Instant::now();
    let mut finish = cli::metrics::Finish::default();
    let outcome = run(cli, &mut finish);
    let code = match &outcome {
        Ok(code) => *code,
        Err(e) if cli::output::is_listing() && cli::output::is_broken_pipe(e) => 0,
        Err(e) => {
            let code = cli::docs::exit_status_of(e);
            match cli::docs::stopped_operation(e) {
                Some(operation) => errln!(
                    "vault: {operation} stopped on request: {}",
                    cli::docs::kept_after_stop(command)
                ),
                None => errln!("vault: error: {}", error_chain(e)),
            }
            code
        }
    };
    let result = cli::output::finish_json(command, code, started.elapsed(), outcome.as_ref().err());
    finish.done(
        command,
        code,
        started.elapsed(),
        result.as_ref(),
        outcome.as_ref().err(),
    );
    ExitCode::from(code)
}

/// The error and its causes, `: `-separated, each cause left out when the message before
/// already ends with it (library errors name their OS error in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.ends_with(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

fn run(cli: Cli, finish: &mut cli::metrics::Finish) -> Result<u8> {
    match &cli.command {
        Command::Completions(args) => return cli::docs::completions(args, Cli::command()),
        Command::Manpages(args) => return cli::docs::manpages(args, Cli::command()),
        _ => {}
    }
    let config = vault::config::Config::load(cli.config.as_deref())?;
    finish.metrics_file = cli
        .metrics_file
        .clone()
        .or_else(|| config.metrics.textfile.clone());
    finish.hostname = config.hostname.clone();
    // An explicit --metrics-file given to `vault drill` gets the drill's own textfile
    // (vault_drill_*) instead of the per-command series; a [metrics] textfile keeps the
    // per-command series for drills too.
    let drill_metrics = match &cli.command {
        Command::Drill(_) if cli.metrics_file.is_some() => finish.metrics_file.take(),
        _ => None,
    };
    let interval = match cli
        .progress_interval
        .as_deref()
        .or(config.progress.interval.as_deref())
    {
        Some(text) => cli::progress::parse_interval(text).map_err(|e| {
            vault::Error::Usage(format!(
                "progress interval (--progress-interval or [progress] interval): {e}"
            ))
        })?,
        None => cli::progress::DEFAULT_INTERVAL,
    };
    let _progress = cli::progress::Reporter::start(cli::output::mode(), interval);
    let ctx = Context::new(
        config,
        cli::context::Overrides {
            // `copy` reads the store named by --from.
            store: match &cli.command {
                Command::Copy { from, .. } => Some(from.clone()),
                _ => cli.store,
            },
            identity: cli.identity,
            passphrase_file: cli.passphrase_file,
            writer_key: cli.writer_key,
            cache_dir: cli.cache_dir,
            threads: cli.threads,
            lock_wait: std::time::Duration::from_secs(cli.lock_wait),
            allow_weak_passphrase: cli.allow_weak_passphrase,
        },
    );
    match cli.command {
        Command::Init {
            recipients,
            object_lock,
            escrow,
            reader,
        } => {
            let repo = cli::commands::init(&ctx, &recipients, object_lock, &reader)?;
            let escrow = cli::secrets::init_escrow_from_args(repo.backend.as_ref(), &escrow)?;
            match &escrow {
                Some(set) => outln!("platform secrets will be sealed to {}", set.describe()),
                None => outln!(
                    "no escrow recipients yet: platform secrets are sealed once `vault secrets recipients set` names them"
                ),
            }
            cli::output::extend_result(serde_json::json!({
                "escrow": escrow.map(|set| set.describe()),
            }));
            Ok(0)
        }
        Command::Secrets(cmd) => {
            // A typed-in paper sheet carries all it needs: reading it back works without
            // a store, a configuration or any key (on the day it matters it may be all there is).
            let paper_only = cmd.is_paper_read_back();
            let fingerprint_key = match ctx.keys_without_prompt() {
                Ok(k) => k.map(|k| k.derive(vault::crypto::SECRET_FINGERPRINT_CONTEXT)),
                Err(_) if paper_only => None,
                Err(e) => return Err(e),
            };
            let backend = match ctx.backend() {
                Ok(b) => b,
                Err(_) if paper_only => {
                    std::sync::Arc::new(vault::backend::memory::MemoryBackend::new("no store"))
                }
                Err(e) => return Err(e),
            };
            let secrets = cli::secrets::SecretsContext {
                backend,
                store_location: ctx.store_location(),
                fingerprint_key,
                config: ctx.config.secrets.clone(),
            };
            cli::secrets::run(cmd, secrets).map(|code| code.clamp(0, 255) as u8)
        }
        Command::Snapshot {
            tags,
            host,
            paths,
            stdin_from_command,
            command,
        } => cli::commands::snapshot(
            &ctx,
            tags,
            host,
            paths,
            stdin_from_command.map(|name| cli::commands::CommandOutput {
                name,
                argv: command,
            }),
        ),
        Command::Snapshots { filter } => {
            cli::commands::snapshots(&ctx, cli::output::json(), &filter).map(|_| 0)
        }
        Command::Ls {
            snapshot,
            path,
            long,
            filter,
        } => {
            cli::commands::ls(&ctx, &snapshot, path, long, cli::output::json(), &filter).map(|_| 0)
        }
        Command::Restore {
            snapshot,
            to,
            includes,
            dry_run,
            verify,
            overwrite,
            numeric_owner,
            delete,
            filter,
            no_privileged,
        } => cli::commands::restore(
            &ctx,
            &snapshot,
            &filter,
            vault::restore::RestoreOptions {
                target: to,
                includes,
                overwrite: overwrite.map(Into::into),
                dry_run,
                verify,
                numeric_owner,
                delete,
                no_privileged,
                threads: ctx.threads(),
                spool: ctx.restore_spool()?,
            },
        ),
        Command::Forget {
            keep,
            dry_run,
            prune,
        } => {
            // Hosts go into the policy (the others are shown as not selected); tags and
            // paths narrow the snapshots it sees.
            let narrow = vault::select::SnapshotFilter {
                hosts: Vec::new(),
                ..keep.filter.filter()
            };
            let policy = keep.into_config(&ctx.config.retention);
            cli::commands::forget(&ctx, &policy, &narrow, dry_run, prune)
        }
        Command::Prune {
            dry_run,
            repack_threshold,
        } => cli::commands::prune(&ctx, dry_run, repack_threshold),
        Command::Check {
            read_data,
            read_data_subset,
        } => cli::commands::check(
            &ctx,
            read_data,
            read_data_subset.as_deref(),
            cli::output::json(),
        ),
        Command::Copy {
            to,
            snapshots,
            verify,
            filter,
            ..
        } => cli::commands::copy(&ctx, &to, &snapshots, verify, &filter),
        Command::Drill(args) => cli::drill::run(&ctx, args, drill_metrics.as_deref()),
        Command::Repair(cmd) => cli::repair::run(&ctx, cmd),
        Command::Unlock(args) => cli::unlock::run(&ctx, args),
        Command::Lock(LockCommand::Extend { keep, dry_run }) => {
            if !keep.filter.tags.is_empty() || !keep.filter.paths.is_empty() {
                anyhow::bail!("`vault lock extend` takes --host only: a snapshot left out by --tag or --path would lose its lock");
            }
            cli::commands::lock_extend(&ctx, &keep.into_config(&ctx.config.retention), dry_run)
        }
        Command::ImportTar(args) => cli::import_tar::run(&ctx, args),
        Command::Dump(args) => cli::dump::run(&ctx, args),
        Command::Diff(args) => cli::diff::run(&ctx, args),
        Command::Find(args) => cli::find::run(&ctx, args),
        Command::Mount(args) => cli::mount::run(&ctx, args),
        Command::Key(KeyCommand::ExportIdentity { out }) => {
            cli::commands::key_export_identity(&ctx, &out)
        }
        Command::Stats(args) => cli::stats::run(&ctx, &args),
        Command::Completions(_) | Command::Manpages(_) => unreachable!("handled above"),
        Command::Key(KeyCommand::SetPassphrase) => cli::commands::key_set_passphrase(&ctx),
        Command::Key(KeyCommand::AddRecipient { recipient }) => {
            cli::commands::key_add_recipient(&ctx, &recipient)
        }
        Command::Key(KeyCommand::RemoveRecipient { recipient }) => {
            cli::commands::key_remove_recipient(&ctx, &recipient)
        }
        Command::Key(KeyCommand::List) => cli::commands::key_list(&ctx),
        Command::Host(cmd) => cli::commands::host(&ctx, cmd),
        Command::Upgrade => cli::commands::upgrade(&ctx),
    }
}

/// Chunks, packs and blobs are buffers of 1 to 20 MiB, allocated and freed thousands of
/// times per snapshot or restore. glibc serves allocations over 128 KiB with a fresh mmap
/// and unmaps them on free, so every chunk would fault its pages in anew (a quarter of
/// the snapshot's CPU time in measurements); keeping them on the heap reuses the pages.
/// One arena: with one per thread, each worker's arena kept its own freed pack buffers,
/// which cost 30 MiB of peak memory and no measurable speed.
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other
    // thread exists, and the values are valid for each parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

pub(crate) fn exit_partial() -> u8 {
    EXIT_PARTIAL
}
