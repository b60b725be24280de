//! `jitd audit` (history and `verify`) and `jitd report` (standing privileges and usage).
//! They read files only — the audit log in the state dir (its rotated files, then
//! `audit.log`), sudoers, groups, root's keys — so they work while the daemon is down, and
//! stream the log so a million records need no more memory than one.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

pub use crate::cli::audit_args::{AuditArgs, AuditCommand, ReportArgs};
use crate::cli::report_html::{self, ChainState, Period};
use crate::cli::usage::{UsageBuilder, UsageSummary};
use crate::core::events::escape_text;
use crate::core::recording::RecordingsDir;
use crate::core::unstored_change::STORED_AFTER;
use crate::shell::audit::audit_log::{AuditRecord, LineReader, LOG_FILE};
use crate::shell::audit::{audit_files, audit_verify};
use crate::shell::host::recordings;
use crate::shell::host::ssh_recording::SshRecorder;
use crate::shell::host::standing::{HostFiles, StandingPrivileges};

/// Exit status of `jitd audit verify` when the chain is broken (and of the other commands
/// when the log cannot be read).
const EXIT_BAD_LOG: u8 = 1;

/// `jitd audit …`, reading `state_dir/audit.log` and the rotated files before it.
pub fn run_audit(args: &AuditArgs, state_dir: &Path, recordings_dir: &Path) -> ExitCode {
    let path = state_dir.join(LOG_FILE);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let code = match args.command {
        Some(AuditCommand::Verify) => verify(&path, &mut out),
        None => {
            let code = history(args, &path, &mut out);
            if let (Some(id), false) = (&args.id, args.json) {
                let _ = writeln!(out, "{}", recordings_line(recordings_dir, id));
            }
            code
        }
    };
    let _ = out.flush();
    ExitCode::from(code)
}

fn verify(path: &Path, out: &mut impl Write) -> u8 {
    match audit_verify::verify(path) {
        Ok(ok) => {
            let files = match ok.files {
                1 => String::new(),
                n => format!(" in {n} files"),
            };
            let _ = writeln!(
                out,
                "{}: intact, {} records{files}; last record {} has SHA-256 {}",
                path.display(),
                ok.lines,
                ok.head.seq,
                ok.head.hash
            );
            if ok.first_seq > 1 {
                // Nothing here can vouch for what came before: say where the chain starts, and
                // the hash an archive or a forwarded copy must show for the record before it.
                let _ = writeln!(
                    out,
                    "the chain starts at record {first}: records 1..{before} are not here (older                      files moved away or deleted). Record {before} must have SHA-256 {prev}:                      check it in your archive or in a forwarded event's JIT_AUDIT_HASH",
                    first = ok.first_seq,
                    before = ok.first_seq - 1,
                    prev = ok.first_prev
                );
            }
            0
        }
        Err(e) if e.line == 0 => {
            eprintln!("jitd: cannot verify: {}", e.what);
            EXIT_BAD_LOG
        }
        Err(e) => {
            eprintln!(
                "jitd: the audit log is NOT intact: {} line {}: {}\nKeep the files as evidence; \
                 later lines were not checked.",
                e.file.display(),
                e.line,
                e.what
            );
            EXIT_BAD_LOG
        }
    }
}

struct Filter<'a> {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    user: Option<&'a str>,
    id: Option<&'a str>,
}

impl Filter<'_> {
    #[cfg(test)]
    fn all() -> Self {
        Filter {
            since: None,
            until: None,
            user: None,
            id: None,
        }
    }

    fn matches(&self, r: &AuditRecord) -> bool {
        let in_time = match (self.since.is_some() || self.until.is_some(), r.time()) {
            (false, _) => true,
            // A record whose time does not parse cannot be placed: leave it out of a window.
            (true, None) => false,
            (true, Some(t)) => {
                self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
            }
        };
        let user = self
            .user
            .is_none_or(|u| r.user.as_deref() == Some(u) || r.approver.as_deref() == Some(u));
        let id = self.id.is_none_or(|id| r.request_id.as_deref() == Some(id));
        in_time && user && id
    }
}

