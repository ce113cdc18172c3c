//! Following a face from one burst frame to the next without detecting it again.
//!
//! Each of the five landmarks is looked for near where it was, by its look: the patch around it
//! in the previous frame is matched by normalised cross-correlation, first on half-size images
//! over a wide window, then at full size around the best place, to a fraction of a pixel. A face
//! detection for every further frame was most of what the checks' burst cost a tap; following
//! costs a few milliseconds. When a landmark is lost (its best match is poor, it left the frame,
//! the face turned away or changed size) the caller detects the face again, so a burst of unrelated
//! pictures is judged as before.

use image::RgbImage;

use super::luma;
use crate::engine::DetectedFace;

/// Below this correlation a landmark is taken for lost.
const MIN_CORRELATION: f32 = 0.8;
/// A patch whose grey levels vary less than this (standard deviation) has nothing to follow.
const MIN_CONTRAST: f32 = 3.0;
/// How far the eye distance may change between two frames before the face is detected again.
const MAX_ZOOM: f32 = 1.25;

/// The grey levels of a whole image.
struct Grey {
    width: i32,
    height: i32,
    levels: Vec<f32>,
}

impl Grey {
    fn of(image: &RgbImage) -> Self {
        let levels = image.pixels().map(|p| luma(p.0)).collect();
        Self { width: image.width() as i32, height: image.height() as i32, levels }
    }

    /// Half the size, each level the mean of a 2×2 block.
    fn halved(&self) -> Self {
        let (width, height) = (self.width / 2, self.height / 2);
        let mut levels = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            for x in 0..width {
                let (x2, y2) = (2 * x, 2 * y);
                let sum = self.at(x2, y2) + self.at(x2 + 1, y2) + self.at(x2, y2 + 1) + self.at(x2 + 1, y2 + 1);
                levels.push(sum / 4.0);
            }
        }
        Self { width, height, levels }
    }

    fn at(&self, x: i32, y: i32) -> f32 {
        self.levels[(y * self.width + x) as usize]
    }

    /// Whether the square of half-size `radius` around (x, y) lies inside the image.
    fn holds(&self, x: i32, y: i32, radius: i32) -> bool {
        x - radius >= 0 && y - radius >= 0 && x + radius < self.width && y + radius < self.height
    }

    /// The square patch of half-size `radius` around (x, y), less its mean, and its spread; `None`
    /// when it leaves the image.
    fn patch(&self, x: i32, y: i32, radius: i32) -> Option<(Vec<f32>, f32)> {
        if !self.holds(x, y, radius) {
            return None;
        }
        let mut values = Vec::with_capacity(((2 * radius + 1) * (2 * radius + 1)) as usize);
        for dy in -radius..=radius {
            let row = ((y + dy) * self.width + x - radius) as usize;
            values.extend_from_slice(&self.levels[row..row + (2 * radius + 1) as usize]);
        }
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        values.iter_mut().for_each(|v| *v -= mean);
        let spread = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        Some((values, spread))
    }

    /// Correlation (−1 to 1) of `template` (zero mean, `spread`) with the patch around (x, y).
    fn correlation(&self, template: &[f32], spread: f32, x: i32, y: i32, radius: i32) -> f32 {
        if !self.holds(x, y, radius) {
            return -1.0;
        }
        let side = (2 * radius + 1) as usize;
        let (mut sum, mut sum_sq, mut cross) = (0.0f32, 0.0f32, 0.0f32);
        for (row, expected) in template.chunks_exact(side).enumerate() {
            let start = ((y - radius + row as i32) * self.width + x - radius) as usize;
            for (&level, &t) in self.levels[start..start + side].iter().zip(expected) {
                sum += level;
                sum_sq += level * level;
                cross += level * t;
            }
        }
        // The template has zero mean, so the window's own mean drops out of the cross term.
        let n = template.len() as f32;
        let variance = (sum_sq - sum * sum / n).max(0.0);
        if variance == 0.0 { 0.0 } else { cross / (spread * variance.sqrt()) }
    }

    /// The place within `reach` of (x, y) whose patch correlates best with `template`.
    fn best_match(&self, template: &[f32], spread: f32, (x, y): (i32, i32), radius: i32, reach: i32) -> Match {
        let mut best = Match { x, y, correlation: -1.0 };
        for cy in y - reach..=y + reach {
            for cx in x - reach..=x + reach {
                let correlation = self.correlation(template, spread, cx, cy, radius);
                if correlation > best.correlation {
                    best = Match { x: cx, y: cy, correlation };
                }
            }
        }
        best
    }
}

