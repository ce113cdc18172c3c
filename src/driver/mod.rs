//! The running door: feeds hardware and results into the [`Door`] state machine and carries out
//! the effects it returns. Slow work (card lookup, capture, matching, writing the log) runs in
//! tasks that report back as events, so the loop never waits and taps are always read.

mod gallery;
mod handle;
mod journal;
mod recorder;
mod tuning;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::access::{AccessEvent, Decision, Person, Reason, StageTimings};
use crate::capture;
use crate::card::CardUid;
use crate::door::{AttemptReport, Capture, Door, DoorConfig, DoorSettings, Effect, Event, Mode, Timer};
use crate::engine::FaceEngine;
use crate::hw::{Beeper, BurstLimits, Camera, CardReader, Hardware, HwError, Indicators, Lights, Lock, LockRelay};
use crate::liveness::{BurstFrame, Challenge, Liveness};
use crate::notify::rules::Announcer;
use crate::photos::Photos;
use crate::schedule::{Admission, ScheduleClock};
use crate::store::{Channel, MessageCounts, Notices, Store, StoreError};
use crate::visitor::Passes;
use crate::voice::{Utterance, Voice, VoiceConfig};
pub use gallery::GalleryCache;
pub use handle::{Answer, Command, ControlHandle, DoorLink, DriverError, RunningDoor, ShuttingDown, Status};
use journal::Row;
pub use journal::{Journal, JournalError};
use recorder::{PendingRecord, Write, write_records};
pub use tuning::{DoorTuning, Tunable};

/// Longest wait for the database to say whose card was tapped.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a door in card-only mode says so in the log.
const CARD_ONLY_REMINDER: Duration = Duration::from_secs(3600);
/// Both LEDs at once (amber on a two-colour LED) while the door asks for a head turn.
const ASK_TO_TURN: Lights = Lights { red: true, green: true };

/// The moment card-only mode ends, on the monotonic clock, when the door is in it and it has an end.
fn card_only_ends_at(door: &DoorConfig) -> Option<Instant> {
    let until = door.card_only_until.filter(|_| door.mode == Mode::CardOnly)?;
    let left = until - OffsetDateTime::now_utc();
    Some(Instant::now() + Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// The card's holder and what the holder's door rights and the time limits of holder and card say
/// about it at `door_id` now.
async fn look_up(services: &Services, door_id: &str, uid: &CardUid) -> Result<(Option<Person>, Admission), StoreError> {
    let door = services.store.door();
    let Some(holder) = door.card_holder(uid).await? else { return Ok((None, Admission::Open)) };
    let admission = services.clock.admit(&door.access_rules().await?, door_id, holder.id, uid);
    Ok((Some(holder), admission))
}

/// The status's message channels: those the rules use, their counts read when the status is asked for.
fn message_channels(announcer: &Announcer) -> BTreeMap<Channel, MessageCounts> {
    announcer.channels().into_iter().map(|channel| (channel, MessageCounts::default())).collect()
}

/// What the driver takes from the configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The door's, capture's and engine's sections: timings, thresholds, the door's id.
    pub tunable: Tunable,
    /// The backends in use, as the status shows them.
    pub reader: String,
    pub camera: String,
    pub speaker: String,
    /// Who is told of each attempt, and how.
    pub announcer: Announcer,
    /// What the door says, and how.
    pub voice: VoiceConfig,
    /// Where the rendered phrases are kept.
    pub clips_dir: PathBuf,
}

/// Everything the driver needs besides hardware.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn FaceEngine>,
    pub photos: Photos,
    /// Each attempt's row until it is in the store.
    pub journal: Journal,
    /// The time zone and clock that people's and cards' time limits are judged by.
    pub clock: ScheduleClock,
    /// Visitors' passes, when `visitors.enabled`.
    pub passes: Option<Passes>,
    /// The checks that tell a face from a picture of one, run on each tap's burst.
    pub liveness: Arc<Liveness>,
}

/// The attempt under way, as the journal knows it.
struct OpenAttempt {
    event_id: String,
    /// Wall-clock time of the tap.
    at: OffsetDateTime,
}

