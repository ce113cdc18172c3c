//! Notifications of access attempts: over MQTT to AWS IoT Core (mutual TLS), where a rule can
//! turn them into an SNS e-mail, or to a local broker such as Mosquitto or Home Assistant's; and
//! as e-mail ([`email`]) and text messages ([`sms`]) to the people the [`rules`] name.
//!
//! Every attempt is written to the outbox and its messages together with its log row; the
//! publisher in [`mqtt`] sends the outbox oldest first and marks a row delivered only on the
//! broker's PUBACK, and the [`delivery`] task of each message channel does the same with the
//! server's answer, so a server that is away, a dead network or a killed daemon loses nothing.
//! A notice can be sent more than once; receivers tell repeats apart by `event_id` (e-mails by
//! their Message-ID).

pub mod delivery;
pub mod email;
pub mod faults;
pub mod home_assistant;
pub mod mqtt;
pub mod rules;
pub mod sms;
pub mod sns;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::access::{AccessEvent, Decision, Reason};
use crate::card::CardUid;
use crate::checks::{Checks, Problem, Secret};
use crate::hw::Lock;

/// How much of a card's UID notifications show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardUidShown {
    /// The whole UID.
    Full,
    /// Only its last four hex digits, e.g. `****B2C3`.
    Masked,
    /// Nothing.
    Hidden,
}

/// The `[mqtt]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttConfig {
    /// `mqtts://host:8883` (TLS) or `mqtt://host:1883`; empty turns notifications off.
    pub url: String,
    /// Empty: `facereko-<door id>`. AWS IoT Core policies usually name the allowed client id.
    pub client_id: String,
    /// The broker's CA (`AmazonRootCA1.pem` for IoT Core); without it the system's CAs are used.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and private key, for mutual TLS (IoT Core requires them).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Topics are `<prefix>/success` and `<prefix>/failure`.
    pub topic_prefix: String,
    pub card_uid: CardUidShown,
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Most outbox rows kept; delivered rows are pruned first, oldest first.
    pub outbox_limit: u64,
    /// Publish Home Assistant discovery messages (retained) under `discovery_prefix`.
    pub home_assistant: bool,
    pub discovery_prefix: String,
    /// Keep the door's state retained on `<topic_prefix>/<door>/state`, `offline` by last will:
    /// what a site of several doors watches. Off by default, so that a broker policy written for
    /// the notifications alone (AWS IoT Core's) keeps letting the door in.
    pub door_state: bool,
    /// Take commands (arm, disarm, open) from the site on `<topic_prefix>/<door>/command`,
    /// acknowledged on `<topic_prefix>/<door>/ack`, and show every door's state in the web app's
    /// site view, which sends them. Needs `door_state`; the broker's ACL says who may send.
    pub commands: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            client_id: String::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            topic_prefix: "FaceReko".into(),
            card_uid: CardUidShown::Masked,
            keep_alive: Duration::from_secs(30),
            outbox_limit: 10_000,
            home_assistant: false,
            discovery_prefix: "homeassistant".into(),
            door_state: false,
            commands: false,
        }
    }
}

