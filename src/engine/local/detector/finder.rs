//! BlazeFace (MediaPipe's short-range detector, 128×128): finds where faces are for a tenth of
//! CenterFace's work. The embedders are aligned on CenterFace's five landmarks, which CenterFace
//! then gives from only the region around the largest face found ([`super`]).

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, TensorProto, tensor_proto::DataType};
use tract_onnx::prelude::*;

use super::DetectorError;
use crate::engine::local::depthwise;

/// The network's square input.
const SIDE: usize = 128;
/// The two output layers: cells per row and anchors per cell (strides 8 and 16).
const LAYERS: [(usize, usize); 2] = [(16, 2), (8, 6)];
/// Values per anchor in the box outputs: centre offset, size, then six key points.
const BOX_VALUES: usize = 16;
/// Anchors scoring above this are faces. Lower than MediaPipe's 0.75: a weak find only costs a
/// look by CenterFace, a missed one the whole picture's.
const MIN_SCORE: f32 = 0.5;
/// Overlapping finds above this intersection-over-union are one face.
const MERGE_IOU: f32 = 0.3;

/// Where a face is, in the pixels of the picture given to [`Finder::find`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub score: f32,
}

impl Found {
    pub fn area(&self) -> f32 {
        self.width * self.height
    }

    /// `(left, top, width, height)`.
    pub fn place(&self) -> (f32, f32, f32, f32) {
        (self.left, self.top, self.width, self.height)
    }

    fn iou(&self, other: &Found) -> f32 {
        super::iou(self.place(), other.place())
    }
}

pub struct Finder {
    runnable: Arc<TypedRunnableModel>,
}

impl Finder {
    pub fn load(path: &Path) -> Result<Self, DetectorError> {
        let failed = |e: TractError| DetectorError::Load { path: path.display().to_string(), detail: format!("{e:#}") };
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_path(path).map_err(failed)?;
        // The file's ConstantOfShape nodes carry no `value`; the ONNX default is a float zero, but
        // tract makes it an f64 one, which the graph's f32 arithmetic then refuses.
        for node in proto.graph.iter_mut().flat_map(|graph| graph.node.iter_mut()) {
            if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
                node.attribute.push(AttributeProto {
                    name: "value".into(),
                    r#type: AttributeType::Tensor as i32,
                    t: Some(TensorProto {
                        dims: vec![1],
                        data_type: DataType::Float as i32,
                        float_data: vec![0.0],
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
        }
        let mut model = onnx.model_for_proto_model(&proto).map_err(failed)?;
        model.set_input_fact(0, f32::fact([1, SIDE, SIDE, 3]).into()).map_err(failed)?;
        let runnable = model
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .and_then(depthwise::into_optimized)
            .and_then(|m| m.into_runnable())
            .map_err(failed)?;
        Ok(Self { runnable })
    }

    /// Faces in `image`, best first.
    pub fn find(&self, image: &RgbImage) -> Result<Vec<Found>, DetectorError> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        // The picture in the canvas's top-left corner at its own proportions, the rest black
        // (-1 after scaling to -1..1).
        let scale = SIDE as f32 / width.max(height) as f32;
        let scaled_w = ((width as f32 * scale).round() as u32).clamp(1, SIDE as u32);
        let scaled_h = ((height as f32 * scale).round() as u32).clamp(1, SIDE as u32);
        // Box averaging in integers: a filtered resize of a whole frame cost more than the network
        // (measured: 9.6 ms for a 640×480 frame against about 4 for BlazeFace itself).
        let scaled = image::imageops::thumbnail(image, scaled_w, scaled_h);
        let mut input = vec![-1f32; SIDE * SIDE * 3];
        for (x, y, pixel) in scaled.enumerate_pixels() {
            let at = (y as usize * SIDE + x as usize) * 3;
            for channel in 0..3 {
                input[at + channel] = f32::from(pixel.0[channel]) / 127.5 - 1.0;
            }
        }
        let input = Tensor::from_shape(&[1, SIDE, SIDE, 3], &input).map_err(|e| DetectorError::Run(e.to_string()))?;
        let outputs = self.runnable.run(tvec!(input.into())).map_err(|e| DetectorError::Run(format!("{e:#}")))?;
        let [scores_1, scores_2, boxes_1, boxes_2] = outputs.as_slice() else {
            return Err(DetectorError::Run(format!("expected 4 outputs, got {}", outputs.len())));
        };
        let mut found = Vec::new();
        for ((cells, anchors), (scores, boxes)) in LAYERS.into_iter().zip([(scores_1, boxes_1), (scores_2, boxes_2)]) {
            let (scores, boxes) =
                (flat(scores, cells * cells * anchors)?, flat(boxes, cells * cells * anchors * BOX_VALUES)?);
            for (index, &raw) in scores.iter().enumerate() {
                let score = 1.0 / (1.0 + (-raw).exp());
                if score <= MIN_SCORE {
                    continue;
                }
                let cell = index / anchors;
                // Anchor centres and offsets are in canvas pixels here.
                let anchor_x = ((cell % cells) as f32 + 0.5) * SIDE as f32 / cells as f32;
                let anchor_y = ((cell / cells) as f32 + 0.5) * SIDE as f32 / cells as f32;
                let values = &boxes[index * BOX_VALUES..][..4];
                let (centre_x, centre_y, w, h) = (anchor_x + values[0], anchor_y + values[1], values[2], values[3]);
                found.push(Found {
                    left: (centre_x - w / 2.0) / scale,
                    top: (centre_y - h / 2.0) / scale,
                    width: w / scale,
                    height: h / scale,
                    score,
                });
            }
        }
        Ok(merge(found))
    }
}

/// One output's values, checked to be `len` long.
fn flat(value: &TValue, len: usize) -> Result<&[f32], DetectorError> {
    let values = value
        .to_plain_array_view::<f32>()
        .ok()
        .and_then(|view| view.to_slice())
        .ok_or_else(|| DetectorError::Run("unexpected output: not contiguous f32 values".into()))?;
    if values.len() != len {
        return Err(DetectorError::Run(format!("expected {len} values in an output, got {}", values.len())));
    }
    Ok(values)
}

/// Overlapping finds as one face each: the best one's score, the boxes averaged by score (as
/// MediaPipe blends them, steadier than keeping one).
fn merge(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut merged = Vec::new();
    let mut taken = vec![false; found.len()];
    for i in 0..found.len() {
        if taken[i] {
            continue;
        }
        let best = found[i];
        let (mut sum, mut weight) = ([0f32; 4], 0f32);
        for j in i..found.len() {
            if taken[j] || (j > i && best.iou(&found[j]) < MERGE_IOU) {
                continue;
            }
            taken[j] = true;
            let f = found[j];
            for (s, v) in sum.iter_mut().zip([f.left, f.top, f.width, f.height]) {
                *s += v * f.score;
            }
            weight += f.score;
        }
        let [left, top, width, height] = sum.map(|s| s / weight);
        merged.push(Found { left, top, width, height, score: best.score });
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(left: f32, side: f32, score: f32) -> Found {
        Found { left, top: 0.0, width: side, height: side, score }
    }

    #[test]
    fn overlapping_finds_blend_into_one_face() {
        let merged = merge(vec![found(0.0, 100.0, 0.6), found(10.0, 100.0, 0.9), found(500.0, 50.0, 0.7)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].score, 0.9);
        assert!((merged[0].left - 6.0).abs() < 1e-4, "weighted by score: {merged:?}");
        assert_eq!(merged[1].left, 500.0);
    }
}
