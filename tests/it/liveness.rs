//! Liveness at the door: the real `facereko run` with the on-device engine and the simulated
//! camera showing a synthetic attack burst (the card holder's own photo, moved by a simulated
//! hand as a flat picture), or a live stand-in.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{TestDoor, face, models_dir};

const CARD: &str = "04A1B2C3";
/// The card holder; their first photo is enrolled and is what the attacker holds up.
const HOLDER: &str = "lfw10/Arnold_Schwarzenegger";

fn door_in(mode: &str) -> TestDoor {
    let models = format!("{:?}", models_dir().display().to_string());
    let mode = format!("{mode:?}");
    TestDoor::new(&[
        ("engine.kind", "\"local\""),
        ("engine.models_dir", &models),
        ("liveness.mode", &mode),
        // The test is about liveness: the holder's other photos must match whatever their pose.
        ("engine.match_threshold", "75"),
        // Five frames through the on-device engine of a test build, on a busy machine.
        ("capture.time_limit", "\"10s\""),
    ])
}

/// The frames of one burst shown to the camera whenever the card is tapped.
fn show_burst(door: &TestDoor, frames: &[PathBuf]) {
    let folder = door.path(&format!("camera/{CARD}"));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        let ext = frame.extension().unwrap().to_str().unwrap();
        std::fs::copy(frame, folder.join(format!("frame-{i:02}.{ext}"))).unwrap();
    }
}

fn frames_in(dir: &Path) -> Vec<PathBuf> {
    let mut frames: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    frames.sort();
    frames
}

/// The synthetic attack burst of the holder's enrolled photo, made by the command users run.
fn attack_burst(door: &TestDoor) -> Vec<PathBuf> {
    let made = door.path("made");
    let holder = face(&format!("{HOLDER}/Arnold_Schwarzenegger_0001.jpg"));
    let person = holder.parent().unwrap().to_str().unwrap().to_owned();
    let out = made.to_str().unwrap().to_owned();
    door.ok(&["liveness", "make-attacks", "--per-person", "1", "--out", &out, &person]);
    assert!(std::fs::read_to_string(made.join("SYNTHETIC.txt")).unwrap().starts_with("SYNTHETIC"));
    frames_in(&made.join("attack/Arnold_Schwarzenegger-Arnold_Schwarzenegger_0001-photo"))
}

fn enrol_holder(door: &TestDoor) {
    let enrolled = face(&format!("{HOLDER}/Arnold_Schwarzenegger_0001.jpg"));
    door.ok(&["enroll", "--person", "Arnold", "--card", CARD, enrolled.to_str().unwrap()]);
}

fn liveness_detail(row: &Value) -> &str {
    row["detail"].as_str().unwrap_or_default()
}

/// A running door in `mode` with the holder enrolled, and the row of a tap with the holder's photo
/// moved before the camera as a flat picture.
fn tap_the_picture(mode: &str) -> (TestDoor, Value) {
    let mut door = door_in(mode);
    enrol_holder(&door);
    show_burst(&door, &attack_burst(&door));
    door.start();
    let attack = door.tap_and_wait(CARD);
    (door, attack)
}

#[test]
fn a_flat_picture_of_the_holder_is_denied_when_enforced_and_a_head_in_other_poses_is_granted() {
    let (mut door, attack) = tap_the_picture("enforce");
    assert_eq!(
        (attack["decision"].as_str(), attack["reason"].as_str()),
        (Some("denied"), Some("spoof_suspected")),
        "{attack}"
    );
    let detail = liveness_detail(&attack);
    assert!(detail.starts_with("liveness (enforce, ") && detail.contains(" frames): geometry "), "{attack}");
    assert!(detail.contains(" spoof "), "with the check that said so and its score: {attack}");
    assert!(attack["similarity"].as_f64().unwrap() >= 70.0, "the face itself matched the holder: {attack}");

    // The best stand-in for a live person at hand: the holder's real photos, one per frame (a real
    // head in different poses, though not a video).
    let poses: Vec<PathBuf> = (1..=5).map(|n| face(&format!("{HOLDER}/Arnold_Schwarzenegger_{n:04}.jpg"))).collect();
    show_burst(&door, &poses);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let live = door.tap_and_wait(CARD);
    assert_eq!(
        (live["decision"].as_str(), live["reason"].as_str()),
        (Some("granted"), Some("card_and_face")),
        "{live}"
    );
    assert!(liveness_detail(&live).contains("geometry live"), "{live}");
    door.stop();
}

#[test]
fn in_log_mode_the_picture_is_granted_and_its_scores_logged() {
    let (mut door, attack) = tap_the_picture("log");
    assert_eq!(
        (attack["decision"].as_str(), attack["reason"].as_str()),
        (Some("granted"), Some("card_and_face")),
        "{attack}"
    );
    let detail = liveness_detail(&attack);
    assert!(detail.starts_with("liveness (log, ") && detail.contains(" frames): geometry "), "{attack}");
    assert!(detail.contains(" spoof "), "a check took it for a picture, and only logged it: {attack}");
    door.stop();
}
