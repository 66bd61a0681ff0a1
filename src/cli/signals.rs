//! SIGINT and SIGTERM: stop cleanly.
//!
//! [`install`] starts one thread that waits for the signals. The first one raises the
//! library's cancellation flag ([`vault::progress::cancel`]): long loops stop at their
//! next safe point, leases are released as the error unwinds, and the command says what
//! was kept. Functions registered with [`on_signal`] run on that thread first (for
//! example to stop a child process). A second signal ends the process at once with
//! status 128 + signal number.
//!
//! Invariant: nothing here runs inside a signal handler; the handler (signal-hook's)
//! only wakes the thread.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

type Hook = Box<dyn Fn(i32) + Send>;

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Starts listening for SIGINT and SIGTERM. Call once, early in `main`.
pub fn install() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
                    std::process::exit(128 + sig);
                }
                crate::errln!(
                    "vault: {} received: stopping at the next safe point (send it again to stop at once)",
                    name(sig)
                );
                for hook in HOOKS.lock().unwrap().iter() {
                    hook(sig);
                }
                vault::progress::cancel();
            }
        })?;
    Ok(())
}

/// Runs `hook` on the signal thread when the first SIGINT or SIGTERM arrives.
pub fn on_signal(hook: impl Fn(i32) + Send + 'static) {
    HOOKS.lock().unwrap().push(Box::new(hook));
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit status for a command stopped by `sig`: 128 + its number (130, 143).
pub fn exit_status(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
