//! The door's rules, event by event, with `now` taken from tokio's paused clock.

use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;
use crate::access::{PassOutcome, PersonId};

const ALICE_CARD: &str = "04A1B2C3";
const BOB_CARD: &str = "04B0B0B0";
const STRANGER_CARD: &str = "04DEAD00";

const GREEN: Lights = Lights { red: false, green: true };
const RED: Lights = Lights { red: true, green: false };
const DARK: Lights = Lights { red: false, green: false };

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings() -> DoorSettings {
    DoorSettings {
        mode: Mode::CardAndFace,
        unlock_time: Duration::from_secs(5),
        debounce: Duration::from_secs(2),
        match_threshold: 90.0,
        capture_when_closed: false,
        grant_beep: BeepPattern { count: 1, on: Duration::from_secs(2), off: Duration::ZERO },
        deny_beep: BeepPattern { count: 3, on: ms(150), off: ms(150) },
    }
}

fn alice() -> Person {
    Person { id: PersonId(1), name: "Alice".into() }
}

fn bob() -> Person {
    Person { id: PersonId(2), name: "Bob".into() }
}

fn card(uid: &str) -> CardUid {
    uid.parse().expect("test card UIDs are valid")
}

fn photo() -> Frame {
    Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0, 7, 7], "test frame").expect("JPEG magic")
}

/// The face the camera burst found; its confidence differs from the engine's on purpose.
fn face() -> DetectedFace {
    DetectedFace { x: 10, y: 20, width: 200, height: 240, confidence: 97.5, landmarks: None }
}

fn candidate(person: &Person, similarity: f32) -> SearchOutcome {
    SearchOutcome::Candidate { person: person.id, similarity, face_confidence: 98.0 }
}

fn with_face() -> Result<Capture, String> {
    Ok(Capture { frame: photo(), face: Some(face()), liveness: None })
}

/// The report of the one `Record` among `effects`.
fn report(effects: &[Effect]) -> &AttemptReport {
    let mut records = effects.iter().filter_map(|e| match e {
        Effect::Record(report) => Some(report.as_ref()),
        _ => None,
    });
    let first = records.next().unwrap_or_else(|| panic!("no Record in {effects:?}"));
    assert!(records.next().is_none(), "more than one Record in {effects:?}");
    first
}

/// A report with nothing established beyond the card; tests fill in the rest.
fn bare_report(tapped_at: Instant, uid: &str, decision: Decision, reason: Reason) -> AttemptReport {
    AttemptReport {
        tapped_at,
        credential: Credential::Card(card(uid)),
        visitor: None,
        person: None,
        decision,
        reason,
        similarity: None,
        face_confidence: None,
        photo: None,
        timings: StageTimings::default(),
        detail: None,
    }
}

fn granted(settings: &DoorSettings, report: AttemptReport) -> Vec<Effect> {
    vec![
        Effect::Record(Box::new(report)),
        Effect::SetLock(Lock::Unlocked),
        Effect::SetLights(GREEN),
        Effect::Beep(settings.grant_beep),
        Effect::StartTimer { timer: Timer::Relock, after: settings.unlock_time },
    ]
}

fn denied(settings: &DoorSettings, report: AttemptReport) -> Vec<Effect> {
    vec![Effect::Record(Box::new(report)), Effect::Beep(settings.deny_beep)]
}

/// Taps `uid` and checks that an attempt starts with looking the card up.
fn tap(door: &mut Door, uid: &str) -> AttemptId {
    let effects = door.handle(Event::CardRead(card(uid)), Instant::now());
    match effects.as_slice() {
        [Effect::LookUpCard { attempt, uid: looked_up }] if *looked_up == card(uid) => *attempt,
        other => panic!("expected one lookup of {uid}, got {other:?}"),
    }
}

fn resolve(door: &mut Door, attempt: AttemptId, holder: Result<Option<Person>, String>) -> Vec<Effect> {
    resolve_within_limits(door, attempt, holder, Admission::Open)
}

fn resolve_within_limits(
    door: &mut Door,
    attempt: AttemptId,
    holder: Result<Option<Person>, String>,
    admission: Admission,
) -> Vec<Effect> {
    door.handle(Event::CardResolved { attempt, holder, admission }, Instant::now())
}

fn capture(door: &mut Door, attempt: AttemptId, result: Result<Capture, String>) -> Vec<Effect> {
    door.handle(Event::Captured { attempt, result }, Instant::now())
}

fn matched(door: &mut Door, attempt: AttemptId, result: Result<SearchOutcome, String>) -> Vec<Effect> {
    door.handle(Event::Matched { attempt, result }, Instant::now())
}

/// Resolves the card to `holder` and checks that the camera is asked for a face.
fn resolve_to_capture(door: &mut Door, attempt: AttemptId, holder: Person) {
    assert_eq!(resolve(door, attempt, Ok(Some(holder))), [Effect::Capture { attempt }]);
}

/// Hands over a frame with a face and checks that it goes to matching.
fn capture_to_match(door: &mut Door, attempt: AttemptId) {
    assert_eq!(capture(door, attempt, with_face()), [Effect::Match { attempt, frame: photo() }]);
}

/// Walks a tap of `uid` held by `holder` up to face matching.
fn up_to_matching(door: &mut Door, uid: &str, holder: Person) -> AttemptId {
    let attempt = tap(door, uid);
    resolve_to_capture(door, attempt, holder);
    capture_to_match(door, attempt);
    attempt
}

/// Opens the door for Alice's card and face.
fn open_for_alice(door: &mut Door) {
    let attempt = up_to_matching(door, ALICE_CARD, alice());
    let effects = matched(door, attempt, Ok(candidate(&alice(), 97.0)));
    assert_eq!(report(&effects).decision, Decision::Granted, "{effects:?}");
    assert!(door.is_unlocked());
}

