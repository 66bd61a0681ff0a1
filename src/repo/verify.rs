//! Opening snapshot records and judging them: who signed a record ([`Signer`]), whether
//! its binding and signature hold and whether its time lies in the future
//! ([`Verification`]). Only a record that cannot be opened at all is an error; one that
//! does not verify opens with the reason.

use super::records::{SignedRecord, SNAPSHOT_LABEL, SNAPSHOT_LABEL_V2};
use super::{decode_snapshot, Repo, Snapshot};
use crate::backend::Kind;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::sign;

/// A snapshot time further ahead of this host's clock than this is flagged.
pub const FUTURE_SKEW_SECS: i64 = 300;

/// Who signed a snapshot record, as far as this host can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A key the admin authorised for the host the record names.
    Host { name: String, revoked: bool },
    /// The admin (records re-bound by `vault upgrade`).
    Admin,
    /// A version-1 store: records carry no signatures.
    Legacy,
    /// The record does not verify; why.
    Unverified(String),
}

/// The verdict on one snapshot record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub signer: Signer,
    /// Set when the record's time lies in the future beyond [`FUTURE_SKEW_SECS`].
    pub future: Option<String>,
}

impl Verification {
    /// Signed by an authorised host of its name, the admin, or from an unsigned store.
    pub fn is_trusted(&self) -> bool {
        !matches!(self.signer, Signer::Unverified(_))
    }

    /// What `latest` may pick.
    pub fn fit_for_latest(&self) -> bool {
        self.is_trusted() && self.future.is_none()
    }

    /// Problems to flag, empty when there are none.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Signer::Unverified(why) = &self.signer {
            out.push(why.clone());
        }
        if let Some(f) = &self.future {
            out.push(f.clone());
        }
        out
    }

    /// A short word for listings: `verified`, `revoked-host`, `admin`, `unsigned`, `FORGED?`...
    pub fn label(&self) -> &'static str {
        match &self.signer {
            Signer::Host { revoked: false, .. } if self.future.is_none() => "verified",
            Signer::Host { revoked: true, .. } if self.future.is_none() => {
                "verified (host revoked)"
            }
            Signer::Admin if self.future.is_none() => "verified (admin)",
            Signer::Legacy if self.future.is_none() => "unsigned store",
            Signer::Unverified(_) => "UNVERIFIED",
            _ => "FUTURE TIME",
        }
    }
}

impl Repo {
    /// A snapshot record and whether it verifies. Errors only when the record cannot be
    /// opened at all (damaged, or sealed by another store's keys).
    pub fn load_snapshot_checked(
        &self,
        keys: &WriterKeys,
        id: &Id,
    ) -> Result<(Snapshot, Verification)> {
        let what = format!("snapshot {}", id.short());
        let name = id.to_hex();
        let sealed = self.backend.get(Kind::Snapshots, &name)?;
        let parse = |plain: &[u8]| -> Result<Snapshot> {
            decode_snapshot(plain).map_err(|e| Error::corrupt(&what, e))
        };
        let (snapshot, signer) = match keys.open_meta(SNAPSHOT_LABEL_V2, &sealed, &what) {
            Ok(plain) => {
                let record: SignedRecord = ciborium::from_reader(&plain[..])
                    .map_err(|e| Error::corrupt(&what, format!("does not parse: {e}")))?;
                let snapshot = parse(&record.body)?;
                let signer = self.verify_record(&record, &name, &snapshot);
                (snapshot, signer)
            }
            Err(e) => {
                let plain = keys
                    .open_meta(SNAPSHOT_LABEL, &sealed, &what)
                    .map_err(|_| e)?;
                let snapshot = parse(&plain)?;
                let signer = if self.is_legacy() {
                    Signer::Legacy
                } else {
                    Signer::Unverified(
                        "unsigned record of the first store format, written after the store was upgraded \
                         (by an old vault, or by someone posing as a host)"
                            .into(),
                    )
                };
                (snapshot, signer)
            }
        };
        let future = snapshot.time().and_then(|t| {
            let ahead = t.timestamp() - chrono::Utc::now().timestamp();
            (ahead > FUTURE_SKEW_SECS).then(|| {
                format!(
                    "its time {} lies {} ahead of this host's clock",
                    snapshot.time,
                    ahead_text(ahead)
                )
            })
        });
        Ok((snapshot, Verification { signer, future }))
    }

    fn verify_record(&self, record: &SignedRecord, name: &str, snapshot: &Snapshot) -> Signer {
        let store_id = &self.config.store_id;
        if &record.store_id != store_id {
            return Signer::Unverified(format!(
                "bound to store {}, not this store ({store_id}): copied from another store",
                record.store_id
            ));
        }
        if record.name != name {
            return Signer::Unverified(format!(
                "bound to snapshots/{}, but stored as snapshots/{name}: copied or renamed",
                record.name
            ));
        }
        let (Ok(key), Ok(sig)) = (
            <[u8; 32]>::try_from(&record.key[..]),
            <[u8; 64]>::try_from(&record.sig[..]),
        ) else {
            return Signer::Unverified("malformed signature".into());
        };
        let message = sign::message("snapshot", store_id, "snapshots", name, &record.body);
        if !sign::verify(&key, &message, &sig) {
            return Signer::Unverified(
                "its signature does not verify: the record was altered".into(),
            );
        }
        if self.is_legacy() {
            return Signer::Legacy;
        }
        let (Some(admin), Some(registry)) = (&self.trust.admin, &self.trust.registry) else {
            return Signer::Unverified(
                "the store's admin key is not known to this host, so signatures cannot be checked"
                    .into(),
            );
        };
        match record.signer.as_str() {
            "admin" if &key == admin => Signer::Admin,
            "host" => match registry.by_key(&key) {
                None => Signer::Unverified(format!(
                    "signed by a key the admin never authorised for host {:?}",
                    snapshot.hostname
                )),
                Some(entry) if entry.name != snapshot.hostname => Signer::Unverified(format!(
                    "recorded as host {:?} but signed by the key of host {:?}",
                    snapshot.hostname, entry.name
                )),
                Some(entry) => {
                    let revoked_before = entry
                        .revoked
                        .as_deref()
                        .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok())
                        .zip(snapshot.time())
                        .is_some_and(|(r, t)| t > r);
                    if revoked_before {
                        Signer::Unverified(format!(
                            "host {:?} was revoked before the time this record claims",
                            entry.name
                        ))
                    } else {
                        Signer::Host {
                            name: entry.name.clone(),
                            revoked: entry.revoked.is_some(),
                        }
                    }
                }
            },
            other => Signer::Unverified(format!(
                "claims signer {other:?} with a key that is not the admin's"
            )),
        }
    }
}

fn ahead_text(secs: i64) -> String {
    match secs {
        s if s >= 2 * 86400 => format!("{} days", s / 86400),
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} minutes", s / 60),
    }
}
