//! SQLite backend: the embedded default. One connection, used from blocking threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;

use super::{Card, LogEntry, LogQuery, OutboxItem, OutboxPruned, Person, PersonId, PersonSummary, Store, StoreError};
use crate::card::CardUid;
use crate::door::{AccessEvent, Decision, StageTimings};
use crate::engine::{FaceTemplate, StoredFace};

const MIGRATIONS: &[(u32, &str)] = &[(1, include_str!("../../sql/sqlite/0001_init.sql"))];

const ARMED_KEY: &str = "armed";
const FACES_VERSION_KEY: &str = "faces_version";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn descriptor_to_blob(descriptor: &[f32]) -> Vec<u8> {
    descriptor.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn blob_to_descriptor(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn bump_faces_version(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?1, '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [FACES_VERSION_KEY],
    )?;
    Ok(())
}

fn stored_face(row: &Row<'_>) -> rusqlite::Result<StoredFace> {
    let descriptor: Option<Vec<u8>> = row.get("descriptor")?;
    let remote: Option<String> = row.get("remote_id")?;
    let template = match (descriptor, remote) {
        (Some(blob), _) => FaceTemplate::Descriptor(blob_to_descriptor(&blob)),
        (None, Some(id)) => FaceTemplate::Remote(id),
        (None, None) => {
            let detail = "face row has neither descriptor nor remote id".into();
            return Err(rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, detail));
        }
    };
    Ok(StoredFace { id: row.get("id")?, person: PersonId(row.get("person_id")?), template })
}

/// Reads a text column holding one of our named values; a foreign value is a data error.
fn parsed<T: std::str::FromStr<Err = String>>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    text.parse().map_err(|e: String| {
        let id: i64 = row.get("id").unwrap_or_default();
        let detail = format!("row {id}, column {column}: {e}");
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, detail.into())
    })
}

