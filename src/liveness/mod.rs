//! Liveness: whether the face in a tap's burst is a person or a picture of one (a print, a phone
//! screen). Every check here can only turn a grant into a denial (`spoof_suspected`); none can
//! open the door.
//!
//! A check looks at a [`Burst`]: the frames the door captured after a tap, each with its face's
//! box and five landmarks, and the frame's pixels on demand. It says [`Verdict::Live`],
//! [`Verdict::Spoof`] or [`Verdict::Undecided`] with a score. A new check is one implementation
//! of [`Check`] and one entry in [`CHECKS`] (name, default threshold, constructor).

pub mod attacks;
pub mod border;
pub mod eval;
mod follow;
pub mod geometry;
pub mod glare;
pub mod model;
pub mod moire;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::checks::Checks;
use crate::engine::{DetectedFace, decode_rgb};
use crate::frame::Frame;
use crate::names::named_enum;

named_enum! {
    /// What the door does with the checks' verdicts.
    pub enum Mode {
        /// No check runs; the burst stops at the first confident face.
        Off = "off",
        /// The checks run and their scores are logged with each attempt; nothing is denied.
        Log = "log",
        /// A grant becomes a denial (`spoof_suspected`) when a check says the face is a picture.
        Enforce = "enforce",
    }
}

named_enum! {
    /// What the person is asked to do during the burst.
    pub enum Challenge {
        /// Nothing: the checks judge whatever motion there is.
        Nothing = "none",
        /// The door asks for a small head turn; a burst in which the face plane did not turn is
        /// then a spoof rather than undecided.
        Turn = "turn",
    }
}

/// `[liveness]`: the checks that tell a face from a picture of one, and what their verdicts do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LivenessConfig {
    pub mode: Mode,
    /// Frames with a face the burst gathers for the checks (at most `capture.frames`).
    pub frames: u32,
    pub challenge: Challenge,
    /// The checks that run, by name (all compiled-in ones by default).
    pub checks: Vec<String>,
    pub geometry: geometry::GeometryConfig,
    pub border: border::BorderConfig,
    pub moire: moire::MoireConfig,
    pub glare: glare::GlareConfig,
    pub model: model::ModelConfig,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Log,
            frames: 5,
            challenge: Challenge::Nothing,
            checks: DEFAULT_CHECKS.iter().map(|name| (*name).to_owned()).collect(),
            geometry: geometry::GeometryConfig::default(),
            border: border::BorderConfig::default(),
            moire: moire::MoireConfig::default(),
            glare: glare::GlareConfig::default(),
            model: model::ModelConfig::default(),
        }
    }
}

impl LivenessConfig {
    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            (2..=30).contains(&self.frames),
            "liveness.frames",
            format!("{} is out of range; use 2 to 30 frames (the checks compare frames with each other)", self.frames),
        );
        for name in &self.checks {
            checks.check(
                CHECKS.iter().any(|entry| entry.name == name),
                "liveness.checks",
                format!("{name:?} is not a check compiled in; choose from: {}", check_names().join(", ")),
            );
        }
        checks.check(
            self.mode == Mode::Off || !self.checks.is_empty(),
            "liveness.checks",
            format!("no check is named; name some of {} or set liveness.mode = \"off\"", check_names().join(", ")),
        );
        checks.check(
            self.challenge == Challenge::Nothing || self.checks.iter().any(|c| c == geometry::NAME),
            "liveness.challenge",
            "a head turn is judged by the geometry check: add \"geometry\" to liveness.checks or set challenge = \"none\"",
        );
        self.geometry.check(checks);
        self.border.check(checks);
        self.moire.check(checks);
        self.glare.check(checks);
        self.model.check(checks);
    }

    /// What this section asks of `[capture]`: a burst long enough for the checks.
    pub fn check_capture(&self, capture_frames: u32, checks: &mut Checks) {
        checks.check(
            self.mode == Mode::Off || self.frames <= capture_frames,
            "liveness.frames",
            format!(
                "{} is more than capture.frames ({capture_frames}), the most frames a burst takes; raise \
                 capture.frames or lower liveness.frames",
                self.frames
            ),
        );
    }
}

