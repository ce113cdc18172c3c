//! What the SQL backends share: how values are laid out in columns (with the access-log
//! statements, built from one list of its columns) and the messages users see, so that SQLite and
//! MySQL behave alike.

use std::sync::LazyLock;

use mysql_async::prelude::FromRow;
use time::OffsetDateTime;

use super::{LogEntry, LogQuery, QueuedMessage, StoreError};
use crate::access::PersonId;
use crate::access::{AccessEvent, Decision, StageTimings};
use crate::card::CardUid;
use crate::engine::FaceTemplate;

pub const ARMED_KEY: &str = "armed";
pub const FACES_VERSION_KEY: &str = "faces_version";
/// Settings saved through `set_setting` are stored under this prefix, so that no key can read or
/// overwrite the daemon's own (`armed`, `faces_version`), now or when more are added.
const APP_SETTING_PREFIX: &str = "app.";
/// The sizes of MySQL's `settings` columns, in characters. SQLite is held to them too, so that a
/// setting saved on one backend fits the other, and nothing is cut short by a lenient `sql_mode`.
const SETTING_NAME_MAX: usize = 64;
/// `TEXT` holds 65,535 bytes, and utf8mb4 takes up to 4 bytes a character.
const SETTING_VALUE_MAX: usize = 16_383;

pub fn now_ms() -> i64 {
    to_millis(OffsetDateTime::now_utc())
}

