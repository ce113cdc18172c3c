//! One table per hardware role, from a backend's name in the config (`hardware.<role>`) to its
//! constructor and to the check of its settings. Building the hardware, `config check` and
//! `facereko hw list` all read these tables, so they cannot disagree about what is compiled in.
//!
//! A new backend is one file plus one entry in the table of each role it plays. A backend behind
//! a cargo feature has entries only when the feature is on; its settings keep their section in
//! `[hardware]` either way, so a config stays readable by every build.

use std::sync::Arc;

use super::config::HardwareConfig;
use super::gpio::PinClaims;
use super::simulated::{self, OutputRecorder, SimPresses, SimTaps};
#[cfg(feature = "v4l2")]
use super::v4l2;
use super::{Bell, Buzzer, Camera, CardReader, HwError, Indicators, LockRelay, Speaker, espeak, rpicam};
#[cfg(feature = "pi")]
use super::{gpio, mfrc522};
use crate::checks::Checks;

/// One backend of one role.
pub struct Backend<Build> {
    /// Its name in the config.
    pub name: &'static str,
    pub build: Build,
    /// What `config check` says of its settings; run only when the backend is chosen.
    pub check: CheckSettings,
}

/// Checks a backend's settings. GPIO pins it uses are claimed in the [`PinClaims`] shared by
/// all roles, so two outputs on one pin are found whichever roles they play.
pub type CheckSettings = fn(&HardwareConfig, &mut Checks, &mut PinClaims);
/// Builds an output; the simulated outputs report to the recorder they all share.
pub type BuildOutput<T> = fn(&HardwareConfig, &OutputRecorder) -> Result<Box<T>, HwError>;
/// Builds a card reader, with the handle that feeds it taps when it is simulated.
pub type BuildReader = fn(&HardwareConfig) -> Result<(Box<dyn CardReader>, Option<SimTaps>), HwError>;
pub type BuildCamera = fn(&HardwareConfig) -> Result<Arc<dyn Camera>, HwError>;
/// Builds the doorbell button (none for a door without one), with the handle that presses it
/// when it is simulated.
pub type BuildBell = fn(&HardwareConfig) -> Result<(Option<Box<dyn Bell>>, Option<SimPresses>), HwError>;

/// The bell backend of a door without a doorbell button.
pub const NO_BELL: &str = "none";

/// A role and the backends compiled in for it, the simulated one first.
pub struct Role<Build: 'static> {
    /// The role's key under `[hardware]`.
    pub name: &'static str,
    pub backends: &'static [Backend<Build>],
}

pub const LEDS: Role<BuildOutput<dyn Indicators>> = Role {
    name: "leds",
    backends: &[
        Backend {
            name: simulated::NAME,
            build: |_, recorder| Ok(Box::new(simulated::SimIndicators::new(recorder))),
            check: no_settings,
        },
        #[cfg(feature = "pi")]
        Backend {
            name: gpio::NAME,
            build: |hw, _| Ok(Box::new(gpio::pi::indicators(&hw.gpio)?)),
            check: |hw, checks, pins| hw.gpio.check_leds(checks, pins),
        },
    ],
};

pub const BUZZERS: Role<BuildOutput<dyn Buzzer>> = Role {
    name: "buzzer",
    backends: &[
        Backend {
            name: simulated::NAME,
            build: |_, recorder| Ok(Box::new(simulated::SimBuzzer::new(recorder))),
            check: no_settings,
        },
        #[cfg(feature = "pi")]
        Backend {
            name: gpio::NAME,
            build: |hw, _| Ok(Box::new(gpio::pi::buzzer(&hw.gpio)?)),
            check: |hw, checks, pins| hw.gpio.check_buzzer(checks, pins),
        },
    ],
};

pub const LOCKS: Role<BuildOutput<dyn LockRelay>> = Role {
    name: "lock",
    backends: &[
        Backend {
            name: simulated::NAME,
            build: |_, recorder| Ok(Box::new(simulated::SimRelay::new(recorder))),
            check: no_settings,
        },
        #[cfg(feature = "pi")]
        Backend {
            name: gpio::NAME,
            build: |hw, _| Ok(Box::new(gpio::pi::relay(&hw.gpio)?)),
            check: |hw, checks, pins| hw.gpio.check_relay(checks, pins),
        },
    ],
};

pub const READERS: Role<BuildReader> = Role {
    name: "reader",
    backends: &[
        Backend {
            name: simulated::NAME,
            build: |_| {
                let (reader, taps) = simulated::sim_reader();
                Ok((Box::new(reader), Some(taps)))
            },
            check: no_settings,
        },
        #[cfg(feature = "pi")]
        Backend {
            name: mfrc522::NAME,
            build: |hw| Ok((Box::new(mfrc522::Mfrc522Reader::open_pi(&hw.mfrc522)?), None)),
            check: |hw, checks, pins| hw.mfrc522.check(checks, pins),
        },
    ],
};

pub const CAMERAS: Role<BuildCamera> = Role {
    name: "camera",
    backends: &[
        Backend {
            name: simulated::NAME,
            // Without pictures configured (card-only mode) the camera is never asked for a frame.
            build: |hw| Ok(Arc::new(simulated::SimCamera::new(hw.simulated.camera.clone().unwrap_or_default()))),
            check: no_settings,
        },
        Backend {
            name: rpicam::NAME,
            build: |hw| Ok(Arc::new(rpicam::StreamCamera::start(hw.rpicam.clone())?)),
            check: |hw, checks, _| hw.rpicam.check(checks),
        },
        #[cfg(feature = "v4l2")]
        Backend {
            name: v4l2::NAME,
            build: |hw| Ok(Arc::new(v4l2::V4l2Camera::start(hw.v4l2.clone())?)),
            check: |hw, checks, _| hw.v4l2.check(checks),
        },
    ],
};

