//! The on-device face engine: BlazeFace and CenterFace detection, 5-point alignment, a descriptor from the
//! configured embedder (MobileFaceNet or the dlib ResNet); beside it, an anti-spoofing model for
//! the liveness checks (`antispoof`).

pub mod align;
pub mod antispoof;
mod depthwise;
pub mod detector;
pub mod embedder;
pub mod one_to_one;
pub mod quality;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use image::RgbImage;
use tract_linalg::multithread::{Executor, multithread_tract_scope};

use super::{Comparison, DetectedFace, EngineError, FaceEngine, FaceTemplate, Gallery, SearchOutcome, decode_rgb};
use crate::access::PersonId;
use crate::frame::Frame;
use crate::models::ModelPaths;
use detector::{Detection, Detector};
use embedder::{Embedder, Kind};
use quality::Quality;

pub const NAME: &str = "local";

/// Pictures up to this size (a 4K camera frame) are kept between `detect` and `search`.
const MAX_REMEMBERED_PIXELS: u64 = 3840 * 2160;

/// Most cores `engine.threads` may name.
pub const MAX_THREADS: usize = 16;
/// Most cores the engine takes when `engine.threads` is unset: a Pi 4 or 5 has four.
pub const MAX_DEFAULT_THREADS: usize = 4;

/// Every core of this machine, at most [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).min(MAX_DEFAULT_THREADS)
}

/// Makes the process keep the memory it frees, for the next frame: call it first in `main`, before
/// any thread exists. Pictures and the networks' buffers of a megabyte or more come and go at
/// every frame (tract gives each layer a new buffer on every run). Handing them back to the system
/// (a fixed 128 KiB mmap threshold, as before) made every frame fault its memory in again: 42 % of
/// `eval`'s CPU went to the kernel (over diverse, lfw10 and deepface: 85.5 s → 49.5 s, 12.2
/// million page faults → 33 thousand, measured). glibc's own moving threshold, with an arena per
/// thread, fragmented the heaps instead (`eval` grew by about 2 MiB a picture). So every block
/// comes from one heap, whatever thread frees it, and up to 64 MiB free at its top stays; more
/// (after a large photo) goes back.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters; each takes a count or a size in bytes.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_AT_TOP as libc::c_int);
    }
}

/// Free memory kept at the top of the heap ([`keep_freed_memory`]).
const KEPT_AT_TOP: usize = 64 << 20;
/// How far the heap may grow between two returns of its free memory ([`give_back_surplus_memory`]).
const MOST_GROWTH: usize = 64 << 20;
/// The heap's size when its free memory was last returned.
static HEAP_AT_LAST_RETURN: AtomicUsize = AtomicUsize::new(0);

/// Returns the free memory among the heap's blocks to the system (what is free at its top stays)
/// each time the heap has grown by [`MOST_GROWTH`]: call it between the pictures of a batch. On an
/// AVX-512 machine, `eval`'s heap grew by about 3 MiB a picture, the growth free memory left among
/// its blocks (peak 863 MiB over `diverse`, lfw10 and `deepface`, now 441). Returning the free
/// memory at every picture cost about 9,000 page faults each. The daemon, which keeps nothing
/// between taps, did not grow.
pub fn give_back_surplus_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads malloc's statistics, and malloc_trim only hands free pages back.
    unsafe {
        let heap = libc::mallinfo2().arena;
        if heap > HEAP_AT_LAST_RETURN.load(Ordering::Relaxed) + MOST_GROWTH {
            libc::malloc_trim(KEPT_AT_TOP);
            HEAP_AT_LAST_RETURN.store(heap, Ordering::Relaxed);
        }
    }
}

/// A descriptor: values of unit length, as many as the embedder makes.
pub type Descriptor = Vec<f32>;

