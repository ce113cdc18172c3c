//! Storage: people, cards, faces, the access log, settings, the notification outbox, visits, the
//! visitors kept for next time, the face API's keys, the sign-in log, the accounts' passkeys, face
//! sign-in's links, the doors of a site and the groups of people kept to some of them.
//!
//! Small capability traits that follow their callers (the door, the notifier, enrolment, the web
//! app), combined in [`Store`]; one backend per database, chosen from the URL scheme of `database.url`.

pub mod api_keys;
pub mod face_links;
mod group_rows;
pub mod known_visitors;
pub mod legacy;
mod migrations;
pub mod mysql;
pub mod passkeys;
pub mod rehearsal;
pub mod resilient;
mod rows;
mod schedule_rows;
mod sign_in_rows;
pub mod sign_ins;
mod site_rows;
pub mod sqlite;
mod visit_rows;
mod visitor_rows;
pub mod visits;

pub use api_keys::{ApiKey, ApiKeys};
pub use face_links::{FaceLink, FaceLinks};
pub use known_visitors::{KnownVisitor, KnownVisitors, VisitorDetails, VisitorFace, VisitorId};
pub use passkeys::{NewPasskey, Passkeys, StoredPasskey};
pub use sign_ins::{SignInAttempt, SignInEntry, SignInMethod, SignInOutcome, SignInQuery, SignIns};
pub use visits::{NewPass, NewVisit, PassKind, StoredPass, Visit, VisitId, VisitQuery, VisitStatus, Visits};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::access::{AccessEvent, Decision, Person, PersonId, Reason};
use crate::card::CardUid;
use crate::checks::{Checks, Secret};
use crate::engine::{FaceTemplate, StoredFace};
use crate::schedule::{AccessRules, DoorRight, Group, Holiday, Limits, Schedule, Window};

/// `[database]`: where people, cards, faces and the access log are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: String,
    /// The MySQL password when the URL has none; best given as `FACEREKO_DATABASE__PASSWORD_FILE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://facereko.db".into(), password: None }
    }
}

impl DatabaseConfig {
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(Secret::expose)
    }

    /// Relative SQLite paths are taken from `data_dir`.
    pub fn check(&self, data_dir: &Path, checks: &mut Checks) {
        if let Err(fix) = DatabaseUrl::parse(&self.url, data_dir) {
            checks.check(false, "database.url", format!("{:?}: {fix}", DatabaseUrl::redacted(&self.url)));
        }
    }
}

/// A person with how many cards and faces they have, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonSummary {
    pub id: PersonId,
    pub name: String,
    pub cards: u32,
    pub faces: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    pub uid: CardUid,
    pub person: Person,
}

/// An access-log row as stored, newest first when listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub id: i64,
    #[serde(flatten)]
    pub event: AccessEvent,
}

/// Filters for reading the access log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub limit: u32,
    /// Rows to skip (newest first), for pages.
    pub offset: u32,
    pub decision: Option<Decision>,
    pub reason: Option<Reason>,
    /// Only attempts logged with this person's name (ASCII case-insensitive, exact).
    pub person: Option<String>,
    pub card: Option<CardUid>,
    /// Attempts at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Attempts before this time.
    pub until: Option<time::OffsetDateTime>,
    /// Only the attempt with this event id (a link in an e-mail).
    pub event_id: Option<String>,
    /// Only attempts at this door (its `door.id`).
    pub door: Option<String>,
}

/// A face as listed for a person (no descriptor).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceSummary {
    pub id: i64,
    /// What made its template: the engine, and the embedder for on-device descriptors.
    pub engine: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: time::OffsetDateTime,
    /// The enrolment photo under the photos folder; `None` for faces enrolled before photos were kept.
    pub photo: Option<String>,
}

/// An enrolled face with what made it and its enrolment photo, for reindexing.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolledFace {
    pub face: StoredFace,
    pub kind: String,
    pub photo: Option<String>,
}

/// A notification waiting in the outbox for the broker to acknowledge it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub event: AccessEvent,
    /// Times a delivery was started and not acknowledged.
    pub attempts: u32,
}

/// What pruning the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxPruned {
    /// Delivered rows removed.
    pub removed: u64,
    /// Rows still waiting for delivery afterwards.
    pub undelivered: u64,
}

