//! `jit-bench`: measures jitd and pam_jit against baselines measured in the same run, prints
//! one table and writes it as JSON (format in `report.rs`, documented in docs/benchmarks.md).
//! Run through `bench/run`, which builds the release binaries first. Needs root: it creates
//! users, PAM services and sudoers drop-ins (all removed afterwards).
//!
//! `jit-bench [--quick] [--only SECTION,...] [--ssh-pairs N] [--micro FILE] [--out FILE]`:
//! `--ssh-pairs` sets how many pairs of SSH logins are timed (40; `--quick` 5); `--quick` is a smoke
//! run with a tenth of the grants and iterations (its figures are not the ones to quote);
//! `--only` runs some of `scale,pam,flood,cost,sudo,ssh,throughput,revocation,fleet` (`flood`
//! goes with `pam`; the 100k daemon starts for any of the first seven; `fleet` starts its own
//! etcd), or `big`: the 100k daemon alone (its cold start and memory); `--micro` puts the
//! rows of `cargo bench -p jitd --bench core` at the top of the table.
//! `jit-bench --compare OLD.json [NEW.json]` prints the rows two results files share side by
//! side, with new/old and whether each run met the goals (NEW: target/bench/results.json).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod daemon;
mod fleet;
mod flood;
mod pam_check;
mod pam_cost;
mod report;
mod revocation;
mod scale;
mod ssh_login;
mod state;
mod stats;
mod sudo_wall;
mod throughput;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jit_tests::{TempDir, TestUser};

use report::{Goal, Report};

struct Plan {
    grants: usize,
    small_grants: usize,
    audit_records: u64,
    /// Ended requests past retention, beside the big run's grants.
    history: usize,
    pam_iterations: usize,
    sudo_iterations: usize,
    /// Alternating pairs of SSH logins (with and without pam_jit).
    ssh_pairs: usize,
    throughput_for: Duration,
    revocation_grants: usize,
    fleet: fleet::Plan,
}

fn main() {
    let mut out = jit_tests::workspace_root().join("target/bench/results.json");
    let mut quick = false;
    let mut micro: Option<PathBuf> = None;
    let mut only: Option<Vec<String>> = None;
    let mut ssh_pairs: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                only = Some(
                    args.next()
                        .expect("--only SECTIONS")
                        .split(',')
                        .map(String::from)
                        .collect(),
                )
            }
            "--compare" => {
                // NEW defaults to the results file this run would write.
                let Some(old) = args.next() else {
                    eprintln!("usage: jit-bench --compare OLD.json [NEW.json]");
                    std::process::exit(2);
                };
                let new = args.next().map_or(out, PathBuf::from);
                match report::compare(old.as_ref(), &new) {
                    Ok(table) => print!("{table}"),
                    Err(e) => {
                        eprintln!("jit-bench: {e}");
                        std::process::exit(1);
                    }
                }
                return;
            }
            "--flood" => {
                // The flooding process of the `flood` measurement (run as an unprivileged user).
                let socket = args.next().expect("--flood SOCKET SECS");
                let secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--flood SOCKET SECS");
                flood::run(&socket, secs);
                return;
            }
            "--out" => out = PathBuf::from(args.next().expect("--out FILE")),
            "--ssh-pairs" => {
                ssh_pairs = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .expect("--ssh-pairs N"),
                )
            }
            "--micro" => micro = Some(PathBuf::from(args.next().expect("--micro FILE"))),
            other => {
                eprintln!("usage: jit-bench [--quick] [--only SECTION,...] [--ssh-pairs N] [--micro FILE] [--out FILE] | --compare OLD.json [NEW.json] (unknown argument {other:?})");
                std::process::exit(2);
            }
        }
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("jit-bench: run as root (it creates users, PAM services and sudoers drop-ins)");
        std::process::exit(2);
    }
    let plan = if quick {
        Plan {
            grants: 10_000,
            small_grants: 1_000,
            audit_records: 100_000,
            history: 100_000,
            pam_iterations: 2_000,
            sudo_iterations: 20,
            ssh_pairs: 5,
            throughput_for: Duration::from_millis(500),
            revocation_grants: 100,
            fleet: fleet::Plan {
                hosts: 20,
                paced: 20,
                burst: 20,
                relist: 1_000,
                idle_for: Duration::from_secs(5),
            },
        }
    } else {
        Plan {
            grants: 100_000,
            small_grants: 10_000,
            audit_records: 1_000_000,
            history: 1_000_000,
            pam_iterations: 20_000,
            sudo_iterations: 200,
            ssh_pairs: 40,
            throughput_for: Duration::from_secs(3),
            revocation_grants: 1_000,
            fleet: fleet::Plan {
                hosts: 100,
                paced: 200,
                burst: 20,
                relist: 10_000,
                idle_for: Duration::from_secs(30),
            },
        }
    };
    let plan = Plan {
        ssh_pairs: ssh_pairs.unwrap_or(plan.ssh_pairs),
        ..plan
    };
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let clock = Instant::now();
    let mut report = Report::default();
    if let Some(path) = &micro {
        if let Err(e) = report.add_micro(path) {
            report.note(format!("micro-benchmarks left out: {e}"));
        }
    }
    let run = |section: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == section));
    let step = |what: &str| eprintln!("[{:>5.1}s] {what}", clock.elapsed().as_secs_f64());

    // The 100k daemon and the audit log serve these sections alone (`big`: that daemon alone,
    // its cold start and memory, e.g. to compare two jitd builds via CARGO_TARGET_DIR).
    if [
        "scale",
        "big",
        "pam",
        "flood",
        "cost",
        "sudo",
        "ssh",
        "throughput",
    ]
    .iter()
    .any(|s| run(s))
    {
        daemon_sections(&mut report, &plan, &run, &step);
    }

    if run("revocation") {
        step("revocation");
        revocation::measure(&mut report, plan.revocation_grants, Duration::from_secs(10));
    }
    if run("fleet") {
        step("fleet (a 3-member etcd on loopback)");
        fleet::measure(&mut report, &plan.fleet);
    }

    step("done");
    let table = report.table();
    println!("\n{}", header());
    print!("{table}");
    report.write_json(&out, &started).expect("write results");
    println!("\nwritten to {}", out.display());
}

