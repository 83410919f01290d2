//! Whom the client trusts over TLS, and how a certificate it does not trust is told.
//!
//! Trusted: the Mozilla roots bundled into the binary, the operating system's store (where a
//! network that inspects TLS installs its own root), which `SSL_CERT_FILE` or `SSL_CERT_DIR`
//! replace when set (as OpenSSL's tools do; `rustls-native-certs` reads them), and the roots of
//! [`ClientOptions::ca_cert`](super::ClientOptions::ca_cert).

use std::path::Path;

use crate::api::error::Error;

/// The extra roots in a PEM file (one or more `CERTIFICATE` blocks), read once for every HTTP
/// client the API client builds.
pub(super) fn extra_roots(ca_cert: Option<&Path>) -> Result<Vec<reqwest::Certificate>, Error> {
    let op = "Connect";
    check_env_files()?;
    let Some(path) = ca_cert else { return Ok(Vec::new()) };
    let bad = |why: String| Error::Request { op, detail: format!("the CA certificate file {}: {why}", path.display()) };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(format!("is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()));
    }
    Ok(certs)
}

/// `SSL_CERT_FILE` naming a file that cannot be read would silently leave the operating
/// system's store out (the variable replaces it): said at once instead.
fn check_env_files() -> Result<(), Error> {
    let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) else { return Ok(()) };
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::Request {
            op: "Connect",
            detail: format!("SSL_CERT_FILE names {}, which is not a file", Path::new(&file).display()),
        }),
        Err(e) => Err(Error::Request {
            op: "Connect",
            detail: format!("SSL_CERT_FILE names {}, which cannot be read: {e}", Path::new(&file).display()),
        }),
    }
}

/// A client builder that trusts the bundled roots, the system's (or `SSL_CERT_*`'s) and `extra`.
pub(super) fn trusting(builder: reqwest::ClientBuilder, extra: &[reqwest::Certificate]) -> reqwest::ClientBuilder {
    let builder = builder.tls_built_in_webpki_certs(true).tls_built_in_native_certs(true);
    extra.iter().cloned().fold(builder, |b, cert| b.add_root_certificate(cert))
}

/// What is wrong with the server's certificate, when that is why a request failed: rustls's
/// error, which the I/O error of the connection wraps (and does not give as its `source`).
pub(super) fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(problem)) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(problem));
        }
        // An I/O error's `source` skips what it wraps (`get_ref`), which may be another I/O error.
        next = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(problem: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match problem {
        C::UnknownIssuer => "it is signed by an authority this machine does not trust (UnknownIssuer)".to_owned(),
        C::Expired | C::ExpiredContext { .. } => format!("it has expired ({problem:?})"),
        C::NotValidYet | C::NotValidYetContext { .. } => format!("it is not valid yet ({problem:?})"),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("it is not for this host name ({problem:?})")
        }
        C::BadSignature => "its signature does not verify (BadSignature)".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapped_rustls_error_is_found() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let found = certificate_problem(&io).expect("found through the io::Error");
        assert!(found.contains("UnknownIssuer"), "{found}");
        let twice = std::io::Error::other(io);
        assert!(certificate_problem(&twice).is_some_and(|f| f.contains("UnknownIssuer")), "through two");
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(certificate_problem(&other), None);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = extra_roots(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("empty.pem") && err.contains("no PEM certificate"), "{err}");
        let err = extra_roots(Some(&dir.path().join("absent.pem"))).unwrap_err().to_string();
        assert!(err.contains("absent.pem") && err.contains("cannot be read"), "{err}");
    }
}
