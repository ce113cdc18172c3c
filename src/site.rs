//! This door as one of a site's: its row in the shared database, kept fresh while it runs, and
//! the commands the site's doors send each other over MQTT (arm, disarm, open), with what makes a
//! command count only once and only while it is fresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::{SiteDoor, Store};

/// How often the door says it is still there: often enough for a site view to tell a door that
/// stopped within minutes, rarely enough to cost nothing (one upsert, never on a tap's path).
pub const SEEN_EVERY: Duration = Duration::from_secs(60);

/// A door whose row was not refreshed for this long is cut off from the database (or stopped):
/// two rounds and a half, so that one round late (a slow database, a busy Pi) does not count.
pub const CUT_OFF_AFTER: Duration = Duration::from_secs(150);

/// Whether `door` has not been seen in the database for [`CUT_OFF_AFTER`] at `now`.
pub fn cut_off(door: &SiteDoor, now: OffsetDateTime) -> bool {
    now - door.last_seen > CUT_OFF_AFTER
}

/// How long a command is good for: long enough for the broker to pass it on, short enough that a
/// command nobody answered cannot act much later.
pub const COMMAND_LIFETIME: Duration = Duration::from_secs(30);
/// A command that claims to be good for longer is refused, whoever made it.
const LONGEST_LIFETIME: Duration = Duration::from_secs(120);
/// How far ahead of this door's clock a command's `issued_at` may be (clocks are NTP-synced, but
/// not to the millisecond).
const CLOCK_SKEW: Duration = Duration::from_secs(10);

/// What a command asks of a door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Arm,
    Disarm,
    /// The door's normal timed unlock, as for a granted card.
    Open,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arm => "arm",
            Self::Disarm => "disarm",
            Self::Open => "open",
        }
    }
}

/// A command to one door, published on `<prefix>/<door>/command` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// 128 random bits in hex: the door carries out each id at most once.
    pub id: String,
    pub command: Action,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The web account that sent it, for the door's log.
    pub by: String,
}

impl Order {
    /// A new command with a fresh id, good for [`COMMAND_LIFETIME`] from `now`.
    pub fn new(command: Action, by: &str, now: OffsetDateTime) -> Self {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the operating system's random source works");
        Self { id: hex::encode(id), command, issued_at: now, expires_at: now + COMMAND_LIFETIME, by: by.to_owned() }
    }
}

/// How a door answered a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Refused,
}

/// A door's answer to a command, published on `<prefix>/<door>/ack` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The command's id; empty when the command could not be read.
    pub id: String,
    pub result: Outcome,
    /// Why it was refused, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a door does not carry out a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the command was already carried out (a replay)")]
    Replayed,
    #[error("the command expired at {0}")]
    Expired(OffsetDateTime),
    #[error("the command claims to be good for {0} s; at most {max} s are taken", max = LONGEST_LIFETIME.as_secs())]
    TooLong(i64),
    #[error("the command was issued in the future ({0}); check the clocks")]
    Future(OffsetDateTime),
    #[error("the command was a retained message; commands are never retained")]
    Retained,
    #[error("the command id is not 32 hex digits")]
    BadId,
}

/// The ids of the commands this door took, each kept until it expires, in a file of the data
/// directory: a command sent again (by a client, or by the broker after a lost acknowledgement)
/// does nothing, even when the daemon restarted in between (systemd restarts it within seconds,
/// well inside a command's lifetime).
pub struct SeenCommands {
    path: PathBuf,
    seen: BTreeMap<String, OffsetDateTime>,
}

