//! A bounded queue drained by one worker thread that retries with exponential backoff. The
//! daemon only ever pushes (never waits on the worker), so a slow or dead receiver cannot
//! delay a decision or an expiry; when the queue is full the oldest ordinary item is dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::core::events::Event;

/// Where notifier failures are reported: the system log sinks, never a notifier.
pub type Report = Arc<dyn Fn(Event) + Send + Sync>;

pub struct Queue<T> {
    items: Mutex<VecDeque<(bool, T)>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> Queue<T> {
    pub fn new(capacity: usize) -> Queue<T> {
        Queue {
            items: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds `item`; an `urgent` one goes ahead of every ordinary one. Returns the item that
    /// was dropped to make room, if the queue was full.
    pub fn push(&self, item: T, urgent: bool) -> Option<T> {
        // Nothing panics while holding the lock, so a poisoned lock still holds a valid queue.
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = if items.len() >= self.capacity {
            // The oldest ordinary item goes first; urgent ones only make room for each other.
            match items.iter().position(|(u, _)| !u) {
                Some(i) => items.remove(i).map(|(_, t)| t),
                None if urgent => items.pop_front().map(|(_, t)| t),
                None => return Some(item),
            }
        } else {
            None
        };
        if urgent {
            let at = items.iter().position(|(u, _)| !u).unwrap_or(items.len());
            items.insert(at, (true, item));
        } else {
            items.push_back((false, item));
        }
        self.ready.notify_one();
        dropped
    }

    /// The next item, waiting for one.
    pub fn pop(&self) -> T {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((_, item)) = items.pop_front() {
                return item;
            }
            items = self.ready.wait(items).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again (timeout, connection refused, 5xx, 429); the text says what happened.
    Failed(String),
    /// Trying again cannot help (e.g. 404): the text says what happened.
    Refused(String),
}

/// How long to keep trying one item.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_wait: Duration,
    /// No attempt starts later than this after the first.
    pub give_up_after: Duration,
}

/// Why an item was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct Undelivered {
    pub attempts: u32,
    pub last_error: String,
}

/// Tries `deliver` until it succeeds, refuses, or the backoff is spent.
pub fn deliver_with_retries(
    backoff: Backoff,
    mut deliver: impl FnMut() -> Attempt,
    sleep: impl Fn(Duration),
) -> Result<u32, Undelivered> {
    let started = Instant::now();
    let mut wait = backoff.first_wait;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match deliver() {
            Attempt::Delivered => return Ok(attempts),
            Attempt::Refused(e) => {
                return Err(Undelivered {
                    attempts,
                    last_error: e,
                })
            }
            Attempt::Failed(e) => e,
        };
        if attempts >= backoff.max_attempts || started.elapsed() + wait > backoff.give_up_after {
            return Err(Undelivered {
                attempts,
                last_error: error,
            });
        }
        sleep(wait);
        wait = wait.saturating_mul(2);
    }
}

/// Starts the thread that delivers the queue's items one by one, in order; `report` hears of
/// each item given up on.
pub fn spawn_worker<T: Send + 'static>(
    name: &str,
    queue: Arc<Queue<T>>,
    backoff: Backoff,
    mut deliver: impl FnMut(&T) -> Attempt + Send + 'static,
    report: impl Fn(&T, Undelivered) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            let item = queue.pop();
            if let Err(why) = deliver_with_retries(backoff, || deliver(&item), std::thread::sleep) {
                report(&item, why);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_full_queue_drops_the_oldest_ordinary_item_and_lets_urgent_ones_ahead() {
        let q = Queue::new(3);
        assert_eq!(q.push(1, false), None);
        assert_eq!(q.push(2, false), None);
        assert_eq!(q.push(3, true), None);
        assert_eq!(q.push(4, false), Some(1));
        assert_eq!(q.push(5, true), Some(2));
        assert_eq!([q.pop(), q.pop(), q.pop()], [3, 5, 4]);
        let q = Queue::new(1);
        q.push(1, true);
        assert_eq!(q.push(2, false), Some(2), "never displaces an urgent item");
    }

    fn quick(max_attempts: u32) -> Backoff {
        Backoff {
            max_attempts,
            first_wait: Duration::from_secs(1),
            give_up_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn failures_are_retried_with_doubling_waits() {
        let waits = RefCell::new(Vec::new());
        let mut answers = vec![Attempt::Delivered, Attempt::Failed("HTTP 500".into())];
        answers.push(Attempt::Failed("HTTP 502".into()));
        let got = deliver_with_retries(
            quick(5),
            || answers.pop().unwrap(),
            |d| waits.borrow_mut().push(d),
        );
        assert_eq!(got, Ok(3));
        assert_eq!(
            *waits.borrow(),
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
    }

    #[test]
    fn retries_stop_at_the_attempt_limit_or_a_refusal() {
        let mut calls = 0;
        let got = deliver_with_retries(
            quick(4),
            || {
                calls += 1;
                Attempt::Failed("timed out".into())
            },
            |_| {},
        );
        assert_eq!(
            got,
            Err(Undelivered {
                attempts: 4,
                last_error: "timed out".into()
            })
        );
        let got = deliver_with_retries(quick(4), || Attempt::Refused("HTTP 404".into()), |_| {});
        assert_eq!(got.unwrap_err().attempts, 1);
    }

    #[test]
    fn retries_stop_when_the_time_is_spent() {
        let backoff = Backoff {
            max_attempts: 100,
            first_wait: Duration::from_millis(20),
            give_up_after: Duration::from_millis(100),
        };
        let got = deliver_with_retries(
            backoff,
            || Attempt::Failed("HTTP 503".into()),
            std::thread::sleep,
        );
        assert!(got.unwrap_err().attempts <= 4);
    }
}
