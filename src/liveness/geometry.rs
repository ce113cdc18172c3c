//! The geometry check: a picture is flat, a head is not.
//!
//! The eyes and mouth corners of a face lie close to one plane; the nose tip stands out of it,
//! about 0.4 eye distances towards the camera. Between two frames, the homography that carries
//! the four plane points of one frame onto the other's says where the nose tip would be if it
//! lay in their plane. On a photo or a screen it does (to within the landmarks' noise); a head
//! that turned puts it elsewhere: the parallax. How much the four points changed shape beyond
//! a similarity (shift, turn, zoom) says how much the plane itself turned out of the image: a
//! plane that turned with no parallax is a picture. A burst in which nothing turned out of the
//! image cannot tell, and is undecided rather than live.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Burst, Check, Finding, LivenessConfig, LivenessError, Verdict};
use crate::checks::Checks;

pub const NAME: &str = "geometry";

/// Landmark order of [`crate::engine::DetectedFace::landmarks`].
const LEFT_EYE: usize = 0;
const RIGHT_EYE: usize = 1;
const NOSE: usize = 2;
const PLANE: [usize; 4] = [0, 1, 3, 4];

/// `[liveness.geometry]`: thresholds in eye distances (the distance between the eye centres).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeometryConfig {
    /// Nose parallax at or above which the face is taken for a head (live).
    pub live_parallax: f32,
    /// Change of the eyes' and mouth's shape at or above which the plane is taken to have turned
    /// out of the image: with the parallax below `live_parallax`, a picture (spoof).
    pub plane_turn: f32,
}

impl Default for GeometryConfig {
    fn default() -> Self {
        Self { live_parallax: 0.10, plane_turn: 0.04 }
    }
}

impl GeometryConfig {
    pub fn check(&self, checks: &mut Checks) {
        for (key, value) in
            [("liveness.geometry.live_parallax", self.live_parallax), ("liveness.geometry.plane_turn", self.plane_turn)]
        {
            checks.check(
                value > 0.0 && value < 1.0,
                key,
                format!("{value} is out of range; use a fraction of the eye distance above 0 and below 1 (e.g. 0.05)"),
            );
        }
    }
}

pub fn build(config: &LivenessConfig, _models_dir: &Path) -> Result<Box<dyn Check>, LivenessError> {
    Ok(Box::new(Geometry(config.geometry.clone())))
}

pub struct Geometry(pub GeometryConfig);

/// What the landmarks of a burst show, in eye distances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// The largest distance of the nose tip from where the plane of eyes and mouth puts it.
    pub parallax: f32,
    /// The largest change of the eyes' and mouth's shape beyond a similarity.
    pub plane_turn: f32,
    /// Frames compared with the first.
    pub pairs: usize,
}

type Point = (f64, f64);

/// The five landmarks with the centre of the four plane points at the origin and the eye
/// distance as unit, or `None` when the eyes coincide.
fn normalised(points: &[(f32, f32); 5]) -> Option<[Point; 5]> {
    let (lx, ly) = points[LEFT_EYE];
    let (rx, ry) = points[RIGHT_EYE];
    let eye_distance = f64::from((rx - lx).hypot(ry - ly));
    if eye_distance.is_nan() || eye_distance <= 1e-3 {
        return None;
    }
    let (cx, cy) = PLANE.iter().fold((0.0, 0.0), |(x, y), &i| (x + f64::from(points[i].0), y + f64::from(points[i].1)));
    let (cx, cy) = (cx / 4.0, cy / 4.0);
    Some(points.map(|(x, y)| ((f64::from(x) - cx) / eye_distance, (f64::from(y) - cy) / eye_distance)))
}

