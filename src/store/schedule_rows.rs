//! What the SQL backends share for schedules, holidays and limits: the statements (in the `?`
//! placeholders both databases take), the row layouts, the checks before writing and the
//! messages users see.

use jiff::Timestamp;
use jiff::civil::Date;

use super::StoreError;
use super::group_rows::{self, GroupDoorRow, GroupRow, MemberRow};
use super::rows::parse_card;
use crate::access::PersonId;
use crate::schedule::{AccessRules, DayMinute, DoorRight, Holiday, Limits, Schedule, Weekdays, Window};

pub const SELECT_SCHEDULES: &str = "SELECT id, name, open_on_holidays FROM schedules ORDER BY id";
pub const SELECT_WINDOWS: &str =
    "SELECT schedule_id, days, start_minute, end_minute FROM schedule_windows ORDER BY schedule_id, position";
pub const SELECT_HOLIDAYS: &str = "SELECT id, name, first_day, last_day, yearly FROM holidays ORDER BY first_day, id";
pub const SELECT_PERSON_LIMITS: &str =
    "SELECT person_id, valid_from_ms, valid_until_ms, schedule_id FROM person_limits ORDER BY person_id";
pub const SELECT_CARD_LIMITS: &str =
    "SELECT uid, valid_from_ms, valid_until_ms, schedule_id FROM card_limits ORDER BY uid";
pub const INSERT_WINDOW: &str =
    "INSERT INTO schedule_windows(schedule_id, position, days, start_minute, end_minute) VALUES (?, ?, ?, ?, ?)";
pub const DELETE_WINDOWS: &str = "DELETE FROM schedule_windows WHERE schedule_id = ?";
pub const INSERT_HOLIDAY: &str = "INSERT INTO holidays(name, first_day, last_day, yearly) VALUES (?, ?, ?, ?)";
pub const DELETE_HOLIDAY: &str = "DELETE FROM holidays WHERE id = ?";
pub const SCHEDULE_USERS: &str = "SELECT (SELECT COUNT(*) FROM person_limits WHERE schedule_id = ?)
                                        + (SELECT COUNT(*) FROM card_limits WHERE schedule_id = ?)
                                        + (SELECT COUNT(*) FROM door_rights WHERE schedule_id = ?)
                                        + (SELECT COUNT(*) FROM group_door_rights WHERE schedule_id = ?)";
pub const DELETE_SCHEDULE: &str = "DELETE FROM schedules WHERE id = ?";
pub const SCHEDULE_EXISTS: &str = "SELECT COUNT(*) FROM schedules WHERE id = ?";
pub const PERSON_EXISTS: &str = "SELECT COUNT(*) FROM people WHERE id = ?";
pub const CARD_EXISTS: &str = "SELECT COUNT(*) FROM cards WHERE uid = ?";
pub const DELETE_PERSON_LIMITS: &str = "DELETE FROM person_limits WHERE person_id = ?";
pub const DELETE_CARD_LIMITS: &str = "DELETE FROM card_limits WHERE uid = ?";
pub const INSERT_PERSON_LIMITS: &str =
    "INSERT INTO person_limits(person_id, valid_from_ms, valid_until_ms, schedule_id) VALUES (?, ?, ?, ?)";
pub const INSERT_CARD_LIMITS: &str =
    "INSERT INTO card_limits(uid, valid_from_ms, valid_until_ms, schedule_id) VALUES (?, ?, ?, ?)";
/// Every person kept to some doors, with each of those doors (none: a row of NULLs).
pub const SELECT_DOOR_RIGHTS: &str = "SELECT r.person_id, d.door_id, d.schedule_id FROM door_restrictions r
                                      LEFT JOIN door_rights d ON d.person_id = r.person_id
                                      ORDER BY r.person_id, d.door_id";
/// Lifts a person's door restriction; their door rights go with it.
pub const DELETE_DOOR_RESTRICTION: &str = "DELETE FROM door_restrictions WHERE person_id = ?";
pub const INSERT_DOOR_RESTRICTION: &str = "INSERT INTO door_restrictions(person_id) VALUES (?)";
pub const INSERT_DOOR_RIGHT: &str = "INSERT INTO door_rights(person_id, door_id, schedule_id) VALUES (?, ?, ?)";

/// A `schedules` row: id, name, open on holidays.
pub type ScheduleRow = (i64, String, bool);
/// A `schedule_windows` row: schedule, days, start and end minute.
pub type WindowRow = (i64, u8, u16, u16);
/// A `holidays` row: id, name, first and last day, yearly.
pub type HolidayRow = (i64, String, String, String, bool);
/// A `person_limits` or `card_limits` row: whose, valid from and until (ms), schedule.
pub type LimitsRow<K> = (K, Option<i64>, Option<i64>, Option<i64>);
/// A [`SELECT_DOOR_RIGHTS`] row: person, door and schedule (no door for a person kept to none).
pub type DoorRightRow = (i64, Option<String>, Option<i64>);

/// The rows of every table behind [`AccessRules`], as read in one transaction.
#[derive(Debug, Default)]
pub struct RulesRows {
    pub schedules: Vec<ScheduleRow>,
    pub windows: Vec<WindowRow>,
    pub holidays: Vec<HolidayRow>,
    pub people: Vec<LimitsRow<i64>>,
    pub cards: Vec<LimitsRow<String>>,
    pub doors: Vec<DoorRightRow>,
    pub groups: Vec<GroupRow>,
    pub members: Vec<MemberRow>,
    pub group_doors: Vec<GroupDoorRow>,
}

fn bad(what: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("bad schedule data in the database: {what}"))
}

