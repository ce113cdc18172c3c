//! CenterFace: face boxes with five landmarks, from one pass of a small fully convolutional net.

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use image::imageops::FilterType;
use tract_onnx::prelude::*;

/// Frames are scaled so their longest side fits this square canvas (a multiple of 32, as the
/// network needs); door-distance faces stay well above the detector's minimum size.
pub const CANVAS: usize = 320;
/// Heat-map cells above this are face centres.
const MIN_SCORE: f32 = 0.5;
/// Overlapping boxes above this intersection-over-union are one face.
const NMS_IOU: f32 = 0.3;
/// The outputs are at a quarter of the input resolution.
const STRIDE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("cannot load the face detector {path}: {detail}; run `facereko models fetch`")]
    Load { path: String, detail: String },
    #[error("face detection failed: {0}")]
    Run(String),
}

/// One face, in the pixel coordinates of the image given to [`Detector::detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    /// 0–1.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corner (as seen in the image).
    pub landmarks: [(f32, f32); 5],
}

impl Detection {
    pub fn area(&self) -> f32 {
        self.width * self.height
    }

    fn iou(&self, other: &Detection) -> f32 {
        let x1 = self.left.max(other.left);
        let y1 = self.top.max(other.top);
        let x2 = (self.left + self.width).min(other.left + other.width);
        let y2 = (self.top + self.height).min(other.top + other.height);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        inter / (self.area() + other.area() - inter).max(f32::EPSILON)
    }
}

pub struct Detector {
    plan: Arc<TypedRunnableModel>,
}

impl Detector {
    pub fn load(path: &Path) -> Result<Self, DetectorError> {
        let failed = |e: TractError| DetectorError::Load { path: path.display().to_string(), detail: format!("{e:#}") };
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(failed)?;
        // The file pins a 32×32 input and matching outputs: give the real input and let tract infer the rest.
        model.set_input_fact(0, f32::fact([1, 3, CANVAS, CANVAS]).into()).map_err(failed)?;
        for output in 0..model.outputs.len() {
            model.set_output_fact(output, InferenceFact::default()).map_err(failed)?;
        }
        let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(failed)?;
        Ok(Self { plan })
    }

    /// Faces in `image`, highest score first, overlapping detections merged.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        // Shrink large frames to fit; never enlarge small ones (it blurs the landmarks).
        let scale = (CANVAS as f32 / width.max(height) as f32).min(1.0);
        let scaled_w = ((width as f32 * scale).round() as u32).clamp(1, CANVAS as u32);
        let scaled_h = ((height as f32 * scale).round() as u32).clamp(1, CANVAS as u32);
        let scaled = image::imageops::resize(image, scaled_w, scaled_h, FilterType::Triangle);

        // NCHW, RGB in 0..255 with no normalisation; the unused part of the canvas stays black.
        let plane = CANVAS * CANVAS;
        let mut planar = vec![0f32; 3 * plane];
        for (x, y, pixel) in scaled.enumerate_pixels() {
            for channel in 0..3 {
                planar[channel * plane + y as usize * CANVAS + x as usize] = f32::from(pixel.0[channel]);
            }
        }
        let input =
            Tensor::from_shape(&[1, 3, CANVAS, CANVAS], &planar).map_err(|e| DetectorError::Run(e.to_string()))?;
        let outputs = self.plan.run(tvec!(input.into())).map_err(|e| DetectorError::Run(format!("{e:#}")))?;
        let [heat, box_scale, offset, landmarks] = outputs.as_slice() else {
            return Err(DetectorError::Run(format!("expected 4 outputs, got {}", outputs.len())));
        };
        let (heat, box_scale, offset, landmarks) =
            (four_d(heat)?, four_d(box_scale)?, four_d(offset)?, four_d(landmarks)?);

