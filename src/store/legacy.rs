//! Import from the original FaceReko's MySQL database: its `AccessLog(ID, Name, Time, Similarity,
//! Confidence, Image)` rows into the access log and its `Login(Username, Password)` accounts into
//! `users`, with the plain-text passwords hashed with argon2id.

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool};
use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::access::{AccessEvent, Decision, Reason, StageTimings};

/// The role every imported account gets: the original FaceReko had administrators only.
pub const IMPORTED_ROLE: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("the legacy database: {0}")]
    Source(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot hash the password of {username:?}: {detail}")]
    Hash { username: String, detail: String },
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// `AccessLog` rows now in our access log (rows imported by an earlier run are not added twice).
    pub log_rows: u64,
    /// `AccessLog` rows left out because they have no time.
    pub log_rows_without_time: u64,
    pub accounts: u64,
    /// `Login` accounts whose username was already taken.
    pub accounts_existing: u64,
}

/// The event id of legacy row `id`: the same on every run, so a second import adds nothing.
pub fn event_id(id: i64) -> String {
    format!("legacy-{id}")
}

/// A photo name we can keep: a plain file name, never a path that could lead out of the photos folder.
fn plain_file_name(image: Option<String>) -> Option<String> {
    image.filter(|name| {
        !name.is_empty() && !name.contains(['/', '\\']) && !name.contains("..") && !name.chars().any(char::is_control)
    })
}

fn source_error(e: mysql_async::Error) -> LegacyError {
    LegacyError::Source(super::mysql::db_error(e))
}

/// Copies the legacy rows at `url` into `store`; every imported attempt counts as granted at `door`.
pub async fn import(url: &str, password: Option<&str>, store: &dyn Store, door: &str) -> Result<Imported, LegacyError> {
    let opts = Opts::from_url(url).map_err(|e| {
        LegacyError::Source(StoreError::UnsupportedUrl {
            url: super::DatabaseUrl::redacted(url),
            reason: format!("{e}; use mysql://user@host[:port]/FaceReko"),
        })
    })?;
    let builder = match opts.pass() {
        Some(_) => OptsBuilder::from_opts(opts),
        None => OptsBuilder::from_opts(opts).pass(password),
    };
    let pool = Pool::new(builder);
    let result = copy(&pool, store, door).await;
    // The pool closes its connections only when asked; a failure here changes nothing imported.
    if let Err(e) = pool.disconnect().await {
        tracing::debug!(error = %e, "closing the legacy connections");
    }
    result
}

async fn copy(pool: &Pool, store: &dyn Store, door: &str) -> Result<Imported, LegacyError> {
    let mut conn = pool.get_conn().await.map_err(source_error)?;
    let mut imported = Imported::default();

    type LegacyRow = (i64, Option<String>, Option<i64>, Option<f64>, Option<f64>, Option<String>);
    // The DATETIME is read in the server's time zone, as the original wrote it.
    let rows: Vec<LegacyRow> = conn
        .query(
            "SELECT ID, Name, CAST(UNIX_TIMESTAMP(Time) * 1000 AS SIGNED), Similarity, Confidence, Image
             FROM AccessLog ORDER BY ID",
        )
        .await
        .map_err(source_error)?;
    for (id, name, at_ms, similarity, confidence, image) in rows {
        let Some(at) = at_ms.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        else {
            imported.log_rows_without_time += 1;
            continue;
        };
        let event = AccessEvent {
            event_id: event_id(id),
            at,
            door: door.to_owned(),
            card_uid: None,
            person_id: None,
            person_name: name,
            decision: Decision::Granted,
            reason: Reason::CardAndFace,
            similarity: similarity.map(|v| v as f32),
            confidence: confidence.map(|v| v as f32),
            engine: None,
            photo: plain_file_name(image),
            timings: StageTimings::default(),
            detail: Some(format!("imported from the original FaceReko (AccessLog ID {id})")),
        };
        // No notification: these attempts happened long ago.
        store.door().record_attempt(&event, &super::Notices::NONE).await?;
        imported.log_rows += 1;
    }

    let accounts: Vec<(Option<String>, Option<String>)> =
        conn.query("SELECT Username, Password FROM Login").await.map_err(source_error)?;
    for (username, password) in accounts {
        let (Some(username), Some(password)) = (username.filter(|u| !u.trim().is_empty()), password) else {
            continue;
        };
        if store.accounts().user_by_name(&username).await?.is_some() {
            imported.accounts_existing += 1;
            continue;
        }
        let hash = crate::accounts::hash_password(&password)
            .map_err(|e| LegacyError::Hash { username: username.clone(), detail: e.to_string() })?;
        store.accounts().add_user(&username, &hash, IMPORTED_ROLE).await?;
        imported.accounts += 1;
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_kept_as_photos() {
        assert_eq!(plain_file_name(Some("visitor_17.jpg".into())).as_deref(), Some("visitor_17.jpg"));
        for bad in ["", "../etc/passwd", "/tmp/x.jpg", "a/b.jpg", "a\\b.jpg", "..", "x..jpg\n"] {
            assert_eq!(plain_file_name(Some(bad.into())), None, "{bad:?}");
        }
    }
}