/// A burst the geometry check took for a picture, in `enforce` or `log` mode.
fn judged_a_picture(enforced: bool) -> Result<Capture, String> {
    use crate::liveness::{Finding, Verdict};
    let finding = Finding { check: "geometry", verdict: Verdict::Spoof, score: 0.004, detail: "flat".into() };
    let liveness = Assessment { enforced, findings: vec![finding], took: Duration::ZERO, frames: 5 };
    Ok(Capture { liveness: Some(liveness), ..with_face().unwrap() })
}

#[tokio::test(start_paused = true)]
async fn a_picture_that_matches_is_denied_only_when_liveness_is_enforced() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    for (enforced, decision, reason) in
        [(true, Decision::Denied, Reason::SpoofSuspected), (false, Decision::Granted, Reason::CardAndFace)]
    {
        let attempt = tap(&mut door, ALICE_CARD);
        resolve_to_capture(&mut door, attempt, alice());
        assert_eq!(
            capture(&mut door, attempt, judged_a_picture(enforced)),
            [Effect::Match { attempt, frame: photo() }]
        );
        let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 97.0)));
        let report = report(&effects);
        assert_eq!((report.decision, report.reason), (decision, reason), "enforced: {enforced}");
        let detail = report.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("geometry spoof 0.004 (flat)"), "the check and its score are logged: {detail}");
        assert_eq!(door.is_unlocked(), !enforced);
        advance(Duration::from_secs(3)).await;
    }
    // A face of someone else stays `wrong_person`, picture or not.
    let attempt = tap(&mut door, BOB_CARD);
    resolve_to_capture(&mut door, attempt, bob());
    capture(&mut door, attempt, judged_a_picture(true));
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 97.0)));
    assert_eq!(report(&effects).reason, Reason::WrongPerson);
}

fn face_found(door: &mut Door, attempt: AttemptId) -> Vec<Effect> {
    door.handle(Event::FaceFound { attempt, capture: with_face().unwrap() }, Instant::now())
}

#[tokio::test(start_paused = true)]
async fn the_match_starts_at_the_first_face_and_the_verdict_waits_for_the_checks() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    // The match's outcome comes first: nothing opens until the rest of the burst is judged.
    for (enforced, decision) in [(true, Decision::Denied), (false, Decision::Granted)] {
        let attempt = tap(&mut door, ALICE_CARD);
        resolve_to_capture(&mut door, attempt, alice());
        advance(ms(40)).await;
        assert_eq!(face_found(&mut door, attempt), [Effect::Match { attempt, frame: photo() }]);
        advance(ms(15)).await;
        assert_eq!(matched(&mut door, attempt, Ok(candidate(&alice(), 97.0))), []);
        assert!(!door.is_unlocked());
        advance(ms(60)).await;
        let effects = capture(&mut door, attempt, judged_a_picture(enforced));
        let verdict = report(&effects);
        assert_eq!(verdict.decision, decision, "enforced: {enforced}");
        assert_eq!((verdict.timings.capture_ms, verdict.timings.match_ms), (Some(115), Some(15)));
        assert_eq!(door.is_unlocked(), !enforced);
        advance(Duration::from_secs(6)).await;
        door.handle(Event::TimerFired(Timer::Relock), Instant::now());
    }
    // The checks come first: the verdict waits for the match.
    let attempt = tap(&mut door, ALICE_CARD);
    resolve_to_capture(&mut door, attempt, alice());
    face_found(&mut door, attempt);
    assert_eq!(capture(&mut door, attempt, with_face()), []);
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 97.0)));
    assert_eq!(report(&effects).decision, Decision::Granted);
}

#[tokio::test(start_paused = true)]
async fn a_burst_that_fails_after_its_face_was_found_opens_nothing() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let attempt = tap(&mut door, ALICE_CARD);
    resolve_to_capture(&mut door, attempt, alice());
    face_found(&mut door, attempt);
    matched(&mut door, attempt, Ok(candidate(&alice(), 97.0)));
    let effects = capture(&mut door, attempt, Err("the capture failed".into()));
    let failed = report(&effects);
    assert_eq!((failed.decision, failed.reason), (Decision::Denied, Reason::CameraError));
    assert!(!door.is_unlocked());
    // A refused card's photo is proof only: a face found early starts no match.
    let mut door = Door::new(DoorSettings { capture_when_closed: true, ..s }, true);
    let attempt = tap(&mut door, BOB_CARD);
    let refused = Admission::Closed(Reason::OutsideSchedule);
    assert_eq!(resolve_within_limits(&mut door, attempt, Ok(Some(bob())), refused), [Effect::Capture { attempt }]);
    assert_eq!(face_found(&mut door, attempt), []);
    let effects = capture(&mut door, attempt, with_face());
    assert_eq!(report(&effects).reason, Reason::OutsideSchedule);
}

#[tokio::test(start_paused = true)]
async fn start_is_locked_quiet_and_red_only_when_armed() {
    let armed = Door::new(settings(), true);
    assert_eq!(armed.start(), [Effect::SetLock(Lock::Locked), Effect::StopBeeping, Effect::SetLights(RED)]);
    let disarmed = Door::new(settings(), false);
    assert_eq!(disarmed.start(), [Effect::SetLock(Lock::Locked), Effect::StopBeeping, Effect::SetLights(DARK)]);
    assert!(!armed.is_busy() && !armed.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn card_and_face_of_the_same_person_opens_with_stage_timings() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = AttemptId(1);
    assert_eq!(
        door.handle(Event::CardRead(card(ALICE_CARD)), tapped),
        [Effect::LookUpCard { attempt, uid: card(ALICE_CARD) }]
    );
    assert!(door.is_busy());

    advance(ms(20)).await;
    assert_eq!(resolve(&mut door, attempt, Ok(Some(alice()))), [Effect::Capture { attempt }]);

    advance(ms(300)).await;
    assert_eq!(capture(&mut door, attempt, with_face()), [Effect::Match { attempt, frame: photo() }]);

    advance(ms(450)).await;
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 96.5)));
    let expected = AttemptReport {
        person: Some(alice()),
        similarity: Some(96.5),
        // The engine's confidence replaces the one from the burst.
        face_confidence: Some(98.0),
        photo: Some(photo()),
        timings: StageTimings { read_ms: 20, capture_ms: Some(300), match_ms: Some(450), actuate_ms: 0, total_ms: 770 },
        ..bare_report(tapped, ALICE_CARD, Decision::Granted, Reason::CardAndFace)
    };
    assert_eq!(effects, granted(&s, expected));
    assert!(door.is_unlocked());
    assert!(!door.is_busy());
}

