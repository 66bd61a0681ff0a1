//! Build facts for `vault --version`: git commit, build date, target, compiler and profile. Works without
//! network and without `.git` (a source tarball): the commit then comes from
//! `VAULT_GIT_COMMIT` if set, else reads "unknown". `SOURCE_DATE_EPOCH` fixes the date for
//! reproducible builds.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The oldest glibc the binary is linked for, when it is not the build machine's:
/// `VAULT_GLIBC_FLOOR` (set by `.ci/release`), else the `.2.17` suffix cargo-zigbuild
/// puts in the name of its linker wrapper (`zigcc-x86_64-unknown-linux-gnu.2.17-....sh`).
fn glibc_floor(triple: &str) -> Option<String> {
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed=VAULT_GLIBC_FLOOR");
    println!("cargo:rerun-if-env-changed={linker_var}");
    if let Some(v) = std::env::var("VAULT_GLIBC_FLOOR")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return Some(v);
    }
    let linker = std::env::var(linker_var).ok()?;
    let name = std::path::Path::new(&linker)
        .file_name()?
        .to_str()?
        .to_string();
    let rest = name.split_once(&format!("{triple}."))?.1;
    let floor: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let floor = floor.trim_end_matches('.');
    (floor.contains('.') && floor.split('.').all(|p| !p.is_empty())).then(|| floor.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=VAULT_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Rebuild the facts when HEAD moves: HEAD itself, the branch it names, packed refs.
    // Only those: watching all of refs/heads would rebuild whenever any branch moves
    // (other worktrees share it), and a watched file that does not exist rebuilds always.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for p in watch {
        if let Some(path) = git(&["rev-parse", "--git-path", &p]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let commit = std::env::var("VAULT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let triple = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    // A build against an older glibc's symbol versions (cargo-zigbuild's
    // `--target x86_64-unknown-linux-gnu.2.17`) says so: cargo sees the plain triple.
    let target = match glibc_floor(&triple) {
        Some(floor) => format!("{triple}, glibc {floor}+"),
        None => triple,
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=VAULT_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=VAULT_BUILD_DATE={y:04}-{m:02}-{d:02}");
    println!("cargo:rustc-env=VAULT_BUILD_TARGET={target}");
    println!(
        "cargo:rustc-env=VAULT_LONG_VERSION={version} (commit {commit}, built {y:04}-{m:02}-{d:02}, target {target})"
    );
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=VAULT_BUILD_RUSTC={}", rustc_version.trim());
    println!(
        "cargo:rustc-env=VAULT_BUILD_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
