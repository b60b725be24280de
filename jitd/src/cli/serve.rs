//! `jitd serve`: load the configuration and state, reconcile, listen.

use std::process::ExitCode;
use std::sync::Arc;

use crate::shell::fleet::link::FleetLink;
use crate::shell::fleet::presence;
use crate::shell::fleet::sync::{self as fleet_sync, FleetSink};
use std::time::Duration;

use crate::config::config_file::Config;
use crate::config::root_only;
use crate::core::events::{Event, EventKind, EventSink};
use crate::core::metrics::Metrics;
use crate::core::model::GrantId;
use crate::core::recording::RecordingsDir;
use crate::shell::audit::audit_log::{self, AuditLog};
use crate::shell::audit::event_log::{EventLog, StderrSink};
use crate::shell::audit::journald::JournaldSink;
use crate::shell::audit::last_change;
use crate::shell::audit::pam_log_import::PamLogImport;
use crate::shell::audit::syslog_sink::SyslogSink;
use crate::shell::daemon::clock::{Clock, SystemClock};
use crate::shell::daemon::service::passes::HeardPass;
use crate::shell::daemon::service::{Service, StartupTrail};
use crate::shell::daemon::store::FileStore;
use crate::shell::daemon::{server, state_dir, systemd_ready};
use crate::shell::failpoint;
use crate::shell::host::drop_ins_and_cgroups::Enforcer;
use crate::shell::host::host_enforcement::HostEnforcement;
use crate::shell::host::sessions::Sessions;
use crate::shell::host::ssh_recording::SshRecorder;
use crate::shell::host::sudoers::SudoersDir;
use crate::shell::notify::{queue, webhook};

/// How often the host is re-checked against the records, besides at startup.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How often pam_jit's own passes (break-glass, fail-open) are read back from the journal.
const PAM_LOG_IMPORT_EVERY: Duration = Duration::from_secs(30);
/// How often `metrics_textfile` is rewritten (node_exporter scrapes every 15 s by default).
const METRICS_EVERY: Duration = Duration::from_secs(15);

