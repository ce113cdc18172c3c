//! What the door says: a phrase per event (`[voice]`), rendered ahead of time into WAV clips and
//! played by a thread of its own ([`Voice`]), so that speaking never holds up the relay or the
//! LEDs and a failing speaker is only a warning.
//!
//! Phrases are templates: `{name}` (the granted person's name, in `granted` only) and `{reason}`
//! (in `denied` only: the words configured for the denial's reason, none by default, so that a
//! stranger learns nothing from the door).

mod clips;
mod speaking;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::access::{AccessEvent, Decision, Reason};
use crate::checks::Checks;
use crate::hw::VoiceSpec;
use crate::names::named_enum;
pub use clips::LEADING_SILENCE;
pub use speaking::Voice;

named_enum! {
    /// The events the door has a phrase for.
    pub enum PhraseKey {
        /// After a tap, when the first frame shows no face.
        LookAtCamera = "look_at_camera",
        /// After a tap, with `liveness.challenge = "turn"`: the person is asked for a small head turn.
        TurnHead = "turn_head",
        Granted = "granted",
        Denied = "denied",
        /// A tap while the door is disarmed.
        Disarmed = "disarmed",
        /// Someone rang and the owner was told (visitors).
        VisitorRang = "visitor_rang",
        /// A wrong passcode (visitors).
        PasscodeWrong = "passcode_wrong",
    }
}

/// Something the door says, before its phrase is filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Utterance {
    LookAtCamera,
    TurnHead,
    Granted { name: String },
    Denied { reason: Reason },
    Disarmed,
    VisitorRang,
    PasscodeWrong,
}

impl Utterance {
    /// What the door says of a finished attempt; an interrupted one (the daemon stopping) says nothing.
    pub fn verdict(event: &AccessEvent) -> Option<Utterance> {
        match event.decision {
            Decision::Granted => Some(Utterance::Granted { name: event.person_name.clone().unwrap_or_default() }),
            Decision::Denied if event.reason == Reason::Interrupted => None,
            Decision::Denied if event.reason == Reason::PasscodeWrong => Some(Utterance::PasscodeWrong),
            Decision::Denied => Some(Utterance::Denied { reason: event.reason }),
            Decision::Disarmed => Some(Utterance::Disarmed),
        }
    }

    /// The phrase's key.
    pub fn key(&self) -> PhraseKey {
        match self {
            Utterance::LookAtCamera => PhraseKey::LookAtCamera,
            Utterance::TurnHead => PhraseKey::TurnHead,
            Utterance::Granted { .. } => PhraseKey::Granted,
            Utterance::Denied { .. } => PhraseKey::Denied,
            Utterance::Disarmed => PhraseKey::Disarmed,
            Utterance::VisitorRang => PhraseKey::VisitorRang,
            Utterance::PasscodeWrong => PhraseKey::PasscodeWrong,
        }
    }

    /// An example of the phrase, as the settings page's "say it" button says it.
    pub fn example(key: PhraseKey, name: &str) -> Utterance {
        match key {
            PhraseKey::LookAtCamera => Utterance::LookAtCamera,
            PhraseKey::TurnHead => Utterance::TurnHead,
            PhraseKey::Granted => Utterance::Granted { name: name.to_owned() },
            PhraseKey::Denied => Utterance::Denied { reason: Reason::UnknownCard },
            PhraseKey::Disarmed => Utterance::Disarmed,
            PhraseKey::VisitorRang => Utterance::VisitorRang,
            PhraseKey::PasscodeWrong => Utterance::PasscodeWrong,
        }
    }
}

/// `[voice.phrases]`: what is said on each event; an empty phrase says nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Phrases {
    pub look_at_camera: String,
    pub turn_head: String,
    pub granted: String,
    pub denied: String,
    pub disarmed: String,
    pub visitor_rang: String,
    pub passcode_wrong: String,
    /// The words `{reason}` stands for in `denied`, by the denial's reason (e.g.
    /// `unknown_card = "This card is not known"`); a reason not listed is left unsaid.
    pub reasons: BTreeMap<String, String>,
}

impl Default for Phrases {
    fn default() -> Self {
        Self {
            look_at_camera: "Please look at the camera".into(),
            turn_head: "Please turn your head a little".into(),
            granted: "Welcome, {name}".into(),
            denied: "Access denied. {reason}".into(),
            disarmed: "The door is disarmed".into(),
            visitor_rang: "The owner has been told".into(),
            passcode_wrong: "That code is not right".into(),
            reasons: BTreeMap::new(),
        }
    }
}

