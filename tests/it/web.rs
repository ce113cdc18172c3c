//! The web app through its router, without a socket: every page and action, sign-in and its
//! limits, CSRF, roles, photos by log-row id, uploads, live events. A real door runs behind it on
//! simulated hardware with SQLite; the enrolment tests use the on-device engine with real faces.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use facereko::access::{AccessEvent, Decision, Reason, StageTimings};
use facereko::accounts::{self, Role};
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::door::Mode;
use facereko::driver::DoorTuning;
use facereko::driver::RunningDoor;
use facereko::engine::{self, FaceEngine};
use facereko::frame::Frame;
use facereko::hw::Hardware;
use facereko::hw::simulated::OutputRecorder;
use facereko::notify::rules::{NotifySections, Rule};
use facereko::schedule::DoorRight;
use facereko::store::{self, Channel, LogQuery, Notices, SignInMethod, SignInOutcome, SignInQuery, Store};
use facereko::voice::VoiceConfig;
use facereko::web::{self, WebState};
use futures_util::StreamExt;
use tower::ServiceExt;

use crate::common;

const ADMIN: &str = "ada";
const VIEWER: &str = "victor";
const PASSWORD: &str = "a long enough passphrase";
const CARD: &str = "04A1B2C3";
/// The user agent every test browser sends.
const TEST_AGENT: &str = "FaceReko tests (like Chromium)";

/// A running door with the web app in front of it.
struct App {
    router: Router,
    state: WebState,
    store: Arc<dyn Store>,
    engine: Arc<dyn FaceEngine>,
    config: Config,
    dir: tempfile::TempDir,
    /// What the simulated outputs did, the speaker's phrases among them.
    recorder: OutputRecorder,
    /// The visitors' desk the app uses, when `visitors.enabled`.
    desk: Option<facereko::visitor::Desk>,
    /// The door behind the app; none on a console (`App::console`).
    door: Option<RunningDoor>,
    /// The doorbell's and unknown cards' rings, with visitors on.
    _ringing: Vec<tokio::task::JoinHandle<()>>,
    /// The site's commands and door states over MQTT, with `mqtt.commands`.
    _site: Option<tokio::task::JoinHandle<()>>,
}

/// A picture with structure: what the simulated engine takes for a face.
fn pattern_png(seed: u8) -> Vec<u8> {
    // A light gradient with a dark oval whose place depends on `seed`.
    let (cx, cy) = (50.0 + f32::from(seed % 5) * 15.0, 60.0);
    let picture = image::RgbImage::from_fn(160, 120, |x, y| {
        let (dx, dy) = ((x as f32 - cx) / 30.0, (y as f32 - cy) / 40.0);
        let v = if dx * dx + dy * dy < 1.0 { 40 } else { 120 + (x * 120 / 160) as u8 };
        image::Rgb([v, v, v])
    });
    common::encode(&image::DynamicImage::ImageRgb8(picture), image::ImageFormat::Png)
}

impl App {
    async fn start(engine_kind: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let camera = dir.path().join("camera");
        std::fs::create_dir_all(camera.join("default")).unwrap();
        std::fs::write(camera.join("default/blank.png"), common::grey_png()).unwrap();
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        config.engine.kind = engine_kind.into();
        if engine_kind == engine::local::NAME {
            config.engine.models_dir = common::models_dir();
        }
        config.hardware.simulated.camera = Some(camera.clone());
        config.door.unlock_time = Duration::from_secs(1);
        config.door.debounce = Duration::from_millis(10);
        config.web.max_upload_bytes = 256 * 1024;
        config.web.tap_timeout = Duration::from_secs(5);
        adjust(&mut config);
        let store = store::open(&config.database, &config.data_dir).await.unwrap();
        let engine = engine::build(&config.engine).unwrap();
        let recorder = OutputRecorder::default();
        let mut hardware = Hardware::simulated(&recorder, camera);
        let bell = hardware.bell.take();
        let door = facereko::app::start_door(
            &config,
            hardware,
            Arc::clone(&store),
            Arc::clone(&engine),
            common::journal(&config),
            true,
        );
        let couriers = facereko::app::couriers(&config).unwrap();
        let desk = facereko::app::visitor_desk(&config, &door.link, couriers);
        let ringer = facereko::app::ringer(&config, &door.link, desk.as_ref());
        let ringing = ringer
            .as_ref()
            .map(|ringer| facereko::app::start_ringing(&config, ringer, bell, &door.link))
            .unwrap_or_default();
        let (site, site_task) = facereko::app::site_link(&config, &door.link).unwrap().unzip();
        let setup = web::WebSetup { desk: desk.clone(), ringer, site, ..facereko::app::web_setup(&config) };
        let state = WebState::new(setup, door.link.clone()).await;
        let router = web::router(state.clone());
        Self {
            router,
            state,
            store,
            engine,
            config,
            dir,
            recorder,
            desk,
            door: Some(door),
            _ringing: ringing,
            _site: site_task,
        }
    }

    async fn simulated() -> Self {
        Self::start(engine::simulated::NAME, |_| {}).await
    }

    /// A console, as `facereko serve-web` wires it: the web app on the site's store with the
    /// simulated engine and, with `mqtt.url`, the console's site link; no door behind it.
    async fn console(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        config.engine.kind = engine::simulated::NAME.into();
        config.web.max_upload_bytes = 256 * 1024;
        adjust(&mut config);
        let store = store::open(&config.database, &config.data_dir).await.unwrap();
        let engine = engine::build(&config.engine).unwrap();
        let (site, site_task) = config
            .mqtt
            .enabled()
            .then(|| facereko::site_link::start_console(&config.mqtt, "test-console".into()).unwrap())
            .unzip();
        let services = web::Services {
            store: Arc::clone(&store),
            engine: Arc::clone(&engine),
            liveness: Arc::new(facereko::liveness::Liveness::off()),
            clock: config.schedule.clock(),
        };
        let state = WebState::console(web::WebSetup { site, ..facereko::app::web_setup(&config) }, services).await;
        Self {
            router: web::router(state.clone()),
            state,
            store,
            engine,
            config,
            dir,
            recorder: OutputRecorder::default(),
            desk: None,
            door: None,
            _ringing: Vec::new(),
            _site: site_task,
        }
    }

    /// The door behind the app, for tests of a door's app.
    fn link(&self) -> &facereko::driver::DoorLink {
        &self.door.as_ref().expect("the app runs beside a door").link
    }

    fn control(&self) -> &facereko::driver::ControlHandle {
        &self.link().control
    }

    async fn add_user(&self, name: &str, role: Role) {
        let hash = accounts::hash_password(PASSWORD).unwrap();
        self.store.accounts().add_user(name, &hash, role.as_str()).await.unwrap();
    }

