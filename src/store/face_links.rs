//! Face sign-in's links: which web account may sign in with which enrolled person's face, whether
//! the account turned it on, and the most it gives.

use async_trait::async_trait;

use super::StoreError;
use crate::access::PersonId;

/// An account's link to an enrolled person, made by an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceLink {
    pub person: PersonId,
    /// The account itself turned face sign-in on (it is off until then).
    pub enabled: bool,
    /// The most a face sign-in gives, whatever the account's own role: "viewer" unless an admin
    /// allowed more.
    pub max_role: String,
}

#[async_trait]
pub trait FaceLinks: Send + Sync {
    /// The link of account `username` (case-insensitive), if it has one.
    async fn face_link(&self, username: &str) -> Result<Option<FaceLink>, StoreError>;
    /// Every account's link, by username.
    async fn face_links(&self) -> Result<Vec<(String, FaceLink)>, StoreError>;
    /// Makes or replaces the link of account `username`; NotFound without such an account or
    /// person.
    async fn set_face_link(&self, username: &str, link: &FaceLink) -> Result<(), StoreError>;
    /// Removes the link; an account without one is no error. Removing the account or the person
    /// removes it too.
    async fn remove_face_link(&self, username: &str) -> Result<(), StoreError>;
}
