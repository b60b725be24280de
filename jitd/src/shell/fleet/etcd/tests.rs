//! The client against a real etcd 3.4 (the Debian package), one cluster per test: the
//! gateway's shapes, failover, compaction, leases, bounds, TLS and RBAC.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use jit_tests::etcd::{EtcdCluster, HOST_PASSWORD, HOST_USER};

use super::client::MAX_VALUE;
use super::*;

const G: &[u8] = b"/jit/v1/g/";

fn settings(endpoints: Vec<String>) -> EtcdSettings {
    EtcdSettings {
        endpoints,
        ca_file: None,
        cert_file: None,
        key_file: None,
        user: None,
        password: None,
        rotate_by: "db-01".into(),
        request_timeout: Duration::from_secs(3),
        // Five progress intervals of the test cluster (1 s).
        watch_idle_timeout: Duration::from_secs(5),
    }
}

fn client(cluster: &EtcdCluster) -> Etcd {
    Etcd::new(settings(cluster.endpoints())).expect("settings")
}

/// A client whose first endpoint is member `i` (the rotation picks it for this host name).
fn client_on(cluster: &EtcdCluster, i: usize) -> Etcd {
    let want = cluster.endpoint(i);
    for h in 0..1000 {
        let mut s = settings(cluster.endpoints());
        s.rotate_by = format!("host-{h}");
        let etcd = Etcd::new(s).expect("settings");
        if etcd.endpoint_in_use() == want {
            return etcd;
        }
    }
    unreachable!("no host name rotates to member {i}")
}

fn key(n: usize) -> Vec<u8> {
    format!("/jit/v1/g/req/db-01/{n:05}").into_bytes()
}

/// Runs `f` on its own thread and fails the test if it has not returned within `within`:
/// for the calls that must not hang.
fn bounded<T: Send + 'static>(within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("the call did not return within {within:?}"))
}

#[test]
fn fleet_etcd_puts_gets_creates_and_deletes_keys() {
    let cluster = EtcdCluster::start();
    let etcd = client(&cluster);
    let k = b"/jit/v1/g/req/db-01/abc";

    assert_eq!(etcd.get(k).unwrap(), None);
    let rev = etcd.put(k, b"{\"x\":1}", None).unwrap();
    let kv = etcd.get(k).unwrap().expect("the key is there");
    assert_eq!(kv.value, b"{\"x\":1}");
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(kv.create_revision, rev);

    // Create-only: a second writer with other bytes loses; the same bytes again (a retry
    // of our own write) is not a collision.
    let ok = b"/jit/v1/g/ok/bob/abc";
    assert!(etcd.create(ok, b"approval-1").unwrap());
    assert!(!etcd.create(ok, b"approval-2").unwrap());
    assert!(etcd.create(ok, b"approval-1").unwrap());
    assert_eq!(etcd.get(ok).unwrap().unwrap().value, b"approval-1");

    // An empty value is a value.
    etcd.put(b"/jit/v1/g/empty", b"", None).unwrap();
    assert_eq!(etcd.get(b"/jit/v1/g/empty").unwrap().unwrap().value, b"");

    assert!(etcd.delete(k).unwrap());
    assert!(!etcd.delete(k).unwrap());
    assert_eq!(etcd.get(k).unwrap(), None);
}