pub const SPEAKERS: Role<BuildOutput<dyn Speaker>> = Role {
    name: "speaker",
    backends: &[
        Backend {
            name: simulated::NAME,
            build: |_, recorder| Ok(Box::new(simulated::SimSpeaker::new(recorder))),
            check: no_settings,
        },
        // Programs, not pins: always compiled in. A missing program or device is found when it
        // is used, and by `config check`, never by a refusal to start.
        Backend {
            name: espeak::NAME,
            build: |hw, _| Ok(Box::new(espeak::EspeakSpeaker::new(hw.espeak.clone()))),
            check: |hw, checks, _| hw.espeak.check(checks),
        },
    ],
};

pub const BELLS: Role<BuildBell> = Role {
    name: "bell",
    backends: &[
        Backend {
            name: simulated::NAME,
            build: |_| {
                let (button, presses) = simulated::sim_bell();
                Ok((Some(Box::new(button)), Some(presses)))
            },
            check: no_settings,
        },
        Backend { name: NO_BELL, build: |_| Ok((None, None)), check: no_settings },
        #[cfg(feature = "pi")]
        Backend {
            name: gpio::NAME,
            build: |hw| Ok((Some(Box::new(gpio::pi::bell(&hw.gpio)?)), None)),
            check: |hw, checks, pins| hw.gpio.check_bell(checks, pins),
        },
    ],
};

/// The hardware roles, as named in the config (`hardware.<role>`).
pub const ROLES: [&str; 7] =
    [LEDS.name, BUZZERS.name, LOCKS.name, READERS.name, CAMERAS.name, SPEAKERS.name, BELLS.name];

/// Backends compiled in for `role`, the simulated one first; none for a role that does not exist.
pub fn backends_for(role: &str) -> Vec<&'static str> {
    [
        LEDS.listing(),
        BUZZERS.listing(),
        LOCKS.listing(),
        READERS.listing(),
        CAMERAS.listing(),
        SPEAKERS.listing(),
        BELLS.listing(),
    ]
    .into_iter()
    .find(|(name, _)| *name == role)
    .map(|(_, backends)| backends)
    .unwrap_or_default()
}

fn no_settings(_: &HardwareConfig, _: &mut Checks, _: &mut PinClaims) {}

/// A role as one config sets it, whatever its backends build.
pub struct Choice<'a> {
    pub role: &'static str,
    /// The backend the config names.
    pub chosen: &'a str,
    /// The backends compiled in.
    pub known: Vec<&'static str>,
    /// The chosen backend's settings check; `None` when it is not compiled in.
    pub check: Option<CheckSettings>,
}

impl<Build> Role<Build> {
    /// The role's name and the names of its backends.
    fn listing(&self) -> (&'static str, Vec<&'static str>) {
        (self.name, self.backends.iter().map(|backend| backend.name).collect())
    }

    /// The backend called `name`, or why it cannot be built.
    pub fn find(&self, name: &str) -> Result<&Backend<Build>, HwError> {
        self.backends.iter().find(|backend| backend.name == name).ok_or_else(|| HwError::Unavailable {
            role: self.name,
            backend: name.to_owned(),
            detail: format!("not compiled in; `facereko hw list` shows what is (e.g. {})", simulated::NAME),
        })
    }

    pub fn choice<'a>(&self, chosen: &'a str) -> Choice<'a> {
        Choice {
            role: self.name,
            chosen,
            known: self.listing().1,
            check: self.backends.iter().find(|backend| backend.name == chosen).map(|backend| backend.check),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_the_simulated_backend_first_and_no_name_twice() {
        for role in ROLES {
            let names = backends_for(role);
            assert_eq!(names.first(), Some(&simulated::NAME), "{role}");
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{role}: {names:?}");
        }
        assert!(backends_for("doorbell").is_empty());
    }

    #[test]
    fn the_backends_compiled_in_follow_the_features() {
        let compiled_in = |role| match role {
            "leds" | "buzzer" | "lock" if cfg!(feature = "pi") => vec!["simulated", "gpio"],
            "reader" if cfg!(feature = "pi") => vec!["simulated", "mfrc522"],
            "camera" if cfg!(feature = "v4l2") => vec!["simulated", "rpicam", "v4l2"],
            "camera" => vec!["simulated", "rpicam"],
            "speaker" => vec!["simulated", "espeak"],
            "bell" if cfg!(feature = "pi") => vec!["simulated", "none", "gpio"],
            "bell" => vec!["simulated", "none"],
            _ => vec!["simulated"],
        };
        for role in ROLES {
            assert_eq!(backends_for(role), compiled_in(role), "{role}");
        }
    }

    #[test]
    fn an_unknown_backend_is_not_built() {
        let hw = HardwareConfig { camera: "webcam".into(), ..HardwareConfig::default() };
        let err = CAMERAS.find(&hw.camera).err().expect("no such camera");
        assert_eq!(
            err.to_string(),
            "camera backend \"webcam\" is not available: not compiled in; `facereko hw list` shows what is \
             (e.g. simulated)"
        );
    }
}
