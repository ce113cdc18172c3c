//! Tap latency: how long from a card tap until the relay is energised, through the real driver,
//! SQLite store and capture, with the simulated engine and with the on-device engine and each of
//! its embedders, a real face picture on the simulated camera, with the liveness checks off and
//! on; and the cost of the pure state machine and of the liveness checks alone. Run with `cargo bench --bench tap`; the on-device engine's models come from
//! `facereko models fetch` (`FACEREKO_TEST_MODELS`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use facereko::access::{Person, PersonId, StageTimings};
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::door::{Capture, Door, Effect, Event};
use facereko::driver::RunningDoor;
use facereko::engine::local::embedder::EMBEDDERS;
use facereko::engine::local::{self, detector::Detector};
use facereko::engine::{DetectedFace, EngineConfig, FaceEngine, SearchOutcome, simulated::SimulatedEngine};
use facereko::frame::Frame;
use facereko::hw::Hardware;
use facereko::hw::simulated::{Output, OutputRecorder, SimTaps};
use facereko::liveness::{Burst, BurstFrame, Liveness, LivenessConfig, Mode};
use facereko::models::ModelPaths;
use facereko::schedule::Admission;
use facereko::store::{LogQuery, Store, sqlite::SqliteStore};
use tokio::time::Instant;

use common::bench::{camera_frame, load_average, machine, percentile, runs};

fn state_machine_alone() {
    let config = Config::default();
    let card: CardUid = "04A1B2C3".parse().unwrap();
    let holder = Person { id: PersonId(1), name: "Alice".into() };
    let frame = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0], "bench").unwrap();
    let face = DetectedFace { x: 0, y: 0, width: 100, height: 100, confidence: 99.0, landmarks: None };
    let mut door = Door::new(config.tunable().door_settings(), true);
    let mut now = Instant::now();
    let rounds = runs(100_000, 100) as u32;
    let started = StdInstant::now();
    for _ in 0..rounds {
        now += Duration::from_secs(60);
        let attempt = match door.handle(Event::CardRead(card.clone()), now).as_slice() {
            [Effect::LookUpCard { attempt, .. }] => *attempt,
            other => panic!("unexpected {other:?}"),
        };
        door.handle(Event::CardResolved { attempt, holder: Ok(Some(holder.clone())), admission: Admission::Open }, now);
        door.handle(
            Event::Captured { attempt, result: Ok(Capture { frame: frame.clone(), face: Some(face), liveness: None }) },
            now,
        );
        let outcome = SearchOutcome::Candidate { person: holder.id, similarity: 99.0, face_confidence: 99.0 };
        door.handle(Event::Matched { attempt, result: Ok(outcome) }, now);
        door.handle(Event::TimerFired(facereko::door::Timer::Relock), now);
    }
    let per_attempt = started.elapsed() / rounds;
    println!("state machine, one granted attempt (5 events): {:.2} µs", per_attempt.as_secs_f64() * 1e6);
}

/// The liveness checks alone on a burst of five 640×480 frames with their landmarks, as the door
/// runs them after the burst (the frames' face detection is the burst's, not counted here).
fn liveness_checks_alone(camera: &Path, models_dir: &Path) {
    let engine = EngineConfig { models_dir: models_dir.to_owned(), ..Default::default() }.on_device().unwrap();
    let frame = Frame::read(camera).unwrap();
    let face = engine.detect_blocking(&frame, "the frame").unwrap().remove(0);
    let burst = Burst { frames: (0..5).map(|_| BurstFrame::new(frame.clone(), face)).collect() };
    let liveness = Liveness::build(&LivenessConfig::default(), models_dir).unwrap();
    // The border check reads a few thousand pixels: milliseconds, not microseconds.
    let rounds = runs(2_000, 50) as u32;
    let started = StdInstant::now();
    for _ in 0..rounds {
        std::hint::black_box(liveness.assess(&burst));
    }
    let per_burst = started.elapsed() / rounds;
    println!("liveness checks ({:?}) on a 5-frame burst: {:.2} µs", liveness, per_burst.as_secs_f64() * 1e6);
}

/// Polls `done` until it holds: the recorder timestamps every switch, so polling slowly costs the
/// measurement nothing and leaves the cores to the door and the engine.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 10 s: did the door refuse the tap?");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What decides the taps of one door: the engine, the picture enrolled for the card holder and
/// the picture on the simulated camera.
struct Variant {
    label: String,
    /// `liveness.mode`: with the checks on, the burst gathers `liveness.frames` faces.
    liveness: Mode,
    engine: Arc<dyn FaceEngine>,
    enrolled: PathBuf,
    camera: PathBuf,
}

/// A running door with its own SQLite store and simulated hardware, the holder of `card` enrolled,
/// and the times its taps took until the relay was energised.
struct DoorUnderTest {
    label: String,
    door: RunningDoor,
    taps: SimTaps,
    recorder: OutputRecorder,
    store: Arc<SqliteStore>,
    card: CardUid,
    samples: Vec<Duration>,
    _data_dir: tempfile::TempDir,
}

impl DoorUnderTest {
    async fn start(variant: Variant) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        config.door.unlock_time = Duration::from_millis(5);
        config.door.debounce = Duration::ZERO;
        // Every tap should open, to time the whole way to the relay: dlib's calibrated scale refuses
        // most genuine pairs at the default threshold (README, "Accuracy"), Obama's two photos among
        // them. The threshold changes the decision only, not the work done.
        config.engine.match_threshold = 50.0;
        config.liveness.mode = variant.liveness;

