//! USB webcams through Video4Linux2 (`rscam`, without libv4l): a capture thread keeps the stream
//! running so a frame is ready the moment a card is tapped, and [`V4l2Camera::frame`] hands out a
//! frame that arrived after it was asked for.
//!
//! Webcams offer Motion-JPEG (passed through as it is) or raw YUYV (converted to JPEG, only for
//! frames someone is waiting for). The Pi camera on Bookworm is not a V4L2 webcam: use `rpicam`.
//! When the device fails (unplugged, say), it is opened again with exponential backoff.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::fresh::{FreshFrames, join_within, rounded};
use super::{Camera, HwError};
use crate::checks::Checks;
use crate::frame::Frame;

pub const NAME: &str = "v4l2";
const ROLE: &str = "camera";

const MJPEG: [u8; 4] = *b"MJPG";
const YUYV: [u8; 4] = *b"YUYV";
/// Formats we can turn into pictures, in order of preference for `format = "auto"`.
const USABLE: [[u8; 4]; 2] = [MJPEG, YUYV];

const FRAME_SLACK: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How long dropping the camera waits for the capture thread to release the device.
const RELEASE_GRACE: Duration = Duration::from_secs(1);
const JPEG_QUALITY: u8 = 90;

/// Which device and stream; deserialises from `[hardware.v4l2]`, missing keys defaulted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct V4l2Settings {
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    /// Frames per second.
    pub framerate: u32,
    /// `auto` (Motion-JPEG if offered, else YUYV), `MJPG` or `YUYV`.
    pub format: String,
    /// The longest pause between attempts to open a failing device again.
    #[serde(with = "humantime_serde")]
    pub restart_backoff_max: Duration,
}

impl Default for V4l2Settings {
    fn default() -> Self {
        Self {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            framerate: 15,
            format: "auto".into(),
            restart_backoff_max: Duration::from_secs(30),
        }
    }
}

impl V4l2Settings {
    /// What `config check` says of these settings: what [`Self::validate`] finds, under `hardware.v4l2`.
    pub fn check(&self, checks: &mut Checks) {
        if let Err(fix) = self.validate() {
            checks.check(false, "hardware.v4l2", fix);
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.device.as_os_str().is_empty() {
            return Err("the device path is empty; webcams appear as /dev/video0, /dev/video1, …".into());
        }
        if self.width == 0 || self.height == 0 {
            return Err(format!("the frame size {}×{} is empty", self.width, self.height));
        }
        if self.framerate == 0 {
            return Err("the frame rate must be at least 1".into());
        }
        self.wanted_format()?;
        if self.restart_backoff_max.is_zero() {
            return Err("restart_backoff_max must be longer than 0 s".into());
        }
        Ok(())
    }

    /// The format asked for, or `None` for `auto`.
    fn wanted_format(&self) -> Result<Option<[u8; 4]>, String> {
        match self.format.as_str() {
            "auto" => Ok(None),
            "MJPG" => Ok(Some(MJPEG)),
            "YUYV" => Ok(Some(YUYV)),
            other => Err(format!("format {other:?} is not one of: auto, MJPG, YUYV")),
        }
    }

    /// How long a call to [`V4l2Camera::frame`] waits for a frame newer than the call.
    pub fn frame_wait(&self) -> Duration {
        2 * Duration::from_secs(1) / self.framerate + FRAME_SLACK
    }

    fn device_name(&self) -> String {
        self.device.display().to_string()
    }
}

/// Picks the stream format: the one asked for if offered, else the first usable one.
fn choose_format(offered: &[[u8; 4]], wanted: Option<[u8; 4]>) -> Result<[u8; 4], String> {
    let usable = |format: &[u8; 4]| match wanted {
        Some(wanted) => *format == wanted,
        None => USABLE.contains(format),
    };
    USABLE.iter().copied().find(|format| offered.contains(format) && usable(format)).ok_or_else(|| {
        let offered = if offered.is_empty() {
            "nothing".to_owned()
        } else {
            offered.iter().map(|f| fourcc_text(*f)).collect::<Vec<_>>().join(", ")
        };
        match wanted {
            Some(wanted) => format!(
                "the camera does not offer {} (it offers {offered}); set hardware.v4l2.format to auto",
                fourcc_text(wanted)
            ),
            None => format!("the camera offers {offered}, but FaceReko can read only MJPG or YUYV"),
        }
    })
}

fn fourcc_text(fourcc: [u8; 4]) -> String {
    String::from_utf8_lossy(&fourcc).trim_end().to_owned()
}

/// Explains a failure to open or start the device, with what to do about it.
fn device_error(settings: &V4l2Settings, error: &std::io::Error) -> String {
    let device = settings.device_name();
    match error.kind() {
        ErrorKind::NotFound => format!(
            "there is no video device at {device}: plug in the webcam, see `ls /dev/video*` and set hardware.v4l2.device"
        ),
        ErrorKind::PermissionDenied => format!(
            "{device}: permission denied; add the user to the video group (`sudo usermod -aG video <user>`, then log in again)"
        ),
        _ if error.raw_os_error() == Some(libc::ENOTTY) => {
            format!("{device} is not a video device; webcams appear as /dev/video0, /dev/video1, …")
        }
        _ if error.raw_os_error() == Some(libc::EBUSY) => {
            format!("{device} is busy: another program (or another facereko) is using the camera")
        }
        _ => format!("{device}: {error}"),
    }
}

/// An open device, streaming.
struct Device {
    camera: rscam::Camera,
    format: [u8; 4],
}

impl Device {
    fn open(settings: &V4l2Settings) -> Result<Self, String> {
        let wanted = settings.wanted_format()?;
        let path = settings.device.to_str().ok_or_else(|| format!("{} is not UTF-8", settings.device_name()))?;
        let mut camera = rscam::new(path).map_err(|e| device_error(settings, &e))?;
        let offered = camera
            .formats()
            .map(|format| format.map(|f| f.format))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| device_error(settings, &e))?;
        let format = choose_format(&offered, wanted)?;
        let config = rscam::Config {
            interval: (1, settings.framerate),
            resolution: (settings.width, settings.height),
            format: &format,
            ..rscam::Config::default()
        };
        camera.start(&config).map_err(|e| start_error(settings, &camera, format, e))?;
        Ok(Self { camera, format })
    }
}