impl SeenCommands {
    /// The ids kept at `path`; a missing or unreadable file is an empty list (said in the log).
    pub fn open(path: &Path) -> Self {
        let seen = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Vec<(String, i64)>>(&bytes)
                .map_err(|e| e.to_string())
                .map(|ids| {
                    ids.into_iter()
                        .filter_map(|(id, expires)| Some((id, OffsetDateTime::from_unix_timestamp(expires).ok()?)))
                        .collect()
                })
                .unwrap_or_else(|e| {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the commands already taken");
                    BTreeMap::new()
                }),
            Err(_) => BTreeMap::new(),
        };
        Self { path: path.to_owned(), seen }
    }

    /// Whether `order` may be carried out at `now` (`retained`: it came as a retained message);
    /// when it may, its id is noted first, on disk, so that it is never carried out twice.
    pub fn admit(&mut self, order: &Order, retained: bool, now: OffsetDateTime) -> Result<(), Refusal> {
        self.seen.retain(|_, expires| *expires > now);
        if retained {
            return Err(Refusal::Retained);
        }
        if order.id.len() != 32 || !order.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refusal::BadId);
        }
        if self.seen.contains_key(&order.id) {
            return Err(Refusal::Replayed);
        }
        if order.expires_at <= now {
            return Err(Refusal::Expired(order.expires_at));
        }
        let lifetime = order.expires_at - order.issued_at;
        if lifetime > LONGEST_LIFETIME {
            return Err(Refusal::TooLong(lifetime.whole_seconds()));
        }
        if order.issued_at > now + CLOCK_SKEW {
            return Err(Refusal::Future(order.issued_at));
        }
        self.seen.insert(order.id.clone(), order.expires_at);
        self.save();
        Ok(())
    }

    /// Writes the list beside and renames it into place, so a crash never leaves half of it.
    fn save(&self) {
        let ids: Vec<(&String, i64)> = self.seen.iter().map(|(id, expires)| (id, expires.unix_timestamp())).collect();
        let json = serde_json::to_vec(&ids).expect("ids serialise");
        let beside = self.path.with_extension("tmp");
        let written = std::fs::write(&beside, json).and_then(|()| std::fs::rename(&beside, &self.path));
        if let Err(e) = written {
            // Still refused while the daemon runs: the list in memory holds it.
            tracing::warn!(path = %self.path.display(), error = %e, "cannot keep the commands taken on disk");
        }
    }
}