impl MqttConfig {
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            !self.topic_prefix.is_empty()
                && !self.topic_prefix.contains(['#', '+'])
                && !self.topic_prefix.ends_with('/'),
            "mqtt.topic_prefix",
            format!("{:?} cannot name topics; use letters and / without # or + (e.g. \"FaceReko\")", self.topic_prefix),
        );
        checks.check(
            self.outbox_limit >= 100,
            "mqtt.outbox_limit",
            format!("{} is too small to ride out an outage; use at least 100 (default 10000)", self.outbox_limit),
        );
        checks.duration("mqtt.keep_alive", self.keep_alive, Duration::from_secs(5), Duration::from_secs(1200));
        checks.check(
            !self.commands || self.door_state,
            "mqtt.commands",
            "commands need every door's state to tell an offline door: set mqtt.door_state = true as well",
        );
    }

    /// What only connecting needs: the URL, the certificate files and the credentials, read and
    /// checked as the publisher will use them.
    pub fn check_connection(&self, door: &str, checks: &mut Checks) {
        if self.enabled()
            && let Err(e) = mqtt::options(self, door)
        {
            checks.push(Problem::new(e.config_key(), e.to_string()));
        }
    }

    pub fn client_id_for(&self, door: &str) -> String {
        if self.client_id.is_empty() { format!("facereko-{}", slug(door)) } else { self.client_id.clone() }
    }

    /// The client id of the door's second connection, for the site's commands and states.
    pub fn site_client_id_for(&self, door: &str) -> String {
        format!("{}-site", self.client_id_for(door))
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("{}/{kind}", self.topic_prefix)
    }

    /// One of this door's own topics: `<topic_prefix>/<door>/<leaf>`.
    pub fn door_topic(&self, door: &str, leaf: &str) -> String {
        door_topic(&self.topic_prefix, door, leaf)
    }

    /// Where the broker says [`OFFLINE`] when the door goes away (its last will): the door's state
    /// topic, or without it Home Assistant's availability topic; `None` when neither is on.
    pub fn offline_topic(&self, door: &str) -> Option<String> {
        match (self.door_state, self.home_assistant) {
            (true, _) => Some(self.door_topic(door, "state")),
            (false, true) => Some(self.door_topic(door, "availability")),
            (false, false) => None,
        }
    }
}

/// `<prefix>/<door>/<leaf>`, the door reduced to its [`slug`].
pub fn door_topic(prefix: &str, door: &str, leaf: &str) -> String {
    format!("{prefix}/{}/{leaf}", slug(door))
}

/// What the broker puts on a door's state topic (retained) when the door goes away: its last will.
pub const OFFLINE: &str = "offline";

/// A part of the door (the card reader, the camera): its backend and, while it fails, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    pub backend: String,
    pub error: Option<String>,
}

/// What a running door says of itself, retained on `<topic_prefix>/<door>/state` for a site's
/// other doors and dashboards; the broker replaces it with [`OFFLINE`] when the door goes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorState {
    pub armed: bool,
    pub lock: Lock,
    pub reader: PartState,
    pub camera: PartState,
    pub engine: String,
}

impl DoorState {
    /// The state topic's JSON while the door runs, with its notifications not yet delivered
    /// (`null` when the database could not say).
    pub fn online_payload(&self, backlog: Option<u64>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Online<'a> {
            state: &'static str,
            #[serde(flatten)]
            door: &'a DoorState,
            backlog: Option<u64>,
        }
        serde_json::to_vec(&Online { state: "online", door: self, backlog }).expect("door states serialise")
    }
}

/// `door` reduced to letters, digits, `-` and `_`, for client ids, topics and entity ids.
pub fn slug(door: &str) -> String {
    let slug: String =
        door.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if slug.is_empty() { "door".into() } else { slug }
}

/// The topic suffix for an attempt: `success` when the door opened, `failure` otherwise.
pub fn kind_of(decision: Decision) -> &'static str {
    if decision == Decision::Granted { "success" } else { "failure" }
}

/// The JSON published on `<topic_prefix>/visitor` when a visitor rings: who, where, and the
/// signed link that decides the visit. Not kept in the outbox: the link is only good for minutes,
/// and the owner's e-mail and text messages carry it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitorNotice {
    pub visit: i64,
    /// RFC 3339, UTC.
    pub time: String,
    pub door: String,
    pub name: String,
    pub message: Option<String>,
    /// The door camera's photo, under the photos folder.
    pub photo: Option<String>,
    pub link: Option<String>,
    /// How the visitor rang: `visit_page`, `bell` or `unknown_card`.
    #[serde(default)]
    pub kind: String,
    /// The known visitor the door recognised, as the owner named them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_visitor: Option<String>,
    /// The known visitor is marked auto-pass and was sent a passcode: nothing to decide.
    #[serde(default)]
    pub passcode_sent: bool,
}

/// The topic suffix of [`VisitorNotice`]s.
pub const VISITOR_TOPIC: &str = "visitor";

