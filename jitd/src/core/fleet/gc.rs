//! `jitd fleet gc`: which records of the shared store no host can act on any more.
//!
//! Hosts read at most [`MAX_REQUESTS`](super::book::MAX_REQUESTS) requests from the store, and
//! nothing else ever removes one, so without this a fleet stops hearing of new requests once
//! that many were asked for. Each host keeps its own audit trail and records; the store is how
//! requests, approvals and ends travel, not the record of them.
//!
//! A request can give access only until its last possible moment: approvals count until its
//! `pending_until`, and a window lasts its `duration_secs` from its approval, so nothing it
//! granted lasts past `pending_until + duration_secs` ([`over_at`]). A request over for longer
//! than `older_than` goes, with its approvals, its ends and the hosts' acknowledgements. So do
//! approvals and ends whose request the listing does not hold (an interrupted earlier run, or
//! junk): the listing is one snapshot, so an approval written after it is never among them.
//! A request record that cannot be read is kept: nothing says when it is over.
//!
//! What removing a request does on a host: a grant still active there ends ("its request was
//! removed from the fleet store"). Only a host-local extension (`jit-elevate extend` on that
//! host) can outlast `over_at`; with the default `older_than` of 30 days none does.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::records::{parse_request, GKey, Keys};
use crate::core::model::GrantId;

/// What `older_than` is when none is given.
pub const DEFAULT_OLDER_THAN_SECS: u64 = 30 * 86_400;

/// A request the plan removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub id: GrantId,
    pub origin: String,
    pub over_at: DateTime<Utc>,
}

/// What to delete, and what stays.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Requests over for longer than `older_than`, oldest first.
    pub removed: Vec<Removed>,
    /// Keys under `g/` to delete, in order: approvals and ends first, each request's own
    /// record last (an interrupted run leaves requests, found again next time, not orphans).
    pub keys: Vec<Vec<u8>>,
    /// Approvals and ends deleted because the listing holds no request of theirs.
    pub orphans: usize,
    /// The requests whose acknowledgements go: the removed ones and those whose approvals or
    /// ends were orphans (an earlier run interrupted after deleting the request).
    pub acks_of: Vec<GrantId>,
    /// Requests that stay: still within reach, or over for less than `older_than`.
    pub kept: usize,
    /// Request records that cannot be read: kept.
    pub unreadable: usize,
    /// Requests over for long enough beyond this run's [`MAX_PER_RUN`]: the next run's.
    pub more: usize,
}

/// Most requests one run removes (the oldest first), so that a run of a store never cleaned
/// stays within the CLI's patience: at a few keys each, in transactions of a hundred, some
/// hundreds of calls.
pub const MAX_PER_RUN: usize = 10_000;