/// Registers `door` now and again every [`SEEN_EVERY`], each time as seen then. A database that
/// is away is only logged: the door works without its row, and the next round tries again.
pub async fn keep_registered(store: Arc<dyn Store>, door: SiteDoor) {
    let mut rounds = tokio::time::interval(SEEN_EVERY);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut registered, mut failing) = (false, false);
    loop {
        rounds.tick().await;
        let seen = SiteDoor { last_seen: OffsetDateTime::now_utc(), ..door.clone() };
        match store.doors().register_door(&seen).await {
            Ok(()) => {
                if !registered {
                    tracing::info!(door = %door.id, "registered this door with the site's database");
                }
                (registered, failing) = (true, false);
            }
            // Once per outage: the store says more about the database being away.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, door = %door.id, "cannot note this door as seen in the database; trying every minute");
            }
            Err(e) => tracing::debug!(error = %e, "still cannot note this door as seen"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn a_command_counts_once_while_fresh_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commands-taken.json");
        let now = OffsetDateTime::now_utc();
        let order = Order::new(Action::Disarm, "ada", now);
        assert_eq!(order.id.len(), 32);
        assert_ne!(order.id, Order::new(Action::Disarm, "ada", now).id, "a fresh id each time");

        let mut seen = SeenCommands::open(&path);
        assert_eq!(seen.admit(&order, false, now), Ok(()));
        assert_eq!(seen.admit(&order, false, now), Err(Refusal::Replayed));
        let mut restarted = SeenCommands::open(&path);
        assert_eq!(restarted.admit(&order, false, now + Duration::from_secs(5)), Err(Refusal::Replayed));
        // Past its expiry it is forgotten, and refused as expired.
        let later = now + COMMAND_LIFETIME + Duration::from_secs(1);
        assert!(matches!(restarted.admit(&order, false, later), Err(Refusal::Expired(_))));
        assert!(restarted.seen.is_empty());
    }

    #[test]
    fn late_retained_unbounded_and_future_commands_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = SeenCommands::open(&dir.path().join("taken.json"));
        let now = OffsetDateTime::now_utc();
        let fresh = || Order::new(Action::Open, "ada", now);
        let expired = Order { expires_at: now, ..fresh() };
        assert_eq!(seen.admit(&expired, false, now), Err(Refusal::Expired(now)));
        let eternal = Order { expires_at: now + Duration::from_secs(86_400), ..fresh() };
        assert_eq!(seen.admit(&eternal, false, now), Err(Refusal::TooLong(86_400)));
        let ahead = now + Duration::from_secs(60);
        let future = Order { issued_at: ahead, expires_at: ahead + COMMAND_LIFETIME, ..fresh() };
        assert_eq!(seen.admit(&future, false, now), Err(Refusal::Future(ahead)));
        assert_eq!(seen.admit(&fresh(), true, now), Err(Refusal::Retained));
        assert_eq!(seen.admit(&Order { id: "not-hex".into(), ..fresh() }, false, now), Err(Refusal::BadId));
        assert_eq!(seen.admit(&fresh(), false, now), Ok(()));
    }

    #[test]
    fn a_door_unseen_for_two_rounds_and_a_half_is_cut_off() {
        let now = OffsetDateTime::now_utc();
        assert!(!cut_off(&front(now - SEEN_EVERY * 2), now), "one round late is not cut off");
        assert!(cut_off(&front(now - CUT_OFF_AFTER - Duration::from_secs(1)), now));
    }

    #[test]
    fn commands_and_answers_read_as_the_readme_shows_them() {
        let json = r#"{"id":"00112233445566778899aabbccddeeff","command":"disarm",
            "issued_at":"2026-12-07T08:00:00Z","expires_at":"2026-12-07T08:00:30Z","by":"ada"}"#;
        let order: Order = serde_json::from_str(json).unwrap();
        assert_eq!((order.command, order.by.as_str()), (Action::Disarm, "ada"));
        let ack = Ack { id: order.id, result: Outcome::Refused, reason: Some("expired".into()) };
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"id":"00112233445566778899aabbccddeeff","result":"refused","reason":"expired"}"#
        );
    }

    fn front(last_seen: OffsetDateTime) -> SiteDoor {
        SiteDoor {
            id: "front".into(),
            name: "Front door".into(),
            web_address: Some("https://front:8443".into()),
            version: "1.2.3".into(),
            last_seen,
        }
    }

    /// Waits until the door's row says it was seen at or after `since`; returns the row.
    async fn seen_since(store: &dyn Store, since: OffsetDateTime) -> SiteDoor {
        for _ in 0..1000 {
            let doors = store.doors().list_doors().await.unwrap();
            if let Some(door) = doors.into_iter().find(|door| door.last_seen >= since) {
                return door;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the door was not seen since {since}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_door_registers_at_once_and_is_seen_again_every_minute() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("site.db")).await.unwrap();
        sqlite.schema().migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        // Whole milliseconds, as the store keeps them.
        let started = OffsetDateTime::now_utc() - time::Duration::milliseconds(1);
        let task = tokio::spawn(keep_registered(Arc::clone(&store), front(OffsetDateTime::UNIX_EPOCH)));

        let registered = seen_since(store.as_ref(), started).await;
        assert_eq!(registered, front(registered.last_seen), "seen now, not when it was described");

        // Someone marks it long gone; the next round, a minute on, says otherwise.
        store.doors().register_door(&front(OffsetDateTime::UNIX_EPOCH)).await.unwrap();
        tokio::time::sleep(SEEN_EVERY).await;
        seen_since(store.as_ref(), started).await;
        assert_eq!(store.doors().list_doors().await.unwrap().len(), 1, "one row per door");
        task.abort();
    }
}
