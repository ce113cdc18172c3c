//! MySQL and MariaDB backend, through a small connection pool.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts, Value};
use time::OffsetDateTime;

use super::group_rows;
use super::migrations::{self, Migration, Migrator};
use super::resilient::Reachability;
use super::rows::{self, ARMED_KEY, FACES_VERSION_KEY, LogRow, now_ms, to_millis};
use super::schedule_rows::{self, RulesRows};
use super::sign_in_rows::{self, SignInRow};
use super::site_rows;
use super::visit_rows::{self, PassRow, VisitRow};
use super::visitor_rows::{self, ForgetVisitors, KnownVisitorRow};
use super::{
    AccessLog, Accounts, Card, Channel, DoorPath, Doors, EnrolledFace, FaceSummary, Groups, LeftoverFaces, LogEntry,
    LogQuery, MessageCounts, Messages, NewPass, NewVisit, Notices, Outbox, OutboxItem, OutboxPruned, PassKind, People,
    PersonSummary, QueuedMessage, Recipient, Removals, Schedules, Schema, Settings, SiteDoor, StoreError, StoredPass,
    User, Visit, VisitId, VisitQuery, VisitStatus, Visits,
};
use super::{ApiKey, ApiKeys};
use super::{FaceLink, FaceLinks};
use super::{KnownVisitor, KnownVisitors, VisitorDetails, VisitorFace, VisitorId};
use super::{NewPasskey, Passkeys, StoredPasskey};
use super::{SignInAttempt, SignInEntry, SignInQuery, SignIns};
use crate::access::AccessEvent;
use crate::access::{Person, PersonId};
use crate::card::CardUid;
use crate::engine::{FaceTemplate, StoredFace};
use crate::schedule::{AccessRules, DoorRight, Group, Holiday, Limits, Schedule, Window};

/// How long `migrate` waits for another facereko that is migrating the same database.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);

/// A door needs few connections; a Pi should not hold many.
const MAX_CONNECTIONS: usize = 4;

// Server error codes (https://mariadb.com/kb/en/mariadb-error-code-reference/).
const ER_DUP_ENTRY: u16 = 1062;
const ER_CON_COUNT_ERROR: u16 = 1040;
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_CONNECTION_KILLED: u16 = 1927;

pub struct MysqlStore {
    pool: Pool,
    /// Told when a connection cannot be made, whoever asked (the local copy then answers the door).
    reachability: Option<Arc<Reachability>>,
}

/// Checks a `mysql://` URL; the error says how to fix it.
pub fn check_url(url: &str) -> Result<(), String> {
    let opts = Opts::from_url(url).map_err(|e| format!("{e}; use mysql://user@host[:port]/database"))?;
    if opts.db_name().is_none_or(str::is_empty) {
        let example = format!("{}/facereko", url.trim_end_matches('/'));
        return Err(format!("the URL names no database; add it, e.g. {}", super::DatabaseUrl::redacted(&example)));
    }
    if opts.user().is_none_or(str::is_empty) {
        return Err("the URL names no user; use mysql://user@host[:port]/database".into());
    }
    Ok(())
}

pub(super) fn db_error(e: mysql_async::Error) -> StoreError {
    use mysql_async::{DriverError, Error};
    match &e {
        Error::Io(_) | Error::Driver(DriverError::ConnectionClosed | DriverError::PoolDisconnected) => {
            StoreError::Unreachable(e.to_string())
        }
        Error::Server(s) if [ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED].contains(&s.code) => {
            StoreError::Unreachable(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

fn is_duplicate(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_DUP_ENTRY)
}

/// A row names a parent row that is not there (`ER_NO_REFERENCED_ROW_2`).
fn is_missing_parent(e: &mysql_async::Error) -> bool {
    const ER_NO_REFERENCED_ROW_2: u16 = 1452;
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_NO_REFERENCED_ROW_2)
}

fn inserted_id(id: Option<u64>) -> Result<i64, StoreError> {
    id.and_then(|id| i64::try_from(id).ok())
        .ok_or_else(|| StoreError::Database("the server reported no id for the new row".into()))
}

async fn bump_faces_version(conn: &mut impl Queryable) -> Result<(), StoreError> {
    conn.exec_drop(
        "INSERT INTO settings(name, value) VALUES (?, '1')
         ON DUPLICATE KEY UPDATE value = CAST(value AS UNSIGNED) + 1",
        (FACES_VERSION_KEY,),
    )
    .await
    .map_err(db_error)
}

async fn read_setting(conn: &mut impl Queryable, name: &str) -> Result<Option<String>, StoreError> {
    conn.exec_first("SELECT value FROM settings WHERE name = ?", (name,)).await.map_err(db_error)
}

async fn write_setting(conn: &mut impl Queryable, name: &str, value: &str) -> Result<(), StoreError> {
    conn.exec_drop(
        "INSERT INTO settings(name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)",
        (name, value),
    )
    .await
    .map_err(db_error)
}

/// `person_name` against the lower-cased name, folding ASCII letters only as SQLite's NOCASE and
/// `name_key` do: LOWER() and the `_ci` collations also fold other letters, and accents. Compared
/// as bytes, so that trailing spaces count too.
static PERSON_NAME_MATCHES: LazyLock<String> = LazyLock::new(|| {
    let folded = ('A'..='Z').fold(String::from("person_name"), |sql, upper| {
        format!("REPLACE({sql}, '{upper}', '{}')", upper.to_ascii_lowercase())
    });
    format!("CAST({folded} AS BINARY) = CAST(? AS BINARY)")
});

/// A `people` row: id, name.
fn person_row((id, name): (i64, String)) -> Person {
    Person { id: PersonId(id), name }
}

/// A `users` row: id, username, password hash, role.
type UserRow = (i64, String, String, String);

fn user_row((id, username, password_hash, role): UserRow) -> User {
    User { id, username, password_hash, role }
}

/// A `faces` row: id, person, descriptor, remote id.
type FaceRow = (i64, i64, Option<Vec<u8>>, Option<String>);

async fn faces_where(conn: &mut impl Queryable, sql: &str, param: Value) -> Result<Vec<StoredFace>, StoreError> {
    let found: Vec<FaceRow> = conn.exec(sql, (param,)).await.map_err(db_error)?;
    found
        .into_iter()
        .map(|(id, person, descriptor, remote)| {
            let template = rows::face_template(id, descriptor, remote).map_err(StoreError::Database)?;
            Ok(StoredFace { id, person: PersonId(person), template })
        })
        .collect()
}

impl MysqlStore {
    /// A pool for `url`; `password` is used when the URL has none. Connects only when first used.
    pub fn connect(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let opts = Opts::from_url(url).map_err(|e| StoreError::UnsupportedUrl {
            url: super::DatabaseUrl::redacted(url),
            reason: format!("{e}; use mysql://user@host[:port]/database"),
        })?;
        let url_has_password = opts.pass().is_some();
        let constraints = PoolConstraints::new(0, MAX_CONNECTIONS).unwrap_or_default();
        // prefer_socket(false): connect where the URL says, never switch to the server's local socket.
        // client_found_rows: an UPDATE reports the rows it matched, not only those it changed, so
        // saving the same password hash again is not taken for a missing user.
        let mut builder = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::new().with_constraints(constraints))
            .prefer_socket(false)
            .client_found_rows(true);
        if !url_has_password {
            builder = builder.pass(password);
        }
        Ok(Self { pool: Pool::new(builder), reachability: None })
    }

    /// This store, reporting the outages its connections run into to `reachability`.
    pub fn reporting_to(self, reachability: Arc<Reachability>) -> Self {
        Self { reachability: Some(reachability), ..self }
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get_conn().await.map_err(|e| {
            let error = db_error(e);
            if let (StoreError::Unreachable(_), Some(reachability)) = (&error, &self.reachability) {
                reachability.went_offline(&error);
            }
            error
        })
    }

    async fn stored_faces_of(conn: &mut impl Queryable, id: PersonId) -> Result<Vec<StoredFace>, StoreError> {
        let sql = "SELECT id, person_id, descriptor, remote_id FROM faces WHERE person_id = ? ORDER BY id";
        faces_where(conn, sql, Value::from(id.0)).await
    }
}

#[async_trait]
impl Schema for MysqlStore {
    async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let mut conn = self.conn().await?;
        // Two daemons starting together must not both run a migration: the lock is per database
        // and is released when this connection ends, even if we crash.
        let wait = MIGRATION_LOCK_WAIT.as_secs();
        let locked: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(CONCAT('facereko-migrate:', DATABASE()), ?)", (wait,))
            .await
            .map_err(db_error)?;
        if locked.flatten() != Some(1) {
            return Err(StoreError::Database(format!(
                "another facereko has been migrating this database for over {wait} s; try again when it is done"
            )));
        }
        let applied = migrations::run(&mut MysqlMigrator(&mut conn)).await;
        let released = conn.query_drop("DO RELEASE_LOCK(CONCAT('facereko-migrate:', DATABASE()))").await;
        let applied = applied?;
        released.map_err(db_error)?;
        Ok(applied)
    }
}

