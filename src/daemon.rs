//! The running door: feeds hardware and results into the [`Door`] state machine and carries out
//! the effects it returns. Slow work (card lookup, capture, matching, writing the log) runs in
//! tasks that report back as events, so the loop never waits and taps are always read.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::capture;
use crate::card::CardUid;
use crate::config::{Config, DoorTuning};
use crate::control::{self, Command, ControlHandle, Status};
use crate::door::{AccessEvent, AttemptReport, Door, Effect, Event, Timer};
use crate::engine::{FaceEngine, Gallery};
use crate::frame::Frame;
#[cfg(feature = "pi")]
use crate::hw::gpio;
use crate::hw::simulated::{self, OutputRecorder, SimTaps};
use crate::hw::{Beeper, BurstLimits, Camera, CardReader, HwError, Indicators, Lights, Lock, LockRelay};
use crate::notify::mqtt::Publisher;
use crate::photos::Photos;
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hardware(#[from] HwError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("cannot start the face engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("another facereko is already running on {0} (its lock file is held)")]
    AlreadyRunning(String),
    #[error("cannot lock {path}: {detail}")]
    Lock { path: String, detail: String },
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::mqtt::NotifyError),
    #[error("web app: {0}")]
    Web(#[from] crate::web::WebError),
    #[error("the door task failed: {0}")]
    Crashed(String),
}

/// Longest wait for the database to say whose card was tapped.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The hardware of one door.
pub struct Hardware {
    pub indicators: Box<dyn Indicators>,
    pub buzzer: Box<dyn crate::hw::Buzzer>,
    pub relay: Box<dyn LockRelay>,
    pub reader: Box<dyn CardReader>,
    pub camera: Arc<dyn Camera>,
    /// Present when the reader is simulated: the control socket feeds it taps.
    pub taps: Option<SimTaps>,
}

