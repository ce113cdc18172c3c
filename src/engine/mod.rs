//! Face engines: the role that turns a picture into "whose face is this".
//!
//! Two kinds of engine fit this trait. Engines that compute descriptors on the device return
//! [`FaceTemplate::Descriptor`] from [`FaceEngine::enroll`]; we store it and hand the stored faces
//! back in a [`Gallery`] at search time. Engines that keep faces server-side (AWS Rekognition
//! collections) return [`FaceTemplate::Remote`] with their face id and ignore the gallery.

pub mod hybrid;
pub mod local;
pub mod rekognition;
pub mod simulated;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::access::PersonId;
use crate::checks::Checks;
use crate::frame::Frame;

/// `[engine]`: which face engine decides and how strict it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    pub kind: String,
    /// Where `facereko models fetch` puts the on-device models and the engine loads them from.
    pub models_dir: PathBuf,
    pub match_threshold: f32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The `rekognition` engine: AWS Rekognition, or FaceReko's own API through `endpoint_url`.
    pub rekognition: rekognition::RekognitionConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kind: local::NAME.into(),
            models_dir: PathBuf::from("/var/lib/facereko/models"),
            // Calibrated with `facereko eval`: no false accept on either shared data set (README).
            match_threshold: 93.0,
            timeout: Duration::from_secs(5),
            rekognition: rekognition::RekognitionConfig::default(),
        }
    }
}

impl EngineConfig {
    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            ENGINES.contains(&self.kind.as_str()),
            "engine.kind",
            format!("{:?} is not compiled in; choose one of: {}", self.kind, ENGINES.join(", ")),
        );
        checks.check(
            self.match_threshold > 0.0 && self.match_threshold <= 100.0,
            "engine.match_threshold",
            format!("{} must be above 0 and at most 100 (a similarity percentage)", self.match_threshold),
        );
        checks.duration("engine.timeout", self.timeout, Duration::from_millis(100), Duration::from_secs(60));
    }

    /// What the cross-section checks of the `hybrid` engine and of `engine.rekognition` find;
    /// they come after the other sections' problems in `config check`.
    pub fn check_rekognition(&self, checks: &mut Checks) {
        checks.check(
            self.kind != hybrid::NAME || self.rekognition.fallback_after < self.timeout,
            "engine.rekognition.fallback_after",
            format!(
                "{} leaves the on-device engine no time within engine.timeout ({}); make it shorter",
                humantime::format_duration(self.rekognition.fallback_after),
                humantime::format_duration(self.timeout)
            ),
        );
        self.rekognition.check(checks);
    }

    /// What only using the engine needs: the on-device models for the engines that load them.
    pub fn check_models(&self, checks: &mut Checks) {
        if [local::NAME, hybrid::NAME].contains(&self.kind.as_str())
            && let Err(e) = crate::models::ModelPaths::check(&self.models_dir)
        {
            checks.push(crate::checks::Problem::new("engine.models_dir", e.to_string()));
        }
    }
}

/// Where a face sits in an image, in pixels, with the detector's confidence (0–100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectedFace {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub confidence: f32,
}

impl DetectedFace {
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// What an engine keeps for one enrolled face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FaceTemplate {
    /// A descriptor vector computed and stored by us.
    Descriptor(Vec<f32>),
    /// A face stored by the engine itself, named by the engine's id.
    Remote(String),
}

/// An enrolled face as read back from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFace {
    pub id: i64,
    pub person: PersonId,
    pub template: FaceTemplate,
}

/// The enrolled faces of the current engine, shared cheaply with searches in flight.
pub type Gallery = Arc<[StoredFace]>;

/// The result of searching a picture against the enrolled faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SearchOutcome {
    /// No face was found in the picture.
    NoFace,
    /// A face was found but no enrolled face resembles it at all.
    NoCandidate { face_confidence: f32 },
    /// The closest enrolled person; the caller decides whether `similarity` is enough.
    Candidate { person: PersonId, similarity: f32, face_confidence: f32 },
}

/// One-to-one comparison of the largest face in each of two pictures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// 0–100, on the same scale as Rekognition's `Similarity`.
    pub similarity: f32,
    pub first: DetectedFace,
    pub second: DetectedFace,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what} cannot be decoded as an image: {detail}")]
    BadImage { what: String, detail: String },
    #[error("no face found in {what}")]
    NoFace { what: String },
    #[error("{what} shows {count} faces; use a picture with exactly one face")]
    SeveralFaces { what: String, count: usize },
    #[error("the face engine is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait FaceEngine: Send + Sync {
    /// The name used in the config (`engine.kind`) and recorded with every decision.
    fn name(&self) -> &'static str;

    /// Faces in the picture, largest first. An empty list is a normal answer.
    async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError>;

    /// Builds the template for the one face in `image`, for `person`.
    async fn enroll(&self, person: PersonId, image: &Frame) -> Result<FaceTemplate, EngineError>;

    /// Releases whatever the engine keeps for a face that is being deleted.
    async fn forget(&self, template: &FaceTemplate) -> Result<(), EngineError>;

    /// Finds the enrolled person closest to the largest face in `image`.
    async fn search(&self, image: &Frame, gallery: &Gallery) -> Result<SearchOutcome, EngineError>;

    /// Compares the largest face of each picture.
    async fn compare(&self, first: &Frame, second: &Frame) -> Result<Comparison, EngineError>;

    /// The on-device models this engine has loaded, for others to share (the face API).
    fn on_device(&self) -> Option<local::LocalEngine> {
        None
    }
}

/// Engine names compiled into this build, for `config check` and `hw list`.
pub const ENGINES: &[&str] = &[local::NAME, rekognition::NAME, hybrid::NAME, simulated::NAME];

/// Builds the engine named in the config, loading its models.
pub fn build(config: &EngineConfig) -> Result<Arc<dyn FaceEngine>, EngineError> {
    match config.kind.as_str() {
        local::NAME => Ok(Arc::new(local::LocalEngine::load(&config.models_dir)?)),
        rekognition::NAME => {
            let face_check = match local::LocalEngine::load(&config.models_dir) {
                Ok(local) => Some(local),
                Err(e) => {
                    tracing::info!("no on-device face check ({e}): every captured frame costs a DetectFaces call");
                    None
                }
            };
            Ok(Arc::new(rekognition::RekognitionEngine::new(config.rekognition.clone(), face_check)))
        }
        hybrid::NAME => Ok(Arc::new(hybrid::HybridEngine::new(
            rekognition::RekognitionEngine::new(config.rekognition.clone(), None),
            local::LocalEngine::load(&config.models_dir)?,
            config.rekognition.fallback_after,
        ))),
        simulated::NAME => Ok(Arc::new(simulated::SimulatedEngine)),
        other => Err(EngineError::Unavailable(format!(
            "engine.kind {other:?} is not compiled in; choose one of: {}",
            ENGINES.join(", ")
        ))),
    }
}

/// Largest picture side we decode, and the memory a decode may take: a camera frame or a phone
/// photo fits easily; a decompression bomb does not.
const MAX_SIDE: u32 = 12_000;
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Decodes a JPEG or PNG into RGB, upright according to its EXIF orientation (grey, alpha and
/// 16-bit pictures are converted).
pub fn decode_rgb(frame: &Frame, what: &str) -> Result<image::RgbImage, EngineError> {
    use image::ImageDecoder;
    let bad = |detail: String| EngineError::BadImage { what: what.to_owned(), detail };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(frame.bytes()))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    decoded.apply_orientation(orientation);
    Ok(decoded.into_rgb8())
}
