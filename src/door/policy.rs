//! Who may open the door: pure rules over what the attempt has established so far.
//!
//! Each credential gets its own rule here (card now; face-only walk-up, one-time passcodes and QR
//! codes later), so a new credential is a new event and a new rule, not a rewrite of the door.

use super::Mode;
use crate::access::{Credential, Decision, PassOutcome, Person, Reason};
use crate::engine::{SearchOutcome, clears_threshold};
use crate::liveness::Assessment;
use crate::schedule::Admission;

/// What to do once the card has been looked up.
#[derive(Debug, Clone, PartialEq)]
pub enum CardStep {
    Conclude(Decision, Reason),
    /// The card is known; its holder must now show their face.
    VerifyFace,
    /// The card is refused for its time limits; a photo is taken first as proof of who tried.
    CaptureThenDeny(Reason),
}

/// A card outside its time limits is refused before the camera is asked, unless the owner wants
/// a photo of whoever tried (`door.capture_when_closed`). A card whose holder may not use this
/// door is always refused before the camera: they are known, just kept to other doors.
pub fn after_card(mode: Mode, holder: Option<&Person>, admission: Admission, capture_when_closed: bool) -> CardStep {
    match (holder, admission, mode) {
        (None, _, _) => CardStep::Conclude(Decision::Denied, Reason::UnknownCard),
        (Some(_), Admission::Closed(Reason::NotAllowedHere), _) => {
            CardStep::Conclude(Decision::Denied, Reason::NotAllowedHere)
        }
        (Some(_), Admission::Closed(reason), _) if capture_when_closed => CardStep::CaptureThenDeny(reason),
        (Some(_), Admission::Closed(reason), _) => CardStep::Conclude(Decision::Denied, reason),
        (Some(_), Admission::Open, Mode::CardOnly) => CardStep::Conclude(Decision::Granted, Reason::CardOnly),
        (Some(_), Admission::Open, Mode::CardAndFace) => CardStep::VerifyFace,
    }
}

/// The face verdict: the best match must be the card holder, at or above the threshold.
pub fn after_face(holder: &Person, outcome: &SearchOutcome, threshold: f32) -> (Decision, Reason) {
    match outcome {
        SearchOutcome::NoFace => (Decision::Denied, Reason::NoFace),
        SearchOutcome::NoCandidate { .. } => (Decision::Denied, Reason::FaceNotRecognised),
        SearchOutcome::Candidate { similarity, .. } if !clears_threshold(*similarity, threshold) => {
            (Decision::Denied, Reason::FaceNotRecognised)
        }
        SearchOutcome::Candidate { person, .. } if *person != holder.id => (Decision::Denied, Reason::WrongPerson),
        SearchOutcome::Candidate { .. } => (Decision::Granted, Reason::CardAndFace),
    }
}

/// The liveness checks can only take a grant away: a face that matched is denied as a picture
/// when a check says so and `liveness.mode` enforces; every other verdict stands.
pub fn after_liveness(decision: Decision, reason: Reason, liveness: Option<&Assessment>) -> (Decision, Reason) {
    match (decision, liveness) {
        (Decision::Granted, Some(assessment)) if assessment.denies() => (Decision::Denied, Reason::SpoofSuspected),
        _ => (decision, reason),
    }
}

