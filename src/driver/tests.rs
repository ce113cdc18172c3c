//! The driver against simulated outputs, a real SQLite store in a temporary folder and a scripted
//! face engine, on tokio's paused clock. SQLite and photo writes run on blocking threads, so the
//! tests poll for their results (a bounded number of times) instead of assuming an order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tempfile::TempDir;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Command, Driver, Journal, Services, Setup, Status, Tunable};
use crate::access::Person;
use crate::access::{Decision, Reason};
use crate::capture::CaptureConfig;
use crate::card::CardUid;
use crate::door::{DoorConfig, Mode};
use crate::engine::EngineConfig;
use crate::engine::{Comparison, DetectedFace, EngineError, FaceEngine, FaceTemplate, Gallery, SearchOutcome};
use crate::frame::Frame;
use crate::hw::Hardware;
use crate::hw::simulated::{
    Output, OutputRecorder, SimBuzzer, SimIndicators, SimRelay, SimSpeaker, SimTaps, sim_reader,
};
use crate::hw::{Camera, HwError, Lock, LockRelay, Pcm, Speaker, VoiceSpec};
use crate::liveness::{Challenge, Liveness, LivenessConfig};
use crate::notify::email::EmailConfig;
use crate::notify::rules::{Announcer, NotifyConfig};
use crate::notify::sms::SmsConfig;
use crate::photos::Photos;
use crate::schedule::{ClockSync, DoorRight, Limits, ScheduleClock, Weekdays, Window};
use crate::store::sqlite::SqliteStore;
use crate::store::{LogEntry, LogQuery, Store};
use crate::voice::VoiceConfig;

const ALICE_CARD: &str = "04A1B2C3";
const STRANGER_CARD: &str = "04DEAD00";
const ENGINE: &str = "scripted";
const UNLOCK: Duration = Duration::from_secs(5);
/// The defaults of `door.grant_beep`, `door.deny_beeps` and `door.deny_beep`.
const GRANT_BEEP: Duration = Duration::from_secs(2);
const DENY_BEEPS: usize = 3;
const DENY_BEEP: Duration = Duration::from_millis(150);
/// Timers fire on whole milliseconds, so switch times may be a little late.
const SLACK: Duration = Duration::from_millis(5);
const POLLS: usize = 500;
const JPEG: [u8; 8] = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F'];

fn card(uid: &str) -> CardUid {
    uid.parse().expect("test card UIDs are valid")
}

/// How the engine answers a search.
enum Answer {
    Outcome(SearchOutcome),
    Fail(String),
    /// Never answers, as a hung remote engine.
    Hang,
    /// Panics, as an engine with a bug would.
    Panic,
}

/// Sees one confident face in every frame but the first `blank_frames`, and answers searches as scripted.
struct ScriptedEngine {
    answer: Mutex<Answer>,
    searching: Notify,
    blank_frames: AtomicUsize,
}

impl ScriptedEngine {
    fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("engine script") = answer;
    }
}

#[async_trait]
impl FaceEngine for ScriptedEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    async fn detect(&self, _image: &Frame) -> Result<Vec<DetectedFace>, EngineError> {
        let blank = self.blank_frames.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok();
        if blank {
            return Ok(Vec::new());
        }
        Ok(vec![DetectedFace { x: 0, y: 0, width: 64, height: 64, confidence: 99.5, landmarks: None }])
    }

    async fn enroll(&self, _person: crate::access::PersonId, _image: &Frame) -> Result<FaceTemplate, EngineError> {
        Err(EngineError::Unavailable("the scripted engine does not enroll".into()))
    }

    async fn forget(&self, _template: &FaceTemplate) -> Result<(), EngineError> {
        Ok(())
    }

    async fn search(&self, _image: &Frame, _gallery: &Gallery) -> Result<SearchOutcome, EngineError> {
        self.searching.notify_one();
        // Decided under the lock, acted on after it is released, so a scripted panic cannot poison it.
        let (result, crash) = match &*self.answer.lock().expect("engine script") {
            Answer::Outcome(outcome) => (Some(Ok(outcome.clone())), false),
            Answer::Fail(detail) => (Some(Err(EngineError::Unavailable(detail.clone()))), false),
            Answer::Hang => (None, false),
            Answer::Panic => (None, true),
        };
        assert!(!crash, "the scripted engine crashes");
        match result {
            Some(result) => result,
            None => std::future::pending().await,
        }
    }

    async fn compare(&self, _first: &Frame, _second: &Frame) -> Result<Comparison, EngineError> {
        Err(EngineError::Unavailable("the scripted engine does not compare".into()))
    }
}

