//! Measurement 4: revocation precision: 1,000 sudo grants whose windows close one every 10 ms over 10 s;
//! for each, how late its drop-in disappeared from the sudoers directory (seen through
//! inotify) after its deadline.
//!
//! The grants are written as state files with their drop-ins already installed, exactly as
//! jitd renders them (so its startup reconciliation finds nothing to change): installing
//! 1,000 drop-ins through jitd runs visudo twice for each and would take longer than the
//! 10-second expiry spread itself. Expiry — the part measured — is jitd's own: the scheduler
//! marks each grant expired (persisted, audited) and removes its drop-in.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use jit_tests::TestUser;

use crate::daemon::BenchDaemon;
use crate::report::{Goal, Report};
use crate::state::{self, Grant};

const STOP: &str = "bench.stop";

pub fn measure(report: &mut Report, grants: usize, spread: Duration) {
    let user = TestUser::create("brv");
    let lead = Duration::from_secs(6);
    let first = Utc::now() + chrono::Duration::from_std(lead).expect("lead");
    let step = spread / grants as u32;
    let deadlines: HashMap<String, DateTime<Utc>> = (0..grants)
        .map(|i| {
            let at = first + chrono::Duration::from_std(step * i as u32).expect("step");
            (state::id('r', i), at)
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let mut watcher = None;
    let jitd = BenchDaemon::start("", |state_dir, sudoers| {
        let list: Vec<Grant> = deadlines
            .iter()
            .map(|(id, at)| Grant {
                id: id.clone(),
                user: user.name.clone(),
                uid: user.uid,
                command: Some(vec!["/usr/bin/true".into()]),
                approved_at: Utc::now(),
                expires_at: *at,
            })
            .collect();
        state::append_approvals(state_dir, &list).expect("write approvals");
        state::write_requests(state_dir, list).expect("write grants");
        for (id, at) in &deadlines {
            let path = sudoers.join(format!("jit_{id}"));
            std::fs::write(&path, drop_in(id, user.uid, *at)).expect("drop-in");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).expect("chmod");
        }
        watcher = Some(watch(sudoers, tx));
    });
    report.add(
        "revocation.cold_start_ms",
        "revocation: jitd start with 1,000 sudo grants",
        jitd.cold_start.as_secs_f64() * 1e3,
        "ms",
    );
    if jitd.cold_start >= lead {
        report.note("revocation: jitd started after the first deadline; lateness includes startup");
    }
    let reinstalled = jitd
        .log()
        .matches("installed the missing or altered")
        .count();
    if reinstalled > 0 {
        report.note(format!("revocation: jitd reinstalled {reinstalled} drop-ins at startup (the bench's rendering differs from jitd's)"));
    }

    let give_up = SystemTime::now() + lead + spread + Duration::from_secs(30);
    let mut late_ms: Vec<f64> = Vec::new();
    let mut early = 0;
    while late_ms.len() + early < grants && SystemTime::now() < give_up {
        let Ok((name, seen)) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let Some(at) = name.strip_prefix("jit_").and_then(|id| deadlines.get(id)) else {
            continue;
        };
        let seen: DateTime<Utc> = seen.into();
        let late = (seen - *at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3;
        if late < 0.0 {
            early += 1;
        } else {
            late_ms.push(late);
        }
    }
    let _ = std::fs::write(jitd.sudoers_dir().join(STOP), "");
    let _ = std::fs::remove_file(jitd.sudoers_dir().join(STOP));
    if let Some(w) = watcher {
        let _ = w.join();
    }
    let missing = grants - late_ms.len() - early;
    if early > 0 {
        report.note(format!(
            "revocation: {early} drop-ins were removed BEFORE their deadline"
        ));
    }
    if missing > 0 {
        report.note(format!(
            "revocation: {missing} drop-ins were still there 30 s after the last deadline"
        ));
    }
    late_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if late_ms.is_empty() {
            return f64::NAN;
        }
        late_ms[((q * late_ms.len() as f64).ceil() as usize).clamp(1, late_ms.len()) - 1]
    };
    report.add(
        "revocation.p50_ms",
        "revocation lateness p50 (1,000 over 10 s)",
        pick(0.5),
        "ms",
    );
    report.goal(
        "revocation.p99_ms",
        "revocation lateness p99",
        pick(0.99),
        "ms",
        Goal::AtMost(100.0),
    );
    report.add(
        "revocation.max_ms",
        "revocation lateness max",
        pick(1.0),
        "ms",
    );
}

/// jitd's rendering of a sudo grant for `/usr/bin/true` (see jitd's `sudoers_rule::render`).
fn drop_in(id: &str, uid: u32, expires_at: DateTime<Utc>) -> String {
    format!(
        "# jit grant {id}: managed by jitd, removed when the grant ends. Do not edit.\n\
         #{uid} ALL=(root) NOTAFTER={} NOPASSWD: /usr/bin/true \"\"\n",
        expires_at.format("%Y%m%d%H%M%SZ")
    )
}

/// Reports every file deleted from (or moved out of) `dir` with when it was seen, until a
/// file named [`STOP`] appears.
fn watch(dir: &Path, tx: mpsc::Sender<(String, SystemTime)>) -> std::thread::JoinHandle<()> {
    // SAFETY: plain syscall; the descriptor is checked and closed by the thread below.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    let path = CString::new(dir.as_os_str().as_bytes()).expect("path");
    // SAFETY: `fd` is our inotify descriptor and `path` a valid C string.
    let wd = unsafe {
        libc::inotify_add_watch(
            fd,
            path.as_ptr(),
            libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_CREATE,
        )
    };
    assert!(
        wd >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        'outer: loop {
            // SAFETY: reads into our own buffer of the given length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            let seen = SystemTime::now();
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote a whole inotify_event header at `at`; read_unaligned
                // copes with the byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let name_bytes = &buf[at + header..at + header + ev.len as usize];
                let name = String::from_utf8_lossy(name_bytes)
                    .trim_end_matches('\0')
                    .to_string();
                at += header + ev.len as usize;
                if name == STOP {
                    break 'outer;
                }
                if ev.mask & libc::IN_CREATE == 0 && tx.send((name, seen)).is_err() {
                    break 'outer;
                }
            }
        }
        // SAFETY: closes the descriptor this thread owns.
        unsafe { libc::close(fd) };
    })
}
