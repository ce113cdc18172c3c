//! Keeps the door working while a database server is away.
//!
//! [`ResilientStore`] wraps the server's store and keeps a local SQLite file in `data_dir` with
//! (a) a copy of what decisions need (cards with their holders, enrolled faces, the armed state,
//! the schedules, holidays, time limits, door rights and groups),
//! refreshed whenever the server answers, and (b) a spool of access-log rows written while the
//! server could not be reached. A background task retries with back-off and writes the spool to
//! the server, oldest first, when it answers again; `record_attempt` is idempotent by `event_id`,
//! so a row is never written twice. Changes to people, cards and faces need the server.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::rows::{self, ARMED_KEY, FACES_VERSION_KEY};
use super::sqlite::{BlockingConnection, db_error};
use super::{
    AccessLog, Accounts, ApiKeys, Card, DoorPath, Doors, FaceLinks, Groups, KnownVisitors, LeftoverFaces, Messages,
    Notices, Outbox, Passkeys, People, Removals, Schedules, Schema, Settings, SignIns, Store, StoreError, Visits,
};
use crate::access::AccessEvent;
use crate::access::{Person, PersonId};
use crate::card::CardUid;
use crate::engine::{FaceTemplate, StoredFace};
use crate::schedule::{AccessRules, DoorRight, Group, Holiday, Limits, Schedule, Window};

/// The local copy and spool, in `data_dir`.
pub const CACHE_FILE: &str = "database-cache.db";

/// Longest wait for the server on the door's path before the local copy answers.
const DOOR_PATH_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the server to take the spool when the daemon stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the server at start-up before the daemon runs on the local copy.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the local copy is refreshed while the server answers.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

const SNAPSHOT_KEY: &str = "snapshot_ms";
/// The schedules, holidays and limits, as JSON: small, and read whole on every tap.
const ACCESS_RULES_KEY: &str = "access_rules";

const CACHE_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS cached_cards (
        uid         TEXT    PRIMARY KEY,
        person_id   INTEGER NOT NULL,
        person_name TEXT    NOT NULL
    );
    CREATE TABLE IF NOT EXISTS cached_faces (
        engine     TEXT    NOT NULL,
        id         INTEGER NOT NULL,
        person_id  INTEGER NOT NULL,
        descriptor BLOB,
        remote_id  TEXT,
        PRIMARY KEY (engine, id)
    );
    CREATE TABLE IF NOT EXISTS cached_settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Access-log rows waiting for the server, in the order they happened.
    CREATE TABLE IF NOT EXISTS spool (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        event    TEXT    NOT NULL,
        notify   INTEGER NOT NULL,
        messages TEXT    NOT NULL DEFAULT '[]'
    );";

/// A spool made before messages existed gets their column (an empty list for its rows).
fn add_messages_column(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let has_it: bool = conn
        .query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('spool') WHERE name = 'messages'", [], |r| r.get(0))
        .map_err(db_error)?;
    if !has_it {
        conn.execute_batch("ALTER TABLE spool ADD COLUMN messages TEXT NOT NULL DEFAULT '[]'").map_err(db_error)?;
    }
    Ok(())
}

/// What a removal drops from the local copy.
#[derive(Debug, Clone, Copy)]
enum Forget {
    Face(i64),
    /// Their cards and faces.
    Person(PersonId),
}

/// The local SQLite file: the copy for decisions and the spool.
#[derive(Clone)]
struct LocalCache(BlockingConnection);

fn set_cached(conn: &rusqlite::Connection, name: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO cached_settings(name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )
    .map(drop)
}

fn cached(conn: &rusqlite::Connection, name: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM cached_settings WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .map_err(db_error)
}

fn count_spooled(conn: &rusqlite::Connection) -> Result<u64, StoreError> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM spool", [], |r| r.get(0)).map_err(db_error)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

