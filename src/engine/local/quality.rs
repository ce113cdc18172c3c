//! Enrolment quality: whether a detected face is large, sharp and frontal enough to enrol.
//!
//! One bad enrolment photo lowers the accuracy for everyone (its descriptor lies between people),
//! so enrolment refuses it and says why. The door does not check: there the burst simply tries
//! the next frame. The limits were chosen on the shared face sets (README, "The on-device face
//! engine").

use image::{GrayImage, RgbImage};

use super::align;
use super::detector::Detection;

/// Fewest pixels between the eyes' centres in the picture.
pub const MIN_EYE_DISTANCE: f32 = 20.0;
/// Least sharpness (see [`Quality::sharpness`]).
pub const MIN_SHARPNESS: f32 = 25.0;
/// Most yaw, in degrees, as estimated by [`Quality::yaw_degrees`].
pub const MAX_YAW_DEGREES: f32 = 40.0;

/// How far the nose tip stands in front of the eyes, in eye distances, in the generic 3-D face
/// model of head-pose estimation: it turns the nose's sideways offset into an angle.
const NOSE_DEPTH: f32 = 0.45;

/// The part of the ArcFace chip between the brows and the chin: the face's own texture, without
/// background or the black outside the picture.
const FACE_REGION: (std::ops::Range<u32>, std::ops::Range<u32>) = (28..84, 36..104);

/// What was measured of one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Pixels between the eyes' centres in the picture.
    pub eye_distance: f32,
    /// Variance of the Laplacian of the grey face, aligned to the 112×112 ArcFace chip (so it
    /// does not depend on the picture's size): low when the face is blurred.
    pub sharpness: f32,
    /// How far the face is turned to the side, in degrees (0 = frontal), estimated from how far
    /// the nose tip sits from the eyes' midpoint along the line through the eyes.
    pub yaw_degrees: f32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityProblem {
    #[error(
        "the face is too small: {eye_distance:.0} px between the eyes, at least {MIN_EYE_DISTANCE:.0} needed; \
         come closer or use a larger photo"
    )]
    TooSmall { eye_distance: f32 },
    #[error(
        "the face is too blurred: sharpness {sharpness:.0}, at least {MIN_SHARPNESS:.0} needed; hold the camera \
         still, focus on the face or use a sharper photo"
    )]
    Blurred { sharpness: f32 },
    #[error(
        "the face is turned too far to the side: about {yaw_degrees:.0}°, at most {MAX_YAW_DEGREES:.0}° allowed; \
         look straight at the camera"
    )]
    Turned { yaw_degrees: f32 },
}

impl Quality {
    /// Measures the face `detection` found in `image`.
    pub fn measure(image: &RgbImage, detection: &Detection) -> Self {
        let [left_eye, right_eye, nose, ..] = detection.landmarks;
        let (dx, dy) = (right_eye.0 - left_eye.0, right_eye.1 - left_eye.1);
        let eye_distance = dx.hypot(dy);
        let middle = ((left_eye.0 + right_eye.0) / 2.0, (left_eye.1 + right_eye.1) / 2.0);
        // The nose's offset along the eye line, so that a tilted head is not taken for a turned one.
        let along = ((nose.0 - middle.0) * dx + (nose.1 - middle.1) * dy) / eye_distance.max(f32::EPSILON);
        let yaw_degrees = (along / eye_distance.max(f32::EPSILON) / NOSE_DEPTH).atan().to_degrees().abs();
        let chip = align::chip(image, &detection.landmarks, &align::ARCFACE);
        let sharpness = laplacian_variance(&image::imageops::grayscale(&chip));
        Self { eye_distance, sharpness, yaw_degrees }
    }

    /// The first problem found, size first: a small face is also a blurred one.
    pub fn check(&self) -> Result<(), QualityProblem> {
        if self.eye_distance < MIN_EYE_DISTANCE {
            Err(QualityProblem::TooSmall { eye_distance: self.eye_distance })
        } else if self.yaw_degrees > MAX_YAW_DEGREES {
            Err(QualityProblem::Turned { yaw_degrees: self.yaw_degrees })
        } else if self.sharpness < MIN_SHARPNESS {
            Err(QualityProblem::Blurred { sharpness: self.sharpness })
        } else {
            Ok(())
        }
    }
}

/// Measures the face and checks it against the limits.
pub fn assess(image: &RgbImage, detection: &Detection) -> Result<Quality, QualityProblem> {
    let quality = Quality::measure(image, detection);
    quality.check().map(|()| quality)
}

