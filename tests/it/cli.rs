//! The command line with bad input: every case ends in a clear message, a failure exit code and
//! no panic, and changes nothing.

use std::process::Output;

use crate::common::{TestDoor, face};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails clearly: non-zero exit, `needle` in the output, and no panic.
fn assert_refused(output: &Output, needle: &str) {
    let text = format!("{}{}", stdout(output), stderr(output));
    assert!(!output.status.success(), "expected a failure, got success:\n{text}");
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    assert!(!text.contains("panicked"), "no panics:\n{text}");
}

#[test]
fn malformed_config_is_explained_by_check_and_stops_run() {
    let door = TestDoor::new(&[]);
    std::fs::write(door.path("config.toml"), "[door\nunlock_time = 3\n").unwrap();
    let check = door.run(&["config", "check"]);
    assert_refused(&check, "not valid TOML");
    assert_refused(&door.run(&["run"]), "the configuration has 1 problem");
}

#[test]
fn config_check_names_each_bad_key_and_how_to_fix_it() {
    let door = TestDoor::new(&[
        ("door.unlock_time", "\"0s\""),
        ("engine.match_threshold", "250.0"),
        ("hardware.lock", "\"servo\""),
    ]);
    let check = door.run(&["config", "check"]);
    assert_refused(&check, "door.unlock_time: 0s is out of range; use a duration from 1s to 5m");
    assert_refused(&check, "engine.match_threshold: 250 must be above 0 and at most 100");
    assert_refused(&check, "hardware.lock: \"servo\" is not compiled in; choose one of: simulated, gpio");
    assert_refused(&check, "3 problem(s) found");
}

#[test]
fn config_layers_and_unknown_keys() {
    let door = TestDoor::new(&[("door.colour", "\"blue\"")]);
    let output = door.command().args(["config", "check"]).env("FACEREKO_DOOR__ID", "back").output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).contains("warning: door.colour: unknown key"), "{}", stdout(&output));
    assert!(stdout(&output).contains("door \"back\""), "environment overrides the file: {}", stdout(&output));
    let cli = door
        .command()
        .args(["--set", "door.id=side", "config", "check"])
        .env("FACEREKO_DOOR__ID", "back")
        .output()
        .unwrap();
    assert!(stdout(&cli).contains("door \"side\""), "--set overrides the environment: {}", stdout(&cli));
}

#[test]
fn missing_data_directory_is_explained() {
    let door = TestDoor::new(&[]);
    let missing = door.path("no/such/dir");
    let set = format!("data_dir={}", missing.display());
    let output = door.run(&["--set", &set, "run"]);
    assert_refused(&output, &format!("data_dir: {} is not an existing folder; create it (mkdir -p", missing.display()));
    assert!(!missing.exists(), "nothing is created behind the user's back");
}

#[test]
fn garbage_card_uids_are_refused() {
    let door = TestDoor::new(&[]);
    door.ok(&["person", "add", "Alice"]);
    assert_refused(&door.run(&["card", "add", "hello!", "--person", "Alice"]), "has characters other than hex digits");
    assert_refused(&door.run(&["card", "add", "0102030405", "--person", "Alice"]), "4, 7 or 10 byte UIDs");
    assert_refused(&door.run(&["tap", "zz:zz"]), "has characters other than hex digits");
    assert!(door.ok(&["card", "list"]).contains("no cards yet"), "nothing was added");
}