/// Always sees the same picture, and counts how often it was asked.
struct StillCamera {
    frames: AtomicUsize,
}

#[async_trait]
impl Camera for StillCamera {
    async fn frame(&self) -> Result<Frame, HwError> {
        self.frames.fetch_add(1, Ordering::Relaxed);
        Ok(Frame::from_bytes(JPEG.to_vec(), "still camera").expect("JPEG magic"))
    }
}

/// The simulated relay, noting what the journal held each time it was energised.
struct WatchedRelay {
    relay: SimRelay,
    journal: std::path::PathBuf,
    journal_at_openings: Arc<Mutex<Vec<String>>>,
}

impl LockRelay for WatchedRelay {
    fn set(&mut self, lock: Lock) -> Result<(), HwError> {
        if lock == Lock::Unlocked {
            let journal = std::fs::read_to_string(&self.journal).expect("read the journal");
            self.journal_at_openings.lock().unwrap().push(journal);
        }
        self.relay.set(lock)
    }
}

/// A clock whose synchronisation the test sets; synchronised at first.
#[derive(Debug)]
struct SettableClock(std::sync::atomic::AtomicBool);

impl SettableClock {
    fn set(&self, synchronised: bool) {
        self.0.store(synchronised, Ordering::SeqCst);
    }
}

impl ClockSync for SettableClock {
    fn is_synchronised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A running driver with everything the tests look at.
struct Rig {
    _dir: TempDir,
    photos: Photos,
    recorder: OutputRecorder,
    store: Arc<SqliteStore>,
    engine: Arc<ScriptedEngine>,
    camera: Arc<StillCamera>,
    alice: Person,
    clock: Arc<SettableClock>,
    /// The journal's content at each opening of the relay.
    journal_at_openings: Arc<Mutex<Vec<String>>>,
    taps: Option<SimTaps>,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    stop: Option<oneshot::Sender<()>>,
    running: JoinHandle<Result<(), HwError>>,
}

impl Rig {
    /// Alice holds `ALICE_CARD`; the engine answers `NoFace` until told otherwise.
    async fn start(armed: bool) -> Self {
        Self::start_with(armed, DoorConfig { unlock_time: UNLOCK, ..DoorConfig::default() }).await
    }

    async fn start_with(armed: bool, door: DoorConfig) -> Self {
        Self::start_speaking(armed, door, |recorder| Box::new(SimSpeaker::new(recorder))).await
    }

    /// With the speaker `speaker` makes (the simulated one records into the outputs' recorder).
    async fn start_speaking(
        armed: bool,
        door: DoorConfig,
        speaker: impl FnOnce(&OutputRecorder) -> Box<dyn Speaker>,
    ) -> Self {
        Self::start_judging(armed, door, speaker, Liveness::off()).await
    }

    /// With `liveness` judging the bursts.
    async fn start_judging(
        armed: bool,
        door: DoorConfig,
        speaker: impl FnOnce(&OutputRecorder) -> Box<dyn Speaker>,
        liveness: Liveness,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let setup = Setup {
            tunable: Tunable { door, capture: CaptureConfig::default(), engine: EngineConfig::default() },
            reader: "simulated".into(),
            camera: "simulated".into(),
            speaker: "simulated".into(),
            // As with a broker configured: attempts go to the outbox (nothing here delivers them).
            announcer: Announcer::new(true, &NotifyConfig::default(), &EmailConfig::default(), &SmsConfig::default()),
            voice: VoiceConfig::default(),
            clips_dir: dir.path().join("voice"),
        };

        let store = Arc::new(SqliteStore::open(&dir.path().join("facereko.db")).await.expect("open the database"));
        store.schema().migrate().await.expect("migrate");
        let alice = store.people().add_person("Alice").await.expect("add Alice");
        store.people().add_card(&card(ALICE_CARD), alice.id).await.expect("give Alice her card");

        let recorder = OutputRecorder::default();
        let engine = Arc::new(ScriptedEngine {
            answer: Mutex::new(Answer::Outcome(SearchOutcome::NoFace)),
            searching: Notify::new(),
            blank_frames: AtomicUsize::new(0),
        });
        let camera = Arc::new(StillCamera { frames: AtomicUsize::new(0) });
        let photos = Photos::new(dir.path().join("photos"));
        let (reader, taps) = sim_reader();
        let journal_at_openings = Arc::default();
        let hardware = Hardware {
            indicators: Box::new(SimIndicators::new(&recorder)),
            buzzer: Box::new(SimBuzzer::new(&recorder)),
            relay: Box::new(WatchedRelay {
                relay: SimRelay::new(&recorder),
                journal: dir.path().join("attempts.journal"),
                journal_at_openings: Arc::clone(&journal_at_openings),
            }),
            reader: Box::new(reader),
            camera: camera.clone(),
            speaker: speaker(&recorder),
            taps: Some(taps.clone()),
            bell: None,
            presses: None,
        };
        let journal = Journal::open(&dir.path().join("attempts.journal")).expect("open the journal");
        let clock = Arc::new(SettableClock(true.into()));
        let services = Services {
            store: store.clone(),
            engine: engine.clone(),
            photos: photos.clone(),
            journal,
            clock: ScheduleClock { zone: jiff::tz::TimeZone::UTC, sync: clock.clone() },
            passes: None,
            liveness: Arc::new(liveness),
        };
        let (driver, reader, status) = Driver::new(&setup, hardware, services, armed);
        let (commands, commands_rx) = mpsc::channel(8);
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(driver.run(reader, commands_rx, async move {
            let _ = stopped.await;
        }));
        let rig = Self {
            _dir: dir,
            photos,
            recorder,
            store,
            engine,
            camera,
            alice,
            clock,
            journal_at_openings,
            taps: Some(taps),
            commands,
            status,
            stop: Some(stop),
            running,
        };
        // The driver's first act is the door's start state; nothing is checked before it.
        rig.wait_until("the start state is shown", |r| !r.changes().is_empty()).await;
        rig
    }

