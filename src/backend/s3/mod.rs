//! A store in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, Garage).
//!
//! Location: `s3://BUCKET/PREFIX` (the prefix may be empty or have several segments). The
//! bucket must exist; vault never creates or deletes buckets.
//!
//! Layout, mirroring the local store: `PREFIX/config`, `PREFIX/keys/NAME`,
//! `PREFIX/index/NAME`, `PREFIX/snapshots/NAME`, `PREFIX/locks/NAME`, `PREFIX/secrets/NAME`
//! and `PREFIX/packs/XX/NAME` where `XX` is the name's first two hex digits.
//!
//! Durability: an object is written by one PUT, which S3 applies atomically and acknowledges
//! only once it is stored. Objects larger than `multipart_threshold` are sent as a multipart
//! upload (parts of `part_size`, up to `max_concurrency` at a time); until the upload is
//! completed nothing is visible under the key, and an upload that fails is aborted so its
//! parts do not linger.
//!
//! Memory: [`Backend::put_bytes`] (packs) sends the caller's buffer as the body of a
//! presigned PUT; `rust-s3` would first copy it (16 MiB per pack in flight). GET bodies
//! become the returned `Vec` without a copy; [`Backend::get_range_into`] hands a ranged
//! GET's body on piece by piece as it arrives, holding none of it.
//!
//! Reads: `get_range` (and `get_range_into`) is one ranged GET; a range the object does not
//! fully hold is reported as corruption. `list` pages through ListObjectsV2.
//!
//! Errors are [`Error::Remote`], classified as transient (timeouts, reset or refused
//! connections, HTTP 408/429/5xx, `SlowDown`) or permanent (bad credentials, access denied,
//! missing bucket, wrong region, clock skew). Permanent messages name the bucket, the key and
//! what to check. This backend does not retry by itself: [`open_s3`] wraps it in a
//! [`RetryBackend`](super::retry::RetryBackend) configured from [`S3Config`].
//!
//! Object Lock (a store whose config carries [`ObjectLock`], set by
//! [`Backend::set_object_lock`]): the bucket must have been created with Object Lock, which
//! also turns on versioning. Then:
//! - every `put` (except leases, `locks/*`, which are rewritten and removed all the time)
//!   sends `x-amz-object-lock-mode` and `x-amz-object-lock-retain-until-date` (now plus the
//!   policy's days) with a `Content-MD5`, on the single PUT or on the multipart upload's
//!   CreateMultipartUpload (followed by a PutObjectRetention where the server ignored them);
//! - a `put` never hides an object under a new version: it is conditional
//!   (`If-None-Match: *`); when the name exists with the same bytes it succeeds (a repeated
//!   PUT), with other bytes it fails with [`Error::RetentionLocked`] while the object is under
//!   retention (and replaces it once that has passed). `keys/*` are the exception: re-wrapping the reader identity under a new
//!   passphrase writes a new version, and the old one stays under its own retention;
//! - `delete` removes every version of the key (ListObjectVersions, then DeleteObject with
//!   each `versionId`, newest first) instead of laying a delete marker over data that
//!   would then stay stored, invisible, until removed by hand. A version still under retention is refused
//!   by S3 with `AccessDenied`; the backend reads that version's retention (HEAD) to tell
//!   this apart from a missing permission, and returns [`Error::RetentionLocked`];
//! - [`Backend::extend_retention`] reads the current retention with a HEAD (which carries
//!   the object-lock headers; moto has no GetObjectRetention) and only ever moves the date
//!   forward, with PutObjectRetention (`PUT KEY?retention` and an XML body) on the version
//!   it read, keeping the version's mode.
//! - [`Backend::create`] refuses a bucket whose object-lock configuration (`GET ?object-lock`)
//!   is not enabled.
//!
//! Settings come from the `[s3]` table of the configuration ([`S3Config`]) and, where it is
//! silent, from the usual AWS environment variables. Credentials are taken from the first of:
//! `access_key_id`/`secret_access_key` in the configuration; the configuration's
//! `credentials_file`/`profile`; `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`); the AWS credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`) with profile `AWS_PROFILE` (else `default`). vault never asks an
//! instance metadata service.

//!
//! # Files
//!
//! - [`settings`]: the `[s3]` table ([`S3Config`]), credentials and the location syntax.
//! - `client`: [`S3Backend`], the [`Backend`](super::Backend) implementation over `rust-s3`:
//!   keys, single and multipart PUTs, ranged GETs, listing.
//! - `object_lock`: retention headers, write-once PUTs, version listing and deletion.
//! - `xml`: the XML bodies S3 answers with (errors, version listings, lock configuration)
//!   and the retention body it is sent, read and written with `quick-xml`'s serde support.
//! - `errors`: classification of failed requests into transient and permanent
//!   [`Error::Remote`], with messages that name the bucket, the key and what to check.

mod client;
mod errors;
mod object_lock;
pub mod settings;
#[cfg(test)]
mod tests;
mod xml;

pub use object_lock::{format_until, Retention};
pub use settings::{parse_location, S3Config, S3Credentials};

use super::retry::{RetryBackend, RetryPolicy};
use super::{check_name, missing, Backend, BackendRef, Kind, LockMode, ObjectInfo, ObjectLock};
use crate::error::{Error, Result};
use errors::{classify, Ctx};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};
use serde::Deserialize;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

const MIB: u64 = 1 << 20;
/// S3's smallest allowed part (except the last one).
const MIN_PART_SIZE: u64 = 5 * MIB;
const MAX_PARTS: u64 = 10_000;
/// Above the largest pack (16 MiB `pack_size` plus one 1 MiB chunk and the trailer): one
/// PUT per pack is one request per pack-sized amount of new data, where a multipart upload
/// would take four (initiate, two parts, complete).
const DEFAULT_MULTIPART_THRESHOLD: u64 = 32 * MIB;
const CONTENT_TYPE: &str = "application/octet-stream";

/// Opens an S3 store with retries as `cfg` asks (the backend `backend::open` returns for
/// `s3://` locations).
pub fn open_s3(location: &str, cfg: &S3Config) -> Result<BackendRef> {
    let backend = S3Backend::new(location, cfg)?;
    Ok(Arc::new(RetryBackend::new(backend, cfg.retry_policy())))
}

pub struct S3Backend {
    bucket: Arc<Bucket>,
    bucket_name: String,
    prefix: String,
    endpoint: String,
    region: String,
    credentials_source: String,
    multipart_threshold: u64,
    part_size: u64,
    max_concurrency: usize,
    timeout: Duration,
    store_seen: AtomicBool,
    /// The store's retention for new objects (from its config), see the module docs.
    object_lock: RwLock<Option<ObjectLock>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Sends the PUTs whose body is handed over ([`Backend::put_bytes`]) to a presigned
    /// URL, so the body is sent from the caller's buffer instead of the copy `rust-s3`
    /// makes of every request body.
    http: reqwest::Client,
}
