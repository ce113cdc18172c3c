//! A store for rehearsed attempts (`facereko simulate`): the real people, cards and faces are
//! read, and nothing is written, so a rehearsal never appears in the access log, never sends a
//! notification and needs no lock on a data directory that a running daemon may hold.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    AccessLog, Accounts, ApiKeys, DoorPath, Doors, FaceLinks, Groups, KnownVisitors, LeftoverFaces, Messages, Notices,
    Outbox, Passkeys, People, Removals, Schedules, Schema, Settings, SignIns, Store, StoreError, Visits,
};
use crate::access::{AccessEvent, Person};
use crate::card::CardUid;
use crate::engine::StoredFace;
use crate::schedule::AccessRules;

pub struct Rehearsal(Arc<dyn Store>);

impl Rehearsal {
    pub fn over(real: Arc<dyn Store>) -> Self {
        Self(real)
    }
}

#[async_trait]
impl DoorPath for Rehearsal {
    async fn card_holder(&self, uid: &CardUid) -> Result<Option<Person>, StoreError> {
        self.0.door().card_holder(uid).await
    }

    async fn faces(&self, engine: &str) -> Result<(u64, Vec<StoredFace>), StoreError> {
        self.0.door().faces(engine).await
    }

    async fn faces_version(&self) -> Result<u64, StoreError> {
        self.0.door().faces_version().await
    }

    async fn record_attempt(&self, _event: &AccessEvent, _notices: &Notices) -> Result<i64, StoreError> {
        // No row id: nothing was written.
        Ok(0)
    }

    async fn armed(&self) -> Result<bool, StoreError> {
        self.0.door().armed().await
    }

    async fn set_armed(&self, _armed: bool) -> Result<(), StoreError> {
        Ok(())
    }

    async fn access_rules(&self) -> Result<AccessRules, StoreError> {
        self.0.door().access_rules().await
    }

    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        self.0.door().outbox_backlog().await
    }
}

/// Only the door path writes during an attempt; the rest is the real store's, unused.
impl Store for Rehearsal {
    fn schema(&self) -> &dyn Schema {
        self.0.schema()
    }
    fn door(&self) -> &dyn DoorPath {
        self
    }
    fn outbox(&self) -> &dyn Outbox {
        self.0.outbox()
    }
    fn messages(&self) -> &dyn Messages {
        self.0.messages()
    }
    fn people(&self) -> &dyn People {
        self.0.people()
    }
    fn removals(&self) -> &dyn Removals {
        self.0.removals()
    }
    fn schedules(&self) -> &dyn Schedules {
        self.0.schedules()
    }
    fn leftovers(&self) -> &dyn LeftoverFaces {
        self.0.leftovers()
    }
    fn log(&self) -> &dyn AccessLog {
        self.0.log()
    }
    fn accounts(&self) -> &dyn Accounts {
        self.0.accounts()
    }
    fn settings(&self) -> &dyn Settings {
        self.0.settings()
    }
    fn visits(&self) -> &dyn Visits {
        self.0.visits()
    }
    fn known_visitors(&self) -> &dyn KnownVisitors {
        self.0.known_visitors()
    }
    fn api_keys(&self) -> &dyn ApiKeys {
        self.0.api_keys()
    }
    fn sign_ins(&self) -> &dyn SignIns {
        self.0.sign_ins()
    }
    fn doors(&self) -> &dyn Doors {
        self.0.doors()
    }
    fn groups(&self) -> &dyn Groups {
        self.0.groups()
    }
    fn face_links(&self) -> &dyn FaceLinks {
        self.0.face_links()
    }
    fn passkeys(&self) -> &dyn Passkeys {
        self.0.passkeys()
    }
}