impl LocalCache {
    async fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = BlockingConnection::open(path).await?;
        conn.run(|c| {
            c.execute_batch(CACHE_SCHEMA).map_err(db_error)?;
            add_messages_column(c)
        })
        .await?;
        Ok(Self(conn))
    }

    /// When the cards were last copied, in Unix milliseconds; `None` before the first copy.
    async fn snapshot_ms(&self) -> Result<Option<i64>, StoreError> {
        self.0.run(|c| Ok(cached(c, SNAPSHOT_KEY)?.and_then(|v| v.parse().ok()))).await
    }

    async fn save_cards(&self, cards: Vec<Card>) -> Result<(), StoreError> {
        self.0
            .run(move |c| {
                let tx = c.transaction().map_err(db_error)?;
                tx.execute("DELETE FROM cached_cards", []).map_err(db_error)?;
                for card in &cards {
                    tx.execute(
                        "INSERT INTO cached_cards(uid, person_id, person_name) VALUES (?1, ?2, ?3)",
                        params![card.uid.as_str(), card.person.id.0, card.person.name],
                    )
                    .map_err(db_error)?;
                }
                set_cached(&tx, SNAPSHOT_KEY, &rows::now_ms().to_string()).map_err(db_error)?;
                tx.commit().map_err(db_error)
            })
            .await
    }

    /// Records what the server just said about one card.
    async fn save_card(&self, uid: &CardUid, holder: Option<Person>) -> Result<(), StoreError> {
        let uid = uid.clone();
        self.0
            .run(move |c| {
                match holder {
                    Some(person) => c.execute(
                        "INSERT INTO cached_cards(uid, person_id, person_name) VALUES (?1, ?2, ?3)
                         ON CONFLICT(uid) DO UPDATE SET person_id = excluded.person_id, person_name = excluded.person_name",
                        params![uid.as_str(), person.id.0, person.name],
                    ),
                    None => c.execute("DELETE FROM cached_cards WHERE uid = ?1", [uid.as_str()]),
                }
                .map(drop)
                .map_err(db_error)
            })
            .await
    }

    /// The holder of `uid` as copied; `None` when nothing was ever copied.
    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Option<Person>>, StoreError> {
        let uid = uid.clone();
        self.0
            .run(move |c| {
                if cached(c, SNAPSHOT_KEY)?.is_none() {
                    return Ok(None);
                }
                let holder = c
                    .query_row("SELECT person_id, person_name FROM cached_cards WHERE uid = ?1", [uid.as_str()], |r| {
                        Ok(Person { id: PersonId(r.get(0)?), name: r.get(1)? })
                    })
                    .optional()
                    .map_err(db_error)?;
                Ok(Some(holder))
            })
            .await
    }

    async fn save_faces(&self, engine: &str, version: u64, faces: Vec<StoredFace>) -> Result<(), StoreError> {
        let engine = engine.to_owned();
        self.0
            .run(move |c| {
                let tx = c.transaction().map_err(db_error)?;
                tx.execute("DELETE FROM cached_faces WHERE engine = ?1", [&engine]).map_err(db_error)?;
                for face in &faces {
                    let (descriptor, remote) = rows::face_columns(&face.template);
                    tx.execute(
                        "INSERT INTO cached_faces(engine, id, person_id, descriptor, remote_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![engine, face.id, face.person.0, descriptor, remote],
                    )
                    .map_err(db_error)?;
                }
                set_cached(&tx, FACES_VERSION_KEY, &version.to_string()).map_err(db_error)?;
                tx.commit().map_err(db_error)
            })
            .await
    }

    /// Drops what the server no longer has and, when given, takes the server's new faces version
    /// (a copy that never had faces is left without one). Face ids are unique across engines.
    async fn forget(&self, what: Forget, version: Option<u64>) -> Result<(), StoreError> {
        self.0
            .run(move |c| {
                let tx = c.transaction().map_err(db_error)?;
                match what {
                    Forget::Face(id) => tx.execute("DELETE FROM cached_faces WHERE id = ?1", [id]),
                    Forget::Person(person) => tx
                        .execute("DELETE FROM cached_cards WHERE person_id = ?1", [person.0])
                        .and_then(|_| tx.execute("DELETE FROM cached_faces WHERE person_id = ?1", [person.0])),
                }
                .map_err(db_error)?;
                if let Some(version) = version {
                    tx.execute(
                        "UPDATE cached_settings SET value = ?2 WHERE name = ?1",
                        params![FACES_VERSION_KEY, version.to_string()],
                    )
                    .map_err(db_error)?;
                }
                tx.commit().map_err(db_error)
            })
            .await
    }

    async fn faces_version(&self) -> Result<Option<u64>, StoreError> {
        self.0.run(|c| Ok(cached(c, FACES_VERSION_KEY)?.map(|v| rows::parse_faces_version(Some(&v))))).await
    }

    async fn faces(&self, engine: &str) -> Result<Option<(u64, Vec<StoredFace>)>, StoreError> {
        let engine = engine.to_owned();
        self.0
            .run(move |c| {
                let Some(version) = cached(c, FACES_VERSION_KEY)? else { return Ok(None) };
                let mut stmt = c
                    .prepare(
                        "SELECT id, person_id, descriptor, remote_id FROM cached_faces WHERE engine = ?1 ORDER BY id",
                    )
                    .map_err(db_error)?;
                let found = stmt
                    .query_map([engine], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(db_error)?;
                let mut faces = Vec::new();
                for row in found {
                    let (id, person, descriptor, remote) = row.map_err(db_error)?;
                    let template: FaceTemplate =
                        rows::face_template(id, descriptor, remote).map_err(StoreError::Database)?;
                    faces.push(StoredFace { id, person: PersonId(person), template });
                }
                Ok(Some((rows::parse_faces_version(Some(&version)), faces)))
            })
            .await
    }

    async fn save_access_rules(&self, rules: &AccessRules) -> Result<(), StoreError> {
        let json = serde_json::to_string(rules).map_err(|e| StoreError::Database(e.to_string()))?;
        self.0.run(move |c| set_cached(c, ACCESS_RULES_KEY, &json).map_err(db_error)).await
    }

    /// The copied rules; `None` when nothing was ever copied.
    async fn access_rules(&self) -> Result<Option<AccessRules>, StoreError> {
        let json = self.0.run(|c| cached(c, ACCESS_RULES_KEY)).await?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Database(format!("the local copy of the schedules is unreadable: {e}")))
        })
        .transpose()
    }

    async fn save_armed(&self, armed: bool) -> Result<(), StoreError> {
        self.0.run(move |c| set_cached(c, ARMED_KEY, &armed.to_string()).map_err(db_error)).await
    }

    async fn armed(&self) -> Result<Option<bool>, StoreError> {
        self.0.run(|c| cached(c, ARMED_KEY)?.map(|v| rows::parse_armed(Some(&v))).transpose()).await
    }

    async fn spool(&self, event: &AccessEvent, notices: &Notices) -> Result<u64, StoreError> {
        let json = rows::event_payload(event)?;
        let messages = serde_json::to_string(&notices.messages).map_err(|e| StoreError::Database(e.to_string()))?;
        let notify = notices.mqtt;
        self.0
            .run(move |c| {
                c.execute(
                    "INSERT INTO spool(event, notify, messages) VALUES (?1, ?2, ?3)",
                    params![json, notify, messages],
                )
                .map_err(db_error)?;
                count_spooled(c)
            })
            .await
    }

    async fn spooled(&self) -> Result<u64, StoreError> {
        self.0.run(|c| count_spooled(c)).await
    }

    async fn oldest_spooled(&self) -> Result<Option<(i64, AccessEvent, Notices)>, StoreError> {
        let oldest: Option<(i64, String, bool, String)> = self
            .0
            .run(|c| {
                c.query_row("SELECT seq, event, notify, messages FROM spool ORDER BY seq LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(db_error)
            })
            .await?;
        oldest
            .map(|(seq, json, mqtt, messages)| {
                let unreadable =
                    |e: serde_json::Error| StoreError::Database(format!("spooled row {seq} is unreadable: {e}"));
                let event = serde_json::from_str(&json).map_err(unreadable)?;
                let messages = serde_json::from_str(&messages).map_err(unreadable)?;
                Ok((seq, event, Notices { mqtt, messages }))
            })
            .transpose()
    }

    async fn unspool(&self, seq: i64) -> Result<(), StoreError> {
        self.0.run(move |c| c.execute("DELETE FROM spool WHERE seq = ?1", [seq]).map(drop).map_err(db_error)).await
    }
}

