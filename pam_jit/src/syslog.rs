//! Lines to syslog, facility authpriv.
//!
//! No openlog(): the module runs inside sshd or sudo, and openlog would change the host's own
//! ident and options for the rest of its life. Each line carries a `pam_jit(service:phase)`
//! prefix instead, as pam_syslog(3) does. The text always goes through a "%s" format, never
//! as the format itself, so a `%n` in a user name is just text.

use std::ffi::CString;

use crate::host::Severity;
use crate::log_line::escape;

pub fn log(severity: Severity, line: &str) {
    let level = match severity {
        Severity::Alert => libc::LOG_ALERT,
        Severity::Err => libc::LOG_ERR,
        Severity::Warning => libc::LOG_WARNING,
        Severity::Notice => libc::LOG_NOTICE,
        Severity::Info => libc::LOG_INFO,
        Severity::Debug => libc::LOG_DEBUG,
    };
    // Callers escape each user-supplied field; this second line of defence only acts if a
    // control character (or NUL, which CString refuses) slipped through.
    let text = if line.chars().any(char::is_control) {
        escape(line)
    } else {
        line.to_string()
    };
    let Ok(text) = CString::new(text) else {
        return;
    };
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call, and
    // the constant "%s" format consumes exactly the one string argument passed.
    unsafe {
        libc::syslog(libc::LOG_AUTHPRIV | level, c"%s".as_ptr(), text.as_ptr());
    }
}