impl Hardware {
    /// Builds the backends named in the config. Outputs are set safe by the driver before anything else.
    pub fn from_config(config: &Config) -> Result<Self, HwError> {
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
pub type Outputs = (Box<dyn Indicators>, Box<dyn crate::hw::Buzzer>, Box<dyn LockRelay>);

pub fn outputs_from_config(config: &Config) -> Result<Outputs, HwError> {
    let hw = &config.hardware;
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
    let buzzer: Box<dyn crate::hw::Buzzer> = match hw.buzzer.as_str() {
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
pub fn reader_from_config(config: &Config) -> Result<(Box<dyn CardReader>, Option<SimTaps>), HwError> {
    match config.hardware.reader.as_str() {
        simulated::NAME => {
            let (reader, taps) = simulated::sim_reader();
            Ok((Box::new(reader), Some(taps)))
        }
        #[cfg(feature = "pi")]
        crate::hw::mfrc522::NAME => {
            let c = &config.hardware.mfrc522;
            let settings = crate::hw::mfrc522::Mfrc522Settings {
                poll_interval: c.poll_interval,
                health_interval: c.health_interval,
            };
            let reader = crate::hw::mfrc522::Mfrc522Reader::open_pi(
                c.spi_bus,
                c.chip_select,
                c.reset_pin,
                c.clock_hz,
                settings,
            )?;
            Ok((Box::new(reader), None))
        }
        other => Err(not_compiled_in("reader", other)),
    }
}

/// The camera named in the config.
pub fn camera_from_config(config: &Config) -> Result<Arc<dyn Camera>, HwError> {
    let hw = &config.hardware;
    match hw.camera.as_str() {
        // Without pictures configured (card-only mode) the camera is never asked for a frame.
        simulated::NAME => Ok(Arc::new(simulated::SimCamera::new(hw.simulated.camera.clone().unwrap_or_default()))),
        crate::hw::rpicam::NAME => Ok(Arc::new(crate::hw::rpicam::StreamCamera::start(hw.rpicam.clone())?)),
        #[cfg(feature = "v4l2")]
        crate::hw::v4l2::NAME => Ok(Arc::new(crate::hw::v4l2::V4l2Camera::start(hw.v4l2.clone())?)),
        other => Err(not_compiled_in("camera", other)),
    }
}

/// Enrolled faces of the engine in use, reloaded when the store says they changed (also when
/// another process, such as `facereko enroll`, changed them).
pub struct GalleryCache {
    engine: String,
    cached: Mutex<(Option<u64>, Gallery)>,
}

impl GalleryCache {
    pub fn new(engine: &str) -> Self {
        Self { engine: engine.to_owned(), cached: Mutex::new((None, Vec::new().into())) }
    }

    /// The current gallery; if the store cannot be asked, the last one known.
    pub async fn current(&self, store: &dyn Store) -> Gallery {
        let mut cached = self.cached.lock().await;
        let refreshed = async {
            let version = store.faces_version().await?;
            if cached.0 == Some(version) {
                return Ok::<_, StoreError>(None);
            }
            let (version, faces) = store.faces(&self.engine).await?;
            Ok(Some((version, faces)))
        }
        .await;
        match refreshed {
            Ok(Some((version, faces))) => {
                tracing::debug!(faces = faces.len(), version, "loaded the enrolled faces");
                *cached = (Some(version), faces.into());
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the enrolled faces; using the ones loaded before"),
        }
        cached.1.clone()
    }
}

/// Everything the driver needs besides hardware.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn FaceEngine>,
    pub photos: Photos,
}

/// A finished attempt on its way to the log.
struct PendingRecord {
    event: AccessEvent,
    photo: Option<Frame>,
    notify: bool,
}

/// Writes go through one task, in order, so a quick arm/disarm/arm cannot land out of order.
enum Write {
    Attempt(Box<PendingRecord>),
    Armed(bool),
}

pub struct Driver {
    door: Door,
    indicators: Box<dyn Indicators>,
    beeper: Beeper,
    relay: Box<dyn LockRelay>,
    camera: Arc<dyn Camera>,
    services: Arc<Services>,
    gallery: Arc<GalleryCache>,
    door_id: String,
    /// Whether attempts go to the outbox: only when a broker is configured to take them.
    notifications: bool,
    limits: BurstLimits,
    engine_timeout: Duration,
    results_tx: mpsc::Sender<Event>,
    results_rx: mpsc::Receiver<Event>,
    relock_at: Option<Instant>,
    writes: mpsc::UnboundedSender<Write>,
    writer: JoinHandle<()>,
    status: watch::Sender<Status>,
    written: broadcast::Sender<AccessEvent>,
    /// Every card the reader reads, attempt or not (the web app's "tap the card now").
    card_reads: broadcast::Sender<CardUid>,
}

impl Driver {
    /// The driver and the two halves it leaves to others: the card reader and the status feed.
    pub fn new(
        config: &Config,
        hardware: Hardware,
        services: Services,
        armed: bool,
    ) -> (Self, Box<dyn CardReader>, watch::Receiver<Status>) {
        let services = Arc::new(services);
        let door = Door::new(config.door_settings(), armed);
        let (results_tx, results_rx) = mpsc::channel(16);
        let (writes, writes_rx) = mpsc::unbounded_channel();
        let (written, _) = broadcast::channel(64);
        let writer = tokio::spawn(write_records(Arc::clone(&services), writes_rx, written.clone()));
        let status = Status {
            door: config.door.id.clone(),
            armed,
            lock: Lock::Locked,
            busy: false,
            engine: services.engine.name().to_owned(),
            reader: config.hardware.reader.clone(),
            camera: config.hardware.camera.clone(),
            outbox_backlog: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            camera_error: None,
        };
        let (status_tx, status_rx) = watch::channel(status);
        let driver = Self {
            door,
            indicators: hardware.indicators,
            beeper: Beeper::new(hardware.buzzer),
            relay: hardware.relay,
            camera: hardware.camera,
            gallery: Arc::new(GalleryCache::new(services.engine.name())),
            services,
            door_id: config.door.id.clone(),
            notifications: config.mqtt.enabled(),
            limits: config.burst_limits(),
            engine_timeout: config.engine.timeout,
            results_tx,
            results_rx,
            relock_at: None,
            writes,
            writer,
            status: status_tx,
            written,
            card_reads: broadcast::channel(16).0,
        };
        (driver, hardware.reader, status_rx)
    }

    /// Runs the door until `shutdown` completes, then locks it and finishes writing the log.
    /// A card reader that stops is an error: the door locks and the daemon exits so that its
    /// supervisor restarts it, rather than running on deaf.
    pub async fn run(
        mut self,
        mut reader: Box<dyn CardReader>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), HwError> {
        let effects = self.door.start();
        self.apply(effects, Instant::now());
        let mut watchdog = sd_notify::watchdog_enabled()
            .filter(|period| !period.is_zero())
            .map(|period| tokio::time::interval(period / 2));
        let mut failure = None;
        tokio::pin!(shutdown);
        loop {
            let relock_at = self.relock_at;
            let beep_at = self.beeper.next_deadline();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(event) = self.results_rx.recv() => {
                    self.note_camera_health(&event);
                    self.feed(event);
                }
                uid = reader.next_uid() => match uid {
                    Ok(uid) => {
                        // Nobody waiting for a card is the usual case.
                        let _ = self.card_reads.send(uid.clone());
                        self.feed(Event::CardRead(uid));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the card reader stopped; locking and exiting");
                        failure = Some(e);
                        break;
                    }
                },
                Some(command) = commands.recv() => match command {
                    Command::SetArmed { armed, done } => {
                        self.feed(Event::SetArmed(armed));
                        let _ = done.send(());
                    }
                    Command::Retune { settings, limits, engine_timeout, done } => {
                        tracing::info!(?settings, ?limits, ?engine_timeout, "new door settings");
                        self.door.set_settings(settings);
                        self.limits = limits;
                        self.engine_timeout = engine_timeout;
                        let _ = done.send(());
                    }
                },
                () = sleep_until_some(relock_at) => {
                    self.relock_at = None;
                    self.feed(Event::TimerFired(Timer::Relock));
                }
                () = sleep_until_some(beep_at) => {
                    if let Err(e) = self.beeper.advance(Instant::now()) {
                        tracing::warn!(error = %e, "buzzer failed");
                    }
                }
                _ = tick_some(&mut watchdog) => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
        tracing::info!("shutting down: locking the door");
        self.feed(Event::Shutdown);
        let Self { writes, writer, .. } = self;
        drop(writes);
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "the log writer failed while finishing");
        }
        failure.map_or(Ok(()), Err)
    }

    /// Keeps the status's camera health up to date from the bursts' results.
    fn note_camera_health(&self, event: &Event) {
        if let Event::Captured { result, .. } = event {
            let error = result.as_ref().err();
            self.status.send_if_modified(|status| {
                let changed = status.camera_error.as_ref() != error;
                status.camera_error = error.cloned();
                changed
            });
        }
    }

    fn feed(&mut self, event: Event) {
        let now = Instant::now();
        let effects = self.door.handle(event, now);
        self.apply(effects, now);
        self.status.send_if_modified(|status| {
            let lock = if self.door.is_unlocked() { Lock::Unlocked } else { Lock::Locked };
            let changed =
                status.armed != self.door.armed() || status.lock != lock || status.busy != self.door.is_busy();
            status.armed = self.door.armed();
            status.lock = lock;
            status.busy = self.door.is_busy();
            changed
        });
    }

    fn apply(&mut self, effects: Vec<Effect>, now: Instant) {
        // Outputs come first in every batch; actuating is timed up to the report that follows them.
        let actuating_since = std::time::Instant::now();
        for effect in effects {
            match effect {
                Effect::SetLights(lights) => {
                    if let Err(e) = self.indicators.set(lights) {
                        tracing::warn!(error = %e, "cannot set the LEDs");
                    }
                }
                Effect::SetLock(lock) => {
                    if let Err(e) = self.relay.set(lock) {
                        tracing::error!(error = %e, ?lock, "cannot switch the lock relay");
                    }
                }
                Effect::Beep(pattern) => {
                    if let Err(e) = self.beeper.play(pattern, now) {
                        tracing::warn!(error = %e, "buzzer failed");
                    }
                }
                Effect::StopBeeping => {
                    if let Err(e) = self.beeper.stop() {
                        tracing::warn!(error = %e, "buzzer failed");
                    }
                }
                Effect::LookUpCard { attempt, uid } => {
                    self.camera.on_tap(&uid);
                    let store = Arc::clone(&self.services.store);
                    let crashed = Event::CardResolved { attempt, holder: Err("the card look-up failed".into()) };
                    self.spawn_result(crashed, async move {
                        let holder = match tokio::time::timeout(LOOKUP_TIMEOUT, store.card_holder(&uid)).await {
                            Ok(found) => found.map_err(|e| e.to_string()),
                            Err(_) => Err(format!("the database did not answer within {LOOKUP_TIMEOUT:?}")),
                        };
                        Event::CardResolved { attempt, holder }
                    });
                }
                Effect::Capture { attempt } => {
                    let (camera, services, limits) =
                        (Arc::clone(&self.camera), Arc::clone(&self.services), self.limits);
                    let crashed = Event::Captured { attempt, result: Err("the capture failed".into()) };
                    self.spawn_result(crashed, async move {
                        let result = capture::burst(camera.as_ref(), services.engine.as_ref(), limits).await;
                        Event::Captured { attempt, result }
                    });
                }
                Effect::Match { attempt, frame } => {
                    let (services, gallery, timeout) =
                        (Arc::clone(&self.services), Arc::clone(&self.gallery), self.engine_timeout);
                    let crashed = Event::Matched { attempt, result: Err("the face engine failed".into()) };
                    self.spawn_result(crashed, async move {
                        let search = async {
                            let faces = gallery.current(services.store.as_ref()).await;
                            services.engine.search(&frame, &faces).await.map_err(|e| e.to_string())
                        };
                        let result = tokio::time::timeout(timeout, search)
                            .await
                            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
                        Event::Matched { attempt, result }
                    });
                }
                Effect::StartTimer { timer: Timer::Relock, after } => self.relock_at = Some(now + after),
                Effect::Record(report) => {
                    let actuate = actuating_since.elapsed();
                    self.record(*report, actuate);
                }
                Effect::PersistArmed(armed) => {
                    tracing::info!(armed, "the door is now {}", if armed { "armed" } else { "disarmed" });
                    let _ = self.writes.send(Write::Armed(armed));
                }
            }
        }
    }

    /// Runs `work` as a task whose event comes back to the door. If the task panics, `crashed`
    /// comes back instead, so an attempt never waits for an answer that will not arrive.
    fn spawn_result(&self, crashed: Event, work: impl Future<Output = Event> + Send + 'static) {
        let results = self.results_tx.clone();
        let task = tokio::spawn(work);
        tokio::spawn(async move {
            let event = task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "an attempt's task failed");
                crashed
            });
            // The receiver is gone only when the driver has stopped; the result no longer matters.
            let _ = results.send(event).await;
        });
    }

