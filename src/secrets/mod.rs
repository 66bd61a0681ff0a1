//! Sealed platform secrets: the Travis CI Enterprise *encryption key* (without which the
//! platform's database cannot be read) and the RabbitMQ (AMQP) password, kept in the store
//! apart from the backups, readable only by offline *escrow* keys, and printable on paper.
//!
//! # Who can do what
//!
//! - A snapshotting host reads the secrets from the platform's `travis.yml` (see
//!   [`source`] for where and how) and *seals* each one with age to the store's escrow
//!   recipients. It holds only public recipients and the fingerprint key, so it can seal
//!   but never unseal, and neither can anyone who steals its keys.
//! - The escrow recipients are a set of their own, chosen at `vault init` and changeable
//!   later: age X25519 recipients whose identities are kept offline, and/or a passphrase.
//!   They are not the store's reader identity, so a leaked reader identity (which opens
//!   every backup) does not open the secrets.
//! - Whoever holds an escrow identity (or the passphrase) can open a sealed version with
//!   `vault`, or with the stock `age` tool alone.
//!
//! # Objects (kind [`Kind::Secrets`](crate::backend::Kind::Secrets), format 1)
//!
//! | object | contents |
//! | --- | --- |
//! | `escrow-NNNNNNNN` | escrow set number N (8 digits, from 1; the highest is in force), plaintext JSON: `format` (1), `serial` (N), `created` (Unix seconds), `recipients` (list of `age1...`), `passphrase_recipient` (`age1...` or null) |
//! | `escrow-NNNNNNNN-passphrase` | only when set N has a passphrase: an age file (scrypt recipient, work factor 2^18, ASCII armor) holding a fresh X25519 identity (`AGE-SECRET-KEY-1...` and a line break) whose public key is `passphrase_recipient` |
//! | `NAME--TTTTTTTTTTTTTTTTTTTT-RRRRRRRR-age` | one sealed version: an age file (X25519 recipients = the escrow set's `recipients` plus its `passphrase_recipient`; ASCII armor) whose plaintext is exactly the secret's UTF-8 bytes |
//! | `NAME--TTTTTTTTTTTTTTTTTTTT-RRRRRRRR-meta` | its plaintext JSON metadata: `format` (1), `name`, `sealed_at` (Unix seconds), `host`, `source` (file and entry, or command, never the value), `fingerprint` (64 hex), `escrow` (the set's N), `recipients` (the set's list), `passphrase` (bool), `age_blake3` (64 hex: BLAKE3 of the whole age object) |
//!
//! `NAME` is the secret's name (lowercase letters and digits in parts joined by single
//! `-`, at most 64 characters, so it never contains `--`); `TTTTTTTTTTTTTTTTTTTT` is the
//! sealing time in Unix nanoseconds (20 digits; a new version of a secret always gets a
//! later time than its newest version) and `RRRRRRRR` 32 random bits in hex, so versions
//! sort by time and two hosts sealing at once never pick the same name. Every version is
//! kept.
//! The age object is written before the metadata; a version exists once its metadata
//! does, so an interrupted seal leaves only an unlisted age object.
//!
//! # Fingerprints and change detection
//!
//! `fingerprint` = BLAKE3 keyed with the caller's 32-byte fingerprint key (`vault` derives
//! it from the store's id key as `blake3::derive_key("vault v1 secret fingerprint",
//! id_key)`) over `"vault secret v1\0"`, the name's length as u64 little-endian, the name
//! and the value. Without the key it reveals nothing about the value; with it, `list`,
//! change detection ([`seal_changed`]) and [`verify`] need no decryption. A source is
//! sealed again when its fingerprint differs from the newest version *the same host*
//! sealed, or when that version was sealed to an older escrow set (so changing the escrow
//! recipients re-seals the current values to the new set at the next seal; older versions
//! stay as they were, readable only by the set they were sealed to).
//!
//! `host` is the sealing host's name as its snapshots record it (the configured
//! `hostname`, else the system's), so `--host` picks the same host's snapshots and sealed
//! versions. Version numbers count every host's versions of a name, oldest first.
//!
//! # Opening by hand
//!
//! ```text
//! age -d -i escrow-identity.txt STORE/secrets/encryption-key--01714567890123456789-0a1b2c3d-age
//! # with the passphrase instead:
//! age -d STORE/secrets/escrow-00000001-passphrase > escrow-identity.txt   # asks for it
//! age -d -i escrow-identity.txt STORE/secrets/encryption-key--...-age
//! ```
//!
//! # Paper
//!
//! [`paper`] renders a sheet to keep offline and reads a typed-in copy back, locating any
//! mistyped character by row and group.
//!
//! # Hygiene
//!
//! Values live in [`SecretString`] or [`Zeroizing`](zeroize::Zeroizing) buffers, wiped
//! when dropped; no `Debug` or `Display` of this module prints one, and no error message
//! holds one (nor a command's error output, which might). The CLI also makes the process
//! non-dumpable while it holds a secret.

pub mod paper;
pub mod source;
pub mod store;
mod yaml;

