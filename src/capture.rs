//! Capturing after a tap: a short burst of frames, keeping the one with the best face.

use tokio::time::Instant;

use crate::door::Capture;
use crate::engine::{DetectedFace, FaceEngine};
use crate::hw::{BurstLimits, Camera};

/// Detector confidence (0–100) at which a face is good enough to stop looking.
const CONFIDENT_FACE: f32 = 90.0;

/// Higher is better: confident faces first, then larger ones (closer to the camera).
fn score(face: &DetectedFace) -> (u32, u64) {
    ((face.confidence * 100.0) as u32, face.area())
}

/// Takes frames until one has a confident face, `max_frames` were seen or the time limit passes.
/// With no face at all, the last frame is returned so the log still shows who stood there.
/// Detection errors count as "no face in this frame"; only a camera that gives no frame is an error.
pub async fn burst(camera: &dyn Camera, engine: &dyn FaceEngine, limits: BurstLimits) -> Result<Capture, String> {
    let deadline = Instant::now() + limits.time_limit;
    let mut best: Option<Capture> = None;
    let mut last_error = None;
    for _ in 0..limits.max_frames {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(remaining, camera.frame()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Ok(Ok(frame)) => frame,
        };
        let face = match tokio::time::timeout(remaining, engine.detect(&frame)).await {
            Ok(Ok(faces)) => faces.into_iter().max_by_key(score),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "face detection failed on a frame");
                None
            }
            Err(_) => break,
        };
        let better = match (&face, best.as_ref().and_then(|b| b.face.as_ref())) {
            (Some(_), None) => true,
            (Some(new), Some(old)) => score(new) > score(old),
            (None, _) => best.is_none() || best.as_ref().is_some_and(|b| b.face.is_none()),
        };
        if better {
            best = Some(Capture { frame, face });
        }
        if best.as_ref().and_then(|b| b.face).is_some_and(|f| f.confidence >= CONFIDENT_FACE) {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    best.ok_or_else(|| last_error.unwrap_or_else(|| "the camera gave no frame within the time limit".into()))
}
