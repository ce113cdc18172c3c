//! A throw-away SMTP server on a loopback port (`tests/smtp/server.py`, on Debian's aiosmtpd),
//! with a certificate from a CA made at test time. Every message it accepts is kept as the bytes
//! received and as JSON: the envelope, whether the session was encrypted and authenticated, the
//! headers, the text and HTML bodies, and every other part with its bytes.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::certs::Certificates;

const INSTALL_HINT: &str =
    "the e-mail tests need aiosmtpd: run `sudo apt-get install python3-aiosmtpd` (tests/run.sh does it)";

/// How long the server may take to listen; Python starts in well under a second on a Pi.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How the client must talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP; STARTTLS is not offered.
    Plain,
    /// Plain TCP with STARTTLS offered (not required: the JSON's `tls` tells whether it was used).
    StartTls,
    /// TLS from the first byte, as on port 465.
    ImplicitTls,
}

impl Security {
    fn server_flag(self) -> &'static str {
        match self {
            Security::Plain => "none",
            Security::StartTls => "starttls",
            Security::ImplicitTls => "implicit",
        }
    }
}

/// The first `python3` on PATH that can import aiosmtpd, else Debian's own: apt installs aiosmtpd
/// for /usr/bin/python3, which a pyenv or virtualenv `python3` earlier on PATH does not see.
fn python_with_aiosmtpd() -> &'static Path {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("python3"))
            .chain([PathBuf::from("/usr/bin/python3")])
            .filter(|candidate| candidate.is_file())
            .find(|python| {
                Command::new(python)
                    .args(["-c", "import aiosmtpd"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
            })
            .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
    })
}

pub struct SmtpServer {
    /// Holds the certificates, the messages (`mail/`) and the log.
    dir: tempfile::TempDir,
    pub port: u16,
    certs: Certificates,
    /// The arguments of `python3`, kept so that [`SmtpServer::resume`] starts the same server.
    arguments: Vec<OsString>,
    server: Option<Child>,
}

impl SmtpServer {
    /// A server that takes mail from anyone for anyone, without AUTH.
    pub fn start(security: Security) -> Self {
        Self::start_with(security, None, &[])
    }

    /// A server that, given `user_password`, offers AUTH PLAIN and LOGIN (with StartTls only after
    /// STARTTLS) and requires it before MAIL; and that refuses each address in `reject` with
    /// `550 5.1.1 no such user`, a permanent failure.
    pub fn start_with(security: Security, user_password: Option<(&str, &str)>, reject: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a folder for the SMTP server");
        let certs = Certificates::generate(dir.path(), &[]);
        std::fs::create_dir(dir.path().join("mail")).expect("the SMTP server's mail folder");
        let port = super::free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut arguments: Vec<OsString> = vec![
            script.into(),
            "--port".into(),
            port.to_string().into(),
            "--dir".into(),
            dir.path().join("mail").into(),
            "--tls".into(),
            security.server_flag().into(),
            "--cert".into(),
            certs.path("server.pem").into(),
            "--key".into(),
            certs.path("server.key").into(),
        ];
        if let Some((user, password)) = user_password {
            arguments.extend(["--user", user, "--password", password].map(OsString::from));
        }
        for &address in reject {
            arguments.extend(["--reject-recipient", address].map(OsString::from));
        }
        let mut server = Self { dir, port, certs, arguments, server: None };
        server.resume();
        server
    }

    /// The throw-away CA that signed the server's certificate for `localhost` and `127.0.0.1`.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.certs.path("ca.pem")
    }

    /// Starts the server (again) on the same port, appending to the messages it already holds.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "the SMTP server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the SMTP server's log file");
        let mut child = Command::new(python_with_aiosmtpd())
            .args(&self.arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("python3 does not start ({e}); {INSTALL_HINT}"));
        let stdout = child.stdout.take().expect("the SMTP server's stdout is piped");
        // Kept before waiting, so that Drop kills the server if it never gets ready.
        self.server = Some(child);
        let ready = first_line_within(stdout, READY_TIMEOUT);
        assert!(
            ready.as_deref() == Some("ready"),
            "the SMTP server did not get ready within {READY_TIMEOUT:?} (it said {ready:?}); log:\n{}",
            self.log()
        );
    }

    /// Stops the server with SIGTERM, as systemd would, and waits for its clean exit.
    pub fn stop(&mut self) {
        let mut child = self.server.take().expect("the SMTP server is running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        let status = child.wait().expect("the SMTP server exits");
        assert!(status.success(), "the SMTP server exited with {status}; log:\n{}", self.log());
    }

    /// The messages accepted so far, oldest first, as the JSON the server wrote for each.
    pub fn received(&self) -> Vec<Value> {
        self.message_files()
            .iter()
            .map(|path| {
                let text = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
            })
            .collect()
    }

    /// Polls until at least `count` messages arrived and returns them all; fails with the server's
    /// log after `timeout`. It blocks the thread: an async test that sends from its own runtime
    /// uses [`SmtpServer::wait_for_async`].
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            if let Some(messages) = self.arrived(count, started, timeout) {
                return messages;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// [`SmtpServer::wait_for`] that leaves the runtime free to send meanwhile.
    pub async fn wait_for_async(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            if let Some(messages) = self.arrived(count, started, timeout) {
                return messages;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The bytes of message `index` (0 is the first of [`SmtpServer::received`]) as they came.
    pub fn raw(&self, index: usize) -> Vec<u8> {
        let files = self.message_files();
        let json = files
            .get(index)
            .unwrap_or_else(|| panic!("there is no message {index}: the SMTP server holds {}", files.len()));
        let eml = json.with_extension("eml");
        std::fs::read(&eml).unwrap_or_else(|e| panic!("cannot read {}: {e}", eml.display()))
    }

    /// What the server wrote on stderr: connections, commands (passwords masked) and tracebacks.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The `.json` file of every message, in the order received. The server writes it last and
    /// renames it into place, so its `.eml` is there too; the zero-padded names sort by number.
    fn message_files(&self) -> Vec<PathBuf> {
        let folder = self.dir.path().join("mail");
        let entries = std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()));
        let mut files: Vec<PathBuf> = entries
            .map(|entry| entry.expect("an entry of the mail folder").path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
            .collect();
        files.sort();
        files
    }

    /// The messages once there are `count`, `None` before; fails after `timeout` from `started`.
    fn arrived(&self, count: usize, started: Instant, timeout: Duration) -> Option<Vec<Value>> {
        let messages = self.received();
        if messages.len() >= count {
            return Some(messages);
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {count} e-mail(s); the SMTP server received {}; its log:\n{}",
            messages.len(),
            self.log()
        );
        None
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first line of `stdout` without its newline, or `None` if the process closed it or
/// `timeout` passed first. A thread reads, because a pipe read cannot time out; it then drains
/// the pipe, so that the server never writes into a closed one.
fn first_line_within(stdout: ChildStdout, timeout: Duration) -> Option<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line).is_ok_and(|bytes| bytes > 0);
        let _ = sender.send(read.then(|| line.trim_end().to_owned()));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    receiver.recv_timeout(timeout).ok().flatten()
}