pub fn to_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn descriptor_to_blob(descriptor: &[f32]) -> Vec<u8> {
    descriptor.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn blob_to_descriptor(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The descriptor blob and remote id columns of a face, exactly one of them set.
pub fn face_columns(template: &FaceTemplate) -> (Option<Vec<u8>>, Option<String>) {
    match template {
        FaceTemplate::Descriptor(values) => (Some(descriptor_to_blob(values)), None),
        FaceTemplate::Remote(id) => (None, Some(id.clone())),
    }
}

pub fn face_template(id: i64, descriptor: Option<Vec<u8>>, remote_id: Option<String>) -> Result<FaceTemplate, String> {
    match (descriptor, remote_id) {
        (Some(blob), _) => Ok(FaceTemplate::Descriptor(blob_to_descriptor(&blob))),
        (None, Some(remote)) => Ok(FaceTemplate::Remote(remote)),
        (None, None) => Err(format!("face row {id} has neither descriptor nor remote id")),
    }
}

/// Refuses descriptors that could never match anything (NaN, infinities).
pub fn check_template(template: &FaceTemplate) -> Result<(), StoreError> {
    match template {
        FaceTemplate::Descriptor(values) => check_descriptor(values),
        FaceTemplate::Remote(_) => Ok(()),
    }
}

/// Refuses a descriptor that could never match anything (NaN, infinities).
pub fn check_descriptor(values: &[f32]) -> Result<(), StoreError> {
    match values.iter().any(|v| !v.is_finite()) {
        true => Err(StoreError::Conflict("the face descriptor has values that are not numbers".into())),
        false => Ok(()),
    }
}

/// The key that makes names unique regardless of ASCII case, as SQLite's `COLLATE NOCASE` does.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub fn person_exists(name: &str) -> StoreError {
    StoreError::Conflict(format!("a person named {name:?} already exists"))
}

pub fn user_exists(username: &str) -> StoreError {
    StoreError::Conflict(format!("a user named {username:?} already exists"))
}

pub fn no_person(id: PersonId) -> StoreError {
    StoreError::NotFound(format!("no person with id {id}"))
}

pub fn no_face(id: i64) -> StoreError {
    StoreError::NotFound(format!("no face with id {id}"))
}

/// A stored value this version cannot read.
pub fn bad_column(table: &str, id: i64, column: &str, problem: String) -> StoreError {
    StoreError::Database(format!("{table} row {id}, column {column}: {problem}"))
}

pub fn no_api_key(id: i64) -> StoreError {
    StoreError::NotFound(format!("there is no API key {id}"))
}

pub fn api_key_exists() -> StoreError {
    StoreError::Conflict("that API key is kept already".into())
}

/// An `api_keys` row as both backends read it: id, name, hash, created and last used (ms).
pub type ApiKeyRow = (i64, String, String, i64, Option<i64>);

pub fn api_key_row((id, name, key_hash, created_ms, last_used_ms): ApiKeyRow) -> super::ApiKey {
    super::ApiKey { id, name, key_hash, created: from_millis(created_ms), last_used: last_used_ms.map(from_millis) }
}

/// Every passkey with its account's name; `WHERE` clauses follow.
pub const PASSKEY_SELECT: &str = "SELECT p.id, u.username, p.user_handle, p.credential_id, p.name, p.credential, \
     p.created_ms, p.last_used_ms FROM passkeys p JOIN users u ON u.id = p.user_id";

/// A `passkeys` row with its account's name, as [`PASSKEY_SELECT`] reads it.
pub type PasskeyRow = (i64, String, String, Vec<u8>, String, String, i64, Option<i64>);

pub fn passkey_row(
    (id, username, user_handle, credential_id, name, credential, created_ms, last_used_ms): PasskeyRow,
) -> super::StoredPasskey {
    super::StoredPasskey {
        id,
        username,
        user_handle,
        credential_id,
        name,
        credential,
        created: from_millis(created_ms),
        last_used: last_used_ms.map(from_millis),
    }
}

pub fn passkey_exists() -> StoreError {
    StoreError::Conflict("that passkey is kept already".into())
}

pub fn no_passkey(username: &str, id: i64) -> StoreError {
    StoreError::NotFound(format!("{username:?} has no passkey {id}"))
}

pub fn no_user(username: &str) -> StoreError {
    StoreError::NotFound(format!("no user named {username:?}"))
}

pub fn card_taken(uid: &CardUid, holder: &str) -> StoreError {
    StoreError::Conflict(format!(
        "card {uid} already belongs to {holder}; remove it first with `facereko card remove {uid}`"
    ))
}

pub fn card_not_enrolled(uid: &CardUid) -> StoreError {
    StoreError::NotFound(format!("card {uid} is not enrolled"))
}

pub fn parse_card(uid: &str) -> Result<CardUid, StoreError> {
    uid.parse().map_err(|e| StoreError::Database(format!("bad card UID in the database: {e}")))
}

/// The stored armed setting; a new installation starts armed: nothing opens until someone is enrolled.
pub fn parse_armed(value: Option<&str>) -> Result<bool, StoreError> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(StoreError::Database(format!(
            "settings.armed is {other:?}; expected true or false (`facereko arm` or `facereko disarm` rewrites it)"
        ))),
    }
}

/// The stored name of the app setting `key`.
pub fn app_setting(key: &str) -> String {
    format!("{APP_SETTING_PREFIX}{key}")
}

/// The stored name under which to save `key` = `value`, refusing what a backend would not keep whole.
pub fn app_setting_to_save(key: &str, value: &str) -> Result<String, StoreError> {
    let name = app_setting(key);
    if name.chars().count() > SETTING_NAME_MAX {
        let max = SETTING_NAME_MAX - APP_SETTING_PREFIX.len();
        return Err(StoreError::Conflict(format!("the setting name {key:?} is longer than {max} characters")));
    }
    if value.chars().count() > SETTING_VALUE_MAX {
        return Err(StoreError::Conflict(format!(
            "the value of setting {key:?} is longer than {SETTING_VALUE_MAX} characters"
        )));
    }
    Ok(name)
}

