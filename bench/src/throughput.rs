//! Measurement 3: checks per second with 1, 8 and 64 concurrent clients, each a thread doing connect +
//! Check + read through `jit_proto::Client` as root (what pam_jit does), for a fixed time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jit_proto::{Client, GrantKind, Request, Response};

use crate::daemon::{context, BenchDaemon};
use crate::report::{Goal, Report};

pub fn measure(report: &mut Report, jitd: &BenchDaemon, user: &str, run_for: Duration) {
    for clients in [1usize, 8, 64] {
        let (rate, errors) = run(jitd, user, clients, run_for);
        let key = format!("throughput.c{clients}.checks_per_s");
        let label = format!("jitd checks/s, {clients} clients");
        if clients == 64 {
            report.goal(&key, &label, rate, "/s", Goal::AtLeast(30_000.0));
        } else {
            report.add(&key, &label, rate, "/s");
        }
        if errors > 0 {
            report.note(format!(
                "{clients} clients: {errors} checks failed (busy or timed out)"
            ));
        }
    }
}

fn run(jitd: &BenchDaemon, user: &str, clients: usize, run_for: Duration) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let socket = jitd.socket();
    let request = Request::Check(context(user, GrantKind::Ssh));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            let (socket, request) = (socket.clone(), request.clone());
            std::thread::spawn(move || {
                let client = Client::new(&socket, Duration::from_secs(5));
                while !stop.load(Ordering::Relaxed) {
                    match client.call(request.clone()) {
                        Ok(Response::Allowed { .. }) => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    // Warm up, then count only the measured window.
    std::thread::sleep(Duration::from_millis(300));
    let (start_done, start) = (done.load(Ordering::Relaxed), Instant::now());
    let start_failed = failed.load(Ordering::Relaxed);
    std::thread::sleep(run_for);
    let counted = done.load(Ordering::Relaxed) - start_done;
    let errors = failed.load(Ordering::Relaxed) - start_failed;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    (counted as f64 / elapsed.as_secs_f64(), errors)
}
