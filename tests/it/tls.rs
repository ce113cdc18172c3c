//! HTTPS served by the web app itself, with real TLS clients (rustls and curl): the door's own
//! certificate authority and the names its server certificate carries, clients that do and do
//! not trust it, plain HTTP redirected on the same port, Secure cookies, renewal of a certificate
//! near expiry while serving, the owner's own files, and what `config check` says about them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use facereko::serving::{self, Limits, Tls};
use facereko::tls::{CA_FILE, Parsed, RENEW_BEFORE, SERVER_LIFETIME, ServerTls, TLS_DIR};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use time::OffsetDateTime;

use crate::common::certs::Certificates;
use crate::common::{TestDoor, free_port};

/// What a TLS client got: the answer's head and body, and the certificate the server showed.
struct Answer {
    text: String,
    certificate: Vec<u8>,
}

fn roots_from(pem_file: &Path) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// `GET path` over TLS to the loopback `port`, naming the server `name` and trusting `roots`.
fn https_get(port: u16, name: &str, roots: RootCertStore, path: &str) -> Result<Answer, String> {
    facereko::tls::ensure_crypto_provider();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let server = ServerName::try_from(name.to_owned()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    // A server that closes without close_notify still sent its whole answer.
    if let Err(e) = tls.read_to_end(&mut bytes)
        && bytes.is_empty()
    {
        return Err(e.to_string());
    }
    let certificate = tls.conn.peer_certificates().and_then(|chain| chain.first()).map(|c| c.to_vec()).unwrap();
    Ok(Answer { text: String::from_utf8_lossy(&bytes).into_owned(), certificate })
}

/// A plain-HTTP `GET path` to the loopback `port`; the whole answer.
fn http_get(port: u16, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn header<'a>(answer: &'a str, name: &str) -> Vec<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A door serving the web app with `tls` settings (TOML values), started and answering.
fn door_with_tls(settings: &[(&str, &str)]) -> (TestDoor, u16) {
    let port = free_port();
    let listen = format!("\"127.0.0.1:{port}\"");
    let mut overrides = vec![("web.listen", listen.as_str())];
    overrides.extend_from_slice(settings);
    let mut door = TestDoor::new(&overrides);
    door.start();
    door.wait_for("the web app to answer", || TcpStream::connect(("127.0.0.1", port)).is_ok());
    (door, port)
}

/// The host name and addresses of this machine as the system tools tell them.
fn this_machine() -> (String, Vec<String>) {
    let run = |args: &[&str]| String::from_utf8(Command::new("hostname").args(args).output().unwrap().stdout).unwrap();
    let host = run(&[]).trim().split('.').next().unwrap().to_owned();
    let addresses = run(&["-I"]).split_whitespace().map(str::to_owned).collect();
    (host, addresses)
}

#[test]
fn the_door_serves_https_with_its_own_authority_trusted_only_by_those_who_installed_it() {
    let (door, port) = door_with_tls(&[("web.tls", "\"self\""), ("web.public_url", "\"https://door.example.net\"")]);
    let tls_dir = door.path(TLS_DIR);
    let ca = tls_dir.join(CA_FILE);
    assert_eq!(mode(&tls_dir), 0o700, "the folder is the service's only");
    assert_eq!(mode(&tls_dir.join("ca.key")), 0o600, "the authority's key is the service's only");
    assert_eq!(mode(&tls_dir.join("server.key")), 0o600);
    assert!(door.daemon_log().contains("fingerprint"), "the log gives the fingerprint to compare");

    // A client that trusts the authority: the sign-in page, with a Secure cookie.
    let answer = https_get(port, "localhost", roots_from(&ca), "/login").expect("a client trusting the CA connects");
    assert!(answer.text.starts_with("HTTP/1.1 200"), "{}", answer.text);
    let cookies = header(&answer.text, "set-cookie");
    assert!(!cookies.is_empty() && cookies.iter().all(|c| c.contains("; Secure")), "cookies over TLS: {cookies:?}");
    assert!(answer.text.contains("href=\"/certificate\""), "the sign-in page links to the certificate page");

    // The server certificate names what a phone may type, and the public URL's host.
    let parsed = Parsed::from_der(&answer.certificate).unwrap();
    let (host, addresses) = this_machine();
    let mut expected = vec![host.clone(), format!("{host}.local"), "localhost".into(), "127.0.0.1".into()];
    expected.push("door.example.net".into());
    expected.extend(addresses.iter().filter(|a| !a.starts_with("fe80")).cloned());
    for name in &expected {
        assert!(parsed.covers(name), "the certificate names {name}: it has {:?}", parsed.names);
    }
    let left = parsed.not_after - OffsetDateTime::now_utc();
    assert!(left > RENEW_BEFORE && left <= SERVER_LIFETIME, "valid for {left}");
    // By address, as a phone that cannot resolve .local names would connect.
    let by_address = https_get(port, "127.0.0.1", roots_from(&ca), "/login").expect("the address is a name too");
    assert!(by_address.text.starts_with("HTTP/1.1 200"), "{}", by_address.text);

    // A client that does not trust it is refused by its own TLS library, and so is curl.
    let untrusted = https_get(port, "localhost", RootCertStore::empty(), "/login").err().expect("refused");
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    let url = format!("https://localhost:{port}/login");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let refused = curl(&[]);
    assert_eq!(refused.status.code(), Some(60), "curl refuses an unknown authority: {refused:?}");
    let trusted = curl(&["--cacert", ca.to_str().unwrap()]);
    assert!(trusted.status.success(), "{trusted:?}");
    assert_eq!(String::from_utf8_lossy(&trusted.stdout), "200");

    // Plain HTTP on the same port is sent to https, path and query kept.
    let plain = String::from_utf8(http_get(port, "/history?page=2")).unwrap();
    assert!(plain.starts_with("HTTP/1.1 307"), "{plain}");
    assert_eq!(header(&plain, "location"), [format!("https://localhost:{port}/history?page=2").as_str()]);
    assert!(header(&plain, "set-cookie").is_empty(), "no cookie over plain HTTP");
    // …except the certificate itself, which a phone fetches before it trusts https here.
    let download = http_get(port, "/certificate/facereko-ca.crt");
    let download_text = String::from_utf8_lossy(&download);
    assert!(download_text.starts_with("HTTP/1.1 200"), "{download_text}");
    assert_eq!(header(&download_text, "content-type"), ["application/x-x509-ca-cert"]);
    let der = CertificateDer::from_pem_slice(&std::fs::read(&ca).unwrap()).unwrap();
    assert!(download.ends_with(&der), "the download is the authority's certificate (DER)");
    let page = https_get(port, "localhost", roots_from(&ca), "/certificate").unwrap();
    for platform in ["iPhone", "Android", "macOS", "Windows", "Linux"] {
        assert!(page.text.contains(platform), "instructions for {platform}");
    }

    // A new start keeps the authority, so phones need not install it again.
    let fingerprint_before = std::fs::read(&ca).unwrap();
    let mut door = door;
    door.stop();
    door.start();
    assert_eq!(std::fs::read(&ca).unwrap(), fingerprint_before);
}

#[test]
fn a_handshake_that_never_comes_is_closed_after_the_header_timeout() {
    let (_door, port) = door_with_tls(&[("web.tls", "\"self\""), ("web.connections.header_timeout", "\"1s\"")]);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The first bytes of a ClientHello record, and then nothing.
    half.write_all(&[0x16, 0x03, 0x01, 0x02]).unwrap();
    for stream in [&mut silent, &mut half] {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 64];
        let read = stream.read(&mut buffer);
        assert!(matches!(read, Ok(0)) || read.is_err(), "closed, not answered: {read:?}");
        assert!(started.elapsed() < Duration::from_secs(4), "closed after about 1 s, took {:?}", started.elapsed());
    }
}

