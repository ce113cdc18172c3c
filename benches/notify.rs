//! Notification delivery through a real Mosquitto with mutual TLS on loopback: how long from an
//! attempt's log row to a subscriber holding the message, and how fast a backlog left by an
//! outage drains; and how fast a backlog of e-mails drains into a real SMTP server on loopback
//! (aiosmtpd, STARTTLS). Run with `cargo bench --bench notify`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use facereko::access::{AccessEvent, StageTimings};
use facereko::hw::Lock;
use facereko::notify::delivery;
use facereko::notify::email::{EmailConfig, Mailer, Security};
use facereko::notify::mqtt::Publisher;
use facereko::notify::{DoorState, MqttConfig, PartState};
use facereko::photos::Photos;
use facereko::store::{Channel, Notices, Recipient, Store, sqlite::SqliteStore};
use tokio::sync::{broadcast, watch};

use common::mosquitto::{Mosquitto, Subscriber};
use common::smtp::{self, SmtpServer};

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
        store.door().record_attempt(&event(n), &Notices::MQTT).await.unwrap();
    }
    let (written, woken) = broadcast::channel(64);
    let (_state, state_rx) = watch::channel(DoorState {
        armed: true,
        lock: Lock::Locked,
        reader: PartState { backend: "simulated".into(), error: None },
        camera: PartState { backend: "simulated".into(), error: None },
        engine: "simulated".into(),
    });
    let publisher = Publisher::new(config(&broker), "front".into(), store.clone()).unwrap();
    let drain_started = Instant::now();
    let task = tokio::spawn(publisher.run(woken, state_rx, DoorState::clone, broadcast::channel(1).1));
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
        store.door().record_attempt(&event, &Notices::MQTT).await.unwrap();
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

/// Mails delivered per second from a backlog, one connection kept open (lettre's pool).
async fn drain_mail() {
    let server = SmtpServer::start(smtp::Security::StartTls);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("facereko.db")).await.unwrap());
    store.schema().migrate().await.unwrap();
    let backlog = if measuring() { 1_000 } else { 10 };
    // Each mail carries the attempt's photo, a 1280×720 frame scaled to 640×360 for the mail.
    let frame = image::RgbImage::from_fn(1280, 720, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    std::fs::create_dir_all(dir.path().join("photos")).unwrap();
    frame.save(dir.path().join("photos/frame.jpg")).unwrap();
    let to =
        Notices { mqtt: false, messages: vec![Recipient { channel: Channel::Email, to: "owner@example.com".into() }] };
    for n in 0..backlog {
        let event = AccessEvent { photo: Some("frame.jpg".into()), ..event(n) };
        store.door().record_attempt(&event, &to).await.unwrap();
    }
    let config = EmailConfig {
        server: "localhost".into(),
        port: Some(server.port),
        security: Security::Starttls,
        from: "door@example.com".into(),
        ca_file: Some(server.ca_pem_path()),
        ..EmailConfig::default()
    };
    let mailer = Arc::new(Mailer::new(&config, "front").unwrap());
    let sources = delivery::Sources { photos: Photos::new(dir.path().join("photos")), public_url: None };
    let (_written, woken) = broadcast::channel(1);
    let started = Instant::now();
    let task = tokio::spawn(delivery::run(mailer, store.clone(), sources, woken));
    server.wait_for_async(backlog, Duration::from_secs(600)).await;
    let received = started.elapsed();
    while store.messages().message_counts(Channel::Email).await.unwrap().waiting > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let marked = started.elapsed();
    println!(
        "e-mail backlog of {backlog}, each with a 640×360 photo: received by the SMTP server in {:.0} ms \
         ({:.0} mails/s), all marked delivered in {:.0} ms",
        received.as_secs_f64() * 1e3,
        backlog as f64 / received.as_secs_f64(),
        marked.as_secs_f64() * 1e3
    );
    task.abort();
}

fn main() {
    println!("{}", common::bench::machine());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
    runtime.block_on(drain_mail());
}