/// The connection that holds the migration lock.
struct MysqlMigrator<'a>(&'a mut Conn);

impl Migrator for MysqlMigrator<'_> {
    async fn current_version(&mut self) -> Result<u32, StoreError> {
        self.0
            .query_drop("CREATE TABLE IF NOT EXISTS schema_migrations (version INT NOT NULL PRIMARY KEY, applied_ms BIGINT NOT NULL) ENGINE = InnoDB")
            .await
            .map_err(db_error)?;
        let current: Option<u32> =
            self.0.query_first("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").await.map_err(db_error)?;
        Ok(current.unwrap_or(0))
    }

    /// MySQL commits each CREATE at once; the version is recorded only after all of them worked.
    async fn apply(&mut self, migration: &'static Migration) -> Result<(), StoreError> {
        let failed = |e: mysql_async::Error| migration.failed(e);
        self.0.query_drop(migration.mysql).await.map_err(failed)?;
        self.0
            .exec_drop(
                "INSERT INTO schema_migrations(version, applied_ms) VALUES (?, ?)",
                (migration.version, now_ms()),
            )
            .await
            .map_err(failed)
    }
}

#[async_trait]
impl DoorPath for MysqlStore {
    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Person>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<(i64, String)> = conn
            .exec_first(
                "SELECT p.id, p.name FROM cards c JOIN people p ON p.id = c.person_id WHERE c.uid = ?",
                (uid.as_str(),),
            )
            .await
            .map_err(db_error)?;
        Ok(found.map(person_row))
    }

    async fn faces(&self, engine: &str) -> Result<(u64, Vec<StoredFace>), StoreError> {
        let mut conn = self.conn().await?;
        // One snapshot, so the version always describes the faces read with it.
        let mut snapshot = TxOpts::default();
        snapshot.with_consistent_snapshot(true).with_readonly(Some(true));
        let mut tx = conn.start_transaction(snapshot).await.map_err(db_error)?;
        let version = rows::parse_faces_version(read_setting(&mut tx, FACES_VERSION_KEY).await?.as_deref());
        let sql = "SELECT id, person_id, descriptor, remote_id FROM faces WHERE engine = ? ORDER BY id";
        let faces = faces_where(&mut tx, sql, Value::from(engine)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok((version, faces))
    }

    async fn faces_version(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        Ok(rows::parse_faces_version(read_setting(&mut conn, FACES_VERSION_KEY).await?.as_deref()))
    }

    async fn record_attempt(&self, event: &AccessEvent, notices: &Notices) -> Result<i64, StoreError> {
        let row = LogRow::from_event(event);
        let outbox = if notices.mqtt { Some(rows::outbox_payload(event)?) } else { None };
        let payload = if notices.messages.is_empty() { String::new() } else { rows::event_payload(event)? };
        let event_id = row.event_id.clone();
        let values: [Value; rows::LOG_COLUMNS.len()] = row.into_values();
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let inserted = tx.exec_drop(rows::INSERT_LOG_ROW.as_str(), Vec::from(values)).await;
        match inserted {
            Ok(()) => {}
            Err(e) if is_duplicate(&e) => {
                tx.rollback().await.map_err(db_error)?;
                let existing: Option<i64> = conn
                    .exec_first("SELECT id FROM access_log WHERE event_id = ?", (&event_id,))
                    .await
                    .map_err(db_error)?;
                return existing.ok_or_else(|| StoreError::Database(format!("event {event_id} vanished")));
            }
            Err(e) => return Err(db_error(e)),
        }
        let id = inserted_id(tx.last_insert_id())?;
        if let Some((kind, payload)) = outbox {
            tx.exec_drop(
                "INSERT INTO outbox(event_id, kind, payload, created_ms) VALUES (?, ?, ?, ?)",
                (&event_id, kind, payload, now_ms()),
            )
            .await
            .map_err(db_error)?;
        }
        for Recipient { channel, to } in &notices.messages {
            let now = now_ms();
            tx.exec_drop(
                "INSERT IGNORE INTO messages(event_id, channel, recipient, payload, created_ms, due_ms) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                (&event_id, channel.as_str(), to, &payload, now, now),
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(id)
    }

    async fn armed(&self) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        rows::parse_armed(read_setting(&mut conn, ARMED_KEY).await?.as_deref())
    }

    async fn set_armed(&self, armed: bool) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        write_setting(&mut conn, ARMED_KEY, &armed.to_string()).await
    }

    async fn access_rules(&self) -> Result<AccessRules, StoreError> {
        let mut conn = self.conn().await?;
        // One snapshot, so limits never name a schedule read without them.
        let mut snapshot = TxOpts::default();
        snapshot.with_consistent_snapshot(true).with_readonly(Some(true));
        let mut tx = conn.start_transaction(snapshot).await.map_err(db_error)?;
        let rules = read_access_rules(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(rules)
    }

    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let count: Option<u64> =
            conn.query_first("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL").await.map_err(db_error)?;
        Ok(count.unwrap_or(0))
    }
}

#[async_trait]
impl Outbox for MysqlStore {
    async fn take_pending(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        // FOR UPDATE: two deliverers never count the same attempt twice.
        let pending: Vec<(i64, String, u32)> = tx
            .exec(
                "SELECT id, payload, attempts FROM outbox WHERE delivered_ms IS NULL AND id > ? \
                 ORDER BY id LIMIT ? FOR UPDATE",
                (after, limit),
            )
            .await
            .map_err(db_error)?;
        let mut items = Vec::with_capacity(pending.len());
        for (id, payload, attempts) in pending {
            tx.exec_drop("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (id,)).await.map_err(db_error)?;
            items.push(OutboxItem { id, event: rows::outbox_event(id, &payload)?, attempts: attempts + 1 });
        }
        tx.commit().await.map_err(db_error)?;
        Ok(items)
    }

    async fn mark_delivered(&self, id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("UPDATE outbox SET delivered_ms = ? WHERE id = ? AND delivered_ms IS NULL", (now_ms(), id))
            .await
            .map_err(db_error)
    }

    async fn prune_outbox(&self, keep: u64) -> Result<OutboxPruned, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let total: Option<u64> = tx.query_first("SELECT COUNT(*) FROM outbox").await.map_err(db_error)?;
        let excess = total.unwrap_or(0).saturating_sub(keep);
        // MySQL cannot LIMIT a subquery on the table it deletes from, but DELETE itself takes ORDER BY and LIMIT.
        tx.exec_drop("DELETE FROM outbox WHERE delivered_ms IS NOT NULL ORDER BY id LIMIT ?", (excess,))
            .await
            .map_err(db_error)?;
        let removed = tx.affected_rows();
        let undelivered: Option<u64> =
            tx.query_first("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL").await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(OutboxPruned { removed, undelivered: undelivered.unwrap_or(0) })
    }
}

