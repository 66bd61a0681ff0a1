//! One way to run a job over many items on a few threads.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

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

#[cfg(test)]
mod tests {
    use super::*;

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
