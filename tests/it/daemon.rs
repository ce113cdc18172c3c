//! The real `facereko run` on simulated hardware and SQLite: taps in, outputs and log rows out.

use serde_json::Value;

use crate::common::{TestDoor, face, free_port};

const ALICE_CARD: &str = "04A1B2C3";
/// A 7-byte UID, as on NTAG and DESFire cards.
const BOB_CARD: &str = "04112233445566";
const CAROL_CARD: &str = "A1B2C3D4";
const STRANGER_CARD: &str = "DEADBEEF";

fn blank_picture(door: &TestDoor) -> std::path::PathBuf {
    let path = door.path("blank.png");
    image::RgbImage::from_pixel(160, 120, image::Rgb([128, 128, 128])).save(&path).unwrap();
    path
}

fn photo_exists(door: &TestDoor, row: &Value) -> bool {
    row["photo"].as_str().is_some_and(|name| door.path("photos").join(name).is_file())
}

/// Switches of one output, in order.
fn switches_of(door: &TestDoor, output: &str) -> Vec<bool> {
    door.output_switches().into_iter().filter(|(o, _)| o == output).map(|(_, on)| on).collect()
}

#[test]
fn taps_are_decided_actuated_and_logged_and_a_restart_keeps_state() {
    let mut door = TestDoor::new(&[]);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let bob = face("lfw10/Colin_Powell/Colin_Powell_0001.jpg");
    let carol = face("lfw10/Hugo_Chavez/Hugo_Chavez_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.ok(&["enroll", "--person", "Bob", "--card", BOB_CARD, bob.to_str().unwrap()]);
    door.ok(&["enroll", "--person", "Carol", "--card", CAROL_CARD, carol.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    // Bob's card in front of Alice's face: the card and the face must be the same person.
    door.show_for_card(BOB_CARD, &alice);
    door.show_for_card(CAROL_CARD, &blank_picture(&door));
    door.start();
    assert!(door.is_on("red_led") && !door.is_on("relay"), "starts locked with red on");

    let granted = door.tap_and_wait(ALICE_CARD);
    assert_eq!(granted["decision"], "granted");
    assert_eq!(granted["reason"], "card_and_face");
    assert_eq!(granted["person_name"], "Alice");
    assert_eq!(granted["card_uid"], ALICE_CARD);
    assert_eq!(granted["engine"], "simulated");
    assert!(granted["similarity"].as_f64().unwrap() >= 90.0);
    assert!(photo_exists(&door, &granted), "the attempt's photo is saved: {granted}");
    let timings = &granted["timings"];
    for stage in ["read_ms", "capture_ms", "match_ms", "actuate_ms", "total_ms"] {
        assert!(timings[stage].is_u64(), "stage {stage} is timed: {timings}");
    }
    door.wait_for("the relay to open and close again", || switches_of(&door, "relay") == [false, true, false]);
    assert_eq!(switches_of(&door, "green_led"), [false, true, false]);
    door.wait_for("the long beep to end", || switches_of(&door, "buzzer") == [false, true, false]);
    assert!(door.is_on("red_led"), "red is back on after relocking");

    let wrong_person = door.tap_and_wait(BOB_CARD);
    assert_eq!(
        (wrong_person["decision"].as_str(), wrong_person["reason"].as_str()),
        (Some("denied"), Some("wrong_person"))
    );
    assert_eq!(wrong_person["person_name"], "Bob");
    assert!(photo_exists(&door, &wrong_person));
    door.wait_for("three short beeps", || switches_of(&door, "buzzer").len() == 9);
    assert_eq!(switches_of(&door, "buzzer")[3..], [true, false, true, false, true, false]);

    let unknown = door.tap_and_wait(STRANGER_CARD);
    assert_eq!(unknown["reason"], "unknown_card");
    assert!(
        unknown["photo"].is_null() && unknown["timings"]["capture_ms"].is_null(),
        "no camera for unknown cards: {unknown}"
    );

    let no_face = door.tap_and_wait(CAROL_CARD);
    assert_eq!(no_face["reason"], "no_face");
    assert!(photo_exists(&door, &no_face), "the frame without a face is kept as evidence");

    door.ok(&["disarm"]);
    std::thread::sleep(std::time::Duration::from_millis(350)); // past the debounce window for Alice's card
    let disarmed = door.tap_and_wait(ALICE_CARD);
    assert_eq!((disarmed["decision"].as_str(), disarmed["reason"].as_str()), (Some("disarmed"), Some("disarmed")));
    assert_eq!(switches_of(&door, "relay"), [false, true, false], "nothing opens while disarmed");

    door.stop();
    assert!(!door.is_on("relay") && door.is_on("red_led"), "stopped locked, red on");
    assert!(door.daemon_log().contains("access attempt"), "attempts are logged with their timings");

    door.start();
    let status: Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["armed"], false, "the disarmed state survives a restart");
    assert_eq!(status["outbox_backlog"], 0, "with no MQTT broker configured nothing waits for delivery");
    assert_eq!(door.log_rows().len(), 5, "the log survives a restart");
    door.ok(&["arm"]);
    assert_eq!(door.tap_and_wait(ALICE_CARD)["decision"], "granted");
    let rang = door.run(&["ring"]);
    let said = String::from_utf8_lossy(&rang.stderr);
    assert!(!rang.status.success() && said.contains("rings need visitors.enabled = true"), "{said}");
    door.stop();
}

#[test]
fn repeated_taps_of_one_card_are_debounced() {
    let mut door = TestDoor::new(&[("door.debounce", "\"30s\"")]);
    door.start();
    assert_eq!(door.tap_and_wait(STRANGER_CARD)["reason"], "unknown_card");
    door.ok(&["tap", STRANGER_CARD]);
    door.ok(&["tap", STRANGER_CARD]);
    // A different card still gets through, and is logged after the first one only.
    let other = door.tap_and_wait(ALICE_CARD);
    assert_eq!(other["card_uid"], ALICE_CARD);
    let cards: Vec<String> = door.log_rows().iter().map(|r| r["card_uid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(cards, [ALICE_CARD, STRANGER_CARD]);
    door.stop();
}

#[test]
fn a_second_daemon_on_the_same_door_is_refused() {
    let mut door = TestDoor::new(&[]);
    door.start();
    let switches = door.output_switches();
    let second = door.run(&["run"]);
    assert!(!second.status.success());
    assert_eq!(door.output_switches(), switches, "the running daemon's outputs are left to it");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another facereko is already running"), "{stderr}");
    // Even with a control socket of its own, the data directory is taken.
    let other_socket = format!("control.socket={}", door.path("other.sock").display());
    let third = door.run(&["--set", &other_socket, "run"]);
    assert!(!third.status.success());
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(stderr.contains("another facereko is already running on"), "{stderr}");
    door.stop();
}

#[test]
fn a_tap_while_unlocked_is_an_attempt_and_shutdown_mid_unlock_locks() {
    let mut door = TestDoor::new(&[("door.unlock_time", "\"5m\"")]);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door.start();
    assert_eq!(door.tap_and_wait(ALICE_CARD)["decision"], "granted");

    let stranger = door.tap_and_wait(STRANGER_CARD);
    assert_eq!(stranger["reason"], "unknown_card", "taps while open are still decided and logged");
    assert_eq!(switches_of(&door, "relay"), [false, true], "a denial does not shut the open door");

    door.stop();
    assert_eq!(switches_of(&door, "relay"), [false, true, false], "stopping mid-unlock locks the door");
    assert!(door.is_on("red_led") && !door.is_on("green_led"));
}

#[test]
fn enrolment_changes_while_running_apply_at_the_next_tap() {
    let mut door = TestDoor::new(&[("door.debounce", "\"0s\"")]);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.show_for_card(ALICE_CARD, &alice);
    door.start();
    assert_eq!(door.tap_and_wait(ALICE_CARD)["reason"], "unknown_card");

    // Enrolled by another process while the daemon runs: its cached faces must follow.
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    assert_eq!(door.tap_and_wait(ALICE_CARD)["reason"], "card_and_face");
    door.wait_for("the door to relock", || !door.is_on("relay"));

    door.ok(&["person", "remove", "Alice"]);
    assert_eq!(door.tap_and_wait(ALICE_CARD)["reason"], "unknown_card", "a removed person's card no longer opens");
    let rows = door.log_rows();
    assert_eq!(rows[1]["person_name"], "Alice", "history keeps the name of a removed person");
    door.stop();
}

#[test]
fn a_person_kept_to_other_doors_is_denied_here_before_the_camera_from_the_next_tap() {
    let mut door = TestDoor::new(&[("door.debounce", "\"0s\""), ("door.capture_when_closed", "true")]);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    let shown = door.ok(&["person", "doors", "Alice"]);
    assert_eq!(shown.trim(), "Alice: every door", "one-door installs are unchanged");
    door.start();

    // Changed by another process while the daemon runs, as another door's web app would.
    let kept = door.run(&["person", "doors", "Alice", "--door", "garage"]);
    assert_eq!(String::from_utf8_lossy(&kept.stdout).trim(), "Alice: only garage");
    let note = String::from_utf8_lossy(&kept.stderr);
    assert!(note.contains("no door \"garage\" has registered yet"), "a typo shows: {note}");
    let refused = door.tap_and_wait(ALICE_CARD);
    assert_eq!((refused["decision"].as_str(), refused["reason"].as_str()), (Some("denied"), Some("not_allowed_here")));
    assert_eq!(refused["person_name"], "Alice");
    assert!(
        refused["photo"].is_null() && refused["timings"]["capture_ms"].is_null(),
        "no camera, proof photos or not: {refused}"
    );

    door.ok(&["person", "doors", "Alice", "--door", "garage", "--door", "front"]);
    assert_eq!(door.tap_and_wait(ALICE_CARD)["reason"], "card_and_face");
    door.wait_for("the door to relock", || !door.is_on("relay"));
    door.ok(&["person", "doors", "Alice", "--no-door"]);
    assert_eq!(door.tap_and_wait(ALICE_CARD)["reason"], "not_allowed_here", "kept to no door: none");
    assert_eq!(door.ok(&["person", "doors", "Alice", "--every"]).trim(), "Alice: every door");
    assert_eq!(door.tap_and_wait(ALICE_CARD)["reason"], "card_and_face");
    door.stop();
}

#[test]
fn hangup_interrupt_and_quit_lock_the_open_door_too() {
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    for signal in ["HUP", "INT", "QUIT"] {
        let mut door = TestDoor::new(&[("door.unlock_time", "\"5m\"")]);
        door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
        door.show_for_card(ALICE_CARD, &alice);
        door.start();
        assert_eq!(door.tap_and_wait(ALICE_CARD)["decision"], "granted");
        door.stop_with(signal);
        assert_eq!(switches_of(&door, "relay"), [false, true, false], "SIG{signal} locks the door");
    }
}

#[test]
fn hardware_tools_drive_the_configured_backends_and_step_aside_for_the_daemon() {
    let mut door = TestDoor::new(&[]);
    let picture = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.show_for_card("default", &picture);
    let snapshot = door.path("snap.jpg");
    assert!(door.ok(&["hw", "snapshot", snapshot.to_str().unwrap()]).contains("250×250"));
    assert_eq!(std::fs::read(&snapshot).unwrap(), std::fs::read(&picture).unwrap());
    // A burst for `eval-liveness`: the frames one after the other, numbered.
    let burst = door.path("bursts/live/me-1");
    assert!(door.ok(&["hw", "snapshot", "--burst", "3", burst.to_str().unwrap()]).contains("saved 3 frames"));
    for frame in ["frame-00.jpg", "frame-01.jpg", "frame-02.jpg"] {
        assert_eq!(std::fs::read(burst.join(frame)).unwrap(), std::fs::read(&picture).unwrap(), "{frame}");
    }

    door.ok(&["hw", "test-outputs"]);
    assert_eq!(switches_of(&door, "relay"), [false, true, false], "the relay clicks once and ends locked");
    assert_eq!(switches_of(&door, "buzzer"), [false, true, false]);
    assert!(door.is_on("red_led") && !door.is_on("green_led"));

    let read = door.run(&["hw", "read-card"]);
    assert!(!read.status.success());
    assert!(String::from_utf8_lossy(&read.stderr).contains("its taps come from `facereko tap`"));

    door.start();
    let refused = door.run(&["hw", "test-outputs"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it first"));
    door.stop();
}

/// Sends `request` to the web app; returns the start of its answer and the connection, still open.
pub(crate) fn http_open(port: u16, request: &str) -> (String, std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut answer = vec![0; 4096];
    let read = stream.read(&mut answer).unwrap();
    (String::from_utf8_lossy(&answer[..read]).into_owned(), stream)
}

pub(crate) fn http(port: u16, request: &str) -> String {
    http_open(port, request).0
}

#[test]
fn the_web_app_is_served_beside_the_door_and_stops_with_it() {
    let port = free_port();
    let mut door = TestDoor::new(&[("web.listen", &format!("\"127.0.0.1:{port}\""))]);
    door.start();
    assert!(door.daemon_log().contains("setup_code="), "no account yet: the log has the setup code");
    let session = sign_in_over_http(&door, port);

    // A browser left open on the live feed does not hold the daemon up when it stops.
    let (feed, _open) = http_open(port, &format!("GET /events HTTP/1.1\r\nHost: door\r\nCookie: {session}\r\n\r\n"));
    assert!(feed.contains("text/event-stream"), "{feed}");
    let started = std::time::Instant::now();
    door.stop();
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "stopped in {:?}", started.elapsed());
    assert!(!door.is_on("relay"), "locked");
}

/// Signs `ada` in over HTTP (adding the account first); returns the session cookie.
pub(crate) fn sign_in_over_http(door: &TestDoor, port: u16) -> String {
    let login = http(port, "GET /login HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n");
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let form_cookie = cookie_value(&login, "facereko_form");
    let token = form_cookie.split_once('=').unwrap().1;
    std::fs::write(door.path("password"), "a long enough passphrase").unwrap();
    door.ok(&["user", "add", "ada", "--password-file", door.path("password").to_str().unwrap()]);
    let body = format!("csrf={token}&username=ada&password=a+long+enough+passphrase");
    let signed_in = http(
        port,
        &format!(
            "POST /login HTTP/1.1\r\nHost: door\r\nConnection: close\r\nCookie: {form_cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    cookie_value(&signed_in, "facereko_session")
}

/// `name=value` of cookie `name` set in `answer`.
fn cookie_value(answer: &str, name: &str) -> String {
    let start = answer.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} cookie in {answer}"));
    answer[start..].split(';').next().unwrap().to_owned()
}

/// Whether the daemon closed `stream`; its read timeout says how long to wait for that.
pub(crate) fn closed_by_daemon(stream: &mut impl std::io::Read) -> bool {
    match stream.read(&mut [0u8; 1]) {
        Ok(read) => read == 0,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// Connections that never send a whole request end after the header timeout, on every listener.
#[test]
fn idle_and_slow_connections_end_after_the_header_timeout() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let port = free_port();
    let mut door = TestDoor::new(&[
        ("web.listen", &format!("\"127.0.0.1:{port}\"")),
        ("web.connections.header_timeout", "\"1s\""),
        ("control.connections.header_timeout", "\"1s\""),
    ]);
    door.start();
    let wait = Some(std::time::Duration::from_secs(10));
    let idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: do").unwrap();
    let mut control = UnixStream::connect(door.path("control.sock")).unwrap();
    control.write_all(b"{\"command\":").unwrap();
    let opened = std::time::Instant::now();
    for stream in [&idle, &slow] {
        stream.set_read_timeout(wait).unwrap();
    }
    control.set_read_timeout(wait).unwrap();
    let mut streams: Vec<(&str, Box<dyn std::io::Read>)> =
        vec![("idle", Box::new(idle)), ("slow", Box::new(slow)), ("control", Box::new(control))];
    for (name, stream) in &mut streams {
        assert!(closed_by_daemon(stream), "{name} is closed");
        let after = opened.elapsed();
        assert!(after >= std::time::Duration::from_millis(900), "{name} closed too early: {after:?}");
        assert!(after < std::time::Duration::from_secs(5), "{name} closed after {after:?}");
        eprintln!("{name} connection closed after {after:?}");
    }
    door.stop();
}

/// Card-only mode is for commissioning and must not go unnoticed: `status` and `healthcheck` say
/// so, the log warns at start, and `door.card_only_until` ends it by itself.
#[test]
fn card_only_mode_shows_and_ends_by_itself() {
    let until = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
    let until = until.format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut door = TestDoor::new(&[("door.mode", "\"card\""), ("door.card_only_until", &format!("{until:?}"))]);
    door.start();
    let status: Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["mode"], "card", "{status}");
    assert!(door.ok(&["status"]).contains("CARD-ONLY"), "the plain status says it");
    assert!(door.ok(&["healthcheck"]).contains("CARD-ONLY"), "so does the health check");
    door.wait_for("the warning in the log at start", || door.daemon_log().contains("card-only mode"));
    door.wait_for("card-only to end", || {
        serde_json::from_str::<Value>(&door.ok(&["status", "--json"])).unwrap()["mode"] == "card+face"
    });
    assert!(!door.ok(&["status"]).contains("CARD-ONLY"));
    door.stop();
}
