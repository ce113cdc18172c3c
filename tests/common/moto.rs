//! moto's server (PyPI `moto[server]`): a local Amazon SNS that speaks the real protocol and
//! delivers a topic's notifications to its HTTP subscribers. Installed once into a venv in the
//! user cache; each test runs its own server on a loopback port.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{cached_venv, free_port};

pub struct MotoServer {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    pub fn start() -> Self {
        let venv = cached_venv("moto-venv", "import moto.server", "moto[server]");
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { url: format!("http://127.0.0.1:{port}"), child, _dir: dir }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