#[derive(Debug, Clone, Copy)]
struct Match {
    x: i32,
    y: i32,
    correlation: f32,
}

/// Where the peak of a parabola through three samples lies, from −0.5 to 0.5 around the middle.
fn peak_offset(before: f32, at: f32, after: f32) -> f32 {
    let curvature = before - 2.0 * at + after;
    if curvature >= 0.0 { 0.0 } else { (0.5 * (before - after) / curvature).clamp(-0.5, 0.5) }
}

/// Follows one landmark at `point` of `previous` into `next`: its new place, or `None` if lost.
fn follow_point(
    previous: [&Grey; 2],
    next: [&Grey; 2],
    point: (f32, f32),
    radius: i32,
    reach: i32,
) -> Option<(f32, f32)> {
    let [previous_full, previous_half] = previous;
    let [next_full, next_half] = next;
    let (px, py) = (point.0.round() as i32, point.1.round() as i32);
    // Coarse: half size, the whole reach.
    let coarse_radius = (radius / 2).max(3);
    let (template, spread) = previous_half.patch(px / 2, py / 2, coarse_radius)?;
    if spread / (template.len() as f32).sqrt() < MIN_CONTRAST / 2.0 {
        return None;
    }
    let coarse = next_half.best_match(&template, spread, (px / 2, py / 2), coarse_radius, (reach / 2).max(1));
    // Fine: full size, around the coarse place (one half-size pixel is two full-size ones).
    let (template, spread) = previous_full.patch(px, py, radius)?;
    if spread / (template.len() as f32).sqrt() < MIN_CONTRAST {
        return None;
    }
    let guess = (2 * coarse.x + px % 2, 2 * coarse.y + py % 2);
    let fine = next_full.best_match(&template, spread, guess, radius, 2);
    if fine.correlation < MIN_CORRELATION {
        return None;
    }
    let around = |dx: i32, dy: i32| next_full.correlation(&template, spread, fine.x + dx, fine.y + dy, radius);
    let sub_x = peak_offset(around(-1, 0), fine.correlation, around(1, 0));
    let sub_y = peak_offset(around(0, -1), fine.correlation, around(0, 1));
    // The landmark moved as far as its rounded place did.
    Some((point.0 + (fine.x - px) as f32 + sub_x, point.1 + (fine.y - py) as f32 + sub_y))
}

