//! The backend suite against every backend: local folder, memory, and S3 on a real Garage
//! server (directly, and through a fault-injecting proxy with retries), plus the errors a
//! user sees for wrong credentials, a missing bucket and an unreachable endpoint.

#[path = "garage/mod.rs"]
mod garage;

use garage::proxy::{FaultKind, FaultProxy, Settings};
use std::time::{Duration, Instant};
use vault::backend::local::LocalBackend;
use vault::backend::memory::MemoryBackend;
use vault::backend::retry::{is_transient, RetryBackend, RetryPolicy};
use vault::backend::s3::{S3Backend, S3Config};
use vault::backend::{testsuite, Backend, Kind};
use vault::Error;

fn id(n: u32) -> String {
    format!("{n:064x}")
}

/// A fresh, created store at a new prefix of a new bucket.
fn fresh_s3(cfg: &S3Config, base: &str) -> (String, S3Backend) {
    let g = garage::shared();
    let bucket = g.bucket(base);
    let location = format!("s3://{bucket}/{}", garage::unique("store"));
    let backend = S3Backend::new(&location, cfg).unwrap();
    (bucket, backend)
}

#[test]
fn local_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    testsuite::run_all(&LocalBackend::new(dir.path().join("store")));
}

#[test]
fn memory_backend_passes_the_suite() {
    testsuite::run_all(&MemoryBackend::new("suite"));
}

#[test]
fn s3_backend_passes_the_suite_on_garage() {
    let g = garage::shared();
    let (_, backend) = fresh_s3(&g.s3_config(), "suite");
    testsuite::run_all(&backend);
}

#[test]
fn s3_prefixes_in_one_bucket_are_separate_stores() {
    let g = garage::shared();
    let bucket = g.bucket("prefixes");
    let a = S3Backend::new(&format!("s3://{bucket}/hosts/a"), &g.s3_config()).unwrap();
    let b = S3Backend::new(&format!("s3://{bucket}/hosts/ab"), &g.s3_config()).unwrap();
    for s in [&a, &b] {
        s.create().unwrap();
        s.put(Kind::Config, "config", b"{}").unwrap();
    }
    a.put(Kind::Index, &id(1), b"in a").unwrap();
    assert!(b.list(Kind::Index).unwrap().is_empty());
    assert!(!b.exists(Kind::Index, &id(1)).unwrap());
    // A store that was never created is reported as such.
    let none = S3Backend::new(&format!("s3://{bucket}/hosts/none"), &g.s3_config()).unwrap();
    assert!(matches!(
        none.get(Kind::Config, "config"),
        Err(Error::StoreNotFound(_))
    ));
    assert!(matches!(
        none.put(Kind::Index, &id(1), b"x"),
        Err(Error::StoreNotFound(_))
    ));
}

