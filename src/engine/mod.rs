//! Face engines: the role that turns a picture into "whose face is this".
//!
//! Two kinds of engine fit this trait. Engines that compute descriptors on the device return
//! [`FaceTemplate::Descriptor`] from [`FaceEngine::enroll`]; we store it and hand the stored faces
//! back in a [`Gallery`] at search time. Engines that keep faces server-side (AWS Rekognition
//! collections) return [`FaceTemplate::Remote`] with their face id and ignore the gallery.

pub mod simulated;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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
pub const ENGINES: &[&str] = &[simulated::NAME];

/// Builds the engine named in the config.
pub fn build(kind: &str) -> Option<Arc<dyn FaceEngine>> {
    match kind {
        simulated::NAME => Some(Arc::new(simulated::SimulatedEngine)),
        _ => None,
    }
}
