//! Runs `[hooks]` / `[hooks.restore]` around an operation and prints their output to
//! vault's log (stderr), plus the SIGINT/SIGTERM flag that lets the operation stop
//! cleanly so that `after` still runs.

use anyhow::{anyhow, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vault::hooks::{HookEnv, HookKind, HookSet};

/// Set on the first SIGINT or SIGTERM (by the signal thread of [`super::signals`], which
/// also ends the process with 128 + the signal's number on a second one).
pub fn install_signal_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    super::signals::on_signal(move |_| set.store(true, Ordering::SeqCst));
    // A signal that came before the hook was in place has already been received.
    if super::signals::received().is_some() {
        flag.store(true, Ordering::SeqCst);
    }
    flag
}

/// Outcome of the operation the hooks surround.
pub struct Finished {
    /// Exit code the operation chose (0 ok, 3 partial), or the error.
    pub result: Result<u8>,
    pub snapshot_id: Option<String>,
}

pub struct HookRunner {
    operation: &'static str,
    hooks: HookSet,
    store: String,
    cancel: Arc<AtomicBool>,
    window_start: Option<Instant>,
}

fn log_line(kind: HookKind) -> impl FnMut(&str) {
    move |line: &str| errln!("vault: hook {}: {line}", kind.name())
}

impl HookRunner {
    pub fn new(
        operation: &'static str,
        hooks: HookSet,
        store: String,
        cancel: Arc<AtomicBool>,
    ) -> HookRunner {
        HookRunner {
            operation,
            hooks,
            store,
            cancel,
            window_start: None,
        }
    }

    fn env(&self, status: &str, snapshot_id: Option<String>) -> HookEnv {
        HookEnv {
            operation: self.operation.into(),
            store: self.store.clone(),
            status: status.into(),
            snapshot_id,
        }
    }

    /// Runs `before`. An error means: do not run the operation, call [`Self::finish`].
    pub fn before(&mut self) -> Result<()> {
        let timeout = self.hooks.timeout()?;
        if let Some(argv) = self.hooks.get(HookKind::Before) {
            let env = self.env("running", None);
            vault::hooks::run(
                HookKind::Before,
                argv,
                timeout,
                &env,
                &mut log_line(HookKind::Before),
            )
            .map_err(|e| anyhow!("{e}; the {} was not started", self.operation))?;
            self.window_start = Some(Instant::now());
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(vault::Error::Cancelled {
                operation: self.operation,
            }
            .into());
        }
        Ok(())
    }

    /// Runs `after` (always) and `on_error` (when the operation failed), reports the
    /// window between `before` and `after`, and returns the exit code.
    pub fn finish(self, done: Finished) -> Result<u8> {
        let timeout = self
            .hooks
            .timeout()
            .unwrap_or(vault::hooks::DEFAULT_TIMEOUT);
        let status = match &done.result {
            Ok(0) => "ok",
            Ok(_) => "partial",
            Err(e)
                if e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<vault::Error>(),
                        Some(vault::Error::Cancelled { .. })
                    )
                }) =>
            {
                "interrupted"
            }
            Err(_) => "failed",
        };
        let window = self.window_start.map(|t| t.elapsed());
        let mut after_err = None;
        if let Some(argv) = self.hooks.get(HookKind::After) {
            let env = self.env(status, done.snapshot_id.clone());
            if let Err(e) = vault::hooks::run(
                HookKind::After,
                argv,
                timeout,
                &env,
                &mut log_line(HookKind::After),
            ) {
                after_err = Some(e);
            }
        }
        if let Some(w) = window {
            errln!(
                "vault: {} window (from the end of hook before to the start of hook after): {:.2} s",
                self.operation,
                w.as_secs_f64()
            );
        }
        let failed = done.result.is_err() || after_err.is_some();
        if failed {
            if let Some(argv) = self.hooks.get(HookKind::OnError) {
                let env = self.env(
                    if done.result.is_ok() {
                        "failed"
                    } else {
                        status
                    },
                    done.snapshot_id.clone(),
                );
                if let Err(e) = vault::hooks::run(
                    HookKind::OnError,
                    argv,
                    timeout,
                    &env,
                    &mut log_line(HookKind::OnError),
                ) {
                    errln!("vault: error: {e}");
                }
            }
        }
        match (done.result, after_err) {
            (Err(e), Some(a)) => Err(anyhow!("{e:#}; also {a}")),
            (Err(e), None) => Err(e),
            (Ok(_), Some(a)) => Err(anyhow!(
                "the {} finished, but {a}: what `before` stopped may still be stopped",
                self.operation
            )),
            (Ok(code), None) => Ok(code),
        }
    }
}
