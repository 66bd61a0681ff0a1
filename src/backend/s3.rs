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
//! Reads: `get_range` is one ranged GET; a range the object does not fully hold is reported
//! as corruption. `list` pages through ListObjectsV2.
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

use super::retry::{RetryBackend, RetryPolicy};
use super::{check_name, missing, Backend, BackendRef, Kind, LockMode, ObjectInfo, ObjectLock};
use crate::error::{Error, Result};
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

/// The `[s3]` table of the configuration. Every field is optional.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `https://minio.example:9000` (default: `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, else AWS itself).
    pub endpoint: Option<String>,
    /// Region name (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`). Garage
    /// expects its `s3_region` (usually `garage`).
    pub region: Option<String>,
    /// Path-style requests (`https://host/bucket/key`) instead of virtual-host style
    /// (`https://bucket.host/key`). Default: true with a custom endpoint, false for AWS.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// AWS-style credentials file (ini with `aws_access_key_id`, `aws_secret_access_key`,
    /// optional `aws_session_token`).
    pub credentials_file: Option<PathBuf>,
    /// Profile in the credentials file (default: `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Parts of one multipart upload sent at a time (default 4).
    pub max_concurrency: Option<usize>,
    /// Objects larger than this many bytes use multipart upload (default 32 MiB, so a pack,
    /// closed at 16 MiB plus at most one chunk and its trailer, goes up in one PUT).
    pub multipart_threshold: Option<u64>,
    /// Bytes per multipart part (default 8 MiB, at least 5 MiB).
    pub part_size: Option<u64>,
    /// Seconds one request may take before it is abandoned and retried (default 120).
    pub timeout_secs: Option<u64>,
    /// Attempts per operation, the first included (default 8).
    pub max_attempts: Option<u32>,
    /// Seconds after which no new attempt of an operation starts (default 120).
    pub max_retry_secs: Option<u64>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("credentials_file", &self.credentials_file)
            .field("profile", &self.profile)
            .field("max_concurrency", &self.max_concurrency)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_attempts", &self.max_attempts)
            .field("max_retry_secs", &self.max_retry_secs)
            .finish()
    }
}

/// Access key, secret and optional session token. `Debug` never shows the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they came from, for messages ("configuration", "environment", a file).
    pub source: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("source", &self.source)
            .finish()
    }
}

impl S3Config {
    /// The retry policy these settings ask for.
    pub fn retry_policy(&self) -> RetryPolicy {
        let mut p = RetryPolicy::default();
        if let Some(n) = self.max_attempts {
            p.max_attempts = n.max(1);
        }
        if let Some(s) = self.max_retry_secs {
            p.max_elapsed = Duration::from_secs(s);
        }
        p
    }

    /// Finds the credentials (see the module docs for the order), reading the process
    /// environment.
    pub fn credentials(&self) -> Result<S3Credentials> {
        self.credentials_from(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// As [`S3Config::credentials`], with `env` standing in for the environment.
    pub fn credentials_from(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Credentials> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                return Ok(S3Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: self.session_token.clone(),
                    source: "the configuration ([s3] access_key_id)".into(),
                })
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Usage(
                    "[s3] access_key_id and secret_access_key must be set together".into(),
                ))
            }
            (None, None) => {}
        }
        if self.credentials_file.is_some() || self.profile.is_some() {
            let file = self
                .credentials_file
                .clone()
                .or_else(|| env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
                .unwrap_or_else(|| default_credentials_file(env));
            let profile = self
                .profile
                .clone()
                .or_else(|| env("AWS_PROFILE"))
                .unwrap_or_else(|| "default".into());
            return read_credentials_file(&file, &profile, true)?.ok_or_else(|| {
                Error::Usage(format!("credentials file {} not found", file.display()))
            });
        }
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok(S3Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
                source: "the environment (AWS_ACCESS_KEY_ID)".into(),
            });
        }
        let (file, explicit) = match env("AWS_SHARED_CREDENTIALS_FILE") {
            Some(f) => (PathBuf::from(f), true),
            None => (default_credentials_file(env), false),
        };
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        if let Some(c) = read_credentials_file(&file, &profile, explicit)? {
            return Ok(c);
        }
        Err(Error::Usage(format!(
            "no S3 credentials: set access_key_id and secret_access_key (or credentials_file) \
             in the [s3] table of the configuration, or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY in the environment, or write profile [{profile}] to {}",
            file.display()
        )))
    }

    fn endpoint_from(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .map(|e| e.trim_end_matches('/').to_string())
    }

    fn region_from(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        self.region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into())
    }
}

fn default_credentials_file(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".aws/credentials")
}

/// Reads one profile of an AWS credentials file. `Ok(None)` when the file does not exist
/// and `required` is false.
fn read_credentials_file(
    path: &Path,
    profile: &str,
    required: bool,
) -> Result<Option<S3Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => {
            return Err(Error::io(
                format!("read S3 credentials file {}", path.display()),
                e,
            ))
        }
    };
    let mut section = String::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            section = name
                .strip_prefix("profile ")
                .unwrap_or(name)
                .trim()
                .to_string();
            continue;
        }
        if section != profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" | "aws_security_token" => token = Some(v),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(S3Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
            source: format!("profile [{profile}] of {}", path.display()),
        })),
        _ => Err(Error::Usage(format!(
            "S3 credentials file {} has no profile [{profile}] with aws_access_key_id and \
             aws_secret_access_key",
            path.display()
        ))),
    }
}

