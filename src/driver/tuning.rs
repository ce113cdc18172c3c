//! The door's timings and thresholds that the web app may change while the door runs, and the
//! config sections they live in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capture::CaptureConfig;
use crate::checks::{Checks, Problem};
use crate::door::{DoorConfig, DoorSettings};
use crate::engine::EngineConfig;

/// The door's timings and thresholds, as the web app edits them. Saved changes are kept in the
/// database and override the config file's values until changed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoorTuning {
    #[serde(with = "humantime_serde")]
    pub unlock_time: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    #[serde(with = "humantime_serde")]
    pub grant_beep: Duration,
    pub deny_beeps: u32,
    #[serde(with = "humantime_serde")]
    pub deny_beep: Duration,
    pub capture_frames: u32,
    #[serde(with = "humantime_serde")]
    pub capture_time_limit: Duration,
    pub match_threshold: f32,
    #[serde(with = "humantime_serde")]
    pub engine_timeout: Duration,
}

impl DoorTuning {
    /// Where the web app saves them (the `settings` table).
    pub const SETTING: &str = "door_tuning";
}

/// The sections `[door]`, `[capture]` and `[engine]`, whose timings and thresholds can be tuned.
#[derive(Debug, Clone, PartialEq)]
pub struct Tunable {
    pub door: DoorConfig,
    pub capture: CaptureConfig,
    pub engine: EngineConfig,
}

impl Tunable {
    /// The state machine's settings.
    pub fn door_settings(&self) -> DoorSettings {
        self.door.settings(self.engine.match_threshold)
    }

    /// The timings and thresholds in use.
    pub fn tuning(&self) -> DoorTuning {
        DoorTuning {
            unlock_time: self.door.unlock_time,
            debounce: self.door.debounce,
            grant_beep: self.door.grant_beep,
            deny_beeps: self.door.deny_beeps,
            deny_beep: self.door.deny_beep,
            capture_frames: self.capture.frames,
            capture_time_limit: self.capture.time_limit,
            match_threshold: self.engine.match_threshold,
            engine_timeout: self.engine.timeout,
        }
    }

    /// These sections with `tuning` in place of their timings and thresholds.
    pub fn with_tuning(&self, tuning: &DoorTuning) -> Tunable {
        let mut tuned = self.clone();
        tuned.door.unlock_time = tuning.unlock_time;
        tuned.door.debounce = tuning.debounce;
        tuned.door.grant_beep = tuning.grant_beep;
        tuned.door.deny_beeps = tuning.deny_beeps;
        tuned.door.deny_beep = tuning.deny_beep;
        tuned.capture.frames = tuning.capture_frames;
        tuned.capture.time_limit = tuning.capture_time_limit;
        tuned.engine.match_threshold = tuning.match_threshold;
        tuned.engine.timeout = tuning.engine_timeout;
        tuned
    }

    /// What `tuning` would break (problems these sections have already are not repeated), keyed
    /// like the config file.
    pub fn tuning_problems(&self, tuning: &DoorTuning) -> Vec<Problem> {
        let before = self.problems();
        let mut problems = self.with_tuning(tuning).problems();
        problems.retain(|p| !before.contains(p));
        problems
    }

    fn problems(&self) -> Vec<Problem> {
        let mut checks = Checks::default();
        self.door.check(&mut checks);
        self.capture.check(&mut checks);
        self.engine.check(&mut checks);
        self.engine.check_rekognition(&mut checks);
        checks.into_problems()
    }
}