#[tokio::test(start_paused = true)]
async fn face_of_another_person_is_denied_as_wrong_person() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    let effects = matched(&mut door, attempt, Ok(candidate(&bob(), 99.0)));
    let expected = AttemptReport {
        person: Some(alice()),
        similarity: Some(99.0),
        face_confidence: Some(98.0),
        photo: Some(photo()),
        timings: StageTimings { capture_ms: Some(0), match_ms: Some(0), ..StageTimings::default() },
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::WrongPerson)
    };
    assert_eq!(effects, denied(&s, expected));
    assert!(!door.is_unlocked() && !door.is_busy());
}

#[tokio::test(start_paused = true)]
async fn face_below_the_threshold_or_unknown_is_not_recognised() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 89.9)));
    let expected = AttemptReport {
        person: Some(alice()),
        similarity: Some(89.9),
        face_confidence: Some(98.0),
        photo: Some(photo()),
        timings: StageTimings { capture_ms: Some(0), match_ms: Some(0), ..StageTimings::default() },
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::FaceNotRecognised)
    };
    assert_eq!(effects, denied(&s, expected));

    // A face that resembles nobody enrolled: no similarity, the engine's face confidence kept.
    advance(s.debounce).await;
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    let effects = matched(&mut door, attempt, Ok(SearchOutcome::NoCandidate { face_confidence: 91.0 }));
    let report = report(&effects);
    assert_eq!((report.decision, report.reason), (Decision::Denied, Reason::FaceNotRecognised));
    assert_eq!((report.similarity, report.face_confidence), (None, Some(91.0)));
    assert_eq!(effects[1], Effect::Beep(s.deny_beep));
    assert!(!door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn unknown_card_is_denied_without_asking_the_camera() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, STRANGER_CARD);
    advance(ms(12)).await;
    let effects = resolve(&mut door, attempt, Ok(None));
    let expected = AttemptReport {
        timings: StageTimings { read_ms: 12, total_ms: 12, ..StageTimings::default() },
        ..bare_report(tapped, STRANGER_CARD, Decision::Denied, Reason::UnknownCard)
    };
    assert_eq!(effects, denied(&s, expected));
    assert!(!door.is_busy());
    // Any late capture for it is dropped rather than starting a match.
    assert_eq!(capture(&mut door, attempt, with_face()), []);
}

#[tokio::test(start_paused = true)]
async fn no_face_in_the_burst_is_denied_and_keeps_the_photo() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    resolve_to_capture(&mut door, attempt, alice());
    advance(ms(3000)).await;
    let effects = capture(&mut door, attempt, Ok(Capture { frame: photo(), face: None, liveness: None }));
    let expected = AttemptReport {
        person: Some(alice()),
        photo: Some(photo()),
        timings: StageTimings { capture_ms: Some(3000), total_ms: 3000, ..StageTimings::default() },
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::NoFace)
    };
    assert_eq!(effects, denied(&s, expected));
}

#[tokio::test(start_paused = true)]
async fn engine_finding_no_face_is_denied_as_no_face() {
    let mut door = Door::new(settings(), true);
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    let effects = matched(&mut door, attempt, Ok(SearchOutcome::NoFace));
    let report = report(&effects);
    assert_eq!((report.decision, report.reason), (Decision::Denied, Reason::NoFace));
    assert_eq!(report.photo, Some(photo()));
    // The burst's confidence stays: the engine gave none.
    assert_eq!((report.similarity, report.face_confidence), (None, Some(face().confidence)));
}

#[tokio::test(start_paused = true)]
async fn engine_error_is_denied_with_its_detail() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    advance(ms(5000)).await;
    let effects = matched(&mut door, attempt, Err("no answer within 5s".into()));
    let expected = AttemptReport {
        person: Some(alice()),
        face_confidence: Some(face().confidence),
        photo: Some(photo()),
        timings: StageTimings { capture_ms: Some(0), match_ms: Some(5000), total_ms: 5000, ..StageTimings::default() },
        detail: Some("no answer within 5s".into()),
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::EngineError)
    };
    assert_eq!(effects, denied(&s, expected));
}

#[tokio::test(start_paused = true)]
async fn camera_error_is_denied_with_its_detail() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(5)).await;
    resolve_to_capture(&mut door, attempt, alice());
    advance(ms(40)).await;
    let effects = capture(&mut door, attempt, Err("camera unplugged".into()));
    let expected = AttemptReport {
        person: Some(alice()),
        timings: StageTimings { read_ms: 5, capture_ms: Some(40), total_ms: 45, ..StageTimings::default() },
        detail: Some("camera unplugged".into()),
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::CameraError)
    };
    assert_eq!(effects, denied(&s, expected));
}

#[tokio::test(start_paused = true)]
async fn lookup_error_is_denied_with_its_detail() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(8)).await;
    let effects = resolve(&mut door, attempt, Err("database is locked".into()));
    let expected = AttemptReport {
        timings: StageTimings { read_ms: 8, total_ms: 8, ..StageTimings::default() },
        detail: Some("database is locked".into()),
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::LookupError)
    };
    assert_eq!(effects, denied(&s, expected));
    assert!(!door.is_busy());
}