#[test]
fn fleet_etcd_a_listing_of_many_pages_is_one_revision_while_others_write() {
    let cluster = EtcdCluster::start();
    let etcd = Arc::new(client(&cluster));
    for n in 0..1203 {
        etcd.put(&key(n), format!("v{n}").as_bytes(), None).unwrap();
    }
    // Keys outside the prefix, one of them sharing its first bytes.
    etcd.put(b"/jit/v1/g0", b"outside", None).unwrap();
    etcd.put(b"/jit/v1/h/db-01/alive", b"outside", None)
        .unwrap();

    // Another host keeps writing under the prefix while we list.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (etcd, stop) = (Arc::clone(&etcd), Arc::clone(&stop));
        thread::spawn(move || {
            let mut written = Vec::new();
            let mut n = 5000;
            while !stop.load(Ordering::SeqCst) {
                written.push((key(n), etcd.put(&key(n), b"late", None).unwrap()));
                n += 1;
            }
            written
        })
    };
    let mut snapshots = Vec::new();
    for _ in 0..3 {
        snapshots.push(etcd.range_prefix(G).unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();

    for snap in snapshots {
        // Exactly the keys that existed at the snapshot's revision: the first 1203, and the
        // late ones written at or before it, none after.
        let late: Vec<&Vec<u8>> = written
            .iter()
            .filter(|(_, rev)| *rev <= snap.revision)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(snap.kvs.len(), 1203 + late.len());
        assert!(snap.kvs.iter().all(|kv| kv.mod_revision <= snap.revision));
        assert!(snap.kvs.iter().all(|kv| kv.key.starts_with(G)));
        let keys: Vec<&Vec<u8>> = snap.kvs.iter().map(|kv| &kv.key).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(snap.kvs[7].value, b"v7");
    }
}

#[test]
fn fleet_etcd_a_watch_sees_puts_and_deletes_in_order_from_its_start_revision() {
    let cluster = EtcdCluster::start();
    let etcd = client(&cluster);
    etcd.put(b"/jit/v1/g/before", b"0", None).unwrap();
    let r1 = etcd.put(b"/jit/v1/g/a", b"1", None).unwrap();
    let r2 = etcd.put(b"/jit/v1/g/b", b"2", None).unwrap();
    etcd.put(b"/jit/v1/g0", b"not under the prefix", None)
        .unwrap();
    assert!(etcd.delete(b"/jit/v1/g/a").unwrap());
    let r4 = etcd.put(b"/jit/v1/g/c", b"3", None).unwrap();

    let mut watch = etcd.watch_prefix(G, r1).unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.len() < 4 {
        assert!(Instant::now() < deadline, "only {events:?}");
        match watch.next().unwrap() {
            WatchItem::Events {
                revision,
                events: batch,
            } => {
                assert_eq!(revision, batch.last().unwrap().mod_revision());
                events.extend(batch);
            }
            WatchItem::Progress { .. } => {}
        }
    }
    let seen: Vec<(String, i64, bool)> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Put(kv) => (
                String::from_utf8_lossy(&kv.key).into(),
                kv.mod_revision,
                true,
            ),
            WatchEvent::Delete { key, mod_revision } => {
                (String::from_utf8_lossy(key).into(), *mod_revision, false)
            }
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/jit/v1/g/a".into(), r1, true),
            ("/jit/v1/g/b".into(), r2, true),
            ("/jit/v1/g/a".into(), r4 - 1, false),
            ("/jit/v1/g/c".into(), r4, true),
        ]
    );
    assert_eq!(watch.next_revision(), r4 + 1);

    // Live: a put after the watch caught up arrives too.
    let r5 = etcd.put(b"/jit/v1/g/d", b"4", None).unwrap();
    loop {
        assert!(Instant::now() < deadline, "the live put did not arrive");
        if let WatchItem::Events { events, .. } = watch.next().unwrap() {
            assert!(
                matches!(&events[0], WatchEvent::Put(kv) if kv.key == b"/jit/v1/g/d" && kv.mod_revision == r5)
            );
            break;
        }
    }
}

#[test]
fn fleet_etcd_an_idle_watch_hears_progress_notifications() {
    let cluster = EtcdCluster::start();
    let etcd = client(&cluster);
    let rev = etcd
        .put(b"/jit/v1/h/db-01/alive", b"elsewhere", None)
        .unwrap();
    let mut watch = etcd.watch_prefix(G, rev + 1).unwrap();
    // Three in a row, each within the idle timeout (5 s, progress every 1 s): the heartbeat
    // that tells a silent stream from a dead one.
    for _ in 0..3 {
        match watch.next().unwrap() {
            WatchItem::Progress { revision } => assert!(revision >= rev),
            other => panic!("expected progress, got {other:?}"),
        }
    }
    assert!(watch.next_revision() > rev);
}

