//! `vault secrets ...`: seal, list, show, print on paper and verify the platform's
//! encryption key and RabbitMQ password, and manage the escrow recipients that open them.
//!
//! Secret values go to standard output only where the user asked for them (`show`,
//! `paper`); everything else goes to standard error and never holds a value. While a
//! command runs the process is not dumpable and writes no core file.

use super::passphrase;
use super::terminal::{confirm, prompt};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use vault::backend::BackendRef;
use vault::secrets::paper::{self, SheetInfo};
use vault::secrets::{
    self, EscrowKey, EscrowSet, Origin, SealOutcome, SealReason, SealStatus, SecretsConfig,
    VerifyStatus,
};
use zeroize::Zeroizing;

/// Environment variable holding the escrow passphrase.
pub const PASSPHRASE_ENV: &str = "VAULT_ESCROW_PASSPHRASE";

/// What `vault secrets` needs from the rest of the command line.
pub struct SecretsContext {
    pub backend: BackendRef,
    pub store_location: String,
    /// Derived from the store's id key; absent on a restore host that has neither a
    /// writer key nor the reader identity (then `list` shows no match information and
    /// `verify` needs an escrow key).
    pub fingerprint_key: Option<[u8; 32]>,
    pub config: SecretsConfig,
    /// This host's name as its snapshots record it (the configured `hostname`, else the
    /// system's): what sealed versions record, and what `show`, `paper` and `verify`
    /// choose by default.
    pub this_host: String,
}

/// `--host` for sealed versions. Of the snapshot filters ([`crate::cli::filter::FilterArgs`])
/// only the host applies: a sealed version records the host that sealed it, but no tags
/// and no paths.
#[derive(Args, Debug, Default, Clone)]
pub struct SealedHostArgs {
    /// Only versions sealed on this host (as its snapshots name it); repeatable (any of
    /// them) [default: `list` every host; `show`, `paper`, `verify` this host]
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
}