#[tokio::test(start_paused = true)]
async fn same_card_within_the_debounce_window_is_ignored_after_the_attempt() {
    let mut door = Door::new(settings(), true);
    let attempt = tap(&mut door, STRANGER_CARD);
    resolve(&mut door, attempt, Ok(None));
    assert!(!door.is_busy());

    advance(ms(1999)).await;
    assert_eq!(door.handle(Event::CardRead(card(STRANGER_CARD)), Instant::now()), []);
    assert!(!door.is_busy(), "a debounced read must not start an attempt");
}

#[tokio::test(start_paused = true)]
async fn a_different_card_is_not_debounced() {
    let mut door = Door::new(settings(), true);
    let first = tap(&mut door, STRANGER_CARD);
    resolve(&mut door, first, Ok(None));
    advance(ms(100)).await;
    let second = tap(&mut door, BOB_CARD);
    assert_ne!(first, second);
}

#[tokio::test(start_paused = true)]
async fn same_card_after_the_window_starts_a_new_attempt() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let first = tap(&mut door, STRANGER_CARD);
    resolve(&mut door, first, Ok(None));
    advance(s.debounce).await;
    let second = tap(&mut door, STRANGER_CARD);
    assert_eq!((first, second), (AttemptId(1), AttemptId(2)));
}

#[tokio::test(start_paused = true)]
async fn a_card_resting_on_the_reader_keeps_extending_the_window() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let first = tap(&mut door, STRANGER_CARD);
    resolve(&mut door, first, Ok(None));
    // Reported every 1.5 s for 6 s: each sighting is within 2 s of the one before.
    for _ in 0..4 {
        advance(ms(1500)).await;
        assert_eq!(door.handle(Event::CardRead(card(STRANGER_CARD)), Instant::now()), []);
    }
    assert!(!door.is_busy());
    // Lifted and tapped again once the window has passed since the last sighting.
    advance(s.debounce).await;
    assert_eq!(tap(&mut door, STRANGER_CARD), AttemptId(2));
}

#[tokio::test(start_paused = true)]
async fn a_tap_during_an_attempt_is_ignored() {
    let mut door = Door::new(settings(), true);
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(10)).await;
    assert_eq!(door.handle(Event::CardRead(card(BOB_CARD)), Instant::now()), []);
    // The attempt in progress carries on undisturbed.
    resolve_to_capture(&mut door, attempt, alice());
    assert_eq!(door.handle(Event::CardRead(card(BOB_CARD)), Instant::now()), []);
    capture_to_match(&mut door, attempt);
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 95.0)));
    assert_eq!(report(&effects).credential, Credential::Card(card(ALICE_CARD)));
    assert_eq!(report(&effects).decision, Decision::Granted);
}

