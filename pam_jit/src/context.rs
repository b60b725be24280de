//! Everything one hook needs before it can ask jitd: parsed arguments, the service, the grant
//! kind and the PAM items, each validated. Any failure here is a configuration or application
//! problem and the hook denies.

use std::ffi::CStr;

use jit_proto::{GrantKind, PamContext};

use crate::args::{self, Args};
use crate::host::{Host, Item, Severity};
use crate::kind;
use crate::log_line::{bounded, escape};

/// Longest item accepted: user names, tty paths and host names are far shorter; a longer one
/// is not something to forward to the daemon.
const MAX_ITEM_LEN: usize = 1024;

/// The PAM phase a hook runs in, for log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Auth,
    Account,
    OpenSession,
    CloseSession,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Account => "account",
            Phase::OpenSession => "session_open",
            Phase::CloseSession => "session_close",
        }
    }
}

pub struct Context {
    pub args: Args,
    pub phase: Phase,
    pub pam: PamContext,
}

impl Context {
    /// Parses arguments and reads the items; `None` (after logging why) when the hook cannot
    /// even ask.
    pub fn prepare<H: Host>(host: &H, phase: Phase, raw: &[&CStr]) -> Option<Context> {
        // The service is read first so that even an argument error is logged under its name.
        let service = match required(host, Item::Service) {
            Ok(s) => s,
            Err(why) => {
                log_plain(host, Severity::Err, phase, "?", &why);
                return None;
            }
        };
        let args = match args::parse(raw) {
            Ok(a) => a,
            Err(e) => {
                let why = format!("bad module arguments, denying: {e}");
                log_plain(host, Severity::Err, phase, &service, &why);
                return None;
            }
        };
        let Some(kind) = kind::for_service(&service, args.kind) else {
            log_plain(
                host,
                Severity::Err,
                phase,
                &service,
                "denying: this service has no known grant kind; add kind=ssh or kind=sudo to its pam_jit line",
            );
            return None;
        };
        let user = match required(host, Item::User) {
            Ok(u) => u,
            Err(why) => {
                let why = format!("denying: {why}");
                log_plain(host, Severity::Err, phase, &service, &why);
                return None;
            }
        };
        let pam = PamContext {
            user,
            kind,
            tty: hint(host, Item::Tty, phase, &service),
            rhost: hint(host, Item::Rhost, phase, &service),
            ruser: hint(host, Item::Ruser, phase, &service),
            service,
        };
        Some(Context { args, phase, pam })
    }

    pub fn kind(&self) -> GrantKind {
        self.pam.kind
    }

    /// The user whose grant covers this access. Under sudo that is the invoking user, which
    /// sudo sets as PAM_RUSER in every phase: PAM_USER is the target (root) in the session
    /// phase, and already in the account phase with `Defaults rootpw`, `targetpw` or
    /// `runaspw`. jitd applies the same rule; the module needs it for the exempt group, so an
    /// exempt root never exempts whoever invokes sudo.
    pub fn grant_holder(&self) -> &str {
        match (self.pam.kind, self.pam.ruser.as_deref()) {
            (GrantKind::Sudo, Some(ruser)) if !ruser.is_empty() => ruser,
            _ => &self.pam.user,
        }
    }

    /// Logs `message` with who, from where and through what, every user-supplied part escaped.
    pub fn log<H: Host>(&self, host: &H, severity: Severity, message: &str) {
        if severity == Severity::Debug && !self.args.debug {
            return;
        }
        let p = &self.pam;
        let opt = |v: &Option<String>| v.as_deref().map(escape).unwrap_or_else(|| "-".into());
        host.log(
            severity,
            &bounded(format!(
                "pam_jit({}:{}): user={} ruser={} rhost={} tty={} kind={}: {}",
                escape(&p.service),
                self.phase.as_str(),
                escape(&p.user),
                opt(&p.ruser),
                opt(&p.rhost),
                opt(&p.tty),
                p.kind.as_str(),
                escape(message)
            )),
        );
    }
}

fn log_plain<H: Host>(host: &H, severity: Severity, phase: Phase, service: &str, message: &str) {
    host.log(
        severity,
        &bounded(format!(
            "pam_jit({}:{}): {}",
            escape(service),
            phase.as_str(),
            escape(message)
        )),
    );
}

fn required<H: Host>(host: &H, item: Item) -> Result<String, String> {
    match host.item(item) {
        Ok(Some(v)) if !v.is_empty() && v.len() <= MAX_ITEM_LEN => Ok(v),
        Ok(Some(v)) if v.is_empty() => Err(format!("{item:?} is empty")),
        Ok(Some(_)) => Err(format!("{item:?} is longer than {MAX_ITEM_LEN} bytes")),
        Ok(None) => Err(format!("{item:?} is not set by the application")),
        Err(e) => Err(format!("cannot read {item:?}: {e}")),
    }
}

/// TTY, RHOST and RUSER are hints for the record, never identity: an unreadable one is
/// dropped, not fatal.
fn hint<H: Host>(host: &H, item: Item, phase: Phase, service: &str) -> Option<String> {
    match host.item(item) {
        Ok(Some(v)) if !v.is_empty() && v.len() <= MAX_ITEM_LEN => Some(v),
        Ok(_) => None,
        Err(e) => {
            log_plain(
                host,
                Severity::Warning,
                phase,
                service,
                &format!("ignoring unreadable {item:?}: {e}"),
            );
            None
        }
    }
}
