//! What a PAM account check through pam_jit is made of, each part timed on its own and all of
//! them interleaved in blocks in one loop, so drift on a shared machine hits each alike:
//!
//! - the module's image: `dlopen(RTLD_NOW)` + `dlclose` of `libpam_jit.so` beside the same
//!   for `pam_permit.so` (what libpam does for each transaction);
//! - whole transactions through libpam (`pam_start_confdir` → `pam_acct_mgmt` → `pam_end`):
//!   pam_jit, pam_jit with its image kept loaded by this process (its bare line, and the
//!   stack as deployed: `exempt_group=` and the session line), and pam_permit;
//! - the two membership tests of `exempt_group=` through NSS, as pam_jit makes them: the
//!   cheap one before jitd is asked (`getpwnam_r` + `getgrnam_r`, the group's member list) and
//!   the full one it makes only when jitd says no or cannot answer (`getgrouplist`);
//! - the round trip to jitd alone, as pam_jit makes it (`jit_proto::Client`: connect, peer
//!   check, one frame each way) against the daemon with 100,000 active grants and against one
//!   holding only this user's grant;
//! - the floor of such a round trip on this machine: the same connect + frame + answer against
//!   a thread of this process that answers a fixed frame (no decoding, no lookup), served the
//!   way jitd serves (the accepting thread answers);
//! - the frames' encoding and decoding alone, in process (what both sides' serde costs), and
//!   jitd's reading of a request as it was (a `Value` first, for the version) and as it is.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use jit_proto::{Client, ClientMessage, GrantKind, Request, Response};
use jit_tests::TempDir;

use crate::daemon::{context, release, BenchDaemon};
use crate::pam_check::{KeepLoaded, Services};
use crate::report::Report;
use crate::stats::{summarise, time};

const PAM_PERMIT: &str = "/lib/x86_64-linux-gnu/security/pam_permit.so";

/// A thread answering every connection with one fixed frame after reading one: the least a
/// Unix-socket round trip with jitd's wake-up pattern can cost here.
struct EchoServer {
    dir: TempDir,
}

impl EchoServer {
    fn start(answer: Vec<u8>) -> EchoServer {
        let dir = TempDir::new("benchecho");
        let listener = UnixListener::bind(dir.path().join("echo.sock")).expect("bind");
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut len = [0u8; 4];
                if stream.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if stream.read_exact(&mut body).is_ok() {
                    let _ = stream.write_all(&answer);
                }
            }
        });
        EchoServer { dir }
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("echo.sock")
    }
}

fn frame(body: Vec<u8>) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn dlopen_close(path: &Path) {
    let _handle = KeepLoaded::new(path);
}

