//! Visitors kept for next time: whom the owner let in, how to reach them, whether they get a
//! passcode without asking, and descriptors of their faces (never photos: the photos stay with
//! the visits).
//!
//! Each face names the model that described it, and only faces of one kind are handed out
//! together, so that descriptors of different models are never compared. A visitor is forgotten
//! whole: their faces, their visits, those visits' passes; the visits' photos are handed back for
//! the caller to delete.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::StoreError;
use super::visits::VisitId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VisitorId(pub i64);

impl std::fmt::Display for VisitorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Who a visitor is and how to reach them: what an approved visit gives and the owner may edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorDetails {
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnownVisitor {
    pub id: VisitorId,
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    /// A recognised ring sends them a passcode at once; the owner is told afterwards.
    pub auto_pass: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub last_visit: OffsetDateTime,
    /// Their visits still kept (visits older than the retention period are deleted).
    pub visits: u32,
    /// Face descriptors kept, of every model.
    pub faces: u32,
}

/// One of a visitor's faces, as described by the model it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitorFace {
    pub id: i64,
    pub visitor: VisitorId,
    pub descriptor: Vec<f32>,
}

#[async_trait]
pub trait KnownVisitors: Send + Sync {
    /// Keeps a new visitor, last here at `last_visit`, without auto-pass.
    async fn add_known_visitor(
        &self,
        details: &VisitorDetails,
        last_visit: OffsetDateTime,
    ) -> Result<KnownVisitor, StoreError>;
    async fn known_visitor(&self, id: VisitorId) -> Result<Option<KnownVisitor>, StoreError>;
    /// Every known visitor, the one here last first.
    async fn list_known_visitors(&self) -> Result<Vec<KnownVisitor>, StoreError>;
    /// Replaces the name and contact; NotFound if there is no such visitor.
    async fn update_known_visitor(&self, id: VisitorId, details: &VisitorDetails) -> Result<(), StoreError>;
    /// NotFound if there is no such visitor.
    async fn set_auto_pass(&self, id: VisitorId, auto_pass: bool) -> Result<(), StoreError>;
    /// Makes `visit` one of `visitor`'s, and `at` their last visit unless a later one is known. A
    /// visit that left no contact takes the visitor's. NotFound if either is gone.
    async fn link_visit(&self, visit: VisitId, visitor: VisitorId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Adds a face that `kind` described, then keeps only the visitor's `keep` newest faces;
    /// returns the new face's id. NotFound if there is no such visitor.
    async fn add_visitor_face(
        &self,
        visitor: VisitorId,
        kind: &str,
        descriptor: &[f32],
        at: OffsetDateTime,
        keep: u32,
    ) -> Result<i64, StoreError>;
    /// Every visitor's faces that `kind` described, oldest first.
    async fn visitor_faces(&self, kind: &str) -> Result<Vec<VisitorFace>, StoreError>;
    /// Deletes the visitor, their faces, their visits and those visits' passes; returns the
    /// visits' photos. A visitor already gone hands back nothing.
    async fn forget_known_visitor(&self, id: VisitorId) -> Result<Vec<String>, StoreError>;
    /// Forgets, as [`Self::forget_known_visitor`], every visitor last here before `cutoff`;
    /// returns how many and their visits' photos.
    async fn forget_visitors_before(&self, cutoff: OffsetDateTime) -> Result<(u64, Vec<String>), StoreError>;
}
