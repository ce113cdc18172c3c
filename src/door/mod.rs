//! The door as a pure state machine.
//!
//! [`Door::handle`] takes one [`Event`] and the current time and returns the [`Effect`]s to carry
//! out. It never touches hardware, the database or the clock itself; the driver
//! ([`crate::driver`]) does that and feeds the results back in as events. That keeps every rule testable with a
//! paused clock and makes new credentials new events rather than rewrites.

mod config;
pub mod policy;

pub use config::DoorConfig;

use std::time::Duration;

use tokio::time::Instant;

use crate::access::{Credential, Decision, PassCheck, Person, Reason, StageTimings};
use crate::card::CardUid;
use crate::checks::Secret;
use crate::engine::{DetectedFace, SearchOutcome};
use crate::frame::Frame;
use crate::hw::{BeepPattern, Lights, Lock};
use crate::liveness::Assessment;
use crate::names::named_enum;
use crate::schedule::Admission;
use policy::CardStep;

named_enum! {
    /// Which credentials open the door.
    pub enum Mode {
        /// The card and the face must belong to the same person.
        CardAndFace = "card+face",
        /// Any enrolled card opens; for commissioning only.
        CardOnly = "card",
    }
}

/// Door timings and thresholds, taken from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct DoorSettings {
    pub mode: Mode,
    pub unlock_time: Duration,
    pub debounce: Duration,
    /// Minimum similarity (0–100) for the face to count as the card holder's.
    pub match_threshold: f32,
    /// Take a photo of a card refused for its time limits, as proof of who tried.
    pub capture_when_closed: bool,
    pub grant_beep: BeepPattern,
    pub deny_beep: BeepPattern,
}

/// Identifies one attempt, so late results of an abandoned attempt are recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Relock,
}

/// What capturing found: the best frame, and its face if there was one; with the liveness
/// checks on, what they said of the whole burst.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub frame: Frame,
    pub face: Option<DetectedFace>,
    pub liveness: Option<Assessment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    CardRead(CardUid),
    /// The card's holder, and what the time limits of holder and card say now (`Open` when the
    /// card is unknown or the look-up failed).
    CardResolved {
        attempt: AttemptId,
        holder: Result<Option<Person>, String>,
        admission: Admission,
    },
    /// The burst found the face to match and goes on gathering frames for the liveness checks:
    /// the match starts now, and the verdict waits for [`Event::Captured`] with the checks' result.
    FaceFound {
        attempt: AttemptId,
        capture: Capture,
    },
    Captured {
        attempt: AttemptId,
        result: Result<Capture, String>,
    },
    Matched {
        attempt: AttemptId,
        result: Result<SearchOutcome, String>,
    },
    /// A visitor's passcode typed on the virtual door page, or a QR pass the camera read.
    PassPresented {
        credential: Credential,
        secret: Secret,
    },
    PassChecked {
        attempt: AttemptId,
        result: Result<PassCheck, String>,
    },
    /// The owner opens the door from afar: for a visitor from the web app, or from the site
    /// view (`visitor` is `None`).
    RemoteOpen {
        by: String,
        visitor: Option<String>,
    },
    TimerFired(Timer),
    SetArmed(bool),
    Shutdown,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    SetLights(Lights),
    SetLock(Lock),
    Beep(BeepPattern),
    StopBeeping,
    LookUpCard {
        attempt: AttemptId,
        uid: CardUid,
    },
    Capture {
        attempt: AttemptId,
    },
    Match {
        attempt: AttemptId,
        frame: Frame,
    },
    /// Check a visitor's pass against the stored ones (and use it, when it is good).
    CheckPass {
        attempt: AttemptId,
        credential: Credential,
        secret: Secret,
    },
    /// Another attempt is under way: the pass was not looked at, and may be shown again.
    Busy(Credential),
    StartTimer {
        timer: Timer,
        after: Duration,
    },
    /// Log the finished attempt (and notify, for granted and denied ones). It comes before the
    /// outputs of its verdict.
    Record(Box<AttemptReport>),
    PersistArmed(bool),
}

/// A finished attempt as the door saw it. The driver adds wall-clock time, photo file and engine.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    pub tapped_at: Instant,
    pub credential: Credential,
    pub person: Option<Person>,
    /// The visitor a pass or a remote opening was for.
    pub visitor: Option<String>,
    pub decision: Decision,
    pub reason: Reason,
    pub similarity: Option<f32>,
    pub face_confidence: Option<f32>,
    pub photo: Option<Frame>,
    pub timings: StageTimings,
    /// Error text for camera, engine and lookup failures.
    pub detail: Option<String>,
}