/// The names of the checks compiled in.
pub fn check_names() -> Vec<&'static str> {
    CHECKS.iter().map(|entry| entry.name).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    #[error("liveness check {check}: {detail}")]
    Build { check: String, detail: String },
    #[error("cannot read the burst {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{0}")]
    Eval(String),
}

/// The grey level (0–255) of an RGB pixel, as the checks that read grey see it.
fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// One frame of the burst with the face the engine found in it.
#[derive(Debug)]
pub struct BurstFrame {
    pub frame: Frame,
    /// The largest face; its landmarks are present when the engine gives them (the on-device
    /// engine does).
    pub face: DetectedFace,
    pixels: OnceLock<Result<Arc<RgbImage>, String>>,
}

impl BurstFrame {
    pub fn new(frame: Frame, face: DetectedFace) -> Self {
        Self { frame, face, pixels: OnceLock::new() }
    }

    /// The frame's pixels (RGB; a grey IR frame has three equal channels), decoded once.
    pub fn pixels(&self) -> Result<Arc<RgbImage>, String> {
        self.pixels
            .get_or_init(|| decode_rgb(&self.frame, "a burst frame").map(Arc::new).map_err(|e| e.to_string()))
            .clone()
    }

    /// `frame` with this frame's face found in it again by following the face's landmarks, which
    /// costs far less than detecting it; `None` when a landmark is lost (detect it then). Blocking:
    /// it decodes both frames (once: the checks reuse the pixels).
    pub fn follow_into(&self, frame: Frame) -> Option<BurstFrame> {
        let previous = self.pixels().ok()?;
        let next = decode_rgb(&frame, "a burst frame").ok()?;
        let face = follow::follow(&previous, &self.face, &next)?;
        Some(BurstFrame { frame, face, pixels: OnceLock::from(Ok(Arc::new(next))) })
    }
}

/// The frames with a face of one tap's burst, in the order they were taken.
#[derive(Debug, Default)]
pub struct Burst {
    pub frames: Vec<BurstFrame>,
}

named_enum! {
    /// What one check concluded.
    pub enum Verdict {
        Live = "live",
        /// The face looks like a picture: in `enforce` mode the attempt is denied.
        Spoof = "spoof",
        /// The burst does not tell (too little motion, no landmarks, the check failed).
        Undecided = "undecided",
    }
}

/// One check's result: its verdict and the score it was drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    /// The check's main score (what its threshold applies to; see each check).
    pub score: f32,
    /// The measurements behind it, in words, for the log.
    pub detail: String,
}

/// A way of telling a face from a picture of one.
pub trait Check: Send + Sync {
    fn name(&self) -> &'static str;
    /// Judges the burst. It must not fail: what it cannot judge is [`Verdict::Undecided`].
    fn judge(&self, burst: &Burst) -> Finding;
}

/// Makes a check from `[liveness]` and the face models' folder.
pub type BuildCheck = fn(&LivenessConfig, &Path) -> Result<Box<dyn Check>, LivenessError>;

/// A check compiled in: its name and how it is made from the config.
pub struct CheckEntry {
    pub name: &'static str,
    pub build: BuildCheck,
}

/// Every check compiled in; the second argument of `build` is the face models' folder.
pub const CHECKS: &[CheckEntry] = &[
    CheckEntry { name: geometry::NAME, build: geometry::build },
    CheckEntry { name: border::NAME, build: border::build },
    CheckEntry { name: moire::NAME, build: moire::build },
    CheckEntry { name: glare::NAME, build: glare::build },
    CheckEntry { name: model::NAME, build: model::build },
];

/// The checks that run unless `liveness.checks` says otherwise: those that cost a tap only
/// milliseconds. The model is named to run (see [`model`]).
pub const DEFAULT_CHECKS: &[&str] = &[geometry::NAME, border::NAME, moire::NAME, glare::NAME];

/// Time between the frames kept for the checks while the person turns their head: five frames
/// then span a second, time for a small turn after the door asks for one.
pub const TURN_PACE: Duration = Duration::from_millis(250);

/// What the tap's burst gathers for the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gathering {
    /// Frames with a face (1: stop at the first confident face, as without the checks).
    pub faces: u32,
    /// At least this long between frames once a face was seen.
    pub pace: Duration,
}

