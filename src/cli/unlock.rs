//! `vault unlock`: clears leases left by processes that died.

use crate::cli::context::Context;
use anyhow::Result;

#[derive(clap::Args)]
pub struct UnlockArgs {
    /// Also remove this live lease (name or unique prefix, as the "store is busy" message
    /// gives it): only for a host that is down
    #[arg(long, value_name = "LEASE")]
    force: Option<String>,
}

pub fn run(ctx: &Context, args: UnlockArgs) -> Result<u8> {
    let (repo, keys) = ctx.meta_keys()?;
    let r = vault::lock::unlock(&repo.backend, &keys, args.force.as_deref())?;
    let leases = |list: &[(String, vault::lock::LeaseRecord)]| {
        list.iter()
            .map(|(name, lease)| serde_json::json!({ "lease": name, "holder": lease.describe() }))
            .collect::<Vec<_>>()
    };
    crate::cli::output::set_result(serde_json::json!({
        "removed": leases(&r.removed),
        "live": leases(&r.live),
    }));
    for (name, lease) in &r.removed {
        outln!(
            "removed lease {} ({})",
            &name[..8.min(name.len())],
            lease.describe()
        );
    }
    for (name, lease) in &r.live {
        outln!(
            "kept live lease {} ({}); if its host is down: `vault unlock --force {}`",
            &name[..8.min(name.len())],
            lease.describe(),
            &name[..8.min(name.len())]
        );
    }
    if r.removed.is_empty() && r.live.is_empty() {
        outln!("no leases: the store is free");
    }
    Ok(0)
}
