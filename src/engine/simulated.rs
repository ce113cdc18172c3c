//! The `simulated` engine: recognises the same picture again, for running the door without models.
//!
//! It treats any picture with visible structure as one face filling the frame, and a flat picture
//! (a blank wall, a covered lens) as no face. Its descriptor is a normalised 16×16 grey thumbnail,
//! so a re-encoded copy of an enrolled picture matches and a different photo of the same person
//! does not. It exists so that the simulated door, the CLI and the tests exercise the real
//! pipeline end to end; it must never guard a real door.

use async_trait::async_trait;
use image::imageops::FilterType;

use super::{Comparison, DetectedFace, EngineError, FaceEngine, FaceTemplate, Gallery, SearchOutcome};
use crate::access::PersonId;
use crate::frame::Frame;

pub const NAME: &str = "simulated";

const THUMB_SIDE: u32 = 16;
/// Below this standard deviation of grey levels a picture counts as blank (no face).
const BLANK_STDDEV: f32 = 6.0;
const FACE_CONFIDENCE: f32 = 99.0;

pub struct SimulatedEngine;

/// A decoded picture reduced to what this engine looks at.
struct Analysis {
    face: Option<DetectedFace>,
    descriptor: Vec<f32>,
}

fn analyse(frame: &Frame, what: &str) -> Result<Analysis, EngineError> {
    let decoded = image::DynamicImage::ImageRgb8(super::decode_rgb(frame, what)?);
    let (width, height) = (decoded.width(), decoded.height());
    let thumb = decoded.resize_exact(THUMB_SIDE, THUMB_SIDE, FilterType::Triangle).to_luma32f();
    let pixels: Vec<f32> = thumb.pixels().map(|p| p.0[0] * 255.0).collect();
    let mean = pixels.iter().sum::<f32>() / pixels.len() as f32;
    let centred: Vec<f32> = pixels.iter().map(|p| p - mean).collect();
    let norm = centred.iter().map(|v| v * v).sum::<f32>().sqrt();
    let stddev = norm / (pixels.len() as f32).sqrt();
    if stddev < BLANK_STDDEV {
        return Ok(Analysis { face: None, descriptor: Vec::new() });
    }
    let face = DetectedFace { x: 0, y: 0, width, height, confidence: FACE_CONFIDENCE, landmarks: None };
    Ok(Analysis { face: Some(face), descriptor: centred.iter().map(|v| v / norm).collect() })
}

/// Cosine similarity of unit vectors on Rekognition's 0–100 scale (opposites clamp to 0).
fn similarity(a: &[f32], b: &[f32]) -> f32 {
    let cosine: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    // A corrupt descriptor must never look like a perfect match.
    if cosine.is_finite() { cosine.clamp(0.0, 1.0) * 100.0 } else { 0.0 }
}

async fn analyse_off_thread(frame: &Frame, what: &str) -> Result<Analysis, EngineError> {
    let (frame, what) = (frame.clone(), what.to_owned());
    tokio::task::spawn_blocking(move || analyse(&frame, &what))
        .await
        .map_err(|e| EngineError::Unavailable(format!("analysis task failed: {e}")))?
}

#[async_trait]
impl FaceEngine for SimulatedEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError> {
        Ok(analyse_off_thread(image, "the picture").await?.face.into_iter().collect())
    }

    async fn enroll(&self, _person: PersonId, image: &Frame) -> Result<FaceTemplate, EngineError> {
        let analysis = analyse_off_thread(image, "the picture").await?;
        if analysis.face.is_none() {
            return Err(EngineError::NoFace { what: "the picture".into() });
        }
        Ok(FaceTemplate::Descriptor(analysis.descriptor))
    }

    async fn forget(&self, _template: &FaceTemplate) -> Result<(), EngineError> {
        Ok(())
    }

    async fn search(&self, image: &Frame, gallery: &Gallery) -> Result<SearchOutcome, EngineError> {
        let analysis = analyse_off_thread(image, "the frame").await?;
        let Some(face) = analysis.face else {
            return Ok(SearchOutcome::NoFace);
        };
        let best = gallery
            .iter()
            .filter_map(|stored| match &stored.template {
                FaceTemplate::Descriptor(d) => Some((stored.person, similarity(&analysis.descriptor, d))),
                FaceTemplate::Remote(_) => None,
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        Ok(match best {
            Some((person, similarity)) if similarity > 0.0 => {
                SearchOutcome::Candidate { person, similarity, face_confidence: face.confidence }
            }
            _ => SearchOutcome::NoCandidate { face_confidence: face.confidence },
        })
    }

    async fn compare(&self, first: &Frame, second: &Frame) -> Result<Comparison, EngineError> {
        let a = analyse_off_thread(first, "the first picture").await?;
        let b = analyse_off_thread(second, "the second picture").await?;
        let (Some(first_face), Some(second_face)) = (a.face, b.face) else {
            let what = if a.face.is_none() { "the first picture" } else { "the second picture" };
            return Err(EngineError::NoFace { what: what.into() });
        };
        Ok(Comparison { similarity: similarity(&a.descriptor, &b.descriptor), first: first_face, second: second_face })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StoredFace;
    use image::{ImageFormat, Rgb, RgbImage};
    use std::io::Cursor;

    fn encode(img: &RgbImage, format: ImageFormat) -> Frame {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        Frame::from_bytes(out.into_inner(), "test").unwrap()
    }

    fn pattern(seed: u32) -> RgbImage {
        RgbImage::from_fn(64, 48, |x, y| {
            let v = ((x * seed + y * (seed + 3)) % 97) as u8 * 2;
            Rgb([v, v / 2, 255 - v])
        })
    }

    #[tokio::test]
    async fn recognises_a_reencoded_copy_and_not_another_picture() {
        let engine = SimulatedEngine;
        let alice = PersonId(1);
        let template = engine.enroll(alice, &encode(&pattern(5), ImageFormat::Png)).await.unwrap();
        let gallery: Gallery = vec![StoredFace { id: 1, person: alice, template }].into();

        let same = engine.search(&encode(&pattern(5), ImageFormat::Jpeg), &gallery).await.unwrap();
        let SearchOutcome::Candidate { person, similarity, .. } = same else { panic!("{same:?}") };
        assert_eq!(person, alice);
        assert!(similarity > 95.0, "{similarity}");

        let other = engine.search(&encode(&pattern(11), ImageFormat::Png), &gallery).await.unwrap();
        match other {
            SearchOutcome::Candidate { similarity, .. } => assert!(similarity < 60.0, "{similarity}"),
            SearchOutcome::NoCandidate { .. } => {}
            SearchOutcome::NoFace => panic!("patterned picture has a face"),
        }
    }

    #[tokio::test]
    async fn blank_picture_has_no_face_and_garbage_is_an_error() {
        let engine = SimulatedEngine;
        let blank = encode(&RgbImage::from_pixel(32, 32, Rgb([120, 120, 120])), ImageFormat::Png);
        assert!(engine.detect(&blank).await.unwrap().is_empty());
        assert!(matches!(engine.enroll(PersonId(1), &blank).await, Err(EngineError::NoFace { .. })));
        let empty: Gallery = Vec::new().into();
        assert_eq!(engine.search(&blank, &empty).await.unwrap(), SearchOutcome::NoFace);

        let truncated = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16], "x").unwrap();
        assert!(matches!(engine.detect(&truncated).await, Err(EngineError::BadImage { .. })));
    }
}
