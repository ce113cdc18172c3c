//! A trained anti-spoofing model: how likely a detected face is a live one rather than a photo or
//! a screen held up to the camera, from a crop around the face.
//!
//! The model is `fr_liveness.onnx` from the npm package `faceplugin-face-recognition-js` (a small
//! network, of the MiniFASNet family by its layers). It looks at the face with a wide margin, where a bezel, a paper edge,
//! moiré or a print's flat tones show: the crop is a square of [`CROP_SCALE`] face-box heights
//! around the box's centre, kept inside the picture, resized to 128×128, colours in 0..255 in the
//! order blue, green, red. Of its three outputs, the first is "live". It is one signal among the
//! liveness checks, never a verdict on its own (README, "Face models", has what it misses).
//!
//! The package's own JavaScript feeds it red, green, blue, and so did the first measurement (it
//! lost a third of real photos). Networks of its family are trained on pictures read with OpenCV,
//! in blue-green-red order; fed that way it keeps 95% of lfw10's real photos at 0.5 instead of 68%,
//! separates synthetic screen replays better and the other synthetic attacks about as well
//! (`tests/python/antispoof_reference.py attacks … bgr|rgb`).

use std::path::Path;
use std::sync::Arc;

use image::{GenericImageView, Pixel};
use tract_onnx::prelude::*;

use super::detector::Detection;
use crate::models;

/// Side of the square the network takes.
pub const SIDE: usize = 128;
/// The crop's side in face-box heights, as the package's own pre-processing frames the face.
pub const CROP_SCALE: f32 = 2.7;
/// Which of the picture's red, green and blue each of the network's input planes takes.
const PLANES: [usize; 3] = [2, 1, 0];
/// Which of the network's outputs means "live".
const LIVE: usize = 0;
/// The network's outputs: live and two kinds of attack.
const CLASSES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum AntiSpoofError {
    #[error("cannot load the anti-spoofing model {path}: {detail}; run `facereko models fetch`")]
    Load { path: String, detail: String },
    #[error("no crop around a face box of {width}×{height} pixels in a {image_width}×{image_height} picture")]
    NoCrop { width: f32, height: f32, image_width: u32, image_height: u32 },
    #[error("the anti-spoofing model failed: {0}")]
    Run(String),
}

/// The square of the picture the model sees, in pixels of the picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub left: f32,
    pub top: f32,
    pub side: f32,
}

impl Crop {
    /// [`CROP_SCALE`] box heights around the box's centre, shrunk to the picture's shorter side if
    /// larger, and moved (not cut) to lie inside the picture: the model always sees a whole
    /// square, never a stretched one.
    pub fn around(face: &Detection, (width, height): (u32, u32)) -> Result<Self, AntiSpoofError> {
        let usable = face.height.is_finite() && face.height > 0.0 && face.left.is_finite() && face.top.is_finite();
        if !usable || width == 0 || height == 0 {
            return Err(AntiSpoofError::NoCrop {
                width: face.width,
                height: face.height,
                image_width: width,
                image_height: height,
            });
        }
        let (width, height) = (width as f32, height as f32);
        let side = (face.height * CROP_SCALE).min(width).min(height);
        let centre_x = face.left + face.width.max(0.0) / 2.0;
        let centre_y = face.top + face.height / 2.0;
        Ok(Self {
            left: (centre_x - side / 2.0).clamp(0.0, width - side),
            top: (centre_y - side / 2.0).clamp(0.0, height - side),
            side,
        })
    }
}

/// The network's input for `crop` of `image`: NCHW, blue-green-red in 0..255 as floats, sampled
/// bilinearly at the centres of 128×128 cells. A grey picture (an infrared camera's) gives its one
/// channel three times.
pub fn input<I>(image: &I, crop: &Crop) -> Vec<f32>
where
    I: GenericImageView,
    I::Pixel: Pixel<Subpixel = u8>,
{
    let (width, height) = image.dimensions();
    let step = crop.side / SIDE as f32;
    // Source pixel pairs and the weight of the second, for one axis.
    let axis = |start: f32, size: u32| -> Vec<(u32, u32, f32)> {
        (0..SIDE)
            .map(|i| {
                let at = (start + (i as f32 + 0.5) * step - 0.5).clamp(0.0, (size - 1) as f32);
                let first = at.floor();
                (first as u32, (first as u32 + 1).min(size - 1), at - first)
            })
            .collect()
    };
    let (columns, rows) = (axis(crop.left, width), axis(crop.top, height));
    let plane = SIDE * SIDE;
    let mut planar = vec![0f32; 3 * plane];
    for (row, &(y0, y1, wy)) in rows.iter().enumerate() {
        for (column, &(x0, x1, wx)) in columns.iter().enumerate() {
            let pixel = |x, y| image.get_pixel(x, y).to_rgb().0.map(f32::from);
            let (a, b, c, d) = (pixel(x0, y0), pixel(x1, y0), pixel(x0, y1), pixel(x1, y1));
            for (input_plane, channel) in PLANES.into_iter().enumerate() {
                let upper = a[channel] + (b[channel] - a[channel]) * wx;
                let lower = c[channel] + (d[channel] - c[channel]) * wx;
                planar[input_plane * plane + row * SIDE + column] = upper + (lower - upper) * wy;
            }
        }
    }
    planar
}

