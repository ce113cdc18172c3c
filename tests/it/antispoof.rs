//! The anti-spoofing model (`engine::local::antispoof`) on real faces: our pre-processing and tract
//! against ONNX Runtime's output saved by `tests/python/antispoof_reference.py`, and the live
//! scores of real photos by group (the numbers in the README's "Face models").

use std::path::Path;
use std::sync::OnceLock;

use facereko::engine::decode_rgb;
use facereko::engine::local::antispoof::AntiSpoof;
use facereko::engine::local::detector::{Detection, Detector};
use facereko::frame::Frame;
use image::RgbImage;

use crate::common::{face, models_dir};

fn model() -> &'static AntiSpoof {
    static MODEL: OnceLock<AntiSpoof> = OnceLock::new();
    MODEL.get_or_init(|| AntiSpoof::load(&models_dir()).unwrap_or_else(|e| panic!("{e}")))
}

fn read_rgb(path: &Path) -> RgbImage {
    let frame = Frame::read(path).unwrap_or_else(|e| panic!("{e}"));
    decode_rgb(&frame, &path.display().to_string()).unwrap()
}

fn face_box([left, top, width, height]: [f32; 4]) -> Detection {
    Detection { left, top, width, height, score: 1.0, landmarks: [(0.0, 0.0); 5] }
}

/// The picture `antispoof_reference.py` calls the pattern: no decoder involved.
fn pattern() -> RgbImage {
    RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([0u32, 1, 2].map(|c| ((x * 7 + y * 13 + c * 61 + (x * y) / 5) % 256) as u8))
    })
}

#[test]
fn matches_the_reference_runtime() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/antispoof_reference.json")).unwrap();
    let model_sha256 =
        facereko::models::sha256_hex(std::fs::File::open(models_dir().join(facereko::models::ANTISPOOF)).unwrap())
            .unwrap();
    assert_eq!(reference["model_sha256"], model_sha256, "the fixture was made with another model file");
    for expected in reference["faces"].as_array().unwrap() {
        let floats = |key: &str| -> Vec<f32> {
            expected[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
        };
        let around = face_box(floats("box").try_into().unwrap());
        // The pattern and PNG pictures give both sides the same pixels; a JPEG decodes a level or
        // two apart in Pillow (libjpeg-turbo) and here (the image crate), which moves the logits.
        let (name, image, tolerance) = match expected["picture"].as_str() {
            None => ("the pattern".to_owned(), pattern(), 1e-3),
            Some(picture) if picture.ends_with(".png") => (picture.to_owned(), read_rgb(&face(picture)), 1e-3),
            Some(picture) => (picture.to_owned(), read_rgb(&face(picture)), 0.15),
        };
        let ours = model().logits(&image, &around).unwrap();
        for (got, want) in ours.iter().zip(floats("logits")) {
            assert!((got - want).abs() <= tolerance, "{name}: logits {ours:?}, ONNX Runtime {:?}", floats("logits"));
        }
        let score = model().live_score(&image, &around).unwrap();
        let want = expected["live_score"].as_f64().unwrap() as f32;
        assert!((score - want).abs() <= tolerance / 2.0, "{name}: live score {score}, ONNX Runtime {want}");
    }
}

/// The pictures of `../shared/facedata` by set: lfw10's 100, and `diverse` by its README's groups.
fn real_photo_sets() -> Vec<(String, Vec<String>)> {
    let root = face("README.md").parent().unwrap().to_path_buf();
    let pictures_under = |folder: &str| -> Vec<String> {
        sorted_entries(&root.join(folder))
            .iter()
            .filter(|path| path.is_file())
            .map(|path| format!("{folder}/{}", name(path)))
            .collect()
    };
    let lfw = sorted_entries(&root.join("lfw10"))
        .iter()
        .flat_map(|person| pictures_under(&format!("lfw10/{}", name(person))))
        .collect();
    let mut sets = vec![("lfw10".to_owned(), lfw)];
    let readme = std::fs::read_to_string(root.join("diverse/README.md")).unwrap();
    for group in ["black", "east_asian", "south_asian"] {
        let pictures: Vec<String> = readme
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("| {group} | ")))
            .filter_map(|rest| rest.split(' ').next())
            .flat_map(|person| pictures_under(&format!("diverse/{person}")))
            .collect();
        assert!(!pictures.is_empty(), "no {group} pictures listed in diverse/README.md");
        sets.push((format!("diverse/{group}"), pictures));
    }
    sets
}

fn sorted_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    entries
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The value below which a share `p` of the sorted `values` lies, interpolated linearly between
/// neighbours (as NumPy's `percentile`).
fn quantile(sorted: &[f32], p: f32) -> f32 {
    let at = p * (sorted.len() - 1) as f32;
    let (below, above) = (at.floor() as usize, at.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (at - below as f32)
}

/// The live scores measured here, as the README reports them: set, median, share below 0.5.
const MEASURED: &[(&str, f32, f32)] = &[
    ("lfw10", 0.999, 0.050),
    ("diverse/black", 0.999, 0.100),
    ("diverse/east_asian", 0.984, 0.292),
    ("diverse/south_asian", 0.990, 0.163),
];

/// Every real photo's live score with the detector's largest box, per set. With
/// `FACEREKO_ANTISPOOF_BOXES=FILE`, the boxes and scores are written there for
/// `antispoof_reference.py attacks`.
#[test]
fn live_scores_of_real_photos_by_group() {
    let detector = Detector::load(&facereko::models::ModelPaths::check(models_dir()).unwrap()).unwrap();
    let mut rows = vec!["group\tpicture\tleft\ttop\twidth\theight\tscore".to_owned()];
    let mut table = Vec::new();
    for (set, pictures) in real_photo_sets() {
        let mut scores = Vec::new();
        let mut without_face = 0;
        for picture in &pictures {
            let image = read_rgb(&face(picture));
            let detections = detector.detect(&image).unwrap();
            let Some(largest) = detections.iter().max_by(|a, b| a.area().total_cmp(&b.area())) else {
                without_face += 1;
                continue;
            };
            let score = model().live_score(&image, largest).unwrap();
            rows.push(format!(
                "{set}\t{picture}\t{}\t{}\t{}\t{}\t{score}",
                largest.left, largest.top, largest.width, largest.height
            ));
            scores.push(score);
        }
        scores.sort_by(f32::total_cmp);
        let below = scores.iter().filter(|s| **s < 0.5).count() as f32 / scores.len() as f32;
        let [q1, median, q3] = [0.25, 0.5, 0.75].map(|p| quantile(&scores, p));
        println!(
            "{set:<20} {} photos ({without_face} without a face): median {median:.3}, quartiles {q1:.3}–{q3:.3}, \
             below 0.5: {:.0}%",
            scores.len(),
            below * 100.0
        );
        table.push((set, median, below));
    }
    if let Some(path) = std::env::var_os("FACEREKO_ANTISPOOF_BOXES") {
        std::fs::write(path, rows.join("\n") + "\n").unwrap();
    }
    for (set, median, below) in &table {
        let (_, want_median, want_below) =
            MEASURED.iter().find(|(name, ..)| name == set).unwrap_or_else(|| panic!("{set} is not in MEASURED"));
        assert!(
            (median - want_median).abs() <= 0.02 && (below - want_below).abs() <= 0.03,
            "{set}: median {median:.3}, below 0.5 {below:.3}; the README says {want_median} and {want_below}: \
             measure again and update both"
        );
    }
}
