//! Who came to the door and what happened: the people the door knows and the access events it
//! logs and announces. Plain data shared by every layer above.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::card::CardUid;
use crate::names::named_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub i64);

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
}

named_enum! {
    pub enum Decision {
        Granted = "granted",
        Denied = "denied",
        /// The system was disarmed: logged, nothing opens.
        Disarmed = "disarmed",
    }
}

named_enum! {
    /// Why an attempt ended as it did.
    pub enum Reason {
        CardAndFace = "card_and_face",
        CardOnly = "card_only",
        UnknownCard = "unknown_card",
        NoFace = "no_face",
        FaceNotRecognised = "face_not_recognised",
        WrongPerson = "wrong_person",
        CameraError = "camera_error",
        EngineError = "engine_error",
        LookupError = "lookup_error",
        /// The daemon stopped while the attempt was under way.
        Interrupted = "interrupted",
        Disarmed = "disarmed",
        /// The card or its holder has a schedule, and it is closed now.
        OutsideSchedule = "outside_schedule",
        /// Before the card's or its holder's `valid_from`.
        NotYetValid = "not_yet_valid",
        /// At or after the card's or its holder's `valid_until`.
        Expired = "expired",
        /// The card or its holder has time limits and the system clock is not synchronised yet.
        ClockNotSynced = "clock_not_synced",
        /// A visitor's QR pass, valid and unused.
        PassOk = "pass_ok",
        /// A pass (QR or passcode) past its end.
        PassExpired = "pass_expired",
        /// A pass with no uses left.
        PassUsed = "pass_used",
        /// A QR pass whose signature does not hold: made or changed by someone else.
        PassForged = "pass_forged",
        /// A visitor's passcode, right and live.
        PasscodeOk = "passcode_ok",
        /// A passcode that matches no pass at this door.
        PasscodeWrong = "passcode_wrong",
        /// The passcode was right, but too many wrong ones had been typed before it.
        PasscodeLocked = "passcode_locked",
        /// The owner opened the door for a visitor from afar.
        VisitorOpened = "visitor_opened",
        /// Card and face matched, but a liveness check took the face for a picture (a print or
        /// a screen) and `liveness.mode = "enforce"`.
        SpoofSuspected = "spoof_suspected",
        /// The card holder is kept to other doors of the site (refused before the camera).
        NotAllowedHere = "not_allowed_here",
        /// An admin opened the door from the site view (a command over MQTT).
        RemoteOpened = "remote_opened",
    }
}

impl Reason {
    /// Whether an attempt ending for this reason is denied (rather than granted or only logged).
    pub fn denies(self) -> bool {
        !matches!(
            self,
            Reason::CardAndFace
                | Reason::CardOnly
                | Reason::Disarmed
                | Reason::PassOk
                | Reason::PasscodeOk
                | Reason::VisitorOpened
                | Reason::RemoteOpened
        )
    }
}

/// What was shown at the door to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Card(CardUid),
    /// Six digits typed on the virtual door page.
    Passcode,
    /// A visitor's QR pass, read by the door camera.
    QrPass,
    /// The owner opening for a visitor from the web app; `by` is the account.
    Remote {
        by: String,
    },
}

impl Credential {
    pub fn card(&self) -> Option<&CardUid> {
        match self {
            Credential::Card(uid) => Some(uid),
            _ => None,
        }
    }
}

/// What checking a visitor's pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOutcome {
    Valid,
    /// No pass at this door has that secret.
    Wrong,
    Locked,
    Expired,
    Used,
    Forged,
}

/// A checked pass: the outcome, and the visitor it belongs to when it matched one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassCheck {
    pub outcome: PassOutcome,
    pub visitor: Option<String>,
    /// For the log: which visit, tries left.
    pub detail: Option<String>,
}

/// Milliseconds spent in each stage of an attempt: read → capture → match → actuate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimings {
    /// From the tap to the card being looked up.
    pub read_ms: u32,
    pub capture_ms: Option<u32>,
    pub match_ms: Option<u32>,
    /// Setting the outputs; measured by the driver, which does the actuating.
    pub actuate_ms: u32,
    pub total_ms: u32,
}

/// An attempt as written to the access log and the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessEvent {
    pub event_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub door: String,
    pub card_uid: Option<CardUid>,
    pub person_id: Option<PersonId>,
    /// Kept when the person is later removed, so the history still reads well.
    pub person_name: Option<String>,
    pub decision: Decision,
    pub reason: Reason,
    pub similarity: Option<f32>,
    pub confidence: Option<f32>,
    pub engine: Option<String>,
    /// Photo file, relative to the photos directory.
    pub photo: Option<String>,
    pub timings: StageTimings,
    pub detail: Option<String>,
}
