//! TLS: the process-wide crypto provider every TLS client and server uses (MQTT, the AWS SDK,
//! e-mail, the web app), and the server side of the listeners that speak TLS themselves:
//! `<section>.tls` (off, the door's own certificate authority, or the owner's files), the
//! certificate each serves (swapped in place when renewed or replaced, without a restart), and
//! what `config check` says about the files.

mod certificate;
mod local_ca;
mod machine;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
pub use tokio_rustls::TlsAcceptor;

use crate::checks::Checks;
pub use certificate::{Parsed, read_certified_key};
pub use local_ca::{CA_FILE, CaCertificate, LocalCa, RENEW_BEFORE, SERVER_LIFETIME, TLS_DIR};
pub use machine::{host_name, machine_names};

/// Installs the process-wide TLS crypto provider once; rustls cannot pick one by itself when
/// more than one is compiled in, and rumqttc's TLS connect fails without one.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// How often a running listener looks whether its certificate is due for renewal (`self`) or
/// its files were replaced (`files`).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(3600);

/// `<section>.tls`: how a listener speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP: behind a TLS reverse proxy, or on loopback only. The default when the key is
    /// unset, so configs from before TLS existed (often behind a proxy) keep working.
    #[default]
    Off,
    /// The door's own small certificate authority, made in the data directory at first start;
    /// its certificate is offered for download on the sign-in page.
    #[serde(rename = "self")]
    SelfSigned,
    /// The owner's certificate chain and key (`tls_cert`, `tls_key`), e.g. from Let's Encrypt.
    Files,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::SelfSigned => "self",
            Self::Files => "files",
        })
    }
}

/// One listener's TLS keys, as its section has them.
#[derive(Debug, Clone, Copy)]
pub struct TlsSettings<'a> {
    /// The section, e.g. "web", to name keys in problems.
    pub section: &'static str,
    pub mode: TlsMode,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
}

impl TlsSettings<'_> {
    /// What stops this listener from serving TLS: files missing or unreadable, a key that is not
    /// the certificate's, an expired certificate, a local CA the service cannot read.
    pub fn check(&self, data_dir: &Path, checks: &mut Checks) {
        let section = self.section;
        let (cert_key, key_key) = (format!("{section}.tls_cert"), format!("{section}.tls_key"));
        match self.mode {
            TlsMode::Off => {}
            TlsMode::Files => match (self.cert, self.key) {
                (Some(cert), Some(key)) => {
                    if let Err(problem) = certificate::check_files(cert, key, OffsetDateTime::now_utc()) {
                        let key_name = if problem.about_key { &key_key } else { &cert_key };
                        checks.check(false, key_name, problem.message);
                    }
                }
                _ => checks.check(
                    false,
                    &format!("{section}.tls"),
                    format!(
                        "\"files\" needs {cert_key} (the certificate chain, PEM) and {key_key} (its private key, PEM); \
                         or use \"self\" for the door's own certificate"
                    ),
                ),
            },
            TlsMode::SelfSigned => {
                if let Err(message) = LocalCa::check(&data_dir.join(TLS_DIR)) {
                    checks.check(false, &format!("{section}.tls"), message);
                }
            }
        }
        if self.mode != TlsMode::Files && (self.cert.is_some() || self.key.is_some()) {
            checks.check(
                false,
                &format!("{section}.tls"),
                format!(
                    "{cert_key} and {key_key} are used only with {section}.tls = \"files\"; set it, or remove them"
                ),
            );
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error(
        "the clock says {0}, which cannot be right (no network time yet?); certificates made now would be wrong, so none is"
    )]
    ClockNotSet(OffsetDateTime),
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The certificate a listener presents, swapped in place when renewed: connections already
/// open keep theirs, new ones get the new one.
#[derive(Debug)]
struct Served(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read().expect("served certificate lock")))
    }
}

impl Served {
    fn set(&self, certified: CertifiedKey) {
        *self.0.write().expect("served certificate lock") = Arc::new(certified);
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().expect("served certificate lock"))
    }
}

/// Where a listener's certificate comes from.
enum Source {
    Authority { ca: Box<LocalCa>, extra_names: Vec<String> },
    Files { cert: PathBuf, key: PathBuf, modified: Option<(SystemTime, SystemTime)> },
}

/// A listener's TLS: the acceptor for its connections and what keeps its certificate current.
/// Cheap to clone; clones share the certificate.
#[derive(Clone)]
pub struct ServerTls(Arc<Inner>);

struct Inner {
    acceptor: TlsAcceptor,
    served: Arc<Served>,
    source: std::sync::Mutex<Source>,
}

