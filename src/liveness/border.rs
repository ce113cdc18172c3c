//! The border check: a picture held up to the camera has an edge close around the face, straight
//! on every side: a phone's bezel, the paper's edge, the photo's own border. A head has hair,
//! ears, shoulders and whatever is behind it, rarely a straight edge hugging the face on three
//! sides. Works on the grey level alone, so grey IR frames too.
//!
//! On each side of the face box, rays run outward; along each the strong steps in grey level are
//! noted. A side has a straight edge when one line, nearly parallel to that side, passes through
//! a step of the same direction on most of its rays.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{Burst, Check, Finding, LivenessConfig, LivenessError, Verdict, luma};
use crate::checks::Checks;
use crate::engine::DetectedFace;

pub const NAME: &str = "border";

/// Rays per side.
const RAYS: usize = 9;
/// Rays that must agree on a line for a side to have a straight edge.
const RAYS_ON_LINE: usize = 7;
/// How far out the rays look, in face widths (heights for the top and bottom), and from where:
/// a photo's edge lies within about a face width of the face; the hairline is skipped.
const REACH: f32 = 1.3;
const SKIP: f32 = 0.12;
/// How close (pixels, plus this share of the face size) a step must be to the line to count.
const ON_LINE_PX: f32 = 2.5;
const ON_LINE_SHARE: f32 = 0.015;

/// `[liveness.border]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BorderConfig {
    /// Sides of the face (of four) with a straight edge at or above which the face is taken for
    /// a picture.
    pub sides: u32,
    /// The smallest step in grey level (0–255, over 4 pixels) that counts as an edge.
    pub contrast: f32,
}

impl Default for BorderConfig {
    fn default() -> Self {
        Self { sides: 3, contrast: 24.0 }
    }
}

impl BorderConfig {
    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            (1..=4).contains(&self.sides),
            "liveness.border.sides",
            format!("{} is out of range; use 1 to 4 sides of the face", self.sides),
        );
        checks.check(
            self.contrast > 0.0 && self.contrast < 255.0,
            "liveness.border.contrast",
            format!("{} is out of range; use a step in grey level above 0 and below 255 (e.g. 24)", self.contrast),
        );
    }
}

pub fn build(config: &LivenessConfig, _models_dir: &Path) -> Result<Box<dyn Check>, LivenessError> {
    Ok(Box::new(Border(config.border.clone())))
}

pub struct Border(pub BorderConfig);

/// One side of the face: where its rays start, which way they run, how far.
type Side = (Vec<(f32, f32)>, (f32, f32), f32);

/// The grey level of a picture, read with bilinear interpolation; `None` outside it.
struct Grey<'a>(&'a RgbImage);

impl Grey<'_> {
    fn at(&self, x: f32, y: f32) -> Option<f32> {
        let (w, h) = self.0.dimensions();
        if x < 0.0 || y < 0.0 || x >= (w - 1) as f32 || y >= (h - 1) as f32 {
            return None;
        }
        let (x0, y0) = (x as u32, y as u32);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let luma = |px, py| luma(self.0.get_pixel(px, py).0);
        let top = luma(x0, y0) * (1.0 - fx) + luma(x0 + 1, y0) * fx;
        let bottom = luma(x0, y0 + 1) * (1.0 - fx) + luma(x0 + 1, y0 + 1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    }
}

/// A step along a ray: how far out, and which way the grey level goes.
#[derive(Debug, Clone, Copy)]
struct Step {
    distance: f32,
    rising: bool,
}

/// The strong steps along one ray from `start` in direction `dir`, averaged over three parallel
/// lines a pixel apart (`across` is the unit vector along the side).
fn steps(grey: &Grey, start: (f32, f32), dir: (f32, f32), across: (f32, f32), reach: f32, contrast: f32) -> Vec<Step> {
    let profile: Vec<f32> = (0..reach as usize)
        .map_while(|i| {
            let t = i as f32;
            let mut sum = 0.0;
            for k in [-1.0, 0.0, 1.0] {
                sum += grey.at(start.0 + dir.0 * t + across.0 * k, start.1 + dir.1 * t + across.1 * k)?;
            }
            Some(sum / 3.0)
        })
        .collect();
    let gradient: Vec<f32> = (2..profile.len().saturating_sub(2)).map(|i| profile[i + 2] - profile[i - 2]).collect();
    // Local maxima of the step size, at least `contrast`.
    (1..gradient.len().saturating_sub(1))
        .filter(|&i| {
            let g = gradient[i].abs();
            g >= contrast && g >= gradient[i - 1].abs() && g > gradient[i + 1].abs()
        })
        .map(|i| Step { distance: (i + 2) as f32, rising: gradient[i] > 0.0 })
        .collect()
}

