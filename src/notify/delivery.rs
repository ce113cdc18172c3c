//! The deliverer: one task per message channel sends that channel's messages from the store,
//! oldest first, and marks each delivered, deferred (a passing failure: tried again later, with
//! a growing wait) or failed (a permanent one: never again). Nothing on a tap's path waits for it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{CardUidShown, Notification};
use crate::access::{AccessEvent, Decision};
use crate::photos::Photos;
use crate::store::{Channel, QueuedMessage, Store, StoreError};

/// Messages taken from the store at once.
const BATCH: u32 = 16;
/// The wait after the first passing failure, doubled after each further one, up to `MAX_WAIT`.
const FIRST_WAIT: Duration = Duration::from_secs(5);
const MAX_WAIT: Duration = Duration::from_secs(30 * 60);
/// How often the store is looked at without being woken (messages written by other processes).
const SWEEP: Duration = Duration::from_secs(30);
/// Delivered and failed messages kept for the dashboard, newest first.
const KEEP: u64 = 10_000;
/// Deliveries between two prunings.
const PRUNE_EVERY: u32 = 100;

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it; its answer.
    Delivered(String),
    /// A passing failure (server away, busy, timed out): try again later.
    Retry(String),
    /// A permanent failure (address refused, request rejected): never try again.
    Failed(String),
}

/// A channel that can carry a message to one recipient.
#[async_trait]
pub trait Courier: Send + Sync {
    fn channel(&self) -> Channel;
    /// Sends `story` to `to`, with `photo` (a file) where the channel can show one; `id` (the
    /// event's id, or the fault notice's) names the message, so that a copy sent again is known
    /// for the same one.
    async fn send(&self, to: &str, story: &Story, photo: Option<&Path>, id: &str) -> Outcome;
}

/// Sends a waiting message about an attempt: its story, photo and an id made from the event.
async fn deliver(courier: &dyn Courier, message: &QueuedMessage, photos: &Photos, public_url: Option<&str>) -> Outcome {
    let event = &message.event;
    let story = Story::of(event, public_url);
    let photo = event.photo.as_deref().and_then(|name| photos.path_of(name));
    courier.send(&message.to, &story, photo.as_deref(), &event.event_id).await
}

/// What a message about an attempt says, whatever carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Story {
    pub subject: String,
    /// The whole of it in one sentence (the MQTT payload's `message`).
    pub sentence: String,
    /// The attempt in the web app, when `web.public_url` is set.
    pub link: Option<String>,
}

impl Story {
    pub fn of(event: &AccessEvent, public_url: Option<&str>) -> Self {
        let note = Notification::new(event, CardUidShown::Masked);
        let door = &event.door;
        let subject = match (event.decision, event.person_name.as_deref()) {
            (Decision::Granted, Some(who)) => format!("FaceReko: {who} came in at {door}"),
            (Decision::Granted, None) => format!("FaceReko: access granted at {door}"),
            (Decision::Disarmed, _) => format!("FaceReko: a tap at {door} while disarmed"),
            (Decision::Denied, _) => format!("FaceReko: access denied at {door}"),
        };
        let link = public_url.map(|url| format!("{}/history?event={}", url.trim_end_matches('/'), event.event_id));
        Self { subject, sentence: note.message, link }
    }

    /// The text of a short message: the sentence, then the link.
    pub fn short_text(&self) -> String {
        match &self.link {
            Some(link) => format!("{} {link}", self.sentence),
            None => self.sentence.clone(),
        }
    }
}

/// The wait before the next try after `attempts` tries have failed.
fn wait_after(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT)
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// What the deliverer needs besides the courier and the store.
#[derive(Clone)]
pub struct Sources {
    /// Where the attempts' photos are.
    pub photos: Photos,
    /// The web app's public address, for links.
    pub public_url: Option<String>,
}

