//! What the SQL backends share for groups of people: the statements (in the `?` placeholders
//! both databases take), the row layouts, the checks before writing and the messages users see.

use super::StoreError;
use crate::access::PersonId;
use crate::schedule::{DoorRight, Group};

pub const SELECT_GROUPS: &str = "SELECT id, name, restricted FROM person_groups ORDER BY id";
pub const SELECT_MEMBERS: &str = "SELECT group_id, person_id FROM group_members ORDER BY group_id, person_id";
pub const SELECT_GROUP_DOORS: &str =
    "SELECT group_id, door_id, schedule_id FROM group_door_rights ORDER BY group_id, door_id";
pub const GROUP_NAME: &str = "SELECT name FROM person_groups WHERE id = ?";
pub const DELETE_MEMBER: &str = "DELETE FROM group_members WHERE group_id = ? AND person_id = ?";
pub const DELETE_GROUP: &str = "DELETE FROM person_groups WHERE id = ?";
pub const DELETE_GROUP_DOORS: &str = "DELETE FROM group_door_rights WHERE group_id = ?";
pub const SET_RESTRICTED: &str = "UPDATE person_groups SET restricted = ? WHERE id = ?";
pub const INSERT_GROUP_DOOR: &str = "INSERT INTO group_door_rights(group_id, door_id, schedule_id) VALUES (?, ?, ?)";

/// A `person_groups` row: id, name, whether its doors are set.
pub type GroupRow = (i64, String, bool);
/// A `group_members` row: group, person.
pub type MemberRow = (i64, i64);
/// A `group_door_rights` row: group, door, schedule.
pub type GroupDoorRow = (i64, String, Option<i64>);

/// The groups with their members and doors, by name (ASCII case ignored, as names are unique).
pub fn groups(groups: Vec<GroupRow>, members: Vec<MemberRow>, doors: Vec<GroupDoorRow>) -> Vec<Group> {
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(id, name, restricted)| Group { id, name, members: Vec::new(), doors: restricted.then(Vec::new) })
        .collect();
    for (group, person) in members {
        if let Some(group) = groups.iter_mut().find(|g| g.id == group) {
            group.members.push(PersonId(person));
        }
    }
    for (group, door, schedule) in doors {
        if let Some(rights) = groups.iter_mut().find(|g| g.id == group).and_then(|g| g.doors.as_mut()) {
            rights.push(DoorRight { door, schedule });
        }
    }
    groups.sort_by_cached_key(|group| (group.name.to_ascii_lowercase(), group.id));
    groups
}

/// The trimmed name, once it is fit to save.
pub fn check_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::Conflict("a group needs a name of 1 to 100 characters".into()));
    }
    Ok(name.to_owned())
}

pub fn no_group(id: i64) -> StoreError {
    StoreError::NotFound(format!("no group with id {id}"))
}

pub fn group_exists(name: &str) -> StoreError {
    StoreError::Conflict(format!("a group named {name:?} already exists"))
}

pub fn not_a_member(person: PersonId, group: &str) -> StoreError {
    StoreError::NotFound(format!("person {person} is not in the group {group:?}"))
}
