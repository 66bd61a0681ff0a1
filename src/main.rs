//! The `vault` command line: parses options, finds keys and passphrases, calls the library
//! and prints. Nothing else happens here: the options are in `cli::args`, what every
//! command shares before it runs in `cli::start`, each command in its own file.

#[macro_use]
mod cli;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use cli::args::{Cli, Command};
use std::process::ExitCode;

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
                None => errln!("vault: error: {}{}", error_chain(e), cli::remedy::suffix(e)),
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
    let (command, started) = cli::start::start(cli, finish)?;
    let ctx = &started.ctx;
    match command {
        Command::Init(args) => cli::commands::init(ctx, args),
        Command::Secrets(cmd) => cli::secrets::run_in(ctx, cmd),
        Command::Snapshot(args) => cli::commands::snapshot(ctx, args),
        Command::Snapshots(args) => cli::commands::snapshots(ctx, &args),
        Command::Ls(args) => cli::commands::ls(ctx, args),
        Command::Restore(args) => cli::commands::restore(ctx, args),
        Command::Forget(args) => cli::commands::forget(ctx, args),
        Command::Prune(args) => cli::commands::prune(ctx, &args),
        Command::Check(args) => cli::commands::check(ctx, &args),
        Command::Copy(args) => cli::commands::copy(ctx, &args),
        Command::Drill(args) => cli::drill::run(ctx, args, started.drill_metrics.as_deref()),
        Command::Repair(cmd) => cli::repair::run(ctx, cmd),
        Command::Unlock(args) => cli::unlock::run(ctx, args),
        Command::Lock(cmd) => cli::commands::lock(ctx, cmd),
        Command::ImportTar(args) => cli::import_tar::run(ctx, args),
        Command::Dump(args) => cli::dump::run(ctx, args),
        Command::Diff(args) => cli::diff::run(ctx, args),
        Command::Find(args) => cli::find::run(ctx, args),
        Command::Mount(args) => cli::mount::run(ctx, args),
        Command::Stats(args) => cli::stats::run(ctx, &args),
        Command::Key(cmd) => cli::commands::key(ctx, cmd),
        Command::Host(cmd) => cli::commands::host(ctx, cmd),
        Command::Upgrade => cli::commands::upgrade(ctx),
        Command::Completions(_) | Command::Manpages(_) => unreachable!("handled above"),
    }
}

/// Chunks and blobs are buffers of up to a few MiB, allocated and freed thousands of
/// times per snapshot or restore. glibc serves allocations over 128 KiB with a fresh mmap
/// and unmaps them on free, so every chunk would fault its pages in anew (a quarter of
/// the snapshot's CPU time in measurements); keeping them on the heap reuses the pages.
/// Whole packs (16 MiB) are the exception: those a copy downloads, one per pack, left
/// holes in the heap that later packs did not fit, a third and fourth pack's worth of
/// peak memory. From 12 MiB on a buffer is mapped and unmapped on its own: above a
/// restore's runs of blobs (up to 8 MiB), below a pack (a snapshot reuses its two pack
/// buffers, so it maps them once).
/// One arena: with one per thread, each worker's arena kept its own freed pack buffers,
/// which cost 30 MiB of peak memory and no measurable speed.
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other
    // thread exists, and the values are valid for each parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 12 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
