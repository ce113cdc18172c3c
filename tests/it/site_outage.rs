//! Three doors on one MariaDB (issue 24): the real `facereko run` three times on simulated
//! hardware. A group keeps a person to two of the doors; a person enrolled at one door is known at
//! the others from their next tap; then the database goes away, every door goes on deciding from
//! its local copy and spools its log rows, and when it is back every spool drains exactly once.

use std::time::Instant;

use crate::common::mariadb::MariaDb;
use crate::common::{TestDoor, face};
use crate::mysql_outage::{attempt_lines, spooled_lines, wait_until};
use crate::site::door_on_site;

const ALICE_CARD: &str = "04A1B2C3";
const BOB_CARD: &str = "04B0B0B0";

/// The reason of the door's last attempt, as its daemon logged it (the access log may be away).
fn last_reason(door: &TestDoor) -> String {
    let log = door.daemon_log();
    let line = log.lines().rev().find(|line| line.contains("access attempt")).expect("an attempt was logged");
    let field = line.split_whitespace().find_map(|field| field.strip_prefix("reason=")).expect("a reason");
    field.to_owned()
}

/// Taps `card` without reading the access log (the database may be away): waits for the door to
/// decide and, after a grant, to lock again; returns the reason.
fn tap(door: &TestDoor, card: &str) -> String {
    let before = attempt_lines(door);
    door.ok(&["tap", card]);
    door.wait_for("the attempt to be decided", || attempt_lines(door) > before);
    door.wait_for("the door to lock again", || !door.is_on("relay"));
    last_reason(door)
}

/// Rows per door on the server: (door, rows, distinct event ids).
fn rows_per_door(server: &MariaDb, database: &str) -> Vec<(String, u32, u32)> {
    let sql = "SELECT door, COUNT(*), COUNT(DISTINCT event_id) FROM access_log GROUP BY door ORDER BY door";
    server
        .try_sql(Some(database), sql)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[0].to_owned(), fields[1].parse().unwrap(), fields[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn three_doors_decide_by_group_through_an_outage_and_every_spool_drains_once() {
    let mut server = MariaDb::throw_away();
    let database = server.database();
    let door_on_site = |id: &str, name: &str| door_on_site(&database.url, id, name);
    let mut doors = [door_on_site("a", "Door A"), door_on_site("b", "Door B"), door_on_site("c", "Door C")];
    let (alice, bob) = (face("lfw10/Tony_Blair/Tony_Blair_0001.jpg"), face("lfw10/Colin_Powell/Colin_Powell_0001.jpg"));
    let [a, _, _] = &doors;
    a.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    for door in &mut doors {
        door.show_for_card(ALICE_CARD, &alice);
        door.show_for_card(BOB_CARD, &bob);
        door.start();
    }
    let registered = || server.sql(Some(&database.name), "SELECT id FROM doors ORDER BY id");
    wait_until("the three doors to register", || registered().trim() == "a\nb\nc", registered);

    // Alice may use A and B through her group, not C.
    let [a, b, c] = &doors;
    a.ok(&["group", "add", "Staff"]);
    a.ok(&["group", "members", "Staff", "--add", "Alice"]);
    let shown = a.ok(&["group", "doors", "Staff", "--door", "a", "--door", "b"]);
    assert_eq!(shown.trim(), "Staff: only a, b");
    assert_eq!(a.tap_and_wait(ALICE_CARD)["reason"], "card_and_face");
    assert_eq!(b.tap_and_wait(ALICE_CARD)["reason"], "card_and_face");
    assert_eq!(c.tap_and_wait(ALICE_CARD)["reason"], "not_allowed_here");

    // Bob is enrolled at A into the same group: B knows him from its next tap, C refuses him.
    a.ok(&["enroll", "--person", "Bob", "--card", BOB_CARD, bob.to_str().unwrap()]);
    a.ok(&["group", "members", "Staff", "--add", "Bob"]);
    let enrolled = Instant::now();
    assert_eq!(tap(b, BOB_CARD), "card_and_face");
    println!("Bob enrolled at A was let in at B {:?} later (tap included)", enrolled.elapsed());
    assert_eq!(tap(c, BOB_CARD), "not_allowed_here");
    // A door copies a card when it is tapped there, and every card every minute: tapped at A too,
    // Bob's card is in all three copies before the outage.
    assert_eq!(tap(a, BOB_CARD), "card_and_face");

    // The database goes away: each door decides from its local copy and spools its rows.
    let logged_before: Vec<usize> = doors.iter().map(attempt_lines).collect();
    server.kill();
    let [a, b, c] = &doors;
    for (door, expected) in [(a, "card_and_face"), (b, "card_and_face"), (c, "not_allowed_here")] {
        assert_eq!(tap(door, ALICE_CARD), expected, "Alice, from the local copy");
        assert_eq!(tap(door, BOB_CARD), expected, "Bob, from the local copy");
    }
    for (door, before) in doors.iter().zip(&logged_before) {
        assert_eq!(attempt_lines(door) - before, 2);
        wait_until("both rows to be spooled", || spooled_lines(door) >= 2, || door.daemon_log());
    }

    // Back: every spool drains, each row once, none lost.
    server.resume();
    let expected: Vec<(String, u32, u32)> = doors
        .iter()
        .zip(["a", "b", "c"])
        .map(|(door, id)| {
            let attempts = attempt_lines(door) as u32;
            (id.to_owned(), attempts, attempts)
        })
        .collect();
    let rows = || rows_per_door(&server, &database.name);
    wait_until("every spool to drain", || rows() == expected, || format!("{:?} != {expected:?}", rows()));
    for door in &doors {
        assert!(door.daemon_log().contains("the database answers again"), "{}", door.daemon_log());
    }
    for door in &mut doors {
        door.stop();
    }
    assert_eq!(rows(), expected, "nothing more after stopping");
}
