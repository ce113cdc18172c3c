//! Wiring: the one place that starts the daemon's parts in order (store, engine, hardware, door
//! driver, control socket, web app, face API, MQTT publisher, message deliverers, QR pass scanner,
//! doorbell) and stops them on one path.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::access::AccessEvent;
use crate::api::{self, ApiState};
use crate::card::CardUid;
use crate::config::{Config, ConfigError, Section};
use crate::control;
use crate::doorbell::{self, Ringer};
use crate::driver::{DoorLink, DoorTuning, DriverError, Journal, JournalError, RunningDoor, Services, Setup, Status};
use crate::engine::local::LocalEngine;
use crate::engine::{self, EngineError, FaceEngine, hybrid, rekognition};
use crate::enrolment;
use crate::hw::simulated::OutputRecorder;
use crate::hw::{Bell, Hardware, HwError, SafeOutputs};
use crate::liveness::Liveness;
use crate::notify::delivery::{self, Courier};
use crate::notify::email::{EmailError, Mailer};
use crate::notify::faults::{self, Fault, Findings};
use crate::notify::mqtt::{NotifyError, Publisher};
use crate::notify::rules::{NotifySections, Rule};
use crate::notify::sms::{SmsError, SmsService, Texter};
use crate::notify::sns::SnsTexter;
use crate::notify::{DoorState, PartState};
use crate::photos::Photos;
use crate::qr_scan;
use crate::serving::{self, Limits};
use crate::site;
use crate::site_link::{self, SiteLink};
use crate::store::{self, SiteDoor, Store, StoreError};
use crate::tls::{self, ServerTls, TlsError, TlsMode, TlsSettings};
use crate::visitor::{self, Desk, KnownFaces, Passes};
use crate::voice::VoiceConfig;
use crate::web::{self, WebError, WebSetup, WebState};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hardware(#[from] HwError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("cannot start the face engine: {0}")]
    Engine(#[from] EngineError),
    #[error("another facereko is already running on {0} (its lock file is held)")]
    AlreadyRunning(String),
    #[error("cannot lock {path}: {detail}")]
    Lock { path: String, detail: String },
    #[error("notifications: {0}")]
    Notify(#[from] NotifyError),
    #[error("e-mail: {0}")]
    Email(#[from] EmailError),
    #[error("text messages: {0}")]
    Sms(#[from] SmsError),
    #[error("web app: {0}")]
    Web(#[from] WebError),
    #[error("cannot start the on-device face engine: {0}")]
    ApiEngine(EngineError),
    #[error("cannot open the API's collections: {0}")]
    ApiCollections(#[from] api::collections::CollectionsError),
    #[error("cannot listen on {address}: {detail}")]
    ApiListen { address: String, detail: String },
    #[error("{section}.tls: {source}")]
    Tls { section: &'static str, source: TlsError },
    #[error(transparent)]
    Door(#[from] DriverError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What the driver takes from `config`.
pub fn driver_setup(config: &Config) -> Setup {
    Setup {
        tunable: config.tunable(),
        reader: config.hardware.reader.clone(),
        camera: config.hardware.camera.clone(),
        speaker: config.hardware.speaker.clone(),
        announcer: config.announcer(),
        voice: config.voice.clone(),
        clips_dir: config.voice_clips_dir(),
    }
}

/// The message channels `config` turns on, ready to send.
pub fn couriers(config: &Config) -> Result<Vec<Arc<dyn Courier>>, AppError> {
    let mut couriers: Vec<Arc<dyn Courier>> = Vec::new();
    if config.email.enabled() {
        couriers.push(Arc::new(Mailer::new(&config.email, &config.door.id)?));
    }
    if config.sms.enabled() {
        couriers.push(match config.sms.service {
            SmsService::Webhook => Arc::new(Texter::new(&config.sms)?),
            SmsService::Sns => Arc::new(SnsTexter::new(&config.sms.sns, config.sms.timeout)),
        });
    }
    Ok(couriers)
}

/// The faults `status` shows: the camera or the card reader failing, the database not answering, more than
/// `backlog_over` notifications waiting.
fn faults_in(status: &Status, backlog_over: u64) -> Findings {
    let mut findings = Findings::new();
    if let Some(error) = &status.camera_error {
        findings.insert(Fault::Camera, error.clone());
    }
    if let Some(error) = &status.reader_error {
        findings.insert(Fault::Reader, error.clone());
    }
    match status.outbox_backlog {
        None => {
            findings.insert(Fault::Database, "it does not answer".to_owned());
        }
        Some(outbox) => {
            let waiting = outbox + status.messages.values().map(|counts| counts.waiting).sum::<u64>();
            if waiting > backlog_over {
                findings.insert(Fault::Backlog, format!("{waiting} notifications wait to be sent"));
            }
        }
    }
    findings
}

/// What the message deliverers need besides their couriers.
fn delivery_sources(config: &Config) -> delivery::Sources {
    delivery::Sources { photos: Photos::new(config.photos_dir()), public_url: config.web.public_url.clone() }
}

/// Faces another embedder described are never searched: say so at every start, with the fix.
async fn warn_of_faces_to_reindex(store: &dyn Store, engine: &dyn FaceEngine) {
    match enrolment::faces_to_reindex(store, engine.name(), engine.template_kind()).await {
        Ok(faces) if !faces.is_empty() => tracing::error!(
            faces = faces.len(),
            engine = engine.template_kind(),
            "enrolled faces were described by another embedder and cannot open the door; run `facereko faces reindex`"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check whether enrolled faces need reindexing"),
    }
}

/// The liveness checks `config` names; a check that cannot be loaded leaves them all off, said
/// loudly in the log (they are deny-only: without them the door is as before).
fn liveness(config: &Config) -> Liveness {
    Liveness::build(&config.liveness, &config.engine.models_dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the liveness checks are off: a check cannot be loaded");
        Liveness::off()
    })
}

/// The door `config` describes, driven in a task of its own on `hardware`, with its photos in
/// the data directory; it first logs what `journal` holds from earlier runs.
/// [`RunningDoor::until`] stops it and waits until it is locked.
pub fn start_door(
    config: &Config,
    hardware: Hardware,
    store: Arc<dyn Store>,
    engine: Arc<dyn FaceEngine>,
    journal: Journal,
    armed: bool,
) -> RunningDoor {
    let passes = config
        .visitors
        .enabled
        .then(|| Passes::new(config.door.id.clone(), config.visitors.clone(), Arc::clone(&store)));
    // Planned now (at once where `run` did it already), so that the first tap does not wait for it.
    if let Some(local) = engine.on_device()
        && let Err(e) = local.prepare_for_frames()
    {
        tracing::error!(error = %e, "the face detector cannot look at the door's frames: every tap will fail");
    }
    let photos = Photos::new(config.photos_dir());
    let liveness = Arc::new(liveness(config));
    let services = Services { store, engine, photos, journal, clock: config.schedule.clock(), passes, liveness };
    RunningDoor::start(&driver_setup(config), hardware, services, armed)
}

/// The desk that takes visitors' rings and the owner's decisions at the door behind `link`, when
/// `visitors.enabled`; messages go through `couriers`. Known visitors are recognised with the
/// engine's on-device models, when it has them.
pub fn visitor_desk(config: &Config, link: &DoorLink, couriers: Vec<Arc<dyn Courier>>) -> Option<Desk> {
    let passes = link.passes.clone()?;
    let desk = Desk::new(passes, couriers, Photos::new(config.photos_dir()), config.web.public_url.clone());
    match link.engine.on_device() {
        Some(engine) => Some(desk.with_known_faces(KnownFaces::new(engine, config.engine.match_threshold))),
        None => {
            let engine = &config.engine.kind;
            tracing::info!(%engine, "known visitors are kept but not recognised: the engine has no on-device models");
            Some(desk)
        }
    }
}

/// What turns rings into visits at the door behind `link`, when there is a `desk` (visitors on).
pub fn ringer(config: &Config, link: &DoorLink, desk: Option<&Desk>) -> Option<Ringer> {
    desk.map(|desk| Ringer::new(desk.clone(), link, config.visitors.ring_hold_off))
}

/// The tasks that ring for the doorbell's presses and, with `visitors.unknown_card_rings`, for
/// unknown cards tapped with a face in view; abort them to stop.
pub fn start_ringing(
    config: &Config,
    ringer: &Ringer,
    bell: Option<Box<dyn Bell>>,
    link: &DoorLink,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(bell) = bell {
        tasks.push(tokio::spawn(doorbell::listen(bell, ringer.clone())));
    }
    if config.visitors.unknown_card_rings {
        tasks.push(tokio::spawn(doorbell::ring_for_unknown_cards(link.attempts.subscribe(), ringer.clone())));
    }
    tasks
}

/// What the web app takes from `config`; no notification rules saved from it are in force.
pub fn web_setup(config: &Config) -> WebSetup {
    let simulated_camera = config.hardware.camera == crate::hw::simulated::NAME;
    WebSetup {
        web: config.web.clone(),
        tunable: config.tunable(),
        notify: config.notify_sections(),
        saved_rules: None,
        photos_dir: config.photos_dir(),
        demo_pictures: config.hardware.simulated.camera.clone().filter(|_| simulated_camera),
        file_voice: config.voice.clone(),
        voice: config.voice.clone(),
        desk: None,
        ringer: None,
        authority: None,
        site: None,
    }
}

/// The door's link to its site over MQTT, with `mqtt.commands`: it takes the commands sent to
/// the door behind `link` (the ids taken kept in the data directory) and gives the web app every
/// door's state. Abort the task to stop it.
pub fn site_link(config: &Config, link: &DoorLink) -> Result<Option<(SiteLink, JoinHandle<()>)>, AppError> {
    if !(config.mqtt.enabled() && config.mqtt.commands) {
        return Ok(None);
    }
    let taken = config.data_dir.join("commands-taken.json");
    Ok(Some(site_link::start(&config.mqtt, &config.door.id, link.control.clone(), &taken)?))
}

/// The TLS a listener's `settings` ask for: the door's own certificate authority in the data
/// directory (its server certificate also naming the host of `web.public_url`), or the
/// owner's files.
pub fn server_tls(config: &Config, settings: &TlsSettings<'_>) -> Result<Option<ServerTls>, AppError> {
    let failed = |source| AppError::Tls { section: settings.section, source };
    let tls = match (settings.mode, settings.cert, settings.key) {
        (TlsMode::Off, _, _) => return Ok(None),
        (TlsMode::SelfSigned, _, _) => {
            let public_host = config.web.public_url.as_deref().and_then(|url| url.parse::<axum::http::Uri>().ok());
            let extra_names = public_host.and_then(|uri| uri.host().map(str::to_owned)).into_iter().collect();
            ServerTls::self_signed(&config.data_dir, extra_names, time::OffsetDateTime::now_utc()).map_err(failed)?
        }
        (TlsMode::Files, Some(cert), Some(key)) => ServerTls::from_files(cert, key).map_err(failed)?,
        (TlsMode::Files, _, _) => return Err(failed(TlsError::Setup("tls_cert and tls_key must both be set".into()))),
    };
    if let Some(authority) = tls.authority() {
        tracing::info!(
            fingerprint = %authority.fingerprint,
            name = %authority.name,
            "{}: https with the door's own certificate authority; install its certificate on each phone and computer \
             from the sign-in page (/certificate) after comparing this fingerprint",
            settings.section
        );
    }
    Ok(Some(tls))
}

/// Deletes the collection's copies of faces that removals could not delete (the cloud was away),
/// beside the door: they no longer match, so nothing waits for this.
/// What the door publishes of itself on its MQTT state topic.
fn door_state(status: &Status) -> DoorState {
    let part = |backend: &str, error: &Option<String>| PartState { backend: backend.to_owned(), error: error.clone() };
    DoorState {
        armed: status.armed,
        lock: status.lock,
        reader: part(&status.reader, &status.reader_error),
        camera: part(&status.camera, &status.camera_error),
        engine: status.engine.clone(),
    }
}

/// This door as the site's list shows it: where its web app answers (the public address when one
/// is set, otherwise this machine's name and the port it listens on) and what it runs.
fn site_door(config: &Config) -> SiteDoor {
    let web = &config.web;
    let listening = web.enabled().then(|| {
        let scheme = if web.tls == TlsMode::Off { "http" } else { "https" };
        let port = web.listen.rsplit_once(':').map_or("", |(_, port)| port);
        format!("{scheme}://{}:{port}", tls::host_name())
    });
    SiteDoor {
        id: config.door.id.clone(),
        name: config.door.display_name().to_owned(),
        web_address: web.public_url.clone().or(listening),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        last_seen: time::OffsetDateTime::now_utc(),
    }
}

async fn delete_leftovers(store: Arc<dyn Store>, engine: Arc<dyn FaceEngine>) {
    match enrolment::delete_leftovers(store.as_ref(), engine.as_ref()).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "deleted the collection's copies of faces removed earlier"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot delete the collection's copies of faces removed earlier; tried again at the next start and by \
             `facereko collection sync`"
        ),
    }
}

/// Runs the daemon with the hardware and engine named in `config` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    // Another daemon on this data directory drives these outputs: leave them alone.
    let lock = match lock_data_dir(&config.data_dir) {
        Err(e @ AppError::AlreadyRunning(_)) => return Err(e),
        other => other,
    };
    // Then the outputs go safe before anything else can fail, so that a relay a killed run left
    // energised is released even when this start fails below (a bad setting, missing models, a
    // taken port, the database away).
    let outputs = SafeOutputs::from_config(&config.hardware)?;
    let mut problems = config.problems_in(Section::ALL);
    problems.extend(config.run_problems());
    if !problems.is_empty() {
        return Err(ConfigError { problems }.into());
    }
    let _lock = lock?;
    let mut hardware = outputs.with_inputs(&config.hardware)?;
    // The bell is not the door's: its presses ring through the visitors' desk (when there is one).
    let bell = hardware.bell.take();
    let store = store::open(&config.database, &config.data_dir).await?;
    let journal = Journal::open(&config.journal_path())?;
    let mut config = with_saved_tuning(config, store.as_ref()).await;
    // The web app keeps the file's voice to go back to; the door uses the saved one.
    let file_voice = config.voice.clone();
    config.voice = saved_voice(&file_voice, store.as_ref()).await.unwrap_or_else(|| file_voice.clone());
    for warning in config.hardware.speaker_warnings() {
        tracing::warn!(%warning, "the door's voice will not work; the door works on without it");
    }
    // The web app keeps the file's rules to go back to; the door uses the saved ones.
    let file_notify = config.notify_sections();
    let saved_rules = saved_notify_rules(&file_notify, store.as_ref()).await;
    if let Some(rules) = &saved_rules {
        config.notify.rules = Some(rules.clone());
    }
    let engine = engine::build(&config.engine)?;
    // A broken detector model stops the daemon here, with the reason, rather than failing taps.
    if let Some(local) = engine.on_device() {
        local.prepare_for_frames()?;
    }
    let armed = store.door().armed().await?;
    let socket_path = config.control_socket();
    let control_listener = control::bind(&socket_path).await?;
    let _socket = control::SocketGuard(socket_path.clone());
    let web_listener = match config.web.enabled() {
        true => Some(web::bind(&config.web).await?),
        false => None,
    };
    let web_tls = match config.web.enabled() {
        true => server_tls(&config, &config.web.tls_settings())?,
        false => None,
    };
    let api = match config.api.enabled() {
        true => Some(prepare_api(&config, engine.as_ref()).await?),
        false => None,
    };
    let api_tls = match config.api.enabled() {
        true => server_tls(&config, &config.api.tls_settings())?,
        false => None,
    };
    // Made before the door starts so a bad certificate stops the daemon at once, with the reason.
    let publisher = match config.mqtt.enabled() {
        true => Some(Publisher::new(config.mqtt.clone(), config.door.id.clone(), Arc::clone(&store))?),
        false => None,
    };
    let couriers = couriers(&config)?;

    if [rekognition::NAME, hybrid::NAME].contains(&engine.name()) {
        tokio::spawn(delete_leftovers(Arc::clone(&store), Arc::clone(&engine)));
    }
    warn_of_faces_to_reindex(store.as_ref(), engine.as_ref()).await;
    let door = start_door(&config, hardware, Arc::clone(&store), engine, journal, armed);
    let desk = visitor_desk(&config, &door.link, couriers.clone());
    let ringer = ringer(&config, &door.link, desk.as_ref());
    let ringing = ringer.as_ref().map(|ringer| start_ringing(&config, ringer, bell, &door.link)).unwrap_or_default();
    let publisher = publisher.map(|publisher| {
        let status = door.link.control.status.clone();
        // Without visitors, a channel no one sends on.
        let rings = desk.as_ref().map_or_else(|| broadcast::channel(1).1, Desk::notices);
        tokio::spawn(publisher.run(door.link.attempts.subscribe(), status, door_state, rings))
    });
    let sources = delivery_sources(&config);
    let deliverers: Vec<JoinHandle<()>> = couriers
        .iter()
        .map(|courier| {
            let (courier, store, woken) = (Arc::clone(courier), Arc::clone(&store), door.link.attempts.subscribe());
            tokio::spawn(delivery::run(courier, store, sources.clone(), woken))
        })
        .collect();
    // Watched whenever a channel is on: the settings page may add fault rules at any time.
    let fault_watch = (!couriers.is_empty()).then(|| {
        let control = door.link.control.clone();
        let backlog_over = config.notify.backlog_over;
        let look = move || {
            let control = control.clone();
            async move { faults_in(&control.current_status().await, backlog_over) }
        };
        let announcer = door.link.announcer.clone();
        let recipients = move || announcer.borrow().fault_recipients();
        let (door_id, public_url) = (config.door.id.clone(), config.web.public_url.clone());
        tokio::spawn(faults::watch(couriers.clone(), recipients, door_id, public_url, config.notify.fault_after, look))
    });
    let tidying = desk.clone().map(|desk| tokio::spawn(visitor::keep_tidy(desk)));
    let registration = tokio::spawn(site::keep_registered(Arc::clone(&store), site_door(&config)));
    let (site, site_task) = site_link(&config, &door.link)?.unzip();
    let qr_scanner = door.link.passes.clone().map(|passes| {
        let (camera, control) = (Arc::clone(&door.link.camera), door.link.control.clone());
        tokio::spawn(qr_scan::run(passes, camera, control, qr_scan::Pace::default()))
    });
    let control_server =
        tokio::spawn(control::serve(control_listener, door.link.control.clone(), config.control.connections));
    let web = match web_listener {
        Some(listener) => {
            let authority = web_tls.as_ref().and_then(ServerTls::authority);
            let setup = WebSetup {
                notify: file_notify,
                saved_rules,
                file_voice,
                desk,
                ringer,
                authority,
                site,
                ..web_setup(&config)
            };
            let state = WebState::new(setup, door.link.clone()).await;
            let tls = web_tls
                .as_ref()
                .map(|server| serving::Tls { acceptor: server.acceptor(), plain: web::plain_router(state.clone()) });
            Some(Server::start("web app", listener, web::router(state), tls, config.web.connections))
        }
        None => None,
    };
    let api = api.map(|(listener, state)| {
        let tls = api_tls.as_ref().map(|server| serving::Tls::redirecting(server.acceptor()));
        Server::start(API_NAME, listener, api::router(state), tls, config.api.connections)
    });
    let renewals: Vec<JoinHandle<()>> = [("web app", web_tls), (API_NAME, api_tls)]
        .into_iter()
        .filter_map(|(name, server)| Some(tokio::spawn(server?.keep_current(name, tls::REFRESH_PERIOD))))
        .collect();

    tracing::info!(
        door = %config.door.id,
        mode = %config.door.mode,
        engine = %config.engine.kind,
        armed,
        socket = %socket_path.display(),
        web = %config.web.listen,
        web_tls = %config.web.tls,
        "facereko is running"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let outcome = door.until(shutdown).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    control_server.abort();
    for server in [web, api].into_iter().flatten() {
        server.stop().await;
    }
    let others = fault_watch
        .into_iter()
        .chain(tidying)
        .chain(qr_scanner)
        .chain(ringing)
        .chain(renewals)
        .chain([registration])
        .chain(site_task);
    for task in publisher.into_iter().chain(deliverers).chain(others) {
        task.abort();
    }
    match store.door().write_kept_rows().await {
        Ok(0) => {}
        Ok(kept) => tracing::warn!(
            rows = kept,
            "stopping with access-log rows in the local spool; they are written to the database at the next start"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot tell whether access-log rows wait in the local spool"),
    }
    Ok(outcome?)
}

/// Serves the Rekognition-compatible API alone (`facereko serve-api`) until `shutdown` completes.
pub async fn serve_api(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let engine = config.engine.on_device().map_err(AppError::ApiEngine)?;
    let (listener, state) = open_api(config, engine).await?;
    let tls = server_tls(config, &config.api.tls_settings())?;
    let serving = tls.as_ref().map(|server| serving::Tls::redirecting(server.acceptor()));
    let server = Server::start(API_NAME, listener, api::router(state), serving, config.api.connections);
    let renewal = tls.map(|server| tokio::spawn(server.keep_current(API_NAME, tls::REFRESH_PERIOD)));
    shutdown.await;
    server.stop().await;
    if let Some(renewal) = renewal {
        renewal.abort();
    }
    Ok(())
}

/// Serves the web app alone on a machine that is not a door (`facereko serve-web`, a console)
/// until `shutdown` completes: the site's doors, history, people and accounts from the shared
/// database, the doors' states and commands over the broker, enrolment with `[engine]`. It needs
/// no hardware, drives no output and never registers itself as a door.
pub async fn serve_web(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let store = store::open(&config.database, &config.data_dir).await?;
    let engine = engine::build(&config.engine)?;
    warn_of_faces_to_reindex(store.as_ref(), engine.as_ref()).await;
    let (site, site_task) = match config.mqtt.enabled() {
        true => Some(site_link::start_console(&config.mqtt, console_client_id(config))?).unzip(),
        false => {
            tracing::warn!("no mqtt.url: the site view shows no door's state and sends no commands");
            (None, None)
        }
    };
    let listener = web::bind(&config.web).await?;
    let tls = server_tls(config, &config.web.tls_settings())?;
    let services =
        web::Services { store, engine, liveness: Arc::new(liveness(config)), clock: config.schedule.clock() };
    let setup = WebSetup { authority: tls.as_ref().and_then(ServerTls::authority), site, ..web_setup(config) };
    let state = WebState::console(setup, services).await;
    let serving = tls
        .as_ref()
        .map(|server| serving::Tls { acceptor: server.acceptor(), plain: web::plain_router(state.clone()) });
    let server = Server::start("web app", listener, web::router(state), serving, config.web.connections);
    let renewal = tls.map(|server| tokio::spawn(server.keep_current("web app", tls::REFRESH_PERIOD)));
    tracing::info!(web = %config.web.listen, engine = %config.engine.kind, "facereko serve-web is running (a console: not a door)");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    shutdown.await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    server.stop().await;
    for task in renewal.into_iter().chain(site_task) {
        task.abort();
    }
    Ok(())
}

/// A console's MQTT client id: `mqtt.client_id`, or one named after this machine (two consoles
/// of one site must not take each other's connection).
fn console_client_id(config: &Config) -> String {
    match config.mqtt.client_id.trim() {
        "" => format!("facereko-console-{}", crate::notify::slug(&tls::host_name())),
        id => id.to_owned(),
    }
}

/// The API's listener and state, sharing the door engine's on-device models when it has them.
async fn prepare_api(config: &Config, door_engine: &dyn FaceEngine) -> Result<(TcpListener, ApiState), AppError> {
    let engine = match door_engine.on_device() {
        Some(shared) => shared,
        None => config.engine.on_device().map_err(AppError::ApiEngine)?,
    };
    open_api(config, engine).await
}

async fn open_api(config: &Config, engine: LocalEngine) -> Result<(TcpListener, ApiState), AppError> {
    let state = ApiState::open(&config.api, engine, &config.data_dir)?;
    let address = config.api.listen.trim();
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| AppError::ApiListen { address: address.to_owned(), detail: e.to_string() })?;
    Ok((listener, state))
}

const API_NAME: &str = "Rekognition-compatible API";

/// How long requests in flight get to finish when the daemon stops.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// An HTTP server (the web app or the API) serving a router until stopped.
pub struct Server {
    name: &'static str,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `router` on `listener`, over TLS when `tls` is given.
    pub fn start(
        name: &'static str,
        listener: TcpListener,
        router: Router,
        tls: Option<serving::Tls>,
        limits: Limits,
    ) -> Self {
        if let Ok(address) = listener.local_addr() {
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(%address, scheme, max_connections = limits.max, "{name} listening");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serving::serve_http(name, listener, router, tls, limits, async {
            let _ = stopped.await;
        }));
        Self { name, stop, task }
    }

    /// Lets requests in flight finish (live-update streams end with the door), then stops.
    pub async fn stop(self) {
        let Self { name, stop, mut task } = self;
        let _ = stop.send(());
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the {name} task failed"),
            Err(_) => {
                tracing::warn!("the {name} did not finish within {STOP_GRACE:?}; stopping it");
                task.abort();
            }
        }
    }
}

/// Holds `<data_dir>/facereko.lock` so that two daemons never drive one door; the kernel
/// releases it when the process ends, however it ends.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, AppError> {
    let path = data_dir.join("facereko.lock");
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| AppError::Lock { path: shown.clone(), detail: e.to_string() })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AppError::AlreadyRunning(data_dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(AppError::Lock { path: shown, detail: e.to_string() }),
    }
}

/// `config` with the door settings saved from the web app, when there are valid ones.
async fn with_saved_tuning(config: Config, store: &dyn Store) -> Config {
    let saved = match store.settings().setting(DoorTuning::SETTING).await {
        Ok(Some(json)) => json,
        Ok(None) => return config,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the door settings saved from the web app; using the config's");
            return config;
        }
    };
    let tunable = config.tunable();
    match serde_json::from_str::<DoorTuning>(&saved) {
        Ok(tuning) if tunable.tuning_problems(&tuning).is_empty() => {
            tracing::info!(?tuning, "using the door settings saved from the web app (they override the config file)");
            config.with_tunable(tunable.with_tuning(&tuning))
        }
        _ => {
            tracing::warn!("the door settings saved from the web app are not valid here; using the config's");
            config
        }
    }
}

/// The phrases and voice saved from the web app, when they pass the checks.
async fn saved_voice(file: &VoiceConfig, store: &dyn Store) -> Option<VoiceConfig> {
    let saved = match store.settings().setting(VoiceConfig::SETTING).await {
        Ok(saved) => saved?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the voice settings saved from the web app; using the config's");
            return None;
        }
    };
    let voice = match serde_json::from_str::<VoiceConfig>(&saved) {
        Ok(voice) => voice,
        Err(e) => {
            tracing::warn!(error = %e, "the voice settings saved from the web app cannot be read; using the config's");
            return None;
        }
    };
    let mut checks = crate::checks::Checks::default();
    voice.check(&mut checks);
    if checks.into_problems().is_empty() {
        if voice != *file {
            tracing::info!("using the phrases and voice saved from the web app (they override [voice])");
        }
        return Some(voice);
    }
    tracing::warn!("the voice settings saved from the web app no longer pass the checks; using the config's");
    None
}

/// The notification rules saved from the web app, when there are ones that pass the checks
/// against `file`'s channels; others are ignored with a warning that says why.
async fn saved_notify_rules(file: &NotifySections, store: &dyn Store) -> Option<Vec<Rule>> {
    let saved = match store.settings().setting(NotifySections::RULES_SETTING).await {
        Ok(saved) => saved?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the notification rules saved from the web app; using the config's");
            return None;
        }
    };
    let rules = match serde_json::from_str::<Vec<Rule>>(&saved) {
        Ok(rules) => rules,
        Err(e) => {
            tracing::warn!(error = %e, "the notification rules saved from the web app cannot be read; using the config's");
            return None;
        }
    };
    let problems = file.rule_problems(&rules);
    if problems.is_empty() {
        tracing::info!(
            rules = rules.len(),
            "using the notification rules saved from the web app (they replace [[notify.rules]])"
        );
        return Some(rules);
    }
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    tracing::warn!(
        problems = %problems.join("; "),
        "the notification rules saved from the web app no longer pass the checks; using the config's until they are \
         saved again or reset on the settings page"
    );
    None
}

#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("the attempt did not finish")]
    Unfinished,
    #[error("cannot make a scratch folder: {0}")]
    Scratch(String),
}

