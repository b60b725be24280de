//! pam_sm_authenticate, for sshd's keyboard-interactive step after a public key
//! (`AuthenticationMethods publickey,keyboard-interactive`): it authenticates nobody by itself.
//! It succeeds only for a user sshd has already authenticated with a key, so that
//! keyboard-interactive reaches the account phase, which sshd runs in the same PAM process
//! with a live conversation: there pam_jit asks for a reason and shows the request a login
//! waits on (`wait=`). Doing the waiting here instead would be worse: a failed
//! keyboard-interactive round is retried by the client (three times by default), each time
//! asking for approval again, while a failed account phase ends keyboard-interactive for the
//! connection.
//!
//! How it knows: sshd puts the methods that succeeded so far in the PAM environment as
//! `SSH_AUTH_INFO_0`, one line each (`publickey ssh-ed25519 AAAA…`). Neither the client nor
//! the user can set it before authentication. Anything but sshd (sudo, su, login) has none,
//! and is refused: this hook never stands in for a password.

use std::ffi::CStr;

use pam::constants::PamResultCode;

use crate::context::{Context, Phase};
use crate::host::{Host, Severity};

/// The variable sshd exposes its completed authentication methods in.
pub const AUTH_INFO: &str = "SSH_AUTH_INFO_0";

pub fn authenticate<H: Host>(host: &H, raw_args: &[&CStr]) -> PamResultCode {
    let Some(cx) = Context::prepare(host, Phase::Auth, raw_args) else {
        return PamResultCode::PAM_AUTH_ERR;
    };
    if cx.kind() != jit_proto::GrantKind::Ssh {
        cx.log(
            host,
            Severity::Err,
            "refused: pam_jit's auth line is only for sshd (kind=ssh); it never replaces a password",
        );
        return PamResultCode::PAM_AUTH_ERR;
    }
    let info = host.env(AUTH_INFO).unwrap_or_default();
    if info.lines().any(|l| l.starts_with("publickey ")) {
        cx.log(
            host,
            Severity::Debug,
            "sshd authenticated the user with a public key; the account phase decides",
        );
        return PamResultCode::PAM_SUCCESS;
    }
    cx.log(
        host,
        Severity::Notice,
        "refused: sshd has not authenticated the user with a public key first (use AuthenticationMethods publickey,keyboard-interactive)",
    );
    PamResultCode::PAM_AUTH_ERR
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Item;
    use crate::script::{Expect, Script};

    fn sshd() -> Vec<(Item, &'static str)> {
        vec![
            (Item::Service, "sshd"),
            (Item::User, "bob"),
            (Item::Rhost, "10.201.0.2"),
        ]
    }

    #[test]
    fn a_user_sshd_authenticated_with_a_key_passes_on_to_the_account_phase() {
        let script = Script::new(&sshd(), vec![]).with_env(
            AUTH_INFO,
            "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n",
        );
        assert_eq!(authenticate(&script, &[]), PamResultCode::PAM_SUCCESS);
    }

    /// keyboard-interactive alone, a password method, or anything that is not sshd: refused.
    #[test]
    fn without_a_public_key_first_nobody_is_authenticated() {
        for info in [
            None,
            Some(""),
            Some("password\n"),
            Some("keyboard-interactive/pam\n"),
        ] {
            let mut script = Script::new(
                &sshd(),
                vec![Expect::Log(
                    Severity::Notice,
                    "not authenticated the user with a public key",
                )],
            );
            if let Some(info) = info {
                script = script.with_env(AUTH_INFO, info);
            }
            assert_eq!(
                authenticate(&script, &[]),
                PamResultCode::PAM_AUTH_ERR,
                "{info:?}"
            );
        }
        let script = Script::new(
            &[(Item::Service, "sudo"), (Item::User, "alice")],
            vec![Expect::Log(Severity::Err, "only for sshd")],
        )
        .with_env(AUTH_INFO, "publickey ssh-ed25519 AAAA\n");
        assert_eq!(authenticate(&script, &[]), PamResultCode::PAM_AUTH_ERR);
        let script = Script::new(
            &sshd(),
            vec![Expect::Log(Severity::Err, "bad module arguments")],
        );
        assert_eq!(
            authenticate(&script, &[c"fail=opne"]),
            PamResultCode::PAM_AUTH_ERR
        );
    }
}