impl AttemptReport {
    /// Granted and denied attempts are announced; disarmed taps are only logged.
    pub fn notify(&self) -> bool {
        self.decision != Decision::Disarmed
    }
}

#[derive(Debug)]
struct Attempt {
    id: AttemptId,
    credential: Credential,
    tapped_at: Instant,
    stage: Stage,
    timings: StageTimings,
    photo: Option<Frame>,
    face_confidence: Option<f32>,
    /// What the liveness checks said of the burst, when they ran.
    liveness: Option<Box<Assessment>>,
}

#[derive(Debug)]
enum Stage {
    LookingUp,
    /// `refused` carries the time-limit reason when the photo is only proof of a refused card.
    Capturing {
        holder: Person,
        since: Instant,
        refused: Option<Reason>,
    },
    Matching {
        holder: Person,
        since: Instant,
        /// False while the burst still gathers frames for the liveness checks
        /// ([`Event::FaceFound`]); the match's outcome then waits in `outcome`.
        burst_in: bool,
        outcome: Option<Box<Result<SearchOutcome, String>>>,
    },
    CheckingPass,
}

/// How an attempt ended, gathered for [`Door::verdict`].
struct Verdict {
    decision: Decision,
    reason: Reason,
    person: Option<Person>,
    visitor: Option<String>,
    similarity: Option<f32>,
    detail: Option<String>,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Busy(Attempt),
}

#[derive(Debug)]
pub struct Door {
    settings: DoorSettings,
    armed: bool,
    phase: Phase,
    /// The relay is energised until the relock timer fires; attempts may run meanwhile.
    unlocked: bool,
    /// Cards read within the debounce window, with when each was last seen.
    recent_cards: Vec<(CardUid, Instant)>,
    attempts_started: u64,
}

/// Whole milliseconds between two instants, saturating.
fn millis(from: Instant, to: Instant) -> u32 {
    u32::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u32::MAX)
}

impl Door {
    pub fn new(settings: DoorSettings, armed: bool) -> Self {
        Self { settings, armed, phase: Phase::Idle, unlocked: false, recent_cards: Vec::new(), attempts_started: 0 }
    }

    pub fn armed(&self) -> bool {
        self.armed
    }

    pub fn settings(&self) -> &DoorSettings {
        &self.settings
    }

    /// New timings and thresholds, used from the next step of any attempt on.
    pub fn set_settings(&mut self, settings: DoorSettings) {
        self.settings = settings;
    }

    pub fn is_unlocked(&self) -> bool {
        self.unlocked
    }

    pub fn is_busy(&self) -> bool {
        matches!(self.phase, Phase::Busy(_))
    }

    /// The outputs the door must show when it starts: locked, quiet, lights for the armed state.
    pub fn start(&self) -> Vec<Effect> {
        vec![Effect::SetLock(Lock::Locked), Effect::StopBeeping, Effect::SetLights(self.idle_lights())]
    }

    /// What the LEDs show between attempts: red while armed.
    pub fn idle_lights(&self) -> Lights {
        Lights { red: self.armed, green: false }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match event {
            Event::CardRead(card) => self.on_card_read(card, now),
            Event::CardResolved { attempt, holder, admission } => {
                self.on_card_resolved(attempt, holder, admission, now)
            }
            Event::FaceFound { attempt, capture } => self.on_face_found(attempt, capture, now),
            Event::Captured { attempt, result } => self.on_captured(attempt, result, now),
            Event::Matched { attempt, result } => self.on_matched(attempt, result, now),
            Event::PassPresented { credential, secret } => self.on_pass_presented(credential, secret, now),
            Event::PassChecked { attempt, result } => self.on_pass_checked(attempt, result, now),
            Event::RemoteOpen { by, visitor } => self.on_remote_open(by, visitor, now),
            Event::TimerFired(Timer::Relock) => self.on_relock(),
            Event::SetArmed(armed) => self.on_set_armed(armed, now),
            Event::Shutdown => self.on_shutdown(now),
        }
    }

    fn on_card_read(&mut self, card: CardUid, now: Instant) -> Vec<Effect> {
        // A card resting on the reader is reported on every poll; its window runs from its last
        // sighting, whatever other cards were read meanwhile.
        let debounce = self.settings.debounce;
        self.recent_cards.retain(|(_, seen)| now.saturating_duration_since(*seen) < debounce);
        let repeated = match self.recent_cards.iter_mut().find(|(seen, _)| *seen == card) {
            Some((_, seen)) => {
                *seen = now;
                true
            }
            None => {
                self.recent_cards.push((card.clone(), now));
                false
            }
        };
        if repeated || self.is_busy() {
            return Vec::new();
        }
        let id = self.begin(Credential::Card(card.clone()), Stage::LookingUp, now);
        vec![Effect::LookUpCard { attempt: id, uid: card }]
    }

