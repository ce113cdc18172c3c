//! The shipped unit file passes `systemd-analyze verify` and keeps its hardening.

mod common;

use std::path::Path;
use std::process::Command;

/// Writes the unit with `ExecStart` pointing at the binary under test, as install.sh would.
fn installed_unit(dir: &Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/facereko.service")).unwrap();
    let path = dir.join("facereko.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/facereko", common::BIN)).unwrap();
    path
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is missing: install it with `apt-get install systemd` (the test command does)")
}

#[test]
fn unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let output = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify failed:\n{stderr}");
    assert!(!stderr.contains("facereko.service:"), "warnings about the unit:\n{stderr}");
}

#[test]
fn unit_exposure_stays_low() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let output = systemd_analyze(&["security", "--offline=yes", "--no-pager", unit.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    let score: f32 = text
        .lines()
        .find_map(|line| line.split("Overall exposure level for facereko.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    // 1.6 when written; hardware access (devices, supplementary groups) keeps it above 1.
    assert!(score <= 2.0, "exposure rose to {score}; the README documents 1.6");
}

/// `Type=notify`: the daemon says READY=1 once it serves, pings the watchdog at half its period,
/// and says STOPPING=1 on SIGTERM.
#[test]
fn daemon_speaks_the_notify_protocol() {
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};

    let door = common::TestDoor::new(&[]);
    let socket_path = door.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut daemon = door
        .command()
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let mut messages = Vec::new();
    let mut buffer = [0u8; 512];
    let started = Instant::now();
    while messages.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 3 {
        assert!(started.elapsed() < Duration::from_secs(10), "notifications so far: {messages:?}");
        let length = socket.recv(&mut buffer).expect("the daemon notifies systemd");
        messages.push(String::from_utf8_lossy(&buffer[..length]).into_owned());
    }
    assert!(messages[0].contains("READY=1"), "READY=1 comes first: {messages:?}");
    assert!(door.run(&["healthcheck"]).status.success(), "ready means the control socket answers");

    assert!(Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap().success());
    loop {
        let length = socket.recv(&mut buffer).expect("the daemon says it is stopping");
        if String::from_utf8_lossy(&buffer[..length]).contains("STOPPING=1") {
            break;
        }
    }
    assert!(daemon.wait().unwrap().success());
}
