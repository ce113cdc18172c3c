//! Face embedders: the networks that turn an aligned face chip into a descriptor, one table from
//! name (`engine.embedder`) to alignment, model file and loader.
//!
//! Descriptors of different networks mean nothing to each other, so every stored face records the
//! embedder that made it, and each embedder has its own calibration onto the 0–100 similarity
//! scale the door, the logs and the API share.

mod dlib;
mod mobilefacenet;
mod prelu;

use std::path::{Path, PathBuf};

use image::RgbImage;
use tract_onnx::prelude::TractError;

use super::align::{self, Template};
use crate::models;

#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    #[error("cannot read {}: {source}; run `facereko models fetch` to download the face models", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable TF.js weights manifest: {detail}", path.display())]
    Manifest { path: PathBuf, detail: String },
    #[error(
        "{} holds {actual} bytes but its manifest describes {expected}; the two model files do not belong \
         together (run `facereko models fetch` again)",
        path.display()
    )]
    WeightsSize { path: PathBuf, expected: u64, actual: u64 },
    #[error("{} is not the expected face model: {detail} (run `facereko models fetch` again)", path.display())]
    Model { path: PathBuf, detail: String },
    #[error("the face chip is {width}×{height} pixels; the {embedder} embedder takes {side}×{side}")]
    ChipSize { embedder: &'static str, width: u32, height: u32, side: u32 },
    #[error("the embedder network produced a degenerate descriptor (norm {0})")]
    Degenerate(f32),
    #[error("inference engine: {0}")]
    Tract(String),
    #[error("there is no embedder {0:?}; choose one of: {list}", list = names().join(", "))]
    Unknown(String),
}

impl From<TractError> for EmbedderError {
    fn from(e: TractError) -> Self {
        EmbedderError::Tract(format!("{e:#}"))
    }
}

/// One network: the raw (not yet normalised) descriptor of an aligned chip of the right size.
trait Network: Send + Sync {
    fn describe(&self, chip: &RgbImage) -> Result<Vec<f32>, EmbedderError>;
}

/// An embedder as the table lists it.
#[derive(Debug)]
pub struct Kind {
    /// The name in `engine.embedder`, stored with every face it describes. It names one exact
    /// network, version included: its model files are pinned by sha256 (`models::FILES`), so a
    /// newer version comes under a new name, and faces described by the old one get reindexed.
    pub name: &'static str,
    /// Where the landmarks go in the chip the network takes.
    pub template: Template,
    /// Whether a descriptor is the mean of the chip's and its mirror image's (costs a second pass).
    pub flip: bool,
    /// The cosine above which no stranger was accepted on any shared test set (README, "Accuracy"):
    /// it is shown as [`CALIBRATED_THRESHOLD`].
    pub no_false_accept_cosine: f32,
    load: fn(&Path) -> Result<Box<dyn Network>, EmbedderError>,
}

/// The similarity every embedder's calibration point is shown as: at the default
/// `engine.match_threshold`, no stranger of any shared test set is taken for someone else.
pub const CALIBRATED_THRESHOLD: f32 = 90.0;

pub const MOBILEFACENET: Kind = Kind {
    name: "mobilefacenet",
    template: align::ARCFACE,
    flip: false,
    // The strictest stranger: 0.6364, two East-Asian faces of `diverse` (0.6402 when every
    // picture was looked at on a 320×320 canvas).
    no_false_accept_cosine: 0.641,
    load: |dir| Ok(Box::new(mobilefacenet::MobileFaceNet::load(&dir.join(models::MOBILEFACENET))?)),
};

pub const DLIB: Kind = Kind {
    name: "dlib",
    template: align::DLIB,
    flip: false,
    // The strictest stranger: 0.9800 (just under), two East-Asian faces of `diverse`.
    no_false_accept_cosine: 0.98,
    load: |dir| Ok(Box::new(dlib::Dlib::load(&dir.join(models::MANIFEST), &dir.join(models::WEIGHTS))?)),
};

/// Every embedder, the default first.
pub const EMBEDDERS: &[&Kind] = &[&MOBILEFACENET, &DLIB];

