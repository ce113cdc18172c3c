//! The streaming camera backend against real child processes: small shell scripts that write
//! MJPEG made of JPEGs encoded here, standing in for `rpicam-vid`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use facereko::frame::Frame;
use facereko::hw::Camera;
use facereko::hw::rpicam::{StreamCamera, StreamSettings};
use image::codecs::jpeg::JpegEncoder;
use tempfile::TempDir;

/// A picture that differs per `shade`, as JPEG.
fn jpeg(shade: u8) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([shade, (x * 4) as u8 ^ shade, (y * 5) as u8]));
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85).encode_image(&picture).unwrap();
    out
}

/// A temporary folder with `count` JPEGs (`1.jpg` …) and `frames.mjpeg`, all of them in a row.
struct Fixture {
    dir: TempDir,
    frames: Vec<Vec<u8>>,
}

impl Fixture {
    fn new(count: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Vec<u8>> = (1..=count).map(|i| jpeg(i * 40)).collect();
        for (i, frame) in frames.iter().enumerate() {
            std::fs::write(dir.path().join(format!("{}.jpg", i + 1)), frame).unwrap();
        }
        std::fs::write(dir.path().join("frames.mjpeg"), frames.concat()).unwrap();
        Self { dir, frames }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Settings running `script` with `sh` in the fixture folder. The frame rate only sets how
    /// long `frame()` waits: one per second gives it 2.5 s, generous for a busy test machine.
    fn settings(&self, script: &str) -> StreamSettings {
        let file = self.path("camera.sh");
        std::fs::write(&file, format!("cd '{}'\n{script}", self.dir.path().display())).unwrap();
        StreamSettings {
            program: "sh".into(),
            args: vec![file.display().to_string()],
            width: 64,
            height: 48,
            framerate: 1.0,
            restart_backoff_max: Duration::from_secs(2),
        }
    }

    /// Which of the fixture's pictures `frame` is (1-based); fails on anything else.
    fn which(&self, frame: &Frame) -> usize {
        let picture = image::load_from_memory(frame.bytes()).expect("the camera hands out valid JPEGs");
        assert_eq!((picture.width(), picture.height()), (64, 48));
        let index = self.frames.iter().position(|f| f == frame.bytes());
        index.expect("the frame is one of the pictures the script wrote, whole") + 1
    }
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

const LOOP: &str = "while true; do cat frames.mjpeg; sleep 0.05; done\n";

#[tokio::test(flavor = "multi_thread")]
async fn hands_out_fresh_valid_frames_from_a_looping_stream() {
    let fixture = Fixture::new(3);
    let camera = StreamCamera::start(fixture.settings(LOOP)).unwrap();
    let mut previous: Option<Frame> = None;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let before = camera.stats().frames;
        let frame = camera.frame().await.unwrap();
        seen.push(fixture.which(&frame));
        assert!(camera.stats().frames > before, "the frame handed out arrived during the call");
        if let Some(previous) = &previous {
            assert!(!frame.is_same(previous), "each call gets a newer frame than the last one");
        }
        previous = Some(frame);
    }
    let stats = camera.stats();
    assert_eq!((stats.truncated, stats.discarded, stats.restarts), (0, 0, 0), "{stats:?} after {seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_a_frame_newer_than_the_call_and_reports_a_silent_stream() {
    let fixture = Fixture::new(2);
    // Writes picture N once the file `go.N` exists.
    let script = "i=0\nwhile true; do\n  i=$((i+1))\n  while [ ! -e go.$i ]; do sleep 0.02; done\n  cat $i.jpg\ndone\n";
    let camera = StreamCamera::start(fixture.settings(script)).unwrap();

    // `join!` polls the call first, so it is waiting before the picture is released.
    let (first, ()) = tokio::join!(camera.frame(), async { std::fs::write(fixture.path("go.1"), "").unwrap() });
    assert_eq!(fixture.which(&first.unwrap()), 1);

    // Picture 1 is still the latest one, but it is older than this call.
    let err = camera.frame().await.unwrap_err().to_string();
    assert!(err.contains("no frame from the camera within 2s 500ms"), "{err}");
    assert!(err.contains("sent its last frame"), "{err}");

    let (second, ()) = tokio::join!(camera.frame(), async { std::fs::write(fixture.path("go.2"), "").unwrap() });
    assert_eq!(fixture.which(&second.unwrap()), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_dying_mid_frame_is_restarted_and_its_cut_frames_never_come_out() {
    let fixture = Fixture::new(3);
    // The first run writes picture 2 but its last 100 bytes (the cut is in the picture data, not
    // the headers), picture 1 whole, the start of picture 3, then dies.
    let cut = fixture.frames[1].len() - 100;
    let scan_start = fixture.frames[1].windows(2).position(|pair| pair == [0xFF, 0xDA]).unwrap();
    assert!(cut > scan_start + 20, "the cut should be in the picture data");
    let script = format!(
        "echo run >> runs\n\
         if [ \"$(wc -l < runs)\" -eq 1 ]; then\n\
           head -c {cut} 2.jpg; cat 1.jpg; head -c {third} 3.jpg\n\
           echo 'simulated camera failure' >&2\n\
           exit 3\n\
         fi\n\
         {LOOP}",
        third = fixture.frames[2].len() / 3,
    );
    let camera = StreamCamera::start(fixture.settings(&script)).unwrap();

    let give_up = Instant::now() + Duration::from_secs(60);
    let mut errors = Vec::new();
    let mut after_restart = None;
    while after_restart.is_none() {
        assert!(Instant::now() < give_up, "no frame after a restart; errors: {errors:?}, {:?}", camera.stats());
        let restarted = camera.stats().restarts > 0;
        match camera.frame().await {
            // Whatever the run, only whole pictures come out (`which` checks).
            Ok(frame) => {
                let picture = fixture.which(&frame);
                if restarted {
                    after_restart = Some(picture);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(lines_in(&fixture.path("runs")) >= 2, "the script ran again");
    for e in &errors {
        assert!(e.contains("no frame from the camera within"), "{e}");
    }

    // Both cut frames are counted: the one cut by a new frame, and the one cut by the exit.
    let give_up = Instant::now() + Duration::from_secs(30);
    while camera.stats().truncated < 2 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = camera.stats();
    assert_eq!(stats.truncated, 2, "{stats:?}");
    let ending = stats.last_exit.unwrap_or_default();
    assert!(ending.contains("exit status: 3"), "{ending}");
    assert!(ending.contains("simulated camera failure"), "{ending}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_goes_silent_is_restarted() {
    let fixture = Fixture::new(1);
    let mut settings = fixture.settings("echo run >> runs\ncat 1.jpg\nexec sleep 60\n");
    // Ten frames a second: a silent child is restarted after the minimum of five seconds.
    settings.framerate = 10.0;
    let camera = StreamCamera::start(settings).unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while camera.stats().restarts == 0 {
        assert!(Instant::now() < give_up, "the silent child was not restarted: {:?}", camera.stats());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ending = camera.stats().last_exit.unwrap_or_default();
    assert!(ending.contains("it sent no frame for"), "{ending}");
    assert!(lines_in(&fixture.path("runs")) >= 2);
}

#[test]
fn a_missing_program_is_reported_with_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let settings =
        StreamSettings { program: dir.path().join("rpicam-vid").display().to_string(), ..StreamSettings::default() };
    let err = StreamCamera::start(settings).err().expect("the program does not exist").to_string();
    assert!(err.contains("rpicam-vid not found"), "{err}");
    assert!(err.contains("sudo apt install rpicam-apps"), "{err}");
}

#[test]
fn settings_default_to_rpicam_vid_streaming_mjpeg_to_stdout() {
    let settings: StreamSettings =
        toml::from_str("width = 1280\nheight = 720\nframerate = 7.5\nrestart_backoff_max = \"10s\"").unwrap();
    assert_eq!(settings.program, "rpicam-vid");
    assert_eq!(settings.restart_backoff_max, Duration::from_secs(10));
    assert_eq!(
        settings.command_args().join(" "),
        "-t 0 -n --codec mjpeg --flush --width 1280 --height 720 --framerate 7.5 -o -"
    );
    assert_eq!(settings.validate(), Ok(()));
    let err = StreamSettings { framerate: 0.0, ..settings }.validate().unwrap_err();
    assert!(err.contains("frame rate 0"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_camera_kills_the_child() {
    let fixture = Fixture::new(2);
    let camera = StreamCamera::start(fixture.settings(LOOP)).unwrap();
    fixture.which(&camera.frame().await.unwrap());
    let pid = camera.stats().pid.expect("the child runs");
    assert!(process_exists(pid));
    drop(camera);
    assert!(!process_exists(pid), "the child {pid} outlived the camera");
}

/// The V4L2 backend off the Pi: no webcam is attached here, so what can be checked is that each
/// way of getting the device wrong is explained with its fix.
mod v4l2 {
    use facereko::hw::v4l2::{V4l2Camera, V4l2Settings};

    fn start_error(settings: V4l2Settings) -> String {
        V4l2Camera::start(settings).err().expect("no webcam here").to_string()
    }

    #[test]
    fn a_missing_device_is_explained() {
        let err = start_error(V4l2Settings { device: "/dev/video-absent".into(), ..V4l2Settings::default() });
        assert!(err.contains("no video device at /dev/video-absent"), "{err}");
        assert!(err.contains("hardware.v4l2.device"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_video_device_is_refused() {
        let err = start_error(V4l2Settings { device: "/dev/null".into(), ..V4l2Settings::default() });
        assert!(err.contains("/dev/null is not a video device"), "{err}");
    }

    #[test]
    fn bad_settings_are_refused_before_opening_anything() {
        let err = start_error(V4l2Settings { format: "H264".into(), ..V4l2Settings::default() });
        assert!(err.contains("hardware.v4l2") && err.contains("auto, MJPG, YUYV"), "{err}");
    }

    #[test]
    fn settings_read_from_the_config_section() {
        let settings: V4l2Settings =
            toml::from_str("device = \"/dev/video2\"\nwidth = 1280\nheight = 720\nformat = \"YUYV\"").unwrap();
        assert_eq!(settings.device.to_str(), Some("/dev/video2"));
        assert_eq!((settings.width, settings.height, settings.framerate), (1280, 720, 15));
        assert_eq!(settings.validate(), Ok(()));
    }
}
