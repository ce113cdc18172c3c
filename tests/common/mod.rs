//! Shared fixtures of the integration tests (`tests/it`) and the benches: the real `facereko`
//! binary on a simulated door, a door in this process, throw-away MariaDB, Mosquitto and SMTP servers,
//! an SPI model of the MFRC522, face pictures and access-log events.
#![allow(dead_code)] // the benches include this module too, and each uses only a part of it

pub mod bench;
pub mod certs;
pub mod mariadb;
pub mod mfrc522_model;
pub mod mosquitto;
pub mod moto;
pub mod smtp;
pub mod webhook;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use facereko::access::{AccessEvent, Decision, Reason, StageTimings};
use facereko::config::Config;
use facereko::driver::Journal;
use facereko::photos::Photos;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_facereko");

/// A loopback port that nothing listens on now, and that no other test of this process was given:
/// the tests of every area run in one process, and the kernel may hand a port that was just
/// released to the next bind. Another process could still take it before the server under test
/// binds it; that server then fails to start, loudly, rather than the test passing wrongly.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("a loopback port").local_addr().unwrap().port();
        if GIVEN.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
            return port;
        }
    }
}

/// A venv in the user cache named `name`, where `package` is installed once with pip unless
/// its Python can already run `import`. Fails with the commands to run when that does not work.
pub fn cached_venv(name: &str, import: &str, package: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let venv = home.join(".cache/facereko").join(name);
    let imports = Command::new(venv.join("bin/python")).args(["-c", import]).output();
    if !imports.is_ok_and(|output| output.status.success()) {
        let how = format!("python3 -m venv {0} && {0}/bin/pip install '{package}'", venv.display());
        let created = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        assert!(created.is_ok_and(|s| s.success()), "cannot create a venv for {package}; run: {how}");
        let installed = Command::new(venv.join("bin/pip")).args(["install", "--quiet", package]).status();
        assert!(installed.is_ok_and(|s| s.success()), "cannot install {package}; run: {how}");
    }
    venv
}

/// A labelled face picture from `../shared/facedata`, which CI provides beside the clone.
pub fn face(relative: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/facedata");
    let path = root.join(relative);
    assert!(
        path.is_file(),
        "test picture {} is missing: the face data set must be at {} (the shared folder beside the repository)",
        path.display(),
        root.display()
    );
    path
}

/// The fetched face models (`FACEREKO_TEST_MODELS`, else the user cache); fails with the command
/// that fetches them when they are missing.
pub fn models_dir() -> PathBuf {
    let dir = facereko::models::test_models_dir();
    if let Err(e) = facereko::models::ModelPaths::check(&dir) {
        panic!("{e} (tests/run.sh does it and exports FACEREKO_TEST_MODELS)");
    }
    dir
}

/// A sample face picture fetched with the models (`obama.jpg`, `obama2.jpg`, `biden.jpg`, …).
pub fn sample(name: &str) -> PathBuf {
    let dir = models_dir();
    let path = facereko::models::samples_dir(&dir).join(name);
    assert!(
        path.is_file(),
        "sample picture {} is missing: run `facereko models fetch --dir {}`",
        path.display(),
        dir.display()
    );
    path
}

/// A plain grey PNG: a picture without a face.
pub fn grey_png() -> Vec<u8> {
    let grey = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128])));
    encode(&grey, image::ImageFormat::Png)
}

/// `picture` encoded as `format` (JPEG or PNG) in memory.
pub fn encode(picture: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).expect("the picture encodes");
    bytes.into_inner()
}

/// One JPEG with two pictures side by side on a grey background: `left` at `height` pixels high,
/// `right` at `right_height`, both keeping their aspect ratio.
pub fn side_by_side(left: &Path, height: u32, right: &Path, right_height: u32) -> Vec<u8> {
    let scaled = |path: &Path, height: u32| {
        let picture = image::open(path).expect("the sample decodes").to_rgb8();
        let width = (u64::from(picture.width()) * u64::from(height) / u64::from(picture.height())) as u32;
        image::imageops::resize(&picture, width, height, image::imageops::FilterType::Triangle)
    };
    let (left, right) = (scaled(left, height), scaled(right, right_height));
    let mut both = image::RgbImage::from_pixel(
        left.width() + right.width(),
        height.max(right_height),
        image::Rgb([128, 128, 128]),
    );
    image::imageops::replace(&mut both, &left, 0, 0);
    image::imageops::replace(&mut both, &right, i64::from(left.width()), 0);
    encode(&image::DynamicImage::ImageRgb8(both), image::ImageFormat::Jpeg)
}

