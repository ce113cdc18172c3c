//! The face-comparison API on the web app's listener: `POST /api/v1/compare` (an ID photo with a
//! selfie), CompreFace's `POST /api/v1/verification/verify` for CompreFace clients, and
//! `GET /api/v1/openapi.json`. Requests name an API key (`Authorization: Bearer`, or CompreFace's
//! `x-api-key`) made on the settings page; answers and errors are JSON. It compares faces with
//! the on-device engine; it does not tell whether a document is genuine.

use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebState;
use super::api_keys;
use super::auth::{ClientAddress, SignInKey};
use crate::engine::local::{self, ExaminedFace, LocalEngine, one_to_one};
use crate::engine::{DetectedFace, EngineError};
use crate::frame::Frame;

/// The largest request body: two phone photos of up to about 4.5 MB each in base64 (which adds a
/// third), or up to about 6 MB each as multipart.
pub const MAX_BODY_BYTES: usize = 12 * 1024 * 1024;
/// Comparisons running at once; more wait their turn, so that the door keeps its cores.
pub const CONCURRENT_COMPARISONS: usize = 2;
/// CompreFace's error code for a picture without a face.
const COMPREFACE_NO_FACE: u32 = 28;

/// The OpenAPI 3 description of the API, written by hand.
const OPENAPI: &str = include_str!("openapi.json");

#[derive(Debug, thiserror::Error)]
pub enum FaceApiError {
    #[error("no API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    MissingKey,
    #[error("the API key is not valid (wrong, or revoked)")]
    WrongKey,
    #[error("too many requests with wrong API keys from this address; try again in {0} seconds")]
    TooManyAttempts(u64),
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    BadRequest(String),
    #[error("no face found in {field}")]
    NoFace { field: &'static str },
    /// The engine cannot compare here (no on-device models).
    #[error("{0}")]
    Unavailable(String),
    /// The detail is logged; the caller reads that something failed.
    #[error("the comparison failed; the details are in the daemon's log")]
    Internal(String),
}

impl FaceApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::WrongKey => StatusCode::UNAUTHORIZED,
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest(_) | Self::NoFace { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A word a program can switch on.
    fn reason(&self) -> &'static str {
        match self {
            Self::MissingKey => "missing_api_key",
            Self::WrongKey => "invalid_api_key",
            Self::TooManyAttempts(_) => "too_many_attempts",
            Self::TooLarge => "body_too_large",
            Self::BadRequest(_) => "bad_request",
            Self::NoFace { .. } => "no_face",
            Self::Unavailable(_) => "engine_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn log(&self) {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "face API request failed"),
            Self::Unavailable(detail) => tracing::warn!(%detail, "face API request refused"),
            other => tracing::debug!(error = %other, "face API request refused"),
        }
    }

    /// `{"error", "reason"}`, with `"image"` naming the picture without a face.
    fn into_ours(self) -> Response {
        self.log();
        let mut body = json!({ "error": self.to_string(), "reason": self.reason() });
        if let Self::NoFace { field } = &self {
            body["image"] = json!(field);
        }
        json_response(self.status(), &body)
    }

