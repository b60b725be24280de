//! Events to syslog, facility authpriv, for hosts without journald (or to feed a syslog
//! collector). Uses the local socket (`/dev/log`) in RFC 3164 form, which every local syslog
//! daemon parses; the message is the event's one-line `Display` form, whose user-controlled
//! values are already escaped, followed by `event="name"`. RFC 5424 structured data is not
//! used: rsyslog's and syslog-ng's local sockets expect 3164 by default, and the fields are
//! already in the message as key="value". An event written to the audit log ends with its
//! record's place in the chain: `audit_seq="N" audit_hash="…"`.
//!
//! Severity follows the event's priority: break-glass and fail-open are `crit`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

use crate::core::events::{escape_text, Event, EventSink, Priority};

type SyslogLogger = Logger<LoggerBackend, Formatter3164>;

pub struct SyslogSink {
    path: PathBuf,
    logger: Mutex<SyslogLogger>,
}

fn formatter() -> Formatter3164 {
    Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "jitd".into(),
        pid: std::process::id(),
    }
}

/// A stalled syslog daemon must not stall jitd: a send gives up after this long (the audit
/// log still has the event).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The local syslog daemon's socket on Linux.
pub const DEV_LOG: &str = "/dev/log";

fn connect(path: &Path) -> io::Result<SyslogLogger> {
    let target = || path.display().to_string();
    let logger = syslog::unix_custom(formatter(), path).map_err(|e| {
        io::Error::new(
            io::ErrorKind::NotConnected,
            format!("syslog {}: {e}", target()),
        )
    })?;
    let timeout = match &logger.backend {
        LoggerBackend::Unix(socket) => socket.set_write_timeout(Some(SEND_TIMEOUT)),
        LoggerBackend::UnixStream(stream) => stream.get_ref().set_write_timeout(Some(SEND_TIMEOUT)),
        // Only local sockets are opened here.
        LoggerBackend::Udp(..) | LoggerBackend::Tcp(_) => Ok(()),
    };
    timeout.map_err(|e| io::Error::new(e.kind(), format!("syslog {}: {e}", target())))?;
    Ok(logger)
}

impl SyslogSink {
    /// The local syslog daemon's socket.
    pub fn connect() -> io::Result<SyslogSink> {
        SyslogSink::at(Path::new(DEV_LOG))
    }

    /// A syslog daemon listening on the Unix socket at `path`.
    pub fn at(path: &Path) -> io::Result<SyslogSink> {
        Ok(SyslogSink {
            logger: Mutex::new(connect(path)?),
            path: path.to_path_buf(),
        })
    }
}

fn send(logger: &mut SyslogLogger, priority: Priority, line: &str) -> syslog::Result<()> {
    match priority {
        Priority::Critical => logger.crit(line),
        Priority::Error => logger.err(line),
        Priority::Warning => logger.warning(line),
        Priority::Notice => logger.notice(line),
        Priority::Info => logger.info(line),
    }
}

/// Whether the error means the daemon at the other end is gone (so reconnecting can help),
/// as opposed to stalled (a timeout, where retrying would only double the wait).
fn peer_gone(e: &syslog::Error) -> bool {
    match e {
        syslog::Error::Write(io) | syslog::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::NotConnected
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::NotFound
        ),
        syslog::Error::Initialization(_) => true,
    }
}

