//! `--host`, `--tag` and `--path`: the snapshot filters every command that picks snapshots
//! shares, and how they meet the snapshot spec (`latest`, `latest:HOST`, an id).

use crate::cli::context::Context;
use anyhow::Result;
use std::path::PathBuf;
use vault::crypto::WriterKeys;
use vault::repo::{Repo, Snapshot};
use vault::select::{LatestDefaults, SnapshotFilter};
use vault::Id;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host; repeatable (any of them) [`latest` default: this host]
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots carrying this tag; repeatable (all of them)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots that saved this source path; repeatable (all of them)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

impl FilterArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}

/// What `latest` means on this host: its name as `vault snapshot` records it, and the
/// configured paths when the configuration lists them.
pub fn latest_defaults(ctx: &Context) -> LatestDefaults {
    LatestDefaults {
        host: vault::select::this_host(ctx.config.hostname.as_deref()),
        paths: ctx.config.paths.clone(),
    }
}

/// Resolves a snapshot spec under the filters.
pub fn resolve(
    ctx: &Context,
    repo: &Repo,
    keys: &WriterKeys,
    spec: &str,
    filter: &FilterArgs,
) -> Result<(Id, Snapshot, vault::repo::Verification)> {
    Ok(vault::select::resolve(
        repo,
        keys,
        spec,
        &filter.filter(),
        &latest_defaults(ctx),
    )?)
}
