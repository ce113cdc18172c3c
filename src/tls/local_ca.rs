//! The door's own certificate authority (`tls = "self"`): made once in `<data_dir>/tls`, it
//! signs a server certificate for the machine's names that is renewed well before it expires.
//! Phones and laptops trust the authority once (its certificate is offered on the sign-in page)
//! and then every renewed server certificate, so renewal never asks anything of anyone.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

use super::TlsError;
use super::certificate::{Parsed, read_certified_key};
use super::machine::host_name;

/// The folder in the data directory that holds the authority and the server certificate.
pub const TLS_DIR: &str = "tls";
/// The authority's certificate (PEM), the one phones install.
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server.key";

/// How long a new server certificate is valid. Apple's devices refuse server certificates valid
/// for more than 825 days, even from an authority the owner installed.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(90 * 86400);
/// A server certificate with less than this left is replaced.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86400);
/// The authority outlives many server certificates: installing it is the owner's only chore.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);
/// Certificates start a day before they are made, so that a device whose clock is a little
/// behind accepts them at once.
const BACKDATE: Duration = Duration::from_secs(86400);
/// A clock before this is not set yet (a Pi has no battery clock and may start in the past
/// until it reaches a time server); certificates made then would be dated wrong for years.
const CLOCK_SET_AFTER: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

/// The authority's certificate as the download page offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    pub der: Vec<u8>,
    pub pem: String,
    /// SHA-256 of the DER, as "AB:CD:…": compare it with the daemon's log before trusting.
    pub fingerprint: String,
    /// Its common name, as phones list it among installed certificates.
    pub name: String,
}

impl CaCertificate {
    fn new(der: Vec<u8>, pem: String, name: String) -> Self {
        let fingerprint = Sha256::digest(&der).iter().map(|byte| format!("{byte:02X}")).collect::<Vec<_>>().join(":");
        Self { der, pem, fingerprint, name }
    }
}

/// The door's certificate authority in its folder.
pub struct LocalCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    certificate: CaCertificate,
    /// Its subject (DER), which its certificates name as their issuer.
    subject: Vec<u8>,
}

impl LocalCa {
    /// The authority in `dir`, made there (with the folder) when there is none.
    pub fn open_or_create(dir: &Path, now: OffsetDateTime) -> Result<Self, TlsError> {
        match (dir.join(CA_FILE).exists(), dir.join(CA_KEY_FILE).exists()) {
            (true, true) => Self::open(dir),
            (false, false) => Self::create(dir, now),
            _ => Err(half_an_authority(dir)),
        }
    }

    /// What keeps the daemon from using the authority in `dir`, for `config check`; none yet is
    /// fine (the daemon makes one).
    pub fn check(dir: &Path) -> Result<(), String> {
        match (dir.join(CA_FILE).exists(), dir.join(CA_KEY_FILE).exists()) {
            (false, false) => Ok(()),
            (true, true) => Self::open(dir).map(|_| ()).map_err(|e| {
                format!("{e}; run `config check` as the service's user (sudo -u facereko facereko config check)")
            }),
            _ => Err(half_an_authority(dir).to_string()),
        }
    }

    fn open(dir: &Path) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| TlsError::Read { path: path.display().to_string(), detail: e.to_string() })
        };
        let invalid = |path: &Path, detail: String| TlsError::Invalid { path: path.display().to_string(), detail };
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| invalid(&key_path, format!("not a key: {e}")))?;
        let pem = read(&cert_path)?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| invalid(&cert_path, format!("not a PEM certificate: {e:?}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| invalid(&cert_path, format!("not a certificate: {e}")))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(invalid(&key_path, format!("is not the key of the authority in {}", cert_path.display())));
        }
        let subject = parsed.subject().as_raw().to_vec();
        let name = parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or("").to_owned();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| invalid(&cert_path, format!("cannot sign with it: {e}")))?;
        Ok(Self { dir: dir.to_owned(), issuer, certificate: CaCertificate::new(der.to_vec(), pem, name), subject })
    }

    fn create(dir: &Path, now: OffsetDateTime) -> Result<Self, TlsError> {
        check_clock(now)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| TlsError::Write { path: dir.display().to_string(), detail: e.to_string() })?;
        let key = KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        // The date makes each authority's name unique: a phone lists them by name.
        let name = format!("FaceReko door {} {}", host_name(), now.date());
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name.clone());
        params.distinguished_name.push(DnType::OrganizationName, "FaceReko");
        // It signs server certificates only, never another authority.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        let cert = params.self_signed(&key).map_err(|e| TlsError::Generate(e.to_string()))?;
        write_private(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes())?;
        write_public(&dir.join(CA_FILE), cert.pem().as_bytes())?;
        tracing::info!(
            folder = %dir.display(),
            "made the door's certificate authority; phones and computers install its certificate once (sign-in page)"
        );
        Self::open(dir)
    }

    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// The server certificate in the folder, or a new one (written there) when it is missing,
    /// unreadable, from another authority, has less than [`RENEW_BEFORE`] left at `now`, or does
    /// not name every one of `names`. Says whether it is new.
    pub fn server_certificate(&self, names: &[String], now: OffsetDateTime) -> Result<(CertifiedKey, bool), TlsError> {
        if let Some(current) = self.current_server_certificate(names, now) {
            return Ok((current, false));
        }
        Ok((self.issue(names, now)?, true))
    }

    fn current_server_certificate(&self, names: &[String], now: OffsetDateTime) -> Option<CertifiedKey> {
        let certified = read_certified_key(&self.dir.join(SERVER_FILE), &self.dir.join(SERVER_KEY_FILE)).ok()?;
        let parsed = Parsed::from_der(certified.cert.first()?).ok()?;
        let fresh = parsed.not_after - now > RENEW_BEFORE;
        let names_all = names.iter().all(|name| parsed.covers(name));
        (parsed.issuer == self.subject && fresh && names_all).then_some(certified)
    }

    fn issue(&self, names: &[String], now: OffsetDateTime) -> Result<CertifiedKey, TlsError> {
        check_clock(now)?;
        let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let key = KeyPair::generate().map_err(generate)?;
        // Names that parse as addresses become address entries.
        let mut params = CertificateParams::new(names.to_vec()).map_err(generate)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names.first().map_or("facereko", String::as_str));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVER_LIFETIME;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        // The key first: a certificate without its key would be read as missing and made anew.
        write_private(&self.dir.join(SERVER_KEY_FILE), key.serialize_pem().as_bytes())?;
        write_public(&self.dir.join(SERVER_FILE), cert.pem().as_bytes())?;
        tracing::info!(names = %names.join(", "), until = %params.not_after.date(), "issued the server certificate");
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        CertifiedKey::from_der(vec![cert.der().clone()], key_der, &provider)
            .map_err(|e| TlsError::Generate(e.to_string()))
    }
}