/// A granted attempt at the front door with card 04A1B2C3 and Alice's face, now, on the simulated
/// engine, without a photo. Change what a test needs with struct update syntax:
/// `AccessEvent { person_name: Some("Bob".into()), ..access_event("bob-1") }`.
pub fn access_event(event_id: impl Into<String>) -> AccessEvent {
    AccessEvent {
        event_id: event_id.into(),
        at: time::OffsetDateTime::now_utc(),
        door: "front".into(),
        card_uid: Some("04A1B2C3".parse().unwrap()),
        person_id: None,
        person_name: Some("Alice".into()),
        decision: Decision::Granted,
        reason: Reason::CardAndFace,
        similarity: Some(97.5),
        confidence: Some(99.0),
        engine: Some("simulated".into()),
        photo: None,
        timings: StageTimings { read_ms: 3, capture_ms: Some(120), match_ms: Some(60), actuate_ms: 1, total_ms: 184 },
        detail: None,
    }
}

/// The attempt journal of `config`'s data directory, for a door started in this process.
pub fn journal(config: &Config) -> Journal {
    Journal::open(&config.journal_path()).expect("the attempt journal opens")
}

/// The photo folder of `config`, where the door saves what the camera saw.
pub fn photos(config: &Config) -> Photos {
    Photos::new(config.photos_dir())
}

/// A door with simulated hardware and SQLite in a temporary folder, run by the real binary.
pub struct TestDoor {
    pub dir: tempfile::TempDir,
    daemon: Option<Child>,
    /// Extra environment of every command, e.g. `FACEREKO_DATABASE__PASSWORD_FILE`.
    env: Vec<(String, String)>,
}

