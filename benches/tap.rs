//! Tap latency: how long from a card tap until the relay is energised, through the real driver,
//! SQLite store, capture and simulated engine, with a real 250×250 face picture on the simulated
//! camera; and the cost of the pure state machine alone. Run with `cargo bench --bench tap`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use facereko::access::{Person, PersonId};
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::door::{Capture, Door, Effect, Event};
use facereko::engine::{DetectedFace, FaceEngine, SearchOutcome, simulated::SimulatedEngine};
use facereko::frame::Frame;
use facereko::hw::Hardware;
use facereko::hw::simulated::{Output, OutputRecorder};
use facereko::store::{Store, sqlite::SqliteStore};
use tokio::time::Instant;

/// `cargo bench` passes `--bench`; under `cargo test` the same code runs briefly as a smoke test.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: median {:.3} ms, p95 {:.3} ms, max {:.3} ms ({} runs)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
}

fn state_machine_alone() {
    let config = Config::default();
    let card: CardUid = "04A1B2C3".parse().unwrap();
    let holder = Person { id: PersonId(1), name: "Alice".into() };
    let frame = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0], "bench").unwrap();
    let face = DetectedFace { x: 0, y: 0, width: 100, height: 100, confidence: 99.0 };
    let mut door = Door::new(config.tunable().door_settings(), true);
    let mut now = Instant::now();
    let rounds = if measuring() { 100_000 } else { 100 };
    let started = StdInstant::now();
    for _ in 0..rounds {
        now += Duration::from_secs(60);
        let attempt = match door.handle(Event::CardRead(card.clone()), now).as_slice() {
            [Effect::LookUpCard { attempt, .. }] => *attempt,
            other => panic!("unexpected {other:?}"),
        };
        door.handle(Event::CardResolved { attempt, holder: Ok(Some(holder.clone())) }, now);
        door.handle(Event::Captured { attempt, result: Ok(Capture { frame: frame.clone(), face: Some(face) }) }, now);
        let outcome = SearchOutcome::Candidate { person: holder.id, similarity: 99.0, face_confidence: 99.0 };
        door.handle(Event::Matched { attempt, result: Ok(outcome) }, now);
        door.handle(Event::TimerFired(facereko::door::Timer::Relock), now);
    }
    let per_attempt = started.elapsed() / rounds;
    println!("state machine, one granted attempt (5 events): {:.2} µs", per_attempt.as_secs_f64() * 1e6);
}

async fn tap_to_relay() {
    let picture = common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.door.unlock_time = Duration::from_millis(5);
    config.door.debounce = Duration::ZERO;

    let store = Arc::new(SqliteStore::open(&dir.path().join("facereko.db")).await.unwrap());
    store.schema().migrate().await.unwrap();
    let engine: Arc<dyn FaceEngine> = Arc::new(SimulatedEngine);
    let alice = store.people().add_person("Alice").await.unwrap();
    let card: CardUid = "04A1B2C3".parse().unwrap();
    store.people().add_card(&card, alice.id).await.unwrap();
    facereko::enrolment::enrol_face(store.as_ref(), engine.as_ref(), &alice, &Frame::read(&picture).unwrap())
        .await
        .unwrap();

    let recorder = OutputRecorder::default();
    let door = facereko::app::start_door(&config, Hardware::simulated(&recorder, picture), store, engine, true);
    let taps = door.link.control.taps.clone().expect("simulated hardware has a tap handle");

    let relay_switches = || recorder.changes().iter().filter(|c| c.output == Output::Relay && c.on).count();
    let taps_to_time = if measuring() { 200 } else { 5 };
    let mut samples = Vec::with_capacity(taps_to_time);
    for _ in 0..taps_to_time {
        let opened_before = relay_switches();
        let tapped = Instant::now();
        taps.tap(card.clone()).await.unwrap();
        while relay_switches() == opened_before {
            tokio::task::yield_now().await;
        }
        let opened = recorder.changes().iter().rev().find(|c| c.output == Output::Relay && c.on).unwrap().at;
        samples.push(opened - tapped);
        while recorder.is_on(Output::Relay) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    report("tap → relay energised (SQLite, capture, simulated engine, 250×250 JPEG)", samples);
    door.until(async {}).await.unwrap();
}

fn main() {
    state_machine_alone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(tap_to_relay());
}
