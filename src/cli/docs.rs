//! What the CLI says about itself: `--version`, exit statuses, shell completions
//! (`vault completions bash|zsh|fish`) and man pages (`vault manpages DIR`), all made
//! from the clap definition so they cannot disagree with it.

use anyhow::{Context as _, Result};
use std::path::PathBuf;

pub const LONG_VERSION: &str = concat!(
    env!("VAULT_LONG_VERSION"),
    "\nprofile: ",
    env!("VAULT_BUILD_PROFILE"),
    "\ncompiler: ",
    env!("VAULT_BUILD_RUSTC"),
    "\nstore format: ",
    "3"
);

/// Exit status for usage errors (clap uses it too for bad flags).
pub const EXIT_USAGE: u8 = 2;

/// Exit status when a command finished but could not do everything (some source files were
/// unreadable, some metadata could not be restored).
pub const EXIT_PARTIAL: u8 = 3;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// Shell to write the completion script for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::Args)]
pub struct ManpagesArgs {
    /// Folder to write vault.1 and vault-COMMAND.1 into (created if missing)
    pub dir: PathBuf,
}

pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = super::output::Stdout::new();
    clap_complete::generate(shell, &mut cmd, "vault", &mut out);
    super::output::mark_printed();
    Ok(0)
}

/// Writes `vault.1` and one page per subcommand, nested ones as `vault-key-export-identity.1`.
pub fn manpages(args: &ManpagesArgs, mut cmd: clap::Command) -> Result<u8> {
    // Built, so that subcommands carry the global options too.
    cmd.build();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("create folder {}", args.dir.display()))?;
    let mut written = Vec::new();
    write_pages(&args.dir, cmd, "vault", &mut written)?;
    for p in &written {
        outln!("wrote {}", p.display());
    }
    super::output::set_result(serde_json::json!({ "pages": written }));
    Ok(0)
}

fn write_pages(
    dir: &std::path::Path,
    cmd: clap::Command,
    name: &str,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let cmd = cmd.bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_string())
        .render(&mut buf)
        .context("render man page")?;
    let path = dir.join(format!("{name}.1"));
    // Written whole under a temporary name, then renamed: never a half page.
    let tmp = dir.join(format!(".{name}.1.tmp"));
    std::fs::write(&tmp, &buf).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(dir, sub.clone(), &sub_name, written)?;
    }
    Ok(())
}

/// The exit status for a failed command: 2 for usage errors, 128 + signal for a command
/// stopped by SIGINT/SIGTERM, else 1.
pub fn exit_status_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        match cause
            .downcast_ref::<vault::Error>()
            .map(vault::Error::unremedied)
        {
            Some(vault::Error::Usage(_)) => return EXIT_USAGE,
            Some(vault::Error::Cancelled { .. }) => {
                return super::signals::received()
                    .map(super::signals::exit_status)
                    .unwrap_or(130)
            }
            _ => {}
        }
    }
    1
}

/// The operation a SIGINT/SIGTERM stopped, when `e` is that stop.
pub fn stopped_operation(e: &anyhow::Error) -> Option<&'static str> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<vault::Error>() {
            Some(vault::Error::Cancelled { operation }) => Some(*operation),
            _ => None,
        })
}

/// What a command stopped by a signal leaves behind.
pub fn kept_after_stop(command: &str) -> &'static str {
    match command {
        "snapshot" => {
            "no snapshot was recorded; the data uploaded so far is kept in the store and the next snapshot reuses it"
        }
        "restore" => {
            "the files restored so far stay in the target; run the restore again (with --overwrite if-changed) to finish"
        }
        "prune" | "forget" => {
            "nothing the snapshots need was removed; packs written so far are removed by the next prune"
        }
        "copy" => {
            "the objects copied so far stay at the destination and the next copy skips them; no snapshot is there without its data"
        }
        "check" => "the check did not finish; nothing was changed",
        "repair" => "nothing was written; run the repair again to finish it",
        _ => "the store is as it was before the last completed step",
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    fn all_commands(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
        out.push(cmd.clone());
        for sub in cmd.get_subcommands() {
            all_commands(sub, out);
        }
    }

    #[test]
    fn every_option_has_help_and_every_global_option_an_environment_variable() {
        let mut cmd = crate::cli::args::Cli::command();
        cmd.build();
        let mut commands = Vec::new();
        all_commands(&cmd, &mut commands);
        for c in &commands {
            if c.get_name() == "help" {
                continue;
            }
            assert!(
                c.get_about().is_some(),
                "command {} has no help",
                c.get_name()
            );
            for arg in c.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} {id} has no help text",
                    c.get_name()
                );
                if arg.is_global_set() {
                    assert!(
                        arg.get_env().is_some(),
                        "global option --{id} has no env var"
                    );
                    assert_eq!(
                        arg.get_help_heading(),
                        Some(crate::cli::args::GLOBAL),
                        "--{id} is not under the global heading"
                    );
                }
            }
        }
    }

    #[test]
    fn readme_names_every_global_option_and_its_environment_variable() {
        let readme = include_str!("../../README.md");
        let cmd = crate::cli::args::Cli::command();
        for arg in cmd.get_arguments().filter(|a| a.is_global_set()) {
            let long = format!("--{}", arg.get_long().unwrap());
            let env = arg.get_env().unwrap().to_string_lossy().into_owned();
            assert!(readme.contains(&long), "README lacks {long}");
            assert!(readme.contains(&format!("`{env}`")), "README lacks {env}");
        }
    }
    #[test]
    fn long_version_names_the_store_format_this_build_writes() {
        assert!(super::LONG_VERSION
            .ends_with(&format!("store format: {}", vault::repo::FORMAT_VERSION)));
    }
}