    /// A browser from `address` with no cookies yet.
    fn browser(&self, address: [u8; 4]) -> Browser<'_> {
        Browser {
            app: self,
            cookies: BTreeMap::new(),
            address: SocketAddr::from((address, 40000)),
            forwarded_for: None,
            host: None,
            csrf: String::new(),
        }
    }

    /// A browser signed in as `name`, with the CSRF token of its session.
    async fn signed_in(&self, name: &str) -> Browser<'_> {
        let mut browser = self.browser([10, 0, 0, 1]);
        let answer = browser.sign_in(name, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        browser.get("/").await;
        browser
    }

    /// Puts `picture` in front of the simulated camera whenever `card` is tapped.
    fn show_for_card(&self, card: &str, name: &str, picture: &[u8]) {
        let folder = self.config.hardware.simulated.camera.as_ref().unwrap().join(card);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(name), picture).unwrap();
    }

    /// Enrols `picture` for a new person `name` holding `card`, straight through the store.
    async fn enrol(&self, name: &str, card: &str, picture: &[u8]) -> i64 {
        let person = facereko::enrolment::add_person(self.store.as_ref(), name).await.unwrap();
        let frame = Frame::from_bytes(picture.to_vec(), "test picture").unwrap();
        let photos = common::photos(&self.config);
        facereko::enrolment::enrol_face(self.store.as_ref(), self.engine.as_ref(), &photos, &person, &frame)
            .await
            .unwrap();
        self.store.people().add_card(&card.parse().unwrap(), person.id).await.unwrap();
        person.id.0
    }

    async fn log(&self) -> Vec<store::LogEntry> {
        self.store.log().access_log(&LogQuery { limit: 100, ..LogQuery::default() }).await.unwrap()
    }

    /// Waits until the log has `count` rows; returns them, newest first.
    async fn wait_for_rows(&self, count: usize) -> Vec<store::LogEntry> {
        for _ in 0..500 {
            let rows = self.log().await;
            if rows.len() >= count {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the log did not reach {count} rows: {:?}", self.log().await);
    }

    async fn armed(&self) -> bool {
        self.control().status.borrow().armed
    }

    /// Waits until the recorder, which writes in the background, has stored `armed` for the next start.
    async fn wait_for_stored_armed(&self, armed: bool) {
        for _ in 0..500 {
            if self.store.door().armed().await.is_ok_and(|stored| stored == armed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the store did not keep armed = {armed} for the next start");
    }
}

/// Every field of the settings page's door form, with `match_threshold`, as the tests post it.
fn door_settings(match_threshold: &str) -> [(&'static str, &str); 9] {
    [
        ("unlock_time", "1s"),
        ("debounce", "10ms"),
        ("match_threshold", match_threshold),
        ("capture_frames", "5"),
        ("capture_time_limit", "3s"),
        ("engine_timeout", "5s"),
        ("grant_beep", "2s"),
        ("deny_beeps", "3"),
        ("deny_beep", "150ms"),
    ]
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    bytes: Vec<u8>,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// Keeps cookies and the latest CSRF token like a browser's tab would.
struct Browser<'a> {
    app: &'a App,
    cookies: BTreeMap<String, String>,
    address: SocketAddr,
    /// Sent as `X-Forwarded-For`, as a reverse proxy would.
    forwarded_for: Option<String>,
    /// The name the browser sent the requests to (`Host`), if any.
    host: Option<&'static str>,
    csrf: String,
}

impl Browser<'_> {
    async fn send(&mut self, method: Method, path: &str, content_type: Option<String>, body: Vec<u8>) -> Answer {
        let mut request = Request::builder().method(method).uri(path).header(header::USER_AGENT, TEST_AGENT);
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(client) = &self.forwarded_for {
            request = request.header("x-forwarded-for", client);
        }
        if let Some(host) = self.host {
            request = request.header(header::HOST, host);
        }
        let mut request = request.body(Body::from(body)).unwrap();
        request.extensions_mut().insert(ConnectInfo(self.address));
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        for cookie in response.headers().get_all(header::SET_COOKIE) {
            let cookie = cookie.to_str().unwrap();
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024).await.unwrap().to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(token) = hidden_csrf(&text) {
            self.csrf = token;
        }
        Answer { status, headers, text, bytes }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None, Vec::new()).await
    }

    /// Posts a form; the CSRF token of the last page is added unless `fields` has one.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            fields.insert(0, ("csrf", &csrf));
        }
        let body = serde_urlencoded::to_string(&fields).unwrap();
        self.send(Method::POST, path, Some("application/x-www-form-urlencoded".into()), body.into_bytes()).await
    }

    /// Posts photos as the upload form does: the CSRF token first, then each file.
    async fn upload(&mut self, path: &str, files: &[(&str, &[u8])]) -> Answer {
        let boundary = "facereko-test-boundary";
        let mut body =
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n", self.csrf)
                .into_bytes();
        for (name, bytes) in files {
            body.extend(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}--\r\n").as_bytes());
        self.send(Method::POST, path, Some(format!("multipart/form-data; boundary={boundary}")), body).await
    }

    /// Posts JSON as the page script does.
    async fn post_json(&mut self, path: &str, body: serde_json::Value) -> Answer {
        self.send(Method::POST, path, Some("application/json".into()), body.to_string().into_bytes()).await
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> Answer {
        self.get("/login").await;
        self.post("/login", &[("username", name), ("password", password)]).await
    }
}

fn hidden_csrf(page: &str) -> Option<String> {
    let start = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[start..].split('"').next()?.to_owned())
}

/// What the page says in its flash message, if anything.
fn flash(page: &str) -> String {
    let Some(start) = page.find("class=\"flash") else { return String::new() };
    let rest = &page[start..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..rest.find("</").unwrap()].to_owned()
}

/// A logged attempt with a photo name, written straight to the store.
async fn logged_attempt(app: &App, n: u32, decision: Decision, photo: Option<&str>) -> i64 {
    let event = AccessEvent {
        card_uid: Some(CARD.parse().unwrap()),
        person_name: Some(format!("Person {n}")),
        decision,
        reason: if decision == Decision::Granted { Reason::CardAndFace } else { Reason::UnknownCard },
        similarity: Some(97.5),
        confidence: Some(99.0),
        photo: photo.map(str::to_owned),
        timings: StageTimings { read_ms: 2, capture_ms: Some(30), match_ms: Some(12), actuate_ms: 1, total_ms: 45 },
        ..common::access_event(format!("web-test-{n}"))
    };
    app.store.door().record_attempt(&event, &Notices::NONE).await.unwrap()
}

#[tokio::test]
async fn nothing_is_shown_or_changed_without_signing_in() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let id = logged_attempt(&app, 1, Decision::Granted, None).await;
    let mut stranger = app.browser([10, 0, 0, 9]);
    let pages = [
        "/",
        "/history",
        "/history/rows",
        "/history.csv",
        "/people",
        "/people/1",
        "/schedules",
        "/settings",
        "/events",
    ];
    for path in
        pages.iter().map(|p| p.to_string()).chain([format!("/history/{id}/photo"), format!("/history/{id}/thumb")])
    {
        let answer = stranger.get(&path).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "GET {path}");
        assert_eq!(answer.location(), "/login", "GET {path}");
    }
    for path in
        ["/disarm", "/tap", "/ring", "/people", "/people/1/remove", "/people/1/limits", "/schedules", "/settings"]
    {
        let answer = stranger.post(path, &[("card", CARD), ("name", "Mallory")]).await;
        assert_eq!(answer.location(), "/login", "POST {path}");
    }
    assert!(app.armed().await);
    assert!(app.store.people().list_people().await.unwrap().is_empty());
    let login = stranger.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.text.contains("Sign in"));
}

#[tokio::test]
async fn the_first_admin_is_made_with_the_one_time_setup_code() {
    let app = App::simulated().await;
    let code = app.state.setup_code().expect("no accounts: a setup code was made");
    let mut browser = app.browser([10, 0, 0, 2]);
    assert!(browser.get("/login").await.text.contains("No accounts yet"));
    browser.get("/setup").await;
    let fields =
        |code: &'static str| [("code", code), ("username", "owner"), ("password", PASSWORD), ("confirm", PASSWORD)];
    let wrong = browser.post("/setup", &fields("AAAA-BBBB-CCCC")).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text.contains("not the setup code"), "{}", wrong.text);
    let short = browser
        .post("/setup", &[("code", &code), ("username", "owner"), ("password", "short"), ("confirm", "short")])
        .await;
    assert!(short.text.contains("shorter than"), "{}", short.text);
    assert!(app.store.accounts().list_users().await.unwrap().is_empty(), "nothing made from bad input");

    let made = browser
        .post(
            "/setup",
            &[("code", &code.to_lowercase()), ("username", "owner"), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.text);
    let users = app.store.accounts().list_users().await.unwrap();
    assert_eq!((users[0].username.as_str(), users[0].role.as_str()), ("owner", "admin"));
    assert!(users[0].password_hash.starts_with("$argon2id$"));
    assert!(browser.get("/").await.text.contains("armed-state"), "signed in straight away");
    assert_eq!(app.state.setup_code(), None, "the code is spent");
    assert_eq!(browser.get("/setup").await.location(), "/login", "setup is closed once an account exists");
}

#[tokio::test]
async fn signing_in_needs_the_right_password_and_the_form_cookie() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut browser = app.browser([10, 0, 0, 3]);
    let wrong = browser.sign_in(ADMIN, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("Wrong user name or password"));
    let unknown = browser.sign_in("nobody", PASSWORD).await;
    assert!(unknown.text.contains("Wrong user name or password"), "same answer for unknown accounts");

    // A form posted from elsewhere has no form cookie to match.
    let mut forged = app.browser([10, 0, 0, 4]);
    let answer =
        forged.post("/login", &[("csrf", "x".repeat(64).as_str()), ("username", ADMIN), ("password", PASSWORD)]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(!forged.cookies.contains_key("facereko_session"));

    let good = browser.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER);
    assert_eq!(good.location(), "/");
    let cookie = good.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP unless web.secure_cookies");

    let dashboard = browser.get("/").await;
    assert!(dashboard.text.contains("id=\"armed-state\""));
    let out = browser.post("/logout", &[]).await;
    assert_eq!(out.location(), "/login");
    assert_eq!(browser.get("/").await.location(), "/login", "signed out");
}

