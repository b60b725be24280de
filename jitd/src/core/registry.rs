//! All requests in memory, with the indexes the hot paths need: the active grants of a user
//! (every PAM check), the next deadline (the expiry scheduler), and the oldest history (what
//! `retention` forgets first).
//!
//! Sized for 100,000 active grants in well under 64 MiB: records are boxed (a hash table
//! keeps spare buckets, which would each be a whole record wide), and the active index holds
//! no copy of user names.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

use chrono::{DateTime, Utc};
use jit_proto::GrantKind;

use super::model::{GrantId, Request};

#[derive(Default)]
pub struct Registry {
    /// Every record, found by its id: a set of records keyed by the id inside them, so each
    /// bucket is one pointer (a map from a copy of the id was three words a bucket: 2 MiB more
    /// at 100,000 grants).
    requests: HashSet<Held>,
    /// Active grants by a hash of (user, kind). Different users may share a hash: lookups
    /// compare the records' users. The hasher is randomly keyed per process, so nobody can
    /// choose user names that collide.
    active: HashMap<u64, Ids>,
    hasher: RandomState,
    /// How many pending requests each uid has: checked on every submission, which must not
    /// walk a history of a million requests.
    pending: HashMap<u32, usize>,
    deadlines: BTreeSet<(DateTime<Utc>, GrantId)>,
    /// Ended requests by when they ended ([`Request::history_since`]).
    history: BTreeSet<(DateTime<Utc>, GrantId)>,
    /// Requests by the pids of their registered sessions: closing a session must not walk
    /// every request.
    sessions: HashMap<u32, Ids>,
}

/// A record in the registry's set, hashed and compared by its id alone (and so found by an
/// id: `Borrow<GrantId>`). Boxed: a hash table keeps spare buckets, which would each be a
/// whole record wide.
struct Held(Box<Request>);

impl Borrow<GrantId> for Held {
    fn borrow(&self) -> &GrantId {
        &self.0.id
    }
}

impl Hash for Held {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the id's own hash: `Borrow` requires it.
        self.0.id.hash(state)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Held {}

/// The ids under one index key: almost always exactly one, held without a heap allocation.
enum Ids {
    One(GrantId),
    /// Boxed so that the common case stays two words wide (a bare Vec is three, a boxed
    /// slice two plus the tag): one index entry per active user.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<GrantId>>),
}

impl Ids {
    fn as_slice(&self) -> &[GrantId] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    fn push(&mut self, id: GrantId) {
        match self {
            Ids::One(first) => *self = Ids::Many(Box::new(vec![first.clone(), id])),
            Ids::Many(ids) => ids.push(id),
        }
    }