/// The last moment anything `request` granted can last.
pub fn over_at(pending_until: DateTime<Utc>, duration_secs: u64) -> DateTime<Utc> {
    let secs = i64::try_from(duration_secs).unwrap_or(i64::MAX);
    pending_until
        .checked_add_signed(Duration::try_seconds(secs).unwrap_or(Duration::MAX))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The plan for one listing of `g/` (keys and values as the store holds them).
pub fn plan<'a>(
    keys: &Keys,
    listing: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    now: DateTime<Utc>,
    older_than: std::time::Duration,
) -> Plan {
    let older_than = Duration::from_std(older_than).unwrap_or(Duration::MAX);
    let cutoff = now
        .checked_sub_signed(older_than)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    // Per request id: its request key (if listed) with its verdict, and its other keys.
    let mut requests: BTreeMap<GrantId, (Vec<u8>, Option<Removed>)> = BTreeMap::new();
    let mut others: BTreeMap<GrantId, Vec<Vec<u8>>> = BTreeMap::new();
    let mut plan = Plan::default();
    for (key, value) in listing {
        match keys.parse_g(key) {
            Some(GKey::Request { origin, id }) => {
                let verdict = match parse_request(&origin, &id, value) {
                    Ok(stored) => {
                        let over =
                            over_at(stored.request.pending_until, stored.request.duration_secs);
                        if over < cutoff {
                            Some(Removed {
                                id: id.clone(),
                                origin,
                                over_at: over,
                            })
                        } else {
                            plan.kept += 1;
                            None
                        }
                    }
                    Err(_) => {
                        plan.unreadable += 1;
                        None
                    }
                };
                match requests.entry(id) {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert((key.to_vec(), verdict));
                    }
                    // Two request records of one id (under two origins: only a store someone
                    // else writes to holds that): which one its approvals are for is unclear,
                    // so the id keeps everything.
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        if o.get().1.is_some() {
                            plan.kept += 1;
                        }
                        if verdict.is_some() {
                            plan.kept += 1;
                        }
                        o.get_mut().1 = None;
                    }
                }
            }
            Some(GKey::Approval { id, .. } | GKey::End { id, .. }) => {
                others.entry(id).or_default().push(key.to_vec());
            }
            // Not a key this jitd knows (a newer jitd's): left alone.
            None => {}
        }
    }
    // The oldest first, up to the run's limit; the rest wait for the next run.
    let mut over: Vec<(&Removed, &Vec<u8>)> = requests
        .values()
        .filter_map(|(key, verdict)| verdict.as_ref().map(|r| (r, key)))
        .collect();
    over.sort_by(|(a, _), (b, _)| (a.over_at, &a.id).cmp(&(b.over_at, &b.id)));
    plan.more = over.len().saturating_sub(MAX_PER_RUN);
    over.truncate(MAX_PER_RUN);
    let mut last = Vec::new();
    let mut removed_ids = BTreeSet::new();
    for (removed, key) in over {
        removed_ids.insert(removed.id.clone());
        plan.acks_of.push(removed.id.clone());
        plan.removed.push(removed.clone());
        last.push(key.clone());
    }
    let waiting: BTreeSet<&GrantId> = requests
        .iter()
        .filter(|(id, (_, verdict))| verdict.is_some() && !removed_ids.contains(*id))
        .map(|(id, _)| id)
        .collect();
    for (id, keys_of) in others {
        if waiting.contains(&id) {
            continue;
        }
        if removed_ids.contains(&id) {
            plan.keys.extend(keys_of);
        } else if !requests.contains_key(&id) {
            plan.orphans += keys_of.len();
            plan.keys.extend(keys_of);
            plan.acks_of.push(id);
        }
    }
    plan.keys.extend(last);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fleet::records::FleetRequest;
    use jit_proto::Target;

    const DAY: i64 = 86_400;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn id(c: char) -> GrantId {
        GrantId::try_from(c.to_string().repeat(10)).unwrap()
    }

    /// A request asked at `asked`, pending for an hour, for `minutes`.
    fn request(id: &GrantId, asked: i64, minutes: u64) -> Vec<u8> {
        serde_json::to_vec(&FleetRequest {
            v: 1,
            id: id.clone(),
            origin: "web-1".into(),
            user: "alice".into(),
            target: Target::Ssh,
            hosts: crate::core::fleet::host_pattern::HostPattern::parse_list("db-*").unwrap(),
            role: "db".into(),
            reason: "x".into(),
            ticket: None,
            duration_secs: minutes * 60,
            requested_at: t(asked),
            pending_until: t(asked + 3600),
        })
        .unwrap()
    }

    fn keys() -> Keys {
        Keys::new("/jit")
    }

    fn listing(entries: &[(String, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_slice()))
            .collect()
    }

    #[test]
    fn a_request_over_for_longer_than_older_than_goes_with_its_approvals_and_ends_last_of_all() {
        let k = keys();
        let (old, fresh) = (id('a'), id('b'));
        let entries = vec![
            (k.request("web-1", &old), request(&old, -40 * DAY, 60)),
            (k.approval("bob", &old), b"{}".to_vec()),
            (k.end("web-1", &old), b"{}".to_vec()),
            (k.request("web-1", &fresh), request(&fresh, -DAY, 60)),
            (k.approval("bob", &fresh), b"{}".to_vec()),
        ];
        let p = plan(
            &k,
            listing(&entries),
            t(0),
            std::time::Duration::from_secs(30 * DAY as u64),
        );
        assert_eq!(
            p.removed,
            vec![Removed {
                id: old.clone(),
                origin: "web-1".into(),
                over_at: t(-40 * DAY + 3600 + 3600)
            }]
        );
        let deleted: Vec<String> = p
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            deleted.last().unwrap(),
            &k.request("web-1", &old),
            "the request last"
        );
        assert_eq!(
            deleted.iter().collect::<BTreeSet<_>>(),
            [
                k.request("web-1", &old),
                k.approval("bob", &old),
                k.end("web-1", &old)
            ]
            .iter()
            .collect::<BTreeSet<_>>()
        );
        assert_eq!((p.kept, p.orphans, p.unreadable), (1, 0, 0));
        assert_eq!(
            p.acks_of,
            vec![old],
            "the removed request's acknowledgements go"
        );
    }

    #[test]
    fn a_request_is_over_only_after_its_pending_time_and_a_whole_window_after_it() {
        // Asked 31 days ago for 2 days: an approval at the end of its pending hour would
        // still have been running a day ago. Not over for 30 days yet.
        let k = keys();
        let r = id('c');
        let entries = vec![(k.request("web-1", &r), request(&r, -31 * DAY, 2 * 24 * 60))];
        let p = plan(
            &k,
            listing(&entries),
            t(0),
            std::time::Duration::from_secs(30 * DAY as u64),
        );
        assert!(p.removed.is_empty(), "{p:?}");
        assert_eq!(p.kept, 1);
        // With a day's margin it is.
        let p = plan(
            &k,
            listing(&entries),
            t(0),
            std::time::Duration::from_secs(DAY as u64 / 2),
        );
        assert_eq!(p.removed.len(), 1, "{p:?}");
    }

    #[test]
    fn approvals_and_ends_without_their_request_go_and_unreadable_requests_stay() {
        let k = keys();
        let (gone, junk) = (id('d'), id('e'));
        let entries = vec![
            (k.approval("bob", &gone), b"{}".to_vec()),
            (k.end("db-1", &gone), b"{}".to_vec()),
            (k.request("web-1", &junk), b"not json".to_vec()),
            (k.approval("bob", &junk), b"{}".to_vec()),
            ("/jit/v1/g/new-kind/x/y".to_string(), b"{}".to_vec()),
        ];
        let p = plan(&k, listing(&entries), t(0), std::time::Duration::ZERO);
        assert_eq!((p.orphans, p.unreadable, p.kept), (2, 1, 0));
        assert!(p.removed.is_empty());
        assert_eq!(
            p.acks_of,
            vec![id('d')],
            "and those of a request already gone"
        );
        let deleted: BTreeSet<String> = p
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            deleted,
            [k.approval("bob", &gone), k.end("db-1", &gone)]
                .into_iter()
                .collect(),
            "the unreadable request and its approval stay, as does what this jitd cannot read"
        );
    }

    #[test]
    fn an_id_with_two_request_records_keeps_everything() {
        // A live request, and an old-looking copy of its id under another origin: removing
        // the copy's "approvals" would remove the live one's.
        let k = keys();
        let r = id('f');
        let entries = vec![
            (k.request("db-1", &r), {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&request(&r, -DAY, 60)).unwrap();
                v["origin"] = "db-1".into();
                serde_json::to_vec(&v).unwrap()
            }),
            // Listed after the live one (keys come sorted).
            (k.request("web-1", &r), request(&r, -40 * DAY, 60)),
            (k.approval("bob", &r), b"{}".to_vec()),
        ];
        let p = plan(&k, listing(&entries), t(0), std::time::Duration::ZERO);
        assert!(p.removed.is_empty() && p.keys.is_empty(), "{p:?}");
    }

    #[test]
    fn a_run_removes_the_oldest_up_to_its_limit_and_counts_the_rest() {
        let k = keys();
        let ids: Vec<GrantId> = (0..MAX_PER_RUN + 3)
            .map(|n| GrantId::try_from(format!("{n:0>10}")).unwrap())
            .collect();
        let mut entries = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            // Older as n grows.
            entries.push((
                k.request("web-1", id),
                request(id, -40 * DAY - n as i64, 60),
            ));
            entries.push((k.approval("bob", id), b"{}".to_vec()));
        }
        let p = plan(
            &k,
            listing(&entries),
            t(0),
            std::time::Duration::from_secs(30 * DAY as u64),
        );
        assert_eq!((p.removed.len(), p.more), (MAX_PER_RUN, 3));
        assert_eq!(p.removed[0].id, ids[MAX_PER_RUN + 2], "the oldest first");
        // Only the removed requests' keys: a waiting request keeps its approval until then.
        assert_eq!(p.keys.len(), 2 * MAX_PER_RUN);
        assert!(!p
            .keys
            .iter()
            .any(|key| key.ends_with(ids[0].as_str().as_bytes())));
    }

    #[test]
    fn the_last_moment_of_an_absurd_duration_does_not_overflow() {
        assert_eq!(over_at(t(0), u64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(over_at(t(0), 60), t(60));
    }
}