#[async_trait]
impl Messages for MysqlStore {
    async fn due_messages(&self, channel: Channel, now_ms: i64, limit: u32) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<(i64, String, String, u32)> = conn
            .exec(
                format!(
                    "SELECT id, payload, recipient, attempts FROM messages \
                     WHERE channel = ? AND {} AND due_ms <= ? ORDER BY id LIMIT ?",
                    rows::MESSAGE_WAITS
                ),
                (channel.as_str(), now_ms, limit),
            )
            .await
            .map_err(db_error)?;
        rows.into_iter().map(|(id, payload, to, attempts)| rows::queued_message(id, &payload, to, attempts)).collect()
    }

    async fn next_due_ms(&self, channel: Channel) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn().await?;
        let due: Option<Option<i64>> = conn
            .exec_first(
                format!("SELECT MIN(due_ms) FROM messages WHERE channel = ? AND {}", rows::MESSAGE_WAITS),
                (channel.as_str(),),
            )
            .await
            .map_err(db_error)?;
        Ok(due.flatten())
    }

    async fn message_delivered(&self, id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            format!(
                "UPDATE messages SET delivered_ms = ?, problem = NULL, attempts = attempts + 1 WHERE id = ? AND {}",
                rows::MESSAGE_WAITS
            ),
            (now_ms(), id),
        )
        .await
        .map_err(db_error)
    }

    async fn deferred_due_now(&self, channel: Channel, now_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            format!("UPDATE messages SET due_ms = ? WHERE channel = ? AND {} AND due_ms > ?", rows::MESSAGE_WAITS),
            (now_ms, channel.as_str(), now_ms),
        )
        .await
        .map_err(db_error)
    }

    async fn message_deferred(&self, id: i64, retry_at_ms: i64, problem: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            format!(
                "UPDATE messages SET due_ms = ?, problem = ?, attempts = attempts + 1 WHERE id = ? AND {}",
                rows::MESSAGE_WAITS
            ),
            (retry_at_ms, problem, id),
        )
        .await
        .map_err(db_error)
    }

    async fn message_failed(&self, id: i64, problem: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            format!(
                "UPDATE messages SET failed_ms = ?, problem = ?, attempts = attempts + 1 WHERE id = ? AND {}",
                rows::MESSAGE_WAITS
            ),
            (now_ms(), problem, id),
        )
        .await
        .map_err(db_error)
    }

    async fn message_counts(&self, channel: Channel) -> Result<MessageCounts, StoreError> {
        let mut conn = self.conn().await?;
        let counts: Option<(Option<u64>, Option<u64>, Option<u64>)> = conn
            .exec_first(
                "SELECT SUM(delivered_ms IS NULL AND failed_ms IS NULL), SUM(failed_ms IS NOT NULL), \
                 SUM(delivered_ms IS NOT NULL) FROM messages WHERE channel = ?",
                (channel.as_str(),),
            )
            .await
            .map_err(db_error)?;
        let last_problem: Option<String> = conn
            .exec_first(
                "SELECT problem FROM messages WHERE channel = ? AND delivered_ms IS NULL AND problem IS NOT NULL \
                 ORDER BY id DESC LIMIT 1",
                (channel.as_str(),),
            )
            .await
            .map_err(db_error)?;
        let (waiting, failed, delivered) = counts.unwrap_or_default();
        Ok(MessageCounts {
            waiting: waiting.unwrap_or(0),
            failed: failed.unwrap_or(0),
            delivered: delivered.unwrap_or(0),
            last_problem,
        })
    }

    async fn prune_messages(&self, keep: u64) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let total: Option<u64> = tx.query_first("SELECT COUNT(*) FROM messages").await.map_err(db_error)?;
        let excess = total.unwrap_or(0).saturating_sub(keep);
        tx.exec_drop(
            format!("DELETE FROM messages WHERE NOT ({}) ORDER BY id LIMIT ?", rows::MESSAGE_WAITS),
            (excess,),
        )
        .await
        .map_err(db_error)?;
        let removed = tx.affected_rows();
        tx.commit().await.map_err(db_error)?;
        Ok(removed)
    }
}

#[async_trait]
impl People for MysqlStore {
    async fn add_person(&self, name: &str) -> Result<Person, StoreError> {
        let name = name.trim().to_owned();
        let mut conn = self.conn().await?;
        let inserted = conn
            .exec_drop(
                "INSERT INTO people(name, name_key, created_ms) VALUES (?, ?, ?)",
                (&name, rows::name_key(&name), now_ms()),
            )
            .await;
        match inserted {
            Ok(()) => Ok(Person { id: PersonId(inserted_id(conn.last_insert_id())?), name }),
            Err(e) if is_duplicate(&e) => Err(rows::person_exists(&name)),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn person_by_name(&self, name: &str) -> Result<Option<Person>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<(i64, String)> = conn
            .exec_first("SELECT id, name FROM people WHERE name_key = ?", (rows::name_key(name.trim()),))
            .await
            .map_err(db_error)?;
        Ok(found.map(person_row))
    }

    async fn list_people(&self) -> Result<Vec<PersonSummary>, StoreError> {
        let mut conn = self.conn().await?;
        let people: Vec<(i64, String, u32, u32)> = conn
            .query(
                "SELECT p.id, p.name,
                        (SELECT COUNT(*) FROM cards c WHERE c.person_id = p.id),
                        (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id)
                 FROM people p ORDER BY p.name_key",
            )
            .await
            .map_err(db_error)?;
        Ok(people
            .into_iter()
            .map(|(id, name, cards, faces)| PersonSummary { id: PersonId(id), name, cards, faces })
            .collect())
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<(i64, String)> =
            conn.exec_first("SELECT id, name FROM people WHERE id = ?", (id.0,)).await.map_err(db_error)?;
        Ok(found.map(person_row))
    }

    async fn person_cards(&self, person: PersonId) -> Result<Vec<CardUid>, StoreError> {
        let mut conn = self.conn().await?;
        let uids: Vec<String> =
            conn.exec("SELECT uid FROM cards WHERE person_id = ? ORDER BY uid", (person.0,)).await.map_err(db_error)?;
        uids.iter().map(|uid| rows::parse_card(uid)).collect()
    }

    async fn person_faces(&self, person: PersonId) -> Result<Vec<FaceSummary>, StoreError> {
        let mut conn = self.conn().await?;
        let faces: Vec<(i64, String, i64, Option<String>)> = conn
            .exec("SELECT id, engine, created_ms, photo FROM faces WHERE person_id = ? ORDER BY id", (person.0,))
            .await
            .map_err(db_error)?;
        Ok(faces
            .into_iter()
            .map(|(id, engine, created_ms, photo)| FaceSummary {
                id,
                engine,
                created: rows::from_millis(created_ms),
                photo,
            })
            .collect())
    }

    async fn add_card(&self, uid: &CardUid, person: PersonId) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let holder: Option<String> = conn
            .exec_first(
                "SELECT p.name FROM cards c JOIN people p ON p.id = c.person_id WHERE c.uid = ?",
                (uid.as_str(),),
            )
            .await
            .map_err(db_error)?;
        if let Some(name) = holder {
            return Err(rows::card_taken(uid, &name));
        }
        conn.exec_drop(
            "INSERT INTO cards(uid, person_id, created_ms) VALUES (?, ?, ?)",
            (uid.as_str(), person.0, now_ms()),
        )
        .await
        .map_err(db_error)
    }

    async fn list_cards(&self) -> Result<Vec<Card>, StoreError> {
        let mut conn = self.conn().await?;
        let cards: Vec<(String, i64, String)> = conn
            .query("SELECT c.uid, p.id, p.name FROM cards c JOIN people p ON p.id = c.person_id ORDER BY p.name_key, c.uid")
            .await
            .map_err(db_error)?;
        cards
            .into_iter()
            .map(|(uid, id, name)| Ok(Card { uid: rows::parse_card(&uid)?, person: Person { id: PersonId(id), name } }))
            .collect()
    }

