//! Visits and the passes the owner sends visitors: the rows the visitor journey keeps.
//!
//! A pass is stored only as a keyed hash of its secret; checking a secret against it, and making
//! the hash, is the visitor module's business. What the store guarantees is that using a pass and
//! counting a wrong passcode are single atomic statements, so two frames or two browsers racing
//! for one pass use it exactly once.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::StoreError;
use super::known_visitors::VisitorId;
use crate::names::named_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VisitId(pub i64);

impl std::fmt::Display for VisitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

named_enum! {
    /// Where a visit stands.
    pub enum VisitStatus {
        /// Rung; the owner has not decided yet.
        Pending = "pending",
        /// The owner sent a pass.
        Approved = "approved",
        Denied = "denied",
        /// The owner opened the door from afar.
        Opened = "opened",
        /// Nobody decided in time, or the pass ran out unused.
        Expired = "expired",
        /// The visitor came in with the pass.
        Used = "used",
    }
}

/// A ring at the door, as the visitor gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVisit {
    pub door: String,
    pub at: OffsetDateTime,
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub message: Option<String>,
    /// The door camera's photo, relative to the photos folder.
    pub photo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    pub id: VisitId,
    pub door: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub message: Option<String>,
    pub photo: Option<String>,
    pub status: VisitStatus,
    /// The account that decided, once one has.
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The known visitor whose visit it was, once recognised or approved.
    pub visitor: Option<VisitorId>,
}

named_enum! {
    /// What a pass is shown as.
    pub enum PassKind {
        /// Six digits typed on the virtual door page.
        Passcode = "passcode",
        /// A signed token in a QR code shown to the door camera.
        Qr = "qr",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewPass {
    pub visit: VisitId,
    pub door: String,
    pub kind: PassKind,
    /// Keyed hash of the secret (hex); the secret itself is never stored.
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
    /// How many times it opens the door.
    pub uses: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredPass {
    pub id: i64,
    pub visit: VisitId,
    pub door: String,
    pub kind: PassKind,
    pub secret_hash: String,
    pub expires_at: OffsetDateTime,
    pub uses_left: u32,
    /// Wrong passcodes typed at its door while it was live.
    pub wrong_tries: u32,
    pub locked: bool,
}

/// Filters for the Visitors page, newest first.
#[derive(Debug, Clone, Default)]
pub struct VisitQuery {
    /// At most this many; 0 for 50.
    pub limit: u32,
    pub offset: u32,
    pub status: Option<VisitStatus>,
}

#[async_trait]
pub trait Visits: Send + Sync {
    async fn add_visit(&self, visit: &NewVisit) -> Result<Visit, StoreError>;
    async fn visit(&self, id: VisitId) -> Result<Option<Visit>, StoreError>;
    async fn list_visits(&self, query: &VisitQuery) -> Result<Vec<Visit>, StoreError>;
    /// Moves a visit from `from` to `to`, recording who did it; `false` when it was no longer in
    /// `from` (a second click on an approve link, or a race between two owners).
    async fn move_visit(
        &self,
        id: VisitId,
        from: VisitStatus,
        to: VisitStatus,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    async fn add_pass(&self, pass: &NewPass) -> Result<i64, StoreError>;
    /// The passes of `kind` at `door` that expire after `since`, locked and used ones included
    /// (so that a late or second try can be told apart from a wrong one).
    async fn passes(&self, door: &str, kind: PassKind, since: OffsetDateTime) -> Result<Vec<StoredPass>, StoreError>;
    /// Uses the pass once, if it is unlocked, unexpired at `now` and has a use left; `false`
    /// otherwise. Atomic: of two racing calls for a pass with one use left, one gets `true`.
    async fn use_pass(&self, id: i64, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// Counts a wrong passcode against every live, unlocked passcode at `door`, and locks those
    /// that reach `max_tries`; returns the visits whose passcode locked now.
    async fn wrong_passcode(&self, door: &str, now: OffsetDateTime, max_tries: u32)
    -> Result<Vec<VisitId>, StoreError>;
    /// Deletes the visit and its passes; returns its photo, for the caller to delete.
    async fn forget_visit(&self, id: VisitId) -> Result<Option<String>, StoreError>;
    /// Marks `expired` the visits nobody decided that rang before `undecided_before`, and the
    /// approved ones none of whose passes can open any more at `now` (ended, used up or locked);
    /// returns how many.
    async fn expire_visits(&self, undecided_before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// Deletes visits made before `cutoff` and their passes; returns their photos.
    async fn forget_visits_before(&self, cutoff: OffsetDateTime) -> Result<Vec<String>, StoreError>;
}
