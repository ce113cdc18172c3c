//! Face engines: the role that turns a picture into "whose face is this".
//!
//! Two kinds of engine fit this trait. Engines that compute descriptors on the device return
//! [`FaceTemplate::Descriptor`] from [`FaceEngine::enroll`]; we store it and hand the stored faces
//! back in a [`Gallery`] at search time. Engines that keep faces server-side (AWS Rekognition
//! collections) return [`FaceTemplate::Remote`] with their face id and ignore the gallery.

mod gallery;
pub mod hybrid;
pub mod local;
pub mod rekognition;
pub mod simulated;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::access::PersonId;
use crate::checks::Checks;
use crate::frame::Frame;
pub use gallery::{Gallery, cosine};

/// `[engine]`: which face engine decides and how strict it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    pub kind: String,
    /// The network that describes faces on the device: `mobilefacenet` or `dlib`.
    pub embedder: String,
    /// Where `facereko models fetch` puts the on-device models and the engine loads them from.
    pub models_dir: PathBuf,
    pub match_threshold: f32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Cores the on-device engine's face detection uses; unset: every core, at most
    /// [`local::MAX_DEFAULT_THREADS`].
    pub threads: Option<usize>,
    /// The largest picture decoded, from the camera, an upload or the API (see [`limit_pictures`]).
    pub max_megapixels: u32,
    /// The `rekognition` engine: AWS Rekognition, or FaceReko's own API through `endpoint_url`.
    pub rekognition: rekognition::RekognitionConfig,
}