pub struct Driver {
    door: Door,
    indicators: Box<dyn Indicators>,
    /// The LEDs show [`ASK_TO_TURN`] until the burst is in; the door's own lights follow.
    asking_to_turn: bool,
    beeper: Beeper,
    relay: Box<dyn LockRelay>,
    camera: Arc<dyn Camera>,
    /// Speaks beside the door, on a thread of its own: telling it never waits.
    voice: Voice,
    services: Arc<Services>,
    gallery: Arc<GalleryCache>,
    door_id: String,
    /// Who is told of each attempt; the web app's settings page may change it while the door runs.
    announcer: watch::Sender<Announcer>,
    /// The camera's burst after a tap; the visitors' rings take their photo with the same.
    limits: watch::Sender<BurstLimits>,
    engine_timeout: Duration,
    results_tx: mpsc::Sender<Event>,
    results_rx: mpsc::Receiver<Event>,
    relock_at: Option<Instant>,
    open_attempt: Option<OpenAttempt>,
    /// When card-only mode gives way to card and face (`door.card_only_until`).
    card_only_ends_at: Option<Instant>,
    writes: mpsc::UnboundedSender<Write>,
    writer: JoinHandle<()>,
    status: watch::Sender<Status>,
    written: broadcast::Sender<AccessEvent>,
    /// Every card the reader reads, attempt or not (the web app's "tap the card now").
    card_reads: broadcast::Sender<CardUid>,
    /// Who asked for the pass or opening being fed to the door right now.
    asking: Option<oneshot::Sender<Answer>>,
    /// Who waits for the verdict on the pass under way.
    answer_to: Option<oneshot::Sender<Answer>>,
}

