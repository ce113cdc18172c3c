//! The glare check: a phone's glass and a glossy print mirror the lights in front of them, and the
//! reflection lies across the face as one washed-out patch at the sensor's ceiling. Skin shines
//! too, but in small spots (the tip of the nose, the forehead, the eyes' catch-lights), so the
//! check measures the largest connected patch of clipped pixels inside the face box, as a share
//! of the box. Grey level only, so grey IR frames too (where a bright lamp clips skin sooner:
//! measure the threshold on the door's own camera).

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{Burst, Check, Finding, LivenessConfig, LivenessError, Verdict, luma};
use crate::checks::Checks;
use crate::engine::DetectedFace;

pub const NAME: &str = "glare";

/// The grey level from which a pixel counts as clipped.
const CLIPPED: f32 = 248.0;

/// `[liveness.glare]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GlareConfig {
    /// The share of the face box (0–1) that one clipped patch must cover for the face to be taken
    /// for a picture (README, "The moiré and glare checks").
    pub share: f32,
}

impl Default for GlareConfig {
    fn default() -> Self {
        Self { share: 0.09 }
    }
}

impl GlareConfig {
    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            self.share > 0.0 && self.share < 1.0,
            "liveness.glare.share",
            format!("{} is out of range; use a share of the face above 0 and below 1 (e.g. 0.09)", self.share),
        );
    }
}

pub fn build(config: &LivenessConfig, _models_dir: &Path) -> Result<Box<dyn Check>, LivenessError> {
    Ok(Box::new(Glare(config.glare.clone())))
}

pub struct Glare(pub GlareConfig);

/// The largest 4-connected patch of clipped pixels inside `face`, as a share of its box.
pub fn largest_clipped_patch(picture: &RgbImage, face: &DetectedFace) -> f32 {
    let right = (face.x + face.width).min(picture.width());
    let bottom = (face.y + face.height).min(picture.height());
    let (Some(width), Some(height)) = (right.checked_sub(face.x), bottom.checked_sub(face.y)) else {
        return 0.0;
    };
    let (width, height) = (width as usize, height as usize);
    if width == 0 || height == 0 {
        return 0.0;
    }
    let mut clipped: Vec<bool> = (0..width * height)
        .map(|i| luma(picture.get_pixel(face.x + (i % width) as u32, face.y + (i / width) as u32).0) >= CLIPPED)
        .collect();
    let mut largest = 0;
    let mut stack = Vec::new();
    for start in 0..clipped.len() {
        if !clipped[start] {
            continue;
        }
        // Flood fill, clearing what it visits.
        clipped[start] = false;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % width, i / width);
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < width).then(|| i + 1),
                (y > 0).then(|| i - width),
                (y + 1 < height).then(|| i + width),
            ];
            for n in neighbours.into_iter().flatten() {
                if clipped[n] {
                    clipped[n] = false;
                    stack.push(n);
                }
            }
        }
        largest = largest.max(size);
    }
    largest as f32 / (face.width as f32 * face.height as f32)
}

impl Check for Glare {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The score is the largest patch's share of the face box, the highest over the burst.
    fn judge(&self, burst: &Burst) -> Finding {
        let shares: Vec<f32> = burst
            .frames
            .iter()
            .filter_map(|frame| Some(largest_clipped_patch(frame.pixels().ok()?.as_ref(), &frame.face)))
            .collect();
        let Some(share) = shares.iter().copied().reduce(f32::max) else {
            return Finding { check: NAME, verdict: Verdict::Undecided, score: 0.0, detail: "no frame to read".into() };
        };
        let verdict = if share >= self.0.share { Verdict::Spoof } else { Verdict::Undecided };
        let detail =
            format!("largest clipped patch {:.1} % of the face, threshold {} %", share * 100.0, self.0.share * 100.0);
        Finding { check: NAME, verdict, score: share, detail }
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    fn face() -> DetectedFace {
        DetectedFace { x: 50, y: 50, width: 100, height: 100, confidence: 99.0, landmarks: None }
    }

    #[test]
    fn a_reflection_across_the_face_is_glare_and_highlights_on_skin_are_not() {
        let mut picture = RgbImage::from_pixel(200, 200, Rgb([150, 120, 100]));
        // Catch-lights in both eyes and a shine on the nose: small, apart.
        for (cx, cy, r) in [(80, 85, 2), (120, 85, 2), (100, 110, 4)] {
            for y in cy - r..=cy + r {
                for x in cx - r..=cx + r {
                    picture.put_pixel(x, y, Rgb([255, 255, 255]));
                }
            }
        }
        let skin = largest_clipped_patch(&picture, &face());
        assert!(skin < GlareConfig::default().share, "highlights: {skin}");
        // A lamp mirrored in the glass: a slanted band across the face, partly outside the box.
        for y in 0..200u32 {
            for x in 0..200u32 {
                if (x + y).abs_diff(190) < 14 {
                    picture.put_pixel(x, y, Rgb([252, 253, 255]));
                }
            }
        }
        let glass = largest_clipped_patch(&picture, &face());
        assert!(glass >= GlareConfig::default().share, "reflection: {glass}");
    }

    #[test]
    fn a_face_box_past_the_picture_edge_is_read_inside_it() {
        let picture = RgbImage::from_pixel(100, 100, Rgb([255, 255, 255]));
        let past = DetectedFace { x: 50, y: 50, width: 100, height: 100, confidence: 99.0, landmarks: None };
        assert!((largest_clipped_patch(&picture, &past) - 0.25).abs() < 1e-6);
        let outside = DetectedFace { x: 150, ..past };
        assert_eq!(largest_clipped_patch(&picture, &outside), 0.0);
    }
}
