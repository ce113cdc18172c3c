//! The door's voice with the real programs: Debian's `espeak-ng` renders every phrase (checked
//! sample by sample), `aplay` plays on ALSA's `null` device, a missing device or program is a
//! clear warning; and the real daemon says its phrases (simulated speaker) and keeps deciding
//! taps with a speaker that fails. `tests/run.sh` installs espeak-ng and alsa-utils.

use std::time::{Duration, Instant};

use facereko::hw::espeak::{EspeakSettings, EspeakSpeaker};
use facereko::hw::{Pcm, Speaker};
use facereko::voice::{LEADING_SILENCE, Utterance, Voice, VoiceConfig};
use serde_json::Value;

use crate::common::TestDoor;

const ALICE_CARD: &str = "04A1B2C3";
const STRANGER_CARD: &str = "DEADBEEF";
/// RMS of speech at espeak-ng's own level is in the thousands; silence is 0.
const RMS_FLOOR: f64 = 500.0;

/// The `espeak` speaker on `device`, never the neural voice (whatever this machine has).
fn espeak_on(device: &str) -> EspeakSpeaker {
    for program in ["espeak-ng", "aplay"] {
        assert!(
            facereko::hw::espeak::find_program(program).is_some(),
            "{program} is missing: `sudo apt install espeak-ng alsa-utils` (tests/run.sh does)"
        );
    }
    EspeakSpeaker::new(EspeakSettings {
        device: device.into(),
        neural_voice: "/nonexistent/piper".into(),
        ..EspeakSettings::default()
    })
}

#[test]
fn espeak_ng_renders_every_phrase_as_sound_of_a_plausible_length() {
    let mut config = VoiceConfig::default();
    config.phrases.reasons.insert("unknown_card".into(), "This card is not known".into());
    let mut speaker = espeak_on("null");
    assert_eq!(speaker.renderer(), "espeak-ng");
    let texts = config.every_text(&["Alice".to_owned(), "Bartholomew".to_owned()]);
    assert!(texts.contains(&"Access denied. This card is not known".to_owned()), "{texts:?}");
    for text in &texts {
        let started = Instant::now();
        let pcm = speaker.render(text, &config.spec()).unwrap();
        let took = started.elapsed();
        let seconds = pcm.duration().as_secs_f64();
        assert!((0.4..=4.0).contains(&seconds), "{text:?} lasts {seconds:.2} s");
        assert!(pcm.rms() > RMS_FLOOR, "{text:?} is nearly silent: RMS {:.0}", pcm.rms());
        assert!(took < Duration::from_secs(5), "{text:?} took {took:?} to render");
    }
    // Louder and softer, and the other voice settings, are heard.
    let full = speaker.render("Welcome, Alice", &config.spec()).unwrap();
    let half = full.clone().with_volume(50);
    assert!((half.rms() * 2.0 - full.rms()).abs() < full.rms() * 0.01);
    let slow = VoiceConfig { speed: 100, ..config.clone() };
    assert!(speaker.render("Welcome, Alice", &slow.spec()).unwrap().duration() > full.duration());
    let german = VoiceConfig { language: "de".into(), variant: "f3".into(), ..config.clone() };
    assert!(speaker.render("Willkommen", &german.spec()).unwrap().rms() > RMS_FLOOR);
}

#[test]
fn a_language_espeak_ng_lacks_is_named_with_where_to_look() {
    let mut speaker = espeak_on("null");
    let config = VoiceConfig { language: "xx-nowhere".into(), ..VoiceConfig::default() };
    let error = speaker.render("hello", &config.spec()).unwrap_err().to_string();
    assert!(error.contains("voice does not exist"), "{error}");
    assert!(error.contains("`espeak-ng --voices`"), "{error}");
}

