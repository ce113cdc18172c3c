//! The web app in a real browser: Debian's Chromium, driven by `tests/e2e/door-flow.mjs`
//! (playwright-core), against the real daemon with the on-device engine. An admin signs in, adds a
//! person with a photo and a card, watches the live history while a simulated tap is let in,
//! disarms, adds a passkey, signs in with it and passes a step-up with it, and signs out, over
//! https with the door's own certificate authority trusted the way a Linux owner trusts it (an NSS
//! store); then signs in with the person's face from Chromium's fake camera
//! (`tests/e2e/face-sign-in.mjs`), and a stranger's face is refused. `bash tests/run.sh` installs
//! Chromium, playwright-core and certutil.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::smtp::{Security, SmtpServer};
use crate::common::webhook::Receiver;
use crate::common::{TestDoor, face, free_port, models_dir};

const CHROMIUM: &str = "/usr/bin/chromium";
const CERTUTIL: &str = "/usr/bin/certutil";
const CARD: &str = "04A1B2C3";
const PERSON: &str = "George W Bush";
const USER: &str = "e2e-admin";
const VISITOR: &str = "Ai";
/// What Chromium's fake camera shows for face sign-in: another picture of the enrolled man, and
/// a stranger.
const OWNER_ON_CAMERA: &str = "lfw10/George_W_Bush/George_W_Bush_0005.jpg";
const STRANGER_ON_CAMERA: &str = "lfw10/Colin_Powell/Colin_Powell_0001.jpg";
/// The fake camera's picture size.
const CAMERA_SIZE: (u32, u32) = (640, 480);
const VISITOR_MOBILE: &str = "+4915100000042";
const VISITOR_SUBJECT: &str = "FaceReko: Ai is at front";
/// The whole browser flow; each of its waits is at most 15 s, so this only stops a hung run.
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn an_admin_enrols_a_person_in_the_browser_and_sees_them_let_in_live() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    require_browser_tools(root);

    let port = free_port();
    let models = format!("{:?}", models_dir().display().to_string());
    let listen = format!("\"127.0.0.1:{port}\"");
    let mut door = TestDoor::new(&[
        ("engine.kind", "\"local\""),
        ("engine.models_dir", &models),
        ("web.listen", &listen),
        ("web.tls", "\"self\""),
        // Every account change asks for a fresh check, so the flow's passkey passes one.
        ("web.step_up_after", "\"0s\""),
    ]);
    // A different picture of the man than the one enrolled: the engine must really match faces.
    door.show_for_card(CARD, &face("lfw10/George_W_Bush/George_W_Bush_0002.jpg"));
    let password = add_admin(&door);
    door.start();
    // Plain HTTP on the app's port is sent to https.
    wait_for_web_app(&door, port, "307");

    let screenshots = fresh_dir(&root.join("target/e2e-screenshots"));
    let base_url = format!("https://localhost:{port}");
    // Chromium refuses the door until its authority is trusted; nothing here ignores certificate
    // errors. Trusted, http:// leads to the sign-in page over https with a Secure cookie.
    let untrusting = door.path("browser-home-untrusting");
    std::fs::create_dir_all(&untrusting).unwrap();
    let trusting = home_trusting(&door, &door.path("tls/ca.pem"));
    for (expect, home) in [("refused", &untrusting), ("trusted", &trusting)] {
        let env = [
            ("HTTPS_URL", base_url.clone()),
            ("EXPECT", expect.to_owned()),
            ("HOME", home.display().to_string()),
            ("SCREENSHOTS", screenshots.display().to_string()),
        ];
        let check = run_flow(root, &door, "tls-check.mjs", &env);
        assert!(
            check.succeeded(),
            "the browser's TLS check ({expect}) {}\n--- daemon log:\n{}",
            check.report(),
            door.daemon_log()
        );
    }

    let photo = face("lfw10/George_W_Bush/George_W_Bush_0001.jpg");
    let env = [
        ("BASE_URL", base_url),
        ("HOME", trusting.display().to_string()),
        // The flow's own requests outside the browser (after sign-out) go through Node's TLS.
        ("NODE_EXTRA_CA_CERTS", door.path("tls/ca.pem").display().to_string()),
        ("FACEREKO_E2E_USER", USER.to_owned()),
        ("FACEREKO_E2E_PASSWORD", password.clone()),
        ("FACEREKO_E2E_PHOTO", photo.display().to_string()),
        ("FACEREKO_E2E_CARD", CARD.to_owned()),
        ("FACEREKO_E2E_PERSON", PERSON.to_owned()),
        ("SCREENSHOTS", screenshots.display().to_string()),
    ];
    let flow = run_flow(root, &door, "door-flow.mjs", &env);
    assert!(
        flow.succeeded(),
        "the browser flow {}\n--- screenshots in {}\n--- daemon log:\n{}",
        flow.report(),
        screenshots.display(),
        door.daemon_log()
    );

    // Face sign-in from the browser's camera: the enrolled man's face, then a stranger's.
    let (owner_video, stranger_video) = (door.path("owner.y4m"), door.path("stranger.y4m"));
    write_y4m(&face(OWNER_ON_CAMERA), &owner_video);
    write_y4m(&face(STRANGER_ON_CAMERA), &stranger_video);
    let env = [
        ("BASE_URL", format!("https://localhost:{port}")),
        ("HOME", trusting.display().to_string()),
        ("FACEREKO_E2E_USER", USER.to_owned()),
        ("FACEREKO_E2E_PASSWORD", password),
        ("FACEREKO_E2E_PERSON", PERSON.to_owned()),
        ("OWNER_VIDEO", owner_video.display().to_string()),
        ("STRANGER_VIDEO", stranger_video.display().to_string()),
        ("SCREENSHOTS", screenshots.display().to_string()),
    ];
    let flow = run_flow(root, &door, "face-sign-in.mjs", &env);
    assert!(
        flow.succeeded(),
        "the face sign-in flow {}\n--- screenshots in {}\n--- daemon log:\n{}",
        flow.report(),
        screenshots.display(),
        door.daemon_log()
    );

    // What the browser saw is what the door logged.
    let rows = door.log_rows();
    assert!(rows.len() >= 2, "two attempts logged: {rows:?}");
    assert_eq!(rows[0]["decision"], "disarmed", "the tap after disarming: {}", rows[0]);
    let granted = &rows[1];
    assert_eq!(granted["decision"], "granted", "the tap while armed: {granted}");
    assert_eq!(granted["reason"], "card_and_face", "{granted}");
    assert_eq!(granted["person_name"], PERSON, "{granted}");
    assert_eq!(granted["card_uid"], CARD, "{granted}");
}