struct Models {
    detector: Detector,
    embedder: Embedder,
    /// What stored faces of this engine are: `local/<embedder>`.
    template_kind: String,
    /// The cores the detector's matrix products are spread over.
    executor: Executor,
    /// The frame `detect` analysed last: a tap's burst detects faces on the frame it then
    /// searches with, and this saves decoding and detecting it twice. Taken by the next
    /// description of that frame, so no picture stays in memory after its search.
    last: Mutex<Option<Analysis>>,
}

#[derive(Clone)]
struct Analysis {
    frame: Frame,
    image: Arc<RgbImage>,
    /// Largest first.
    detections: Arc<[Detection]>,
}

/// Runs on the device: CenterFace finds the faces, the largest is aligned to the embedder's chip
/// and described; descriptors are compared by cosine, shown on the embedder's calibrated 0–100 scale.
#[derive(Clone)]
pub struct LocalEngine(Arc<Models>);

/// The largest face of a picture and its descriptor.
pub struct DescribedFace {
    pub face: DetectedFace,
    pub descriptor: Descriptor,
}

/// Every face of one picture, largest first, the first ones described, with the picture's upright
/// size in pixels (so that boxes can be given as fractions of it).
pub struct FacesInPicture {
    pub width: u32,
    pub height: u32,
    pub described: Vec<DescribedFace>,
    /// The faces beyond the description limit.
    pub others: Vec<DetectedFace>,
}

/// The largest face of a picture compared one to one (an ID photo with a selfie): described,
/// measured, and with how many faces the picture holds.
#[derive(Debug, Clone)]
pub struct ExaminedFace {
    pub face: DetectedFace,
    pub descriptor: Descriptor,
    pub quality: Quality,
    /// Faces found in the picture, this one included.
    pub faces: usize,
    /// Found only by looking at enlarged parts of the picture: a small face.
    pub looked_closer: bool,
}

fn to_detected(detection: &Detection) -> DetectedFace {
    DetectedFace {
        x: detection.left.max(0.0).round() as u32,
        y: detection.top.max(0.0).round() as u32,
        width: detection.width.max(0.0).round() as u32,
        height: detection.height.max(0.0).round() as u32,
        confidence: (detection.score * 100.0).clamp(0.0, 100.0),
        landmarks: Some(detection.landmarks),
    }
}

/// How alike two descriptors of `kind` are, on its calibrated 0–100 scale. Descriptors of another
/// length (another model) never match.
pub fn similarity(kind: &Kind, a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    kind.similarity(super::cosine(a, b))
}

impl LocalEngine {
    /// Loads the detector and the embedder named `embedder` (`engine.embedder`), using
    /// [`default_threads`].
    pub fn load(models_dir: &Path, embedder: &str) -> Result<Self, EngineError> {
        Self::load_tuned(models_dir, embedder, None, default_threads())
    }

    /// [`LocalEngine::load`] on `threads` cores, with `flip` overriding the embedder's own choice
    /// of flip averaging (for measuring it with `facereko eval`).
    pub fn load_tuned(
        models_dir: &Path,
        embedder: &str,
        flip: Option<bool>,
        threads: usize,
    ) -> Result<Self, EngineError> {
        let unavailable = |e: &dyn std::fmt::Display| EngineError::Unavailable(e.to_string());
        let paths = ModelPaths::check(models_dir).map_err(|e| unavailable(&e))?;
        let detector = Detector::load(&paths).map_err(|e| unavailable(&e))?;
        let mut embedder = Embedder::load(embedder, models_dir).map_err(|e| unavailable(&e))?;
        if let Some(flip) = flip {
            embedder = embedder.with_flip(flip);
        }
        let template_kind = super::on_device_kind(NAME, embedder.kind().name);
        let executor = if threads > 1 { Executor::multithread(threads) } else { Executor::SingleThread };
        Ok(Self(Arc::new(Models { detector, embedder, template_kind, executor, last: Mutex::new(None) })))
    }

    /// Plans now what only a door's frames need (BlazeFace and the small canvases around a face),
    /// so that the first tap does not wait for it; one-shot commands, which look at every face,
    /// never plan it.
    pub fn prepare_for_frames(&self) -> Result<(), EngineError> {
        self.0.detector.prepare_for_frames().map_err(|e| EngineError::Unavailable(e.to_string()))
    }

