//! Measurement: the PAM account check of a user who holds a grant while another,
//! unprivileged user floods jitd with submit+cancel over 8 connections (what once made 10 of
//! 60 checks of another user fail, and what `fail=open` turned into passes), beside the idle
//! check measured in the same run, on the same services.
//!
//! The flood runs in a process of the flooding user's own (`jit-bench --flood SOCKET SECS`,
//! started through runuser), so jitd sees a real unprivileged peer and its rate limit.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jit_proto::{Client, NewRequest, Request, Response, Target};
use jit_tests::TestUser;

use crate::pam_check::Services;
use crate::report::{Goal, Report};
use crate::stats::summarise;

const THREADS: usize = 8;

pub fn measure(
    report: &mut Report,
    services: &Services,
    socket: &std::path::Path,
    user: &str,
    iterations: usize,
) {
    services.run("bench-jit", user, 200);
    let mut idle = services.run("bench-jit", user, iterations);
    let flooder = TestUser::create("bflood");
    let mut child = Command::new("runuser")
        .args(["-u", &flooder.name, "--"])
        .arg(std::env::current_exe().expect("jit-bench's path"))
        .arg("--flood")
        .arg(socket)
        .arg("600")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the flood");
    let mut lines = BufReader::new(child.stdout.take().expect("flood's stdout")).lines();
    let started = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(started, "flooding", "the flood did not start");
    // Let the flood reach its steady state (rate limit engaged) before measuring.
    std::thread::sleep(Duration::from_secs(1));
    let (mut flooded, failed) = services.run_counting("bench-jit", user, iterations);
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let idle = summarise(&mut idle);
    let flooded = summarise(&mut flooded);
    report.add(
        "pam.flood.idle_p99_us",
        "PAM account check, idle: p99",
        idle.p99,
        "µs",
    );
    report.add(
        "pam.flood.flooded_p99_us",
        "PAM account check, one user flooding submit+cancel ×8: p99",
        flooded.p99,
        "µs",
    );
    report.goal(
        "pam.flood.failed",
        "PAM account checks failed during the flood",
        failed as f64,
        "",
        Goal::AtMost(0.0),
    );
    report.goal(
        "pam.flood.p99_ratio",
        "PAM check p99 under a one-user flood / idle p99",
        flooded.p99 / idle.p99,
        "×",
        Goal::AtMost(3.0),
    );
}

/// The flooding process: `THREADS` connections looping submit+cancel for `secs` seconds (or
/// until killed). Prints "flooding" once the threads run.
pub fn run(socket: &str, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let socket = socket.to_string();
            std::thread::spawn(move || {
                let client = Client::new(&socket, Duration::from_secs(5));
                while Instant::now() < until {
                    let submitted = client.call(Request::Submit(NewRequest {
                        target: Target::Sudo {
                            command: vec!["/usr/bin/true".into()],
                        },
                        duration_secs: Some(60),
                        reason: Some("flood".into()),
                        ticket: None,
                        role: None,
                        hosts: None,
                    }));
                    if let Ok(Response::Request { request }) = submitted {
                        let _ = client.call(Request::Cancel { id: request.id });
                    }
                }
            })
        })
        .collect();
    println!("flooding");
    for t in threads {
        let _ = t.join();
    }
}
