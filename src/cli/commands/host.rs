//! `vault host add|list|revoke`: which hosts may write snapshots, and as whom.

use crate::cli::context::Context;
use anyhow::{bail, Result};
use std::path::PathBuf;
use vault::keys::WriterKeyFile;

#[derive(clap::Subcommand)]
pub enum HostCommand {
    /// Authorise a host (needs the reader identity) and write its writer key file
    Add {
        /// The host's name, as its snapshots record it (`hostname`)
        name: String,
        /// Where to write the new host's writer key file (copy it to that host, mode 0600)
        #[arg(long)]
        out: PathBuf,
    },
    /// List the authorised hosts and their keys
    List,
    /// Revoke every key of a host (needs the reader identity); its earlier snapshots stay verified
    Revoke {
        /// The host's name, as `vault host list` shows it
        name: String,
    },
}

pub fn host(ctx: &Context, cmd: HostCommand) -> Result<u8> {
    match cmd {
        HostCommand::Add { name, out } => {
            if out.exists() {
                bail!("{} already exists; choose a new file name", out.display());
            }
            let mut a = ctx.admin()?;
            let key = crate::cli::context::enrol_host(&mut a.repo, &a.admin, &name)?;
            WriterKeyFile {
                store_id: a.repo.config.store_id.clone(),
                store: a.repo.location(),
                id_key: a.keys.id_key().to_hex().to_string(),
                recipients: a.repo.config.recipients.clone(),
                admin_key: Some(vault::sign::public_hex(&a.admin.public())),
                host: Some(name.clone()),
                host_key: Some(key.seed_hex().to_string()),
            }
            .save(&out)?;
            crate::cli::output::set_result(serde_json::json!({
                "host": name,
                "key": vault::sign::public_hex(&key.public()),
                "writer_key_file": out,
                "store_id": a.repo.config.store_id,
            }));
            outln!(
                "authorised host {name} (key {}); its writer key file is {}: copy it to that host (e.g. as \
                 /etc/vault/writer-{}.json, mode 0600) and delete it here",
                &vault::sign::public_hex(&key.public())[..16],
                out.display(),
                a.repo.config.store_id
            );
            Ok(0)
        }
        HostCommand::List => {
            let (repo, _) = ctx.meta_keys()?;
            let Some(registry) = &repo.trust.registry else {
                bail!(
                    "the store at {} has no host registry (it is of the first format: run `vault upgrade`)",
                    repo.location()
                );
            };
            if crate::cli::output::json() {
                let rows: Vec<serde_json::Value> = registry
                    .hosts
                    .iter()
                    .map(|h| {
                        serde_json::json!({
                            "host": h.name,
                            "key": h.key,
                            "added": h.added,
                            "revoked": h.revoked,
                        })
                    })
                    .collect();
                crate::cli::output::print_json_listing(&serde_json::Value::Array(rows))?;
                return Ok(0);
            }
            dataln!("{:<24}  {:<16}  {:<25}  status", "host", "key", "added");
            for h in &registry.hosts {
                dataln!(
                    "{:<24}  {:<16}  {:<25}  {}",
                    h.name,
                    h.key.get(..16).unwrap_or(&h.key),
                    h.added.get(..19).unwrap_or(&h.added).replace('T', " "),
                    match &h.revoked {
                        Some(t) =>
                            format!("revoked {}", t.get(..19).unwrap_or(t).replace('T', " ")),
                        None => "authorised".into(),
                    }
                );
            }
            Ok(0)
        }
        HostCommand::Revoke { name } => {
            let a = ctx.admin()?;
            let mut registry = vault::hosts::Registry::load(
                a.repo.backend.as_ref(),
                &a.repo.config.store_id,
                &a.admin.public(),
            )?;
            let n = registry.revoke(&name);
            if n == 0 {
                bail!("no authorised host is named {name:?} (`vault host list` shows them)");
            }
            registry.save(a.repo.backend.as_ref(), &a.admin)?;
            crate::cli::output::set_result(serde_json::json!({
                "host": name,
                "keys_revoked": n,
            }));
            outln!(
                "revoked {n} key{} of host {name}: snapshots it signs from now on are flagged; its earlier ones \
                 stay verified. Its writer key still holds the id key: it can still add objects to the store \
                 (the S3 credentials and policies limit that)",
                if n == 1 { "" } else { "s" }
            );
            Ok(0)
        }
    }
}