impl Phrases {
    pub fn get(&self, key: PhraseKey) -> &str {
        match key {
            PhraseKey::LookAtCamera => &self.look_at_camera,
            PhraseKey::TurnHead => &self.turn_head,
            PhraseKey::Granted => &self.granted,
            PhraseKey::Denied => &self.denied,
            PhraseKey::Disarmed => &self.disarmed,
            PhraseKey::VisitorRang => &self.visitor_rang,
            PhraseKey::PasscodeWrong => &self.passcode_wrong,
        }
    }

    pub fn get_mut(&mut self, key: PhraseKey) -> &mut String {
        match key {
            PhraseKey::LookAtCamera => &mut self.look_at_camera,
            PhraseKey::TurnHead => &mut self.turn_head,
            PhraseKey::Granted => &mut self.granted,
            PhraseKey::Denied => &mut self.denied,
            PhraseKey::Disarmed => &mut self.disarmed,
            PhraseKey::VisitorRang => &mut self.visitor_rang,
            PhraseKey::PasscodeWrong => &mut self.passcode_wrong,
        }
    }

    /// The placeholders a phrase may hold.
    fn placeholders(key: PhraseKey) -> &'static [&'static str] {
        match key {
            PhraseKey::Granted => &["name"],
            PhraseKey::Denied => &["reason"],
            _ => &[],
        }
    }
}

/// The longest phrase, in characters: a door speaks briefly.
const MAX_PHRASE: usize = 200;

/// `[voice]`: what the door says, in which voice, how loud, and when it keeps quiet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceConfig {
    /// An espeak-ng voice, as `espeak-ng --voices` lists them: "en", "en-gb", "de", "fr".
    pub language: String,
    /// An espeak-ng variant (`espeak-ng --voices=variant`), e.g. "f3" or "m1"; empty: the voice's own.
    pub variant: String,
    /// Words per minute, 80 to 450.
    pub speed: u32,
    /// 0 to 99; 50 is the voice's own.
    pub pitch: u32,
    /// Percent of the rendered level, 0 to 100.
    pub volume: u8,
    /// When the door only beeps, in local time, e.g. "22:00-07:00"; empty: never.
    pub quiet_hours: String,
    pub phrases: Phrases,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            language: "en".into(),
            variant: String::new(),
            speed: 160,
            pitch: 50,
            volume: 100,
            quiet_hours: String::new(),
            phrases: Phrases::default(),
        }
    }
}

/// The characters of a voice or variant name.
fn is_voice_name(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
}

impl VoiceConfig {
    /// Where the web app saves its changes (the `settings` table).
    pub const SETTING: &str = "voice";

    pub fn spec(&self) -> VoiceSpec {
        VoiceSpec {
            language: self.language.trim().to_owned(),
            variant: self.variant.trim().to_owned(),
            speed: self.speed,
            pitch: self.pitch,
        }
    }

    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            !self.language.trim().is_empty() && is_voice_name(self.language.trim()),
            "voice.language",
            format!(
                "{:?} is not a voice name; use one from `espeak-ng --voices`, e.g. \"en\", \"en-gb\", \"de\"",
                self.language
            ),
        );
        checks.check(
            is_voice_name(self.variant.trim()),
            "voice.variant",
            format!(
                "{:?} is not a variant name; use one from `espeak-ng --voices=variant`, e.g. \"f3\", or \"\"",
                self.variant
            ),
        );
        checks.check(
            (80..=450).contains(&self.speed),
            "voice.speed",
            format!("{} is out of range; use 80 to 450 words per minute (160 is calm)", self.speed),
        );
        checks.check(self.pitch <= 99, "voice.pitch", format!("{} is out of range; use 0 to 99", self.pitch));
        checks.check(
            self.volume <= 100,
            "voice.volume",
            format!("{} is out of range; use 0 to 100 (percent)", self.volume),
        );
        if let Err(why) = QuietHours::parse(&self.quiet_hours) {
            checks.check(false, "voice.quiet_hours", why);
        }
        for key in PhraseKey::ALL {
            let key_name = format!("voice.phrases.{key}");
            if let Err(why) = check_phrase(self.phrases.get(*key), Phrases::placeholders(*key)) {
                checks.check(false, &key_name, why);
            }
        }
        for (reason, words) in &self.phrases.reasons {
            let key = format!("voice.phrases.reasons.{reason}");
            match reason.parse::<Reason>() {
                Ok(parsed) if parsed.denies() => {
                    if let Err(why) = check_phrase(words, &[]) {
                        checks.check(false, &key, why);
                    }
                }
                Ok(_) => checks.check(false, &key, format!("{reason} is not a reason for a denial")),
                Err(why) => checks.check(false, &key, why),
            }
        }
    }

    /// The words said for `utterance`, or `None` when its phrase is empty.
    pub fn text(&self, utterance: &Utterance) -> Option<String> {
        let template = self.phrases.get(utterance.key());
        let filled = match utterance {
            Utterance::Granted { name } => template.replace("{name}", name),
            Utterance::Denied { reason } => {
                template.replace("{reason}", self.phrases.reasons.get(reason.as_str()).map_or("", String::as_str))
            }
            _ => template.to_owned(),
        };
        let tidy = tidy(&filled);
        (!tidy.is_empty()).then_some(tidy)
    }

    /// Every text the door may say to these people: what is rendered ahead of time.
    pub fn every_text<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut utterances = vec![
            Utterance::LookAtCamera,
            Utterance::TurnHead,
            Utterance::Disarmed,
            Utterance::VisitorRang,
            Utterance::PasscodeWrong,
        ];
        utterances.extend(Reason::ALL.iter().filter(|r| r.denies()).map(|&reason| Utterance::Denied { reason }));
        utterances.extend(names.into_iter().map(|name| Utterance::Granted { name: name.clone() }));
        let mut texts: Vec<String> = Vec::new();
        for text in utterances.iter().filter_map(|u| self.text(u)) {
            if !texts.contains(&text) {
                texts.push(text);
            }
        }
        texts
    }

    pub fn quiet_hours(&self) -> Option<QuietHours> {
        QuietHours::parse(&self.quiet_hours).ok().flatten()
    }
}