/// Scale, PAM, flood, sudo and throughput: all measured against the big daemon.
fn daemon_sections(
    report: &mut Report,
    plan: &Plan,
    run: &dyn Fn(&str) -> bool,
    step: &dyn Fn(&str),
) {
    step("writing the audit log");
    let audit = TempDir::new("benchaudit");
    state::write_audit_log(audit.path(), plan.audit_records).expect("audit log");
    let big = format!(
        "{}k grants + {}M audit records",
        plan.grants / 1000,
        plan.audit_records as f64 / 1e6
    );
    let small = format!(
        "{}k grants + {}M audit records",
        plan.small_grants / 1000,
        plan.audit_records as f64 / 1e6
    );

    if run("scale") {
        step("scale: empty");
        {
            let jitd = scale::start(0, None, None);
            scale::record(report, "empty state", "empty", &jitd, false);
        }
        step("scale: small");
        {
            let jitd = scale::start(plan.small_grants, None, Some(audit.path()));
            scale::record(report, &small, "small", &jitd, false);
        }
    }
    step("scale: big");
    let user = TestUser::create("bpam");
    let jitd = scale::start(
        plan.grants,
        Some((&user.name, user.uid)),
        Some(audit.path()),
    );
    let without = scale::record(report, &big, "big", &jitd, true);
    if run("scale") {
        step("scale: big + history past retention");
        let label = format!("{big} + {}M ended requests", plan.history as f64 / 1e6);
        let with = {
            let jitd =
                scale::start_with_history(plan.grants, None, Some(audit.path()), plan.history);
            scale::record(report, &label, "history", &jitd, true)
        };
        report.goal(
            "scale.history.cold_start_ratio",
            "cold start with that history / without",
            with.cold_start_ms / without.cold_start_ms,
            "×",
            Goal::AtMost(1.10),
        );
        report.goal(
            "scale.history.rss_ratio",
            "resident memory with that history / without",
            with.rss_mib / without.rss_mib,
            "×",
            Goal::AtMost(1.10),
        );
    }
    drop(audit);

    if run("pam") || run("cost") {
        let expires = chrono::Utc::now().timestamp() + 4 * 3600;
        let holders = (0..plan.grants / 2)
            .map(scale::fake_user)
            .chain(std::iter::once(user.name.clone()))
            .chain((plan.grants / 2..plan.grants).map(scale::fake_user));
        let services =
            pam_check::Services::new(&jitd.socket(), &pam_check::grant_file(holders, expires));
        if run("pam") {
            step("PAM account check");
            pam_check::measure(report, &services, &user.name, plan.pam_iterations);
        }
        if run("pam") && run("flood") {
            step("PAM account check under a one-user flood");
            flood::measure(
                report,
                &services,
                &jitd.socket(),
                &user.name,
                plan.pam_iterations / 4,
            );
        }
        if run("cost") {
            step("what a PAM check is made of");
            pam_cost::measure(
                report,
                &services,
                &jitd,
                &user.name,
                user.uid,
                plan.pam_iterations / 4,
            );
        }
    }
    if run("sudo") {
        step("sudo wall time");
        sudo_wall::measure(report, &jitd, plan.sudo_iterations);
    }
    if run("ssh") {
        step("ssh login");
        ssh_login::measure(report, &jitd, plan.ssh_pairs);
    }
    if run("throughput") {
        step("throughput");
        throughput::measure(report, &jitd, &user.name, plan.throughput_for);
    }
    let (rss, peak) = jitd.memory_mib();
    report.add(
        "scale.big.rss_after_load_mib",
        "resident memory after the load above",
        rss,
        "MiB",
    );
    report.add(
        "scale.big.peak_rss_mib",
        "peak resident memory (VmHWM)",
        peak,
        "MiB",
    );
    drop(jitd);
}

fn header() -> String {
    let m = report::machine();
    format!(
        "jit-bench on {} CPU(s), {}, Linux {}",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?")
    )
}
