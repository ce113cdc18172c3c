//! SQLite backend: the embedded default. One connection, used from blocking threads.

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;

use super::group_rows;
use super::migrations::{self, Migration, Migrator};
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

/// A new access-log row; a replayed `event_id` changes nothing.
static INSERT_LOG_ROW: LazyLock<String> =
    LazyLock::new(|| format!("{} ON CONFLICT(event_id) DO NOTHING", *rows::INSERT_LOG_ROW));

pub struct SqliteStore {
    conn: BlockingConnection,
}

pub(super) fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn is_constraint_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn bump_faces_version(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?1, '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [FACES_VERSION_KEY],
    )?;
    Ok(())
}

/// `person_name` against the lower-cased name: NOCASE folds ASCII letters only, as `name_key` does.
const PERSON_NAME_MATCHES: &str = "person_name = ? COLLATE NOCASE";

fn read_setting(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [name], |r| r.get(0)).optional().map_err(db_error)
}

fn write_setting(conn: &Connection, name: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![name, value],
    )
    .map(drop)
    .map_err(db_error)
}

fn read_faces_version(conn: &Connection) -> Result<u64, StoreError> {
    Ok(rows::parse_faces_version(read_setting(conn, FACES_VERSION_KEY)?.as_deref()))
}

/// A person from the columns `id, name`.
fn person_row(row: &Row<'_>) -> rusqlite::Result<Person> {
    Ok(Person { id: PersonId(row.get(0)?), name: row.get(1)? })
}

/// A user from the columns `id, username, password_hash, role`.
fn user_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User { id: row.get(0)?, username: row.get(1)?, password_hash: row.get(2)?, role: row.get(3)? })
}

fn stored_face(row: &Row<'_>) -> rusqlite::Result<StoredFace> {
    let id = row.get("id")?;
    let template = rows::face_template(id, row.get("descriptor")?, row.get("remote_id")?)
        .map_err(|detail| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, detail.into()))?;
    Ok(StoredFace { id, person: PersonId(row.get("person_id")?), template })
}

fn log_row(row: &Row<'_>) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        id: row.get("id")?,
        event_id: row.get("event_id")?,
        at_ms: row.get("at_ms")?,
        door: row.get("door")?,
        card_uid: row.get("card_uid")?,
        person_id: row.get("person_id")?,
        person_name: row.get("person_name")?,
        decision: row.get("decision")?,
        reason: row.get("reason")?,
        similarity: row.get("similarity")?,
        confidence: row.get("confidence")?,
        engine: row.get("engine")?,
        photo: row.get("photo")?,
        read_ms: row.get("read_ms")?,
        capture_ms: row.get("capture_ms")?,
        match_ms: row.get("match_ms")?,
        actuate_ms: row.get("actuate_ms")?,
        total_ms: row.get("total_ms")?,
        detail: row.get("detail")?,
    })
}

/// One SQLite connection used from blocking threads; also holds the local copy kept beside MySQL.
#[derive(Clone)]
pub(super) struct BlockingConnection(Arc<Mutex<Connection>>);

impl BlockingConnection {
    /// Opens (creating if needed) the database file. Its folder must exist.
    pub(super) async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || {
            let open_error = |detail: String| StoreError::Open { path: path.display().to_string(), detail };
            let conn = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(|e| open_error(e.to_string()))?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))??;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Runs `work` on a blocking thread with the connection.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Database(format!("database task failed: {e}")))?
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. Its folder must exist.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { conn: BlockingConnection::open(path).await? })
    }

    async fn with_conn<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.conn.run(work).await
    }
}

#[async_trait]
impl Schema for SqliteStore {
    async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        migrations::run(&mut self.conn.clone()).await
    }
}

impl Migrator for BlockingConnection {
    async fn current_version(&mut self) -> Result<u32, StoreError> {
        self.run(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
            )
            .map_err(db_error)?;
            conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
                .map_err(db_error)
        })
        .await
    }

    async fn apply(&mut self, migration: &'static Migration) -> Result<(), StoreError> {
        self.run(move |conn| {
            let failed = |e: rusqlite::Error| migration.failed(e);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            tx.execute_batch(migration.sqlite).map_err(failed)?;
            tx.execute(
                "INSERT INTO schema_migrations(version, applied_ms) VALUES (?1, ?2)",
                params![migration.version, now_ms()],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)
        })
        .await
    }
}

#[async_trait]
impl DoorPath for SqliteStore {
    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Person>, StoreError> {
        let uid = uid.clone();
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT p.id, p.name FROM cards c JOIN people p ON p.id = c.person_id WHERE c.uid = ?1",
                [uid.as_str()],
                person_row,
            )
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn faces(&self, engine: &str) -> Result<(u64, Vec<StoredFace>), StoreError> {
        let engine = engine.to_owned();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(db_error)?;
            let version = read_faces_version(&tx)?;
            let faces = {
                let mut stmt = tx
                    .prepare("SELECT id, person_id, descriptor, remote_id FROM faces WHERE engine = ?1 ORDER BY id")
                    .map_err(db_error)?;
                stmt.query_map([engine], stored_face)
                    .map_err(db_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_error)?
            };
            Ok((version, faces))
        })
        .await
    }

    async fn faces_version(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| read_faces_version(conn)).await
    }

    async fn record_attempt(&self, event: &AccessEvent, notices: &Notices) -> Result<i64, StoreError> {
        let event_id = event.event_id.clone();
        let values: [Value; rows::LOG_COLUMNS.len()] = LogRow::from_event(event).into_values();
        let outbox = if notices.mqtt { Some(rows::outbox_payload(event)?) } else { None };
        let messages = notices.messages.clone();
        let payload = if messages.is_empty() { String::new() } else { rows::event_payload(event)? };
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let inserted = tx.execute(&INSERT_LOG_ROW, rusqlite::params_from_iter(values)).map_err(db_error)?;
            if inserted == 0 {
                return tx
                    .query_row("SELECT id FROM access_log WHERE event_id = ?1", [&event_id], |r| r.get(0))
                    .map_err(db_error);
            }
            let id = tx.last_insert_rowid();
            if let Some((kind, payload)) = outbox {
                tx.execute(
                    "INSERT INTO outbox(event_id, kind, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![event_id, kind, payload, now_ms()],
                )
                .map_err(db_error)?;
            }
            for Recipient { channel, to } in messages {
                let now = now_ms();
                tx.execute(
                    "INSERT OR IGNORE INTO messages(event_id, channel, recipient, payload, created_ms, due_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![event_id, channel.as_str(), to, payload, now],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(id)
        })
        .await
    }

    async fn armed(&self) -> Result<bool, StoreError> {
        self.with_conn(|conn| rows::parse_armed(read_setting(conn, ARMED_KEY)?.as_deref())).await
    }

    async fn set_armed(&self, armed: bool) -> Result<(), StoreError> {
        self.with_conn(move |conn| write_setting(conn, ARMED_KEY, &armed.to_string())).await
    }

    async fn access_rules(&self) -> Result<AccessRules, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction().map_err(db_error)?;
            read_access_rules(&tx)
        })
        .await
    }

    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            let count: i64 = conn
                .query_row("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL", [], |r| r.get(0))
                .map_err(db_error)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn take_pending(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let rows: Vec<(i64, String, u32)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT id, payload, attempts FROM outbox
                         WHERE delivered_ms IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(db_error)?;
                let rows = stmt
                    .query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(db_error)?;
                rows.collect::<Result<_, _>>().map_err(db_error)?
            };
            let mut items = Vec::with_capacity(rows.len());
            for (id, payload, attempts) in rows {
                tx.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1", [id]).map_err(db_error)?;
                items.push(OutboxItem { id, event: rows::outbox_event(id, &payload)?, attempts: attempts + 1 });
            }
            tx.commit().map_err(db_error)?;
            Ok(items)
        })
        .await
    }

    async fn mark_delivered(&self, id: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE outbox SET delivered_ms = ?2 WHERE id = ?1 AND delivered_ms IS NULL",
                params![id, now_ms()],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn prune_outbox(&self, keep: u64) -> Result<OutboxPruned, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let total: i64 = tx.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).map_err(db_error)?;
            let excess = (total - keep).max(0);
            let removed = tx
                .execute(
                    "DELETE FROM outbox WHERE id IN
                         (SELECT id FROM outbox WHERE delivered_ms IS NOT NULL ORDER BY id LIMIT ?1)",
                    [excess],
                )
                .map_err(db_error)?;
            let undelivered: i64 = tx
                .query_row("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL", [], |r| r.get(0))
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(OutboxPruned { removed: removed as u64, undelivered: undelivered as u64 })
        })
        .await
    }
}