impl SealedHostArgs {
    /// The hosts to choose a version among: the given ones, else this host.
    fn or_this_host(&self, ctx: &SecretsContext) -> Vec<String> {
        if self.hosts.is_empty() {
            vec![ctx.this_host.clone()]
        } else {
            self.hosts.clone()
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Seal the configured secrets whose value changed since the last seal (every
    /// `vault snapshot` does this too)
    Seal {
        /// Only these secrets [default: every configured one]
        names: Vec<String>,
        /// Seal a new version even when the value did not change
        #[arg(long)]
        force: bool,
    },
    /// List sealed versions: name, when and where sealed, fingerprint, escrow recipients
    /// (--json: an array of version objects)
    List {
        #[command(flatten)]
        host: SealedHostArgs,
    },
    /// Print a sealed secret (needs an escrow key), or read back a typed-in paper sheet
    Show {
        /// Secret name, as `vault secrets list` shows it
        #[arg(required_unless_present = "from_paper")]
        name: Option<String>,
        /// Version number as `list` shows it [default: the newest]
        #[arg(long, value_name = "N")]
        number: Option<usize>,
        /// Read a typed-in copy of a paper sheet, check every row, print the secret
        #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "number", "hosts"])]
        from_paper: Option<PathBuf>,
        #[command(flatten)]
        host: SealedHostArgs,
        #[command(flatten)]
        key: EscrowKeyArgs,
    },
    /// Print a sheet to keep offline: the secret in checked groups, store, time, fingerprint
    Paper {
        /// Secret name [default: every sealed secret, one sheet each]
        name: Option<String>,
        /// Write the sheet to this file (created with mode 0600) instead of standard output
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        host: SealedHostArgs,
        #[command(flatten)]
        key: EscrowKeyArgs,
    },
    /// Check that travis.yml (under --root, e.g. after a restore) holds the sealed values
    Verify {
        /// Only these secrets [default: every configured one]
        names: Vec<String>,
        /// Look for the configured files under this folder (as restored there)
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(flatten)]
        host: SealedHostArgs,
        #[command(flatten)]
        key: EscrowKeyArgs,
    },
    /// Show the escrow recipients, or change them with `set`
    Recipients {
        #[command(subcommand)]
        action: Option<RecipientsAction>,
    },
}

impl SecretsCommand {
    /// True for `show --from-paper`, which needs no store.
    pub fn is_paper_read_back(&self) -> bool {
        matches!(
            self,
            SecretsCommand::Show {
                from_paper: Some(_),
                ..
            }
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum RecipientsAction {
    /// Replace the escrow recipients: new seals use the new set, versions sealed before
    /// stay readable by the set they were sealed to
    Set {
        /// age recipients (age1..., e.g. from `age-keygen`) whose identities are kept offline
        recipients: Vec<String>,
        /// Also let a passphrase open secrets sealed from now on (read from
        /// VAULT_ESCROW_PASSPHRASE, --escrow-passphrase-file, or asked for)
        #[arg(long)]
        passphrase: bool,
        /// File whose first line is the new escrow passphrase
        #[arg(long, value_name = "FILE", requires = "passphrase")]
        escrow_passphrase_file: Option<PathBuf>,
    },
}

/// The escrow key that opens sealed secrets. Distinct from the store's reader identity
/// (`--identity`), which cannot open them.
#[derive(Args, Debug, Default, Clone)]
pub struct EscrowKeyArgs {
    /// age identity file of an escrow recipient; repeatable
    #[arg(long = "escrow-identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// File whose first line is the escrow passphrase (or set VAULT_ESCROW_PASSPHRASE)
    #[arg(long, value_name = "FILE")]
    pub escrow_passphrase_file: Option<PathBuf>,
}

/// Escrow options for `vault init` (flatten into its arguments).
#[derive(Args, Debug, Default, Clone)]
pub struct EscrowInitArgs {
    /// age recipient (age1...) that can open the sealed platform secrets; its identity is
    /// kept offline, apart from the store's reader identity; repeatable
    #[arg(long = "escrow-recipient", value_name = "AGE1...")]
    pub escrow_recipients: Vec<String>,
    /// Let a passphrase open the sealed platform secrets (read from
    /// VAULT_ESCROW_PASSPHRASE, --escrow-passphrase-file, or asked for)
    #[arg(long)]
    pub escrow_passphrase: bool,
    /// File whose first line is the escrow passphrase
    #[arg(long, value_name = "FILE", requires = "escrow_passphrase")]
    pub escrow_passphrase_file: Option<PathBuf>,
}

/// Sets the first escrow recipients of a new store from `vault init`'s options. Call it
/// after the store config is written. `Ok(None)` when no escrow option was given (secrets
/// are then not sealed until `vault secrets recipients set`).
pub fn init_escrow_from_args(
    backend: &dyn vault::backend::Backend,
    args: &EscrowInitArgs,
) -> Result<Option<EscrowSet>> {
    if args.escrow_recipients.is_empty() && !args.escrow_passphrase {
        return Ok(None);
    }
    let passphrase = if args.escrow_passphrase {
        Some(new_passphrase(args.escrow_passphrase_file.as_deref())?)
    } else {
        None
    };
    Ok(Some(secrets::init_escrow(
        backend,
        &args.escrow_recipients,
        passphrase,
    )?))
}

/// Makes the process non-dumpable and stops core files, so a crash while a secret is in
/// memory leaves no copy on disk and other processes of the user cannot read it.
pub fn harden_process() {
    // SAFETY: plain system calls with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
}

/// Commands that change nothing (a closed stdout ends them with status 0).
pub fn is_listing(cmd: &SecretsCommand) -> bool {
    matches!(
        cmd,
        SecretsCommand::List { .. }
            | SecretsCommand::Show { .. }
            | SecretsCommand::Paper { output: None, .. }
            | SecretsCommand::Recipients { action: None }
    )
}

/// `vault secrets ...` with the store and keys of `ctx`. A typed-in paper sheet carries
/// all it needs: reading it back works without a store, a configuration or any key (on
/// the day it matters it may be all there is).
pub fn run_in(ctx: &super::context::Context, cmd: SecretsCommand) -> Result<u8> {
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
    let secrets = SecretsContext {
        backend,
        store_location: ctx.store_location(),
        fingerprint_key,
        config: ctx.config.secrets.clone(),
        this_host: vault::select::this_host(ctx.config.hostname.as_deref()),
    };
    run(cmd, secrets).map(|code| code.clamp(0, 255) as u8)
}

fn run(cmd: SecretsCommand, ctx: SecretsContext) -> Result<i32> {
    harden_process();
    match cmd {
        SecretsCommand::Seal { names, force } => seal(&ctx, &names, force),
        SecretsCommand::List { host } => list(&ctx, &host.hosts, crate::cli::output::json()),
        SecretsCommand::Show {
            name,
            number,
            from_paper,
            host,
            key,
        } => match from_paper {
            Some(file) => show_from_paper(&ctx, &file),
            None => show(
                &ctx,
                name.as_deref().expect("clap requires it"),
                number,
                &host.or_this_host(&ctx),
                &key,
            ),
        },
        SecretsCommand::Paper {
            name,
            output,
            host,
            key,
        } => paper_sheets(&ctx, name, output, &host.or_this_host(&ctx), &key),
        SecretsCommand::Verify {
            names,
            root,
            host,
            key,
        } => verify(
            &ctx,
            &names,
            root.as_deref(),
            &host.or_this_host(&ctx),
            &key,
        ),
        SecretsCommand::Recipients { action } => match action {
            None => show_recipients(&ctx),
            Some(RecipientsAction::Set {
                recipients,
                passphrase,
                escrow_passphrase_file,
            }) => set_recipients(
                &ctx,
                &recipients,
                passphrase,
                escrow_passphrase_file.as_deref(),
            ),
        },
    }
}

fn selected_sources(config: &SecretsConfig, names: &[String]) -> Result<Vec<secrets::Source>> {
    let all = config.sources()?;
    for n in names {
        if !all.iter().any(|s| &s.name == n) {
            let known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "no secret source named {n} is configured (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect())
}

/// One line describing what sealing did with a source (never the value).
pub fn describe_outcome(outcome: &SealOutcome) -> String {
    let name = &outcome.name;
    match &outcome.status {
        SealStatus::Sealed { version, reason } => {
            let why = match reason {
                SealReason::First => "first seal",
                SealReason::Changed => "value changed",
                SealReason::NewRecipients => "escrow recipients changed",
                SealReason::Forced => "forced",
            };
            format!(
                "{name}: sealed version {} ({why}), fingerprint {}, from {}, to {}",
                version.number,
                version.short_fingerprint(),
                version.source,
                version.describe_recipients()
            )
        }
        SealStatus::Unchanged { version } => format!(
            "{name}: unchanged since version {} (sealed {}), fingerprint {}",
            version.number,
            version.sealed_time(),
            version.short_fingerprint()
        ),
        SealStatus::Absent { reason } => format!("{name}: not on this host: {reason}"),
        SealStatus::Failed(e) => format!(
            "{name}: NOT SEALED: {e}{}",
            crate::cli::remedy::appended(e.remedy())
        ),
    }
}

/// Prints sealing outcomes for `vault snapshot`: sealed and failed ones always, absent
/// ones never (worker hosts have no travis.yml), unchanged ones when `verbose`. Returns
/// true when a source failed.
pub fn report_snapshot_seal(outcomes: &[SealOutcome], verbose: bool) -> bool {
    let mut failed = false;
    for o in outcomes {
        match &o.status {
            SealStatus::Sealed { .. } => errln!("secrets: {}", describe_outcome(o)),
            SealStatus::Failed(_) => {
                failed = true;
                errln!("secrets: {}", describe_outcome(o))
            }
            SealStatus::Unchanged { .. } if verbose => {
                errln!("secrets: {}", describe_outcome(o))
            }
            _ => {}
        }
    }
    failed
}

fn need_fingerprint_key(ctx: &SecretsContext, what: &str) -> Result<[u8; 32]> {
    ctx.fingerprint_key.ok_or_else(|| {
        anyhow!(
            "{what} needs this host's writer key for store {} (or the store's reader identity)",
            ctx.store_location
        )
    })
}

fn seal(ctx: &SecretsContext, names: &[String], force: bool) -> Result<i32> {
    let key = need_fingerprint_key(ctx, "sealing")?;
    let sources = selected_sources(&ctx.config, names)?;
    if sources.is_empty() {
        bail!("no secret sources are configured ([secrets] in the configuration)");
    }
    let outcomes = secrets::seal_sources(
        ctx.backend.as_ref(),
        &sources,
        &key,
        SystemTime::now(),
        force,
        &ctx.this_host,
    )?;
    let mut code = 0;
    let mut rows = Vec::new();
    for o in &outcomes {
        errln!("{}", describe_outcome(o));
        if matches!(o.status, SealStatus::Failed(_) | SealStatus::Absent { .. }) {
            code = 1;
        }
        let (status, version) = match &o.status {
            SealStatus::Sealed { version, reason } => (
                match reason {
                    SealReason::First => "sealed_first",
                    SealReason::Changed => "sealed_changed",
                    SealReason::NewRecipients => "sealed_new_recipients",
                    SealReason::Forced => "sealed_forced",
                },
                Some(version),
            ),
            SealStatus::Unchanged { version } => ("unchanged", Some(version)),
            SealStatus::Absent { .. } => ("absent", None),
            SealStatus::Failed(_) => ("failed", None),
        };
        rows.push(serde_json::json!({
            "name": o.name,
            "status": status,
            "version": version.map(|v| v.number),
            "fingerprint": version.map(|v| v.short_fingerprint()),
            "message": describe_outcome(o),
        }));
    }
    crate::cli::output::set_result(serde_json::json!({ "secrets": rows }));
    Ok(code)
}

fn list(ctx: &SecretsContext, hosts: &[String], json: bool) -> Result<i32> {
    let all = secrets::list(ctx.backend.as_ref())?;
    let total = all.len();
    let versions: Vec<_> = all
        .into_iter()
        .filter(|v| hosts.is_empty() || hosts.contains(&v.host))
        .collect();
    let escrow = secrets::current_escrow(ctx.backend.as_ref())?;
    if json {
        let rows: Vec<serde_json::Value> = versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name,
                    "number": v.number,
                    "sealed_at": v.sealed_at,
                    "sealed": v.sealed_time(),
                    "host": v.host,
                    "source": v.source,
                    "fingerprint": v.short_fingerprint(),
                    "escrow_set": v.escrow,
                    "recipients": v.recipients,
                    "passphrase": v.passphrase,
                    "object": v.age_object(),
                    "damaged": !v.age_present,
                })
            })
            .collect();
        crate::cli::output::print_json_listing(&serde_json::Value::Array(rows))?;
        return Ok(0);
    }
    if versions.is_empty() && total > 0 {
        errln!(
            "no secrets sealed on host {} in {} ({total} version{} sealed on other hosts: `vault secrets list` shows them)",
            hosts.join(" or "),
            ctx.store_location,
            if total == 1 { " is" } else { "s are" }
        );
        return Ok(0);
    }
    if versions.is_empty() {
        errln!("no secrets are sealed in {}", ctx.store_location);
        if escrow.is_none() {
            errln!("(and no escrow recipients are set: `vault secrets recipients set AGE1...`)");
        }
        return Ok(0);
    }
    dataln!(
        "{:<20} {:>3}  {:<23}  {:<16}  {:<19}  RECIPIENTS",
        "NAME",
        "#",
        "SEALED",
        "HOST",
        "FINGERPRINT"
    );
    for v in &versions {
        let mut recipients = format!("set {}: {}", v.escrow, v.describe_recipients());
        if !v.age_present {
            recipients.push_str("  [DAMAGED: sealed data missing]");
        }
        dataln!(
            "{:<20} {:>3}  {:<23}  {:<16}  {:<19}  {recipients}",
            v.name,
            v.number,
            v.sealed_time(),
            v.host,
            v.short_fingerprint()
        );
    }
    Ok(0)
}

fn escrow_key(args: &EscrowKeyArgs) -> Result<EscrowKey> {
    let mut key = EscrowKey::new();
    for path in &args.identities {
        key.add_identity_file(path)?;
    }
    if let Some(path) = &args.escrow_passphrase_file {
        key.set_passphrase(passphrase::from_file(path)?);
    } else if let Some(p) = passphrase::from_env(PASSPHRASE_ENV) {
        key.set_passphrase(p);
    } else if args.identities.is_empty() {
        match prompt("Escrow passphrase: ")? {
            Some(p) => key.set_passphrase(p),
            None => bail!(
                "opening a sealed secret needs an escrow identity file (--escrow-identity FILE) or the escrow passphrase (--escrow-passphrase-file FILE or {PASSPHRASE_ENV})"
            ),
        }
    }
    Ok(key)
}

fn show(
    ctx: &SecretsContext,
    name: &str,
    number: Option<usize>,
    hosts: &[String],
    args: &EscrowKeyArgs,
) -> Result<i32> {
    let version = secrets::find_version_on(ctx.backend.as_ref(), name, number, hosts)?;
    let key = escrow_key(args)?;
    let value = secrets::unseal(
        ctx.backend.as_ref(),
        &version,
        &key,
        ctx.fingerprint_key.as_ref(),
    )?;
    errln!(
        "{}: version {}, sealed {} on {}, fingerprint {}",
        version.name,
        version.number,
        version.sealed_time(),
        version.host,
        version.short_fingerprint()
    );
    let mut out = std::io::stdout().lock();
    out.write_all(value.expose_secret().as_bytes())?;
    out.write_all(b"\n")?;
    crate::cli::output::mark_printed();
    out.flush()?;
    Ok(0)
}

fn show_from_paper(ctx: &SecretsContext, file: &Path) -> Result<i32> {
    let text = Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("read typed-in sheet {}", file.display()))?,
    );
    let back = match paper::read_back(&text) {
        Ok(b) => b,
        Err(e) => {
            errln!("{}: {e}", file.display());
            return Ok(1);
        }
    };
    for note in &back.notes {
        errln!("{}: note: {note}", file.display());
    }
    // The sheet's name and fingerprint lines are optional; check them when we can.
    let field = |label: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim().eq_ignore_ascii_case(label)).then(|| v.trim().to_string())
        })
    };
    let mut code = 0;
    if let (Some(key), Some(name), Some(printed)) =
        (ctx.fingerprint_key, field("secret"), field("fingerprint"))
    {
        let fp = secrets::short_fingerprint(&secrets::fingerprint(&key, &name, &back.secret));
        if fp.eq_ignore_ascii_case(&printed) {
            errln!(
                "{}: every row checks out; fingerprint {fp} matches this store",
                file.display()
            );
        } else {
            errln!(
                "{}: every row checks out, but the value's fingerprint in store {} is {fp}, not the {printed} on the sheet (a sheet from another store, or the fingerprint line mistyped?)",
                file.display(),
                ctx.store_location
            );
            code = 1;
        }
    } else {
        errln!(
            "{}: every row checks out (read from the sheet alone: no store, configuration or key was needed; \
             give --store and a key to also compare its fingerprint with a store)",
            file.display()
        );
    }
    let mut out = std::io::stdout().lock();
    out.write_all(back.secret.expose_secret().as_bytes())?;
    out.write_all(b"\n")?;
    crate::cli::output::mark_printed();
    out.flush()?;
    Ok(code)
}