    /// The embedder this engine describes faces with.
    pub fn embedder(&self) -> &'static Kind {
        self.0.embedder.kind()
    }

    /// How alike two of this engine's descriptors are, 0–100.
    pub fn similarity(&self, a: &[f32], b: &[f32]) -> f32 {
        similarity(self.embedder(), a, b)
    }

    /// Runs `work` with its networks spread over the engine's cores.
    fn on_engine_cores<R>(&self, work: impl FnOnce() -> R) -> R {
        multithread_tract_scope(self.0.executor.clone(), work)
    }

    fn analyse(&self, frame: &Frame, what: &str) -> Result<Analysis, EngineError> {
        let image = decode_rgb(frame, what)?;
        let found = self.run_detector(|detector| detector.detect(&image))?;
        Ok(Analysis { frame: frame.clone(), image: Arc::new(image), detections: found.into() })
    }

    /// Only the largest face, as a door's burst looks for it ([`Detector::detect_largest`]).
    fn analyse_largest(&self, frame: &Frame, what: &str) -> Result<Analysis, EngineError> {
        let image = decode_rgb(frame, what)?;
        let found = self.largest_in(&image)?;
        Ok(Analysis { frame: frame.clone(), image: Arc::new(image), detections: found.into() })
    }

    /// The largest face of `image`, if any ([`Detector::detect_largest`]). Where BlazeFace points,
    /// on one core: those regions are too small to gain from more (measured: a tap took 7 ms
    /// longer on two); the whole picture, when needed, on the engine's cores.
    fn largest_in(&self, image: &RgbImage) -> Result<Vec<Detection>, EngineError> {
        let near = self.0.detector.detect_where_found(image).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        match near {
            Some(near) => Ok(vec![near]),
            None => Ok(self.run_detector(|detector| detector.detect(image))?.into_iter().take(1).collect()),
        }
    }

    /// Runs the detector on the engine's cores; faces largest first.
    fn run_detector(
        &self,
        detect: impl FnOnce(&Detector) -> Result<Vec<Detection>, detector::DetectorError>,
    ) -> Result<Vec<Detection>, EngineError> {
        let mut found =
            self.on_engine_cores(|| detect(&self.0.detector)).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        found.sort_by(|a, b| b.area().total_cmp(&a.area()));
        Ok(found)
    }

    /// [`Self::analyse`], looking at enlarged parts of the picture when the whole shows no face;
    /// says whether it had to.
    fn analyse_closely(&self, frame: &Frame, what: &str) -> Result<(Analysis, bool), EngineError> {
        let mut analysis = self.analyse(frame, what)?;
        if !analysis.detections.is_empty() {
            return Ok((analysis, false));
        }
        let found = self.run_detector(|detector| detector.detect_closer(&analysis.image))?;
        analysis.detections = found.into();
        Ok((analysis, true))
    }

    /// Describes and measures the largest face, looking closer for a small one; NoFace without
    /// one. Blocking.
    pub fn examine_blocking(&self, frame: &Frame, what: &str) -> Result<ExaminedFace, EngineError> {
        let (analysis, looked_closer) = self.analyse_closely(frame, what)?;
        let largest = analysis.detections.first().ok_or_else(|| EngineError::NoFace { what: what.to_owned() })?;
        let described = self.describe_detection(&analysis.image, largest)?;
        Ok(ExaminedFace {
            face: described.face,
            descriptor: described.descriptor,
            quality: Quality::measure(&analysis.image, largest),
            faces: analysis.detections.len(),
            looked_closer,
        })
    }

    /// [`Self::examine_blocking`] off the async threads.
    pub async fn examine(&self, frame: &Frame, what: &str) -> Result<ExaminedFace, EngineError> {
        let (engine, frame, what) = (self.clone(), frame.clone(), what.to_owned());
        tokio::task::spawn_blocking(move || engine.examine_blocking(&frame, &what))
            .await
            .map_err(|e| EngineError::Unavailable(format!("face analysis failed: {e}")))?
    }

    /// Like [`Self::analyse_faces_blocking`], looking closer for small faces when the whole
    /// picture shows none.
    pub fn analyse_faces_closely_blocking(
        &self,
        frame: &Frame,
        what: &str,
        limit: usize,
    ) -> Result<FacesInPicture, EngineError> {
        let (analysis, _) = self.analyse_closely(frame, what)?;
        self.faces_in(&analysis, limit)
    }

    /// Finds every face, largest first; blocking (run it off the async threads).
    pub fn detect_blocking(&self, frame: &Frame, what: &str) -> Result<Vec<DetectedFace>, EngineError> {
        let analysis = self.analyse(frame, what)?;
        let faces = analysis.detections.iter().map(to_detected).collect();
        self.remember(analysis);
        Ok(faces)
    }

    /// The largest face, or none; blocking. The analysis is remembered for the
    /// description that follows (a tap's burst searches with the frame it detected on).
    pub fn detect_largest_blocking(&self, frame: &Frame, what: &str) -> Result<Option<DetectedFace>, EngineError> {
        let analysis = self.analyse_largest(frame, what)?;
        let face = analysis.detections.first().map(to_detected);
        self.remember(analysis);
        Ok(face)
    }

    /// Finds faces in a frame of a burst whose previous frame showed `previous`: first only in the
    /// region around it, on a small canvas, and the largest in the whole frame when none is there.
    /// Faces elsewhere in the frame are not looked for while one is near; blocking.
    pub fn detect_following_blocking(
        &self,
        frame: &Frame,
        previous: &DetectedFace,
        what: &str,
    ) -> Result<Vec<DetectedFace>, EngineError> {
        let image = decode_rgb(frame, what)?;
        let around = (previous.x as f32, previous.y as f32, previous.width as f32, previous.height as f32);
        let mut found = self.run_detector(|detector| detector.detect_in(&image, around))?;
        if found.is_empty() {
            found = self.largest_in(&image)?;
        }
        let faces = found.iter().map(to_detected).collect();
        self.remember(Analysis { frame: frame.clone(), image: Arc::new(image), detections: found.into() });
        Ok(faces)
    }

    fn remember(&self, analysis: Analysis) {
        if u64::from(analysis.image.width()) * u64::from(analysis.image.height()) <= MAX_REMEMBERED_PIXELS {
            *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(analysis);
        }
    }

    /// Measures the largest face for enrolment; blocking. The analysis stays remembered, for the
    /// description that follows.
    pub fn enrolment_quality_blocking(&self, frame: &Frame, what: &str) -> Result<Quality, EngineError> {
        let remembered = {
            let last = self.0.last.lock().unwrap_or_else(|p| p.into_inner());
            last.as_ref().filter(|a| a.frame.is_same(frame)).cloned()
        };
        let analysis = match remembered {
            Some(analysis) => analysis,
            None => {
                let analysis = self.analyse(frame, what)?;
                self.remember(analysis.clone());
                analysis
            }
        };
        let largest = analysis.detections.first().ok_or_else(|| EngineError::NoFace { what: what.to_owned() })?;
        Ok(Quality::measure(&analysis.image, largest))
    }

    /// Describes the largest face, or `None` without a face; blocking.
    pub fn describe_blocking(&self, frame: &Frame, what: &str) -> Result<Option<DescribedFace>, EngineError> {
        let remembered = {
            let mut last = self.0.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_ref().is_some_and(|a| a.frame.is_same(frame)) { last.take() } else { None }
        };
        let Analysis { image, detections, .. } = match remembered {
            Some(analysis) => analysis,
            None => self.analyse(frame, what)?,
        };
        detections.first().map(|largest| self.describe_detection(&image, largest)).transpose()
    }

    /// Describes the largest face as a door's burst finds it in a frame ([`Self::detect_largest_blocking`]
    /// followed by [`Self::describe_blocking`]), or `None` without a face; blocking. Remembers
    /// nothing, so that several threads can share the engine.
    pub fn describe_as_the_door_blocking(
        &self,
        frame: &Frame,
        what: &str,
    ) -> Result<Option<DescribedFace>, EngineError> {
        let Analysis { image, detections, .. } = self.analyse_largest(frame, what)?;
        detections.first().map(|largest| self.describe_detection(&image, largest)).transpose()
    }

    fn describe_detection(&self, image: &RgbImage, detection: &Detection) -> Result<DescribedFace, EngineError> {
        let chip = align::chip(image, &detection.landmarks, &self.embedder().template);
        // On one core: the embedders' matrix products are too small to gain from more (measured:
        // MobileFaceNet took 18 ms on two cores against 14 on one).
        let descriptor = self.0.embedder.embed(&chip).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(DescribedFace { face: to_detected(detection), descriptor })
    }

    /// Finds every face and describes the `limit` largest; blocking. For services that report
    /// every face of a picture (the Rekognition-compatible API).
    pub fn analyse_faces_blocking(
        &self,
        frame: &Frame,
        what: &str,
        limit: usize,
    ) -> Result<FacesInPicture, EngineError> {
        let analysis = self.analyse(frame, what)?;
        self.faces_in(&analysis, limit)
    }

    fn faces_in(&self, analysis: &Analysis, limit: usize) -> Result<FacesInPicture, EngineError> {
        let split = limit.min(analysis.detections.len());
        let (to_describe, others) = analysis.detections.split_at(split);
        let described = to_describe
            .iter()
            .map(|detection| self.describe_detection(&analysis.image, detection))
            .collect::<Result<_, _>>()?;
        Ok(FacesInPicture {
            width: analysis.image.width(),
            height: analysis.image.height(),
            described,
            others: others.iter().map(to_detected).collect(),
        })
    }

    /// Describes the largest face, or `None` without a face, off the async threads.
    pub async fn describe(&self, frame: &Frame, what: &str) -> Result<Option<DescribedFace>, EngineError> {
        let (engine, frame, what) = (self.clone(), frame.clone(), what.to_owned());
        tokio::task::spawn_blocking(move || engine.describe_blocking(&frame, &what))
            .await
            .map_err(|e| EngineError::Unavailable(format!("face analysis failed: {e}")))?
    }

    async fn describe_required(&self, frame: &Frame, what: &str) -> Result<DescribedFace, EngineError> {
        self.describe(frame, what).await?.ok_or_else(|| EngineError::NoFace { what: what.to_owned() })
    }

    /// The descriptor of the largest face in `picture` (reindexing an enrolment photo).
    pub async fn descriptor(&self, picture: &Frame) -> Result<Descriptor, EngineError> {
        Ok(self.describe_required(picture, "the enrolment photo").await?.descriptor)
    }
}