    fn record(&self, report: AttemptReport, actuate: Duration) {
        let mut timings = report.timings;
        timings.actuate_ms = u32::try_from(actuate.as_millis()).unwrap_or(u32::MAX);
        timings.total_ms = timings.total_ms.saturating_add(timings.actuate_ms);
        let since_tap = Instant::now().saturating_duration_since(report.tapped_at);
        let engine = timings.match_ms.map(|_| self.services.engine.name().to_owned());
        let notify = self.notifications && report.notify();
        let event = AccessEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            at: OffsetDateTime::now_utc() - since_tap,
            door: self.door_id.clone(),
            card_uid: Some(report.card),
            person_id: report.person.as_ref().map(|p| p.id),
            person_name: report.person.map(|p| p.name),
            decision: report.decision,
            reason: report.reason,
            similarity: report.similarity,
            confidence: report.face_confidence,
            engine,
            photo: None,
            timings,
            detail: report.detail,
        };
        tracing::info!(
            door = %event.door,
            card = %event.card_uid.as_ref().map_or("-", |c| c.as_str()),
            person = event.person_name.as_deref().unwrap_or("-"),
            decision = %event.decision,
            reason = %event.reason,
            similarity = event.similarity,
            read_ms = timings.read_ms,
            capture_ms = timings.capture_ms,
            match_ms = timings.match_ms,
            actuate_ms = timings.actuate_ms,
            total_ms = timings.total_ms,
            detail = event.detail.as_deref(),
            "access attempt"
        );
        let pending = PendingRecord { event, photo: report.photo, notify };
        let _ = self.writes.send(Write::Attempt(Box::new(pending)));
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick_some(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn write_records(
    services: Arc<Services>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    written: broadcast::Sender<AccessEvent>,
) {
    while let Some(write) = writes.recv().await {
        match write {
            Write::Armed(armed) => {
                if let Err(e) = services.store.set_armed(armed).await {
                    tracing::error!(error = %e, armed, "cannot save the armed state");
                }
            }
            Write::Attempt(pending) => {
                let event = write_attempt(&services, *pending).await;
                // Nobody listening is fine.
                let _ = written.send(event);
            }
        }
    }
}

/// Saves the photo and the log row; returns the event as written (with its photo name).
async fn write_attempt(services: &Services, pending: PendingRecord) -> AccessEvent {
    let PendingRecord { mut event, photo, notify } = pending;
    if let Some(frame) = photo {
        let (photos, at) = (services.photos.clone(), event.at);
        match tokio::task::spawn_blocking(move || photos.save(&frame, at)).await {
            Ok(Ok(name)) => event.photo = Some(name),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save the attempt's photo"),
            Err(e) => tracing::error!(error = %e, "photo task failed"),
        }
    }
    if let Err(e) = services.store.record_attempt(&event, notify).await {
        // The event must not vanish: put all of it in the journal for recovery by hand.
        let json = serde_json::to_string(&event).unwrap_or_default();
        tracing::error!(error = %e, event = %json, "cannot write the access log");
    }
    event
}

/// Holds `<data_dir>/facereko.lock` so that two daemons never drive one door; the kernel
/// releases it when the process ends, however it ends.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, DaemonError> {
    let path = data_dir.join("facereko.lock");
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DaemonError::Lock { path: shown.clone(), detail: e.to_string() })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DaemonError::AlreadyRunning(data_dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(DaemonError::Lock { path: shown, detail: e.to_string() }),
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
}

/// A door driven in its own task.
pub struct RunningDoor {
    pub link: DoorLink,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), HwError>>,
}

