//! Capturing after a tap: a short burst of frames, keeping the one with the best face.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::checks::Checks;
use crate::door::Capture;
use crate::engine::{DetectedFace, FaceEngine};
use crate::frame::Frame;
use crate::hw::{BurstLimits, Camera};
use crate::liveness::{Burst, BurstFrame, Gathering};

/// `[capture]`: the burst of frames taken after a tap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureConfig {
    pub frames: u32,
    #[serde(with = "humantime_serde")]
    pub time_limit: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self { frames: 5, time_limit: Duration::from_secs(3) }
    }
}

impl CaptureConfig {
    pub fn limits(&self) -> BurstLimits {
        BurstLimits { max_frames: self.frames, time_limit: self.time_limit }
    }

    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            (1..=30).contains(&self.frames),
            "capture.frames",
            format!("{} is out of range; use 1 to 30 frames", self.frames),
        );
        checks.duration("capture.time_limit", self.time_limit, Duration::from_millis(100), Duration::from_secs(10));
    }
}

/// Detector confidence (0–100) at which a face is good enough to stop looking. CenterFace gives
/// clear frontal faces 80–95.
const CONFIDENT_FACE: f32 = 80.0;

/// Higher is better: confident faces first, then larger ones (closer to the camera).
fn score(face: &DetectedFace) -> (u32, u64) {
    ((face.confidence * 100.0) as u32, face.area())
}

/// Takes frames until one has a confident face, `max_frames` were seen or the time limit passes.
/// With no face at all, the last readable frame is returned so the log still shows who stood
/// there. A frame the engine cannot read is skipped; a burst with no readable frame is an error
/// carrying the last reason. When the first frame the engine reads shows no face and more
/// frames may follow, `no_face_yet` is called (the door asks the person to look at the camera).
pub async fn burst(
    camera: &dyn Camera,
    engine: &dyn FaceEngine,
    limits: BurstLimits,
    no_face_yet: impl FnOnce(),
) -> Result<Capture, String> {
    Ok(burst_for_liveness(camera, engine, limits, Gathering::BEST_FACE, no_face_yet, |_| {}).await?.best)
}

/// What a burst took: the best frame, which the door matches, and every frame with a face, which
/// the liveness checks compare.
#[derive(Debug)]
pub struct Taken {
    pub best: Capture,
    pub burst: Burst,
}

