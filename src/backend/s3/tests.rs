//! Unit tests of the S3 backend's parts that need no server (the shared backend suite and
//! the Garage/moto tests exercise it over HTTP).

use super::errors::*;
use super::object_lock::*;
use super::settings::*;
use super::xml::parse_versions;
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
        toml::from_str("endpoint = 'http://h:1'\npath_style = false\npart_size = 6000000").unwrap();
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
    let (found, next) = parse_versions(&body, key).unwrap();
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
    assert_eq!(parse_versions(&last, key).unwrap().1, None);
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
    let garage_key =
        "<Error><Code>AccessDenied</Code><Message>Forbidden: No such key: GK1</Message></Error>";
    let text = classify(&ctx(), S3Error::HttpFailWithBody(403, garage_key.into())).to_string();
    assert!(text.contains("does not know the access key id"), "{text}");
    let garage_sig =
        "<Error><Code>AccessDenied</Code><Message>Forbidden: Invalid signature</Message></Error>";
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
