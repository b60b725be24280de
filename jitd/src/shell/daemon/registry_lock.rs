//! The registry shared between PAM checks and the writers that change it, arranged so that a
//! check never waits on a disk.
//!
//! A change takes its slow steps (the audit append and its fsync, storing the record, visudo
//! for an install) before it may be acknowledged, and writers must see each other's results,
//! so they take turns. If the turn were the registry's write lock, every PAM check on the host
//! would wait for the slowest writer: under one user's submit flood, checks of other users
//! timed out. So writers take turns on a mutex of their own ([`SharedRegistry::turn`]) and hold
//! the registry's lock only to swap a finished record in ([`WriterTurn::put`]): checks wait at
//! most for that swap.
//!
//! Between a writer's first look and its `put`, checks still see the previous version. That is
//! the version the caller has been told about: a change counts from its acknowledgement, which
//! comes after the `put`. (Expiry does not depend on it either: a check compares the window
//! with the clock itself.)

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::core::model::Request;
use crate::core::registry::Registry;

pub struct SharedRegistry {
    turn: Mutex<()>,
    registry: RwLock<Registry>,
}

/// A writer's exclusive turn: while it is held, nobody else changes the registry, so what
/// [`WriterTurn::view`] shows stays true until this writer's own [`WriterTurn::put`].
pub struct WriterTurn<'a> {
    _turn: MutexGuard<'a, ()>,
    registry: &'a RwLock<Registry>,
}

impl SharedRegistry {
    pub fn new(registry: Registry) -> SharedRegistry {
        SharedRegistry {
            turn: Mutex::new(()),
            registry: RwLock::new(registry),
        }
    }

    /// For readers (checks, views, the scheduler's planning). Held briefly: a waiting `put`
    /// holds up later readers behind it.
    pub fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated (every
        // mutation is a single `put`), so a poisoned lock is safe to keep using.
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the writers ahead, then holds the turn until dropped.
    pub fn turn(&self) -> WriterTurn<'_> {
        WriterTurn {
            _turn: self.turn.lock().unwrap_or_else(|e| e.into_inner()),
            registry: &self.registry,
        }
    }
}

impl WriterTurn<'_> {
    /// A look at the registry as it stands. Given as a closure so that no read guard can
    /// still be held when this same thread `put`s (which would deadlock).
    pub fn view<T>(&self, look: impl FnOnce(&Registry) -> T) -> T {
        look(&self.registry.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The current version of a request.
    pub fn get(&self, id: &crate::core::model::GrantId) -> Option<Request> {
        self.view(|reg| reg.get(id).cloned())
    }

    /// Forgets these requests (history past retention) under one hold of the lock; returns how
    /// many were there.
    pub fn forget(&self, ids: &[crate::core::model::GrantId]) -> usize {
        let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
        ids.iter().filter(|id| reg.forget(id).is_some()).count()
    }

    /// Publishes every record loaded at startup under one hold of the lock.
    pub fn put_all(&self, requests: Vec<Request>) {
        let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
        reg.reserve(requests.len());
        for r in requests {
            reg.put(r);
        }
    }

    /// Publishes a finished record: the only moment checks wait, for an index update.
    pub fn put(&self, request: Request) {
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .put(request);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// The property the split exists for: a writer in the middle of a slow step (here: holding
    /// its turn indefinitely) does not keep a reader out.
    #[test]
    fn a_reader_is_served_while_a_writer_holds_its_turn() {
        let shared = SharedRegistry::new(Registry::default());
        let turn = shared.turn();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let count = shared.read().iter().count();
                tx.send(count).unwrap();
            });
            // Generous: the reader needs no lock the writer holds, so it answers at once; if
            // it needed one, it would never answer while `turn` is held.
            let got = rx.recv_timeout(Duration::from_secs(30));
            assert_eq!(got, Ok(0), "a check waited for a writer's turn");
            drop(turn);
        });
    }

    #[test]
    fn writers_take_turns() {
        let shared = SharedRegistry::new(Registry::default());
        let first = shared.turn();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _second = shared.turn();
                tx.send(()).unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(200)).is_err(),
                "a second writer got a turn while the first held it"
            );
            drop(first);
            assert!(rx.recv_timeout(Duration::from_secs(30)).is_ok());
        });
    }
}
