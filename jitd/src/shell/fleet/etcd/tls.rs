//! The TLS side of the etcd client: which CA to trust and which client certificate to show.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::error::EtcdError;

/// A rustls configuration for the given files, or `None` when none is given (ureq's default:
/// the webpki roots, no client certificate).
///
/// With `ca_file`, only that CA is trusted: an etcd cluster has its own CA, and trusting the
/// public ones as well would let anyone with a public certificate for the endpoint's name
/// stand in for etcd.
pub fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, EtcdError> {
    if ca_file.is_none() && cert_file.is_none() && key_file.is_none() {
        return Ok(None);
    }
    let roots = match ca_file {
        Some(path) => ca_roots(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| EtcdError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots);
    let config = match (cert_file, key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                EtcdError::Config(format!(
                    "key_file {}: no usable PEM private key ({e})",
                    key.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| EtcdError::Config(format!("client certificate and key: {e}")))?
        }
        _ => {
            return Err(EtcdError::Config(
                "cert_file and key_file go together: set both or neither".into(),
            ))
        }
    };
    Ok(Some(Arc::new(config)))
}

fn ca_roots(path: &Path) -> Result<RootCertStore, EtcdError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "ca_file")? {
        roots.add(cert).map_err(|e| {
            EtcdError::Config(format!(
                "ca_file {}: not a CA certificate ({e})",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, EtcdError> {
    let unusable =
        |e: &dyn std::fmt::Display| EtcdError::Config(format!("{what} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unusable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(&e))?;
    if certs.is_empty() {
        return Err(unusable(&"no PEM certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_files_keep_ureqs_default_and_half_a_client_identity_is_refused() {
        assert!(client_config(None, None, None).unwrap().is_none());
        let dir = jit_tests::TempDir::new("etcd-tls");
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "").unwrap();
        assert!(matches!(
            client_config(None, Some(&cert), None),
            Err(EtcdError::Config(_))
        ));
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_with_its_path() {
        let dir = jit_tests::TempDir::new("etcd-tls");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let err = client_config(Some(&ca), None, None).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        assert!(client_config(Some(&missing), None, None).is_err());
    }
}