    fn begin(&mut self, credential: Credential, stage: Stage, now: Instant) -> AttemptId {
        self.attempts_started += 1;
        let id = AttemptId(self.attempts_started);
        self.phase = Phase::Busy(Attempt {
            id,
            credential,
            tapped_at: now,
            stage,
            timings: StageTimings::default(),
            photo: None,
            face_confidence: None,
            liveness: None,
        });
        id
    }

    /// A pass is looked at only when the door is free and armed: a disarmed door logs it unchecked
    /// (so it stays usable), a busy one turns it away to be shown again.
    fn on_pass_presented(&mut self, credential: Credential, secret: Secret, now: Instant) -> Vec<Effect> {
        if self.is_busy() {
            return vec![Effect::Busy(credential)];
        }
        let armed = self.armed;
        let attempt = self.begin(credential.clone(), Stage::CheckingPass, now);
        if !armed {
            return self.conclude(Decision::Disarmed, Reason::Disarmed, None, None, None, now);
        }
        vec![Effect::CheckPass { attempt, credential, secret }]
    }

    fn on_pass_checked(&mut self, id: AttemptId, result: Result<PassCheck, String>, now: Instant) -> Vec<Effect> {
        let Some(attempt) = self.current(id) else { return Vec::new() };
        if !matches!(attempt.stage, Stage::CheckingPass) {
            return Vec::new();
        }
        attempt.timings.read_ms = millis(attempt.tapped_at, now);
        let credential = attempt.credential.clone();
        match result {
            Err(detail) => self.conclude(Decision::Denied, Reason::LookupError, None, None, Some(detail), now),
            Ok(check) => {
                let (decision, reason) = policy::after_pass(&credential, check.outcome);
                self.conclude_for_visitor(decision, reason, check.visitor, check.detail, now)
            }
        }
    }

    /// The owner's "open now": granted at once when the door is armed and free.
    fn on_remote_open(&mut self, by: String, visitor: Option<String>, now: Instant) -> Vec<Effect> {
        let credential = Credential::Remote { by: by.clone() };
        if self.is_busy() {
            return vec![Effect::Busy(credential)];
        }
        let armed = self.armed;
        self.begin(credential, Stage::CheckingPass, now);
        let opened = if visitor.is_some() { Reason::VisitorOpened } else { Reason::RemoteOpened };
        let (decision, reason) =
            if armed { (Decision::Granted, opened) } else { (Decision::Disarmed, Reason::Disarmed) };
        self.conclude_for_visitor(decision, reason, visitor, Some(format!("opened by {by}")), now)
    }

    /// The attempt in progress, if `id` names it; results for anything else are stale.
    fn current(&mut self, id: AttemptId) -> Option<&mut Attempt> {
        match &mut self.phase {
            Phase::Busy(attempt) if attempt.id == id => Some(attempt),
            _ => None,
        }
    }

    fn on_card_resolved(
        &mut self,
        id: AttemptId,
        holder: Result<Option<Person>, String>,
        admission: Admission,
        now: Instant,
    ) -> Vec<Effect> {
        let (armed, mode, capture_when_closed) = (self.armed, self.settings.mode, self.settings.capture_when_closed);
        let Some(attempt) = self.current(id) else { return Vec::new() };
        attempt.timings.read_ms = millis(attempt.tapped_at, now);
        // A disarmed door only logs, even when the look-up failed.
        let holder = match (holder, armed) {
            (Ok(holder), true) => holder,
            (Ok(holder), false) => return self.conclude(Decision::Disarmed, Reason::Disarmed, holder, None, None, now),
            (Err(detail), false) => {
                return self.conclude(Decision::Disarmed, Reason::Disarmed, None, None, Some(detail), now);
            }
            (Err(detail), true) => {
                return self.conclude(Decision::Denied, Reason::LookupError, None, None, Some(detail), now);
            }
        };
        let (step, holder) = match (policy::after_card(mode, holder.as_ref(), admission, capture_when_closed), holder) {
            (CardStep::Conclude(decision, reason), holder) => {
                return self.conclude(decision, reason, holder, None, None, now);
            }
            (step, holder) => (step, holder.expect("policy asks for a photo only of a card holder")),
        };
        let refused = match step {
            CardStep::CaptureThenDeny(reason) => Some(reason),
            _ => None,
        };
        attempt.stage = Stage::Capturing { holder, since: now, refused };
        vec![Effect::Capture { attempt: id }]
    }