/// The enrolled person most similar to `descriptor` (made by `kind`), with the similarity.
pub fn best_match(kind: &Kind, descriptor: &[f32], gallery: &Gallery) -> Option<(PersonId, f32)> {
    gallery.nearest(descriptor).map(|(face, cosine)| (face.person, kind.similarity(cosine)))
}

/// Whose of `candidates` (descriptors made by `kind`, each with whose it is) is most similar to
/// `descriptor`, with the similarity: how enrolled people and known visitors are both searched.
pub fn closest<'a, Id>(
    kind: &Kind,
    descriptor: &[f32],
    candidates: impl IntoIterator<Item = (Id, &'a [f32])>,
) -> Option<(Id, f32)> {
    candidates
        .into_iter()
        .map(|(id, candidate)| (id, similarity(kind, descriptor, candidate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[async_trait]
impl FaceEngine for LocalEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn template_kind(&self) -> &str {
        &self.0.template_kind
    }

    fn on_device(&self) -> Option<LocalEngine> {
        Some(self.clone())
    }

    async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError> {
        let (engine, frame) = (self.clone(), image.clone());
        tokio::task::spawn_blocking(move || engine.detect_blocking(&frame, "the picture"))
            .await
            .map_err(|e| EngineError::Unavailable(format!("face detection failed: {e}")))?
    }

    async fn detect_largest(&self, image: &Frame) -> Result<Option<DetectedFace>, EngineError> {
        let (engine, frame) = (self.clone(), image.clone());
        tokio::task::spawn_blocking(move || engine.detect_largest_blocking(&frame, "the picture"))
            .await
            .map_err(|e| EngineError::Unavailable(format!("face detection failed: {e}")))?
    }

    async fn detect_following(&self, image: &Frame, previous: &DetectedFace) -> Result<Vec<DetectedFace>, EngineError> {
        let (engine, frame, previous) = (self.clone(), image.clone(), *previous);
        tokio::task::spawn_blocking(move || engine.detect_following_blocking(&frame, &previous, "the picture"))
            .await
            .map_err(|e| EngineError::Unavailable(format!("face detection failed: {e}")))?
    }

    async fn check_enrolment(&self, image: &Frame) -> Result<(), EngineError> {
        let (engine, frame) = (self.clone(), image.clone());
        let quality = tokio::task::spawn_blocking(move || engine.enrolment_quality_blocking(&frame, "the picture"))
            .await
            .map_err(|e| EngineError::Unavailable(format!("face analysis failed: {e}")))??;
        tracing::debug!(?quality, "enrolment picture measured");
        Ok(quality.check()?)
    }

    async fn enroll(&self, _person: PersonId, image: &Frame) -> Result<FaceTemplate, EngineError> {
        let described = self.describe_required(image, "the picture").await?;
        Ok(FaceTemplate::Descriptor(described.descriptor))
    }

    async fn forget(&self, _template: &FaceTemplate) -> Result<(), EngineError> {
        // Descriptors live only in our database, which the caller updates.
        Ok(())
    }

    async fn search(&self, image: &Frame, gallery: &Gallery) -> Result<SearchOutcome, EngineError> {
        let Some(described) = self.describe(image, "the frame").await? else {
            return Ok(SearchOutcome::NoFace);
        };
        let face_confidence = described.face.confidence;
        Ok(match best_match(self.embedder(), &described.descriptor, gallery) {
            Some((person, similarity)) => SearchOutcome::Candidate { person, similarity, face_confidence },
            None => SearchOutcome::NoCandidate { face_confidence },
        })
    }

    async fn compare(&self, first: &Frame, second: &Frame) -> Result<Comparison, EngineError> {
        let a = self.describe_required(first, "the first picture").await?;
        let b = self.describe_required(second, "the second picture").await?;
        Ok(Comparison { similarity: self.similarity(&a.descriptor, &b.descriptor), first: a.face, second: b.face })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StoredFace;
    use crate::models::{samples_dir, test_models_dir};

    #[tokio::test]
    async fn searching_the_frame_a_burst_just_detected_gives_the_cold_result() {
        let engine =
            LocalEngine::load(&test_models_dir(), embedder::DLIB.name).expect("models: run `facereko models fetch`");
        let samples = samples_dir(test_models_dir());
        let enrolled = Frame::read(&samples.join("obama.jpg")).unwrap();
        let template = engine.enroll(PersonId(1), &enrolled).await.unwrap();
        let gallery: Gallery = vec![StoredFace { id: 1, person: PersonId(1), template }].into();

        let frame = Frame::read(&samples.join("obama2.jpg")).unwrap();
        let cold = engine.search(&Frame::from_bytes(frame.bytes().to_vec(), "copy").unwrap(), &gallery).await.unwrap();
        assert_eq!(engine.detect(&frame).await.unwrap().len(), 1);
        let warm = engine.search(&frame, &gallery).await.unwrap();
        assert_eq!(warm, cold);
        assert!(matches!(warm, SearchOutcome::Candidate { person: PersonId(1), .. }), "{warm:?}");
    }
}
