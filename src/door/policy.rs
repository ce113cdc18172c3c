//! Who may open the door: pure rules over what the attempt has established so far.
//!
//! Each credential gets its own rule here (card now; face-only walk-up, one-time passcodes and QR
//! codes later), so a new credential is a new event and a new rule, not a rewrite of the door.

use super::Mode;
use crate::access::Person;
use crate::access::{Decision, Reason};
use crate::engine::SearchOutcome;

/// What to do once the card has been looked up.
#[derive(Debug, Clone, PartialEq)]
pub enum CardStep {
    Conclude(Decision, Reason),
    /// The card is known; its holder must now show their face.
    VerifyFace,
}

pub fn after_card(mode: Mode, holder: Option<&Person>) -> CardStep {
    match (holder, mode) {
        (None, _) => CardStep::Conclude(Decision::Denied, Reason::UnknownCard),
        (Some(_), Mode::CardOnly) => CardStep::Conclude(Decision::Granted, Reason::CardOnly),
        (Some(_), Mode::CardAndFace) => CardStep::VerifyFace,
    }
}

/// The face verdict: the best match must be the card holder, at or above the threshold.
pub fn after_face(holder: &Person, outcome: &SearchOutcome, threshold: f32) -> (Decision, Reason) {
    match outcome {
        SearchOutcome::NoFace => (Decision::Denied, Reason::NoFace),
        SearchOutcome::NoCandidate { .. } => (Decision::Denied, Reason::FaceNotRecognised),
        SearchOutcome::Candidate { similarity, .. } if similarity.is_nan() || *similarity < threshold => {
            (Decision::Denied, Reason::FaceNotRecognised)
        }
        SearchOutcome::Candidate { person, .. } if *person != holder.id => (Decision::Denied, Reason::WrongPerson),
        SearchOutcome::Candidate { .. } => (Decision::Granted, Reason::CardAndFace),
    }
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
        assert_eq!(after_card(Mode::CardAndFace, None), CardStep::Conclude(Decision::Denied, Reason::UnknownCard));
        assert_eq!(after_card(Mode::CardAndFace, Some(&alice())), CardStep::VerifyFace);
        assert_eq!(after_card(Mode::CardOnly, Some(&alice())), CardStep::Conclude(Decision::Granted, Reason::CardOnly));
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
