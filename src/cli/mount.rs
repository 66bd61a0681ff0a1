//! `vault mount SNAPSHOT|all MOUNTPOINT`: browse snapshots read-only through FUSE.

use super::context::Context;
use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MountArgs {
    /// Snapshot id (or unique prefix), "latest", or "all" (MOUNTPOINT/HOST/TIME/...)
    snapshot: String,
    /// Empty folder to mount on; unmount with `fusermount3 -u MOUNTPOINT` (or `umount`)
    mountpoint: PathBuf,
}

pub fn run(ctx: &Context, args: MountArgs) -> Result<u8> {
    let meta = std::fs::metadata(&args.mountpoint)
        .with_context(|| format!("mount point {}", args.mountpoint.display()))?;
    if !meta.is_dir() {
        bail!("mount point {} is not a folder", args.mountpoint.display());
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse does not exist: this system cannot mount FUSE filesystems (load the fuse module, or install fuse3)");
    }
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    cache.sync_index(&repo, &keys)?;
    let mut result = serde_json::json!({
        "mountpoint": args.mountpoint,
        "snapshot": null,
        "snapshots": 1,
    });
    let source = if args.snapshot == "all" {
        let all = repo.snapshots(&keys)?;
        if all.is_empty() {
            bail!("the store at {} has no snapshots to mount", repo.location());
        }
        errln!(
            "vault: mounting {} snapshots at {} (HOST/TIME/...); unmount with `fusermount3 -u {}`",
            all.len(),
            args.mountpoint.display(),
            args.mountpoint.display()
        );
        result["snapshots"] = all.len().into();
        vault::mount::Source::All(all)
    } else {
        let (id, snap) = repo.find_snapshot(&keys, &args.snapshot)?;
        errln!(
            "vault: mounting snapshot {} at {}; unmount with `fusermount3 -u {}`",
            id.short(),
            args.mountpoint.display(),
            args.mountpoint.display()
        );
        result["snapshot"] = id.to_hex().into();
        vault::mount::Source::One(Box::new(snap))
    };
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let fs = vault::mount::SnapshotFs::new(reader, cache, source);
    vault::mount::serve(fs, &args.mountpoint).with_context(|| {
        format!(
            "mount at {} (FUSE needs /dev/fuse and, for users other than root, fusermount3 from the fuse3 package)",
            args.mountpoint.display()
        )
    })?;
    // Printed once the filesystem is unmounted.
    crate::cli::output::set_result(result);
    Ok(0)
}
