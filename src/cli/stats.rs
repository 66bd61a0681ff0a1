//! `vault stats`: store size, what deduplication and compression save, per snapshot.

use super::commands::human;
use super::context::Context;
use anyhow::Result;

#[derive(clap::Args)]
pub struct StatsArgs {
    /// Leave out the per-snapshot table
    #[arg(long)]
    pub no_snapshots: bool,
}

pub fn run(ctx: &Context, args: &StatsArgs) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let st = vault::stats::run(&reader, &mut cache)?;
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.2}x", a as f64 / b as f64)
        }
    };
    outln!(
        "store {}: {}",
        reader.repo.location(),
        human(st.store_bytes)
    );
    for (kind, t) in &st.objects {
        if t.objects > 0 {
            outln!(
                "  {kind:<10} {:>8} objects  {:>10}",
                t.objects,
                human(t.bytes)
            );
        }
    }
    outln!("snapshots: {}", st.snapshots);
    outln!(
        "data: {} in all snapshots, {} after deduplication ({}), {} stored after compression and encryption ({})",
        human(st.logical_bytes),
        human(st.dedup_bytes),
        ratio(st.logical_bytes, st.dedup_bytes),
        human(st.stored_blob_bytes),
        ratio(st.logical_bytes, st.stored_blob_bytes)
    );
    let avg = st.pack_bytes.checked_div(st.packs).unwrap_or(0);
    outln!(
        "packs: {} of {} on average (target {}); {} of {} hold data some snapshot needs ({:.0}%)",
        st.packs,
        human(avg),
        human(st.pack_target_bytes),
        human(st.pack_used_bytes),
        human(st.pack_bytes),
        if st.pack_bytes == 0 {
            100.0
        } else {
            100.0 * st.pack_used_bytes as f64 / st.pack_bytes as f64
        }
    );
    if !args.no_snapshots && !st.per_snapshot.is_empty() {
        outln!(
            "\n{:<8}  {:<19}  {:<16}  {:>10}  {:>12}  {:>12}",
            "id",
            "time",
            "host",
            "size",
            "unique data",
            "unique stored"
        );
        for s in &st.per_snapshot {
            outln!(
                "{:<8}  {:<19}  {:<16}  {:>10}  {:>12}  {:>12}",
                s.short_id,
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
                s.hostname,
                human(s.logical_bytes),
                human(s.unique_bytes),
                human(s.unique_stored_bytes)
            );
        }
    }
    let mut value = serde_json::to_value(&st)?;
    if args.no_snapshots {
        if let Some(o) = value.as_object_mut() {
            o.remove("per_snapshot");
        }
    }
    value["store"] = reader.repo.location().into();
    super::output::set_result(value);
    Ok(0)
}
