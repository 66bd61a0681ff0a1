//! The TOML configuration (`--config`, `VAULT_CONFIG`, default `/etc/vault/vault.toml`).
//!
//! Every setting is optional; command-line flags override what the file says. A missing
//! file at the default location is not an error (the defaults apply); a missing file that
//! was named explicitly is.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/vault/vault.toml";
pub const DEFAULT_PATHS: [&str; 2] = ["/etc/travis", "/var/travis"];

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Store location: a folder, or `s3://BUCKET/PREFIX`.
    pub store: Option<String>,
    /// What `vault snapshot` saves when no paths are given.
    pub paths: Option<Vec<PathBuf>>,
    /// Paths (absolute, or names matched anywhere) left out of snapshots.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Host name recorded in snapshots (default: the system's).
    pub hostname: Option<String>,
    /// Where this host keeps its writer key (store id, id key and recipients).
    pub writer_key: Option<PathBuf>,
    /// File holding the passphrase that unlocks the reader identity stored in the store.
    pub passphrase_file: Option<PathBuf>,
    /// age identity file of the store's reader (instead of the passphrase).
    pub identity_file: Option<PathBuf>,
    /// Folder for the local cache database (default: /var/cache/vault or ~/.cache/vault).
    pub cache_dir: Option<PathBuf>,
    /// Chunker sizes for new stores.
    #[serde(default)]
    pub chunker: ChunkerConfig,
    /// Compression for new stores.
    #[serde(default)]
    pub compression: CompressionConfig,
    /// Parallel workers for compression and encryption (default: number of cores).
    pub threads: Option<usize>,
    #[serde(default)]
    pub secrets: crate::secrets::SecretsConfig,
    /// What `vault forget` keeps when no --keep-* flag is given.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// S3 endpoint, region, credentials and transfer settings for `s3://` stores.
    #[serde(default)]
    pub s3: crate::backend::s3::S3Config,
    /// Commands run around snapshots (`[hooks]`) and restores (`[hooks.restore]`).
    #[serde(default)]
    pub hooks: crate::hooks::HooksConfig,
    /// PostgreSQL clusters saved by online capture when a snapshot includes them.
    #[serde(default)]
    pub postgres: Vec<crate::postgres::PostgresConfig>,
    /// What `vault drill` checks beyond the restore.
    #[serde(default)]
    pub drill: crate::drill::DrillConfig,
    /// Status lines while a long command runs without a terminal.
    #[serde(default)]
    pub progress: ProgressConfig,
    /// Prometheus textfile written after every command.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressConfig {
    /// Time between two status lines without a terminal, like "60s" or "5m" (default 60s).
    pub interval: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// File for node_exporter's textfile collector, rewritten after every command.
    pub textfile: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerConfig {
    pub min_size: Option<u32>,
    pub avg_size: Option<u32>,
    pub max_size: Option<u32>,
}

/// Read only by `vault init`: a store keeps the level it was created with in its own
/// config, so changing this later affects new stores only.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// zstd level of new blobs (default [`crate::repo::DEFAULT_COMPRESSION_LEVEL`]).
    pub level: Option<i32>,
}

impl Config {
    /// Loads `explicit` if given (it must exist), else the default file if present.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default())
            }
            Err(e) => {
                return Err(Error::Config {
                    path,
                    detail: format!("cannot read it: {e}"),
                })
            }
        };
        Config::parse(&text).map_err(|detail| Error::Config { path, detail })
    }

    /// Parses the file's text. The error names the line and what is wrong, never the
    /// text there: a mistyped key's value may be a secret.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let at = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                }
                None => String::new(),
            };
            format!(
                "{at}{}",
                crate::error::redact_quoted(e.message().trim_end())
            )
        })
    }
}

/// True when running as root: decides the default locations below.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Default store: /var/backups/vault as root, ~/.local/share/vault/store otherwise.
pub fn default_store() -> String {
    if is_root() {
        "/var/backups/vault".into()
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".local/share"))
            .join("vault/store")
            .display()
            .to_string()
    }
}

/// Default folder for this host's key files: /etc/vault as root, ~/.config/vault otherwise.
pub fn default_key_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/etc/vault")
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".config"))
            .join("vault")
    }
}

/// Default cache folder: /var/cache/vault as root, ~/.cache/vault otherwise.
pub fn default_cache_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/cache/vault")
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".cache"))
            .join("vault")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::parse("stroe = \"/x\"").unwrap_err();
        assert!(err.contains("stroe"), "{err}");
    }

    #[test]
    fn mistyped_secret_key_does_not_echo_its_value() {
        let text = "store = \"s3://b/p\"\n[s3]\nsecret_acces_key = \"wJalrXUtnFEMI/K7MDENG\"\n";
        let err = Config::parse(text).unwrap_err();
        assert!(err.contains("secret_acces_key"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("wJalrXUtnFEMI"), "the value leaked: {err}");
        let err = Config::parse("threads = \"hunter2\"\n").unwrap_err();
        assert!(err.contains("threads") || err.contains("line 1"), "{err}");
        assert!(!err.contains("hunter2"), "the value leaked: {err}");
    }

    #[test]
    fn shipped_examples_parse() {
        for (name, text) in [
            ("vault.toml", include_str!("../config/vault.toml")),
            (
                "vault-worker.toml",
                include_str!("../config/vault-worker.toml"),
            ),
        ] {
            let c = Config::parse(text).unwrap_or_else(|e| panic!("config/{name}: {e}"));
            assert!(c.paths.is_some(), "config/{name} names its paths");
        }
    }

    #[test]
    fn full_example_parses() {
        let c = Config::parse(
            r#"
            store = "/var/backups/vault"
            paths = ["/etc/travis", "/var/travis"]
            exclude = ["/var/travis/tmp"]
            threads = 2
            [chunker]
            avg_size = 1048576
            [compression]
            level = 3
            "#,
        )
        .unwrap();
        assert_eq!(c.paths.unwrap().len(), 2);
        assert_eq!(c.chunker.avg_size, Some(1 << 20));
        assert_eq!(c.compression.level, Some(3));
    }
}