#[test]
fn a_certificate_near_expiry_is_replaced_while_serving_without_a_restart() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    // The door first started 70 days ago: its certificate has 20 days left, less than RENEW_BEFORE.
    let started = now - Duration::from_secs(70 * 86400);
    let tls = ServerTls::self_signed(data_dir.path(), Vec::new(), started).unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Tls::redirecting(tls.acceptor());
    runtime.spawn(serving::serve_http("test", listener, router, Some(serving), Limits::default(), async {
        let _ = stopped.await;
    }));
    let ca = data_dir.path().join(TLS_DIR).join(CA_FILE);
    let served = |path| https_get(port, "localhost", roots_from(&ca), path).expect("trusted");

    let before = served("/");
    assert!(before.text.ends_with("hello"), "{}", before.text);
    let old = Parsed::from_der(&before.certificate).unwrap();
    let left = old.not_after - now;
    assert!(left < RENEW_BEFORE, "the old certificate is near expiry: {left}");

    assert!(tls.refresh(now).unwrap(), "due: renewed");
    let after = served("/");
    assert_ne!(after.certificate, before.certificate, "new connections get the new certificate");
    let new = Parsed::from_der(&after.certificate).unwrap();
    assert!(new.not_after - now > SERVER_LIFETIME - Duration::from_secs(60), "valid for the full lifetime");
    assert_eq!(new.issuer, old.issuer, "from the same authority: nothing to install again");
    let on_disk = std::fs::read(data_dir.path().join(TLS_DIR).join("server.pem")).unwrap();
    assert_eq!(
        CertificateDer::from_pem_slice(&on_disk).unwrap().to_vec(),
        after.certificate,
        "kept for the next start"
    );

    assert!(!tls.refresh(now + Duration::from_secs(3600)).unwrap(), "a fresh certificate stays");
    assert_eq!(served("/").certificate, after.certificate);
}