fn history(args: &AuditArgs, path: &Path, out: &mut impl Write) -> u8 {
    let filter = Filter {
        since: args.since,
        until: args.until,
        user: args.user.as_deref(),
        id: args.id.as_deref(),
    };
    let mut code = 0;
    let result = for_each_record(path, |raw, record| {
        if filter.matches(record) {
            if args.json {
                out.write_all(raw)?;
                out.write_all(b"\n")
            } else {
                writeln!(out, "{}", human_line(record))
            }
        } else {
            Ok(())
        }
    });
    match result {
        Ok(skipped) if skipped > 0 => {
            eprintln!(
                "jitd: {skipped} unreadable line(s) skipped; run `jitd audit verify` to find \
                 where the log was damaged"
            );
            code = EXIT_BAD_LOG;
        }
        Ok(_) => {}
        // The reader went away (`jitd audit | head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("jitd: {e}");
            code = EXIT_BAD_LOG;
        }
    }
    code
}

/// What `jitd audit --id ID` says of the grant's recordings.
fn recordings_line(recordings_dir: &Path, id: &str) -> String {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let Ok(dir) = RecordingsDir::parse(recordings_dir) else {
        return "recordings: recordings_dir is not valid".into();
    };
    if !plain {
        return "recordings: none (not a grant id)".into();
    }
    let ssh = SshRecorder::new(&dir, Path::new("/nonexistent"));
    match ssh.sessions(id) {
        Ok(s) if !s.is_empty() => {
            return format!(
                "recordings: {} SSH session(s) in {} (tlog); play them with `jitd replay {id}` \
                 [--session 1..{}]",
                s.len(),
                ssh.file(id).display(),
                s.len()
            )
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return format!(
                "recordings: {} is root's alone; root or a member of auditor_groups sees it \
                 with `jitd replay {id}`",
                ssh.file(id).display()
            )
        }
        _ => {}
    }
    match recordings::sessions(&dir, id) {
        Ok(s) if s.is_empty() => format!(
            "recordings: none in {} (not recorded, nothing run, or past retention)",
            dir.grant_dir(id).display()
        ),
        Ok(s) => format!(
            "recordings: {} session(s) in {} ({}); play them with `jitd replay {id}` \
             [--session 1..{}]",
            s.len(),
            dir.grant_dir(id).display(),
            s.join(", "),
            s.len()
        ),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => format!(
            "recordings: {} is root's alone; root or a member of auditor_groups sees them \
             with `jitd replay {id}`",
            dir.as_str()
        ),
        Err(e) => format!(
            "recordings: cannot list {}: {e}",
            dir.grant_dir(id).display()
        ),
    }
}

/// Calls `f` with each record (raw line and parsed) in chain order, across the rotated files
/// and `audit.log`; returns how many lines could not be read as records (reported on stderr
/// with their file and line numbers).
fn for_each_record(
    path: &Path,
    mut f: impl FnMut(&[u8], &AuditRecord) -> io::Result<()>,
) -> io::Result<usize> {
    let mut skipped = 0;
    for (file, handle) in audit_files::open_chain(path)? {
        let name = file.path.display();
        let mut reader = LineReader::new(io::BufReader::with_capacity(1 << 16, handle));
        while let Some(raw) = reader.next_line()? {
            if !raw.terminated {
                eprintln!(
                    "jitd: {name} line {}: incomplete final line, skipped",
                    raw.number
                );
                skipped += 1;
                continue;
            }
            match serde_json::from_slice::<AuditRecord>(raw.bytes) {
                Ok(record) => f(raw.bytes, &record)?,
                Err(e) => {
                    eprintln!(
                        "jitd: {name} line {}: not an audit record ({e}), skipped",
                        raw.number
                    );
                    skipped += 1;
                }
            }
        }
    }
    Ok(skipped)
}