pub fn parse_faces_version(value: Option<&str>) -> u64 {
    value.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The `WHERE` condition for `query`'s filters, with `?` placeholders, and their values in order.
/// `person_matches` is the backend's test of `person_name` against one placeholder, which holds
/// [`name_key`] of the name: each database needs its own way to ignore ASCII case and nothing more.
pub fn log_filter<V: From<i64> + From<String>>(query: &LogQuery, person_matches: &str) -> (String, Vec<V>) {
    let mut sql = String::from("1 = 1");
    let mut args = Vec::new();
    let mut and = |condition: &str, value: V| {
        sql.push_str(" AND ");
        sql.push_str(condition);
        args.push(value);
    };
    if let Some(decision) = query.decision {
        and("decision = ?", decision.as_str().to_owned().into());
    }
    if let Some(reason) = query.reason {
        and("reason = ?", reason.as_str().to_owned().into());
    }
    if let Some(person) = &query.person {
        and(person_matches, name_key(person).into());
    }
    if let Some(card) = &query.card {
        and("card_uid = ?", card.as_str().to_owned().into());
    }
    if let Some(since) = query.since {
        and("at_ms >= ?", to_millis(since).into());
    }
    if let Some(until) = query.until {
        and("at_ms < ?", to_millis(until).into());
    }
    if let Some(event_id) = &query.event_id {
        and("event_id = ?", event_id.clone().into());
    }
    if let Some(door) = &query.door {
        and("door = ?", door.clone().into());
    }
    (sql, args)
}

/// What the outbox and the messages keep of an event: the event as JSON.
pub fn event_payload(event: &AccessEvent) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| StoreError::Database(e.to_string()))
}

/// The outbox row of an event: its kind and JSON payload.
pub fn outbox_payload(event: &AccessEvent) -> Result<(&'static str, String), StoreError> {
    let kind = if event.decision == Decision::Granted { "success" } else { "failure" };
    Ok((kind, event_payload(event)?))
}

/// The stored payload is the event as JSON; a row we cannot read is reported with its id rather than skipped.
pub fn outbox_event(id: i64, payload: &str) -> Result<AccessEvent, StoreError> {
    serde_json::from_str(payload)
        .map_err(|e| StoreError::Database(format!("outbox row {id} holds an unreadable event: {e}")))
}

/// A waiting message as its row holds it.
pub fn queued_message(id: i64, payload: &str, to: String, attempts: u32) -> Result<QueuedMessage, StoreError> {
    let event = serde_json::from_str(payload)
        .map_err(|e| StoreError::Database(format!("message {id} holds an unreadable event: {e}")))?;
    Ok(QueuedMessage { id, event, to, attempts })
}

/// The SQL condition of messages that still wait (neither delivered nor given up on).
pub const MESSAGE_WAITS: &str = "delivered_ms IS NULL AND failed_ms IS NULL";

/// The `access_log` columns written for an event, in the order of [`LogRow::into_values`]; the
/// database numbers the rows (`id`).
pub const LOG_COLUMNS: [&str; 18] = [
    "event_id",
    "at_ms",
    "door",
    "card_uid",
    "person_id",
    "person_name",
    "decision",
    "reason",
    "similarity",
    "confidence",
    "engine",
    "photo",
    "read_ms",
    "capture_ms",
    "match_ms",
    "actuate_ms",
    "total_ms",
    "detail",
];

/// Writes one access-log row: the values of [`LogRow::into_values`], one placeholder each.
pub static INSERT_LOG_ROW: LazyLock<String> = LazyLock::new(|| {
    let placeholders = vec!["?"; LOG_COLUMNS.len()].join(", ");
    format!("INSERT INTO access_log({}) VALUES ({placeholders})", LOG_COLUMNS.join(", "))
});

/// Reads whole access-log rows, `id` first; the caller adds the `WHERE` clause and what follows.
static SELECT_LOG_ROWS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT id, {} FROM access_log", LOG_COLUMNS.join(", ")));

/// A page of the access-log rows that `filter` (from [`log_filter`]) matches, newest first; its
/// values are followed by the limit and the offset.
pub fn log_page_sql(filter: &str) -> String {
    format!("{} WHERE {filter} ORDER BY at_ms DESC, id DESC LIMIT ? OFFSET ?", *SELECT_LOG_ROWS)
}

/// How many access-log rows `filter` (from [`log_filter`]) matches.
pub fn log_count_sql(filter: &str) -> String {
    format!("SELECT COUNT(*) FROM access_log WHERE {filter}")
}