pub fn run(config_path: &std::path::Path, explicit: bool) -> ExitCode {
    // An inline secret URL others can read is refused here as by check-config (the unit's
    // ExecStartPre), so that jitd started by other means behaves the same: the channel
    // approvers trust must not be one every local user can post to.
    let config = match Config::load(config_path, explicit)
        .and_then(|c| c.check_inline_secrets().map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitd: invalid configuration: {e}");
            return ExitCode::from(4);
        }
    };
    match start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(config: Config) -> Result<(), String> {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
    // SIGHUP reloads the policy. Blocked here, before any thread exists, so every thread
    // inherits the mask and only the reload thread takes it, with sigwait.
    let hangup = reload_signal();
    hangup
        .thread_block()
        .map_err(|e| format!("cannot block SIGHUP: {e}"))?;
    let state_dir = config.state_dir.clone();
    // Before anything in it is read: records and the audit trail count only if jitd's user
    // alone could have written them — and could not have swapped the directory itself, so as
    // root the directories above it must be root's too.
    root_only::check_above(&state_dir).map_err(|e| {
        format!(
            "refusing to start: the state directory {} is not safe: {e}, so someone other \
             than root could replace it: make the directories above it root's and not \
             writable by others (chown root:root, chmod go-w), or set `state_dir` elsewhere",
            state_dir.display()
        )
    })?;
    state_dir::prepare(&state_dir).map_err(|e| {
        format!(
            "refusing to start: the state directory {} is not safe: {e}",
            state_dir.display()
        )
    })?;
    let store = FileStore::open(&state_dir).map_err(|e| {
        format!(
            "cannot open the state directory {}: {e}",
            state_dir.display()
        )
    })?;
    // The clock before anything is timed: the audit log's records, the records' deadlines.
    let clock = Arc::new(
        SystemClock::kept_in(&state_dir)
            .map_err(|e| format!("cannot read the kept clock in {}: {e}", state_dir.display()))?,
    );
    let audit_clock = Arc::clone(&clock);
    let rotation = audit_log::Rotation {
        max_bytes: config.audit_rotate_size,
        max_age: config.audit_rotate_age,
    };
    let audit =
        AuditLog::open_with_clock(&state_dir, rotation, Box::new(move || audit_clock.now()))
            .map_err(|e| format!("cannot open the audit log: {e}"))?;
    let repair = audit.repair_notice().cloned();
    let metrics = Arc::new(Metrics::default());
    let mut sinks = system_sinks();
    sinks.push(Box::new(Arc::clone(&metrics)));
    // Notifiers report their own failures to the system log only, never to a notifier.
    let system_log = EventLog::new(None, system_sinks());
    let failures = Arc::clone(&metrics);
    let report: queue::Report = Arc::new(move |event: Event| {
        failures.count_notifier_failure();
        system_log.emit(&event)
    });
    sinks.extend(webhook::sinks(&config, report)?);
    let events = Arc::new(EventLog::new(Some(Box::new(audit)), sinks));
    // Already in the audit log (open wrote it): the other sinks only, with its position.
    if let Some(notice) = repair {
        events.publish(&notice);
    }
    let socket = config.socket.clone();
    let metrics_textfile = config.metrics_textfile.clone();
    let listener =
        server::bind(&socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    // Validated when the configuration was read.
    let recordings = RecordingsDir::parse(&config.recordings_dir)?;
    let ssh_recorder = SshRecorder::new(&recordings, &state_dir);
    if let Err(e) = ssh_recorder.preflight() {
        events.emit(&Event::new(
            crate::core::events::EventKind::InternalError,
            e,
        ));
    }
    let sudoers = SudoersDir::new(config.sudoers_dir.clone()).with_recordings(recordings);
    if let Err(e) = sudoers.preflight() {
        // Say it at startup, not only at the first approval: grants stay uninstallable
        // (they fail with this message) until an administrator repairs the configuration.
        events.emit(&Event::new(
            crate::core::events::EventKind::InternalError,
            format!(
                "sudo grants cannot be installed until the sudoers configuration is repaired: {e}"
            ),
        ));
    }
    let log_file = state_dir.join(audit_log::LOG_FILE);
    let approvals = |ids: &[GrantId], since| audit_log::approved_windows(&log_file, ids, since);
    let last_change = |since| last_change::last_change(&log_file, since);
    let report_to = Arc::clone(&events);
    let lag_clock = Arc::clone(&clock);
    let enforcement = HostEnforcement::new(
        Enforcer {
            sudoers,
            sessions: Sessions::detect_with_base(&config.cgroup),
            kill_grace: config.kill_grace,
        },
        Arc::new(move |event: Event| report_to.emit(&event)),
    )
    .with_wall_lag(Arc::new(move || lag_clock.wall_lag()))
    .with_ssh_recorder(ssh_recorder);
    keep_clock(Arc::clone(&clock), Arc::clone(&events))?;
    // Fleet mode: the trust anchor and the store's credentials are read before anything is
    // served; a fleet host that cannot read them does not start (it would enforce nothing
    // new, silently).
    let fleet = match &config.fleet {
        Some(f) => Some(Arc::new(FleetLink::open(f, config.host_name())?)),
        None => None,
    };
    let service = Service::start(
        config,
        clock,
        Box::new(store),
        events,
        Box::new(enforcement),
        StartupTrail {
            approvals: &approvals,
            last_change: &last_change,
        },
        metrics,
    )
    .map_err(|e| format!("cannot load state from {}: {e}", state_dir.display()))?;
    release_startup_memory();
    if let Some(link) = fleet {
        service.attach_fleet(Arc::clone(&link));
        // Offline first: what this host enforces from its own records is checked again
        // against its policy and allowed_signers as they are now, before the store is heard.
        service.fleet_recheck_loaded();
        let sink: Arc<dyn FleetSink> = service.clone();
        let watcher = Arc::clone(&link);
        std::thread::Builder::new()
            .name("fleet-sync".into())
            .spawn(move || fleet_sync::run(watcher, sink))
            .map_err(|e| format!("cannot start the fleet sync: {e}"))?;
        std::thread::Builder::new()
            .name("fleet-presence".into())
            .spawn(move || presence::run(link))
            .map_err(|e| format!("cannot start the fleet presence: {e}"))?;
    }
    let reloader = Arc::clone(&service);
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || loop {
            if let Ok(nix::sys::signal::Signal::SIGHUP) = hangup.wait() {
                // Both outcomes are logged by the service.
                let _ = reloader.reload_policy("SIGHUP");
            }
        })
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    let import = PamLogImport::new(&state_dir);
    let importer = Arc::clone(&service);
    std::thread::Builder::new()
        .name("pam-log-import".into())
        .spawn(move || loop {
            let (found, cursor) = import.read();
            // The cursor moves on only once every pass read is on record; one that could not
            // be stored is read again next time (its key keeps it from being recorded twice).
            let recorded = found.into_iter().all(|report| {
                importer
                    .record_pass(HeardPass {
                        report,
                        heard_from: "journal",
                    })
                    .is_ok()
            });
            if let (true, Some(cursor)) = (recorded, cursor) {
                import.commit(&cursor);
            }
            std::thread::sleep(PAM_LOG_IMPORT_EVERY);
        })
        .map_err(|e| format!("cannot start the PAM log import: {e}"))?;
    if let Some(path) = metrics_textfile {
        let exporter = Arc::clone(&service);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || write_metrics_textfile(&exporter, &path))
            .map_err(|e| format!("cannot start the metrics writer: {e}"))?;
    }
    let scheduler = Arc::clone(&service);
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || scheduler.run_scheduler(failpoint::reconcile_every(RECONCILE_EVERY)))
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    eprintln!("jitd: listening on {}", socket.display());
    systemd_ready::ready();
    server::serve(listener, service).map_err(|e| format!("socket server stopped: {e}"))
}