pub fn names() -> Vec<&'static str> {
    EMBEDDERS.iter().map(|kind| kind.name).collect()
}

pub fn kind(name: &str) -> Result<&'static Kind, EmbedderError> {
    EMBEDDERS.iter().copied().find(|kind| kind.name == name).ok_or_else(|| EmbedderError::Unknown(name.to_owned()))
}

impl Kind {
    /// A cosine similarity of two unit descriptors on the shared 0–100 scale: piecewise linear,
    /// with this embedder's calibration point at [`CALIBRATED_THRESHOLD`] and 1 at 100.
    pub fn similarity(&self, cosine: f32) -> f32 {
        // A corrupt descriptor must never look like a perfect match.
        if !cosine.is_finite() {
            return 0.0;
        }
        let knee = self.no_false_accept_cosine;
        let shown = if cosine <= knee {
            CALIBRATED_THRESHOLD * cosine / knee
        } else {
            CALIBRATED_THRESHOLD + (100.0 - CALIBRATED_THRESHOLD) * (cosine - knee) / (1.0 - knee)
        };
        shown.clamp(0.0, 100.0)
    }
}

/// A loaded embedder, shared by reference between callers.
pub struct Embedder {
    kind: &'static Kind,
    flip: bool,
    network: Box<dyn Network>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("kind", &self.kind.name).field("flip", &self.flip).finish()
    }
}

// The daemon shares one embedder between tasks; keep that a compile-time promise.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Embedder>()
};

impl Embedder {
    /// Loads the embedder named `name` from the models folder.
    pub fn load(name: &str, models_dir: &Path) -> Result<Self, EmbedderError> {
        let kind = kind(name)?;
        Ok(Self { kind, flip: kind.flip, network: (kind.load)(models_dir)? })
    }

    /// Averages each descriptor with its mirror image's, or not (for measuring what it is worth).
    pub fn with_flip(self, flip: bool) -> Self {
        Self { flip, ..self }
    }

    pub fn kind(&self) -> &'static Kind {
        self.kind
    }

    /// The L2-normalised descriptor of a chip aligned to this embedder's template.
    pub fn embed(&self, chip: &RgbImage) -> Result<Vec<f32>, EmbedderError> {
        let side = self.kind.template.side;
        if chip.dimensions() != (side, side) {
            let (width, height) = chip.dimensions();
            return Err(EmbedderError::ChipSize { embedder: self.kind.name, width, height, side });
        }
        let mut raw = self.network.describe(chip)?;
        if self.flip {
            let mirrored = self.network.describe(&image::imageops::flip_horizontal(chip))?;
            for (value, other) in raw.iter_mut().zip(mirrored) {
                *value += other;
            }
        }
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_normal() {
            return Err(EmbedderError::Degenerate(norm));
        }
        Ok(raw.into_iter().map(|v| v / norm).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calibration_point_shows_as_the_calibrated_threshold() {
        for kind in EMBEDDERS {
            let at = kind.similarity(kind.no_false_accept_cosine);
            assert!((at - CALIBRATED_THRESHOLD).abs() < 1e-3, "{}: {at}", kind.name);
            assert_eq!(kind.similarity(1.0), 100.0);
            assert_eq!(kind.similarity(-0.5), 0.0);
            assert_eq!(kind.similarity(f32::NAN), 0.0);
            let (below, above) = (kind.similarity(kind.no_false_accept_cosine - 0.01), kind.similarity(0.999));
            assert!(below < at && at < above, "{}: the scale rises", kind.name);
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = kind("facenet").unwrap_err().to_string();
        assert!(err.contains("mobilefacenet, dlib"), "{err}");
    }

    #[test]
    fn a_chip_of_the_wrong_size_is_refused() {
        let embedder = Embedder::load(DLIB.name, &models::test_models_dir()).expect("the models are fetched");
        let err = embedder.embed(&RgbImage::new(112, 150)).unwrap_err();
        assert!(matches!(err, EmbedderError::ChipSize { width: 112, height: 150, side: 150, .. }), "{err}");
    }
}