/// `time  event  message key="value" …`, every stored value escaped for the terminal.
fn human_line(r: &AuditRecord) -> String {
    let mut line = format!(
        "{}  {:<15} {}",
        escape_text(&r.time),
        escape_text(&r.event),
        escape_text(&r.message)
    );
    let fields = [
        ("id", &r.request_id),
        ("user", &r.user),
        ("approver", &r.approver),
        ("role", &r.role),
        ("command", &r.command),
        ("reason", &r.reason),
        ("ticket", &r.ticket),
        ("expires", &r.expires),
    ];
    // STORED_AFTER is bookkeeping for startup's check (`core::unstored_change`), not news
    // for a reader: `--json` and the log itself keep it.
    let extra = r
        .extra
        .iter()
        .filter(|(k, _)| k.as_str() != STORED_AFTER)
        .map(|(k, v)| (k.to_ascii_lowercase(), v));
    let named = fields
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v)));
    for (k, v) in named.chain(extra) {
        line.push_str(&format!(
            " {}=\"{}\"",
            escape_text(&k),
            escape_text(v).replace('"', "\\\"")
        ));
    }
    line
}

/// `jitd report`: standing privileges on this host and usage from `state_dir/audit.log`.
/// `roles` are the configured role names (for "never used"); may be empty.
pub fn run_report(
    args: &ReportArgs,
    state_dir: &Path,
    sudoers_dir: &Path,
    roles: &[String],
) -> ExitCode {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let format = match &args.html {
        Some(file) => Format::Html(file),
        None if args.json => Format::Json,
        None => Format::Text,
    };
    let window = Filter {
        since: args.since,
        until: args.until,
        user: None,
        id: None,
    };
    let code = report(
        format,
        &window,
        &state_dir.join(LOG_FILE),
        &HostFiles::system(sudoers_dir),
        roles,
        &mut out,
    );
    let _ = out.flush();
    ExitCode::from(code)
}

#[derive(Clone, Copy)]
enum Format<'a> {
    Text,
    Json,
    Html(&'a Path),
}

/// Writes the page for its author only (mode 0600 when new: it names people and their
/// reasons). Refuses a symlink and a file someone else owns, so a name planted in /tmp cannot
/// redirect root's write or hand the report to whoever planted it.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "it is not a regular file of yours; choose another name",
        ));
    }
    file.set_len(0)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The chain as `jitd audit verify` finds it, for the report.
fn chain_state(log: &Path) -> ChainState {
    match audit_verify::verify(log) {
        Ok(ok) => ChainState {
            intact: true,
            records: ok.lines,
            head_seq: ok.head.seq,
            head_hash: ok.head.hash,
            problem: None,
        },
        Err(e) => ChainState {
            intact: false,
            records: 0,
            head_seq: 0,
            head_hash: String::new(),
            problem: Some(format!("{} line {}: {}", e.file.display(), e.line, e.what)),
        },
    }
}

fn report(
    format: Format<'_>,
    window: &Filter<'_>,
    log: &Path,
    host: &HostFiles,
    roles: &[String],
    out: &mut impl Write,
) -> u8 {
    let standing = StandingPrivileges::scan(host);
    let mut builder = UsageBuilder::default();
    let usage = match for_each_record(log, |_, r| {
        if window.matches(r) {
            builder.add(r);
        }
        Ok(())
    }) {
        Ok(_) => Ok(builder.finish(roles)),
        Err(e) => Err(e.to_string()),
    };
    let written = if let Format::Html(file) = format {
        let Ok(u) = &usage else {
            eprintln!(
                "jitd: cannot read the audit log: {}",
                usage.as_ref().err().map_or("", String::as_str)
            );
            return EXIT_BAD_LOG;
        };
        let period = Period {
            since: window.since.map(crate::core::timestamp::rfc3339),
            until: window.until.map(crate::core::timestamp::rfc3339),
            generated: crate::core::timestamp::rfc3339(Utc::now()),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        };
        let page = report_html::render(u, &standing, &chain_state(log), &period);
        match write_private(file, page.as_bytes()) {
            Ok(()) => writeln!(out, "wrote {}", file.display()),
            Err(e) => {
                eprintln!("jitd: cannot write {}: {e}", file.display());
                return EXIT_BAD_LOG;
            }
        }
    } else if let Format::Json = format {
        let value = serde_json::json!({
            "standing": standing,
            "usage": usage.as_ref().ok(),
            "usage_error": usage.as_ref().err(),
            "chain": chain_state(log),
        });
        writeln!(out, "{value}")
    } else {
        write_standing(out, &standing).and_then(|()| write_usage(out, &usage))
    };
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("jitd: {e}");
            EXIT_BAD_LOG
        }
        _ if usage.is_err() => EXIT_BAD_LOG,
        _ => 0,
    }
}

