//! The web app: sign-in, a live dashboard with arm/disarm, the access history with photos,
//! enrolment of people, faces and cards, and the door's settings. Server-rendered pages (maud)
//! with a little script for live updates; served by the daemon beside the door, or by
//! `facereko serve-web` on a machine that is not a door (a console: the site's pages only).
//!
//! [`router`] builds the whole app from a [`WebState`], so tests send requests straight to it.

mod account;
mod api_keys;
mod assets;
mod auth;
mod certificate;
mod dashboard;
mod doors;
mod error;
mod face_api;
mod face_sign_in;
mod groups;
mod history;
mod notifications;
mod passkeys;
mod people;
mod schedules;
mod settings;
mod sign_ins;
mod site_view;
mod step_up;
mod users;
mod views;
mod visitors;
mod voice;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::checks::Checks;
use crate::doorbell::Ringer;
use crate::driver::{DoorLink, DoorTuning, Tunable};
use crate::engine::FaceEngine;
use crate::liveness::Liveness;
use crate::notify::rules::{NotifySections, Rule};
use crate::photos::Photos;
use crate::schedule::ScheduleClock;
use crate::serving::Limits;
use crate::site_link::SiteLink;
use crate::store::Store;
use crate::tls::{CaCertificate, TlsMode, TlsSettings};
use crate::visitor::Desk;
use crate::voice::VoiceConfig;
pub use error::WebError;
use views::Machine;

/// `[web]`: the web app served by the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    /// Address to serve on, e.g. "0.0.0.0:8080"; empty: no web app.
    pub listen: String,
    /// Largest photo upload, in bytes.
    pub max_upload_bytes: usize,
    /// How the app speaks: plain HTTP ("off", e.g. behind a TLS reverse proxy), https with the
    /// door's own certificate authority ("self") or with the owner's files ("files").
    pub tls: TlsMode,
    /// With `tls = "files"`: the certificate chain (PEM, the server's first).
    pub tls_cert: Option<PathBuf>,
    /// With `tls = "files"`: its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Mark cookies `Secure` behind a TLS reverse proxy; with `tls` on they always are.
    pub secure_cookies: bool,
    /// Sign-ins last this long.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// Opening the door from afar, deciding visits and changing accounts ask for the password or a
    /// passkey again once the last sign-in or check is this old.
    #[serde(with = "humantime_serde")]
    pub step_up_after: Duration,
    /// How long "tap the card now" waits for a card.
    #[serde(with = "humantime_serde")]
    pub tap_timeout: Duration,
    /// Reverse proxies (addresses or networks, e.g. "127.0.0.1" or "10.0.0.0/24") whose
    /// `X-Forwarded-For` names the client; from anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// `[web.connections]`: the cap on open connections and the request-head timeout.
    pub connections: Limits,
    /// The similarity (0–100, the on-device engine's scale) a face sign-in needs: stricter than
    /// the door's `engine.match_threshold`, since a web page has no card to go with the face.
    pub face_sign_in_threshold: f32,
    /// How people reach the web app from elsewhere, e.g. "https://door.example.com": e-mails and
    /// text messages link to the attempt there. Unset: they carry no link.
    pub public_url: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            max_upload_bytes: 10 * 1024 * 1024,
            tls: TlsMode::Off,
            tls_cert: None,
            tls_key: None,
            secure_cookies: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            step_up_after: Duration::from_secs(5 * 60),
            tap_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            connections: Limits::default(),
            face_sign_in_threshold: FACE_SIGN_IN_THRESHOLD,
            public_url: None,
        }
    }
}

impl WebConfig {
    pub fn enabled(&self) -> bool {
        !self.listen.trim().is_empty()
    }

