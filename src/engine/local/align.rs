//! Face alignment: a similarity transform from the five detected landmarks onto an embedder's
//! chip template, then bilinear sampling.

use image::{Rgb, RgbImage};

/// Where an embedder expects the left eye, right eye, nose tip and mouth corners, in a square
/// chip of `side` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Template {
    pub points: [(f32, f32); 5],
    pub side: u32,
}

/// dlib's 150×150 chip.
pub const DLIB: Template =
    Template { points: [(47.7, 47.1), (100.3, 47.1), (74.0, 77.1), (52.2, 107.9), (95.8, 107.9)], side: 150 };

/// The 112×112 chip of the ArcFace family of networks (MobileFaceNet among them).
pub const ARCFACE: Template = Template {
    points: [(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041)],
    side: 112,
};

/// Maps chip coordinates to image coordinates: x' = a·x − b·y + tx, y' = b·x + a·y + ty.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Similarity {
    a: f32,
    b: f32,
    tx: f32,
    ty: f32,
}

impl Similarity {
    /// Least-squares fit taking each `from` point onto its `to` point.
    fn fit(from: &[(f32, f32); 5], to: &[(f32, f32); 5]) -> Self {
        let n = from.len() as f32;
        let mean = |points: &[(f32, f32); 5]| {
            let (sx, sy) = points.iter().fold((0.0, 0.0), |(ax, ay), (x, y)| (ax + x, ay + y));
            (sx / n, sy / n)
        };
        let (fx, fy) = mean(from);
        let (tx, ty) = mean(to);
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for ((x, y), (u, v)) in from.iter().zip(to) {
            let (x, y, u, v) = (x - fx, y - fy, u - tx, v - ty);
            dot += x * u + y * v;
            cross += x * v - y * u;
            norm += x * x + y * y;
        }
        let norm = norm.max(f32::EPSILON);
        let (a, b) = (dot / norm, cross / norm);
        Self { a, b, tx: tx - (a * fx - b * fy), ty: ty - (b * fx + a * fy) }
    }

    fn apply(&self, (x, y): (f32, f32)) -> (f32, f32) {
        (self.a * x - self.b * y + self.tx, self.b * x + self.a * y + self.ty)
    }
}

fn sample_bilinear(image: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = image.dimensions();
    if !(x >= 0.0 && y >= 0.0 && x <= (w - 1) as f32 && y <= (h - 1) as f32) {
        return Rgb([0, 0, 0]);
    }
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let mut out = [0u8; 3];
    for (c, value) in out.iter_mut().enumerate() {
        let p = |px: u32, py: u32| f32::from(image.get_pixel(px, py).0[c]);
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        *value = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

/// The face chip `template` describes, for a face with these landmarks (in `image` coordinates).
pub fn chip(image: &RgbImage, landmarks: &[(f32, f32); 5], template: &Template) -> RgbImage {
    let to_image = Similarity::fit(&template.points, landmarks);
    RgbImage::from_fn(template.side, template.side, |u, v| {
        let (x, y) = to_image.apply((u as f32, v as f32));
        sample_bilinear(image, x, y)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_an_exact_similarity() {
        let truth = Similarity { a: 0.8, b: 0.3, tx: 12.0, ty: -4.0 };
        let image_points = DLIB.points.map(|p| truth.apply(p));
        let fitted = Similarity::fit(&DLIB.points, &image_points);
        for (got, want) in [(fitted.a, 0.8), (fitted.b, 0.3), (fitted.tx, 12.0), (fitted.ty, -4.0)] {
            assert!((got - want).abs() < 1e-3, "{fitted:?}");
        }
    }

    #[test]
    fn landmarks_on_the_template_give_the_image_back() {
        let image = RgbImage::from_fn(150, 150, |x, y| Rgb([x as u8, y as u8, 7]));
        let chip = chip(&image, &DLIB.points, &DLIB);
        assert_eq!(chip.get_pixel(10, 20), &Rgb([10, 20, 7]));
        assert_eq!(chip.get_pixel(149, 149), &Rgb([149, 149, 7]));
    }

    #[test]
    fn outside_the_image_is_black() {
        let image = RgbImage::from_pixel(150, 150, Rgb([200, 200, 200]));
        let shifted = DLIB.points.map(|(x, y)| (x + 140.0, y));
        let chip = chip(&image, &shifted, &DLIB);
        assert_eq!(chip.get_pixel(140, 75), &Rgb([0, 0, 0]));
        assert_eq!(chip.get_pixel(0, 75), &Rgb([200, 200, 200]));
    }
}