/// Sends `courier`'s messages until the task is aborted; `written` wakes it for each new row.
pub async fn run(
    courier: Arc<dyn Courier>,
    store: Arc<dyn Store>,
    sources: Sources,
    mut written: broadcast::Receiver<AccessEvent>,
) {
    let channel = courier.channel();
    // Messages may wait from an earlier run: the first delivery that gets through sends them too.
    let mut state = Round { since_prune: 0, deferred: true };
    loop {
        let pause = match deliver_due(courier.as_ref(), store.as_ref(), &sources, &mut state).await {
            Ok(()) => until_next_due(store.as_ref(), channel).await,
            Err(e) => {
                tracing::warn!(%channel, error = %e, "cannot read the messages to send; trying again soon");
                FIRST_WAIT
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            woken = written.recv() => {
                if matches!(woken, Err(broadcast::error::RecvError::Closed)) {
                    // The door has stopped; what is left goes at the next start.
                    return;
                }
            }
        }
    }
}

/// How long to sleep when nothing is due now.
async fn until_next_due(store: &dyn Store, channel: Channel) -> Duration {
    match store.messages().next_due_ms(channel).await {
        Ok(Some(due)) => Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(SWEEP),
        _ => SWEEP,
    }
}

/// What the deliverer remembers between rounds.
struct Round {
    /// Deliveries since the last pruning.
    since_prune: u32,
    /// Whether messages wait out a passing failure, to be sent at once when one gets through.
    deferred: bool,
}

/// Sends every message that is due. A passing failure defers that message and ends the round;
/// the next message is tried straight after it, so one bad message holds up no other.
async fn deliver_due(
    courier: &dyn Courier,
    store: &dyn Store,
    sources: &Sources,
    state: &mut Round,
) -> Result<(), StoreError> {
    let channel = courier.channel();
    loop {
        let due = store.messages().due_messages(channel, now_ms(), BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        for message in &due {
            match deliver(courier, message, &sources.photos, sources.public_url.as_deref()).await {
                Outcome::Delivered(answer) => {
                    tracing::info!(%channel, event_id = %message.event.event_id, %answer, "message delivered");
                    store.messages().message_delivered(message.id).await?;
                    state.since_prune += 1;
                    if std::mem::take(&mut state.deferred) {
                        store.messages().deferred_due_now(channel, now_ms()).await?;
                    }
                }
                Outcome::Failed(problem) => {
                    tracing::error!(%channel, event_id = %message.event.event_id, %problem, "message refused; not sent again");
                    store.messages().message_failed(message.id, &problem).await?;
                }
                Outcome::Retry(problem) => {
                    let wait = wait_after(message.attempts + 1);
                    tracing::warn!(
                        %channel,
                        event_id = %message.event.event_id,
                        %problem,
                        retry_in_s = wait.as_secs(),
                        "cannot send a message now; trying again later"
                    );
                    let retry_at = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                    store.messages().message_deferred(message.id, retry_at, &problem).await?;
                    state.deferred = true;
                    return Ok(());
                }
            }
            if state.since_prune >= PRUNE_EVERY {
                state.since_prune = 0;
                store.messages().prune_messages(KEEP).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_from_seconds_to_half_an_hour() {
        assert_eq!(wait_after(1), Duration::from_secs(5));
        assert_eq!(wait_after(2), Duration::from_secs(10));
        assert_eq!(wait_after(5), Duration::from_secs(80));
        assert_eq!(wait_after(40), MAX_WAIT);
    }

    #[test]
    fn stories_link_to_the_attempt_when_the_web_app_is_public() {
        let mut event = crate::notify::test_event("front");
        event.person_name = Some("Ada".into());
        let story = Story::of(&event, Some("https://door.example.com/"));
        assert_eq!(story.subject, "FaceReko: Ada came in at front");
        let link = story.link.clone().unwrap();
        assert_eq!(link, format!("https://door.example.com/history?event={}", event.event_id));
        assert!(story.short_text().ends_with(&link));
        assert_eq!(Story::of(&event, None).link, None);
    }
}