fn timestamp(ms: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    ms.map(|ms| Timestamp::from_millisecond(ms).map_err(bad)).transpose()
}

fn limits((from, until, schedule): (Option<i64>, Option<i64>, Option<i64>)) -> Result<Limits, StoreError> {
    Ok(Limits { valid_from: timestamp(from)?, valid_until: timestamp(until)?, schedule })
}

fn minute(value: u16) -> Result<DayMinute, StoreError> {
    DayMinute::new(value).ok_or_else(|| bad(format!("minute {value}")))
}

impl RulesRows {
    pub fn into_rules(self) -> Result<AccessRules, StoreError> {
        let mut schedules: Vec<Schedule> = self
            .schedules
            .into_iter()
            .map(|(id, name, open_on_holidays)| Schedule { id, name, windows: Vec::new(), open_on_holidays })
            .collect();
        for (schedule, days, start, end) in self.windows {
            let window = Window { days: Weekdays::from_bits(days), start: minute(start)?, end: minute(end)? };
            if let Some(owner) = schedules.iter_mut().find(|s| s.id == schedule) {
                owner.windows.push(window);
            }
        }
        let holidays = self
            .holidays
            .into_iter()
            .map(|(id, name, first, last, yearly)| {
                Ok(Holiday { id, name, first: first.parse().map_err(bad)?, last: last.parse().map_err(bad)?, yearly })
            })
            .collect::<Result<_, StoreError>>()?;
        let people = self
            .people
            .into_iter()
            .map(|(id, from, until, schedule)| Ok((PersonId(id), limits((from, until, schedule))?)))
            .collect::<Result<_, StoreError>>()?;
        let cards = self
            .cards
            .into_iter()
            .map(|(uid, from, until, schedule)| Ok((parse_card(&uid)?, limits((from, until, schedule))?)))
            .collect::<Result<_, StoreError>>()?;
        let mut doors: Vec<(PersonId, Vec<DoorRight>)> = Vec::new();
        for (person, door, schedule) in self.doors {
            let person = PersonId(person);
            if doors.last().is_none_or(|(last, _)| *last != person) {
                doors.push((person, Vec::new()));
            }
            if let (Some(door), Some((_, rights))) = (door, doors.last_mut()) {
                rights.push(DoorRight { door, schedule });
            }
        }
        let groups = group_rows::groups(self.groups, self.members, self.group_doors);
        Ok(AccessRules { schedules, holidays, people, cards, doors, groups })
    }
}

/// A window's `days`, `start_minute` and `end_minute`.
pub fn window_columns(window: &Window) -> (u8, u16, u16) {
    (window.days.bits(), window.start.minutes(), window.end.minutes())
}

/// `valid_from_ms`, `valid_until_ms` and `schedule_id`.
pub fn limits_columns(limits: &Limits) -> (Option<i64>, Option<i64>, Option<i64>) {
    (limits.valid_from.map(|t| t.as_millisecond()), limits.valid_until.map(|t| t.as_millisecond()), limits.schedule)
}

/// A holiday's `first_day` and `last_day` as stored.
pub fn day_column(day: Date) -> String {
    day.to_string()
}

/// The trimmed name, once the name and windows are fit to save.
pub fn check_schedule(name: &str, windows: &[Window]) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::Conflict("a schedule needs a name of 1 to 100 characters".into()));
    }
    if let Some(problem) = windows.iter().find_map(Window::problem) {
        return Err(StoreError::Conflict(problem));
    }
    Ok(name.to_owned())
}

pub fn check_holiday(holiday: &Holiday) -> Result<(), StoreError> {
    let name = holiday.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::Conflict("a holiday needs a name of 1 to 100 characters".into()));
    }
    // A yearly run may pass New Year, so only a one-off one must be in order.
    if !holiday.yearly && holiday.last < holiday.first {
        return Err(StoreError::Conflict(format!(
            "the holiday ends ({}) before it starts ({})",
            holiday.last, holiday.first
        )));
    }
    Ok(())
}

/// Each door once, each named as a `door.id` can be.
pub fn check_door_rights(rights: &[DoorRight]) -> Result<(), StoreError> {
    if let Some(bad) = rights.iter().find(|right| right.door.is_empty() || right.door.chars().count() > 32) {
        return Err(StoreError::Conflict(format!("{:?} is not a door id (1 to 32 characters)", bad.door)));
    }
    let mut doors: Vec<&str> = rights.iter().map(|right| right.door.as_str()).collect();
    doors.sort_unstable();
    match doors.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(StoreError::Conflict(format!("door {:?} is listed twice", pair[0]))),
        None => Ok(()),
    }
}

pub fn check_limits(limits: &Limits) -> Result<(), StoreError> {
    match (limits.valid_from, limits.valid_until) {
        (Some(from), Some(until)) if until <= from => {
            Err(StoreError::Conflict(format!("valid until ({until}) must come after valid from ({from})")))
        }
        _ => Ok(()),
    }
}

pub fn no_schedule(name: &str) -> StoreError {
    StoreError::NotFound(format!("no schedule named {name:?}"))
}

pub fn no_schedule_id(id: i64) -> StoreError {
    StoreError::NotFound(format!("no schedule with id {id}"))
}

pub fn no_holiday(id: i64) -> StoreError {
    StoreError::NotFound(format!("no holiday with id {id}"))
}

pub fn schedule_in_use(name: &str, users: i64) -> StoreError {
    StoreError::Conflict(format!(
        "schedule {name:?} is followed by {users} person(s), card(s) or group(s); give them another schedule first"
    ))
}
