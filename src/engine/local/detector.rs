//! CenterFace: face boxes with five landmarks, from one pass of a small fully convolutional net;
//! for the largest face only, it looks just where BlazeFace ([`finder`]) found it.

pub mod finder;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use image::RgbImage;
use image::imageops::FilterType;
use tract_onnx::prelude::*;

use super::depthwise;
use crate::models::ModelPaths;
use finder::Finder;

/// Pictures are shrunk so their longest side fits this (a multiple of 32, as the network needs);
/// door-distance faces stay well above the detector's minimum size. Scaling them to a smaller
/// side was tried: it moved the landmarks of small photos enough to lose accuracy.
pub const CANVAS: usize = 320;
/// The sides a whole picture's canvas can have. Each side of the canvas is the smallest of these
/// that holds the picture's (after shrinking to [`CANVAS`]): a 250×250 photo is looked at on
/// 256×256 and a 4:3 frame on 320×256, not both on 320×320, whose black margin the network
/// worked through as hard as the picture (the work grows with the canvas's area). The picture's
/// pixels and scale stay as they were. No side below 256: on a 160×160 canvas the faces of
/// 160-pixel crops reached its edges, and East-Asian accuracy fell (README, "Performance"). Few
/// sides, so that few plans are made: each holds its own copy of the network's weights.
const CANVAS_SIDES: [usize; 2] = [256, CANVAS];
/// The canvas of a door's frames: landscape frames (4:3, 5:4, 3:2, 16:9) shrunk to [`CANVAS`]
/// all fit it. Planned before the first tap ([`Detector::prepare_for_frames`]).
const FRAME_CANVAS: (usize, usize) = (CANVAS, 256);
/// The side a region around a known face is shrunk to: it spans [`REGION_SPAN`] face widths, so
/// a face at door distance is still about 80 pixels wide there, and the work is a quarter of the
/// whole frame's.
pub const REGION_CANVAS: usize = 160;
/// How many times the known face's size the region around it spans, for the face's movement
/// between two frames and the context the network needs around a face.
pub const REGION_SPAN: f32 = 2.0;
/// The canvases the region around the largest face is looked at on (with [`REGION_CANVAS`] among
/// them, shared with a burst's later frames), smallest first: a face in a wide shot needs the
/// smallest, a face at door distance in a 640×480 frame the largest. A larger one would cost
/// nearly the whole canvas's work (measured: 256×256 saved a tenth of it).
const NEAR_CANVASES: [usize; 3] = [128, REGION_CANVAS, 192];
/// How many times a found face's size the canvas around it spans: context for the network.
const NEAR_SPAN: f32 = 2.0;
/// The least context taken to keep a face off a smaller scale.
const MIN_NEAR_SPAN: f32 = 1.5;
/// The network's coarsest stride: a canvas starting on this grid sees a face on the same cells.
const GRID: u32 = 32;
/// A face BlazeFace finds narrower than this share of the picture's longest side (about 21 pixels
/// of its 128×128 view) is not trusted to be the largest: at that size it misses faces, so the
/// whole picture is looked at instead.
const MIN_FOUND_SHARE: f32 = 1.0 / 6.0;
/// Heat-map cells above this are face centres.
const MIN_SCORE: f32 = 0.5;
/// Overlapping boxes above this intersection-over-union are one face.
const NMS_IOU: f32 = 0.3;
/// The outputs are at a quarter of the input resolution.
const STRIDE: usize = 4;

#[derive(Debug, Clone, thiserror::Error)]
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

    /// This detection in a part of a picture, scaled by `factor`, in the whole picture's pixels,
    /// the part's top-left corner at (`x`, `y`).
    fn mapped(self, x: u32, y: u32, factor: f32) -> Self {
        let back = |(px, py): (f32, f32)| (x as f32 + px * factor, y as f32 + py * factor);
        let (left, top) = back((self.left, self.top));
        Self {
            left,
            top,
            width: self.width * factor,
            height: self.height * factor,
            landmarks: self.landmarks.map(back),
            ..self
        }
    }

    /// This detection in a picture `scale` times the size of the one it was found in (divided,
    /// not multiplied by the inverse: the landmarks stay those of every earlier release).
    fn unscaled(self, scale: f32) -> Self {
        let back = |(px, py): (f32, f32)| (px / scale, py / scale);
        Self {
            left: self.left / scale,
            top: self.top / scale,
            width: self.width / scale,
            height: self.height / scale,
            landmarks: self.landmarks.map(back),
            ..self
        }
    }

    fn iou(&self, other: &Detection) -> f32 {
        iou((self.left, self.top, self.width, self.height), (other.left, other.top, other.width, other.height))
    }
}

