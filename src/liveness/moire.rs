//! The moiré check: a face shown on a screen is seen through the screen's grid of pixels, which
//! beats with the camera sensor's grid into fine, regular stripes laid over the face. A face has
//! texture at every scale but no single strong frequency, so the check looks, in the spectrum of a
//! window in the middle of the face, for one narrow peak standing far above the face's own
//! spectrum at that distance from the centre. Grey level only, so grey IR frames too.
//!
//! Left out of the search: the lowest frequencies (the face's own features), the two axes (the
//! window's edges) and the lattice of JPEG's 8-pixel blocks, whose seams are regular too. Stripes
//! lying exactly along an axis are therefore missed.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{Burst, Check, Finding, LivenessConfig, LivenessError, Verdict, luma};
use crate::checks::Checks;
use crate::engine::DetectedFace;

pub const NAME: &str = "moire";

/// The window's side in pixels (a power of two for the FFT), and the smallest face (box side, in
/// pixels) the window fits in.
const WINDOW: usize = 64;
const SMALLEST_FACE: u32 = 80;
/// Frequencies searched, as a share of the window's side (cycles per pixel times `WINDOW`): below
/// this the face's eyes, nose and mouth dominate.
const LOWEST: usize = 6;
/// JPEG's blocks repeat every 8 pixels: bins within one of a multiple of this are skipped.
const JPEG_LATTICE: usize = WINDOW / 8;

/// `[liveness.moire]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MoireConfig {
    /// How many times the typical power at its frequency the strongest peak must reach for the
    /// face to be taken for a screen (README, "The moiré and glare checks").
    pub peak: f32,
}

impl Default for MoireConfig {
    fn default() -> Self {
        Self { peak: 300.0 }
    }
}

impl MoireConfig {
    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            self.peak > 1.0,
            "liveness.moire.peak",
            format!("{} is out of range; use a ratio above 1 (e.g. 300)", self.peak),
        );
    }
}

pub fn build(config: &LivenessConfig, _models_dir: &Path) -> Result<Box<dyn Check>, LivenessError> {
    Ok(Box::new(Moire(config.moire.clone())))
}

pub struct Moire(pub MoireConfig);

/// A complex number, as the FFT needs.
#[derive(Debug, Clone, Copy, Default)]
struct Complex {
    re: f32,
    im: f32,
}

/// In-place radix-2 FFT of `data` (its length a power of two).
fn fft(data: &mut [Complex]) {
    let n = data.len();
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if i < j {
            data.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -std::f32::consts::TAU / len as f32;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (sin, cos) = (angle * k as f32).sin_cos();
                let (a, b) = (data[start + k], data[start + k + len / 2]);
                let turned = Complex { re: b.re * cos - b.im * sin, im: b.re * sin + b.im * cos };
                data[start + k] = Complex { re: a.re + turned.re, im: a.im + turned.im };
                data[start + k + len / 2] = Complex { re: a.re - turned.re, im: a.im - turned.im };
            }
        }
        len *= 2;
    }
}

/// The power spectrum of a `WINDOW`² grey window (row-major), after removing its mean and
/// tapering it with a Hann window so that its edges add no stripes of their own.
fn power_spectrum(window: &[f32]) -> Vec<f32> {
    let mean = window.iter().sum::<f32>() / window.len() as f32;
    let hann: Vec<f32> =
        (0..WINDOW).map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / WINDOW as f32).cos()).collect();
    let mut grid: Vec<Complex> = window
        .iter()
        .enumerate()
        .map(|(i, &v)| Complex { re: (v - mean) * hann[i / WINDOW] * hann[i % WINDOW], im: 0.0 })
        .collect();
    for row in grid.chunks_mut(WINDOW) {
        fft(row);
    }
    let mut column = vec![Complex::default(); WINDOW];
    for x in 0..WINDOW {
        for y in 0..WINDOW {
            column[y] = grid[y * WINDOW + x];
        }
        fft(&mut column);
        for y in 0..WINDOW {
            grid[y * WINDOW + x] = column[y];
        }
    }
    grid.iter().map(|c| c.re * c.re + c.im * c.im).collect()
}

/// Whether a signed frequency index lies on or next to a multiple of `step`.
fn near_multiple(k: isize, step: usize) -> bool {
    let rest = k.rem_euclid(step as isize) as usize;
    rest <= 1 || rest == step - 1
}