fn start_error(settings: &V4l2Settings, camera: &rscam::Camera, format: [u8; 4], error: rscam::Error) -> String {
    let (width, height) = (settings.width, settings.height);
    match error {
        rscam::Error::Io(e) => device_error(settings, &e),
        rscam::Error::BadResolution => {
            let sizes = match camera.resolutions(&format) {
                Ok(rscam::ResolutionInfo::Discretes(sizes)) => {
                    sizes.iter().map(|(w, h)| format!("{w}×{h}")).collect::<Vec<_>>().join(", ")
                }
                Ok(rscam::ResolutionInfo::Stepwise { min, max, .. }) => {
                    format!("{}×{} to {}×{}", min.0, min.1, max.0, max.1)
                }
                Err(_) => "sizes it does not list".to_owned(),
            };
            format!(
                "the camera does not offer {width}×{height} in {}; it offers {sizes} (hardware.v4l2.width and height)",
                fourcc_text(format)
            )
        }
        rscam::Error::BadInterval => format!(
            "the camera does not offer {} frames per second at {width}×{height} (hardware.v4l2.framerate)",
            settings.framerate
        ),
        rscam::Error::BadFormat | rscam::Error::BadField => {
            format!("the camera refused the {} format at {width}×{height}", fourcc_text(format))
        }
    }
}

/// Turns a captured buffer into a picture.
fn picture(format: [u8; 4], width: u32, height: u32, data: &[u8]) -> Result<Frame, String> {
    if format == YUYV {
        let rgb = yuyv_to_rgb(width, height, data)?;
        let mut jpeg = Vec::with_capacity(rgb.len() / 8);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
            .encode(&rgb, width, height, image::ExtendedColorType::Rgb8)
            .map_err(|e| format!("cannot encode the frame: {e}"))?;
        return Frame::from_bytes(jpeg, "the webcam frame").map_err(|e| e.to_string());
    }
    Frame::from_bytes(data.to_vec(), "the webcam frame").map_err(|e| e.to_string())
}

