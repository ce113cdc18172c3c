//! The attempt recorder: saves each finished attempt's photo, writes its log row (and outbox
//! row) and announces it, in order, off the door's path.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::Services;
use crate::access::AccessEvent;
use crate::frame::Frame;

/// A finished attempt on its way to the log.
pub(super) struct PendingRecord {
    pub event: AccessEvent,
    pub photo: Option<Frame>,
    pub notify: bool,
}

/// Writes go through one task, in order, so a quick arm/disarm/arm cannot land out of order.
pub(super) enum Write {
    Attempt(Box<PendingRecord>),
    Armed(bool),
}

pub(super) async fn write_records(
    services: Arc<Services>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    written: broadcast::Sender<AccessEvent>,
) {
    while let Some(write) = writes.recv().await {
        match write {
            Write::Armed(armed) => {
                if let Err(e) = services.store.door().set_armed(armed).await {
                    tracing::error!(error = %e, armed, "cannot save the armed state");
                }
            }
            Write::Attempt(pending) => {
                let event = write_attempt(&services, *pending).await;
                // Nobody listening is fine.
                let _ = written.send(event);
            }
        }
    }
}

/// Saves the photo and the log row; returns the event as written (with its photo name).
async fn write_attempt(services: &Services, pending: PendingRecord) -> AccessEvent {
    let PendingRecord { mut event, photo, notify } = pending;
    if let Some(frame) = photo {
        let (photos, at) = (services.photos.clone(), event.at);
        match tokio::task::spawn_blocking(move || photos.save(&frame, at)).await {
            Ok(Ok(name)) => event.photo = Some(name),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save the attempt's photo"),
            Err(e) => tracing::error!(error = %e, "photo task failed"),
        }
    }
    if let Err(e) = services.store.door().record_attempt(&event, notify).await {
        // The event must not vanish: put all of it in the journal for recovery by hand.
        let json = serde_json::to_string(&event).unwrap_or_default();
        tracing::error!(error = %e, event = %json, "cannot write the access log");
    }
    event
}
