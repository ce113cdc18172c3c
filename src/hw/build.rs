//! Builds the hardware a config names, from the tables in [`super::backends`].

use std::sync::Arc;

use super::backends::{BELLS, BUZZERS, CAMERAS, LEDS, LOCKS, READERS, SPEAKERS};
use super::config::HardwareConfig;
use super::simulated::{self, OutputRecorder, SimPresses, SimTaps};
use super::{Bell, Buzzer, Camera, CardReader, HwError, Indicators, Lights, Lock, LockRelay, Speaker};

/// The hardware of one door.
pub struct Hardware {
    pub indicators: Box<dyn Indicators>,
    pub buzzer: Box<dyn Buzzer>,
    pub relay: Box<dyn LockRelay>,
    pub reader: Box<dyn CardReader>,
    pub camera: Arc<dyn Camera>,
    pub speaker: Box<dyn Speaker>,
    /// Present when the reader is simulated: the control socket feeds it taps.
    pub taps: Option<SimTaps>,
    /// The doorbell button, unless the door has none. Not the door's: whoever turns presses into
    /// rings takes it before the door starts.
    pub bell: Option<Box<dyn Bell>>,
    /// Present when the bell is simulated: the control socket and the dashboard press it.
    pub presses: Option<SimPresses>,
}

/// The door's outputs, driven to their safe state: what a start does before anything else that
/// can fail, so that a relay a killed run left energised is released even when this start fails.
pub struct SafeOutputs {
    indicators: Box<dyn Indicators>,
    buzzer: Box<dyn Buzzer>,
    relay: Box<dyn LockRelay>,
    /// Where the simulated outputs report; the simulated speaker reports there too.
    recorder: OutputRecorder,
}

impl SafeOutputs {
    /// Builds the outputs named in the config, the relay first, and drives them safe.
    pub fn from_config(config: &HardwareConfig) -> Result<Self, HwError> {
        let recorder = config.simulated.recorder()?;
        let (indicators, buzzer, relay) = outputs_with(config, &recorder)?;
        let (mut indicators, mut buzzer, mut relay) = (indicators, buzzer, relay);
        make_safe(indicators.as_mut(), buzzer.as_mut(), relay.as_mut())?;
        Ok(Self { indicators, buzzer, relay, recorder })
    }

    /// The whole door: these outputs with the card reader, camera and speaker named in the config.
    pub fn with_inputs(self, config: &HardwareConfig) -> Result<Hardware, HwError> {
        let (reader, taps) = reader_from_config(config)?;
        let camera = camera_from_config(config)?;
        let Self { indicators, buzzer, relay, recorder } = self;
        let speaker = (SPEAKERS.find(&config.speaker)?.build)(config, &recorder)?;
        let (bell, presses) = (BELLS.find(&config.bell)?.build)(config)?;
        Ok(Hardware { indicators, buzzer, relay, reader, camera, speaker, taps, bell, presses })
    }
}

/// Locked, quiet, red: the state the door shows before it knows anything else.
fn make_safe(
    indicators: &mut dyn Indicators,
    buzzer: &mut dyn Buzzer,
    relay: &mut dyn LockRelay,
) -> Result<(), HwError> {
    relay.set(Lock::Locked)?;
    buzzer.set(false)?;
    indicators.set(Lights::SAFE)
}

impl Hardware {
    /// Simulated hardware whose outputs report to `recorder` and whose camera shows `pictures`
    /// (a file, or a folder with a subfolder per card UID).
    pub fn simulated(recorder: &OutputRecorder, pictures: std::path::PathBuf) -> Self {
        let (reader, taps) = simulated::sim_reader();
        let (bell, presses) = simulated::sim_bell();
        Self {
            indicators: Box::new(simulated::SimIndicators::new(recorder)),
            buzzer: Box::new(simulated::SimBuzzer::new(recorder)),
            relay: Box::new(simulated::SimRelay::new(recorder)),
            reader: Box::new(reader),
            camera: Arc::new(simulated::SimCamera::new(pictures)),
            speaker: Box::new(simulated::SimSpeaker::new(recorder)),
            taps: Some(taps),
            bell: Some(Box::new(bell)),
            presses: Some(presses),
        }
    }
}

/// The door's outputs: LEDs, buzzer, lock relay.
pub type Outputs = (Box<dyn Indicators>, Box<dyn Buzzer>, Box<dyn LockRelay>);

/// The LEDs, buzzer and relay named in the config, each driven to its safe state as it is built.
pub fn outputs_from_config(hw: &HardwareConfig) -> Result<Outputs, HwError> {
    outputs_with(hw, &hw.simulated.recorder()?)
}

fn outputs_with(hw: &HardwareConfig, recorder: &OutputRecorder) -> Result<Outputs, HwError> {
    // The relay first: whatever fails later, the door is already locked.
    let relay = (LOCKS.find(&hw.lock)?.build)(hw, recorder)?;
    let buzzer = (BUZZERS.find(&hw.buzzer)?.build)(hw, recorder)?;
    let indicators = (LEDS.find(&hw.leds)?.build)(hw, recorder)?;
    Ok((indicators, buzzer, relay))
}

/// The speaker named in the config (`facereko hw say`), its simulated one reporting to `hw.simulated`.
pub fn speaker_from_config(hw: &HardwareConfig) -> Result<Box<dyn Speaker>, HwError> {
    (SPEAKERS.find(&hw.speaker)?.build)(hw, &hw.simulated.recorder()?)
}

/// The card reader named in the config, with a tap handle when it is simulated.
pub fn reader_from_config(hw: &HardwareConfig) -> Result<(Box<dyn CardReader>, Option<SimTaps>), HwError> {
    (READERS.find(&hw.reader)?.build)(hw)
}

/// The camera named in the config.
pub fn camera_from_config(hw: &HardwareConfig) -> Result<Arc<dyn Camera>, HwError> {
    (CAMERAS.find(&hw.camera)?.build)(hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_is_locked_before_any_other_output_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("outputs.jsonl");
        let mut config = HardwareConfig::default();
        config.simulated.outputs_log = Some(log.clone());
        let hardware = SafeOutputs::from_config(&config).unwrap().with_inputs(&config).unwrap();
        assert!(hardware.taps.is_some(), "the simulated reader takes taps");
        assert!(hardware.bell.is_some() && hardware.presses.is_some(), "the simulated bell is pressed from afar");
        let outputs: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["output"].to_string())
            .collect();
        assert_eq!(outputs, ["\"relay\"", "\"buzzer\"", "\"red_led\"", "\"green_led\""]);
    }

    #[test]
    fn an_output_not_compiled_in_names_its_role_and_backend() {
        let config = HardwareConfig { lock: "servo".into(), ..HardwareConfig::default() };
        let err = outputs_from_config(&config).err().expect("no servo lock");
        assert!(matches!(err, HwError::Unavailable { role: "lock", ref backend, .. } if backend == "servo"), "{err}");
    }
}
