//! Throw-away certificates for the test servers (Mosquitto, SMTP): a CA made at test time and the
//! certificates it signed, as PEM files in one folder.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA and the certificates it signed, as PEM files in one folder.
pub struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    /// Writes `ca.pem`; `server.pem` and `server.key` for `localhost` and `127.0.0.1`; and
    /// `<client>.pem` and `<client>.key` for each of `clients`. Keys are readable by their owner
    /// only, as servers and clients demand.
    pub fn generate(dir: &Path, clients: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "FaceReko test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();

        let issue = |name: &str, sans: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            let key_path = dir.join(format!("{name}.key"));
            std::fs::write(&key_path, key.serialize_pem()).unwrap();
            set_mode(&key_path, 0o600);
        };
        issue("server", vec!["localhost".into(), "127.0.0.1".into()]);
        for &client in clients {
            issue(client, Vec::new());
        }
        Self { dir: dir.to_owned() }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
