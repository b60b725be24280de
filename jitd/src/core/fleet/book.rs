//! This host's picture of the store's `g/` prefix: every fleet request with its approvals and
//! ends, as last read. Rebuilt from a full listing after a gap (a compaction may hide deletions)
//! and kept current by the watch. Unreadable records are kept as errors, so a verdict can say
//! why a request or an approval does not count.

use std::collections::{BTreeMap, HashMap};

use super::records::{
    parse_approval, parse_end, parse_request, EndRecord, GKey, Keys, StoredRequest,
};
use super::verdict::Signed;
use crate::core::model::GrantId;

/// Most fleet requests held at once. Far above any real fleet's open requests; a store that
/// holds more (a flood through a compromised member) is read only up to it.
pub const MAX_REQUESTS: usize = 100_000;
/// Most approvals or ends one request may carry.
pub const MAX_PER_REQUEST: usize = 64;

#[derive(Debug, Default, Clone)]
pub struct Entry {
    pub request: Option<Result<StoredRequest, String>>,
    pub approvals: BTreeMap<String, Result<Signed, String>>,
    pub ends: BTreeMap<String, Result<EndRecord, String>>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.request.is_none() && self.approvals.is_empty() && self.ends.is_empty()
    }

    /// The approvals that could be read (each host still verifies them).
    pub fn signed(&self) -> Vec<Signed> {
        self.approvals
            .values()
            .filter_map(|a| a.as_ref().ok())
            .cloned()
            .collect()
    }

    pub fn ends(&self) -> Vec<EndRecord> {
        self.ends
            .values()
            .filter_map(|e| e.as_ref().ok())
            .cloned()
            .collect()
    }

    /// Unreadable approvals, by approver, for the audit log.
    pub fn unreadable_approvals(&self) -> Vec<(String, String)> {
        self.approvals
            .iter()
            .filter_map(|(who, a)| a.as_ref().err().map(|e| (who.clone(), e.clone())))
            .collect()
    }
}

#[derive(Debug)]
pub struct Book {
    keys: Keys,
    entries: HashMap<GrantId, Entry>,
}

impl Book {
    pub fn new(keys: Keys) -> Book {
        Book {
            keys,
            entries: HashMap::new(),
        }
    }

    pub fn get(&self, id: &GrantId) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &GrantId> {
        self.entries.keys()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A key was written; the request it belongs to, if it is one of ours.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Option<GrantId> {
        let gkey = self.keys.parse_g(key)?;
        let id = gkey.id().clone();
        if !self.entries.contains_key(&id) && self.entries.len() >= MAX_REQUESTS {
            return None;
        }
        let entry = self.entries.entry(id.clone()).or_default();
        match gkey {
            GKey::Request { origin, id } => {
                entry.request = Some(parse_request(&origin, &id, value));
            }
            GKey::Approval { approver, .. } => {
                if entry.approvals.len() < MAX_PER_REQUEST
                    || entry.approvals.contains_key(&approver)
                {
                    let record = parse_approval(value).map(|record| Signed {
                        approver: approver.clone(),
                        record,
                    });
                    entry.approvals.insert(approver, record);
                }
            }
            GKey::End { writer, .. } => {
                if entry.ends.len() < MAX_PER_REQUEST || entry.ends.contains_key(&writer) {
                    entry.ends.insert(writer, parse_end(value));
                }
            }
        }
        Some(id)
    }

    /// A key was deleted; the request it belonged to, if any.
    pub fn delete(&mut self, key: &[u8]) -> Option<GrantId> {
        let gkey = self.keys.parse_g(key)?;
        let id = gkey.id().clone();
        let entry = self.entries.get_mut(&id)?;
        match gkey {
            GKey::Request { .. } => entry.request = None,
            GKey::Approval { approver, .. } => {
                entry.approvals.remove(&approver);
            }
            GKey::End { writer, .. } => {
                entry.ends.remove(&writer);
            }
        }
        if entry.is_empty() {
            self.entries.remove(&id);
        }
        Some(id)
    }

    /// Replaces everything with a full listing; returns every id that was or is in the book,
    /// so that whatever vanished in a gap is looked at again too.
    pub fn replace<'a>(&mut self, kvs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<GrantId> {
        let mut touched: Vec<GrantId> = self.entries.keys().cloned().collect();
        self.entries.clear();
        for (k, v) in kvs {
            if let Some(id) = self.put(k, v) {
                touched.push(id);
            }
        }
        touched.sort();
        touched.dedup();
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = r#"{"v":1,"id":"aaaaaaaaaa","origin":"web-1","user":"alice","target":{"kind":"ssh"},"hosts":["db-*"],"role":"db","reason":"r","ticket":null,"duration_secs":600,"requested_at":"2026-11-30T04:00:00Z","pending_until":"2026-11-30T05:00:00Z"}"#;

    #[test]
    fn a_relisting_names_what_vanished_in_the_gap() {
        let mut book = Book::new(Keys::new("/jit"));
        let id = book
            .put(b"/jit/v1/g/req/web-1/aaaaaaaaaa", REQ.as_bytes())
            .unwrap();
        assert!(matches!(book.get(&id).unwrap().request, Some(Ok(_))));
        book.put(b"/jit/v1/g/ok/bob/aaaaaaaaaa", b"not json");
        assert_eq!(book.get(&id).unwrap().unreadable_approvals().len(), 1);
        let touched = book.replace(std::iter::empty());
        assert_eq!(touched, vec![id.clone()]);
        assert!(book.get(&id).is_none());
    }

    #[test]
    fn deletes_and_foreign_keys() {
        let mut book = Book::new(Keys::new("/jit"));
        assert_eq!(book.put(b"/jit/v1/h/db-1/alive", b"{}"), None);
        let id = book
            .put(b"/jit/v1/g/req/web-1/aaaaaaaaaa", REQ.as_bytes())
            .unwrap();
        book.put(
            b"/jit/v1/g/end/web-1/aaaaaaaaaa",
            br#"{"end":"revoked","by":"bob","at":"2026-11-30T04:07:00Z"}"#,
        );
        assert_eq!(book.get(&id).unwrap().ends().len(), 1);
        book.delete(b"/jit/v1/g/req/web-1/aaaaaaaaaa");
        assert!(book.get(&id).unwrap().request.is_none());
        book.delete(b"/jit/v1/g/end/web-1/aaaaaaaaaa");
        assert!(book.is_empty());
    }
}
