//! `vault find PATTERN`: which snapshots hold a matching path or name.

use super::commands::human;
use super::context::Context;
use anyhow::Result;

#[derive(clap::Args)]
pub struct FindArgs {
    /// Glob: without `/` it matches names (`*.yml`); with `/` whole paths (`/etc/travis/**`,
    /// or `travis/*.yml` anywhere)
    pattern: String,
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

pub fn run(ctx: &Context, args: FindArgs) -> Result<u8> {
    let pattern = vault::find::Pattern::new(&args.pattern)?;
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    cache.sync_index(&repo, &keys)?;
    let snaps = args.filter.filter().apply(repo.snapshots(&keys)?);
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let hits = vault::find::find(&reader, &cache, &snaps, &pattern)?;
    // With --json: [{"snapshot", "short_id", "host", "time", "tags", "matches": [{path, type, size, mtime}]}]
    if crate::cli::output::json() {
        crate::cli::output::print_json_listing(&serde_json::to_value(&hits)?)?;
        return Ok(0);
    }
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for h in &hits {
        writeln!(out, "snapshot {} of {} at {}:", h.short_id, h.host, h.time)?;
        for m in &h.matches {
            writeln!(
                out,
                "  {:>10}  {}  {}",
                if m.kind == "file" {
                    human(m.size)
                } else {
                    m.kind.to_string()
                },
                m.mtime,
                m.path
            )?;
        }
    }
    if hits.is_empty() {
        writeln!(out, "no snapshot holds a path matching {:?}", args.pattern)?;
    }
    out.flush()?;
    Ok(0)
}
