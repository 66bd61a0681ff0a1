//! What a snapshot record holds ([`Snapshot`], its [`Summary`] and the
//! [`DatabaseCapture`]s it saved) and its CBOR form.

use crate::id::Id;
use serde::{Deserialize, Serialize};

/// One snapshot record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// RFC 3339 with the local offset of the host that took it.
    pub time: String,
    pub hostname: String,
    pub username: String,
    /// The absolute source paths, as raw bytes.
    pub paths: Vec<serde_bytes::ByteBuf>,
    pub tags: Vec<String>,
    /// Root tree: the source paths hang below it under their full path.
    pub tree: Id,
    pub summary: Summary,
    pub program: String,
    /// Database clusters this snapshot saved consistently (online base backups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseCapture>,
}

/// A database cluster saved as an online base backup: restored, it replays its WAL from
/// `start_lsn` to at least `stop_lsn` and is then consistent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCapture {
    /// `postgresql`.
    pub kind: String,
    /// The cluster's data directory (absolute, as saved).
    pub data_dir: String,
    /// `server_version` as the server reported it.
    pub server_version: String,
    pub start_lsn: String,
    pub stop_lsn: String,
    /// Number of WAL segments added under `pg_wal/`.
    pub wal_segments: u32,
}

impl DatabaseCapture {
    /// One line for listings.
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {}: consistent online capture, WAL {} to {} ({} segment{})",
            self.kind,
            self.server_version,
            self.data_dir,
            self.start_lsn,
            self.stop_lsn,
            self.wal_segments,
            if self.wal_segments == 1 { "" } else { "s" }
        )
    }
}

impl Snapshot {
    pub fn paths_display(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| crate::tree::display_name(p))
            .collect()
    }

    pub fn time(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        chrono::DateTime::parse_from_rfc3339(&self.time).ok()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// Apparent size of all files.
    pub bytes: u64,
    /// Bytes of data read from files (changed or new files).
    pub bytes_read: u64,
    /// Plaintext bytes of file content this snapshot added to the store: the part of
    /// `bytes_read` the store did not hold yet (so never more than `bytes_read`).
    pub new_bytes: u64,
    /// Plaintext bytes of metadata (folder listings) this snapshot added to the store.
    /// Absent from snapshots of earlier releases, whose `new_bytes` included it, and left
    /// out when 0 (so a record without new metadata encodes as before).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub new_meta_bytes: u64,
    /// Bytes of packs this snapshot wrote.
    pub stored_bytes: u64,
    pub packs: u64,
    /// Source entries that could not be read.
    pub errors: u64,
    pub duration_ms: u64,
}

/// Parses a snapshot record's plaintext (CBOR).
pub fn decode_snapshot(plain: &[u8]) -> std::result::Result<Snapshot, String> {
    ciborium::from_reader(plain).map_err(|e| format!("does not parse: {e}"))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