impl Driver {
    /// The driver and the two halves it leaves to others: the card reader and the status feed.
    pub fn new(
        setup: &Setup,
        hardware: Hardware,
        services: Services,
        armed: bool,
    ) -> (Self, Box<dyn CardReader>, watch::Receiver<Status>) {
        let services = Arc::new(services);
        let door = Door::new(setup.tunable.door_settings(), armed);
        let (results_tx, results_rx) = mpsc::channel(16);
        let (writes, writes_rx) = mpsc::unbounded_channel();
        let (written, _) = broadcast::channel(64);
        let unwritten = services.journal.take_unwritten();
        let writer = tokio::spawn(write_records(Arc::clone(&services), unwritten, writes_rx, written.clone()));
        let status = Status {
            door: setup.tunable.door.id.clone(),
            mode: setup.tunable.door.mode,
            armed,
            lock: Lock::Locked,
            busy: false,
            engine: services.engine.name().to_owned(),
            reader: setup.reader.clone(),
            camera: setup.camera.clone(),
            speaker: setup.speaker.clone(),
            outbox_backlog: None,
            // The channels the rules use; their counts are read when the status is asked for.
            messages: message_channels(&setup.announcer),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            camera_error: None,
            reader_error: None,
            clock_synchronised: None,
            speaker_error: None,
        };
        let (status_tx, status_rx) = watch::channel(status);
        let driver = Self {
            door,
            indicators: hardware.indicators,
            asking_to_turn: false,
            beeper: Beeper::new(hardware.buzzer),
            relay: hardware.relay,
            camera: hardware.camera,
            voice: Voice::start(hardware.speaker, setup.voice.clone(), setup.clips_dir.clone()),
            gallery: Arc::new(GalleryCache::new(services.engine.template_kind())),
            services,
            door_id: setup.tunable.door.id.clone(),
            announcer: watch::Sender::new(setup.announcer.clone()),
            limits: watch::Sender::new(setup.tunable.capture.limits()),
            engine_timeout: setup.tunable.engine.timeout,
            results_tx,
            results_rx,
            relock_at: None,
            open_attempt: None,
            card_only_ends_at: card_only_ends_at(&setup.tunable.door),
            writes,
            writer,
            status: status_tx,
            written,
            card_reads: broadcast::channel(16).0,
            asking: None,
            answer_to: None,
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
        self.greet_known_people();
        let mut watchdog = sd_notify::watchdog_enabled()
            .filter(|period| !period.is_zero())
            .map(|period| tokio::time::interval(period / 2));
        // Card-only is for commissioning: it is said at start and every hour while it lasts.
        let mut card_only_reminder = None;
        if self.door.settings().mode == Mode::CardOnly {
            card_only_reminder = Some(tokio::time::interval(CARD_ONLY_REMINDER));
        }
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
                    // While the face is checked, the greeting is made ready, should it be a grant.
                    if let Event::CardResolved { holder: Ok(Some(person)), .. } = &event {
                        self.voice.prepare(Utterance::Granted { name: person.name.clone() });
                    }
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
                    Command::Retune { mut settings, limits, engine_timeout, done } => {
                        // Timings and thresholds only: a card-only period that has ended stays ended.
                        settings.mode = self.door.settings().mode;
                        tracing::info!(?settings, ?limits, ?engine_timeout, "new door settings");
                        self.door.set_settings(settings);
                        self.limits.send_replace(limits);
                        self.engine_timeout = engine_timeout;
                        let _ = done.send(());
                    }
                    Command::Reannounce { announcer, done } => {
                        tracing::info!(channels = ?announcer.channels(), "new notification rules");
                        self.status.send_modify(|status| status.messages = message_channels(&announcer));
                        self.announcer.send_replace(announcer);
                        let _ = done.send(());
                    }
                    Command::Revoice { voice, done } => {
                        tracing::info!(language = %voice.language, volume = voice.volume, "new phrases and voice");
                        self.voice.set_config(*voice);
                        let _ = done.send(());
                    }
                    Command::Say { utterance, done } => {
                        self.voice.say_anyway(utterance);
                        let _ = done.send(());
                    }
                    Command::PresentPass { credential, secret, reply } => {
                        self.ask(reply, Event::PassPresented { credential, secret });
                    }
                    Command::OpenForVisitor { by, visitor, reply } => {
                        self.ask(reply, Event::RemoteOpen { by, visitor: Some(visitor) });
                    }
                    Command::OpenFromSite { by, reply } => {
                        self.ask(reply, Event::RemoteOpen { by, visitor: None });
                    }
                },
                () = sleep_until_some(relock_at) => {
                    self.relock_at = None;
                    self.feed(Event::TimerFired(Timer::Relock));
                }
                () = sleep_until_some(self.card_only_ends_at) => {
                    self.end_card_only();
                    card_only_reminder = None;
                }
                _ = tick_some(&mut card_only_reminder) => {
                    tracing::warn!(
                        until = ?self.card_only_ends_at.map(|at| at.saturating_duration_since(Instant::now())),
                        "card-only mode: any enrolled card opens the door without a face; set door.mode = \"card+face\" \
                         once commissioning is done"
                    );
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

    /// Hands the names of the people enrolled now to the voice, whose greetings it renders ahead.
    fn greet_known_people(&self) {
        let (store, voice) = (Arc::clone(&self.services.store), self.voice.clone());
        tokio::spawn(async move {
            match store.people().list_people().await {
                Ok(people) => voice.know_names(people.into_iter().map(|person| person.name).collect()),
                Err(e) => tracing::debug!(error = %e, "cannot list the people to render their greetings ahead"),
            }
        });
    }

    /// `door.card_only_until` has come: faces are needed again from the next tap on.
    fn end_card_only(&mut self) {
        self.card_only_ends_at = None;
        let settings = DoorSettings { mode: Mode::CardAndFace, ..self.door.settings().clone() };
        self.door.set_settings(settings);
        self.status.send_modify(|status| status.mode = Mode::CardAndFace);
        tracing::warn!("door.card_only_until has passed: the door asks for card and face again");
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

    /// Feeds an event someone waits on: they hear "busy" at once, or the verdict when it comes.
    fn ask(&mut self, reply: oneshot::Sender<Answer>, event: Event) {
        self.asking = Some(reply);
        self.feed(event);
        if let Some(reply) = self.asking.take() {
            self.answer_to = Some(reply);
        }
    }

    fn feed(&mut self, event: Event) {
        let now = Instant::now();
        if self.asking_to_turn && matches!(event, Event::Captured { .. }) {
            self.asking_to_turn = false;
            self.show(self.door.idle_lights());
        }
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

    fn show(&mut self, lights: Lights) {
        if let Err(e) = self.indicators.set(lights) {
            tracing::warn!(error = %e, "cannot set the LEDs");
        }
    }

    fn apply(&mut self, effects: Vec<Effect>, now: Instant) {
        // A verdict's report comes before its outputs: it is on disk before the relay moves, and
        // actuating is timed from the report, its flush included, to the end of the batch.
        let mut concluded = None;
        for effect in effects {
            match effect {
                Effect::SetLights(lights) => self.show(lights),
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
                    self.begin_attempt(Some(&uid));
                    self.camera.on_tap(&uid);
                    let (services, door_id) = (Arc::clone(&self.services), self.door_id.clone());
                    let crashed = Event::CardResolved {
                        attempt,
                        holder: Err("the card look-up failed".into()),
                        admission: Admission::Open,
                    };
                    self.spawn_result(crashed, async move {
                        let (holder, admission) =
                            match tokio::time::timeout(LOOKUP_TIMEOUT, look_up(&services, &door_id, &uid)).await {
                                Ok(Ok((holder, admission))) => (Ok(holder), admission),
                                Ok(Err(e)) => (Err(e.to_string()), Admission::Open),
                                Err(_) => (
                                    Err(format!("the database did not answer within {LOOKUP_TIMEOUT:?}")),
                                    Admission::Open,
                                ),
                            };
                        Event::CardResolved { attempt, holder, admission }
                    });
                }
                Effect::Capture { attempt } => {
                    if self.services.liveness.challenge() == Challenge::Turn {
                        // The turn prompt for those who cannot hear the voice; the verdict's
                        // lights replace it.
                        self.show(ASK_TO_TURN);
                        self.asking_to_turn = true;
                    }
                    let (camera, services, limits) =
                        (Arc::clone(&self.camera), Arc::clone(&self.services), *self.limits.borrow());
                    let voice = self.voice.clone();
                    let results = self.results_tx.clone();
                    let crashed = Event::Captured { attempt, result: Err("the capture failed".into()) };
                    self.spawn_result(crashed, async move {
                        let gathering = services.liveness.gathering();
                        if services.liveness.challenge() == Challenge::Turn {
                            voice.say(Utterance::TurnHead);
                        }
                        let look = move || voice.say(Utterance::LookAtCamera);
                        // Matching starts while the burst goes on for the checks. Were the queue
                        // full, the door would match once the burst is in, as without the checks.
                        let found = |capture: &Capture| {
                            let _ = results.try_send(Event::FaceFound { attempt, capture: capture.clone() });
                        };
                        let taken = capture::burst_for_liveness(
                            camera.as_ref(),
                            services.engine.as_ref(),
                            limits,
                            gathering,
                            look,
                            found,
                        )
                        .await;
                        let result = match taken {
                            Ok(taken) => Ok(judge_liveness(&services.liveness, taken).await),
                            Err(e) => Err(e),
                        };
                        Event::Captured { attempt, result }
                    });
                }
                Effect::Match { attempt, frame } => {
                    let (services, gallery, timeout) =
                        (Arc::clone(&self.services), Arc::clone(&self.gallery), self.engine_timeout);
                    let crashed = Event::Matched { attempt, result: Err("the face engine failed".into()) };
                    self.spawn_result(crashed, async move {
                        let search = async {
                            let faces = gallery.current(services.store.door()).await;
                            services.engine.search(&frame, &faces).await.map_err(|e| e.to_string())
                        };
                        let result = tokio::time::timeout(timeout, search)
                            .await
                            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
                        Event::Matched { attempt, result }
                    });
                }
                Effect::CheckPass { attempt, credential, secret } => {
                    self.begin_attempt(None);
                    let passes = self.services.passes.clone();
                    let crashed = Event::PassChecked { attempt, result: Err("the pass check failed".into()) };
                    self.spawn_result(crashed, async move {
                        let Some(passes) = passes else {
                            return Event::PassChecked { attempt, result: Err("visitors are turned off".into()) };
                        };
                        let check = passes.check(&credential, &secret, OffsetDateTime::now_utc());
                        let result = match tokio::time::timeout(LOOKUP_TIMEOUT, check).await {
                            Ok(result) => result.map_err(|e| e.to_string()),
                            Err(_) => Err(format!("the database did not answer within {LOOKUP_TIMEOUT:?}")),
                        };
                        Event::PassChecked { attempt, result }
                    });
                }
                Effect::Busy(credential) => {
                    tracing::info!(?credential, "turned away: another attempt is under way");
                    if let Some(reply) = self.asking.take() {
                        let _ = reply.send(Answer::Busy);
                    }
                }
                Effect::StartTimer { timer: Timer::Relock, after } => self.relock_at = Some(now + after),
                Effect::Record(report) => {
                    let since = std::time::Instant::now();
                    if report.credential.card().is_none() {
                        self.answer(&report);
                    }
                    concluded = Some((self.conclude(*report), since));
                }
                Effect::PersistArmed(armed) => {
                    tracing::info!(armed, "the door is now {}", if armed { "armed" } else { "disarmed" });
                    let _ = self.writes.send(Write::Armed(armed));
                }
            }
        }
        if let Some((pending, since)) = concluded {
            let verdict = Utterance::verdict(&pending.row.event);
            self.record(pending, since.elapsed());
            // Last, once the relay and the LEDs are set: the voice's thread takes it from here.
            if let Some(utterance) = verdict {
                self.voice.say(utterance);
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

    /// Tells whoever presented a pass, or opened from afar, how it ended.
    fn answer(&mut self, report: &AttemptReport) {
        if let Some(reply) = self.asking.take().or_else(|| self.answer_to.take()) {
            let _ = reply.send(Answer::Concluded {
                decision: report.decision,
                reason: report.reason,
                visitor: report.visitor.clone(),
            });
        }
    }

    /// Journals a new attempt as `interrupted`: what it was, should the daemon die before its
    /// verdict. Not synced: that survives a kill, and the verdict's sync flushes it anyway.
    fn begin_attempt(&mut self, card: Option<&CardUid>) {
        let open = OpenAttempt { event_id: uuid::Uuid::new_v4().to_string(), at: OffsetDateTime::now_utc() };
        let event = AccessEvent {
            event_id: open.event_id.clone(),
            at: open.at,
            door: self.door_id.clone(),
            card_uid: card.cloned(),
            person_id: None,
            person_name: None,
            decision: Decision::Denied,
            reason: Reason::Interrupted,
            similarity: None,
            confidence: None,
            engine: None,
            photo: None,
            timings: StageTimings::default(),
            detail: None,
        };
        let notices = self.announcer.borrow().notices_for(&event);
        self.journal(&Row { event, notices }, false);
        self.open_attempt = Some(open);
    }

    /// The finished attempt's row, journalled and synced to disk before its outputs move.
    fn conclude(&mut self, report: AttemptReport) -> PendingRecord {
        // The door concludes only attempts it began, so the fallback is for the type's sake.
        let OpenAttempt { event_id, at } = self.open_attempt.take().unwrap_or_else(|| OpenAttempt {
            event_id: uuid::Uuid::new_v4().to_string(),
            at: OffsetDateTime::now_utc() - Instant::now().saturating_duration_since(report.tapped_at),
        });
        let engine = report.timings.match_ms.map(|_| self.services.engine.name().to_owned());
        let announced = report.notify();
        let event = AccessEvent {
            event_id,
            at,
            door: self.door_id.clone(),
            card_uid: report.credential.card().cloned(),
            person_id: report.person.as_ref().map(|p| p.id),
            person_name: report.person.map(|p| p.name).or(report.visitor),
            decision: report.decision,
            reason: report.reason,
            similarity: report.similarity,
            confidence: report.face_confidence,
            engine,
            photo: None,
            timings: report.timings,
            detail: report.detail,
        };
        let notices = if announced { self.announcer.borrow().notices_for(&event) } else { Notices::NONE };
        let row = Row { event, notices };
        self.journal(&row, true);
        PendingRecord { row, photo: report.photo }
    }

    fn journal(&self, row: &Row, synced: bool) {
        if let Err(e) = self.services.journal.keep(row, synced) {
            // The door carries on: a full disk must not keep people out. The row still reaches
            // the store from memory; only a kill before that would lose it.
            tracing::error!(error = %e, event_id = %row.event.event_id, "cannot journal the attempt");
        }
    }

    /// Logs the attempt with its timings and hands it to the recorder.
    fn record(&self, mut pending: PendingRecord, actuate: Duration) {
        let event = &mut pending.row.event;
        let timings = &mut event.timings;
        timings.actuate_ms = u32::try_from(actuate.as_millis()).unwrap_or(u32::MAX);
        timings.total_ms = timings.total_ms.saturating_add(timings.actuate_ms);
        let timings = *timings;
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
        let _ = self.writes.send(Write::Attempt(Box::new(pending)));
    }
}

/// The burst's best frame with what the liveness checks said of the whole burst (none when they
/// are off or no frame showed a face). The checks run off the async threads. Face sign-in judges
/// its bursts from the browser's camera with it too.
pub async fn judge_liveness(liveness: &Arc<Liveness>, taken: capture::Taken) -> Capture {
    let capture::Taken { best, mut burst } = taken;
    let Some(face) = best.face.filter(|_| liveness.is_on()) else { return best };
    if burst.frames.is_empty() {
        // A burst that stopped at the first good face (`log` mode): the checks look at that frame.
        burst.frames.push(BurstFrame::new(best.frame.clone(), face));
    }
    let checks = Arc::clone(liveness);
    let assessment = match tokio::task::spawn_blocking(move || checks.assess(&burst)).await {
        Ok(assessment) => assessment,
        Err(e) => {
            // Deny-only checks that crashed deny nothing; the crash is logged.
            tracing::error!(error = %e, "the liveness checks failed");
            None
        }
    };
    if let Some(assessment) = &assessment {
        tracing::info!(took_us = assessment.took.as_micros(), summary = %assessment.summary(), "liveness");
    }
    Capture { liveness: assessment, ..best }
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

#[cfg(test)]
mod tests;
