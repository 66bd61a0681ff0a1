//! What every local test server harness needs from the host it runs on.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A name no other test (or test run) uses: `{base}-{pid}-{counter}`.
pub fn unique(base: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{base}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port on 127.0.0.1 that was free a moment ago, chosen at random below the kernel's
/// ephemeral range (32768 and up on Linux), so that no outgoing connection of this or
/// another test takes it in the moment before the server binds it. Another server may
/// still; harnesses retry their start when the server reports its address in use.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        let port = 20000 + (h.finish() % 12000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free 127.0.0.1 port")
        .port()
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}