        let store = Arc::new(SqliteStore::open(&dir.path().join("facereko.db")).await.unwrap());
        store.schema().migrate().await.unwrap();
        let alice = store.people().add_person("Alice").await.unwrap();
        let card: CardUid = "04A1B2C3".parse().unwrap();
        store.people().add_card(&card, alice.id).await.unwrap();
        let enrolled = Frame::read(&variant.enrolled).unwrap();
        let photos = common::photos(&config);
        facereko::enrolment::enrol_face(store.as_ref(), variant.engine.as_ref(), &photos, &alice, &enrolled)
            .await
            .unwrap();

        let recorder = OutputRecorder::default();
        let hardware = Hardware::simulated(&recorder, variant.camera);
        let door =
            facereko::app::start_door(&config, hardware, store.clone(), variant.engine, common::journal(&config), true);
        let taps = door.link.control.taps.clone().expect("simulated hardware has a tap handle");
        Self { label: variant.label, door, taps, recorder, store, card, samples: Vec::new(), _data_dir: dir }
    }

    fn relay_switches(&self) -> usize {
        self.recorder.changes().iter().filter(|c| c.output == Output::Relay && c.on).count()
    }

    /// One tap, timed until the relay is energised; returns once the door has locked again.
    async fn time_tap(&mut self) {
        let opened_before = self.relay_switches();
        let tapped = Instant::now();
        self.taps.tap(self.card.clone()).await.unwrap();
        wait_until("the relay is energised", || self.relay_switches() > opened_before).await;
        let opened = self.recorder.changes().iter().rev().find(|c| c.output == Output::Relay && c.on).unwrap().at;
        self.samples.push(opened - tapped);
        wait_until("the relay is released", || !self.recorder.is_on(Output::Relay)).await;
    }

    /// Stops the door and prints its tap times with the capture and match times it logged.
    async fn report(self) {
        let Self { label, door, store, mut samples, .. } = self;
        door.until(async {}).await.unwrap();
        samples.sort();
        println!(
            "tap → relay energised, {label}: median {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} taps)",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.95)),
            ms(*samples.last().unwrap()),
            samples.len(),
        );
        let query = LogQuery { limit: samples.len() as u32, ..LogQuery::default() };
        let logged = store.log().access_log(&query).await.unwrap();
        let median_of = |stage: fn(&StageTimings) -> Option<u32>| {
            let mut values: Vec<u32> = logged.iter().filter_map(|entry| stage(&entry.event.timings)).collect();
            values.sort_unstable();
            values.get(values.len() / 2).map_or_else(|| "-".to_owned(), |v| format!("{v} ms"))
        };
        println!(
            "  as logged: capture {}, match {} (medians), similarity {:.1}",
            median_of(|t| t.capture_ms),
            median_of(|t| t.match_ms),
            logged.first().and_then(|entry| entry.event.similarity).unwrap_or(f32::NAN)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The simulated engine on a 250×250 LFW picture (enrolled and on the camera), and the on-device
/// engine with each embedder: Obama's photo enrolled, a 640×480 frame made from another photo of
/// him on the camera.
fn variants(models_dir: &Path, camera: &Path) -> Vec<Variant> {
    let picture = common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let simulated = Variant {
        label: "simulated engine, 250×250 JPEG".into(),
        liveness: Mode::Off,
        engine: Arc::new(SimulatedEngine),
        enrolled: picture.clone(),
        camera: picture,
    };
    // One core, as every tap ran before engine.threads, and the default: every core (at most 4).
    let cores = [1, local::default_threads()];
    let on_device = EMBEDDERS.iter().flat_map(|kind| cores.map(|threads| (kind, threads))).map(|(kind, threads)| {
        let config = EngineConfig {
            models_dir: models_dir.to_owned(),
            embedder: kind.name.into(),
            threads: Some(threads),
            ..Default::default()
        };
        Variant {
            label: format!("on-device engine, {}, {threads} thread(s), 640×480 frame", kind.name),
            liveness: Mode::Off,
            engine: Arc::new(config.on_device().unwrap_or_else(|e| panic!("{e}"))),
            enrolled: common::sample("obama.jpg"),
            camera: camera.to_owned(),
        }
    });
    // The default embedder on every core, with the liveness checks on (`log`): the burst goes on
    // to `liveness.frames` faces (the same frame again here) and the checks run.
    let config = EngineConfig { models_dir: models_dir.to_owned(), ..Default::default() };
    let checked = Variant {
        label: format!("on-device engine, {}, default threads, 640×480 frame, liveness log", config.embedder),
        liveness: Mode::Log,
        engine: Arc::new(config.on_device().unwrap_or_else(|e| panic!("{e}"))),
        enrolled: common::sample("obama.jpg"),
        camera: camera.to_owned(),
    };
    std::iter::once(simulated).chain(on_device).chain([checked]).collect()
}

/// Times taps on a door per variant, taking turns, so that other work on the machine weighs on
/// every variant alike.
async fn tap_to_relay() {
    let models_dir = common::models_dir();
    let frames = tempfile::tempdir().unwrap();
    let camera = frames.path().join("obama2-640x480.jpg");
    let detector = Detector::load(&ModelPaths::check(&models_dir).unwrap().detector).unwrap();
    let photo = Frame::read(&common::sample("obama2.jpg")).unwrap();
    std::fs::write(&camera, camera_frame(&photo, &detector).bytes()).unwrap();

    liveness_checks_alone(&camera, &models_dir);
    let mut doors = Vec::new();
    for variant in variants(&models_dir, &camera) {
        doors.push(DoorUnderTest::start(variant).await);
    }
    for _ in 0..runs(200, 2) {
        for door in &mut doors {
            door.time_tap().await;
        }
    }
    if let Some(load) = load_average() {
        println!("(load average {load} after the taps)");
    }
    for door in doors {
        door.report().await;
    }
}

fn main() {
    println!("facereko tap benchmark: {}", machine());
    state_machine_alone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(tap_to_relay());
}