/// Runs `call` against the server within `limit`; running out of time counts as unreachable.
async fn within<T>(limit: Duration, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unreachable(format!("no answer within {limit:?}"))))
}

/// Whether the server answers, as whoever asked it last found out: the door, the web app, the
/// CLI or the notifier (the server store reports what its connections see).
#[derive(Debug)]
pub struct Reachability {
    online: AtomicBool,
    /// Wakes the background task to retry or replay now.
    wake: Notify,
}

impl Default for Reachability {
    fn default() -> Self {
        Self { online: AtomicBool::new(true), wake: Notify::new() }
    }
}

impl Reachability {
    fn online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }

    /// Notes that the server did not answer; says so once per outage.
    pub fn went_offline(&self, error: &StoreError) {
        if self.online.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                error = %error,
                "the database went away: the door keeps deciding from the local copy and keeps access-log \
                 rows in the local spool until the database answers again"
            );
            self.wake.notify_one();
        }
    }

    /// Notes that the server answers; true when it did not before.
    fn back_online(&self) -> bool {
        !self.online.swap(true, Ordering::SeqCst)
    }
}

struct Shared {
    server: Arc<dyn Store>,
    local: LocalCache,
    reachability: Arc<Reachability>,
    migrated: AtomicBool,
    /// Keeps spool writes and replays in order.
    spool_order: tokio::sync::Mutex<()>,
}

