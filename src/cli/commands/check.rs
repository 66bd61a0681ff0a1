use crate::cli::context::Context;
use anyhow::{bail, Result};

pub fn check(ctx: &Context, read_data: bool) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let report = vault::check::run(&reader, &mut cache, read_data)?;
    for p in &report.problems {
        dataln!("{p}");
    }
    outln!(
        "checked {} snapshots, {} packs, {} index files{}: {}",
        report.snapshots,
        report.packs,
        report.index_files,
        if read_data {
            format!(", read {} blobs", report.blobs_read)
        } else {
            String::new()
        },
        if report.problems.is_empty() {
            "no errors".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
    if !report.problems.is_empty() {
        bail!(
            "the store at {} has errors (listed above)",
            reader.repo.location()
        );
    }
    Ok(0)
}
