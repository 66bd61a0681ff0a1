//! Sealed platform secrets: extraction from a realistic travis.yml, sealing with age to
//! escrow recipients (checked against the stock `age` tool both ways), separation from the
//! snapshotting host's keys, paper sheets, and verifying a restored travis.yml.
//!
//! Needs the stock `age` and `age-keygen` programs (Debian package `age`).

use secrecy::{ExposeSecret, SecretString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;
use vault::backend::local::LocalBackend;
use vault::backend::memory::MemoryBackend;
use vault::backend::{Backend, Kind};
use vault::secrets::paper::{self, Problem, SheetInfo};
use vault::secrets::{
    self, EscrowKey, SealReason, SealStatus, SecretsConfig, SecretsError, SourceConfig,
    VerifyStatus,
};

const KEY: &str = "0f3a9d2c7b1e4f5a8c6d2e9b3a7f1c4d5e6b8a9c0d1e2f3a4b5c6d7e8f9a0b1c";
const AMQP: &str = r#"Rabbit:Pa55 "quoted" it's #notacomment"#;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/travis.yml")
}

fn config_for(files: &[&Path]) -> SecretsConfig {
    SecretsConfig {
        travis_yml: Some(files.iter().map(|p| p.to_path_buf()).collect()),
        ..SecretsConfig::default()
    }
}

fn id_key() -> [u8; 32] {
    [0x5a; 32]
}

/// Seals the sources of the travis.yml fixture now, with the test fingerprint key.
fn seal_fixture(
    backend: &dyn vault::backend::Backend,
) -> Result<Vec<secrets::SealOutcome>, SecretsError> {
    secrets::seal_changed(
        backend,
        &config_for(&[&fixture()]),
        &fp_key(),
        SystemTime::now(),
        "test-host",
    )
}

fn fp_key() -> [u8; 32] {
    blake3::derive_key("vault v1 secret fingerprint", &id_key())
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `age-keygen -o DIR/NAME`: the identity file and its public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen runs (apt-get install age)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&path).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();
    (path, public)
}

fn key_from_file(path: &Path) -> EscrowKey {
    let mut k = EscrowKey::new();
    k.add_identity_file(path).unwrap();
    k
}

fn local_store(dir: &Path) -> LocalBackend {
    let b = LocalBackend::new(dir);
    b.create().unwrap();
    b.put(Kind::Config, "config", b"{}").unwrap();
    b
}

fn write_yaml(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn read_one(config: &SecretsConfig, name: &str) -> Result<Option<String>, SecretsError> {
    let source = config
        .sources()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    Ok(source
        .read(None)?
        .map(|r| r.value.expose_secret().to_string()))
}

#[test]
fn fixture_key_and_amqp_password_are_extracted_exactly() {
    let config = config_for(&[&fixture()]);
    assert_eq!(read_one(&config, "encryption-key").unwrap().unwrap(), KEY);
    assert_eq!(read_one(&config, "amqp-password").unwrap().unwrap(), AMQP);
}

#[test]
fn quoting_and_nesting_variants() {
    let dir = tempdir();
    let cases: &[(&str, &str)] = &[
        ("encryption:\n  key: plainvalue123\n", "plainvalue123"),
        (
            "encryption:\n  key: 'single '' quoted'\n",
            "single ' quoted",
        ),
        (
            "encryption:\n  key: \"double \\\"quoted\\\" \\\\ x\"\n",
            "double \"quoted\" \\ x",
        ),
        ("encryption:\n  key: |\n    literalblock\n", "literalblock"),
        (
            "encryption:\n  key: >-\n    folded\n    block\n",
            "folded block",
        ),
        ("encryption: scalarform # comment\n", "scalarform"),
        ("encryption: {key: flowform}\n", "flowform"),
        (
            "a:\n  b:\n    - c: 1\n      encryption:\n        key: 0000123\n",
            "0000123",
        ),
        ("encryption:\r\n  key: crlf-value\r\n", "crlf-value"),
        ("encryption:\n  key: 1e10\n", "1e10"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = write_yaml(dir.path(), &format!("t{i}.yml"), text);
        let config = config_for(&[&f]);
        assert_eq!(
            read_one(&config, "encryption-key").unwrap().as_deref(),
            Some(*want),
            "case {i}: {text:?}"
        );
    }
}

#[test]
fn missing_file_entry_and_empty_value_are_clear_errors() {
    let dir = tempdir();
    let absent = dir.path().join("nope/travis.yml");
    let config = config_for(&[&absent]);
    // Reading finds nothing: a quiet `None`, and the error for it names file and entry.
    assert!(read_one(&config, "encryption-key").unwrap().is_none());
    let source = config
        .sources()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "encryption-key")
        .unwrap();
    let msg = source.absent_error(None).to_string();
    assert!(
        msg.contains(&absent.display().to_string()) && msg.contains("encryption"),
        "{msg}"
    );

    let no_entry = write_yaml(dir.path(), "a.yml", "production:\n  amqp:\n    host: x\n");
    let e = read_one(&config_for(&[&no_entry]), "encryption-key")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&no_entry.display().to_string()) && e.contains("`encryption`"),
        "{e}"
    );
    let e = read_one(&config_for(&[&no_entry]), "amqp-password")
        .unwrap_err()
        .to_string();
    assert!(e.contains("amqp.password"), "{e}");

    let empty = write_yaml(
        dir.path(),
        "b.yml",
        "encryption:\n  key: \"\"\namqp:\n  password:\n",
    );
    let e = read_one(&config_for(&[&empty]), "encryption-key")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("empty") && e.contains("encryption.key") && e.contains("b.yml"),
        "{e}"
    );
    let e = read_one(&config_for(&[&empty]), "amqp-password")
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty") && e.contains("amqp.password"), "{e}");

    // `password` alone is in two places with different values: ambiguous, values unsaid.
    let mut config = config_for(&[&fixture()]);
    config.sources.insert(
        "pw".into(),
        SourceConfig {
            files: Some(vec![fixture()]),
            entry: Some("password".into()),
            ..SourceConfig::default()
        },
    );
    let e = read_one(&config, "pw").unwrap_err().to_string();
    assert!(
        e.contains("production.database.password") && e.contains("production.amqp.password"),
        "{e}"
    );
    assert!(!e.contains("Rabbit") && !e.contains("db-not"), "{e}");
}