    async fn tap(&self, uid: &str) {
        self.taps.as_ref().expect("the reader is connected").tap(card(uid)).await.expect("the driver reads taps");
    }

    /// Arms or disarms; returns once the door has taken the change.
    async fn set_armed(&self, armed: bool) {
        let (done, taken) = oneshot::channel();
        self.commands.send(Command::SetArmed { armed, done }).await.expect("the driver takes commands");
        taken.await.expect("the driver answers commands");
    }

    async fn wait_until(&self, what: &str, ready: impl Fn(&OutputRecorder) -> bool) {
        for _ in 0..POLLS {
            if ready(&self.recorder) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("timed out waiting until {what}; outputs: {:?}", self.recorder.changes());
    }

    async fn log(&self) -> Vec<LogEntry> {
        self.store.log().access_log(&LogQuery { limit: 100, ..LogQuery::default() }).await.expect("read the access log")
    }

    /// Waits until the access log holds `count` rows; returns them oldest first.
    async fn rows(&self, count: usize) -> Vec<LogEntry> {
        for _ in 0..POLLS {
            let mut rows = self.log().await;
            if rows.len() >= count {
                rows.reverse();
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("fewer than {count} access-log rows were written: {:?}", self.log().await);
    }

    async fn first_row(&self) -> LogEntry {
        self.rows(1).await.remove(0)
    }

    fn grant_alice(&self) {
        self.engine.answer(Answer::Outcome(SearchOutcome::Candidate {
            person: self.alice.id,
            similarity: 97.0,
            face_confidence: 99.0,
        }));
    }

    async fn wait_for_stored_armed(&self, armed: bool) {
        for _ in 0..POLLS {
            if self.store.door().armed().await.expect("read the armed state") == armed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the store never said armed = {armed}");
    }

    /// Stops the driver and waits for `run` to return.
    async fn shut_down(&mut self) {
        let _ = self.stop.take().expect("shut down once").send(());
        tokio::time::timeout(Duration::from_secs(5), &mut self.running)
            .await
            .expect("run returns after the shutdown signal")
            .expect("run does not panic")
            .expect("run ends without a hardware failure");
    }

    /// Waits until the speaker has said `count` phrases; returns them. The voice speaks on a
    /// thread of its own, outside the paused clock, so this waits in real time.
    async fn said(&self, count: usize) -> Vec<String> {
        for _ in 0..POLLS {
            if self.recorder.said().len() >= count {
                return self.recorder.said();
            }
            std::thread::sleep(Duration::from_millis(5));
            tokio::task::yield_now().await;
        }
        panic!("fewer than {count} phrases were said: {:?}", self.recorder.said());
    }

    /// When `output` switched, and to what, oldest first.
    fn switches(&self, output: Output) -> Vec<(Instant, bool)> {
        self.recorder.changes().into_iter().filter(|c| c.output == output).map(|c| (c.at, c.on)).collect()
    }

    fn ever_on(&self, output: Output) -> bool {
        self.switches(output).iter().any(|(_, on)| *on)
    }

    /// The saved photo named by a log row.
    fn photo_bytes(&self, row: &LogEntry) -> Vec<u8> {
        let name = row.event.photo.as_deref().expect("the row names a photo");
        let path = self.photos.path_of(name).expect("a photo name inside the photos folder");
        std::fs::read(path).expect("the photo was saved")
    }
}

fn states(switches: &[(Instant, bool)]) -> Vec<bool> {
    switches.iter().map(|(_, on)| *on).collect()
}

fn assert_about(actual: Duration, expected: Duration, what: &str) {
    assert!(actual >= expected && actual <= expected + SLACK, "{what}: took {actual:?}, expected {expected:?}");
}

#[tokio::test(start_paused = true)]
async fn grant_opens_for_the_unlock_time_with_one_long_beep_and_is_logged() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the relay is energised", |r| r.is_on(Output::Relay)).await;
    assert!(rig.recorder.is_on(Output::GreenLed));
    assert!(!rig.recorder.is_on(Output::RedLed));
    assert!(rig.recorder.is_on(Output::Buzzer));
    assert_eq!(rig.status.borrow().lock, Lock::Unlocked);

    let row = rig.first_row().await;
    let event = &row.event;
    assert_eq!((event.decision, event.reason), (Decision::Granted, Reason::CardAndFace));
    assert_eq!(event.door, "front");
    assert_eq!(event.card_uid, Some(card(ALICE_CARD)));
    assert_eq!((event.person_id, event.person_name.as_deref()), (Some(rig.alice.id), Some("Alice")));
    assert_eq!((event.similarity, event.confidence), (Some(97.0), Some(99.0)));
    assert_eq!(event.engine.as_deref(), Some(ENGINE));
    assert!(event.timings.capture_ms.is_some() && event.timings.match_ms.is_some(), "{:?}", event.timings);
    assert!(event.timings.total_ms >= event.timings.read_ms);
    assert_eq!(rig.photo_bytes(&row), JPEG);
    assert_eq!(rig.store.door().outbox_backlog().await.expect("outbox"), 1, "grants are announced");
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 1, "one confident face ends the burst");
    let journal = rig.journal_at_openings.lock().unwrap()[0].clone();
    let line = format!(r#""event_id":"{}""#, event.event_id);
    assert!(
        journal.lines().any(|entry| entry.contains(&line) && entry.contains(r#""decision":"granted""#)),
        "the grant is in the journal before the relay moves: {journal}"
    );

    tokio::time::sleep(UNLOCK + Duration::from_secs(1)).await;
    let relay = rig.switches(Output::Relay);
    assert_eq!(states(&relay), [false, true, false], "locked at start, opened, relocked");
    assert_about(relay[2].0 - relay[1].0, UNLOCK, "the door stayed open");
    let buzzer = rig.switches(Output::Buzzer);
    assert_eq!(states(&buzzer), [false, true, false], "one beep");
    assert_eq!(buzzer[1].0, relay[1].0, "the beep starts as the door opens");
    assert_about(buzzer[2].0 - buzzer[1].0, GRANT_BEEP, "the grant beep");
    assert!(rig.recorder.is_on(Output::RedLed) && !rig.recorder.is_on(Output::GreenLed));
    assert_eq!(rig.status.borrow().lock, Lock::Locked);
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn card_only_mode_is_shown_and_ends_at_card_only_until() {
    let until = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let door =
        DoorConfig { mode: Mode::CardOnly, card_only_until: Some(until), unlock_time: UNLOCK, ..DoorConfig::default() };
    let rig = Rig::start_with(true, door).await;
    assert_eq!(rig.status.borrow().mode, Mode::CardOnly, "the status says so");
    rig.tap(ALICE_CARD).await;
    let first = rig.first_row().await;
    assert_eq!((first.event.decision, first.event.reason), (Decision::Granted, Reason::CardOnly));

    tokio::time::sleep(Duration::from_secs(3601)).await;
    assert_eq!(rig.status.borrow().mode, Mode::CardAndFace, "card-only has ended");
    rig.tap(ALICE_CARD).await;
    let second = rig.rows(2).await.remove(1);
    assert_eq!((second.event.decision, second.event.reason), (Decision::Denied, Reason::NoFace), "a face is needed");
}

#[tokio::test(start_paused = true)]
async fn denial_beeps_three_times_and_never_energises_the_relay() {
    let mut rig = Rig::start(true).await;
    rig.engine.answer(Answer::Outcome(SearchOutcome::Candidate {
        person: crate::access::PersonId(rig.alice.id.0 + 1),
        similarity: 99.0,
        face_confidence: 99.0,
    }));
    rig.tap(ALICE_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::WrongPerson));
    assert_eq!(row.event.person_name.as_deref(), Some("Alice"));
    assert_eq!(rig.photo_bytes(&row), JPEG, "denied attempts keep their photo too");
    assert_eq!(rig.store.door().outbox_backlog().await.expect("outbox"), 1, "denials are announced");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let buzzer = rig.switches(Output::Buzzer);
    let beeps: Vec<_> = buzzer.windows(2).filter(|w| w[1].1).map(|w| w[1].0).collect();
    assert_eq!(beeps.len(), DENY_BEEPS, "{buzzer:?}");
    for pair in buzzer[1..].windows(2) {
        assert_about(pair[1].0 - pair[0].0, DENY_BEEP, "a beep or a gap");
    }
    assert!(!rig.recorder.is_on(Output::Buzzer));
    assert!(!rig.ever_on(Output::Relay), "{:?}", rig.recorder.changes());
    assert!(!rig.ever_on(Output::GreenLed));
    assert!(rig.recorder.is_on(Output::RedLed));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_card_is_denied_without_a_photo() {
    let mut rig = Rig::start(true).await;
    rig.tap(STRANGER_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::UnknownCard));
    assert_eq!((row.event.person_id, row.event.photo.as_deref()), (None, None));
    assert_eq!((row.event.timings.capture_ms, row.event.engine.as_deref()), (None, None));
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 0, "the camera is not asked");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.switches(Output::Buzzer).iter().filter(|(_, on)| *on).count(), DENY_BEEPS);
    assert!(!rig.ever_on(Output::Relay));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn an_engine_that_never_answers_is_cut_off_at_the_engine_timeout() {
    let mut rig = Rig::start(true).await;
    rig.engine.answer(Answer::Hang);
    rig.tap(ALICE_CARD).await;
    // engine.timeout is 5 s by default.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::EngineError));
    let detail = row.event.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("no answer within 5s"), "{detail}");
    let match_ms = row.event.timings.match_ms.expect("the match stage is timed");
    assert!((5000..5100).contains(&match_ms), "{match_ms}");
    assert!(!rig.ever_on(Output::Relay));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn engine_errors_are_logged_with_their_detail() {
    let mut rig = Rig::start(true).await;
    rig.engine.answer(Answer::Fail("quota exceeded".into()));
    rig.tap(ALICE_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::EngineError));
    assert!(row.event.detail.as_deref().unwrap_or_default().contains("quota exceeded"), "{:?}", row.event.detail);
    assert_eq!(row.event.engine.as_deref(), Some(ENGINE));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_denial_while_open_leaves_the_relay_energised() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the relay is energised", |r| r.is_on(Output::Relay)).await;
    let opened = rig.switches(Output::Relay)[1].0;
    rig.tap(STRANGER_CARD).await;
    let rows = rig.rows(2).await;
    assert_eq!(rows[1].event.reason, Reason::UnknownCard);
    assert!(rig.recorder.is_on(Output::Relay) && rig.recorder.is_on(Output::GreenLed));

    tokio::time::sleep(UNLOCK).await;
    let relay = rig.switches(Output::Relay);
    assert_eq!(states(&relay), [false, true, false]);
    assert_about(relay[2].0 - opened, UNLOCK, "the unlock time of the grant");
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_grant_while_open_restarts_the_unlock_time() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the relay is energised", |r| r.is_on(Output::Relay)).await;
    let opened = rig.switches(Output::Relay)[1].0;

    // Past the grant beep and the debounce window, with the door still open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the second grant beeps", |r| r.is_on(Output::Buzzer)).await;
    let regranted = rig.switches(Output::Buzzer).last().expect("a beep").0;
    assert_eq!(rig.rows(2).await[1].event.decision, Decision::Granted);

    tokio::time::sleep(UNLOCK + Duration::from_secs(1)).await;
    let relay = rig.switches(Output::Relay);
    assert_eq!(states(&relay), [false, true, false], "the relay stays energised across both grants");
    assert_about(relay[2].0 - regranted, UNLOCK, "open after the second grant");
    assert!(relay[2].0 - opened > UNLOCK + Duration::from_secs(2));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_open_locks_at_once_and_run_returns() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the relay is energised", |r| r.is_on(Output::Relay)).await;
    let opened = rig.switches(Output::Relay)[1].0;

    rig.shut_down().await;
    let relay = rig.switches(Output::Relay);
    assert_eq!(states(&relay), [false, true, false]);
    assert!(relay[2].0 - opened < UNLOCK, "locked by the shutdown, not by the relock timer");
    assert!(rig.recorder.is_on(Output::RedLed));
    assert!(!rig.recorder.is_on(Output::GreenLed));
    assert!(!rig.recorder.is_on(Output::Buzzer), "the grant beep is cut short");
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_attempt_logs_it_before_run_returns() {
    let mut rig = Rig::start(true).await;
    rig.engine.answer(Answer::Hang);
    rig.tap(ALICE_CARD).await;
    tokio::time::timeout(Duration::from_secs(1), rig.engine.searching.notified())
        .await
        .expect("the attempt reaches the engine");
    assert!(rig.status.borrow().busy);

    rig.shut_down().await;
    // No polling: `run` waits for the log writer before it returns.
    let rows = rig.log().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].event.decision, rows[0].event.reason), (Decision::Denied, Reason::Interrupted));
    assert_eq!(rows[0].event.person_name.as_deref(), Some("Alice"));
    assert_eq!(rig.photo_bytes(&rows[0]), JPEG);
    assert!(!rig.ever_on(Output::Relay));
    assert!(rig.recorder.is_on(Output::RedLed));
}

#[tokio::test(start_paused = true)]
async fn arming_changes_the_lights_and_is_persisted_in_order() {
    let mut rig = Rig::start(true).await;
    assert!(rig.recorder.is_on(Output::RedLed));

    rig.set_armed(false).await;
    assert!(!rig.recorder.is_on(Output::RedLed), "a disarmed door shows no red");
    assert!(!rig.status.borrow().armed);
    rig.wait_for_stored_armed(false).await;

    rig.set_armed(true).await;
    assert!(rig.recorder.is_on(Output::RedLed));
    assert!(rig.status.borrow().armed);
    rig.wait_for_stored_armed(true).await;

    // A quick disarm/arm/disarm lands in the order given.
    for armed in [false, true, false] {
        rig.set_armed(armed).await;
    }
    rig.shut_down().await;
    assert!(!rig.store.door().armed().await.expect("read the armed state"));
}

#[tokio::test(start_paused = true)]
async fn a_disarmed_door_logs_taps_without_opening_or_beeping() {
    let mut rig = Rig::start(false).await;
    // Built safe (red on), then the disarmed door turns red off as it starts.
    rig.wait_until("a disarmed door shows no red", |r| !r.is_on(Output::RedLed)).await;
    rig.engine.answer(Answer::Outcome(SearchOutcome::Candidate {
        person: rig.alice.id,
        similarity: 99.0,
        face_confidence: 99.0,
    }));
    rig.tap(ALICE_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Disarmed, Reason::Disarmed));
    assert_eq!(row.event.person_name.as_deref(), Some("Alice"));
    assert_eq!(row.event.photo, None);
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 0);
    assert_eq!(rig.store.door().outbox_backlog().await.expect("outbox"), 0, "disarmed taps are not announced");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.shut_down().await;
    assert!(!rig.ever_on(Output::Relay));
    assert!(!rig.ever_on(Output::Buzzer));
    assert!(!rig.ever_on(Output::GreenLed));
}