    async fn add_face(&self, person: PersonId, engine: &str, template: &FaceTemplate) -> Result<i64, StoreError> {
        rows::check_template(template)?;
        let (descriptor, remote) = rows::face_columns(template);
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        tx.exec_drop(
            "INSERT INTO faces(person_id, engine, descriptor, remote_id, created_ms) VALUES (?, ?, ?, ?, ?)",
            (person.0, engine, descriptor, remote, now_ms()),
        )
        .await
        .map_err(db_error)?;
        let id = inserted_id(tx.last_insert_id())?;
        bump_faces_version(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(id)
    }

    async fn set_face_photo(&self, id: i64, photo: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("UPDATE faces SET photo = ? WHERE id = ?", (photo, id)).await.map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(rows::no_face(id)),
            _ => Ok(()),
        }
    }

    async fn face_photo(&self, id: i64) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        let photo: Option<Option<String>> =
            conn.exec_first("SELECT photo FROM faces WHERE id = ?", (id,)).await.map_err(db_error)?;
        Ok(photo.flatten())
    }

    async fn faces_of_engine(&self, engine: &str) -> Result<Vec<EnrolledFace>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Vec<(i64, i64, Option<Vec<u8>>, Option<String>, String, Option<String>)> = conn
            .exec(
                "SELECT id, person_id, descriptor, remote_id, engine, photo FROM faces \
                 WHERE engine = ? OR engine LIKE ? ORDER BY id",
                (engine, format!("{engine}/%")),
            )
            .await
            .map_err(db_error)?;
        found
            .into_iter()
            .map(|(id, person, descriptor, remote, kind, photo)| {
                let template = rows::face_template(id, descriptor, remote).map_err(StoreError::Database)?;
                Ok(EnrolledFace { face: StoredFace { id, person: PersonId(person), template }, kind, photo })
            })
            .collect()
    }

    async fn replace_template(&self, id: i64, kind: &str, template: &FaceTemplate) -> Result<(), StoreError> {
        rows::check_template(template)?;
        let (descriptor, remote) = rows::face_columns(template);
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        tx.exec_drop(
            "UPDATE faces SET engine = ?, descriptor = ?, remote_id = ? WHERE id = ?",
            (kind, descriptor, remote, id),
        )
        .await
        .map_err(db_error)?;
        if tx.affected_rows() == 0 {
            return Err(rows::no_face(id));
        }
        bump_faces_version(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }
}

#[async_trait]
impl Removals for MysqlStore {
    async fn remove_person(&self, id: PersonId) -> Result<Vec<StoredFace>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let faces = Self::stored_faces_of(&mut tx, id).await?;
        tx.exec_drop("DELETE FROM people WHERE id = ?", (id.0,)).await.map_err(db_error)?;
        if tx.affected_rows() == 0 {
            return Err(rows::no_person(id));
        }
        if !faces.is_empty() {
            bump_faces_version(&mut tx).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(faces)
    }

    async fn remove_card(&self, uid: &CardUid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM cards WHERE uid = ?", (uid.as_str(),)).await.map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(rows::card_not_enrolled(uid)),
            _ => Ok(()),
        }
    }

    async fn remove_face(&self, id: i64) -> Result<StoredFace, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        // FOR UPDATE: of two removals at once, the second waits and then finds nothing.
        let sql = "SELECT id, person_id, descriptor, remote_id FROM faces WHERE id = ? FOR UPDATE";
        let face = faces_where(&mut tx, sql, Value::from(id)).await?.pop().ok_or_else(|| rows::no_face(id))?;
        tx.exec_drop("DELETE FROM faces WHERE id = ?", (id,)).await.map_err(db_error)?;
        bump_faces_version(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(face)
    }
}

#[async_trait]
impl LeftoverFaces for MysqlStore {
    async fn add_leftover(&self, face_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "INSERT INTO leftover_faces(face_id, created_ms) VALUES (?, ?) ON DUPLICATE KEY UPDATE face_id = face_id",
            (face_id, now_ms()),
        )
        .await
        .map_err(db_error)
    }

    async fn leftovers(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn().await?;
        conn.query("SELECT face_id FROM leftover_faces ORDER BY face_id").await.map_err(db_error)
    }

    async fn remove_leftover(&self, face_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM leftover_faces WHERE face_id = ?", (face_id,)).await.map_err(db_error)
    }
}

#[async_trait]
impl AccessLog for MysqlStore {
    async fn access_log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let (filter, mut args) = rows::log_filter::<Value>(query, &PERSON_NAME_MATCHES);
        args.extend([Value::from(query.limit), Value::from(query.offset)]);
        let mut conn = self.conn().await?;
        let found: Vec<LogRow> = conn.exec(rows::log_page_sql(&filter), args).await.map_err(db_error)?;
        found.into_iter().map(LogRow::into_entry).collect()
    }

    async fn count_access_log(&self, query: &LogQuery) -> Result<u64, StoreError> {
        let (filter, args) = rows::log_filter::<Value>(query, &PERSON_NAME_MATCHES);
        let mut conn = self.conn().await?;
        let count: Option<u64> = conn.exec_first(rows::log_count_sql(&filter), args).await.map_err(db_error)?;
        Ok(count.unwrap_or(0))
    }

    async fn log_entry(&self, id: i64) -> Result<Option<LogEntry>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<LogRow> = conn.exec_first(rows::SELECT_LOG_ENTRY.as_str(), (id,)).await.map_err(db_error)?;
        found.map(LogRow::into_entry).transpose()
    }
}

#[async_trait]
impl Accounts for MysqlStore {
    async fn add_user(&self, username: &str, password_hash: &str, role: &str) -> Result<User, StoreError> {
        let mut conn = self.conn().await?;
        let inserted = conn
            .exec_drop(
                "INSERT INTO users(username, username_key, password_hash, role, created_ms) VALUES (?, ?, ?, ?, ?)",
                (username, rows::name_key(username), password_hash, role, now_ms()),
            )
            .await;
        match inserted {
            Ok(()) => Ok(User {
                id: inserted_id(conn.last_insert_id())?,
                username: username.to_owned(),
                password_hash: password_hash.to_owned(),
                role: role.to_owned(),
            }),
            Err(e) if is_duplicate(&e) => Err(rows::user_exists(username)),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<UserRow> = conn
            .exec_first(
                "SELECT id, username, password_hash, role FROM users WHERE username_key = ?",
                (rows::name_key(username),),
            )
            .await
            .map_err(db_error)?;
        Ok(found.map(user_row))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut conn = self.conn().await?;
        let users: Vec<UserRow> = conn
            .query("SELECT id, username, password_hash, role FROM users ORDER BY username_key")
            .await
            .map_err(db_error)?;
        Ok(users.into_iter().map(user_row).collect())
    }

    async fn remove_user(&self, username: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM users WHERE username_key = ?", (rows::name_key(username),))
            .await
            .map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(rows::no_user(username)),
            _ => Ok(()),
        }
    }

    async fn set_password_hash(&self, username: &str, password_hash: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "UPDATE users SET password_hash = ? WHERE username_key = ?",
            (password_hash, rows::name_key(username)),
        )
        .await
        .map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(rows::no_user(username)),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Settings for MysqlStore {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        read_setting(&mut conn, &rows::app_setting(key)).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let name = rows::app_setting_to_save(key, value)?;
        let mut conn = self.conn().await?;
        write_setting(&mut conn, &name, value).await
    }

    async fn remove_setting(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM settings WHERE name = ?", (rows::app_setting(key),)).await.map_err(db_error)
    }
}

