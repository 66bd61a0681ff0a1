//! Failed requests, classified as transient or permanent, in messages that name the bucket,
//! the key and what to check.

use super::xml;
use super::*;

/// What a failed request was, for messages.
pub(super) struct Ctx<'a> {
    pub(super) op: &'a str,
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    pub(super) endpoint: &'a str,
    pub(super) region: &'a str,
    pub(super) credentials_source: &'a str,
    pub(super) timeout: Duration,
}

pub(super) fn source_chain(err: &dyn std::error::Error) -> String {
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

pub(super) fn io_kind_in(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
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
pub(super) fn classify(c: &Ctx<'_>, err: S3Error) -> Error {
    let what = format!("{} s3://{}/{} at {}", c.op, c.bucket, c.key, c.endpoint);
    let (message, transient) = match &err {
        S3Error::HttpFailWithBody(status, body) => {
            let status = *status;
            let answer = xml::error_body(body);
            let (code, detail) = (answer.code.as_str(), answer.message.as_str());
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
pub(super) fn normalize_code<'a>(code: &'a str, detail: &str) -> &'a str {
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
pub(super) fn permanent_hint(c: &Ctx<'_>, status: u16, code: &str) -> Option<String> {
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