#[test]
fn fleet_etcd_a_watch_from_before_a_compaction_is_told_to_relist() {
    let cluster = EtcdCluster::start();
    let etcd = client(&cluster);
    let first = etcd.put(b"/jit/v1/g/x", b"1", None).unwrap();
    etcd.put(b"/jit/v1/g/x", b"2", None).unwrap();
    etcd.delete(b"/jit/v1/g/x").unwrap();
    etcd.put(b"/jit/v1/g/y", b"3", None).unwrap();
    let compacted = cluster.compact();

    // etcd confirms the watch, then cancels it (and leaves the HTTP stream open).
    let mut stale = etcd.watch_prefix(G, first).unwrap();
    match stale.next() {
        Err(EtcdError::Compacted { compact_revision }) => assert_eq!(compact_revision, compacted),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // Finished: it does not wait on the open stream.
    assert!(matches!(stale.next(), Err(EtcdError::Unavailable(_))));
    // What the sync loop does next: re-list (the deleted key is simply absent) and watch
    // from there.
    let snap = etcd.range_prefix(G).unwrap();
    assert_eq!(snap.kvs.len(), 1);
    assert_eq!(snap.kvs[0].key, b"/jit/v1/g/y");
    let mut watch = etcd.watch_prefix(G, snap.revision + 1).unwrap();
    etcd.put(b"/jit/v1/g/z", b"4", None).unwrap();
    loop {
        if let WatchItem::Events { events, .. } = watch.next().unwrap() {
            assert!(matches!(&events[0], WatchEvent::Put(kv) if kv.key == b"/jit/v1/g/z"));
            break;
        }
    }
}

/// Watches `G` from `from` until `want` distinct keys were seen, re-opening the watch from
/// its next revision after each failure; returns every key's event count. Says when the
/// first watch is open on `opened`.
fn watch_until(
    etcd: Arc<Etcd>,
    mut from: i64,
    want: usize,
    failures: Arc<AtomicUsize>,
    opened: mpsc::Sender<String>,
) -> BTreeMap<Vec<u8>, usize> {
    let mut seen = BTreeMap::new();
    let mut last_revision = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "saw {} of {want} keys",
            seen.len()
        );
        let mut watch = match etcd.watch_prefix(G, from) {
            Ok(w) => w,
            Err(EtcdError::Unavailable(_)) => {
                failures.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => panic!("watch: {e}"),
        };
        let _ = opened.send(watch.endpoint().to_string());
        while seen.len() < want {
            match watch.next() {
                Ok(WatchItem::Events { events, .. }) => {
                    for e in events {
                        assert!(e.mod_revision() > last_revision, "events in order, once");
                        last_revision = e.mod_revision();
                        if let WatchEvent::Put(kv) = e {
                            *seen.entry(kv.key).or_insert(0) += 1;
                        }
                    }
                }
                Ok(WatchItem::Progress { .. }) => {}
                Err(EtcdError::Unavailable(_)) => {
                    failures.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(e) => panic!("watch: {e}"),
            }
        }
        from = watch.next_revision();
    }
    seen
}

/// Puts keys 0..n, each retried until it succeeds (a put that timed out may have landed:
/// writing it again is harmless). Returns the longest wait between two successful puts
/// (printed for the record, not asserted).
fn write_all(etcd: &Etcd, n: usize, progress: &AtomicUsize, failures: &AtomicUsize) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    for i in 0..n {
        loop {
            assert!(Instant::now() < deadline, "put {i} never succeeded");
            match etcd.put(&key(i), b"v", None) {
                Ok(_) => break,
                Err(EtcdError::Unavailable(_)) => {
                    failures.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("put {i}: {e}"),
            }
        }
        progress.store(i + 1, Ordering::SeqCst);
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    longest
}

/// How a test takes a member away.
#[derive(Clone, Copy)]
enum Loss {
    /// SIGKILL of the leader: an election follows (about 1-3 s).
    KillLeader,
    /// SIGTERM of a follower: its streams end cleanly or with a 408 error line.
    StopFollower,
}

/// Writes 300 keys through a client that starts on the member about to go, with a watch
/// on that member, takes the member away after 50 puts, and counts every key.
fn lose_a_member_while_writing_and_watching(loss: Loss) {
    let mut cluster = EtcdCluster::start();
    let leader = cluster.leader();
    let victim = match loss {
        Loss::KillLeader => leader,
        Loss::StopFollower => (leader + 1) % 3,
    };
    // Writer and watcher both start on the victim, so both must move.
    let etcd = Arc::new(client_on(&cluster, victim));
    let start = etcd.range_prefix(G).unwrap().revision + 1;
    const N: usize = 300;
    let watch_failures = Arc::new(AtomicUsize::new(0));
    let (opened, first_watch) = mpsc::channel();
    let watcher = {
        let (etcd, failures) = (Arc::clone(&etcd), Arc::clone(&watch_failures));
        thread::spawn(move || watch_until(etcd, start, N, failures, opened))
    };
    let on = first_watch
        .recv_timeout(Duration::from_secs(60))
        .expect("the watch opened");
    assert_eq!(on, cluster.endpoint(victim));
    let written = Arc::new(AtomicUsize::new(0));
    let put_failures = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (etcd, written, failures) = (
            Arc::clone(&etcd),
            Arc::clone(&written),
            Arc::clone(&put_failures),
        );
        thread::spawn(move || write_all(&etcd, N, &written, &failures))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while written.load(Ordering::SeqCst) < 50 {
        assert!(
            Instant::now() < deadline,
            "the first 50 puts did not happen"
        );
        thread::sleep(Duration::from_millis(10));
    }
    match loss {
        Loss::KillLeader => cluster.kill9(victim),
        Loss::StopFollower => cluster.stop(victim),
    }
    let gap = writer.join().expect("every put succeeded in the end");
    let seen = watcher.join().expect("the watch saw every key");
    eprintln!(
        "longest write gap {gap:?}; {} put and {} watch failures",
        put_failures.load(Ordering::SeqCst),
        watch_failures.load(Ordering::SeqCst)
    );

    assert_eq!(seen.len(), N);
    // A put retried after a failover may have landed twice (two events for one key); no
    // event arrives twice: `watch_until` checks that revisions only grow.
    assert!(
        watch_failures.load(Ordering::SeqCst) >= 1,
        "the watch had to move"
    );
    assert_ne!(etcd.endpoint_in_use(), cluster.endpoint(victim));
    // Every key is there, read through a survivor.
    assert_eq!(etcd.range_prefix(G).unwrap().kvs.len(), N);
}

#[test]
fn fleet_etcd_killing_the_leader_loses_no_write_and_no_event() {
    lose_a_member_while_writing_and_watching(Loss::KillLeader);
}

#[test]
fn fleet_etcd_stopping_a_member_hands_writes_and_the_watch_to_the_next() {
    lose_a_member_while_writing_and_watching(Loss::StopFollower);
}

#[test]
fn fleet_etcd_a_member_cut_off_from_the_others_ends_its_watch_and_calls_move_on() {
    let cluster = EtcdCluster::start();
    let etcd = Arc::new(client_on(&cluster, 0));
    let rev = etcd.put(b"/jit/v1/g/a", b"1", None).unwrap();
    let mut watch = etcd.watch_prefix(G, rev + 1).unwrap();
    assert_eq!(watch.endpoint(), cluster.endpoint(0));
    // Members 1 and 2 freeze: member 0 is alone, a minority without a leader. Its watch
    // must end (no leader, or silence past the idle timeout) instead of going quiet forever.
    cluster.pause(1);
    cluster.pause(2);
    let within = Duration::from_secs(60);
    let (ended, mut watch) = bounded(within, move || loop {
        match watch.next() {
            Ok(_) => continue,
            Err(e) => return (e, watch),
        }
    });
    assert!(matches!(ended, EtcdError::Unavailable(_)), "{ended}");
    eprintln!("the cut-off member's watch ended: {ended}");
    // Writes cannot commit anywhere: each endpoint fails within its timeout, no hang.
    let e = {
        let etcd = Arc::clone(&etcd);
        bounded(within, move || {
            etcd.put(b"/jit/v1/g/b", b"2", None).unwrap_err()
        })
    };
    assert!(matches!(e, EtcdError::Unavailable(_)), "{e}");

    cluster.resume(1);
    cluster.resume(2);
    cluster.wait_healthy();
    let from = watch.next_revision();
    assert!(watch.next().is_err(), "a finished watch stays finished");
    let deadline = Instant::now() + Duration::from_secs(60);
    let rev2 = loop {
        match etcd.put(b"/jit/v1/g/b", b"2", None) {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "no put after the partition: {e}"),
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Resumed from where the first watch ended, the new one brings our put, perhaps after
    // the put that "failed": frozen members read it from their sockets once thawed and
    // applied it. A timed-out write is not a write that did not happen.
    let mut watch = etcd.watch_prefix(G, from).unwrap();
    'found: loop {
        if let WatchItem::Events { events, .. } = watch.next().unwrap() {
            for e in events {
                assert!(
                    matches!(&e, WatchEvent::Put(kv) if kv.key == b"/jit/v1/g/b"),
                    "{e:?}"
                );
                if e.mod_revision() == rev2 {
                    break 'found;
                }
            }
        }
    }
}

#[test]
fn fleet_etcd_the_client_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Etcd>();
    fn send<T: Send>() {}
    send::<super::watch::Watch>();
}

#[test]
fn fleet_etcd_a_frozen_member_is_left_behind_by_writes_and_the_watch() {
    let cluster = EtcdCluster::start();
    let leader = cluster.leader();
    let frozen = (leader + 1) % 3;
    let etcd = Arc::new(client_on(&cluster, frozen));
    let start = etcd.range_prefix(G).unwrap().revision + 1;
    const N: usize = 60;
    let failures = Arc::new(AtomicUsize::new(0));
    let (opened, first_watch) = mpsc::channel();
    let watcher = {
        let (etcd, failures) = (Arc::clone(&etcd), Arc::clone(&failures));
        thread::spawn(move || watch_until(etcd, start, N, failures, opened))
    };
    // Once the watch is open on the member, freeze it (SIGSTOP): its sockets stay open and
    // say nothing, as in a partition.
    let on = first_watch
        .recv_timeout(Duration::from_secs(60))
        .expect("the watch opened");
    assert_eq!(on, cluster.endpoint(frozen));
    cluster.pause(frozen);
    let written = AtomicUsize::new(0);
    let put_failures = AtomicUsize::new(0);
    let gap = write_all(&etcd, N, &written, &put_failures);
    eprintln!("longest write gap {gap:?} with a frozen member");
    let seen = watcher.join().expect("the watch saw every key");
    cluster.resume(frozen);
    assert_eq!(seen.len(), N);
    assert!(
        failures.load(Ordering::SeqCst) >= 1,
        "the idle timeout ended the watch"
    );
    assert_ne!(etcd.endpoint_in_use(), cluster.endpoint(frozen));
}

#[test]
fn fleet_etcd_with_every_member_down_calls_fail_within_their_timeouts_and_recover() {
    let mut cluster = EtcdCluster::start();
    let etcd = Arc::new(client(&cluster));
    let rev = etcd.put(b"/jit/v1/g/a", b"1", None).unwrap();
    let status = etcd.status();
    assert_eq!(status.len(), 3);
    assert!(status
        .iter()
        .all(|m| m.reachable && m.version.as_deref().is_some_and(|v| v.starts_with("3."))));
    assert_eq!(status.iter().filter(|m| m.leader).count(), 1);
    // A follower may not have applied the last put yet: its revision can lag.
    assert!(status
        .iter()
        .all(|m| m.revision.is_some() && m.raft_term.is_some()));

    let mut watch = etcd.watch_prefix(G, rev + 1).unwrap();
    for i in 0..3 {
        cluster.stop(i);
    }
    let within = Duration::from_secs(60);
    let ended = bounded(within, move || loop {
        match watch.next() {
            Ok(_) => continue,
            Err(e) => return e,
        }
    });
    assert!(matches!(ended, EtcdError::Unavailable(_)), "{ended}");
    for e in [
        {
            let etcd = Arc::clone(&etcd);
            bounded(within, move || {
                etcd.put(b"/jit/v1/g/b", b"2", None).unwrap_err()
            })
        },
        {
            let etcd = Arc::clone(&etcd);
            bounded(within, move || etcd.range_prefix(G).unwrap_err())
        },
        {
            let etcd = Arc::clone(&etcd);
            bounded(within, move || etcd.watch_prefix(G, rev + 1).unwrap_err())
        },
    ] {
        let EtcdError::Unavailable(why) = &e else {
            panic!("expected Unavailable, got {e:?}")
        };
        // Each endpoint is named with what went wrong there.
        for ep in cluster.endpoints() {
            assert!(why.contains(&ep), "{why}");
        }
        assert!(e.to_string().contains("etcdctl endpoint status"), "{e}");
    }
    assert!(etcd
        .status()
        .iter()
        .all(|m| !m.reachable && m.error.is_some()));

    for i in 0..3 {
        cluster.start_member(i);
    }
    cluster.wait_healthy();
    let rev2 = etcd.put(b"/jit/v1/g/b", b"2", None).unwrap();
    assert!(rev2 > rev);
    assert_eq!(etcd.range_prefix(G).unwrap().kvs.len(), 2);
}

#[test]
fn fleet_etcd_a_lease_keeps_its_key_while_renewed_and_drops_it_after() {
    let cluster = EtcdCluster::start();
    let etcd = client(&cluster);
    let alive = b"/jit/v1/h/db-01/alive";
    let lease = etcd.lease_grant(2).unwrap();
    etcd.put(alive, b"{}", Some(lease)).unwrap();
    // Renewed every 500 ms for three TTLs: still there.
    for _ in 0..12 {
        assert!(etcd.lease_keepalive(lease).unwrap());
        thread::sleep(Duration::from_millis(500));
    }
    assert!(etcd.get(alive).unwrap().is_some());
    // Left alone, the lease expires and takes the key with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while etcd.get(alive).unwrap().is_some() {
        assert!(Instant::now() < deadline, "the key outlived its lease");
        thread::sleep(Duration::from_millis(200));
    }
    assert!(!etcd.lease_keepalive(lease).unwrap());
    assert_eq!(
        etcd.put(alive, b"{}", Some(lease)),
        Err(EtcdError::LeaseGone)
    );
    assert!(!etcd.lease_revoke(lease).unwrap());
    // A new lease works.
    let fresh = etcd.lease_grant(10).unwrap();
    etcd.put(alive, b"{}", Some(fresh)).unwrap();
    assert!(etcd.lease_revoke(fresh).unwrap());
    assert_eq!(etcd.get(alive).unwrap(), None);
}

