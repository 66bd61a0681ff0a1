//! Drawing the library's progress ([`vault::progress`]) while a command runs.
//!
//! - stderr is a terminal: a bar (indicatif) with files and bytes done of the total where
//!   known, rate, ETA and the current path, redrawn a few times a second;
//! - no terminal (cron, systemd): one plain status line on stderr every interval
//!   (`--progress-interval`, `[progress] interval`, default 60 s), so a journal shows a
//!   long upload advancing;
//! - `--json`: the same status as one JSON object per line on stderr, every interval;
//! - `--quiet`: nothing.
//!
//! `--verbose` also names each file a snapshot reads or skips, or a restore writes, on
//! stdout.

use super::commands::human;
use super::output::Mode;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::parallel::Stop;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Parses "60s", "5m", "1h", "500ms" or a bare number of seconds.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write it like 60s, 5m or 1h"))?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "{text:?} is not a duration: write it like 60s, 5m or 1h"
            ))
        }
    };
    if d.is_zero() {
        return Err(format!(
            "{text:?}: the progress interval must be more than 0"
        ));
    }
    Ok(d)
}

/// Draws progress until dropped.
pub struct Reporter {
    stop: Arc<Stop>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    pub fn start(mode: Mode, interval: Duration) -> Reporter {
        let stop = Arc::new(Stop::new());
        if mode == Mode::Verbose {
            vault::progress::set_observer(Some(Box::new(|event, path| {
                if event != vault::progress::FileEvent::Unchanged {
                    outln!("{:<9} {}", event.label(), path.display());
                }
            })));
        }
        let thread = match mode {
            Mode::Quiet => None,
            Mode::Json => Some(spawn(stop.clone(), move |stop| json_lines(stop, interval))),
            Mode::Normal | Mode::Verbose if std::io::stderr().is_terminal() => {
                Some(spawn(stop.clone(), bar))
            }
            Mode::Normal | Mode::Verbose => {
                Some(spawn(stop.clone(), move |stop| plain_lines(stop, interval)))
            }
        };
        Reporter { stop, thread }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        vault::progress::set_observer(None);
    }
}

fn spawn(stop: Arc<Stop>, f: impl FnOnce(&Stop) + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || f(&stop))
}

/// Sleeps until `until` or until stopped (woken at once); false when stopped.
fn wait(stop: &Stop, until: Instant) -> bool {
    stop.sleep_until(until)
}

/// Rate and ETA of the current step, from its start.
struct Rate {
    step: &'static str,
    since: Instant,
}

impl Rate {
    fn update(&mut self, s: &vault::progress::Snapshot) -> (f64, Option<Duration>) {
        if s.step != self.step {
            self.step = s.step;
            self.since = Instant::now();
        }
        let secs = self.since.elapsed().as_secs_f64().max(0.001);
        let rate = s.bytes_done as f64 / secs;
        let eta = (s.bytes_total > s.bytes_done && rate > 0.0)
            .then(|| Duration::from_secs_f64((s.bytes_total - s.bytes_done) as f64 / rate));
        (rate, eta)
    }
}

fn status_text(s: &vault::progress::Snapshot, rate: f64, eta: Option<Duration>) -> String {
    let mut t = format!("{}: {} {}", s.step, s.files_done, s.unit);
    if s.files_total > 0 {
        t.push_str(&format!(" of {}", s.files_total));
    }
    t.push_str(&format!(", {}", human(s.bytes_done)));
    if s.bytes_total > 0 {
        t.push_str(&format!(
            " of {} ({:.0}%)",
            human(s.bytes_total),
            100.0 * s.bytes_done as f64 / s.bytes_total as f64
        ));
    }
    t.push_str(&format!(", {}/s", human(rate as u64)));
    if let Some(eta) = eta {
        t.push_str(&format!(", ETA {}", clock(eta)));
    }
    if !s.current.is_empty() {
        t.push_str(&format!(", at {}", s.current));
    }
    t
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn plain_lines(stop: &Stop, interval: Duration) {
    let mut rate = Rate {
        step: "",
        since: Instant::now(),
    };
    let mut next = Instant::now() + interval;
    while wait(stop, next) {
        next += interval;
        let s = vault::progress::get().snapshot();
        let (r, eta) = rate.update(&s);
        if !s.step.is_empty() {
            errln!("vault: {}", status_text(&s, r, eta));
        }
    }
}

fn json_lines(stop: &Stop, interval: Duration) {
    let mut rate = Rate {
        step: "",
        since: Instant::now(),
    };
    let started = Instant::now();
    let mut next = Instant::now() + interval;
    while wait(stop, next) {
        next += interval;
        let s = vault::progress::get().snapshot();
        let (r, eta) = rate.update(&s);
        if s.step.is_empty() {
            continue;
        }
        let line = serde_json::json!({
            "progress": s.step,
            "unit": s.unit,
            "files_done": s.files_done,
            "files_total": (s.files_total > 0).then_some(s.files_total),
            "bytes_done": s.bytes_done,
            "bytes_total": (s.bytes_total > 0).then_some(s.bytes_total),
            "bytes_per_second": r as u64,
            "eta_seconds": eta.map(|d| d.as_secs()),
            "current": s.current,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        errln!("{line}");
    }
}

fn bar(stop: &Stop) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
    let mut known = None;
    let mut step = "";
    let mut rate = Rate {
        step: "",
        since: Instant::now(),
    };
    while wait(stop, Instant::now() + Duration::from_millis(100)) {
        let s = vault::progress::get().snapshot();
        if s.step.is_empty() {
            continue;
        }
        if s.step != step {
            step = s.step;
            pb.reset();
            known = None;
        }
        let has_total = s.bytes_total > 0;
        if known != Some(has_total) {
            known = Some(has_total);
            let style = if has_total {
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {wide_msg}",
                )
            } else {
                ProgressStyle::with_template(
                    "{spinner} {prefix} {bytes} {bytes_per_sec} {elapsed} {wide_msg}",
                )
            };
            if let Ok(style) = style {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_length(s.bytes_total);
        }
        if has_total {
            pb.set_length(s.bytes_total);
        }
        pb.set_position(s.bytes_done);
        let files = if s.files_total > 0 {
            format!("{}/{} {}", s.files_done, s.files_total, s.unit)
        } else {
            format!("{} {}", s.files_done, s.unit)
        };
        pb.set_prefix(format!("{}: {files}", s.step));
        let _ = rate.update(&s);
        pb.set_message(s.current.clone());
        pb.tick();
    }
    pb.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn status_line_shows_totals_rate_and_eta_when_known() {
        let s = vault::progress::Snapshot {
            step: "restore",
            unit: "files",
            files_done: 3,
            files_total: 10,
            bytes_done: 1024,
            bytes_total: 4096,
            current: "/t/etc/travis/a".into(),
        };
        let t = status_text(&s, 1024.0, Some(Duration::from_secs(3)));
        assert_eq!(
            t,
            "restore: 3 files of 10, 1.0 KiB of 4.0 KiB (25%), 1.0 KiB/s, ETA 0m03s, at /t/etc/travis/a"
        );
    }
}
