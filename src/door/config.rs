//! `[door]`: which door this is, which credentials open it and its timings.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DoorSettings, Mode};
use crate::checks::Checks;
use crate::hw::BeepPattern;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DoorConfig {
    pub id: String,
    pub mode: Mode,
    #[serde(with = "humantime_serde")]
    pub unlock_time: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    #[serde(with = "humantime_serde")]
    pub grant_beep: Duration,
    pub deny_beeps: u32,
    #[serde(with = "humantime_serde")]
    pub deny_beep: Duration,
    /// With `mode = "card"`: when card-only ends by itself and the door asks for faces again
    /// (RFC 3339, e.g. "2026-12-24T18:00:00+01:00"); unset: card-only until the config changes.
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub card_only_until: Option<OffsetDateTime>,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            id: "front".into(),
            mode: Mode::CardAndFace,
            unlock_time: Duration::from_secs(10),
            debounce: Duration::from_secs(2),
            grant_beep: Duration::from_secs(2),
            deny_beeps: 3,
            deny_beep: Duration::from_millis(150),
            card_only_until: None,
        }
    }
}

impl DoorConfig {
    /// The state machine's settings; `match_threshold` comes from the engine's section.
    pub fn settings(&self, match_threshold: f32) -> DoorSettings {
        DoorSettings {
            mode: self.mode,
            unlock_time: self.unlock_time,
            debounce: self.debounce,
            match_threshold,
            grant_beep: BeepPattern { count: 1, on: self.grant_beep, off: Duration::ZERO },
            deny_beep: BeepPattern { count: self.deny_beeps, on: self.deny_beep, off: self.deny_beep },
        }
    }

    pub fn check(&self, checks: &mut Checks) {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 32
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        checks.check(id_ok, "door.id", format!("{:?} must be 1-32 letters, digits, '-' or '_'", self.id));
        checks.duration("door.unlock_time", self.unlock_time, Duration::from_secs(1), Duration::from_secs(300));
        checks.duration("door.debounce", self.debounce, Duration::ZERO, Duration::from_secs(60));
        checks.duration("door.grant_beep", self.grant_beep, Duration::ZERO, Duration::from_secs(10));
        checks.duration("door.deny_beep", self.deny_beep, Duration::from_millis(20), Duration::from_secs(2));
        checks.check(self.deny_beeps <= 10, "door.deny_beeps", format!("{} is too many; use 0 to 10", self.deny_beeps));
    }
}