#[test]
fn fleet_etcd_an_oversized_value_is_refused_and_the_largest_allowed_one_goes_through() {
    let cluster = EtcdCluster::start();
    let etcd = client(&cluster);
    let big = vec![b'x'; MAX_VALUE + 1];
    let e = etcd.put(b"/jit/v1/g/big", &big, None).unwrap_err();
    assert!(matches!(e, EtcdError::TooLarge(_)), "{e}");
    assert!(matches!(
        etcd.create(b"/jit/v1/g/big", &big),
        Err(EtcdError::TooLarge(_))
    ));
    assert_eq!(etcd.get(b"/jit/v1/g/big").unwrap(), None);
    let largest = vec![b'y'; MAX_VALUE];
    etcd.put(b"/jit/v1/g/big", &largest, None).unwrap();
    assert_eq!(
        etcd.get(b"/jit/v1/g/big").unwrap().unwrap().value.len(),
        MAX_VALUE
    );
}

fn tls_settings(cluster: &EtcdCluster, password: &str) -> EtcdSettings {
    let tls = cluster.tls().expect("a TLS cluster");
    EtcdSettings {
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(tls.cert.clone()),
        key_file: Some(tls.key.clone()),
        user: Some(HOST_USER.into()),
        password: Some(password.into()),
        ..settings(cluster.endpoints())
    }
}

