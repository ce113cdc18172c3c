//! Tap latency: how long from a card tap until the relay is energised and until the attempt's row
//! is in the log, through the real driver, SQLite store and capture, with the simulated engine and
//! with the on-device engine and each of its embedders, with the liveness checks off and on; and
//! the cost of the pure state machine and of the liveness checks alone. The on-device doors see
//! real photos: one person of `../shared/facedata/deepface` is enrolled from one photo, and the
//! simulated camera serves 640×480 frames made from her other photos, a different one first at
//! each tap. Run with `cargo bench --bench tap`; the models come from `facereko models fetch`
//! (`FACEREKO_TEST_MODELS`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use facereko::access::{Decision, Person, PersonId, StageTimings};
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::door::{Capture, Door, Effect, Event};
use facereko::driver::RunningDoor;
use facereko::engine::decode_rgb;
use facereko::engine::local::embedder::EMBEDDERS;
use facereko::engine::local::{self, detector::Detector};
use facereko::engine::{DetectedFace, EngineConfig, FaceEngine, SearchOutcome, simulated::SimulatedEngine};
use facereko::frame::Frame;
use facereko::hw::Hardware;
use facereko::hw::simulated::{Output, OutputRecorder, SimTaps};
use facereko::liveness::{Burst, BurstFrame, Liveness, LivenessConfig, Mode, attacks, check_names};
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