fn millis_column(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<u32>> {
    Ok(row.get::<_, Option<i64>>(column)?.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
}

fn log_entry(row: &Row<'_>) -> rusqlite::Result<LogEntry> {
    let at_ms: i64 = row.get("at_ms")?;
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let card_uid = row.get::<_, Option<String>>("card_uid")?.and_then(|uid| uid.parse::<CardUid>().ok());
    Ok(LogEntry {
        id: row.get("id")?,
        event: AccessEvent {
            event_id: row.get("event_id")?,
            at,
            door: row.get("door")?,
            card_uid,
            person_id: row.get::<_, Option<i64>>("person_id")?.map(PersonId),
            person_name: row.get("person_name")?,
            decision: parsed(row, "decision")?,
            reason: parsed(row, "reason")?,
            similarity: row.get("similarity")?,
            confidence: row.get("confidence")?,
            engine: row.get("engine")?,
            photo: row.get("photo")?,
            timings: StageTimings {
                read_ms: millis_column(row, "read_ms")?.unwrap_or(0),
                capture_ms: millis_column(row, "capture_ms")?,
                match_ms: millis_column(row, "match_ms")?,
                actuate_ms: millis_column(row, "actuate_ms")?.unwrap_or(0),
                total_ms: millis_column(row, "total_ms")?.unwrap_or(0),
            },
            detail: row.get("detail")?,
        },
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. Its folder must exist.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
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
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `work` on a blocking thread with the connection.
    async fn with_conn<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Database(format!("database task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        self.with_conn(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
            )
            .map_err(db_error)?;
            let current: u32 = conn
                .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
                .map_err(db_error)?;
            let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
            if current > known {
                return Err(StoreError::SchemaTooNew { found: current, known });
            }
            let mut applied = Vec::new();
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                let failed = |e: rusqlite::Error| StoreError::Migration { version: *version, detail: e.to_string() };
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
                tx.execute_batch(sql).map_err(failed)?;
                tx.execute(
                    "INSERT INTO schema_migrations(version, applied_ms) VALUES (?1, ?2)",
                    params![version, now_ms()],
                )
                .map_err(failed)?;
                tx.commit().map_err(failed)?;
                applied.push(*version);
            }
            Ok(applied)
        })
        .await
    }

    async fn add_person(&self, name: &str) -> Result<Person, StoreError> {
        let name = name.trim().to_owned();
        self.with_conn(move |conn| {
            let inserted =
                conn.execute("INSERT INTO people(name, created_ms) VALUES (?1, ?2)", params![name, now_ms()]);
            match inserted {
                Ok(_) => Ok(Person { id: PersonId(conn.last_insert_rowid()), name }),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Conflict(format!("a person named {name:?} already exists")))
                }
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn person_by_name(&self, name: &str) -> Result<Option<Person>, StoreError> {
        let name = name.trim().to_owned();
        self.with_conn(move |conn| {
            conn.query_row("SELECT id, name FROM people WHERE name = ?1", [name], |r| {
                Ok(Person { id: PersonId(r.get(0)?), name: r.get(1)? })
            })
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
                return Err(StoreError::NotFound(format!("no person with id {id}")));
            }
            if !faces.is_empty() {
                bump_faces_version(&tx).map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(faces)
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
                return Err(StoreError::Conflict(format!(
                    "card {uid} already belongs to {name}; remove it first with `facereko card remove {uid}`"
                )));
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

    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Person>, StoreError> {
        let uid = uid.clone();
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT p.id, p.name FROM cards c JOIN people p ON p.id = c.person_id WHERE c.uid = ?1",
                [uid.as_str()],
                |r| Ok(Person { id: PersonId(r.get(0)?), name: r.get(1)? }),
            )
            .optional()
            .map_err(db_error)
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
                let uid = uid.parse().map_err(|e| StoreError::Database(format!("bad card UID in the database: {e}")))?;
                cards.push(Card { uid, person });
            }
            Ok(cards)
        })
        .await
    }

    async fn remove_card(&self, uid: &CardUid) -> Result<(), StoreError> {
        let uid = uid.clone();
        self.with_conn(move |conn| {
            match conn.execute("DELETE FROM cards WHERE uid = ?1", [uid.as_str()]).map_err(db_error)? {
                0 => Err(StoreError::NotFound(format!("card {uid} is not enrolled"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn add_face(&self, person: PersonId, engine: &str, template: &FaceTemplate) -> Result<i64, StoreError> {
        if let FaceTemplate::Descriptor(values) = template
            && values.iter().any(|v| !v.is_finite())
        {
            return Err(StoreError::Conflict("the face descriptor has values that are not numbers".into()));
        }
        let (engine, template) = (engine.to_owned(), template.clone());
        self.with_conn(move |conn| {
            let (descriptor, remote) = match &template {
                FaceTemplate::Descriptor(d) => (Some(descriptor_to_blob(d)), None),
                FaceTemplate::Remote(id) => (None, Some(id.as_str())),
            };
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

    async fn record_attempt(&self, event: &AccessEvent, notify: bool) -> Result<i64, StoreError> {
        let event = event.clone();
        self.with_conn(move |conn| {
            let at_ms = i64::try_from(event.at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let t = &event.timings;
            tx.execute(
                "INSERT INTO access_log(event_id, at_ms, door, card_uid, person_id, person_name, decision, reason,
                     similarity, confidence, engine, photo, read_ms, capture_ms, match_ms, actuate_ms, total_ms, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    event.event_id,
                    at_ms,
                    event.door,
                    event.card_uid.as_ref().map(CardUid::as_str),
                    event.person_id.map(|p| p.0),
                    event.person_name,
                    event.decision.as_str(),
                    event.reason.as_str(),
                    event.similarity,
                    event.confidence,
                    event.engine,
                    event.photo,
                    t.read_ms,
                    t.capture_ms,
                    t.match_ms,
                    t.actuate_ms,
                    t.total_ms,
                    event.detail,
                ],
            )
            .map_err(db_error)?;
            let id = tx.last_insert_rowid();
            if notify {
                let kind = if event.decision == Decision::Granted { "success" } else { "failure" };
                let payload = serde_json::to_string(&event).map_err(|e| StoreError::Database(e.to_string()))?;
                tx.execute(
                    "INSERT INTO outbox(event_id, kind, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![event.event_id, kind, payload, now_ms()],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(id)
        })
        .await
    }

    async fn access_log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let query = query.clone();
        self.with_conn(move |conn| {
            let mut sql = String::from("SELECT * FROM access_log WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            if let Some(decision) = query.decision {
                args.push(decision.as_str().to_owned());
                sql.push_str(&format!(" AND decision = ?{}", args.len()));
            }
            if let Some(reason) = query.reason {
                args.push(reason.as_str().to_owned());
                sql.push_str(&format!(" AND reason = ?{}", args.len()));
            }
            sql.push_str(&format!(" ORDER BY at_ms DESC, id DESC LIMIT {}", query.limit));
            let mut stmt = conn.prepare(&sql).map_err(db_error)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), log_entry).map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
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
                items.push(OutboxItem { id, event: outbox_event(id, &payload)?, attempts: attempts + 1 });
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

    async fn armed(&self) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let value: Option<String> = conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [ARMED_KEY], |r| r.get(0))
                .optional()
                .map_err(db_error)?;
            // A new installation starts armed: nothing opens until someone is enrolled.
            match value.as_deref() {
                None | Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => Err(StoreError::Database(format!(
                    "settings.armed is {other:?}; expected true or false (`facereko arm` or `facereko disarm` rewrites it)"
                ))),
            }
        })
        .await
    }

    async fn set_armed(&self, armed: bool) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![ARMED_KEY, armed.to_string()],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

/// The stored payload is the event as JSON; a row we cannot read is reported with its id rather than skipped.
fn outbox_event(id: i64, payload: &str) -> Result<AccessEvent, StoreError> {
    serde_json::from_str(payload)
        .map_err(|e| StoreError::Database(format!("outbox row {id} holds an unreadable event: {e}")))
}

fn read_faces_version(conn: &Connection) -> Result<u64, StoreError> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [FACES_VERSION_KEY], |r| r.get(0))
        .optional()
        .map_err(db_error)?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}