async fn read_access_rules(conn: &mut impl Queryable) -> Result<AccessRules, StoreError> {
    RulesRows {
        schedules: conn.query(schedule_rows::SELECT_SCHEDULES).await.map_err(db_error)?,
        windows: conn.query(schedule_rows::SELECT_WINDOWS).await.map_err(db_error)?,
        holidays: conn.query(schedule_rows::SELECT_HOLIDAYS).await.map_err(db_error)?,
        people: conn.query(schedule_rows::SELECT_PERSON_LIMITS).await.map_err(db_error)?,
        cards: conn.query(schedule_rows::SELECT_CARD_LIMITS).await.map_err(db_error)?,
        doors: conn.query(schedule_rows::SELECT_DOOR_RIGHTS).await.map_err(db_error)?,
        groups: conn.query(group_rows::SELECT_GROUPS).await.map_err(db_error)?,
        members: conn.query(group_rows::SELECT_MEMBERS).await.map_err(db_error)?,
        group_doors: conn.query(group_rows::SELECT_GROUP_DOORS).await.map_err(db_error)?,
    }
    .into_rules()
}

async fn count(
    conn: &mut impl Queryable,
    sql: &str,
    params: impl Into<mysql_async::Params> + Send,
) -> Result<i64, StoreError> {
    let found: Option<i64> = conn.exec_first(sql, params).await.map_err(db_error)?;
    Ok(found.unwrap_or(0))
}