/// A channel that carries messages to people (MQTT goes to a broker through the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone a message goes to, and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Recipient {
    pub channel: Channel,
    /// An e-mail address or a phone number, as the channel takes it.
    pub to: String,
}

/// What an access-log row is announced with, written in the same transaction as the row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notices {
    /// An outbox row for the MQTT publisher.
    #[serde(rename = "notify")]
    pub mqtt: bool,
    /// A message per recipient.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Recipient>,
}

impl Notices {
    pub const NONE: Notices = Notices { mqtt: false, messages: Vec::new() };
    pub const MQTT: Notices = Notices { mqtt: true, messages: Vec::new() };

    pub fn is_empty(&self) -> bool {
        !self.mqtt && self.messages.is_empty()
    }
}

/// A message waiting for its channel.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    pub id: i64,
    pub event: AccessEvent,
    pub to: String,
    /// Times its delivery was tried before.
    pub attempts: u32,
}

/// How a channel's messages stand, for the dashboard and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub waiting: u64,
    pub failed: u64,
    pub delivered: u64,
    /// Why the newest failed or deferred message did not go, if any did not.
    pub last_problem: Option<String>,
}

/// A door of the site as its daemon registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteDoor {
    /// Its `door.id`.
    pub id: String,
    pub name: String,
    /// Where its web app answers, if it serves one.
    pub web_address: Option<String>,
    /// The facereko version it runs.
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: time::OffsetDateTime,
}

/// A login account for the web app. `role` is `admin` for every account so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// An argon2id PHC string, never a password.
    #[serde(skip)]
    pub password_hash: String,
    pub role: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url {url:?} is not supported: {reason}")]
    UnsupportedUrl { url: String, reason: String },
    #[error("cannot open the database at {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("database migration {version} failed: {detail}")]
    Migration { version: u32, detail: String },
    #[error("the database has schema version {found}, newer than this facereko ({known}); upgrade facereko")]
    SchemaTooNew { found: u32, known: u32 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    /// The database server could not be reached; trying again later may succeed.
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
}

/// Bringing the schema up to date.
#[async_trait]
pub trait Schema: Send + Sync {
    /// Applies pending migrations; returns the versions applied now.
    async fn migrate(&self) -> Result<Vec<u32>, StoreError>;
}

