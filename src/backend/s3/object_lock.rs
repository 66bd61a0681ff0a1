//! Object Lock: retention on every PUT, write-once PUTs, every version deleted, retention
//! extended; see the parent module's docs.

use super::xml::{self, VersionEntry, VersionMarkers};
use super::*;
use crate::error::Remedy;

/// The Object Lock state of one object version, as S3 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: Option<LockMode>,
    pub until: Option<SystemTime>,
    pub legal_hold: bool,
}

impl Retention {
    pub(super) fn from_head(h: &s3::serde_types::HeadObjectResult) -> Retention {
        Retention {
            mode: h.object_lock_mode.as_deref().and_then(parse_mode),
            until: h
                .object_lock_retain_until_date
                .as_deref()
                .and_then(parse_until),
            legal_hold: h
                .object_lock_legal_hold_status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("ON")),
        }
    }

    /// True while S3 refuses to delete this version.
    pub fn locked_at(&self, now: SystemTime) -> bool {
        self.legal_hold || (self.mode.is_some() && self.until.is_some_and(|u| u > now))
    }
}

pub(super) fn parse_mode(text: &str) -> Option<LockMode> {
    match text.to_ascii_uppercase().as_str() {
        "GOVERNANCE" => Some(LockMode::Governance),
        "COMPLIANCE" => Some(LockMode::Compliance),
        _ => None,
    }
}

pub(super) fn mode_text(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    }
}