pub use secrecy::SecretString;
pub use source::{
    check_secret_name, Origin, Reading, SecretsConfig, Source, SourceConfig, BUILTIN_SOURCES,
    DEFAULT_TRAVIS_YML,
};
pub use store::{
    current_escrow, escrow_sets, find_version, find_version_on, fingerprint, init_escrow, list,
    newest, open_age, seal_changed, seal_sources, seal_value, set_escrow, set_escrow_with,
    short_fingerprint, unseal, verify, verify_on, versions, EscrowKey, EscrowSet, SealOutcome,
    SealReason, SealStatus, SealedVersion, VerifyOutcome, VerifyStatus,
};

use crate::error::Remedy;
use std::path::PathBuf;

/// Everything that can go wrong with secrets. No variant ever holds a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    #[error("secret {name}: none of these files exists: {tried} (looking for the entry `{entry}`); set `travis_yml` or [secrets.sources.{name}] in the configuration")]
    SourceAbsent {
        name: String,
        tried: String,
        entry: String,
    },

    #[error("secret {name}: the program of `{command}` is not installed here")]
    CommandAbsent { name: String, command: String },

    #[error("secret {name}: cannot read {}: {source}", file.display())]
    Read {
        name: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("secret {name}: {file} is not valid YAML: {detail} (line {line}, column {column})")]
    Yaml {
        name: String,
        file: String,
        line: usize,
        column: usize,
        detail: String,
    },

    #[error("secret {name}: {file} has no entry `{entry}`")]
    EntryMissing {
        name: String,
        file: String,
        entry: String,
    },

    #[error("secret {name}: the entry `{entry}` in {file} is empty")]
    EntryEmpty {
        name: String,
        file: String,
        entry: String,
    },

    #[error("secret {name}: the entry `{entry}` in {file} is a {found}, not a single value")]
    EntryNotValue {
        name: String,
        file: String,
        entry: String,
        found: &'static str,
    },

    #[error("secret {name}: {file} has the entry `{entry}` at {} with different values; set `entry` to the full path of the one to use", paths.join(", "))]
    EntryAmbiguous {
        name: String,
        file: String,
        entry: String,
        paths: Vec<String>,
    },

    #[error("secret {name}: command `{command}` {problem}")]
    Command {
        name: String,
        command: String,
        problem: String,
    },

    #[error("[secrets] configuration: {0}")]
    Config(String),

    /// ([`Remedy::EscrowPassphrase`] adds the passphrase choice.)
    #[error("store {0} has no escrow recipients to seal secrets to: set them with `vault secrets recipients set AGE1...`")]
    NoEscrow(String),

    #[error(
        "store {0} already has escrow recipients: change them with `vault secrets recipients set`"
    )]
    EscrowExists(String),

    #[error("escrow needs at least one age recipient (age1...) or a non-empty passphrase")]
    EmptyEscrow,

    #[error("{0} is one of the store's reader recipients; escrow recipients must be separate keys, so that the reader identity (which opens every backup) cannot open the sealed secrets: make one with `age-keygen`")]
    NotSeparate(String),

    #[error("{0:?} is not an age X25519 recipient (age1...): {1}")]
    BadRecipient(String, String),

    /// `other_hosts`: versions sealed on other hosts than the ones asked for exist
    /// ([`Remedy::ChooseSecretHost`]).
    #[error("no sealed secret {name} in store {location}{hint}: `vault secrets list` shows what is sealed")]
    NotSealed {
        name: String,
        location: String,
        hint: String,
        other_hosts: bool,
    },

    #[error("{object}: none of the given identities opens it; it is sealed to {recipients}")]
    NotARecipient { object: String, recipients: String },

    #[error("{object}: wrong escrow passphrase (or the object is damaged)")]
    WrongPassphrase { object: String },

    #[error("{object} was sealed without a passphrase; open it with the identity file of one of {recipients}")]
    NoPassphraseRecipient { object: String, recipients: String },

    #[error("escrow identity file {file}: {detail}")]
    IdentityFile { file: String, detail: String },

    #[error("corrupt {object}: {detail}")]
    Corrupt { object: String, detail: String },

    /// ([`Remedy::EscrowKey`] says how to give one.)
    #[error("{0}")]
    NeedKey(String),

    #[error(transparent)]
    Paper(#[from] paper::PaperError),

    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl SecretsError {
    /// True when the store holds damaged data.
    pub fn is_corruption(&self) -> bool {
        match self {
            SecretsError::Corrupt { .. } => true,
            SecretsError::Store(e) => e.is_corruption(),
            _ => false,
        }
    }

    /// What the user can do about this error, when the message does not say it.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            SecretsError::NoEscrow(_) => Some(Remedy::EscrowPassphrase),
            SecretsError::NotSealed {
                other_hosts: true, ..
            } => Some(Remedy::ChooseSecretHost),
            SecretsError::NeedKey(_) => Some(Remedy::EscrowKey),
            SecretsError::Store(e) => e.remedy(),
            _ => None,
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds.
pub fn format_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{secs} seconds after 1970 UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_time(1_714_567_890), "2024-05-01 12:51:30 UTC");
    }
}