/// The JSON published for an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event_id: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub door: String,
    pub decision: Decision,
    pub reason: Reason,
    pub person: Option<String>,
    pub card_uid: Option<String>,
    pub similarity: Option<f32>,
    pub confidence: Option<f32>,
    pub engine: Option<String>,
    /// The photo of the attempt, as the access log names it.
    pub photo: Option<String>,
    /// One sentence for people reading the raw payload in an e-mail.
    pub message: String,
    /// Set on messages sent by `facereko notify test`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

impl Notification {
    pub fn new(event: &AccessEvent, shown: CardUidShown) -> Self {
        let time = event.at.format(&Rfc3339).unwrap_or_else(|_| event.at.unix_timestamp().to_string());
        let card_uid = event.card_uid.as_ref().and_then(|uid| shown_uid(uid, shown));
        let message = sentence(event, card_uid.as_deref(), &time);
        Self {
            event_id: event.event_id.clone(),
            time,
            door: event.door.clone(),
            decision: event.decision,
            reason: event.reason,
            person: event.person_name.clone(),
            card_uid,
            similarity: event.similarity,
            confidence: event.confidence,
            engine: event.engine.clone(),
            photo: event.photo.clone(),
            message,
            test: false,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a notification serialises")
    }
}

fn shown_uid(uid: &CardUid, shown: CardUidShown) -> Option<String> {
    match shown {
        CardUidShown::Full => Some(uid.as_str().to_owned()),
        CardUidShown::Masked => Some(uid.masked()),
        CardUidShown::Hidden => None,
    }
}

/// The attempt `facereko notify test` sends: a grant by nobody in particular, with a fresh event
/// id, on every channel.
pub fn test_event(door: &str) -> AccessEvent {
    AccessEvent {
        event_id: format!("test-{}", uuid::Uuid::new_v4()),
        at: time::OffsetDateTime::now_utc(),
        door: door.to_owned(),
        card_uid: None,
        person_id: None,
        person_name: None,
        decision: Decision::Granted,
        reason: Reason::CardAndFace,
        similarity: None,
        confidence: None,
        engine: None,
        photo: None,
        timings: crate::access::StageTimings::default(),
        detail: Some("a test message from `facereko notify test`".into()),
    }
}

/// Why an attempt ended as it did, in words.
pub fn reason_in_words(reason: Reason) -> &'static str {
    match reason {
        Reason::CardAndFace => "card and face matched",
        Reason::CardOnly => "card accepted (card-only mode)",
        Reason::UnknownCard => "the card is not enrolled",
        Reason::NoFace => "no face was seen",
        Reason::FaceNotRecognised => "the face was not recognised",
        Reason::WrongPerson => "the face is not the card holder's",
        Reason::CameraError => "the camera failed",
        Reason::EngineError => "face recognition failed",
        Reason::LookupError => "the card could not be looked up",
        Reason::Interrupted => "FaceReko stopped during the attempt",
        Reason::Disarmed => "the system is disarmed",
        Reason::OutsideSchedule => "outside the card's schedule",
        Reason::NotYetValid => "the card is not valid yet",
        Reason::Expired => "the card has expired",
        Reason::ClockNotSynced => "the clock is not synchronised, so time limits cannot be checked",
        Reason::PassOk => "a visitor's QR pass",
        Reason::PassExpired => "the visitor's pass has expired",
        Reason::PassUsed => "the visitor's pass was already used",
        Reason::PassForged => "the QR pass was not made by this door",
        Reason::PasscodeOk => "a visitor's passcode",
        Reason::PasscodeWrong => "a wrong passcode was typed",
        Reason::PasscodeLocked => "the passcode is locked after too many wrong tries",
        Reason::VisitorOpened => "the owner opened for a visitor",
        Reason::SpoofSuspected => "the face looked like a photo or a screen, not a person",
        Reason::NotAllowedHere => "the card holder may not use this door",
        Reason::RemoteOpened => "an admin opened it from the site view",
    }
}