#[test]
fn unreadable_pictures_are_reported_and_skipped() {
    let door = TestDoor::new(&[]);
    let notes = door.path("notes.txt");
    std::fs::write(&notes, "not a picture").unwrap();
    let truncated = door.path("truncated.jpg");
    let real = std::fs::read(face("lfw10/Tony_Blair/Tony_Blair_0001.jpg")).unwrap();
    std::fs::write(&truncated, &real[..200]).unwrap();
    let missing = door.path("missing.jpg");

    let output = door.run(&[
        "enroll",
        "--person",
        "Alice",
        notes.to_str().unwrap(),
        truncated.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_refused(&output, "enrolled 0 of 3 picture(s) for Alice");
    assert_refused(&output, "notes.txt is not a JPEG or PNG image");
    assert_refused(&output, "cannot be decoded as an image");
    assert_refused(&output, "missing.jpg: No such file");

    let good = face("lfw10/Tony_Blair/Tony_Blair_0002.jpg");
    let mixed = door.run(&["enroll", "--person", "Alice", good.to_str().unwrap(), notes.to_str().unwrap()]);
    assert!(mixed.status.success(), "one good picture is enough: {}", stdout(&mixed));
    assert!(stdout(&mixed).contains("enrolled 1 of 2"), "{}", stdout(&mixed));
    let people = door.ok(&["person", "list", "--json"]);
    assert!(people.contains("\"faces\":1"), "only the good picture was enrolled: {people}");
}

#[test]
fn people_and_cards_round_trip() {
    let door = TestDoor::new(&[]);
    door.ok(&["person", "add", "Alice"]);
    assert_refused(&door.run(&["person", "add", "alice"]), "already exists");
    assert_refused(&door.run(&["person", "add", "   "]), "a person needs a name");
    door.ok(&["card", "add", "04:a1:b2:c3", "--person", "Alice"]);
    door.ok(&["person", "add", "Bob"]);
    assert_refused(&door.run(&["card", "add", "04A1B2C3", "--person", "Bob"]), "already belongs to Alice");
    assert!(door.ok(&["card", "list"]).contains("04A1B2C3               Alice"));
    door.ok(&["person", "remove", "Alice"]);
    assert!(door.ok(&["card", "list"]).contains("no cards yet"), "removing a person removes their cards");
    assert_refused(&door.run(&["card", "remove", "04A1B2C3"]), "card 04A1B2C3 is not enrolled");
    assert_refused(&door.run(&["person", "remove", "Zed"]), "no person named \"Zed\"");
}

#[test]
fn commands_without_a_daemon_say_so() {
    let door = TestDoor::new(&[]);
    let health = door.run(&["healthcheck"]);
    assert_refused(&health, "unhealthy: facereko is not running");
    assert_refused(&door.run(&["tap", "04A1B2C3"]), "facereko is not running");
    assert_refused(&door.run(&["ring"]), "facereko is not running");
    // Arming needs no daemon: it is stored for the next start.
    assert!(door.ok(&["disarm"]).contains("it will start disarmed"));
}

#[test]
fn migrate_is_idempotent_and_example_is_printed() {
    let door = TestDoor::new(&[]);
    assert!(door.ok(&["db", "migrate"]).contains("applied migration(s) 1"));
    assert!(door.ok(&["db", "migrate"]).contains("up to date"));
    let example = door.ok(&["config", "example"]);
    assert!(example.contains("[door]") && example.contains("unlock_time = \"10s\""));
    let backends = door.ok(&["hw", "list"]);
    assert!(backends.contains("camera   simulated, rpicam, v4l2"), "{backends}");
    assert!(backends.contains("bell     simulated, none, gpio"), "{backends}");
}

#[test]
fn every_command_has_help() {
    let door = TestDoor::new(&[]);
    for command in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["enroll", "--help"],
        vec!["card", "add", "--help"],
        vec!["person", "remove", "--help"],
        vec!["log", "--help"],
        vec!["config", "check", "--help"],
        vec!["user", "add", "--help"],
        vec!["demo", "--help"],
    ] {
        let text = door.ok(&command);
        assert!(text.contains("Usage: facereko"), "{command:?}: {text}");
    }
}

#[test]
fn gpio_outputs_off_a_pi_are_explained() {
    let on_a_pi = std::fs::read_to_string("/proc/device-tree/model").is_ok_and(|m| m.contains("Raspberry Pi"));
    assert!(!on_a_pi, "this test drives the GPIO backend where there is none; run it off the Pi");
    let door = TestDoor::new(&[("hardware.lock", "\"gpio\"")]);
    assert_refused(&door.run(&["run"]), "lock backend \"gpio\" is not available: this is not a Raspberry Pi");
    let reader = TestDoor::new(&[("hardware.reader", "\"mfrc522\"")]);
    assert_refused(&reader.run(&["hw", "read-card"]), "this is not a Raspberry Pi");
    // The bell button's pin is claimed with the outputs'.
    let bell =
        TestDoor::new(&[("hardware.lock", "\"gpio\""), ("hardware.bell", "\"gpio\""), ("hardware.gpio.bell", "16")]);
    assert_refused(&bell.run(&["config", "check"]), "hardware.gpio.bell: BCM 16 is already hardware.gpio.relay");
    let clash = TestDoor::new(&[("hardware.leds", "\"gpio\""), ("hardware.gpio.green_led", "21")]);
    assert_refused(
        &clash.run(&["config", "check"]),
        "hardware.gpio.green_led: BCM 21 is already hardware.gpio.red_led",
    );
}

#[test]
fn a_closed_output_pipe_ends_a_command_quietly() {
    let door = TestDoor::new(&[]);
    for _ in 0..5 {
        let mut child = door
            .command()
            .args(["config", "example"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before reading anything, as `| head -0` would.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }
}

#[test]
fn mysql_settings_are_checked_and_the_password_never_shown() {
    let no_database = TestDoor::new(&[("database.url", "\"mysql://door@db.local\"")]);
    assert_refused(&no_database.run(&["config", "check"]), "add it, e.g. mysql://door@db.local/facereko");

    let door = TestDoor::new(&[("database.url", "\"mysql://door:hunter2@db.local/facereko\"")]);
    std::fs::write(door.path("db-password"), "s3cret-from-file\n").unwrap();
    let check = door
        .command()
        .args(["config", "check"])
        .env("FACEREKO_DATABASE__PASSWORD_FILE", door.path("db-password"))
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&check), stderr(&check));
    assert!(check.status.success(), "{text}");
    assert!(text.contains("mysql://door:***@db.local/facereko"), "{text}");
    assert!(text.contains("database password: set (not shown)"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("s3cret-from-file"), "{text}");
}

#[test]
fn web_accounts_are_added_listed_changed_and_removed() {
    let door = TestDoor::new(&[]);
    let password_file = door.path("password");
    std::fs::write(&password_file, "correct horse battery staple\n").unwrap();
    let file = password_file.to_str().unwrap();
    assert!(door.ok(&["user", "add", "ada", "--password-file", file]).contains("added admin ada"));
    door.ok(&["user", "add", "victor", "--role", "viewer", "--password-file", file]);
    let listed: serde_json::Value = serde_json::from_str(&door.ok(&["user", "list", "--json"])).unwrap();
    let accounts: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(accounts, [("ada", "admin"), ("victor", "viewer")]);
    assert!(!listed.to_string().contains("argon2"), "no hashes in the listing");

    assert_refused(&door.run(&["user", "add", "ADA", "--password-file", file]), "ADA");
    assert_refused(&door.run(&["user", "add", "eve", "--role", "root", "--password-file", file]), "not a role");
    assert_refused(&door.run(&["user", "add", "a b", "--password-file", file]), "user name needs");
    std::fs::write(&password_file, "short\n").unwrap();
    assert_refused(&door.run(&["user", "add", "eve", "--password-file", file]), "shorter than 10 characters");

    // Piped in, as a script would.
    let mut child = door
        .command()
        .args(["user", "passwd", "ada"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"another long passphrase\n").unwrap();
    let changed = child.wait_with_output().unwrap();
    assert!(changed.status.success(), "{}", stderr(&changed));

    assert!(door.ok(&["config", "check"]).contains("web app: off"));
    assert!(
        door.ok(&["--set", "web.listen=127.0.0.1:8080", "config", "check"]).contains("web app: http://127.0.0.1:8080/")
    );
    assert_refused(
        &door.run(&["--set", "web.listen=everywhere", "config", "check"]),
        "web.listen: \"everywhere\" is not an address",
    );

    door.ok(&["user", "remove", "victor"]);
    assert_refused(&door.run(&["user", "remove", "victor"]), "victor");
    assert_eq!(door.ok(&["user", "list"]).lines().count(), 1);
}

#[test]
fn schedules_and_time_limits_are_set_and_shown_and_bad_ones_explained() {
    let door = TestDoor::new(&[("schedule.time_zone", "\"Europe/Berlin\"")]);
    door.ok(&["person", "add", "Kim"]);
    door.ok(&["card", "add", "04A1B2C3", "--person", "Kim"]);
    let saved = door.ok(&["schedule", "set", "Cleaners", "--window", "tue 09:00-12:00", "--window", "fri 22:00-02:00"]);
    assert!(saved.contains("tue 09:00-12:00; fri 22:00-02:00"), "{saved}");
    door.ok(&["schedule", "add-holiday", "Christmas", "--from", "2026-12-24", "--to", "2026-12-26", "--yearly"]);
    let set = door.ok(&["person", "set", "Kim", "--schedule", "cleaners", "--valid-until", "2030-06-15 00:00"]);
    assert!(set.contains("until 2030-06-15 00:00:00, schedule Cleaners"), "{set}");
    door.ok(&["card", "set", "04A1B2C3", "--valid-from", "2026-01-01"]);

    let shown = door.ok(&["schedule", "show", "Kim"]);
    assert!(shown.contains("Kim (Europe/Berlin): until 2030-06-15 00:00:00, schedule Cleaners"), "{shown}");
    assert!(shown.contains("card 04A1B2C3: from 2026-01-01 00:00:00; next in: 20"), "{shown}");
    let list = door.ok(&["schedule", "list"]);
    assert!(list.contains("Cleaners (closed on holidays): tue 09:00-12:00; fri 22:00-02:00"), "{list}");
    assert!(list.contains("Christmas") && list.contains("2026-12-24 to 2026-12-26, every year"), "{list}");

    assert_refused(&door.run(&["schedule", "set", "Broken", "--window", "someday 09:00-10:00"]), "is not a weekday");
    assert_refused(&door.run(&["person", "set", "Kim", "--valid-until", "soon"]), "is not a date and time");
    assert_refused(&door.run(&["person", "set", "Kim", "--schedule", "Night shift"]), "no schedule named");
    assert_refused(&door.run(&["schedule", "remove", "Cleaners"]), "is followed by 1");
    let lifted = door.ok(&["person", "set", "Kim", "--schedule", "none", "--valid-until", "none"]);
    assert!(lifted.contains("Kim: no limits"), "{lifted}");
    door.ok(&["schedule", "remove", "Cleaners"]);
}

#[test]
fn groups_are_made_filled_and_kept_to_doors_and_bad_input_is_explained() {
    let door = TestDoor::new(&[]);
    door.ok(&["person", "add", "Kim"]);
    door.ok(&["person", "add", "Lee"]);
    door.ok(&["schedule", "set", "Evenings", "--window", "daily 18:00-22:00"]);
    assert!(door.ok(&["group", "add", "Cleaners"]).contains("keeps nobody to doors yet"));
    assert_refused(&door.run(&["group", "add", "CLEANERS"]), "a group named \"CLEANERS\" already exists");
    assert_refused(&door.run(&["group", "add", " "]), "1 to 100 characters");
    assert_refused(&door.run(&["group", "members", "Staff", "--add", "Kim"]), "no group named \"Staff\"");
    assert_refused(&door.run(&["group", "members", "Cleaners", "--add", "Zed"]), "no person named \"Zed\"");
    let members = door.ok(&["group", "members", "Cleaners", "--add", "Kim", "--add", "lee"]);
    assert_eq!(members.trim(), "Cleaners: Kim, Lee");

    // The door of this installation registers when its daemon starts; until then it is unknown.
    assert_refused(&door.run(&["group", "doors", "Cleaners", "--door", "front"]), "no door \"front\" has registered");
    let ahead = door.run(&["group", "doors", "Cleaners", "--door", "front@Evenings", "--unregistered"]);
    assert!(ahead.status.success(), "{}", stderr(&ahead));
    assert_eq!(stdout(&ahead).trim(), "Cleaners: only front (schedule Evenings)");
    assert_refused(
        &door.run(&["group", "doors", "Cleaners", "--door", "front@Nights"]),
        "no schedule named \"Nights\"",
    );
    let kim = door.ok(&["person", "doors", "Kim"]);
    assert_eq!(
        kim.trim(),
        "Kim: only front (schedule Evenings) (their own: not kept themselves; through the group(s) Cleaners)"
    );
    assert_refused(&door.run(&["schedule", "remove", "Evenings"]), "is followed by 1");

    let listed = door.ok(&["group", "list"]);
    assert_eq!(listed.trim(), "Cleaners: Kim, Lee; doors: only front (schedule Evenings)");
    assert_refused(
        &door.run(&["group", "members", "Cleaners", "--remove", "Kim", "--remove", "Kim"]),
        "Kim is not in the group Cleaners",
    );
    door.ok(&["group", "doors", "Cleaners", "--every"]);
    assert_eq!(door.ok(&["person", "doors", "Lee"]).trim(), "Lee: every door");
    door.ok(&["group", "rename", "Cleaners", "Night cleaners"]);
    assert!(door.ok(&["group", "remove", "night cleaners"]).contains("its 1 member(s) stay"));
    assert!(door.ok(&["group", "list"]).contains("no groups yet"));
}