impl RunningDoor {
    pub fn start(config: &Config, hardware: Hardware, services: Services, armed: bool) -> Self {
        let (camera, taps) = (Arc::clone(&hardware.camera), hardware.taps.clone());
        let (engine, store) = (Arc::clone(&services.engine), Arc::clone(&services.store));
        let (driver, reader, status) = Driver::new(config, hardware, services, armed);
        let (commands, commands_rx) = mpsc::channel(8);
        let link = DoorLink {
            control: ControlHandle { commands, status, taps, store },
            engine,
            camera,
            card_reads: driver.card_reads.clone(),
            attempts: driver.written.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(driver.run(reader, commands_rx, async {
            let _ = stopped.await;
        }));
        Self { link, stop, task }
    }

    /// Runs until `shutdown` completes or the door stops by itself (its reader failed), then
    /// waits until it is locked and its log written.
    pub async fn until(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
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
        Ok(outcome.map_err(|e| DaemonError::Crashed(e.to_string()))??)
    }
}

/// `config` with the door settings saved from the web app, when there are valid ones.
async fn with_saved_tuning(config: Config, store: &dyn Store) -> Config {
    let saved = match store.setting(DoorTuning::SETTING).await {
        Ok(Some(json)) => json,
        Ok(None) => return config,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the door settings saved from the web app; using the config's");
            return config;
        }
    };
    match serde_json::from_str::<DoorTuning>(&saved) {
        Ok(tuning) if config.tuning_problems(&tuning).is_empty() => {
            tracing::info!(?tuning, "using the door settings saved from the web app (they override the config file)");
            config.with_tuning(&tuning)
        }
        _ => {
            tracing::warn!("the door settings saved from the web app are not valid here; using the config's");
            config
        }
    }
}

