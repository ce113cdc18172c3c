//! The fault suite: the real binary on simulated hardware, SQLite and MariaDB, under what breaks
//! doors: the daemon killed at random points, the database locked or away, the disk full (the
//! door's and MariaDB's own), the MQTT broker and the SMTP server away, a taken port, many idle
//! connections. Each scenario ends with one line in the same form,
//! `<scenario>: attempts: N, actuated grants: N, logged: N, lost: 0`, and fails on any grant the
//! relay carried out that is missing from the log, and on a relay left energised.
//! Run the suite alone with `cargo test --test it faults:: -- --nocapture`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::mariadb::MariaDb;
use crate::common::mosquitto::{Mosquitto, Subscriber};
use crate::common::smtp::{Security, SmtpServer};
use crate::common::{TestDoor, face, free_port};
use crate::daemon::{closed_by_daemon, http, sign_in_over_http};
use crate::mysql_outage::{attempt_lines, rows_on_server, spooled_lines, wait_until};

const ALICE_CARD: &str = "04A1B2C3";
const BOB_CARD: &str = "04B0B0B0";
const STRANGER_CARD: &str = "DEADBEEF";

/// Attempts in the kill test, and one kill in `KILL_EVERY` of them on average.
const ATTEMPTS: usize = 200;
const KILL_EVERY: u64 = 5;

/// The settings of a door that takes taps in quick succession.
const QUICK: &[(&str, &str)] = &[("door.debounce", "\"0s\"")];

fn quick_door() -> TestDoor {
    TestDoor::new(QUICK)
}