/// The access-log row with the id given as the one value.
pub static SELECT_LOG_ENTRY: LazyLock<String> = LazyLock::new(|| format!("{} WHERE id = ?", *SELECT_LOG_ROWS));

/// An `access_log` row as both backends store it.
#[derive(Debug, FromRow)]
pub struct LogRow {
    pub id: i64,
    pub event_id: String,
    pub at_ms: i64,
    pub door: String,
    pub card_uid: Option<String>,
    pub person_id: Option<i64>,
    pub person_name: Option<String>,
    pub decision: String,
    pub reason: String,
    pub similarity: Option<f64>,
    pub confidence: Option<f64>,
    pub engine: Option<String>,
    pub photo: Option<String>,
    pub read_ms: i64,
    pub capture_ms: Option<i64>,
    pub match_ms: Option<i64>,
    pub actuate_ms: i64,
    pub total_ms: i64,
    pub detail: Option<String>,
}

fn millis(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

impl LogRow {
    pub fn from_event(event: &AccessEvent) -> Self {
        let t = &event.timings;
        Self {
            id: 0,
            event_id: event.event_id.clone(),
            at_ms: to_millis(event.at),
            door: event.door.clone(),
            card_uid: event.card_uid.as_ref().map(|c| c.as_str().to_owned()),
            person_id: event.person_id.map(|p| p.0),
            person_name: event.person_name.clone(),
            decision: event.decision.as_str().to_owned(),
            reason: event.reason.as_str().to_owned(),
            similarity: event.similarity.map(f64::from),
            confidence: event.confidence.map(f64::from),
            engine: event.engine.clone(),
            photo: event.photo.clone(),
            read_ms: i64::from(t.read_ms),
            capture_ms: t.capture_ms.map(i64::from),
            match_ms: t.match_ms.map(i64::from),
            actuate_ms: i64::from(t.actuate_ms),
            total_ms: i64::from(t.total_ms),
            detail: event.detail.clone(),
        }
    }

    /// The values of [`LOG_COLUMNS`], in that order.
    pub fn into_values<V>(self) -> [V; LOG_COLUMNS.len()]
    where
        V: From<String> + From<Option<String>> + From<i64> + From<Option<i64>> + From<Option<f64>>,
    {
        [
            self.event_id.into(),
            self.at_ms.into(),
            self.door.into(),
            self.card_uid.into(),
            self.person_id.into(),
            self.person_name.into(),
            self.decision.into(),
            self.reason.into(),
            self.similarity.into(),
            self.confidence.into(),
            self.engine.into(),
            self.photo.into(),
            self.read_ms.into(),
            self.capture_ms.into(),
            self.match_ms.into(),
            self.actuate_ms.into(),
            self.total_ms.into(),
            self.detail.into(),
        ]
    }

    /// The stored row as an entry; a value that is not one of ours is a data error naming the row.
    pub fn into_entry(self) -> Result<LogEntry, StoreError> {
        let id = self.id;
        let named =
            |column: &str, e: String| StoreError::Database(format!("access_log row {id}, column {column}: {e}"));
        Ok(LogEntry {
            id,
            event: AccessEvent {
                event_id: self.event_id,
                at: from_millis(self.at_ms),
                door: self.door,
                card_uid: self.card_uid.and_then(|uid| uid.parse::<CardUid>().ok()),
                person_id: self.person_id.map(PersonId),
                person_name: self.person_name,
                decision: self.decision.parse().map_err(|e| named("decision", e))?,
                reason: self.reason.parse().map_err(|e| named("reason", e))?,
                similarity: self.similarity.map(|v| v as f32),
                confidence: self.confidence.map(|v| v as f32),
                engine: self.engine,
                photo: self.photo,
                timings: StageTimings {
                    read_ms: millis(self.read_ms),
                    capture_ms: self.capture_ms.map(millis),
                    match_ms: self.match_ms.map(millis),
                    actuate_ms: millis(self.actuate_ms),
                    total_ms: millis(self.total_ms),
                },
                detail: self.detail,
            },
        })
    }
}
