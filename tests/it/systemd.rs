//! The shipped unit file passes `systemd-analyze verify` and keeps its hardening.

use std::path::Path;
use std::process::Command;

use crate::common;

/// The shipped unit as install.sh installs it: with the MariaDB drop-in (`mariadb.conf`) or without.
fn installed_unit(dir: &Path, mariadb: bool) -> std::path::PathBuf {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/facereko.service");
    let dropins: &[&str] = if mariadb { &["mariadb.conf"] } else { &[] };
    common::unit_under_test(&unit, dropins, dir)
}

#[test]
fn unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    common::assert_unit_verifies(&installed_unit(dir.path(), false));
}

#[test]
fn unit_with_the_mariadb_dropin_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path(), true);
    common::assert_unit_verifies(&unit);

    // The check above means something only if verify reads the drop-in: a bad key in it is reported.
    let dropin = dir.path().join("facereko.service.d/mariadb.conf");
    let text = std::fs::read_to_string(&dropin).unwrap();
    std::fs::write(&dropin, format!("{text}NoSuchSetting=1\n")).unwrap();
    let output = common::systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mariadb.conf") && stderr.contains("NoSuchSetting"),
        "verify ignored the drop-in:\n{stderr}"
    );
}

#[test]
fn unit_exposure_stays_low() {
    for mariadb in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let score = common::unit_exposure(&installed_unit(dir.path(), mariadb));
        // 1.5 when written (README); hardware access (devices, supplementary groups) and the
        // network (notifications, cloud engine) keep it above 1.
        assert!(score <= 1.5, "exposure rose to {score} (MariaDB drop-in: {mariadb}); the README documents 1.5");
    }
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
    // The door's loop may ping the watchdog before the rest of the daemon says READY=1: systemd
    // takes pings at any time, so only READY=1 and the pings are waited for, in any order.
    let count = |messages: &[String], what: &str| messages.iter().filter(|m| m.contains(what)).count();
    while count(&messages, "READY=1") == 0 || count(&messages, "WATCHDOG=1") < 3 {
        assert!(started.elapsed() < Duration::from_secs(10), "notifications so far: {messages:?}");
        let length = socket.recv(&mut buffer).expect("the daemon notifies systemd");
        messages.push(String::from_utf8_lossy(&buffer[..length]).into_owned());
    }
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