fn paper_sheets(
    ctx: &SecretsContext,
    name: Option<String>,
    output: Option<PathBuf>,
    hosts: &[String],
    args: &EscrowKeyArgs,
) -> Result<i32> {
    let backend = ctx.backend.as_ref();
    let names: Vec<String> = match name {
        Some(n) => vec![n],
        None => {
            let all = secrets::list(backend)?;
            let mut sealed_on: Vec<String> = all.iter().map(|v| v.host.clone()).collect();
            sealed_on.sort_unstable();
            sealed_on.dedup();
            let mut names: Vec<String> = all
                .into_iter()
                .filter(|v| hosts.contains(&v.host))
                .map(|v| v.name)
                .collect();
            names.dedup();
            if names.is_empty() && !sealed_on.is_empty() {
                bail!(
                    "no secrets sealed on host {} in {} (sealed on: {}; choose one with --host)",
                    hosts.join(" or "),
                    ctx.store_location,
                    sealed_on.join(", ")
                );
            }
            if names.is_empty() {
                bail!("no secrets are sealed in {}", ctx.store_location);
            }
            names
        }
    };
    let key = escrow_key(args)?;
    let printed = secrets::format_time(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let mut sheets = Zeroizing::new(String::new());
    for (i, n) in names.iter().enumerate() {
        let version = secrets::find_version_on(backend, n, None, hosts)?;
        let value = secrets::unseal(backend, &version, &key, ctx.fingerprint_key.as_ref())?;
        let info = SheetInfo {
            name: version.name.clone(),
            store: ctx.store_location.clone(),
            sealed: format!("{} on {}", version.sealed_time(), version.host),
            version: format!("{} (object {})", version.number, version.age_object()),
            source: version.source.clone(),
            fingerprint: version.short_fingerprint(),
            printed: printed.clone(),
        };
        if i > 0 {
            sheets.push_str("\x0c\n");
        }
        sheets.push_str(&paper::render(&value, &info));
    }
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(sheets.as_bytes())?;
            crate::cli::output::mark_printed();
            out.flush()?;
        }
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("create {}", path.display()))?;
            f.write_all(sheets.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("write {}", path.display()))?;
            errln!(
                "wrote {} sheet{} to {}: print it, keep it offline, then delete the file",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                path.display()
            );
        }
    }
    Ok(0)
}