impl Shared {
    fn online(&self) -> bool {
        self.reachability.online()
    }

    fn went_offline(&self, error: &StoreError) {
        self.reachability.went_offline(error);
    }

    /// The server's answer on the door's path, or `None` when it is away and the local copy must answer.
    async fn ask<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<Option<T>, StoreError> {
        if !self.online() {
            return Ok(None);
        }
        match within(DOOR_PATH_TIMEOUT, call).await {
            Ok(answer) => Ok(Some(answer)),
            Err(e @ StoreError::Unreachable(_)) => {
                self.went_offline(&e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Updates the local copy in the background: a tap must not wait for the SD card.
    fn remember<F>(&self, what: &'static str, save: impl FnOnce(LocalCache) -> F)
    where
        F: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let saved = save(self.local.clone());
        tokio::spawn(async move {
            if let Err(e) = saved.await {
                tracing::warn!(error = %e, "cannot update the local copy of the {what}");
            }
        });
    }

    /// Drops what the server just removed from the local copy at once, under the server's new
    /// faces version: a door that loses the server before the next refresh must neither open for
    /// it nor keep a gallery it loaded before the removal. The server has removed it either way,
    /// so a failure here is only logged (the next refresh drops it).
    async fn forget_locally(&self, what: Forget) {
        let version = match self.server.door().faces_version().await {
            Ok(version) => Some(version),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the new faces version for the local copy");
                None
            }
        };
        if let Err(e) = self.local.forget(what, version).await {
            tracing::warn!(error = %e, ?what, "cannot drop a removal from the local copy; the next refresh will");
        }
    }

    /// Copies the server's schedules, holidays and limits at once after a change: a door that
    /// loses the server before the next refresh must already judge by them (a contractor whose
    /// validity was just cut short must not get in). The server has the change either way, so a
    /// failure here is only logged.
    async fn copy_rules_now(&self) {
        let copied = match self.server.door().access_rules().await {
            Ok(rules) => self.local.save_access_rules(&rules).await,
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            tracing::warn!(error = %e, "cannot copy the changed schedules to the local copy; the next refresh will");
        }
    }

    /// Passes on the server's answer, noting an outage.
    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e @ StoreError::Unreachable(_)) = &result {
            self.went_offline(e);
        }
        result
    }

    /// Writes the spool to the server, oldest first; returns how many rows were written.
    async fn replay(&self) -> Result<u64, StoreError> {
        let mut replayed = 0;
        loop {
            let _order = self.spool_order.lock().await;
            let Some((seq, event, notices)) = self.local.oldest_spooled().await? else { break };
            // Bounded: a hung server must not hold up the door's own log writes, which wait for this lock.
            match within(DOOR_PATH_TIMEOUT, self.server.door().record_attempt(&event, &notices)).await {
                Ok(_) => replayed += 1,
                Err(e @ StoreError::Unreachable(_)) => return Err(e),
                Err(e) => {
                    // Retrying a row the server refuses would hold up every row after it; like the
                    // daemon, put all of it in the journal for recovery by hand.
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    tracing::error!(error = %e, event = %json, "the database refused a spooled access-log row");
                }
            }
            self.local.unspool(seq).await?;
        }
        Ok(replayed)
    }

    /// Copies what decisions need from the server.
    async fn refresh(&self) -> Result<(), StoreError> {
        self.local.save_cards(self.server.people().list_cards().await?).await?;
        self.local.save_armed(self.server.door().armed().await?).await?;
        self.local.save_access_rules(&self.server.door().access_rules().await?).await?;
        for engine in crate::engine::ENGINES {
            let (version, faces) = self.server.door().faces(engine).await?;
            self.local.save_faces(engine, version, faces).await?;
        }
        Ok(())
    }

    /// Migrates if that is still to do, writes the spool and refreshes the copy.
    async fn sync(&self) -> Result<(), StoreError> {
        if !self.migrated.load(Ordering::SeqCst) {
            let applied = self.server.schema().migrate().await?;
            self.migrated.store(true, Ordering::SeqCst);
            if !applied.is_empty() {
                tracing::info!(?applied, "applied database migrations");
            }
        }
        let replayed = self.replay().await?;
        // The server took the spool, so it answers: the door's questions go to it again while the
        // local copy is refreshed, which can take a while with many faces.
        if self.reachability.back_online() || replayed > 0 {
            tracing::info!(replayed, "the database answers again; spooled access-log rows written to it");
        }
        self.refresh().await
    }
}

/// A store on a database server, with the local copy and spool described in the module docs.
pub struct ResilientStore {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ResilientStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ResilientStore {
    /// Migrates the server's schema and starts the background task. A server that cannot be
    /// reached is not an error: the door runs on the local copy at `cache_path` until it answers.
    /// `reachability` is what the server store reports its outages to.
    pub async fn start(
        server: Arc<dyn Store>,
        reachability: Arc<Reachability>,
        cache_path: &Path,
    ) -> Result<Self, StoreError> {
        let local = LocalCache::open(cache_path).await?;
        let shared = Arc::new(Shared {
            server,
            local,
            reachability,
            migrated: AtomicBool::new(false),
            spool_order: tokio::sync::Mutex::new(()),
        });
        match within(STARTUP_TIMEOUT, shared.server.schema().migrate()).await {
            Ok(_) => shared.migrated.store(true, Ordering::SeqCst),
            Err(e @ StoreError::Unreachable(_)) => {
                shared.reachability.online.store(false, Ordering::SeqCst);
                let spooled = shared.local.spooled().await?;
                match shared.local.snapshot_ms().await? {
                    Some(copied_ms) => tracing::warn!(
                        error = %e,
                        copied_ms,
                        spooled,
                        "the database cannot be reached at start-up: the door decides from the local copy \
                         of people, cards and faces and keeps access-log rows in the local spool until it answers"
                    ),
                    None => tracing::error!(
                        error = %e,
                        "the database cannot be reached at start-up and there is no local copy of the cards yet: \
                         EVERY CARD IS DENIED (lookup_error) until the database answers"
                    ),
                }
            }
            Err(e) => return Err(e),
        }
        let task = tokio::spawn(keep_in_sync(Arc::clone(&shared)));
        Ok(Self { shared, task })
    }