#[tokio::test(start_paused = true)]
async fn a_crashing_engine_denies_the_attempt_and_the_door_carries_on() {
    let mut rig = Rig::start(true).await;
    rig.engine.answer(Answer::Panic);
    rig.tap(ALICE_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::EngineError));
    assert_eq!(row.event.detail.as_deref(), Some("the face engine failed"));

    // Past the debounce window, the next tap is decided normally: the door is not stuck.
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    let rows = rig.rows(2).await;
    assert_eq!(rows[1].event.decision, Decision::Granted, "oldest first: {rows:?}");
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_locks_the_door_and_ends_run_with_an_error() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the relay is energised", |r| r.is_on(Output::Relay)).await;
    // The reader goes away while the door is open.
    drop(rig.taps.take());
    let outcome = tokio::time::timeout(Duration::from_secs(5), &mut rig.running)
        .await
        .expect("run returns when the reader stops")
        .expect("run does not panic");
    assert!(matches!(outcome, Err(HwError::ReaderClosed)), "{outcome:?}");
    assert!(!rig.recorder.is_on(Output::Relay), "locked before exiting");
    assert!(rig.recorder.is_on(Output::RedLed));
}

/// A schedule open all day on every weekday but today (UTC), so it is closed now.
fn closed_today() -> Vec<Window> {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).weekday();
    let others = (0..7u8).filter(|&i| i != today.to_monday_zero_offset() as u8).fold(0, |bits, i| bits | (1 << i));
    let all_day =
        Window { days: Weekdays::from_bits(others), start: "00:00".parse().unwrap(), end: "24:00".parse().unwrap() };
    vec![all_day]
}