/// Converts packed YUYV 4:2:2 (BT.601, studio range, as webcams send it) to RGB.
pub fn yuyv_to_rgb(width: u32, height: u32, data: &[u8]) -> Result<Vec<u8>, String> {
    let pixels = width as usize * height as usize;
    if !width.is_multiple_of(2) || data.len() < pixels * 2 {
        return Err(format!("a YUYV frame of {width}×{height} needs {} bytes, got {}", pixels * 2, data.len()));
    }
    let mut rgb = Vec::with_capacity(pixels * 3);
    for quad in data[..pixels * 2].chunks_exact(4) {
        let (u, v) = (i32::from(quad[1]) - 128, i32::from(quad[3]) - 128);
        for y in [quad[0], quad[2]] {
            let c = 298 * (i32::from(y) - 16);
            let channel = |value: i32| ((value + 128) >> 8).clamp(0, 255) as u8;
            rgb.extend([channel(c + 409 * v), channel(c - 100 * u - 208 * v), channel(c + 516 * u)]);
        }
    }
    Ok(rgb)
}

#[derive(Default)]
struct State {
    stopping: bool,
    last_frame: Option<Instant>,
    /// Why the device is not streaming now, if it is not.
    down: Option<String>,
}

struct Shared {
    settings: V4l2Settings,
    frames: FreshFrames,
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn no_frame_error(&self, waited: Duration) -> HwError {
        let device = self.settings.device_name();
        let state = self.lock();
        let why = match (&state.down, state.last_frame) {
            _ if state.stopping => "the camera is shutting down".to_owned(),
            (Some(down), _) => format!("{down}; trying again"),
            (None, Some(last)) => format!("its last frame came {} ago", rounded(last.elapsed())),
            (None, None) => "it has sent no frame yet".to_owned(),
        };
        HwError::Io { role: ROLE, detail: format!("no frame from {device} within {} ({why})", rounded(waited)) }
    }
}

/// A V4L2 webcam kept streaming by a capture thread.
pub struct V4l2Camera {
    shared: Arc<Shared>,
    capture: Option<JoinHandle<()>>,
}