    /// Access-log rows waiting in the local spool for the server.
    pub async fn spooled(&self) -> Result<u64, StoreError> {
        self.shared.local.spooled().await
    }
}

/// Retries an unreachable server with back-off; refreshes the local copy while it answers.
async fn keep_in_sync(shared: Arc<Shared>) {
    let mut retry = RETRY_FIRST;
    loop {
        let wait = match shared.sync().await {
            Ok(()) => {
                retry = RETRY_FIRST;
                REFRESH_EVERY
            }
            Err(e) => {
                match e {
                    StoreError::Unreachable(_) => shared.went_offline(&e),
                    _ => tracing::warn!(error = %e, "cannot bring the local copy and spool up to date"),
                }
                let wait = retry;
                retry = (retry * 2).min(RETRY_MAX);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.reachability.wake.notified() => {}
        }
    }
}

#[async_trait]
impl Schema for ResilientStore {
    async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let applied = self.shared.noted(self.shared.server.schema().migrate().await)?;
        self.shared.migrated.store(true, Ordering::SeqCst);
        Ok(applied)
    }
}

#[async_trait]
impl DoorPath for ResilientStore {
    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Person>, StoreError> {
        let shared = &self.shared;
        if let Some(holder) = shared.ask(shared.server.door().card_holder(uid)).await? {
            let (uid, copied) = (uid.clone(), holder.clone());
            shared.remember("cards", |local| async move { local.save_card(&uid, copied).await });
            return Ok(holder);
        }
        shared.local.card_holder(uid).await?.ok_or_else(|| {
            StoreError::Unreachable("the database is away and there is no local copy of the cards yet".into())
        })
    }

    async fn faces(&self, engine: &str) -> Result<(u64, Vec<StoredFace>), StoreError> {
        let shared = &self.shared;
        if let Some((version, faces)) = shared.ask(shared.server.door().faces(engine)).await? {
            let (engine, copied) = (engine.to_owned(), faces.clone());
            shared.remember("faces", |local| async move { local.save_faces(&engine, version, copied).await });
            return Ok((version, faces));
        }
        shared.local.faces(engine).await?.ok_or_else(|| {
            StoreError::Unreachable("the database is away and there is no local copy of the faces yet".into())
        })
    }

    async fn faces_version(&self) -> Result<u64, StoreError> {
        let shared = &self.shared;
        if let Some(version) = shared.ask(shared.server.door().faces_version()).await? {
            return Ok(version);
        }
        shared.local.faces_version().await?.ok_or_else(|| {
            StoreError::Unreachable("the database is away and there is no local copy of the faces yet".into())
        })
    }

