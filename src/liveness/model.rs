//! The trained check: the anti-spoofing model (`engine::local::antispoof`) on the burst's largest
//! face, looking at a wide crop where a bezel, a paper edge, moiré or a print's flat tones show.
//! One frame is enough, so it also scores the short burst of `log` mode. It costs a network run
//! per tap (about 30 ms here, three times that on a Pi 4), so it runs only when named in
//! `liveness.checks`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Burst, Check, Finding, LivenessConfig, LivenessError, Verdict};
use crate::checks::Checks;
use crate::engine::local::antispoof::AntiSpoof;
use crate::engine::local::detector::Detection;

pub const NAME: &str = "model";

/// `[liveness.model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// The live score (0–1) below which the face is taken for a picture. At 0.1 the model refused
    /// 2–15 % of real press photos per group and let through most synthetic screen replays
    /// (README, "The anti-spoofing model"): measure it on your own camera before enforcing.
    pub threshold: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { threshold: 0.1 }
    }
}

impl ModelConfig {
    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            self.threshold > 0.0 && self.threshold < 1.0,
            "liveness.model.threshold",
            format!("{} is out of range; use a live score above 0 and below 1 (e.g. 0.1)", self.threshold),
        );
    }
}

pub fn build(config: &LivenessConfig, models_dir: &Path) -> Result<Box<dyn Check>, LivenessError> {
    let model = AntiSpoof::load(models_dir).map_err(|e| LivenessError::Build {
        check: NAME.into(),
        detail: format!("{e}; `facereko models fetch` fetches it"),
    })?;
    Ok(Box::new(ModelCheck { model, threshold: config.model.threshold }))
}

struct ModelCheck {
    model: AntiSpoof,
    threshold: f32,
}

impl Check for ModelCheck {
    fn name(&self) -> &'static str {
        NAME
    }

    fn judge(&self, burst: &Burst) -> Finding {
        let undecided = |detail: String| Finding { check: NAME, verdict: Verdict::Undecided, score: 0.0, detail };
        let Some(largest) = burst.frames.iter().max_by_key(|frame| frame.face.area()) else {
            return undecided("no face in the burst".into());
        };
        let pixels = match largest.pixels() {
            Ok(pixels) => pixels,
            Err(e) => return undecided(e),
        };
        let face = &largest.face;
        let detection = Detection {
            left: face.x as f32,
            top: face.y as f32,
            width: face.width as f32,
            height: face.height as f32,
            score: face.confidence / 100.0,
            landmarks: face.landmarks.unwrap_or_default(),
        };
        match self.model.live_score(pixels.as_ref(), &detection) {
            Ok(score) => Finding {
                check: NAME,
                verdict: if score < self.threshold { Verdict::Spoof } else { Verdict::Live },
                score,
                detail: format!("live score {score:.3}, threshold {}", self.threshold),
            },
            Err(e) => undecided(e.to_string()),
        }
    }
}
