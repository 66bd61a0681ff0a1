use crate::cli::context::Context;
use anyhow::{bail, Result};
use vault::check::{CheckOptions, DataSubset};

// `vault check`'s options.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Also download every pack and decrypt and verify every blob in it
    #[arg(long)]
    pub read_data: bool,
    /// Read only a share of the packs: N/M (deterministic, 1/M..M/M cover all) or P% (random)
    #[arg(long, value_name = "N/M|P%")]
    pub read_data_subset: Option<String>,
}

/// `vault check`.
pub fn check(ctx: &Context, args: &CheckArgs) -> Result<u8> {
    check_store(
        ctx,
        args.read_data,
        args.read_data_subset.as_deref(),
        crate::cli::output::json(),
    )
}

fn check_store(ctx: &Context, read_data: bool, subset: Option<&str>, json: bool) -> Result<u8> {
    let read_data = match (read_data, subset) {
        (true, Some(_)) => bail!("give either --read-data or --read-data-subset, not both"),
        (true, None) => DataSubset::All,
        (false, Some(s)) => s
            .parse()
            .map_err(|e| vault::Error::Usage(format!("--read-data-subset {e}")))?,
        (false, None) => DataSubset::None,
    };
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let report = vault::check::run(&reader, &mut cache, &CheckOptions { read_data })?;
    if json {
        // `main` prints it, with the exit status and the error added.
        crate::cli::output::set_result(serde_json::to_value(&report)?);
    } else {
        // Problems are printed even with --quiet.
        for p in &report.problems {
            dataln!("{}", p.message);
            if !p.snapshots.is_empty() {
                dataln!("  affects snapshots: {}", p.snapshots.join(", "));
            }
            const SHOWN: usize = 20;
            for path in p.paths.iter().take(SHOWN) {
                dataln!("  cannot be restored whole: {path}");
            }
            if p.paths.len() > SHOWN {
                dataln!(
                    "  ... and {} more paths (`vault check --json` lists all)",
                    p.paths.len() - SHOWN
                );
            }
        }
        if !report.leftovers.is_empty() {
            let bytes: u64 = report.leftovers.iter().map(|l| l.size).sum();
            let old = report
                .leftovers
                .iter()
                .filter(|l| l.age >= vault::backend::LEFTOVER_GRACE)
                .count();
            outln!(
                "{} partial writes ({}) lie in the store's tmp/ (left by interrupted runs, or writes in progress); \
                 the next snapshot or prune removes the {old} older than an hour",
                report.leftovers.len(),
                super::human(bytes)
            );
        }
        if report.unindexed_packs > 0 {
            outln!(
                "{} packs are named by no index file (left by an interrupted run); the next prune removes them",
                report.unindexed_packs
            );
        }
        let read = match read_data {
            DataSubset::None => String::new(),
            _ => format!(
                ", read {} packs ({} blobs)",
                report.packs_read, report.blobs_read
            ),
        };
        outln!(
            "checked {} snapshots, {} packs ({} headers and trailers), {} index files{read}: {}",
            report.snapshots,
            report.packs,
            report.packs_verified,
            report.index_files,
            if report.problems.is_empty() {
                "no errors".to_string()
            } else {
                format!("{} problems", report.problems.len())
            }
        );
    }
    if !report.problems.is_empty() {
        bail!(
            "the store at {} has errors{}",
            reader.repo.location(),
            if json { "" } else { " (listed above)" }
        );
    }
    Ok(0)
}
