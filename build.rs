//! Build information for `vault --version`: the target and the compiler.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=VAULT_BUILD_TARGET={target}");
    println!("cargo:rustc-env=VAULT_BUILD_RUSTC={}", version.trim());
    println!(
        "cargo:rustc-env=VAULT_BUILD_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