/// `2030-01-02T03:04:05Z`: ISO 8601 in UTC, whole seconds, rounded up (a retention is never
/// made shorter than asked).
pub fn format_until(t: SystemTime) -> String {
    let mut t = t;
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    if since.subsec_nanos() != 0 {
        t += Duration::from_nanos(u64::from(1_000_000_000 - since.subsec_nanos()));
    }
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn parse_until(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(SystemTime::from)
}

/// Wording with which S3 explains a refusal caused by Object Lock.
pub(super) fn mentions_object_lock(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("object lock") || b.contains("objectlock") || b.contains("retention")
}

impl S3Backend {
    /// [`Backend::extend_retention`]: reads the current retention with a HEAD and only
    /// ever moves the date forward, on the version it read, keeping the version's mode.
    pub(super) fn extend_version_retention(
        &self,
        kind: Kind,
        name: &str,
        until: SystemTime,
    ) -> Result<()> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        let head = self.head(&key, None)?.ok_or_else(|| missing(kind, name))?;
        let current = Retention::from_head(&head);
        let until_text = format_until(until);
        let wanted = parse_until(&until_text).unwrap_or(until);
        if current.until.is_some_and(|u| u >= wanted) {
            return Ok(()); // Never shorten: it already lasts at least that long.
        }
        // A version keeps its mode (compliance cannot become governance); one without
        // retention gets the store's.
        let mode = current
            .mode
            .or_else(|| self.object_lock().map(|l| l.mode))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: cannot extend the retention of {kind_name}/{name}: the store has no object lock",
                    self.location(),
                    kind_name = kind.label()
                ))
            })?;
        let body = xml::retention_body(mode_text(mode), &until_text);
        let mut query = vec![("retention", "")];
        if let Some(v) = head.version_id.as_deref().filter(|v| *v != "null") {
            query.push(("versionId", v));
        }
        let bucket = self.bucket_with(&[], &query);
        self.block_on(async {
            bucket
                .put_object_with_content_type(&key, body.as_bytes(), "application/xml")
                .await
                .map(|_| ())
        })
        .map_err(|e| self.fail_locked("extend the retention of", &key, e))
    }

    pub(super) fn object_lock(&self) -> Option<ObjectLock> {
        self.object_lock
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The Object Lock state of an object's current version; `None` when it does not exist.
    pub fn retention(&self, kind: Kind, name: &str) -> Result<Option<Retention>> {
        check_name(kind, name)?;
        Ok(self
            .head(&self.key(kind, name), None)?
            .map(|h| Retention::from_head(&h)))
    }

    /// As [`S3Backend::fail`], for requests that carry or touch object-lock settings.
    pub(super) fn fail_locked(&self, op: &str, key: &str, err: S3Error) -> Error {
        if let S3Error::HttpFailWithBody(status, body) = &err {
            let answer = xml::error_body(body);
            let code = answer.code.as_str();
            let detail = answer.message.to_ascii_lowercase();
            if (*status == 400 || code == "InvalidRequest")
                && (detail.contains("objectlockconfiguration")
                    || detail.contains("object lock configuration"))
            {
                return Error::Usage(format!(
                    "{op} {}: {}",
                    self.url(key),
                    self.not_lock_enabled()
                ))
                .with_remedy(Remedy::LockEnabledBucket);
            }
            if *status == 409 && code == "ConditionalRequestConflict" {
                return Error::Remote {
                    message: format!(
                        "{op} {}: a concurrent write of the same object (HTTP 409)",
                        self.url(key)
                    ),
                    transient: true,
                };
            }
        }
        self.fail(op, key, err)
    }

    /// What is wrong when the bucket lacks Object Lock ([`Remedy::LockEnabledBucket`] says
    /// what to do).
    fn not_lock_enabled(&self) -> String {
        format!(
            "bucket {:?} was not created with object lock enabled, but this store asks for object lock",
            self.bucket_name
        )
    }

    fn bucket_not_lock_enabled(&self) -> Error {
        Error::Usage(self.not_lock_enabled()).with_remedy(Remedy::LockEnabledBucket)
    }

    /// Fails unless the bucket has Object Lock enabled.
    pub(super) fn check_bucket_lock(&self) -> Result<()> {
        let bucket = self.bucket_with(&[], &[("object-lock", "")]);
        let answer = self.block_on(async { bucket.get_object("/").await.map(|r| r.to_vec()) });
        match answer {
            Ok(body) => {
                let body = String::from_utf8_lossy(&body);
                if xml::object_lock_enabled(&body) {
                    Ok(())
                } else {
                    Err(self.bucket_not_lock_enabled())
                }
            }
            Err(S3Error::HttpFailWithBody(404, body))
                if body.contains("ObjectLockConfigurationNotFound") =>
            {
                Err(self.bucket_not_lock_enabled())
            }
            Err(S3Error::HttpFailWithBody(status, body))
                if status == 501 || body.contains("NotImplemented") =>
            {
                Err(Error::Usage(format!(
                    "the S3 server at {} does not support Object Lock (HTTP {status})",
                    self.endpoint
                ))
                .with_remedy(Remedy::StoreWithoutObjectLock))
            }
            Err(e) => Err(self.fail("read the object lock configuration of bucket", "", e)),
        }
    }

    /// `put` on a store with object lock; see the module docs.
    pub(super) fn put_locked(
        &self,
        kind: Kind,
        name: &str,
        key: &str,
        data: &[u8],
        lock: &ObjectLock,
    ) -> Result<()> {
        let until = SystemTime::now() + Duration::from_secs(u64::from(lock.days) * 86_400);
        let until = format_until(until);
        let headers = [
            ("x-amz-object-lock-mode", mode_text(lock.mode)),
            ("x-amz-object-lock-retain-until-date", until.as_str()),
        ];
        // Keys may be re-wrapped (a new passphrase); everything else is written once.
        let write_once = kind != Kind::Keys;
        if data.len() as u64 > self.multipart_threshold {
            if write_once && self.head(key, None)?.is_some() {
                return self.settle_existing(kind, name, key, data, &headers);
            }
            return self.put_multipart_locked(kind, name, key, data, &headers, write_once);
        }
        let mut conditional = headers.to_vec();
        if write_once {
            conditional.push(("if-none-match", "*"));
        }
        let bucket = self.bucket_with(&conditional, &[]);
        let sent = self.block_on(async {
            bucket
                .put_object_with_content_type(key, data, CONTENT_TYPE)
                .await
                .map(|_| ())
        });
        match sent {
            Ok(()) => Ok(()),
            Err(S3Error::HttpFailWithBody(412, _)) => {
                self.settle_existing(kind, name, key, data, &headers)
            }
            Err(e) => Err(self.fail_locked("put", key, e)),
        }
    }

    /// A multipart upload whose CreateMultipartUpload carries the object-lock `headers`
    /// (and whose completion `If-None-Match: *` when `write_once`); the retention is then
    /// made sure of with PutObjectRetention (a HEAD where the server honoured the headers;
    /// moto ignores them).
    pub(super) fn put_multipart_locked(
        &self,
        kind: Kind,
        name: &str,
        key: &str,
        data: &[u8],
        headers: &[(&str, &str)],
        write_once: bool,
    ) -> Result<()> {
        let start = self.bucket_with(headers, &[]);
        let complete = self.bucket_with(
            if write_once {
                &[("if-none-match", "*")]
            } else {
                &[]
            },
            &[],
        );
        self.block_on(self.put_multipart(key, data, Some(&start), Some(&complete)))?;
        let until = headers
            .iter()
            .find(|(h, _)| *h == "x-amz-object-lock-retain-until-date")
            .and_then(|(_, v)| parse_until(v));
        match until {
            Some(until) => self.extend_retention(kind, name, until),
            None => Ok(()),
        }
    }

    /// A write-once `put` found the name taken: the same bytes are success (a repeated
    /// PUT), other bytes under retention are refused, other bytes past it are replaced.
    pub(super) fn settle_existing(
        &self,
        kind: Kind,
        name: &str,
        key: &str,
        data: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<()> {
        if let Some(head) = self.head(key, None)? {
            let same_size = head.content_length.is_some_and(|n| n == data.len() as i64);
            if same_size {
                let stored =
                    self.block_on(async { self.bucket.get_object(key).await.map(|r| r.to_vec()) });
                match stored {
                    Ok(bytes) if bytes == data => return Ok(()),
                    Ok(_) => {}
                    Err(e) if Self::is_not_found(&e) => {}
                    Err(e) => return Err(self.fail("get", key, e)),
                }
            }
            if Retention::from_head(&head).locked_at(SystemTime::now()) {
                return Err(Error::RetentionLocked(format!(
                    "{}/{name} ({})",
                    kind.label(),
                    self.url(key)
                )));
            }
        }
        if data.len() as u64 > self.multipart_threshold {
            return self.put_multipart_locked(kind, name, key, data, headers, false);
        }
        let bucket = self.bucket_with(headers, &[]);
        self.block_on(async {
            bucket
                .put_object_with_content_type(key, data, CONTENT_TYPE)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.fail_locked("put", key, e))
    }

    /// Every version (and delete marker) of exactly `key`, newest first, as
    /// `(version id, is a delete marker)`.
    pub(super) fn versions(&self, key: &str) -> Result<Vec<VersionEntry>> {
        let mut out = Vec::new();
        let mut markers: Option<VersionMarkers> = None;
        loop {
            let mut query = vec![("versions", ""), ("prefix", key)];
            if let Some((k, v)) = &markers {
                query.push(("key-marker", k));
                query.push(("version-id-marker", v));
            }
            let bucket = self.bucket_with(&[], &query);
            let body = self
                .block_on(async { bucket.get_object("/").await.map(|r| r.to_vec()) })
                .map_err(|e| self.fail("list the versions of", key, e))?;
            let (found, next) =
                xml::parse_versions(&String::from_utf8_lossy(&body), key).map_err(|e| {
                    Error::Remote {
                        message: format!(
                            "list the versions of {}: the answer is not a version listing ({e})",
                            self.url(key)
                        ),
                        transient: true,
                    }
                })?;
            out.extend(found);
            match next {
                Some(n) if Some(&n) != markers.as_ref() => markers = Some(n),
                _ => break,
            }
        }
        Ok(out)
    }

    /// `delete` on a store with object lock: every version goes, newest first; the first
    /// one under retention stops it with [`Error::RetentionLocked`].
    pub(super) fn delete_versions(&self, kind: Kind, name: &str, key: &str) -> Result<()> {
        for (version, marker) in self.versions(key)? {
            let bucket = self.bucket_with(&[], &[("versionId", &version)]);
            let answer = self.block_on(async { bucket.delete_object(key).await.map(|_| ()) });
            let err = match answer {
                Ok(()) => continue,
                Err(e) if Self::is_not_found(&e) => continue,
                Err(e) => e,
            };
            if let (S3Error::HttpFailWithBody(403, body), false) = (&err, marker) {
                let locked = mentions_object_lock(body)
                    || self
                        .head(key, Some(&version))
                        .ok()
                        .flatten()
                        .is_some_and(|h| Retention::from_head(&h).locked_at(SystemTime::now()));
                if locked {
                    return Err(Error::RetentionLocked(format!(
                        "{}/{name} ({})",
                        kind.label(),
                        self.url(key)
                    )));
                }
            }
            return Err(self.fail("delete", key, err));
        }
        Ok(())
    }
}
