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
/// Most pixels in a picture we decode: turning and converting a picture takes several copies of
/// it, which the decoder's own limit does not count (a 522 KB PNG of 11585×11585 took over 1 GB).
const MAX_PIXELS: u64 = 40_000_000;
/// Pictures above this many pixels are decoded one at a time, so that a few at once cannot add up.
const LARGE_PIXELS: u64 = 12_000_000;
static LARGE_DECODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(bad(format!(
            "it is {width}×{height} pixels ({} megapixels); pictures of up to {} megapixels are read",
            pixels / 1_000_000,
            MAX_PIXELS / 1_000_000
        )));
    }
    let _one_at_a_time =
        (pixels > LARGE_PIXELS).then(|| LARGE_DECODE.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    decoded.apply_orientation(orientation);
    Ok(decoded.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG that says it is `width`×`height` but holds one pixel: what a decompression bomb's
    /// header looks like, without the bomb.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut png = Vec::new();
        let pixel = image::RgbImage::from_pixel(1, 1, image::Rgb([0, 0, 0]));
        pixel.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        // The IHDR chunk follows the 8-byte signature: length, type, width, height, …, CRC.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        png
    }

    #[test]
    fn pictures_over_the_pixel_limit_are_refused_before_decoding() {
        let bomb = Frame::from_bytes(png_claiming(11_585, 11_585), "the upload").unwrap();
        let refused = decode_rgb(&bomb, "the upload").unwrap_err();
        assert!(refused.to_string().contains("11585×11585 pixels (134 megapixels)"), "{refused}");
        let within = Frame::from_bytes(png_claiming(6_000, 6_000), "the upload").unwrap();
        let failed = decode_rgb(&within, "the upload").unwrap_err();
        assert!(!failed.to_string().contains("megapixels"), "36 megapixels are allowed: {failed}");
    }
}
