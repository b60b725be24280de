//! What the module needs from the application that loaded it: PAM items, the conversation,
//! group membership, and syslog. The real implementation is [`crate::handle::LibPam`]; unit
//! tests use a scripted host that fails on any call it did not expect.

use std::fmt;

/// The PAM items the module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    Service,
    User,
    Ruser,
    Tty,
    Rhost,
}

/// Why an item could not be read (as opposed to "not set", which is `Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError(pub String);

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// syslog priorities the module uses, all logged to the authpriv facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Access allowed *without* a grant because jitd was unavailable and `fail=open`.
    Alert,
    /// Misconfiguration, or jitd unavailable.
    Err,
    /// A session could not be registered or deregistered, but access was not at stake.
    Warning,
    /// A denial: the expected outcome without a grant.
    Notice,
    /// An allowed access.
    Info,
    /// Only with the `debug` argument.
    Debug,
}

pub trait Host {
    /// A PAM item; `Ok(None)` when the application did not set it.
    fn item(&self, item: Item) -> Result<Option<String>, ItemError>;
    /// Shows one line to the user if the application has a conversation; false if it has none
    /// or the conversation failed.
    fn tell_user(&self, line: &str) -> bool;
    /// Asks the user a question (echoed) and returns the answer; `None` when the application
    /// cannot ask here (sshd's account phase after a public-key login, which stores messages
    /// and refuses prompts) or the conversation failed.
    fn prompt(&self, question: &str) -> Option<String>;
    /// A variable of the PAM environment (`pam_getenv`), which only the application and the
    /// modules of the stack set.
    fn env(&self, name: &str) -> Option<String>;
    /// Sets a variable of the PAM environment (`pam_putenv`), which sshd passes to the
    /// session; false when it could not.
    fn put_env(&self, name: &str, value: &str) -> bool;
    /// Whether `user` is a member of `group` by their own entries (primary group, or named
    /// in the group's member list): cheap, and `true` is certain, but `false` only means "not
    /// listed" (another NSS source may still make the user a member; see [`Host::user_in_group`]).
    fn user_listed_in_group(&self, user: &str, group: &str) -> Result<bool, String>;
    /// Whether `user` is a member of `group`, primary or supplementary, in any NSS source:
    /// the whole answer, and the expensive one.
    fn user_in_group(&self, user: &str, group: &str) -> Result<bool, String>;
    /// One line to syslog (authpriv). Callers escape user-supplied parts; the implementation
    /// still refuses to pass a control character through.
    fn log(&self, severity: Severity, line: &str);
    /// A fresh random key naming one pass without a grant, in its log line and its report to
    /// jitd, so that jitd records the pass once when it hears of it both ways.
    fn pass_key(&self) -> String;
    /// The command line of the process the module runs in (sudo's own argv).
    fn own_command_line(&self) -> Option<Vec<String>>;
}
