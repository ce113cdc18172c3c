//! Simulated hardware: outputs that record what they were told (the speaker what it said), a
//! reader fed with taps from the control socket, a doorbell pressed from there too, and a camera
//! that serves picture files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Bell, Buzzer, Camera, CardReader, HwError, Indicators, Lights, Lock, LockRelay, Pcm, Speaker, VoiceSpec};
use crate::card::CardUid;
use crate::checks::Checks;
use crate::frame::Frame;

pub const NAME: &str = "simulated";

/// `[hardware.simulated]`: what the simulated camera shows and where the simulated outputs report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SimulatedConfig {
    /// A picture file, or a folder with one subfolder of pictures per card UID (and `default/`).
    pub camera: Option<PathBuf>,
    /// Where to append a JSON line for every switch of a simulated output.
    pub outputs_log: Option<PathBuf>,
}

impl SimulatedConfig {
    /// A picture path that is set must exist, whichever camera is chosen.
    pub fn check(&self, checks: &mut Checks) {
        if let Some(path) = &self.camera {
            checks.check(
                path.exists(),
                "hardware.simulated.camera",
                format!("{path:?} does not exist; point it at a picture file or a folder of pictures"),
            );
        }
    }

    /// Where the simulated outputs report: memory, and the outputs log when one is set.
    pub fn recorder(&self) -> Result<OutputRecorder, HwError> {
        match &self.outputs_log {
            Some(path) => OutputRecorder::with_file(path),
            None => Ok(OutputRecorder::default()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    RedLed,
    GreenLed,
    Buzzer,
    Relay,
    /// A phrase said; the change carries its words.
    Speaker,
}

/// One switch of one simulated output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChange {
    pub at: Instant,
    pub output: Output,
    pub on: bool,
    /// What the speaker said.
    pub said: Option<String>,
}

#[derive(Serialize)]
struct OutputLine<'a> {
    /// Wall-clock milliseconds since the Unix epoch.
    t_ms: i128,
    output: Output,
    on: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    said: Option<&'a str>,
}

#[derive(Default)]
struct RecorderInner {
    changes: Vec<OutputChange>,
    file: Option<File>,
}

/// Shared record of every change on the simulated outputs, optionally mirrored to a JSON-lines
/// file so that tests of the real binary can read it.
#[derive(Clone, Default)]
pub struct OutputRecorder(Arc<Mutex<RecorderInner>>);

impl OutputRecorder {
    pub fn with_file(path: &Path) -> Result<Self, HwError> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| HwError::Io {
            role: "simulated outputs",
            detail: format!("cannot open {}: {e}", path.display()),
        })?;
        Ok(Self(Arc::new(Mutex::new(RecorderInner { changes: Vec::new(), file: Some(file) }))))
    }

    fn lock(&self) -> MutexGuard<'_, RecorderInner> {
        // A panic elsewhere must not stop the outputs from being recorded as safe.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, output: Output, on: bool) -> Result<(), HwError> {
        self.record_change(output, on, None)
    }

    fn record_change(&self, output: Output, on: bool, said: Option<&str>) -> Result<(), HwError> {
        let mut inner = self.lock();
        inner.changes.push(OutputChange { at: Instant::now(), output, on, said: said.map(str::to_owned) });
        if let Some(file) = &mut inner.file {
            let t_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            let line = OutputLine { t_ms, output, on, said };
            let mut text = serde_json::to_string(&line).expect("output line serialises");
            // One write call for the whole line: a kill between two calls would leave half a line
            // that the next run's first line is appended to.
            text.push('\n');
            file.write_all(text.as_bytes()).map_err(|e| HwError::Io {
                role: "simulated outputs",
                detail: format!("cannot write the output record: {e}"),
            })?;
        }
        Ok(())
    }

    pub fn changes(&self) -> Vec<OutputChange> {
        self.lock().changes.clone()
    }

    /// What the simulated speaker said, in order.
    pub fn said(&self) -> Vec<String> {
        self.lock().changes.iter().filter_map(|change| change.said.clone()).collect()
    }

    /// The last state recorded for `output` (off if it never switched).
    pub fn is_on(&self, output: Output) -> bool {
        self.lock().changes.iter().rev().find(|c| c.output == output).is_some_and(|c| c.on)
    }
}

/// Records a switch only when the state actually changes.
struct SimOutput {
    recorder: OutputRecorder,
    output: Output,
    state: Option<bool>,
}

impl SimOutput {
    fn new(recorder: &OutputRecorder, output: Output) -> Self {
        Self { recorder: recorder.clone(), output, state: None }
    }

    fn set(&mut self, on: bool) -> Result<(), HwError> {
        if self.state != Some(on) {
            self.recorder.record(self.output, on)?;
            self.state = Some(on);
        }
        Ok(())
    }
}

pub struct SimIndicators {
    red: SimOutput,
    green: SimOutput,
}