/// The strongest narrow peak of the spectrum against the median power at its radius.
fn strongest_peak(power: &[f32]) -> f32 {
    let signed = |k: usize| if k > WINDOW / 2 { k as isize - WINDOW as isize } else { k as isize };
    let radius = |kx: isize, ky: isize| ((kx * kx + ky * ky) as f32).sqrt().round() as usize;
    // Half the plane: the spectrum of a real window is symmetric.
    let searched: Vec<(usize, f32)> = (0..WINDOW / 2 + 1)
        .flat_map(|y| (0..WINDOW).map(move |x| (x, y)))
        .filter_map(|(x, y)| {
            let (kx, ky) = (signed(x), signed(y));
            let r = radius(kx, ky);
            let on_axis = kx.abs() <= 1 || ky.abs() <= 1;
            let on_lattice = near_multiple(kx, JPEG_LATTICE) && near_multiple(ky, JPEG_LATTICE);
            ((LOWEST..=WINDOW / 2).contains(&r) && !on_axis && !on_lattice).then(|| (r, power[y * WINDOW + x]))
        })
        .collect();
    let mut rings: Vec<Vec<f32>> = vec![Vec::new(); WINDOW / 2 + 1];
    for &(r, p) in &searched {
        rings[r].push(p);
    }
    let medians: Vec<f32> = rings
        .iter_mut()
        .map(|ring| {
            ring.sort_by(f32::total_cmp);
            ring.get(ring.len() / 2).copied().unwrap_or(0.0)
        })
        .collect();
    searched.iter().filter(|(r, _)| medians[*r] > 0.0).map(|&(r, p)| p / medians[r]).fold(0.0, f32::max)
}

impl Moire {
    /// The peak ratio of the window in the middle of `face`; `None` when the face is too small.
    pub fn peak_in(&self, picture: &RgbImage, face: &DetectedFace) -> Option<f32> {
        if face.width.min(face.height) < SMALLEST_FACE {
            return None;
        }
        let half = WINDOW as u32 / 2;
        let (centre_x, centre_y) = (face.x + face.width / 2, face.y + face.height / 2);
        let (left, top) = (centre_x.checked_sub(half)?, centre_y.checked_sub(half)?);
        if left + WINDOW as u32 > picture.width() || top + WINDOW as u32 > picture.height() {
            return None;
        }
        let window: Vec<f32> = (0..WINDOW as u32)
            .flat_map(|y| (0..WINDOW as u32).map(move |x| (x, y)))
            .map(|(x, y)| luma(picture.get_pixel(left + x, top + y).0))
            .collect();
        Some(strongest_peak(&power_spectrum(&window)))
    }
}

impl Check for Moire {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The score is the highest peak ratio over the burst's frames.
    fn judge(&self, burst: &Burst) -> Finding {
        let peaks: Vec<f32> =
            burst.frames.iter().filter_map(|frame| self.peak_in(frame.pixels().ok()?.as_ref(), &frame.face)).collect();
        let Some(peak) = peaks.iter().copied().reduce(f32::max) else {
            let detail = format!("no frame with a face of at least {SMALLEST_FACE} pixels");
            return Finding { check: NAME, verdict: Verdict::Undecided, score: 0.0, detail };
        };
        let verdict = if peak >= self.0.peak { Verdict::Spoof } else { Verdict::Undecided };
        let detail =
            format!("strongest stripe {peak:.1}× its ring in {} frames, threshold {}", peaks.len(), self.0.peak);
        Finding { check: NAME, verdict, score: peak, detail }
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;
    use crate::liveness::attacks::Dice;

    /// A 200×200 textured "face" (smooth shading and noise), with stripes of `contrast` (a share
    /// of the grey level) at (fx, fy) cycles per pixel laid over it.
    fn face_picture(stripes: Option<(f32, f32, f32)>) -> RgbImage {
        let mut noise = Dice::new(11);
        RgbImage::from_fn(200, 200, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let shade = 110.0 + 40.0 * (fx / 60.0).sin() * (fy / 45.0).cos() + 3.0 * noise.gaussian() as f32;
            let wave =
                stripes.map_or(0.0, |(u, v, contrast)| contrast * (std::f32::consts::TAU * (u * fx + v * fy)).sin());
            Rgb([(shade * (1.0 + wave)).clamp(0.0, 255.0) as u8; 3])
        })
    }

    fn face() -> DetectedFace {
        DetectedFace { x: 40, y: 40, width: 120, height: 120, confidence: 99.0, landmarks: None }
    }

    #[test]
    fn slanted_stripes_stand_out_and_a_plain_face_does_not() {
        let moire = Moire(MoireConfig::default());
        let plain = moire.peak_in(&face_picture(None), &face()).unwrap();
        assert!(plain < MoireConfig::default().peak, "a face without stripes: {plain}");
        let striped = moire.peak_in(&face_picture(Some((0.23, 0.09, 0.06))), &face()).unwrap();
        assert!(striped > MoireConfig::default().peak, "6 % stripes: {striped}, plain {plain}");
    }

    #[test]
    fn jpeg_block_seams_and_small_faces_are_not_stripes() {
        let moire = Moire(MoireConfig::default());
        // Seams every 8 pixels in both directions, as a coarse JPEG leaves them.
        let mut seams = face_picture(None);
        for (x, y, pixel) in seams.enumerate_pixels_mut() {
            if x % 8 == 0 || y % 8 == 0 {
                pixel.0 = pixel.0.map(|v| v.saturating_add(6));
            }
        }
        let peak = moire.peak_in(&seams, &face()).unwrap();
        assert!(peak < MoireConfig::default().peak, "JPEG's lattice is skipped: {peak}");
        let small = DetectedFace { width: 60, height: 60, ..face() };
        assert_eq!(moire.peak_in(&seams, &small), None);
    }
}
