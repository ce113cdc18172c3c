//! `[hardware]`: which backend plays each role, and each backend's settings section. What is
//! compiled in, how it is built and how its settings are checked is in [`super::backends`].

use serde::{Deserialize, Serialize};

use super::backends::{BELLS, BUZZERS, CAMERAS, Choice, LEDS, LOCKS, READERS, SPEAKERS};
use super::gpio::{self, PinClaims};
use super::simulated::{self, SimulatedConfig};
use super::{espeak, mfrc522, rpicam};
use crate::checks::Checks;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HardwareConfig {
    pub leds: String,
    pub buzzer: String,
    pub lock: String,
    pub reader: String,
    pub camera: String,
    pub speaker: String,
    /// The doorbell button: `simulated` (pressed by `facereko ring` and the dashboard), `gpio`, or
    /// `none`. A press rings like the visitor page when `visitors.enabled`.
    pub bell: String,
    /// Pins of the `gpio` LEDs, buzzer, relay and bell button.
    pub gpio: gpio::GpioPins,
    /// Wiring and timing of the `mfrc522` card reader.
    pub mfrc522: mfrc522::Mfrc522Settings,
    /// The camera stream of the `rpicam` camera: a program writing MJPEG to its stdout.
    pub rpicam: rpicam::StreamSettings,
    /// The `v4l2` camera: a USB webcam.
    #[cfg(feature = "v4l2")]
    pub v4l2: super::v4l2::V4l2Settings,
    /// The `espeak` speaker: its programs and sound device.
    pub espeak: espeak::EspeakSettings,
    pub simulated: SimulatedConfig,
}

impl Default for HardwareConfig {
    fn default() -> Self {
        let sim = || simulated::NAME.to_owned();
        Self {
            leds: sim(),
            buzzer: sim(),
            lock: sim(),
            reader: sim(),
            camera: sim(),
            speaker: sim(),
            bell: sim(),
            gpio: gpio::GpioPins::default(),
            mfrc522: mfrc522::Mfrc522Settings::default(),
            rpicam: rpicam::StreamSettings::default(),
            #[cfg(feature = "v4l2")]
            v4l2: super::v4l2::V4l2Settings::default(),
            espeak: espeak::EspeakSettings::default(),
            simulated: SimulatedConfig::default(),
        }
    }
}

impl HardwareConfig {
    /// Every role with the backend chosen for it, in [`super::ROLES`] order.
    fn choices(&self) -> [Choice<'_>; 7] {
        [
            LEDS.choice(&self.leds),
            BUZZERS.choice(&self.buzzer),
            LOCKS.choice(&self.lock),
            READERS.choice(&self.reader),
            CAMERAS.choice(&self.camera),
            SPEAKERS.choice(&self.speaker),
            BELLS.choice(&self.bell),
        ]
    }

    /// Each role's backend must be compiled in; then the chosen backends' settings are checked,
    /// role by role, and the simulated pictures (whichever camera is chosen).
    pub fn check(&self, checks: &mut Checks) {
        let choices = self.choices();
        for choice in &choices {
            checks.check(
                choice.check.is_some(),
                &format!("hardware.{}", choice.role),
                format!("{:?} is not compiled in; choose one of: {}", choice.chosen, choice.known.join(", ")),
            );
        }
        let mut pins = PinClaims::default();
        for check in choices.iter().filter_map(|choice| choice.check) {
            check(self, checks, &mut pins);
        }
        self.simulated.check(checks);
    }

    /// What is missing on this machine for the chosen speaker to work: warnings, since the door
    /// runs without its voice.
    pub fn speaker_warnings(&self) -> Vec<crate::checks::Problem> {
        if self.speaker == espeak::NAME { self.espeak.probe() } else { Vec::new() }
    }