    /// As CompreFace answers errors: `{"message", "code"}`.
    fn into_compreface(self) -> Response {
        self.log();
        let (message, code) = match &self {
            Self::NoFace { .. } => ("No face is found in the given image".to_owned(), COMPREFACE_NO_FACE),
            other => (other.to_string(), u32::from(other.status().as_u16())),
        };
        json_response(self.status(), &json!({ "message": message, "code": code }))
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The key a request names: `Authorization: Bearer <key>` or `x-api-key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|value| value.to_str().ok()))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// Checks the request's key before any of its body is read. Wrong keys count like wrong
/// passwords from the client's address (the sign-in throttle), so keys cannot be guessed fast.
async fn authorise(state: &WebState, headers: &HeaderMap, address: Option<IpAddr>) -> Result<(), FaceApiError> {
    let key = presented_key(headers).ok_or(FaceApiError::MissingKey)?;
    let attempt = state
        .auth()
        .attempt(vec![SignInKey::address(address)])
        .await
        .map_err(|wait| FaceApiError::TooManyAttempts(wait.as_secs().max(1)))?;
    let store = state.store();
    let found = api_keys::find_key(store, key).await.map_err(|e| FaceApiError::Unavailable(e.to_string()))?;
    let key = found.ok_or(FaceApiError::WrongKey)?;
    attempt.succeeded();
    if let Err(e) = store.api_keys().api_key_used(key.id, time::OffsetDateTime::now_utc()).await {
        tracing::warn!(error = %e, key = %key.name, "cannot note when the API key was used");
    }
    tracing::debug!(key = %key.name, "face API request");
    Ok(())
}

/// The on-device engine, or why there is none.
fn engine(state: &WebState) -> Result<LocalEngine, FaceApiError> {
    state.engine().on_device().ok_or_else(|| {
        FaceApiError::Unavailable(format!(
            "the face engine ({}) has no on-device models, which the comparison API needs; use engine.kind \
             \"local\" or \"hybrid\", or put the models in engine.models_dir (`facereko models fetch`)",
            state.engine().name()
        ))
    })
}

/// The similarity that counts as a match: the door's `engine.match_threshold` as in force (the
/// settings page may change it) with the `local` engine; with another engine, whose threshold is
/// on Amazon's scale, the on-device engine's calibrated default.
fn threshold(state: &WebState) -> f32 {
    if state.engine().name() == local::NAME {
        state.0.tuning.read().expect("tuning lock").match_threshold
    } else {
        local::embedder::CALIBRATED_THRESHOLD
    }
}

/// Two pictures from a JSON body (base64 under the names of `fields`) or a multipart one.
async fn read_pictures(request: Request, fields: [&'static str; 2]) -> Result<[Frame; 2], FaceApiError> {
    let (parts, body) = request.into_parts();
    let too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64);
    if too_large {
        return Err(FaceApiError::TooLarge);
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| FaceApiError::TooLarge)?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut found: [Option<Bytes>; 2] = [None, None];
    if content_type.starts_with("multipart/form-data") {
        let request = Request::from_parts(parts, Body::from(bytes));
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| FaceApiError::BadRequest(format!("the multipart body cannot be read: {}", e.body_text())))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| FaceApiError::BadRequest(format!("the multipart body cannot be read: {}", e.body_text())))?
        {
            let Some(slot) = fields.iter().position(|name| field.name() == Some(name)) else { continue };
            let data = field.bytes().await.map_err(|e| FaceApiError::BadRequest(e.body_text()))?;
            found[slot] = Some(data);
        }
    } else {
        let body: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| {
            FaceApiError::BadRequest(format!(
                "the body is neither multipart/form-data nor a JSON object with {} and {} in base64: {e}",
                fields[0], fields[1]
            ))
        })?;
        for (slot, name) in fields.iter().enumerate() {
            if let Some(value) = body.get(*name) {
                let text = value
                    .as_str()
                    .ok_or_else(|| FaceApiError::BadRequest(format!("{name} must be a base64 string")))?;
                found[slot] = Some(decode_base64(name, text)?.into());
            }
        }
    }
    let mut frames = Vec::with_capacity(2);
    for (slot, name) in fields.iter().enumerate() {
        let bytes = found[slot].take().ok_or_else(|| FaceApiError::BadRequest(format!("{name} is missing")))?;
        let frame = Frame::from_bytes(bytes.to_vec(), name).map_err(|e| FaceApiError::BadRequest(e.to_string()))?;
        frames.push(frame);
    }
    let [first, second]: [Frame; 2] = frames.try_into().expect("two pictures");
    Ok([first, second])
}

/// Base64 with or without padding, with line breaks, or as a `data:` URL.
fn decode_base64(name: &str, text: &str) -> Result<Vec<u8>, FaceApiError> {
    let text = text.split_once(";base64,").map_or(text, |(_, data)| data);
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(cleaned).map_err(|e| FaceApiError::BadRequest(format!("{name} is not valid base64: {e}")))
}

/// What an engine error means for the caller of the picture `field`.
fn engine_error(error: EngineError, field: &'static str) -> FaceApiError {
    match error {
        EngineError::NoFace { .. } => FaceApiError::NoFace { field },
        EngineError::BadImage { detail, .. } => {
            FaceApiError::BadRequest(format!("{field} cannot be decoded as an image: {detail}"))
        }
        EngineError::Unavailable(detail) => FaceApiError::Internal(detail),
        other => FaceApiError::Internal(other.to_string()),
    }
}

/// Waits for a free place among the comparisons running.
async fn turn(state: &WebState) -> Result<tokio::sync::SemaphorePermit<'_>, FaceApiError> {
    state.0.comparisons.acquire().await.map_err(|e| FaceApiError::Internal(e.to_string()))
}

fn face_json(examined: &ExaminedFace) -> Value {
    let face = &examined.face;
    json!({
        "box": { "x": face.x, "y": face.y, "width": face.width, "height": face.height },
        "confidence": face.confidence,
        "faces": examined.faces,
        "eye_distance": examined.quality.eye_distance,
        "sharpness": examined.quality.sharpness,
        "yaw_degrees": examined.quality.yaw_degrees,
    })
}

pub async fn compare(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    request: Request,
) -> Response {
    compare_answer(&state, address, request).await.unwrap_or_else(FaceApiError::into_ours)
}

async fn compare_answer(state: &WebState, address: Option<IpAddr>, request: Request) -> Result<Response, FaceApiError> {
    authorise(state, request.headers(), address).await?;
    let engine = engine(state)?;
    let [id_image, selfie] = read_pictures(request, ["id_image", "selfie"]).await?;
    let _turn = turn(state).await?;
    let id_face = engine.examine(&id_image, "id_image").await.map_err(|e| engine_error(e, "id_image"))?;
    let selfie_face = engine.examine(&selfie, "selfie").await.map_err(|e| engine_error(e, "selfie"))?;
    let similarity = engine.similarity(&id_face.descriptor, &selfie_face.descriptor);
    let threshold = threshold(state);
    let mut warnings = one_to_one::warnings(&id_face, "the ID");
    warnings.extend(one_to_one::warnings(&selfie_face, "the selfie"));
    let body = json!({
        "similarity": similarity,
        "match": crate::engine::clears_threshold(similarity, threshold),
        "threshold": threshold,
        "id_face": face_json(&id_face),
        "selfie_face": face_json(&selfie_face),
        "warnings": warnings,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// CompreFace's query parameters that change the answer (the others are accepted and ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VerifyQuery {
    /// Most faces of the target compared, largest first; 0: every face.
    limit: usize,
    /// Faces the detector is less sure of (0–1) are left out.
    det_prob_threshold: Option<f32>,
}

/// CompreFace's box: pixels, with the detector's probability 0–1.
fn compreface_box(face: &DetectedFace) -> Value {
    json!({
        "probability": face.confidence / 100.0,
        "x_max": face.x + face.width,
        "y_max": face.y + face.height,
        "x_min": face.x,
        "y_min": face.y,
    })
}

pub async fn verify(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    Query(query): Query<VerifyQuery>,
    request: Request,
) -> Response {
    verify_answer(&state, address, query, request).await.unwrap_or_else(FaceApiError::into_compreface)
}

async fn verify_answer(
    state: &WebState,
    address: Option<IpAddr>,
    query: VerifyQuery,
    request: Request,
) -> Result<Response, FaceApiError> {
    authorise(state, request.headers(), address).await?;
    let engine = engine(state)?;
    let [source, target] = read_pictures(request, ["source_image", "target_image"]).await?;
    let _turn = turn(state).await?;
    let source_face = engine.examine(&source, "source_image").await.map_err(|e| engine_error(e, "source_image"))?;
    let limit = if query.limit == 0 { usize::MAX } else { query.limit };
    let (picked, frame) = (engine.clone(), target.clone());
    let target_faces =
        tokio::task::spawn_blocking(move || picked.analyse_faces_closely_blocking(&frame, "target_image", limit))
            .await
            .map_err(|e| FaceApiError::Internal(e.to_string()))?
            .map_err(|e| engine_error(e, "target_image"))?;
    let least = query.det_prob_threshold.unwrap_or(0.0) * 100.0;
    let mut matches: Vec<(f32, Value)> = target_faces
        .described
        .iter()
        .filter(|face| face.face.confidence >= least)
        .map(|face| {
            let similarity = (engine.similarity(&source_face.descriptor, &face.descriptor) / 100.0).clamp(0.0, 1.0);
            (similarity, compreface_box(&face.face))
        })
        .collect();
    if matches.is_empty() {
        return Err(FaceApiError::NoFace { field: "target_image" });
    }
    matches.sort_by(|a, b| b.0.total_cmp(&a.0));
    let face_matches: Vec<Value> = matches
        .into_iter()
        .map(|(similarity, face_box)| json!({ "box": face_box, "similarity": similarity }))
        .collect();
    let body = json!({
        "result": [{
            "source_image_face": { "box": compreface_box(&source_face.face) },
            "face_matches": face_matches,
            "plugins_versions": { "detector": "facereko.CenterFace", "calculator": format!("facereko.{}", engine.embedder().name) },
        }]
    });
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert("x-api-key", "frk_b".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("frk_b"));
        headers.insert(header::AUTHORIZATION, "Bearer  frk_a ".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("frk_a"), "the bearer token first");
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("frk_b"));
    }

    #[test]
    fn base64_comes_padded_or_not_wrapped_or_as_a_data_url() {
        assert_eq!(decode_base64("x", "aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("x", "aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("x", "data:image/png;base64,aG\nk=").unwrap(), b"hi");
        let bad = decode_base64("selfie", "not base64!").unwrap_err();
        assert!(bad.to_string().starts_with("selfie is not valid base64"), "{bad}");
    }

    #[test]
    fn the_openapi_description_is_json() {
        let document: Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    }
}