fn half_an_authority(dir: &Path) -> TlsError {
    TlsError::Invalid {
        path: dir.display().to_string(),
        detail: format!(
            "holds only half of the door's certificate authority ({CA_FILE} and {CA_KEY_FILE} go together): restore \
             the missing one from a backup, or remove both to make a new authority, which every phone and computer \
             must then install again"
        ),
    }
}

fn check_clock(now: OffsetDateTime) -> Result<(), TlsError> {
    if now < CLOCK_SET_AFTER { Err(TlsError::ClockNotSet(now)) } else { Ok(()) }
}

/// Writes `contents` to `path` readable by the owner only, replacing it whole (through a
/// temporary file and a rename), so a crash never leaves half a key.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    write_replacing(path, contents, 0o600)
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    write_replacing(path, contents, 0o644)
}

fn write_replacing(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let failed = |e: std::io::Error| TlsError::Write { path: path.display().to_string(), detail: e.to_string() };
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temporary).map_err(failed)?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(failed)?;
    // The mode given at creation is narrowed by the umask; a public certificate must be readable.
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn names() -> Vec<String> {
        vec!["doorpi".into(), "doorpi.local".into(), "localhost".into(), "127.0.0.1".into(), "192.168.1.20".into()]
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_authority_is_made_once_with_its_key_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join(TLS_DIR);
        let made = LocalCa::open_or_create(&tls, NOW).unwrap();
        assert_eq!(mode(&tls), 0o700);
        assert_eq!(mode(&tls.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&tls.join(CA_FILE)), 0o644);
        let again = LocalCa::open_or_create(&tls, NOW + Duration::from_secs(86400)).unwrap();
        assert_eq!(made.certificate(), again.certificate(), "the second start keeps the authority");
        assert_eq!(made.certificate().fingerprint.len(), 32 * 3 - 1);
        assert!(made.certificate().pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(LocalCa::check(&tls).is_ok());
        std::fs::remove_file(tls.join(CA_KEY_FILE)).unwrap();
        let half = LocalCa::check(&tls).unwrap_err();
        assert!(half.contains("remove both"), "{half}");
    }

    #[test]
    fn the_server_certificate_is_kept_until_due_then_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::open_or_create(dir.path(), NOW).unwrap();
        let (first, new) = ca.server_certificate(&names(), NOW).unwrap();
        assert!(new);
        assert_eq!(mode(&dir.path().join(SERVER_KEY_FILE)), 0o600);
        let parsed = Parsed::from_der(&first.cert[0]).unwrap();
        for name in names() {
            assert!(parsed.covers(&name), "{name} in {:?}", parsed.names);
        }
        assert_eq!(parsed.not_after, NOW + SERVER_LIFETIME);
        let early = NOW + SERVER_LIFETIME - RENEW_BEFORE - Duration::from_secs(3600);
        let (kept, new) = ca.server_certificate(&names(), early).unwrap();
        assert!(!new);
        assert_eq!(kept.cert, first.cert);
        let due = NOW + SERVER_LIFETIME - RENEW_BEFORE + Duration::from_secs(3600);
        let (renewed, new) = ca.server_certificate(&names(), due).unwrap();
        assert!(new, "less than {RENEW_BEFORE:?} left: renewed");
        assert_ne!(renewed.cert, first.cert);
        assert_eq!(Parsed::from_der(&renewed.cert[0]).unwrap().not_after, due + SERVER_LIFETIME);
        let mut moved = names();
        moved.push("10.0.0.9".into());
        let (_, new) = ca.server_certificate(&moved, due).unwrap();
        assert!(new, "a new address: renewed");
    }

    #[test]
    fn nothing_is_made_while_the_clock_is_not_set() {
        let dir = tempfile::tempdir().unwrap();
        let unset = datetime!(1970-01-01 0:00:12 UTC);
        assert!(matches!(LocalCa::open_or_create(dir.path(), unset), Err(TlsError::ClockNotSet(_))));
        assert!(!dir.path().join(CA_FILE).exists());
    }
}
