//! `jitd serve`: load the configuration and state, reconcile, listen.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::core::model::{Request, Session};
use crate::events::EventSink;
use crate::shell::clock::SystemClock;
use crate::shell::enforcement::Enforcement;
use crate::shell::event_log::{EventLog, StderrSink};
use crate::shell::store::FileStore;
use crate::shell::{notify, server, service::Service};

/// How often the host is re-checked against the records, besides at startup.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);

pub fn run(config_path: &std::path::Path, explicit: bool) -> ExitCode {
    let config = match Config::load(config_path, explicit) {
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
    let state_dir = config.state_dir.clone();
    let store = FileStore::open(&state_dir)
        .map_err(|e| format!("cannot open the state directory {}: {e}", state_dir.display()))?;
    let sinks: Vec<Box<dyn EventSink>> = vec![Box::new(StderrSink)];
    let events = EventLog::new(None, sinks);
    let socket = config.socket.clone();
    let listener = server::bind(&socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    let service = Service::start(
        config,
        Arc::new(SystemClock::new()),
        Box::new(store),
        events,
        Box::new(RecordOnly),
    )
    .map_err(|e| format!("cannot load state from {}: {e}", state_dir.display()))?;
    let scheduler = Arc::clone(&service);
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || scheduler.run_scheduler(RECONCILE_EVERY))
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    eprintln!("jitd: listening on {}", socket.display());
    notify::ready();
    server::serve(listener, service).map_err(|e| format!("socket server stopped: {e}"))
}

/// Placeholder until the host enforcement lands: records decisions without touching sudoers.
struct RecordOnly;

impl Enforcement for RecordOnly {
    fn install(&self, _grant: &Request) -> Result<(), String> {
        Ok(())
    }
    fn withdraw(&self, _grant: &Request) {}
    fn adopt_session(&self, _grant: &Request, _session: &Session) -> Result<(), String> {
        Ok(())
    }
    fn warn(&self, _grant: &Request, _message: &str) {}
    fn reconcile(&self, _active: &[&Request], _ended: &[&Request]) -> Vec<String> {
        Vec::new()
    }
}