pub fn measure(
    report: &mut Report,
    services: &Services,
    big: &BenchDaemon,
    user: &str,
    uid: u32,
    iterations: usize,
) {
    let small = crate::scale::start(0, Some((user, uid)), None);
    let request = Request::Check(context(user, GrantKind::Ssh));
    let allowed = Response::Allowed {
        grant_id: "kuuh2c7uau".into(),
    };
    let echo = EchoServer::start(frame(serde_json::to_vec(&allowed).expect("json")));
    let jit_so = release("libpam_jit.so");
    let permit_so = Path::new(PAM_PERMIT);
    let ask = |socket: &Path| {
        let answer = Client::new(socket, Duration::from_secs(5)).call(request.clone());
        assert!(
            matches!(answer, Ok(Response::Allowed { .. })),
            "check through {}: {answer:?}",
            socket.display()
        );
    };
    let encoded_request = serde_json::to_vec(&ClientMessage::new(request.clone())).expect("json");
    let encoded_answer = serde_json::to_vec(&allowed).expect("json");
    let codec = || {
        // What both ends do with the two frames: encode, decode, both ways.
        let a = serde_json::to_vec(&ClientMessage::new(request.clone())).expect("json");
        let _: ClientMessage = serde_json::from_slice(&encoded_request).expect("json");
        let b = serde_json::to_vec(&allowed).expect("json");
        let _: Response = serde_json::from_slice(&encoded_answer).expect("json");
        std::hint::black_box((a, b));
    };

    type Part<'a> = (&'a str, &'a str, Box<dyn Fn() -> Duration + 'a>);
    let parts: Vec<Part> = vec![
        (
            "cost.dlopen_jit",
            "image: dlopen+dlclose libpam_jit.so",
            Box::new(|| time(|| dlopen_close(&jit_so))),
        ),
        (
            "cost.dlopen_permit",
            "image: dlopen+dlclose pam_permit.so",
            Box::new(|| time(|| dlopen_close(permit_so))),
        ),
        (
            "cost.libpam_jit",
            "libpam transaction, pam_jit (100k grants)",
            Box::new(|| services.run("bench-jit", user, 1)[0]),
        ),
        (
            "cost.libpam_jit_loaded",
            "libpam transaction, pam_jit kept loaded (100k grants)",
            Box::new(|| {
                let _module = KeepLoaded::new(&jit_so);
                services.run("bench-jit", user, 1)[0]
            }),
        ),
        (
            "cost.libpam_jit_exempt_group",
            "libpam transaction, pam_jit kept loaded, as deployed (exempt_group=, session line)",
            Box::new(|| {
                let _module = KeepLoaded::new(&jit_so);
                services.run("bench-jit-exempt", user, 1)[0]
            }),
        ),
        (
            "cost.libpam_permit",
            "libpam transaction, pam_permit",
            Box::new(|| services.run("bench-permit", user, 1)[0]),
        ),
        (
            "cost.nss_listed",
            "exempt_group, cheap test: getpwnam_r + getgrnam_r (asked on every check)",
            Box::new(|| time(|| listed(user, services.breakglass()))),
        ),
        (
            "cost.nss_grouplist",
            "exempt_group, full test as pam_jit makes it: getpwnam_r + getgrnam_r + getgrouplist (only when jitd says no)",
            Box::new(|| time(|| member(user, services.breakglass()))),
        ),
        (
            "cost.round_trip_100k",
            "round trip to jitd (Client::call Check), 100k grants",
            Box::new(|| time(|| ask(&big.socket()))),
        ),
        (
            "cost.round_trip_1",
            "round trip to jitd (Client::call Check), 1 grant",
            Box::new(|| time(|| ask(&small.socket()))),
        ),
        (
            "cost.round_trip_floor",
            "round trip to a fixed-answer socket thread (floor)",
            Box::new(|| time(|| ask(&echo.socket()))),
        ),
        (
            "cost.decode_value_then_request",
            "jitd reading a Check frame as it did: into a Value (for v), then the request",
            Box::new(|| {
                time(|| {
                    let v: serde_json::Value =
                        serde_json::from_slice(&encoded_request).expect("json");
                    let m: ClientMessage = serde_json::from_slice(&encoded_request).expect("json");
                    std::hint::black_box((v, m));
                })
            }),
        ),
        (
            "cost.decode_request",
            "jitd reading a Check frame once, as the request",
            Box::new(|| {
                time(|| {
                    let m: ClientMessage = serde_json::from_slice(&encoded_request).expect("json");
                    std::hint::black_box(m);
                })
            }),
        ),
        (
            "cost.codec",
            "encode + decode both frames, in process",
            Box::new(|| time(codec)),
        ),
    ];
    let block = 250.min(iterations);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); parts.len()];
    // Warm-up, then interleaved blocks.
    for (_, _, f) in &parts {
        for _ in 0..100 {
            f();
        }
    }
    while samples[0].len() < iterations {
        for (i, (_, _, f)) in parts.iter().enumerate() {
            for _ in 0..block {
                samples[i].push(f());
            }
        }
    }
    for ((key, label, _), mut s) in parts.iter().zip(samples) {
        let s = summarise(&mut s);
        report.add(
            &format!("{key}.p50_us"),
            &format!("{label}: p50"),
            s.p50,
            "µs",
        );
        report.add(
            &format!("{key}.p99_us"),
            &format!("{label}: p99"),
            s.p99,
            "µs",
        );
    }
}

/// pam_jit's cheap break-glass test (primary gid or the group's member list).
fn listed(user: &str, group: &str) {
    pam_jit::groups::is_listed(user, group).expect("getpwnam_r + getgrnam_r");
}

/// pam_jit's full break-glass test (getgrouplist, every NSS source).
fn member(user: &str, group: &str) {
    pam_jit::groups::is_member(user, group).expect("getgrouplist");
}
