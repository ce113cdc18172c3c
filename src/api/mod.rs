//! A Rekognition-compatible face API served by FaceReko, backed by the on-device engine.
//!
//! It speaks the AWS JSON 1.1 protocol (`POST /`, `X-Amz-Target: RekognitionService.<Op>`) for
//! the collection and face operations, so the AWS SDKs, boto3 and FaceReko's own `rekognition`
//! engine can use it offline by setting their endpoint URL. Every request must carry a valid
//! SigV4 signature by one of the configured access keys.

pub mod collections;
pub mod error;
pub mod operations;
pub mod sigv4;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::checks::Checks;
use crate::engine::local::LocalEngine;
use crate::serving::{self, Limits};
use crate::tls::{TlsMode, TlsSettings};
use collections::Collections;
use error::ApiError;
pub use sigv4::AccessKey;

/// Rekognition's limit for pictures sent as bytes.
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
const TARGET_PREFIX: &str = "RekognitionService.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// `[api]`: the Rekognition-compatible API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Address to serve on, e.g. "127.0.0.1:8787"; empty: no API.
    pub listen: String,
    /// The region clients sign for (their `region` setting).
    pub region: String,
    /// Key pairs that may call the API (`[[api.access_keys]]`).
    pub access_keys: Vec<AccessKey>,
    /// Largest picture accepted, in bytes after base64 decoding.
    pub max_image_bytes: usize,
    /// `[api.connections]`: the cap on open connections and the request-head timeout.
    pub connections: Limits,
    /// As `web.tls`: "off", "self" (the door's own certificate authority) or "files".
    pub tls: TlsMode,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            region: "us-east-1".into(),
            access_keys: Vec::new(),
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            // Its clients are programs of one's own, not browsers.
            connections: Limits { max: 64, ..Limits::default() },
            tls: TlsMode::Off,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl ApiConfig {
    pub fn enabled(&self) -> bool {
        !self.listen.trim().is_empty()
    }

    pub fn tls_settings(&self) -> TlsSettings<'_> {
        TlsSettings { section: "api", mode: self.tls, cert: self.tls_cert.as_deref(), key: self.tls_key.as_deref() }
    }

    /// The problems of `[api]`; TLS files and the local certificate authority (in `data_dir`)
    /// are read to check them.
    pub fn check(&self, data_dir: &Path, checks: &mut Checks) {
        checks.listen_address("api.listen", &self.listen, "\"127.0.0.1:8787\" (empty turns the API off)");
        if self.enabled() {
            checks.check(
                !self.access_keys.is_empty(),
                "api.access_keys",
                "the API refuses unsigned requests, so it needs a key: add [[api.access_keys]] with access_key_id and \
                 secret_access_key (e.g. from `openssl rand -hex 20`)",
            );
        }
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 32
            && self.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        checks.check(
            region_ok,
            "api.region",
            format!("{:?} is not a region name; use e.g. \"us-east-1\"", self.region),
        );
        checks.check(
            (64 * 1024..=15 * 1024 * 1024).contains(&self.max_image_bytes),
            "api.max_image_bytes",
            format!(
                "{} is out of range; use 65536 to 15728640 (Rekognition's own limit is 5242880)",
                self.max_image_bytes
            ),
        );
        self.connections.check("api", checks);
        if self.enabled() {
            self.tls_settings().check(data_dir, checks);
        }
        for (i, key) in self.access_keys.iter().enumerate() {
            let id_ok = (16..=128).contains(&key.access_key_id.len())
                && key.access_key_id.chars().all(|c| c.is_ascii_alphanumeric());
            checks.check(
                id_ok,
                &format!("api.access_keys[{i}].access_key_id"),
                format!("{:?} must be 16-128 letters and digits, like AWS key ids", key.access_key_id),
            );
            checks.check(
                key.secret_access_key.expose().len() >= 16,
                &format!("api.access_keys[{i}].secret_access_key"),
                "is shorter than 16 characters; use a random secret, e.g. from `openssl rand -hex 20`",
            );
            if self.access_keys[..i].iter().any(|other| other.access_key_id == key.access_key_id) {
                checks.check(
                    false,
                    &format!("api.access_keys[{i}].access_key_id"),
                    format!("{:?} is listed twice; give each key its own id", key.access_key_id),
                );
            }
        }
    }
}