    /// Removes `id`; true when none is left.
    fn remove(&mut self, id: &GrantId) -> bool {
        match self {
            Ids::One(only) => only == id,
            Ids::Many(ids) => {
                ids.retain(|x| x != id);
                match ids.as_slice() {
                    [] => true,
                    [last] => {
                        let last = last.clone();
                        *self = Ids::One(last);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

impl Registry {
    pub fn get(&self, id: &GrantId) -> Option<&Request> {
        self.requests.get(id).map(|r| &*r.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Request> {
        self.requests.iter().map(|r| &*r.0)
    }

    /// Makes room for `additional` more requests in the tables at once (startup loads them all
    /// in one go: grown one doubling at a time, every table rehashes each record several times
    /// over, and holds its old and new buckets at once at each step).
    fn reserve(&mut self, additional: usize) {
        self.requests.reserve(additional);
        self.active.reserve(additional);
    }

    /// Inserts or replaces a request, keeping the indexes in step.
    pub fn put(&mut self, request: Request) {
        if let Some(old) = self.requests.take(&request.id) {
            self.unindex(&old.0);
        }
        self.index(&request);
        self.requests.insert(Held(Box::new(request)));
    }

    /// Inserts every request loaded at startup, as [`Registry::put`] would one by one (the
    /// last of two with one id wins). Into an empty registry the ordered indexes are built
    /// from sorted lists: a B-tree built in order has full nodes, one grown by inserts in the
    /// order the files were read is about two-thirds full (1 MiB more at 100,000 grants).
    pub fn put_all(&mut self, requests: Vec<Request>) {
        if !self.requests.is_empty() {
            for r in requests {
                self.put(r);
            }
            return;
        }
        self.reserve(requests.len());
        for r in requests {
            self.requests.replace(Held(Box::new(r)));
        }
        let held = std::mem::take(&mut self.requests);
        let mut deadlines = Vec::with_capacity(held.len());
        let mut history = Vec::new();
        for r in &held {
            let r = &*r.0;
            deadlines.extend(r.next_deadline().map(|at| (at, r.id.clone())));
            history.extend(r.history_since().map(|at| (at, r.id.clone())));
            self.index_unordered(r);
        }
        self.requests = held;
        self.deadlines = BTreeSet::from_iter(deadlines);
        self.history = BTreeSet::from_iter(history);
    }

    fn key(&self, user: &str, kind: GrantKind) -> u64 {
        self.hasher.hash_one((user, kind))
    }

    fn index(&mut self, r: &Request) {
        if let Some(at) = r.next_deadline() {
            self.deadlines.insert((at, r.id.clone()));
        }
        if let Some(at) = r.history_since() {
            self.history.insert((at, r.id.clone()));
        }
        self.index_unordered(r);
    }

    /// Every index but the two ordered ones (deadlines, history).
    fn index_unordered(&mut self, r: &Request) {
        if r.state() == jit_proto::State::Pending {
            *self.pending.entry(r.uid).or_default() += 1;
        }
        for s in &r.sessions {
            match self.sessions.get_mut(&s.pid) {
                Some(ids) if !ids.as_slice().contains(&r.id) => ids.push(r.id.clone()),
                Some(_) => {}
                None => {
                    self.sessions.insert(s.pid, Ids::One(r.id.clone()));
                }
            }
        }
        if r.state() == jit_proto::State::Active {
            let key = self.key(&r.user, r.kind());
            match self.active.get_mut(&key) {
                Some(ids) => ids.push(r.id.clone()),
                None => {
                    self.active.insert(key, Ids::One(r.id.clone()));
                }
            }
        }
    }

    fn unindex(&mut self, r: &Request) {
        if let Some(at) = r.next_deadline() {
            self.deadlines.remove(&(at, r.id.clone()));
        }
        if let Some(at) = r.history_since() {
            self.history.remove(&(at, r.id.clone()));
        }
        for s in &r.sessions {
            if let Some(ids) = self.sessions.get_mut(&s.pid) {
                if ids.remove(&r.id) {
                    self.sessions.remove(&s.pid);
                }
            }
        }
        if r.state() == jit_proto::State::Pending {
            if let Some(n) = self.pending.get_mut(&r.uid) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(&r.uid);
                }
            }
        }
        let key = self.key(&r.user, r.kind());
        if let Some(ids) = self.active.get_mut(&key) {
            if ids.remove(&r.id) {
                self.active.remove(&key);
            }
        }
    }

    /// The user's active grants of `kind`, whose window has not passed at `now`.
    pub fn active_for<'a>(
        &'a self,
        user: &'a str,
        kind: GrantKind,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a Request> + 'a {
        self.active
            .get(&self.key(user, kind))
            .map(Ids::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.requests.get(id))
            .map(|r| &*r.0)
            .filter(move |r| &*r.user == user && r.kind() == kind)
            .filter(move |r| r.window().is_some_and(|w| now < w.expires_at))
    }

    /// The requests that have a session of process `pid` registered.
    pub fn with_session(&self, pid: u32) -> impl Iterator<Item = &Request> {
        self.sessions
            .get(&pid)
            .map(Ids::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.requests.get(id))
            .map(|r| &*r.0)
    }

    /// Takes a request out of memory altogether (history past `retention`).
    pub fn forget(&mut self, id: &GrantId) -> Option<Request> {
        let old = self.requests.take(id)?;
        self.unindex(&old.0);
        Some(*old.0)
    }

    /// Up to `limit` ids of history that ended before `cutoff`, oldest first.
    pub fn history_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Vec<GrantId> {
        self.history
            .iter()
            .take_while(|(at, _)| *at < cutoff)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// How many requests of `uid` await a decision.
    pub fn pending_of(&self, uid: u32) -> usize {
        self.pending.get(&uid).copied().unwrap_or(0)
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Requests that have a deadline, earliest first, with it.
    pub fn by_deadline(&self) -> impl Iterator<Item = (DateTime<Utc>, &Request)> {
        self.deadlines
            .iter()
            .filter_map(|(at, id)| self.requests.get(id).map(|r| (*at, &*r.0)))
    }

    /// Ids whose deadline is at or before `now`.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<GrantId> {
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use jit_proto::Target;

    use super::*;
    use crate::core::lifecycle::{By, Submission};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    /// An active grant of `kind` for `user`, valid for 15 minutes from t(0).
    fn grant(id: &str, user: &str, kind: GrantKind) -> Request {
        let target = match kind {
            GrantKind::Ssh => Target::Ssh,
            GrantKind::Sudo => Target::Sudo {
                command: vec!["/usr/bin/true".into()],
            },
        };
        let mut r = Request::open(
            GrantId::try_from(id.to_string()).unwrap(),
            Submission {
                uid: 1001,
                user: user.into(),
                target,
                duration: Duration::minutes(15),
                reason: "deploy".into(),
                ticket: None,
                role: None,
                approvals_required: 1,
                approver_groups: vec![],
                record: crate::core::recording::Record::Off,
            },
            t(0),
            Duration::hours(1),
        );
        r.approve(&By::user("root", 0), None, t(0)).unwrap();
        r
    }

    fn active(reg: &Registry, user: &str, kind: GrantKind, at: i64) -> Vec<String> {
        let mut ids: Vec<String> = reg
            .active_for(user, kind, t(at))
            .map(|r| r.id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_check_finds_exactly_the_users_unexpired_grants_of_that_kind() {
        let mut reg = Registry::default();
        reg.put(grant("alice00001", "alice", GrantKind::Sudo));
        reg.put(grant("alice00002", "alice", GrantKind::Sudo));
        reg.put(grant("alice00003", "alice", GrantKind::Ssh));
        reg.put(grant("bob0000001", "bob", GrantKind::Sudo));

        assert_eq!(
            active(&reg, "alice", GrantKind::Sudo, 1),
            ["alice00001", "alice00002"]
        );
        assert_eq!(active(&reg, "alice", GrantKind::Ssh, 1), ["alice00003"]);
        assert_eq!(active(&reg, "bob", GrantKind::Sudo, 1), ["bob0000001"]);
        assert!(active(&reg, "bob", GrantKind::Ssh, 1).is_empty());
        assert!(active(&reg, "alic", GrantKind::Sudo, 1).is_empty());
        // The window has passed, even before the scheduler ended the grant.
        assert!(active(&reg, "alice", GrantKind::Sudo, 15 * 60).is_empty());
    }

    #[test]
    fn ending_grants_takes_them_out_of_the_index_one_by_one() {
        let mut reg = Registry::default();
        for id in ["alice00001", "alice00002", "alice00003"] {
            reg.put(grant(id, "alice", GrantKind::Sudo));
        }
        for (gone, left) in [
            ("alice00002", vec!["alice00001", "alice00003"]),
            ("alice00001", vec!["alice00003"]),
            ("alice00003", vec![]),
        ] {
            let mut r = reg
                .get(&GrantId::try_from(gone.to_string()).unwrap())
                .unwrap()
                .clone();
            r.revoke(&By::user("root", 0), "done".into(), t(5)).unwrap();
            reg.put(r);
            assert_eq!(active(&reg, "alice", GrantKind::Sudo, 6), left);
        }
        assert!(
            reg.active.is_empty(),
            "an empty index entry was left behind"
        );
        assert_eq!(reg.iter().count(), 3, "ended requests stay on record");
        assert!(
            reg.due(t(3600)).is_empty(),
            "ended requests have no deadline"
        );
    }

    #[test]
    fn pending_requests_are_counted_per_user_as_they_come_and_go() {
        let mut reg = Registry::default();
        let open = |id: &str, uid: u32| {
            let mut r = grant(id, "alice", GrantKind::Sudo);
            r = Request::open(
                r.id.clone(),
                submission_of(&r, uid),
                t(0),
                Duration::hours(1),
            );
            r
        };
        reg.put(open("alice00001", 1001));
        reg.put(open("alice00002", 1001));
        reg.put(open("bobby00001", 1002));
        assert_eq!((reg.pending_of(1001), reg.pending_of(1002)), (2, 1));
        // Replacing a record with itself counts it once.
        reg.put(open("alice00002", 1001));
        assert_eq!(reg.pending_of(1001), 2);
        let mut decided = reg
            .get(&GrantId::try_from("alice00001".to_string()).unwrap())
            .unwrap()
            .clone();
        decided.approve(&By::user("root", 0), None, t(1)).unwrap();
        reg.put(decided);
        assert_eq!(
            reg.pending_of(1001),
            1,
            "an approved request is no longer pending"
        );
        assert_eq!(reg.pending_of(4242), 0);
    }

    fn submission_of(r: &Request, uid: u32) -> Submission {
        Submission {
            uid,
            user: r.user.to_string(),
            target: Target::Sudo {
                command: vec!["/usr/bin/true".into()],
            },
            duration: Duration::minutes(15),
            reason: "deploy".into(),
            ticket: None,
            role: None,
            approvals_required: 1,
            approver_groups: vec![],
            record: r.record,
        }
    }

    #[test]
    fn history_is_forgotten_oldest_first_and_never_what_is_still_live() {
        let mut reg = Registry::default();
        for (id, ended) in [("alice00001", 10), ("alice00002", 20), ("alice00003", 30)] {
            let mut r = grant(id, "alice", GrantKind::Sudo);
            r.revoke(&By::user("root", 0), "done".into(), t(ended))
                .unwrap();
            reg.put(r);
        }
        reg.put(grant("alice00004", "alice", GrantKind::Sudo));
        let ids = |v: Vec<GrantId>| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ids(reg.history_before(t(25), 10)),
            ["alice00001", "alice00002"]
        );
        assert_eq!(ids(reg.history_before(t(25), 1)), ["alice00001"]);
        assert_eq!(
            ids(reg.history_before(t(3600), 10)),
            ["alice00001", "alice00002", "alice00003"],
            "the active grant is not history"
        );
        let first = GrantId::try_from("alice00001".to_string()).unwrap();
        assert!(reg.forget(&first).is_some());
        assert!(reg.get(&first).is_none());
        assert_eq!(ids(reg.history_before(t(25), 10)), ["alice00002"]);
        assert_eq!(active(&reg, "alice", GrantKind::Sudo, 40), ["alice00004"]);
    }

    #[test]
    fn loading_at_startup_indexes_every_record_as_adding_them_one_by_one_does() {
        let ended = |id: &str, at: i64| {
            let mut r = grant(id, "alice", GrantKind::Sudo);
            r.revoke(&By::user("root", 0), "done".into(), t(at))
                .unwrap();
            r
        };
        let pending = |id: &str| {
            let r = grant(id, "carol", GrantKind::Sudo);
            Request::open(
                r.id.clone(),
                submission_of(&r, 1003),
                t(0),
                Duration::hours(1),
            )
        };
        let mut with_session = grant("bobbb00001", "bob", GrantKind::Ssh);
        with_session.sessions = vec![crate::core::model::Session {
            pid: 77,
            service: "sshd".into(),
            user: "bob".into(),
            ruser: None,
            tty: None,
            rhost: None,
            audit_session: None,
            opened_at: t(1),
            process: None,
        }];
        let records = vec![
            grant("alice00001", "alice", GrantKind::Sudo),
            ended("alice00002", 20),
            ended("alice00003", 10),
            pending("carol00001"),
            with_session,
            // The same id again, ended since: the later version wins, as with `put`.
            ended("alice00001", 30),
        ];
        let mut one_by_one = Registry::default();
        for r in records.clone() {
            one_by_one.put(r);
        }
        let mut loaded = Registry::default();
        loaded.put_all(records.clone());
        // And into a registry that already holds records: one by one.
        let mut added = Registry::default();
        added.put(records[0].clone());
        added.put_all(records);

        for reg in [&loaded, &added] {
            assert_eq!(reg.iter().count(), one_by_one.iter().count());
            for kind in [GrantKind::Sudo, GrantKind::Ssh] {
                for user in ["alice", "bob", "carol"] {
                    assert_eq!(
                        active(reg, user, kind, 1),
                        active(&one_by_one, user, kind, 1)
                    );
                }
            }
            assert!(active(reg, "alice", GrantKind::Sudo, 1).is_empty());
            assert_eq!(reg.due(t(7200)), one_by_one.due(t(7200)));
            assert_eq!(
                reg.due(t(7200)).len(),
                2,
                "the pending request and bob's grant"
            );
            assert_eq!(
                reg.history_before(t(3600), 10),
                one_by_one.history_before(t(3600), 10)
            );
            assert_eq!(reg.history_before(t(3600), 10).len(), 3);
            assert_eq!(reg.pending_of(1003), 1);
            assert_eq!(reg.with_session(77).count(), 1);
            assert_eq!(reg.next_deadline(), one_by_one.next_deadline());
        }
    }

    #[test]
    fn sessions_are_found_by_pid_and_leave_the_index_with_their_record() {
        use crate::core::model::Session;
        let session = |pid: u32| Session {
            pid,
            service: "sudo".into(),
            user: "root".into(),
            ruser: Some("alice".into()),
            tty: None,
            rhost: None,
            audit_session: None,
            opened_at: t(1),
            process: None,
        };
        let mut reg = Registry::default();
        let mut r = grant("alice00001", "alice", GrantKind::Sudo);
        r.sessions = vec![session(100), session(101)];
        reg.put(r.clone());
        let mut other = grant("bobbb00001", "bob", GrantKind::Sudo);
        other.sessions = vec![session(100)];
        reg.put(other);
        fn ids(reg: &Registry, pid: u32) -> Vec<String> {
            let mut v: Vec<String> = reg.with_session(pid).map(|r| r.id.to_string()).collect();
            v.sort();
            v
        }
        assert_eq!(ids(&reg, 100), ["alice00001", "bobbb00001"]);
        assert_eq!(ids(&reg, 101), ["alice00001"]);
        r.sessions.retain(|s| s.pid != 101);
        reg.put(r);
        assert!(
            ids(&reg, 101).is_empty(),
            "a closed session stayed in the index"
        );
        assert_eq!(ids(&reg, 100), ["alice00001", "bobbb00001"]);
        assert!(ids(&reg, 7).is_empty());
    }
}
