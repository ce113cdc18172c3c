//! Builds the hardware a config names.

use std::sync::Arc;

use super::config::HardwareConfig;
#[cfg(feature = "pi")]
use super::gpio;
use super::simulated::{self, OutputRecorder, SimTaps};
use super::{Buzzer, Camera, CardReader, HwError, Indicators, Lights, Lock, LockRelay};

/// The hardware of one door.
pub struct Hardware {
    pub indicators: Box<dyn Indicators>,
    pub buzzer: Box<dyn Buzzer>,
    pub relay: Box<dyn LockRelay>,
    pub reader: Box<dyn CardReader>,
    pub camera: Arc<dyn Camera>,
    /// Present when the reader is simulated: the control socket feeds it taps.
    pub taps: Option<SimTaps>,
}

impl Hardware {
    /// Builds the backends named in the config. Outputs are set safe by the driver before anything else.
    pub fn from_config(config: &HardwareConfig) -> Result<Self, HwError> {
        let (indicators, buzzer, relay) = outputs_from_config(config)?;
        let (reader, taps) = reader_from_config(config)?;
        let camera = camera_from_config(config)?;
        let mut hardware = Self { indicators, buzzer, relay, reader, camera, taps };
        hardware.make_safe()?;
        Ok(hardware)
    }

    /// Simulated hardware whose outputs report to `recorder` and whose camera shows `pictures`
    /// (a file, or a folder with a subfolder per card UID).
    pub fn simulated(recorder: &OutputRecorder, pictures: std::path::PathBuf) -> Self {
        let (reader, taps) = simulated::sim_reader();
        Self {
            indicators: Box::new(simulated::SimIndicators::new(recorder)),
            buzzer: Box::new(simulated::SimBuzzer::new(recorder)),
            relay: Box::new(simulated::SimRelay::new(recorder)),
            reader: Box::new(reader),
            camera: Arc::new(simulated::SimCamera::new(pictures)),
            taps: Some(taps),
        }
    }

    /// Locked, quiet, red: the state the door shows before it knows anything else.
    pub fn make_safe(&mut self) -> Result<(), HwError> {
        self.relay.set(Lock::Locked)?;
        self.buzzer.set(false)?;
        self.indicators.set(Lights::SAFE)
    }
}

fn not_compiled_in(role: &'static str, backend: &str) -> HwError {
    HwError::Unavailable {
        role,
        backend: backend.to_owned(),
        detail: format!("not compiled in; `facereko hw list` shows what is (e.g. {})", simulated::NAME),
    }
}

/// The LEDs, buzzer and relay named in the config, each driven to its safe state as it is built.
/// The door's outputs: LEDs, buzzer, lock relay.
pub type Outputs = (Box<dyn Indicators>, Box<dyn Buzzer>, Box<dyn LockRelay>);

pub fn outputs_from_config(hw: &HardwareConfig) -> Result<Outputs, HwError> {
    let recorder = match &hw.simulated.outputs_log {
        Some(path) => OutputRecorder::with_file(path)?,
        None => OutputRecorder::default(),
    };
    // The relay first: whatever fails later, the door is already locked.
    let relay: Box<dyn LockRelay> = match hw.lock.as_str() {
        simulated::NAME => Box::new(simulated::SimRelay::new(&recorder)),
        #[cfg(feature = "pi")]
        gpio::NAME => Box::new(gpio::pi::relay(&hw.gpio)?),
        other => return Err(not_compiled_in("lock", other)),
    };
    let buzzer: Box<dyn Buzzer> = match hw.buzzer.as_str() {
        simulated::NAME => Box::new(simulated::SimBuzzer::new(&recorder)),
        #[cfg(feature = "pi")]
        gpio::NAME => Box::new(gpio::pi::buzzer(&hw.gpio)?),
        other => return Err(not_compiled_in("buzzer", other)),
    };
    let indicators: Box<dyn Indicators> = match hw.leds.as_str() {
        simulated::NAME => Box::new(simulated::SimIndicators::new(&recorder)),
        #[cfg(feature = "pi")]
        gpio::NAME => Box::new(gpio::pi::indicators(&hw.gpio)?),
        other => return Err(not_compiled_in("leds", other)),
    };
    Ok((indicators, buzzer, relay))
}

/// The card reader named in the config, with a tap handle when it is simulated.
pub fn reader_from_config(config: &HardwareConfig) -> Result<(Box<dyn CardReader>, Option<SimTaps>), HwError> {
    match config.reader.as_str() {
        simulated::NAME => {
            let (reader, taps) = simulated::sim_reader();
            Ok((Box::new(reader), Some(taps)))
        }
        #[cfg(feature = "pi")]
        super::mfrc522::NAME => {
            let c = &config.mfrc522;
            let settings =
                super::mfrc522::Mfrc522Settings { poll_interval: c.poll_interval, health_interval: c.health_interval };
            let reader =
                super::mfrc522::Mfrc522Reader::open_pi(c.spi_bus, c.chip_select, c.reset_pin, c.clock_hz, settings)?;
            Ok((Box::new(reader), None))
        }
        other => Err(not_compiled_in("reader", other)),
    }
}

/// The camera named in the config.
pub fn camera_from_config(hw: &HardwareConfig) -> Result<Arc<dyn Camera>, HwError> {
    match hw.camera.as_str() {
        // Without pictures configured (card-only mode) the camera is never asked for a frame.
        simulated::NAME => Ok(Arc::new(simulated::SimCamera::new(hw.simulated.camera.clone().unwrap_or_default()))),
        super::rpicam::NAME => Ok(Arc::new(super::rpicam::StreamCamera::start(hw.rpicam.clone())?)),
        #[cfg(feature = "v4l2")]
        super::v4l2::NAME => Ok(Arc::new(super::v4l2::V4l2Camera::start(hw.v4l2.clone())?)),
        other => Err(not_compiled_in("camera", other)),
    }
}
