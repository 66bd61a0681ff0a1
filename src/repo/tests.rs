//! Unit tests of snapshot signatures, `latest` and the signed config.

use super::*;
use crate::backend::memory::MemoryBackend;
use crate::id::Id;

fn store() -> (Repo, WriterKeys, SigningSecret) {
    let backend: BackendRef = Arc::new(MemoryBackend::new("repo"));
    let created = create_default(backend);
    let admin = SigningSecret::admin_from_identity(&created.identity);
    let mut repo = Repo::open(created.repo.backend.clone()).unwrap();
    repo.authenticate(&admin.public()).unwrap();
    (repo, WriterKeys::from_id_key(created.id_key), admin)
}

fn enrol(repo: &mut Repo, admin: &SigningSecret, name: &str) -> SigningSecret {
    let mut reg = crate::hosts::Registry::load(
        repo.backend.as_ref(),
        &repo.config.store_id,
        &admin.public(),
    )
    .unwrap();
    let key = SigningSecret::generate();
    reg.add(name, &key.public()).unwrap();
    reg.save(repo.backend.as_ref(), admin).unwrap();
    repo.trust.registry = Some(Arc::new(reg));
    key
}

fn snap(host: &str, time: &str) -> Snapshot {
    Snapshot {
        time: time.into(),
        hostname: host.into(),
        username: "root".into(),
        paths: vec![],
        tags: vec![],
        tree: Id::random(),
        summary: Summary::default(),
        program: "test".into(),
        databases: Vec::new(),
    }
}

#[test]
fn host_signatures_decide_latest() {
    let (mut repo, keys, admin) = store();
    let platform = enrol(&mut repo, &admin, "platform-1");
    let worker = enrol(&mut repo, &admin, "worker-1");
    repo.set_signer("platform-1", platform);
    let real = repo
        .save_snapshot(&keys, &snap("platform-1", "2026-11-01T00:00:00+00:00"))
        .unwrap();
    repo.set_signer("worker-1", worker);
    let forged = repo
        .save_snapshot(&keys, &snap("platform-1", "2026-11-02T00:00:00+00:00"))
        .unwrap();
    let future = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let ahead = repo
        .save_snapshot(&keys, &snap("worker-1", &future))
        .unwrap();
    let (_, v) = repo.load_snapshot_checked(&keys, &forged).unwrap();
    assert!(
        matches!(&v.signer, Signer::Unverified(w) if w.contains("worker-1")),
        "{v:?}"
    );
    let (_, v) = repo.load_snapshot_checked(&keys, &ahead).unwrap();
    assert!(v.is_trusted() && !v.fit_for_latest(), "{v:?}");
    assert!(v.future.as_deref().unwrap().contains("ahead"));
    assert_eq!(repo.find_snapshot(&keys, "latest").unwrap().0, real);
    // Without a signing key a signed store takes no snapshot.
    repo.trust.signer = None;
    assert!(repo
        .save_snapshot(&keys, &snap("x", "2026-11-03T00:00:00+00:00"))
        .is_err());
}

#[test]
fn tampered_config_is_refused_naming_it() {
    let (repo, _, admin) = store();
    let mut c = repo.config.clone();
    c.recipients = vec![age::x25519::Identity::generate().to_public().to_string()];
    repo.backend
        .put(Kind::Config, "config", &serde_json::to_vec(&c).unwrap())
        .unwrap();
    let mut reopened = Repo::open(repo.backend.clone()).unwrap();
    assert!(
        reopened.recipients().is_err(),
        "unverified recipients are not used"
    );
    let err = reopened.authenticate(&admin.public()).unwrap_err();
    assert!(err.to_string().contains("store config"), "{err}");
    assert!(reopened.recipients().is_err());
}

#[test]
fn config_signature_vector_is_fixed() {
    // Exact bytes: a change to the signed form (field order, JSON encoding, binding)
    // would make every store's config fail to verify.
    let admin = SigningSecret::from_seed(&[7u8; 32]);
    let config = StoreConfig {
        format: FORMAT_NAME.into(),
        version: SIGNED_VERSION,
        store_id: "00112233445566778899aabbccddeeff".into(),
        created: "2026-12-01T00:00:00+00:00".into(),
        chunker: ChunkerParams {
            min_size: 128 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
        },
        pack_size: 16 << 20,
        compression_level: 2,
        recipients: vec!["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()],
        object_lock: None,
        admin_key: Some(sign::public_hex(&admin.public())),
        signature: None,
    };
    let body = serde_json::to_vec(&config.unsigned()).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!(
            "{{\"format\":\"vault store\",\"version\":2,\"store_id\":\"00112233445566778899aabbccddeeff\",\
             \"created\":\"2026-12-01T00:00:00+00:00\",\"chunker\":{{\"min_size\":131072,\"avg_size\":262144,\
             \"max_size\":1048576}},\"pack_size\":16777216,\"compression_level\":2,\"recipients\":\
             [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"],\"admin_key\":\"{}\"}}",
            sign::public_hex(&admin.public())
        )
    );
    let sig = sign::sign_json(
        &admin,
        "config",
        &config.store_id,
        "config",
        "config",
        &config.unsigned(),
    );
    assert_eq!(sig, CONFIG_SIG_VECTOR);
}

const CONFIG_SIG_VECTOR: &str = "f0190ce39f1682cb41da3d4fd7a36f7fdc42ca0cca4ceaaa64f2301f1db72f66752e80b2a51a058b12d26ca305ffbea01e32d59a73861d52399538e1850f8d05";
