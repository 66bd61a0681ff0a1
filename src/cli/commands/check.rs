use crate::cli::context::Context;
use anyhow::{bail, Result};
use vault::check::{CheckOptions, DataSubset};

pub fn check(ctx: &Context, read_data: bool, subset: Option<&str>, json: bool) -> Result<u8> {
    let read_data = match (read_data, subset) {
        (true, Some(_)) => bail!("give either --read-data or --read-data-subset, not both"),
        (true, None) => DataSubset::All,
        (false, Some(s)) => s.parse()?,
        (false, None) => DataSubset::None,
    };
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let report = vault::check::run(&reader, &mut cache, &CheckOptions { read_data })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.problems {
            println!("{}", p.message);
            if !p.snapshots.is_empty() {
                println!("  affects snapshots: {}", p.snapshots.join(", "));
            }
            const SHOWN: usize = 20;
            for path in p.paths.iter().take(SHOWN) {
                println!("  cannot be restored whole: {path}");
            }
            if p.paths.len() > SHOWN {
                println!(
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
            println!(
                "{} partial writes ({}) lie in the store's tmp/ (left by interrupted runs, or writes in progress); \
                 the next snapshot or prune removes the {old} older than an hour",
                report.leftovers.len(),
                super::human(bytes)
            );
        }
        if report.unindexed_packs > 0 {
            println!(
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
        println!(
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