#[tokio::test]
async fn every_sign_in_attempt_is_logged_and_admins_read_it() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut stranger = app.browser([10, 0, 0, 9]);
    stranger.sign_in(ADMIN, "a guess").await;
    stranger.sign_in("nobody", "a guess").await;
    let mut viewer = app.browser([10, 0, 0, 8]);
    assert_eq!(viewer.sign_in(VIEWER, PASSWORD).await.status, StatusCode::SEE_OTHER);
    assert_eq!(viewer.get("/sign-ins").await.status, StatusCode::FORBIDDEN, "admins only");
    let mut admin = app.browser([10, 0, 0, 7]);
    admin.sign_in(ADMIN, PASSWORD).await;
    admin.get("/settings").await;
    let check = admin.post("/account/password", &[("current", "not it"), ("password", "x"), ("confirm", "x")]).await;
    assert_eq!(check.status, StatusCode::UNPROCESSABLE_ENTITY);

    let logged = app.store.sign_ins().sign_ins(&SignInQuery { limit: 10, ..SignInQuery::default() }).await.unwrap();
    let seen: Vec<_> = logged
        .iter()
        .rev()
        .map(|e| {
            let a = &e.attempt;
            (a.account.as_str(), a.method, a.outcome, a.address.map(|ip| ip.to_string()), a.user_agent.as_deref())
        })
        .collect();
    let from = |last: u8| Some(format!("10.0.0.{last}"));
    assert_eq!(
        seen,
        [
            (ADMIN, SignInMethod::Password, SignInOutcome::WrongPassword, from(9), Some(TEST_AGENT)),
            ("nobody", SignInMethod::Password, SignInOutcome::UnknownAccount, from(9), Some(TEST_AGENT)),
            (VIEWER, SignInMethod::Password, SignInOutcome::Succeeded, from(8), Some(TEST_AGENT)),
            (ADMIN, SignInMethod::Password, SignInOutcome::Succeeded, from(7), Some(TEST_AGENT)),
            (ADMIN, SignInMethod::PasswordCheck, SignInOutcome::WrongPassword, from(7), Some(TEST_AGENT)),
        ]
    );

    let page = admin.get("/sign-ins").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("5 attempts") && page.text.contains("unknown_account"), "{}", page.text);
    assert!(page.text.contains("10.0.0.9") && page.text.contains(TEST_AGENT));
    let filtered = admin.get(&format!("/sign-ins?account={}&outcome=wrong_password", ADMIN.to_uppercase())).await;
    assert!(filtered.text.contains("2 attempts"), "either case finds the account: {}", filtered.text);
    let bad = admin.get("/sign-ins?method=carrier-pigeon").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(admin.get("/settings").await.text.contains("href=\"/sign-ins\""), "linked from the accounts");
}

