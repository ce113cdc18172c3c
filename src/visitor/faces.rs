//! Known visitors' faces: a ring's photo is described by the on-device engine and compared with
//! the faces of visitors the owner let in before, as the door searches enrolled people (the same
//! closest-descriptor search, the same `engine.match_threshold`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::engine::local::{self, Descriptor, LocalEngine};
use crate::engine::{EngineError, FaceEngine, clears_threshold};
use crate::frame::Frame;
use crate::store::{KnownVisitors, StoreError, VisitorId};

/// Describes visitors' faces and finds them among the known ones. Clones share the threshold.
#[derive(Clone)]
pub struct KnownFaces {
    engine: LocalEngine,
    /// `engine.match_threshold` as f32 bits: the settings page may change it while the door runs.
    threshold: Arc<AtomicU32>,
}

impl std::fmt::Debug for KnownFaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownFaces").field("kind", &self.kind()).field("threshold", &self.threshold()).finish()
    }
}

impl KnownFaces {
    pub fn new(engine: LocalEngine, threshold: f32) -> Self {
        Self { engine, threshold: Arc::new(AtomicU32::new(threshold.to_bits())) }
    }

    pub fn threshold(&self) -> f32 {
        f32::from_bits(self.threshold.load(Ordering::Relaxed))
    }

    pub fn set_threshold(&self, threshold: f32) {
        self.threshold.store(threshold.to_bits(), Ordering::Relaxed);
    }

    /// What the descriptors are (`local/<embedder>`): only faces of this kind are compared.
    pub fn kind(&self) -> &str {
        self.engine.template_kind()
    }

    /// The descriptor of the largest face in `photo`; `None` without a face.
    pub async fn describe(&self, photo: &Frame) -> Result<Option<Descriptor>, EngineError> {
        Ok(self.engine.describe(photo, "the visitor's photo").await?.map(|face| face.descriptor))
    }

    /// The known visitor whose face is most like `descriptor`, with the similarity, if it clears
    /// the threshold.
    pub async fn recognise(
        &self,
        visitors: &dyn KnownVisitors,
        descriptor: &[f32],
    ) -> Result<Option<(VisitorId, f32)>, StoreError> {
        let faces = visitors.visitor_faces(self.kind()).await?;
        let candidates = faces.iter().map(|face| (face.visitor, face.descriptor.as_slice()));
        let best = local::closest(self.engine.embedder(), descriptor, candidates);
        Ok(best.filter(|&(_, similarity)| clears_threshold(similarity, self.threshold())))
    }
}