impl SimIndicators {
    /// Starts showing [`Lights::SAFE`], as real LEDs would be driven at start-up.
    pub fn new(recorder: &OutputRecorder) -> Self {
        let mut leds =
            Self { red: SimOutput::new(recorder, Output::RedLed), green: SimOutput::new(recorder, Output::GreenLed) };
        let _ = leds.set(Lights::SAFE);
        leds
    }
}

impl Indicators for SimIndicators {
    fn set(&mut self, lights: Lights) -> Result<(), HwError> {
        self.red.set(lights.red)?;
        self.green.set(lights.green)
    }
}

impl Drop for SimIndicators {
    fn drop(&mut self) {
        let _ = self.set(Lights::SAFE);
    }
}

pub struct SimBuzzer(SimOutput);

impl SimBuzzer {
    /// Starts silent.
    pub fn new(recorder: &OutputRecorder) -> Self {
        let mut buzzer = Self(SimOutput::new(recorder, Output::Buzzer));
        let _ = buzzer.0.set(false);
        buzzer
    }
}

impl Buzzer for SimBuzzer {
    fn set(&mut self, on: bool) -> Result<(), HwError> {
        self.0.set(on)
    }
}

impl Drop for SimBuzzer {
    fn drop(&mut self) {
        let _ = self.0.set(false);
    }
}

pub struct SimRelay(SimOutput);

impl SimRelay {
    /// Starts de-energised (locked).
    pub fn new(recorder: &OutputRecorder) -> Self {
        let mut relay = Self(SimOutput::new(recorder, Output::Relay));
        let _ = relay.0.set(false);
        relay
    }
}

impl LockRelay for SimRelay {
    fn set(&mut self, lock: Lock) -> Result<(), HwError> {
        self.0.set(lock == Lock::Unlocked)
    }
}

impl Drop for SimRelay {
    fn drop(&mut self) {
        let _ = self.0.set(false);
    }
}

/// A speaker that renders a quiet tone as long as the words would take and records each phrase
/// it is told to play (with `hardware.simulated.outputs_log`, also in the log).
pub struct SimSpeaker {
    recorder: OutputRecorder,
    /// A phrase was played since the last look: it is over at once.
    played: bool,
}

impl SimSpeaker {
    pub fn new(recorder: &OutputRecorder) -> Self {
        Self { recorder: recorder.clone(), played: false }
    }
}

impl Speaker for SimSpeaker {
    fn renderer(&self) -> String {
        NAME.to_owned()
    }

    fn render(&mut self, text: &str, _voice: &VoiceSpec) -> Result<Pcm, HwError> {
        // About as long as spoken words: 60 ms a letter.
        let rate = 8000;
        let count = text.chars().count() * rate as usize * 60 / 1000;
        let samples = (0..count).map(|i| if (i / 10) % 2 == 0 { 1000 } else { -1000 }).collect();
        Ok(Pcm { rate, samples })
    }

    fn play(&mut self, _clip: &Path, text: &str) -> Result<(), HwError> {
        self.played = true;
        self.recorder.record_change(Output::Speaker, true, Some(text))
    }

    fn stop(&mut self) {}

    fn finished(&mut self) -> Option<Result<(), HwError>> {
        std::mem::take(&mut self.played).then_some(Ok(()))
    }
}

/// Hands taps to a [`SimReader`]; cheap to clone into the control socket (and the web app later).
#[derive(Clone)]
pub struct SimTaps(mpsc::Sender<CardUid>);

impl SimTaps {
    pub async fn tap(&self, card: CardUid) -> Result<(), HwError> {
        self.0.send(card).await.map_err(|_| HwError::ReaderClosed)
    }
}

pub struct SimReader(mpsc::Receiver<CardUid>);

/// A simulated reader and the handle that feeds it.
pub fn sim_reader() -> (SimReader, SimTaps) {
    let (tx, rx) = mpsc::channel(16);
    (SimReader(rx), SimTaps(tx))
}

#[async_trait]
impl CardReader for SimReader {
    async fn next_uid(&mut self) -> Result<CardUid, HwError> {
        self.0.recv().await.ok_or(HwError::ReaderClosed)
    }
}

/// Presses a [`SimBellButton`]; cheap to clone into the control socket and the web app.
#[derive(Clone)]
pub struct SimPresses(mpsc::Sender<()>);

impl SimPresses {
    /// One press; an error when nothing listens to the bell (visitors are off).
    pub async fn press(&self) -> Result<(), HwError> {
        self.0.send(()).await.map_err(|_| HwError::BellUnheard)
    }
}

/// A doorbell button pressed through [`SimPresses`]; already debounced.
pub struct SimBellButton(mpsc::Receiver<()>);

/// A simulated doorbell button and the handle that presses it.
pub fn sim_bell() -> (SimBellButton, SimPresses) {
    let (tx, rx) = mpsc::channel(4);
    (SimBellButton(rx), SimPresses(tx))
}

#[async_trait]
impl Bell for SimBellButton {
    async fn next_press(&mut self) -> Result<(), HwError> {
        // The handles live as long as the door; without them no press can come.
        match self.0.recv().await {
            Some(()) => Ok(()),
            None => std::future::pending().await,
        }
    }
}