#[tokio::test(start_paused = true)]
async fn a_card_outside_its_schedule_is_denied_at_once_without_a_photo_and_says_why() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    let schedule = rig.store.schedules().save_schedule("Not today", &closed_today(), false).await.unwrap();
    let limits = Limits { schedule: Some(schedule.id), ..Limits::default() };
    rig.store.schedules().set_person_limits(rig.alice.id, &limits).await.unwrap();

    rig.tap(ALICE_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::OutsideSchedule));
    assert_eq!(row.event.person_name.as_deref(), Some("Alice"));
    assert_eq!((row.event.photo.as_deref(), row.event.timings.capture_ms), (None, None));
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 0, "the camera was never asked");
    assert!(!rig.ever_on(Output::Relay));

    let pending = rig.store.outbox().take_pending(0, 10).await.expect("the outbox");
    let payload = crate::notify::Notification::new(&pending[0].event, crate::notify::CardUidShown::Full).to_json();
    let payload = String::from_utf8(payload).unwrap();
    assert!(payload.contains(r#""reason":"outside_schedule""#), "{payload}");
    assert!(payload.contains("outside the card's schedule"), "{payload}");
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_card_is_photographed_when_the_owner_wants_proof() {
    let door = DoorConfig { unlock_time: UNLOCK, capture_when_closed: true, ..DoorConfig::default() };
    let mut rig = Rig::start_with(true, door).await;
    rig.grant_alice();
    let expired =
        Limits { valid_until: Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)), ..Limits::default() };
    rig.store.schedules().set_card_limits(&card(ALICE_CARD), &expired).await.unwrap();

    rig.tap(ALICE_CARD).await;
    let row = rig.first_row().await;
    assert_eq!((row.event.decision, row.event.reason), (Decision::Denied, Reason::Expired));
    assert_eq!(rig.photo_bytes(&row), JPEG, "the proof is kept");
    assert!(!rig.ever_on(Output::Relay));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_synchronised_clock_only_people_without_limits_get_in() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.clock.set(false);
    rig.tap(ALICE_CARD).await;
    let first = rig.first_row().await;
    assert_eq!((first.event.decision, first.event.reason), (Decision::Granted, Reason::CardAndFace), "no limits");

    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365);
    let limits = Limits { valid_until: Some(until), ..Limits::default() };
    rig.store.schedules().set_person_limits(rig.alice.id, &limits).await.unwrap();
    tokio::time::sleep(UNLOCK + Duration::from_secs(1)).await;
    rig.tap(ALICE_CARD).await;
    let second = rig.rows(2).await.remove(1);
    assert_eq!((second.event.decision, second.event.reason), (Decision::Denied, Reason::ClockNotSynced));
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 1, "only the first tap used the camera");

    rig.clock.set(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.tap(ALICE_CARD).await;
    let third = rig.rows(3).await.remove(2);
    assert_eq!((third.event.decision, third.event.reason), (Decision::Granted, Reason::CardAndFace));
    rig.shut_down().await;
}

