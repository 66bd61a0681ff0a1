use super::human;
use crate::cli::context::Context;
use anyhow::{bail, Result};
use vault::copy::{CopyOptions, CopyReport, Tally};

// `vault copy`'s options.
#[derive(clap::Args)]
pub struct CopyArgs {
    /// Store to copy from: a folder or s3://BUCKET/PREFIX (the global --store is not used)
    #[arg(long)]
    pub from: String,
    /// Store to copy to; an empty location becomes a copy of the same store (same keys)
    #[arg(long)]
    pub to: String,
    /// Snapshots to copy (id, unique prefix or "latest") [default: everything the store holds]
    pub snapshots: Vec<String>,
    /// Also read back what the destination already holds and replace whatever is
    /// damaged there (packs that do not match their hash, differing index files or records)
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub filter: crate::cli::filter::FilterArgs,
}

/// `vault copy`: the context's store is the source (`--from`).
pub fn copy(ctx: &Context, args: &CopyArgs) -> Result<u8> {
    copy_to(ctx, &args.to, &args.snapshots, args.verify, &args.filter)
}

fn copy_to(
    ctx: &Context,
    to: &str,
    specs: &[String],
    verify: bool,
    filter: &crate::cli::filter::FilterArgs,
) -> Result<u8> {
    let opts = CopyOptions {
        threads: ctx.threads(),
        lock_wait: ctx.lock_wait(),
        verify,
    };
    let mut report = CopyReport::default();
    let whole = specs.is_empty() && filter.filter().is_empty();
    let (src_location, dst_location) = if whole {
        copy_whole_store(ctx, to, &opts, &mut report)?
    } else {
        copy_chosen(ctx, to, specs, filter, &opts, &mut report)?
    };
    print_report(&report, verify, whole, &src_location, &dst_location);
    set_json_result(&report, &src_location, &dst_location);
    if !report.is_complete() {
        bail!(
            "copy incomplete: {} problem{} (listed above); everything else was copied and {dst_location} is consistent",
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

/// Copies the whole store to `to`: the metadata key is enough (a writer host can ship its
/// store). Returns the source's and the destination's locations.
fn copy_whole_store(
    ctx: &Context,
    to: &str,
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<(String, String)> {
    let dst_backend = vault::backend::open_with(to, &ctx.config.s3)?;
    let (src, keys) = ctx.meta_keys()?;
    let dst = vault::copy::open_destination(&src, dst_backend, report)?;
    let locations = (src.location(), dst.location());
    vault::copy::copy_all(&src, &dst, &keys, opts, report)?;
    Ok(locations)
}

/// Copies the chosen snapshots (`specs`, else every one `filter` matches) to `to`: their
/// trees must be read to find their packs. Returns the source's and the destination's
/// locations.
fn copy_chosen(
    ctx: &Context,
    to: &str,
    specs: &[String],
    filter: &crate::cli::filter::FilterArgs,
    opts: &CopyOptions,
    report: &mut CopyReport,
) -> Result<(String, String)> {
    let dst_backend = vault::backend::open_with(to, &ctx.config.s3)?;
    let (src, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&src)?;
    cache.sync_index(&src, &keys)?;
    let mut chosen = Vec::new();
    for spec in specs {
        let (id, snap, _) = crate::cli::filter::resolve(ctx, &src, &keys, spec, filter)?;
        chosen.push((id, snap));
    }
    if specs.is_empty() {
        // Filters without ids: every snapshot they match.
        chosen = filter.filter().apply(src.snapshots(&keys)?);
        if chosen.is_empty() {
            bail!(
                "no snapshot in {} matches {}; nothing was copied",
                src.location(),
                filter.filter().describe()
            );
        }
    }
    let dst = vault::copy::open_destination(&src, dst_backend, report)?;
    let locations = (src.location(), dst.location());
    let reader = vault::reader::BlobReader::new(src, keys, identity);
    vault::copy::copy_snapshots(&reader, &cache, &dst, &chosen, opts, report)?;
    Ok(locations)
}

/// The kinds of objects `pick` counts in `report`, with `extra` new index files, as
/// "N packs (SIZE), ..." or "nothing".
fn describe(
    report: &CopyReport,
    pick: &dyn Fn(&vault::copy::KindTally) -> Tally,
    extra: Option<Tally>,
) -> String {
    let mut parts = Vec::new();
    for (label, k) in report.kinds() {
        let t = pick(&k);
        if t.objects > 0 {
            parts.push(format!("{} {label} ({})", t.objects, human(t.bytes)));
        }
    }
    if let Some(t) = extra.filter(|t| t.objects > 0) {
        parts.push(format!(
            "{} new index files ({})",
            t.objects,
            human(t.bytes)
        ));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// Prints what the copy did: notes and problems, what was copied and already there, what
/// was healed, and the snapshots copied or withheld.
fn print_report(
    report: &CopyReport,
    verify: bool,
    whole: bool,
    src_location: &str,
    dst_location: &str,
) {
    if report.created {
        outln!("created a copy of the store at {dst_location} (its config and keys come from {src_location})");
    }
    for note in &report.notes {
        errln!("vault: note: {note}");
    }
    for p in &report.problems {
        errln!("vault: {p}");
    }
    let copied = report.copied();
    let present = report.present();
    outln!(
        "copied {} objects ({}) to {dst_location}: {}",
        copied.objects,
        human(copied.bytes),
        describe(report, &|k| k.copied, Some(report.new_index_files))
    );
    outln!(
        "already there: {} objects ({}): {}",
        present.objects,
        human(present.bytes),
        describe(report, &|k| k.present, None)
    );
    if report.reindexed_packs > 0 {
        outln!(
            "{} packs that were already there are now indexed",
            report.reindexed_packs
        );
    }
    for h in &report.healed {
        outln!("healed: {h}");
    }
    if verify {
        outln!(
            "verified {} objects ({}) already at {dst_location}: {}",
            report.verified.objects,
            human(report.verified.bytes),
            if report.healed.is_empty() {
                "all sound".to_string()
            } else {
                format!("{} healed", report.healed.len())
            }
        );
    } else if !report.healed.is_empty() {
        outln!("{} objects healed at {dst_location}", report.healed.len());
    }
    for id in &report.copied_snapshots {
        outln!("copied snapshot {}", id.short());
    }
    if !report.withheld.is_empty() {
        let ids: Vec<String> = report.withheld.iter().map(|id| id.short()).collect();
        errln!(
            "vault: {} snapshot{} not copied, because not everything {} need{} could be copied: {}",
            ids.len(),
            if ids.len() == 1 { " was" } else { "s were" },
            if ids.len() == 1 { "it" } else { "they" },
            if ids.len() == 1 { "s" } else { "" },
            ids.join(" ")
        );
        if whole && !report.problems.is_empty() {
            errln!(
                "vault: a whole-store copy cannot tell which snapshots need the damaged objects without reading their \
                 trees; name the snapshots to copy (`vault copy --from {src_location} --to {dst_location} ID...`, \
                 with the reader identity or passphrase) to copy those that do not"
            );
        }
    }
}

/// The copy's result for `--json`.
fn set_json_result(report: &CopyReport, src_location: &str, dst_location: &str) {
    let tally = |t: Tally| serde_json::json!({ "objects": t.objects, "bytes": t.bytes });
    let kinds: serde_json::Map<String, serde_json::Value> = report
        .kinds()
        .iter()
        .map(|(label, k)| {
            (
                label.to_string(),
                serde_json::json!({ "copied": tally(k.copied), "present": tally(k.present) }),
            )
        })
        .collect();
    let copied = report.copied();
    crate::cli::output::set_result(serde_json::json!({
        "from": src_location,
        "to": dst_location,
        "created": report.created,
        "copied": tally(copied),
        "present": tally(report.present()),
        "bytes_stored": copied.bytes,
        "kinds": kinds,
        "new_index_files": tally(report.new_index_files),
        "reindexed_packs": report.reindexed_packs,
        "copied_snapshots": report.copied_snapshots.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
        "withheld_snapshots": report.withheld.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
        "notes": report.notes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "problems": report.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }));
}
