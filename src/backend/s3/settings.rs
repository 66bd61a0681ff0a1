//! The `[s3]` settings, credentials and the `s3://BUCKET/PREFIX` location syntax.

use super::*;

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

    pub(super) fn endpoint_from(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .map(|e| e.trim_end_matches('/').to_string())
    }

    pub(super) fn region_from(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        self.region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into())
    }
}

pub(super) fn default_credentials_file(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".aws/credentials")
}

/// Reads one profile of an AWS credentials file. `Ok(None)` when the file does not exist
/// and `required` is false.
pub(super) fn read_credentials_file(
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