/// What the request handlers share.
#[derive(Clone)]
pub struct ApiState {
    engine: LocalEngine,
    collections: Collections,
    region: Arc<str>,
    access_keys: Arc<[AccessKey]>,
    seen: Arc<sigv4::SeenSignatures>,
    max_image_bytes: usize,
}

impl ApiState {
    /// The state for `config` with the collections in `data_dir`.
    pub fn open(
        config: &ApiConfig,
        engine: LocalEngine,
        data_dir: &Path,
    ) -> Result<Self, collections::CollectionsError> {
        Ok(Self {
            engine,
            collections: Collections::open(&data_dir.join(collections::FILE_NAME))?,
            region: config.region.as_str().into(),
            access_keys: config.access_keys.clone().into(),
            seen: Arc::default(),
            max_image_bytes: config.max_image_bytes,
        })
    }

    /// The largest body that can carry two pictures (CompareFaces) in base64 plus the JSON around.
    fn max_body_bytes(&self) -> usize {
        2 * (self.max_image_bytes / 3 + 1) * 4 + 64 * 1024
    }
}

/// The API's routes; serve it with [`serve`], or call it directly in tests.
pub fn router(state: ApiState) -> Router {
    Router::new().route("/", axum::routing::post(handle)).with_state(state)
}

async fn handle(State(state): State<ApiState>, request: Request) -> Response {
    match answer(&state, request).await {
        Ok(body) => ([("content-type", HeaderValue::from_static(CONTENT_TYPE))], body.to_string()).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn answer(state: &ApiState, request: Request) -> Result<serde_json::Value, ApiError> {
    let (parts, body) = request.into_parts();
    let now = time::OffsetDateTime::now_utc();
    // A stranger is turned away before any of the body is read.
    let claim = sigv4::check_credentials(&parts.headers, &state.access_keys, &state.region, now)?;
    let body = axum::body::to_bytes(body, state.max_body_bytes()).await.map_err(|_| state.too_large())?;
    let signed = sigv4::SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let target = parts.headers.get("x-amz-target").and_then(|value| value.to_str().ok()).unwrap_or("");
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .ok_or_else(|| ApiError::UnknownOperation(format!("X-Amz-Target {target:?} is not a Rekognition operation")))?;
    // The target is signed: a request cannot claim to only read and then change something.
    let repeat = if ApiState::only_reads(operation) { sigv4::Repeat::Briefly } else { sigv4::Repeat::Never };
    let caller = claim.verify(&signed, &state.seen, repeat)?;
    tracing::debug!(operation, caller, "Rekognition API request");
    state.operation(operation, &body).await
}

/// Serves the API on `listener` within `limits` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    serving::serve_http("Rekognition-compatible API", listener, router(state), None, limits, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Problem, Secret};

    fn problems(config: &ApiConfig) -> Vec<Problem> {
        let mut checks = Checks::default();
        config.check(Path::new("/nonexistent"), &mut checks);
        checks.into_problems()
    }

    fn keys_of(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn off_by_default_and_a_listening_api_needs_keys() {
        assert!(problems(&ApiConfig::default()).is_empty());
        let listening = ApiConfig { listen: "127.0.0.1:8787".into(), ..ApiConfig::default() };
        assert_eq!(keys_of(&problems(&listening)), ["api.access_keys"]);
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let key =
            |id: &str, secret: &str| AccessKey { access_key_id: id.into(), secret_access_key: Secret::new(secret) };
        let config = ApiConfig {
            listen: "localhost".into(),
            region: "US East".into(),
            access_keys: vec![
                key("FACEREKOEXAMPLEKEY01", "short"),
                key("FACEREKOEXAMPLEKEY01", "long enough secret value"),
                key("bad id", "long enough secret value"),
            ],
            max_image_bytes: 1,
            connections: Limits::default(),
            ..ApiConfig::default()
        };
        assert_eq!(
            keys_of(&problems(&config)),
            [
                "api.listen",
                "api.region",
                "api.max_image_bytes",
                "api.access_keys[0].secret_access_key",
                "api.access_keys[1].access_key_id",
                "api.access_keys[2].access_key_id",
            ]
        );
        let message = problems(&config).iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n");
        assert!(!message.contains("long enough secret value"), "secrets never appear in messages");
    }
}