impl Gathering {
    /// The burst without liveness checks.
    pub const BEST_FACE: Gathering = Gathering { faces: 1, pace: Duration::ZERO };
}

/// The checks in use and what their verdicts do.
pub struct Liveness {
    mode: Mode,
    challenge: Challenge,
    /// Frames with a face the checks want (`liveness.frames`).
    frames: u32,
    checks: Vec<Box<dyn Check>>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|c| c.name()).collect();
        f.debug_struct("Liveness").field("mode", &self.mode).field("checks", &names).finish()
    }
}

impl Liveness {
    /// The checks `config` names, loaded (`models_dir` holds the models of those that use one).
    pub fn build(config: &LivenessConfig, models_dir: &Path) -> Result<Self, LivenessError> {
        let mut checks = Vec::new();
        if config.mode != Mode::Off {
            for name in &config.checks {
                let entry = CHECKS.iter().find(|entry| entry.name == name).ok_or_else(|| LivenessError::Build {
                    check: name.clone(),
                    detail: format!("not compiled in; choose from: {}", check_names().join(", ")),
                })?;
                checks.push((entry.build)(config, models_dir)?);
            }
        }
        Ok(Self { mode: config.mode, challenge: config.challenge, frames: config.frames, checks })
    }

    /// No checks: what `mode = "off"` builds.
    pub fn off() -> Self {
        Self { mode: Mode::Off, challenge: Challenge::Nothing, frames: 1, checks: Vec::new() }
    }

    /// How the burst should gather frames for the checks.
    pub fn gathering(&self) -> Gathering {
        // Only checks that can deny may make a tap wait for more frames: in `log` mode they score
        // the frames the door takes anyway, so that logging never slows the door down.
        if !self.enforces() {
            return Gathering::BEST_FACE;
        }
        let pace = if self.challenge == Challenge::Turn { TURN_PACE } else { Duration::ZERO };
        Gathering { faces: self.frames, pace }
    }

    pub fn is_on(&self) -> bool {
        self.mode != Mode::Off && !self.checks.is_empty()
    }

    fn enforces(&self) -> bool {
        self.mode == Mode::Enforce && !self.checks.is_empty()
    }

    /// What the person is asked to do: nothing unless the checks are enforced.
    pub fn challenge(&self) -> Challenge {
        if self.enforces() { self.challenge } else { Challenge::Nothing }
    }

    /// Runs every check on the burst (blocking: run it off the async threads); `None` when off.
    pub fn assess(&self, burst: &Burst) -> Option<Assessment> {
        if !self.is_on() {
            return None;
        }
        let started = Instant::now();
        let findings = self
            .checks
            .iter()
            .map(|check| {
                let mut finding = check.judge(burst);
                // A burst in which the person was asked to turn and did not is not left undecided.
                if self.challenge == Challenge::Turn
                    && finding.check == geometry::NAME
                    && finding.verdict == Verdict::Undecided
                {
                    finding.verdict = Verdict::Spoof;
                    finding.detail.push_str("; no turn seen although one was asked for");
                }
                finding
            })
            .collect();
        Some(Assessment {
            enforced: self.mode == Mode::Enforce,
            findings,
            took: started.elapsed(),
            frames: burst.frames.len(),
        })
    }
}

/// What the checks said about one burst.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// `liveness.mode = "enforce"`: a spoof verdict denies.
    pub enforced: bool,
    pub findings: Vec<Finding>,
    pub took: Duration,
    /// Frames with a face the checks looked at.
    pub frames: usize,
}

impl Assessment {
    /// The first check that took the face for a picture.
    pub fn spoof(&self) -> Option<&Finding> {
        self.findings.iter().find(|finding| finding.verdict == Verdict::Spoof)
    }

    /// Whether the attempt must be denied: a check says spoof and the mode enforces.
    pub fn denies(&self) -> bool {
        self.enforced && self.spoof().is_some()
    }

