//! The real [`Host`]: a PAM handle inside sshd, sudo or any other PAM application.

use std::ffi::CStr;

use pam::constants::PAM_ERROR_MSG;
use pam::conv::Conv;
use pam::items;
use pam::module::PamHandle;

use crate::groups;
use crate::host::{Host, Item, ItemError, Severity};
use crate::syslog;

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
