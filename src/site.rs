//! This door as one of a site's: its row in the shared database, kept fresh while it runs.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::{SiteDoor, Store};

/// How often the door says it is still there: often enough for a site view to tell a door that
/// stopped within minutes, rarely enough to cost nothing (one upsert, never on a tap's path).
pub const SEEN_EVERY: Duration = Duration::from_secs(60);

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