/// Serves picture files as camera frames: one fixed file, or a folder with a subfolder per card
/// UID (falling back to `default/`), whose pictures are handed out in name order, one per frame.
pub struct SimCamera {
    source: PathBuf,
    scene: Mutex<Option<CardUid>>,
    frames_served: AtomicUsize,
}

const DEFAULT_SCENE: &str = "default";

impl SimCamera {
    pub fn new(source: PathBuf) -> Self {
        Self { source, scene: Mutex::new(None), frames_served: AtomicUsize::new(0) }
    }

    fn error(detail: String) -> HwError {
        HwError::Io { role: "simulated camera", detail }
    }

    fn pictures_in(dir: &Path) -> Result<Vec<PathBuf>, HwError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Self::error(format!("cannot read the folder {}: {e}", dir.display())))?;
        let mut pictures: Vec<PathBuf> =
            entries.filter_map(|entry| entry.ok().map(|e| e.path())).filter(|path| path.is_file()).collect();
        pictures.sort();
        Ok(pictures)
    }

    /// The pictures the camera "sees" for the card tapped last.
    fn current_pictures(&self) -> Result<Vec<PathBuf>, HwError> {
        if self.source.is_file() {
            return Ok(vec![self.source.clone()]);
        }
        let card = self.scene.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let card_dir = card.as_ref().map(|c| self.source.join(c.as_str()));
        let dir = match card_dir {
            Some(dir) if dir.is_dir() => dir,
            _ => self.source.join(DEFAULT_SCENE),
        };
        if !dir.is_dir() {
            let card = card.map_or_else(|| "-".to_owned(), |c| c.to_string());
            return Err(Self::error(format!(
                "no pictures for card {card}: add {}/{card}/ or {}/{DEFAULT_SCENE}/ with JPEG or PNG files",
                self.source.display(),
                self.source.display()
            )));
        }
        let pictures = Self::pictures_in(&dir)?;
        if pictures.is_empty() {
            return Err(Self::error(format!("the folder {} has no pictures", dir.display())));
        }
        Ok(pictures)
    }
}

#[async_trait]
impl Camera for SimCamera {
    async fn frame(&self) -> Result<Frame, HwError> {
        let pictures = self.current_pictures()?;
        let index = self.frames_served.fetch_add(1, Ordering::Relaxed) % pictures.len();
        Frame::read(&pictures[index]).map_err(|e| Self::error(e.to_string()))
    }

    fn on_tap(&self, card: &CardUid) {
        *self.scene.lock().unwrap_or_else(|p| p.into_inner()) = Some(card.clone());
        self.frames_served.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_record_changes_and_fall_safe_when_dropped() {
        let recorder = OutputRecorder::default();
        {
            let mut relay = SimRelay::new(&recorder);
            let mut leds = SimIndicators::new(&recorder);
            relay.set(Lock::Unlocked).unwrap();
            relay.set(Lock::Unlocked).unwrap();
            leds.set(Lights { red: false, green: true }).unwrap();
            assert!(recorder.is_on(Output::Relay));
            assert!(recorder.is_on(Output::GreenLed));
        }
        assert!(!recorder.is_on(Output::Relay), "dropping the relay must lock the door");
        assert!(recorder.is_on(Output::RedLed));
        assert!(!recorder.is_on(Output::GreenLed));
        let relay: Vec<bool> = recorder.changes().iter().filter(|c| c.output == Output::Relay).map(|c| c.on).collect();
        assert_eq!(relay, [false, true, false], "built locked; repeated states are not recorded twice");
    }

    #[tokio::test]
    async fn camera_serves_the_tapped_cards_folder_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let card: CardUid = "04A1B2C3".parse().unwrap();
        std::fs::create_dir_all(dir.path().join("04A1B2C3")).unwrap();
        std::fs::write(dir.path().join("04A1B2C3/1.jpg"), [0xFF, 0xD8, 0xFF, 1]).unwrap();
        std::fs::write(dir.path().join("04A1B2C3/2.png"), b"\x89PNG").unwrap();
        let camera = SimCamera::new(dir.path().to_owned());

        let err = camera.frame().await.unwrap_err().to_string();
        assert!(err.contains("no pictures for card -"), "{err}");

        camera.on_tap(&card);
        assert_eq!(camera.frame().await.unwrap().bytes(), [0xFF, 0xD8, 0xFF, 1]);
        assert_eq!(camera.frame().await.unwrap().bytes(), b"\x89PNG");
        assert_eq!(camera.frame().await.unwrap().bytes(), [0xFF, 0xD8, 0xFF, 1]);
    }

    #[tokio::test]
    async fn camera_reports_unreadable_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "not a picture").unwrap();
        let err = SimCamera::new(file).frame().await.unwrap_err().to_string();
        assert!(err.contains("is not a JPEG or PNG image"), "{err}");
    }
}