#[test]
fn s3_list_pages_past_one_thousand_objects() {
    let g = garage::shared();
    let (_, backend) = fresh_s3(&g.s3_config(), "paging");
    backend.create().unwrap();
    backend.put(Kind::Config, "config", b"{}").unwrap();
    let backend = std::sync::Arc::new(backend);
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let b = backend.clone();
            std::thread::spawn(move || {
                for i in (t..1010).step_by(4) {
                    b.put(Kind::Locks, &id(i), b"x").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let listed = backend.list(Kind::Locks).unwrap();
    assert_eq!(listed.len(), 1010);
    assert!(listed.windows(2).all(|w| w[0].name < w[1].name));
}

/// Settings for going through the proxy: short timeouts, fast retries.
fn through(proxy: &FaultProxy, timeout_secs: u64) -> S3Config {
    S3Config {
        timeout_secs: Some(timeout_secs),
        ..garage::shared().s3_config_at(&proxy.endpoint())
    }
}

fn quick_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(120),
    }
}

#[test]
fn s3_with_retries_passes_the_suite_through_faults() {
    let g = garage::shared();
    let proxy = FaultProxy::start(
        g.s3_addr,
        Settings {
            fault_rate: 0.2,
            stall: Duration::from_millis(300),
            seed: 42,
            ..Settings::default()
        },
    );
    let (_, backend) = fresh_s3(&through(&proxy, 10), "faults");
    let backend = RetryBackend::new(backend, quick_policy(12));
    testsuite::run_all(&backend);
    let requests = proxy.requests();
    let kinds = |k| requests.iter().filter(|r| r.fault == Some(k)).count();
    eprintln!(
        "{} requests, {} faults ({} resets, {} stalls, {} slow-downs), {} retries",
        requests.len(),
        proxy.faults(),
        kinds(FaultKind::Reset),
        kinds(FaultKind::Stall),
        kinds(FaultKind::SlowDown),
        backend.retries()
    );
    assert!(proxy.faults() >= 5, "the proxy injected faults");
    for k in [FaultKind::Reset, FaultKind::Stall, FaultKind::SlowDown] {
        assert!(kinds(k) > 0, "{k:?} was injected");
    }
    assert!(
        backend.retries() >= proxy.faults() / 2,
        "faults were retried"
    );
}

#[test]
fn s3_stall_longer_than_the_timeout_is_retried() {
    let g = garage::shared();
    let proxy = FaultProxy::start(g.s3_addr, Settings::default());
    let (_, backend) = fresh_s3(&through(&proxy, 1), "stall");
    let backend = RetryBackend::new(backend, quick_policy(4));
    backend.create().unwrap();
    backend.put(Kind::Config, "config", b"{}").unwrap();
    backend.put(Kind::Snapshots, &id(7), b"snapshot").unwrap();
    proxy.update(|s| {
        s.stall = Duration::from_secs(30);
        s.max_faults = proxy.faults() + 1;
        s.rule = Some(Box::new(|r| {
            (r.method == "GET").then_some(FaultKind::Stall)
        }));
    });
    let start = Instant::now();
    assert_eq!(backend.get(Kind::Snapshots, &id(7)).unwrap(), b"snapshot");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(backend.retries(), 1);
}

#[test]
fn s3_total_failure_ends_with_a_clear_error_not_a_hang() {
    let g = garage::shared();
    let proxy = FaultProxy::start(
        g.s3_addr,
        Settings {
            fault_rate: 1.0,
            stall: Duration::from_millis(200),
            ..Settings::default()
        },
    );
    let cfg = through(&proxy, 2);
    let bucket = g.bucket("down");
    let backend = RetryBackend::new(
        S3Backend::new(&format!("s3://{bucket}/p"), &cfg).unwrap(),
        quick_policy(4),
    );
    let start = Instant::now();
    let err = backend.create().unwrap_err();
    let text = err.to_string();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(text.contains("gave up after 4 attempts"), "{text}");
    assert!(text.contains(&bucket), "{text}");
    assert!(
        proxy.requests().len() >= 4,
        "every attempt reached the proxy"
    );
    eprintln!("{text}");
}

#[test]
fn wrong_secret_fails_at_once_naming_the_bucket() {
    let g = garage::shared();
    let proxy = FaultProxy::start(g.s3_addr, Settings::default());
    let bucket = g.bucket("badsecret");
    let cfg = S3Config {
        secret_access_key: Some("0".repeat(64)),
        ..through(&proxy, 10)
    };
    let backend = RetryBackend::new(
        S3Backend::new(&format!("s3://{bucket}/p"), &cfg).unwrap(),
        RetryPolicy::default(),
    );
    let err = backend.create().unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(!is_transient(&err), "{text}");
    assert!(text.contains(&bucket), "{text}");
    assert!(text.contains("secret access key"), "{text}");
    assert_eq!(
        proxy.requests().len(),
        1,
        "a permanent error is not retried"
    );
}

#[test]
fn unknown_access_key_fails_at_once_naming_the_bucket() {
    let g = garage::shared();
    let bucket = g.bucket("badkey");
    let cfg = S3Config {
        access_key_id: Some("GK000000000000000000000000".into()),
        ..g.s3_config()
    };
    let backend = RetryBackend::new(
        S3Backend::new(&format!("s3://{bucket}/p"), &cfg).unwrap(),
        RetryPolicy::default(),
    );
    let start = Instant::now();
    let err = backend.put(Kind::Config, "config", b"{}").unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!is_transient(&err), "{text}");
    assert!(text.contains(&bucket), "{text}");
    assert!(text.contains("does not know the access key id"), "{text}");
}

