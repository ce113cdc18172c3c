//! The web app's costs, through its router with a real door behind it (SQLite, simulated hardware
//! and engine): the history page over a large log, a filtered page, the CSV export, a photo
//! thumbnail, a sign-in (argon2id), and how long a tap takes to reach an open dashboard as a live
//! event. Run with `cargo bench --bench web`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use facereko::access::{AccessEvent, Decision, Reason};
use facereko::accounts;
use facereko::config::Config;
use facereko::engine::{FaceEngine, simulated::SimulatedEngine};
use facereko::frame::Frame;
use facereko::hw::Hardware;
use facereko::hw::simulated::OutputRecorder;
use facereko::store::{self, Notices};
use facereko::web::{self, WebState};
use futures_util::StreamExt;
use tower::ServiceExt;

const PASSWORD: &str = "a long enough passphrase";

/// `cargo bench` passes `--bench`; under `cargo test` the same code runs briefly as a smoke test.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!("{what}: median {:.2} ms, p95 {:.2} ms ({} runs)", at(0.5), at(0.95), samples.len());
}

/// Sends one request; returns the answer's status and body.
async fn send(router: &Router, request: Request<Body>) -> (u16, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec())
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).unwrap()
}

/// Times `rounds` GETs of `path`, checking each answers 200.
async fn time_get(router: &Router, cookie: &str, path: &str, rounds: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let (status, _) = send(router, get(path, cookie)).await;
        samples.push(started.elapsed());
        assert_eq!(status, 200, "GET {path}");
    }
    samples
}

fn attempt(n: usize, photo: Option<String>) -> AccessEvent {
    AccessEvent {
        at: time::OffsetDateTime::now_utc() - time::Duration::seconds(n as i64),
        person_name: Some(format!("Person {}", n % 50)),
        decision: if n.is_multiple_of(4) { Decision::Denied } else { Decision::Granted },
        reason: if n.is_multiple_of(4) { Reason::WrongPerson } else { Reason::CardAndFace },
        similarity: Some(96.0),
        engine: Some("local".into()),
        photo,
        ..common::access_event(format!("bench-{n}"))
    }
}

/// A 640×480 camera-sized JPEG of a real face.
fn camera_frame(face: &Path) -> Frame {
    let picture = image::open(face).unwrap().resize_exact(640, 480, image::imageops::FilterType::Triangle);
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.to_rgb8().write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    Frame::from_bytes(bytes.into_inner(), "bench frame").unwrap()
}

async fn bench() {
    let face = common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.engine.kind = "simulated".into();
    config.door.unlock_time = Duration::from_millis(5);
    config.door.debounce = Duration::ZERO;
    let store = store::open(&config.database, &config.data_dir).await.unwrap();
    let engine: Arc<dyn FaceEngine> = Arc::new(SimulatedEngine);
    let photos = common::photos(&config);

    let rows = if measuring() { 10_000 } else { 100 };
    let frame = camera_frame(&face);
    let photo = photos.save(&frame, time::OffsetDateTime::now_utc()).unwrap();
    for n in 0..rows {
        store.door().record_attempt(&attempt(n, Some(photo.clone())), &Notices::NONE).await.unwrap();
    }
    let alice = store.people().add_person("Alice").await.unwrap();
    store.people().add_card(&"04A1B2C3".parse().unwrap(), alice.id).await.unwrap();
    facereko::enrolment::enrol_face(store.as_ref(), engine.as_ref(), &photos, &alice, &Frame::read(&face).unwrap())
        .await
        .unwrap();
    store.accounts().add_user("ada", &accounts::hash_password(PASSWORD).unwrap(), "admin").await.unwrap();

    let hardware = Hardware::simulated(&OutputRecorder::default(), face.clone());
    let door = facereko::app::start_door(&config, hardware, Arc::clone(&store), engine, common::journal(&config), true);
    let state = WebState::new(facereko::app::web_setup(&config), door.link.clone()).await;
    let router = web::router(state);

    // Sign in the way a browser does: the form token from the page, then the form.
    let login = router.clone().oneshot(get("/login", "")).await.unwrap();
    let form_cookie = login.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let token = form_cookie.split_once('=').unwrap().1.to_owned();
    let sign_in = || {
        Request::post("/login")
            .header(header::COOKIE, &form_cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={token}&username=ada&password={}", PASSWORD.replace(' ', "+"))))
            .unwrap()
    };
    let mut samples = Vec::new();
    let mut cookie = String::new();
    for _ in 0..if measuring() { 10 } else { 2 } {
        let started = Instant::now();
        let response = router.clone().oneshot(sign_in()).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(response.status(), 303);
        cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    }
    report("sign-in (argon2id verification)", samples);

    let rounds = if measuring() { 100 } else { 3 };
    report(&format!("history, first page of {rows} attempts"), time_get(&router, &cookie, "/history", rounds).await);
    report(
        &format!("history filtered by person and decision, {rows} attempts"),
        time_get(&router, &cookie, "/history?person=Person+7&decision=granted", rounds).await,
    );
    report("thumbnail of a 640×480 photo", time_get(&router, &cookie, "/history/1/thumb", rounds).await);
    report(
        &format!("CSV export of {rows} attempts"),
        time_get(&router, &cookie, "/history.csv", if measuring() { 10 } else { 1 }).await,
    );

    // A dashboard open on the live feed: from the tap until the attempt event arrives.
    let events = router.clone().oneshot(get("/events", &cookie)).await.unwrap();
    let mut feed = events.into_body().into_data_stream();
    let taps = door.link.control.taps.clone().unwrap();
    let mut samples = Vec::new();
    for _ in 0..if measuring() { 50 } else { 3 } {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let tapped = Instant::now();
        taps.tap("04A1B2C3".parse().unwrap()).await.unwrap();
        loop {
            let chunk = feed.next().await.unwrap().unwrap();
            if String::from_utf8_lossy(&chunk).contains("event: attempt") {
                break;
            }
        }
        samples.push(tapped.elapsed());
    }
    report("tap → attempt event on an open dashboard (log row and photo written first)", samples);
    drop(feed);
    door.until(async {}).await.unwrap();
}

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(bench());
}