#[test]
fn fleet_etcd_over_tls_a_host_user_reads_grants_and_writes_only_its_own_keys() {
    let cluster = EtcdCluster::start_tls();
    let etcd = Etcd::new(tls_settings(&cluster, HOST_PASSWORD)).unwrap();
    let own = b"/jit/v1/h/t1/alive";
    etcd.put(own, b"{}", None).unwrap();
    assert_eq!(etcd.get(own).unwrap().unwrap().value, b"{}");
    assert!(etcd.range_prefix(G).unwrap().kvs.is_empty());
    let mut watch = etcd.watch_prefix(G, 1).unwrap();
    assert!(matches!(watch.next().unwrap(), WatchItem::Progress { .. }));

    // RBAC: a grant record, another host's keys.
    let e = etcd.put(b"/jit/v1/g/req/t1/x", b"{}", None).unwrap_err();
    assert!(matches!(e, EtcdError::Denied(_)), "{e}");
    let e = etcd.put(b"/jit/v1/h/t2/alive", b"{}", None).unwrap_err();
    assert!(matches!(e, EtcdError::Denied(_)), "{e}");
    let e = etcd.watch_prefix(b"/jit/v1/h/t2/", 1).unwrap_err();
    assert!(matches!(e, EtcdError::Denied(_)), "{e}");

    // The token expires after 2 s idle (--auth-token-ttl 2): the client authenticates again.
    thread::sleep(Duration::from_secs(4));
    assert!(etcd.get(own).unwrap().is_some());

    let status = etcd.status();
    assert!(status[0].reachable && status[0].leader, "{status:?}");
}

