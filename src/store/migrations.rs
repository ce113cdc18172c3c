//! The schema migrations of both SQL backends, listed once, and the one runner that applies them.
//! A backend only runs a migration's SQL and reads and records the versions applied.

use std::fmt::Display;
use std::future::Future;

use super::StoreError;

/// One step of the schema, as SQL for each backend, from `sql/<backend>/`.
pub struct Migration {
    pub version: u32,
    pub sqlite: &'static str,
    pub mysql: &'static str,
}

impl Migration {
    /// The error for this migration failing with `error`.
    pub fn failed(&self, error: impl Display) -> StoreError {
        StoreError::Migration { version: self.version, detail: error.to_string() }
    }
}

/// A migration from the files named `name` in `sql/sqlite/` and `sql/mysql/`.
macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            sqlite: include_str!(concat!("../../sql/sqlite/", $name, ".sql")),
            mysql: include_str!(concat!("../../sql/mysql/", $name, ".sql")),
        }
    };
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init"),
    migration!(2, "0002_users"),
    migration!(3, "0003_face_models"),
    migration!(4, "0004_leftover_faces"),
    migration!(5, "0005_messages"),
    migration!(6, "0006_longer_settings"),
    migration!(7, "0007_schedules"),
    migration!(8, "0008_visits"),
    migration!(9, "0009_known_visitors"),
    migration!(10, "0010_api_keys"),
    migration!(11, "0011_sign_ins"),
    migration!(12, "0012_passkeys"),
    migration!(13, "0013_face_sign_in"),
    migration!(14, "0014_site"),
    migration!(15, "0015_groups"),
];

/// What a backend does for [`run`].
pub trait Migrator {
    /// Creates the `schema_migrations` table if there is none; the highest version applied, 0 for none.
    fn current_version(&mut self) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Runs `migration`'s SQL and records its version (in one transaction where the backend can),
    /// failing with [`Migration::failed`].
    fn apply(&mut self, migration: &'static Migration) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Applies the migrations `backend` has not applied yet, in order; returns their versions. A
/// database with a newer schema than this build knows is refused.
pub async fn run(backend: &mut impl Migrator) -> Result<Vec<u32>, StoreError> {
    let current = backend.current_version().await?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        backend.apply(migration).await?;
        applied.push(migration.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_rise_by_one_from_one() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<u32> = (1..=versions.len() as u32).collect();
        assert_eq!(versions, expected);
    }
}