/// Intersection over union of two boxes `(left, top, width, height)`.
fn iou(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> f32 {
    let x1 = a.0.max(b.0);
    let y1 = a.1.max(b.1);
    let x2 = (a.0 + a.2).min(b.0 + b.2);
    let y2 = (a.1 + a.3).min(b.1 + b.3);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    inter / (a.2 * a.3 + b.2 * b.3 - inter).max(f32::EPSILON)
}

/// The network made ready for one canvas size.
struct Plan {
    width: usize,
    height: usize,
    runnable: Arc<TypedRunnableModel>,
}

impl Plan {
    fn square(model: &InferenceModel, side: usize) -> TractResult<Self> {
        Self::of(model, (side, side))
    }

    fn of(model: &InferenceModel, (width, height): (usize, usize)) -> TractResult<Self> {
        // The file pins a 32×32 input and matching outputs: give the real input and let tract
        // infer the rest.
        let mut model = model.clone();
        model.set_input_fact(0, f32::fact([1, 3, height, width]).into())?;
        for output in 0..model.outputs.len() {
            model.set_output_fact(output, InferenceFact::default())?;
        }
        let model = depthwise::into_optimized(model.into_typed()?.into_decluttered()?)?;
        Ok(Self { width, height, runnable: model.into_runnable()? })
    }
}

pub struct Detector {
    /// For whole pictures: the plan for the canvas `CANVAS_SIDES[i]` wide and `CANVAS_SIDES[j]`
    /// high at `[i][j]`, made when a picture first needs it.
    whole: [[OnceLock<Result<Plan, DetectorError>>; CANVAS_SIDES.len()]; CANVAS_SIDES.len()],
    /// What only a door's frames need, planned when first asked for ([`Self::prepare_for_frames`]):
    /// a one-shot command such as `eval` or `compare` looks at every face and never needs it.
    for_frames: OnceLock<Result<FramePlans, DetectorError>>,
    /// Where the two models are read from when a plan is made. CenterFace is read again for each
    /// (once per canvas): keeping the file's graph in memory cost the daemon 6.5 MiB.
    paths: ModelPaths,
}

/// BlazeFace and the small canvases around a found face.
struct FramePlans {
    /// Absent from models folders fetched before it was added: the largest face is then looked
    /// for in the whole picture.
    finder: Option<Finder>,
    /// For the regions around a face, on [`NEAR_CANVASES`], smallest first.
    near: Vec<Plan>,
}

impl FramePlans {
    fn load(paths: &ModelPaths) -> Result<Self, DetectorError> {
        let finder = if paths.finder.is_file() {
            Some(Finder::load(&paths.finder)?)
        } else {
            tracing::warn!(
                missing = %paths.finder.display(),
                "looking for faces without the fast face finder, which is slower: run `facereko models fetch` to add it"
            );
            None
        };
        let model = read_centerface(paths)?;
        let near = NEAR_CANVASES
            .iter()
            .map(|&side| Plan::square(&model, side))
            .collect::<TractResult<_>>()
            .map_err(|e| load_failed(paths, e))?;
        Ok(Self { finder, near })
    }

    /// The plan for the canvas of side `side`, one of [`NEAR_CANVASES`].
    fn plan(&self, side: usize) -> &Plan {
        self.near.iter().find(|plan| plan.width == side).expect("a canvas of NEAR_CANVASES")
    }

    /// Faces in `image` near the place `(left, top, width, height)` (in `image`'s pixels), looked
    /// at on the smallest of [`NEAR_CANVASES`] that holds [`NEAR_SPAN`] times the face around it, at
    /// the scale [`Detector::detect`] looks at the whole picture, so that the face's pixels are those it
    /// sees and the landmarks stay within a pixel of its; a face too large for the largest canvas
    /// is shrunk to fit it.
    fn detect_near(
        &self,
        image: &RgbImage,
        (left, top, face_width, face_height): (f32, f32, f32, f32),
    ) -> Result<Vec<Detection>, DetectorError> {
        let Some((scaled, scale)) = shrunk(image, CANVAS) else { return Ok(Vec::new()) };
        let (width, height) = scaled.dimensions();
        let (centre_x, centre_y) = ((left + face_width / 2.0) * scale, (top + face_height / 2.0) * scale);
        // The top-left corner and the side of the square spanning `span` faces around the face.
        let around = |span: f32| {
            let half = face_width.max(face_height) * scale * span / 2.0;
            // The canvas starts on the network's coarsest grid, as the whole picture's does, so
            // that the face falls on the same cells.
            let start = |centre: f32, limit: u32| (((centre - half).max(0.0) as u32) / GRID * GRID).min(limit - 1);
            let (x, y) = (start(centre_x, width), start(centre_y, height));
            let needed =
                |start: u32, centre: f32, limit: u32| ((centre + half).min(limit as f32) - start as f32).max(1.0);
            (x, y, needed(x, centre_x, width).max(needed(y, centre_y, height)))
        };
        // Less context before a smaller scale: shrinking moves the landmarks more.
        let largest_side = NEAR_CANVASES[NEAR_CANVASES.len() - 1] as f32;
        let (x, y, side) = [NEAR_SPAN, MIN_NEAR_SPAN]
            .map(around)
            .into_iter()
            .find(|&(_, _, side)| side <= largest_side)
            .unwrap_or_else(|| around(NEAR_SPAN));
        let found = match self.near.iter().find(|plan| plan.width as f32 >= side) {
            Some(plan) => run(plan, &scaled, (x, y))?,
            None => {
                // A face over half the largest canvas (close to the camera) is shrunk to fit it:
                // still about 90 pixels wide there, its landmarks stay sharp.
                let largest = self.near.last().expect("NEAR_CANVASES is not empty");
                let side = side.ceil() as u32;
                let region = image::imageops::crop_imm(scaled.as_ref(), x, y, side, side).to_image();
                let Some((small, factor)) = shrunk(&region, largest.width) else { return Ok(Vec::new()) };
                let seen = run(largest, &small, (0, 0))?;
                seen.into_iter().map(|detection| detection.mapped(x, y, 1.0 / factor)).collect()
            }
        };
        Ok(found.into_iter().map(|detection| detection.unscaled(scale)).collect())
    }
}

/// CenterFace's file could not be read or planned.
fn load_failed(paths: &ModelPaths, error: TractError) -> DetectorError {
    DetectorError::Load { path: paths.detector.display().to_string(), detail: format!("{error:#}") }
}

/// CenterFace's graph as its file gives it, before any plan.
fn read_centerface(paths: &ModelPaths) -> Result<InferenceModel, DetectorError> {
    tract_onnx::onnx().model_for_path(&paths.detector).map_err(|e| load_failed(paths, e))
}

/// The canvas, `(width, height)`, of a picture `width`×`height` pixels once shrunk to [`CANVAS`],
/// as indices into [`CANVAS_SIDES`].
fn canvas_for(width: u32, height: u32) -> (usize, usize) {
    let fitting =
        |side: u32| CANVAS_SIDES.iter().position(|&canvas| canvas >= side as usize).unwrap_or(CANVAS_SIDES.len() - 1);
    (fitting(width), fitting(height))
}

impl Detector {
    /// CenterFace, read from its file (a broken one fails here); each canvas is planned when first
    /// needed, and the rest a door's frames need when first asked for.
    pub fn load(paths: &ModelPaths) -> Result<Self, DetectorError> {
        read_centerface(paths)?;
        Ok(Self { whole: Default::default(), for_frames: OnceLock::new(), paths: paths.clone() })
    }

    /// Plans now what a door's frames need (the canvas of a landscape frame, BlazeFace when the
    /// models folder has it, and the small canvases around a face), so that the first tap does not
    /// wait for it, and a broken model file stops the daemon at its start.
    pub fn prepare_for_frames(&self) -> Result<(), DetectorError> {
        let (width, height) = FRAME_CANVAS;
        self.whole_plan(canvas_for(width as u32, height as u32))?;
        self.frame_plans().map(|_| ())
    }

    fn frame_plans(&self) -> Result<&FramePlans, DetectorError> {
        self.for_frames.get_or_init(|| FramePlans::load(&self.paths)).as_ref().map_err(Clone::clone)
    }

    /// The plan for the canvas at `(i, j)` in [`CANVAS_SIDES`], made now if no picture needed it
    /// before.
    fn whole_plan(&self, (i, j): (usize, usize)) -> Result<&Plan, DetectorError> {
        self.whole[i][j]
            .get_or_init(|| {
                let (width, height) = (CANVAS_SIDES[i], CANVAS_SIDES[j]);
                // Planning takes tens of milliseconds: the log says why a first picture was slower.
                tracing::debug!(canvas = %format!("{width}×{height}"), "planning the face detector for a canvas");
                let model = read_centerface(&self.paths)?;
                Plan::of(&model, (width, height)).map_err(|e| load_failed(&self.paths, e))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Faces in `image`, highest score first, overlapping detections merged.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, DetectorError> {
        let Some((scaled, scale)) = shrunk(image, CANVAS) else { return Ok(Vec::new()) };
        let (width, height) = scaled.dimensions();
        let found = run(self.whole_plan(canvas_for(width, height))?, &scaled, (0, 0))?;
        Ok(found.into_iter().map(|detection| detection.unscaled(scale)).collect())
    }

    /// The largest face in `image`, as [`Self::detect`] finds it, for a fraction of the work when
    /// [`Self::detect_where_found`] finds it; otherwise CenterFace looks at the whole picture.
    pub fn detect_largest(&self, image: &RgbImage) -> Result<Option<Detection>, DetectorError> {
        match self.detect_where_found(image)? {
            Some(found) => Ok(Some(found)),
            None => Ok(largest(self.detect(image)?)),
        }
    }

    /// The largest face in `image` where BlazeFace finds it: CenterFace looks only there
    /// ([`Self::detect_near`]). `None` when BlazeFace finds no face, only a small one, or one
    /// CenterFace does not see there. Only for the largest face: BlazeFace can miss the smaller of
    /// two faces side by side, so it never answers for every face.
    pub fn detect_where_found(&self, image: &RgbImage) -> Result<Option<Detection>, DetectorError> {
        let plans = self.frame_plans()?;
        let Some(finder) = &plans.finder else { return Ok(None) };
        let found = finder.find(image)?.into_iter().max_by(|a, b| a.area().total_cmp(&b.area()));
        let min_width = image.width().max(image.height()) as f32 * MIN_FOUND_SHARE;
        match found.filter(|found| found.width >= min_width) {
            Some(found) => Ok(largest(plans.detect_near(image, found.place())?)),
            None => Ok(None),
        }
    }

    /// Faces in the square region around the box `(left, top, width, height)` of a face found in
    /// the frame before (in `image`'s pixels), looked at on the small [`REGION_CANVAS`]; boxes and
    /// landmarks in `image`'s pixels.
    pub fn detect_in(
        &self,
        image: &RgbImage,
        (left, top, face_width, face_height): (f32, f32, f32, f32),
    ) -> Result<Vec<Detection>, DetectorError> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        let side = ((face_width.max(face_height) * REGION_SPAN).round() as u32).clamp(1, width.min(height));
        let centre = |start: f32, size: f32, limit: u32| {
            ((start + size / 2.0 - side as f32 / 2.0).round().max(0.0) as u32).min(limit - side)
        };
        let (x, y) = (centre(left, face_width, width), centre(top, face_height, height));
        let region = image::imageops::crop_imm(image, x, y, side, side).to_image();
        let found = detect_on(&region, self.frame_plans()?.plan(REGION_CANVAS))?;
        Ok(found.into_iter().map(|detection| detection.mapped(x, y, 1.0)).collect())
    }

    /// Faces in `image` near the place `(left, top, width, height)` of a face found there (in
    /// `image`'s pixels), as [`FramePlans::detect_near`] looks for them.
    pub fn detect_near(&self, image: &RgbImage, place: (f32, f32, f32, f32)) -> Result<Vec<Detection>, DetectorError> {
        self.frame_plans()?.detect_near(image, place)
    }
}

/// Faces in `image` shrunk (never enlarged: it blurs the landmarks) to fit `plan`'s square canvas.
fn detect_on(image: &RgbImage, plan: &Plan) -> Result<Vec<Detection>, DetectorError> {
    let Some((scaled, scale)) = shrunk(image, plan.width) else { return Ok(Vec::new()) };
    let found = run(plan, &scaled, (0, 0))?;
    Ok(found.into_iter().map(|detection| detection.unscaled(scale)).collect())
}

/// `image` shrunk (never enlarged: it blurs the landmarks) so its longest side fits `side`, with
/// the factor; `None` for an empty image.
fn shrunk(image: &RgbImage, side: usize) -> Option<(Cow<'_, RgbImage>, f32)> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return None;
    }
    let scale = (side as f32 / width.max(height) as f32).min(1.0);
    if scale == 1.0 {
        return Some((Cow::Borrowed(image), scale));
    }
    let scaled_w = ((width as f32 * scale).round() as u32).clamp(1, side as u32);
    let scaled_h = ((height as f32 * scale).round() as u32).clamp(1, side as u32);
    Some((Cow::Owned(image::imageops::resize(image, scaled_w, scaled_h, FilterType::Triangle)), scale))
}

/// Faces on `plan`'s canvas filled with `image` from `(x, y)` on (black past its edges), in
/// `image`'s pixels.
fn run(plan: &Plan, image: &RgbImage, (x0, y0): (u32, u32)) -> Result<Vec<Detection>, DetectorError> {
    let (side_w, side_h) = (plan.width, plan.height);
    let (width, height) = image.dimensions();
    let (shown_w, shown_h) =
        ((width.saturating_sub(x0)).min(side_w as u32), (height.saturating_sub(y0)).min(side_h as u32));
    // NCHW, RGB in 0..255 with no normalisation; the unused part of the canvas stays black.
    let plane = side_w * side_h;
    let mut planar = vec![0f32; 3 * plane];
    for y in 0..shown_h {
        for x in 0..shown_w {
            let pixel = image.get_pixel(x0 + x, y0 + y);
            for channel in 0..3 {
                planar[channel * plane + y as usize * side_w + x as usize] = f32::from(pixel.0[channel]);
            }
        }
    }
    let input = Tensor::from_shape(&[1, 3, side_h, side_w], &planar).map_err(|e| DetectorError::Run(e.to_string()))?;
    let outputs = plan.runnable.run(tvec!(input.into())).map_err(|e| DetectorError::Run(format!("{e:#}")))?;
    let [heat, box_scale, offset, landmarks] = outputs.as_slice() else {
        return Err(DetectorError::Run(format!("expected 4 outputs, got {}", outputs.len())));
    };
    let (heat, box_scale, offset, landmarks) = (four_d(heat)?, four_d(box_scale)?, four_d(offset)?, four_d(landmarks)?);

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
                *point = (x, y);
            }
            let right = (left + w).min(shown_w as f32);
            let bottom = (top + h).min(shown_h as f32);
            found.push(
                Detection {
                    left,
                    top,
                    width: (right - left).max(0.0),
                    height: (bottom - top).max(0.0),
                    score,
                    landmarks: points,
                }
                .mapped(x0, y0, 1.0),
            );
        }
    }
    Ok(suppress_overlaps(found))
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
            found.extend(self.detect(&scaled)?.into_iter().map(|detection| detection.mapped(x, y, 1.0 / enlarge)));
        }
        Ok(suppress_overlaps(found))
    }
}