/// A phrase must be short and hold only its own placeholders.
fn check_phrase(phrase: &str, allowed: &[&str]) -> Result<(), String> {
    if phrase.chars().count() > MAX_PHRASE {
        return Err(format!("is {} characters long; keep a phrase under {MAX_PHRASE}", phrase.chars().count()));
    }
    let mut rest = phrase;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err("has a { without its }".into());
        };
        let name = &after[..end];
        if !allowed.contains(&name) {
            let may = match allowed {
                [] => "this phrase takes no placeholder".to_owned(),
                _ => format!("use {}", allowed.iter().map(|a| format!("{{{a}}}")).collect::<Vec<_>>().join(" or ")),
            };
            return Err(format!("{{{name}}} is not a placeholder here; {may}"));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// Spaces collapsed, and no dangling comma where a placeholder was left empty.
fn tidy(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches([',', ';', ':', ' ']).to_owned()
}

/// A span of the day in local time, from `from` up to `until` (minutes since midnight),
/// across midnight when `until` comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: u16,
    pub until: u16,
}

impl QuietHours {
    /// "22:00-07:00"; empty is `None` (never quiet).
    pub fn parse(text: &str) -> Result<Option<QuietHours>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || format!("{text:?} is not a span of the day; use e.g. \"22:00-07:00\", or \"\" for never");
        let (from, until) = text.split_once('-').ok_or_else(bad)?;
        let minute = |part: &str| -> Option<u16> {
            let (h, m) = part.trim().split_once(':')?;
            if h.is_empty() || h.len() > 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (from, until) = (minute(from).ok_or_else(bad)?, minute(until).ok_or_else(bad)?);
        if from == until {
            return Err(format!("{text:?} begins when it ends; use two different times"));
        }
        Ok(Some(QuietHours { from, until }))
    }

    pub fn contains(&self, minute: u16) -> bool {
        if self.from < self.until {
            (self.from..self.until).contains(&minute)
        } else {
            minute >= self.from || minute < self.until
        }
    }

    /// Whether it is quiet now, by the machine's local time (its time zone, as `date` shows it).
    pub fn now(&self) -> bool {
        local_minute_of_day().is_some_and(|minute| self.contains(minute))
    }
}