impl EventSink for SyslogSink {
    fn record(&self, event: &Event) -> io::Result<()> {
        let kind = event.kind();
        let mut line = format!("{event} event=\"{}\"", kind.name());
        // The audit record's place in the chain (see journald.rs): absent for events in no
        // audit record.
        if let Some(at) = &event.audit {
            line.push_str(&format!(
                " audit_seq=\"{}\" audit_hash=\"{}\"",
                at.seq,
                escape_text(&at.hash)
            ));
        }
        let mut logger = self.logger.lock().unwrap_or_else(|p| p.into_inner());
        let failed = match send(&mut logger, kind.priority(), &line) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !peer_gone(&failed) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("syslog: {failed}"),
            ));
        }
        // A restarted syslog daemon leaves our connected socket dangling: reconnect once.
        *logger = connect(&self.path)?;
        send(&mut logger, kind.priority(), &line)
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, format!("syslog: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::EventKind;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// A real rsyslogd with its own config, socket and output file in a temp dir. Killed and
    /// removed on drop.
    struct PrivateRsyslog {
        child: Child,
        dir: PathBuf,
    }

    impl PrivateRsyslog {
        fn start() -> PrivateRsyslog {
            static STARTED: AtomicUsize = AtomicUsize::new(0);
            let n = STARTED.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("jit-rsyslog-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let d = dir.display();
            let conf = format!(
                "global(workDirectory=\"{d}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{d}/log.sock\")\n\
                 template(name=\"jit\" type=\"string\" \
                 string=\"%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{d}/out.log\" template=\"jit\")\n"
            );
            std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
            let child = PrivateRsyslog::spawn(&dir);
            PrivateRsyslog { child, dir }
        }

        fn spawn(dir: &Path) -> Child {
            let child = Command::new("rsyslogd")
                .arg("-n")
                .arg("-f")
                .arg(dir.join("rsyslog.conf"))
                .arg("-i")
                .arg(dir.join("rsyslog.pid"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start rsyslogd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !dir.join("log.sock").exists() {
                assert!(
                    Instant::now() < deadline,
                    "rsyslogd did not create its socket"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            child
        }

        /// Stops rsyslogd and starts a new one on the same socket path, with an empty output.
        fn restart(&mut self) {
            self.stop();
            let _ = std::fs::remove_file(self.socket());
            let _ = std::fs::remove_file(self.dir.join("out.log"));
            self.child = PrivateRsyslog::spawn(&self.dir);
        }

        fn stop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }

        fn socket(&self) -> PathBuf {
            self.dir.join("log.sock")
        }

        /// The output file's lines, waiting up to 5 s for `want` of them.
        fn lines(&self, want: usize) -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default();
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                if lines.len() >= want || Instant::now() > deadline {
                    return lines;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    impl Drop for PrivateRsyslog {
        fn drop(&mut self) {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn events_reach_a_real_rsyslog_on_authpriv_with_severity_and_escaped_text() {
        let rsyslog = PrivateRsyslog::start();
        let sink = SyslogSink::at(&rsyslog.socket()).unwrap();

        let mut requested = Event::new(EventKind::Requested, "request r7 created");
        requested.user = Some("alice".into());
        requested.reason = Some("x\nMESSAGE_ID=forged\x1b[31m".into());
        sink.record(&requested).unwrap();
        let mut glass = Event::new(EventKind::BreakGlass, "break-glass used");
        glass.user = Some("alice".into());
        glass.audit = Some(crate::core::events::AuditPosition {
            seq: 7,
            hash: "cd".repeat(32),
        });
        sink.record(&glass).unwrap();
        sink.record(&Event::new(EventKind::FailOpen, "pam_jit failed open"))
            .unwrap();

        let lines = rsyslog.lines(3);
        assert_eq!(lines.len(), 3, "{lines:?}");
        let pid = std::process::id();
        assert_eq!(
            lines[0],
            format!(
                "authpriv.notice jitd[{pid}]: request r7 created user=\"alice\" \
                 reason=\"x\\nMESSAGE_ID=forged\\u{{1b}}[31m\" event=\"requested\""
            )
        );
        assert!(lines[1].starts_with(&format!("authpriv.crit jitd[{pid}]: break-glass used")));
        assert!(
            lines[1].ends_with(&format!(
                "event=\"break_glass\" audit_seq=\"7\" audit_hash=\"{}\"",
                "cd".repeat(32)
            )),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with(&format!("authpriv.crit jitd[{pid}]: pam_jit failed open")));
        // rsyslog would have shown a raw ESC as #033: none arrived.
        assert!(!lines.iter().any(|l| l.contains("#033")));
    }

    #[test]
    fn a_stalled_syslog_daemon_does_not_stall_jitd() {
        let dir = crate::shell::audit::audit_log::tests::TempDir::new("stalled-syslog");
        let path = dir.0.join("log.sock");
        // A receiver that never reads: its queue fills and further sends would block.
        let _stalled = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let sink = SyslogSink::at(&path).unwrap();
        let event = Event::new(EventKind::Requested, "x".repeat(4000));
        let started = Instant::now();
        let err = (0..100_000)
            .find_map(|_| sink.record(&event).err())
            .expect("a full queue must fail a send");
        // One timed-out send and one after reconnecting: 2 × SEND_TIMEOUT. The bound leaves
        // room for a loaded machine (other tests share this process) and still fails a sink
        // that blocks, or waits out the timeout on every send.
        assert!(
            started.elapsed() < SEND_TIMEOUT * 20,
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("syslog"), "{err}");
    }

    #[test]
    fn a_restarted_syslog_daemon_is_reconnected() {
        let mut rsyslog = PrivateRsyslog::start();
        let sink = SyslogSink::at(&rsyslog.socket()).unwrap();
        sink.record(&Event::new(EventKind::Approved, "one"))
            .unwrap();
        assert_eq!(rsyslog.lines(1).len(), 1);
        rsyslog.restart();
        sink.record(&Event::new(EventKind::Approved, "two"))
            .unwrap();
        let lines = rsyslog.lines(1);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("two"));
    }
}
