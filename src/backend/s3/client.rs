//! [`S3Backend`]: the store's objects as S3 keys, single and multipart PUTs, ranged GETs,
//! listing.

use super::*;
use crate::backend::staged::StagedFile;

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
    /// A copy of the client that adds these headers and query parameters to every request.
    pub(super) fn bucket_with(&self, headers: &[(&str, &str)], query: &[(&str, &str)]) -> Bucket {
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
    pub(super) fn head(
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
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| Error::Usage(format!("HTTP client for {location}: {e}")))?,
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

    pub(super) fn under_prefix(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// Runs a future to completion on this backend's runtime, from any thread (also from
    /// inside another tokio runtime, where blocking on it directly is not allowed).
    pub(super) fn block_on<F>(&self, fut: F) -> F::Output
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
    pub(super) fn fail(&self, op: &str, key: &str, err: S3Error) -> Error {
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

    pub(super) fn is_not_found(err: &S3Error) -> bool {
        matches!(err, S3Error::HttpFailWithBody(404, body) if !body.contains("NoSuchBucket"))
    }

    pub(super) fn ensure_store(&self) -> Result<()> {
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
    pub(super) async fn put_multipart(
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

    /// One PUT of `data` as it is: a URL presigned by the S3 client (query-string
    /// signature, unsigned payload) and the body sent by the HTTP client from the buffer.
    async fn put_presigned(&self, key: &str, data: bytes::Bytes) -> Result<()> {
        let expiry = self.timeout.as_secs().saturating_mul(2).clamp(60, 3600) as u32;
        let url = self
            .bucket
            .presign_put(key, expiry, None, None)
            .await
            .map_err(|e| self.fail("sign a put of", key, e))?;
        let response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(data)
            .send()
            .await
            // The URL carries the signature (and any session token): never in a message.
            .map_err(|e| self.fail("put", key, S3Error::from(e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.fail("put", key, S3Error::HttpFailWithBody(status.as_u16(), body)))
    }

    /// [`S3Backend::put_presigned`] of a file's first `len` bytes, read as they are sent
    /// ([`STAGED_READ`] at a time): the body is never in memory whole.
    async fn put_presigned_file(&self, key: &str, file: std::fs::File, len: u64) -> Result<()> {
        let expiry = self.timeout.as_secs().saturating_mul(2).clamp(60, 3600) as u32;
        let url = self
            .bucket
            .presign_put(key, expiry, None, None)
            .await
            .map_err(|e| self.fail("sign a put of", key, e))?;
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, STAGED_READ);
        let response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            // S3 takes no chunked bodies: the length goes first.
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            // The URL carries the signature (and any session token): never in a message.
            .map_err(|e| self.fail("put", key, S3Error::from(e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.fail("put", key, S3Error::HttpFailWithBody(status.as_u16(), body)))
    }

    /// The retention a new object of `kind` gets: the store's, except for leases, which
    /// are rewritten and removed all the time.
    fn retention_for(&self, kind: Kind) -> Option<ObjectLock> {
        match kind {
            Kind::Locks => None,
            _ => self.object_lock(),
        }
    }

    pub(super) fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket_name)
    }

    pub(super) fn too_short(
        &self,
        kind: Kind,
        name: &str,
        size: Option<u64>,
        offset: u64,
        len: u64,
    ) -> Error {
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

    pub(super) fn head_size(&self, key: &str) -> Result<Option<u64>> {
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
        let lock = self.retention_for(kind);
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

    fn put_bytes(&self, kind: Kind, name: &str, data: bytes::Bytes) -> Result<()> {
        let lock = self.retention_for(kind);
        if kind == Kind::Config || lock.is_some() || data.len() as u64 > self.multipart_threshold {
            return self.put(kind, name, &data);
        }
        check_name(kind, name)?;
        self.ensure_store()?;
        let key = self.key(kind, name);
        self.block_on(self.put_presigned(&key, data))
    }

    fn put_staged(&self, kind: Kind, name: &str, file: &mut StagedFile) -> Result<()> {
        let lock = self.retention_for(kind);
        if kind == Kind::Config || lock.is_some() || file.len() > self.multipart_threshold {
            // Object Lock puts carry the body's checksum, and multipart uploads send parts
            // from memory: both read the staged file whole.
            let bytes = file.read_all()?;
            return self.put(kind, name, &bytes);
        }
        check_name(kind, name)?;
        self.ensure_store()?;
        let key = self.key(kind, name);
        let body = file.reopen()?;
        self.block_on(self.put_presigned_file(&key, body, file.len()))
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        // The body goes into one buffer as it arrives, never gathered whole first (which
        // held every pack being downloaded twice). A pack's buffer is reserved at its
        // usual size up front: pages are only touched as the body fills them, and one
        // larger (a store with bigger packs) grows in place, above the allocator's mmap
        // threshold.
        let mut body = Vec::with_capacity(if kind == Kind::Packs {
            PACK_BODY_RESERVE
        } else {
            0
        });
        self.block_on(async {
            match self.bucket.get_object_to_writer(&key, &mut body).await {
                Ok(_) => Ok(std::mem::take(&mut body)),
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
        let mut bytes = Vec::from(resp.into_bytes());
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

    fn get_range_into(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        len: u64,
        sink: &mut crate::backend::RangeSink<'_>,
    ) -> Result<()> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        let Some(end) = offset
            .checked_add(len.saturating_sub(1))
            .filter(|_| len > 0)
        else {
            return sink(0, &self.get_range(kind, name, offset, len)?);
        };
        let mut writer = SinkWriter {
            sink,
            pos: 0,
            len,
            overflow: false,
            failed: None,
        };
        let streamed = self.block_on(async {
            self.bucket
                .get_object_range_to_writer(&key, offset, Some(end), &mut writer)
                .await
        });
        if let Some(e) = writer.failed.take() {
            return Err(e);
        }
        if matches!(streamed, Ok(206)) && writer.pos == len {
            return Ok(());
        }
        match streamed {
            Err(e) if Self::is_not_found(&e) => return Err(missing(kind, name)),
            Err(S3Error::HttpFailWithBody(416, _)) | Ok(_) => {}
            Err(_) if writer.overflow => {}
            Err(e) => return Err(self.fail("get range of", &key, e)),
        }
        // Anything but exactly the range (the whole object, a short body, a range past the
        // end): the plain read corrects it or names what is wrong.
        let bytes = self.get_range(kind, name, offset, len)?;
        (writer.sink)(0, &bytes)
    }

    fn streams_ranges(&self) -> bool {
        true
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
        self.extend_version_retention(kind, name, until)
    }
}

/// A staged object goes out in reads of this size: large enough that the blocking reads
/// behind the async file cost nothing next to sending (64 per 16 MiB pack), small next to
/// the pack that is no longer held.
const STAGED_READ: usize = 256 << 10;

/// What a whole pack's GET reserves for its body: the default pack size (16 MiB) plus
/// room for the trailer and the last blob that tipped it over.
const PACK_BODY_RESERVE: usize = 17 << 20;

/// A ranged GET's body handed to a [`RangeSink`](crate::backend::RangeSink) as it arrives,
/// refusing more bytes than the range holds.
struct SinkWriter<'a, 'b> {
    sink: &'a mut crate::backend::RangeSink<'b>,
    pos: u64,
    len: u64,
    /// The body ran past the range (the server sent more than asked).
    overflow: bool,
    /// The sink's own error (writing the bytes where they go).
    failed: Option<Error>,
}

impl tokio::io::AsyncWrite for SinkWriter<'_, '_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.pos + buf.len() as u64 > this.len {
            this.overflow = true;
            return std::task::Poll::Ready(Err(std::io::Error::other("longer than the range")));
        }
        if let Err(e) = (this.sink)(this.pos, buf) {
            this.failed = Some(e);
            return std::task::Poll::Ready(Err(std::io::Error::other("the range's sink failed")));
        }
        this.pos += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