fn sentence(event: &AccessEvent, card: Option<&str>, time: &str) -> String {
    let door = &event.door;
    let mut details = Vec::new();
    if let Some(card) = card {
        details.push(format!("card {card}"));
    }
    if let Some(similarity) = event.similarity {
        details.push(format!("face similarity {similarity:.1}%"));
    }
    let details = if details.is_empty() { String::new() } else { format!(" ({})", details.join(", ")) };
    let who = event.person_name.as_deref();
    match (event.decision, who) {
        (Decision::Granted, Some(who)) => format!("Access granted to {who} at door {door} at {time}{details}."),
        (Decision::Granted, None) => format!("Access granted at door {door} at {time}{details}."),
        (decision, who) => {
            let card_of = who.map(|who| format!(" with {who}'s card")).unwrap_or_default();
            let verdict = if decision == Decision::Disarmed { "Tap while disarmed" } else { "Access denied" };
            format!("{verdict} at door {door} at {time}{card_of}: {}{details}.", reason_in_words(event.reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::StageTimings;
    use time::macros::datetime;

    fn event(decision: Decision, reason: Reason) -> AccessEvent {
        AccessEvent {
            event_id: "e1".into(),
            at: datetime!(2026-11-22 06:40:12 UTC),
            door: "front".into(),
            card_uid: Some("04A1B2C3".parse().unwrap()),
            person_id: None,
            person_name: Some("Ada".into()),
            decision,
            reason,
            similarity: Some(97.14),
            confidence: Some(99.9),
            engine: Some("local".into()),
            photo: Some("2026/11/22/e1.jpg".into()),
            timings: StageTimings::default(),
            detail: None,
        }
    }

    #[test]
    fn granted_attempts_read_as_a_sentence_with_a_masked_card() {
        let note = Notification::new(&event(Decision::Granted, Reason::CardAndFace), CardUidShown::Masked);
        assert_eq!(note.time, "2026-11-22T06:40:12Z");
        assert_eq!(note.card_uid.as_deref(), Some("****B2C3"));
        assert_eq!(
            note.message,
            "Access granted to Ada at door front at 2026-11-22T06:40:12Z (card ****B2C3, face similarity 97.1%)."
        );
        let json: serde_json::Value = serde_json::from_slice(&note.to_json()).unwrap();
        assert_eq!(json["decision"], "granted");
        assert!(json.get("test").is_none());
    }

    #[test]
    fn denials_say_why_and_cards_can_be_hidden_or_shown() {
        let note = Notification::new(&event(Decision::Denied, Reason::WrongPerson), CardUidShown::Hidden);
        assert_eq!(note.card_uid, None);
        assert!(note.message.starts_with("Access denied at door front"), "{}", note.message);
        assert!(note.message.contains("with Ada's card: the face is not the card holder's"), "{}", note.message);
        let note = Notification::new(&event(Decision::Denied, Reason::UnknownCard), CardUidShown::Full);
        assert_eq!(note.card_uid.as_deref(), Some("04A1B2C3"));
    }

    #[test]
    fn client_ids_and_topics_come_from_the_door() {
        let config = MqttConfig::default();
        assert_eq!(config.client_id_for("Front door"), "facereko-Front_door");
        assert_eq!(config.topic(kind_of(Decision::Granted)), "FaceReko/success");
        assert_eq!(config.topic(kind_of(Decision::Disarmed)), "FaceReko/failure");
    }

    #[test]
    fn commands_need_the_door_state_and_have_a_client_of_their_own() {
        let problems = |config: &MqttConfig| {
            let mut checks = Checks::default();
            config.check(&mut checks);
            checks.into_problems().into_iter().map(|p| p.key).collect::<Vec<_>>()
        };
        let commands = MqttConfig { commands: true, ..MqttConfig::default() };
        assert_eq!(problems(&commands), ["mqtt.commands"]);
        assert!(problems(&MqttConfig { door_state: true, ..commands.clone() }).is_empty());
        assert_eq!(commands.site_client_id_for("front"), "facereko-front-site");
    }
}