/// What the running door asks and writes: the lookups and log row of a tap, the armed state and
/// the outbox backlog of its status. A store that keeps a local copy answers these while its
/// database server is away.
#[async_trait]
pub trait DoorPath: Send + Sync {
    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Person>, StoreError>;
    /// Faces enrolled with `engine`, with a version that changes whenever faces are added or removed.
    async fn faces(&self, engine: &str) -> Result<(u64, Vec<StoredFace>), StoreError>;
    /// The current faces version, cheap enough to ask on every tap.
    async fn faces_version(&self) -> Result<u64, StoreError>;
    /// Writes the log row and the notices it gets (its MQTT outbox row, its messages) in one
    /// transaction. An `event_id` already in the log changes nothing and returns that row's id, so
    /// replaying is safe.
    async fn record_attempt(&self, event: &AccessEvent, notices: &Notices) -> Result<i64, StoreError>;
    async fn armed(&self) -> Result<bool, StoreError>;
    async fn set_armed(&self, armed: bool) -> Result<(), StoreError>;
    /// Schedules, holidays and the limits of every person and card that has any, in one piece:
    /// what the door judges a card's time limits by (and the pages that show them).
    async fn access_rules(&self) -> Result<AccessRules, StoreError>;
    /// Notifications written but not yet delivered.
    async fn outbox_backlog(&self) -> Result<u64, StoreError>;
    /// Writes log rows kept locally for the database (a server that was away) before the daemon
    /// stops; returns how many are still kept. A store that keeps none has nothing to do.
    async fn write_kept_rows(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// What the notifier needs to deliver the outbox.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` undelivered notifications after outbox row `after` (0: from the start), oldest
    /// first, each counted as one more delivery attempt.
    async fn take_pending(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError>;
    /// Marks a notification delivered once the broker has acknowledged it. Unknown ids are ignored.
    async fn mark_delivered(&self, id: i64) -> Result<(), StoreError>;
    /// Removes the oldest delivered rows until at most `keep` rows remain; undelivered rows are never removed.
    async fn prune_outbox(&self, keep: u64) -> Result<OutboxPruned, StoreError>;
}

/// What a channel's deliverer needs: the messages written with access-log rows, each delivered
/// once, retried after a passing failure and given up on after a permanent one.
#[async_trait]
pub trait Messages: Send + Sync {
    /// Up to `limit` of `channel`'s messages that are neither delivered nor failed and are due at
    /// `now_ms`, oldest first. Each of the three outcomes below counts one more try.
    async fn due_messages(&self, channel: Channel, now_ms: i64, limit: u32) -> Result<Vec<QueuedMessage>, StoreError>;
    /// The earliest time a waiting message of `channel` is due, if one is waiting.
    async fn next_due_ms(&self, channel: Channel) -> Result<Option<i64>, StoreError>;
    async fn message_delivered(&self, id: i64) -> Result<(), StoreError>;
    /// Makes every deferred message of `channel` due at `now_ms`: its server answers again.
    async fn deferred_due_now(&self, channel: Channel, now_ms: i64) -> Result<(), StoreError>;
    /// A passing failure: tried again from `retry_at_ms`.
    async fn message_deferred(&self, id: i64, retry_at_ms: i64, problem: &str) -> Result<(), StoreError>;
    /// A permanent failure: never tried again, shown with `problem`.
    async fn message_failed(&self, id: i64, problem: &str) -> Result<(), StoreError>;
    async fn message_counts(&self, channel: Channel) -> Result<MessageCounts, StoreError>;
    /// Removes the oldest delivered or failed messages until at most `keep` remain; waiting ones stay.
    async fn prune_messages(&self, keep: u64) -> Result<u64, StoreError>;
}

/// People with their cards and faces, as enrolment and the admin pages change and list them.
#[async_trait]
pub trait People: Send + Sync {
    async fn add_person(&self, name: &str) -> Result<Person, StoreError>;
    async fn person_by_name(&self, name: &str) -> Result<Option<Person>, StoreError>;
    async fn list_people(&self) -> Result<Vec<PersonSummary>, StoreError>;
    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError>;
    /// The person's cards (uid order).
    async fn person_cards(&self, person: PersonId) -> Result<Vec<CardUid>, StoreError>;
    /// The person's enrolled faces, every engine, oldest first.
    async fn person_faces(&self, person: PersonId) -> Result<Vec<FaceSummary>, StoreError>;

    async fn add_card(&self, uid: &CardUid, person: PersonId) -> Result<(), StoreError>;
    async fn list_cards(&self) -> Result<Vec<Card>, StoreError>;

    async fn add_face(&self, person: PersonId, engine: &str, template: &FaceTemplate) -> Result<i64, StoreError>;
    /// Records a face's enrolment photo (a name under the photos folder).
    async fn set_face_photo(&self, id: i64, photo: &str) -> Result<(), StoreError>;
    /// A face's enrolment photo; `None` if it has none or there is no such face.
    async fn face_photo(&self, id: i64) -> Result<Option<String>, StoreError>;
    /// Every face one engine made, whatever its embedder: kind `engine` or `engine/…`, oldest first.
    async fn faces_of_engine(&self, engine: &str) -> Result<Vec<EnrolledFace>, StoreError>;
    /// Gives a face a new template of another kind (reindexing), keeping its id, person and photo.
    /// NotFound if the face is gone.
    async fn replace_template(&self, id: i64, kind: &str, template: &FaceTemplate) -> Result<(), StoreError>;
}

/// Changing when people and cards may open the door, and which doors of a site a person may use;
/// read back through [`DoorPath::access_rules`].
#[async_trait]
pub trait Schedules: Send + Sync {
    /// Creates the schedule `name` (ASCII case ignored) or replaces its windows and holiday rule.
    async fn save_schedule(
        &self,
        name: &str,
        windows: &[Window],
        open_on_holidays: bool,
    ) -> Result<Schedule, StoreError>;
    /// NotFound if there is none; Conflict while a person or card follows it.
    async fn remove_schedule(&self, name: &str) -> Result<(), StoreError>;
    /// Adds `holiday` (its id is ignored) and returns it with its new id.
    async fn add_holiday(&self, holiday: &Holiday) -> Result<Holiday, StoreError>;
    /// NotFound if there is no holiday with that id.
    async fn remove_holiday(&self, id: i64) -> Result<(), StoreError>;
    /// Replaces a person's limits; no limits set lifts them. NotFound for an unknown person or schedule.
    async fn set_person_limits(&self, person: PersonId, limits: &Limits) -> Result<(), StoreError>;
    /// Replaces a card's own limits, which narrow its holder's. NotFound for an unknown card or schedule.
    async fn set_card_limits(&self, uid: &CardUid, limits: &Limits) -> Result<(), StoreError>;
    /// Keeps a person to the doors of `rights` (an empty list: no door), or with `None` lets them
    /// use every door again. NotFound for an unknown person or schedule; Conflict for a door
    /// listed twice.
    async fn set_door_rights(&self, person: PersonId, rights: Option<&[DoorRight]>) -> Result<(), StoreError>;
}

/// Groups of people and the doors a group may use; read back, with their members, through
/// [`DoorPath::access_rules`] (`groups`), which is what the door decides by.
#[async_trait]
pub trait Groups: Send + Sync {
    /// A new group, its doors not set. Conflict for a name that is taken (ASCII case ignored),
    /// empty or longer than 100 characters.
    async fn add_group(&self, name: &str) -> Result<Group, StoreError>;
    /// NotFound for an unknown group; Conflict as for [`Groups::add_group`].
    async fn rename_group(&self, group: i64, name: &str) -> Result<(), StoreError>;
    /// Removes the group with its memberships and doors (the people stay). NotFound if unknown.
    async fn remove_group(&self, group: i64) -> Result<(), StoreError>;
    /// Adds a member; one already in it stays once. NotFound for an unknown group or person.
    async fn add_member(&self, group: i64, person: PersonId) -> Result<(), StoreError>;
    /// NotFound for an unknown group or a person who is not in it.
    async fn remove_member(&self, group: i64, person: PersonId) -> Result<(), StoreError>;
    /// Keeps the group's members to the doors of `rights` (an empty list: no door), or with
    /// `None` keeps nobody to anything through it. NotFound for an unknown group or schedule;
    /// Conflict for a door listed twice.
    async fn set_group_doors(&self, group: i64, rights: Option<&[DoorRight]>) -> Result<(), StoreError>;
}

/// The doors of a site, each registered by its own daemon.
#[async_trait]
pub trait Doors: Send + Sync {
    /// Adds the door's row or replaces it: the daemon says who it is at start and that it is
    /// still there every so often (`last_seen`).
    async fn register_door(&self, door: &SiteDoor) -> Result<(), StoreError>;
    /// Every registered door, by id.
    async fn list_doors(&self) -> Result<Vec<SiteDoor>, StoreError>;
}

/// Removing people, cards and faces: apart from [`People`] because a store that keeps a local copy
/// for the door must drop them from it at once (a door that loses its server must not go on
/// opening for what was removed).
#[async_trait]
pub trait Removals: Send + Sync {
    /// Deletes the person with their cards and faces; returns the faces so the engine can forget them.
    async fn remove_person(&self, id: PersonId) -> Result<Vec<StoredFace>, StoreError>;
    async fn remove_card(&self, uid: &CardUid) -> Result<(), StoreError>;
    /// Removes one face; returns it so the engine can forget it. NotFound if there is none with that id.
    async fn remove_face(&self, id: i64) -> Result<StoredFace, StoreError>;
}

/// FaceIds of faces removed here whose copy in the Rekognition collection could not be deleted
/// (the cloud was away). Searches ignore them, since only faces in our gallery match; they are
/// kept here so that the copies are deleted later rather than forgotten.
#[async_trait]
pub trait LeftoverFaces: Send + Sync {
    /// Notes a FaceId still to delete; noting it again changes nothing.
    async fn add_leftover(&self, face_id: &str) -> Result<(), StoreError>;
    /// The FaceIds still to delete, in order.
    async fn leftovers(&self) -> Result<Vec<String>, StoreError>;
    /// Forgets a FaceId once its copy is deleted; an unknown one is ignored.
    async fn remove_leftover(&self, face_id: &str) -> Result<(), StoreError>;
}

/// Reading the access log (the door writes it through [`DoorPath::record_attempt`]).
#[async_trait]
pub trait AccessLog: Send + Sync {
    async fn access_log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError>;
    /// How many rows `query` matches, ignoring its limit and offset.
    async fn count_access_log(&self, query: &LogQuery) -> Result<u64, StoreError>;
    /// One access-log row by id.
    async fn log_entry(&self, id: i64) -> Result<Option<LogEntry>, StoreError>;
}

/// The web app's login accounts.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Adds a login account; usernames are unique regardless of ASCII case.
    async fn add_user(&self, username: &str, password_hash: &str, role: &str) -> Result<User, StoreError>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Login accounts, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Removes a login account (case-insensitive name); NotFound if none.
    async fn remove_user(&self, username: &str) -> Result<(), StoreError>;
    /// Replaces an account's password hash; NotFound if none.
    async fn set_password_hash(&self, username: &str, password_hash: &str) -> Result<(), StoreError>;
}

/// The app's own key/value settings.
#[async_trait]
pub trait Settings: Send + Sync {
    /// A value from the `settings` table (key/value text), e.g. the web app's saved door settings.
    /// Keys live apart from the daemon's own settings (the armed state, the faces version).
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Saves a setting, replacing any value. Keys of up to 60 characters and values of up to
    /// 16,383 fit every backend; longer ones are refused (Conflict) rather than cut short.
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Forgets a setting; one that was never saved is no error.
    async fn remove_setting(&self, key: &str) -> Result<(), StoreError>;
}

/// A whole store, passed around as one `Arc<dyn Store>`: each capability is handed out by its
/// accessor, e.g. `store.people().add_person(name)`. A store that serves every capability itself
/// (the SQL backends) is a `Store` through the impl below; a wrapper (the [`resilient`] store)
/// serves what it changes and hands out its inner store for the rest.
pub trait Store: Send + Sync {
    fn schema(&self) -> &dyn Schema;
    fn door(&self) -> &dyn DoorPath;
    fn outbox(&self) -> &dyn Outbox;
    fn messages(&self) -> &dyn Messages;
    fn people(&self) -> &dyn People;
    fn removals(&self) -> &dyn Removals;
    fn schedules(&self) -> &dyn Schedules;
    fn leftovers(&self) -> &dyn LeftoverFaces;
    fn log(&self) -> &dyn AccessLog;
    fn accounts(&self) -> &dyn Accounts;
    fn settings(&self) -> &dyn Settings;
    fn visits(&self) -> &dyn Visits;
    fn known_visitors(&self) -> &dyn KnownVisitors;
    fn api_keys(&self) -> &dyn ApiKeys;
    fn sign_ins(&self) -> &dyn SignIns;
    fn doors(&self) -> &dyn Doors;
    fn groups(&self) -> &dyn Groups;
    fn face_links(&self) -> &dyn FaceLinks;
    fn passkeys(&self) -> &dyn Passkeys;
}

impl<T> Store for T
where
    T: Schema
        + DoorPath
        + Outbox
        + Messages
        + People
        + Removals
        + Schedules
        + LeftoverFaces
        + AccessLog
        + Accounts
        + Settings
        + Visits
        + KnownVisitors
        + ApiKeys
        + SignIns
        + Doors
        + Groups
        + FaceLinks
        + Passkeys,
{
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn door(&self) -> &dyn DoorPath {
        self
    }
    fn outbox(&self) -> &dyn Outbox {
        self
    }
    fn messages(&self) -> &dyn Messages {
        self
    }
    fn people(&self) -> &dyn People {
        self
    }
    fn removals(&self) -> &dyn Removals {
        self
    }
    fn schedules(&self) -> &dyn Schedules {
        self
    }
    fn leftovers(&self) -> &dyn LeftoverFaces {
        self
    }
    fn log(&self) -> &dyn AccessLog {
        self
    }
    fn accounts(&self) -> &dyn Accounts {
        self
    }
    fn settings(&self) -> &dyn Settings {
        self
    }
    fn visits(&self) -> &dyn Visits {
        self
    }
    fn known_visitors(&self) -> &dyn KnownVisitors {
        self
    }
    fn api_keys(&self) -> &dyn ApiKeys {
        self
    }
    fn sign_ins(&self) -> &dyn SignIns {
        self
    }
    fn doors(&self) -> &dyn Doors {
        self
    }
    fn groups(&self) -> &dyn Groups {
        self
    }
    fn face_links(&self) -> &dyn FaceLinks {
        self
    }
    fn passkeys(&self) -> &dyn Passkeys {
        self
    }
}

/// The database a `database.url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    /// A MySQL or MariaDB server, as `mysql://user[:password]@host[:port]/database`.
    Mysql(String),
}