#[tokio::test]
async fn secure_cookies_behind_tls() {
    let app = App::start(engine::simulated::NAME, |c| c.web.secure_cookies = true).await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut browser = app.browser([10, 0, 0, 3]);
    let good = browser.sign_in(ADMIN, PASSWORD).await;
    let cookie = good.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

/// Signs in and says how long the answer took.
async fn timed_sign_in(browser: &mut Browser<'_>, name: &str, password: &str) -> (StatusCode, Duration) {
    let start = tokio::time::Instant::now();
    let status = browser.sign_in(name, password).await.status;
    (status, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_slow_an_account_down_without_locking_its_owner_out() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut guesser = app.browser([10, 0, 0, 5]);
    let mut waits = Vec::new();
    for _ in 0..7 {
        let (status, took) = timed_sign_in(&mut guesser, ADMIN, "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        waits.push(took.as_secs());
    }
    assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8], "three free, then each failure doubles the wait");
    let mut owner = app.browser([10, 0, 0, 6]);
    let (status, took) = timed_sign_in(&mut owner, ADMIN, PASSWORD).await;
    assert_eq!((status, took.as_secs()), (StatusCode::SEE_OTHER, 16), "the right password, slowed but not refused");
    let (status, took) = timed_sign_in(&mut guesser, ADMIN, "guess").await;
    assert_eq!((status, took.as_secs()), (StatusCode::UNAUTHORIZED, 0), "a good sign-in starts the account over");
    let (status, took) = timed_sign_in(&mut app.browser([10, 0, 0, 8]), VIEWER, PASSWORD).await;
    assert_eq!((status, took.as_secs()), (StatusCode::SEE_OTHER, 0), "other accounts are not slowed");
}

#[tokio::test(start_paused = true)]
async fn an_address_guessing_many_accounts_is_refused_and_only_trusted_proxies_name_it() {
    let app = App::start(engine::simulated::NAME, |c| c.web.trusted_proxies = vec!["10.0.0.0/30".into()]).await;
    app.add_user(VIEWER, Role::Viewer).await;
    // Behind the proxy, the client named in X-Forwarded-For is throttled, not the proxy.
    let mut sprayer = app.browser([10, 0, 0, 1]);
    sprayer.forwarded_for = Some("203.0.113.7".into());
    let mut through = 0;
    let refused = loop {
        let answer = sprayer.sign_in(&format!("user{through}"), "guess").await;
        match answer.status {
            StatusCode::UNAUTHORIZED => through += 1,
            status => break (status, answer.text),
        }
    };
    assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.1.contains("try again in"), "{}", refused.1);
    assert_eq!(through, 15, "ten free, then waits of 1, 2, 4, 8 and 16 s; 32 s is refused");
    assert_eq!(sprayer.sign_in(VIEWER, PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS, "per address");
    let mut neighbour = app.browser([10, 0, 0, 2]);
    neighbour.forwarded_for = Some("203.0.113.8".into());
    let (status, took) = timed_sign_in(&mut neighbour, VIEWER, PASSWORD).await;
    assert_eq!((status, took.as_secs()), (StatusCode::SEE_OTHER, 0), "others behind the same proxy are not held up");

    // From anyone else the header is ignored: a new made-up address per guess does not help.
    let mut forger = app.browser([10, 0, 0, 9]);
    let mut through = 0;
    loop {
        forger.forwarded_for = Some(format!("198.51.100.{through}"));
        match forger.sign_in(&format!("user{through}"), "guess").await.status {
            StatusCode::UNAUTHORIZED => through += 1,
            status => break assert_eq!(status, StatusCode::TOO_MANY_REQUESTS),
        }
    }
    assert_eq!(through, 15);
}

#[tokio::test]
async fn forms_without_the_sessions_token_change_nothing() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    for token in ["", "not-the-token"] {
        let answer = admin.post("/disarm", &[("csrf", token)]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(answer.text.contains("form has expired"), "{}", answer.text);
    }
    assert!(app.armed().await);
    assert_eq!(admin.post("/people", &[("csrf", "bad"), ("name", "Mallory")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(admin.post("/settings", &[("csrf", "bad"), ("unlock_time", "1m")]).await.status, StatusCode::FORBIDDEN);
    let forged_account =
        [("csrf", "bad"), ("username", "mallory"), ("role", "admin"), ("password", PASSWORD), ("confirm", PASSWORD)];
    assert_eq!(admin.post("/accounts", &forged_account).await.status, StatusCode::FORBIDDEN);
    let forged_password =
        [("csrf", "bad"), ("current", PASSWORD), ("password", "taken over now"), ("confirm", "taken over now")];
    assert_eq!(admin.post("/account/password", &forged_password).await.status, StatusCode::FORBIDDEN);
    assert_eq!(admin.post("/logout", &[("csrf", "bad")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.store.accounts().list_users().await.unwrap().len(), 1);
    assert_eq!(admin.get("/").await.status, StatusCode::OK, "still signed in with the old password");
    assert!(app.store.people().list_people().await.unwrap().is_empty());
    // A token of another session does not do either.
    let other = app.signed_in(ADMIN).await;
    assert_eq!(admin.post("/disarm", &[("csrf", &other.csrf)]).await.status, StatusCode::FORBIDDEN);
    assert!(app.armed().await);
}

#[tokio::test]
async fn viewers_see_everything_and_change_nothing() {
    let app = App::simulated().await;
    app.add_user(VIEWER, Role::Viewer).await;
    let person = app.enrol("Grace", CARD, &pattern_png(1)).await;
    let mut viewer = app.signed_in(VIEWER).await;
    for path in ["/", "/history", "/people", &format!("/people/{person}"), "/schedules", "/settings", "/history.csv"] {
        assert_eq!(viewer.get(path).await.status, StatusCode::OK, "GET {path}");
    }
    let dashboard = viewer.get("/").await.text;
    assert!(!dashboard.contains("action=\"/disarm\"") && !dashboard.contains("Simulate tap"), "no controls shown");
    let actions = [
        "/arm".to_owned(),
        "/disarm".to_owned(),
        "/tap".to_owned(),
        "/ring".to_owned(),
        "/people".to_owned(),
        format!("/people/{person}/remove"),
        format!("/people/{person}/cards"),
        format!("/people/{person}/cards/{CARD}/remove"),
        format!("/people/{person}/limits"),
        "/schedules".to_owned(),
        "/schedules/holidays".to_owned(),
        "/settings".to_owned(),
        "/accounts".to_owned(),
        format!("/accounts/{VIEWER}/remove"),
    ];
    for path in &actions {
        let answer = viewer.post(path, &[("card", "04DEAD00"), ("name", "Mallory"), ("unlock_time", "1m")]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "POST {path}");
    }
    assert_eq!(
        viewer.upload(&format!("/people/{person}/faces"), &[("a.png", &pattern_png(2))]).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(app.armed().await);
    let people = app.store.people().list_people().await.unwrap();
    assert_eq!((people.len(), people[0].cards, people[0].faces), (1, 1, 1));
    assert!(app.store.settings().setting(DoorTuning::SETTING).await.unwrap().is_none());
    assert_eq!(app.store.door().access_rules().await.unwrap(), Default::default(), "no schedule or limit was made");
}

#[tokio::test]
async fn arming_and_disarming_take_effect_in_the_running_door() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.enrol("Grace", CARD, &pattern_png(1)).await;
    app.show_for_card(CARD, "grace.png", &pattern_png(1));
    let mut admin = app.signed_in(ADMIN).await;

    let tapped = admin.post("/tap", &[("card", CARD)]).await;
    assert_eq!(tapped.location(), "/");
    let rows = app.wait_for_rows(1).await;
    assert_eq!((rows[0].event.decision, rows[0].event.reason), (Decision::Granted, Reason::CardAndFace));

    assert_eq!(admin.post("/disarm", &[]).await.location(), "/");
    assert!(!app.armed().await);
    app.wait_for_stored_armed(false).await;
    let page = admin.get("/").await.text;
    assert!(page.contains("Disarmed: taps are logged"), "{}", flash(&page));
    tokio::time::sleep(Duration::from_millis(20)).await;
    admin.post("/tap", &[("card", CARD)]).await;
    let rows = app.wait_for_rows(2).await;
    assert_eq!(rows[0].event.decision, Decision::Disarmed);

    admin.post("/arm", &[]).await;
    assert!(app.armed().await);
    let bad = admin.post("/tap", &[("card", "not a card")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("hex digits"), "{}", bad.text);
}

#[tokio::test]
async fn the_live_feed_reports_the_state_and_each_attempt() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let admin = app.signed_in(ADMIN).await;
    let cookies: Vec<String> = admin.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let request = Request::get("/events").header(header::COOKIE, cookies.join("; ")).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut stream = response.into_body().into_data_stream();
    let mut next_event = async || {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        String::from_utf8(chunk.to_vec()).unwrap()
    };
    let first = next_event().await;
    assert!(first.contains("event: status") && first.contains("\"armed_text\":\"Armed\""), "{first}");

    app.control().taps.as_ref().unwrap().tap("04DEAD00".parse().unwrap()).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("event: attempt") {
        seen.push_str(&next_event().await);
    }
    assert!(seen.contains("\"decision\":\"denied\""), "{seen}");
}

#[tokio::test]
async fn the_live_feed_ends_with_its_session() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let cookies: Vec<String> = admin.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let request = Request::get("/events").header(header::COOKIE, cookies.join("; ")).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let mut stream = response.into_body().into_data_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: status"));

    admin.post("/logout", &[]).await;
    app.control().taps.as_ref().unwrap().tap("04DEAD00".parse().unwrap()).await.unwrap();
    // Whatever happens at the door now, the signed-out page hears nothing more of it.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            let text = String::from_utf8_lossy(&chunk.unwrap()).into_owned();
            assert!(!text.contains("event: "), "an event after signing out: {text}");
        }
    });
    ended.await.expect("the feed ends once its session has");
}

#[tokio::test]
async fn history_is_newest_first_filtered_paginated_and_exported() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    for n in 0..30 {
        let decision = if n % 3 == 0 { Decision::Denied } else { Decision::Granted };
        logged_attempt(&app, n, decision, None).await;
    }
    let mut admin = app.signed_in(ADMIN).await;
    let first = admin.get("/history").await.text;
    assert!(first.contains("30 attempts") && first.contains("Page 1 of 2"), "{first}");
    assert!(first.find("Person 29").unwrap() < first.find("Person 28").unwrap(), "newest first");
    assert!(first.contains("data-live-src=\"/history/rows?\""), "the first page updates live");
    let second = admin.get("/history?page=2").await.text;
    assert!(second.contains("Person 0") && !second.contains("Person 29"));
    assert!(!second.contains("data-live-src"), "older pages stay still");

    let denied = admin.get("/history?decision=denied").await.text;
    assert!(denied.contains("10 attempts"), "{denied}");
    assert!(!denied.contains("badge granted"));
    let by_person = admin.get("/history?person=Person+7&reason=card_and_face").await.text;
    assert!(by_person.contains("1 attempt ") || by_person.contains("1 attempt<"), "{by_person}");
    let today = time::OffsetDateTime::now_utc().date();
    let dated = admin.get(&format!("/history?from={today}&to={today}&card=04:a1:b2:c3")).await.text;
    assert!(dated.contains("30 attempts"), "{dated}");
    let yesterday = today.previous_day().unwrap();
    assert!(admin.get(&format!("/history?to={yesterday}")).await.text.contains("0 attempts"));
    let bad = admin.get("/history?decision=maybe").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("not one of"), "{}", bad.text);

    let csv = admin.get("/history.csv?decision=denied").await;
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(csv.headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(lines[0].starts_with("id,time,door,card,person,decision,reason,similarity"));
    assert_eq!(lines.len(), 11);
    assert!(lines[1].contains(",Person 27,denied,unknown_card,97.50,"), "{}", lines[1]);

    let rows = admin.get("/history/rows?limit=5").await;
    assert_eq!(rows.text.matches("<tr data-id=").count(), 5);
    assert_eq!(rows.headers["x-total-count"], "30", "the page's count follows the live rows");
}

#[tokio::test]
async fn photos_are_served_only_by_log_row_to_signed_in_users() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.enrol("Grace", CARD, &pattern_png(1)).await;
    app.show_for_card(CARD, "grace.png", &pattern_png(1));
    let mut admin = app.signed_in(ADMIN).await;
    admin.post("/tap", &[("card", CARD)]).await;
    let row = app.wait_for_rows(1).await.remove(0);
    assert!(row.event.photo.is_some());
    let photo = admin.get(&format!("/history/{}/photo", row.id)).await;
    assert_eq!(photo.status, StatusCode::OK);
    assert_eq!(photo.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(photo.bytes, pattern_png(1));
    let thumb = admin.get(&format!("/history/{}/thumb", row.id)).await;
    assert_eq!(thumb.headers[header::CONTENT_TYPE], "image/jpeg");
    let small = image::load_from_memory(&thumb.bytes).unwrap();
    assert!(small.width() <= 240 && small.height() <= 180, "{}x{}", small.width(), small.height());
    let history = admin.get("/history").await.text;
    assert!(history.contains(&format!("href=\"/history/{}/photo\"", row.id)));

    // A log row naming a file outside the photos folder (as a tampered database might).
    std::fs::write(app.dir.path().join("secret.txt"), "not for the web").unwrap();
    let tampered = logged_attempt(&app, 1, Decision::Granted, Some("../secret.txt")).await;
    let absolute = logged_attempt(&app, 2, Decision::Granted, Some("/etc/passwd")).await;
    let without = logged_attempt(&app, 3, Decision::Denied, None).await;
    for id in [tampered, absolute, without, 999_999] {
        for kind in ["photo", "thumb"] {
            let answer = admin.get(&format!("/history/{id}/{kind}")).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{kind} of row {id}");
            assert!(!answer.text.contains("not for the web") && !answer.text.contains("root:"));
        }
    }
    for path in [
        "/history/..%2F..%2Fsecret.txt/photo",
        "/history/../secret.txt",
        "/history/1%2F..%2F..%2Fsecret.txt/photo",
        "/static/..%2F..%2Fsecret.txt",
        "/static/../../secret.txt",
    ] {
        let answer = admin.get(path).await;
        assert!(answer.status.is_client_error(), "{path}: {}", answer.status);
        assert!(!answer.text.contains("not for the web"), "{path}");
    }
}

#[tokio::test]
async fn people_cards_and_faces_are_added_and_removed() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let added = admin.post("/people", &[("name", "  Grace Hopper ")]).await;
    let page_url = added.location().to_owned();
    assert!(page_url.starts_with("/people/"), "{page_url}");
    let page = admin.get(&page_url).await.text;
    assert!(page.contains("<h1>Grace Hopper</h1>") && flash(&page).contains("Added Grace Hopper"), "{page}");

    let duplicate = admin.post("/people", &[("name", "grace hopper")]).await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    let empty = admin.post("/people", &[("name", "   ")]).await;
    assert!(flash(&empty.text).contains("needs a name"), "{}", empty.text);
    assert_eq!(app.store.people().list_people().await.unwrap().len(), 1);

    let uploaded = admin.upload(&format!("{page_url}/faces"), &[("grace.png", &pattern_png(1))]).await;
    assert_eq!(uploaded.location(), page_url);
    let page = admin.get(&page_url).await.text;
    assert!(flash(&page).contains("Face enrolled from grace.png"), "{}", flash(&page));
    let camera = admin.post(&format!("{page_url}/faces/camera"), &[]).await;
    assert_eq!(camera.status, StatusCode::UNPROCESSABLE_ENTITY, "the camera shows a blank wall");
    assert!(flash(&camera.text).contains("no face found"), "{}", flash(&camera.text));
    let scene = app.config.hardware.simulated.camera.as_ref().unwrap().join("default");
    std::fs::remove_file(scene.join("blank.png")).unwrap();
    std::fs::write(scene.join("grace-at-the-door.png"), pattern_png(3)).unwrap();
    let camera = admin.post(&format!("{page_url}/faces/camera"), &[]).await;
    assert_eq!(camera.location(), page_url, "{}", flash(&camera.text));
    assert!(flash(&admin.get(&page_url).await.text).contains("Face enrolled from the door camera"));

    let typed = admin.post(&format!("{page_url}/cards"), &[("card", "04:a1:b2:c3")]).await;
    assert_eq!(typed.location(), page_url);
    assert!(flash(&admin.get(&page_url).await.text).contains("Card 04A1B2C3 now opens for Grace Hopper"));
    let bad = admin.post(&format!("{page_url}/cards"), &[("card", "04A1B2")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&bad.text).contains("4, 7 or 10 byte"), "{}", flash(&bad.text));

    let other = admin.post("/people", &[("name", "Alan")]).await.location().to_owned();
    let taken = admin.post(&format!("{other}/cards"), &[("card", CARD)]).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", flash(&taken.text));
    let person = facereko::access::PersonId(page_url.trim_start_matches("/people/").parse().unwrap());
    assert_eq!(app.store.people().person_cards(person).await.unwrap(), vec![CARD.parse::<CardUid>().unwrap()]);

    // Tap the card now: the next card read is bound.
    let waiting = {
        let tap_url = format!("{other}/cards/tap");
        let mut browser = app.signed_in(ADMIN).await;
        async move { browser.post(&tap_url, &[]).await }
    };
    let taps = app.control().taps.clone().unwrap();
    let tapper = async {
        // The reader is read by the door; a tap before the page subscribed would be missed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        taps.tap("04B0B0B0".parse().unwrap()).await.unwrap();
    };
    let (bound, ()) = tokio::join!(waiting, tapper);
    assert_eq!(bound.location(), other, "{}", bound.text);
    let alan = facereko::access::PersonId(other.trim_start_matches("/people/").parse().unwrap());
    assert_eq!(app.store.people().person_cards(alan).await.unwrap(), vec!["04B0B0B0".parse::<CardUid>().unwrap()]);

    let faces = app.store.people().person_faces(person).await.unwrap();
    assert_eq!(faces.len(), 2, "one uploaded, one from the camera");
    let removed = admin.post(&format!("{page_url}/faces/{}/remove", faces[0].id), &[]).await;
    assert_eq!(removed.location(), page_url);
    assert_eq!(app.store.people().person_faces(person).await.unwrap().len(), 1);
    assert_eq!(admin.post(&format!("{other}/faces/{}/remove", faces[0].id), &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        admin.post(&format!("{page_url}/cards/04B0B0B0/remove"), &[]).await.status,
        StatusCode::NOT_FOUND,
        "Alan's card"
    );
    admin.post(&format!("{page_url}/cards/{CARD}/remove"), &[]).await;
    assert!(app.store.people().person_cards(person).await.unwrap().is_empty());

    let gone = admin.post(&format!("{other}/remove"), &[]).await;
    assert_eq!(gone.location(), "/people");
    assert!(flash(&admin.get("/people").await.text).contains("Removed Alan"));
    assert!(app.store.door().card_holder(&"04B0B0B0".parse().unwrap()).await.unwrap().is_none());
    assert_eq!(admin.get(&other).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tap_the_card_now_gives_up_after_the_timeout() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let url = admin.post("/people", &[("name", "Alan")]).await.location().to_owned();
    let answer = admin.post(&format!("{url}/cards/tap"), &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&answer.text).contains("No card was tapped within 5s"), "{}", flash(&answer.text));
}

#[tokio::test]
async fn uploads_that_are_too_large_or_not_pictures_change_nothing() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let url = admin.post("/people", &[("name", "Grace")]).await.location().to_owned();
    admin.get(&url).await;
    let huge = vec![0xFFu8; 300 * 1024];
    let too_large = admin.upload(&format!("{url}/faces"), &[("huge.jpg", &huge)]).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_large.text.contains("web.max_upload_bytes"), "{}", too_large.text);
    let text = admin.upload(&format!("{url}/faces"), &[("notes.txt", b"hello, not a picture")]).await;
    assert_eq!(text.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&text.text).contains("notes.txt: not a JPEG or PNG picture"), "{}", flash(&text.text));
    let truncated =
        admin.upload(&format!("{url}/faces"), &[("broken.jpg", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J'])]).await;
    assert_eq!(truncated.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&truncated.text).contains("broken.jpg: not a picture we can read"), "{}", flash(&truncated.text));
    let nothing = admin.upload(&format!("{url}/faces"), &[]).await;
    assert!(flash(&nothing.text).contains("Choose a photo first"));
    assert_eq!(app.store.people().list_people().await.unwrap()[0].faces, 0);
}

#[tokio::test]
async fn settings_are_checked_saved_and_used_by_the_running_door() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    // The door camera shows a slightly different picture from the enrolled one.
    let enrolled = pattern_png(1);
    let mut seen = image::load_from_memory(&enrolled).unwrap().to_rgb8();
    for pixel in seen.pixels_mut().take(2000) {
        pixel.0 = [255, 255, 255];
    }
    let seen = common::encode(&image::DynamicImage::ImageRgb8(seen), image::ImageFormat::Png);
    let similarity = app
        .engine
        .compare(&Frame::from_bytes(enrolled.clone(), "a").unwrap(), &Frame::from_bytes(seen.clone(), "b").unwrap())
        .await
        .unwrap()
        .similarity;
    assert!(similarity > 90.0 && similarity < 99.0, "the pictures need to be close: {similarity}");
    app.enrol("Grace", CARD, &enrolled).await;
    app.show_for_card(CARD, "seen.png", &seen);
    let mut admin = app.signed_in(ADMIN).await;

    let page = admin.get("/settings").await.text;
    assert!(page.contains("value=\"1s\"") && page.contains("value=\"90\""), "current values shown");
    let mut fields: Vec<(String, String)> = door_settings("90").map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec();
    let mut post = async |browser: &mut Browser<'_>, changes: &[(&str, &str)]| {
        for (key, value) in changes {
            fields.iter_mut().find(|(k, _)| k == key).unwrap().1 = (*value).to_owned();
        }
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        browser.post("/settings", &pairs).await
    };
    let invalid = post(&mut admin, &[("unlock_time", "0s"), ("deny_beeps", "many")]).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.text.contains("out of range; use a duration from 1s to 5m"), "{}", invalid.text);
    assert!(invalid.text.contains("use a whole number"));
    let out_of_range =
        post(&mut admin, &[("unlock_time", "1s"), ("deny_beeps", "3"), ("match_threshold", "150")]).await;
    assert!(out_of_range.text.contains("at most 100"), "{}", out_of_range.text);
    assert!(app.store.settings().setting(DoorTuning::SETTING).await.unwrap().is_none(), "nothing saved");

    admin.post("/tap", &[("card", CARD)]).await;
    assert_eq!(app.wait_for_rows(1).await[0].event.decision, Decision::Granted);

    let stricter = format!("{:.1}", similarity + 1.0);
    let saved = post(&mut admin, &[("match_threshold", &stricter)]).await;
    assert_eq!(saved.location(), "/settings");
    let page = admin.get("/settings").await.text;
    assert!(flash(&page).contains("Settings saved"), "{}", flash(&page));
    assert!(page.contains(&format!("value=\"{stricter}\"")));
    let stored: DoorTuning =
        serde_json::from_str(&app.store.settings().setting(DoorTuning::SETTING).await.unwrap().unwrap()).unwrap();
    assert_eq!(stored.match_threshold.to_string(), stricter);

    tokio::time::sleep(Duration::from_millis(20)).await;
    admin.post("/tap", &[("card", CARD)]).await;
    let row = app.wait_for_rows(2).await.remove(0);
    assert_eq!(
        (row.event.decision, row.event.reason),
        (Decision::Denied, Reason::FaceNotRecognised),
        "no restart needed"
    );
}

