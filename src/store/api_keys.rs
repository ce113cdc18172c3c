//! Keys of the face-comparison API (`/api/v1/compare`): a name, when it was made and last used,
//! and a hash of the key. The key itself is shown once, when it is made, and never stored.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The hex SHA-256 of the key: enough to recognise it, useless for making requests.
    #[serde(skip)]
    pub key_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used: Option<OffsetDateTime>,
}

#[async_trait]
pub trait ApiKeys: Send + Sync {
    /// Keeps a new key under `name`; Conflict if a key with the same hash is kept already.
    async fn add_api_key(&self, name: &str, key_hash: &str) -> Result<ApiKey, StoreError>;
    /// Every key in force, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Notes that key `id` was used at `at`; a key revoked meanwhile is no error.
    async fn api_key_used(&self, id: i64, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes the key: it stops working at once. NotFound if there is no such key.
    async fn revoke_api_key(&self, id: i64) -> Result<(), StoreError>;
}