fn largest(found: Vec<Detection>) -> Option<Detection> {
    found.into_iter().max_by(|a, b| a.area().total_cmp(&b.area()))
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
    fn a_picture_is_looked_at_on_the_smallest_canvas_that_holds_it() {
        let canvas = |width, height| {
            let (i, j) = canvas_for(width, height);
            (CANVAS_SIDES[i], CANVAS_SIDES[j])
        };
        assert_eq!(canvas(250, 250), (256, 256), "an LFW photo");
        assert_eq!(canvas(320, 240), (320, 256), "a 4:3 frame");
        assert_eq!(canvas(320, 180), (320, 256), "a 16:9 frame");
        assert_eq!(canvas(240, 320), (256, 320), "a portrait");
        assert_eq!(canvas(160, 160), (256, 256), "a small crop");
        assert_eq!(canvas(257, 320), (320, 320));
        assert_eq!(canvas(1, 1), (256, 256));
        assert_eq!(canvas(FRAME_CANVAS.0 as u32, FRAME_CANVAS.1 as u32), FRAME_CANVAS, "a canvas of its own");
    }

    #[test]
    fn every_depthwise_layer_of_centerface_runs_in_our_operator() {
        let paths = ModelPaths::in_dir(crate::models::test_models_dir());
        let model = read_centerface(&paths).expect("the models are fetched");
        let plan = Plan::square(&model, 128).unwrap();
        let ops: Vec<String> = plan.runnable.model().nodes.iter().map(|node| node.op.name().to_string()).collect();
        // The network has 17; a tract that declutters them into another form would leave them slow.
        assert_eq!(ops.iter().filter(|op| *op == "Depthwise").count(), 17, "{ops:?}");
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
