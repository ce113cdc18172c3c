//! Home Assistant MQTT discovery: the door shows up as a device with a "last access" sensor
//! (its attributes are the last notification), a lock sensor and a doorbell event, all marked
//! unavailable by the broker (last will) when FaceReko goes away: on the door's state topic when
//! `mqtt.door_state` is on, otherwise on an availability topic of their own. The discovery messages are
//! retained, so Home Assistant picks them up whenever it starts; the doorbell's events are not
//! (a ring is news only when it happens).

use serde_json::json;

use super::{MqttConfig, OFFLINE, VisitorNotice, door_topic, slug};
use crate::hw::Lock;

pub struct HomeAssistant {
    discovery_prefix: String,
    /// Our own topics for this door are `<topic_prefix>/<door>/…`.
    topic_prefix: String,
    /// The topic the last will sets `offline`, and whether it is the door's state topic (which
    /// says more than `online` while the door runs).
    availability: (String, bool),
    slug: String,
    door: String,
}

impl HomeAssistant {
    pub fn new(config: &MqttConfig, door: &str) -> Self {
        Self {
            discovery_prefix: config.discovery_prefix.clone(),
            topic_prefix: config.topic_prefix.clone(),
            availability: (
                config.offline_topic(door).unwrap_or_else(|| config.door_topic(door, "availability")),
                config.door_state,
            ),
            slug: slug(door),
            door: door.to_owned(),
        }
    }

    /// The availability topic and its `online` message, when the door's state does not say it.
    pub fn online(&self) -> Option<(String, Vec<u8>)> {
        let (topic, via_state) = &self.availability;
        (!via_state).then(|| (topic.clone(), b"online".to_vec()))
    }

    pub fn last_event_topic(&self) -> String {
        door_topic(&self.topic_prefix, &self.door, "last_event")
    }

    fn lock_topic(&self) -> String {
        door_topic(&self.topic_prefix, &self.door, "lock")
    }

    fn doorbell_topic(&self) -> String {
        door_topic(&self.topic_prefix, &self.door, "doorbell")
    }

    /// The doorbell entity's event for a ring (the visitor page, the button or an unknown card),
    /// with what the visitor notice says, for automations to use: (topic, payload), not retained.
    pub fn ring_event(&self, notice: &VisitorNotice) -> (String, Vec<u8>) {
        let event = json!({
            "event_type": "ring",
            "visit": notice.visit,
            "name": notice.name,
            "kind": notice.kind,
            "known_visitor": notice.known_visitor,
            "passcode_sent": notice.passcode_sent,
            "time": notice.time,
            "photo": notice.photo,
            "link": notice.link,
        });
        (self.doorbell_topic(), serde_json::to_vec(&event).expect("ring events serialise"))
    }

    /// The retained lock state message.
    pub fn lock_state(&self, lock: Lock) -> (String, Vec<u8>) {
        let state = match lock {
            Lock::Locked => "locked",
            Lock::Unlocked => "unlocked",
        };
        (self.lock_topic(), state.as_bytes().to_vec())
    }