fn write_standing(out: &mut impl Write, s: &StandingPrivileges) -> io::Result<()> {
    writeln!(out, "Standing privileges on this host")?;
    writeln!(out, "  sudoers rules outside jit's drop-ins:")?;
    if s.sudoers_rules.is_empty() {
        writeln!(out, "    (none)")?;
    }
    for r in &s.sudoers_rules {
        let mut flags = Vec::new();
        if r.nopasswd {
            flags.push("NOPASSWD");
        }
        if r.all_commands {
            flags.push("ALL");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", flags.join(", "))
        };
        writeln!(
            out,
            "    {}:{}  {}{flags}",
            r.file.display(),
            r.line,
            r.rule
        )?;
    }
    writeln!(out, "  members of sudo/wheel/admin groups:")?;
    if s.admin_groups.iter().all(|g| g.members.is_empty()) {
        writeln!(out, "    (none)")?;
    }
    for g in s.admin_groups.iter().filter(|g| !g.members.is_empty()) {
        writeln!(out, "    {}: {}", g.group, g.members.join(", "))?;
    }
    if !s.uid0_accounts.is_empty() {
        writeln!(
            out,
            "  accounts with uid 0 besides root: {}",
            s.uid0_accounts.join(", ")
        )?;
    }
    writeln!(out, "  root's authorized_keys:")?;
    if s.root_authorized_keys.is_empty() {
        writeln!(out, "    (none)")?;
    }
    for k in &s.root_authorized_keys {
        let options = if k.options.is_empty() {
            String::new()
        } else {
            format!("  options: {}", k.options)
        };
        writeln!(
            out,
            "    {}:{}  {} {} {}{options}",
            k.file.display(),
            k.line,
            k.key_type,
            k.fingerprint,
            k.comment
        )?;
    }
    for u in &s.unreadable {
        writeln!(out, "  could not read {}", escape_text(u))?;
    }
    Ok(())
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "(none)".into();
    }
    map.iter()
        .map(|(k, n)| format!("{} {n}", escape_text(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_usage(out: &mut impl Write, usage: &Result<UsageSummary, String>) -> io::Result<()> {
    let u = match usage {
        Ok(u) => u,
        Err(e) => return writeln!(out, "Usage: cannot read the audit log: {e}"),
    };
    let span = match (&u.first, &u.last) {
        (Some(f), Some(l)) => format!(" from {} to {}", escape_text(f), escape_text(l)),
        _ => String::new(),
    };
    writeln!(out, "Usage ({} audit records{span})", u.records)?;
    writeln!(out, "  requests per role: {}", counts(&u.requests_by_role))?;
    writeln!(out, "  requests per user: {}", counts(&u.requests_by_user))?;
    match &u.time_to_approval {
        Some(l) => writeln!(
            out,
            "  time to approval: {} approvals, median {}, 90% within {}, longest {}",
            l.count,
            secs(l.median_secs),
            secs(l.p90_secs),
            secs(l.max_secs)
        )?,
        None => writeln!(out, "  time to approval: no approvals")?,
    }
    let share = match u.approved {
        0 => String::new(),
        n => format!(
            " ({:.0}%)",
            100.0 * u.approved_automatically as f64 / n as f64
        ),
    };
    writeln!(
        out,
        "  approved automatically by rules: {} of {}{share}",
        u.approved_automatically, u.approved
    )?;
    let never = if u.roles_never_used.is_empty() {
        "(none)".to_string()
    } else {
        escape_text(&u.roles_never_used.join(", "))
    };
    writeln!(out, "  roles never used: {never}")?;
    writeln!(
        out,
        "  grants ended early with `done`: {}",
        u.ended_early_by_done
    )
}

fn secs(s: i64) -> String {
    jit_proto::duration::format(std::time::Duration::from_secs(s.max(0).unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::audit_args::parse_time;
    use crate::core::events::{Event, EventKind};
    use crate::shell::audit::audit_log::tests::TempDir;
    use crate::shell::audit::audit_log::{self, AuditLog, Rotation};
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand)]
    enum Top {
        Audit(AuditArgs),
        Report(ReportArgs),
    }

    fn parse(args: &[&str]) -> Top {
        Cli::try_parse_from(std::iter::once("jitd").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn event(kind: EventKind, id: &str, user: &str) -> Event {
        let mut e = Event::new(kind, format!("{} {id}", kind.name()));
        e.request_id = Some(id.into());
        e.user = Some(user.into());
        e
    }

    /// A day of activity: alice asks for db-admin and bob approves after 5 minutes; carol's
    /// request is approved by a rule at once and she hands it back with `done`; dave's is
    /// denied.
    fn day(dir: &Path) {
        let log = AuditLog::open(dir, Rotation::NEVER).unwrap();
        let add = |t: &str, e: Event| {
            log.append_at(&e, at(t)).unwrap();
        };
        let mut r1 = event(EventKind::Requested, "r1", "alice");
        r1.role = Some("db-admin".into());
        r1.reason = Some("fix\nreplica\x1b[31m".into());
        add("2026-11-28T09:00:00Z", r1);
        let mut a1 = event(EventKind::Approved, "r1", "alice");
        a1.approver = Some("bob".into());
        add("2026-11-28T09:05:00Z", a1);
        let mut r2 = event(EventKind::Requested, "r2", "carol");
        r2.role = Some("web-restart".into());
        add("2026-11-28T10:00:00Z", r2);
        let mut a2 = event(EventKind::Approved, "r2", "carol");
        a2.approver = Some("rule:oncall".into());
        add("2026-11-28T10:00:00Z", a2);
        add(
            "2026-11-28T10:03:00Z",
            event(EventKind::Completed, "r2", "carol"),
        );
        add(
            "2026-11-29T08:00:00Z",
            event(EventKind::Requested, "r3", "dave"),
        );
        add(
            "2026-11-29T08:01:00Z",
            event(EventKind::Denied, "r3", "dave"),
        );
    }

    fn audit_output(args: &[&str], dir: &Path) -> (u8, String) {
        let Top::Audit(a) = parse(args) else {
            unreachable!()
        };
        let mut out = Vec::new();
        let path = dir.join(LOG_FILE);
        let code = match a.command {
            Some(AuditCommand::Verify) => verify(&path, &mut out),
            None => history(&a, &path, &mut out),
        };
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn times_are_rfc3339_dates_or_durations_ago() {
        assert_eq!(at("2026-11-29T10:00:00+01:00"), at("2026-11-29T09:00:00Z"));
        assert_eq!(at("2026-11-29"), at("2026-11-29T00:00:00Z"));
        let two_hours_ago = Utc::now() - chrono::Duration::hours(2);
        assert!((at("2h") - two_hours_ago).num_seconds().abs() < 5);
        let err = parse_time("yesterday").unwrap_err();
        assert!(err.contains("duration ago"), "{err}");
    }

    #[test]
    fn history_filters_by_time_user_and_request() {
        let dir = TempDir::new("history");
        day(&dir.0);
        let (code, all) = audit_output(&["audit"], &dir.0);
        assert_eq!(code, 0);
        assert_eq!(all.lines().count(), 7);
        // Bob appears as approver; user text is escaped for the terminal.
        let (_, bob) = audit_output(&["audit", "--user", "bob"], &dir.0);
        assert_eq!(
            bob,
            "2026-11-28T09:05:00.000Z  approved        approved r1 id=\"r1\" user=\"alice\" \
             approver=\"bob\"\n"
        );
        let (_, alice) = audit_output(&["audit", "--user", "alice"], &dir.0);
        assert!(
            alice.contains(r#"reason="fix\nreplica\u{1b}[31m""#),
            "{alice}"
        );
        let (_, second_day) = audit_output(&["audit", "--since", "2026-11-29"], &dir.0);
        assert_eq!(second_day.lines().count(), 2);
        let (_, window) = audit_output(
            &[
                "audit",
                "--since",
                "2026-11-28T09:05:00Z",
                "--until",
                "2026-11-28T10:03:00Z",
            ],
            &dir.0,
        );
        assert_eq!(window.lines().count(), 3);
        let (_, r2) = audit_output(&["audit", "--id", "r2", "--json"], &dir.0);
        let events: Vec<String> = r2
            .lines()
            .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().event)
            .collect();
        assert_eq!(events, ["requested", "approved", "completed"]);
    }

    #[test]
    fn verify_exits_0_when_intact_and_1_naming_the_line_when_not() {
        let dir = TempDir::new("verify-cmd");
        day(&dir.0);
        let (code, out) = audit_output(&["audit", "verify"], &dir.0);
        assert_eq!(code, 0);
        assert!(out.contains("intact, 7 records"), "{out}");
        let path = dir.0.join(LOG_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"bob\"", "\"eve\"", 1)).unwrap();
        let (code, _) = audit_output(&["audit", "verify"], &dir.0);
        assert_eq!(code, 1);
        let (code, _) = audit_output(&["audit", "verify"], Path::new("/nonexistent/jit"));
        assert_eq!(code, 1);
    }

    #[test]
    fn history_and_verify_read_across_the_rotated_files() {
        let (dir, path) = audit_log::tests::rotated_log_with(10, 3, "history-rotated");
        let (code, all) = audit_output(&["audit", "--json"], &dir.0);
        assert_eq!(code, 0);
        let seqs: Vec<u64> = all
            .lines()
            .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().seq)
            .collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "every file, in order");
        // r2's record is in the oldest file.
        let (_, r2) = audit_output(&["audit", "--id", "r2"], &dir.0);
        assert_eq!(r2.lines().count(), 1, "{r2}");
        let (code, out) = audit_output(&["audit", "verify"], &dir.0);
        assert_eq!(code, 0);
        assert!(out.contains("intact, 10 records in 4 files"), "{out}");
        assert!(!out.contains("chain starts"), "{out}");
        // The oldest file moved away: still intact, and verify says where the chain starts
        // and what record 3's hash must be.
        let oldest = crate::shell::audit::audit_files::rotated_path(&path, 1);
        let last = std::fs::read_to_string(&oldest).unwrap();
        let hash = audit_log::line_hash(last.lines().last().unwrap().as_bytes());
        std::fs::remove_file(&oldest).unwrap();
        let (code, out) = audit_output(&["audit", "verify"], &dir.0);
        assert_eq!(code, 0);
        assert!(out.contains("intact, 7 records in 3 files"), "{out}");
        assert!(
            out.contains("the chain starts at record 4: records 1..3 are not here")
                && out.contains(&format!("Record 3 must have SHA-256 {hash}")),
            "{out}"
        );
    }

    #[test]
    fn the_config_option_works_before_and_after_verify() {
        let Top::Audit(a) = parse(&["audit", "verify", "--config", "/tmp/x.toml"]) else {
            unreachable!()
        };
        assert_eq!(a.config, Path::new("/tmp/x.toml"));
        assert!(matches!(a.command, Some(AuditCommand::Verify)));
        let Top::Report(r) = parse(&["report", "--json", "--config", "/tmp/y.toml"]) else {
            unreachable!()
        };
        assert!(r.json);
        assert_eq!(r.config, Path::new("/tmp/y.toml"));
    }

    #[test]
    fn the_html_report_is_written_only_to_a_plain_file_of_the_callers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("html");
        let page = dir.0.join("report.html");
        write_private(&page, b"one").unwrap();
        write_private(&page, b"two").unwrap();
        assert_eq!(std::fs::read(&page).unwrap(), b"two");
        let mode = std::fs::metadata(&page).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A name planted to redirect the write, or to hand the report to its planter.
        let target = dir.0.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.0.join("link.html");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_private(&link, b"x").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        if nix::unistd::geteuid().is_root() {
            let theirs = dir.0.join("theirs.html");
            std::fs::write(&theirs, "").unwrap();
            std::os::unix::fs::chown(&theirs, Some(4_000_001), None).unwrap();
            let e = write_private(&theirs, b"x").unwrap_err();
            assert!(e.to_string().contains("not a regular file of yours"), "{e}");
            assert_eq!(std::fs::read(&theirs).unwrap(), b"");
        }
    }

    #[test]
    fn the_report_shows_usage_from_the_log() {
        let dir = TempDir::new("report");
        day(&dir.0);
        let host = HostFiles {
            sudoers: dir.0.join("sudoers"),
            sudoers_dir: dir.0.join("sudoers.d"),
            group: dir.0.join("group"),
            passwd: dir.0.join("passwd"),
            root_home: None,
        };
        std::fs::write(&host.sudoers, "deploy ALL=(root) NOPASSWD: ALL\n").unwrap();
        let roles = [
            "db-admin".to_string(),
            "web-restart".into(),
            "dns-admin".into(),
        ];
        let mut out = Vec::new();
        assert_eq!(
            report(
                Format::Json,
                &Filter::all(),
                &dir.0.join(LOG_FILE),
                &host,
                &roles,
                &mut out
            ),
            0
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let u = &v["usage"];
        assert_eq!(u["requests_by_role"]["db-admin"], 1);
        assert_eq!(u["requests_by_role"]["(no role)"], 1);
        assert_eq!(u["requests_by_user"]["carol"], 1);
        assert_eq!(u["time_to_approval"]["max_secs"], 300);
        assert_eq!(u["time_to_approval"]["median_secs"], 300);
        assert_eq!(u["approved"], 2);
        assert_eq!(u["approved_automatically"], 1);
        assert_eq!(u["roles_never_used"], serde_json::json!(["dns-admin"]));
        assert_eq!(u["ended_early_by_done"], 1);
        let rule = &v["standing"]["sudoers_rules"][0];
        assert_eq!(rule["nopasswd"], true);
        assert_eq!(rule["all_commands"], true);

        let mut text = Vec::new();
        report(
            Format::Text,
            &Filter::all(),
            &dir.0.join(LOG_FILE),
            &host,
            &roles,
            &mut text,
        );
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("deploy ALL=(root) NOPASSWD: ALL  [NOPASSWD, ALL]"),
            "{text}"
        );
        assert!(
            text.contains("approved automatically by rules: 1 of 2 (50%)"),
            "{text}"
        );
        assert!(text.contains("median 5m"), "{text}");
    }

    #[test]
    fn a_large_log_is_streamed_not_loaded() {
        // Peak RSS is a figure of the whole process: measured in a process of its own.
        if !jit_tests::own_process::alone(module_path!(), "a_large_log_is_streamed_not_loaded") {
            return;
        }
        // Written directly (no fsync per line) to be quick; the chain is the real one.
        const RECORDS: u64 = 100_000;
        let dir = TempDir::new("large");
        let path = dir.0.join(LOG_FILE);
        {
            let mut file = io::BufWriter::new(std::fs::File::create(&path).unwrap());
            let mut prev = audit_log::GENESIS.to_string();
            let t = at("2026-01-01T00:00:00Z");
            for seq in 1..=RECORDS {
                let kind = if seq % 2 == 1 {
                    EventKind::Requested
                } else {
                    EventKind::Approved
                };
                let id = format!("r{}", seq.div_ceil(2));
                let mut e = event(kind, &id, "alice");
                e.reason = Some("routine maintenance of the primary database".into());
                let line = audit_log::tests::line_for(seq, t, &e, &prev);
                prev = audit_log::line_hash(line.as_bytes());
                writeln!(file, "{line}").unwrap();
            }
            std::fs::write(
                audit_log::head_path(&path),
                format!("{:020} {prev}\n", RECORDS),
            )
            .unwrap();
        }
        let size = std::fs::metadata(&path).unwrap().len();
        let before = max_rss_kib();
        let started = std::time::Instant::now();
        assert_eq!(audit_verify::verify(&path).unwrap().lines as u64, RECORDS);
        let verified = started.elapsed();
        let mut out = Vec::new();
        let host = HostFiles::system(&dir.0);
        assert_eq!(
            report(Format::Json, &Filter::all(), &path, &host, &[], &mut out),
            0
        );
        let grown = max_rss_kib() - before;
        eprintln!(
            "{RECORDS} records, {size} bytes: verify {verified:?}, verify+report {:?}, \
             max RSS grew {grown} KiB",
            started.elapsed()
        );
        // The file is tens of MB; reading it must not hold it.
        assert!(
            grown * 1024 < size as i64 / 4,
            "RSS grew {grown} KiB for {size} bytes"
        );
    }

    fn max_rss_kib() -> i64 {
        // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage.ru_maxrss
        }
    }
}