impl V4l2Camera {
    /// Opens the device and starts streaming. Fails at once when the device cannot be opened or
    /// started as configured; a device that fails later is opened again in the background.
    pub fn start(settings: V4l2Settings) -> Result<Self, HwError> {
        let unavailable = |detail: String| HwError::Unavailable { role: ROLE, backend: NAME.into(), detail };
        settings.validate().map_err(|e| unavailable(format!("hardware.v4l2: {e}")))?;
        let device = Device::open(&settings).map_err(unavailable)?;
        tracing::info!(
            device = %settings.device_name(),
            format = %fourcc_text(device.format),
            width = settings.width,
            height = settings.height,
            framerate = settings.framerate,
            "webcam streaming"
        );
        let shared = Arc::new(Shared {
            settings,
            frames: FreshFrames::new(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let capture = thread::Builder::new()
            .name("webcam-capture".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || keep_streaming(&shared, device)
            })
            .map_err(|e| unavailable(format!("cannot start the camera thread: {e}")))?;
        Ok(Self { shared, capture: Some(capture) })
    }
}

#[async_trait]
impl Camera for V4l2Camera {
    /// The first frame captured after this call began; waits at most two frame intervals plus half a second.
    async fn frame(&self) -> Result<Frame, HwError> {
        let asked = Instant::now();
        let wait = self.shared.settings.frame_wait();
        self.shared.frames.after(asked, || asked + wait).await.ok_or_else(|| self.shared.no_frame_error(wait))
    }
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
        // The thread notices within one frame interval, unless the driver hangs in a capture.
        if let Some(capture) = self.capture.take() {
            join_within(capture, RELEASE_GRACE, "webcam capture");
        }
    }
}

/// Captures until the camera is dropped, opening the device again whenever it fails.
fn keep_streaming(shared: &Shared, first: Device) {
    let settings = &shared.settings;
    let mut backoff = FIRST_BACKOFF;
    let mut device = Some(first);
    loop {
        let reopening = device.is_none();
        let opened = device.take().map_or_else(|| Device::open(settings), Ok);
        let failure = match opened {
            Ok(device) => {
                shared.lock().down = None;
                if reopening {
                    tracing::info!(device = %settings.device_name(), "webcam streaming again");
                }
                let started = Instant::now();
                let failure = capture_until_failure(shared, &device);
                if started.elapsed() > settings.restart_backoff_max {
                    backoff = FIRST_BACKOFF;
                }
                failure
            }
            Err(e) => e,
        };
        let mut state = shared.lock();
        if state.stopping {
            return;
        }
        tracing::warn!(retry_in = %rounded(backoff), "webcam stopped: {failure}");
        state.down = Some(failure);
        let state = shared
            .wake
            .wait_timeout_while(state, backoff, |state| !state.stopping)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
        if state.stopping {
            return;
        }
        backoff = (backoff * 2).min(settings.restart_backoff_max);
    }
}

/// Captures frames until the device fails (returns why) or the camera is dropped.
fn capture_until_failure(shared: &Shared, device: &Device) -> String {
    let settings = &shared.settings;
    loop {
        if shared.lock().stopping {
            return "the camera was closed".into();
        }
        let buffer = match device.camera.capture() {
            Ok(buffer) => buffer,
            Err(e) => return device_error(settings, &e),
        };
        shared.lock().last_frame = Some(Instant::now());
        // Raw frames cost a conversion; make one only when a request waits for it.
        if device.format == YUYV && !shared.frames.wanted() {
            continue;
        }
        match picture(device.format, settings.width, settings.height, &buffer) {
            Ok(frame) => shared.frames.publish(frame),
            Err(e) => tracing::debug!(error = %e, "dropping an unusable webcam frame"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_motion_jpeg_then_yuyv() {
        assert_eq!(choose_format(&[YUYV, MJPEG], None), Ok(MJPEG));
        assert_eq!(choose_format(&[*b"H264", YUYV], None), Ok(YUYV));
        assert_eq!(choose_format(&[YUYV, MJPEG], Some(YUYV)), Ok(YUYV));
    }

    #[test]
    fn unusable_or_missing_formats_are_explained() {
        let err = choose_format(&[*b"H264", *b"GREY"], None).unwrap_err();
        assert!(err.contains("offers H264, GREY") && err.contains("only MJPG or YUYV"), "{err}");
        let err = choose_format(&[YUYV], Some(MJPEG)).unwrap_err();
        assert!(err.contains("does not offer MJPG (it offers YUYV)") && err.contains("format to auto"), "{err}");
    }

    #[test]
    fn yuyv_converts_grey_and_primaries() {
        // Y=235 white, Y=16 black, neutral chroma; then saturated red (Y=81, U=90, V=240).
        let rgb = yuyv_to_rgb(4, 1, &[235, 128, 16, 128, 81, 90, 81, 240]).unwrap();
        assert_eq!(&rgb[..6], &[255, 255, 255, 0, 0, 0]);
        let (r, g, b) = (rgb[6], rgb[7], rgb[8]);
        assert!(r > 250 && g < 5 && b < 5, "red came out as {r},{g},{b}");
    }

    #[test]
    fn short_or_odd_yuyv_frames_are_refused() {
        assert!(yuyv_to_rgb(4, 2, &[0; 8]).unwrap_err().contains("needs 16 bytes, got 8"));
        assert!(yuyv_to_rgb(3, 1, &[0; 6]).is_err());
    }

    #[test]
    fn yuyv_frames_become_jpeg_pictures() {
        let frame = picture(YUYV, 2, 2, &[128, 128, 128, 128, 128, 128, 128, 128]).unwrap();
        assert_eq!(frame.format(), crate::frame::FrameFormat::Jpeg);
    }

    #[test]
    fn settings_are_checked_with_the_key_to_fix() {
        assert_eq!(V4l2Settings::default().validate(), Ok(()));
        let bad = V4l2Settings { format: "h264".into(), ..V4l2Settings::default() };
        assert!(bad.validate().unwrap_err().contains("auto, MJPG, YUYV"));
        let bad = V4l2Settings { framerate: 0, ..V4l2Settings::default() };
        assert!(bad.validate().is_err());
    }
}