#[tokio::test(start_paused = true)]
async fn a_denied_tap_while_unlocked_leaves_the_door_open() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    open_for_alice(&mut door);
    advance(ms(500)).await;
    let tapped = Instant::now();
    let attempt = tap(&mut door, STRANGER_CARD);
    assert!(door.is_busy() && door.is_unlocked());
    let effects = resolve(&mut door, attempt, Ok(None));
    // Beeps and is logged, but neither locks nor turns the green light off on whoever walks through.
    assert_eq!(effects, denied(&s, bare_report(tapped, STRANGER_CARD, Decision::Denied, Reason::UnknownCard)));
    assert!(door.is_unlocked());
    assert_eq!(
        door.handle(Event::TimerFired(Timer::Relock), Instant::now()),
        [Effect::SetLock(Lock::Locked), Effect::SetLights(RED)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_grant_while_unlocked_restarts_the_unlock_time() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    open_for_alice(&mut door);
    advance(s.debounce).await;
    let attempt = up_to_matching(&mut door, BOB_CARD, bob());
    let effects = matched(&mut door, attempt, Ok(candidate(&bob(), 95.0)));
    let report = report(&effects).clone();
    assert_eq!((report.decision, report.person.clone()), (Decision::Granted, Some(bob())));
    assert_eq!(effects, granted(&s, report), "a fresh relock timer for the full unlock time");
    assert!(door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn the_door_relocks_during_an_attempt_that_began_while_open() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    open_for_alice(&mut door);
    advance(s.unlock_time - ms(100)).await;
    let attempt = up_to_matching(&mut door, BOB_CARD, bob());
    advance(ms(100)).await;
    assert_eq!(
        door.handle(Event::TimerFired(Timer::Relock), Instant::now()),
        [Effect::SetLock(Lock::Locked), Effect::SetLights(RED)]
    );
    assert!(!door.is_unlocked() && door.is_busy());
    // The attempt goes on and may open the door again.
    let effects = matched(&mut door, attempt, Ok(candidate(&bob(), 95.0)));
    assert_eq!(effects[1], Effect::SetLock(Lock::Unlocked));
    assert!(door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn disarmed_door_logs_a_known_card_without_opening() {
    let mut door = Door::new(settings(), false);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(15)).await;
    let effects = resolve(&mut door, attempt, Ok(Some(alice())));
    let expected = AttemptReport {
        person: Some(alice()),
        timings: StageTimings { read_ms: 15, total_ms: 15, ..StageTimings::default() },
        ..bare_report(tapped, ALICE_CARD, Decision::Disarmed, Reason::Disarmed)
    };
    // No lock, lights, beep or capture: only the log entry, and that is not announced.
    assert_eq!(effects, [Effect::Record(Box::new(expected))]);
    assert!(!report(&effects).notify());
    assert!(!door.is_busy() && !door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn disarming_ends_the_attempt_under_way_as_disarmed() {
    let mut door = Door::new(settings(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    // The door is locked, so the lights follow at once; the attempt ends without opening.
    let expected = bare_report(tapped, ALICE_CARD, Decision::Disarmed, Reason::Disarmed);
    assert_eq!(
        door.handle(Event::SetArmed(false), Instant::now()),
        [Effect::PersistArmed(false), Effect::SetLights(DARK), Effect::Record(Box::new(expected))]
    );
    assert!(!door.armed() && !door.is_busy());
    assert!(resolve(&mut door, attempt, Ok(Some(alice()))).is_empty(), "its late results are dropped");
}

#[tokio::test(start_paused = true)]
async fn disarming_while_matching_keeps_the_holder_and_photo_and_never_opens() {
    let mut door = Door::new(settings(), true);
    let attempt = tap(&mut door, ALICE_CARD);
    resolve(&mut door, attempt, Ok(Some(alice())));
    capture(&mut door, attempt, with_face());
    let effects = door.handle(Event::SetArmed(false), Instant::now());
    let record = report(&effects);
    assert_eq!(
        (record.decision, record.person.clone(), record.photo.clone()),
        (Decision::Disarmed, Some(alice()), Some(photo()))
    );
    assert!(matched(&mut door, attempt, Ok(candidate(&alice(), 99.0))).is_empty(), "a late match opens nothing");
}

#[tokio::test(start_paused = true)]
async fn arming_is_persisted_and_the_idle_lights_follow() {
    let mut door = Door::new(settings(), true);
    assert_eq!(
        door.handle(Event::SetArmed(false), Instant::now()),
        [Effect::PersistArmed(false), Effect::SetLights(DARK)]
    );
    assert!(!door.armed());
    assert_eq!(
        door.handle(Event::SetArmed(true), Instant::now()),
        [Effect::PersistArmed(true), Effect::SetLights(RED)]
    );
    assert!(door.armed());
}

#[tokio::test(start_paused = true)]
async fn arming_during_an_attempt_shows_red_at_once() {
    let mut door = Door::new(settings(), false);
    let attempt = tap(&mut door, STRANGER_CARD);
    assert_eq!(
        door.handle(Event::SetArmed(true), Instant::now()),
        [Effect::PersistArmed(true), Effect::SetLights(RED)]
    );
    // The verdict that follows does not touch the lights again.
    let effects = resolve(&mut door, attempt, Ok(None));
    assert_eq!(report(&effects).decision, Decision::Denied);
    assert!(!effects.iter().any(|e| matches!(e, Effect::SetLights(_))), "{effects:?}");
}

#[tokio::test(start_paused = true)]
async fn relock_timer_locks_and_shows_the_idle_lights() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    open_for_alice(&mut door);
    advance(s.unlock_time).await;
    let relock = Event::TimerFired(Timer::Relock);
    assert_eq!(door.handle(relock.clone(), Instant::now()), [Effect::SetLock(Lock::Locked), Effect::SetLights(RED)]);
    assert!(!door.is_unlocked());
    // A second, stale firing does nothing.
    assert_eq!(door.handle(relock.clone(), Instant::now()), []);
    // Nor does one that arrives during the next attempt.
    let attempt = tap(&mut door, ALICE_CARD);
    assert_eq!(door.handle(relock, Instant::now()), []);
    assert!(door.is_busy() && !door.is_unlocked());
    resolve_to_capture(&mut door, attempt, alice());
}

#[tokio::test(start_paused = true)]
async fn relock_after_disarming_while_open_shows_no_red() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    open_for_alice(&mut door);
    // The green light stays while the door is open...
    assert_eq!(door.handle(Event::SetArmed(false), Instant::now()), [Effect::PersistArmed(false)]);
    assert!(door.is_unlocked());
    advance(s.unlock_time).await;
    // ...and the disarmed idle lights come on when it locks.
    assert_eq!(
        door.handle(Event::TimerFired(Timer::Relock), Instant::now()),
        [Effect::SetLock(Lock::Locked), Effect::SetLights(DARK)]
    );
}

#[tokio::test(start_paused = true)]
async fn stale_relock_on_an_idle_door_does_nothing() {
    let mut door = Door::new(settings(), true);
    assert_eq!(door.handle(Event::TimerFired(Timer::Relock), Instant::now()), []);
    assert!(!door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn results_of_an_earlier_attempt_are_ignored() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    // Attempt 1 ends early with a camera error; its capture and match are still out there.
    let first = tap(&mut door, ALICE_CARD);
    resolve_to_capture(&mut door, first, alice());
    let effects = capture(&mut door, first, Err("timeout".into()));
    assert_eq!(report(&effects).reason, Reason::CameraError);

    let second = tap(&mut door, BOB_CARD);
    assert_ne!(first, second);
    resolve_to_capture(&mut door, second, bob());
    assert_eq!(capture(&mut door, first, with_face()), []);
    assert_eq!(resolve(&mut door, first, Ok(Some(alice()))), []);
    assert_eq!(matched(&mut door, first, Ok(candidate(&alice(), 99.0))), []);
    // A match result for the current attempt before its capture is out of order: dropped too.
    assert_eq!(matched(&mut door, second, Ok(candidate(&bob(), 99.0))), []);
    assert!(door.is_busy() && !door.is_unlocked());

    capture_to_match(&mut door, second);
    assert_eq!(matched(&mut door, first, Ok(candidate(&alice(), 99.0))), []);
    let effects = matched(&mut door, second, Ok(candidate(&bob(), 93.0)));
    let report = report(&effects);
    assert_eq!((report.decision, report.person.clone()), (Decision::Granted, Some(bob())));
    // And once it is over, its own late results are dropped as well.
    assert_eq!(matched(&mut door, second, Ok(candidate(&bob(), 93.0))), []);
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_open_locks_silences_and_shows_red() {
    let mut door = Door::new(settings(), true);
    open_for_alice(&mut door);
    advance(ms(700)).await;
    assert_eq!(
        door.handle(Event::Shutdown, Instant::now()),
        [Effect::SetLock(Lock::Locked), Effect::StopBeeping, Effect::SetLights(RED)]
    );
    assert!(!door.is_unlocked());
    assert_eq!(door.handle(Event::TimerFired(Timer::Relock), Instant::now()), []);
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_open_and_busy_locks_and_records_the_attempt() {
    let mut door = Door::new(settings(), true);
    open_for_alice(&mut door);
    advance(settings().debounce).await;
    tap(&mut door, BOB_CARD);
    let effects = door.handle(Event::Shutdown, Instant::now());
    assert_eq!(effects[..3], [Effect::SetLock(Lock::Locked), Effect::StopBeeping, Effect::SetLights(RED)]);
    assert_eq!(report(&effects).reason, Reason::Interrupted);
    assert!(!door.is_unlocked() && !door.is_busy());
}

#[tokio::test(start_paused = true)]
async fn shutdown_of_a_disarmed_idle_door_still_shows_red() {
    let mut door = Door::new(settings(), false);
    assert_eq!(
        door.handle(Event::Shutdown, Instant::now()),
        [Effect::SetLock(Lock::Locked), Effect::StopBeeping, Effect::SetLights(RED)]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_an_attempt_records_it_as_interrupted() {
    let mut door = Door::new(settings(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(10)).await;
    resolve_to_capture(&mut door, attempt, alice());
    advance(ms(250)).await;
    capture_to_match(&mut door, attempt);
    advance(ms(90)).await;
    let expected = AttemptReport {
        person: Some(alice()),
        face_confidence: Some(face().confidence),
        photo: Some(photo()),
        timings: StageTimings { read_ms: 10, capture_ms: Some(250), match_ms: None, actuate_ms: 0, total_ms: 350 },
        ..bare_report(tapped, ALICE_CARD, Decision::Denied, Reason::Interrupted)
    };
    // Locked and red, with the report, but no deny beep as the door goes down.
    assert_eq!(
        door.handle(Event::Shutdown, Instant::now()),
        [
            Effect::SetLock(Lock::Locked),
            Effect::StopBeeping,
            Effect::SetLights(RED),
            Effect::Record(Box::new(expected))
        ]
    );
    assert!(!door.is_busy());
    assert_eq!(matched(&mut door, attempt, Ok(candidate(&alice(), 99.0))), []);
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_the_lookup_records_no_person() {
    let mut door = Door::new(settings(), true);
    tap(&mut door, ALICE_CARD);
    let effects = door.handle(Event::Shutdown, Instant::now());
    let report = report(&effects);
    assert_eq!((report.decision, report.reason, report.person.clone()), (Decision::Denied, Reason::Interrupted, None));
    assert!(report.notify());
}

#[tokio::test(start_paused = true)]
async fn card_only_mode_opens_for_a_known_card_without_the_camera() {
    let s = DoorSettings { mode: Mode::CardOnly, ..settings() };
    let mut door = Door::new(s.clone(), true);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(10)).await;
    let effects = resolve(&mut door, attempt, Ok(Some(alice())));
    let expected = AttemptReport {
        person: Some(alice()),
        timings: StageTimings { read_ms: 10, total_ms: 10, ..StageTimings::default() },
        ..bare_report(tapped, ALICE_CARD, Decision::Granted, Reason::CardOnly)
    };
    assert_eq!(effects, granted(&s, expected));
    assert!(door.is_unlocked());

    // An unknown card still opens nothing.
    advance(s.unlock_time).await;
    door.handle(Event::TimerFired(Timer::Relock), Instant::now());
    let attempt = tap(&mut door, STRANGER_CARD);
    let effects = resolve(&mut door, attempt, Ok(None));
    assert_eq!(report(&effects).reason, Reason::UnknownCard);
    assert_eq!(effects[1], Effect::Beep(s.deny_beep));
}

#[tokio::test(start_paused = true)]
async fn a_disarmed_door_only_logs_even_when_the_lookup_fails() {
    let mut door = Door::new(settings(), false);
    let tapped = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    let effects = resolve(&mut door, attempt, Err("database is locked".into()));
    let expected = AttemptReport {
        detail: Some("database is locked".into()),
        ..bare_report(tapped, ALICE_CARD, Decision::Disarmed, Reason::Disarmed)
    };
    assert_eq!(effects, [Effect::Record(Box::new(expected))], "no beeps, no notification-worthy denial");
}

#[tokio::test(start_paused = true)]
async fn a_resting_card_stays_debounced_while_other_cards_are_read() {
    let mut door = Door::new(settings(), true);
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(500)).await;
    // Bob's card is read during Alice's attempt (ignored), while Alice's card keeps being reported.
    assert!(door.handle(Event::CardRead(card(BOB_CARD)), Instant::now()).is_empty());
    assert!(door.handle(Event::CardRead(card(ALICE_CARD)), Instant::now()).is_empty());
    resolve(&mut door, attempt, Ok(None));
    advance(ms(1500)).await;
    assert!(
        door.handle(Event::CardRead(card(ALICE_CARD)), Instant::now()).is_empty(),
        "Alice's card was seen 1.5 s ago: still within the window"
    );
    // Bob's card was last seen 1.5 s ago too.
    assert!(door.handle(Event::CardRead(card(BOB_CARD)), Instant::now()).is_empty());
    advance(ms(2100)).await;
    tap(&mut door, BOB_CARD);
}

#[tokio::test(start_paused = true)]
async fn new_settings_apply_to_the_next_step_without_a_restart() {
    let mut door = Door::new(settings(), true);
    let stricter = DoorSettings { match_threshold: 98.0, unlock_time: Duration::from_secs(30), ..settings() };
    door.set_settings(stricter.clone());
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 97.0)));
    assert_eq!(report(&effects).reason, Reason::FaceNotRecognised, "97 is below the new threshold: {effects:?}");

    advance(settings().debounce).await;
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 99.0)));
    assert!(
        effects.contains(&Effect::StartTimer { timer: Timer::Relock, after: stricter.unlock_time }),
        "the new unlock time is used: {effects:?}"
    );
}

/// Alice's card, resolved 20 ms after the tap as closed for `reason`, is denied at once: no camera.
async fn assert_refused_before_the_camera(settings: DoorSettings, reason: Reason) {
    let mut door = Door::new(settings.clone(), true);
    let tapped_at = Instant::now();
    let attempt = tap(&mut door, ALICE_CARD);
    advance(ms(20)).await;
    let effects = resolve_within_limits(&mut door, attempt, Ok(Some(alice())), Admission::Closed(reason));
    let mut expected = bare_report(tapped_at, ALICE_CARD, Decision::Denied, reason);
    expected.person = Some(alice());
    expected.timings = StageTimings { read_ms: 20, total_ms: 20, ..StageTimings::default() };
    assert_eq!(effects, denied(&settings, expected), "{reason} in {} mode", settings.mode);
    assert!(!door.is_busy());
}

#[tokio::test(start_paused = true)]
async fn a_card_outside_its_limits_is_refused_before_the_camera() {
    for reason in [Reason::OutsideSchedule, Reason::NotYetValid, Reason::Expired, Reason::ClockNotSynced] {
        for mode in [Mode::CardAndFace, Mode::CardOnly] {
            assert_refused_before_the_camera(DoorSettings { mode, ..settings() }, reason).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_door_the_holder_may_not_use_refuses_before_the_camera_even_with_proof_photos_on() {
    for (mode, capture_when_closed) in [(Mode::CardAndFace, false), (Mode::CardAndFace, true), (Mode::CardOnly, true)] {
        let settings = DoorSettings { mode, capture_when_closed, ..settings() };
        assert_refused_before_the_camera(settings, Reason::NotAllowedHere).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_card_can_still_be_photographed_as_proof() {
    let settings = DoorSettings { capture_when_closed: true, ..settings() };
    let mut door = Door::new(settings.clone(), true);
    let attempt = tap(&mut door, ALICE_CARD);
    let effects = resolve_within_limits(&mut door, attempt, Ok(Some(alice())), Admission::Closed(Reason::Expired));
    assert_eq!(effects, vec![Effect::Capture { attempt }]);
    advance(ms(300)).await;
    // The face is kept with the log row, never matched: the card is refused whoever holds it.
    let effects = capture(&mut door, attempt, with_face());
    let row = report(&effects);
    assert_eq!((row.decision, row.reason), (Decision::Denied, Reason::Expired));
    assert_eq!((row.photo.clone(), row.face_confidence), (Some(photo()), Some(face().confidence)));
    assert_eq!(row.timings.capture_ms, Some(300));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Match { .. } | Effect::SetLock(Lock::Unlocked))));

    // A camera that fails still leaves the refusal for the time limits, with the camera's error.
    let attempt = tap(&mut door, BOB_CARD);
    resolve_within_limits(&mut door, attempt, Ok(Some(bob())), Admission::Closed(Reason::OutsideSchedule));
    let effects = capture(&mut door, attempt, Err("no camera".into()));
    let row = report(&effects);
    assert_eq!((row.reason, row.detail.as_deref()), (Reason::OutsideSchedule, Some("no camera")));
}

fn typed(code: &str) -> Event {
    Event::PassPresented { credential: Credential::Passcode, secret: Secret::new(code) }
}

fn checked(outcome: PassOutcome, visitor: Option<&str>) -> Result<PassCheck, String> {
    Ok(PassCheck { outcome, visitor: visitor.map(str::to_owned), detail: None })
}

/// A report of a visitor's attempt: no card, nobody enrolled.
fn visitor_report(tapped_at: Instant, credential: Credential, decision: Decision, reason: Reason) -> AttemptReport {
    AttemptReport { credential, ..bare_report(tapped_at, ALICE_CARD, decision, reason) }
}

/// Presents `code` and checks that the door asks for it to be checked.
fn present(door: &mut Door, code: &str) -> AttemptId {
    match door.handle(typed(code), Instant::now()).as_slice() {
        [Effect::CheckPass { attempt, credential: Credential::Passcode, secret }] if secret.expose() == code => {
            *attempt
        }
        other => panic!("expected the passcode to be checked, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_right_passcode_opens_for_the_visitor_it_was_sent_to() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let typed_at = Instant::now();
    let attempt = present(&mut door, "123456");
    assert!(door.is_busy());
    advance(ms(12)).await;
    let effects =
        door.handle(Event::PassChecked { attempt, result: checked(PassOutcome::Valid, Some("Bob")) }, Instant::now());
    let expected = AttemptReport {
        visitor: Some("Bob".into()),
        timings: StageTimings { read_ms: 12, total_ms: 12, ..StageTimings::default() },
        ..visitor_report(typed_at, Credential::Passcode, Decision::Granted, Reason::PasscodeOk)
    };
    assert_eq!(effects, granted(&s, expected));
    assert!(door.is_unlocked() && !door.is_busy());
    // The relock is the card path's: one timer, one place.
    advance(s.unlock_time).await;
    assert_eq!(
        door.handle(Event::TimerFired(Timer::Relock), Instant::now()),
        [Effect::SetLock(Lock::Locked), Effect::SetLights(RED)]
    );
}

#[tokio::test(start_paused = true)]
async fn every_other_pass_outcome_is_denied_with_its_reason() {
    let s = settings();
    let cases = [
        (Credential::Passcode, PassOutcome::Wrong, Reason::PasscodeWrong),
        (Credential::Passcode, PassOutcome::Locked, Reason::PasscodeLocked),
        (Credential::Passcode, PassOutcome::Expired, Reason::PassExpired),
        (Credential::Passcode, PassOutcome::Used, Reason::PassUsed),
        (Credential::QrPass, PassOutcome::Wrong, Reason::PassForged),
        (Credential::QrPass, PassOutcome::Forged, Reason::PassForged),
        (Credential::QrPass, PassOutcome::Expired, Reason::PassExpired),
        (Credential::QrPass, PassOutcome::Used, Reason::PassUsed),
    ];
    for (credential, outcome, reason) in cases {
        let mut door = Door::new(s.clone(), true);
        let at = Instant::now();
        let presented = Event::PassPresented { credential: credential.clone(), secret: Secret::new("x") };
        let effects = door.handle(presented, at);
        let [Effect::CheckPass { attempt, .. }] = effects.as_slice() else { panic!("not checked: {effects:?}") };
        let attempt = *attempt;
        let effects = door.handle(Event::PassChecked { attempt, result: checked(outcome, None) }, at);
        let expected = visitor_report(at, credential, Decision::Denied, reason);
        assert_eq!(effects, denied(&s, expected), "{outcome:?}");
        assert!(!door.is_unlocked() && !door.is_busy());
    }
    let mut door = Door::new(s.clone(), true);
    let attempt = present(&mut door, "1");
    let qr_valid = door.handle(Event::PassChecked { attempt, result: Err("database away".into()) }, Instant::now());
    assert_eq!(report(&qr_valid).reason, Reason::LookupError);
    assert_eq!(policy::after_pass(&Credential::QrPass, PassOutcome::Valid), (Decision::Granted, Reason::PassOk));
}

#[tokio::test(start_paused = true)]
async fn a_pass_presented_during_a_card_attempt_is_turned_away_unchecked() {
    let mut door = Door::new(settings(), true);
    let attempt = up_to_matching(&mut door, ALICE_CARD, alice());
    assert_eq!(door.handle(typed("123456"), Instant::now()), [Effect::Busy(Credential::Passcode)]);
    // The card attempt goes on undisturbed and opens.
    let effects = matched(&mut door, attempt, Ok(candidate(&alice(), 97.0)));
    assert_eq!(report(&effects).reason, Reason::CardAndFace);
    // A card tapped while a pass is checked is not read as a second attempt either.
    let mut door = Door::new(settings(), true);
    let pass = present(&mut door, "123456");
    assert_eq!(door.handle(Event::CardRead(card(BOB_CARD)), Instant::now()), []);
    let effects = door
        .handle(Event::PassChecked { attempt: pass, result: checked(PassOutcome::Valid, Some("Eve")) }, Instant::now());
    assert_eq!(report(&effects).visitor.as_deref(), Some("Eve"));
    // A late answer for an attempt that has ended is dropped.
    assert_eq!(
        door.handle(Event::PassChecked { attempt: pass, result: checked(PassOutcome::Valid, None) }, Instant::now()),
        []
    );
}

#[tokio::test(start_paused = true)]
async fn a_disarmed_door_logs_a_pass_without_checking_or_using_it() {
    let mut door = Door::new(settings(), false);
    let at = Instant::now();
    let effects = door.handle(typed("123456"), at);
    assert_eq!(
        effects,
        [Effect::Record(Box::new(visitor_report(at, Credential::Passcode, Decision::Disarmed, Reason::Disarmed)))]
    );
    let remote = door.handle(Event::RemoteOpen { by: "admin".into(), visitor: Some("Bob".into()) }, at);
    assert_eq!(report(&remote).decision, Decision::Disarmed);
    assert!(!door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn disarming_while_a_pass_is_checked_ends_it_unopened() {
    let mut door = Door::new(settings(), true);
    let pass = present(&mut door, "123456");
    let effects = door.handle(Event::SetArmed(false), Instant::now());
    assert_eq!(report(&effects).decision, Decision::Disarmed);
    let late =
        door.handle(Event::PassChecked { attempt: pass, result: checked(PassOutcome::Valid, None) }, Instant::now());
    assert_eq!(late, []);
    assert!(!door.is_unlocked());
}

#[tokio::test(start_paused = true)]
async fn the_owner_opens_for_a_visitor_from_afar() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let at = Instant::now();
    let effects = door.handle(Event::RemoteOpen { by: "admin".into(), visitor: Some("Bob".into()) }, at);
    let expected = AttemptReport {
        visitor: Some("Bob".into()),
        detail: Some("opened by admin".into()),
        ..visitor_report(at, Credential::Remote { by: "admin".into() }, Decision::Granted, Reason::VisitorOpened)
    };
    assert_eq!(effects, granted(&s, expected));
    // Not while a card attempt is under way: that one is not cut short.
    let mut door = Door::new(s, true);
    tap(&mut door, ALICE_CARD);
    let busy = door.handle(Event::RemoteOpen { by: "admin".into(), visitor: Some("Bob".into()) }, at);
    assert_eq!(busy, [Effect::Busy(Credential::Remote { by: "admin".into() })]);
}

#[tokio::test(start_paused = true)]
async fn an_open_from_the_site_view_is_the_doors_normal_timed_unlock() {
    let s = settings();
    let mut door = Door::new(s.clone(), true);
    let at = Instant::now();
    let effects = door.handle(Event::RemoteOpen { by: "ada".into(), visitor: None }, at);
    let expected = AttemptReport {
        detail: Some("opened by ada".into()),
        ..visitor_report(at, Credential::Remote { by: "ada".into() }, Decision::Granted, Reason::RemoteOpened)
    };
    assert_eq!(effects, granted(&s, expected), "the same unlock and relock timer as a card's grant");
    door.handle(Event::TimerFired(Timer::Relock), at + s.unlock_time);
    assert!(!door.is_unlocked(), "locked again when the unlock time is up");
}

#[tokio::test(start_paused = true)]
async fn shutting_down_while_a_pass_is_checked_logs_it_interrupted() {
    let mut door = Door::new(settings(), true);
    present(&mut door, "123456");
    let effects = door.handle(Event::Shutdown, Instant::now());
    assert_eq!(report(&effects).reason, Reason::Interrupted);
    assert!(effects.contains(&Effect::SetLock(Lock::Locked)));
}