/// One attempt through the real pipeline (policy, engine, the real people, cards and faces) with
/// a simulated reader and a simulated camera showing `picture`. The door counts as armed; the
/// outputs are simulated. A rehearsal: nothing is written to the access log, the outbox or the
/// photos, so it needs no lock on the data directory and notifies no one.
pub async fn simulate_attempt(
    config: &Config,
    card: CardUid,
    picture: std::path::PathBuf,
) -> Result<AccessEvent, SimulationError> {
    let real = store::open(&config.database, &config.data_dir).await.map_err(AppError::from)?;
    let config = with_saved_tuning(config.clone(), real.as_ref()).await;
    let engine = engine::build(&config.engine).map_err(AppError::from)?;
    let hardware = Hardware::simulated(&OutputRecorder::default(), picture);
    // The journal and the photo are the rehearsal's own, gone with it.
    let scratch = tempfile::tempdir().map_err(|e| SimulationError::Scratch(e.to_string()))?;
    let journal = Journal::open(&scratch.path().join("attempts.journal")).map_err(AppError::from)?;
    let services = Services {
        store: Arc::new(store::rehearsal::Rehearsal::over(real)),
        engine,
        photos: Photos::new(scratch.path().join("photos")),
        journal,
        clock: config.schedule.clock(),
        passes: None,
        liveness: Arc::new(liveness(&config)),
    };
    // Its phrases are only recorded, by the simulated speaker, and kept with the scratch.
    let setup = Setup { clips_dir: scratch.path().join("voice"), ..driver_setup(&config) };
    let door = RunningDoor::start(&setup, hardware, services, true);
    let mut written = door.link.attempts.subscribe();
    let taps = door.link.control.taps.clone().expect("simulated hardware has a tap handle");
    let _ = taps.tap(card).await;
    let event = written.recv().await.map_err(|_| SimulationError::Unfinished);
    door.until(async {}).await.map_err(AppError::from)?;
    event
}