        let mut found = Vec::new();
        let (rows, cols) = (heat.shape()[2], heat.shape()[3]);
        for i in 0..rows {
            for j in 0..cols {
                let score = heat[[0, 0, i, j]];
                if score <= MIN_SCORE {
                    continue;
                }
                let h = box_scale[[0, 0, i, j]].exp() * STRIDE as f32;
                let w = box_scale[[0, 1, i, j]].exp() * STRIDE as f32;
                let left = ((j as f32 + offset[[0, 1, i, j]] + 0.5) * STRIDE as f32 - w / 2.0).max(0.0);
                let top = ((i as f32 + offset[[0, 0, i, j]] + 0.5) * STRIDE as f32 - h / 2.0).max(0.0);
                let mut points = [(0.0, 0.0); 5];
                for (k, point) in points.iter_mut().enumerate() {
                    let x = left + landmarks[[0, 2 * k + 1, i, j]] * w;
                    let y = top + landmarks[[0, 2 * k, i, j]] * h;
                    *point = (x / scale, y / scale);
                }
                let right = (left + w).min(scaled_w as f32);
                let bottom = (top + h).min(scaled_h as f32);
                found.push(Detection {
                    left: left / scale,
                    top: top / scale,
                    width: (right - left).max(0.0) / scale,
                    height: (bottom - top).max(0.0) / scale,
                    score,
                    landmarks: points,
                });
            }
        }
        Ok(suppress_overlaps(found))
    }
}

impl Detector {
    /// Faces in `image` looked for more closely, for a face too small to be found in the whole
    /// picture scaled to the canvas (the portrait on a photographed ID card): the picture is
    /// searched in overlapping parts of half its width and height, and whole, each enlarged to
    /// fill the canvas. Boxes and landmarks are in `image`'s pixels; overlaps merged.
    pub fn detect_closer(&self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
        let (width, height) = image.dimensions();
        if width < 2 || height < 2 {
            return Ok(Vec::new());
        }
        let (part_w, part_h) = (width.div_ceil(2), height.div_ceil(2));
        let mut parts = vec![(0, 0, width, height)];
        for y in [0, (height - part_h) / 2, height - part_h] {
            for x in [0, (width - part_w) / 2, width - part_w] {
                parts.push((x, y, part_w, part_h));
            }
        }
        let mut found = Vec::new();
        for (x, y, w, h) in parts {
            let enlarge = CANVAS as f32 / w.max(h) as f32;
            if enlarge <= 1.0 && (w, h) == (width, height) {
                // The whole picture already fills the canvas: `detect` saw it as it is.
                continue;
            }
            let part = image::imageops::crop_imm(image, x, y, w, h).to_image();
            let (scaled_w, scaled_h) =
                (((w as f32 * enlarge).round() as u32).max(1), ((h as f32 * enlarge).round() as u32).max(1));
            let scaled = image::imageops::resize(&part, scaled_w, scaled_h, FilterType::CatmullRom);
            let back = |(px, py): (f32, f32)| (x as f32 + px / enlarge, y as f32 + py / enlarge);
            for detection in self.detect(&scaled)? {
                let (left, top) = back((detection.left, detection.top));
                found.push(Detection {
                    left,
                    top,
                    width: detection.width / enlarge,
                    height: detection.height / enlarge,
                    score: detection.score,
                    landmarks: detection.landmarks.map(back),
                });
            }
        }
        Ok(suppress_overlaps(found))
    }
}

/// One output as a 4-D array view.
fn four_d(value: &TValue) -> Result<tract_ndarray::ArrayView4<'_, f32>, DetectorError> {
    value
        .to_plain_array_view::<f32>()
        .and_then(|view| Ok(view.into_dimensionality::<tract_ndarray::Ix4>()?))
        .map_err(|e| DetectorError::Run(format!("unexpected output: {e}")))
}

/// Greedy non-maximum suppression: keeps the best-scored box of each overlapping group.
fn suppress_overlaps(mut candidates: Vec<Detection>) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in candidates {
        if kept.iter().all(|k| k.iou(&candidate) <= NMS_IOU) {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(left: f32, top: f32, side: f32, score: f32) -> Detection {
        Detection { left, top, width: side, height: side, score, landmarks: [(0.0, 0.0); 5] }
    }

    #[test]
    fn overlapping_boxes_merge_into_the_best_one() {
        let kept = suppress_overlaps(vec![
            detection(0.0, 0.0, 100.0, 0.7),
            detection(5.0, 5.0, 100.0, 0.9),
            detection(300.0, 0.0, 50.0, 0.6),
        ]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].left, 300.0);
    }
}