    /// While the server is away, or rows are still waiting for it, the row goes to the local
    /// spool and `0` is returned: it has no log row id yet.
    async fn record_attempt(&self, event: &AccessEvent, notices: &Notices) -> Result<i64, StoreError> {
        let shared = &self.shared;
        let _order = shared.spool_order.lock().await;
        if shared.local.spooled().await? == 0
            && let Some(id) = shared.ask(shared.server.door().record_attempt(event, notices)).await?
        {
            return Ok(id);
        }
        let spooled = shared.local.spool(event, notices).await?;
        tracing::info!(event_id = %event.event_id, spooled, "access-log row kept in the local spool");
        shared.reachability.wake.notify_one();
        Ok(0)
    }

    async fn write_kept_rows(&self) -> Result<u64, StoreError> {
        let shared = &self.shared;
        // Bounded: a server that is away must not hold up stopping (and the relay is locked already).
        if let Err(e) = within(STOP_TIMEOUT, shared.replay()).await {
            tracing::debug!(error = %e, "cannot write the spool before stopping");
        }
        shared.local.spooled().await
    }

    async fn armed(&self) -> Result<bool, StoreError> {
        let shared = &self.shared;
        if let Some(armed) = shared.ask(shared.server.door().armed()).await? {
            shared.remember("armed state", |local| async move { local.save_armed(armed).await });
            return Ok(armed);
        }
        // Without any copy the door starts armed, as a new installation does.
        Ok(shared.local.armed().await?.unwrap_or(true))
    }

    async fn set_armed(&self, armed: bool) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.door().set_armed(armed).await)?;
        self.shared.local.save_armed(armed).await
    }

    async fn access_rules(&self) -> Result<AccessRules, StoreError> {
        let shared = &self.shared;
        if let Some(rules) = shared.ask(shared.server.door().access_rules()).await? {
            let copied = rules.clone();
            shared.remember("schedules", |local| async move { local.save_access_rules(&copied).await });
            return Ok(rules);
        }
        shared.local.access_rules().await?.ok_or_else(|| {
            StoreError::Unreachable("the database is away and there is no local copy of the schedules yet".into())
        })
    }

    /// Asked by `facereko status` and the health check, which must not wait for an absent server.
    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        let shared = &self.shared;
        shared
            .ask(shared.server.door().outbox_backlog())
            .await?
            .ok_or_else(|| StoreError::Unreachable("the database is away".into()))
    }
}

/// Each removal also leaves the local copy at once ([`Shared::forget_locally`]).
#[async_trait]
impl Removals for ResilientStore {
    async fn remove_person(&self, id: PersonId) -> Result<Vec<StoredFace>, StoreError> {
        let faces = self.shared.noted(self.shared.server.removals().remove_person(id).await)?;
        self.shared.forget_locally(Forget::Person(id)).await;
        Ok(faces)
    }

    async fn remove_card(&self, uid: &CardUid) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.removals().remove_card(uid).await)?;
        if let Err(e) = self.shared.local.save_card(uid, None).await {
            tracing::warn!(error = %e, %uid, "cannot drop a removed card from the local copy; the next refresh will");
        }
        Ok(())
    }

    async fn remove_face(&self, id: i64) -> Result<StoredFace, StoreError> {
        let face = self.shared.noted(self.shared.server.removals().remove_face(id).await)?;
        self.shared.forget_locally(Forget::Face(id)).await;
        Ok(face)
    }
}

/// Each change also reaches the local copy at once ([`Shared::copy_rules_now`]).
#[async_trait]
impl Schedules for ResilientStore {
    async fn save_schedule(
        &self,
        name: &str,
        windows: &[Window],
        open_on_holidays: bool,
    ) -> Result<Schedule, StoreError> {
        let saved =
            self.shared.noted(self.shared.server.schedules().save_schedule(name, windows, open_on_holidays).await)?;
        self.shared.copy_rules_now().await;
        Ok(saved)
    }

    async fn remove_schedule(&self, name: &str) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.schedules().remove_schedule(name).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn add_holiday(&self, holiday: &Holiday) -> Result<Holiday, StoreError> {
        let added = self.shared.noted(self.shared.server.schedules().add_holiday(holiday).await)?;
        self.shared.copy_rules_now().await;
        Ok(added)
    }