    pub fn tls_settings(&self) -> TlsSettings<'_> {
        TlsSettings { section: "web", mode: self.tls, cert: self.tls_cert.as_deref(), key: self.tls_key.as_deref() }
    }

    /// Whether cookies must be `Secure`: served over TLS, here or by a proxy in front.
    pub fn secure(&self) -> bool {
        self.secure_cookies || self.tls != TlsMode::Off
    }

    /// The problems of `[web]`; TLS files and the local certificate authority (in `data_dir`)
    /// are read to check them.
    pub fn check(&self, data_dir: &Path, checks: &mut Checks) {
        checks.listen_address(
            "web.listen",
            &self.listen,
            "\"0.0.0.0:8080\" (every network) or \"127.0.0.1:8080\" (this machine only); empty turns the web app off",
        );
        checks.check(
            (64 * 1024..=64 * 1024 * 1024).contains(&self.max_upload_bytes),
            "web.max_upload_bytes",
            format!("{} is out of range; use 65536 to 67108864 (default 10485760, 10 MiB)", self.max_upload_bytes),
        );
        let lifetime = self.session_lifetime;
        checks.check(
            (Duration::from_secs(300)..=Duration::from_secs(30 * 86400)).contains(&lifetime),
            "web.session_lifetime",
            format!("{} is out of range; use 5m to 30days", humantime::format_duration(lifetime)),
        );
        checks.check(
            self.step_up_after <= Duration::from_secs(3600),
            "web.step_up_after",
            format!(
                "{} is out of range; use 0s (ask every time) to 1h (default 5m)",
                humantime::format_duration(self.step_up_after)
            ),
        );
        let tap = self.tap_timeout;
        checks.check(
            (Duration::from_secs(5)..=Duration::from_secs(300)).contains(&tap),
            "web.tap_timeout",
            format!("{} is out of range; use 5s to 5m", humantime::format_duration(tap)),
        );
        for (i, proxy) in self.trusted_proxies.iter().enumerate() {
            checks.check(
                auth::TrustedProxies::parse(proxy).is_some(),
                &format!("web.trusted_proxies[{i}]"),
                format!("{proxy:?} is not an address or network; use e.g. \"127.0.0.1\" or \"10.0.0.0/24\""),
            );
        }
        self.connections.check("web", checks);
        let least = crate::engine::local::embedder::CALIBRATED_THRESHOLD;
        checks.check(
            (least..=100.0).contains(&self.face_sign_in_threshold),
            "web.face_sign_in_threshold",
            format!(
                "{} is out of range; use {least} (the on-device engine's calibration point: no stranger of the \
                 shared test sets passed it) to 100 (default {FACE_SIGN_IN_THRESHOLD})",
                self.face_sign_in_threshold
            ),
        );
        if self.enabled() {
            self.tls_settings().check(data_dir, checks);
        }
        if let Some(url) = &self.public_url {
            let uri = url.parse::<axum::http::Uri>();
            checks.check(
                uri.is_ok_and(|uri| matches!(uri.scheme_str(), Some("https" | "http")) && uri.host().is_some()),
                "web.public_url",
                format!("{url:?} is not an http(s) address; use e.g. \"https://door.example.com\""),
            );
        }
    }
}

/// The default `web.face_sign_in_threshold`: see README, "Face sign-in", for how it was measured.
pub const FACE_SIGN_IN_THRESHOLD: f32 = 93.0;

/// Everything the pages work with; cheap to clone.
#[derive(Clone)]
pub struct WebState(Arc<Inner>);

/// What the web app takes from the configuration.
#[derive(Debug, Clone)]
pub struct WebSetup {
    pub web: WebConfig,
    /// The door's sections, to check new door settings against.
    pub tunable: Tunable,
    /// The notification sections as the config file has them, to check new rules against and
    /// to go back to.
    pub notify: NotifySections,
    /// The rules saved from the settings page that are in force in place of the file's, if any.
    pub saved_rules: Option<Vec<Rule>>,
    pub photos_dir: PathBuf,
    /// The simulated camera's folder, whose per-card subfolders name the demo cards.
    pub demo_pictures: Option<PathBuf>,
    /// `[voice]` as the config file has it, to go back to.
    pub file_voice: VoiceConfig,
    /// The voice in force (saved from the settings page, or the file's).
    pub voice: VoiceConfig,
    /// Visitors' rings and the owner's decisions, when `visitors.enabled`.
    pub desk: Option<Desk>,
    /// Takes the visitor page's rings (and, with a simulated bell, the dashboard's presses) to
    /// the desk, when `visitors.enabled`.
    pub ringer: Option<Ringer>,
    /// The door's certificate authority, offered for download, with `web.tls = "self"`.
    pub authority: Option<CaCertificate>,
    /// The site's doors as heard on MQTT and the way to send them commands: on a door with
    /// `mqtt.commands`, on a console with `mqtt.url`.
    pub site: Option<SiteLink>,
}

