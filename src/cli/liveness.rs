//! `facereko liveness make-attacks` and `facereko eval-liveness`: making synthetic attack bursts
//! from photos, and measuring the liveness checks on folders of bursts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::config::Config;
use facereko::liveness::attacks::{self, Attack};
use facereko::liveness::eval::{self, Judged};
use facereko::liveness::{Liveness, LivenessConfig, Mode};

use super::{EvalLivenessArgs, MakeAttacksArgs};

/// What every folder of made bursts says about itself.
const SYNTHETIC_NOTE: &str = "SYNTHETIC bursts made by `facereko liveness make-attacks` from real photos.\n\
    attack/<photo>-photo|screen|print: the photo moved by a simulated hand as a flat picture, alone, \
    on a phone screen (bezel, gamma, moire) or printed (lower contrast, paper edge). Not real attacks.\n\
    live/<photo>-still (with --stand-ins): the same real photo in every frame with camera noise and a \
    pixel of shake: a stand-in for a person standing still, not a live capture.\n\
    live/<person>-poses (with --stand-ins): different real photos of one person, one per frame: a head \
    in different poses, but not a video.\n";

fn is_picture(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

fn sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The people of the folders given: a folder of pictures is one person, a folder of such
/// folders is many.
fn people(sources: &[PathBuf]) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut found = Vec::new();
    for source in sources {
        let entries = sorted(source)?;
        let pictures: Vec<PathBuf> = entries.iter().filter(|p| is_picture(p)).cloned().collect();
        if pictures.is_empty() {
            for dir in entries.iter().filter(|p| p.is_dir()) {
                let pictures: Vec<PathBuf> = sorted(dir)?.into_iter().filter(|p| is_picture(p)).collect();
                if !pictures.is_empty() {
                    found.push((name_of(dir), pictures));
                }
            }
        } else {
            found.push((name_of(source), pictures));
        }
    }
    if found.is_empty() {
        bail!(
            "no pictures in {}: give folders of pictures, one per person",
            sources.iter().map(|s| s.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(found)
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "picture".into())
}

/// Writes the frames as JPEGs; `grey` ones as an infrared camera gives them (one grey channel).
fn save_burst(dir: &Path, frames: &[image::RgbImage], grey: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (i, frame) in frames.iter().enumerate() {
        let path = dir.join(format!("frame-{i:02}.jpg"));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?,
        );
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 90);
        let encoded = if grey {
            encoder.encode_image(&image::DynamicImage::ImageRgb8(frame.clone()).into_luma8())
        } else {
            encoder.encode_image(frame)
        };
        encoded.with_context(|| format!("cannot encode {}", path.display()))?;
    }
    Ok(())
}

pub fn make_attacks(args: &MakeAttacksArgs) -> Result<ExitCode> {
    let people = people(&args.sources)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    std::fs::write(args.out.join("SYNTHETIC.txt"), SYNTHETIC_NOTE)?;
    let frames = usize::from(args.frames);
    let (mut attacks_made, mut stand_ins) = (0, 0);
    for (person, pictures) in &people {
        let chosen = pictures.iter().take(args.per_person.map_or(usize::MAX, usize::from));
        for path in chosen {
            let photo = image::open(path).with_context(|| format!("cannot read {}", path.display()))?.into_rgb8();
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let name = format!("{person}-{stem}");
            let seed = attacks::seed_of(&name);
            for attack in Attack::ALL {
                let burst = attacks::burst(&photo, *attack, frames, seed);
                save_burst(&args.out.join("attack").join(format!("{name}-{attack}")), &burst, args.grey)?;
                attacks_made += 1;
            }
            if args.stand_ins {
                let still = attacks::still(&photo, frames, seed);
                save_burst(&args.out.join("live").join(format!("{name}-still")), &still, args.grey)?;
                stand_ins += 1;
            }
        }
        if args.stand_ins && pictures.len() >= 2 {
            // Different photos of the person, each as a frame: a real head in different poses.
            for (i, group) in pictures.chunks(frames).filter(|group| group.len() >= 2).enumerate() {
                let dir = args.out.join("live").join(format!("{person}-poses{i}"));
                let photos = group
                    .iter()
                    .map(|path| {
                        Ok(image::open(path).with_context(|| format!("cannot read {}", path.display()))?.into_rgb8())
                    })
                    .collect::<Result<Vec<_>>>()?;
                save_burst(&dir, &photos, args.grey)?;
                stand_ins += 1;
            }
        }
    }
    println!(
        "made {attacks_made} synthetic attack bursts{} of {frames} frames from {} people in {}",
        if args.stand_ins { format!(" and {stand_ins} live stand-in bursts") } else { String::new() },
        people.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |r| format!("{:.1} %", 100.0 * r))
}

pub async fn eval_liveness(config: &Config, args: &EvalLivenessArgs) -> Result<ExitCode> {
    let bursts = eval::bursts_in(&args.folder)?;
    let engine = config.engine.on_device().context("the liveness checks need the on-device face models")?;
    // Every check named runs and is reported, whatever the door's mode.
    let checks_config = LivenessConfig { mode: Mode::Log, ..config.liveness.clone() };
    let liveness = Liveness::build(&checks_config, &config.engine.models_dir)?;
    let total = bursts.len();
    let judged: Vec<Judged> = tokio::task::spawn_blocking(move || {
        bursts
            .into_iter()
            .enumerate()
            .map(|(i, burst)| {
                eprint!("\rjudging burst {}/{total}", i + 1);
                eval::judge(&engine, &liveness, burst)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    eprintln!();
    if let Some(path) = &args.csv {
        write_csv(path, &judged)?;
    }
    let names: Vec<&str> = checks_config.checks.iter().map(String::as_str).collect();
    let rates = eval::rates(&judged, &names);
    if args.json {
        let rows: Vec<serde_json::Value> = rates
            .iter()
            .map(|r| {
                serde_json::json!({
                    "check": r.check, "attacks": r.attacks, "apcer": r.apcer(),
                    "attacks_undecided": r.attacks_undecided, "live": r.live, "bpcer": r.bpcer(),
                    "live_undecided": r.live_undecided,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "folder": args.folder, "checks": rows }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {} attack and {} live bursts", args.folder.display(), rates[0].attacks, rates[0].live);
    println!("{:<10} {:>8} {:>14} {:>8} {:>14}", "check", "APCER", "attacks undec.", "BPCER", "live undec.");
    for r in &rates {
        println!(
            "{:<10} {:>8} {:>14} {:>8} {:>14}",
            r.check,
            percent(r.apcer()),
            format!("{}/{}", r.attacks_undecided, r.attacks),
            percent(r.bpcer()),
            format!("{}/{}", r.live_undecided, r.live)
        );
    }
    println!(
        "APCER: attack bursts not taken for a picture (undecided ones included); BPCER: live bursts taken for one."
    );
    Ok(ExitCode::SUCCESS)
}

/// One row per burst: its side, frames with a face, and each check's verdict and score.
fn write_csv(path: &Path, judged: &[Judged]) -> Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    writeln!(out, "burst,side,frames,faces,check,verdict,score,detail")?;
    for j in judged {
        let side = if j.burst.live { "live" } else { "attack" };
        for finding in j.assessment.iter().flat_map(|a| &a.findings) {
            writeln!(
                out,
                "{},{side},{},{},{},{},{:.5},\"{}\"",
                j.burst.name,
                j.burst.frames.len(),
                j.faces,
                finding.check,
                finding.verdict,
                finding.score,
                finding.detail.replace('"', "'")
            )?;
        }
    }
    Ok(())
}