    async fn remove_holiday(&self, id: i64) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.schedules().remove_holiday(id).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn set_person_limits(&self, person: PersonId, limits: &Limits) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.schedules().set_person_limits(person, limits).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn set_card_limits(&self, uid: &CardUid, limits: &Limits) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.schedules().set_card_limits(uid, limits).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn set_door_rights(&self, person: PersonId, rights: Option<&[DoorRight]>) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.schedules().set_door_rights(person, rights).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }
}

/// Each change also reaches the local copy at once, as the schedules' do: a member taken out of
/// a group, or a group kept to fewer doors, must not go on opening from an older copy.
#[async_trait]
impl Groups for ResilientStore {
    async fn add_group(&self, name: &str) -> Result<Group, StoreError> {
        let added = self.shared.noted(self.shared.server.groups().add_group(name).await)?;
        self.shared.copy_rules_now().await;
        Ok(added)
    }

    async fn rename_group(&self, group: i64, name: &str) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.groups().rename_group(group, name).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn remove_group(&self, group: i64) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.groups().remove_group(group).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn add_member(&self, group: i64, person: PersonId) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.groups().add_member(group, person).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn remove_member(&self, group: i64, person: PersonId) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.groups().remove_member(group, person).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }

    async fn set_group_doors(&self, group: i64, rights: Option<&[DoorRight]>) -> Result<(), StoreError> {
        self.shared.noted(self.shared.server.groups().set_group_doors(group, rights).await)?;
        self.shared.copy_rules_now().await;
        Ok(())
    }
}

/// Serves the door's path, migrations, removals, schedule, door-right and group changes itself;
/// everything else goes to the server as it is (changes to people, cards, accounts, settings and
/// the doors' rows need the server, and no decision needs them, so they are not copied).
impl Store for ResilientStore {
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn door(&self) -> &dyn DoorPath {
        self
    }
    fn outbox(&self) -> &dyn Outbox {
        self.shared.server.outbox()
    }
    fn messages(&self) -> &dyn Messages {
        self.shared.server.messages()
    }
    fn people(&self) -> &dyn People {
        self.shared.server.people()
    }
    fn removals(&self) -> &dyn Removals {
        self
    }
    fn schedules(&self) -> &dyn Schedules {
        self
    }
    fn leftovers(&self) -> &dyn LeftoverFaces {
        self.shared.server.leftovers()
    }
    fn log(&self) -> &dyn AccessLog {
        self.shared.server.log()
    }
    fn accounts(&self) -> &dyn Accounts {
        self.shared.server.accounts()
    }
    fn settings(&self) -> &dyn Settings {
        self.shared.server.settings()
    }
    fn visits(&self) -> &dyn Visits {
        self.shared.server.visits()
    }
    fn known_visitors(&self) -> &dyn KnownVisitors {
        self.shared.server.known_visitors()
    }
    fn api_keys(&self) -> &dyn ApiKeys {
        self.shared.server.api_keys()
    }
    fn sign_ins(&self) -> &dyn SignIns {
        self.shared.server.sign_ins()
    }
    fn doors(&self) -> &dyn Doors {
        self.shared.server.doors()
    }
    fn groups(&self) -> &dyn Groups {
        self
    }
    fn face_links(&self) -> &dyn FaceLinks {
        self.shared.server.face_links()
    }
    fn passkeys(&self) -> &dyn Passkeys {
        self.shared.server.passkeys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// A store whose "server" is a SQLite file and whose local copy changes only when the test
    /// says: no background task refreshes it behind the test's back.
    async fn quiet_store(dir: &Path) -> ResilientStore {
        let server = SqliteStore::open(&dir.join("server.db")).await.unwrap();
        server.schema().migrate().await.unwrap();
        let shared = Arc::new(Shared {
            server: Arc::new(server),
            local: LocalCache::open(&dir.join(CACHE_FILE)).await.unwrap(),
            reachability: Arc::default(),
            migrated: AtomicBool::new(true),
            spool_order: tokio::sync::Mutex::new(()),
        });
        ResilientStore { shared, task: tokio::spawn(async {}) }
    }

    #[tokio::test]
    async fn a_removed_face_leaves_the_local_copy_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = quiet_store(dir.path()).await;
        let alice = store.people().add_person("Alice").await.unwrap();
        let kept = store.people().add_face(alice.id, "simulated", &FaceTemplate::Remote("kept".into())).await.unwrap();
        let removed =
            store.people().add_face(alice.id, "simulated", &FaceTemplate::Remote("removed".into())).await.unwrap();
        store.shared.refresh().await.unwrap();

        let (before, _) = store.shared.local.faces("simulated").await.unwrap().expect("a local copy");
        assert_eq!(store.removals().remove_face(removed).await.unwrap().id, removed);
        let (version, copied) = store.shared.local.faces("simulated").await.unwrap().expect("a local copy");
        assert_eq!(copied.iter().map(|f| f.id).collect::<Vec<_>>(), [kept]);
        assert_ne!(version, before, "a door that loaded the faces before loads them again");
        assert_eq!(version, store.shared.server.door().faces_version().await.unwrap(), "the server's version");
    }