/// A visitor rings on a phone, the owner approves from the link in the mail (a real SMTP server),
/// the passcode comes by text message (a loopback SMS webhook) and opens the door once; five wrong
/// passcodes lock a second one; the admin sees it all. Each part is a run of
/// `tests/e2e/visitor-flow.mjs`, with what the messages carried passed in between.
#[test]
fn a_visitor_rings_is_approved_and_comes_in_with_a_passcode_in_the_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    require_browser_tools(root);
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let port = free_port();
    let base_url = format!("http://127.0.0.1:{port}");
    let (listen, public_url) = (format!("\"127.0.0.1:{port}\""), format!("{base_url:?}"));
    let (smtp_port, sms_url) = (smtp.port.to_string(), format!("{:?}", sms.url("/send")));
    let mut door = TestDoor::new(&[
        ("web.listen", &listen),
        ("web.public_url", &public_url),
        ("visitors.enabled", "true"),
        ("visitors.tell", "[\"email:owner@example.com\"]"),
        ("email.server", "\"localhost\""),
        ("email.port", &smtp_port),
        ("email.security", "\"plain\""),
        ("email.from", "\"FaceReko <door@example.com>\""),
        ("email.to", "[\"owner@example.com\"]"),
        ("sms.url", &sms_url),
        ("sms.body", r#""{\"to\": \"{to}\", \"text\": \"{text}\"}""#),
    ]);
    // The door camera sees the visitor when they ring.
    door.show_for_card("default", &face("diverse/ai_sugiyama/1.jpg"));
    let password = add_admin(&door);
    door.start();
    wait_for_web_app(&door, port, "200");
    let screenshots = fresh_dir(&root.join("target/e2e-screenshots/visitor"));
    let part = |part: &str, extra: &[(&str, String)]| {
        let mut env = vec![
            ("BASE_URL", base_url.clone()),
            ("FLOW_PART", part.to_owned()),
            ("FACEREKO_E2E_VISITOR", VISITOR.to_owned()),
            ("FACEREKO_E2E_MOBILE", VISITOR_MOBILE.to_owned()),
            ("FACEREKO_E2E_USER", USER.to_owned()),
            ("FACEREKO_E2E_PASSWORD", password.clone()),
            ("SCREENSHOTS", screenshots.display().to_string()),
        ];
        env.extend(extra.iter().cloned());
        let flow = run_flow(root, &door, "visitor-flow.mjs", &env);
        assert!(
            flow.succeeded(),
            "the visitor flow's part {part} {}\n--- daemon log:\n{}",
            flow.report(),
            door.daemon_log()
        );
    };
    // The owner's n-th visitor mail (grants are mailed to the owner too), its link opened, and
    // the passcode from the n-th text message.
    let approve_and_text = |n: usize| {
        let mut visitor_mails = Vec::new();
        door.wait_for("the owner's mail about the visitor", || {
            visitor_mails = smtp.received().into_iter().filter(|mail| mail["subject"] == VISITOR_SUBJECT).collect();
            visitor_mails.len() >= n
        });
        let text = visitor_mails[n - 1]["text"].as_str().unwrap().to_owned();
        let start = text.find(&format!("{base_url}/visits/")).unwrap_or_else(|| panic!("no approve link in {text}"));
        let link = text[start..].split_whitespace().next().unwrap().to_owned();
        part("approve", &[("APPROVE_LINK", link)]);
        let request = sms.wait_for(n, Duration::from_secs(20)).remove(n - 1);
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["to"], VISITOR_MOBILE);
        let text = body["text"].as_str().unwrap();
        text.split("is ").nth(1).unwrap().chars().take(6).collect::<String>()
    };

    part("ring", &[]);
    let code = approve_and_text(1);
    part("enter", &[("PASSCODE", code)]);
    part("ring", &[]);
    let second = approve_and_text(2);
    part("lock", &[("PASSCODE", second)]);
    part("review", &[]);

    let reasons: Vec<String> = door.log_rows().iter().map(|row| row["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(reasons.iter().filter(|reason| *reason == "passcode_ok").count(), 1, "{reasons:?}");
    assert!(
        reasons.contains(&"pass_used".to_owned()) && reasons.contains(&"passcode_locked".to_owned()),
        "{reasons:?}"
    );
    let relay_opened = door.output_switches().iter().filter(|(output, on)| output == "relay" && *on).count();
    assert_eq!(relay_opened, 1, "the relay opened once: {:?}", door.output_switches());
}

/// Writes `picture`, centred on a grey [`CAMERA_SIZE`] canvas, as a video for Chromium's fake
/// camera (`--use-file-for-fake-video-capture`), which plays it in a loop. The format is
/// YUV4MPEG2: a header line (size, frame rate, progressive, square pixels; 4:2:0 by default),
/// then per frame `FRAME` and the I420 planes: Y at full size, then U and V at half width and
/// height, each value BT.601 in the studio range. Made here with the `image` crate rather than
/// with ffmpeg, which the test machines need not have.
fn write_y4m(picture: &Path, out: &Path) {
    use image::imageops::{self, FilterType};
    let (width, height) = CAMERA_SIZE;
    let photo = image::open(picture).unwrap().to_rgb8();
    let scale = (width as f32 / photo.width() as f32).min(height as f32 / photo.height() as f32);
    let (w, h) = ((photo.width() as f32 * scale) as u32, (photo.height() as f32 * scale) as u32);
    let photo = imageops::resize(&photo, w, h, FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    imageops::overlay(&mut canvas, &photo, i64::from((width - w) / 2), i64::from((height - h) / 2));
    let rgb = |x: u32, y: u32| canvas.get_pixel(x, y).0.map(f32::from);
    let luma: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| {
            let [r, g, b] = rgb(x, y);
            (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8
        })
        .collect();
    // Each chroma value is the mean of a 2×2 block.
    let chroma = |weights: [f32; 3]| -> Vec<u8> {
        (0..height / 2)
            .flat_map(|y| (0..width / 2).map(move |x| (x, y)))
            .map(|(x, y)| {
                let block = [(0, 0), (1, 0), (0, 1), (1, 1)].map(|(dx, dy)| rgb(2 * x + dx, 2 * y + dy));
                let [r, g, b] = [0, 1, 2].map(|c| block.iter().map(|p| p[c]).sum::<f32>() / 4.0);
                (128.0 + weights[0] * r + weights[1] * g + weights[2] * b).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    };
    let (u, v) = (chroma([-0.148, -0.291, 0.439]), chroma([0.439, -0.368, -0.071]));
    let mut video = format!("YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1\n").into_bytes();
    for _ in 0..2 {
        video.extend(b"FRAME\n");
        for plane in [&luma, &u, &v] {
            video.extend_from_slice(plane);
        }
    }
    std::fs::write(out, video).unwrap();
}

/// Fails, never skips, when the browser or its driver is missing: a skipped test reads as a pass.
fn require_browser_tools(root: &Path) {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("Chromium at {CHROMIUM} (`sudo apt-get install chromium`)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("Node.js (`sudo apt-get install nodejs npm`)".to_owned());
    }
    if !Path::new(CERTUTIL).is_file() {
        missing.push(format!("certutil at {CERTUTIL} (`sudo apt-get install libnss3-tools`)"));
    }
    if !root.join("tests/e2e/node_modules/playwright-core").is_dir() {
        missing.push("playwright-core in tests/e2e/node_modules (`npm ci --prefix tests/e2e`)".to_owned());
    }
    assert!(
        missing.is_empty(),
        "the browser test needs {}; `bash tests/run.sh` installs all of them",
        missing.join(" and ")
    );
}

/// Adds the admin account the browser signs in with, through the CLI as an installer would;
/// returns its password, which differs on every run.
fn add_admin(door: &TestDoor) -> String {
    let password = facereko::accounts::random_token(12);
    let file = door.path("e2e-password");
    // No trailing newline, so the password is the same whether or not the CLI trims the file.
    std::fs::write(&file, &password).unwrap();
    door.ok(&["user", "add", USER, "--role", "admin", "--password-file", file.to_str().unwrap()]);
    password
}

/// Waits until the web app answers a plain-HTTP `GET /login` (the daemon's health check can
/// answer before the web server listens), and requires the answer's status to be `expected`:
/// 200 for the sign-in page, 307 for the redirect to https.
fn wait_for_web_app(door: &TestDoor, port: u16, expected: &str) {
    let mut status = None;
    door.wait_for("the web app to answer GET /login", || {
        status = http_status(port, "/login");
        status.is_some()
    });
    let status = status.unwrap();
    assert_eq!(status.split(' ').nth(1), Some(expected), "GET /login answered `{status}`");
}

/// A home folder whose NSS certificate store (`.pki/nssdb`, where Chromium on Linux looks)
/// trusts the certificate authority in `ca` for websites, as `certutil` sets it up for an owner.
fn home_trusting(door: &TestDoor, ca: &Path) -> PathBuf {
    let home = door.path("browser-home");
    let store = home.join(".pki/nssdb");
    std::fs::create_dir_all(&store).unwrap();
    let database = format!("sql:{}", store.display());
    let certutil = |args: &[&str]| {
        let output = Command::new(CERTUTIL).args(args).output().unwrap();
        assert!(output.status.success(), "certutil {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    certutil(&["-N", "-d", &database, "--empty-password"]);
    certutil(&["-A", "-d", &database, "-t", "C,,", "-n", "FaceReko door", "-i", ca.to_str().unwrap()]);
    home
}

/// The status line of a plain `GET path` on the loopback port, or `None` while nothing answers.
fn http_status(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("HTTP/").then(|| line.trim_end().to_owned())
}

/// `dir`, emptied: screenshots of an earlier run must not pass for this one's.
fn fresh_dir(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir.to_owned()
}

struct FlowRun {
    /// `None` when the run hung and was killed.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl FlowRun {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// How the run ended, with everything it printed.
    fn report(&self) -> String {
        let ended = match self.status {
            Some(status) => format!("ended with {status}"),
            None => format!("hung for over {FLOW_TIMEOUT:?} and was killed"),
        };
        format!("{ended}\n--- its stdout:\n{}\n--- its stderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs the browser flow `script` (in tests/e2e) with `env`. Its output goes to files in the
/// door's folder, not pipes, so a chatty run cannot block on a full pipe while we wait for it.
fn run_flow(root: &Path, door: &TestDoor, script: &str, env: &[(&str, String)]) -> FlowRun {
    let (out, err) = (door.path("flow.stdout"), door.path("flow.stderr"));
    let mut command = Command::new("node");
    command
        .arg(Path::new("tests/e2e").join(script))
        .current_dir(root)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let status = run_with_timeout(command, FLOW_TIMEOUT);
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    FlowRun { status, stdout: read(&out), stderr: read(&err) }
}

/// Runs `command` for at most `limit`; `None` if it had to be stopped.
fn run_with_timeout(mut command: Command, limit: Duration) -> Option<ExitStatus> {
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM first: playwright-core then closes Chromium, which a SIGKILL of node would orphan.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let grace = Instant::now();
    while child.try_wait().unwrap().is_none() && grace.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