/// [`burst`] that goes on after the first confident face until `gathering.faces` frames showed a
/// face (within the same frame and time limits), keeping them all, `gathering.pace` apart. When
/// it goes on, `face_found` is given that first confident face at once, so that matching it need
/// not wait for the rest of the burst.
pub async fn burst_for_liveness(
    camera: &dyn Camera,
    engine: &dyn FaceEngine,
    limits: BurstLimits,
    gathering: Gathering,
    no_face_yet: impl FnOnce(),
    face_found: impl FnOnce(&Capture),
) -> Result<Taken, String> {
    let faces_wanted = gathering.faces;
    let deadline = Instant::now() + limits.time_limit;
    let mut best: Option<Capture> = None;
    let mut with_faces = Burst::default();
    let mut last_error = None;
    let mut no_face_yet = Some(no_face_yet);
    let mut face_found = Some(face_found);
    // The largest face of the last frame the engine read.
    let mut previous: Option<DetectedFace> = None;
    for taken in 1..=limits.max_frames {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        if !with_faces.frames.is_empty() && !gathering.pace.is_zero() {
            tokio::time::sleep(gathering.pace.min(remaining())).await;
        }
        let frame = match tokio::time::timeout(remaining(), camera.frame()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Ok(Ok(frame)) => frame,
        };
        // Once a confident face is in, the further frames for the checks follow its landmarks
        // instead of detecting it again; where they lose it, the engine looks as below.
        let confident = best.as_ref().and_then(|b| b.face).is_some_and(|f| f.confidence >= CONFIDENT_FACE);
        if confident && let Some(last) = with_faces.frames.pop() {
            let (last, followed) = follow_in_background(last, frame.clone()).await;
            with_faces.frames.push(last);
            if let Some(followed) = followed {
                previous = Some(followed.face);
                with_faces.frames.push(followed);
                if with_faces.frames.len() >= faces_wanted as usize {
                    break;
                }
                continue;
            }
        }
        // After a frame with a face, the engine may look only around it.
        // The door matches the largest face, which engines list first; judge the frame by it.
        let detection = async {
            match &previous {
                Some(previous) => Ok(engine.detect_following(&frame, previous).await?.into_iter().next()),
                None => engine.detect_largest(&frame).await,
            }
        };
        let face = match tokio::time::timeout(remaining(), detection).await {
            Ok(Ok(face)) => face,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "skipping a frame the engine cannot read");
                last_error = Some(e.to_string());
                continue;
            }
            Err(_) => break,
        };
        previous = face;
        // Only the first frame read counts: a face lost later is not worth a word.
        if let Some(prompt) = no_face_yet.take()
            && face.is_none()
            && taken < limits.max_frames
        {
            prompt();
        }
        if let Some(face) = face
            && faces_wanted > 1
        {
            with_faces.frames.push(BurstFrame::new(frame.clone(), face));
        }
        // On a tie the newer frame wins: it is the one the engine analysed last.
        let better = match (&face, best.as_ref().and_then(|b| b.face.as_ref())) {
            (Some(new), Some(old)) => score(new) >= score(old),
            (Some(_), None) => true,
            // Without any face yet, the latest frame is the best evidence of who stood there.
            (None, kept) => kept.is_none(),
        };
        if better {
            best = Some(Capture { frame, face, liveness: None });
        }
        let confident = best.as_ref().and_then(|b| b.face).is_some_and(|f| f.confidence >= CONFIDENT_FACE);
        if confident && (faces_wanted <= 1 || with_faces.frames.len() >= faces_wanted as usize) {
            break;
        }
        if confident && let (Some(found), Some(best)) = (face_found.take(), &best) {
            found(best);
        }
    }
    let best =
        best.ok_or_else(|| last_error.unwrap_or_else(|| "the camera gave no frame within the time limit".into()))?;
    Ok(Taken { best, burst: with_faces })
}