/// The door's rights are read on every tap, so a change made anywhere (another door's web app on
/// the shared database) holds from the next tap on.
#[tokio::test(start_paused = true)]
async fn a_holder_kept_to_other_doors_is_denied_here_before_the_camera() {
    let door = DoorConfig { unlock_time: UNLOCK, capture_when_closed: true, ..DoorConfig::default() };
    let mut rig = Rig::start_with(true, door).await;
    rig.grant_alice();
    let garage = [DoorRight { door: "garage".into(), schedule: None }];
    rig.store.schedules().set_door_rights(rig.alice.id, Some(&garage)).await.unwrap();

    rig.tap(ALICE_CARD).await;
    let first = rig.first_row().await;
    assert_eq!((first.event.decision, first.event.reason), (Decision::Denied, Reason::NotAllowedHere));
    assert_eq!(first.event.person_name.as_deref(), Some("Alice"));
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 0, "the camera was never asked, proof photos or not");
    assert!(!rig.ever_on(Output::Relay));

    let both = [DoorRight { door: "front".into(), schedule: None }, garage[0].clone()];
    rig.store.schedules().set_door_rights(rig.alice.id, Some(&both)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.tap(ALICE_CARD).await;
    let second = rig.rows(2).await.remove(1);
    assert_eq!((second.event.decision, second.event.reason), (Decision::Granted, Reason::CardAndFace));
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn the_door_says_its_verdicts_in_order() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    assert_eq!(rig.said(1).await, ["Welcome, Alice"]);
    rig.tap(STRANGER_CARD).await;
    assert_eq!(rig.said(2).await, ["Welcome, Alice", "Access denied."], "a stranger learns no reason");
    rig.set_armed(false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.tap(ALICE_CARD).await;
    assert_eq!(rig.said(3).await[2], "The door is disarmed");
    rig.shut_down().await;
    assert_eq!(rig.recorder.said().len(), 3, "shutting down says nothing");
}

#[tokio::test(start_paused = true)]
async fn no_face_in_the_first_frame_asks_to_look_at_the_camera_before_the_verdict() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.engine.blank_frames.store(1, Ordering::Relaxed);
    rig.tap(ALICE_CARD).await;
    assert_eq!(rig.said(2).await, ["Please look at the camera", "Welcome, Alice"]);
    assert_eq!(rig.camera.frames.load(Ordering::Relaxed), 2, "the second frame had the face");

    // Faces in none of the frames: asked once, then denied.
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.engine.blank_frames.store(100, Ordering::Relaxed);
    rig.tap(ALICE_CARD).await;
    let said = rig.said(4).await;
    assert_eq!(said[2..], ["Please look at the camera", "Access denied."]);
    assert_eq!(rig.rows(2).await[1].event.reason, Reason::NoFace);
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_phrase_with_a_face_in_the_first_frame_is_only_the_verdict() {
    let mut rig = Rig::start(true).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.first_row().await;
    assert_eq!(rig.said(1).await, ["Welcome, Alice"]);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rig.recorder.said().len(), 1);
    rig.shut_down().await;
}