fn verify(
    ctx: &SecretsContext,
    names: &[String],
    root: Option<&Path>,
    hosts: &[String],
    args: &EscrowKeyArgs,
) -> Result<i32> {
    let sources = selected_sources(&ctx.config, names)?;
    if sources.is_empty() {
        bail!("no secret sources are configured ([secrets] in the configuration)");
    }
    let wants_key = !args.identities.is_empty()
        || args.escrow_passphrase_file.is_some()
        || ctx.fingerprint_key.is_none();
    let key = if wants_key {
        Some(escrow_key(args)?)
    } else {
        None
    };
    let outcomes = secrets::verify_on(
        ctx.backend.as_ref(),
        &sources,
        root,
        ctx.fingerprint_key.as_ref(),
        key.as_ref(),
        hosts,
    )?;
    let mut code = 0;
    let mut rows = Vec::new();
    for (o, source) in outcomes.iter().zip(&sources) {
        let status = match &o.status {
            VerifyStatus::Matches => "matches",
            VerifyStatus::MatchesOlder { .. } => "matches_older",
            VerifyStatus::Differs => "differs",
            VerifyStatus::NotSealed => "not_sealed",
            VerifyStatus::Absent { .. }
                if root.is_some() && matches!(source.origin, Origin::Command(_)) =>
            {
                "not_checked"
            }
            VerifyStatus::Absent { .. } => "missing",
            VerifyStatus::Failed(_) => "failed",
        };
        rows.push(serde_json::json!({
            "name": o.name,
            "status": status,
            "from": o.from,
            "newest_version": o.newest.as_ref().map(|v| v.number),
            "matched_version": match &o.status {
                VerifyStatus::MatchesOlder { number } => Some(*number),
                VerifyStatus::Matches => o.newest.as_ref().map(|v| v.number),
                _ => None,
            },
        }));
        let from = o.from.as_deref().unwrap_or("?");
        let newest = o
            .newest
            .as_ref()
            .map(|v| {
                format!(
                    "version {}, sealed {}, fingerprint {}",
                    v.number,
                    v.sealed_time(),
                    v.short_fingerprint()
                )
            })
            .unwrap_or_default();
        match &o.status {
            VerifyStatus::Matches => errln!(
                "{}: OK: {from}: matches the newest sealed version ({newest})",
                o.name
            ),
            VerifyStatus::MatchesOlder { number } => {
                code = 1;
                errln!(
                    "{}: DIFFERS: {from}: matches the older sealed version {number}, not the newest ({newest})",
                    o.name
                );
            }
            VerifyStatus::Differs => {
                code = 1;
                errln!(
                    "{}: DIFFERS: {from}: not the sealed value (newest sealed: {newest}); `vault secrets show {}` prints the sealed value",
                    o.name, o.name
                );
            }
            VerifyStatus::NotSealed => {
                code = 1;
                errln!(
                    "{}: NOT SEALED: {from} has a value, but no version of it sealed on host {} is in {} (`vault secrets list` shows every host's; choose with --host)",
                    o.name,
                    hosts.join(" or "),
                    ctx.store_location
                );
            }
            VerifyStatus::Absent { .. }
                if root.is_some() && matches!(source.origin, Origin::Command(_)) =>
            {
                errln!(
                    "{}: not checked: a command source cannot be run against --root",
                    o.name
                );
            }
            VerifyStatus::Absent { reason } => {
                code = 1;
                errln!("{}: MISSING: {reason}", o.name);
            }
            VerifyStatus::Failed(e) => {
                code = 1;
                errln!(
                    "{}: FAILED: {e}{}",
                    o.name,
                    crate::cli::remedy::appended(e.remedy())
                );
            }
        }
    }
    crate::cli::output::set_result(serde_json::json!({ "secrets": rows }));
    Ok(code)
}