/// What the pages use on a door and on a console alike: the site's database, the face engine
/// that enrols, the liveness checks of face sign-in and the site's time zone.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn FaceEngine>,
    pub liveness: Arc<Liveness>,
    pub clock: ScheduleClock,
}

struct Inner {
    config: WebConfig,
    /// The door's sections as configured, to check new door settings against.
    door_config: Tunable,
    /// The door settings in use, as the settings page shows them.
    tuning: RwLock<DoorTuning>,
    /// The notification sections as configured, to check new rules against and to go back to.
    notify_config: NotifySections,
    /// The rules saved from the settings page that are in force, if any.
    saved_rules: RwLock<Option<Vec<Rule>>>,
    /// `[voice]` as configured, to go back to.
    file_voice: VoiceConfig,
    /// The voice in force, as the settings page shows it.
    voice: RwLock<VoiceConfig>,
    /// The door this app runs beside; none on a console (`facereko serve-web`).
    door: Option<DoorLink>,
    services: Services,
    photos: Photos,
    /// The simulated camera's folder, whose per-card subfolders name the demo cards.
    simulated_camera: Option<PathBuf>,
    auth: auth::Auth,
    /// Visitors' rings and the owner's decisions, when `visitors.enabled`.
    desk: Option<Desk>,
    ringer: Option<Ringer>,
    /// The door's certificate authority, with `web.tls = "self"`.
    authority: Option<CaCertificate>,
    /// Places for the face API's comparisons running at once.
    comparisons: tokio::sync::Semaphore,
    /// The sites passkeys are made for and the passkey ceremonies under way.
    passkeys: passkeys::Passkeys,
    /// The site's doors as heard on MQTT, with `mqtt.commands`.
    site: Option<SiteLink>,
}

impl WebState {
    /// The app for the door behind `link`. Without any account yet, a one-time setup code is
    /// made and logged for the first-run page.
    pub async fn new(setup: WebSetup, link: DoorLink) -> Self {
        let services = Services {
            store: Arc::clone(&link.control.store),
            engine: Arc::clone(&link.engine),
            liveness: Arc::clone(&link.liveness),
            clock: link.control.clock.clone(),
        };
        Self::build(setup, Some(link), services).await
    }

    /// The app of a console: a machine that is not a door, showing the site's doors from their
    /// database and broker. The pages of a door of its own say so and link to the site view.
    pub async fn console(setup: WebSetup, services: Services) -> Self {
        Self::build(setup, None, services).await
    }

    async fn build(setup: WebSetup, door: Option<DoorLink>, services: Services) -> Self {
        let auth = auth::Auth::new(&setup.web);
        match services.store.accounts().list_users().await {
            Ok(users) if users.is_empty() => {
                let code = auth.make_setup_code();
                tracing::warn!(
                    setup_code = %code,
                    "no web accounts yet: open the web app's /setup page and enter this setup code to create the \
                     first admin (or run `facereko user add NAME`)"
                );
            }
            Ok(_) => {}
            // The door runs on while the database is away; so does the app, without a setup code.
            Err(e) => tracing::warn!(error = %e, "cannot tell whether web accounts exist; no setup code this time"),
        }
        let simulated_camera = setup.demo_pictures.filter(|path| path.is_dir());
        let passkeys = passkeys::Passkeys::new(&setup.web);
        Self(Arc::new(Inner {
            config: setup.web,
            tuning: RwLock::new(setup.tunable.tuning()),
            door_config: setup.tunable,
            notify_config: setup.notify,
            saved_rules: RwLock::new(setup.saved_rules),
            file_voice: setup.file_voice,
            voice: RwLock::new(setup.voice),
            door,
            services,
            photos: Photos::new(setup.photos_dir),
            simulated_camera,
            auth,
            desk: setup.desk,
            ringer: setup.ringer,
            authority: setup.authority,
            comparisons: tokio::sync::Semaphore::new(face_api::CONCURRENT_COMPARISONS),
            passkeys,
            site: setup.site,
        }))
    }

    /// The first-run setup code while it is valid (it is also in the log).
    pub fn setup_code(&self) -> Option<String> {
        self.0.auth.setup_code()
    }

    fn store(&self) -> &dyn Store {
        self.0.services.store.as_ref()
    }