/// Variance of the 4-neighbour Laplacian over [`FACE_REGION`] of a chip.
fn laplacian_variance(chip: &GrayImage) -> f32 {
    let (xs, ys) = FACE_REGION;
    let pixel = |x: u32, y: u32| f32::from(chip.get_pixel(x, y).0[0]);
    let values: Vec<f32> = ys
        .flat_map(|y| xs.clone().map(move |x| (x, y)))
        .map(|(x, y)| pixel(x - 1, y) + pixel(x + 1, y) + pixel(x, y - 1) + pixel(x, y + 1) - 4.0 * pixel(x, y))
        .collect();
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ArcFace template's landmarks, twice as large, in a 300×300 picture: 70 px between the eyes.
    fn frontal() -> [(f32, f32); 5] {
        align::ARCFACE.points.map(|(x, y)| (40.0 + 2.0 * x, 40.0 + 2.0 * y))
    }

    fn detection(landmarks: [(f32, f32); 5]) -> Detection {
        Detection { left: 40.0, top: 40.0, width: 224.0, height: 224.0, score: 0.99, landmarks }
    }

    /// Grey noise in 2-pixel blocks: as much fine detail as a sharp face, from a fixed seed.
    fn textured() -> RgbImage {
        let mut state = 0x2545_f491_u32;
        let blocks: Vec<u8> = (0..150 * 150)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        RgbImage::from_fn(300, 300, |x, y| {
            let v = blocks[(y / 2 * 150 + x / 2) as usize];
            image::Rgb([v, v, v])
        })
    }

    fn rotated(points: [(f32, f32); 5], degrees: f32) -> [(f32, f32); 5] {
        let (sin, cos) = degrees.to_radians().sin_cos();
        points.map(|(x, y)| {
            (150.0 + (x - 150.0) * cos - (y - 150.0) * sin, 150.0 + (x - 150.0) * sin + (y - 150.0) * cos)
        })
    }

    #[test]
    fn a_sharp_frontal_face_passes() {
        let quality = assess(&textured(), &detection(frontal())).expect("a good face");
        assert!((quality.eye_distance - 70.5).abs() < 0.5, "{quality:?}");
        assert!(quality.yaw_degrees < 1.0, "{quality:?}");
        assert!(quality.sharpness > 10.0 * MIN_SHARPNESS, "{quality:?}");
    }

    #[test]
    fn yaw_comes_from_the_nose_beside_the_eyes_midpoint() {
        let image = textured();
        let mut turned = frontal();
        // The nose 0.42 eye distances towards the right eye: atan(0.42 / 0.45) ≈ 43°.
        turned[2].0 = (turned[0].0 + turned[1].0) / 2.0 + 0.42 * 70.5;
        let yaw = Quality::measure(&image, &detection(turned)).yaw_degrees;
        assert!((yaw - 43.0).abs() < 0.5, "{yaw}");
        let problem = assess(&image, &detection(turned)).unwrap_err();
        assert_eq!(problem, QualityProblem::Turned { yaw_degrees: yaw });
        assert!(problem.to_string().contains("about 43°, at most 40° allowed; look straight"), "{problem}");

        let mirrored = turned.map(|(x, y)| (300.0 - x, y));
        assert!((Quality::measure(&image, &detection(mirrored)).yaw_degrees - yaw).abs() < 0.01, "either way");

        let mut slightly = frontal();
        slightly[2].0 += 10.0;
        assert!(assess(&image, &detection(slightly)).is_ok(), "about 17° is fine");
    }

    #[test]
    fn a_tilted_head_is_not_turned() {
        let quality = assess(&textured(), &detection(rotated(frontal(), 30.0))).expect("tilted, frontal");
        assert!(quality.yaw_degrees < 1.0, "{quality:?}");
    }

    #[test]
    fn a_blurred_face_is_refused_whatever_the_picture_size() {
        let sharp = textured();
        let blurred = image::imageops::blur(&sharp, 6.0);
        let problem = assess(&blurred, &detection(frontal())).unwrap_err();
        assert!(matches!(problem, QualityProblem::Blurred { sharpness } if sharpness < MIN_SHARPNESS), "{problem}");
        assert!(problem.to_string().starts_with("the face is too blurred: sharpness "), "{problem}");

        // The same sharp face at twice the size measures about the same: the chip is what counts.
        let large = image::imageops::resize(&sharp, 600, 600, image::imageops::FilterType::Nearest);
        let doubled = frontal().map(|(x, y)| (2.0 * x, 2.0 * y));
        let (small, large) =
            (Quality::measure(&sharp, &detection(frontal())), Quality::measure(&large, &detection(doubled)));
        assert!((large.sharpness / small.sharpness - 1.0).abs() < 0.2, "{small:?} {large:?}");
    }

    #[test]
    fn a_tiny_face_is_refused_with_its_size() {
        let tiny = frontal().map(|(x, y)| (100.0 + (x - 100.0) / 4.0, 100.0 + (y - 100.0) / 4.0));
        let problem = assess(&textured(), &detection(tiny)).unwrap_err();
        assert!(matches!(problem, QualityProblem::TooSmall { .. }), "{problem}");
        assert_eq!(
            problem.to_string(),
            format!(
                "the face is too small: 18 px between the eyes, at least {MIN_EYE_DISTANCE:.0} needed; come closer or \
                 use a larger photo"
            )
        );
    }
}
