//! A typed-in paper sheet reads back with no store, no configuration and nothing else in
//! the environment: the sheet carries all it needs, and the output says so.

use std::fs;
use vault::secrets::paper::{self, SheetInfo};

#[test]
fn paper_reads_back_without_store_or_config_in_an_empty_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir(&home).unwrap();
    let secret = secrecy::SecretString::from("0123456789abcdef0123456789abcdef".to_string());
    let info = SheetInfo {
        name: "encryption-key".into(),
        store: "/var/backups/vault".into(),
        sealed: "2026-01-01 00:00:00 UTC on platform".into(),
        version: "1".into(),
        source: "/etc/travis/travis.yml encryption".into(),
        fingerprint: "0000-0000".into(),
        printed: "2026-01-01 00:00:00 UTC".into(),
    };
    let sheet = paper::render(&secret, &info);
    let typed = tmp.path().join("typed.txt");
    fs::write(&typed, sheet.as_bytes()).unwrap();
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_vault"));
    let out = std::process::Command::new(&bin)
        .env_clear()
        .env("HOME", &home)
        .current_dir(tmp.path())
        .args(["secrets", "show", "--from-paper"])
        .arg(&typed)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout, "0123456789abcdef0123456789abcdef\n", "{stderr}");
    assert!(
        stderr.contains("every row checks out") && stderr.contains("no store"),
        "the read-back does not say it needed no store: {stderr}"
    );
    assert!(
        !stderr.contains("0123456789abcdef"),
        "the secret reached standard error"
    );
    // Nothing was created: no store, no cache, no key files.
    assert_eq!(fs::read_dir(&home).unwrap().count(), 0);
}