    /// One line for the log row: each check with its verdict and score.
    pub fn summary(&self) -> String {
        let mode = if self.enforced { "enforce" } else { "log" };
        let findings: Vec<String> =
            self.findings.iter().map(|f| format!("{} {} {:.3} ({})", f.check, f.verdict, f.score, f.detail)).collect();
        format!("liveness ({mode}, {} frames): {}", self.frames, findings.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &LivenessConfig) -> Vec<String> {
        let mut checks = Checks::default();
        config.check(&mut checks);
        config.check_capture(5, &mut checks);
        checks.into_problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_default_logs_with_the_cheap_checks_and_fits_the_default_burst() {
        let config = LivenessConfig::default();
        assert_eq!(config.mode, Mode::Log);
        assert!(problems(&config).is_empty(), "{:?}", problems(&config));
        assert_eq!(config.checks, DEFAULT_CHECKS);
    }

    #[test]
    fn config_problems_name_the_key_and_the_fix() {
        let config = LivenessConfig { frames: 9, checks: vec!["tea leaves".into()], ..LivenessConfig::default() };
        let found = problems(&config);
        assert!(found.iter().any(|p| p.contains("liveness.checks: \"tea leaves\" is not a check")), "{found:?}");
        assert!(found.iter().any(|p| p.contains("liveness.frames: 9 is more than capture.frames (5)")), "{found:?}");
        let off = LivenessConfig { mode: Mode::Off, frames: 9, checks: Vec::new(), ..LivenessConfig::default() };
        assert!(problems(&off).is_empty(), "off asks nothing of the burst: {:?}", problems(&off));
        let none = LivenessConfig { checks: Vec::new(), ..LivenessConfig::default() };
        assert!(problems(&none).iter().any(|p| p.contains("no check is named")));
    }

    /// A burst of frames that cannot be decoded, with these landmarks.
    fn burst_of(track: Vec<[(f32, f32); 5]>) -> Burst {
        let frame = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0], "test frame").unwrap();
        let face =
            |points| DetectedFace { x: 0, y: 0, width: 90, height: 110, confidence: 99.0, landmarks: Some(points) };
        Burst { frames: track.into_iter().map(|points| BurstFrame::new(frame.clone(), face(points))).collect() }
    }

    #[test]
    fn asked_to_turn_a_face_that_did_not_is_taken_for_a_picture() {
        let still = geometry::tracks::burst(&geometry::tracks::HEAD, &[(0.0, 0.0); 5], 1.0, 1);
        let build = |mode, challenge| {
            Liveness::build(&LivenessConfig { mode, challenge, ..LivenessConfig::default() }, Path::new("/no/models"))
                .unwrap()
        };
        let asking = build(Mode::Enforce, Challenge::Turn);
        assert_eq!(asking.gathering(), Gathering { faces: 5, pace: TURN_PACE });
        let assessment = asking.assess(&burst_of(still.clone())).unwrap();
        assert!(assessment.denies(), "{}", assessment.summary());
        assert_eq!(assessment.spoof().unwrap().check, geometry::NAME);
        // The border check cannot read these frames: undecided, never a denial.
        assert_eq!(assessment.findings[1].verdict, Verdict::Undecided, "{}", assessment.summary());

        let not_asking = build(Mode::Enforce, Challenge::Nothing);
        assert_eq!(not_asking.gathering(), Gathering { faces: 5, pace: Duration::ZERO });
        assert!(!not_asking.assess(&burst_of(still.clone())).unwrap().denies(), "still is undecided when not asked");

        let off = build(Mode::Off, Challenge::Turn);
        assert!(off.assess(&burst_of(still)).is_none());
        assert_eq!((off.gathering(), off.challenge()), (Gathering::BEST_FACE, Challenge::Nothing));
    }

    fn finding(verdict: Verdict) -> Finding {
        Finding { check: geometry::NAME, verdict, score: 0.01, detail: "test".into() }
    }

    #[test]
    fn only_an_enforced_spoof_denies() {
        let spoof =
            Assessment { enforced: true, findings: vec![finding(Verdict::Spoof)], took: Duration::ZERO, frames: 5 };
        assert!(spoof.denies());
        assert!(
            spoof.summary().starts_with("liveness (enforce, 5 frames): geometry spoof 0.010"),
            "{}",
            spoof.summary()
        );
        assert!(!Assessment { enforced: false, ..spoof.clone() }.denies(), "log mode never denies");
        let undecided = Assessment { findings: vec![finding(Verdict::Undecided)], ..spoof };
        assert!(!undecided.denies(), "undecided is not a spoof");
    }
}