impl DatabaseUrl {
    /// Parses `url`; relative SQLite paths are taken from `data_dir`. The error says how to fix it.
    pub fn parse(url: &str, data_dir: &Path) -> Result<Self, String> {
        match url.split_once("://") {
            Some(("sqlite", "")) => Err("the SQLite URL has no file name; use sqlite://facereko.db".into()),
            Some(("sqlite", path)) => Ok(Self::Sqlite(data_dir.join(path))),
            Some(("mysql", _)) => mysql::check_url(url).map(|()| Self::Mysql(url.to_owned())),
            _ => Err("use sqlite://<file> (relative to data_dir), sqlite:///<absolute path> \
                      or mysql://user@host[:port]/database"
                .into()),
        }
    }

    /// `url` with any password replaced by `***`, fit to print or log.
    pub fn redacted(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
        let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
        let Some((credentials, host)) = authority.rsplit_once('@') else { return url.to_owned() };
        let Some((user, _password)) = credentials.split_once(':') else { return url.to_owned() };
        let path = path.map(|p| format!("/{p}")).unwrap_or_default();
        format!("{scheme}://{user}:***@{host}{path}")
    }
}

fn parse_url(database: &DatabaseConfig, data_dir: &Path) -> Result<DatabaseUrl, StoreError> {
    let url = &database.url;
    DatabaseUrl::parse(url, data_dir)
        .map_err(|reason| StoreError::UnsupportedUrl { url: DatabaseUrl::redacted(url), reason })
}