/// Who has a message waiting about each attempt, by e-mail: (event id, recipient).
async fn queued_mail(app: &App) -> Vec<(String, String)> {
    let queued = app.store.messages().due_messages(Channel::Email, i64::MAX, 100).await.unwrap();
    queued.into_iter().map(|message| (message.event.event_id, message.to)).collect()
}

#[tokio::test]
async fn notification_rules_are_checked_saved_and_used_by_the_running_door() {
    let app = App::start(engine::simulated::NAME, |config| {
        config.email.server = "smtp.example.com".into();
        config.email.from = "door@example.com".into();
        config.email.to = vec!["owner@example.com".into()];
    })
    .await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut admin = app.signed_in(ADMIN).await;
    let page = admin.get("/settings").await.text;
    assert!(page.contains("id=\"notifications\""), "the section is on the page");
    assert!(page.contains("name=\"rule0.channel\""), "the default rule (grants and faults by mail) is shown");
    assert!(!page.contains("/settings/notifications/reset"), "nothing saved to go back from");

    // By default a denial is told to nobody.
    admin.post("/tap", &[("card", CARD)]).await;
    assert_eq!(app.wait_for_rows(1).await[0].event.reason, Reason::UnknownCard);
    assert!(queued_mail(&app).await.is_empty());

    let setting = async || app.store.settings().setting(NotifySections::RULES_SETTING).await.unwrap();
    let sms_off = admin.post("/settings/notifications", &[("new.channel", "sms"), ("new.on", "denied")]).await;
    assert_eq!(sms_off.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        sms_off.text.contains("sms.url (or sms.service"),
        "the message `config check` gives: {}",
        flash(&sms_off.text)
    );
    let bad_address = [("new.channel", "email"), ("new.on", "denied"), ("new.to", "guard at example")];
    let refused = admin.post("/settings/notifications", &bad_address).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("is not an e-mail address"), "{}", flash(&refused.text));
    assert!(refused.text.contains("guard at example"), "what was typed is kept");
    assert_eq!(setting().await, None, "nothing saved");

    let guard = [
        ("rule0.channel", "email"),
        ("rule0.on", "granted"),
        ("rule0.remove", "1"),
        ("new.channel", "email"),
        ("new.on", "denied"),
        ("new.reason", "unknown_card"),
        ("new.to", "guard@example.com"),
    ];
    let mut viewer = app.signed_in(VIEWER).await;
    assert!(!viewer.get("/settings").await.text.contains("Save notification rules"), "viewers only look");
    assert_eq!(viewer.post("/settings/notifications", &guard).await.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer.post("/settings/notifications/reset", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(setting().await, None);

    let saved = admin.post("/settings/notifications", &guard).await;
    assert_eq!(saved.location(), "/settings#notifications", "{}", saved.text);
    let page = admin.get("/settings").await.text;
    assert!(flash(&page).contains("Notification rules saved"), "{}", flash(&page));
    assert!(page.contains("guard@example.com") && page.contains("/settings/notifications/reset"));
    let stored: Vec<Rule> = serde_json::from_str(&setting().await.unwrap()).unwrap();
    assert_eq!(stored.len(), 1, "the default rule was removed: {stored:?}");
    assert_eq!(stored[0].reasons, [Reason::UnknownCard]);
    assert_eq!(stored[0].to, ["guard@example.com"]);

    // The running door tells the guard of the next denial, without a restart.
    tokio::time::sleep(Duration::from_millis(20)).await;
    admin.post("/tap", &[("card", CARD)]).await;
    let denied = app.wait_for_rows(2).await.remove(0).event.event_id;
    assert_eq!(queued_mail(&app).await, [(denied, "guard@example.com".to_owned())]);

    let reset = admin.post("/settings/notifications/reset", &[]).await;
    assert_eq!(reset.location(), "/settings#notifications");
    assert_eq!(setting().await, None, "the override is gone");
    assert!(flash(&admin.get("/settings").await.text).contains("config file's notification rules apply again"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    admin.post("/tap", &[("card", CARD)]).await;
    app.wait_for_rows(3).await;
    assert_eq!(queued_mail(&app).await.len(), 1, "the config file's rules tell nobody of a denial");
}

#[tokio::test]
async fn a_removed_account_or_changed_password_ends_its_sessions() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut admin = app.signed_in(ADMIN).await;
    let mut viewer = app.signed_in(VIEWER).await;
    app.store.accounts().remove_user(VIEWER).await.unwrap();
    assert_eq!(viewer.get("/").await.location(), "/login");
    let new_hash = accounts::hash_password("another long passphrase").unwrap();
    app.store.accounts().set_password_hash(ADMIN, &new_hash).await.unwrap();
    assert_eq!(admin.get("/history").await.location(), "/login");
}

#[tokio::test]
async fn every_answer_forbids_framing_and_foreign_scripts() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    for path in ["/login", "/", "/no/such/page"] {
        let answer = admin.get(path).await;
        let policy = answer.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let missing = admin.get("/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let css_path = facereko_css_path(&admin.get("/").await.text);
    let css = admin.get(&css_path).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
}

fn facereko_css_path(page: &str) -> String {
    let start = page.find("href=\"/static/app-").unwrap() + "href=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// The on-device engine with real faces: one face enrols, a group photo and a face-less picture
/// are refused with the reason.
#[tokio::test]
async fn enrolment_uses_the_on_device_engine_on_real_faces() {
    let app = App::start(engine::local::NAME, |_| {}).await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let url = admin.post("/people", &[("name", "George W Bush")]).await.location().to_owned();
    let read = |relative: &str| std::fs::read(common::face(relative)).unwrap();
    let portrait = read("lfw10/George_W_Bush/George_W_Bush_0001.jpg");
    let two_faces = common::side_by_side(
        &common::face("lfw10/George_W_Bush/George_W_Bush_0002.jpg"),
        250,
        &common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg"),
        250,
    );
    let enrolled = admin.upload(&format!("{url}/faces"), &[("bush.jpg", &portrait)]).await;
    assert_eq!(enrolled.location(), url, "{}", flash(&enrolled.text));
    let group = admin.upload(&format!("{url}/faces"), &[("group.jpg", &two_faces)]).await;
    assert_eq!(group.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&group.text).contains("faces found; use a photo with exactly one face"), "{}", flash(&group.text));
    let wall = admin.upload(&format!("{url}/faces"), &[("wall.png", &common::grey_png())]).await;
    assert!(flash(&wall.text).contains("wall.png: no face found"), "{}", flash(&wall.text));
    // About 40 px between the eyes: a blur of σ 4 px leaves a face that would match no one well.
    let blurred = image::imageops::blur(&image::load_from_memory(&portrait).unwrap(), 4.0);
    let blurred = common::encode(&image::DynamicImage::ImageRgba8(blurred), image::ImageFormat::Png);
    let poor = admin.upload(&format!("{url}/faces"), &[("blurred.png", &blurred)]).await;
    assert_eq!(poor.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&poor.text).contains("blurred.png: the face is too blurred: sharpness "), "{}", flash(&poor.text));
    let mixed =
        admin.upload(&format!("{url}/faces"), &[("again.jpg", &portrait), ("wall.png", &common::grey_png())]).await;
    assert_eq!(mixed.location(), url);
    let page = admin.get(&url).await.text;
    assert!(
        flash(&page).contains("Face enrolled from again.jpg. Not enrolled: wall.png: no face found"),
        "{}",
        flash(&page)
    );
    let faces = app
        .store
        .people()
        .person_faces(facereko::access::PersonId(url.trim_start_matches("/people/").parse().unwrap()))
        .await;
    assert_eq!(faces.unwrap().len(), 2);
    assert!(page.contains("local"));
}

#[tokio::test]
async fn a_failing_camera_shows_on_the_dashboard_until_it_works_again() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.enrol("Grace", CARD, &pattern_png(1)).await;
    let camera = app.config.hardware.simulated.camera.clone().unwrap();
    std::fs::remove_dir_all(camera.join("default")).unwrap();
    let mut admin = app.signed_in(ADMIN).await;
    let camera_tile = |page: &str| {
        let start = page.find("id=\"camera-state\">").expect("a camera tile") + "id=\"camera-state\">".len();
        page[start..page[start..].find('<').unwrap() + start].to_owned()
    };
    assert_eq!(camera_tile(&admin.get("/").await.text), "simulated · working");

    admin.post("/tap", &[("card", CARD)]).await;
    assert_eq!(app.wait_for_rows(1).await[0].event.reason, Reason::CameraError);
    let failing = camera_tile(&admin.get("/").await.text);
    assert!(
        failing.starts_with("simulated · failing: ") && failing.contains("no pictures for card 04A1B2C3"),
        "{failing}"
    );

    app.show_for_card(CARD, "grace.png", &pattern_png(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    admin.post("/tap", &[("card", CARD)]).await;
    assert_eq!(app.wait_for_rows(2).await[0].event.decision, Decision::Granted);
    assert_eq!(camera_tile(&admin.get("/").await.text), "simulated · working", "healthy again");
}

#[tokio::test]
async fn admins_manage_accounts_and_everyone_changes_their_own_password() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let page = admin.get("/settings").await.text;
    assert!(page.contains("id=\"account-list\"") && page.contains("(you)"));

    let add = |name: &'static str, role: &'static str, password: &'static str, confirm: &'static str| {
        [("username", name), ("role", role), ("password", password), ("confirm", confirm)]
    };
    let refused = [
        (add("a b", "viewer", PASSWORD, PASSWORD), "user name needs"),
        (add("vic", "root", PASSWORD, PASSWORD), "not a role"),
        (add("vic", "viewer", "short", "short"), "shorter than 10"),
        (add("vic", "viewer", PASSWORD, "something else entirely"), "two passwords differ"),
        (add("ADA", "viewer", PASSWORD, PASSWORD), "ADA"),
    ];
    for (fields, reason) in refused {
        let answer = admin.post("/accounts", &fields).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{reason}");
        assert!(flash(&answer.text).contains(reason), "{reason}: {}", flash(&answer.text));
    }
    assert_eq!(app.store.accounts().list_users().await.unwrap().len(), 1, "nothing added from bad input");

    let added = admin.post("/accounts", &add(VIEWER, "viewer", PASSWORD, PASSWORD)).await;
    assert_eq!(added.location(), "/settings#accounts");
    assert!(flash(&admin.get("/settings").await.text).contains("Added the viewer account victor"));
    let mut viewer = app.signed_in(VIEWER).await;
    assert!(!viewer.get("/settings").await.text.contains("Add account"), "viewers see no account controls");

    let myself = admin.post(&format!("/accounts/{ADMIN}/remove"), &[]).await;
    assert!(flash(&myself.text).contains("cannot remove your own account"), "{}", flash(&myself.text));
    admin.post("/accounts", &add("grace", "admin", PASSWORD, PASSWORD)).await;
    let mut grace = app.signed_in("grace").await;
    assert_eq!(grace.post(&format!("/accounts/{ADMIN}/remove"), &[]).await.location(), "/settings#accounts");
    assert_eq!(grace.post("/accounts/nobody/remove", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.get("/").await.location(), "/login", "a removed account's session ends");

    // The viewer changes their own password: the current one is needed.
    let wrong = viewer
        .post(
            "/account/password",
            &[
                ("current", "not it at all"),
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert!(flash(&wrong.text).contains("current password is not right"), "{}", flash(&wrong.text));
    let changed = viewer
        .post(
            "/account/password",
            &[("current", PASSWORD), ("password", "a brand new passphrase"), ("confirm", "a brand new passphrase")],
        )
        .await;
    assert_eq!(changed.location(), "/settings#accounts");
    assert!(
        flash(&viewer.get("/settings").await.text).contains("Password changed"),
        "still signed in, with a new session"
    );
    let mut again = app.browser([10, 0, 0, 8]);
    assert_eq!(again.sign_in(VIEWER, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.sign_in(VIEWER, "a brand new passphrase").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_dashboard_warns_of_card_only_mode() {
    let normal = App::simulated().await;
    normal.add_user(ADMIN, Role::Admin).await;
    let page = normal.signed_in(ADMIN).await.get("/").await;
    assert!(!page.text.contains("id=\"card-only\""), "no banner with card and face");

    let card_only = App::start(engine::simulated::NAME, |config| config.door.mode = Mode::CardOnly).await;
    card_only.add_user(ADMIN, Role::Admin).await;
    let page = card_only.signed_in(ADMIN).await.get("/").await;
    assert!(page.text.contains("id=\"card-only\""), "{}", page.text);
    assert!(page.text.contains("opens this door without a face"));
}

#[tokio::test]
async fn schedules_holidays_and_a_persons_limits_are_kept_from_the_web_app() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/schedules").await;
    let saved = admin
        .post(
            "/schedules",
            &[("name", "Cleaners"), ("windows", "tue 09:00-12:00\r\nfri 22:00-02:00"), ("open_on_holidays", "true")],
        )
        .await;
    assert_eq!(saved.location(), "/schedules");
    let bad = admin.post("/schedules", &[("name", "Broken"), ("windows", "someday 09:00-10:00")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&bad.text).contains("is not a weekday"), "{}", flash(&bad.text));
    admin
        .post(
            "/schedules/holidays",
            &[("name", "Christmas"), ("first", "2026-12-24"), ("last", "2026-12-26"), ("yearly", "true")],
        )
        .await;
    let page = admin.get("/schedules").await;
    assert!(page.text.contains("tue 09:00-12:00") && page.text.contains("fri 22:00-02:00"), "{}", page.text);
    assert!(page.text.contains("2026-12-24") && page.text.contains("every year"), "{}", page.text);

    let rules = app.store.door().access_rules().await.unwrap();
    let cleaners = rules.schedules[0].id;
    let kim = app.store.people().add_person("Kim").await.unwrap();
    let person_page = format!("/people/{}", kim.id);
    admin.get(&person_page).await;
    let schedule = cleaners.to_string();
    let limits =
        [("valid_from", "2026-06-01 08:00"), ("valid_until", "2027-06-01 00:00"), ("schedule", schedule.as_str())];
    let saved = admin.post(&format!("{person_page}/limits"), &limits).await;
    assert_eq!(saved.location(), person_page);
    let shown = admin.get(&person_page).await;
    assert!(shown.text.contains("Until 2027-06-01 00:00:00"), "{}", shown.text);
    assert!(shown.text.contains("Next in:"), "{}", shown.text);
    let stored = app.store.door().access_rules().await.unwrap().person_limits(kim.id);
    assert_eq!(stored.schedule, Some(cleaners));

    // A schedule someone follows stays.
    admin.get("/schedules").await;
    let refused = admin.post(&format!("/schedules/{cleaners}/remove"), &[]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&refused.text).contains("is followed by 1"), "{}", flash(&refused.text));
}

/// Registers the doors of a site, as their daemons would: (id, name).
async fn register_doors(app: &App, doors: &[(&str, &str)]) {
    for (id, name) in doors {
        let door = store::SiteDoor {
            id: (*id).into(),
            name: (*name).into(),
            web_address: None,
            version: "1".into(),
            last_seen: time::OffsetDateTime::now_utc(),
        };
        app.store.doors().register_door(&door).await.unwrap();
    }
}

#[tokio::test]
async fn an_admin_keeps_a_person_to_some_doors_of_the_site_and_lets_them_go_again() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    register_doors(&app, &[("front", "Front door"), ("garage", "Garage")]).await;
    let office = ["mon-fri 08:00-18:00".parse().unwrap()];
    let hours = app.store.schedules().save_schedule("Office", &office, false).await.unwrap().id.to_string();
    let kim = app.store.people().add_person("Kim").await.unwrap();
    let person_page = format!("/people/{}", kim.id);
    let mut admin = app.signed_in(ADMIN).await;
    let page = admin.get(&person_page).await.text;
    assert!(page.contains("Every door of the site.") && page.contains("Garage"), "{page}");

    let garage_hours =
        [("rights", "listed"), ("door", "garage"), ("schedule.garage", hours.as_str()), ("schedule.front", "")];
    let saved = admin.post(&format!("{person_page}/doors"), &garage_hours).await;
    assert_eq!(saved.location(), format!("{person_page}#doors"));
    let rules = app.store.door().access_rules().await.unwrap();
    let garage = DoorRight { door: "garage".into(), schedule: Some(hours.parse().unwrap()) };
    assert_eq!(rules.door_rights(kim.id), Some(&[garage][..]));
    let page = admin.get(&person_page).await.text;
    assert!(page.contains("Only: <strong>Garage</strong> (schedule Office)."), "{page}");

    let mut viewer = app.signed_in(VIEWER).await;
    let shown = viewer.get(&person_page).await.text;
    assert!(shown.contains("Only: ") && !shown.contains("Save doors"), "viewers see, never change");
    let refused = viewer.post(&format!("{person_page}/doors"), &[("rights", "every")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    admin.post(&format!("{person_page}/doors"), &[("rights", "listed")]).await;
    assert_eq!(app.store.door().access_rules().await.unwrap().door_rights(kim.id), Some(&[][..]), "no door");
    admin.post(&format!("{person_page}/doors"), &[("rights", "every"), ("door", "front")]).await;
    assert_eq!(app.store.door().access_rules().await.unwrap().door_rights(kim.id), None, "every door again");
}

#[tokio::test]
async fn an_admin_makes_groups_with_members_and_keeps_them_to_the_groups_doors() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    register_doors(&app, &[("front", "Front door"), ("back", "Back door")]).await;
    let evenings = ["daily 18:00-22:00".parse().unwrap()];
    let hours = app.store.schedules().save_schedule("Evenings", &evenings, false).await.unwrap().id.to_string();
    let kim = app.store.people().add_person("Kim").await.unwrap();
    let mut admin = app.signed_in(ADMIN).await;

    let added = admin.post("/groups", &[("name", "Cleaners")]).await;
    let group = app.store.door().access_rules().await.unwrap().group_named("cleaners").unwrap().clone();
    assert_eq!(added.location(), format!("/groups/{}", group.id));
    let duplicate = admin.post("/groups", &[("name", "CLEANERS")]).await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&duplicate.text).contains("already exists"), "{}", flash(&duplicate.text));

    let url = format!("/groups/{}", group.id);
    admin.post(&format!("{url}/members"), &[("person", &kim.id.to_string())]).await;
    let page = admin.get(&url).await.text;
    assert!(page.contains("Kim") && page.contains("Not set: the group keeps nobody to doors."), "{page}");
    let back_evenings = [("rights", "listed"), ("door", "back"), ("schedule.back", hours.as_str())];
    assert_eq!(admin.post(&format!("{url}/doors"), &back_evenings).await.location(), url);
    let rules = app.store.door().access_rules().await.unwrap();
    let back = DoorRight { door: "back".into(), schedule: Some(hours.parse().unwrap()) };
    assert_eq!(rules.allowed_doors(kim.id), Some(vec![back]), "kept to the group's door");
    let person_page = admin.get(&format!("/people/{}", kim.id)).await.text;
    assert!(person_page.contains("Only: <strong>Back door</strong> (schedule Evenings)."), "{person_page}");
    assert!(person_page.contains(&format!("href=\"{url}\"")), "the group that keeps her is linked");

    // A door that never registered, a viewer, an unknown group: nothing changes.
    let shed = admin.post(&format!("{url}/doors"), &[("rights", "listed"), ("door", "shed")]).await;
    assert!(flash(&admin.get(shed.location()).await.text).contains("has registered with the site"));
    let mut viewer = app.signed_in(VIEWER).await;
    assert!(!viewer.get(&url).await.text.contains("Save doors"), "viewers see, never change");
    assert_eq!(viewer.post(&format!("{url}/rename"), &[("name", "Staff")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(admin.get("/groups/9999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.store.door().access_rules().await.unwrap(), rules);

    admin.post(&format!("{url}/rename"), &[("name", "Night cleaners")]).await;
    assert!(admin.get("/groups").await.text.contains("Night cleaners"));
    admin.post(&format!("{url}/members/{}/remove", kim.id), &[]).await;
    assert_eq!(app.store.door().access_rules().await.unwrap().allowed_doors(kim.id), None, "every door again");
    assert_eq!(admin.post(&format!("{url}/remove"), &[]).await.location(), "/groups");
    assert!(app.store.door().access_rules().await.unwrap().groups.is_empty());
}

/// Waits (in real time: the voice has a thread of its own) until the door has said `count` phrases.
async fn said(app: &App, count: usize) -> Vec<String> {
    for _ in 0..500 {
        if app.recorder.said().len() >= count {
            return app.recorder.said();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} phrases were said: {:?}", app.recorder.said());
}

#[tokio::test]
async fn voice_settings_are_checked_saved_and_said_by_the_running_door() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut admin = app.signed_in(ADMIN).await;
    let page = admin.get("/settings").await.text;
    assert!(page.contains("id=\"voice\""), "the section is on the page");
    assert!(page.contains("value=\"Welcome, {name}\""), "the config's phrases are shown");
    assert!(!page.contains("/settings/voice/reset"), "nothing saved to go back from");

    let setting = async || app.store.settings().setting(VoiceConfig::SETTING).await.unwrap();
    let fields: BTreeMap<&str, &str> = BTreeMap::from([
        ("language", "en-gb"),
        ("variant", ""),
        ("volume", "80"),
        ("speed", "150"),
        ("quiet_hours", ""),
        ("phrase.look_at_camera", "Please look at the camera"),
        ("phrase.turn_head", "Please turn your head a little"),
        ("phrase.granted", "Hello {name}"),
        ("phrase.denied", "Access denied. {reason}"),
        ("phrase.disarmed", ""),
        ("phrase.visitor_rang", "The owner has been told"),
        ("phrase.passcode_wrong", "Wrong code"),
        ("reason.unknown_card", "This card is not known"),
    ]);
    let mut wrong = fields.clone();
    wrong.extend([("volume", "150"), ("quiet_hours", "late"), ("phrase.granted", "Hi {nme}")]);
    let refused = admin.post("/settings/voice", &wrong.into_iter().collect::<Vec<_>>()).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    for why in ["150 is out of range; use 0 to 100", "is not a span of the day", "{nme} is not a placeholder here"] {
        assert!(refused.text.contains(why), "{why}: {}", flash(&refused.text));
    }
    assert!(refused.text.contains("value=\"Hi {nme}\""), "what was typed is kept");
    assert_eq!(setting().await, None, "nothing saved");

    let form: Vec<(&str, &str)> = fields.clone().into_iter().collect();
    let mut viewer = app.signed_in(VIEWER).await;
    assert!(!viewer.get("/settings").await.text.contains("Save voice settings"), "viewers only look");
    assert_eq!(viewer.post("/settings/voice", &form).await.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer.post("/settings/voice/say", &[("phrase", "granted")]).await.status, StatusCode::FORBIDDEN);

    let saved = admin.post("/settings/voice", &form).await;
    assert_eq!(saved.location(), "/settings#voice", "{}", saved.text);
    let stored: VoiceConfig = serde_json::from_str(&setting().await.unwrap()).unwrap();
    assert_eq!((stored.language.as_str(), stored.volume, stored.speed), ("en-gb", 80, 150));
    assert_eq!(stored.phrases.reasons["unknown_card"], "This card is not known");

    // The running door says the new phrases, without a restart.
    admin.post("/tap", &[("card", CARD)]).await;
    assert_eq!(said(&app, 1).await, ["Access denied. This card is not known"]);
    let say = admin.post("/settings/voice/say", &[("phrase", "granted")]).await;
    assert_eq!(say.location(), "/settings#voice");
    assert_eq!(said(&app, 2).await[1], format!("Hello {ADMIN}"));
    assert!(flash(&admin.get("/settings").await.text).contains("Said at the door"));
    assert_eq!(admin.post("/settings/voice/say", &[("phrase", "shout")]).await.status, StatusCode::BAD_REQUEST);

    let reset = admin.post("/settings/voice/reset", &[]).await;
    assert_eq!(reset.location(), "/settings#voice");
    assert_eq!(setting().await, None, "the override is gone");
    admin.post("/settings/voice/say", &[("phrase", "granted")]).await;
    assert_eq!(said(&app, 3).await[2], format!("Welcome, {ADMIN}"), "the config file's phrases again");
}

mod console;
mod doorbell;
mod face_api;
mod face_sign_in;
mod known_visitors;
mod qr;
mod site_view;
mod step_up;
mod visitors;
