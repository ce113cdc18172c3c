//! Rings: what the visitor page, the doorbell button and an unknown card tapped before a face
//! have in common. Each takes a burst from the door camera and keeps the best frame as the
//! visit's photo, tells the owner through the visitors' desk, and has the door say so.
//!
//! The button and unknown cards ring without words, so a hold-off keeps a finger on the button
//! (or a card tapped again and again) from telling the owner more than once. None of this is on
//! a tap's path: an unknown card is denied first, as always, and the ring follows.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::access::{AccessEvent, Decision, Reason};
use crate::capture;
use crate::card::CardUid;
use crate::door::Capture;
use crate::driver::{Command, ControlHandle, DoorLink};
use crate::engine::FaceEngine;
use crate::hw::{Bell, BurstLimits, Camera};
use crate::store::Visit;
use crate::visitor::{Desk, Ring, VisitorError};
use crate::voice::Utterance;

/// The longest a ring waits for the door camera's photo.
const PHOTO_TIMEOUT: Duration = Duration::from_secs(5);

/// When rings without words are let through: not within `period` of the last ring.
#[derive(Debug, Clone)]
pub struct HoldOff {
    period: Duration,
    last_ring: Option<Instant>,
}

impl HoldOff {
    pub fn new(period: Duration) -> Self {
        Self { period, last_ring: None }
    }

    /// Whether a ring now would be held off.
    pub fn holds(&self, now: Instant) -> bool {
        self.last_ring.is_some_and(|last| now.saturating_duration_since(last) < self.period)
    }

    /// Notes a ring at `now`: what follows within the period is held off.
    pub fn rang(&mut self, now: Instant) {
        self.last_ring = Some(now);
    }

    /// A ring without words at `now`: true (and noted) unless it is held off.
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.holds(now) {
            return false;
        }
        self.rang(now);
        true
    }
}

/// Turns rings into visits: the photo, the owner told, the door's word. Cheap to clone.
#[derive(Clone)]
pub struct Ringer {
    desk: Desk,
    camera: Arc<dyn Camera>,
    engine: Arc<dyn FaceEngine>,
    control: ControlHandle,
    limits: watch::Receiver<BurstLimits>,
    hold_off: Arc<Mutex<HoldOff>>,
}

impl std::fmt::Debug for Ringer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ringer").field("desk", &self.desk).finish_non_exhaustive()
    }
}

impl Ringer {
    /// Rings at the door behind `link`, kept by `desk`; rings without words are held off for
    /// `hold_off` after any ring.
    pub fn new(desk: Desk, link: &DoorLink, hold_off: Duration) -> Self {
        Self {
            desk,
            camera: Arc::clone(&link.camera),
            engine: Arc::clone(&link.engine),
            control: link.control.clone(),
            limits: link.burst_limits.clone(),
            hold_off: Arc::new(Mutex::new(HoldOff::new(hold_off))),
        }
    }

    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    fn hold_off(&self) -> std::sync::MutexGuard<'_, HoldOff> {
        self.hold_off.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A visitor's ring from the visitor page: never held off (they say who they are, and rings
    /// from one address are limited there), but it holds off the bell for a while.
    pub async fn ring(&self, ring: Ring) -> Result<Visit, VisitorError> {
        self.hold_off().rang(Instant::now());
        let photo = self.burst().await.map(|capture| capture.frame);
        self.tell(ring, photo).await
    }

    /// A press of the doorbell button: a ring, unless one came within the hold-off.
    pub async fn ring_bell(&self) -> Result<Option<Visit>, VisitorError> {
        if !self.hold_off().admit(Instant::now()) {
            tracing::debug!("the doorbell was pressed again within the hold-off; the owner is not told again");
            return Ok(None);
        }
        tracing::info!("the doorbell was pressed");
        let photo = self.burst().await.map(|capture| capture.frame);
        self.tell(Ring::bell(), photo).await.map(Some)
    }