    fn on_face_found(&mut self, id: AttemptId, capture: Capture, now: Instant) -> Vec<Effect> {
        let Some(attempt) = self.current(id) else { return Vec::new() };
        let Stage::Capturing { holder, since, refused: None } = &attempt.stage else { return Vec::new() };
        let Some(face) = capture.face else { return Vec::new() };
        let holder = holder.clone();
        attempt.timings.capture_ms = Some(millis(*since, now));
        attempt.photo = Some(capture.frame.clone());
        attempt.face_confidence = Some(face.confidence);
        attempt.stage = Stage::Matching { holder, since: now, burst_in: false, outcome: None };
        vec![Effect::Match { attempt: id, frame: capture.frame }]
    }

    fn on_captured(&mut self, id: AttemptId, result: Result<Capture, String>, now: Instant) -> Vec<Effect> {
        let Some(attempt) = self.current(id) else { return Vec::new() };
        if let Stage::Matching { holder, burst_in: burst_in @ false, outcome, .. } = &mut attempt.stage {
            // The rest of a burst whose face is being matched already: the checks' verdict.
            *burst_in = true;
            let (holder, outcome) = (holder.clone(), outcome.take());
            let since = attempt.tapped_at + Duration::from_millis(u64::from(attempt.timings.read_ms));
            attempt.timings.capture_ms = Some(millis(since, now));
            match result {
                Ok(capture) => attempt.liveness = capture.liveness.map(Box::new),
                // The checks could not judge the burst: nothing opens on a face they never saw.
                Err(detail) => {
                    return self.conclude(Decision::Denied, Reason::CameraError, Some(holder), None, Some(detail), now);
                }
            }
            return match outcome {
                Some(outcome) => self.decide(holder, *outcome, now),
                None => Vec::new(),
            };
        }
        let Stage::Capturing { holder, since, refused } = &attempt.stage else { return Vec::new() };
        let (holder, refused) = (holder.clone(), *refused);
        attempt.timings.capture_ms = Some(millis(*since, now));
        // The photo of a refused card is kept as proof; no face is matched against it.
        if let Some(reason) = refused {
            let detail = match result {
                Ok(capture) => {
                    attempt.face_confidence = capture.face.map(|face| face.confidence);
                    attempt.photo = Some(capture.frame);
                    None
                }
                Err(detail) => Some(detail),
            };
            return self.conclude(Decision::Denied, reason, Some(holder), None, detail, now);
        }
        match result {
            Err(detail) => self.conclude(Decision::Denied, Reason::CameraError, Some(holder), None, Some(detail), now),
            Ok(Capture { frame, face: None, .. }) => {
                attempt.photo = Some(frame);
                self.conclude(Decision::Denied, Reason::NoFace, Some(holder), None, None, now)
            }
            Ok(Capture { frame, face: Some(face), liveness }) => {
                attempt.photo = Some(frame.clone());
                attempt.face_confidence = Some(face.confidence);
                attempt.liveness = liveness.map(Box::new);
                attempt.stage = Stage::Matching { holder, since: now, burst_in: true, outcome: None };
                vec![Effect::Match { attempt: id, frame }]
            }
        }
    }

    fn on_matched(&mut self, id: AttemptId, result: Result<SearchOutcome, String>, now: Instant) -> Vec<Effect> {
        let Some(attempt) = self.current(id) else { return Vec::new() };
        let Stage::Matching { holder, since, burst_in, outcome } = &mut attempt.stage else { return Vec::new() };
        attempt.timings.match_ms = Some(millis(*since, now));
        if !*burst_in {
            // The liveness checks are still gathering frames; the verdict waits for them.
            *outcome = Some(Box::new(result));
            return Vec::new();
        }
        let holder = holder.clone();
        self.decide(holder, result, now)
    }