/// Connects to the database `database` names, without touching its schema or falling back to a
/// local copy: what `db migrate` and `db import-legacy` want.
pub async fn connect(database: &DatabaseConfig, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match parse_url(database, data_dir)? {
        DatabaseUrl::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(&path).await?),
        DatabaseUrl::Mysql(url) => Arc::new(mysql::MysqlStore::connect(&url, database.password())?),
    };
    Ok(store)
}

/// Connects and brings the schema up to date, as every command but `db migrate` wants. A MySQL
/// server is used through a local copy in `data_dir`, so that the door keeps working while the
/// server is away (see [`resilient`]).
pub async fn open(database: &DatabaseConfig, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    match parse_url(database, data_dir)? {
        DatabaseUrl::Sqlite(path) => {
            let store = sqlite::SqliteStore::open(&path).await?;
            store.schema().migrate().await?;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Mysql(url) => {
            let reachability = Arc::new(resilient::Reachability::default());
            let server = mysql::MysqlStore::connect(&url, database.password())?.reporting_to(Arc::clone(&reachability));
            let cache = data_dir.join(resilient::CACHE_FILE);
            Ok(Arc::new(resilient::ResilientStore::start(Arc::new(server), reachability, &cache).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(DatabaseUrl::redacted("mysql://door:s3cr@t@db:3306/facereko"), "mysql://door:***@db:3306/facereko");
        assert_eq!(DatabaseUrl::redacted("mysql://door@db/facereko"), "mysql://door@db/facereko");
        assert_eq!(DatabaseUrl::redacted("sqlite://facereko.db"), "sqlite://facereko.db");
    }

    #[test]
    fn mysql_urls_need_a_database_name() {
        let data_dir = Path::new("/tmp");
        assert!(DatabaseUrl::parse("mysql://door@db/facereko", data_dir).is_ok());
        let missing = DatabaseUrl::parse("mysql://door@db", data_dir).unwrap_err();
        assert!(missing.contains("mysql://door@db/facereko"), "{missing}");
    }
}