/// [`BurstFrame::follow_into`] off the async threads; gives `last` back with the result.
async fn follow_in_background(last: BurstFrame, frame: Frame) -> (BurstFrame, Option<BurstFrame>) {
    let followed = tokio::task::spawn_blocking(move || {
        let followed = last.follow_into(frame);
        (last, followed)
    })
    .await;
    // A panic here ends the capture task, and the driver denies the attempt as a failed capture.
    followed.expect("following a face panicked")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::access::PersonId;
    use crate::engine::{Comparison, EngineError, FaceTemplate, Gallery, SearchOutcome};
    use crate::frame::Frame;
    use crate::hw::HwError;

    /// What one frame shows: a face of this confidence and width, no face, or unreadable bytes.
    #[derive(Clone, Copy)]
    enum Shot {
        Face(u8, u8),
        Empty,
        Corrupt,
        CameraFails,
        /// The camera takes this long to answer.
        Slow(u64),
    }

    /// Hands out the scripted shots in order, encoding each in the frame bytes.
    struct ScriptedCamera(Mutex<Vec<Shot>>);

    #[async_trait]
    impl Camera for ScriptedCamera {
        async fn frame(&self) -> Result<Frame, HwError> {
            let shot = {
                let mut shots = self.0.lock().unwrap();
                if shots.is_empty() { Shot::Empty } else { shots.remove(0) }
            };
            let bytes = match shot {
                Shot::Face(confidence, width) => vec![0xFF, 0xD8, 0xFF, 1, confidence, width],
                Shot::Empty => vec![0xFF, 0xD8, 0xFF, 0],
                Shot::Corrupt => vec![0xFF, 0xD8, 0xFF, 2],
                Shot::CameraFails => return Err(HwError::Io { role: "camera", detail: "lens cap".into() }),
                Shot::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    vec![0xFF, 0xD8, 0xFF, 0]
                }
            };
            Ok(Frame::from_bytes(bytes, "shot").unwrap())
        }
    }

    /// Reads the face back out of the frame bytes; notes the width of each previous face a frame
    /// was to be looked at around.
    #[derive(Default)]
    struct ByteEngine {
        following: Mutex<Vec<u32>>,
    }

    #[async_trait]
    impl FaceEngine for ByteEngine {
        fn name(&self) -> &'static str {
            "bytes"
        }
        async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError> {
            match image.bytes()[3..] {
                [1, confidence, width] => Ok(vec![DetectedFace {
                    x: 0,
                    y: 0,
                    width: u32::from(width),
                    height: u32::from(width),
                    confidence: f32::from(confidence),
                    landmarks: None,
                }]),
                [2] => Err(EngineError::BadImage { what: "the frame".into(), detail: "truncated".into() }),
                _ => Ok(Vec::new()),
            }
        }
        async fn detect_following(
            &self,
            image: &Frame,
            previous: &DetectedFace,
        ) -> Result<Vec<DetectedFace>, EngineError> {
            self.following.lock().unwrap().push(previous.width);
            self.detect(image).await
        }
        async fn enroll(&self, _: PersonId, _: &Frame) -> Result<FaceTemplate, EngineError> {
            unreachable!("capture never enrols")
        }
        async fn forget(&self, _: &FaceTemplate) -> Result<(), EngineError> {
            unreachable!("capture never forgets")
        }
        async fn search(&self, _: &Frame, _: &Gallery) -> Result<SearchOutcome, EngineError> {
            unreachable!("capture never searches")
        }
        async fn compare(&self, _: &Frame, _: &Frame) -> Result<Comparison, EngineError> {
            unreachable!("capture never compares")
        }
    }

    async fn run(shots: &[Shot], max_frames: u32) -> (Result<Capture, String>, usize) {
        let camera = ScriptedCamera(Mutex::new(shots.to_vec()));
        let limits = BurstLimits { max_frames, time_limit: Duration::from_secs(3) };
        let result = burst(&camera, &ByteEngine::default(), limits, || {}).await;
        let left = camera.0.lock().unwrap().len();
        (result, shots.len() - left)
    }

    /// How often the burst asked for a face.
    async fn prompts(shots: &[Shot], max_frames: u32) -> usize {
        let camera = ScriptedCamera(Mutex::new(shots.to_vec()));
        let limits = BurstLimits { max_frames, time_limit: Duration::from_secs(3) };
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let _ = burst(&camera, &ByteEngine::default(), limits, || {
            asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .await;
        asked.into_inner()
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_first_frame_without_a_face_asks_for_one() {
        assert_eq!(prompts(&[Shot::Empty, Shot::Face(95, 50)], 5).await, 1);
        assert_eq!(prompts(&[Shot::Corrupt, Shot::Empty, Shot::Face(95, 50)], 5).await, 1, "the first frame read");
        assert_eq!(prompts(&[Shot::Face(60, 50), Shot::Empty, Shot::Face(95, 50)], 5).await, 0);
        assert_eq!(prompts(&[Shot::Empty, Shot::Empty, Shot::Empty], 5).await, 1, "once a burst");
        assert_eq!(prompts(&[Shot::Empty], 1).await, 0, "no frame follows to look into");
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_first_confident_face() {
        let (result, taken) = run(&[Shot::Empty, Shot::Face(95, 50), Shot::Face(99, 90)], 5).await;
        assert_eq!(result.unwrap().face.unwrap().confidence, 95.0);
        assert_eq!(taken, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_frame_with_a_face_the_next_is_looked_at_around_it() {
        let shots = [Shot::Empty, Shot::Face(60, 50), Shot::Face(70, 40), Shot::Empty, Shot::Face(95, 30)];
        let camera = ScriptedCamera(Mutex::new(shots.to_vec()));
        let engine = ByteEngine::default();
        let limits = BurstLimits { max_frames: 5, time_limit: Duration::from_secs(3) };
        assert_eq!(burst(&camera, &engine, limits, || {}).await.unwrap().face.unwrap().confidence, 95.0);
        assert_eq!(*engine.following.lock().unwrap(), [50, 40], "around the face just before; after none, everywhere");
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_the_best_face_of_the_burst() {
        let shots = [Shot::Face(60, 50), Shot::Face(75, 40), Shot::Empty, Shot::Face(75, 70), Shot::Face(70, 99)];
        let (result, taken) = run(&shots, 5).await;
        let face = result.unwrap().face.unwrap();
        assert_eq!((face.confidence, face.width), (75.0, 70), "most confident, then largest");
        assert_eq!(taken, 5, "looked at every frame allowed");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_face_the_last_readable_frame_is_kept() {
        let (result, _) = run(&[Shot::Empty, Shot::Corrupt, Shot::Empty], 3).await;
        let capture = result.unwrap();
        assert!(capture.face.is_none());
        assert_eq!(capture.frame.bytes(), [0xFF, 0xD8, 0xFF, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_or_missing_frames_are_an_error_with_the_reason() {
        let (result, _) = run(&[Shot::Corrupt, Shot::Corrupt], 2).await;
        assert!(result.unwrap_err().contains("truncated"));
        let (result, _) = run(&[Shot::CameraFails, Shot::CameraFails], 2).await;
        assert!(result.unwrap_err().contains("lens cap"));
        let (result, _) = run(&[Shot::Corrupt, Shot::Face(95, 50)], 2).await;
        assert!(result.unwrap().face.is_some(), "one bad frame is skipped");
    }

    #[tokio::test(start_paused = true)]
    async fn for_liveness_the_burst_goes_on_until_enough_frames_show_a_face() {
        let camera = ScriptedCamera(Mutex::new(vec![
            Shot::Face(95, 50),
            Shot::Empty,
            Shot::Face(90, 60),
            Shot::Face(99, 40),
            Shot::Face(97, 70),
        ]));
        let limits = BurstLimits { max_frames: 5, time_limit: Duration::from_secs(3) };
        let three = Gathering { faces: 3, pace: Duration::ZERO };
        let mut found = Vec::new();
        let taken = burst_for_liveness(
            &camera,
            &ByteEngine::default(),
            limits,
            three,
            || {},
            |capture| found.push(capture.face.unwrap().confidence),
        )
        .await
        .unwrap();
        assert_eq!(found, [95.0], "the first confident face is handed on at once, to be matched");
        assert_eq!(taken.best.face.unwrap().confidence, 99.0, "the best face is still the one kept");
        let widths: Vec<u32> = taken.burst.frames.iter().map(|f| f.face.width).collect();
        assert_eq!(widths, [50, 60, 40], "every frame with a face, in order, until three");
        assert_eq!(camera.0.lock().unwrap().len(), 1, "stopped once three frames showed a face");

        let camera = ScriptedCamera(Mutex::new(vec![Shot::Face(95, 50), Shot::Empty]));
        let taken = burst_for_liveness(&camera, &ByteEngine::default(), limits, three, || {}, |_| {}).await.unwrap();
        assert_eq!(taken.burst.frames.len(), 1, "the frame limit still ends the burst");
        assert!(taken.best.face.is_some());

        // Asked for a head turn, the frames are kept a pace apart, so the turn can happen.
        let started = Instant::now();
        let paced = Gathering { faces: 3, pace: Duration::from_millis(250) };
        let camera = ScriptedCamera(Mutex::new(vec![Shot::Face(95, 50); 3]));
        let taken = burst_for_liveness(&camera, &ByteEngine::default(), limits, paced, || {}, |_| {}).await.unwrap();
        assert_eq!(taken.burst.frames.len(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(500), "two paces between three frames");
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_limit_ends_the_burst() {
        let started = Instant::now();
        let (result, taken) =
            run(&[Shot::Face(50, 50), Shot::Slow(2500), Shot::Slow(2500), Shot::Face(99, 99)], 10).await;
        assert_eq!(result.unwrap().face.unwrap().confidence, 50.0, "the slow frames ran out the clock");
        assert_eq!(taken, 3);
        assert!(started.elapsed() <= Duration::from_secs(3));
    }
}