/// The homography carrying the four `from` points onto the four `to` points (h33 = 1), or `None`
/// when three of them are in line.
fn homography(from: [Point; 4], to: [Point; 4]) -> Option<[f64; 8]> {
    let mut system = [[0.0; 9]; 8];
    for (k, ((x, y), (u, v))) in from.into_iter().zip(to).enumerate() {
        system[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        system[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    solve(system)
}

/// Gaussian elimination with partial pivoting of an 8×8 system (the last column is the right side).
fn solve(mut m: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for values in m.iter_mut().enumerate().filter(|(row, _)| *row != col).map(|(_, values)| values) {
            let factor = values[col] / pivot_row[col];
            for (value, above) in values.iter_mut().zip(pivot_row).skip(col) {
                *value -= factor * above;
            }
        }
    }
    let mut h = [0.0; 8];
    for (i, value) in h.iter_mut().enumerate() {
        *value = m[i][8] / m[i][i];
    }
    Some(h)
}

fn apply(h: &[f64; 8], (x, y): Point) -> Option<Point> {
    let w = h[6] * x + h[7] * y + 1.0;
    (w.abs() > 1e-9).then(|| ((h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w))
}

/// Root-mean-square distance left after the best similarity from `from` onto `to` (both centred).
fn beyond_similarity(from: [Point; 4], to: [Point; 4]) -> f64 {
    // As complex numbers: to ≈ a·from, with a = Σ conj(from)·to / Σ |from|².
    let (mut re, mut im, mut norm) = (0.0, 0.0, 0.0);
    for ((x, y), (u, v)) in from.iter().zip(&to) {
        re += x * u + y * v;
        im += x * v - y * u;
        norm += x * x + y * y;
    }
    if norm <= 0.0 {
        return 0.0;
    }
    let (a, b) = (re / norm, im / norm);
    let squares: f64 = from
        .iter()
        .zip(&to)
        .map(|((x, y), (u, v))| (u - (a * x - b * y)).powi(2) + (v - (b * x + a * y)).powi(2))
        .sum();
    (squares / 4.0).sqrt()
}

/// The motion of a track of five landmarks per frame, each later frame compared with the first;
/// `None` with fewer than two usable frames.
pub fn measure(track: &[[(f32, f32); 5]]) -> Option<Motion> {
    let mut frames = track.iter().filter_map(normalised);
    let first = frames.next()?;
    let plane = |points: &[Point; 5]| PLANE.map(|i| points[i]);
    let mut motion = Motion { parallax: 0.0, plane_turn: 0.0, pairs: 0 };
    for later in frames {
        let Some(h) = homography(plane(&first), plane(&later)) else { continue };
        let Some((px, py)) = apply(&h, first[NOSE]) else { continue };
        let parallax = (px - later[NOSE].0).hypot(py - later[NOSE].1);
        motion.parallax = motion.parallax.max(parallax as f32);
        motion.plane_turn = motion.plane_turn.max(beyond_similarity(plane(&first), plane(&later)) as f32);
        motion.pairs += 1;
    }
    (motion.pairs > 0).then_some(motion)
}

impl Geometry {
    /// The verdict on a burst that moved as `motion` says.
    pub fn verdict(&self, motion: &Motion) -> Verdict {
        if motion.parallax >= self.0.live_parallax {
            Verdict::Live
        } else if motion.plane_turn >= self.0.plane_turn {
            Verdict::Spoof
        } else {
            Verdict::Undecided
        }
    }
}

impl Check for Geometry {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The score is the nose parallax in eye distances (higher: more like a head).
    fn judge(&self, burst: &Burst) -> Finding {
        let track: Vec<[(f32, f32); 5]> = burst.frames.iter().filter_map(|f| f.face.landmarks).collect();
        match measure(&track) {
            Some(motion) => Finding {
                check: NAME,
                verdict: self.verdict(&motion),
                score: motion.parallax,
                detail: format!(
                    "parallax {:.3}, plane turn {:.3}, {} pairs",
                    motion.parallax, motion.plane_turn, motion.pairs
                ),
            },
            None => Finding {
                check: NAME,
                verdict: Verdict::Undecided,
                score: 0.0,
                detail: format!("{} frames with landmarks; two are needed", track.len()),
            },
        }
    }
}

/// Synthetic landmark tracks: a head and a flat picture of it, moved in front of a camera.
#[cfg(test)]
pub(crate) mod tracks {
    /// Eye centres, nose tip and mouth corners of an average head, in millimetres (x right,
    /// y down, z towards the camera; the nose tip at the origin).
    pub const HEAD: [[f64; 3]; 5] =
        [[-31.0, -32.0, -27.0], [31.0, -32.0, -27.0], [0.0, 0.0, 0.0], [-24.0, 30.0, -25.0], [24.0, 30.0, -25.0]];

    /// A deterministic source of noise (xorshift with Box–Muller).
    pub struct Noise(u64);

    impl Noise {
        pub fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        pub fn gaussian(&mut self) -> f64 {
            let (u, v) = (self.uniform().max(1e-12), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    /// The five points turned by `yaw` and `pitch` (degrees), at `distance` mm from a camera of
    /// focal length 600 px, with pixel noise of `noise_px`.
    pub fn project(
        points: &[[f64; 3]; 5],
        yaw: f64,
        pitch: f64,
        shift: (f64, f64),
        distance: f64,
        noise_px: f64,
        noise: &mut Noise,
    ) -> [(f32, f32); 5] {
        let (sy, cy) = yaw.to_radians().sin_cos();
        let (sp, cp) = pitch.to_radians().sin_cos();
        points.map(|[x, y, z]| {
            let (x, z) = (cy * x + sy * z, -sy * x + cy * z);
            let (y, z) = (cp * y - sp * z, sp * y + cp * z);
            let depth = distance - z;
            let u = 320.0 + 600.0 * (x + shift.0) / depth + noise_px * noise.gaussian();
            let v = 240.0 + 600.0 * (y + shift.1) / depth + noise_px * noise.gaussian();
            (u as f32, v as f32)
        })
    }

    /// The head flattened onto the plane of its eyes: a photo of it.
    pub fn photo() -> [[f64; 3]; 5] {
        HEAD.map(|[x, y, _]| [x, y, -27.0])
    }

    /// A burst of `frames`: the points turned through the poses, with noise.
    pub fn burst(points: &[[f64; 3]; 5], poses: &[(f64, f64)], noise_px: f64, seed: u64) -> Vec<[(f32, f32); 5]> {
        let mut noise = Noise::new(seed);
        poses
            .iter()
            .map(|&(yaw, pitch)| {
                let shift = (10.0 * noise.gaussian(), 10.0 * noise.gaussian());
                project(points, yaw, pitch, shift, 450.0, noise_px, &mut noise)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::tracks::{HEAD, burst, photo};
    use super::*;

    fn verdict(track: &[[(f32, f32); 5]]) -> Verdict {
        Geometry(GeometryConfig::default()).verdict(&measure(track).unwrap())
    }

    /// A small head turn, as when asked for one: up to 20° aside and 8° up or down.
    const SMALL_TURN: [(f64, f64); 5] = [(0.0, 0.0), (5.0, 2.0), (10.0, -3.0), (15.0, 5.0), (20.0, 8.0)];
    /// A wide turn: 30° aside, what a picture must be turned by for its flatness to show.
    const WIDE_TURN: [(f64, f64); 5] = [(0.0, 0.0), (8.0, 2.0), (15.0, -3.0), (23.0, 5.0), (30.0, 8.0)];
    const STILL: [(f64, f64); 5] = [(0.0, 0.0); 5];

    #[test]
    fn a_homography_maps_its_four_points_exactly() {
        let from = [(-1.0, -1.0), (1.0, -1.0), (-0.8, 1.0), (0.9, 1.1)];
        let to = [(-0.9, -1.2), (1.1, -0.9), (-0.7, 0.8), (1.0, 1.3)];
        let h = homography(from, to).unwrap();
        for (a, b) in from.into_iter().zip(to) {
            let (x, y) = apply(&h, a).unwrap();
            assert!((x - b.0).abs() < 1e-9 && (y - b.1).abs() < 1e-9);
        }
        assert!(homography([(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)], to).is_none(), "points in line");
    }

    #[test]
    fn a_turning_head_is_live_and_a_turning_photo_is_not() {
        // Landmark noise of 0.8 px at an eye distance of about 80 px, 50 bursts of each.
        let verdicts = |points: &[[f64; 3]; 5], poses: &[(f64, f64)]| -> Vec<Verdict> {
            (0..50).map(|seed| verdict(&burst(points, poses, 0.8, seed))).collect()
        };
        let count = |verdicts: &[Verdict], wanted| verdicts.iter().filter(|v| **v == wanted).count();
        assert_eq!(count(&verdicts(&HEAD, &SMALL_TURN), Verdict::Live), 50);
        assert_eq!(count(&verdicts(&HEAD, &WIDE_TURN), Verdict::Live), 50);
        let photo = photo();
        let turned_photo = verdicts(&photo, &WIDE_TURN);
        assert!(count(&turned_photo, Verdict::Spoof) >= 45, "{turned_photo:?}");
        assert_eq!(count(&turned_photo, Verdict::Live), 0);
        // A small turn of a plane changes its shape too little to tell from the noise.
        assert_eq!(count(&verdicts(&photo, &SMALL_TURN), Verdict::Live), 0);
    }

    #[test]
    fn without_turning_nothing_is_decided() {
        for seed in 0..50 {
            assert_eq!(verdict(&burst(&HEAD, &STILL, 0.8, seed)), Verdict::Undecided, "still head, seed {seed}");
            assert_eq!(verdict(&burst(&photo(), &STILL, 0.8, seed)), Verdict::Undecided, "still photo, seed {seed}");
        }
    }

    #[test]
    fn parallax_grows_with_the_turn_and_stays_at_the_noise_for_a_plane() {
        let motion = |points, yaw| measure(&burst(points, &[(0.0, 0.0), (yaw, 0.0)], 0.0, 1)).unwrap();
        let (small, large) = (motion(&HEAD, 5.0), motion(&HEAD, 20.0));
        assert!(large.parallax > 2.5 * small.parallax, "{small:?} {large:?}");
        assert!(motion(&photo(), 20.0).parallax < 1e-4, "a plane has no parallax without noise");
    }

    #[test]
    fn a_burst_without_landmarks_is_undecided() {
        let finding = Geometry(GeometryConfig::default()).judge(&Burst::default());
        assert_eq!(finding.verdict, Verdict::Undecided);
        assert!(finding.detail.contains("0 frames with landmarks"), "{}", finding.detail);
    }
}