/// Rewrites `path` (for node_exporter's textfile collector) every [`METRICS_EVERY`], atomically
/// so the collector never reads half a file; world-readable, as the collector runs unprivileged.
/// A failure is reported once, and again only after the file could be written.
fn write_metrics_textfile(service: &Service, path: &std::path::Path) {
    let mut failing = false;
    loop {
        let text = service.metrics_text();
        match crate::shell::atomic_file::write_atomic(path, text.as_bytes(), 0o644) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                service.report(&Event::new(
                    EventKind::InternalError,
                    format!("cannot write metrics_textfile {}: {e}", path.display()),
                ));
            }
            Err(_) => {}
        }
        std::thread::sleep(METRICS_EVERY);
    }
}

/// Keeps the clock in the state directory: now, and every second after (a step forward of the
/// wall clock is kept within a second). A failure is logged once, and once more when it works
/// again.
fn keep_clock(clock: Arc<SystemClock>, events: Arc<EventLog>) -> Result<(), String> {
    let mut failing = false;
    let mut save = move || match (clock.save(), failing) {
        (Err(e), false) => {
            failing = true;
            events.emit(&Event::new(
                crate::core::events::EventKind::InternalError,
                format!(
                    "cannot keep the clock in the state directory ({e}): a restart of jitd \
                     after the wall clock is set back would give grants more time"
                ),
            ));
        }
        (Ok(()), true) => {
            failing = false;
            events.emit(&Event::new(
                crate::core::events::EventKind::Reconciled,
                "the clock is kept in the state directory again",
            ));
        }
        _ => {}
    };
    save();
    std::thread::Builder::new()
        .name("clock".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            save();
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the clock thread: {e}"))
}

/// Loading and reconciling allocate and free as much again as the records themselves (file
/// buffers, the loaded list, reconciliation's copies); glibc keeps freed memory mapped, so
/// hand it back once (100k grants: 169 → 127 MiB resident).
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it has no
    // preconditions and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn reload_signal() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGHUP);
    set
}

/// journald when its socket exists, syslog otherwise; plus plain lines on stderr unless
/// systemd already sends stderr to the journal (which would log everything twice).
fn system_sinks() -> Vec<Box<dyn EventSink>> {
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if let Some(journald) = JournaldSink::detect() {
        sinks.push(Box::new(journald));
    } else {
        match SyslogSink::connect() {
            Ok(syslog) => sinks.push(Box::new(syslog)),
            Err(e) => eprintln!("jitd: neither journald nor syslog is reachable ({e}); events go to stderr and the audit log"),
        }
    }
    if std::env::var_os("JOURNAL_STREAM").is_none() {
        sinks.push(Box::new(StderrSink));
    }
    sinks
}