    /// The verdict on the holder's face, once the match and (when they run) the checks are in.
    fn decide(&mut self, holder: Person, result: Result<SearchOutcome, String>, now: Instant) -> Vec<Effect> {
        let threshold = self.settings.match_threshold;
        let Phase::Busy(attempt) = &mut self.phase else { return Vec::new() };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(detail) => {
                return self.conclude(Decision::Denied, Reason::EngineError, Some(holder), None, Some(detail), now);
            }
        };
        let similarity = match &outcome {
            SearchOutcome::Candidate { similarity, face_confidence, .. } => {
                attempt.face_confidence = Some(*face_confidence);
                Some(*similarity)
            }
            SearchOutcome::NoCandidate { face_confidence } => {
                attempt.face_confidence = Some(*face_confidence);
                None
            }
            SearchOutcome::NoFace => None,
        };
        let (decision, reason) = policy::after_face(&holder, &outcome, threshold);
        let (decision, reason) = policy::after_liveness(decision, reason, attempt.liveness.as_deref());
        // The checks' scores go with the row whatever the verdict, so the owner can judge them.
        let detail = attempt.liveness.as_deref().map(Assessment::summary);
        self.conclude(decision, reason, Some(holder), similarity, detail, now)
    }

    /// Ends the attempt in progress: its report, then the outputs for the verdict (the driver
    /// makes the report durable before any output moves).
    fn conclude(
        &mut self,
        decision: Decision,
        reason: Reason,
        person: Option<Person>,
        similarity: Option<f32>,
        detail: Option<String>,
        now: Instant,
    ) -> Vec<Effect> {
        self.verdict(Verdict { decision, reason, person, visitor: None, similarity, detail }, now)
    }

    fn conclude_for_visitor(
        &mut self,
        decision: Decision,
        reason: Reason,
        visitor: Option<String>,
        detail: Option<String>,
        now: Instant,
    ) -> Vec<Effect> {
        self.verdict(Verdict { decision, reason, person: None, visitor, similarity: None, detail }, now)
    }

    /// The one place an attempt ends and the outputs follow from its decision.
    fn verdict(&mut self, verdict: Verdict, now: Instant) -> Vec<Effect> {
        let Verdict { decision, reason, person, visitor, similarity, detail } = verdict;
        let Phase::Busy(attempt) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return Vec::new();
        };
        let mut timings = attempt.timings;
        timings.total_ms = millis(attempt.tapped_at, now);
        let report = Effect::Record(Box::new(AttemptReport {
            tapped_at: attempt.tapped_at,
            credential: attempt.credential,
            person,
            visitor,
            decision,
            reason,
            similarity,
            face_confidence: attempt.face_confidence,
            photo: attempt.photo,
            timings,
            detail,
        }));
        match decision {
            Decision::Granted => {
                // A grant while already open restarts the unlock time.
                self.unlocked = true;
                vec![
                    report,
                    Effect::SetLock(Lock::Unlocked),
                    Effect::SetLights(Lights { red: false, green: true }),
                    Effect::Beep(self.settings.grant_beep),
                    Effect::StartTimer { timer: Timer::Relock, after: self.settings.unlock_time },
                ]
            }
            // A denial while the door is open does not shut it on whoever is walking through.
            Decision::Denied => vec![report, Effect::Beep(self.settings.deny_beep)],
            Decision::Disarmed => vec![report],
        }
    }

    fn on_relock(&mut self) -> Vec<Effect> {
        if !self.unlocked {
            return Vec::new();
        }
        self.unlocked = false;
        vec![Effect::SetLock(Lock::Locked), Effect::SetLights(self.idle_lights())]
    }

    fn on_set_armed(&mut self, armed: bool, now: Instant) -> Vec<Effect> {
        self.armed = armed;
        let mut effects = vec![Effect::PersistArmed(armed)];
        // The lights follow at once unless the door is open.
        if !self.unlocked {
            effects.push(Effect::SetLights(self.idle_lights()));
        }
        // Disarming means nothing opens from now on, so an attempt under way ends here.
        if !armed && self.is_busy() {
            let person = self.holder_so_far();
            effects.extend(self.conclude(Decision::Disarmed, Reason::Disarmed, person, None, None, now));
        }
        effects
    }

    /// The card holder of the attempt under way, once the card has been looked up.
    fn holder_so_far(&self) -> Option<Person> {
        match &self.phase {
            Phase::Busy(Attempt {
                stage: Stage::Capturing { holder, .. } | Stage::Matching { holder, .. }, ..
            }) => Some(holder.clone()),
            _ => None,
        }
    }

    fn on_shutdown(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = vec![
            Effect::SetLock(Lock::Locked),
            Effect::StopBeeping,
            Effect::SetLights(Lights { red: true, green: false }),
        ];
        if self.is_busy() {
            let person = self.holder_so_far();
            let report = self.conclude(Decision::Denied, Reason::Interrupted, person, None, None, now);
            effects.extend(report.into_iter().filter(|e| matches!(e, Effect::Record(_))));
        }
        self.phase = Phase::Idle;
        self.unlocked = false;
        effects
    }
}

#[cfg(test)]
mod tests;
