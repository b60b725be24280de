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
//!
//! Records reach the disk in the order of the turns that made them: a writer stores only
//! while it holds the turn ([`WriterTurn::write`]) or after handing the turn over to its disk
//! write ([`WriterTurn::store_current`]), and both hold the disk's own lock, which a later turn
//! can only take after them. The handover is what lets a change that need not be on disk
//! before it is answered (a session's open or close: the process is already in the grant's
//! cgroup) be stored by the recorder thread without the next writer — the next login's session
//! open — waiting for that fsync.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::core::model::Request;
use crate::core::registry::Registry;

pub struct SharedRegistry {
    turn: Mutex<()>,
    /// Held for every store of a record; taken only while holding `turn` (see the module's
    /// comment), so the disk sees versions in turn order.
    disk: Mutex<()>,
    registry: RwLock<Registry>,
}

/// A writer's exclusive turn: while it is held, nobody else changes the registry, so what
/// [`WriterTurn::view`] shows stays true until this writer's own [`WriterTurn::put`].
pub struct WriterTurn<'a> {
    turn: MutexGuard<'a, ()>,
    disk: &'a Mutex<()>,
    registry: &'a RwLock<Registry>,
}

impl SharedRegistry {
    pub fn new(registry: Registry) -> SharedRegistry {
        SharedRegistry {
            turn: Mutex::new(()),
            disk: Mutex::new(()),
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
            turn: self.turn.lock().unwrap_or_else(|e| e.into_inner()),
            disk: &self.disk,
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

    /// Stores within this turn: `store` runs once every earlier turn's store has finished.
    pub fn write<T>(&self, store: impl FnOnce() -> T) -> T {
        let _disk = lock(self.disk);
        store()
    }

    /// Hands the turn over to storing the current version of `id`: the next writer may
    /// change the registry while `store` waits for the disk, and its own store comes after
    /// this one. `None` when `id` is unknown.
    pub fn store_current<T>(
        self,
        id: &crate::core::model::GrantId,
        store: impl FnOnce(&Request) -> T,
    ) -> Option<(T, Request)> {
        let current = self.get(id)?;
        let _disk = lock(self.disk);
        drop(self.turn);
        Some((store(&current), current))
    }

    /// Publishes every record loaded at startup under one hold of the lock.
    pub fn put_all(&self, requests: Vec<Request>) {
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .put_all(requests);
    }

    /// Publishes a finished record: the only moment checks wait, for an index update.
    pub fn put(&self, request: Request) {
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .put(request);
    }
}

/// The disk lock guards no data, so a poisoned one is as good as any.
fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

    /// A pending request with `reason` (its version, for these tests).
    fn sample(reason: &str) -> Request {
        use crate::core::lifecycle::Submission;
        use crate::core::model::GrantId;
        use chrono::{Duration, TimeZone, Utc};
        use jit_proto::Target;
        Request::open(
            GrantId::try_from("alice00001".to_string()).unwrap(),
            Submission {
                uid: 1001,
                user: "alice".into(),
                target: Target::Ssh,
                duration: Duration::minutes(15),
                reason: reason.into(),
                ticket: None,
                role: None,
                approvals_required: 1,
                approver_groups: vec![],
                record: crate::core::recording::Record::Off,
            },
            Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            Duration::hours(1),
        )
    }

    /// The next login's session open changes the registry while the previous one's record
    /// waits for the disk; and the disk still gets the two versions in order.
    #[test]
    fn a_store_handed_the_turn_holds_up_no_writer_and_keeps_the_order_on_disk() {
        let shared = SharedRegistry::new(Registry::default());
        let id = sample("v1").id;
        let disk = Mutex::new(Vec::<String>::new());
        let (started, store_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let (second_put, second_did_put) = mpsc::channel();
        std::thread::scope(|s| {
            let id = &id;
            let disk = &disk;
            let shared = &shared;
            s.spawn(move || {
                let first = shared.turn();
                first.put(sample("v1"));
                first.store_current(id, |r| {
                    started.send(()).unwrap();
                    // The slow fsync, until the test lets it finish.
                    released.recv_timeout(Duration::from_secs(30)).unwrap();
                    disk.lock().unwrap().push(r.reason.to_string());
                });
            });
            store_started
                .recv_timeout(Duration::from_secs(30))
                .expect("the first store started");
            s.spawn(move || {
                let second = shared.turn();
                second.put(sample("v2"));
                second_put.send(()).unwrap();
                second.write(|| disk.lock().unwrap().push("v2".into()));
            });
            let put = second_did_put.recv_timeout(Duration::from_secs(30));
            assert!(
                put.is_ok(),
                "the next writer waited for the previous store's disk"
            );
            release.send(()).unwrap();
        });
        assert_eq!(
            *disk.lock().unwrap(),
            ["v1", "v2"],
            "stored out of turn order"
        );
        assert_eq!(
            shared.read().iter().next().unwrap().reason.as_ref() as &str,
            "v2"
        );
    }
}
