//! What the SQL backends share for the doors of a site: the row layout and its conversion.

use super::SiteDoor;
use super::rows::{from_millis, to_millis};

pub const SELECT_DOORS: &str = "SELECT id, name, web_address, version, last_seen_ms FROM doors ORDER BY id";

/// A `doors` row: id, name, web address, version, last seen (ms).
pub type DoorRow = (String, String, Option<String>, String, i64);

pub fn site_door((id, name, web_address, version, last_seen_ms): DoorRow) -> SiteDoor {
    SiteDoor { id, name, web_address, version, last_seen: from_millis(last_seen_ms) }
}

pub fn door_row(door: &SiteDoor) -> DoorRow {
    (door.id.clone(), door.name.clone(), door.web_address.clone(), door.version.clone(), to_millis(door.last_seen))
}