#[test]
fn aplay_plays_the_rendered_clips_on_the_null_device_and_a_new_phrase_cuts_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let mut speaker = espeak_on("null");
    speaker.probe().unwrap();
    let config = VoiceConfig::default();
    let clip = dir.path().join("welcome.wav");
    let pcm = speaker.render("Welcome, Alice", &config.spec()).unwrap().with_leading_silence(LEADING_SILENCE);
    std::fs::write(&clip, pcm.to_wav()).unwrap();
    let read = Pcm::parse(&std::fs::read(&clip).unwrap()).unwrap();
    let silent = read.samples.iter().take_while(|&&s| s == 0).count();
    assert!(silent as f64 >= 0.25 * f64::from(read.rate) * 0.99, "{silent} silent samples first");

    speaker.play(&clip, "Welcome, Alice").unwrap();
    speaker.play(&clip, "Welcome, Alice").unwrap();
    let started = Instant::now();
    let outcome = loop {
        if let Some(outcome) = speaker.finished() {
            break outcome;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "aplay never finished");
        std::thread::sleep(Duration::from_millis(10));
    };
    outcome.unwrap();
    assert!(speaker.finished().is_none(), "nothing plays any more");
}

#[test]
fn a_missing_device_and_a_missing_program_are_clear_warnings() {
    let missing_device = EspeakSettings { device: "nosuchdevice".into(), ..EspeakSettings::default() };
    let problems: Vec<String> = missing_device.probe().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("hardware.espeak.device: aplay cannot play on \"nosuchdevice\":"), "{problems:?}");
    assert!(problems[0].contains("`aplay -L` lists the devices"), "{problems:?}");

    let missing_program =
        EspeakSettings { program: "/nonexistent/espeak-ng".into(), device: "null".into(), ..EspeakSettings::default() };
    let problems: Vec<String> = missing_program.probe().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        ["hardware.espeak.program: /nonexistent/espeak-ng not found: install it with `sudo apt install espeak-ng`"]
    );

    // The voice says so where the dashboard reads it, and is fine once the device plays.
    let dir = tempfile::tempdir().unwrap();
    let voice = Voice::start(Box::new(espeak_on("nosuchdevice")), VoiceConfig::default(), dir.path().into());
    voice.say(Utterance::Disarmed);
    let started = Instant::now();
    while voice.trouble().now().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "no warning for the missing device");
        std::thread::sleep(Duration::from_millis(20));
    }
    let warning = voice.trouble().now().unwrap();
    assert!(warning.contains("cannot play on \"nosuchdevice\""), "{warning}");
}

/// What the simulated speaker said, in order, from the outputs log.
fn said(door: &TestDoor) -> Vec<String> {
    let log = std::fs::read_to_string(door.path("outputs.jsonl")).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["said"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_daemon_says_its_verdicts_and_a_failing_speaker_only_warns() {
    let mut door = TestDoor::new(&[("voice.phrases.reasons.unknown_card", "\"This card is not known\"")]);
    let alice = crate::common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door.start();
    assert_eq!(door.tap_and_wait(ALICE_CARD)["decision"], "granted");
    door.wait_for("the greeting", || said(&door).len() == 1);
    assert_eq!(door.tap_and_wait(STRANGER_CARD)["reason"], "unknown_card");
    door.wait_for("the denial", || said(&door).len() == 2);
    assert_eq!(said(&door), ["Welcome, Alice", "Access denied. This card is not known"]);
    let clips = std::fs::read_dir(door.path("voice")).unwrap().count();
    assert!(clips >= 6, "every phrase is rendered at start: {clips} clips");
    door.stop();

    // The real speaker on a device that is not there: a warning, and the door decides as before.
    let mut broken =
        TestDoor::new(&[("hardware.speaker", "\"espeak\""), ("hardware.espeak.device", "\"nosuchdevice\"")]);
    let check = broken.ok(&["config", "check"]);
    assert!(
        check.contains("warning: hardware.espeak.device: aplay cannot play on \"nosuchdevice\""),
        "config check warns: {check}"
    );
    assert!(check.contains("configuration OK"), "{check}");
    broken.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    broken.show_for_card(ALICE_CARD, &alice);
    broken.start();
    broken.wait_for("the speaker's warning in the status", || {
        let status: Value = serde_json::from_str(&broken.ok(&["status", "--json"])).unwrap();
        status["speaker_error"].as_str().is_some_and(|e| e.contains("nosuchdevice"))
    });
    assert_eq!(broken.tap_and_wait(ALICE_CARD)["decision"], "granted", "never a denial");
    assert!(broken.ok(&["status"]).contains("the speaker is failing: speaker: aplay cannot play on"));
    broken.stop();
}
