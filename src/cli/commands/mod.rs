//! One file per command: options in, library call, printed result out.

mod check;
mod copy;
mod forget;
mod host;
mod init;
mod key;
mod lock;
mod ls;
mod prune;
mod restore;
mod snapshot;
mod snapshots;
mod upgrade;

pub use check::*;
pub use copy::*;
pub use forget::*;
pub use host::*;
pub use init::*;
pub use key::*;
pub use lock::*;
pub use ls::*;
pub use prune::*;
pub use restore::*;
pub use snapshot::*;
pub use snapshots::*;
pub use upgrade::*;

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
