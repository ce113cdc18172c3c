//! Home Assistant MQTT discovery: the door shows up as a device with a "last access" sensor
//! (its attributes are the last notification) and a lock sensor, both marked unavailable by the
//! broker (last will) when FaceReko goes away. Everything is retained, so Home Assistant picks
//! it up whenever it starts.

use serde_json::json;

use super::{MqttConfig, slug};
use crate::hw::Lock;

pub struct HomeAssistant {
    discovery_prefix: String,
    /// Our own topics for this door: `<topic_prefix>/<door>`.
    base: String,
    slug: String,
    door: String,
}

impl HomeAssistant {
    pub fn new(config: &MqttConfig, door: &str) -> Self {
        let slug = slug(door);
        Self {
            discovery_prefix: config.discovery_prefix.clone(),
            base: format!("{}/{slug}", config.topic_prefix),
            slug,
            door: door.to_owned(),
        }
    }

    pub fn availability_topic(&self) -> String {
        format!("{}/availability", self.base)
    }

    pub fn last_event_topic(&self) -> String {
        format!("{}/last_event", self.base)
    }

    fn lock_topic(&self) -> String {
        format!("{}/lock", self.base)
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
        let availability = self.availability_topic();
        let entity = |component: &str, object: &str, mut config: serde_json::Value| {
            config["unique_id"] = json!(format!("facereko_{}_{object}", self.slug));
            config["availability_topic"] = json!(availability);
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
        assert_eq!(sensor["availability_topic"], "FaceReko/front_door/availability");
        assert_eq!(sensor["device"]["name"], "FaceReko front door");
        assert_eq!(ha.lock_state(Lock::Unlocked), ("FaceReko/front_door/lock".to_owned(), b"unlocked".to_vec()));
    }
}
