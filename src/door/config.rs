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
    /// What people call the door on a site of several, e.g. "Garage"; empty: its id.
    pub name: String,
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
    #[serde(
        serialize_with = "time::serde::rfc3339::option::serialize",
        deserialize_with = "date_and_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub card_only_until: Option<OffsetDateTime>,
    /// Still take a photo when a card is refused for its time limits (schedule, validity, clock),
    /// as proof of who tried; otherwise such a card is refused before the camera is asked.
    pub capture_when_closed: bool,
}

/// An RFC 3339 date and time; the error shows how one is written.
fn date_and_time<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let text = String::deserialize(deserializer)?;
    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not a date and time; write it as \"2026-12-24T18:00:00+01:00\" (with the offset)"
        ))
    })
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            id: "front".into(),
            name: String::new(),
            mode: Mode::CardAndFace,
            unlock_time: Duration::from_secs(10),
            debounce: Duration::from_secs(2),
            grant_beep: Duration::from_secs(2),
            deny_beeps: 3,
            deny_beep: Duration::from_millis(150),
            card_only_until: None,
            capture_when_closed: false,
        }
    }
}

impl DoorConfig {
    /// What people call the door: its name, or its id without one.
    pub fn display_name(&self) -> &str {
        match self.name.trim() {
            "" => &self.id,
            name => name,
        }
    }

    /// The state machine's settings; `match_threshold` comes from the engine's section.
    pub fn settings(&self, match_threshold: f32) -> DoorSettings {
        DoorSettings {
            mode: self.mode,
            unlock_time: self.unlock_time,
            debounce: self.debounce,
            match_threshold,
            capture_when_closed: self.capture_when_closed,
            grant_beep: BeepPattern { count: 1, on: self.grant_beep, off: Duration::ZERO },
            deny_beep: BeepPattern { count: self.deny_beeps, on: self.deny_beep, off: self.deny_beep },
        }
    }

    pub fn check(&self, checks: &mut Checks) {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 32
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        checks.check(id_ok, "door.id", format!("{:?} must be 1-32 letters, digits, '-' or '_'", self.id));
        checks.check(self.name.chars().count() <= 100, "door.name", "is too long; keep it under 100 characters");
        checks.duration("door.unlock_time", self.unlock_time, Duration::from_secs(1), Duration::from_secs(300));
        checks.duration("door.debounce", self.debounce, Duration::ZERO, Duration::from_secs(60));
        checks.duration("door.grant_beep", self.grant_beep, Duration::ZERO, Duration::from_secs(10));
        checks.duration("door.deny_beep", self.deny_beep, Duration::from_millis(20), Duration::from_secs(2));
        checks.check(self.deny_beeps <= 10, "door.deny_beeps", format!("{} is too many; use 0 to 10", self.deny_beeps));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_only_until_takes_a_date_and_time_and_explains_a_bad_one() {
        let parsed: DoorConfig = toml::from_str("card_only_until = \"2026-12-24T18:00:00+01:00\"").unwrap();
        assert_eq!(parsed.card_only_until.map(|at| at.unix_timestamp()), Some(1_798_131_600));
        let error = toml::from_str::<DoorConfig>("card_only_until = \"tomorrow\"").unwrap_err().to_string();
        assert!(error.contains("\"tomorrow\" is not a date and time; write it as"), "{error}");
    }
}