/// Splits `s3://BUCKET/PREFIX` into the bucket and the prefix (without outer slashes).
pub fn parse_location(location: &str) -> Result<(String, String)> {
    let rest = location.strip_prefix("s3://").ok_or_else(|| {
        Error::Usage(format!(
            "{location}: an S3 store location looks like s3://BUCKET/PREFIX"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if !bucket_ok {
        return Err(Error::Usage(format!(
            "{location}: {bucket:?} is not a valid bucket name (3 to 63 lowercase letters, \
             digits, dots and hyphens)"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|seg| seg == "." || seg == "..")
        || prefix.contains("//")
        || prefix.chars().any(|c| c.is_control())
    {
        return Err(Error::Usage(format!(
            "{location}: the prefix must not contain empty, `.` or `..` segments"
        )));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

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
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location())
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl S3Backend {
    /// Connects lazily: nothing is sent until the first operation.
    pub fn new(location: &str, cfg: &S3Config) -> Result<S3Backend> {
        Self::new_with_env(location, cfg, &|k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// As [`S3Backend::new`], with `env` standing in for the environment.
    pub fn new_with_env(
        location: &str,
        cfg: &S3Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Backend> {
        let (bucket_name, prefix) = parse_location(location)?;
        let creds = cfg.credentials_from(env)?;
        let region_name = cfg.region_from(env);
        let custom = cfg.endpoint_from(env);
        let endpoint = match &custom {
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => e.clone(),
            Some(e) => {
                return Err(Error::Usage(format!(
                    "S3 endpoint {e:?} must start with http:// or https://"
                )))
            }
            None => format!("https://s3.{region_name}.amazonaws.com"),
        };
        let path_style = cfg.path_style.unwrap_or(custom.is_some());
        let part_size = cfg.part_size.unwrap_or(8 * MIB).max(MIN_PART_SIZE);
        let multipart_threshold = cfg
            .multipart_threshold
            .unwrap_or(DEFAULT_MULTIPART_THRESHOLD)
            .max(part_size);
        let max_concurrency = cfg.max_concurrency.unwrap_or(4).clamp(1, 64);
        let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(120).max(1));

        let region = Region::Custom {
            region: region_name.clone(),
            endpoint: endpoint.clone(),
        };
        let credentials = Credentials::new(
            Some(&creds.access_key_id),
            Some(&creds.secret_access_key),
            None,
            creds.session_token.as_deref(),
            None,
        )
        .map_err(|e| Error::Usage(format!("S3 credentials from {}: {e}", creds.source)))?;
        let setup = |e: S3Error| Error::Usage(format!("S3 client for {location}: {e}"));
        let mut bucket = Bucket::new(&bucket_name, region, credentials).map_err(setup)?;
        if path_style {
            bucket = bucket.with_path_style();
        }
        let bucket = bucket.with_request_timeout(timeout).map_err(setup)?;
        // Retrying is RetryBackend's job: one policy, one place, visible timing.
        s3::set_retries(0);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vault-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the S3 client runtime", e))?;

        Ok(S3Backend {
            bucket: Arc::new(*bucket),
            bucket_name,
            prefix,
            endpoint,
            region: region_name,
            credentials_source: creds.source,
            multipart_threshold,
            part_size,
            max_concurrency,
            timeout,
            store_seen: AtomicBool::new(false),
            object_lock: RwLock::new(None),
            runtime: Some(runtime),
        })
    }

    pub fn bucket_name(&self) -> &str {
        &self.bucket_name
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The object key of (kind, name).
    pub fn key(&self, kind: Kind, name: &str) -> String {
        let rel = match kind {
            Kind::Config => "config".to_string(),
            Kind::Packs => format!("packs/{}/{name}", &name[..2.min(name.len())]),
            other => format!("{}/{name}", other.dir()),
        };
        self.under_prefix(&rel)
    }

    fn under_prefix(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// Runs a future to completion on this backend's runtime, from any thread (also from
    /// inside another tokio runtime, where blocking on it directly is not allowed).
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let rt = self.runtime.as_ref().expect("runtime lives until drop");
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            rt.block_on(fut)
        }
    }

    /// Turns a client error into a classified [`Error::Remote`] naming the request.
    fn fail(&self, op: &str, key: &str, err: S3Error) -> Error {
        classify(
            &Ctx {
                op,
                bucket: &self.bucket_name,
                key,
                endpoint: &self.endpoint,
                region: &self.region,
                credentials_source: &self.credentials_source,
                timeout: self.timeout,
            },
            err,
        )
    }

    fn is_not_found(err: &S3Error) -> bool {
        matches!(err, S3Error::HttpFailWithBody(404, body) if !body.contains("NoSuchBucket"))
    }

    fn ensure_store(&self) -> Result<()> {
        if self.store_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        // A store exists once it has a config, or keys written by an `init` that has not
        // written its config yet (it writes the config last).
        let keys = self.under_prefix("keys/");
        let found = self.exists(Kind::Config, "config")?
            || self.block_on(async {
                self.bucket
                    .list_page(keys.clone(), None, None, None, Some(1))
                    .await
                    .map(|(page, _)| !page.contents.is_empty())
                    .map_err(|e| self.fail("list", &keys, e))
            })?;
        if found {
            self.store_seen.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err(Error::StoreNotFound(self.location()))
        }
    }

    /// `start` makes the CreateMultipartUpload request (with object-lock headers, say) and
    /// `complete` the CompleteMultipartUpload (with `If-None-Match`, say); parts go through
    /// the plain client.
    async fn put_multipart(
        &self,
        key: &str,
        data: &[u8],
        start: Option<&Bucket>,
        complete: Option<&Bucket>,
    ) -> Result<()> {
        let init = start
            .unwrap_or(&self.bucket)
            .initiate_multipart_upload(key, CONTENT_TYPE)
            .await
            .map_err(|e| self.fail("start multipart upload of", key, e))?;
        let upload_id = init.upload_id;
        let result = self
            .upload_parts(key, &upload_id, data, complete.unwrap_or(&self.bucket))
            .await;
        if result.is_err() {
            // Best effort: an unfinished upload is invisible anyway, this frees its parts.
            let _ = self.bucket.abort_upload(key, &upload_id).await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: &[u8],
        complete: &Bucket,
    ) -> Result<()> {
        let part_size = self
            .part_size
            .max((data.len() as u64).div_ceil(MAX_PARTS))
            .max(1) as usize;
        let chunks: Vec<&[u8]> = data.chunks(part_size).collect();
        let mut parts = Vec::with_capacity(chunks.len());
        let mut tasks = tokio::task::JoinSet::new();
        let mut next = 0usize;
        loop {
            while next < chunks.len() && tasks.len() < self.max_concurrency {
                let bucket = self.bucket.clone();
                let chunk = chunks[next].to_vec();
                let (key, upload_id) = (key.to_string(), upload_id.to_string());
                let number = next as u32 + 1;
                tasks.spawn(async move {
                    bucket
                        .put_multipart_chunk(chunk, &key, number, &upload_id, CONTENT_TYPE)
                        .await
                        .map_err(|e| (number, e))
                });
                next += 1;
            }
            match tasks.join_next().await {
                None => break,
                Some(Ok(Ok(part))) => parts.push(part),
                Some(Ok(Err((number, e)))) => {
                    return Err(self.fail(&format!("upload part {number} of"), key, e))
                }
                Some(Err(join)) => {
                    return Err(Error::Remote {
                        message: format!("upload of {}: a part task failed: {join}", self.url(key)),
                        transient: true,
                    })
                }
            }
        }
        parts.sort_by_key(|p| p.part_number);
        complete
            .complete_multipart_upload(key, upload_id, parts)
            .await
            .map_err(|e| self.fail("complete multipart upload of", key, e))?;
        Ok(())
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket_name)
    }

    fn too_short(&self, kind: Kind, name: &str, size: Option<u64>, offset: u64, len: u64) -> Error {
        let size = size
            .map(|s| format!("{s} bytes"))
            .unwrap_or_else(|| "shorter".into());
        Error::corrupt(
            format!("{}/{name}", kind.label()),
            format!(
                "object {} is {size}, shorter than the range {offset}+{len} the index names (truncated?)",
                self.url(&self.key(kind, name))
            ),
        )
    }

    fn head_size(&self, key: &str) -> Result<Option<u64>> {
        self.block_on(async {
            match self.bucket.head_object(key).await {
                Ok((head, _)) => Ok(Some(head.content_length.unwrap_or(0).max(0) as u64)),
                Err(e) if Self::is_not_found(&e) => Ok(None),
                Err(e) => Err(self.fail("check", key, e)),
            }
        })
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime panics; this never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket_name)
        } else {
            format!("s3://{}/{}", self.bucket_name, self.prefix)
        }
    }

    fn create(&self) -> Result<()> {
        // One listing proves the bucket exists and the credentials may read it.
        let prefix = self.under_prefix("");
        self.block_on(async {
            self.bucket
                .list_page(prefix.clone(), Some("/".into()), None, None, Some(1))
                .await
                .map(|_| ())
                .map_err(|e| self.fail("list", &prefix, e))
        })?;
        if self.exists(Kind::Config, "config")? {
            return Err(Error::StoreExists(self.location()));
        }
        if self.object_lock().is_some() {
            self.check_bucket_lock()?;
        }
        // S3 has no folders to make: the prefix is ready, and this backend may now write
        // the store's first objects (keys before the config, as `init` does).
        self.store_seen.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        check_name(kind, name)?;
        if kind != Kind::Config {
            self.ensure_store()?;
        }
        let key = self.key(kind, name);
        let lock = match kind {
            Kind::Locks => None,
            _ => self.object_lock(),
        };
        if let Some(lock) = lock {
            self.put_locked(kind, name, &key, data, &lock)?;
        } else if data.len() as u64 > self.multipart_threshold {
            self.block_on(self.put_multipart(&key, data, None, None))?;
        } else {
            self.block_on(async {
                self.bucket
                    .put_object_with_content_type(&key, data, CONTENT_TYPE)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.fail("put", &key, e))
            })?;
        }
        if kind == Kind::Config {
            self.store_seen.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        self.block_on(async {
            match self.bucket.get_object(&key).await {
                Ok(resp) => Ok(resp.to_vec()),
                Err(e) if Self::is_not_found(&e) => Err(if kind == Kind::Config {
                    Error::StoreNotFound(self.location())
                } else {
                    missing(kind, name)
                }),
                Err(e) => Err(self.fail("get", &key, e)),
            }
        })
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        if len == 0 {
            return match self.head_size(&key)? {
                None => Err(missing(kind, name)),
                Some(size) if size < offset => {
                    Err(self.too_short(kind, name, Some(size), offset, len))
                }
                Some(_) => Ok(Vec::new()),
            };
        }
        let end = offset
            .checked_add(len - 1)
            .ok_or_else(|| self.too_short(kind, name, None, offset, len))?;
        let resp = self.block_on(async {
            match self.bucket.get_object_range(&key, offset, Some(end)).await {
                Ok(resp) => Ok(Some(resp)),
                Err(S3Error::HttpFailWithBody(416, _)) => Ok(None),
                Err(e) if Self::is_not_found(&e) => Err(missing(kind, name)),
                Err(e) => Err(self.fail("get range of", &key, e)),
            }
        })?;
        let Some(resp) = resp else {
            let size = self.head_size(&key)?;
            return Err(self.too_short(kind, name, size, offset, len));
        };
        let status = resp.status_code();
        let mut bytes = resp.to_vec();
        if status == 200 {
            // The server ignored the Range header and sent the whole object.
            let size = bytes.len() as u64;
            if offset + len > size {
                return Err(self.too_short(kind, name, Some(size), offset, len));
            }
            bytes = bytes[offset as usize..(offset + len) as usize].to_vec();
        }
        if bytes.len() as u64 != len {
            let size = self.head_size(&key)?;
            return Err(self.too_short(kind, name, size, offset, len));
        }
        Ok(bytes)
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        if kind == Kind::Config {
            let key = self.key(Kind::Config, "config");
            return Ok(match self.head_size(&key)? {
                Some(size) => vec![ObjectInfo {
                    name: "config".into(),
                    size,
                }],
                None => vec![],
            });
        }
        let prefix = self.under_prefix(&format!("{}/", kind.dir()));
        let mut out = Vec::new();
        self.block_on(async {
            let mut token = None;
            loop {
                let (page, _) = self
                    .bucket
                    .list_page(prefix.clone(), None, token, None, Some(1000))
                    .await
                    .map_err(|e| self.fail("list", &prefix, e))?;
                for obj in page.contents {
                    let rel = &obj.key[prefix.len().min(obj.key.len())..];
                    let name = rel.rsplit('/').next().unwrap_or(rel);
                    let placed = match kind {
                        Kind::Packs => {
                            rel.len() == name.len() + 3
                                && rel.starts_with(&name[..2.min(name.len())])
                        }
                        _ => rel == name,
                    };
                    if placed && check_name(kind, name).is_ok() {
                        out.push(ObjectInfo {
                            name: name.to_string(),
                            size: obj.size,
                        });
                    }
                }
                token = page.next_continuation_token.filter(|_| page.is_truncated);
                if token.is_none() {
                    break;
                }
            }
            Ok::<_, Error>(())
        })?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        if self.object_lock().is_some() {
            return self.delete_versions(kind, name, &key);
        }
        self.block_on(async {
            match self.bucket.delete_object(&key).await {
                Ok(_) => Ok(()),
                Err(e) if Self::is_not_found(&e) => Ok(()),
                Err(e) => Err(self.fail("delete", &key, e)),
            }
        })
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        check_name(kind, name)?;
        Ok(self.head_size(&self.key(kind, name))?.is_some())
    }

    fn set_object_lock(&self, lock: Option<&ObjectLock>) -> Result<()> {
        *self.object_lock.write().unwrap_or_else(|p| p.into_inner()) = lock.cloned();
        Ok(())
    }

    fn extend_retention(&self, kind: Kind, name: &str, until: SystemTime) -> Result<()> {
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
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{until_text}</RetainUntilDate></Retention>",
            mode_text(mode)
        );
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
}

/// The Object Lock state of one object version, as S3 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: Option<LockMode>,
    pub until: Option<SystemTime>,
    pub legal_hold: bool,
}

impl Retention {
    fn from_head(h: &s3::serde_types::HeadObjectResult) -> Retention {
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

fn parse_mode(text: &str) -> Option<LockMode> {
    match text.to_ascii_uppercase().as_str() {
        "GOVERNANCE" => Some(LockMode::Governance),
        "COMPLIANCE" => Some(LockMode::Compliance),
        _ => None,
    }
}

fn mode_text(mode: LockMode) -> &'static str {
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

fn parse_until(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(SystemTime::from)
}

/// `(version id, is a delete marker)`.
type VersionEntry = (String, bool);
/// `(key marker, version id marker)` of the next ListObjectVersions page.
type VersionMarkers = (String, String);

/// The versions of exactly `key` in one ListObjectVersions page, in the page's order
/// (newest first); and the markers of the next page when the listing is truncated.
fn parse_versions(body: &str, key: &str) -> (Vec<VersionEntry>, Option<VersionMarkers>) {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let v = rest.find("<Version>");
        let m = rest.find("<DeleteMarker>");
        let (start, tag, marker) = match (v, m) {
            (Some(v), Some(m)) if m < v => (m, "DeleteMarker", true),
            (Some(v), _) => (v, "Version", false),
            (None, Some(m)) => (m, "DeleteMarker", true),
            (None, None) => break,
        };
        let close = format!("</{tag}>");
        let Some(len) = rest[start..].find(&close) else {
            break;
        };
        let entry = &rest[start..start + len];
        if xml_field(entry, "Key") == Some(key) {
            if let Some(id) = xml_field(entry, "VersionId") {
                out.push((id.to_string(), marker));
            }
        }
        rest = &rest[start + len + close.len()..];
    }
    let next = xml_field(body, "NextKeyMarker")
        .zip(xml_field(body, "NextVersionIdMarker"))
        .filter(|_| xml_field(body, "IsTruncated") == Some("true"))
        .map(|(k, v)| (k.to_string(), v.to_string()));
    (out, next)
}

/// Wording with which S3 explains a refusal caused by Object Lock.
fn mentions_object_lock(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("object lock") || b.contains("objectlock") || b.contains("retention")
}

impl S3Backend {
    fn object_lock(&self) -> Option<ObjectLock> {
        self.object_lock
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A copy of the client that adds these headers and query parameters to every request.
    fn bucket_with(&self, headers: &[(&str, &str)], query: &[(&str, &str)]) -> Bucket {
        let mut b = (*self.bucket).clone();
        for (k, v) in headers {
            b.add_header(k, v);
        }
        for (k, v) in query {
            b.add_query(k, v);
        }
        b
    }

    /// HEAD of the current version, or of `version`; `None` when absent.
    fn head(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<s3::serde_types::HeadObjectResult>> {
        let bucket = match version {
            Some(v) => self.bucket_with(&[], &[("versionId", v)]),
            None => (*self.bucket).clone(),
        };
        self.block_on(async {
            match bucket.head_object(key).await {
                Ok((head, _)) => Ok(Some(head)),
                Err(e) if Self::is_not_found(&e) => Ok(None),
                Err(e) => Err(self.fail("check", key, e)),
            }
        })
    }

    /// The Object Lock state of an object's current version; `None` when it does not exist.
    pub fn retention(&self, kind: Kind, name: &str) -> Result<Option<Retention>> {
        check_name(kind, name)?;
        Ok(self
            .head(&self.key(kind, name), None)?
            .map(|h| Retention::from_head(&h)))
    }

    /// As [`S3Backend::fail`], for requests that carry or touch object-lock settings.
    fn fail_locked(&self, op: &str, key: &str, err: S3Error) -> Error {
        if let S3Error::HttpFailWithBody(status, body) = &err {
            let code = xml_field(body, "Code").unwrap_or("");
            let detail = xml_field(body, "Message")
                .unwrap_or("")
                .to_ascii_lowercase();
            if (*status == 400 || code == "InvalidRequest")
                && (detail.contains("objectlockconfiguration")
                    || detail.contains("object lock configuration"))
            {
                return Error::Usage(format!(
                    "{op} {}: {}",
                    self.url(key),
                    self.not_lock_enabled()
                ));
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

    fn not_lock_enabled(&self) -> String {
        format!(
            "bucket {:?} was not created with object lock enabled, but this store asks for object lock: \
             use a bucket created with it (aws s3api create-bucket --object-lock-enabled-for-bucket), \
             enable it on a versioned bucket (aws s3api put-object-lock-configuration), or create \
             the store without --object-lock",
            self.bucket_name
        )
    }

    /// Fails unless the bucket has Object Lock enabled.
    fn check_bucket_lock(&self) -> Result<()> {
        let bucket = self.bucket_with(&[], &[("object-lock", "")]);
        let answer = self.block_on(async { bucket.get_object("/").await.map(|r| r.to_vec()) });
        match answer {
            Ok(body) => {
                let body = String::from_utf8_lossy(&body);
                if xml_field(&body, "ObjectLockEnabled") == Some("Enabled") {
                    Ok(())
                } else {
                    Err(Error::Usage(self.not_lock_enabled()))
                }
            }
            Err(S3Error::HttpFailWithBody(404, body))
                if body.contains("ObjectLockConfigurationNotFound") =>
            {
                Err(Error::Usage(self.not_lock_enabled()))
            }
            Err(S3Error::HttpFailWithBody(status, body))
                if status == 501 || body.contains("NotImplemented") =>
            {
                Err(Error::Usage(format!(
                    "the S3 server at {} does not support Object Lock (HTTP {status}); create the \
                     store without --object-lock, or use a server that has it",
                    self.endpoint
                )))
            }
            Err(e) => Err(self.fail("read the object lock configuration of bucket", "", e)),
        }
    }

    /// `put` on a store with object lock; see the module docs.
    fn put_locked(
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
    fn put_multipart_locked(
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
    fn settle_existing(
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
    fn versions(&self, key: &str) -> Result<Vec<VersionEntry>> {
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
            let (found, next) = parse_versions(&String::from_utf8_lossy(&body), key);
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
    fn delete_versions(&self, kind: Kind, name: &str, key: &str) -> Result<()> {
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

/// What a failed request was, for messages.
struct Ctx<'a> {
    op: &'a str,
    bucket: &'a str,
    key: &'a str,
    endpoint: &'a str,
    region: &'a str,
    credentials_source: &'a str,
    timeout: Duration,
}

/// The text of `<Tag>` in an S3 XML error body.
fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim())
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn io_kind_in(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// Classifies a client error; see the module docs.
fn classify(c: &Ctx<'_>, err: S3Error) -> Error {
    let what = format!("{} s3://{}/{} at {}", c.op, c.bucket, c.key, c.endpoint);
    let (message, transient) = match &err {
        S3Error::HttpFailWithBody(status, body) => {
            let status = *status;
            let code = xml_field(body, "Code").unwrap_or("");
            let detail = xml_field(body, "Message").unwrap_or("");
            let answer = match (code.is_empty(), detail.is_empty()) {
                (true, _) => format!("HTTP {status}"),
                (false, true) => format!("HTTP {status} {code}"),
                (false, false) => format!("HTTP {status} {code}: {detail}"),
            };
            let hint = permanent_hint(c, status, normalize_code(code, detail));
            match hint {
                Some(hint) => (format!("{what}: {answer}; {hint}"), false),
                None => {
                    let transient = matches!(status, 408 | 429 | 500..=599)
                        || matches!(
                            code,
                            "SlowDown"
                                | "RequestTimeout"
                                | "InternalError"
                                | "ServiceUnavailable"
                                | "OperationAborted"
                                | "Throttling"
                                | "ThrottlingException"
                        );
                    (format!("{what}: {answer}"), transient)
                }
            }
        }
        S3Error::Reqwest(e) => {
            let detail = source_chain(e);
            if e.is_timeout() {
                (
                    format!(
                        "{what}: no answer within {} s ({detail})",
                        c.timeout.as_secs()
                    ),
                    true,
                )
            } else if e.is_connect() {
                (
                    format!(
                        "{what}: cannot connect ({detail}); check the endpoint URL and that the \
                         server is reachable from this host"
                    ),
                    true,
                )
            } else if e.is_builder() {
                (format!("{what}: invalid request ({detail})"), false)
            } else {
                // Connection closed or reset mid-request, a truncated body, a broken pipe.
                (format!("{what}: connection failed ({detail})"), true)
            }
        }
        S3Error::Io(e) => {
            let transient =
                crate::backend::retry::is_transient(&Error::io("", std::io::Error::from(e.kind())));
            (format!("{what}: {e}"), transient)
        }
        // A garbled answer (cut short by a proxy, say): asking again may help.
        S3Error::SerdeXml(_) | S3Error::Utf8(_) | S3Error::FromUtf8(_) => {
            (format!("{what}: unreadable answer ({err})"), true)
        }
        S3Error::Credentials(e) => (
            format!("{what}: credentials from {}: {e}", c.credentials_source),
            false,
        ),
        other => {
            let transient = io_kind_in(other).is_some_and(|k| {
                crate::backend::retry::is_transient(&Error::io("", std::io::Error::from(k)))
            });
            (format!("{what}: {other}"), transient)
        }
    };
    Error::Remote { message, transient }
}

/// Some servers (Garage) answer bad credentials with a plain `AccessDenied` and say why in
/// the message; map those to the standard codes so the hint fits.
fn normalize_code<'a>(code: &'a str, detail: &str) -> &'a str {
    let detail = detail.to_ascii_lowercase();
    if code == "AccessDenied" && detail.contains("signature") {
        "SignatureDoesNotMatch"
    } else if code == "AccessDenied"
        && (detail.contains("no such key") || detail.contains("access key id"))
    {
        "InvalidAccessKeyId"
    } else {
        code
    }
}

/// For answers that repeating cannot fix, what the user should check.
fn permanent_hint(c: &Ctx<'_>, status: u16, code: &str) -> Option<String> {
    let b = c.bucket;
    let creds = c.credentials_source;
    let no_bucket = || {
        format!(
            "bucket {b:?} does not exist at {}: create it, or check the bucket name in the \
             store location, the endpoint and the region ({})",
            c.endpoint, c.region
        )
    };
    Some(match (status, code) {
        (_, "NoSuchBucket") => no_bucket(),
        (404, "") if c.key.is_empty() => no_bucket(),
        (_, "InvalidAccessKeyId") => format!(
            "the server does not know the access key id from {creds}: check the access key \
             (and the endpoint: keys of one server are unknown to another)"
        ),
        (_, "SignatureDoesNotMatch") => format!(
            "the secret access key from {creds} does not match its access key id: check the \
             secret (and the region {:?})",
            c.region
        ),
        (_, "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired") => {
            format!("the session token from {creds} is expired or invalid: renew the credentials")
        }
        (_, "RequestTimeTooSkewed") => {
            "this host's clock differs too much from the server's: fix the system time (NTP)"
                .to_string()
        }
        (
            _,
            "AuthorizationHeaderMalformed"
            | "PermanentRedirect"
            | "IllegalLocationConstraintException",
        )
        | (301, _) => format!(
            "bucket {b:?} is not in region {:?} or not at this endpoint: set the region \
             ([s3] region or AWS_REGION) and the endpoint to the bucket's",
            c.region
        ),
        (_, "AccessDenied" | "AllAccessDisabled" | "AccountProblem") | (403, _) => format!(
            "access denied: check that the key from {creds} may read and write bucket {b:?} \
             (key permissions, bucket policy), and that it is the right key for this endpoint"
        ),
        (400, "InvalidBucketName") => {
            format!("{b:?} is not a valid bucket name for this server")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn locations_parse() {
        assert_eq!(
            parse_location("s3://my-bucket/a/b/").unwrap(),
            ("my-bucket".into(), "a/b".into())
        );
        assert_eq!(
            parse_location("s3://bkt").unwrap(),
            ("bkt".into(), "".into())
        );
        assert!(parse_location("s3://UPPER/x").is_err());
        assert!(parse_location("s3://ab").is_err());
        assert!(parse_location("s3://bkt/a/../b").is_err());
        assert!(parse_location("/local").is_err());
    }

    #[test]
    fn keys_mirror_the_local_layout() {
        let cfg = S3Config {
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let b = S3Backend::new_with_env("s3://bkt/host/one", &cfg, &env_of(&[])).unwrap();
        let id = "ab".repeat(32);
        assert_eq!(b.key(Kind::Config, "config"), "host/one/config");
        assert_eq!(b.key(Kind::Packs, &id), format!("host/one/packs/ab/{id}"));
        assert_eq!(b.key(Kind::Index, &id), format!("host/one/index/{id}"));
        assert_eq!(b.location(), "s3://bkt/host/one");
        let bare = S3Backend::new_with_env("s3://bkt", &cfg, &env_of(&[])).unwrap();
        assert_eq!(bare.key(Kind::Keys, "k1"), "keys/k1");
    }

    #[test]
    fn credentials_come_from_config_then_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = FILEDEF\naws_secret_access_key = s1\n\
             [profile backup]\naws_access_key_id=FILEBK\naws_secret_access_key=s2\naws_session_token=t\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SHARED_CREDENTIALS_FILE", f),
        ]);
        let from_cfg = S3Config {
            access_key_id: Some("CFGKEY".into()),
            secret_access_key: Some("cfgsecret".into()),
            ..Default::default()
        };
        assert_eq!(
            from_cfg.credentials_from(&env).unwrap().access_key_id,
            "CFGKEY"
        );
        assert_eq!(
            S3Config::default()
                .credentials_from(&env)
                .unwrap()
                .access_key_id,
            "ENVKEY"
        );
        let file_env = env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            ("AWS_PROFILE", "backup"),
        ]);
        let c = S3Config::default().credentials_from(&file_env).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("FILEBK", Some("t"))
        );
        let named = S3Config {
            credentials_file: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(
            named.credentials_from(&env).unwrap().access_key_id,
            "FILEDEF"
        );
        let home = env_of(&[("HOME", dir.path().to_str().unwrap())]);
        let err = S3Config::default()
            .credentials_from(&home)
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        let wrong_profile = S3Config {
            credentials_file: Some(file),
            profile: Some("nope".into()),
            ..Default::default()
        };
        let err = wrong_profile
            .credentials_from(&env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[nope]"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let cfg = S3Config {
            access_key_id: Some("GKvisible".into()),
            secret_access_key: Some("topsecretvalue".into()),
            session_token: Some("tokenvalue".into()),
            ..Default::default()
        };
        let text = format!("{cfg:?} {:?}", cfg.credentials_from(&env_of(&[])).unwrap());
        assert!(
            !text.contains("topsecretvalue") && !text.contains("tokenvalue"),
            "{text}"
        );
        assert!(text.contains("GKvisible"));
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let err = toml::from_str::<S3Config>("endpoit = 'x'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpoit"), "{err}");
        let c: S3Config =
            toml::from_str("endpoint = 'http://h:1'\npath_style = false\npart_size = 6000000")
                .unwrap();
        assert_eq!(c.path_style, Some(false));
    }

    #[test]
    fn retain_until_dates_are_utc_seconds_rounded_up() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        assert_eq!(format_until(t), "2030-03-17T17:46:40Z");
        let later = t + Duration::from_millis(1);
        assert_eq!(format_until(later), "2030-03-17T17:46:41Z");
        assert_eq!(parse_until("2030-03-17T17:46:40Z"), Some(t));
        assert_eq!(parse_until("2030-03-17T17:46:40.000Z"), Some(t));
        assert_eq!(parse_until("yesterday"), None);
    }

    #[test]
    fn retention_locks_until_its_date_or_while_on_hold() {
        let now = SystemTime::now();
        let r = |mode, until, legal_hold| Retention {
            mode,
            until,
            legal_hold,
        };
        let gov = Some(LockMode::Governance);
        assert!(r(gov, Some(now + Duration::from_secs(1)), false).locked_at(now));
        assert!(!r(gov, Some(now - Duration::from_secs(1)), false).locked_at(now));
        assert!(!r(None, None, false).locked_at(now));
        assert!(r(None, None, true).locked_at(now));
        assert_eq!(parse_mode("COMPLIANCE"), Some(LockMode::Compliance));
        assert_eq!(parse_mode("governance"), Some(LockMode::Governance));
        assert_eq!(parse_mode("none"), None);
    }

    #[test]
    fn version_listings_parse_in_order() {
        let key = "p/packs/ab/abcd";
        let body = format!(
            "<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker>{key}</NextKeyMarker>\
             <NextVersionIdMarker>v0</NextVersionIdMarker>\
             <DeleteMarker><Key>{key}</Key><VersionId>m3</VersionId></DeleteMarker>\
             <Version><Key>{key}</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest></Version>\
             <Version><Key>{key}e</Key><VersionId>other</VersionId></Version>\
             <Version><Key>{key}</Key><VersionId>v1</VersionId></Version></ListVersionsResult>"
        );
        let (found, next) = parse_versions(&body, key);
        assert_eq!(
            found,
            vec![
                ("m3".to_string(), true),
                ("v2".to_string(), false),
                ("v1".to_string(), false)
            ]
        );
        assert_eq!(next, Some((key.to_string(), "v0".to_string())));
        let last = body.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_versions(&last, key).1, None);
    }

    #[test]
    fn object_lock_answers_are_explained() {
        let cfg = S3Config {
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let b = S3Backend::new_with_env("s3://bkt/p", &cfg, &env_of(&[])).unwrap();
        let missing_config = "<Error><Code>InvalidRequest</Code><Message>Bucket is missing ObjectLockConfiguration</Message></Error>";
        let err = b.fail_locked(
            "put",
            "p/config",
            S3Error::HttpFailWithBody(400, missing_config.into()),
        );
        assert!(
            err.to_string()
                .contains("bucket \"bkt\" was not created with object lock enabled"),
            "{err}"
        );
        let conflict = "<Error><Code>ConditionalRequestConflict</Code><Message>m</Message></Error>";
        let err = b.fail_locked(
            "put",
            "p/config",
            S3Error::HttpFailWithBody(409, conflict.into()),
        );
        assert!(crate::backend::retry::is_transient(&err), "{err}");
        assert!(mentions_object_lock(
            "<Error><Code>AccessDenied</Code><Message>Access Denied because object protected by object lock.</Message></Error>"
        ));
        assert!(!mentions_object_lock(
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        ));
    }

    fn ctx() -> Ctx<'static> {
        Ctx {
            op: "put",
            bucket: "bkt",
            key: "p/config",
            endpoint: "http://h",
            region: "garage",
            credentials_source: "the environment",
            timeout: Duration::from_secs(5),
        }
    }

    fn body(code: &str) -> String {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
    }

    #[test]
    fn http_answers_are_classified() {
        let cases = [
            (503, "SlowDown", true),
            (500, "InternalError", true),
            (429, "", true),
            (400, "RequestTimeout", true),
            (403, "InvalidAccessKeyId", false),
            (403, "SignatureDoesNotMatch", false),
            (403, "AccessDenied", false),
            (404, "NoSuchBucket", false),
            (400, "AuthorizationHeaderMalformed", false),
            (400, "InvalidArgument", false),
        ];
        for (status, code, want) in cases {
            let err = classify(&ctx(), S3Error::HttpFailWithBody(status, body(code)));
            match &err {
                Error::Remote { transient, message } => {
                    assert_eq!(*transient, want, "{status} {code}: {message}");
                    assert!(message.contains("s3://bkt/p/config"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        let denied = classify(
            &ctx(),
            S3Error::HttpFailWithBody(403, body("InvalidAccessKeyId")),
        );
        assert!(denied.to_string().contains("access key"), "{denied}");
        let garage_key = "<Error><Code>AccessDenied</Code><Message>Forbidden: No such key: GK1</Message></Error>";
        let text = classify(&ctx(), S3Error::HttpFailWithBody(403, garage_key.into())).to_string();
        assert!(text.contains("does not know the access key id"), "{text}");
        let garage_sig = "<Error><Code>AccessDenied</Code><Message>Forbidden: Invalid signature</Message></Error>";
        let text = classify(&ctx(), S3Error::HttpFailWithBody(403, garage_sig.into())).to_string();
        assert!(text.contains("secret access key"), "{text}");
        let nobucket = classify(&ctx(), S3Error::HttpFailWithBody(404, body("NoSuchBucket")));
        assert!(
            nobucket
                .to_string()
                .contains("bucket \"bkt\" does not exist"),
            "{nobucket}"
        );
    }
}
