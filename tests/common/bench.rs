//! What the benches share: measuring or smoke-testing, percentiles, the machine they ran on, and
//! a camera frame made from a sample photo.

use std::time::Duration;

use facereko::engine::decode_rgb;
use facereko::engine::local::detector::{Detection, Detector};
use facereko::frame::Frame;

/// `cargo bench` passes `--bench`; under `cargo test` the same code runs briefly as a smoke test.
pub fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// `measured` runs under `cargo bench`, `smoke` under `cargo test`.
pub fn runs(measured: usize, smoke: usize) -> usize {
    if measuring() { measured } else { smoke }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The CPU, the build and how busy the machine was, for the first line of a bench's output.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or_else(|_| "?".to_owned(), |n| n.to_string());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // x86 names the CPU in "model name"; a Raspberry Pi names the board in "Model".
    let model = ["model name", "Model", "Hardware"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == *key).then(|| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let build = if cfg!(debug_assertions) { "debug build, smoke test" } else { "release build" };
    let load = load_average().map_or_else(String::new, |l| format!(", load average {l} at start"));
    format!("{model}, nproc {cpus}, {} ({build}{load})", std::env::consts::ARCH)
}

/// The one-minute load average from /proc/loadavg (`None` off Linux): other work on the machine
/// skews the timings, so the benches say how busy it was.
pub fn load_average() -> Option<String> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    loadavg.split_whitespace().next().map(str::to_owned)
}

pub fn largest(detections: &[Detection]) -> Option<Detection> {
    detections.iter().copied().max_by(|a, b| a.area().total_cmp(&b.area()))
}

/// A 640×480 JPEG like a Pi camera's, cut from a portrait photo: a 4:3 band across the whole width,
/// centred on the face as far as the picture allows, resized to 640×480.
pub fn camera_frame(photo: &Frame, detector: &Detector) -> Frame {
    let image = decode_rgb(photo, "the photo").unwrap();
    let face = largest(&detector.detect(&image).unwrap()).expect("the photo shows a face");
    let (width, height) = image.dimensions();
    let band = (width * 3 / 4).min(height);
    let centre = (face.top + face.height / 2.0).max(0.0) as u32;
    let top = centre.saturating_sub(band / 2).min(height - band);
    let cut = image::imageops::crop_imm(&image, 0, top, width, band).to_image();
    let frame = image::imageops::resize(&cut, 640, 480, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&frame).unwrap();
    Frame::from_bytes(jpeg, "640×480 frame").unwrap()
}
