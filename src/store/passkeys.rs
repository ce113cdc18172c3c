//! The passkeys of web accounts: what the web app needs to check a passkey's signature (its
//! credential, serialised by the web app), the name its owner gave it, when it was added and last
//! used. Removing an account removes its passkeys.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// A passkey to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPasskey<'a> {
    pub username: &'a str,
    /// The account's WebAuthn user handle, which the browser hands back at a discoverable sign-in.
    pub user_handle: &'a str,
    /// The authenticator's id for the credential: what a sign-in names.
    pub credential_id: &'a [u8],
    /// What the owner calls it, e.g. "Phone".
    pub name: &'a str,
    /// The credential as the web app serialises it; changes as its signature counter moves on.
    pub credential: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: i64,
    /// The account's name as stored.
    pub username: String,
    pub user_handle: String,
    pub credential_id: Vec<u8>,
    pub name: String,
    pub credential: String,
    pub created: OffsetDateTime,
    pub last_used: Option<OffsetDateTime>,
}

#[async_trait]
pub trait Passkeys: Send + Sync {
    /// Keeps a passkey of account `username` (ASCII case ignored). NotFound without such an
    /// account; Conflict if a passkey with the same credential id is kept already.
    async fn add_passkey(&self, passkey: &NewPasskey<'_>) -> Result<StoredPasskey, StoreError>;
    /// The account's passkeys, oldest first.
    async fn passkeys_of(&self, username: &str) -> Result<Vec<StoredPasskey>, StoreError>;
    /// The passkey a sign-in names, whatever its account.
    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<StoredPasskey>, StoreError>;
    /// Notes that passkey `id` was used at `at`, with its credential as it is after that use; a
    /// passkey removed meanwhile is no error.
    async fn passkey_used(&self, id: i64, at: OffsetDateTime, credential: &str) -> Result<(), StoreError>;
    /// Deletes passkey `id` of account `username`: it stops working at once. NotFound if the
    /// account has no such passkey.
    async fn remove_passkey(&self, username: &str, id: i64) -> Result<(), StoreError>;
}
