//! Measuring the checks on a folder of bursts: `live/` and `attack/`, one subfolder of frames per
//! burst. APCER (attack presentation classification error rate) is the share of attack bursts
//! not taken for a picture; BPCER (bona fide …) the share of live bursts taken for one. An
//! undecided verdict counts as not a picture on both sides: it never denies.

use std::path::{Path, PathBuf};

use super::{Assessment, Burst, BurstFrame, Liveness, LivenessError, Verdict};
use crate::engine::local::LocalEngine;
use crate::frame::Frame;

/// One burst of the folder: its name (the subfolder's), whether it is live, its frames in order.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledBurst {
    pub name: String,
    pub live: bool,
    pub frames: Vec<PathBuf>,
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> LivenessError {
    LivenessError::Read { path: path.display().to_string(), detail: e.to_string() }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, LivenessError> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| read_error(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn is_picture(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// The bursts under `folder/live` and `folder/attack` (either may be missing, not both).
pub fn bursts_in(folder: &Path) -> Result<Vec<LabelledBurst>, LivenessError> {
    let mut bursts = Vec::new();
    for (side, live) in [("live", true), ("attack", false)] {
        let dir = folder.join(side);
        if !dir.is_dir() {
            continue;
        }
        for burst in sorted_entries(&dir)?.into_iter().filter(|p| p.is_dir()) {
            let frames: Vec<PathBuf> = sorted_entries(&burst)?.into_iter().filter(|p| is_picture(p)).collect();
            if !frames.is_empty() {
                let name = burst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                bursts.push(LabelledBurst { name, live, frames });
            }
        }
    }
    if bursts.is_empty() {
        return Err(LivenessError::Eval(format!(
            "{} has no bursts: put one folder of frames per burst in {0}/live and {0}/attack",
            folder.display()
        )));
    }
    Ok(bursts)
}

/// What the checks said of one burst.
#[derive(Debug, Clone)]
pub struct Judged {
    pub burst: LabelledBurst,
    /// Frames in which the engine found a face.
    pub faces: usize,
    pub assessment: Option<Assessment>,
}

/// Finds the face in each frame as the door does (blocking): the on-device engine detects it until
/// there is one, the frames after follow it, and a frame that loses it is detected again. Then
/// runs the checks.
pub fn judge(engine: &LocalEngine, liveness: &Liveness, burst: LabelledBurst) -> Result<Judged, LivenessError> {
    let mut frames = Burst::default();
    for path in &burst.frames {
        let frame = Frame::read(path).map_err(|e| read_error(path, e))?;
        if let Some(followed) = frames.frames.last().and_then(|last| last.follow_into(frame.clone())) {
            frames.frames.push(followed);
            continue;
        }
        let faces = engine.detect_blocking(&frame, &path.display().to_string()).map_err(|e| read_error(path, e))?;
        if let Some(face) = faces.into_iter().next() {
            frames.frames.push(BurstFrame::new(frame, face));
        }
    }
    let faces = frames.frames.len();
    Ok(Judged { burst, faces, assessment: liveness.assess(&frames) })
}

/// One check's (or all checks together: `combined`) error rates over the bursts.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub check: String,
    pub attacks: usize,
    /// Attack bursts not taken for a picture (live or undecided).
    pub attacks_accepted: usize,
    pub attacks_undecided: usize,
    pub live: usize,
    /// Live bursts taken for a picture.
    pub live_rejected: usize,
    pub live_undecided: usize,
}

impl Rates {
    pub fn apcer(&self) -> Option<f64> {
        share(self.attacks_accepted, self.attacks)
    }
    pub fn bpcer(&self) -> Option<f64> {
        share(self.live_rejected, self.live)
    }
}

fn share(count: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| count as f64 / of as f64)
}

/// The rates of each check named, then of them all together (a picture when any says so).
pub fn rates(judged: &[Judged], checks: &[&str]) -> Vec<Rates> {
    let verdict_of = |j: &Judged, check: Option<&str>| -> Verdict {
        let Some(assessment) = &j.assessment else { return Verdict::Undecided };
        let mut findings = assessment.findings.iter().filter(|f| check.is_none_or(|c| f.check == c));
        if findings.clone().any(|f| f.verdict == Verdict::Spoof) {
            Verdict::Spoof
        } else if findings.any(|f| f.verdict == Verdict::Live) {
            Verdict::Live
        } else {
            Verdict::Undecided
        }
    };
    let names = checks.iter().map(|c| Some(*c)).chain([None]);
    names
        .map(|check| {
            let mut rates = Rates {
                check: check.unwrap_or("combined").to_owned(),
                attacks: 0,
                attacks_accepted: 0,
                attacks_undecided: 0,
                live: 0,
                live_rejected: 0,
                live_undecided: 0,
            };
            for j in judged {
                let verdict = verdict_of(j, check);
                if j.burst.live {
                    rates.live += 1;
                    rates.live_rejected += usize::from(verdict == Verdict::Spoof);
                    rates.live_undecided += usize::from(verdict == Verdict::Undecided);
                } else {
                    rates.attacks += 1;
                    rates.attacks_accepted += usize::from(verdict != Verdict::Spoof);
                    rates.attacks_undecided += usize::from(verdict == Verdict::Undecided);
                }
            }
            rates
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::liveness::Finding;

    fn judged(name: &str, live: bool, verdicts: &[(&'static str, Verdict)]) -> Judged {
        let findings = verdicts
            .iter()
            .map(|&(check, verdict)| Finding { check, verdict, score: 0.0, detail: String::new() })
            .collect();
        Judged {
            burst: LabelledBurst { name: name.into(), live, frames: Vec::new() },
            faces: 5,
            assessment: Some(Assessment { enforced: false, findings, took: Duration::ZERO, frames: 5 }),
        }
    }

    #[test]
    fn apcer_counts_attacks_let_through_and_bpcer_live_faces_refused() {
        let results = [
            judged("a1", false, &[("geometry", Verdict::Spoof), ("screen", Verdict::Undecided)]),
            judged("a2", false, &[("geometry", Verdict::Undecided), ("screen", Verdict::Spoof)]),
            judged("a3", false, &[("geometry", Verdict::Live), ("screen", Verdict::Live)]),
            judged("l1", true, &[("geometry", Verdict::Live), ("screen", Verdict::Spoof)]),
            judged("l2", true, &[("geometry", Verdict::Undecided), ("screen", Verdict::Live)]),
        ];
        let rates = rates(&results, &["geometry", "screen"]);
        let summary: Vec<(&str, usize, usize, usize, usize)> = rates
            .iter()
            .map(|r| (r.check.as_str(), r.attacks_accepted, r.attacks_undecided, r.live_rejected, r.live_undecided))
            .collect();
        assert_eq!(summary, [("geometry", 2, 1, 0, 1), ("screen", 2, 1, 1, 0), ("combined", 1, 0, 1, 0)]);
        assert_eq!(rates[2].apcer(), Some(1.0 / 3.0));
        assert_eq!(rates[2].bpcer(), Some(0.5));
    }

    #[test]
    fn a_folder_of_bursts_is_read_by_side() {
        let dir = tempfile::tempdir().unwrap();
        for (side, burst, frames) in [("live", "me-1", 3), ("attack", "me-photo", 2), ("attack", "empty", 0)] {
            let path = dir.path().join(side).join(burst);
            std::fs::create_dir_all(&path).unwrap();
            for i in 0..frames {
                std::fs::write(path.join(format!("{i:02}.jpg")), b"x").unwrap();
            }
            std::fs::write(path.join("notes.txt"), b"not a frame").unwrap();
        }
        let bursts = bursts_in(dir.path()).unwrap();
        let summary: Vec<(&str, bool, usize)> =
            bursts.iter().map(|b| (b.name.as_str(), b.live, b.frames.len())).collect();
        assert_eq!(summary, [("me-1", true, 3), ("me-photo", false, 2)]);
        let empty = tempfile::tempdir().unwrap();
        assert!(bursts_in(empty.path()).unwrap_err().to_string().contains("has no bursts"));
    }
}