    #[tokio::test]
    async fn removed_cards_and_people_leave_the_local_copy_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = quiet_store(dir.path()).await;
        let (alice, bob) =
            (store.people().add_person("Alice").await.unwrap(), store.people().add_person("Bob").await.unwrap());
        let [kept, removed, bobs]: [CardUid; 3] = ["04A1B2C3", "04D4E5F6", "04B0B0B0"].map(|uid| uid.parse().unwrap());
        for (card, holder) in [(&kept, &alice), (&removed, &alice), (&bobs, &bob)] {
            store.people().add_card(card, holder.id).await.unwrap();
        }
        store.people().add_face(bob.id, "simulated", &FaceTemplate::Remote("bob".into())).await.unwrap();
        store.shared.refresh().await.unwrap();

        store.removals().remove_card(&removed).await.unwrap();
        store.removals().remove_person(bob.id).await.unwrap();
        let local = &store.shared.local;
        assert_eq!(local.card_holder(&removed).await.unwrap(), Some(None), "no holder in the copy");
        assert_eq!(local.card_holder(&bobs).await.unwrap(), Some(None), "nor for a removed person's card");
        assert_eq!(local.card_holder(&kept).await.unwrap(), Some(Some(alice)));
        assert!(local.faces("simulated").await.unwrap().expect("a local copy").1.is_empty());
    }

    #[tokio::test]
    async fn changed_limits_and_door_rights_reach_the_local_copy_at_once_and_answer_while_the_server_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let store = quiet_store(dir.path()).await;
        let alice = store.people().add_person("Alice").await.unwrap();
        store.shared.refresh().await.unwrap();
        let window: crate::schedule::Window = "tue 09:00-12:00".parse().unwrap();
        let schedule = store.schedules().save_schedule("Cleaners", &[window], false).await.unwrap();
        let limits = Limits { schedule: Some(schedule.id), ..Limits::default() };
        store.schedules().set_person_limits(alice.id, &limits).await.unwrap();
        let front = [DoorRight { door: "front".into(), schedule: Some(schedule.id) }];
        store.schedules().set_door_rights(alice.id, Some(&front)).await.unwrap();

        let copied = store.shared.local.access_rules().await.unwrap().expect("a local copy");
        assert_eq!(copied.people, [(alice.id, limits)], "no refresh was needed");
        assert_eq!(copied.door_rights(alice.id), Some(&front[..]));
        store.shared.went_offline(&StoreError::Unreachable("gone".into()));
        assert_eq!(store.door().access_rules().await.unwrap(), copied, "the copy answers the door");
    }

    #[tokio::test]
    async fn group_changes_reach_the_local_copy_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = quiet_store(dir.path()).await;
        let alice = store.people().add_person("Alice").await.unwrap();
        store.shared.refresh().await.unwrap();
        let cleaners = store.groups().add_group("Cleaners").await.unwrap();
        store.groups().add_member(cleaners.id, alice.id).await.unwrap();
        let back = [DoorRight { door: "back".into(), schedule: None }];
        store.groups().set_group_doors(cleaners.id, Some(&back)).await.unwrap();

        let copied = store.shared.local.access_rules().await.unwrap().expect("a local copy");
        assert_eq!(copied.allowed_doors(alice.id), Some(back.to_vec()), "no refresh was needed");
        store.groups().remove_member(cleaners.id, alice.id).await.unwrap();
        let copied = store.shared.local.access_rules().await.unwrap().expect("a local copy");
        assert_eq!(copied.allowed_doors(alice.id), None, "out of the group: every door again");
    }

    #[tokio::test]
    async fn a_local_copy_saved_before_door_rights_still_reads_as_every_door() {
        let dir = tempfile::tempdir().unwrap();
        let store = quiet_store(dir.path()).await;
        let old = r#"{"schedules":[],"holidays":[],"people":[],"cards":[]}"#;
        store.shared.local.0.run(move |c| set_cached(c, ACCESS_RULES_KEY, old).map_err(db_error)).await.unwrap();
        let copied = store.shared.local.access_rules().await.unwrap().expect("a local copy");
        assert_eq!(copied, AccessRules::default());
    }
}
