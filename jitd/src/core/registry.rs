//! All requests in memory, with the indexes the hot paths need: the active grants of a user
//! (every PAM check) and the next deadline (the expiry scheduler).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use jit_proto::GrantKind;

use super::model::{GrantId, Request};

#[derive(Default)]
pub struct Registry {
    requests: HashMap<GrantId, Request>,
    active: HashMap<(String, GrantKind), Vec<GrantId>>,
    deadlines: BTreeSet<(DateTime<Utc>, GrantId)>,
}

impl Registry {
    pub fn get(&self, id: &GrantId) -> Option<&Request> {
        self.requests.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Request> {
        self.requests.values()
    }

    /// Inserts or replaces a request, keeping the indexes in step.
    pub fn put(&mut self, request: Request) {
        if let Some(old) = self.requests.remove(&request.id) {
            self.unindex(&old);
        }
        self.index(&request);
        self.requests.insert(request.id.clone(), request);
    }

    fn index(&mut self, r: &Request) {
        if let Some(at) = r.next_deadline() {
            self.deadlines.insert((at, r.id.clone()));
        }
        if r.state() == jit_proto::State::Active {
            self.active
                .entry((r.user.clone(), r.kind()))
                // Almost every user holds one grant of a kind at a time: no spare capacity.
                .or_insert_with(|| Vec::with_capacity(1))
                .push(r.id.clone());
        }
    }

    fn unindex(&mut self, r: &Request) {
        if let Some(at) = r.next_deadline() {
            self.deadlines.remove(&(at, r.id.clone()));
        }
        let key = (r.user.clone(), r.kind());
        if let Some(ids) = self.active.get_mut(&key) {
            ids.retain(|id| id != &r.id);
            if ids.is_empty() {
                self.active.remove(&key);
            }
        }
    }

    /// The user's active grants of `kind`, whose window has not passed at `now`.
    pub fn active_for(
        &self,
        user: &str,
        kind: GrantKind,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &Request> {
        self.active
            .get(&(user.to_string(), kind))
            .into_iter()
            .flatten()
            .filter_map(|id| self.requests.get(id))
            .filter(move |r| r.window().is_some_and(|w| now < w.expires_at))
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Requests that have a deadline, earliest first, with it.
    pub fn by_deadline(&self) -> impl Iterator<Item = (DateTime<Utc>, &Request)> {
        self.deadlines
            .iter()
            .filter_map(|(at, id)| self.requests.get(id).map(|r| (*at, r)))
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