/// Whether one line, nearly parallel to the side, runs through a step on `RAYS_ON_LINE` rays.
fn straight_edge(rays: &[Vec<Step>], tolerance: f32) -> bool {
    let last = rays.len() - 1;
    // Lines through a step of an early ray and a step of a late ray, all pairs.
    for a in 0..3 {
        for b in last - 2..=last {
            for first in &rays[a] {
                for second in rays[b].iter().filter(|s| s.rising == first.rising) {
                    let slope = (second.distance - first.distance) / (b - a) as f32;
                    let on_line = rays
                        .iter()
                        .enumerate()
                        .filter(|(i, steps)| {
                            let expected = first.distance + slope * (*i as f32 - a as f32);
                            steps.iter().any(|s| s.rising == first.rising && (s.distance - expected).abs() <= tolerance)
                        })
                        .count();
                    if on_line >= RAYS_ON_LINE {
                        return true;
                    }
                }
            }
        }
    }
    false
}

impl Border {
    /// How many sides of `face` have a straight edge in `picture`.
    pub fn sides_framed(&self, picture: &RgbImage, face: &DetectedFace) -> u32 {
        let grey = Grey(picture);
        let (x, y, w, h) = (face.x as f32, face.y as f32, face.width as f32, face.height as f32);
        let size = w.max(h);
        let tolerance = ON_LINE_PX + ON_LINE_SHARE * size;
        // Each side: where its rays start (along it), the outward direction, the reach.
        let along = |from: f32, length: f32| (0..RAYS).map(move |i| from + length * (i as f32 + 0.5) / RAYS as f32);
        let sides: [Side; 4] = [
            (along(y, h).map(|ry| (x - SKIP * w, ry)).collect(), (-1.0, 0.0), REACH * w),
            (along(y, h).map(|ry| (x + w + SKIP * w, ry)).collect(), (1.0, 0.0), REACH * w),
            (along(x, w).map(|rx| (rx, y - SKIP * h)).collect(), (0.0, -1.0), REACH * h),
            (along(x, w).map(|rx| (rx, y + h + SKIP * h)).collect(), (0.0, 1.0), REACH * h),
        ];
        sides
            .iter()
            .filter(|(starts, dir, reach)| {
                let across = (dir.1.abs(), dir.0.abs());
                let rays: Vec<Vec<Step>> =
                    starts.iter().map(|&start| steps(&grey, start, *dir, across, *reach, self.0.contrast)).collect();
                straight_edge(&rays, tolerance)
            })
            .count() as u32
    }
}

impl Check for Border {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The score is the number of sides of the face (of four) with a straight edge, in the
    /// burst's middle frame.
    fn judge(&self, burst: &Burst) -> Finding {
        let undecided = |detail: String| Finding { check: NAME, verdict: Verdict::Undecided, score: 0.0, detail };
        let Some(middle) = burst.frames.get(burst.frames.len() / 2) else {
            return undecided("no frame with a face".into());
        };
        let picture = match middle.pixels() {
            Ok(picture) => picture,
            Err(e) => return undecided(e),
        };
        let sides = self.sides_framed(&picture, &middle.face);
        let verdict = if sides >= self.0.sides { Verdict::Spoof } else { Verdict::Undecided };
        Finding { check: NAME, verdict, score: sides as f32, detail: format!("{sides} of 4 sides framed") }
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    fn face_at(x: u32, y: u32, side: u32) -> DetectedFace {
        DetectedFace { x, y, width: side, height: side, confidence: 99.0, landmarks: None }
    }

    /// A textured "face" (noise, no straight edges) on a background, optionally inside a frame.
    fn scene(framed: bool, background: impl Fn(u32, u32) -> u8) -> RgbImage {
        let mut noise = crate::liveness::attacks::Dice::new(3);
        RgbImage::from_fn(400, 400, |x, y| {
            let inside_face = (150..250).contains(&x) && (150..250).contains(&y);
            let inside_picture = (90..310).contains(&x) && (100..320).contains(&y);
            let grey = if inside_face {
                (100.0 + 60.0 * noise.uniform()) as u8
            } else if framed && inside_picture {
                200
            } else {
                background(x, y)
            };
            Rgb([grey; 3])
        })
    }

    #[test]
    fn a_picture_held_up_is_framed_on_every_side_and_a_head_in_a_room_is_not() {
        let border = Border(BorderConfig::default());
        let face = face_at(150, 150, 100);
        let held_up = scene(true, |_, _| 60);
        assert_eq!(border.sides_framed(&held_up, &face), 4);
        let room = scene(false, |x, y| (40 + x / 5 + y / 8) as u8);
        assert_eq!(border.sides_framed(&room, &face), 0, "gradients and texture are not edges");
        // A door frame on one side only.
        let doorway = scene(false, |x, _| if x < 80 { 30 } else { 170 });
        assert_eq!(border.sides_framed(&doorway, &face), 1);
    }

    #[test]
    fn a_picture_cut_off_by_the_frame_edge_has_no_border_there() {
        let border = Border(BorderConfig::default());
        let picture = scene(true, |_, _| 60);
        // The face near the top of the frame: the rays upward leave the picture at once.
        let cropped = image::imageops::crop_imm(&picture, 0, 130, 400, 270).to_image();
        assert_eq!(border.sides_framed(&cropped, &face_at(150, 20, 100)), 3);
    }
}
