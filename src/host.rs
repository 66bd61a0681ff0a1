//! Facts about the machine vault runs on.

/// This machine's host name (the kernel's node name), as snapshots, leases and sealed
/// secrets record it.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