    /// The discovery messages: (config topic, payload), published retained.
    pub fn discovery(&self) -> Vec<(String, Vec<u8>)> {
        let device = json!({
            "identifiers": [format!("facereko_{}", self.slug)],
            "name": format!("FaceReko {}", self.door),
            "manufacturer": "FaceReko",
            "model": "card and face door",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        let availability = match &self.availability {
            // The door's state JSON while it runs, the broker's `offline` once it is gone.
            (topic, true) => json!([{
                "topic": topic,
                "value_template": format!("{{{{ '{OFFLINE}' if value == '{OFFLINE}' else 'online' }}}}"),
            }]),
            (topic, false) => json!([{ "topic": topic }]),
        };
        let entity = |component: &str, object: &str, mut config: serde_json::Value| {
            config["unique_id"] = json!(format!("facereko_{}_{object}", self.slug));
            config["availability"] = availability.clone();
            config["device"] = device.clone();
            let topic = format!("{}/{component}/facereko_{}/{object}/config", self.discovery_prefix, self.slug);
            (topic, serde_json::to_vec(&config).expect("discovery config serialises"))
        };
        vec![
            entity(
                "sensor",
                "last_access",
                json!({
                    "name": "Last access",
                    "icon": "mdi:door",
                    "state_topic": self.last_event_topic(),
                    "value_template": "{{ value_json.decision }}",
                    "json_attributes_topic": self.last_event_topic(),
                }),
            ),
            entity(
                "binary_sensor",
                "lock",
                json!({
                    "name": "Lock",
                    "device_class": "lock",
                    "state_topic": self.lock_topic(),
                    "payload_on": "unlocked",
                    "payload_off": "locked",
                }),
            ),
            // Home Assistant's MQTT event platform: a doorbell whose one event is a ring.
            entity(
                "event",
                "doorbell",
                json!({
                    "name": "Doorbell",
                    "device_class": "doorbell",
                    "event_types": ["ring"],
                    "state_topic": self.doorbell_topic(),
                }),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_names_the_door_and_its_topics() {
        let ha = HomeAssistant::new(&MqttConfig::default(), "front door");
        let messages = ha.discovery();
        assert_eq!(messages[0].0, "homeassistant/sensor/facereko_front_door/last_access/config");
        assert_eq!(messages[1].0, "homeassistant/binary_sensor/facereko_front_door/lock/config");
        let sensor: serde_json::Value = serde_json::from_slice(&messages[0].1).unwrap();
        assert_eq!(sensor["state_topic"], "FaceReko/front_door/last_event");
        assert_eq!(sensor["availability"], json!([{"topic": "FaceReko/front_door/availability"}]));
        assert_eq!(ha.online(), Some(("FaceReko/front_door/availability".to_owned(), b"online".to_vec())));
        assert_eq!(sensor["device"]["name"], "FaceReko front door");
        assert_eq!(ha.lock_state(Lock::Unlocked), ("FaceReko/front_door/lock".to_owned(), b"unlocked".to_vec()));
        assert_eq!(messages[2].0, "homeassistant/event/facereko_front_door/doorbell/config");
        let doorbell: serde_json::Value = serde_json::from_slice(&messages[2].1).unwrap();
        assert_eq!(doorbell["device_class"], "doorbell");
        assert_eq!(doorbell["event_types"], json!(["ring"]));
        assert_eq!(doorbell["state_topic"], "FaceReko/front_door/doorbell");
        assert_eq!(doorbell["unique_id"], "facereko_front_door_doorbell");
    }

    #[test]
    fn with_the_door_state_on_availability_follows_the_state_topic() {
        let ha = HomeAssistant::new(&MqttConfig { door_state: true, ..MqttConfig::default() }, "front");
        let sensor: serde_json::Value = serde_json::from_slice(&ha.discovery()[0].1).unwrap();
        let template = "{{ 'offline' if value == 'offline' else 'online' }}";
        assert_eq!(sensor["availability"], json!([{"topic": "FaceReko/front/state", "value_template": template}]));
        assert_eq!(ha.online(), None, "the state says it");
    }

    #[test]
    fn a_ring_is_a_doorbell_event_with_the_visits_name_and_link() {
        let ha = HomeAssistant::new(&MqttConfig::default(), "front");
        let notice = VisitorNotice {
            visit: 7,
            time: "2026-12-06T18:32:01Z".into(),
            door: "front".into(),
            name: "Someone at the door".into(),
            message: None,
            photo: Some("2026/12/06/a.jpg".into()),
            link: Some("https://door.example.com/visits/7?until=1&sig=ab".into()),
            kind: "bell".into(),
            known_visitor: Some("Alice".into()),
            passcode_sent: false,
        };
        let (topic, payload) = ha.ring_event(&notice);
        assert_eq!(topic, "FaceReko/front/doorbell");
        let event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(event["event_type"], "ring");
        assert_eq!(event["name"], "Someone at the door");
        assert_eq!(event["link"], "https://door.example.com/visits/7?until=1&sig=ab");
        assert_eq!(event["kind"], "bell");
        assert_eq!(event["known_visitor"], "Alice", "automations may greet a known visitor");
    }
}
