//! One way to run a job over many items on a few threads, the batches in which small
//! items are handed to a pool of workers, and the signal that stops a thread which
//! otherwise sleeps between rounds of work.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Runs `work` on every item with up to `threads` workers, items taken in order. The
/// first error stops the pool (items already started finish; no new one starts) and is
/// returned; later errors are dropped.
pub fn try_for_each<T: Sync>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let workers = threads.max(1).min(items.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = work(item) {
                        stop.store(true, Ordering::SeqCst);
                        first_err.lock().unwrap().get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match first_err.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Items gathered for one hand-off to a pool of workers: filled until they hold at least
/// `limit` bytes (or one item, when it is larger), so a worker wakes once per batch rather
/// than once per small item.
pub struct Batch<T> {
    items: Vec<T>,
    bytes: u64,
    limit: u64,
}

impl<T> Batch<T> {
    pub fn new(limit: u64) -> Self {
        Batch {
            items: Vec::new(),
            bytes: 0,
            limit,
        }
    }

    /// Adds an item of `bytes` bytes; true once the batch is full and should be handed over.
    pub fn push(&mut self, item: T, bytes: u64) -> bool {
        self.bytes += bytes;
        self.items.push(item);
        self.bytes >= self.limit
    }

    /// The items gathered so far, if any, leaving the batch empty.
    pub fn take(&mut self) -> Option<Vec<T>> {
        self.bytes = 0;
        (!self.items.is_empty()).then(|| std::mem::take(&mut self.items))
    }
}

/// Tells a thread that sleeps between rounds of work (a lease refresher, a progress
/// reporter) to stop, and wakes it at once: whoever waits for that thread to end does
/// not wait out the rest of its sleep.
#[derive(Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    woken: Condvar,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Stops every current and later [`Stop::sleep`].
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.woken.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps for `pause` unless stopped first; false once stopped.
    pub fn sleep(&self, pause: Duration) -> bool {
        self.sleep_until(Instant::now() + pause)
    }

    /// Sleeps until `until` unless stopped first; false once stopped.
    pub fn sleep_until(&self, until: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            if *stopped || now >= until {
                return !*stopped;
            }
            stopped = match self.woken.wait_timeout(stopped, until - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_wakes_a_sleeper_at_once() {
        let stop = std::sync::Arc::new(Stop::new());
        assert!(stop.sleep(Duration::from_millis(1)), "not stopped: slept");
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let began = Instant::now();
                let slept = stop.sleep(Duration::from_secs(600));
                (slept, began.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.stop();
        let (slept, took) = sleeper.join().unwrap();
        assert!(
            !slept && took < Duration::from_secs(60),
            "woken after {took:?}"
        );
        assert!(stop.is_stopped() && !stop.sleep(Duration::from_secs(600)));
    }

    #[test]
    fn a_batch_is_full_at_its_limit_and_empty_after_it_is_taken() {
        let mut batch = Batch::new(10);
        assert!(batch.take().is_none());
        assert!(!batch.push('a', 4));
        assert!(!batch.push('b', 5));
        assert!(batch.push('c', 1));
        assert_eq!(batch.take(), Some(vec!['a', 'b', 'c']));
        assert!(batch.take().is_none());
        // One item larger than the limit fills a batch on its own.
        assert!(batch.push('d', 11));
        assert_eq!(batch.take(), Some(vec!['d']));
    }

    #[test]
    fn every_item_once_and_the_first_error_stops_the_pool() {
        let items: Vec<usize> = (0..100).collect();
        let seen = Mutex::new(Vec::new());
        try_for_each(&items, 4, |&i| {
            seen.lock().unwrap().push(i);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, items);

        let started = AtomicUsize::new(0);
        let err = try_for_each(&items, 1, |&i| {
            started.fetch_add(1, Ordering::SeqCst);
            if i == 10 {
                Err(Error::Backend(format!("item {i}")))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "item 10");
        assert_eq!(
            started.load(Ordering::SeqCst),
            11,
            "nothing starts after the error"
        );
        assert!(try_for_each(&[] as &[u8], 3, |_| Ok(())).is_ok());
    }
}