/// The liveness burst's own work on a scene of five 640×480 frames: following the face of the
/// first frame through the other four (decoding included), as the door does instead of detecting
/// it in each; then the checks alone on that burst, as the door runs them after it: the default
/// checks, then every check (the trained model too).
fn liveness_checks_alone(scene: &Path, models_dir: &Path) {
    let engine = EngineConfig { models_dir: models_dir.to_owned(), ..Default::default() }.on_device().unwrap();
    let frames: Vec<Frame> = (0..5).map(|k| Frame::read(&scene.join(format!("{k}.jpg"))).unwrap()).collect();
    let face = engine.detect_blocking(&frames[0], "the frame").unwrap().remove(0);
    let follow = || {
        let mut burst = Burst { frames: vec![BurstFrame::new(frames[0].clone(), face)] };
        for frame in &frames[1..] {
            let followed = burst.frames.last().unwrap().follow_into(frame.clone()).expect("the face is followed");
            burst.frames.push(followed);
        }
        burst
    };
    let rounds = runs(200, 3) as u32;
    let started = StdInstant::now();
    for _ in 0..rounds {
        std::hint::black_box(follow());
    }
    let per_burst = started.elapsed() / rounds;
    println!(
        "following the face through 4 more frames (decoding them included): {:.2} ms",
        per_burst.as_secs_f64() * 1e3
    );
    let burst = follow();
    let every_check: Vec<String> = check_names().into_iter().map(str::to_owned).collect();
    for checks in [LivenessConfig::default().checks, every_check] {
        let liveness = Liveness::build(&LivenessConfig { checks, ..LivenessConfig::default() }, models_dir).unwrap();
        // The border check reads a few thousand pixels and the model runs a network: milliseconds.
        let rounds = runs(500, 5) as u32;
        let started = StdInstant::now();
        for _ in 0..rounds {
            std::hint::black_box(liveness.assess(&burst));
        }
        let per_burst = started.elapsed() / rounds;
        println!("liveness checks ({liveness:?}) on a 5-frame burst: {:.2} ms", per_burst.as_secs_f64() * 1e3);
    }
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
/// what the simulated camera serves (a picture, or a folder of scenes per card).
struct Variant {
    label: String,
    /// `liveness.mode`: with the checks on, the burst gathers `liveness.frames` faces.
    liveness: Mode,
    engine: Arc<dyn FaceEngine>,
    enrolled: PathBuf,
    camera: PathBuf,
    /// The holder's cards, tapped in turn (each may have its own scene on the camera).
    cards: Vec<CardUid>,
}

/// A running door with its own SQLite store and simulated hardware, the holder of `cards`
/// enrolled, and the times its taps took until the relay was energised and the row logged.
struct DoorUnderTest {
    label: String,
    door: RunningDoor,
    taps: SimTaps,
    recorder: OutputRecorder,
    store: Arc<SqliteStore>,
    cards: Vec<CardUid>,
    to_relay: Vec<Duration>,
    to_log: Vec<Duration>,
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
        for card in &variant.cards {
            store.people().add_card(card, alice.id).await.unwrap();
        }
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
        Self {
            label: variant.label,
            door,
            taps,
            recorder,
            store,
            cards: variant.cards,
            to_relay: Vec::new(),
            to_log: Vec::new(),
            _data_dir: dir,
        }
    }

    fn relay_switches(&self) -> usize {
        self.recorder.changes().iter().filter(|c| c.output == Output::Relay && c.on).count()
    }

    /// Tap `n`, timed until the relay is energised and until its row is in the log; returns once
    /// the door has locked again.
    async fn time_tap(&mut self, n: usize) {
        let opened_before = self.relay_switches();
        let mut attempts = self.door.link.attempts.subscribe();
        let logged = tokio::spawn(async move {
            let written = attempts.recv().await;
            (Instant::now(), written.map(|event| event.decision))
        });
        let tapped = Instant::now();
        self.taps.tap(self.cards[n % self.cards.len()].clone()).await.unwrap();
        wait_until("the relay is energised", || self.relay_switches() > opened_before).await;
        let opened = self.recorder.changes().iter().rev().find(|c| c.output == Output::Relay && c.on).unwrap().at;
        self.to_relay.push(opened - tapped);
        let (logged_at, decision) = tokio::time::timeout(Duration::from_secs(10), logged)
            .await
            .expect("the attempt is logged within 10 s")
            .unwrap();
        assert_eq!(decision.ok(), Some(Decision::Granted), "the logged attempt is the grant");
        self.to_log.push(logged_at - tapped);
        wait_until("the relay is released", || !self.recorder.is_on(Output::Relay)).await;
    }

    /// Stops the door and prints its tap times with the capture and match times it logged.
    async fn report(self) {
        let Self { label, door, store, to_relay, to_log, .. } = self;
        door.until(async {}).await.unwrap();
        let taps = to_relay.len();
        println!("{label} ({taps} taps):");
        for (what, mut samples) in [("tap → relay energised", to_relay), ("tap → row in the log", to_log)] {
            samples.sort();
            println!(
                "  {what:<22} median {:>6.1} ms, p95 {:>6.1} ms, max {:>6.1} ms",
                ms(percentile(&samples, 0.5)),
                ms(percentile(&samples, 0.95)),
                ms(*samples.last().unwrap()),
            );
        }
        let query = LogQuery { limit: taps as u32, ..LogQuery::default() };
        let logged = store.log().access_log(&query).await.unwrap();
        let median_of = |stage: fn(&StageTimings) -> Option<u32>| {
            let mut values: Vec<u32> = logged.iter().filter_map(|entry| stage(&entry.event.timings)).collect();
            values.sort_unstable();
            values.get(values.len() / 2).map_or_else(|| "-".to_owned(), |v| format!("{v} ms"))
        };
        let mut similarities: Vec<f32> = logged.iter().filter_map(|entry| entry.event.similarity).collect();
        similarities.sort_by(f32::total_cmp);
        println!(
            "  as logged: capture {}, match {}, actuate {} (medians); similarity {:.1}–{:.1}",
            median_of(|t| t.capture_ms),
            median_of(|t| t.match_ms),
            median_of(|t| Some(t.actuate_ms)),
            similarities.first().unwrap_or(&f32::NAN),
            similarities.last().unwrap_or(&f32::NAN),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The person of `deepface` whose photos the on-device doors use: the first enrolled, the others
/// on the camera.
const ENROLLED_PHOTO: &str = "deepface/img1.jpg";
const CAMERA_PHOTOS: &[&str] =
    &["deepface/img2.jpg", "deepface/img4.jpg", "deepface/img5.jpg", "deepface/img6.jpg", "deepface/img7.jpg"];

/// The 640×480 frames made from [`CAMERA_PHOTOS`].
fn camera_frames(detector: &Detector) -> Vec<Frame> {
    CAMERA_PHOTOS.iter().map(|photo| camera_frame(&Frame::read(&common::face(photo)).unwrap(), detector)).collect()
}

/// A camera folder with one scene per card (the camera serves a scene's pictures in name order,
/// from the first at every tap).
fn write_scenes(folder: &Path, scenes: Vec<Vec<Frame>>) -> Vec<CardUid> {
    scenes
        .into_iter()
        .enumerate()
        .map(|(n, frames)| {
            let card: CardUid = format!("04A1B2{n:02X}").parse().unwrap();
            let scene = folder.join(card.as_str());
            std::fs::create_dir_all(&scene).unwrap();
            for (k, frame) in frames.iter().enumerate() {
                std::fs::write(scene.join(format!("{k}.jpg")), frame.bytes()).unwrap();
            }
            card
        })
        .collect()
}

/// Each card's scene starts with another of the photos and goes on through the others.
fn photo_scenes(frames: &[Frame]) -> Vec<Vec<Frame>> {
    (0..frames.len())
        .map(|first| (0..frames.len()).map(|k| frames[(first + k) % frames.len()].clone()).collect())
        .collect()
}

/// Each card's scene is what a camera takes of the person standing at the door: one photo with the
/// sensor's noise and a pixel or two of shake in every frame (`liveness::attacks::still`), the
/// burst the liveness checks follow the face through.
fn still_scenes(frames: &[Frame]) -> Vec<Vec<Frame>> {
    frames
        .iter()
        .enumerate()
        .map(|(n, frame)| {
            let photo = decode_rgb(frame, "a camera frame").unwrap();
            attacks::still(&photo, 5, n as u64)
                .iter()
                .map(|image| {
                    let mut jpeg = Vec::new();
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(image).unwrap();
                    Frame::from_bytes(jpeg, "640×480 frame").unwrap()
                })
                .collect()
        })
        .collect()
}

/// The simulated engine on a 250×250 LFW picture (enrolled and on the camera), and the on-device
/// engine with each embedder on the `deepface` photos; with the liveness checks on, the camera
/// serves `still` scenes (one photo per tap, shaken), as a real camera's burst would look.
fn variants(models_dir: &Path, camera: &Path, still_camera: &Path, cards: &[CardUid]) -> Vec<Variant> {
    let picture = common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let simulated = Variant {
        label: "simulated engine, 250×250 JPEG".into(),
        liveness: Mode::Off,
        engine: Arc::new(SimulatedEngine),
        enrolled: picture.clone(),
        camera: picture,
        cards: vec!["04A1B2C3".parse().unwrap()],
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
            label: format!("on-device engine, {}, {threads} thread(s), 640×480 frames", kind.name),
            liveness: Mode::Off,
            engine: Arc::new(config.on_device().unwrap_or_else(|e| panic!("{e}"))),
            enrolled: common::face(ENROLLED_PHOTO),
            camera: camera.to_owned(),
            cards: cards.to_vec(),
        }
    });
    // The default embedder on every core with the liveness checks on: `log` scores the frames the
    // burst took anyway, `enforce` goes on to `liveness.frames` faces first.
    let config = EngineConfig { models_dir: models_dir.to_owned(), ..Default::default() };
    let checked = [Mode::Log, Mode::Enforce].map(|mode| Variant {
        label: format!("on-device engine, {}, default threads, 640×480 frames, liveness {mode}", config.embedder),
        liveness: mode,
        engine: Arc::new(config.on_device().unwrap_or_else(|e| panic!("{e}"))),
        enrolled: common::face(ENROLLED_PHOTO),
        camera: still_camera.to_owned(),
        cards: cards.to_vec(),
    });
    std::iter::once(simulated).chain(on_device).chain(checked).collect()
}

/// Times taps on a door per variant, taking turns, so that other work on the machine weighs on
/// every variant alike.
async fn tap_to_relay() {
    let models_dir = common::models_dir();
    let camera = tempfile::tempdir().unwrap();
    let detector = Detector::load(&ModelPaths::check(&models_dir).unwrap()).unwrap();
    let frames = camera_frames(&detector);
    let cards = write_scenes(camera.path(), photo_scenes(&frames));
    let still_camera = tempfile::tempdir().unwrap();
    assert_eq!(write_scenes(still_camera.path(), still_scenes(&frames)), cards, "the same cards");

    liveness_checks_alone(&still_camera.path().join(cards[0].as_str()), &models_dir);
    let mut doors = Vec::new();
    for variant in variants(&models_dir, camera.path(), still_camera.path(), &cards) {
        doors.push(DoorUnderTest::start(variant).await);
    }
    for n in 0..runs(200, 2) {
        for door in &mut doors {
            door.time_tap(n).await;
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
    facereko::engine::local::keep_freed_memory();
    println!("facereko tap benchmark: {}", machine());
    state_machine_alone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(tap_to_relay());
}
