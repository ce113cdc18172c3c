//! Certificate files: a PEM chain and its key read into what rustls serves, and what a
//! certificate says about itself (names, expiry, issuer).

use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

use super::TlsError;

/// The chain in `cert` (PEM, the server's certificate first) with the private key in `key`,
/// which must be the certificate's.
pub fn read_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e, "a PEM private key"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Invalid {
            path: key.display().to_string(),
            detail: format!("is not the private key of the certificate in {}", cert.display()),
        },
        other => TlsError::Invalid { path: key.display().to_string(), detail: other.to_string() },
    })?;
    Ok(certified)
}

fn read_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error(cert, e, "PEM certificates"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e, "PEM certificates"))?;
    if chain.is_empty() {
        return Err(TlsError::Invalid {
            path: cert.display().to_string(),
            detail: "holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")".into(),
        });
    }
    Ok(chain)
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error, expected: &str) -> TlsError {
    let path = path.display().to_string();
    match error {
        rustls::pki_types::pem::Error::Io(e) => TlsError::Read { path, detail: e.to_string() },
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Invalid { path, detail: format!("holds no {expected}") }
        }
        other => TlsError::Invalid { path, detail: format!("is not {expected}: {other:?}") },
    }
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub not_after: OffsetDateTime,
    /// DNS names and addresses (as text) it is valid for.
    pub names: Vec<String>,
    /// Its issuer and subject, DER-encoded.
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
}

impl Parsed {
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        let mut names = Vec::new();
        if let Ok(Some(alternatives)) = cert.subject_alternative_name() {
            for name in &alternatives.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        let address = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                            _ => None,
                        };
                        names.extend(address.map(|a| a.to_string()));
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            not_after: cert.validity().not_after.to_datetime(),
            names,
            issuer: cert.issuer().as_raw().to_vec(),
            subject: cert.subject().as_raw().to_vec(),
        })
    }

    /// Whether it names `name` (a DNS name, case aside, or an address).
    pub fn covers(&self, name: &str) -> bool {
        let address = name.parse::<IpAddr>().ok();
        self.names.iter().any(|own| match address {
            Some(address) => own.parse::<IpAddr>().is_ok_and(|own| own == address),
            None => own.eq_ignore_ascii_case(name),
        })
    }
}

/// What is wrong with a certificate and key pair, for `config check`.
pub struct FileProblem {
    /// The key file is at fault, not the certificate.
    pub about_key: bool,
    pub message: String,
}

/// Checks that `cert` and `key` can be read, belong together and that the certificate has not
/// expired at `now`.
pub fn check_files(cert: &Path, key: &Path, now: OffsetDateTime) -> Result<(), FileProblem> {
    let certified = read_certified_key(cert, key).map_err(|e| FileProblem {
        about_key: matches!(&e, TlsError::Read { path, .. } | TlsError::Invalid { path, .. } if Path::new(path) == key),
        message: e.to_string(),
    })?;
    let leaf = certified.cert.first().expect("read_chain returns at least one certificate");
    let parsed = Parsed::from_der(leaf).map_err(|e| FileProblem {
        about_key: false,
        message: format!("{}: the first certificate cannot be read: {e}", cert.display()),
    })?;
    if parsed.not_after <= now {
        return Err(FileProblem {
            about_key: false,
            message: format!(
                "{}: the certificate expired on {}; renew it (e.g. `certbot renew`) or use \"self\"",
                cert.display(),
                parsed.not_after.date()
            ),
        });
    }
    Ok(())
}