impl ServerTls {
    /// TLS with the door's own CA in `<data_dir>/tls`, made at the first start, and a server
    /// certificate for this machine's names and `extra_names` (renewed when due).
    pub fn self_signed(data_dir: &Path, extra_names: Vec<String>, now: OffsetDateTime) -> Result<Self, TlsError> {
        let ca = LocalCa::open_or_create(&data_dir.join(TLS_DIR), now)?;
        let names = with_extra(machine_names(), &extra_names);
        let (certified, _) = ca.server_certificate(&names, now)?;
        Self::serving(certified, Source::Authority { ca: Box::new(ca), extra_names })
    }

    /// TLS with the owner's certificate chain and key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certified = read_certified_key(cert, key)?;
        let modified = modified_times(cert, key);
        Self::serving(certified, Source::Files { cert: cert.to_owned(), key: key.to_owned(), modified })
    }

    fn serving(certified: CertifiedKey, source: Source) -> Result<Self, TlsError> {
        let served = Arc::new(Served(RwLock::new(Arc::new(certified))));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&served) as Arc<dyn ResolvesServerCert>);
        // Our connection loop speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Ok(Self(Arc::new(Inner { acceptor, served, source: std::sync::Mutex::new(source) })))
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.0.acceptor.clone()
    }

    /// The local CA's certificate, to offer for download; `None` with the owner's files.
    pub fn authority(&self) -> Option<CaCertificate> {
        match &*self.0.source.lock().expect("tls source lock") {
            Source::Authority { ca, .. } => Some(ca.certificate().clone()),
            Source::Files { .. } => None,
        }
    }

    /// The end-entity certificate served now (DER).
    pub fn served_certificate(&self) -> Vec<u8> {
        self.0.served.current().cert.first().map(|der| der.to_vec()).unwrap_or_default()
    }

    /// Renews the local CA's server certificate when due (or when this machine's names changed),
    /// or reloads the owner's files when they were replaced; new connections get the new
    /// certificate. Returns whether it changed. On failure the current one stays in service.
    pub fn refresh(&self, now: OffsetDateTime) -> Result<bool, TlsError> {
        let mut source = self.0.source.lock().expect("tls source lock");
        match &mut *source {
            Source::Authority { ca, extra_names } => {
                let names = with_extra(machine_names(), extra_names);
                let (certified, _) = ca.server_certificate(&names, now)?;
                // Another listener on the same folder (the web app and the API) may have renewed it.
                let changed = certified.cert != self.0.served.current().cert;
                if changed {
                    self.0.served.set(certified);
                }
                Ok(changed)
            }
            Source::Files { cert, key, modified } => {
                let now_modified = modified_times(cert, key);
                if now_modified == *modified {
                    return Ok(false);
                }
                let certified = read_certified_key(cert, key)?;
                self.0.served.set(certified);
                *modified = now_modified;
                Ok(true)
            }
        }
    }

    /// Refreshes every `period` until dropped (a task of the daemon's), logging what happened.
    pub async fn keep_current(self, name: &'static str, period: Duration) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticks.tick().await;
            match self.refresh(OffsetDateTime::now_utc()) {
                Ok(true) => tracing::info!(listener = name, "now serving a new TLS certificate"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(listener = name, error = %e, "cannot renew the TLS certificate; serving the current one")
                }
            }
        }
    }
}

/// `names` followed by those of `extra` not already in it.
fn with_extra(mut names: Vec<String>, extra: &[String]) -> Vec<String> {
    for name in extra {
        if !names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
            names.push(name.clone());
        }
    }
    names
}

fn modified_times(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(settings: TlsSettings<'_>, data_dir: &Path) -> Vec<crate::checks::Problem> {
        let mut checks = Checks::default();
        settings.check(data_dir, &mut checks);
        checks.into_problems()
    }

    #[test]
    fn files_mode_needs_both_files_and_they_belong_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let settings = TlsSettings { section: "web", mode: TlsMode::Files, cert: None, key: None };
        let found = problems(settings, dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "web.tls");
        assert!(found[0].message.contains("web.tls_cert"), "{}", found[0].message);
        let cert = dir.path().join("cert.pem");
        let off = TlsSettings { section: "api", mode: TlsMode::Off, cert: Some(&cert), key: None };
        let found = problems(off, dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("api.tls = \"files\""), "{}", found[0].message);
        assert!(problems(TlsSettings { mode: TlsMode::SelfSigned, cert: None, ..off }, dir.path()).is_empty());
    }

    #[test]
    fn extra_names_are_added_once() {
        let names = with_extra(vec!["pi".into(), "localhost".into()], &["door.example.com".into(), "PI".into()]);
        assert_eq!(names, ["pi", "localhost", "door.example.com"]);
    }
}