fn show_recipients(ctx: &SecretsContext) -> Result<i32> {
    let backend = ctx.backend.as_ref();
    let sets = secrets::escrow_sets(backend)?;
    let Some(current) = sets.last() else {
        dataln!("no escrow recipients are set in {}: `vault secrets recipients set AGE1...` (or --passphrase)", ctx.store_location);
        return Ok(0);
    };
    dataln!(
        "escrow set {} (since {}): {}",
        current.serial,
        secrets::format_time(current.created),
        current.describe()
    );
    for old in sets.iter().rev().skip(1) {
        dataln!(
            "  earlier set {} (since {}): {}",
            old.serial,
            secrets::format_time(old.created),
            old.describe()
        );
    }
    let mut names: Vec<String> = secrets::list(backend)?
        .into_iter()
        .map(|v| v.name)
        .collect();
    names.dedup();
    for n in names {
        if let Some(v) = secrets::newest(backend, &n)? {
            if v.escrow != current.serial {
                dataln!(
                    "{n}: the newest version is sealed to set {}; the next `vault secrets seal` (or snapshot) on the platform host seals it to set {}",
                    v.escrow, current.serial
                );
            }
        }
    }
    Ok(0)
}

fn set_recipients(
    ctx: &SecretsContext,
    recipients: &[String],
    passphrase: bool,
    file: Option<&Path>,
) -> Result<i32> {
    let passphrase = if passphrase {
        Some(new_passphrase(file)?)
    } else {
        None
    };
    let set = secrets::set_escrow(ctx.backend.as_ref(), recipients, passphrase)?;
    dataln!("escrow set {}: {}", set.serial, set.describe());
    errln!(
        "versions sealed before stay readable only by the set they were sealed to; the next `vault secrets seal` (or snapshot) on the platform host seals the current values to set {}",
        set.serial
    );
    Ok(0)
}

/// A new escrow passphrase: from `file`, VAULT_ESCROW_PASSPHRASE, or asked twice.
pub fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    if let Some(path) = file {
        return passphrase::from_file(path);
    }
    if let Some(p) = passphrase::from_env(PASSPHRASE_ENV) {
        return Ok(p);
    }
    let first = prompt("New escrow passphrase: ")?.ok_or_else(|| {
        anyhow!("no terminal to ask for the escrow passphrase: use --escrow-passphrase-file FILE or {PASSPHRASE_ENV}")
    })?;
    let first = confirm(
        first,
        "Same passphrase again: ",
        "the two passphrases differ",
    )?;
    if first.expose_secret().is_empty() {
        bail!("the escrow passphrase is empty");
    }
    Ok(first)
}