/// Alice is granted; Bob is denied after matching (Alice's face is shown for his card).
fn enrol_people(door: &TestDoor) {
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let bob = face("lfw10/Colin_Powell/Colin_Powell_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.ok(&["enroll", "--person", "Bob", "--card", BOB_CARD, bob.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door.show_for_card(BOB_CARD, &alice);
}

/// Every row of the access log, newest first.
fn all_rows(door: &TestDoor) -> Vec<Value> {
    door.ok(&["log", "--json", "-n", "100000"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Rows a door on MariaDB keeps in its local spool because the server was slow or away; they are
/// written to it at the next start (the daemon tries once more as it stops).
fn spooled_rows(door: &TestDoor) -> Vec<Value> {
    let path = door.path("database-cache.db");
    if !path.exists() {
        return Vec::new();
    }
    let cache = rusqlite::Connection::open(path).unwrap();
    let mut events = cache.prepare("SELECT event FROM spool ORDER BY seq").unwrap();
    let rows = events.query_map([], |row| row.get::<_, String>(0)).unwrap();
    rows.map(|event| serde_json::from_str(&event.unwrap()).unwrap()).collect()
}

fn granted_rows(door: &TestDoor) -> Vec<Value> {
    all_rows(door).into_iter().filter(|row| row["decision"] == "granted").collect()
}

/// When each switch of the relay to unlocked happened, in wall-clock milliseconds.
fn relay_openings(door: &TestDoor) -> Vec<i64> {
    std::fs::read_to_string(door.path("outputs.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|switch| switch["output"] == "relay" && switch["on"] == true)
        .map(|switch| switch["t_ms"].as_i64().unwrap())
        .collect()
}

/// When the row's verdict was reached (its tap plus its time to the verdict), in milliseconds.
fn decided_ms(row: &Value) -> i64 {
    let at = OffsetDateTime::parse(row["at"].as_str().unwrap(), &Rfc3339).unwrap();
    let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let timings = &row["timings"];
    at_ms + timings["total_ms"].as_i64().unwrap() - timings["actuate_ms"].as_i64().unwrap()
}

/// The relay openings that no granted row accounts for. Each opening is matched to its own grant:
/// the unused one decided closest before it. The relay moves once the row is synced to the
/// journal, within the row's `actuate_ms` (a busy disk can make that long); a row logged from the
/// journal after a kill has no `actuate_ms`, and gets a second. Openings after restarts can be only
/// tens of milliseconds apart.
fn unlogged_openings(openings: &[i64], grants: &[Value]) -> Vec<i64> {
    let mut decided: Vec<Option<(i64, i64)>> = grants
        .iter()
        .map(|row| {
            let actuate = row["timings"]["actuate_ms"].as_i64().unwrap();
            Some((decided_ms(row), if actuate > 0 { actuate + 2 } else { 1000 }))
        })
        .collect();
    openings
        .iter()
        .copied()
        .filter(|&opened| {
            let closest = decided
                .iter_mut()
                .filter(|d| d.is_some_and(|(at, within)| (-2..=within).contains(&(opened - at))))
                .min_by_key(|d| d.map(|(at, _)| (opened - at).abs()));
            closest.map(Option::take).is_none()
        })
        .collect()
}

/// Ends a scenario on a stopped door: prints its summary line and fails on a relay left energised
/// or a relay opening without its granted row (rows still in the local spool count: they are
/// written to the server at the next start). Returns the rows, newest first, spooled ones last.
fn report(scenario: &str, door: &TestDoor, attempts: usize) -> Vec<Value> {
    assert!(!door.is_on("relay"), "{scenario}: the relay was left energised");
    let spooled = spooled_rows(door);
    let rows: Vec<Value> = all_rows(door).into_iter().chain(spooled.iter().cloned()).collect();
    let grants: Vec<Value> = rows.iter().filter(|row| row["decision"] == "granted").cloned().collect();
    let openings = relay_openings(door);
    let lost = unlogged_openings(&openings, &grants);
    if !spooled.is_empty() {
        println!("{scenario}: {} rows wait in the local spool for the server", spooled.len());
    }
    println!(
        "{scenario}: attempts: {attempts}, actuated grants: {}, logged: {}, lost: {}",
        openings.len(),
        openings.len() - lost.len(),
        lost.len()
    );
    if !lost.is_empty() {
        let nearby: Vec<String> = grants
            .iter()
            .filter(|row| lost.iter().any(|opened| (opened - decided_ms(row)).abs() < 5_000))
            .map(|row| {
                format!(
                    "{} decided at {} (actuate {} ms)",
                    row["event_id"],
                    decided_ms(row),
                    row["timings"]["actuate_ms"]
                )
            })
            .collect();
        let log = door.daemon_log();
        let tail: Vec<&str> = log.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "{scenario}: relay openings at {lost:?} have no granted row; grants nearby: {nearby:#?}\n\
             end of the daemon log:\n{}",
            tail.join("\n")
        );
    }
    rows
}

/// The attempts the door decided (a tap that comes while one is under way is not an attempt).
fn decided(door: &TestDoor) -> usize {
    door.daemon_log().matches("access attempt").count()
}

/// Waits until the door has decided every tap it took (no new attempt for 300 ms); returns how
/// many it decided.
fn settle(door: &TestDoor) -> usize {
    let mut attempts = decided(door);
    door.wait_for("the last attempt to be decided", || {
        std::thread::sleep(Duration::from_millis(300));
        std::mem::replace(&mut attempts, decided(door)) == attempts
    });
    attempts
}

/// xorshift64: enough randomness to scatter the kills; the seed is printed to replay a failure.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kills_at_random_points_of_many_attempts_lose_no_actuated_grant() {
    kill_at_random_points(quick_door(), "SQLite");
}

/// The same on MariaDB: the log row goes to a server, with its own transaction and connection
/// to lose when the daemon dies.
#[test]
fn kills_at_random_points_lose_no_actuated_grant_on_mariadb() {
    let server = MariaDb::throw_away();
    let database = server.database();
    let door = TestDoor::on_database_with(&database.url_without_password, Some(&database.password), QUICK);
    kill_at_random_points(door, "MariaDB");
}

fn kill_at_random_points(mut door: TestDoor, database: &str) {
    enrol_people(&door);
    let seed = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 | 1;
    println!("seed: {seed}");
    let mut random = Random(seed);
    let started = Instant::now();
    door.start();
    let mut kills = 0;
    for _ in 0..ATTEMPTS {
        // Alice while the door is shut, so that her grant moves the relay (it stays open 1 s).
        let card = match random.below(3) {
            _ if !door.is_on("relay") => ALICE_CARD,
            0 => BOB_CARD,
            _ => STRANGER_CARD,
        };
        door.ok(&["tap", card]);
        if random.below(KILL_EVERY) == 0 {
            if card == ALICE_CARD {
                // Right as the relay opens, before the row is written: the worst moment.
                let opened = Instant::now();
                while !door.is_on("relay") && opened.elapsed() < Duration::from_millis(200) {}
            } else {
                // Anywhere from the card look-up through the camera and the engine to the log
                // write (an attempt takes about 10 ms here).
                std::thread::sleep(Duration::from_millis(random.below(20)));
            }
            door.kill();
            kills += 1;
            door.start();
        } else {
            std::thread::sleep(Duration::from_millis(random.below(40)));
        }
    }
    door.stop();
    let rows = report(&format!("kill -9 at random points on {database}"), &door, ATTEMPTS);
    let interrupted = rows.iter().filter(|row| row["reason"] == "interrupted").count();
    println!("kills: {kills}, rows: {}, interrupted: {interrupted}, time: {:?}", rows.len(), started.elapsed());
    assert!(kills > 0 && !relay_openings(&door).is_empty(), "the test killed the daemon and opened the door");
    assert!(interrupted <= kills + 1, "only attempts under way at a kill or the stop are cut short");
}

#[test]
fn rows_wait_out_a_locked_database() {
    let mut door = quick_door();
    enrol_people(&door);
    door.start();
    let database = rusqlite::Connection::open(door.path("facereko.db")).unwrap();
    // Longer than the store's busy timeout (5 s): the first write fails and is tried again.
    database.execute_batch("BEGIN EXCLUSIVE").unwrap();
    door.ok(&["tap", ALICE_CARD]);
    door.wait_for("the relay to open", || door.is_on("relay"));
    door.wait_for("the write to fail", || door.daemon_log().contains("cannot write the access log; retrying"));
    assert!(granted_rows(&door).is_empty());
    database.execute_batch("COMMIT").unwrap();
    door.wait_for("the row once the database is free", || granted_rows(&door).len() == 1);
    door.stop();
    report("SQLite locked", &door, 1);
}

/// A small file system of its own for the data directory, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Needs root (CI runs as root); `None`, said in the output, when mounting is not allowed.
    fn mount(at: std::path::PathBuf, size: &str) -> Option<Self> {
        std::fs::create_dir_all(&at).unwrap();
        let options = format!("size={size}");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&at).output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self(at)),
            Ok(output) => {
                println!("SKIPPED: cannot mount a tmpfs (needs root): {}", String::from_utf8_lossy(&output.stderr));
                None
            }
            Err(e) => {
                println!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0xA5; 64 << 10];
        let mut tail = block.as_slice();
        while !tail.is_empty() {
            use std::io::Write;
            match filler.write(tail) {
                Ok(0) | Err(_) if tail.len() == 1 => break,
                Ok(0) | Err(_) => tail = &tail[..tail.len() / 2],
                Ok(_) => tail = block.as_slice(),
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_rows_until_space_returns_even_across_a_kill() {
    let mut door = quick_door();
    let Some(disk) = Tmpfs::mount(door.path("small-disk"), "16m") else { return };
    // The data directory (database, journal, photos) on the small disk.
    let mut config = std::fs::read_to_string(door.path("config.toml")).unwrap();
    config = config.replace(
        &format!("data_dir = {:?}", door.dir.path().display().to_string()),
        &format!("data_dir = {:?}", disk.0.display().to_string()),
    );
    std::fs::write(door.path("config.toml"), config).unwrap();
    enrol_people(&door);
    door.start();

    disk.fill();
    door.ok(&["tap", ALICE_CARD]);
    door.wait_for("the relay to open", || door.is_on("relay"));
    door.wait_for("the write to fail", || door.daemon_log().contains("cannot write the access log; retrying"));
    disk.free();
    door.wait_for("the row once there is space", || granted_rows(&door).len() == 1);
    door.wait_for("the relay to close", || !door.is_on("relay"));

    disk.fill();
    let failures = door.daemon_log().matches("cannot write the access log").count();
    door.ok(&["tap", ALICE_CARD]);
    door.wait_for("the relay to open again", || relay_openings(&door).len() == 2);
    door.wait_for("the write to fail", || door.daemon_log().matches("cannot write the access log").count() > failures);
    door.kill();
    disk.free();
    door.start();
    door.wait_for("the row the killed run could not write", || granted_rows(&door).len() == 2);
    door.stop();
    report("the door's disk full", &door, 2);
}

/// Strangers' taps after each grant in the MariaDB disk-full test: enough rows to outgrow the space
/// MariaDB had set aside.
const STRANGERS_PER_ROUND: usize = 150;

/// MariaDB's own disk full: its files on a small disk that fills up while the door takes taps.
/// The server refuses the rows ("The table is full") or stalls; the door keeps deciding, keeps
/// the rows in its journal or local spool, and writes every one once there is space again.
#[test]
fn a_full_disk_under_mariadb_delays_rows_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(dir.path().join("small-disk"), "160m") else { return };
    let server = MariaDb::throw_away_in(&disk.0);
    let database = server.database();
    let mut door = TestDoor::on_database_with(&database.url_without_password, Some(&database.password), QUICK);
    enrol_people(&door);
    door.start();

    disk.fill();
    // MariaDB preallocates its files: the rows fill the free pages of the table's file first, and
    // only then does the server need space the disk no longer has.
    for round in 0..3 {
        // A tap that comes while an attempt is under way is not one: Alice's waits for quiet.
        settle(&door);
        door.ok(&["tap", ALICE_CARD]);
        door.wait_for("the relay to open", || relay_openings(&door).len() == round + 1);
        door.wait_for("the relay to close", || !door.is_on("relay"));
        for _ in 0..STRANGERS_PER_ROUND {
            door.ok(&["tap", STRANGER_CARD]);
        }
    }
    let attempts = settle(&door);
    let refused = door.daemon_log().matches("cannot write the access log").count();
    disk.free();
    door.wait_for("every row once there is space", || all_rows(&door).len() == attempts);
    door.stop();
    println!("MariaDB's disk full: writes refused {refused} times until there was space");
    report("MariaDB's disk full", &door, attempts);
}

#[test]
fn the_door_keeps_deciding_while_mariadb_is_away_and_no_attempt_is_lost() {
    let mut server = MariaDb::throw_away();
    eprintln!("MariaDB answered {:?} after start", server.started_in);
    let database = server.database();
    let mut door = TestDoor::on_database(&database.url_without_password, Some(&database.password));
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door.start();
    assert_eq!(door.tap_and_wait(ALICE_CARD)["decision"], "granted", "the door works on MariaDB");
    // Locked again, so that the next tap of the card is past the debounce window.
    wait_until("the door to lock again", || !door.is_on("relay"), || door.daemon_log());

    server.kill();
    // Taps while the server is away: Alice three times (each after the door relocked), a stranger once.
    for (tapped, card) in [ALICE_CARD, STRANGER_CARD, ALICE_CARD, ALICE_CARD].into_iter().enumerate() {
        door.ok(&["tap", card]);
        let log = || door.daemon_log();
        wait_until("the attempt to be kept in the spool", || spooled_lines(&door) == tapped + 1, log);
        wait_until("the door to lock again", || !door.is_on("relay"), log);
    }
    let opened = door.output_switches().iter().filter(|(output, on)| output == "relay" && *on).count();
    assert_eq!(opened, 1 + 3, "Alice's card and face opened the door during the outage too");
    assert!(door.daemon_log().contains("the database went away"), "the outage is logged");
    assert!(!door.run(&["person", "add", "Bob"]).status.success(), "changes need the database");

    server.resume();
    eprintln!("MariaDB answered {:?} after its restart", server.started_in);
    let rows = || rows_on_server(&server, &database);
    wait_until("the spool to reach MariaDB", || rows().len() == 5, || format!("{:?}\n{}", rows(), door.daemon_log()));
    let rows = rows();
    assert!(rows.iter().all(|(_, _, _, count)| *count == 1), "every attempt exactly once: {rows:?}");
    let verdicts: Vec<(&str, &str)> = rows.iter().map(|(_, d, r, _)| (d.as_str(), r.as_str())).collect();
    assert_eq!(
        verdicts,
        [
            ("granted", "card_and_face"),
            ("granted", "card_and_face"),
            ("denied", "unknown_card"),
            ("granted", "card_and_face"),
            ("granted", "card_and_face"),
        ],
        "decided from the local copy, written in the order they happened"
    );
    assert!(door.daemon_log().contains("the database answers again"), "{}", door.daemon_log());
    assert_eq!(door.log_rows().len(), 5, "`facereko log` reads them back");
    door.stop();

    // Started while the server is away, the daemon runs on the local copy left by the last run.
    server.kill();
    door.start();
    assert!(door.daemon_log().contains("cannot be reached at start-up"), "{}", door.daemon_log());
    let before = attempt_lines(&door);
    door.ok(&["tap", ALICE_CARD]);
    wait_until("the attempt", || attempt_lines(&door) > before, || door.daemon_log());
    wait_until("the door to open", || door.is_on("relay"), || door.daemon_log());
    server.resume();
    wait_until("the spool to reach MariaDB", || rows_on_server(&server, &database).len() == 6, || door.daemon_log());
    door.stop();
    report("MariaDB away", &door, 6);
}

/// Issue 19: a validity cut short while the server answers holds at once, and the door judges
/// time limits from its local copy while the server is away (before the camera is asked).
#[test]
fn time_limits_hold_from_the_local_copy_while_mariadb_is_away() {
    let mut server = MariaDb::throw_away();
    let database = server.database();
    let clock = [("schedule.clock", "\"trusted\"")];
    let mut door = TestDoor::on_database_with(&database.url_without_password, Some(&database.password), &clock);
    door.ok(&["person", "add", "Sam"]);
    door.ok(&["card", "add", ALICE_CARD, "--person", "Sam"]);
    door.start();
    door.ok(&["person", "set", "Sam", "--valid-until", "2020-01-01 00:00"]);

    server.kill();
    door.ok(&["tap", ALICE_CARD]);
    wait_until("the attempt to be kept in the spool", || spooled_rows(&door).len() == 1, || door.daemon_log());
    let row = spooled_rows(&door).remove(0);
    assert_eq!((row["decision"].as_str(), row["reason"].as_str()), (Some("denied"), Some("expired")), "{row}");
    assert_eq!(row["photo"], Value::Null, "refused before the camera");
    server.resume();
    door.stop();
}

/// Issue 15, item 5: 1,100 idle connections took every file descriptor, and with them the
/// dashboard, the control socket and the camera. Now each listener keeps a few, closing the
/// oldest idle one for each newcomer.
#[test]
fn many_idle_connections_leave_taps_and_the_dashboard_working() {
    use std::os::unix::net::UnixStream;
    let port = free_port();
    let mut door = TestDoor::new(&[
        ("web.listen", &format!("\"127.0.0.1:{port}\"")),
        ("web.connections.max", "64"),
        ("control.connections.max", "16"),
        // Long enough that only the caps can make room during the test.
        ("web.connections.header_timeout", "\"5m\""),
        ("control.connections.header_timeout", "\"5m\""),
    ]);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door.start();
    // A small system's share of file descriptors: 500 idle connections would take them all.
    let limit = libc::rlimit { rlim_cur: 256, rlim_max: 256 };
    // SAFETY: prlimit only reads `limit`; the old limit is not asked for.
    let set = unsafe { libc::prlimit(door.pid() as libc::pid_t, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "cannot lower the daemon's file limit: {}", std::io::Error::last_os_error());
    // The first hundred start a sign-in whose body never comes: they hold no place either.
    let slow_body = "POST /login HTTP/1.1\r\nHost: door\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                     Content-Length: 100000\r\n\r\ncsrf=";
    let mut web_idle: Vec<std::net::TcpStream> = (0..400)
        .map(|n| {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            // A daemon that stopped accepting fills the backlog: fail then, with what it holds.
            let mut stream = std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(3))
                .unwrap_or_else(|e| {
                    let files = std::fs::read_dir(format!("/proc/{}/fd", door.pid())).map_or(0, Iterator::count);
                    panic!("connection {n}: {e}; the daemon has {files} files open; log:\n{}", door.daemon_log())
                });
            if n < 100 {
                std::io::Write::write_all(&mut stream, slow_body.as_bytes()).unwrap();
            }
            stream
        })
        .collect();
    let mut control_idle: Vec<UnixStream> =
        (0..100).map(|_| UnixStream::connect(door.path("control.sock")).unwrap()).collect();

    let started = std::time::Instant::now();
    let granted = door.tap_and_wait(ALICE_CARD);
    assert_eq!((granted["decision"].as_str(), granted["reason"].as_str()), (Some("granted"), Some("card_and_face")));
    let session = sign_in_over_http(&door, port);
    let dashboard =
        http(port, &format!("GET / HTTP/1.1\r\nHost: door\r\nConnection: close\r\nCookie: {session}\r\n\r\n"));
    assert!(dashboard.starts_with("HTTP/1.1 200"), "{dashboard}");
    eprintln!("tap granted and dashboard answered {:?} after opening 500 idle connections", started.elapsed());

    let timeout = Some(std::time::Duration::from_millis(20));
    web_idle.iter().for_each(|stream| stream.set_read_timeout(timeout).unwrap());
    control_idle.iter().for_each(|stream| stream.set_read_timeout(timeout).unwrap());
    let web_closed = web_idle.iter_mut().map(closed_by_daemon).filter(|closed| *closed).count();
    let control_closed = control_idle.iter_mut().map(closed_by_daemon).filter(|closed| *closed).count();
    eprintln!("closed to make room: {web_closed} of 400 web, {control_closed} of 100 control");
    assert!(web_closed >= 400 - 64, "at most 64 kept open on the web port: {web_closed} closed");
    let slow_closed = web_idle[..100].iter_mut().map(closed_by_daemon).filter(|closed| *closed).count();
    assert_eq!(slow_closed, 100, "the oldest, their bodies still arriving, made room first");
    assert!(control_closed >= 100 - 16, "at most 16 kept on the control socket: {control_closed} closed");
    let log = door.daemon_log();
    eprintln!("daemon log: {} bytes", log.len());
    assert!(log.len() < 200_000, "the log stays quiet: {} bytes", log.len());
    door.stop();
    report("500 idle connections", &door, 1);
}

#[test]
fn a_taken_web_port_stops_the_daemon_with_the_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let door = TestDoor::new(&[("web.listen", &format!("\"127.0.0.1:{port}\""))]);
    let output = door.run(&["run"]);
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(text.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{text}");
}

/// A killed run leaves a relay energised (real GPIO pins keep their level): whatever then stops
/// the next start, that start drives the outputs safe first.
#[test]
fn a_failed_start_still_releases_the_relay_a_killed_run_left_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let failures: [(&str, &[&str]); 4] = [
        ("a bad setting", &["web.max_upload_bytes=1"]),
        ("missing face models", &["engine.kind=local", "engine.models_dir=/nonexistent/models"]),
        ("a taken web port", &[&format!("web.listen=127.0.0.1:{port}")]),
        ("a database that cannot be opened", &["database.url=sqlite:///nonexistent/dir/facereko.db"]),
    ];
    for (what, settings) in failures {
        let mut door = TestDoor::new(&[("door.mode", "\"card\""), ("door.unlock_time", "\"5m\"")]);
        door.ok(&["person", "add", "Alice"]);
        door.ok(&["card", "add", ALICE_CARD, "--person", "Alice"]);
        door.start();
        door.ok(&["tap", ALICE_CARD]);
        door.wait_for("the relay to open", || door.is_on("relay"));
        door.kill();
        assert!(door.is_on("relay"), "SIGKILL leaves the relay as it was");

        let mut args: Vec<&str> = settings.iter().flat_map(|setting| ["--set", setting]).collect();
        args.push("run");
        let output = door.run(&args);
        assert!(!output.status.success(), "{what}: the start fails");
        assert!(!door.is_on("relay"), "{what}: the relay is released all the same");
        assert!(door.is_on("red_led"), "{what}: and the red LED says locked");
        // The grant the killed run carried out is logged by the next start that works.
        door.start();
        door.stop();
        report(&format!("a start failing on {what}"), &door, 1);
    }
}

/// The MQTT broker and the SMTP server away while the door takes attempts, the daemon killed
/// meanwhile: the door decides as ever, and once both are back every attempt reaches the broker
/// and every mail arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_broker_and_the_mail_server_away_lose_nothing() {
    let mut broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let mut mail = SmtpServer::start(Security::StartTls);
    let port = mail.port.to_string();
    let ca = format!("{:?}", mail.ca_pem_path().display().to_string());
    let mut settings = broker.door_config();
    settings.extend(
        [
            ("door.debounce", "\"0s\""),
            ("email.server", "\"localhost\""),
            ("email.port", port.as_str()),
            ("email.ca_file", ca.as_str()),
            ("email.from", "\"door@example.com\""),
            ("email.to", "[\"owner@example.com\"]"),
            ("notify.rules", r#"[{ channel = "email", on = ["granted", "denied"] }]"#),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned())),
    );
    let settings: Vec<(&str, &str)> = settings.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let mut door = TestDoor::new(&settings);
    enrol_people(&door);
    broker.stop();
    mail.stop();
    door.start();

    for round in 0..3 {
        door.ok(&["tap", ALICE_CARD]);
        door.wait_for("the relay to open", || relay_openings(&door).len() == round + 1);
        door.wait_for("the relay to close", || !door.is_on("relay"));
        door.tap_and_wait(STRANGER_CARD);
        door.tap_and_wait(BOB_CARD);
        if round == 1 {
            door.kill();
            door.start();
        }
    }
    let attempts = 9;
    door.wait_for("every attempt in the log", || all_rows(&door).len() == attempts);
    broker.resume();
    mail.resume();

    let logged: BTreeSet<String> =
        all_rows(&door).iter().map(|row| row["event_id"].as_str().unwrap().to_owned()).collect();
    subscriber
        .wait_until(
            "every attempt on the broker",
            || door.daemon_log(),
            |_| subscriber.events().keys().cloned().collect::<BTreeSet<_>>() == logged,
        )
        .await;
    let mails = mail.wait_for_async(attempts, Duration::from_secs(60)).await;
    let mailed: BTreeSet<String> = mails
        .iter()
        .map(|mail| mail["message_id"].as_str().unwrap().trim_matches(['<', '>']).split('@').next().unwrap().to_owned())
        .collect();
    assert_eq!(mailed, logged, "a mail per attempt");
    door.wait_for("the mails to be marked delivered", || {
        let status: Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
        status["messages"]["email"]["delivered"] == attempts && status["outbox_backlog"] == 0
    });
    door.stop();
    assert_eq!(mail.received().len(), attempts, "no mail twice");
    report("the MQTT broker and the SMTP server away", &door, attempts);
}