/// A visitor's pass: only a valid one opens; every other outcome names why it did not.
pub fn after_pass(credential: &Credential, outcome: PassOutcome) -> (Decision, Reason) {
    let typed = matches!(credential, Credential::Passcode);
    let reason = match outcome {
        PassOutcome::Valid if typed => Reason::PasscodeOk,
        PassOutcome::Valid => Reason::PassOk,
        PassOutcome::Wrong if typed => Reason::PasscodeWrong,
        // A QR token that matches no pass was not made by this door.
        PassOutcome::Wrong | PassOutcome::Forged => Reason::PassForged,
        PassOutcome::Locked => Reason::PasscodeLocked,
        PassOutcome::Expired => Reason::PassExpired,
        PassOutcome::Used => Reason::PassUsed,
    };
    let decision = if reason.denies() { Decision::Denied } else { Decision::Granted };
    (decision, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::PersonId;

    fn alice() -> Person {
        Person { id: PersonId(1), name: "Alice".into() }
    }

    fn candidate(person: i64, similarity: f32) -> SearchOutcome {
        SearchOutcome::Candidate { person: PersonId(person), similarity, face_confidence: 99.0 }
    }

    #[test]
    fn card_rules() {
        let open = Admission::Open;
        let denied = CardStep::Conclude(Decision::Denied, Reason::UnknownCard);
        assert_eq!(after_card(Mode::CardAndFace, None, open, false), denied);
        assert_eq!(after_card(Mode::CardAndFace, Some(&alice()), open, false), CardStep::VerifyFace);
        assert_eq!(
            after_card(Mode::CardOnly, Some(&alice()), open, false),
            CardStep::Conclude(Decision::Granted, Reason::CardOnly)
        );
    }

    #[test]
    fn time_limits_refuse_before_the_face_and_in_card_only_mode() {
        let expired = Admission::Closed(Reason::Expired);
        for mode in [Mode::CardAndFace, Mode::CardOnly] {
            assert_eq!(
                after_card(mode, Some(&alice()), expired, false),
                CardStep::Conclude(Decision::Denied, Reason::Expired)
            );
            assert_eq!(after_card(mode, Some(&alice()), expired, true), CardStep::CaptureThenDeny(Reason::Expired));
        }
        let unknown = CardStep::Conclude(Decision::Denied, Reason::UnknownCard);
        assert_eq!(after_card(Mode::CardAndFace, None, expired, true), unknown, "no photo for an unknown card");
    }

    #[test]
    fn a_door_the_holder_may_not_use_refuses_before_the_camera_in_every_mode() {
        let not_here = Admission::Closed(Reason::NotAllowedHere);
        let denied = CardStep::Conclude(Decision::Denied, Reason::NotAllowedHere);
        for (mode, capture_when_closed) in
            [(Mode::CardAndFace, false), (Mode::CardAndFace, true), (Mode::CardOnly, true)]
        {
            assert_eq!(after_card(mode, Some(&alice()), not_here, capture_when_closed), denied, "{mode:?}");
        }
    }

    #[test]
    fn liveness_only_turns_an_enforced_spoof_grant_into_a_denial() {
        use crate::liveness::{Finding, Verdict};
        let assessment = |enforced, verdict| Assessment {
            enforced,
            findings: vec![Finding { check: "geometry", verdict, score: 0.0, detail: String::new() }],
            took: std::time::Duration::ZERO,
            frames: 5,
        };
        let granted = (Decision::Granted, Reason::CardAndFace);
        let spoof = assessment(true, Verdict::Spoof);
        assert_eq!(after_liveness(granted.0, granted.1, Some(&spoof)), (Decision::Denied, Reason::SpoofSuspected));
        assert_eq!(after_liveness(granted.0, granted.1, Some(&assessment(false, Verdict::Spoof))), granted, "log");
        for verdict in [Verdict::Live, Verdict::Undecided] {
            assert_eq!(after_liveness(granted.0, granted.1, Some(&assessment(true, verdict))), granted);
        }
        assert_eq!(after_liveness(granted.0, granted.1, None), granted, "off");
        let wrong = (Decision::Denied, Reason::WrongPerson);
        assert_eq!(after_liveness(wrong.0, wrong.1, Some(&spoof)), wrong, "a denial keeps its own reason");
    }

    #[test]
    fn face_must_be_the_holder_above_threshold() {
        let holder = alice();
        assert_eq!(after_face(&holder, &candidate(1, 97.0), 90.0), (Decision::Granted, Reason::CardAndFace));
        assert_eq!(after_face(&holder, &candidate(1, 90.0), 90.0), (Decision::Granted, Reason::CardAndFace));
        assert_eq!(after_face(&holder, &candidate(1, 89.9), 90.0), (Decision::Denied, Reason::FaceNotRecognised));
        assert_eq!(after_face(&holder, &candidate(2, 99.0), 90.0), (Decision::Denied, Reason::WrongPerson));
        assert_eq!(after_face(&holder, &candidate(2, 40.0), 90.0), (Decision::Denied, Reason::FaceNotRecognised));
        assert_eq!(after_face(&holder, &SearchOutcome::NoFace, 90.0), (Decision::Denied, Reason::NoFace));
        assert_eq!(after_face(&holder, &candidate(1, f32::NAN), 90.0), (Decision::Denied, Reason::FaceNotRecognised));
    }
}
