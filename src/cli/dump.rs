//! `vault dump SNAPSHOT [PATH] > out.tar`: a snapshot as a tar stream on standard output.

use super::context::Context;
use anyhow::{bail, Context as _, Result};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DumpArgs {
    /// Snapshot id (or unique prefix), or "latest"
    snapshot: String,
    /// Only this absolute path of the snapshot (and what lies below it)
    path: Option<PathBuf>,
}

/// Path components below `/` of an absolute path given on the command line.
pub fn path_components(path: Option<&PathBuf>) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    path.map(|p| {
        p.as_os_str()
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(|c| c.to_vec())
            .collect()
    })
    .unwrap_or_default()
}

pub fn run(ctx: &Context, args: DumpArgs) -> Result<u8> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        bail!("vault dump writes a tar stream: redirect it to a file (`vault dump {} > out.tar`) or a pipe", args.snapshot);
    }
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    cache.sync_index(&repo, &keys)?;
    let (id, snap) = repo.find_snapshot(&keys, &args.snapshot)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let only = path_components(args.path.as_ref());
    let out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let report = vault::dump::dump(&reader, &cache, &snap.tree, &only, out)
        .with_context(|| format!("dump of snapshot {}", id.short()))?;
    for s in &report.skipped {
        errln!("vault: left out {s}");
    }
    // stdout is the tar stream: with --json the result goes to stderr (see `main`).
    super::output::set_result(serde_json::json!({
        "snapshot": id.to_hex(),
        "short_id": id.short(),
        "entries": report.entries,
        "bytes": report.bytes,
        "skipped": report.skipped,
    }));
    if !super::output::json() {
        errln!(
            "dumped snapshot {}: {} entries, {} of file data",
            id.short(),
            report.entries,
            super::commands::human(report.bytes)
        );
    }
    Ok(if report.skipped.is_empty() {
        0
    } else {
        crate::cli::docs::EXIT_PARTIAL
    })
}