impl TestDoor {
    /// A door with test-friendly timings; `overrides` replace config keys (values in TOML syntax).
    pub fn new(overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("camera")).unwrap();
        let quoted = |path: PathBuf| format!("{:?}", path.display().to_string());
        let mut keys = std::collections::BTreeMap::from([
            ("data_dir".to_owned(), quoted(dir.path().to_owned())),
            // The simulated engine keeps these tests about the door; tests/it/engine.rs covers faces.
            ("engine.kind".to_owned(), "\"simulated\"".to_owned()),
            ("door.unlock_time".to_owned(), "\"1s\"".to_owned()),
            ("door.debounce".to_owned(), "\"300ms\"".to_owned()),
            ("door.grant_beep".to_owned(), "\"500ms\"".to_owned()),
            ("door.deny_beep".to_owned(), "\"50ms\"".to_owned()),
            ("hardware.simulated.camera".to_owned(), quoted(dir.path().join("camera"))),
            ("hardware.simulated.outputs_log".to_owned(), quoted(dir.path().join("outputs.jsonl"))),
        ]);
        for (key, value) in overrides {
            keys.insert((*key).to_owned(), (*value).to_owned());
        }
        let config: String = keys.iter().map(|(key, value)| format!("{key} = {value}\n")).collect();
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self { dir, daemon: None, env: Vec::new() }
    }

    /// A door whose database is the MySQL/MariaDB at `url`; `password`, when given, is passed the
    /// way a service would get it: in a file named by `FACEREKO_DATABASE__PASSWORD_FILE`.
    pub fn on_database(url: &str, password: Option<&str>) -> Self {
        Self::on_database_with(url, password, &[])
    }

    /// [`TestDoor::on_database`] with more settings, as for [`TestDoor::new`].
    pub fn on_database_with(url: &str, password: Option<&str>, overrides: &[(&str, &str)]) -> Self {
        let url = format!("{url:?}");
        let mut settings = vec![("database.url", url.as_str())];
        settings.extend_from_slice(overrides);
        let mut door = Self::new(&settings);
        if let Some(password) = password {
            let file = door.path("db-password");
            std::fs::write(&file, format!("{password}\n")).unwrap();
            door.env.push(("FACEREKO_DATABASE__PASSWORD_FILE".into(), file.display().to_string()));
        }
        door
    }

    /// A door with the on-device engine and the fetched test models.
    pub fn with_local_engine() -> Self {
        let models = format!("{:?}", models_dir().display().to_string());
        // The camera's time limit covers decoding the frame while the models load: on a loaded
        // test machine that took over the default 3 s, and these tests are not about the limit,
        // so they get the most `capture.time_limit` allows.
        Self::new(&[("engine.kind", "\"local\""), ("engine.models_dir", &models), ("capture.time_limit", "\"10s\"")])
    }

    /// Sets an environment variable for every command run from now on.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Shows `picture` to the simulated camera whenever `card` is tapped.
    pub fn show_for_card(&self, card: &str, picture: &Path) {
        let folder = self.path(&format!("camera/{card}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(picture, folder.join(picture.file_name().unwrap())).unwrap();
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command.arg("--config").arg(self.path("config.toml"));
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("facereko runs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "facereko {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn start(&mut self) {
        self.spawn("run");
        self.wait_for("the daemon to answer its health check", || self.run(&["healthcheck"]).status.success());
    }

    /// Starts `facereko serve-web` (a console, not a door) on this config and waits until its web
    /// app answers on `port`; stopped and logged as the daemon is.
    pub fn start_console(&mut self, port: u16) {
        self.spawn("serve-web");
        self.wait_for("the console's web app to answer", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    fn spawn(&mut self, command: &str) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path("daemon.log")).unwrap();
        let child = self
            .command()
            .arg(command)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the daemon starts");
        self.daemon = Some(child);
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("the daemon is running").id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        self.stop_with("TERM");
    }

    /// Sends `signal` (e.g. "HUP") and waits for a clean exit.
    pub fn stop_with(&mut self, signal: &str) {
        let mut child = self.daemon.take().expect("the daemon is running");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
        let status = child.wait().unwrap();
        assert!(status.success(), "the daemon exited with {status}; log:\n{}", self.daemon_log());
    }

    /// Kills the daemon with SIGKILL, as a power cut or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.daemon.take().expect("the daemon is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// Polls `done` for up to 10 s; the wait is for work to finish, not a measure of speed.
    pub fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}; daemon log:\n{}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Access-log rows, newest first.
    pub fn log_rows(&self) -> Vec<Value> {
        self.ok(&["log", "--json", "-n", "100"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Taps `card` and waits until the log has one more row, which it returns.
    pub fn tap_and_wait(&self, card: &str) -> Value {
        let before = self.log_rows().len();
        self.ok(&["tap", card]);
        self.wait_for(&format!("the attempt with card {card} to be logged"), || self.log_rows().len() > before);
        self.log_rows().remove(0)
    }

    /// Every switch of the simulated outputs, oldest first, as (output, on).
    pub fn output_switches(&self) -> Vec<(String, bool)> {
        let log = std::fs::read_to_string(self.path("outputs.jsonl")).unwrap_or_default();
        // A line still being written has no newline yet.
        let complete = &log[..log.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                (v["output"].as_str().unwrap().to_owned(), v["on"].as_bool().unwrap())
            })
            .collect()
    }

    pub fn is_on(&self, output: &str) -> bool {
        self.output_switches().iter().rev().find(|(o, _)| o == output).is_some_and(|(_, on)| *on)
    }
}

impl Drop for TestDoor {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `systemd-analyze` with `args`; fails with how to install it when it is missing.
pub fn systemd_analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is missing: install it with `apt-get install systemd` (the test command does)")
}

/// Copies `unit` into `dir` with `ExecStart` pointing at the binary under test (which
/// `systemd-analyze verify` requires to exist), and with it each drop-in `<unit>.d/*.conf` named in
/// `dropins`, as install.sh installs them. Returns the copy's path.
pub fn unit_under_test(unit: &Path, dropins: &[&str], dir: &Path) -> PathBuf {
    let name = unit.file_name().expect("a unit file name");
    let text = std::fs::read_to_string(unit).unwrap_or_else(|e| panic!("cannot read {}: {e}", unit.display()));
    let copy = dir.join(name);
    std::fs::write(&copy, text.replace("/usr/local/bin/facereko", BIN)).unwrap();
    let dropin_dir = |parent: &Path| parent.join(format!("{}.d", name.to_string_lossy()));
    for dropin in dropins {
        let source = dropin_dir(unit.parent().unwrap()).join(dropin);
        std::fs::create_dir_all(dropin_dir(dir)).unwrap();
        std::fs::copy(&source, dropin_dir(dir).join(dropin))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", source.display()));
    }
    copy
}

/// `systemd-analyze verify` accepts `unit` (from [`unit_under_test`]) with no warning about it or
/// its drop-ins (systemd reads those from `<unit>.d/` beside it).
pub fn assert_unit_verifies(unit: &Path) {
    let output = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify failed:\n{stderr}");
    let dir = unit.parent().unwrap().display().to_string();
    let ours: Vec<&str> =
        stderr.lines().filter(|line| line.contains("facereko.service") || line.contains(&dir)).collect();
    assert!(ours.is_empty(), "warnings about the unit or its drop-ins:\n{}", ours.join("\n"));
}

/// `systemd-analyze security` exposure of `unit`, 0 (locked down) to 10.
pub fn unit_exposure(unit: &Path) -> f32 {
    let output = systemd_analyze(&["security", "--offline=yes", "--no-pager", unit.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    let name = unit.file_name().unwrap().to_string_lossy();
    text.lines()
        .find_map(|line| line.split(&format!("Overall exposure level for {name}: ")).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"))
}
