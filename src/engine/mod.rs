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

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::frame::Frame;
use crate::store::PersonId;

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
