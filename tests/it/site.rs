//! Several doors on one MariaDB (a site): the real `facereko run` twice, on simulated hardware.
//! Per-door rights, enrolment and rights changes that hold at the other door from its next tap,
//! and each door's row in the `doors` table.

use crate::common::mariadb::MariaDb;
use crate::common::{TestDoor, face};
use crate::mysql_outage::wait_until;

const ALICE_CARD: &str = "04A1B2C3";
const BOB_CARD: &str = "04B0B0B0";

/// A door `id` named `name` on the site's database at `url`, taking taps without a pause.
pub(crate) fn door_on_site(url: &str, id: &str, name: &str) -> TestDoor {
    let (id, name) = (format!("{id:?}"), format!("{name:?}"));
    TestDoor::on_database_with(url, None, &[("door.id", &id), ("door.name", &name), ("door.debounce", "\"0s\"")])
}

#[test]
fn two_doors_share_people_keep_rights_per_door_and_register_themselves() {
    let server = MariaDb::start();
    let database = server.database();
    let door_on_site = |id: &str, name: &str| door_on_site(&database.url, id, name);
    let (mut front, mut garage) = (door_on_site("front", "Front door"), door_on_site("garage", "Garage"));
    // An admin's machine: the command line on the same database, no daemon.
    let office = door_on_site("office", "Office");
    let (alice, bob) = (face("lfw10/Tony_Blair/Tony_Blair_0001.jpg"), face("lfw10/Colin_Powell/Colin_Powell_0001.jpg"));
    office.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    office.ok(&["person", "doors", "Alice", "--door", "front"]);
    for door in [&front, &garage] {
        door.show_for_card(ALICE_CARD, &alice);
        door.show_for_card(BOB_CARD, &bob);
    }
    front.start();
    garage.start();

    let version = env!("CARGO_PKG_VERSION");
    let registered = format!("front\tFront door\t{version}\ngarage\tGarage\t{version}");
    let doors = || server.sql(Some(&database.name), "SELECT id, name, version FROM doors ORDER BY id");
    wait_until("both doors to register", || doors().trim() == registered, || doors() + &garage.daemon_log());

    assert_eq!(front.tap_and_wait(ALICE_CARD)["reason"], "card_and_face");
    let refused = garage.tap_and_wait(ALICE_CARD);
    assert_eq!((refused["door"].as_str(), refused["reason"].as_str()), (Some("garage"), Some("not_allowed_here")));

    // Enrolled elsewhere while both doors run: the faces' change counter brings Bob to the next tap.
    assert_eq!(garage.tap_and_wait(BOB_CARD)["reason"], "unknown_card");
    office.ok(&["enroll", "--person", "Bob", "--card", BOB_CARD, bob.to_str().unwrap()]);
    assert_eq!(garage.tap_and_wait(BOB_CARD)["reason"], "card_and_face", "every door, as he was never kept to some");

    office.ok(&["person", "doors", "Alice", "--every"]);
    garage.wait_for("the garage to relock", || !garage.is_on("relay"));
    assert_eq!(garage.tap_and_wait(ALICE_CARD)["reason"], "card_and_face", "the change holds from the next tap");
    front.stop();
    garage.stop();
}