    /// The door this app runs beside, or the answer of a console: this machine is not a door.
    fn door(&self) -> Result<&DoorLink, WebError> {
        self.0.door.as_ref().ok_or(WebError::NotADoor)
    }

    /// Whether this app runs beside a door or on a console, for the navigation.
    fn machine(&self) -> Machine {
        if self.0.door.is_some() { Machine::Door } else { Machine::Console }
    }

    fn engine(&self) -> &Arc<dyn FaceEngine> {
        &self.0.services.engine
    }

    fn liveness(&self) -> &Arc<Liveness> {
        &self.0.services.liveness
    }

    fn clock(&self) -> &ScheduleClock {
        &self.0.services.clock
    }

    fn auth(&self) -> &auth::Auth {
        &self.0.auth
    }

    fn config(&self) -> &WebConfig {
        &self.0.config
    }

    fn passkeys(&self) -> &passkeys::Passkeys {
        &self.0.passkeys
    }

    /// Whether the app serves https with the door's own certificate authority.
    fn has_own_certificate(&self) -> bool {
        self.0.authority.is_some()
    }
}

/// The whole app.
pub fn router(state: WebState) -> Router {
    let upload_limit = state.config().max_upload_bytes;
    Router::new()
        .route("/", get(dashboard::page))
        .route("/events", get(dashboard::events))
        .route("/arm", post(dashboard::arm))
        .route("/disarm", post(dashboard::disarm))
        .route("/tap", post(dashboard::tap))
        .route("/ring", post(dashboard::ring))
        .route("/login", get(account::login_page).post(account::login))
        .route("/login/face", post(face_sign_in::sign_in).layer(DefaultBodyLimit::max(face_sign_in::MAX_BODY_BYTES)))
        .route("/account/face-sign-in", post(face_sign_in::switch))
        .route("/accounts/{name}/face", post(face_sign_in::link))
        .route("/login/passkey/options", post(passkeys::sign_in_options))
        .route("/login/passkey", post(passkeys::sign_in))
        .route("/confirm/passkey/options", post(passkeys::check_options))
        .route("/account/passkeys/options", post(passkeys::register_options))
        .route("/account/passkeys", post(passkeys::register))
        .route("/account/passkeys/{id}/remove", post(passkeys::remove))
        .route("/logout", post(account::logout))
        .route("/setup", get(account::setup_page).post(account::setup))
        .route("/history", get(history::page))
        .route("/history/rows", get(history::rows))
        .route("/history.csv", get(history::csv))
        .route("/history/{id}/photo", get(history::photo))
        .route("/history/{id}/thumb", get(history::thumbnail))
        .route("/people", get(people::list).post(people::add))
        .route("/people/{id}", get(people::page))
        .route("/people/{id}/remove", post(people::remove))
        .route("/people/{id}/faces", post(people::upload_faces).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/people/{id}/faces/camera", post(people::camera_face))
        .route("/people/{id}/faces/{face}/remove", post(people::remove_face))
        .route("/people/{id}/cards", post(people::bind_card))
        .route("/people/{id}/cards/tap", post(people::bind_tapped_card))
        .route("/people/{id}/cards/{uid}/remove", post(people::remove_card))
        .route("/people/{id}/limits", post(schedules::set_person_limits))
        .route("/people/{id}/doors", post(doors::set_person_doors))
        .route("/site", get(site_view::page))
        .route("/site/{door}/arm", post(site_view::arm))
        .route("/site/{door}/disarm", post(site_view::disarm))
        .route("/site/{door}/open", post(site_view::open))
        .route("/groups", get(groups::list).post(groups::add))
        .route("/groups/{id}", get(groups::page))
        .route("/groups/{id}/rename", post(groups::rename))
        .route("/groups/{id}/remove", post(groups::remove))
        .route("/groups/{id}/members", post(groups::add_member))
        .route("/groups/{id}/members/{person}/remove", post(groups::remove_member))
        .route("/groups/{id}/doors", post(groups::set_doors))
        .route("/schedules", get(schedules::page).post(schedules::save))
        .route("/schedules/{id}/remove", post(schedules::remove))
        .route("/schedules/holidays", post(schedules::add_holiday))
        .route("/schedules/holidays/{id}/remove", post(schedules::remove_holiday))
        .route("/settings", get(settings::page).post(settings::save))
        .route("/settings/notifications", post(notifications::save))
        .route("/settings/notifications/reset", post(notifications::reset))
        .route("/settings/voice", post(voice::save))
        .route("/settings/voice/reset", post(voice::reset))
        .route("/settings/voice/say", post(voice::say))
        .route("/settings/api-keys", post(api_keys::create))
        .route("/settings/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/api/v1/compare", post(face_api::compare).layer(DefaultBodyLimit::max(face_api::MAX_BODY_BYTES)))
        .route(
            "/api/v1/verification/verify",
            post(face_api::verify).layer(DefaultBodyLimit::max(face_api::MAX_BODY_BYTES)),
        )
        .route("/api/v1/openapi.json", get(face_api::openapi))
        .route("/accounts", post(users::add))
        .route("/sign-ins", get(sign_ins::page))
        .route("/sign-ins/{id}/face", get(sign_ins::face))
        .route("/accounts/{name}/remove", post(users::remove))
        .route("/account/password", post(users::change_password))
        .route("/visit", get(visitors::visit_page).post(visitors::ring))
        .route("/door", get(visitors::door_page).post(visitors::open_with_passcode))
        .route("/visits/{id}", get(visitors::visit).post(visitors::decide))
        .route("/visits/{id}/photo", get(visitors::visit_photo))
        .route("/visitors", get(visitors::list))
        .route("/visitors/{id}/forget", post(visitors::forget))
        .route("/visitors/known/{id}", get(visitors::known_page).post(visitors::edit_known))
        .route("/visitors/known/{id}/auto-pass/{switch}", post(visitors::set_auto_pass))
        .route("/visitors/known/{id}/forget", post(visitors::forget_known))
        .route("/static/{file}", get(assets::serve))
        .merge(certificate_routes())
        .fallback(error::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// What answers plain HTTP on the app's TLS port: the door's certificate (so a phone can fetch it
/// before it trusts https here) and a redirect to https for everything else.
pub fn plain_router(state: WebState) -> Router {
    certificate_routes()
        .route("/static/{file}", get(assets::serve))
        .fallback(crate::serving::redirect_to_https)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

fn certificate_routes() -> Router<WebState> {
    Router::new()
        .route("/certificate", get(certificate::page))
        .route(certificate::DOWNLOAD_PATH, get(certificate::download))
}

/// Headers every answer carries: no framing, no sniffing, scripts and styles only from us.
async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Binds `web.listen`; done before the door starts so that a taken port stops the daemon early.
pub async fn bind(config: &WebConfig) -> Result<TcpListener, WebError> {
    let address = config.listen.trim();
    TcpListener::bind(address)
        .await
        .map_err(|e| WebError::Listen { address: address.to_owned(), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_and_connection_limits_name_their_keys() {
        let config = WebConfig {
            trusted_proxies: vec!["127.0.0.1".into(), "10.0.0.0/24".into(), "proxy.lan".into()],
            connections: Limits { max: 0, ..Limits::default() },
            ..WebConfig::default()
        };
        let mut checks = Checks::default();
        config.check(Path::new("/nonexistent"), &mut checks);
        let problems = checks.into_problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["web.trusted_proxies[2]", "web.connections.max"]);
        assert!(problems[0].message.contains("10.0.0.0/24"), "says how to write one: {}", problems[0].message);
    }

    #[test]
    fn the_face_sign_in_threshold_is_never_below_the_engines_calibration_point() {
        let problems = |threshold: f32| {
            let config = WebConfig { face_sign_in_threshold: threshold, ..WebConfig::default() };
            let mut checks = Checks::default();
            config.check(Path::new("/nonexistent"), &mut checks);
            checks.into_problems().into_iter().map(|p| format!("{}: {}", p.key, p.message)).collect::<Vec<_>>()
        };
        assert!(problems(FACE_SIGN_IN_THRESHOLD).is_empty(), "{:?}", problems(FACE_SIGN_IN_THRESHOLD));
        assert!(problems(100.0).is_empty());
        for wrong in [89.9, 100.5, f32::NAN] {
            let found = problems(wrong);
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].starts_with("web.face_sign_in_threshold: ") && found[0].contains("use 90"), "{found:?}");
        }
    }
}
