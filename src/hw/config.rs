//! `[hardware]`: which backend plays each role, and their settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{backends_for, gpio, mfrc522, rpicam, simulated};
use crate::checks::Checks;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HardwareConfig {
    pub leds: String,
    pub buzzer: String,
    pub lock: String,
    pub reader: String,
    pub camera: String,
    /// Pins of the `gpio` LEDs, buzzer and relay.
    pub gpio: gpio::GpioPins,
    pub mfrc522: Mfrc522Config,
    /// The camera stream of the `rpicam` camera: a program writing MJPEG to its stdout.
    pub rpicam: rpicam::StreamSettings,
    /// The `v4l2` camera: a USB webcam.
    #[cfg(feature = "v4l2")]
    pub v4l2: super::v4l2::V4l2Settings,
    pub simulated: SimulatedConfig,
}

/// The MFRC522 card reader on SPI. The defaults are the original wiring: SPI 0, CE0, reset on BCM 25.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mfrc522Config {
    pub spi_bus: u8,
    pub chip_select: u8,
    pub reset_pin: u8,
    pub clock_hz: u32,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often the chip's version register is checked; a chip that stops answering is reset.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
}

impl Default for Mfrc522Config {
    fn default() -> Self {
        Self {
            spi_bus: 0,
            chip_select: 0,
            reset_pin: 25,
            clock_hz: 1_000_000,
            poll_interval: Duration::from_millis(50),
            health_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulatedConfig {
    /// A picture file, or a folder with one subfolder of pictures per card UID (and `default/`).
    pub camera: Option<PathBuf>,
    /// Where to append a JSON line for every switch of a simulated output.
    pub outputs_log: Option<PathBuf>,
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
            gpio: gpio::GpioPins::default(),
            mfrc522: Mfrc522Config::default(),
            rpicam: rpicam::StreamSettings::default(),
            #[cfg(feature = "v4l2")]
            v4l2: super::v4l2::V4l2Settings::default(),
            simulated: SimulatedConfig::default(),
        }
    }
}

impl HardwareConfig {
    pub fn check(&self, checks: &mut Checks) {
        let roles = [
            ("leds", &self.leds),
            ("buzzer", &self.buzzer),
            ("lock", &self.lock),
            ("reader", &self.reader),
            ("camera", &self.camera),
        ];
        for (role, backend) in roles {
            let known = backends_for(role);
            checks.check(
                known.contains(&backend.as_str()),
                &format!("hardware.{role}"),
                format!("{backend:?} is not compiled in; choose one of: {}", known.join(", ")),
            );
        }
        let gpio = &self.gpio;
        let mut pins = vec![
            ("hardware.gpio.red_led", gpio.red_led, self.leds == gpio::NAME),
            ("hardware.gpio.green_led", gpio.green_led, self.leds == gpio::NAME),
            ("hardware.gpio.buzzer", gpio.buzzer, self.buzzer == gpio::NAME),
            ("hardware.gpio.relay", gpio.relay, self.lock == gpio::NAME),
            ("hardware.mfrc522.reset_pin", self.mfrc522.reset_pin, self.reader == mfrc522::NAME),
        ];
        pins.retain(|(_, _, used)| *used);
        for (i, (key, pin, _)) in pins.iter().enumerate() {
            checks.check(*pin <= 27, key, format!("BCM {pin} is not on the 40-pin header; use 2 to 27"));
            if let Some((other, _, _)) = pins[..i].iter().find(|(_, p, _)| p == pin) {
                checks.check(false, key, format!("BCM {pin} is already {other}; give each output its own pin"));
            }
        }
        if self.reader == mfrc522::NAME {
            let reader = &self.mfrc522;
            checks.check(
                (100_000..=10_000_000).contains(&reader.clock_hz),
                "hardware.mfrc522.clock_hz",
                format!(
                    "{} Hz is out of range; use 100000 to 10000000 (1000000 is safe on jumper wires)",
                    reader.clock_hz
                ),
            );
            checks.duration(
                "hardware.mfrc522.poll_interval",
                reader.poll_interval,
                Duration::from_millis(10),
                Duration::from_secs(1),
            );
            checks.duration(
                "hardware.mfrc522.health_interval",
                reader.health_interval,
                Duration::from_secs(1),
                Duration::from_secs(600),
            );
        }
        if self.camera == rpicam::NAME
            && let Err(fix) = self.rpicam.validate()
        {
            checks.check(false, "hardware.rpicam", fix);
        }
        #[cfg(feature = "v4l2")]
        if self.camera == super::v4l2::NAME
            && let Err(fix) = self.v4l2.validate()
        {
            checks.check(false, "hardware.v4l2", fix);
        }
        if let Some(path) = &self.simulated.camera {
            checks.check(
                path.exists(),
                "hardware.simulated.camera",
                format!("{path:?} does not exist; point it at a picture file or a folder of pictures"),
            );
        }
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