/// The model, loaded and planned for one crop at a time.
pub struct AntiSpoof {
    plan: Arc<TypedRunnableModel>,
}

impl AntiSpoof {
    /// Loads [`models::ANTISPOOF`] from the models folder.
    pub fn load(models_dir: &Path) -> Result<Self, AntiSpoofError> {
        let path = models_dir.join(models::ANTISPOOF);
        let failed = |detail: String| AntiSpoofError::Load { path: path.display().to_string(), detail };
        if !path.is_file() {
            return Err(failed("no such file".into()));
        }
        let plan = tract_onnx::onnx()
            .model_for_path(&path)
            .and_then(|mut model| {
                model.set_input_fact(0, f32::fact([1, 3, SIDE, SIDE]).into())?;
                super::depthwise::into_optimized(model.into_typed()?.into_decluttered()?)?.into_runnable()
            })
            .map_err(|e| failed(format!("{e:#}")))?;
        Ok(Self { plan })
    }

    /// The network's three raw outputs for `face` in `image` (live first).
    pub fn logits<I>(&self, image: &I, face: &Detection) -> Result<[f32; CLASSES], AntiSpoofError>
    where
        I: GenericImageView,
        I::Pixel: Pixel<Subpixel = u8>,
    {
        let crop = Crop::around(face, image.dimensions())?;
        let run = |e: TractError| AntiSpoofError::Run(format!("{e:#}"));
        let tensor = Tensor::from_shape(&[1, 3, SIDE, SIDE], &input(image, &crop)).map_err(run)?;
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(run)?;
        let values = outputs[0].to_plain_array_view::<f32>().map_err(run)?;
        let values: Vec<f32> = values.iter().copied().collect();
        values
            .try_into()
            .map_err(|v: Vec<f32>| AntiSpoofError::Run(format!("expected {CLASSES} outputs, got {}", v.len())))
    }

    /// How likely `face` in `image` is live, 0–1: the softmax of the logits' first.
    pub fn live_score<I>(&self, image: &I, face: &Detection) -> Result<f32, AntiSpoofError>
    where
        I: GenericImageView,
        I::Pixel: Pixel<Subpixel = u8>,
    {
        Ok(softmax(self.logits(image, face)?)[LIVE])
    }
}

