//! Notification delivery through a real Mosquitto with mutual TLS on loopback: how long from an
//! attempt's log row to a subscriber holding the message, and how fast a backlog left by an
//! outage drains. Run with `cargo bench --bench notify`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use facereko::access::{AccessEvent, StageTimings};
use facereko::hw::Lock;
use facereko::notify::MqttConfig;
use facereko::notify::mqtt::Publisher;
use facereko::store::{Store, sqlite::SqliteStore};
use tokio::sync::{broadcast, watch};

use common::mosquitto::{Mosquitto, Subscriber};

/// `cargo bench` passes `--bench`; under `cargo test` the same code runs briefly as a smoke test.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn event(n: usize) -> AccessEvent {
    AccessEvent {
        similarity: Some(97.0),
        engine: Some("local".into()),
        photo: Some(format!("2026/11/22/bench-{n}.jpg")),
        timings: StageTimings::default(),
        ..common::access_event(format!("bench-{n}"))
    }
}

fn config(broker: &Mosquitto) -> MqttConfig {
    MqttConfig {
        url: broker.url(),
        ca_file: Some(broker.certs.path("ca.pem")),
        cert_file: Some(broker.certs.path("door.pem")),
        key_file: Some(broker.certs.path("door.key")),
        ..MqttConfig::default()
    }
}

async fn wait_for_backlog(store: &dyn Store, backlog: u64) {
    while store.door().outbox_backlog().await.unwrap() > backlog {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("facereko.db")).await.unwrap());
    store.schema().migrate().await.unwrap();

    // A backlog written while nothing was publishing, as after an outage.
    let backlog = if measuring() { 2_000 } else { 20 };
    for n in 0..backlog {
        store.door().record_attempt(&event(n), true).await.unwrap();
    }
    let (written, woken) = broadcast::channel(64);
    let (_lock, lock_rx) = watch::channel(Lock::Locked);
    let publisher = Publisher::new(config(&broker), "front".into(), store.clone()).unwrap();
    let drain_started = Instant::now();
    let task = tokio::spawn(publisher.run(woken, lock_rx, |lock: &Lock| *lock));
    wait_for_backlog(store.as_ref(), 0).await;
    let drained = drain_started.elapsed();
    println!(
        "backlog of {backlog}: delivered and acknowledged in {:.0} ms ({:.0} notifications/s, window 16)",
        drained.as_secs_f64() * 1e3,
        backlog as f64 / drained.as_secs_f64()
    );

    // One attempt at a time: log row written, publisher woken, subscriber has it.
    let rounds = if measuring() { 200 } else { 5 };
    let mut latencies = Vec::with_capacity(rounds);
    for n in backlog..backlog + rounds {
        let event = event(n);
        let started = Instant::now();
        store.door().record_attempt(&event, true).await.unwrap();
        written.send(event.clone()).unwrap();
        let arrived = loop {
            let found = subscriber.messages().into_iter().find(|m| m.json()["event_id"] == event.event_id.as_str());
            if let Some(message) = found {
                break message.at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(arrived - started);
    }
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "log row → subscriber: median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({rounds} attempts)",
        at(0.5),
        at(0.95),
        at(1.0)
    );
    task.abort();
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}
