//! What others hold of a running door: its status, the commands it takes and the handles to
//! reach it (the control socket, the web app and the publisher use these).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Driver, Services, Setup};
use crate::access::{AccessEvent, Credential, Decision, Reason};
use crate::card::CardUid;
use crate::checks::Secret;
use crate::door::{DoorSettings, Mode};
use crate::engine::FaceEngine;
use crate::hw::simulated::{SimPresses, SimTaps};
use crate::hw::{BurstLimits, Camera, Hardware, HwError, Lock, Trouble};
use crate::liveness::Liveness;
use crate::notify::rules::Announcer;
use crate::schedule::ScheduleClock;
use crate::store::{Channel, MessageCounts, Store};
use crate::visitor::Passes;
use crate::voice::{Utterance, VoiceConfig};

/// What the running daemon reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub door: String,
    /// Which credentials open the door now; `card` opens for any enrolled card without a face.
    pub mode: Mode,
    pub armed: bool,
    pub lock: Lock,
    /// An attempt is under way.
    pub busy: bool,
    pub engine: String,
    pub reader: String,
    pub camera: String,
    /// The speaker's backend (`hardware.speaker`).
    #[serde(default)]
    pub speaker: String,
    /// MQTT notifications written but not yet delivered; `None` if the database did not answer.
    pub outbox_backlog: Option<u64>,
    /// How the messages of each channel in use stand; a channel is left out while the database
    /// does not answer.
    #[serde(default)]
    pub messages: BTreeMap<Channel, MessageCounts>,
    pub version: String,
    /// Why the camera's last burst failed; `None` once a burst works again (or none was taken).
    #[serde(default)]
    pub camera_error: Option<String>,
    /// Why the card reader does not answer while it keeps trying to come back; `None` when it works.
    #[serde(default)]
    pub reader_error: Option<String>,
    /// Whether the system clock is synchronised, read when the status is asked for: until it is,
    /// people and cards with time limits are refused (`clock_not_synced`).
    #[serde(default)]
    pub clock_synchronised: Option<bool>,
    /// Why the speaker cannot render or play phrases; a warning, never a denial.
    #[serde(default)]
    pub speaker_error: Option<String>,
}

/// Commands for the door driver.
#[derive(Debug)]
pub enum Command {
    /// Arm or disarm; the reply comes once the door has taken the change.
    SetArmed { armed: bool, done: oneshot::Sender<()> },
    /// New timings and thresholds (the web app's settings page), used from the next tap on.
    Retune { settings: DoorSettings, limits: BurstLimits, engine_timeout: Duration, done: oneshot::Sender<()> },
    /// New notification rules (the web app's settings page), used from the next attempt on.
    Reannounce { announcer: Announcer, done: oneshot::Sender<()> },
    /// New phrases and voice (the web app's settings page): every phrase is rendered again.
    Revoice { voice: Box<VoiceConfig>, done: oneshot::Sender<()> },
    /// Say this now, even in quiet hours (the settings page's "say it").
    Say { utterance: Utterance, done: oneshot::Sender<()> },
    /// A visitor's passcode or QR pass; the answer comes once the door has judged it.
    PresentPass { credential: Credential, secret: Secret, reply: oneshot::Sender<Answer> },
    /// The owner's "open now" for a visitor.
    OpenForVisitor { by: String, visitor: String, reply: oneshot::Sender<Answer> },
    /// An admin's "open" from the site view (a command over MQTT): the door's normal timed unlock.
    OpenFromSite { by: String, reply: oneshot::Sender<Answer> },
}

/// How the door answered a pass or an opening from afar.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Another attempt was under way; nothing was checked or used.
    Busy,
    Concluded {
        decision: Decision,
        reason: Reason,
        visitor: Option<String>,
    },
}

/// The door has stopped taking commands: it is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the door is shutting down")]
pub struct ShuttingDown;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Hardware(#[from] HwError),
    #[error("the door task failed: {0}")]
    Crashed(String),
}

/// What the control socket and the web app use to reach the door.
#[derive(Clone)]
pub struct ControlHandle {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Status>,
    pub taps: Option<SimTaps>,
    /// Presses the doorbell, when it is simulated.
    pub presses: Option<SimPresses>,
    pub store: Arc<dyn Store>,
    pub reader_trouble: Trouble,
    pub clock: ScheduleClock,
    pub speaker_trouble: Trouble,
}