    /// What only running the door needs: pictures for a simulated camera when faces are asked for.
    pub fn check_run(&self, faces_needed: bool, checks: &mut Checks) {
        if faces_needed && self.camera == simulated::NAME && self.simulated.camera.is_none() {
            checks.check(
                false,
                "hardware.simulated.camera",
                "the simulated camera needs pictures: set it to a picture file or to a folder with a subfolder of \
                 pictures per card UID (and default/)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hw::backends_for;

    fn problems(hw: &HardwareConfig) -> Vec<String> {
        let mut checks = Checks::default();
        hw.check(&mut checks);
        checks.into_problems().iter().map(ToString::to_string).collect()
    }

    /// Every real backend chosen, each with something wrong.
    fn all_wrong() -> HardwareConfig {
        let mut hw = HardwareConfig {
            leds: gpio::NAME.into(),
            buzzer: gpio::NAME.into(),
            lock: gpio::NAME.into(),
            reader: mfrc522::NAME.into(),
            camera: rpicam::NAME.into(),
            bell: gpio::NAME.into(),
            ..HardwareConfig::default()
        };
        hw.gpio.red_led = 30;
        hw.gpio.bell = 16;
        hw.gpio.bell_debounce = Duration::from_secs(2);
        hw.gpio.green_led = 30;
        hw.gpio.buzzer = 25;
        hw.mfrc522.clock_hz = 5;
        hw.mfrc522.poll_interval = Duration::ZERO;
        hw.mfrc522.health_interval = Duration::ZERO;
        hw.rpicam.width = 0;
        hw.simulated.camera = Some("/nonexistent/pictures".into());
        hw
    }

    #[cfg(feature = "pi")]
    #[test]
    fn problems_come_role_by_role_with_pins_shared_across_roles() {
        assert_eq!(
            problems(&all_wrong()),
            [
                "hardware.gpio.red_led: BCM 30 is not on the 40-pin header; use 2 to 27",
                "hardware.gpio.green_led: BCM 30 is not on the 40-pin header; use 2 to 27",
                "hardware.gpio.green_led: BCM 30 is already hardware.gpio.red_led; give each part its own pin",
                "hardware.mfrc522.reset_pin: BCM 25 is already hardware.gpio.buzzer; give each part its own pin",
                "hardware.mfrc522.clock_hz: 5 Hz is out of range; use 100000 to 10000000 (1000000 is safe on \
                 jumper wires)",
                "hardware.mfrc522.poll_interval: 0s is out of range; use a duration from 10ms to 1s (e.g. \"10s\", \
                 \"500ms\")",
                "hardware.mfrc522.health_interval: 0s is out of range; use a duration from 1s to 10m (e.g. \"10s\", \
                 \"500ms\")",
                "hardware.rpicam: the frame size 0×480 is empty",
                "hardware.gpio.bell: BCM 16 is already hardware.gpio.relay; give each part its own pin",
                "hardware.gpio.bell_debounce: 2s is out of range; use a duration from 5ms to 1s (e.g. \"10s\", \"500ms\")",
                "hardware.simulated.camera: \"/nonexistent/pictures\" does not exist; point it at a picture file or \
                 a folder of pictures",
            ]
        );
    }

    #[test]
    fn only_the_chosen_backends_settings_are_checked() {
        let simulated = HardwareConfig {
            leds: simulated::NAME.into(),
            buzzer: simulated::NAME.into(),
            lock: simulated::NAME.into(),
            reader: simulated::NAME.into(),
            camera: simulated::NAME.into(),
            speaker: simulated::NAME.into(),
            bell: simulated::NAME.into(),
            simulated: SimulatedConfig::default(),
            ..all_wrong()
        };
        assert_eq!(problems(&simulated), Vec::<String>::new());
    }

    #[test]
    fn a_door_without_a_bell_button_checks_no_bell_settings() {
        let hw = HardwareConfig { bell: super::super::backends::NO_BELL.into(), ..all_wrong() };
        assert!(!problems(&hw).iter().any(|problem| problem.contains("bell")), "{:?}", problems(&hw));
    }

    #[test]
    fn a_backend_not_compiled_in_is_named_with_the_choices() {
        let hw = HardwareConfig { lock: "servo".into(), camera: "webcam".into(), ..HardwareConfig::default() };
        let lock =
            format!("hardware.lock: \"servo\" is not compiled in; choose one of: {}", backends_for("lock").join(", "));
        let camera = format!(
            "hardware.camera: \"webcam\" is not compiled in; choose one of: {}",
            backends_for("camera").join(", ")
        );
        assert_eq!(problems(&hw), [lock, camera]);
    }

    #[cfg(feature = "v4l2")]
    #[test]
    fn the_webcam_settings_are_checked_when_it_is_chosen() {
        let hw = HardwareConfig {
            camera: crate::hw::v4l2::NAME.into(),
            v4l2: crate::hw::v4l2::V4l2Settings { framerate: 0, ..Default::default() },
            ..HardwareConfig::default()
        };
        assert_eq!(problems(&hw), ["hardware.v4l2: the frame rate must be at least 1"]);
    }

    #[test]
    fn the_mfrc522_section_keeps_its_keys_and_defaults() {
        let section: mfrc522::Mfrc522Settings = toml::from_str("").unwrap();
        assert_eq!(section, mfrc522::Mfrc522Settings::default());
        let written = toml::to_string(&section).unwrap();
        assert_eq!(
            written,
            "spi_bus = 0\nchip_select = 0\nreset_pin = 25\nclock_hz = 1000000\npoll_interval = \"50ms\"\n\
             health_interval = \"10s\"\n"
        );
    }
}