/// A speaker stuck in `play` until released: a device that hangs.
struct StuckSpeaker {
    release: Arc<(Mutex<bool>, std::sync::Condvar)>,
    plays: Arc<AtomicUsize>,
}

impl Speaker for StuckSpeaker {
    fn renderer(&self) -> String {
        "stuck".into()
    }
    fn render(&mut self, text: &str, _voice: &VoiceSpec) -> Result<Pcm, HwError> {
        Ok(Pcm { rate: 8000, samples: vec![100; text.len()] })
    }
    fn play(&mut self, _clip: &std::path::Path, _text: &str) -> Result<(), HwError> {
        self.plays.fetch_add(1, Ordering::SeqCst);
        let (released, wake) = &*self.release;
        let mut released = released.lock().unwrap();
        while !*released {
            released = wake.wait(released).unwrap();
        }
        Ok(())
    }
    fn stop(&mut self) {}
}

#[tokio::test(start_paused = true)]
async fn a_speaker_that_hangs_holds_up_neither_the_relay_nor_the_next_attempt() {
    let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let plays = Arc::new(AtomicUsize::new(0));
    let speaker = StuckSpeaker { release: Arc::clone(&release), plays: Arc::clone(&plays) };
    let door = DoorConfig { unlock_time: UNLOCK, ..DoorConfig::default() };
    let mut rig = Rig::start_speaking(true, door, move |_| Box::new(speaker)).await;
    rig.grant_alice();
    rig.tap(ALICE_CARD).await;
    rig.wait_until("the relay is energised", |r| r.is_on(Output::Relay)).await;
    for _ in 0..POLLS {
        if plays.load(Ordering::SeqCst) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(plays.load(Ordering::SeqCst), 1, "the greeting is stuck in the speaker");

    // The door carries on: the unlock time is kept, and the next tap is decided.
    tokio::time::sleep(UNLOCK + Duration::from_secs(1)).await;
    let relay = rig.switches(Output::Relay);
    assert_eq!(states(&relay), [false, true, false]);
    assert_about(relay[2].0 - relay[1].0, UNLOCK, "the door stayed open");
    rig.tap(STRANGER_CARD).await;
    assert_eq!(rig.rows(2).await[1].event.reason, Reason::UnknownCard);

    *release.0.lock().unwrap() = true;
    release.1.notify_all();
    rig.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn asked_for_a_head_turn_the_door_lights_both_leds_until_the_verdict() {
    let turn = LivenessConfig {
        mode: crate::liveness::Mode::Enforce,
        challenge: Challenge::Turn,
        ..LivenessConfig::default()
    };
    let liveness = Liveness::build(&turn, std::path::Path::new("/no/models")).expect("checks without a model");
    let door = DoorConfig { unlock_time: UNLOCK, ..DoorConfig::default() };
    let rig = Rig::start_judging(true, door, |recorder| Box::new(SimSpeaker::new(recorder)), liveness).await;
    rig.tap(ALICE_CARD).await;
    // The burst looks for faces until the capture's time limit (seconds, not the usual polls).
    for _ in 0..100 {
        if !rig.log().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = rig.first_row().await;
    assert_eq!(row.event.reason, Reason::NoFace, "the scripted engine finds no face");
    let (mut red, mut green, mut both) = (false, false, false);
    for change in rig.recorder.changes() {
        match change.output {
            Output::RedLed => red = change.on,
            Output::GreenLed => green = change.on,
            _ => {}
        }
        both |= red && green;
    }
    assert!(both, "red and green together asked for the turn: {:?}", rig.recorder.changes());
    rig.wait_until("the verdict's lights replace it", |r| r.is_on(Output::RedLed) && !r.is_on(Output::GreenLed)).await;
}