    /// An unknown card was tapped (and denied): a ring only when the door camera sees a face,
    /// and none within the hold-off.
    pub async fn ring_for_unknown_card(&self, card: CardUid) -> Result<Option<Visit>, VisitorError> {
        if self.hold_off().holds(Instant::now()) {
            tracing::debug!(%card, "an unknown card within the ring hold-off; the owner is not told again");
            return Ok(None);
        }
        // Taps come first: with another attempt under way, the camera and the engine are its.
        if self.control.status.borrow().busy {
            tracing::debug!(%card, "an unknown card while another attempt is under way: no ring");
            return Ok(None);
        }
        let Some(capture) = self.burst().await else { return Ok(None) };
        if capture.face.is_none() {
            tracing::debug!(%card, "an unknown card with no face in view: no ring");
            return Ok(None);
        }
        // Checked again: a ring may have come while the camera looked.
        if !self.hold_off().admit(Instant::now()) {
            return Ok(None);
        }
        tracing::info!(%card, "an unknown card with a face in view rings");
        self.tell(Ring::unknown_card(card), Some(capture.frame)).await.map(Some)
    }

    async fn tell(&self, ring: Ring, photo: Option<crate::frame::Frame>) -> Result<Visit, VisitorError> {
        let visit = self.desk.ring(ring, photo.as_ref(), OffsetDateTime::now_utc()).await?;
        // The door is shutting down when this fails; the owner has been told all the same.
        let _ = self.control.command(|done| Command::Say { utterance: Utterance::VisitorRang, done }).await;
        Ok(visit)
    }

    /// The best frame of a burst of the door camera, as a tap takes it; a ring goes on without.
    async fn burst(&self) -> Option<Capture> {
        let limits = *self.limits.borrow();
        let burst = capture::burst(self.camera.as_ref(), self.engine.as_ref(), limits, || {});
        match tokio::time::timeout(PHOTO_TIMEOUT, burst).await {
            Ok(Ok(capture)) => Some(capture),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no photo of the visitor: the door camera failed");
                None
            }
            Err(_) => {
                tracing::warn!("no photo of the visitor: the door camera gave none in time");
                None
            }
        }
    }
}

/// Rings for every press of `bell` until the bell fails or the task is aborted. Each ring runs in
/// a task of its own, so presses are read (and held off) while the camera and the mail work.
pub async fn listen(mut bell: Box<dyn Bell>, ringer: Ringer) {
    loop {
        if let Err(e) = bell.next_press().await {
            tracing::error!(error = %e, "the doorbell button stopped working; visitors can still ring on /visit");
            return;
        }
        let ringer = ringer.clone();
        tokio::spawn(async move {
            if let Err(e) = ringer.ring_bell().await {
                tracing::warn!(error = %e, "the doorbell rang but the visit cannot be kept");
            }
        });
    }
}

/// Watches the access log: every card denied as unknown may be a visitor at the door (see
/// [`Ringer::ring_for_unknown_card`]). Runs until the door stops or the task is aborted.
pub async fn ring_for_unknown_cards(mut attempts: broadcast::Receiver<AccessEvent>, ringer: Ringer) {
    loop {
        let event = match attempts.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "attempts went by unseen; unknown cards among them do not ring");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(card) = event.card_uid.filter(|_| is_unknown_card(event.decision, event.reason)) else { continue };
        let ringer = ringer.clone();
        tokio::spawn(async move {
            if let Err(e) = ringer.ring_for_unknown_card(card).await {
                tracing::warn!(error = %e, "an unknown card would have rung but the visit cannot be kept");
            }
        });
    }
}

/// Only a denial for an unknown card: disarmed doors and every other reason never ring.
fn is_unknown_card(decision: Decision, reason: Reason) -> bool {
    decision == Decision::Denied && reason == Reason::UnknownCard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rings_without_words_are_held_off_after_any_ring() {
        let mut hold_off = HoldOff::new(Duration::from_secs(30));
        let start = Instant::now();
        assert!(!hold_off.holds(start), "nothing rang yet");
        assert!(hold_off.admit(start));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(hold_off.holds(Instant::now()));
        assert!(!hold_off.admit(Instant::now()), "a second press within 30 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(hold_off.admit(Instant::now()), "30 s after the first ring, not after the held-off press");
        tokio::time::advance(Duration::from_secs(10)).await;
        hold_off.rang(Instant::now());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(!hold_off.admit(Instant::now()), "a ring from the visitor page holds off too");
    }

    #[test]
    fn only_unknown_card_denials_ring() {
        assert!(is_unknown_card(Decision::Denied, Reason::UnknownCard));
        assert!(!is_unknown_card(Decision::Disarmed, Reason::Disarmed));
        assert!(!is_unknown_card(Decision::Denied, Reason::NoFace));
        assert!(!is_unknown_card(Decision::Denied, Reason::WrongPerson));
    }
}