fn softmax(logits: [f32; CLASSES]) -> [f32; CLASSES] {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp = logits.map(|v| (v - top).exp());
    let sum: f32 = exp.iter().sum();
    exp.map(|v| v / sum)
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma, Rgb, RgbImage};

    use super::*;

    fn face(left: f32, top: f32, width: f32, height: f32) -> Detection {
        Detection { left, top, width, height, score: 0.9, landmarks: [(0.0, 0.0); 5] }
    }

    #[test]
    fn the_crop_is_centred_on_the_box_when_the_picture_has_room() {
        let crop = Crop::around(&face(300.0, 200.0, 80.0, 100.0), (1000, 800)).unwrap();
        assert_eq!(crop.side, 270.0);
        assert_eq!((crop.left + crop.side / 2.0, crop.top + crop.side / 2.0), (340.0, 250.0));
    }

    #[test]
    fn at_an_edge_the_crop_moves_inside_and_keeps_its_size() {
        let size = (640, 480);
        let top_left = Crop::around(&face(-10.0, 5.0, 80.0, 100.0), size).unwrap();
        assert_eq!((top_left.left, top_left.top, top_left.side), (0.0, 0.0, 270.0));
        let bottom_right = Crop::around(&face(600.0, 440.0, 80.0, 100.0), size).unwrap();
        assert_eq!((bottom_right.left, bottom_right.top, bottom_right.side), (370.0, 210.0, 270.0));
    }

    #[test]
    fn a_face_too_large_for_the_margin_gets_the_largest_square_the_picture_holds() {
        // LFW's 250×250 photos: a 120-pixel face would want 324.
        let crop = Crop::around(&face(60.0, 70.0, 100.0, 120.0), (250, 250)).unwrap();
        assert_eq!((crop.left, crop.top, crop.side), (0.0, 0.0, 250.0));
        let wide = Crop::around(&face(500.0, 40.0, 100.0, 120.0), (1280, 200)).unwrap();
        assert_eq!((wide.left, wide.top, wide.side), (450.0, 0.0, 200.0));
    }

    #[test]
    fn empty_boxes_and_pictures_have_no_crop() {
        for (detection, size) in [
            (face(10.0, 10.0, 50.0, 0.0), (100, 100)),
            (face(10.0, 10.0, 50.0, f32::NAN), (100, 100)),
            (face(f32::INFINITY, 10.0, 50.0, 50.0), (100, 100)),
            (face(10.0, 10.0, 50.0, 50.0), (0, 100)),
        ] {
            assert!(matches!(Crop::around(&detection, size), Err(AntiSpoofError::NoCrop { .. })), "{detection:?}");
        }
    }

    fn gradient(x: u32, y: u32) -> u8 {
        ((x * 3 + y * 5) % 256) as u8
    }

    #[test]
    fn a_grey_picture_gives_its_channel_three_times_as_its_rgb_copy_would() {
        let grey = GrayImage::from_fn(200, 150, |x, y| Luma([gradient(x, y)]));
        let rgb = RgbImage::from_fn(200, 150, |x, y| Rgb([gradient(x, y); 3]));
        let crop = Crop::around(&face(60.0, 40.0, 40.0, 50.0), grey.dimensions()).unwrap();
        let from_grey = input(&grey, &crop);
        assert_eq!(from_grey, input(&rgb, &crop));
        let plane = SIDE * SIDE;
        assert_eq!(from_grey[..plane], from_grey[plane..2 * plane]);
        assert_eq!(from_grey[..plane], from_grey[2 * plane..]);
    }

    #[test]
    fn the_input_is_planar_bgr_in_0_to_255_sampled_at_cell_centres() {
        // A crop of exactly 128 pixels samples each pixel as it is.
        let image = RgbImage::from_fn(300, 300, |x, y| Rgb([x as u8, y as u8, 200]));
        let crop = Crop { left: 10.0, top: 20.0, side: SIDE as f32 };
        let values = input(&image, &crop);
        let plane = SIDE * SIDE;
        assert_eq!(values.len(), 3 * plane);
        assert_eq!((values[0], values[plane], values[2 * plane]), (200.0, 20.0, 10.0));
        let last = plane - 1;
        assert_eq!((values[last], values[plane + last], values[2 * plane + last]), (200.0, 147.0, 137.0));
        // Twice as large: each sample falls between two pixels.
        let halves = input(&image, &Crop { left: 0.0, top: 0.0, side: 2.0 * SIDE as f32 });
        let red = 2 * plane;
        assert_eq!((halves[red], halves[red + 1], halves[plane]), (0.5, 2.5, 0.5));
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let scores = softmax([1000.0, 0.0, -1000.0]);
        assert_eq!(scores, [1.0, 0.0, 0.0]);
        let even = softmax([2.0, 2.0, 2.0]);
        assert!(even.iter().all(|s| (s - 1.0 / 3.0).abs() < 1e-6));
    }

    #[test]
    fn a_missing_model_names_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = AntiSpoof::load(dir.path()).err().expect("no model in an empty folder").to_string();
        assert!(err.contains(models::ANTISPOOF) && err.contains("facereko models fetch"), "{err}");
    }

    #[test]
    fn a_grey_frame_scores_as_its_rgb_copy() {
        let model = AntiSpoof::load(&models::test_models_dir()).expect("the models are fetched");
        let samples = models::samples_dir(models::test_models_dir());
        let grey = image::open(samples.join("obama.jpg")).unwrap().to_luma8();
        let replicated = image::DynamicImage::ImageLuma8(grey.clone()).to_rgb8();
        let (width, height) = grey.dimensions();
        let around = face(width as f32 * 0.3, height as f32 * 0.2, width as f32 * 0.35, height as f32 * 0.45);
        let score = model.live_score(&grey, &around).unwrap();
        assert!((0.0..=1.0).contains(&score), "{score}");
        assert_eq!(score, model.live_score(&replicated, &around).unwrap());
    }
}