#[test]
fn missing_bucket_is_named() {
    let g = garage::shared();
    let name = garage::unique("no-such-bucket");
    let backend = RetryBackend::new(
        S3Backend::new(&format!("s3://{name}/p"), &g.s3_config()).unwrap(),
        RetryPolicy::default(),
    );
    let start = Instant::now();
    let err = backend.create().unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!is_transient(&err), "{text}");
    assert!(
        text.contains(&name) && text.contains("does not exist"),
        "{text}"
    );
    let err = backend.get(Kind::Config, "config").unwrap_err().to_string();
    assert!(
        err.contains(&name) && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn unreachable_endpoint_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("garage".into()),
        access_key_id: Some("GK1".into()),
        secret_access_key: Some("s".into()),
        timeout_secs: Some(2),
        ..S3Config::default()
    };
    let backend = RetryBackend::new(
        S3Backend::new("s3://bucket/p", &cfg).unwrap(),
        quick_policy(3),
    );
    let err = backend.create().unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(
        err.contains("cannot connect") && err.contains(&port.to_string()),
        "{err}"
    );
}

#[test]
fn one_put_per_small_object_and_multipart_for_large_ones() {
    let g = garage::shared();
    let proxy = FaultProxy::start(g.s3_addr, Settings::default());
    let (_, backend) = fresh_s3(&through(&proxy, 20), "puts");
    backend.create().unwrap();
    backend.put(Kind::Config, "config", b"{}").unwrap();
    backend.put(Kind::Index, &id(0), b"warm").unwrap();
    proxy.clear_log();
    for i in 1..=10 {
        backend
            .put(Kind::Packs, &id(i), &vec![i as u8; 4096])
            .unwrap();
    }
    let requests = proxy.requests();
    let summary: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(requests.len(), 10, "{summary:#?}");
    assert!(
        requests
            .iter()
            .all(|r| r.method == "PUT" && !r.target.contains('?')),
        "{summary:#?}"
    );

    proxy.clear_log();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i >> 8) as u8).collect();
    backend.put(Kind::Packs, &id(99), &big).unwrap();
    let requests = proxy.requests();
    let parts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("partNumber="))
        .count();
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!((parts, posts, requests.len()), (3, 2, 5), "{requests:#?}");
    assert!(backend.get(Kind::Packs, &id(99)).unwrap() == big);
}

#[test]
fn failed_multipart_upload_is_aborted_and_invisible() {
    let g = garage::shared();
    let proxy = FaultProxy::start(g.s3_addr, Settings::default());
    let (bucket, backend) = fresh_s3(&through(&proxy, 20), "abort");
    let prefix = backend.prefix().to_string();
    backend.create().unwrap();
    backend.put(Kind::Config, "config", b"{}").unwrap();
    proxy.update(|s| {
        s.rule = Some(Box::new(|r| {
            (r.method == "PUT" && r.target.contains("partNumber=2")).then_some(FaultKind::SlowDown)
        }))
    });
    let big: Vec<u8> = (0..18u32 << 20).map(|i| (i % 253) as u8).collect();
    let err = backend.put(Kind::Packs, &id(5), &big).unwrap_err();
    assert!(is_transient(&err), "{err}");
    assert!(err.to_string().contains("part 2"), "{err}");
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.target.contains("uploadId=")));
    assert!(!backend.exists(Kind::Packs, &id(5)).unwrap());
    assert!(backend.list(Kind::Packs).unwrap().is_empty());
    assert_eq!(
        pending_uploads(&bucket, &prefix),
        0,
        "the failed upload was aborted"
    );

    // With one fault left and retries, the same put succeeds.
    proxy.update(|s| s.max_faults = proxy.faults() + 1);
    let retrying = RetryBackend::new(backend, quick_policy(4));
    retrying.put(Kind::Packs, &id(5), &big).unwrap();
    assert!(retrying.get(Kind::Packs, &id(5)).unwrap() == big);
    assert_eq!(pending_uploads(&bucket, &prefix), 0);
}