/// A schedule id that a limit may name: NotFound for one that does not exist.
async fn check_schedule_id(conn: &mut impl Queryable, limits: &Limits) -> Result<(), StoreError> {
    match limits.schedule {
        Some(id) if count(conn, schedule_rows::SCHEDULE_EXISTS, (id,)).await? == 0 => {
            Err(schedule_rows::no_schedule_id(id))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl Schedules for MysqlStore {
    async fn save_schedule(
        &self,
        name: &str,
        windows: &[Window],
        open_on_holidays: bool,
    ) -> Result<Schedule, StoreError> {
        let name = schedule_rows::check_schedule(name, windows)?;
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let existing: Option<(i64, String)> = tx
            .exec_first("SELECT id, name FROM schedules WHERE name_key = ? FOR UPDATE", (rows::name_key(&name),))
            .await
            .map_err(db_error)?;
        let (id, name) = match existing {
            Some((id, stored)) => {
                tx.exec_drop("UPDATE schedules SET open_on_holidays = ? WHERE id = ?", (open_on_holidays, id))
                    .await
                    .map_err(db_error)?;
                tx.exec_drop(schedule_rows::DELETE_WINDOWS, (id,)).await.map_err(db_error)?;
                (id, stored)
            }
            None => {
                tx.exec_drop(
                    "INSERT INTO schedules(name, name_key, open_on_holidays, created_ms) VALUES (?, ?, ?, ?)",
                    (&name, rows::name_key(&name), open_on_holidays, now_ms()),
                )
                .await
                .map_err(db_error)?;
                (inserted_id(tx.last_insert_id())?, name)
            }
        };
        for (position, window) in windows.iter().enumerate() {
            let (days, start, end) = schedule_rows::window_columns(window);
            tx.exec_drop(schedule_rows::INSERT_WINDOW, (id, position as i64, days, start, end))
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Schedule { id, name, windows: windows.to_vec(), open_on_holidays })
    }

    async fn remove_schedule(&self, name: &str) -> Result<(), StoreError> {
        let name = name.trim();
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let id: i64 = tx
            .exec_first("SELECT id FROM schedules WHERE name_key = ? FOR UPDATE", (rows::name_key(name),))
            .await
            .map_err(db_error)?
            .ok_or_else(|| schedule_rows::no_schedule(name))?;
        let users = count(&mut tx, schedule_rows::SCHEDULE_USERS, (id, id, id, id)).await?;
        if users > 0 {
            return Err(schedule_rows::schedule_in_use(name, users));
        }
        tx.exec_drop(schedule_rows::DELETE_SCHEDULE, (id,)).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn add_holiday(&self, holiday: &Holiday) -> Result<Holiday, StoreError> {
        schedule_rows::check_holiday(holiday)?;
        let holiday = Holiday { name: holiday.name.trim().to_owned(), ..holiday.clone() };
        let (first, last) = (schedule_rows::day_column(holiday.first), schedule_rows::day_column(holiday.last));
        let mut conn = self.conn().await?;
        conn.exec_drop(schedule_rows::INSERT_HOLIDAY, (&holiday.name, first, last, holiday.yearly))
            .await
            .map_err(db_error)?;
        Ok(Holiday { id: inserted_id(conn.last_insert_id())?, ..holiday })
    }

    async fn remove_holiday(&self, id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(schedule_rows::DELETE_HOLIDAY, (id,)).await.map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(schedule_rows::no_holiday(id)),
            _ => Ok(()),
        }
    }

    async fn set_person_limits(&self, person: PersonId, limits: &Limits) -> Result<(), StoreError> {
        schedule_rows::check_limits(limits)?;
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        if count(&mut tx, schedule_rows::PERSON_EXISTS, (person.0,)).await? == 0 {
            return Err(rows::no_person(person));
        }
        check_schedule_id(&mut tx, limits).await?;
        tx.exec_drop(schedule_rows::DELETE_PERSON_LIMITS, (person.0,)).await.map_err(db_error)?;
        if !limits.is_unlimited() {
            let (from, until, schedule) = schedule_rows::limits_columns(limits);
            tx.exec_drop(schedule_rows::INSERT_PERSON_LIMITS, (person.0, from, until, schedule))
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn set_card_limits(&self, uid: &CardUid, limits: &Limits) -> Result<(), StoreError> {
        schedule_rows::check_limits(limits)?;
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        if count(&mut tx, schedule_rows::CARD_EXISTS, (uid.as_str(),)).await? == 0 {
            return Err(rows::card_not_enrolled(uid));
        }
        check_schedule_id(&mut tx, limits).await?;
        tx.exec_drop(schedule_rows::DELETE_CARD_LIMITS, (uid.as_str(),)).await.map_err(db_error)?;
        if !limits.is_unlimited() {
            let (from, until, schedule) = schedule_rows::limits_columns(limits);
            tx.exec_drop(schedule_rows::INSERT_CARD_LIMITS, (uid.as_str(), from, until, schedule))
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn set_door_rights(&self, person: PersonId, rights: Option<&[DoorRight]>) -> Result<(), StoreError> {
        if let Some(rights) = rights {
            schedule_rows::check_door_rights(rights)?;
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        if count(&mut tx, schedule_rows::PERSON_EXISTS, (person.0,)).await? == 0 {
            return Err(rows::no_person(person));
        }
        tx.exec_drop(schedule_rows::DELETE_DOOR_RESTRICTION, (person.0,)).await.map_err(db_error)?;
        if let Some(rights) = rights {
            tx.exec_drop(schedule_rows::INSERT_DOOR_RESTRICTION, (person.0,)).await.map_err(db_error)?;
            insert_door_rights(&mut tx, schedule_rows::INSERT_DOOR_RIGHT, person.0, rights).await?;
        }
        tx.commit().await.map_err(db_error)
    }
}

/// Writes the door rights of a person or group (`owner`) with `insert`, each schedule checked.
async fn insert_door_rights(
    conn: &mut impl Queryable,
    insert: &str,
    owner: i64,
    rights: &[DoorRight],
) -> Result<(), StoreError> {
    for right in rights {
        check_schedule_id(conn, &Limits { schedule: right.schedule, ..Limits::default() }).await?;
        conn.exec_drop(insert, (owner, &right.door, right.schedule)).await.map_err(db_error)?;
    }
    Ok(())
}

/// The name of group `id`, its row locked for the transaction; NotFound if there is none.
async fn group_name(conn: &mut impl Queryable, id: i64) -> Result<String, StoreError> {
    let sql = format!("{} FOR UPDATE", group_rows::GROUP_NAME);
    conn.exec_first(sql, (id,)).await.map_err(db_error)?.ok_or_else(|| group_rows::no_group(id))
}

#[async_trait]
impl Groups for MysqlStore {
    async fn add_group(&self, name: &str) -> Result<Group, StoreError> {
        let name = group_rows::check_name(name)?;
        let mut conn = self.conn().await?;
        let inserted = conn
            .exec_drop(
                "INSERT INTO person_groups(name, name_key, created_ms) VALUES (?, ?, ?)",
                (&name, rows::name_key(&name), now_ms()),
            )
            .await;
        match inserted {
            Ok(()) => Ok(Group { id: inserted_id(conn.last_insert_id())?, name, members: Vec::new(), doors: None }),
            Err(e) if is_duplicate(&e) => Err(group_rows::group_exists(&name)),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn rename_group(&self, group: i64, name: &str) -> Result<(), StoreError> {
        let name = group_rows::check_name(name)?;
        let mut conn = self.conn().await?;
        let renamed = conn
            .exec_drop(
                "UPDATE person_groups SET name = ?, name_key = ? WHERE id = ?",
                (&name, rows::name_key(&name), group),
            )
            .await;
        match renamed {
            Ok(()) if conn.affected_rows() == 0 => Err(group_rows::no_group(group)),
            Ok(()) => Ok(()),
            Err(e) if is_duplicate(&e) => Err(group_rows::group_exists(&name)),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn remove_group(&self, group: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(group_rows::DELETE_GROUP, (group,)).await.map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(group_rows::no_group(group)),
            _ => Ok(()),
        }
    }

    async fn add_member(&self, group: i64, person: PersonId) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        group_name(&mut tx, group).await?;
        if count(&mut tx, schedule_rows::PERSON_EXISTS, (person.0,)).await? == 0 {
            return Err(rows::no_person(person));
        }
        // Both rows exist (the group's is locked), so IGNORE only passes over a membership already there.
        tx.exec_drop("INSERT IGNORE INTO group_members(group_id, person_id) VALUES (?, ?)", (group, person.0))
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn remove_member(&self, group: i64, person: PersonId) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        let name = group_name(&mut tx, group).await?;
        tx.exec_drop(group_rows::DELETE_MEMBER, (group, person.0)).await.map_err(db_error)?;
        if tx.affected_rows() == 0 {
            return Err(group_rows::not_a_member(person, &name));
        }
        tx.commit().await.map_err(db_error)
    }

    async fn set_group_doors(&self, group: i64, rights: Option<&[DoorRight]>) -> Result<(), StoreError> {
        if let Some(rights) = rights {
            schedule_rows::check_door_rights(rights)?;
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        group_name(&mut tx, group).await?;
        tx.exec_drop(group_rows::DELETE_GROUP_DOORS, (group,)).await.map_err(db_error)?;
        tx.exec_drop(group_rows::SET_RESTRICTED, (rights.is_some(), group)).await.map_err(db_error)?;
        insert_door_rights(&mut tx, group_rows::INSERT_GROUP_DOOR, group, rights.unwrap_or_default()).await?;
        tx.commit().await.map_err(db_error)
    }
}

#[async_trait]
impl Visits for MysqlStore {
    async fn add_visit(&self, visit: &NewVisit) -> Result<Visit, StoreError> {
        let row = VisitRow::new(visit);
        let values: [Value; 8] = row.insert_values();
        let mut conn = self.conn().await?;
        conn.exec_drop(visit_rows::INSERT_VISIT, Vec::from(values)).await.map_err(db_error)?;
        VisitRow { id: inserted_id(conn.last_insert_id())?, ..row }.into_visit()
    }

    async fn visit(&self, id: VisitId) -> Result<Option<Visit>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<VisitRow> =
            conn.exec_first(visit_rows::SELECT_VISIT.as_str(), (id.0,)).await.map_err(db_error)?;
        found.map(VisitRow::into_visit).transpose()
    }

    async fn list_visits(&self, query: &VisitQuery) -> Result<Vec<Visit>, StoreError> {
        let (sql, values) = visit_rows::visits_page::<Value>(query);
        let mut conn = self.conn().await?;
        let found: Vec<VisitRow> = conn.exec(sql, values).await.map_err(db_error)?;
        found.into_iter().map(VisitRow::into_visit).collect()
    }

    async fn move_visit(
        &self,
        id: VisitId,
        from: VisitStatus,
        to: VisitStatus,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(visit_rows::MOVE_VISIT, (to.as_str(), by, to_millis(at), id.0, from.as_str()))
            .await
            .map_err(db_error)?;
        Ok(conn.affected_rows() > 0)
    }

    async fn add_pass(&self, pass: &NewPass) -> Result<i64, StoreError> {
        let values: [Value; 6] = visit_rows::pass_values(pass);
        let mut conn = self.conn().await?;
        conn.exec_drop(visit_rows::INSERT_PASS, Vec::from(values)).await.map_err(db_error)?;
        inserted_id(conn.last_insert_id())
    }

    async fn passes(&self, door: &str, kind: PassKind, since: OffsetDateTime) -> Result<Vec<StoredPass>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Vec<PassRow> = conn
            .exec(visit_rows::SELECT_PASSES.as_str(), (door, kind.as_str(), to_millis(since)))
            .await
            .map_err(db_error)?;
        found.into_iter().map(PassRow::into_pass).collect()
    }

    async fn use_pass(&self, id: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(visit_rows::USE_PASS, (id, to_millis(now))).await.map_err(db_error)?;
        Ok(conn.affected_rows() == 1)
    }

    async fn wrong_passcode(
        &self,
        door: &str,
        now: OffsetDateTime,
        max_tries: u32,
    ) -> Result<Vec<VisitId>, StoreError> {
        let now = to_millis(now);
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        // The count locks the rows it changes, so a second wrong passcode at once waits for this one.
        tx.exec_drop(visit_rows::COUNT_WRONG_PASSCODE.as_str(), (door, now)).await.map_err(db_error)?;
        let locking: Vec<i64> =
            tx.exec(visit_rows::PASSCODES_TO_LOCK.as_str(), (door, now, max_tries)).await.map_err(db_error)?;
        tx.exec_drop(visit_rows::LOCK_PASSCODES.as_str(), (door, now, max_tries)).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(locking.into_iter().map(VisitId).collect())
    }

    async fn forget_visit(&self, id: VisitId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        // FOR UPDATE: of two forgets at once, the second waits and then finds no photo to hand back.
        let photo: Option<Option<String>> =
            tx.exec_first(format!("{} FOR UPDATE", visit_rows::VISIT_PHOTO), (id.0,)).await.map_err(db_error)?;
        tx.exec_drop(visit_rows::DELETE_VISIT_PASSES, (id.0,)).await.map_err(db_error)?;
        tx.exec_drop(visit_rows::DELETE_VISIT, (id.0,)).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(photo.flatten())
    }

    async fn expire_visits(&self, undecided_before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(visit_rows::EXPIRE_UNDECIDED, (to_millis(undecided_before),)).await.map_err(db_error)?;
        let undecided = conn.affected_rows();
        conn.exec_drop(visit_rows::EXPIRE_SPENT, (to_millis(now),)).await.map_err(db_error)?;
        Ok(undecided + conn.affected_rows())
    }

    async fn forget_visits_before(&self, cutoff: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let cutoff = to_millis(cutoff);
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        // FOR UPDATE: the visits deleted below are the ones read here, so no photo is left behind.
        let photos: Vec<String> =
            tx.exec(format!("{} FOR UPDATE", visit_rows::OLD_VISIT_PHOTOS), (cutoff,)).await.map_err(db_error)?;
        tx.exec_drop(visit_rows::DELETE_OLD_PASSES, (cutoff,)).await.map_err(db_error)?;
        tx.exec_drop(visit_rows::DELETE_OLD_VISITS, (cutoff,)).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(photos)
    }
}

async fn read_known_visitor(conn: &mut impl Queryable, id: VisitorId) -> Result<Option<KnownVisitor>, StoreError> {
    let found: Option<KnownVisitorRow> =
        conn.exec_first(visitor_rows::SELECT_KNOWN_VISITOR.as_str(), (id.0,)).await.map_err(db_error)?;
    Ok(found.map(KnownVisitorRow::into_known_visitor))
}

/// Whether the visitor is there, locking their row until the transaction ends (so that a forget
/// at once waits rather than leaving a face or a link behind).
async fn lock_known_visitor(tx: &mut impl Queryable, id: VisitorId) -> Result<bool, StoreError> {
    let count: Option<i64> =
        tx.exec_first(format!("{} FOR UPDATE", visitor_rows::COUNT_KNOWN_VISITOR), (id.0,)).await.map_err(db_error)?;
    Ok(count.unwrap_or(0) > 0)
}

impl MysqlStore {
    /// Forgets the visitors `statements` choose by `value`, in one transaction; returns how many
    /// and their visits' photos.
    async fn forget_visitors(&self, statements: &ForgetVisitors, value: i64) -> Result<(u64, Vec<String>), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        // FOR UPDATE: the visitors and visits deleted below are the ones read here, so no photo is left behind.
        let count: Option<i64> =
            tx.exec_first(format!("{} FOR UPDATE", statements.count), (value,)).await.map_err(db_error)?;
        let photos: Vec<String> =
            tx.exec(format!("{} FOR UPDATE", statements.photos), (value,)).await.map_err(db_error)?;
        for delete in &statements.deletes {
            tx.exec_drop(delete.as_str(), (value,)).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok((u64::try_from(count.unwrap_or(0)).unwrap_or(0), photos))
    }
}

#[async_trait]
impl KnownVisitors for MysqlStore {
    async fn add_known_visitor(
        &self,
        details: &VisitorDetails,
        last_visit: OffsetDateTime,
    ) -> Result<KnownVisitor, StoreError> {
        let mut conn = self.conn().await?;
        let VisitorDetails { name, email, mobile } = details;
        conn.exec_drop(visitor_rows::INSERT_KNOWN_VISITOR, (name, email, mobile, to_millis(last_visit)))
            .await
            .map_err(db_error)?;
        let id = VisitorId(inserted_id(conn.last_insert_id())?);
        read_known_visitor(&mut conn, id).await?.ok_or_else(|| visitor_rows::no_visitor(id))
    }

    async fn known_visitor(&self, id: VisitorId) -> Result<Option<KnownVisitor>, StoreError> {
        read_known_visitor(&mut self.conn().await?, id).await
    }

    async fn list_known_visitors(&self) -> Result<Vec<KnownVisitor>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Vec<KnownVisitorRow> =
            conn.query(visitor_rows::LIST_KNOWN_VISITORS.as_str()).await.map_err(db_error)?;
        Ok(found.into_iter().map(KnownVisitorRow::into_known_visitor).collect())
    }

    async fn update_known_visitor(&self, id: VisitorId, details: &VisitorDetails) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let VisitorDetails { name, email, mobile } = details;
        conn.exec_drop(visitor_rows::UPDATE_KNOWN_VISITOR, (name, email, mobile, id.0)).await.map_err(db_error)?;
        if conn.affected_rows() == 0 { Err(visitor_rows::no_visitor(id)) } else { Ok(()) }
    }

    async fn set_auto_pass(&self, id: VisitorId, auto_pass: bool) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(visitor_rows::SET_AUTO_PASS, (auto_pass, id.0)).await.map_err(db_error)?;
        if conn.affected_rows() == 0 { Err(visitor_rows::no_visitor(id)) } else { Ok(()) }
    }

    async fn link_visit(&self, visit: VisitId, visitor: VisitorId, at: OffsetDateTime) -> Result<(), StoreError> {
        let at = to_millis(at);
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        if !lock_known_visitor(&mut tx, visitor).await? {
            return Err(visitor_rows::no_visitor(visitor));
        }
        tx.exec_drop(visitor_rows::LINK_VISIT, (visitor.0, visit.0)).await.map_err(db_error)?;
        if tx.affected_rows() == 0 {
            return Err(visitor_rows::no_visit(visit));
        }
        tx.exec_drop(visitor_rows::FILL_VISIT_CONTACT, (visitor.0, visitor.0, visit.0)).await.map_err(db_error)?;
        tx.exec_drop(visitor_rows::TOUCH_KNOWN_VISITOR, (at, visitor.0, at)).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn add_visitor_face(
        &self,
        visitor: VisitorId,
        kind: &str,
        descriptor: &[f32],
        at: OffsetDateTime,
        keep: u32,
    ) -> Result<i64, StoreError> {
        rows::check_descriptor(descriptor)?;
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_error)?;
        if !lock_known_visitor(&mut tx, visitor).await? {
            return Err(visitor_rows::no_visitor(visitor));
        }
        let blob = rows::descriptor_to_blob(descriptor);
        tx.exec_drop(visitor_rows::INSERT_VISITOR_FACE, (visitor.0, kind, blob, to_millis(at)))
            .await
            .map_err(db_error)?;
        let id = inserted_id(tx.last_insert_id())?;
        let oldest_kept: Option<i64> =
            tx.exec_first(visitor_rows::OLDEST_FACE_KEPT, (visitor.0, keep.max(1) - 1)).await.map_err(db_error)?;
        if let Some(oldest_kept) = oldest_kept {
            tx.exec_drop(visitor_rows::DELETE_OLDER_FACES, (visitor.0, oldest_kept)).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(id)
    }

    async fn visitor_faces(&self, kind: &str) -> Result<Vec<VisitorFace>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Vec<(i64, i64, Vec<u8>)> =
            conn.exec(visitor_rows::SELECT_VISITOR_FACES, (kind,)).await.map_err(db_error)?;
        Ok(found
            .into_iter()
            .map(|(id, visitor, blob)| VisitorFace {
                id,
                visitor: VisitorId(visitor),
                descriptor: rows::blob_to_descriptor(&blob),
            })
            .collect())
    }

    async fn forget_known_visitor(&self, id: VisitorId) -> Result<Vec<String>, StoreError> {
        Ok(self.forget_visitors(&visitor_rows::FORGET_ONE, id.0).await?.1)
    }

    async fn forget_visitors_before(&self, cutoff: OffsetDateTime) -> Result<(u64, Vec<String>), StoreError> {
        self.forget_visitors(&visitor_rows::FORGET_OLD, to_millis(cutoff)).await
    }
}

#[async_trait]
impl Doors for MysqlStore {
    async fn register_door(&self, door: &SiteDoor) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "INSERT INTO doors(id, name, web_address, version, last_seen_ms) VALUES (?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE name = VALUES(name), web_address = VALUES(web_address),
                 version = VALUES(version), last_seen_ms = VALUES(last_seen_ms)",
            site_rows::door_row(door),
        )
        .await
        .map_err(db_error)
    }

    async fn list_doors(&self) -> Result<Vec<SiteDoor>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<site_rows::DoorRow> = conn.query(site_rows::SELECT_DOORS).await.map_err(db_error)?;
        Ok(rows.into_iter().map(site_rows::site_door).collect())
    }
}

#[async_trait]
impl ApiKeys for MysqlStore {
    async fn add_api_key(&self, name: &str, key_hash: &str) -> Result<ApiKey, StoreError> {
        let mut conn = self.conn().await?;
        let created_ms = now_ms();
        let inserted = conn
            .exec_drop(
                "INSERT INTO api_keys(name, key_hash, created_ms) VALUES (?, ?, ?)",
                (name, key_hash, created_ms),
            )
            .await;
        match inserted {
            Ok(()) => {
                let id = inserted_id(conn.last_insert_id())?;
                Ok(rows::api_key_row((id, name.to_owned(), key_hash.to_owned(), created_ms, None)))
            }
            Err(e) if is_duplicate(&e) => Err(rows::api_key_exists()),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut conn = self.conn().await?;
        let keys: Vec<rows::ApiKeyRow> = conn
            .query("SELECT id, name, key_hash, created_ms, last_used_ms FROM api_keys ORDER BY id")
            .await
            .map_err(db_error)?;
        Ok(keys.into_iter().map(rows::api_key_row).collect())
    }

    async fn api_key_used(&self, id: i64, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("UPDATE api_keys SET last_used_ms = ? WHERE id = ?", (to_millis(at), id)).await.map_err(db_error)
    }

    async fn revoke_api_key(&self, id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM api_keys WHERE id = ?", (id,)).await.map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(rows::no_api_key(id)),
            _ => Ok(()),
        }
    }
}

impl MysqlStore {
    /// The passkeys `condition` (a `WHERE` clause of [`rows::PASSKEY_SELECT`]) picks, oldest first.
    async fn select_passkeys(&self, condition: &str, value: Value) -> Result<Vec<StoredPasskey>, StoreError> {
        let mut conn = self.conn().await?;
        let sql = format!("{} WHERE {condition} ORDER BY p.id", rows::PASSKEY_SELECT);
        let found: Vec<rows::PasskeyRow> = conn.exec(sql, (value,)).await.map_err(db_error)?;
        Ok(found.into_iter().map(rows::passkey_row).collect())
    }
}

#[async_trait]
impl Passkeys for MysqlStore {
    async fn add_passkey(&self, passkey: &NewPasskey<'_>) -> Result<StoredPasskey, StoreError> {
        let mut conn = self.conn().await?;
        let inserted = conn
            .exec_drop(
                "INSERT INTO passkeys(user_handle, credential_id, name, credential, created_ms, user_id) \
                 SELECT ?, ?, ?, ?, ?, id FROM users WHERE username_key = ?",
                (
                    passkey.user_handle,
                    passkey.credential_id.to_vec(),
                    passkey.name,
                    passkey.credential,
                    now_ms(),
                    rows::name_key(passkey.username),
                ),
            )
            .await;
        match inserted {
            Ok(()) if conn.affected_rows() == 0 => Err(rows::no_user(passkey.username)),
            Ok(()) => {
                let id = inserted_id(conn.last_insert_id())?;
                drop(conn);
                self.select_passkeys("p.id = ?", Value::from(id))
                    .await?
                    .pop()
                    .ok_or_else(|| rows::no_user(passkey.username))
            }
            Err(e) if is_duplicate(&e) => Err(rows::passkey_exists()),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn passkeys_of(&self, username: &str) -> Result<Vec<StoredPasskey>, StoreError> {
        self.select_passkeys("u.username_key = ?", Value::from(rows::name_key(username))).await
    }

    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<StoredPasskey>, StoreError> {
        Ok(self.select_passkeys("p.credential_id = ?", Value::from(credential_id.to_vec())).await?.pop())
    }

    async fn passkey_used(&self, id: i64, at: OffsetDateTime, credential: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "UPDATE passkeys SET last_used_ms = ?, credential = ? WHERE id = ?",
            (to_millis(at), credential, id),
        )
        .await
        .map_err(db_error)
    }

    async fn remove_passkey(&self, username: &str, id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "DELETE FROM passkeys WHERE id = ? AND user_id = (SELECT id FROM users WHERE username_key = ?)",
            (id, rows::name_key(username)),
        )
        .await
        .map_err(db_error)?;
        match conn.affected_rows() {
            0 => Err(rows::no_passkey(username, id)),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl SignIns for MysqlStore {
    async fn record_sign_in(&self, attempt: &SignInAttempt, thumbnail: Option<&[u8]>) -> Result<i64, StoreError> {
        let values: [Value; 8] = sign_in_rows::insert_values(attempt, thumbnail);
        let mut conn = self.conn().await?;
        conn.exec_drop(sign_in_rows::INSERT_SIGN_IN, Vec::from(values)).await.map_err(db_error)?;
        inserted_id(conn.last_insert_id())
    }

    async fn sign_in_thumbnail(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<Option<Vec<u8>>> = conn.exec_first(sign_in_rows::THUMBNAIL, (id,)).await.map_err(db_error)?;
        Ok(found.flatten())
    }

    async fn sign_ins(&self, query: &SignInQuery) -> Result<Vec<SignInEntry>, StoreError> {
        let (sql, values) = sign_in_rows::page::<Value>(query);
        let mut conn = self.conn().await?;
        let found: Vec<SignInRow> = conn.exec(sql, values).await.map_err(db_error)?;
        found.into_iter().map(SignInRow::into_entry).collect()
    }

    async fn count_sign_ins(&self, query: &SignInQuery) -> Result<u64, StoreError> {
        let (sql, values) = sign_in_rows::count::<Value>(query);
        let mut conn = self.conn().await?;
        let count: Option<u64> = conn.exec_first(sql, values).await.map_err(db_error)?;
        Ok(count.unwrap_or(0))
    }

    async fn prune_sign_ins(&self, cutoff: OffsetDateTime, keep: u64) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(sign_in_rows::DELETE_BEFORE, (to_millis(cutoff),)).await.map_err(db_error)?;
        let old = conn.affected_rows();
        let newest: Option<Option<u64>> = conn.query_first(sign_in_rows::NEWEST_ID).await.map_err(db_error)?;
        let surplus = match newest.flatten() {
            Some(newest) if newest > keep => {
                conn.exec_drop(sign_in_rows::DELETE_UP_TO, (newest - keep,)).await.map_err(db_error)?;
                conn.affected_rows()
            }
            _ => 0,
        };
        Ok(old + surplus)
    }
}

/// A face link as [`FaceLinks`] reads it: person, enabled, most role.
type FaceLinkRow = (i64, bool, String);

fn face_link_row((person, enabled, max_role): FaceLinkRow) -> FaceLink {
    FaceLink { person: PersonId(person), enabled, max_role }
}

#[async_trait]
impl FaceLinks for MysqlStore {
    async fn face_link(&self, username: &str) -> Result<Option<FaceLink>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Option<FaceLinkRow> = conn
            .exec_first(
                "SELECT f.person_id, f.enabled, f.max_role FROM face_sign_in f JOIN users u ON u.id = f.user_id \
                 WHERE u.username_key = ?",
                (rows::name_key(username),),
            )
            .await
            .map_err(db_error)?;
        Ok(found.map(face_link_row))
    }

    async fn face_links(&self) -> Result<Vec<(String, FaceLink)>, StoreError> {
        let mut conn = self.conn().await?;
        let found: Vec<(String, i64, bool, String)> = conn
            .query(
                "SELECT u.username, f.person_id, f.enabled, f.max_role FROM face_sign_in f \
                 JOIN users u ON u.id = f.user_id ORDER BY u.username",
            )
            .await
            .map_err(db_error)?;
        Ok(found
            .into_iter()
            .map(|(name, person, enabled, role)| (name, face_link_row((person, enabled, role))))
            .collect())
    }

    async fn set_face_link(&self, username: &str, link: &FaceLink) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let user: Option<i64> = conn
            .exec_first("SELECT id FROM users WHERE username_key = ?", (rows::name_key(username),))
            .await
            .map_err(db_error)?;
        let user = user.ok_or_else(|| rows::no_user(username))?;
        let written = conn
            .exec_drop(
                "INSERT INTO face_sign_in(user_id, person_id, enabled, max_role) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE person_id = VALUES(person_id), enabled = VALUES(enabled), \
                 max_role = VALUES(max_role)",
                (user, link.person.0, link.enabled, &link.max_role),
            )
            .await;
        match written {
            Ok(()) => Ok(()),
            Err(e) if is_missing_parent(&e) => Err(rows::no_person(link.person)),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn remove_face_link(&self, username: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "DELETE f FROM face_sign_in f JOIN users u ON u.id = f.user_id WHERE u.username_key = ?",
            (rows::name_key(username),),
        )
        .await
        .map_err(db_error)
    }
}
