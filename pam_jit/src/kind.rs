//! Which kind of grant a PAM service needs.

use jit_proto::GrantKind;

/// `kind=` wins (tests and sites run sshd or sudo under other service names); otherwise the
/// well-known service names decide. `None` means "unknown service": the caller denies, because
/// guessing a kind for a service nobody configured would hand out the wrong grant.
pub fn for_service(service: &str, configured: Option<GrantKind>) -> Option<GrantKind> {
    configured.or(match service {
        "sshd" => Some(GrantKind::Ssh),
        "sudo" | "sudo-i" => Some(GrantKind::Sudo),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_services_map_to_their_kind() {
        assert_eq!(for_service("sshd", None), Some(GrantKind::Ssh));
        assert_eq!(for_service("sudo", None), Some(GrantKind::Sudo));
        assert_eq!(for_service("sudo-i", None), Some(GrantKind::Sudo));
    }

    #[test]
    fn an_unknown_service_has_no_kind_unless_configured() {
        assert_eq!(for_service("login", None), None);
        assert_eq!(for_service("su", None), None);
        assert_eq!(
            for_service("jit-test-x", Some(GrantKind::Ssh)),
            Some(GrantKind::Ssh)
        );
        assert_eq!(
            for_service("sshd", Some(GrantKind::Sudo)),
            Some(GrantKind::Sudo)
        );
    }
}