fn distance(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// The face of `previous_image` (with its landmarks) found again in `next_image`, its box moved
/// and scaled as its landmarks were; `None` when any landmark is lost or the face has none.
pub fn follow(previous_image: &RgbImage, face: &DetectedFace, next_image: &RgbImage) -> Option<DetectedFace> {
    let landmarks = face.landmarks?;
    if previous_image.dimensions() != next_image.dimensions() {
        return None;
    }
    let eyes = distance(landmarks[0], landmarks[1]);
    if eyes < 8.0 {
        return None;
    }
    // A patch the size of an eye; a reach of half the eye distance covers a hand's shake and a
    // small turn of the head between frames.
    let radius = ((eyes * 0.15).round() as i32).clamp(3, 12);
    let reach = ((eyes * 0.5).round() as i32).clamp(6, 48);
    let (previous_full, next_full) = (Grey::of(previous_image), Grey::of(next_image));
    let (previous_half, next_half) = (previous_full.halved(), next_full.halved());
    let mut followed = [(0.0, 0.0); 5];
    for (new, &old) in followed.iter_mut().zip(&landmarks) {
        *new = follow_point([&previous_full, &previous_half], [&next_full, &next_half], old, radius, reach)?;
    }
    let zoom = distance(followed[0], followed[1]) / eyes;
    if !(1.0 / MAX_ZOOM..=MAX_ZOOM).contains(&zoom) {
        return None;
    }
    let centre = |points: &[(f32, f32); 5]| {
        let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), p| (sx + p.0, sy + p.1));
        (sx / 5.0, sy / 5.0)
    };
    let (old_centre, new_centre) = (centre(&landmarks), centre(&followed));
    // The box keeps its place relative to the landmarks, scaled by the eyes' zoom.
    let corner = |at: u32, old: f32, new: f32| (new + (at as f32 - old) * zoom).round().max(0.0) as u32;
    Some(DetectedFace {
        x: corner(face.x, old_centre.0, new_centre.0),
        y: corner(face.y, old_centre.1, new_centre.1),
        width: (face.width as f32 * zoom).round() as u32,
        height: (face.height as f32 * zoom).round() as u32,
        confidence: face.confidence,
        landmarks: Some(followed),
    })
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    /// A lattice value from 0 to 1 that looks random.
    fn hash(x: i64, y: i64) -> f32 {
        let h = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)).wrapping_mul(83_492_791);
        ((h >> 8) & 0xFFFF) as f32 / 65_535.0
    }

    /// Value noise: random levels on a lattice `cell` pixels apart, blended in between, so a
    /// texture can be shifted by a fraction of a pixel.
    fn noise(x: f32, y: f32, cell: f32) -> f32 {
        let (gx, gy) = (x / cell, y / cell);
        let (ix, iy) = (gx.floor() as i64, gy.floor() as i64);
        let (fx, fy) = (gx - gx.floor(), gy - gy.floor());
        let top = hash(ix, iy) * (1.0 - fx) + hash(ix + 1, iy) * fx;
        let bottom = hash(ix, iy + 1) * (1.0 - fx) + hash(ix + 1, iy + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// A random-looking texture with a look of its own everywhere, moved by `shift`.
    fn texture(width: u32, height: u32, shift: (f32, f32)) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let (x, y) = (x as f32 - shift.0 + 1000.0, y as f32 - shift.1 + 1000.0);
            let v = 40.0 + 120.0 * noise(x, y, 6.0) + 80.0 * noise(x, y, 17.0);
            let v = v.clamp(0.0, 255.0) as u8;
            Rgb([v, v, v])
        })
    }

    fn face_at(landmarks: [(f32, f32); 5]) -> DetectedFace {
        DetectedFace { x: 90, y: 80, width: 120, height: 140, confidence: 90.0, landmarks: Some(landmarks) }
    }

    const LANDMARKS: [(f32, f32); 5] = [(120.0, 120.0), (180.0, 121.0), (150.0, 150.0), (128.0, 180.0), (172.0, 181.0)];

    #[test]
    fn a_face_moved_in_the_frame_is_followed_to_within_a_pixel() {
        let shift = (7.4, -4.6);
        let before = texture(320, 260, (0.0, 0.0));
        let after = texture(320, 260, shift);
        let followed = follow(&before, &face_at(LANDMARKS), &after).expect("followed");
        let landmarks = followed.landmarks.unwrap();
        for (old, new) in LANDMARKS.iter().zip(&landmarks) {
            assert!((new.0 - old.0 - shift.0).abs() < 0.6, "{old:?} → {new:?}");
            assert!((new.1 - old.1 - shift.1).abs() < 0.6, "{old:?} → {new:?}");
        }
        assert_eq!((followed.x, followed.y), (97, 75));
        assert_eq!((followed.width, followed.height), (120, 140));
    }

    #[test]
    fn another_picture_loses_the_face() {
        let before = texture(320, 260, (0.0, 0.0));
        let other = RgbImage::from_fn(320, 260, |x, y| {
            let v = ((x * 7919 + y * 104_729) % 251) as u8;
            Rgb([v, v, v])
        });
        assert_eq!(follow(&before, &face_at(LANDMARKS), &other), None);
    }

    #[test]
    fn a_flat_frame_or_a_face_at_the_edge_is_not_followed() {
        let flat = RgbImage::from_pixel(320, 260, Rgb([90, 90, 90]));
        assert_eq!(follow(&flat, &face_at(LANDMARKS), &flat), None);
        let textured = texture(320, 260, (0.0, 0.0));
        let at_edge = [(2.0, 120.0), (60.0, 121.0), (30.0, 150.0), (8.0, 180.0), (52.0, 181.0)];
        assert_eq!(follow(&textured, &face_at(at_edge), &textured), None);
    }

    #[test]
    fn without_landmarks_there_is_nothing_to_follow() {
        let image = texture(320, 260, (0.0, 0.0));
        let face = DetectedFace { landmarks: None, ..face_at(LANDMARKS) };
        assert_eq!(follow(&image, &face, &image), None);
    }
}