/// Minutes since local midnight.
pub fn local_minute_of_day() -> Option<u16> {
    // SAFETY: time(NULL) only returns the time; localtime_r only writes the `tm` it is given,
    // and both live on this stack (localtime_r, unlike localtime, shares nothing between threads).
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let filled = unsafe { libc::localtime_r(&now, &mut tm) };
    if filled.is_null() {
        return None;
    }
    u16::try_from(tm.tm_hour * 60 + tm.tm_min).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &VoiceConfig) -> Vec<String> {
        let mut checks = Checks::default();
        config.check(&mut checks);
        checks.into_problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn phrases_are_filled_in_and_tidied() {
        let mut config = VoiceConfig::default();
        let granted = Utterance::Granted { name: "Alice".into() };
        assert_eq!(config.text(&granted).as_deref(), Some("Welcome, Alice"));
        assert_eq!(config.text(&Utterance::Granted { name: String::new() }).as_deref(), Some("Welcome"));
        let unknown = Utterance::Denied { reason: Reason::UnknownCard };
        assert_eq!(config.text(&unknown).as_deref(), Some("Access denied."), "no reason is given unless configured");
        config.phrases.reasons.insert("unknown_card".into(), "This card is not known".into());
        assert_eq!(config.text(&unknown).as_deref(), Some("Access denied. This card is not known"));
        let wrong = Utterance::Denied { reason: Reason::WrongPerson };
        assert_eq!(config.text(&wrong).as_deref(), Some("Access denied."));
        config.phrases.disarmed = "  ".into();
        assert_eq!(config.text(&Utterance::Disarmed), None, "an empty phrase says nothing");
    }

    #[test]
    fn every_text_is_listed_once() {
        let config = VoiceConfig::default();
        let names = ["Alice".to_owned(), "Bob".to_owned()];
        let texts = config.every_text(&names);
        assert_eq!(
            texts,
            [
                "Please look at the camera",
                "Please turn your head a little",
                "The door is disarmed",
                "The owner has been told",
                "That code is not right",
                "Access denied.",
                "Welcome, Alice",
                "Welcome, Bob"
            ]
        );
    }

    #[test]
    fn verdicts_say_what_the_attempt_ended_in() {
        let event = |decision, reason, name: Option<&str>| AccessEvent {
            decision,
            reason,
            person_name: name.map(str::to_owned),
            ..crate::notify::test_event("front")
        };
        let granted = event(Decision::Granted, Reason::CardAndFace, Some("Alice"));
        assert_eq!(Utterance::verdict(&granted), Some(Utterance::Granted { name: "Alice".into() }));
        let denied = event(Decision::Denied, Reason::WrongPerson, Some("Alice"));
        assert_eq!(Utterance::verdict(&denied), Some(Utterance::Denied { reason: Reason::WrongPerson }));
        assert_eq!(Utterance::verdict(&event(Decision::Denied, Reason::Interrupted, None)), None);
        assert_eq!(Utterance::verdict(&event(Decision::Disarmed, Reason::Disarmed, None)), Some(Utterance::Disarmed));
    }

    #[test]
    fn placeholders_are_only_where_they_reveal_nothing() {
        let mut config = VoiceConfig::default();
        config.phrases.denied = "Sorry {name}".into();
        config.phrases.look_at_camera = "Look {here".into();
        config.phrases.reasons.insert("card_and_face".into(), "Fine".into());
        config.phrases.reasons.insert("no_such".into(), "?".into());
        config.phrases.granted = "x".repeat(201);
        assert_eq!(
            problems(&config),
            [
                "voice.phrases.look_at_camera: has a { without its }",
                "voice.phrases.granted: is 201 characters long; keep a phrase under 200",
                "voice.phrases.denied: {name} is not a placeholder here; use {reason}",
                "voice.phrases.reasons.card_and_face: card_and_face is not a reason for a denial",
                "voice.phrases.reasons.no_such: \"no_such\" is not one of: card_and_face, card_only, unknown_card, no_face, \
                 face_not_recognised, wrong_person, camera_error, engine_error, lookup_error, interrupted, disarmed, \
                 outside_schedule, not_yet_valid, expired, clock_not_synced, pass_ok, pass_expired, pass_used, \
                 pass_forged, passcode_ok, passcode_wrong, passcode_locked, visitor_opened, spoof_suspected, \
                 not_allowed_here, remote_opened",
            ]
        );
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let config = VoiceConfig {
            language: "en gb".into(),
            variant: "f3!".into(),
            speed: 20,
            pitch: 100,
            volume: 101,
            quiet_hours: "late".into(),
            ..VoiceConfig::default()
        };
        let keys: Vec<String> = problems(&config).iter().map(|p| p.split(':').next().unwrap().to_owned()).collect();
        assert_eq!(
            keys,
            ["voice.language", "voice.variant", "voice.speed", "voice.pitch", "voice.volume", "voice.quiet_hours"]
        );
        assert_eq!(problems(&VoiceConfig::default()), Vec::<String>::new());
    }

    #[test]
    fn quiet_hours_may_span_midnight() {
        let night = QuietHours::parse("22:00-07:00").unwrap().unwrap();
        assert!(night.contains(23 * 60) && night.contains(0) && night.contains(6 * 60 + 59));
        assert!(!night.contains(7 * 60) && !night.contains(12 * 60) && !night.contains(21 * 60 + 59));
        let lunch = QuietHours::parse(" 12:00 - 13:30 ").unwrap().unwrap();
        assert!(lunch.contains(12 * 60 + 45) && !lunch.contains(13 * 60 + 30));
        assert_eq!(QuietHours::parse("").unwrap(), None);
        assert!(QuietHours::parse("22:00-22:00").unwrap_err().contains("begins when it ends"));
        assert!(QuietHours::parse("25:00-07:00").is_err());
        assert!(QuietHours::parse("22-07").is_err());
        assert!(local_minute_of_day().is_some_and(|minute| minute < 24 * 60));
    }
}