impl ControlHandle {
    /// The door's state now, with the notification backlog read from the database.
    pub async fn current_status(&self) -> Status {
        let mut status = self.status.borrow().clone();
        status.reader_error = self.reader_trouble.now();
        status.clock_synchronised = Some(self.clock.sync.is_synchronised());
        status.speaker_error = self.speaker_trouble.now();
        status.outbox_backlog = self.store.door().outbox_backlog().await.ok();
        let channels: Vec<Channel> = std::mem::take(&mut status.messages).into_keys().collect();
        for channel in channels {
            if let Ok(counts) = self.store.messages().message_counts(channel).await {
                status.messages.insert(channel, counts);
            }
        }
        status
    }

    /// Sends `command` built around a reply channel and waits until the door has taken it.
    /// Sends a command whose answer comes once the door has judged it.
    pub async fn ask(&self, command: impl FnOnce(oneshot::Sender<Answer>) -> Command) -> Result<Answer, ShuttingDown> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| ShuttingDown)?;
        answer.await.map_err(|_| ShuttingDown)
    }

    pub async fn command(&self, command: impl FnOnce(oneshot::Sender<()>) -> Command) -> Result<(), ShuttingDown> {
        let (done, wait) = oneshot::channel();
        if self.commands.send(command(done)).await.is_err() || wait.await.is_err() {
            return Err(ShuttingDown);
        }
        Ok(())
    }
}

/// What the control socket and the web app need of a running door.
#[derive(Clone)]
pub struct DoorLink {
    pub control: ControlHandle,
    pub engine: Arc<dyn FaceEngine>,
    pub camera: Arc<dyn Camera>,
    /// Every card read, as it is read.
    pub card_reads: broadcast::Sender<CardUid>,
    /// Every attempt once it is in the log.
    pub attempts: broadcast::Sender<AccessEvent>,
    /// Who is told of what now, as the rules in force say.
    pub announcer: watch::Receiver<Announcer>,
    /// Visitors' passes, when `visitors.enabled`; shared with the door, which checks them.
    pub passes: Option<Passes>,
    /// The camera's burst after a tap as the door takes it now (the settings page may change it).
    pub burst_limits: watch::Receiver<BurstLimits>,
    /// The door's liveness checks, for others that judge a burst as the door does (face sign-in).
    pub liveness: Arc<Liveness>,
}

/// A door driven in its own task.
pub struct RunningDoor {
    pub link: DoorLink,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), HwError>>,
}

impl RunningDoor {
    pub fn start(setup: &Setup, hardware: Hardware, services: Services, armed: bool) -> Self {
        let (camera, taps, presses) = (Arc::clone(&hardware.camera), hardware.taps.clone(), hardware.presses.clone());
        let (engine, store, clock) =
            (Arc::clone(&services.engine), Arc::clone(&services.store), services.clock.clone());
        let (passes, liveness) = (services.passes.clone(), Arc::clone(&services.liveness));
        let (driver, reader, status) = Driver::new(setup, hardware, services, armed);
        let reader_trouble = reader.trouble();
        let speaker_trouble = driver.voice.trouble();
        let (commands, commands_rx) = mpsc::channel(8);
        let link = DoorLink {
            control: ControlHandle { commands, status, taps, presses, store, reader_trouble, clock, speaker_trouble },
            engine,
            camera,
            card_reads: driver.card_reads.clone(),
            attempts: driver.written.clone(),
            announcer: driver.announcer.subscribe(),
            passes,
            burst_limits: driver.limits.subscribe(),
            liveness,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(driver.run(reader, commands_rx, async {
            let _ = stopped.await;
        }));
        Self { link, stop, task }
    }

    /// Runs until `shutdown` completes or the door stops by itself (its reader failed), then
    /// waits until it is locked and its log written.
    pub async fn until(self, shutdown: impl Future<Output = ()>) -> Result<(), DriverError> {
        let Self { link, stop, mut task } = self;
        drop(link);
        let finished = tokio::select! {
            outcome = &mut task => Some(outcome),
            () = shutdown => None,
        };
        let outcome = match finished {
            Some(outcome) => outcome,
            None => {
                let _ = stop.send(());
                task.await
            }
        };
        Ok(outcome.map_err(|e| DriverError::Crashed(e.to_string()))??)
    }
}
