//! `vault diff A B [PATH]`: what changed from snapshot A to snapshot B.

use super::commands::human;
use super::context::Context;
use anyhow::Result;
use std::path::PathBuf;
use vault::diff::ChangeKind;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// Older snapshot: id (or unique prefix), "latest" (this host's) or "latest:HOST"
    a: String,
    /// Newer snapshot: id (or unique prefix), "latest" (this host's) or "latest:HOST"
    b: String,
    /// Only this absolute path (and what lies below it)
    path: Option<PathBuf>,
    /// Both snapshots must match these; `latest` is the newest that does
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

pub fn run(ctx: &Context, args: DiffArgs) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    cache.sync_index(&repo, &keys)?;
    let (ia, sa, va) = super::filter::resolve(ctx, &repo, &keys, &args.a, &args.filter)?;
    let (ib, sb, vb) = super::filter::resolve(ctx, &repo, &keys, &args.b, &args.filter)?;
    super::commands::describe_verification(&ia, &sa, &va);
    super::commands::describe_verification(&ib, &sb, &vb);
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let only = super::dump::path_components(args.path.as_ref());
    let report = vault::diff::diff(&reader, &cache, &sa.tree, &sb.tree, &only)?;
    if crate::cli::output::json() {
        let v = serde_json::json!({
            "a": ia.to_hex(),
            "b": ib.to_hex(),
            "changes": report.changes,
            "summary": report.summary,
        });
        // With --json: {"a", "b", "changes": [{path, change, type, what, old_size, new_size}], "summary"}
        crate::cli::output::set_result(v);
        return Ok(0);
    }
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for c in &report.changes {
        match c.change {
            ChangeKind::Added => writeln!(out, "+ {}", c.path)?,
            ChangeKind::Removed => writeln!(out, "- {}", c.path)?,
            ChangeKind::Changed => writeln!(out, "M {} ({})", c.path, c.what.join(", "))?,
        }
    }
    let s = &report.summary;
    writeln!(
        out,
        "{} -> {}: {} added ({}), {} removed ({}), {} changed ({} of changed content)",
        ia.short(),
        ib.short(),
        s.added,
        human(s.added_bytes),
        s.removed,
        human(s.removed_bytes),
        s.changed,
        human(s.changed_bytes)
    )?;
    out.flush()?;
    Ok(0)
}
