//! Hardware roles: indicator LEDs, buzzer, lock relay, card reader, camera, speaker and doorbell
//! button.
//!
//! Each role is one trait. Backends are chosen by name in the config (`hardware.<role>`); the
//! simulated ones are always compiled in, real Pi backends sit beside them behind features.
//! `backends` holds one table per role from name to constructor and settings check.

mod backends;
pub mod beeper;
mod build;
pub mod config;
pub mod debounce;
pub mod espeak;
mod fresh;
pub mod gpio;
pub mod mfrc522;
pub mod mjpeg;
pub mod piper;
pub mod rpicam;
pub mod simulated;
#[cfg(feature = "v4l2")]
pub mod v4l2;
pub mod wav;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::card::CardUid;
use crate::frame::Frame;

pub use backends::{ROLES, backends_for};
pub use beeper::{BeepPattern, Beeper};
pub use build::{
    Hardware, Outputs, SafeOutputs, camera_from_config, outputs_from_config, reader_from_config, speaker_from_config,
};
pub use config::HardwareConfig;
pub use wav::Pcm;

/// The red and green indicator LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lights {
    pub red: bool,
    pub green: bool,
}

impl Lights {
    /// The state that says "locked" to anyone looking at the door.
    pub const SAFE: Lights = Lights { red: true, green: false };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lock {
    /// Relay de-energised: a fail-secure strike stays shut.
    Locked,
    /// Relay energised.
    Unlocked,
}

#[derive(Debug, thiserror::Error)]
pub enum HwError {
    #[error("{role} backend {backend:?} is not available: {detail}")]
    Unavailable { role: &'static str, backend: String, detail: String },
    #[error("{role}: {detail}")]
    Io { role: &'static str, detail: String },
    #[error("the card reader has stopped")]
    ReaderClosed,
    /// Nothing takes the simulated doorbell's presses: rings need `visitors.enabled`.
    #[error("nothing listens to the doorbell: rings need visitors.enabled = true")]
    BellUnheard,
}

/// Red/green LEDs. Implementations drop to [`Lights::SAFE`] when dropped.
pub trait Indicators: Send {
    fn set(&mut self, lights: Lights) -> Result<(), HwError>;
}

/// A buzzer that is simply on or off; patterns are timed by [`Beeper`].
pub trait Buzzer: Send {
    fn set(&mut self, on: bool) -> Result<(), HwError>;
}

/// The door-lock relay. Implementations de-energise it when dropped.
pub trait LockRelay: Send {
    fn set(&mut self, lock: Lock) -> Result<(), HwError>;
}

/// A stream of card UIDs, one per tap (or per poll while a card rests on the reader).
#[async_trait]
pub trait CardReader: Send {
    async fn next_uid(&mut self) -> Result<CardUid, HwError>;
    /// Where the reader says why it fails while it keeps trying to recover by itself; a reader
    /// that cannot fail that way never says anything there.
    fn trouble(&self) -> Trouble {
        Trouble::default()
    }
}

/// A doorbell push button at the door.
#[async_trait]
pub trait Bell: Send {
    /// Waits for the next press, debounced: one press, one return.
    async fn next_press(&mut self) -> Result<(), HwError>;
}

/// Why a device is failing now, if it is: set by the device's own thread, read by whoever
/// reports on the door. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Trouble(Arc<Mutex<Option<String>>>);

impl Trouble {
    pub fn set(&self, why: String) {
        *self.lock() = Some(why);
    }

    pub fn clear(&self) {
        *self.lock() = None;
    }

    pub fn now(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A camera that hands out the most recent frame.
#[async_trait]
pub trait Camera: Send + Sync {
    async fn frame(&self) -> Result<Frame, HwError>;
    /// Called when a card is tapped, before the first frame of the attempt is asked for.
    fn on_tap(&self, _card: &CardUid) {}
}

/// How phrases sound: what a speaker renders them with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoiceSpec {
    /// An espeak-ng voice (`espeak-ng --voices`), e.g. "en", "en-gb", "de".
    pub language: String,
    /// An espeak-ng variant (`espeak-ng --voices=variant`), e.g. "f3"; empty for the voice's own.
    pub variant: String,
    /// Words per minute.
    pub speed: u32,
    /// 0 to 99; 50 is the voice's own.
    pub pitch: u32,
}

/// A loudspeaker at the door. Phrases are rendered into sound ahead of time (slow: a program or
/// a model runs) and played from files later (fast), so the door never waits for speech.
/// Every method may block for a while: they are called from the voice's own thread only.
pub trait Speaker: Send {
    /// What renders the phrases, e.g. "espeak-ng"; clips made by another renderer are not reused.
    fn renderer(&self) -> String;
    /// Turns `text` into sound.
    fn render(&mut self, text: &str, voice: &VoiceSpec) -> Result<Pcm, HwError>;
    /// Starts playing the WAV file `clip` (which says `text`), cutting whatever plays; returns at once.
    fn play(&mut self, clip: &Path, text: &str) -> Result<(), HwError>;
    /// Stops what plays, if anything does.
    fn stop(&mut self);
    /// How the clip played last ended, once it has: `None` while it plays, or when nothing played since the last look.
    fn finished(&mut self) -> Option<Result<(), HwError>> {
        None
    }
    /// A batch of phrases is rendered: let go of what rendering holds (a model loaded in a process).
    fn rest(&mut self) {}
    /// Whether the speaker can play now (its programs are there, its device opens): what a
    /// failing speaker is asked until it works again.
    fn probe(&mut self) -> Result<(), HwError> {
        Ok(())
    }
}

/// Frame burst settings for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstLimits {
    pub max_frames: u32,
    pub time_limit: Duration,
}
