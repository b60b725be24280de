//! The real [`Host`]: a PAM handle inside sshd, sudo or any other PAM application.

use std::ffi::{CStr, CString};

use libc::c_char;

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_ON};
use pam::conv::Conv;
use pam::items;
use pam::module::PamHandle;

use crate::groups;
use crate::host::{Host, Item, ItemError, Severity};
use crate::syslog;

#[link(name = "pam")]
unsafe extern "C" {
    /// Linux-PAM's `pam_getenv(3)`; pam-bindings does not wrap it.
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    /// Linux-PAM's `pam_putenv(3)`: copies `name_value` ("NAME=value") into the handle.
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> libc::c_int;
}

pub struct LibPam<'a> {
    pamh: &'a PamHandle,
}

impl<'a> LibPam<'a> {
    pub fn new(pamh: &'a PamHandle) -> Self {
        LibPam { pamh }
    }

    fn text<'s, T>(&'s self) -> Result<Option<String>, ItemError>
    where
        T: items::Item<'s> + std::ops::Deref<Target = &'s CStr>,
    {
        match self.pamh.get_item::<T>() {
            Ok(Some(value)) => value
                .to_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| ItemError("not UTF-8".into())),
            Ok(None) => Ok(None),
            Err(code) => Err(ItemError(format!("pam_get_item failed: {code:?}"))),
        }
    }
}

impl Host for LibPam<'_> {
    fn item(&self, item: Item) -> Result<Option<String>, ItemError> {
        match item {
            Item::Service => self.text::<items::Service>(),
            Item::User => self.text::<items::User>(),
            Item::Ruser => self.text::<items::RUser>(),
            Item::Tty => self.text::<items::Tty>(),
            Item::Rhost => self.text::<items::RHost>(),
        }
    }

    fn tell_user(&self, line: &str) -> bool {
        // PAM_ERROR_MSG rather than PAM_TEXT_INFO: sudo and sshd print it even when they
        // suppress informational chatter, and a denial is what it reports.
        match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv.send(PAM_ERROR_MSG, line).is_ok(),
            _ => false,
        }
    }

    fn prompt(&self, question: &str) -> Option<String> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv,
            _ => return None,
        };
        match conv.send(PAM_PROMPT_ECHO_ON, question) {
            Ok(Some(answer)) => Some(String::from_utf8_lossy(answer.as_bytes()).into_owned()),
            Ok(None) => Some(String::new()),
            Err(_) => None,
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        let handle: *const PamHandle = self.pamh;
        // SAFETY: `handle` is the live handle libpam passed to this hook, and `name` a
        // NUL-terminated string that outlives the call. pam_getenv returns NULL or a pointer
        // into the handle's environment, valid until the environment changes; it is copied at
        // once, before anything else can run.
        let value = unsafe { pam_getenv(handle.cast_mut(), name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-null, so a NUL-terminated string owned by libpam (see above).
        let text = unsafe { CStr::from_ptr(value) };
        Some(text.to_string_lossy().into_owned())
    }

    fn put_env(&self, name: &str, value: &str) -> bool {
        let Ok(pair) = CString::new(format!("{name}={value}")) else {
            return false;
        };
        let handle: *const PamHandle = self.pamh;
        // SAFETY: `handle` is the live handle libpam passed to this hook, and `pair` a
        // NUL-terminated string that outlives the call; pam_putenv copies it.
        let rc = unsafe { pam_putenv(handle.cast_mut(), pair.as_ptr()) };
        rc == 0
    }

    fn user_listed_in_group(&self, user: &str, group: &str) -> Result<bool, String> {
        groups::is_listed(user, group)
    }

    fn user_in_group(&self, user: &str, group: &str) -> Result<bool, String> {
        groups::is_member(user, group)
    }

    fn log(&self, severity: Severity, line: &str) {
        syslog::log(severity, line);
    }

    fn pass_key(&self) -> String {
        let mut bytes = [0u8; 8];
        // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into the buffer it is given.
        let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if got != bytes.len() as isize {
            // Only a duplicate record is at stake, never access: fall back to what is unique
            // enough on this host (pid and time).
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            bytes = (now ^ (u64::from(std::process::id()) << 40)).to_le_bytes();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn own_command_line(&self) -> Option<Vec<String>> {
        crate::process::own_command_line()
    }
}