/// On the embedders' calibrated scale, 70 let 0.94 % of Black and 1.37 % of East-Asian strangers
/// of `diverse` through (README, "Accuracy and the threshold"); lower lets in more.
const ON_DEVICE_FLOOR: f32 = 70.0;
/// Rekognition's own default `FaceMatchThreshold` for searches (the hybrid engine decides on
/// Rekognition's scale whenever the cloud answers).
const REKOGNITION_FLOOR: f32 = 80.0;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kind: local::NAME.into(),
            embedder: local::embedder::EMBEDDERS[0].name.into(),
            models_dir: PathBuf::from("/var/lib/facereko/models"),
            // Each embedder's scale is calibrated so that here no stranger of any shared test set
            // was accepted (README, "Accuracy").
            match_threshold: local::embedder::CALIBRATED_THRESHOLD,
            timeout: Duration::from_secs(5),
            threads: None,
            max_megapixels: DEFAULT_MAX_MEGAPIXELS,
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
            local::embedder::kind(&self.embedder).is_ok(),
            "engine.embedder",
            format!("{:?} is not an embedder; choose one of: {}", self.embedder, local::embedder::names().join(", ")),
        );
        checks.check(
            self.match_threshold > 0.0 && self.match_threshold <= 100.0,
            "engine.match_threshold",
            format!("{} must be above 0 and at most 100 (a similarity percentage)", self.match_threshold),
        );
        let floor = self.threshold_floor();
        checks.check(
            !(self.match_threshold > 0.0 && self.match_threshold < floor),
            "engine.match_threshold",
            format!(
                "{} is below {floor}, the lowest the {} engine accepts: {}",
                self.match_threshold,
                self.kind,
                if floor == ON_DEVICE_FLOOR {
                    "below it more than 1 % of strangers passed in some groups of the shared test sets (README, \
                     \"Accuracy and the threshold\")"
                } else {
                    "Rekognition's own default for face search; below it strangers match"
                }
            ),
        );
        checks.duration("engine.timeout", self.timeout, Duration::from_millis(100), Duration::from_secs(60));
        checks.check(
            (1..=MOST_MEGAPIXELS).contains(&self.max_megapixels),
            "engine.max_megapixels",
            format!(
                "{} must be from 1 to {MOST_MEGAPIXELS}; a 12-megapixel phone photo needs 12, and larger \
                 pictures take more memory while they are read",
                self.max_megapixels
            ),
        );
        if let Some(threads) = self.threads {
            checks.check(
                (1..=local::MAX_THREADS).contains(&threads),
                "engine.threads",
                format!("{threads} must be from 1 to {}; leave it out to use every core", local::MAX_THREADS),
            );
        }
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

    /// What the faces of this engine are stored as (see [`FaceEngine::template_kind`]).
    pub fn template_kind(&self) -> String {
        match self.kind.as_str() {
            local::NAME | hybrid::NAME => on_device_kind(&self.kind, &self.embedder),
            other => other.to_owned(),
        }
    }

    /// The lowest `match_threshold` this engine accepts: an owner who lowers it to let a family
    /// member in must not open the door to strangers by accident.
    fn threshold_floor(&self) -> f32 {
        match self.kind.as_str() {
            local::NAME => ON_DEVICE_FLOOR,
            rekognition::NAME | hybrid::NAME => REKOGNITION_FLOOR,
            _ => 0.0,
        }
    }

    /// The on-device engine this config describes (models folder and embedder).
    pub fn on_device(&self) -> Result<local::LocalEngine, EngineError> {
        let threads = self.threads.unwrap_or_else(local::default_threads);
        local::LocalEngine::load_tuned(&self.models_dir, &self.embedder, None, threads)
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
    /// Left eye, right eye, nose tip, left and right mouth corner (as seen in the image), in
    /// pixels, from engines that find them (the on-device one); the liveness checks use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<[(f32, f32); 5]>,
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

/// Whether a search's `similarity` is enough to take the face for the candidate's at `threshold`
/// (`engine.match_threshold`); a similarity that is not a number never is.
pub fn clears_threshold(similarity: f32, threshold: f32) -> bool {
    !similarity.is_nan() && similarity >= threshold
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
    /// An enrolment picture whose face would lower the accuracy (too small, blurred or turned).
    #[error(transparent)]
    PoorFace(#[from] local::quality::QualityProblem),
}

#[async_trait]
pub trait FaceEngine: Send + Sync {
    /// The name used in the config (`engine.kind`) and recorded with every decision.
    fn name(&self) -> &'static str;

    /// What the templates this engine makes are, stored with each face: only faces of this kind
    /// are handed back to it. The engine's name, plus the embedder for those that describe faces
    /// on the device (`local/mobilefacenet`), since descriptors of different models mean nothing
    /// to each other.
    fn template_kind(&self) -> &str {
        self.name()
    }

    /// Faces in the picture, largest first. An empty list is a normal answer.
    async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError>;

    /// The largest face in the picture, or none: what a door's burst looks for first. An engine may
    /// find it for less work than every face; the default takes the first of [`Self::detect`].
    async fn detect_largest(&self, image: &Frame) -> Result<Option<DetectedFace>, EngineError> {
        Ok(self.detect(image).await?.into_iter().next())
    }

    /// Faces in a frame of a burst whose previous frame showed `previous` (its largest face),
    /// largest first. A face moves little between frames, so an engine may look only around it
    /// while a face is there; the default looks at the whole frame.
    async fn detect_following(
        &self,
        image: &Frame,
        _previous: &DetectedFace,
    ) -> Result<Vec<DetectedFace>, EngineError> {
        self.detect(image).await
    }

    /// Refuses an enrolment picture whose one face is too small, blurred or turned away, saying
    /// why. Engines with on-device models measure it; the others accept every picture.
    async fn check_enrolment(&self, _image: &Frame) -> Result<(), EngineError> {
        Ok(())
    }

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

    /// `old` (one of this engine's templates) with a new on-device descriptor, for reindexing:
    /// what an engine that describes faces on the device stores for one.
    fn with_descriptor(&self, _old: &FaceTemplate, descriptor: Vec<f32>) -> FaceTemplate {
        FaceTemplate::Descriptor(descriptor)
    }
}

/// The template kind of an engine that describes faces on the device with `embedder`.
pub fn on_device_kind(engine: &str, embedder: &str) -> String {
    format!("{engine}/{embedder}")
}

/// Engine names compiled into this build, for `config check` and `hw list`.
pub const ENGINES: &[&str] = &[local::NAME, rekognition::NAME, hybrid::NAME, simulated::NAME];

/// Builds the engine named in the config, loading its models.
pub fn build(config: &EngineConfig) -> Result<Arc<dyn FaceEngine>, EngineError> {
    match config.kind.as_str() {
        local::NAME => Ok(Arc::new(config.on_device()?)),
        rekognition::NAME => {
            let face_check = match config.on_device() {
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
            config.on_device()?,
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
/// The default of `engine.max_megapixels`: more than any phone photo.
pub const DEFAULT_MAX_MEGAPIXELS: u32 = 40;
/// The most `engine.max_megapixels` may be: [`MAX_SIDE`] squared.
const MOST_MEGAPIXELS: u32 = 144;
/// Most pixels in a picture we decode: converting and turning a picture takes copies of it, which
/// the decoder's own limit does not count (a 522 KB PNG of 11585×11585 took over 1 GB). One
/// setting for the whole process, since pictures arrive from many places (camera, uploads, API).
static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_MEGAPIXELS as u64 * 1_000_000);
/// Pictures above this many pixels are decoded one at a time, so that a few at once cannot add up.
const LARGE_PIXELS: u64 = 12_000_000;
static LARGE_DECODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Sets the largest picture [`decode_rgb`] accepts (`engine.max_megapixels`), for the process.
/// A value outside 1..=144, which `config check` refuses, is brought into that range.
pub fn limit_pictures(megapixels: u32) {
    let megapixels = megapixels.clamp(1, MOST_MEGAPIXELS);
    MAX_PIXELS.store(u64::from(megapixels) * 1_000_000, Ordering::Relaxed);
}

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
    let max_pixels = MAX_PIXELS.load(Ordering::Relaxed);
    if pixels > max_pixels {
        return Err(bad(format!(
            "it is {width}×{height} pixels ({} megapixels); pictures of up to {} megapixels are read \
             (engine.max_megapixels)",
            pixels / 1_000_000,
            max_pixels / 1_000_000
        )));
    }
    let _one_at_a_time =
        (pixels > LARGE_PIXELS).then(|| LARGE_DECODE.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let decoded = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    // Down to 8-bit RGB before turning: the turn then copies the smallest form of the picture.
    let mut upright = image::DynamicImage::ImageRgb8(decoded.into_rgb8());
    upright.apply_orientation(orientation);
    Ok(upright.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold_problems(kind: &str, match_threshold: f32) -> Vec<String> {
        let config = EngineConfig { kind: kind.into(), match_threshold, ..EngineConfig::default() };
        let mut checks = Checks::default();
        config.check(&mut checks);
        checks.into_problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_engine_refuses_thresholds_that_let_strangers_in() {
        let low = threshold_problems(local::NAME, 1.0);
        assert_eq!(low.len(), 1, "{low:?}");
        assert!(
            low[0].contains("1 is below 70, the lowest the local engine accepts: below it more than 1 %"),
            "{low:?}"
        );
        assert!(threshold_problems(local::NAME, 70.0).is_empty());
        let cloud = threshold_problems(rekognition::NAME, 75.0);
        assert!(cloud[0].contains("75 is below 80, the lowest the rekognition engine accepts"), "{cloud:?}");
        assert!(threshold_problems(hybrid::NAME, 75.0)[0].contains("below 80"));
        assert!(threshold_problems(simulated::NAME, 1.0).is_empty(), "the simulated engine only matches itself");
        let nonsense = threshold_problems(local::NAME, 0.0);
        assert_eq!(nonsense.len(), 1, "out of range, said once: {nonsense:?}");
    }

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
