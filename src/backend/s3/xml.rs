//! The XML bodies of the S3 requests `rust-s3` does not model: error answers, version
//! listings (ListObjectVersions), a bucket's object-lock configuration, and the body of
//! PutObjectRetention. Read and written with `quick-xml`'s serde support; the element names
//! are S3's (PascalCase). Elements this code does not need are ignored, so an answer with
//! more fields than AWS documents (MinIO, Ceph, Garage add some) still reads.

use serde::{Deserialize, Serialize};

/// `<Error><Code>..</Code><Message>..</Message>...</Error>`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The error answer in `body`; empty fields when the body is not an S3 error document (a
/// proxy's HTML page, say, or an empty body).
pub(super) fn error_body(body: &str) -> ErrorBody {
    quick_xml::de::from_str::<ErrorBody>(body)
        .map(|mut e| {
            e.code = e.code.trim().to_string();
            e.message = e.message.trim().to_string();
            e
        })
        .unwrap_or_default()
}

/// One `<Version>` or `<DeleteMarker>` of a ListObjectVersions answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionItem {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version_id: String,
}

/// A child of `<ListVersionsResult>`, in document order (versions and delete markers are
/// interleaved, newest first, so their order must be kept).
#[derive(Debug, Deserialize)]
enum ListEntry {
    Version(VersionItem),
    DeleteMarker(VersionItem),
    IsTruncated(String),
    NextKeyMarker(String),
    NextVersionIdMarker(String),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct ListVersionsResult {
    #[serde(rename = "$value", default)]
    entries: Vec<ListEntry>,
}

/// `(version id, is a delete marker)`.
pub(super) type VersionEntry = (String, bool);
/// `(key marker, version id marker)` of the next ListObjectVersions page.
pub(super) type VersionMarkers = (String, String);

/// The versions of exactly `key` in one ListObjectVersions page, in the page's order
/// (newest first); and the markers of the next page when the listing is truncated. A body
/// that does not parse is an error naming what was wrong with it.
pub(super) fn parse_versions(
    body: &str,
    key: &str,
) -> Result<(Vec<VersionEntry>, Option<VersionMarkers>), String> {
    let list: ListVersionsResult = quick_xml::de::from_str(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let (mut truncated, mut next_key, mut next_version) = (false, None, None);
    for entry in list.entries {
        match entry {
            ListEntry::Version(v) if v.key == key => out.push((v.version_id, false)),
            ListEntry::DeleteMarker(v) if v.key == key => out.push((v.version_id, true)),
            ListEntry::IsTruncated(t) => truncated = t.trim() == "true",
            ListEntry::NextKeyMarker(k) => next_key = Some(k),
            ListEntry::NextVersionIdMarker(v) => next_version = Some(v),
            _ => {}
        }
    }
    out.retain(|(id, _)| !id.is_empty());
    let next = next_key
        .zip(next_version)
        .filter(|_| truncated)
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()));
    Ok((out, next))
}

/// `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>...`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectLockConfiguration {
    #[serde(default)]
    object_lock_enabled: String,
}

/// True when a `GET ?object-lock` answer says object lock is enabled on the bucket.
pub(super) fn object_lock_enabled(body: &str) -> bool {
    quick_xml::de::from_str::<ObjectLockConfiguration>(body)
        .is_ok_and(|c| c.object_lock_enabled.trim() == "Enabled")
}

/// The body of PutObjectRetention.
#[derive(Debug, Serialize)]
#[serde(rename = "Retention", rename_all = "PascalCase")]
struct RetentionBody<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'a str,
    mode: &'a str,
    retain_until_date: &'a str,
}

/// `<Retention xmlns="..."><Mode>MODE</Mode><RetainUntilDate>UNTIL</RetainUntilDate></Retention>`.
pub(super) fn retention_body(mode: &str, until: &str) -> String {
    quick_xml::se::to_string(&RetentionBody {
        xmlns: "http://s3.amazonaws.com/doc/2006-03-01/",
        mode,
        retain_until_date: until,
    })
    .expect("a struct of strings always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_read_and_anything_else_is_empty() {
        let e = error_body(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>\
             <Message> The bucket does not exist </Message><BucketName>b</BucketName>\
             <RequestId>1</RequestId></Error>",
        );
        assert_eq!(e.code, "NoSuchBucket");
        assert_eq!(e.message, "The bucket does not exist");
        assert_eq!(
            error_body("<html><body>502 Bad Gateway</body></html>").code,
            ""
        );
        assert_eq!(error_body(""), ErrorBody::default());
    }

    #[test]
    fn lock_configuration_and_retention_body() {
        assert!(object_lock_enabled(
            "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
             <Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule>\
             </ObjectLockConfiguration>"
        ));
        assert!(!object_lock_enabled(
            "<ObjectLockConfiguration></ObjectLockConfiguration>"
        ));
        assert!(!object_lock_enabled("not xml"));
        assert_eq!(
            retention_body("COMPLIANCE", "2030-01-02T03:04:05Z"),
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>\
             <RetainUntilDate>2030-01-02T03:04:05Z</RetainUntilDate></Retention>"
        );
    }

    #[test]
    fn a_listing_that_does_not_parse_is_an_error() {
        assert!(parse_versions("<ListVersionsResult><Version>", "k").is_err());
    }
}
