//! The attempt recorder: saves each finished attempt's photo, writes its log row (and outbox
//! row) and announces it, in order, off the door's path. A write that fails is retried, oldest
//! first, until the store takes it; the journal keeps it meanwhile, across restarts too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::Services;
use super::journal::Row;
use crate::access::AccessEvent;
use crate::frame::Frame;

/// The first wait before writing again; it doubles up to [`LAST_RETRY`] while writes fail.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// A finished attempt on its way to the log.
pub(super) struct PendingRecord {
    pub row: Row,
    pub photo: Option<Frame>,
}

/// Writes go through one task, in order, so a quick arm/disarm/arm cannot land out of order.
pub(super) enum Write {
    Attempt(Box<PendingRecord>),
    Armed(bool),
}

/// A write ready for the store: an attempt's photo is saved once, before its first try.
enum Ready {
    Row(Box<Row>),
    Armed(bool),
}

/// Writes `unwritten` (what earlier runs left) and then every write sent, retrying failures. When
/// the sender is gone, what still fails stays in the journal for the next start.
pub(super) async fn write_records(
    services: Arc<Services>,
    unwritten: Vec<Row>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    written: broadcast::Sender<AccessEvent>,
) {
    let mut queue: VecDeque<Ready> = unwritten.into_iter().map(|row| Ready::Row(Box::new(row))).collect();
    let mut retry = FIRST_RETRY;
    let mut open = true;
    loop {
        let Some(next) = queue.front() else {
            match writes.recv().await {
                Some(write) => queue.push_back(prepare(&services, write).await),
                None => break,
            }
            continue;
        };
        if store(&services, next, &written).await {
            queue.pop_front();
            retry = FIRST_RETRY;
            continue;
        }
        if !open {
            tracing::error!(rows = queue.len(), "stopping with writes the store refused; the journal keeps them");
            break;
        }
        // A new write is a good moment to try again; the door never waits for this.
        tokio::select! {
            () = tokio::time::sleep(retry) => retry = (retry * 2).min(LAST_RETRY),
            write = writes.recv() => match write {
                Some(write) => queue.push_back(prepare(&services, write).await),
                None => open = false,
            },
        }
    }
}

/// Saves the attempt's photo and names it in its row.
async fn prepare(services: &Services, write: Write) -> Ready {
    let PendingRecord { mut row, photo } = match write {
        Write::Armed(armed) => return Ready::Armed(armed),
        Write::Attempt(pending) => *pending,
    };
    if let Some(frame) = photo {
        let (photos, at) = (services.photos.clone(), row.event.at);
        match tokio::task::spawn_blocking(move || photos.save(&frame, at)).await {
            Ok(Ok(name)) => row.event.photo = Some(name),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save the attempt's photo"),
            Err(e) => tracing::error!(error = %e, "photo task failed"),
        }
    }
    Ready::Row(Box::new(row))
}

/// Writes one; an attempt is marked done in the journal and announced once it is in the store.
async fn store(services: &Services, ready: &Ready, written: &broadcast::Sender<AccessEvent>) -> bool {
    match ready {
        Ready::Armed(armed) => match services.store.door().set_armed(*armed).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, armed, "cannot save the armed state; retrying");
                false
            }
        },
        Ready::Row(row) => {
            let Row { event, notices } = row.as_ref();
            match services.store.door().record_attempt(event, notices).await {
                Ok(_) => {
                    if let Err(e) = services.journal.done(&event.event_id) {
                        // Only costs writing the row again at the next start, which changes nothing.
                        tracing::warn!(error = %e, "cannot mark the attempt done in the journal");
                    }
                    // Nobody listening is fine.
                    let _ = written.send(event.clone());
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, event_id = %event.event_id, "cannot write the access log; retrying");
                    false
                }
            }
        }
    }
}