#[test]
fn worker_host_without_travis_yml_is_a_quiet_skip() {
    let backend = MemoryBackend::new("worker");
    let dir = tempdir();
    let config = config_for(&[&dir.path().join("travis.yml")]);
    // No escrow set either: nothing is needed when there is nothing to seal.
    let outcomes =
        secrets::seal_changed(&backend, &config, &fp_key(), SystemTime::now(), "test-host")
            .unwrap();
    assert_eq!(outcomes.len(), 2);
    for o in &outcomes {
        assert!(matches!(o.status, SealStatus::Absent { .. }), "{o:?}");
    }
    assert!(secrets::list(&backend).unwrap().is_empty());
}

#[test]
fn platform_host_without_escrow_reports_it_per_secret() {
    let backend = MemoryBackend::new("no-escrow");
    let outcomes = seal_fixture(&backend).unwrap();
    for o in &outcomes {
        match &o.status {
            SealStatus::Failed(e @ SecretsError::NoEscrow(_)) => {
                assert!(e.to_string().contains("recipients set"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn sealed_secret_opens_with_stock_age() {
    let dir = tempdir();
    let store = dir.path().join("store");
    let backend = local_store(&store);
    let (identity, public) = keygen(dir.path(), "escrow.txt");
    secrets::init_escrow(&backend, std::slice::from_ref(&public), None).unwrap();
    let outcomes = seal_fixture(&backend).unwrap();
    for o in &outcomes {
        assert!(
            matches!(
                o.status,
                SealStatus::Sealed {
                    reason: SealReason::First,
                    ..
                }
            ),
            "{o:?}"
        );
    }
    for (name, want) in [("encryption-key", KEY), ("amqp-password", AMQP)] {
        let v = secrets::newest(&backend, name).unwrap().unwrap();
        assert_eq!(v.recipients, vec![public.clone()]);
        let path = store.join("secrets").join(v.age_object());
        let raw = fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(want));
        let meta = fs::read_to_string(store.join("secrets").join(v.meta_object())).unwrap();
        assert!(!meta.contains(want) && meta.contains(&hex::encode(v.fingerprint)));
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&identity)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
        // And vault opens it with the same identity file.
        let value =
            secrets::unseal(&backend, &v, &key_from_file(&identity), Some(&fp_key())).unwrap();
        assert_eq!(value.expose_secret(), want);
    }
    // A second identity file in the same store layout: `age -d` with a stranger fails.
    let (stranger, _) = keygen(dir.path(), "stranger.txt");
    let v = secrets::newest(&backend, "encryption-key")
        .unwrap()
        .unwrap();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&stranger)
        .arg(store.join("secrets").join(v.age_object()))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Replaces a version's age object with `data`, updating the hash its metadata records.
fn replace_age_object(backend: &dyn Backend, v: &secrets::SealedVersion, data: &[u8]) {
    backend.put(Kind::Secrets, &v.age_object(), data).unwrap();
    let meta = backend.get(Kind::Secrets, &v.meta_object()).unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    meta["age_blake3"] = blake3::hash(data).to_hex().to_string().into();
    backend
        .put(
            Kind::Secrets,
            &v.meta_object(),
            &serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
}

#[test]
fn age_files_from_stock_age_are_accepted() {
    let dir = tempdir();
    let backend = local_store(&dir.path().join("store"));
    let (identity, public) = keygen(dir.path(), "escrow.txt");
    secrets::init_escrow(&backend, std::slice::from_ref(&public), None).unwrap();
    seal_fixture(&backend).unwrap();
    let v = secrets::newest(&backend, "amqp-password").unwrap().unwrap();
    for armor in [false, true] {
        let mut cmd = Command::new("age");
        cmd.arg("-r").arg(&public);
        if armor {
            cmd.arg("-a");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(AMQP.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        replace_age_object(&backend, &v, &out.stdout);
        let v = secrets::newest(&backend, "amqp-password").unwrap().unwrap();
        let value =
            secrets::unseal(&backend, &v, &key_from_file(&identity), Some(&fp_key())).unwrap();
        assert_eq!(value.expose_secret(), AMQP, "armor {armor}");
    }
    // A replaced object whose hash the metadata does not record is refused.
    backend
        .put(Kind::Secrets, &v.age_object(), b"age-encryption.org/v1\n")
        .unwrap();
    let v = secrets::newest(&backend, "amqp-password").unwrap().unwrap();
    let e = secrets::unseal(&backend, &v, &key_from_file(&identity), None).unwrap_err();
    assert!(e.is_corruption(), "{e}");
}

/// An age identity string for 32 raw bytes (Bech32, HRP `age-secret-key-`), to try the
/// snapshotting host's key material as if it were an X25519 identity.
fn as_age_identity(bytes: &[u8; 32]) -> String {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn polymod(values: &[u8]) -> u32 {
        const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
        let mut chk = 1u32;
        for &v in values {
            let b = chk >> 25;
            chk = (chk & 0x1ffffff) << 5 ^ v as u32;
            for (i, g) in GEN.iter().enumerate() {
                if (b >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }
    let hrp = "age-secret-key-";
    let mut data = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            data.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        data.push(((acc << (5 - bits)) & 31) as u8);
    }
    let mut values: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    values.extend(&data);
    values.extend([0u8; 6]);
    let pm = polymod(&values) ^ 1;
    let checksum: Vec<u8> = (0..6).map(|i| ((pm >> (5 * (5 - i))) & 31) as u8).collect();
    let mut s = format!("{hrp}1");
    for d in data.iter().chain(&checksum) {
        s.push(CHARSET[*d as usize] as char);
    }
    s.to_uppercase()
}

#[test]
fn snapshot_host_keys_and_reader_identity_cannot_unseal() {
    let dir = tempdir();
    let store = dir.path().join("store");
    let backend = LocalBackend::new(&store);
    backend.create().unwrap();
    // The store's reader identity, listed in its config as the lead's `init` does.
    let (reader, reader_public) = keygen(dir.path(), "reader.txt");
    backend
        .put(
            Kind::Config,
            "config",
            serde_json::json!({ "recipients": [reader_public] })
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    // The reader's recipient cannot be an escrow recipient.
    let e = secrets::init_escrow(&backend, std::slice::from_ref(&reader_public), None).unwrap_err();
    assert!(matches!(e, SecretsError::NotSeparate(_)), "{e}");

    let (escrow, escrow_public) = keygen(dir.path(), "escrow.txt");
    secrets::set_escrow_with(
        &backend,
        &[escrow_public],
        Some(SecretString::from("correct horse battery staple")),
        Some(10),
        SystemTime::now(),
    )
    .unwrap();
    seal_fixture(&backend).unwrap();
    let v = secrets::newest(&backend, "encryption-key")
        .unwrap()
        .unwrap();

    // What the snapshotting host holds, tried every way it could be used.
    let mut attempts: Vec<(String, EscrowKey)> =
        vec![("reader identity".into(), key_from_file(&reader))];
    for (label, bytes) in [("id key", id_key()), ("fingerprint key", fp_key())] {
        let mut k = EscrowKey::new();
        k.add_identities(as_age_identity(&bytes).as_bytes(), label)
            .unwrap();
        attempts.push((format!("{label} as an identity"), k));
        for p in [
            hex::encode(bytes),
            String::from_utf8_lossy(&bytes).into_owned(),
        ] {
            let mut k = EscrowKey::new();
            k.set_passphrase(SecretString::from(p));
            attempts.push((format!("{label} as a passphrase"), k));
        }
    }
    for (label, key) in &attempts {
        match secrets::unseal(&backend, &v, key, Some(&fp_key())) {
            Err(SecretsError::NotARecipient { .. }) | Err(SecretsError::WrongPassphrase { .. }) => {
            }
            other => panic!("{label}: {:?}", other.map(|_| "OPENED")),
        }
    }
    // Every object in the store refuses the reader identity, with stock age too.
    for obj in backend.list(Kind::Secrets).unwrap() {
        if obj.name.ends_with("-meta")
            || obj.name.starts_with("escrow-") && !obj.name.ends_with("-passphrase")
        {
            continue;
        }
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&reader)
            .arg(store.join("secrets").join(&obj.name))
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{} opened with the reader identity",
            obj.name
        );
    }
    // The escrow identity and the escrow passphrase do open it.
    assert_eq!(
        secrets::unseal(&backend, &v, &key_from_file(&escrow), Some(&fp_key()))
            .unwrap()
            .expose_secret(),
        KEY
    );
    let mut k = EscrowKey::new();
    k.set_passphrase(SecretString::from("correct horse battery staple"));
    assert_eq!(
        secrets::unseal(&backend, &v, &k, Some(&fp_key()))
            .unwrap()
            .expose_secret(),
        KEY
    );
    let mut wrong = EscrowKey::new();
    wrong.set_passphrase(SecretString::from("correct horse battery stable"));
    let e = secrets::unseal(&backend, &v, &wrong, None).unwrap_err();
    assert!(matches!(e, SecretsError::WrongPassphrase { .. }), "{e}");
}

#[test]
fn changes_are_sealed_as_new_versions_and_old_ones_kept() {
    let dir = tempdir();
    let backend = MemoryBackend::new("changes");
    let (id1, pub1) = keygen(dir.path(), "one.txt");
    let (id2, pub2) = keygen(dir.path(), "two.txt");
    secrets::init_escrow(&backend, std::slice::from_ref(&pub1), None).unwrap();
    assert!(matches!(
        secrets::init_escrow(&backend, std::slice::from_ref(&pub2), None),
        Err(SecretsError::EscrowExists(_))
    ));
    let travis = write_yaml(
        dir.path(),
        "travis.yml",
        &fs::read_to_string(fixture()).unwrap(),
    );
    let config = config_for(&[&travis]);
    let status = |outcomes: &[secrets::SealOutcome], name: &str| -> String {
        let o = outcomes.iter().find(|o| o.name == name).unwrap();
        match &o.status {
            SealStatus::Sealed { reason, version } => {
                format!("sealed {reason:?} {}", version.number)
            }
            SealStatus::Unchanged { version } => format!("unchanged {}", version.number),
            other => format!("{other:?}"),
        }
    };
    let now = SystemTime::now();
    let o = secrets::seal_changed(&backend, &config, &fp_key(), now, "test-host").unwrap();
    assert_eq!(status(&o, "encryption-key"), "sealed First 1");
    let o = secrets::seal_changed(&backend, &config, &fp_key(), now, "test-host").unwrap();
    assert_eq!(status(&o, "encryption-key"), "unchanged 1");
    assert_eq!(status(&o, "amqp-password"), "unchanged 1");

    let new_key = "ffff".repeat(16);
    fs::write(
        &travis,
        fs::read_to_string(fixture())
            .unwrap()
            .replace(KEY, &new_key),
    )
    .unwrap();
    // Same clock reading: the new version still sorts after the old one.
    let o = secrets::seal_changed(&backend, &config, &fp_key(), now, "test-host").unwrap();
    assert_eq!(status(&o, "encryption-key"), "sealed Changed 2");
    assert_eq!(status(&o, "amqp-password"), "unchanged 1");

    // New escrow recipients: unchanged values are sealed again, to the new set only.
    let set = secrets::set_escrow(&backend, std::slice::from_ref(&pub2), None).unwrap();
    assert_eq!(set.serial, 2);
    let o = secrets::seal_changed(&backend, &config, &fp_key(), now, "test-host").unwrap();
    assert_eq!(status(&o, "encryption-key"), "sealed NewRecipients 3");
    assert_eq!(status(&o, "amqp-password"), "sealed NewRecipients 2");

    let versions = secrets::versions(&backend, "encryption-key").unwrap();
    assert_eq!(
        versions.iter().map(|v| v.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        versions.iter().map(|v| v.escrow).collect::<Vec<_>>(),
        vec![1, 1, 2]
    );
    assert_eq!(versions[0].fingerprint, versions[0].fingerprint);
    assert_ne!(versions[0].fingerprint, versions[1].fingerprint);
    assert_eq!(versions[1].fingerprint, versions[2].fingerprint);
    let (k1, k2) = (key_from_file(&id1), key_from_file(&id2));
    assert_eq!(
        secrets::unseal(&backend, &versions[0], &k1, None)
            .unwrap()
            .expose_secret(),
        KEY
    );
    assert_eq!(
        secrets::unseal(&backend, &versions[1], &k1, None)
            .unwrap()
            .expose_secret(),
        new_key
    );
    assert_eq!(
        secrets::unseal(&backend, &versions[2], &k2, None)
            .unwrap()
            .expose_secret(),
        new_key
    );
    let e = secrets::unseal(&backend, &versions[2], &k1, None).unwrap_err();
    assert!(matches!(e, SecretsError::NotARecipient { .. }), "{e}");
    assert!(e.to_string().contains(&pub2), "{e}");
    assert!(matches!(
        secrets::unseal(&backend, &versions[0], &k2, None),
        Err(SecretsError::NotARecipient { .. })
    ));
    // find_version by number, and nothing for an unknown name.
    assert_eq!(
        secrets::find_version(&backend, "encryption-key", Some(2)).unwrap(),
        versions[1]
    );
    assert!(matches!(
        secrets::find_version(&backend, "nope", None),
        Err(SecretsError::NotSealed { .. })
    ));
}

#[test]
fn an_interrupted_seal_leaves_no_version() {
    let dir = tempdir();
    let backend = MemoryBackend::new("interrupted");
    let (_, public) = keygen(dir.path(), "e.txt");
    secrets::init_escrow(&backend, &[public], None).unwrap();
    seal_fixture(&backend).unwrap();
    let v = secrets::newest(&backend, "encryption-key")
        .unwrap()
        .unwrap();
    backend.delete(Kind::Secrets, &v.meta_object()).unwrap();
    assert!(secrets::newest(&backend, "encryption-key")
        .unwrap()
        .is_none());
    let o = seal_fixture(&backend).unwrap();
    assert!(o.iter().any(|o| o.name == "encryption-key"
        && matches!(
            o.status,
            SealStatus::Sealed {
                reason: SealReason::First,
                ..
            }
        )));
}

fn rows(sheet: &str) -> Vec<String> {
    sheet
        .lines()
        .filter(|l| {
            l.len() > 3 && l.as_bytes()[..2].iter().all(u8::is_ascii_digit) && &l[2..3] == ":"
        })
        .map(str::to_string)
        .collect()
}

/// Replaces character `pos` (0-based, counting only the row's group characters) of row
/// `row` (1-based) with `c`.
fn with_typo(sheet: &str, row: usize, pos: usize, c: char) -> String {
    let mut out = String::new();
    for line in sheet.lines() {
        if line.starts_with(&format!("{row:02}:")) {
            let mut tokens: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let group = 1 + pos / paper::GROUP_CHARS;
            let mut chars: Vec<char> = tokens[group].chars().collect();
            chars[pos % paper::GROUP_CHARS] = c;
            tokens[group] = chars.into_iter().collect();
            out.push_str(&tokens.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn sweep(secret: &str, alphabet: &[char]) -> usize {
    let sheet = paper::render(&SecretString::from(secret), &SheetInfo::default()).to_string();
    assert_eq!(
        paper::read_back(&sheet).unwrap().secret.expose_secret(),
        secret
    );
    let rows = rows(&sheet);
    let mut checked = 0;
    for (r, line) in rows.iter().enumerate() {
        // Row number, the groups, then the row check.
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let chars: Vec<char> = tokens[1..tokens.len() - 1].concat().chars().collect();
        for (pos, &original) in chars.iter().enumerate() {
            for &c in alphabet {
                if c == original {
                    continue;
                }
                let typed = with_typo(&sheet, r + 1, pos, c);
                let err = paper::read_back(&typed).expect_err("a typo must be caught");
                let want = Problem::Typo {
                    row: r + 1,
                    group: pos / paper::GROUP_CHARS + 1,
                    char: pos % paper::GROUP_CHARS + 1,
                };
                assert_eq!(
                    err.problems,
                    vec![want.clone()],
                    "row {} pos {pos} -> {c:?}",
                    r + 1
                );
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("row {:02}, group {}", r + 1, pos / 4 + 1)),
                    "{msg}"
                );
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn paper_locates_every_one_character_typo() {
    // Text sheets: every position of every group, every other printable character.
    let printable: Vec<char> = ('!'..='~').collect();
    assert_eq!(sweep(KEY, &printable), KEY.len() * 93);
    let odd = "Ab3$-x_9~{}|q";
    assert_eq!(sweep(odd, &printable), odd.len() * 93);
    // Hex sheets (the AMQP password has spaces): every other hex digit.
    let hex: Vec<char> = "0123456789abcdef".chars().collect();
    assert_eq!(sweep(AMQP, &hex), AMQP.len() * 2 * 15);
    // A non-hex character on a hex sheet is named where it is.
    let sheet = paper::render(&SecretString::from(AMQP), &SheetInfo::default()).to_string();
    let err = paper::read_back(&with_typo(&sheet, 2, 6, 'g')).unwrap_err();
    assert_eq!(
        err.problems,
        vec![Problem::BadChar {
            row: 2,
            group: 2,
            char: 3
        }]
    );
}

#[test]
fn paper_catches_other_slips() {
    let sheet = paper::render(&SecretString::from(KEY), &SheetInfo::default()).to_string();
    let r = rows(&sheet);
    // Two rows swapped.
    let swapped = sheet
        .replace(&r[0], "@@ROW@@")
        .replace(&r[1], &r[0].replacen("01:", "02:", 1))
        .replace("@@ROW@@", &r[1].replacen("02:", "01:", 1));
    let err = paper::read_back(&swapped).unwrap_err();
    assert!(err.problems.len() == 2, "{err}");
    // A character left out of a group.
    let mut t: Vec<String> = r[2].split_whitespace().map(str::to_string).collect();
    t[3].remove(0);
    let short = sheet.replacen(&r[2], &t.join(" "), 1);
    let err = paper::read_back(&short).unwrap_err();
    assert_eq!(
        err.problems,
        vec![Problem::GroupLength {
            row: 3,
            group: 3,
            found: 3,
            expected: 4
        }]
    );
    // A row left out.
    let missing = sheet.replace(&format!("{}\n", r[3]), "");
    let err = paper::read_back(&missing).unwrap_err();
    assert!(err.to_string().contains("row 04: missing"), "{err}");
    // Lowercase row checks and O for 0 are fine.
    let relaxed = sheet.to_string().replace(&r[0], &r[0].to_lowercase());
    assert_eq!(
        paper::read_back(&relaxed).unwrap().secret.expose_secret(),
        KEY
    );
}

#[test]
fn paper_sheet_of_a_sealed_secret() {
    let dir = tempdir();
    let backend = MemoryBackend::new("paper");
    let (identity, public) = keygen(dir.path(), "e.txt");
    secrets::init_escrow(&backend, &[public], None).unwrap();
    seal_fixture(&backend).unwrap();
    let v = secrets::newest(&backend, "encryption-key")
        .unwrap()
        .unwrap();
    let value = secrets::unseal(&backend, &v, &key_from_file(&identity), None).unwrap();
    let info = SheetInfo {
        name: v.name.clone(),
        store: "/var/backups/vault".into(),
        sealed: v.sealed_time(),
        fingerprint: v.short_fingerprint(),
        ..SheetInfo::default()
    };
    let sheet = paper::render(&value, &info);
    for needle in [
        "/var/backups/vault",
        &v.sealed_time(),
        &v.short_fingerprint(),
        "encryption-key",
        "check:",
    ] {
        assert!(
            sheet.contains(needle),
            "{needle} missing from\n{}",
            sheet.as_str()
        );
    }
    // Only the rows hold the key: grouped, never in one piece.
    assert!(!sheet.contains(KEY));
    assert_eq!(
        paper::read_back(&sheet).unwrap().secret.expose_secret(),
        KEY
    );
}

#[test]
fn verify_a_restored_travis_yml() {
    let dir = tempdir();
    let backend = MemoryBackend::new("verify");
    let (identity, public) = keygen(dir.path(), "e.txt");
    secrets::init_escrow(&backend, &[public], None).unwrap();
    let live = write_yaml(
        dir.path(),
        "live.yml",
        &fs::read_to_string(fixture()).unwrap(),
    );
    secrets::seal_changed(
        &backend,
        &config_for(&[&live]),
        &fp_key(),
        SystemTime::now(),
        "test-host",
    )
    .unwrap();

    // As restored: ROOT/etc/travis/travis.yml, checked with the default-style path.
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("etc/travis")).unwrap();
    let restored = root.join("etc/travis/travis.yml");
    fs::copy(fixture(), &restored).unwrap();
    let restore_config = config_for(&[Path::new("/etc/travis/travis.yml")]);
    let sources = restore_config.sources().unwrap();
    let escrow = key_from_file(&identity);

    let check = |fpk: Option<&[u8; 32]>, key: Option<&EscrowKey>| -> Vec<String> {
        let outcomes = secrets::verify(&backend, &sources, Some(&root), fpk, key).unwrap();
        let text = format!("{outcomes:?}");
        assert!(!text.contains(KEY) && !text.contains("Rabbit"), "{text}");
        outcomes
            .iter()
            .map(|o| match &o.status {
                VerifyStatus::Matches => format!("{} ok", o.name),
                VerifyStatus::MatchesOlder { number } => format!("{} older {number}", o.name),
                VerifyStatus::Differs => format!("{} differs", o.name),
                other => format!("{} {other:?}", o.name),
            })
            .collect()
    };
    let fpk = fp_key();
    assert_eq!(
        check(Some(&fpk), None),
        ["amqp-password ok", "encryption-key ok"]
    );
    assert_eq!(
        check(None, Some(&escrow)),
        ["amqp-password ok", "encryption-key ok"]
    );

    // A different key in the restored file.
    fs::write(
        &restored,
        fs::read_to_string(fixture())
            .unwrap()
            .replace(KEY, &"1".repeat(64)),
    )
    .unwrap();
    assert_eq!(
        check(Some(&fpk), None),
        ["amqp-password ok", "encryption-key differs"]
    );
    assert_eq!(
        check(None, Some(&escrow)),
        ["amqp-password ok", "encryption-key differs"]
    );

    // The live key changed and was sealed again; the restored file has the old one.
    fs::copy(fixture(), &restored).unwrap();
    fs::write(
        &live,
        fs::read_to_string(fixture())
            .unwrap()
            .replace(KEY, &"2".repeat(64)),
    )
    .unwrap();
    secrets::seal_changed(
        &backend,
        &config_for(&[&live]),
        &fp_key(),
        SystemTime::now(),
        "test-host",
    )
    .unwrap();
    assert_eq!(
        check(Some(&fpk), None),
        ["amqp-password ok", "encryption-key older 1"]
    );

    // Nothing restored there at all.
    fs::remove_file(&restored).unwrap();
    let outcomes = secrets::verify(&backend, &sources, Some(&root), Some(&fpk), None).unwrap();
    for o in &outcomes {
        match &o.status {
            VerifyStatus::Absent { reason } => {
                assert!(reason.contains(&restored.display().to_string()), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Without any key, verify says what it needs.
    let e = secrets::verify(&backend, &sources, Some(&root), None, None).unwrap_err();
    assert!(matches!(e, SecretsError::NeedKey(_)), "{e}");
}

// ---- Black-box tests of `vault secrets ...` ----

/// The store passphrase (so `init` keeps the reader identity in the store, not in a file
/// under /etc/vault).
const STORE_PASS: (&str, &str) = ("VAULT_PASSPHRASE", "store passphrase for tests");

struct VaultCli {
    dir: tempfile::TempDir,
}

impl VaultCli {
    /// A fresh store made by `vault init`, with a config whose `[secrets]` reads
    /// DIR/live/travis.yml (a copy of the fixture).
    fn new() -> VaultCli {
        let cli = VaultCli::setup();
        cli.ok_env(&["init"], &[STORE_PASS], 0);
        let out = cli.path("reader.txt");
        cli.ok_env(
            &["key", "export-identity", "--out", out.to_str().unwrap()],
            &[STORE_PASS],
            0,
        );
        cli
    }

    /// The folders and config, without a store yet.
    fn setup() -> VaultCli {
        let cli = VaultCli { dir: tempdir() };
        let d = cli.dir.path();
        fs::create_dir_all(d.join("live")).unwrap();
        fs::create_dir_all(d.join("home")).unwrap();
        fs::copy(fixture(), cli.live()).unwrap();
        fs::write(
            d.join("vault.toml"),
            format!(
                "[secrets]\ntravis_yml = [{:?}]\n",
                cli.live().display().to_string()
            ),
        )
        .unwrap();
        cli
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn live(&self) -> PathBuf {
        self.path("live/travis.yml")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vault"));
        cmd.arg("--store")
            .arg(self.path("store"))
            .arg("--config")
            .arg(self.path("vault.toml"))
            .arg("--writer-key")
            .arg(self.path("writer.json"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_CACHE_HOME", self.path("home/.cache"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env_remove("VAULT_PASSPHRASE")
            .env_remove("VAULT_ESCROW_PASSPHRASE")
            .env_remove("VAULT_IDENTITY_FILE")
            .env_remove("VAULT_PASSPHRASE_FILE")
            .env_remove("VAULT_STORE")
            .env_remove("VAULT_CONFIG")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // No controlling terminal: nothing may wait for a typed passphrase.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd.output().expect("run vault")
    }

    /// Runs and checks the exit code; returns (stdout, stderr). Neither secret may appear
    /// in standard error, whatever the command.
    fn ok(&self, args: &[&str], code: i32) -> (String, String) {
        self.ok_env(args, &[], code)
    }

    fn ok_env(&self, args: &[&str], env: &[(&str, &str)], code: i32) -> (String, String) {
        let out = self.run(args, env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "vault {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        for secret in [KEY, AMQP] {
            assert!(
                !stderr.contains(secret),
                "vault {args:?} printed a secret on stderr: {stderr}"
            );
        }
        (stdout, stderr)
    }

    /// The store's reader identity, exported after `init`.
    fn reader_identity(&self) -> PathBuf {
        self.path("reader.txt")
    }
}

fn no_secret(text: &str) {
    assert!(!text.contains(KEY) && !text.contains(AMQP), "{text}");
}

#[test]
fn cli_seal_list_show_paper_and_verify() {
    let cli = VaultCli::new();
    let (escrow, escrow_public) = keygen(cli.dir.path(), "escrow.txt");
    let reader = cli.reader_identity();
    let reader_public = {
        let out = Command::new("age-keygen")
            .arg("-y")
            .arg(&reader)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let esc = escrow.to_str().unwrap();

    // Before any escrow recipient: sealing says what to do.
    let (_, err) = cli.ok(&["secrets", "seal"], 1);
    assert!(err.contains("recipients set"), "{err}");
    // The store's reader cannot be an escrow recipient.
    let (_, err) = cli.ok(&["secrets", "recipients", "set", &reader_public], 1);
    assert!(err.contains("reader"), "{err}");
    let (out, _) = cli.ok(&["secrets", "recipients", "set", &escrow_public], 0);
    assert!(out.contains(&escrow_public), "{out}");

    let (out, err) = cli.ok(&["secrets", "seal"], 0);
    no_secret(&out);
    assert!(err.contains("encryption-key: sealed version 1"), "{err}");
    let (_, err) = cli.ok(&["secrets", "seal"], 0);
    assert!(err.contains("encryption-key: unchanged"), "{err}");

    let (out, _) = cli.ok(&["secrets", "list"], 0);
    no_secret(&out);
    assert!(
        out.contains("encryption-key")
            && out.contains("amqp-password")
            && out.contains(&escrow_public),
        "{out}"
    );

    // Show: the escrow identity opens it, the store's reader identity does not.
    let (out, _) = cli.ok(
        &[
            "secrets",
            "show",
            "encryption-key",
            "--escrow-identity",
            esc,
        ],
        0,
    );
    assert_eq!(out, format!("{KEY}\n"));
    let (out, _) = cli.ok(
        &["secrets", "show", "amqp-password", "--escrow-identity", esc],
        0,
    );
    assert_eq!(out, format!("{AMQP}\n"));
    let (out, err) = cli.ok(
        &[
            "secrets",
            "show",
            "encryption-key",
            "--escrow-identity",
            reader.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        out.is_empty() && err.contains("none of the given identities"),
        "{err}"
    );
    let (out, _) = cli.ok(
        &[
            "secrets",
            "show",
            "encryption-key",
            "--identity",
            reader.to_str().unwrap(),
        ],
        1,
    );
    assert!(out.is_empty());

    // Paper, typed back in.
    let (sheet, _) = cli.ok(
        &[
            "secrets",
            "paper",
            "encryption-key",
            "--escrow-identity",
            esc,
        ],
        0,
    );
    assert!(
        sheet.contains(&cli.path("store").display().to_string()),
        "{sheet}"
    );
    fs::write(cli.path("typed.txt"), &sheet).unwrap();
    let (out, err) = cli.ok(
        &[
            "secrets",
            "show",
            "--from-paper",
            cli.path("typed.txt").to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(out, format!("{KEY}\n"), "{err}");
    let typo = with_typo(
        &sheet,
        2,
        5,
        if KEY.as_bytes()[25] == b'x' { 'y' } else { 'x' },
    );
    fs::write(cli.path("typo.txt"), typo).unwrap();
    let (out, err) = cli.ok(
        &[
            "secrets",
            "show",
            "--from-paper",
            cli.path("typo.txt").to_str().unwrap(),
        ],
        1,
    );
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("row 02, group 2, character 2"), "{err}");

    // Verify a restored tree: ROOT/<live path>.
    let root = cli.path("root");
    let restored = secrets::source::under_root(&root, &cli.live());
    fs::create_dir_all(restored.parent().unwrap()).unwrap();
    fs::copy(fixture(), &restored).unwrap();
    let root_arg = root.to_str().unwrap();
    let (out, err) = cli.ok(&["secrets", "verify", "--root", root_arg], 0);
    no_secret(&out);
    assert!(
        err.contains("encryption-key: OK") && err.contains("amqp-password: OK"),
        "{err}"
    );
    let other = "9".repeat(64);
    fs::write(
        &restored,
        fs::read_to_string(fixture()).unwrap().replace(KEY, &other),
    )
    .unwrap();
    let (out, err) = cli.ok(&["secrets", "verify", "--root", root_arg], 1);
    assert!(!out.contains(&other) && !err.contains(&other));
    assert!(
        err.contains("encryption-key: DIFFERS") && err.contains("amqp-password: OK"),
        "{err}"
    );
    // The same check with only the escrow identity (a restore host without writer key).
    fs::remove_file(cli.path("writer.json")).unwrap();
    let (_, err) = cli.ok(
        &[
            "secrets",
            "verify",
            "--root",
            root_arg,
            "--escrow-identity",
            esc,
        ],
        1,
    );
    assert!(err.contains("encryption-key: DIFFERS"), "{err}");
}

#[test]
fn cli_init_escrow_and_snapshots_seal_changes() {
    let cli = VaultCli::setup();
    let (escrow, escrow_public) = keygen(cli.dir.path(), "escrow.txt");
    let esc = escrow.to_str().unwrap();
    let pass = [("VAULT_ESCROW_PASSPHRASE", "escrow passphrase for the safe")];
    let (out, _) = cli.ok_env(
        &[
            "init",
            "--escrow-recipient",
            &escrow_public,
            "--escrow-passphrase",
        ],
        &[pass[0], STORE_PASS],
        0,
    );
    assert!(
        out.contains(&escrow_public) && out.contains("passphrase"),
        "{out}"
    );

    // Every snapshot seals what changed.
    let data = cli.path("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    let data_arg = data.to_str().unwrap();
    let (_, err) = cli.ok(&["snapshot", data_arg], 0);
    assert!(err.contains("encryption-key: sealed version 1"), "{err}");
    let (_, err) = cli.ok(&["snapshot", data_arg], 0);
    assert!(!err.contains("sealed version"), "{err}");
    let new_key = "abcd".repeat(16);
    fs::write(
        cli.live(),
        fs::read_to_string(fixture())
            .unwrap()
            .replace(KEY, &new_key),
    )
    .unwrap();
    let (_, err) = cli.ok(&["snapshot", data_arg], 0);
    assert!(!err.contains(&new_key), "{err}");
    assert!(
        err.contains("encryption-key: sealed version 2 (value changed)"),
        "{err}"
    );
    assert!(!err.contains("amqp-password: sealed"), "{err}");

    // Both versions open: with the escrow identity, and with the escrow passphrase.
    let (out, _) = cli.ok(
        &[
            "secrets",
            "show",
            "encryption-key",
            "--number",
            "1",
            "--escrow-identity",
            esc,
        ],
        0,
    );
    assert_eq!(out, format!("{KEY}\n"));
    let (out, _) = cli.ok_env(&["secrets", "show", "encryption-key"], &pass, 0);
    assert_eq!(out, format!("{new_key}\n"));
    let (out, err) = cli.ok_env(
        &["secrets", "show", "encryption-key"],
        &[("VAULT_ESCROW_PASSPHRASE", "not it")],
        1,
    );
    assert!(
        out.is_empty() && err.contains("wrong escrow passphrase"),
        "{err}"
    );
    let (out, _) = cli.ok(&["secrets", "list", "--json"], 0);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let numbers: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "encryption-key")
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2]);

    // A worker host (no travis.yml): snapshots say nothing about secrets.
    fs::write(
        cli.path("vault.toml"),
        format!(
            "[secrets]\ntravis_yml = [{:?}]\n",
            cli.path("none/travis.yml").display().to_string()
        ),
    )
    .unwrap();
    let (_, err) = cli.ok(&["snapshot", data_arg], 0);
    assert!(
        !err.contains("secrets:") && !err.contains("travis.yml"),
        "{err}"
    );
}

/// Two platform hosts seal into one store: each host's values are compared with its own
/// versions only, `--host` picks a host's versions, and a host with none is told which
/// hosts have some.
#[test]
fn two_hosts_seal_into_one_store_and_host_picks_theirs() {
    let cli = VaultCli::new();
    let (escrow, escrow_public) = keygen(cli.dir.path(), "escrow.txt");
    let esc = escrow.to_str().unwrap();
    cli.ok(&["secrets", "recipients", "set", &escrow_public], 0);
    let key_b = "b0b0".repeat(16);
    let live_b = cli.path("live/travis-b.yml");
    fs::write(
        &live_b,
        fs::read_to_string(fixture()).unwrap().replace(KEY, &key_b),
    )
    .unwrap();
    let as_host = |host: &str, travis: &Path| {
        fs::write(
            cli.path("vault.toml"),
            format!(
                "hostname = {host:?}\n[secrets]\ntravis_yml = [{:?}]\n",
                travis.display().to_string()
            ),
        )
        .unwrap();
    };

    as_host("platform-a", &cli.live());
    let (_, err) = cli.ok(&["secrets", "seal"], 0);
    assert!(
        err.contains("encryption-key: sealed version 1 (first seal)"),
        "{err}"
    );
    as_host("platform-b", &live_b);
    let (_, err) = cli.ok(&["secrets", "seal"], 0);
    assert!(
        err.contains("encryption-key: sealed version 2 (first seal)"),
        "{err}"
    );
    assert!(
        err.contains("amqp-password: sealed version 2 (first seal)"),
        "{err}"
    );
    // Host A's value did not change: B's newer version does not make A seal again.
    as_host("platform-a", &cli.live());
    let (_, err) = cli.ok(&["secrets", "seal"], 0);
    assert!(
        err.contains("encryption-key: unchanged since version 1"),
        "{err}"
    );

    let hosts_of = |args: &[&str]| -> Vec<(String, u64)> {
        let (out, _) = cli.ok(args, 0);
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"] == "encryption-key")
            .map(|r| {
                (
                    r["host"].as_str().unwrap().to_string(),
                    r["number"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        hosts_of(&["secrets", "list", "--json"]),
        vec![("platform-a".into(), 1), ("platform-b".into(), 2)]
    );
    assert_eq!(
        hosts_of(&["secrets", "list", "--json", "--host", "platform-a"]),
        vec![("platform-a".into(), 1)]
    );
    assert_eq!(
        hosts_of(&["secrets", "list", "--json", "--host", "platform-b"]),
        vec![("platform-b".into(), 2)]
    );
    let (out, _) = cli.ok(&["secrets", "list", "--host", "platform-a"], 0);
    assert!(
        out.contains("platform-a") && !out.contains("platform-b"),
        "{out}"
    );
    let (out, err) = cli.ok(&["secrets", "list", "--host", "worker-1"], 0);
    assert!(
        out.is_empty() && err.contains("no secrets sealed on host worker-1"),
        "{err}"
    );

    // show: this host's newest by default, another's with --host.
    let show = [
        "secrets",
        "show",
        "encryption-key",
        "--escrow-identity",
        esc,
    ];
    let (out, _) = cli.ok(&show, 0);
    assert_eq!(out, format!("{KEY}\n"));
    let (out, _) = cli.ok(&[&show[..], &["--host", "platform-b"]].concat(), 0);
    assert_eq!(out, format!("{key_b}\n"));
    let (out, err) = cli.ok(&[&show[..], &["--number", "2"]].concat(), 1);
    assert!(
        out.is_empty() && err.contains("sealed on platform-b"),
        "{err}"
    );

    // verify: host A's travis.yml matches host A's newest version (not "an older one").
    let (_, err) = cli.ok(&["secrets", "verify", "encryption-key"], 0);
    assert!(err.contains("encryption-key: OK"), "{err}");
    let (_, err) = cli.ok(
        &[
            "secrets",
            "verify",
            "encryption-key",
            "--host",
            "platform-b",
        ],
        1,
    );
    assert!(err.contains("encryption-key: DIFFERS"), "{err}");

    // A fresh host name has sealed nothing: it is told which hosts have, not given theirs.
    as_host("fresh-host", &cli.live());
    let (out, err) = cli.ok(&show, 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("fresh-host")
            && err.contains("platform-a, platform-b")
            && err.contains("--host"),
        "{err}"
    );
    let (out, _) = cli.ok(&[&show[..], &["--host", "platform-a"]].concat(), 0);
    assert_eq!(out, format!("{KEY}\n"));
}