#[async_trait]
impl Messages for SqliteStore {
    async fn due_messages(&self, channel: Channel, now_ms: i64, limit: u32) -> Result<Vec<QueuedMessage>, StoreError> {
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT id, payload, recipient, attempts FROM messages
                     WHERE channel = ?1 AND {} AND due_ms <= ?2 ORDER BY id LIMIT ?3",
                    rows::MESSAGE_WAITS
                ))
                .map_err(db_error)?;
            let rows: Vec<(i64, String, String, u32)> = stmt
                .query_map(params![channel.as_str(), now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            rows.into_iter()
                .map(|(id, payload, to, attempts)| rows::queued_message(id, &payload, to, attempts))
                .collect()
        })
        .await
    }

    async fn next_due_ms(&self, channel: Channel) -> Result<Option<i64>, StoreError> {
        self.with_conn(move |conn| {
            conn.query_row(
                &format!("SELECT MIN(due_ms) FROM messages WHERE channel = ?1 AND {}", rows::MESSAGE_WAITS),
                [channel.as_str()],
                |r| r.get(0),
            )
            .map_err(db_error)
        })
        .await
    }

    async fn message_delivered(&self, id: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute(
                &format!("UPDATE messages SET delivered_ms = ?2, problem = NULL, attempts = attempts + 1 WHERE id = ?1 AND {}", rows::MESSAGE_WAITS),
                params![id, now_ms()],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn deferred_due_now(&self, channel: Channel, now_ms: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute(
                &format!(
                    "UPDATE messages SET due_ms = ?2 WHERE channel = ?1 AND {} AND due_ms > ?2",
                    rows::MESSAGE_WAITS
                ),
                params![channel.as_str(), now_ms],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn message_deferred(&self, id: i64, retry_at_ms: i64, problem: &str) -> Result<(), StoreError> {
        let problem = problem.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                &format!(
                    "UPDATE messages SET due_ms = ?2, problem = ?3, attempts = attempts + 1 WHERE id = ?1 AND {}",
                    rows::MESSAGE_WAITS
                ),
                params![id, retry_at_ms, problem],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn message_failed(&self, id: i64, problem: &str) -> Result<(), StoreError> {
        let problem = problem.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                &format!(
                    "UPDATE messages SET failed_ms = ?2, problem = ?3, attempts = attempts + 1 WHERE id = ?1 AND {}",
                    rows::MESSAGE_WAITS
                ),
                params![id, now_ms(), problem],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn message_counts(&self, channel: Channel) -> Result<MessageCounts, StoreError> {
        self.with_conn(move |conn| {
            let (waiting, failed, delivered): (i64, i64, i64) = conn
                .query_row(
                    "SELECT COALESCE(SUM(delivered_ms IS NULL AND failed_ms IS NULL), 0),
                            COALESCE(SUM(failed_ms IS NOT NULL), 0),
                            COALESCE(SUM(delivered_ms IS NOT NULL), 0)
                     FROM messages WHERE channel = ?1",
                    [channel.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(db_error)?;
            let last_problem = conn
                .query_row(
                    "SELECT problem FROM messages WHERE channel = ?1 AND delivered_ms IS NULL AND problem IS NOT NULL
                     ORDER BY id DESC LIMIT 1",
                    [channel.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_error)?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(MessageCounts {
                waiting: count(waiting),
                failed: count(failed),
                delivered: count(delivered),
                last_problem,
            })
        })
        .await
    }

    async fn prune_messages(&self, keep: u64) -> Result<u64, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let total: i64 = tx.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)).map_err(db_error)?;
            let removed = tx
                .execute(
                    &format!(
                        "DELETE FROM messages WHERE id IN
                             (SELECT id FROM messages WHERE NOT ({}) ORDER BY id LIMIT ?1)",
                        rows::MESSAGE_WAITS
                    ),
                    [(total - keep).max(0)],
                )
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(removed as u64)
        })
        .await
    }
}

#[async_trait]
impl People for SqliteStore {
    async fn add_person(&self, name: &str) -> Result<Person, StoreError> {
        let name = name.trim().to_owned();
        self.with_conn(move |conn| {
            let inserted =
                conn.execute("INSERT INTO people(name, created_ms) VALUES (?1, ?2)", params![name, now_ms()]);
            match inserted {
                Ok(_) => Ok(Person { id: PersonId(conn.last_insert_rowid()), name }),
                Err(e) if is_constraint_violation(&e) => Err(rows::person_exists(&name)),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn person_by_name(&self, name: &str) -> Result<Option<Person>, StoreError> {
        let name = name.trim().to_owned();
        self.with_conn(move |conn| {
            conn.query_row("SELECT id, name FROM people WHERE name = ?1", [name], person_row)
                .optional()
                .map_err(db_error)
        })
        .await
    }

    async fn list_people(&self) -> Result<Vec<PersonSummary>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT p.id, p.name,
                            (SELECT COUNT(*) FROM cards c WHERE c.person_id = p.id),
                            (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id)
                     FROM people p ORDER BY p.name",
                )
                .map_err(db_error)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(PersonSummary { id: PersonId(r.get(0)?), name: r.get(1)?, cards: r.get(2)?, faces: r.get(3)? })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        self.with_conn(move |conn| {
            conn.query_row("SELECT id, name FROM people WHERE id = ?1", [id.0], person_row).optional().map_err(db_error)
        })
        .await
    }

    async fn person_cards(&self, person: PersonId) -> Result<Vec<CardUid>, StoreError> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare("SELECT uid FROM cards WHERE person_id = ?1 ORDER BY uid").map_err(db_error)?;
            let uids = stmt.query_map([person.0], |r| r.get::<_, String>(0)).map_err(db_error)?;
            uids.map(|uid| rows::parse_card(&uid.map_err(db_error)?)).collect()
        })
        .await
    }

    async fn person_faces(&self, person: PersonId) -> Result<Vec<FaceSummary>, StoreError> {
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare("SELECT id, engine, created_ms, photo FROM faces WHERE person_id = ?1 ORDER BY id")
                .map_err(db_error)?;
            let faces = stmt
                .query_map([person.0], |r| {
                    Ok(FaceSummary {
                        id: r.get(0)?,
                        engine: r.get(1)?,
                        created: rows::from_millis(r.get(2)?),
                        photo: r.get(3)?,
                    })
                })
                .map_err(db_error)?;
            faces.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn add_card(&self, uid: &CardUid, person: PersonId) -> Result<(), StoreError> {
        let uid = uid.clone();
        self.with_conn(move |conn| {
            let holder: Option<String> = conn
                .query_row(
                    "SELECT p.name FROM cards c JOIN people p ON p.id = c.person_id WHERE c.uid = ?1",
                    [uid.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_error)?;
            if let Some(name) = holder {
                return Err(rows::card_taken(&uid, &name));
            }
            conn.execute(
                "INSERT INTO cards(uid, person_id, created_ms) VALUES (?1, ?2, ?3)",
                params![uid.as_str(), person.0, now_ms()],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn list_cards(&self) -> Result<Vec<Card>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT c.uid, p.id, p.name FROM cards c JOIN people p ON p.id = c.person_id ORDER BY p.name, c.uid")
                .map_err(db_error)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, Person { id: PersonId(r.get(1)?), name: r.get(2)? }))
                })
                .map_err(db_error)?;
            let mut cards = Vec::new();
            for row in rows {
                let (uid, person) = row.map_err(db_error)?;
                cards.push(Card { uid: rows::parse_card(&uid)?, person });
            }
            Ok(cards)
        })
        .await
    }

    async fn add_face(&self, person: PersonId, engine: &str, template: &FaceTemplate) -> Result<i64, StoreError> {
        rows::check_template(template)?;
        let engine = engine.to_owned();
        let (descriptor, remote) = rows::face_columns(template);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            tx.execute(
                "INSERT INTO faces(person_id, engine, descriptor, remote_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![person.0, engine, descriptor, remote, now_ms()],
            )
            .map_err(db_error)?;
            let id = tx.last_insert_rowid();
            bump_faces_version(&tx).map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(id)
        })
        .await
    }

    async fn set_face_photo(&self, id: i64, photo: &str) -> Result<(), StoreError> {
        let photo = photo.to_owned();
        self.with_conn(move |conn| {
            match conn.execute("UPDATE faces SET photo = ?1 WHERE id = ?2", params![photo, id]).map_err(db_error)? {
                0 => Err(rows::no_face(id)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn face_photo(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.with_conn(move |conn| {
            let photo = conn
                .query_row("SELECT photo FROM faces WHERE id = ?1", [id], |r| r.get::<_, Option<String>>(0))
                .optional()
                .map_err(db_error)?;
            Ok(photo.flatten())
        })
        .await
    }

    async fn faces_of_engine(&self, engine: &str) -> Result<Vec<EnrolledFace>, StoreError> {
        let (engine, prefixed) = (engine.to_owned(), format!("{engine}/%"));
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, person_id, descriptor, remote_id, engine, photo FROM faces \
                     WHERE engine = ?1 OR engine LIKE ?2 ORDER BY id",
                )
                .map_err(db_error)?;
            let faces = stmt
                .query_map([engine, prefixed], |r| {
                    Ok(EnrolledFace { face: stored_face(r)?, kind: r.get("engine")?, photo: r.get("photo")? })
                })
                .map_err(db_error)?;
            faces.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn replace_template(&self, id: i64, kind: &str, template: &FaceTemplate) -> Result<(), StoreError> {
        rows::check_template(template)?;
        let kind = kind.to_owned();
        let (descriptor, remote) = rows::face_columns(template);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let changed = tx
                .execute(
                    "UPDATE faces SET engine = ?1, descriptor = ?2, remote_id = ?3 WHERE id = ?4",
                    params![kind, descriptor, remote, id],
                )
                .map_err(db_error)?;
            if changed == 0 {
                return Err(rows::no_face(id));
            }
            bump_faces_version(&tx).map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Removals for SqliteStore {
    async fn remove_person(&self, id: PersonId) -> Result<Vec<StoredFace>, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let faces = {
                let mut stmt = tx
                    .prepare("SELECT id, person_id, descriptor, remote_id FROM faces WHERE person_id = ?1")
                    .map_err(db_error)?;
                stmt.query_map([id.0], stored_face)
                    .map_err(db_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_error)?
            };
            let removed = tx.execute("DELETE FROM people WHERE id = ?1", [id.0]).map_err(db_error)?;
            if removed == 0 {
                return Err(rows::no_person(id));
            }
            if !faces.is_empty() {
                bump_faces_version(&tx).map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(faces)
        })
        .await
    }

    async fn remove_card(&self, uid: &CardUid) -> Result<(), StoreError> {
        let uid = uid.clone();
        self.with_conn(move |conn| {
            match conn.execute("DELETE FROM cards WHERE uid = ?1", [uid.as_str()]).map_err(db_error)? {
                0 => Err(rows::card_not_enrolled(&uid)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn remove_face(&self, id: i64) -> Result<StoredFace, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let face = tx
                .query_row("SELECT id, person_id, descriptor, remote_id FROM faces WHERE id = ?1", [id], stored_face)
                .optional()
                .map_err(db_error)?
                .ok_or_else(|| rows::no_face(id))?;
            tx.execute("DELETE FROM faces WHERE id = ?1", [id]).map_err(db_error)?;
            bump_faces_version(&tx).map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(face)
        })
        .await
    }
}

#[async_trait]
impl LeftoverFaces for SqliteStore {
    async fn add_leftover(&self, face_id: &str) -> Result<(), StoreError> {
        let face_id = face_id.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO leftover_faces(face_id, created_ms) VALUES (?1, ?2) ON CONFLICT(face_id) DO NOTHING",
                params![face_id, now_ms()],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn leftovers(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare("SELECT face_id FROM leftover_faces ORDER BY face_id").map_err(db_error)?;
            let found = stmt.query_map([], |r| r.get(0)).map_err(db_error)?;
            found.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn remove_leftover(&self, face_id: &str) -> Result<(), StoreError> {
        let face_id = face_id.to_owned();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM leftover_faces WHERE face_id = ?1", [face_id]).map(drop).map_err(db_error)
        })
        .await
    }
}

#[async_trait]
impl AccessLog for SqliteStore {
    async fn access_log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let (filter, mut args) = rows::log_filter::<Value>(query, PERSON_NAME_MATCHES);
        args.extend([Value::from(i64::from(query.limit)), Value::from(i64::from(query.offset))]);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&rows::log_page_sql(&filter)).map_err(db_error)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), log_row).map_err(db_error)?;
            rows.map(|row| row.map_err(db_error)?.into_entry()).collect()
        })
        .await
    }

    async fn count_access_log(&self, query: &LogQuery) -> Result<u64, StoreError> {
        let (filter, args) = rows::log_filter::<Value>(query, PERSON_NAME_MATCHES);
        self.with_conn(move |conn| {
            let sql = rows::log_count_sql(&filter);
            let count: i64 = conn.query_row(&sql, rusqlite::params_from_iter(args), |r| r.get(0)).map_err(db_error)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn log_entry(&self, id: i64) -> Result<Option<LogEntry>, StoreError> {
        self.with_conn(move |conn| {
            let row = conn.query_row(&rows::SELECT_LOG_ENTRY, [id], log_row).optional();
            row.map_err(db_error)?.map(LogRow::into_entry).transpose()
        })
        .await
    }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn add_user(&self, username: &str, password_hash: &str, role: &str) -> Result<User, StoreError> {
        let user = User {
            id: 0,
            username: username.to_owned(),
            password_hash: password_hash.to_owned(),
            role: role.to_owned(),
        };
        self.with_conn(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO users(username, password_hash, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![user.username, user.password_hash, user.role, now_ms()],
            );
            match inserted {
                Ok(_) => Ok(User { id: conn.last_insert_rowid(), ..user }),
                Err(e) if is_constraint_violation(&e) => Err(rows::user_exists(&user.username)),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let username = username.to_owned();
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT id, username, password_hash, role FROM users WHERE username = ?1",
                [username],
                user_row,
            )
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, username, password_hash, role FROM users ORDER BY username")
                .map_err(db_error)?;
            let users = stmt.query_map([], user_row).map_err(db_error)?;
            users.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn remove_user(&self, username: &str) -> Result<(), StoreError> {
        let username = username.to_owned();
        self.with_conn(move |conn| {
            match conn.execute("DELETE FROM users WHERE username = ?1", [&username]).map_err(db_error)? {
                0 => Err(rows::no_user(&username)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn set_password_hash(&self, username: &str, password_hash: &str) -> Result<(), StoreError> {
        let (username, password_hash) = (username.to_owned(), password_hash.to_owned());
        self.with_conn(move |conn| {
            let updated = conn
                .execute("UPDATE users SET password_hash = ?2 WHERE username = ?1", [&username, &password_hash])
                .map_err(db_error)?;
            match updated {
                0 => Err(rows::no_user(&username)),
                _ => Ok(()),
            }
        })
        .await
    }
}

#[async_trait]
impl Settings for SqliteStore {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let name = rows::app_setting(key);
        self.with_conn(move |conn| read_setting(conn, &name)).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let name = rows::app_setting_to_save(key, value)?;
        let value = value.to_owned();
        self.with_conn(move |conn| write_setting(conn, &name, &value)).await
    }

    async fn remove_setting(&self, key: &str) -> Result<(), StoreError> {
        let name = rows::app_setting(key);
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM settings WHERE key = ?1", [name]).map(drop).map_err(db_error)
        })
        .await
    }
}

/// Every row of `sql` as `read` makes it.
fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(db_error)?;
    let found = stmt.query_map([], |r| read(r)).map_err(db_error)?;
    found.collect::<Result<_, _>>().map_err(db_error)
}

fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<i64, StoreError> {
    conn.query_row(sql, params, |r| r.get(0)).map_err(db_error)
}

fn limits_row<K: rusqlite::types::FromSql>(r: &Row<'_>) -> rusqlite::Result<schedule_rows::LimitsRow<K>> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn read_access_rules(conn: &Connection) -> Result<AccessRules, StoreError> {
    RulesRows {
        schedules: all_rows(conn, schedule_rows::SELECT_SCHEDULES, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
        windows: all_rows(conn, schedule_rows::SELECT_WINDOWS, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?,
        holidays: all_rows(conn, schedule_rows::SELECT_HOLIDAYS, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?,
        people: all_rows(conn, schedule_rows::SELECT_PERSON_LIMITS, limits_row)?,
        cards: all_rows(conn, schedule_rows::SELECT_CARD_LIMITS, limits_row)?,
        doors: all_rows(conn, schedule_rows::SELECT_DOOR_RIGHTS, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
        groups: all_rows(conn, group_rows::SELECT_GROUPS, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
        members: all_rows(conn, group_rows::SELECT_MEMBERS, |r| Ok((r.get(0)?, r.get(1)?)))?,
        group_doors: all_rows(conn, group_rows::SELECT_GROUP_DOORS, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
    }
    .into_rules()
}

/// A schedule id that a limit may name: NotFound for one that does not exist.
fn check_schedule_id(conn: &Connection, limits: &Limits) -> Result<(), StoreError> {
    match limits.schedule {
        Some(id) if count(conn, schedule_rows::SCHEDULE_EXISTS, [id])? == 0 => Err(schedule_rows::no_schedule_id(id)),
        _ => Ok(()),
    }
}

#[async_trait]
impl Schedules for SqliteStore {
    async fn save_schedule(
        &self,
        name: &str,
        windows: &[Window],
        open_on_holidays: bool,
    ) -> Result<Schedule, StoreError> {
        let name = schedule_rows::check_schedule(name, windows)?;
        let windows = windows.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let existing: Option<(i64, String)> = tx
                .query_row("SELECT id, name FROM schedules WHERE name = ?1", [&name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(db_error)?;
            let (id, name) = match existing {
                Some((id, stored)) => {
                    tx.execute(
                        "UPDATE schedules SET open_on_holidays = ?2 WHERE id = ?1",
                        params![id, open_on_holidays],
                    )
                    .map_err(db_error)?;
                    tx.execute(schedule_rows::DELETE_WINDOWS, [id]).map_err(db_error)?;
                    (id, stored)
                }
                None => {
                    tx.execute(
                        "INSERT INTO schedules(name, open_on_holidays, created_ms) VALUES (?1, ?2, ?3)",
                        params![name, open_on_holidays, now_ms()],
                    )
                    .map_err(db_error)?;
                    (tx.last_insert_rowid(), name)
                }
            };
            for (position, window) in windows.iter().enumerate() {
                let (days, start, end) = schedule_rows::window_columns(window);
                tx.execute(schedule_rows::INSERT_WINDOW, params![id, position as i64, days, start, end])
                    .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(Schedule { id, name, windows, open_on_holidays })
        })
        .await
    }

    async fn remove_schedule(&self, name: &str) -> Result<(), StoreError> {
        let name = name.trim().to_owned();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let id: i64 = tx
                .query_row("SELECT id FROM schedules WHERE name = ?1", [&name], |r| r.get(0))
                .optional()
                .map_err(db_error)?
                .ok_or_else(|| schedule_rows::no_schedule(&name))?;
            let users = count(&tx, schedule_rows::SCHEDULE_USERS, [id, id, id, id])?;
            if users > 0 {
                return Err(schedule_rows::schedule_in_use(&name, users));
            }
            tx.execute(schedule_rows::DELETE_SCHEDULE, [id]).map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn add_holiday(&self, holiday: &Holiday) -> Result<Holiday, StoreError> {
        schedule_rows::check_holiday(holiday)?;
        let holiday = Holiday { name: holiday.name.trim().to_owned(), ..holiday.clone() };
        self.with_conn(move |conn| {
            let (first, last) = (schedule_rows::day_column(holiday.first), schedule_rows::day_column(holiday.last));
            conn.execute(schedule_rows::INSERT_HOLIDAY, params![holiday.name, first, last, holiday.yearly])
                .map_err(db_error)?;
            Ok(Holiday { id: conn.last_insert_rowid(), ..holiday })
        })
        .await
    }

    async fn remove_holiday(&self, id: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| match conn.execute(schedule_rows::DELETE_HOLIDAY, [id]).map_err(db_error)? {
            0 => Err(schedule_rows::no_holiday(id)),
            _ => Ok(()),
        })
        .await
    }

    async fn set_person_limits(&self, person: PersonId, limits: &Limits) -> Result<(), StoreError> {
        schedule_rows::check_limits(limits)?;
        let limits = *limits;
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            if count(&tx, schedule_rows::PERSON_EXISTS, [person.0])? == 0 {
                return Err(rows::no_person(person));
            }
            check_schedule_id(&tx, &limits)?;
            tx.execute(schedule_rows::DELETE_PERSON_LIMITS, [person.0]).map_err(db_error)?;
            if !limits.is_unlimited() {
                let (from, until, schedule) = schedule_rows::limits_columns(&limits);
                tx.execute(schedule_rows::INSERT_PERSON_LIMITS, params![person.0, from, until, schedule])
                    .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn set_card_limits(&self, uid: &CardUid, limits: &Limits) -> Result<(), StoreError> {
        schedule_rows::check_limits(limits)?;
        let (uid, limits) = (uid.clone(), *limits);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            if count(&tx, schedule_rows::CARD_EXISTS, [uid.as_str()])? == 0 {
                return Err(rows::card_not_enrolled(&uid));
            }
            check_schedule_id(&tx, &limits)?;
            tx.execute(schedule_rows::DELETE_CARD_LIMITS, [uid.as_str()]).map_err(db_error)?;
            if !limits.is_unlimited() {
                let (from, until, schedule) = schedule_rows::limits_columns(&limits);
                tx.execute(schedule_rows::INSERT_CARD_LIMITS, params![uid.as_str(), from, until, schedule])
                    .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn set_door_rights(&self, person: PersonId, rights: Option<&[DoorRight]>) -> Result<(), StoreError> {
        if let Some(rights) = rights {
            schedule_rows::check_door_rights(rights)?;
        }
        let rights = rights.map(<[DoorRight]>::to_vec);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            if count(&tx, schedule_rows::PERSON_EXISTS, [person.0])? == 0 {
                return Err(rows::no_person(person));
            }
            tx.execute(schedule_rows::DELETE_DOOR_RESTRICTION, [person.0]).map_err(db_error)?;
            if let Some(rights) = rights {
                tx.execute(schedule_rows::INSERT_DOOR_RESTRICTION, [person.0]).map_err(db_error)?;
                insert_door_rights(&tx, schedule_rows::INSERT_DOOR_RIGHT, person.0, &rights)?;
            }
            tx.commit().map_err(db_error)
        })
        .await
    }
}

/// Writes the door rights of a person or group (`owner`) with `insert`, each schedule checked.
fn insert_door_rights(conn: &Connection, insert: &str, owner: i64, rights: &[DoorRight]) -> Result<(), StoreError> {
    for right in rights {
        check_schedule_id(conn, &Limits { schedule: right.schedule, ..Limits::default() })?;
        conn.execute(insert, params![owner, right.door, right.schedule]).map_err(db_error)?;
    }
    Ok(())
}

/// The name of group `id`; NotFound if there is none.
fn group_name(conn: &Connection, id: i64) -> Result<String, StoreError> {
    conn.query_row(group_rows::GROUP_NAME, [id], |r| r.get(0))
        .optional()
        .map_err(db_error)?
        .ok_or_else(|| group_rows::no_group(id))
}

#[async_trait]
impl Groups for SqliteStore {
    async fn add_group(&self, name: &str) -> Result<Group, StoreError> {
        let name = group_rows::check_name(name)?;
        self.with_conn(move |conn| {
            let inserted =
                conn.execute("INSERT INTO person_groups(name, created_ms) VALUES (?1, ?2)", params![name, now_ms()]);
            match inserted {
                Ok(_) => Ok(Group { id: conn.last_insert_rowid(), name, members: Vec::new(), doors: None }),
                Err(e) if is_constraint_violation(&e) => Err(group_rows::group_exists(&name)),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn rename_group(&self, group: i64, name: &str) -> Result<(), StoreError> {
        let name = group_rows::check_name(name)?;
        self.with_conn(move |conn| {
            match conn.execute("UPDATE person_groups SET name = ?2 WHERE id = ?1", params![group, name]) {
                Ok(0) => Err(group_rows::no_group(group)),
                Ok(_) => Ok(()),
                Err(e) if is_constraint_violation(&e) => Err(group_rows::group_exists(&name)),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn remove_group(&self, group: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| match conn.execute(group_rows::DELETE_GROUP, [group]).map_err(db_error)? {
            0 => Err(group_rows::no_group(group)),
            _ => Ok(()),
        })
        .await
    }

    async fn add_member(&self, group: i64, person: PersonId) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            group_name(&tx, group)?;
            if count(&tx, schedule_rows::PERSON_EXISTS, [person.0])? == 0 {
                return Err(rows::no_person(person));
            }
            tx.execute("INSERT OR IGNORE INTO group_members(group_id, person_id) VALUES (?1, ?2)", [group, person.0])
                .map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn remove_member(&self, group: i64, person: PersonId) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let name = group_name(&tx, group)?;
            if tx.execute(group_rows::DELETE_MEMBER, [group, person.0]).map_err(db_error)? == 0 {
                return Err(group_rows::not_a_member(person, &name));
            }
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn set_group_doors(&self, group: i64, rights: Option<&[DoorRight]>) -> Result<(), StoreError> {
        if let Some(rights) = rights {
            schedule_rows::check_door_rights(rights)?;
        }
        let rights = rights.map(<[DoorRight]>::to_vec);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            group_name(&tx, group)?;
            tx.execute(group_rows::DELETE_GROUP_DOORS, [group]).map_err(db_error)?;
            tx.execute(group_rows::SET_RESTRICTED, params![rights.is_some(), group]).map_err(db_error)?;
            insert_door_rights(&tx, group_rows::INSERT_GROUP_DOOR, group, rights.as_deref().unwrap_or_default())?;
            tx.commit().map_err(db_error)
        })
        .await
    }
}

/// A visit from the columns of [`visit_rows::SELECT_VISIT`].
fn visit_row(row: &Row<'_>) -> rusqlite::Result<VisitRow> {
    Ok(VisitRow {
        id: row.get("id")?,
        door: row.get("door")?,
        at_ms: row.get("at_ms")?,
        name: row.get("name")?,
        email: row.get("email")?,
        mobile: row.get("mobile")?,
        message: row.get("message")?,
        photo: row.get("photo")?,
        status: row.get("status")?,
        decided_by: row.get("decided_by")?,
        decided_at_ms: row.get("decided_at_ms")?,
        visitor_id: row.get("visitor_id")?,
    })
}

/// A pass from the columns of [`visit_rows::SELECT_PASSES`].
fn pass_row(row: &Row<'_>) -> rusqlite::Result<PassRow> {
    Ok(PassRow {
        id: row.get("id")?,
        visit_id: row.get("visit_id")?,
        door: row.get("door")?,
        kind: row.get("kind")?,
        secret_hash: row.get("secret_hash")?,
        expires_at_ms: row.get("expires_at_ms")?,
        uses_left: row.get("uses_left")?,
        wrong_tries: row.get("wrong_tries")?,
        locked: row.get("locked")?,
    })
}

#[async_trait]
impl Visits for SqliteStore {
    async fn add_visit(&self, visit: &NewVisit) -> Result<Visit, StoreError> {
        let row = VisitRow::new(visit);
        let values: [Value; 8] = row.insert_values();
        self.with_conn(move |conn| {
            conn.execute(visit_rows::INSERT_VISIT, rusqlite::params_from_iter(values)).map_err(db_error)?;
            VisitRow { id: conn.last_insert_rowid(), ..row }.into_visit()
        })
        .await
    }

    async fn visit(&self, id: VisitId) -> Result<Option<Visit>, StoreError> {
        self.with_conn(move |conn| {
            let row = conn.query_row(&visit_rows::SELECT_VISIT, [id.0], visit_row).optional();
            row.map_err(db_error)?.map(VisitRow::into_visit).transpose()
        })
        .await
    }

    async fn list_visits(&self, query: &VisitQuery) -> Result<Vec<Visit>, StoreError> {
        let (sql, values) = visit_rows::visits_page::<Value>(query);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(db_error)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), visit_row).map_err(db_error)?;
            rows.map(|row| row.map_err(db_error)?.into_visit()).collect()
        })
        .await
    }

    async fn move_visit(
        &self,
        id: VisitId,
        from: VisitStatus,
        to: VisitStatus,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let by = by.to_owned();
        self.with_conn(move |conn| {
            let moved = conn
                .execute(visit_rows::MOVE_VISIT, params![to.as_str(), by, to_millis(at), id.0, from.as_str()])
                .map_err(db_error)?;
            Ok(moved > 0)
        })
        .await
    }

    async fn add_pass(&self, pass: &NewPass) -> Result<i64, StoreError> {
        let values: [Value; 6] = visit_rows::pass_values(pass);
        self.with_conn(move |conn| {
            conn.execute(visit_rows::INSERT_PASS, rusqlite::params_from_iter(values)).map_err(db_error)?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn passes(&self, door: &str, kind: PassKind, since: OffsetDateTime) -> Result<Vec<StoredPass>, StoreError> {
        let door = door.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&visit_rows::SELECT_PASSES).map_err(db_error)?;
            let rows = stmt.query_map(params![door, kind.as_str(), to_millis(since)], pass_row).map_err(db_error)?;
            rows.map(|row| row.map_err(db_error)?.into_pass()).collect()
        })
        .await
    }

    async fn use_pass(&self, id: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.with_conn(move |conn| {
            let used = conn.execute(visit_rows::USE_PASS, params![id, to_millis(now)]).map_err(db_error)?;
            Ok(used == 1)
        })
        .await
    }

    async fn wrong_passcode(
        &self,
        door: &str,
        now: OffsetDateTime,
        max_tries: u32,
    ) -> Result<Vec<VisitId>, StoreError> {
        let (door, now) = (door.to_owned(), to_millis(now));
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            tx.execute(&visit_rows::COUNT_WRONG_PASSCODE, params![door, now]).map_err(db_error)?;
            let locking: Vec<VisitId> = {
                let mut stmt = tx.prepare(&visit_rows::PASSCODES_TO_LOCK).map_err(db_error)?;
                let ids = stmt.query_map(params![door, now, max_tries], |r| r.get(0).map(VisitId)).map_err(db_error)?;
                ids.collect::<Result<_, _>>().map_err(db_error)?
            };
            tx.execute(&visit_rows::LOCK_PASSCODES, params![door, now, max_tries]).map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(locking)
        })
        .await
    }

    async fn forget_visit(&self, id: VisitId) -> Result<Option<String>, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let photo: Option<Option<String>> =
                tx.query_row(visit_rows::VISIT_PHOTO, [id.0], |r| r.get(0)).optional().map_err(db_error)?;
            tx.execute(visit_rows::DELETE_VISIT_PASSES, [id.0]).map_err(db_error)?;
            tx.execute(visit_rows::DELETE_VISIT, [id.0]).map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(photo.flatten())
        })
        .await
    }

    async fn expire_visits(&self, undecided_before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.with_conn(move |conn| {
            let undecided =
                conn.execute(visit_rows::EXPIRE_UNDECIDED, [to_millis(undecided_before)]).map_err(db_error)?;
            let spent = conn.execute(visit_rows::EXPIRE_SPENT, [to_millis(now)]).map_err(db_error)?;
            Ok((undecided + spent) as u64)
        })
        .await
    }

    async fn forget_visits_before(&self, cutoff: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let cutoff = to_millis(cutoff);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let photos: Vec<String> = {
                let mut stmt = tx.prepare(visit_rows::OLD_VISIT_PHOTOS).map_err(db_error)?;
                let photos = stmt.query_map([cutoff], |r| r.get(0)).map_err(db_error)?;
                photos.collect::<Result<_, _>>().map_err(db_error)?
            };
            tx.execute(visit_rows::DELETE_OLD_PASSES, [cutoff]).map_err(db_error)?;
            tx.execute(visit_rows::DELETE_OLD_VISITS, [cutoff]).map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(photos)
        })
        .await
    }
}

/// A known visitor from the columns of [`visitor_rows::SELECT_KNOWN_VISITOR`].
fn known_visitor_row(row: &Row<'_>) -> rusqlite::Result<KnownVisitorRow> {
    Ok(KnownVisitorRow {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        mobile: row.get("mobile")?,
        auto_pass: row.get("auto_pass")?,
        last_visit_ms: row.get("last_visit_ms")?,
        visits: row.get("visits")?,
        faces: row.get("faces")?,
    })
}

fn read_known_visitor(conn: &Connection, id: VisitorId) -> Result<Option<KnownVisitor>, StoreError> {
    let row = conn.query_row(&visitor_rows::SELECT_KNOWN_VISITOR, [id.0], known_visitor_row).optional();
    Ok(row.map_err(db_error)?.map(KnownVisitorRow::into_known_visitor))
}

fn known_visitor_exists(conn: &Connection, id: VisitorId) -> Result<bool, StoreError> {
    let count: i64 = conn.query_row(visitor_rows::COUNT_KNOWN_VISITOR, [id.0], |r| r.get(0)).map_err(db_error)?;
    Ok(count > 0)
}

/// Forgets the visitors `statements` choose by `value`, in one transaction; returns how many and
/// their visits' photos.
fn forget_visitors(
    conn: &mut Connection,
    statements: &ForgetVisitors,
    value: i64,
) -> Result<(u64, Vec<String>), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
    let count: i64 = tx.query_row(&statements.count, [value], |r| r.get(0)).map_err(db_error)?;
    let photos: Vec<String> = {
        let mut stmt = tx.prepare(&statements.photos).map_err(db_error)?;
        let photos = stmt.query_map([value], |r| r.get(0)).map_err(db_error)?;
        photos.collect::<Result<_, _>>().map_err(db_error)?
    };
    for delete in &statements.deletes {
        tx.execute(delete, [value]).map_err(db_error)?;
    }
    tx.commit().map_err(db_error)?;
    Ok((u64::try_from(count).unwrap_or(0), photos))
}

#[async_trait]
impl KnownVisitors for SqliteStore {
    async fn add_known_visitor(
        &self,
        details: &VisitorDetails,
        last_visit: OffsetDateTime,
    ) -> Result<KnownVisitor, StoreError> {
        let VisitorDetails { name, email, mobile } = details.clone();
        self.with_conn(move |conn| {
            conn.execute(visitor_rows::INSERT_KNOWN_VISITOR, params![name, email, mobile, to_millis(last_visit)])
                .map_err(db_error)?;
            let id = VisitorId(conn.last_insert_rowid());
            read_known_visitor(conn, id)?.ok_or_else(|| visitor_rows::no_visitor(id))
        })
        .await
    }

    async fn known_visitor(&self, id: VisitorId) -> Result<Option<KnownVisitor>, StoreError> {
        self.with_conn(move |conn| read_known_visitor(conn, id)).await
    }

    async fn list_known_visitors(&self) -> Result<Vec<KnownVisitor>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(&visitor_rows::LIST_KNOWN_VISITORS).map_err(db_error)?;
            let rows = stmt.query_map([], known_visitor_row).map_err(db_error)?;
            rows.map(|row| Ok(row.map_err(db_error)?.into_known_visitor())).collect()
        })
        .await
    }

    async fn update_known_visitor(&self, id: VisitorId, details: &VisitorDetails) -> Result<(), StoreError> {
        let VisitorDetails { name, email, mobile } = details.clone();
        self.with_conn(move |conn| {
            let changed = conn
                .execute(visitor_rows::UPDATE_KNOWN_VISITOR, params![name, email, mobile, id.0])
                .map_err(db_error)?;
            if changed == 0 { Err(visitor_rows::no_visitor(id)) } else { Ok(()) }
        })
        .await
    }

    async fn set_auto_pass(&self, id: VisitorId, auto_pass: bool) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            let changed = conn.execute(visitor_rows::SET_AUTO_PASS, params![auto_pass, id.0]).map_err(db_error)?;
            if changed == 0 { Err(visitor_rows::no_visitor(id)) } else { Ok(()) }
        })
        .await
    }

    async fn link_visit(&self, visit: VisitId, visitor: VisitorId, at: OffsetDateTime) -> Result<(), StoreError> {
        let at = to_millis(at);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            if !known_visitor_exists(&tx, visitor)? {
                return Err(visitor_rows::no_visitor(visitor));
            }
            if tx.execute(visitor_rows::LINK_VISIT, params![visitor.0, visit.0]).map_err(db_error)? == 0 {
                return Err(visitor_rows::no_visit(visit));
            }
            tx.execute(visitor_rows::FILL_VISIT_CONTACT, params![visitor.0, visitor.0, visit.0]).map_err(db_error)?;
            tx.execute(visitor_rows::TOUCH_KNOWN_VISITOR, params![at, visitor.0, at]).map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
        .await
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
        let (kind, blob, at) = (kind.to_owned(), rows::descriptor_to_blob(descriptor), to_millis(at));
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            if !known_visitor_exists(&tx, visitor)? {
                return Err(visitor_rows::no_visitor(visitor));
            }
            tx.execute(visitor_rows::INSERT_VISITOR_FACE, params![visitor.0, kind, blob, at]).map_err(db_error)?;
            let id = tx.last_insert_rowid();
            let oldest_kept: Option<i64> = tx
                .query_row(visitor_rows::OLDEST_FACE_KEPT, params![visitor.0, keep.max(1) - 1], |r| r.get(0))
                .optional()
                .map_err(db_error)?;
            if let Some(oldest_kept) = oldest_kept {
                tx.execute(visitor_rows::DELETE_OLDER_FACES, params![visitor.0, oldest_kept]).map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(id)
        })
        .await
    }

    async fn visitor_faces(&self, kind: &str) -> Result<Vec<VisitorFace>, StoreError> {
        let kind = kind.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(visitor_rows::SELECT_VISITOR_FACES).map_err(db_error)?;
            let faces = stmt
                .query_map([kind], |r| {
                    let blob: Vec<u8> = r.get(2)?;
                    Ok(VisitorFace {
                        id: r.get(0)?,
                        visitor: VisitorId(r.get(1)?),
                        descriptor: rows::blob_to_descriptor(&blob),
                    })
                })
                .map_err(db_error)?;
            faces.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn forget_known_visitor(&self, id: VisitorId) -> Result<Vec<String>, StoreError> {
        let (_, photos) = self.with_conn(move |conn| forget_visitors(conn, &visitor_rows::FORGET_ONE, id.0)).await?;
        Ok(photos)
    }

    async fn forget_visitors_before(&self, cutoff: OffsetDateTime) -> Result<(u64, Vec<String>), StoreError> {
        let cutoff = to_millis(cutoff);
        self.with_conn(move |conn| forget_visitors(conn, &visitor_rows::FORGET_OLD, cutoff)).await
    }
}

#[async_trait]
impl Doors for SqliteStore {
    async fn register_door(&self, door: &SiteDoor) -> Result<(), StoreError> {
        let (id, name, web_address, version, last_seen_ms) = site_rows::door_row(door);
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO doors(id, name, web_address, version, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, web_address = excluded.web_address,
                     version = excluded.version, last_seen_ms = excluded.last_seen_ms",
                params![id, name, web_address, version, last_seen_ms],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn list_doors(&self) -> Result<Vec<SiteDoor>, StoreError> {
        self.with_conn(|conn| {
            let rows = all_rows(conn, site_rows::SELECT_DOORS, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            Ok(rows.into_iter().map(site_rows::site_door).collect())
        })
        .await
    }
}

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn add_api_key(&self, name: &str, key_hash: &str) -> Result<ApiKey, StoreError> {
        let (name, key_hash, created_ms) = (name.to_owned(), key_hash.to_owned(), now_ms());
        self.with_conn(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO api_keys(name, key_hash, created_ms) VALUES (?1, ?2, ?3)",
                params![name, key_hash, created_ms],
            );
            match inserted {
                Ok(_) => Ok(rows::api_key_row((conn.last_insert_rowid(), name, key_hash, created_ms, None))),
                Err(e) if is_constraint_violation(&e) => Err(rows::api_key_exists()),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, name, key_hash, created_ms, last_used_ms FROM api_keys ORDER BY id")
                .map_err(db_error)?;
            let keys = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
                .map_err(db_error)?;
            keys.map(|row| row.map(rows::api_key_row)).collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn api_key_used(&self, id: i64, at: OffsetDateTime) -> Result<(), StoreError> {
        let at = to_millis(at);
        self.with_conn(move |conn| {
            conn.execute("UPDATE api_keys SET last_used_ms = ?1 WHERE id = ?2", params![at, id]).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn revoke_api_key(&self, id: i64) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            match conn.execute("DELETE FROM api_keys WHERE id = ?1", [id]).map_err(db_error)? {
                0 => Err(rows::no_api_key(id)),
                _ => Ok(()),
            }
        })
        .await
    }
}

fn passkey_row(row: &Row<'_>) -> rusqlite::Result<StoredPasskey> {
    let columns =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?);
    Ok(rows::passkey_row(columns))
}

/// The passkeys `condition` (a `WHERE` clause of [`rows::PASSKEY_SELECT`]) picks, oldest first.
fn select_passkeys(conn: &Connection, condition: &str, value: Value) -> Result<Vec<StoredPasskey>, StoreError> {
    let sql = format!("{} WHERE {condition} ORDER BY p.id", rows::PASSKEY_SELECT);
    let mut stmt = conn.prepare(&sql).map_err(db_error)?;
    let found = stmt.query_map([value], passkey_row).map_err(db_error)?;
    found.collect::<Result<_, _>>().map_err(db_error)
}

#[async_trait]
impl Passkeys for SqliteStore {
    async fn add_passkey(&self, passkey: &NewPasskey<'_>) -> Result<StoredPasskey, StoreError> {
        let username = passkey.username.to_owned();
        let columns = (
            passkey.user_handle.to_owned(),
            passkey.credential_id.to_vec(),
            passkey.name.to_owned(),
            passkey.credential.to_owned(),
            now_ms(),
        );
        self.with_conn(move |conn| {
            let (user_handle, credential_id, name, credential, created_ms) = columns;
            let inserted = conn.execute(
                "INSERT INTO passkeys(user_handle, credential_id, name, credential, created_ms, user_id) \
                 SELECT ?1, ?2, ?3, ?4, ?5, id FROM users WHERE username = ?6",
                params![user_handle, credential_id, name, credential, created_ms, username],
            );
            match inserted {
                Ok(0) => Err(rows::no_user(&username)),
                Ok(_) => select_passkeys(conn, "p.id = ?1", Value::Integer(conn.last_insert_rowid()))?
                    .pop()
                    .ok_or_else(|| rows::no_user(&username)),
                Err(e) if is_constraint_violation(&e) => Err(rows::passkey_exists()),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn passkeys_of(&self, username: &str) -> Result<Vec<StoredPasskey>, StoreError> {
        let username = Value::Text(username.to_owned());
        self.with_conn(move |conn| select_passkeys(conn, "u.username = ?1", username)).await
    }

    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<StoredPasskey>, StoreError> {
        let credential_id = Value::Blob(credential_id.to_vec());
        self.with_conn(move |conn| Ok(select_passkeys(conn, "p.credential_id = ?1", credential_id)?.pop())).await
    }

    async fn passkey_used(&self, id: i64, at: OffsetDateTime, credential: &str) -> Result<(), StoreError> {
        let (at, credential) = (to_millis(at), credential.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE passkeys SET last_used_ms = ?1, credential = ?2 WHERE id = ?3",
                params![at, credential, id],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn remove_passkey(&self, username: &str, id: i64) -> Result<(), StoreError> {
        let username = username.to_owned();
        self.with_conn(move |conn| {
            let removed = conn
                .execute(
                    "DELETE FROM passkeys WHERE id = ?1 AND user_id = (SELECT id FROM users WHERE username = ?2)",
                    params![id, username],
                )
                .map_err(db_error)?;
            match removed {
                0 => Err(rows::no_passkey(&username, id)),
                _ => Ok(()),
            }
        })
        .await
    }
}

/// A logged attempt from the columns of [`sign_in_rows::page`].
fn sign_in_row(row: &Row<'_>) -> rusqlite::Result<SignInRow> {
    Ok(SignInRow {
        id: row.get("id")?,
        at_ms: row.get("at_ms")?,
        account: row.get("account")?,
        method: row.get("method")?,
        outcome: row.get("outcome")?,
        address: row.get("address")?,
        user_agent: row.get("user_agent")?,
        similarity: row.get("similarity")?,
        has_thumbnail: row.get("has_thumbnail")?,
    })
}

#[async_trait]
impl SignIns for SqliteStore {
    async fn record_sign_in(&self, attempt: &SignInAttempt, thumbnail: Option<&[u8]>) -> Result<i64, StoreError> {
        let values: [Value; 8] = sign_in_rows::insert_values(attempt, thumbnail);
        self.with_conn(move |conn| {
            conn.execute(sign_in_rows::INSERT_SIGN_IN, rusqlite::params_from_iter(values)).map_err(db_error)?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn sign_in_thumbnail(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_conn(move |conn| {
            let found: Option<Option<Vec<u8>>> =
                conn.query_row(sign_in_rows::THUMBNAIL, [id], |row| row.get(0)).optional().map_err(db_error)?;
            Ok(found.flatten())
        })
        .await
    }

    async fn sign_ins(&self, query: &SignInQuery) -> Result<Vec<SignInEntry>, StoreError> {
        let (sql, values) = sign_in_rows::page::<Value>(query);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(db_error)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), sign_in_row).map_err(db_error)?;
            rows.map(|row| row.map_err(db_error)?.into_entry()).collect()
        })
        .await
    }

    async fn count_sign_ins(&self, query: &SignInQuery) -> Result<u64, StoreError> {
        let (sql, values) = sign_in_rows::count::<Value>(query);
        self.with_conn(move |conn| {
            let count: i64 =
                conn.query_row(&sql, rusqlite::params_from_iter(values), |row| row.get(0)).map_err(db_error)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn prune_sign_ins(&self, cutoff: OffsetDateTime, keep: u64) -> Result<u64, StoreError> {
        let cutoff = to_millis(cutoff);
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let old = conn.execute(sign_in_rows::DELETE_BEFORE, [cutoff]).map_err(db_error)?;
            let newest: Option<i64> =
                conn.query_row(sign_in_rows::NEWEST_ID, [], |row| row.get(0)).map_err(db_error)?;
            let surplus = match newest {
                Some(newest) if newest > keep => {
                    conn.execute(sign_in_rows::DELETE_UP_TO, [newest - keep]).map_err(db_error)?
                }
                _ => 0,
            };
            Ok((old + surplus) as u64)
        })
        .await
    }
}

fn face_link_row(row: &Row<'_>) -> rusqlite::Result<FaceLink> {
    Ok(FaceLink {
        person: PersonId(row.get("person_id")?),
        enabled: row.get("enabled")?,
        max_role: row.get("max_role")?,
    })
}

#[async_trait]
impl FaceLinks for SqliteStore {
    async fn face_link(&self, username: &str) -> Result<Option<FaceLink>, StoreError> {
        let username = username.to_owned();
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT f.person_id, f.enabled, f.max_role FROM face_sign_in f JOIN users u ON u.id = f.user_id \
                 WHERE u.username = ?1",
                [username],
                face_link_row,
            )
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn face_links(&self) -> Result<Vec<(String, FaceLink)>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT u.username, f.person_id, f.enabled, f.max_role FROM face_sign_in f \
                     JOIN users u ON u.id = f.user_id ORDER BY u.username",
                )
                .map_err(db_error)?;
            let links = stmt.query_map([], |row| Ok((row.get("username")?, face_link_row(row)?))).map_err(db_error)?;
            links.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn set_face_link(&self, username: &str, link: &FaceLink) -> Result<(), StoreError> {
        let (username, link) = (username.to_owned(), link.clone());
        self.with_conn(move |conn| {
            let user: Option<i64> = conn
                .query_row("SELECT id FROM users WHERE username = ?1", [&username], |row| row.get(0))
                .optional()
                .map_err(db_error)?;
            let user = user.ok_or_else(|| rows::no_user(&username))?;
            let written = conn.execute(
                "INSERT INTO face_sign_in(user_id, person_id, enabled, max_role) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(user_id) DO UPDATE SET person_id = excluded.person_id, enabled = excluded.enabled, \
                 max_role = excluded.max_role",
                params![user, link.person.0, link.enabled, link.max_role],
            );
            match written {
                Ok(_) => Ok(()),
                Err(e) if is_constraint_violation(&e) => Err(rows::no_person(link.person)),
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn remove_face_link(&self, username: &str) -> Result<(), StoreError> {
        let username = username.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                "DELETE FROM face_sign_in WHERE user_id IN (SELECT id FROM users WHERE username = ?1)",
                [username],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Decision, Reason, StageTimings};

    /// Every column holds a value of its own, so that values written to the wrong column show.
    #[tokio::test]
    async fn an_attempt_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("facereko.db")).await.unwrap();
        store.migrate().await.unwrap();
        let alice = store.add_person("Alice").await.unwrap();
        let event = AccessEvent {
            event_id: "event-1".into(),
            at: rows::from_millis(1_800_000_000_123),
            door: "front".into(),
            card_uid: Some("04A1B2C3".parse().unwrap()),
            person_id: Some(alice.id),
            person_name: Some("Alice".into()),
            decision: Decision::Granted,
            reason: Reason::CardAndFace,
            similarity: Some(97.25),
            confidence: Some(0.875),
            engine: Some("simulated".into()),
            photo: Some("2027/01/15/1.jpg".into()),
            timings: StageTimings {
                read_ms: 3,
                capture_ms: Some(120),
                match_ms: Some(60),
                actuate_ms: 1,
                total_ms: 190,
            },
            detail: Some("a note".into()),
        };
        let id = store.record_attempt(&event, &Notices::MQTT).await.unwrap();
        assert_eq!(store.log_entry(id).await.unwrap(), Some(LogEntry { id, event: event.clone() }));
        assert_eq!(store.record_attempt(&event, &Notices::MQTT).await.unwrap(), id, "a replay adds nothing");
        assert_eq!(store.access_log(&LogQuery { limit: 10, ..LogQuery::default() }).await.unwrap().len(), 1);
    }
}
