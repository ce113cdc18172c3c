//! Face commands: compare two pictures, evaluate accuracy, simulate one attempt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use facereko::config::Config;
use facereko::engine::local::embedder::Kind;
use facereko::engine::local::{self, Descriptor, LocalEngine, one_to_one};
use facereko::engine::{self, DetectedFace, cosine};
use facereko::eval;
use facereko::frame::Frame;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{CompareArgs, EvalArgs, GalleryScore, SimulateArgs};

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
    let context = || format!("comparing {} with {}", args.first.display(), args.second.display());
    // The on-device engine examines both faces as the comparison API does, with its warnings.
    let (comparison, warnings) = match engine.on_device().filter(|_| engine.name() == local::NAME) {
        Some(local) => {
            let (a_name, b_name) = (args.first.display().to_string(), args.second.display().to_string());
            let a = local.examine(&first, &a_name).await.with_context(context)?;
            let b = local.examine(&second, &b_name).await.with_context(context)?;
            let mut warnings = one_to_one::warnings(&a, &a_name);
            warnings.extend(one_to_one::warnings(&b, &b_name));
            let similarity = local.similarity(&a.descriptor, &b.descriptor);
            (engine::Comparison { similarity, first: a.face, second: b.face }, warnings)
        }
        None => (engine.compare(&first, &second).await.with_context(context)?, Vec::new()),
    };
    let threshold = config.engine.match_threshold;
    let matched = engine::clears_threshold(comparison.similarity, threshold);
    if args.json {
        let report = json!({
            "similarity": comparison.similarity,
            "match": matched,
            "threshold": threshold,
            "faces": [face_json(&args.first, &comparison.first), face_json(&args.second, &comparison.second)],
            "warnings": warnings,
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
        for warning in &warnings {
            println!("  warning: {warning}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("the template is valid"));
    bar
}

/// The similarity scores of one group's pairs, with the highest stranger's cosine (one embedder).
struct Scored {
    name: String,
    genuine: Vec<f32>,
    impostor: Vec<f32>,
    strictest_stranger_cosine: Option<f32>,
}

impl Scored {
    fn metrics(&self, threshold: f32) -> eval::Metrics {
        eval::metrics(&self.genuine, &self.impostor, threshold)
    }
}

/// How a picture's largest face is found before it is described.
#[derive(Clone, Copy)]
enum Finding {
    /// Among every face, as enrolment and the face API find it.
    AmongAll,
    /// As a door's burst finds it in a frame ([`LocalEngine::detect_largest_blocking`]).
    AsTheDoor,
}

/// Every picture's descriptor from each embedder, timed; pictures without one are reported. The
/// pictures are shared among `workers` threads, each running the networks on its own core: for a
/// batch that costs less CPU than spreading each picture's networks over the cores (measured).
async fn describe_all(
    engines: Vec<LocalEngine>,
    pictures: Vec<PathBuf>,
    finding: Finding,
    workers: usize,
) -> Result<(HashMap<PathBuf, Vec<Descriptor>>, Vec<String>, f64)> {
    let started = std::time::Instant::now();
    let count = pictures.len();
    let (described, skipped) = tokio::task::spawn_blocking(move || {
        let bar = progress(pictures.len() * engines.len());
        let next = AtomicUsize::new(0);
        let describe_next = || {
            let mut done = Vec::new();
            while let Some(picture) = pictures.get(next.fetch_add(1, Ordering::Relaxed)) {
                bar.set_message(picture.display().to_string());
                done.push((picture, describe_picture(&engines, picture, finding, &bar)));
                local::give_back_surplus_memory();
            }
            done
        };
        let mut results: Vec<_> = std::thread::scope(|scope| {
            let running: Vec<_> = (0..workers.max(1)).map(|_| scope.spawn(describe_next)).collect();
            running
                .into_iter()
                .flat_map(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        bar.finish_and_clear();
        // In the pictures' order, whichever worker finished first.
        results.sort_by(|a, b| a.0.cmp(b.0));
        let mut described = HashMap::new();
        let mut skipped = Vec::new();
        for (picture, descriptors) in results {
            match descriptors {
                Ok(descriptors) => {
                    described.insert(picture.clone(), descriptors);
                }
                Err(e) => skipped.push(e),
            }
        }
        (described, skipped)
    })
    .await?;
    Ok((described, skipped, started.elapsed().as_secs_f64() * 1000.0 / count.max(1) as f64))
}

/// One picture's descriptor from each embedder, or why it has none.
fn describe_picture(
    engines: &[LocalEngine],
    picture: &Path,
    finding: Finding,
    bar: &ProgressBar,
) -> Result<Vec<Descriptor>, String> {
    let what = picture.display().to_string();
    let frame = Frame::read(picture).map_err(|e| e.to_string())?;
    engines
        .iter()
        .map(|engine| {
            bar.inc(1);
            let described = match finding {
                Finding::AmongAll => engine.describe_blocking(&frame, &what),
                Finding::AsTheDoor => engine.describe_as_the_door_blocking(&frame, &what),
            };
            match described {
                Ok(Some(face)) => Ok(face.descriptor),
                Ok(None) => Err(format!("{what}: no face found")),
                Err(e) => Err(e.to_string()),
            }
        })
        .collect()
}

/// The unit-length mean of several descriptors.
fn mean_descriptor(descriptors: &[&Descriptor]) -> Descriptor {
    let mut sum = vec![0.0; descriptors.first().map_or(0, |d| d.len())];
    for descriptor in descriptors {
        sum.iter_mut().zip(descriptor.iter()).for_each(|(s, v)| *s += v);
    }
    let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    sum.into_iter().map(|v| v / norm).collect()
}

pub async fn eval(config: &Config, args: &EvalArgs) -> Result<ExitCode> {
    let table = args.groups.as_deref().map(eval::read_group_table).transpose()?;
    let groups = eval::Group::from_sources(&args.sources, table.as_ref())?;
    let names = if args.embedder.is_empty() { vec![config.engine.embedder.clone()] } else { args.embedder.clone() };
    // One core for each picture's networks, the pictures spread over the cores.
    let workers = config.engine.threads.unwrap_or_else(local::default_threads);
    let engines = names
        .iter()
        .map(|name| LocalEngine::load_tuned(&config.engine.models_dir, name, args.flip, 1))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot start the on-device engine")?;
    let kinds: Vec<&Kind> = engines.iter().map(LocalEngine::embedder).collect();
    let mut pictures: Vec<PathBuf> = groups.iter().flat_map(|g| g.set.pictures.iter().cloned()).collect();
    pictures.sort();
    pictures.dedup();
    let picture_count = pictures.len();
    let (descriptors, skipped, per_picture_ms) =
        describe_all(engines.clone(), pictures.clone(), Finding::AmongAll, workers).await?;
    // With a gallery, the probes are described as a door's camera frames are, the enrolled
    // pictures as enrolment does.
    let probes = match args.enrol {
        Some(_) => Some(describe_all(engines, pictures, Finding::AsTheDoor, workers).await?.0),
        None => None,
    };

    // Fused scores are the mean of each embedder's calibrated similarity.
    let similarity = |a: &[Descriptor], b: &[Descriptor]| -> (f32, f32) {
        let cosines: Vec<f32> = a.iter().zip(b).map(|(a, b)| cosine(a, b)).collect();
        let shown = kinds.iter().zip(&cosines).map(|(kind, c)| kind.similarity(*c)).sum::<f32>() / kinds.len() as f32;
        (shown, cosines[0])
    };
    let single = kinds.len() == 1;
    let mut scored = Vec::new();
    for group in &groups {
        let set = &group.set;
        let described = |k: usize| descriptors.get(&set.pictures[k]);
        let mut result = Scored {
            name: group.name.clone(),
            genuine: Vec::new(),
            impostor: Vec::new(),
            strictest_stranger_cosine: None,
        };
        if let Some(enrolled) = args.enrol {
            let Some(owners) = &set.owners else {
                println!("{}: pairs without people, left out of --enrol", group.name);
                continue;
            };
            let as_probe = |k: usize| probes.as_ref().and_then(|probes| probes.get(&set.pictures[k]));
            let score = |gallery: &[usize], probe: usize| -> f32 {
                let probe = as_probe(probe).expect("only usable pictures are scored");
                let gallery: Vec<&Vec<Descriptor>> = gallery.iter().map(|&k| described(k).expect("usable")).collect();
                match args.gallery {
                    GalleryScore::Best => gallery.iter().map(|g| similarity(g, probe).0).fold(0.0, f32::max),
                    GalleryScore::Mean => {
                        let means: Vec<Descriptor> = (0..kinds.len())
                            .map(|e| mean_descriptor(&gallery.iter().map(|g| &g[e]).collect::<Vec<_>>()))
                            .collect();
                        similarity(&means, probe).0
                    }
                }
            };
            (result.genuine, result.impostor) = eval::gallery_scores(
                owners,
                usize::from(enrolled),
                |k| described(k).is_some() && as_probe(k).is_some(),
                score,
            );
        } else {
            for &(i, j, same) in &set.pairs {
                if let (Some(a), Some(b)) = (described(i), described(j)) {
                    let (shown, cosine) = similarity(a, b);
                    if same {
                        result.genuine.push(shown);
                    } else {
                        result.impostor.push(shown);
                        let strictest = result.strictest_stranger_cosine.get_or_insert(cosine);
                        *strictest = strictest.max(cosine);
                    }
                }
            }
            if !single {
                result.strictest_stranger_cosine = None;
            }
        }
        scored.push(result);
    }
    if scored.len() > 1 {
        let pooled = Scored {
            name: "pooled".into(),
            genuine: scored.iter().flat_map(|s| s.genuine.iter().copied()).collect(),
            impostor: scored.iter().flat_map(|s| s.impostor.iter().copied()).collect(),
            strictest_stranger_cosine: scored.iter().filter_map(|s| s.strictest_stranger_cosine).reduce(f32::max),
        };
        scored.push(pooled);
    }

    let threshold = config.engine.match_threshold;
    let embedders = names.join("+");
    if args.json {
        let groups: Vec<serde_json::Value> = scored
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "metrics": s.metrics(threshold),
                    "strictest_stranger_cosine": s.strictest_stranger_cosine,
                })
            })
            .collect();
        let report =
            json!({ "embedder": embedders, "per_picture_ms": per_picture_ms, "groups": groups, "skipped": skipped });
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "embedder {embedders}: {picture_count} pictures ({} without a usable face), {per_picture_ms:.1} ms per picture \
         (decode, detect, align, embed)",
        skipped.len()
    );
    if let Some(enrolled) = args.enrol {
        println!("each person enrols {enrolled} picture(s), the rest are probes; score: {:?}", args.gallery);
    }
    println!(
        "{:<28} {:>8} {:>9} {:>10} {:>11} {:>24} {:>10}",
        "group",
        "genuine",
        "impostor",
        "TAR@FAR1%",
        "TAR@FAR0.1%",
        format!("at {threshold}: TAR / FAR"),
        "strictest"
    );
    for s in &scored {
        let m = s.metrics(threshold);
        let at = m.at_configured_threshold;
        println!(
            "{:<28} {:>8} {:>9} {:>10.3} {:>11.3} {:>24} {:>10}",
            s.name,
            m.genuine,
            m.impostor,
            m.at_far_1_percent.tar,
            m.at_far_0_1_percent.tar,
            format!("{:.3} / {:.2}%", at.tar, at.far * 100.0),
            s.strictest_stranger_cosine.map_or("-".into(), |c| format!("{c:.4}"))
        );
    }
    println!("(strictest: the highest cosine of two different people's faces, the embedder's calibration input)");
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