#[test]
fn fleet_etcd_over_tls_wrong_credentials_and_certificates_are_refused() {
    let cluster = EtcdCluster::start_tls();
    let tls = cluster.tls().unwrap().clone();

    let wrong = Etcd::new(tls_settings(&cluster, "not-the-password")).unwrap();
    let e = wrong.get(b"/jit/v1/h/t1/alive").unwrap_err();
    assert!(matches!(e, EtcdError::Auth(_)), "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    assert!(!format!("{e:?}").contains("not-the-password"));

    let anonymous = Etcd::new(EtcdSettings {
        user: None,
        password: None,
        ..tls_settings(&cluster, "")
    })
    .unwrap();
    let e = anonymous.get(b"/jit/v1/h/t1/alive").unwrap_err();
    assert!(matches!(e, EtcdError::Auth(_)), "{e}");

    // A client certificate with a CN: the gateway refuses every request.
    let cn = Etcd::new(EtcdSettings {
        cert_file: Some(tls.cn_cert.clone()),
        key_file: Some(tls.cn_key.clone()),
        ..tls_settings(&cluster, HOST_PASSWORD)
    })
    .unwrap();
    let e = cn.get(b"/jit/v1/h/t1/alive").unwrap_err();
    assert!(
        matches!(e, EtcdError::Auth(_)) && e.to_string().contains("CN"),
        "{e}"
    );

    // No client certificate, or a server our CA did not sign: no TLS session at all.
    let no_cert = Etcd::new(EtcdSettings {
        cert_file: None,
        key_file: None,
        ..tls_settings(&cluster, HOST_PASSWORD)
    })
    .unwrap();
    let e = no_cert.get(b"/jit/v1/h/t1/alive").unwrap_err();
    assert!(matches!(e, EtcdError::Unavailable(_)), "{e}");
    let public_roots = Etcd::new(EtcdSettings {
        ca_file: None,
        ..tls_settings(&cluster, HOST_PASSWORD)
    })
    .unwrap();
    let e = public_roots.get(b"/jit/v1/h/t1/alive").unwrap_err();
    assert!(
        matches!(&e, EtcdError::Unavailable(m) if m.contains("certificate") || m.contains("Certificate")),
        "{e}"
    );
}