/// Runs the daemon with the hardware and engine named in `config` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let _lock = lock_data_dir(&config.data_dir)?;
    // Outputs go safe before anything else can fail.
    let hardware = Hardware::from_config(&config)?;
    let store = store::open(&config.database, &config.data_dir).await?;
    let config = with_saved_tuning(config, store.as_ref()).await;
    let engine = crate::engine::build(&config.engine)?;
    let armed = store.armed().await?;
    let socket_path = config.control_socket();
    let listener = control::bind(&socket_path).await?;
    let _socket = control::SocketGuard(socket_path.clone());
    let web_listener = match config.web.enabled() {
        true => Some(crate::web::bind(&config.web).await?),
        false => None,
    };

    // Made before the door starts so a bad certificate stops the daemon at once, with the reason.
    let publisher = match config.mqtt.enabled() {
        true => Some(Publisher::new(config.mqtt.clone(), config.door.id.clone(), Arc::clone(&store))?),
        false => None,
    };

    let services = Services { store: Arc::clone(&store), engine, photos: Photos::new(config.photos_dir()) };
    let door = RunningDoor::start(&config, hardware, services, armed);
    let publisher = publisher
        .map(|publisher| tokio::spawn(publisher.run(door.link.attempts.subscribe(), door.link.control.status.clone())));
    let server = tokio::spawn(control::serve(listener, door.link.control.clone()));
    let web = match web_listener {
        Some(listener) => {
            Some(crate::web::start(listener, crate::web::WebState::new(&config, door.link.clone()).await))
        }
        None => None,
    };

    tracing::info!(
        door = %config.door.id,
        mode = %config.door.mode,
        engine = %config.engine.kind,
        armed,
        socket = %socket_path.display(),
        web = %config.web.listen,
        "facereko is running"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let outcome = door.until(shutdown).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    server.abort();
    if let Some(web) = web {
        web.stop().await;
    }
    if let Some(publisher) = publisher {
        publisher.abort();
    }
    outcome
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;

#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("the attempt did not finish")]
    Unfinished,
}

/// One attempt through the real pipeline (policy, engine, store, log) with a simulated reader
/// and a simulated camera showing `picture`. The door counts as armed; the outputs are simulated.
pub async fn simulate_attempt(
    config: &Config,
    card: crate::card::CardUid,
    picture: std::path::PathBuf,
) -> Result<AccessEvent, SimulationError> {
    let store = store::open(&config.database, &config.data_dir).await.map_err(DaemonError::from)?;
    let engine = crate::engine::build(&config.engine).map_err(DaemonError::from)?;
    let hardware = Hardware::simulated(&OutputRecorder::default(), picture);
    let services = Services { store, engine, photos: Photos::new(config.photos_dir()) };
    let config = with_saved_tuning(config.clone(), services.store.as_ref()).await;
    let door = RunningDoor::start(&config, hardware, services, true);
    let mut written = door.link.attempts.subscribe();
    let taps = door.link.control.taps.clone().expect("simulated hardware has a tap handle");
    let _ = taps.tap(card).await;
    let event = written.recv().await.map_err(|_| SimulationError::Unfinished);
    door.until(async {}).await?;
    event
}
