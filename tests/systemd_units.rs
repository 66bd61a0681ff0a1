//! The shipped systemd units pass `systemd-analyze verify`, with the vault binary and its
//! man pages in place (as the release installs them).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn units() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut out: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("service" | "timer")
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn units_cover_every_scheduled_job() {
    let names: Vec<String> = units()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for job in ["snapshot", "forget", "check", "copy", "drill"] {
        for kind in ["service", "timer"] {
            let name = format!("vault-{job}.{kind}");
            assert!(names.contains(&name), "config/ lacks {name}");
        }
    }
    assert!(names.contains(&"vault-failure@.service".to_string()));
    for unit in units() {
        let text = fs::read_to_string(&unit).unwrap();
        if unit.extension().unwrap() == "service" && !text.contains("%i failed") {
            assert!(
                text.contains("OnFailure=vault-failure@"),
                "{}",
                unit.display()
            );
            // A path that may be missing on a fresh host must not fail the unit.
            for line in text.lines().filter(|l| l.starts_with("ReadWritePaths=")) {
                for p in line["ReadWritePaths=".len()..].split_whitespace() {
                    assert!(p.starts_with('-'), "{}: {p} without '-'", unit.display());
                }
            }
        }
    }
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "systemd-analyze is missing: install the Debian package `systemd` (`bash .ci/test` does)"
        );
    }
    let v = common::Vault::new();
    let dir = v.path("units");
    let man = v.path("man/man1");
    v.run([std::ffi::OsString::from("manpages"), man.clone().into()])
        .ok();
    let bin = common::vault_bin();
    let mut names = Vec::new();
    for unit in units() {
        let text = fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/local/bin/vault", &bin.display().to_string());
        let name = unit.file_name().unwrap().to_owned();
        fs::write(dir.join(&name), text).unwrap();
        names.push(name);
    }
    let out = common::run_command({
        let mut c = Command::new("systemd-analyze");
        c.arg("verify").args(&names).current_dir(&dir);
        c.env("MANPATH", man.parent().unwrap());
        c.env("SYSTEMD_LOG_LEVEL", "notice");
        c
    });
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stderr.trim().is_empty(),
        "systemd-analyze verify complains: {}",
        out.describe()
    );
}