#[test]
fn the_owners_certificate_files_are_served_and_checked() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = Certificates::generate(certs_dir.path(), &["other"]);
    let quoted = |file: &str| format!("{:?}", certs.path(file).display().to_string());
    let (cert, key, other_key) = (quoted("server.pem"), quoted("server.key"), quoted("other.key"));
    let files = [("web.tls", "\"files\""), ("web.tls_cert", cert.as_str()), ("web.tls_key", key.as_str())];

    let (door, port) = door_with_tls(&files);
    assert!(door.ok(&["config", "check"]).contains(&format!("https://127.0.0.1:{port}/")));
    let answer = https_get(port, "localhost", roots_from(&certs.path("ca.pem")), "/login").expect("trusted");
    assert!(answer.text.starts_with("HTTP/1.1 200"), "{}", answer.text);
    assert!(!door.path(TLS_DIR).exists(), "no authority of its own is made");
    drop(door);

    let check = |settings: &[(&str, &str)]| {
        let mut overrides = vec![("web.listen", "\"127.0.0.1:1\"")];
        overrides.extend_from_slice(settings);
        let output = TestDoor::new(&overrides).run(&["config", "check"]);
        assert!(!output.status.success(), "refused");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let missing = check(&[
        ("web.tls", "\"files\""),
        ("web.tls_cert", "\"/nonexistent/cert.pem\""),
        ("web.tls_key", key.as_str()),
    ]);
    assert!(missing.contains("web.tls_cert: cannot read /nonexistent/cert.pem"), "{missing}");
    let mismatched =
        check(&[("web.tls", "\"files\""), ("web.tls_cert", cert.as_str()), ("web.tls_key", other_key.as_str())]);
    assert!(
        mismatched.contains("web.tls_key:") && mismatched.contains("is not the private key of the certificate"),
        "{mismatched}"
    );
    let half = check(&[("web.tls", "\"files\""), ("web.tls_cert", cert.as_str())]);
    assert!(half.contains("web.tls: \"files\" needs web.tls_cert"), "{half}");

    let expired_dir = tempfile::tempdir().unwrap();
    let (expired_cert, expired_key) = expired_certificate(expired_dir.path());
    let expired = check(&[
        ("web.tls", "\"files\""),
        ("web.tls_cert", expired_cert.as_str()),
        ("web.tls_key", expired_key.as_str()),
    ]);
    assert!(
        expired.contains("web.tls_cert:") && expired.contains("the certificate expired on 2025-01-31"),
        "{expired}"
    );
}

/// A self-signed certificate for localhost that expired on 2025-01-31, and its key; their paths as
/// TOML strings.
fn expired_certificate(dir: &Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2025, 1, 31);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("old.pem"), dir.join("old.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let quoted = |path: &Path| format!("{:?}", path.display().to_string());
    (quoted(&cert_path), quoted(&key_path))
}

#[test]
fn the_api_serves_tls_with_the_doors_authority() {
    let port = free_port();
    let models = format!("{:?}", crate::common::models_dir().display().to_string());
    let listen = format!("\"127.0.0.1:{port}\"");
    let keys = r#"[{ access_key_id = "FACEREKOTLSKEY000001", secret_access_key = "tls-test-secret-long-enough" }]"#;
    let door = TestDoor::new(&[
        ("engine.kind", "\"local\""),
        ("engine.models_dir", &models),
        ("api.listen", &listen),
        ("api.tls", "\"self\""),
        ("api.access_keys", keys),
    ]);
    let log = std::fs::File::create(door.path("api.log")).unwrap();
    let mut api = door.command().arg("serve-api").stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    door.wait_for("the API to listen", || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let ca = door.path(TLS_DIR).join(CA_FILE);
    let url = format!("https://localhost:{port}/");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "X-Amz-Target: RekognitionService.ListCollections"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let refused = curl(&[]);
    let trusted = curl(&["--cacert", ca.to_str().unwrap()]);
    let _ = api.kill();
    let _ = api.wait();
    assert_eq!(refused.status.code(), Some(60), "curl refuses an unknown authority: {refused:?}");
    assert!(trusted.status.success(), "{trusted:?}");
    let body = String::from_utf8_lossy(&trusted.stdout);
    assert!(body.contains("MissingAuthenticationToken") || body.contains("__type"), "the API's own answer: {body}");
}
