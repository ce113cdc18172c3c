//! Face commands: compare two pictures, evaluate accuracy, simulate one attempt.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use facereko::config::Config;
use facereko::engine::local::{self, DescribedFace, LocalEngine};
use facereko::engine::{self, DetectedFace};
use facereko::eval::{self, PairSet};
use facereko::frame::Frame;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{CompareArgs, EvalArgs, SimulateArgs};

fn face_json(picture: &Path, face: &DetectedFace) -> serde_json::Value {
    json!({
        "image": picture.display().to_string(),
        "box": { "x": face.x, "y": face.y, "width": face.width, "height": face.height },
        "confidence": face.confidence,
    })
}

pub async fn compare(config: &Config, args: &CompareArgs) -> Result<ExitCode> {
    let engine = engine::build(&config.engine).context("cannot start the face engine")?;
    let first = Frame::read(&args.first)?;
    let second = Frame::read(&args.second)?;
    let comparison = engine
        .compare(&first, &second)
        .await
        .with_context(|| format!("comparing {} with {}", args.first.display(), args.second.display()))?;
    let threshold = config.engine.match_threshold;
    let matched = comparison.similarity >= threshold;
    if args.json {
        let report = json!({
            "similarity": comparison.similarity,
            "match": matched,
            "threshold": threshold,
            "faces": [face_json(&args.first, &comparison.first), face_json(&args.second, &comparison.second)],
        });
        println!("{report}");
    } else {
        println!(
            "similarity {:.1} — {} (threshold {threshold})",
            comparison.similarity,
            if matched { "the same person" } else { "not the same person" }
        );
        for (picture, face) in [(&args.first, &comparison.first), (&args.second, &comparison.second)] {
            println!(
                "  {}: face at ({}, {}) size {}×{}, confidence {:.1}",
                picture.display(),
                face.x,
                face.y,
                face.width,
                face.height,
                face.confidence
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("the template is valid"));
    bar
}

pub async fn eval(config: &Config, args: &EvalArgs) -> Result<ExitCode> {
    let set = if args.source.is_dir() { PairSet::from_folder(&args.source)? } else { PairSet::from_csv(&args.source)? };
    let engine = LocalEngine::load(&config.engine.models_dir).context("cannot start the on-device engine")?;
    let pictures = set.pictures.clone();
    let described: Vec<Result<Option<DescribedFace>, String>> = tokio::task::spawn_blocking(move || {
        let bar = progress(pictures.len());
        let described = pictures
            .iter()
            .map(|picture| {
                bar.set_message(picture.display().to_string());
                let result = Frame::read(picture).map_err(|e| e.to_string()).and_then(|frame| {
                    engine.describe_blocking(&frame, &picture.display().to_string()).map_err(|e| e.to_string())
                });
                bar.inc(1);
                result
            })
            .collect();
        bar.finish_and_clear();
        described
    })
    .await?;

    let mut skipped = Vec::new();
    for (picture, result) in set.pictures.iter().zip(&described) {
        match result {
            Ok(Some(_)) => {}
            Ok(None) => skipped.push(format!("{}: no face found", picture.display())),
            Err(e) => skipped.push(e.clone()),
        }
    }
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for &(i, j, same) in &set.pairs {
        if let (Ok(Some(a)), Ok(Some(b))) = (&described[i], &described[j]) {
            let score = local::similarity(&a.descriptor, &b.descriptor);
            if same { genuine.push(score) } else { impostor.push(score) }
        }
    }
    let metrics = eval::metrics(&genuine, &impostor, config.engine.match_threshold);
    if args.json {
        println!("{}", json!({ "metrics": metrics, "skipped": skipped }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("pictures: {} ({} without a usable face)", set.pictures.len(), skipped.len());
    println!("pairs: {} genuine, {} impostor", metrics.genuine, metrics.impostor);
    for point in [metrics.at_far_1_percent, metrics.at_far_0_1_percent] {
        println!(
            "TAR {:.3} at FAR {:.1}% (measured FAR {:.4}), threshold {:.2}",
            point.tar,
            point.far_target * 100.0,
            point.far,
            point.threshold
        );
    }
    println!("best accuracy {:.4} at threshold {:.2}", metrics.best_accuracy, metrics.best_accuracy_threshold);
    let configured = metrics.at_configured_threshold;
    println!(
        "at the configured threshold {} (engine.match_threshold): TAR {:.3}, FAR {:.4}",
        configured.threshold, configured.tar, configured.far
    );
    for line in &skipped {
        println!("  skipped {line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn simulate(config: &Config, args: &SimulateArgs) -> Result<ExitCode> {
    // Fail on an unreadable picture before anything is logged.
    Frame::read(&args.image)?;
    let event = facereko::app::simulate_attempt(config, args.card.clone(), PathBuf::from(&args.image)).await?;
    let t = &event.timings;
    // In stage order; stages that did not run (no capture for an unknown card) are left out.
    let stages: Vec<(&str, u32)> = [
        ("read", Some(t.read_ms)),
        ("capture", t.capture_ms),
        ("match", t.match_ms),
        ("actuate", Some(t.actuate_ms)),
        ("total", Some(t.total_ms)),
    ]
    .into_iter()
    .filter_map(|(stage, ms)| Some((stage, ms?)))
    .collect();
    let timings: serde_json::Map<String, serde_json::Value> =
        stages.iter().map(|(stage, ms)| ((*stage).to_owned(), json!(ms))).collect();
    if args.json {
        let report = json!({
            "decision": event.decision,
            "reason": event.reason,
            "person": event.person_name,
            "similarity": event.similarity,
            "timings_ms": timings,
            "photo": event.photo,
            "detail": event.detail,
        });
        println!("{report}");
    } else {
        println!("{}: {}", event.decision, event.reason);
        println!("  card holder: {}", event.person_name.as_deref().unwrap_or("-"));
        println!("  similarity: {}", event.similarity.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")));
        let shown: Vec<String> = stages.iter().map(|(stage, ms)| format!("{stage} {ms} ms")).collect();
        println!("  timings: {}", shown.join(", "));
        if let Some(detail) = &event.detail {
            println!("  detail: {detail}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