/// Multipart uploads started and not finished under `prefix`, asked of Garage directly.
fn pending_uploads(bucket: &str, prefix: &str) -> usize {
    let g = garage::shared();
    let creds =
        s3::creds::Credentials::new(Some(&g.key_id), Some(&g.secret), None, None, None).unwrap();
    let region = s3::Region::Custom {
        region: garage::REGION.into(),
        endpoint: g.endpoint.clone(),
    };
    let b = s3::Bucket::new(bucket, region, creds)
        .unwrap()
        .with_path_style();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(b.list_multiparts_uploads(Some(prefix), None))
        .unwrap()
        .iter()
        .map(|page| page.uploads.len())
        .sum()
}

#[test]
fn open_routes_s3_locations_with_the_configured_settings() {
    let g = garage::shared();
    let bucket = g.bucket("open");
    let text = format!(
        "store = \"s3://{bucket}/host1\"\n[s3]\nendpoint = \"{}\"\nregion = \"garage\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nmax_attempts = 3\n",
        g.endpoint, g.key_id, g.secret
    );
    let config = vault::config::Config::parse(&text).unwrap();
    assert!(
        !format!("{config:?}").contains(&g.secret),
        "Debug must not show the secret"
    );
    let store = vault::backend::open_with(config.store.as_deref().unwrap(), &config.s3).unwrap();
    assert_eq!(store.location(), format!("s3://{bucket}/host1"));
    store.create().unwrap();
    store.put(Kind::Config, "config", b"{\"v\":1}").unwrap();
    assert_eq!(store.get(Kind::Config, "config").unwrap(), b"{\"v\":1}");
    assert!(matches!(store.create(), Err(Error::StoreExists(_))));
}

#[test]
fn failed_presigned_put_names_the_object_and_never_its_signature() {
    let g = garage::shared();
    let proxy = FaultProxy::start(g.s3_addr, Settings::default());
    // Garage takes no session tokens but ignores one; with it the URL carries all three.
    let token = "vault-test-session-token-not-secret";
    let cfg = S3Config {
        session_token: Some(token.into()),
        ..through(&proxy, 20)
    };
    let (_, backend) = fresh_s3(&cfg, "presigned");
    backend.create().unwrap();
    backend.put(Kind::Config, "config", b"{}").unwrap();
    let name = id(6);
    let key = backend.key(Kind::Packs, &name);
    let secrets = [
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
    ];
    for fault in [FaultKind::Reset, FaultKind::SlowDown] {
        proxy.clear_log();
        proxy.update(|s| s.rule = Some(Box::new(move |r| (r.method == "PUT").then_some(fault))));
        let err = backend
            .put_bytes(Kind::Packs, &name, bytes::Bytes::from(vec![6u8; 4096]))
            .unwrap_err();
        let text = format!("{err} {err:?}");
        let presigned = proxy
            .requests()
            .into_iter()
            .find(|r| r.method == "PUT")
            .expect("the put reached the proxy");
        for secret in secrets {
            assert!(
                presigned.target.contains(&format!("{secret}=")),
                "the pack went to a presigned URL: {}",
                presigned.target
            );
        }
        assert!(text.contains(&key), "{fault:?}: {text}");
        for secret in secrets {
            assert!(
                !text
                    .to_ascii_lowercase()
                    .contains(&secret.to_ascii_lowercase()),
                "{fault:?}: {secret} in {text}"
            );
        }
        assert!(
            !text.contains(&g.secret) && !text.contains(token),
            "{fault:?}: {text}"
        );
    }
    assert!(!backend.exists(Kind::Packs, &name).unwrap());
}
