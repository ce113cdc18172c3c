//! The on-device face engine with the real models: the cost of each stage (JPEG decode, detection,
//! alignment, embedding with each embedder) on a 640×480 camera frame and on a full-size photo, the
//! anti-spoofing model's score of the face on both, a whole
//! `LocalEngine::search` with each (cold, and warm after `detect` as in a tap's burst), 1:N search over
//! galleries of 1k–100k faces, load time and peak memory.
//! Run with `cargo bench --bench engine`; the models come from `facereko models fetch`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use facereko::access::PersonId;
use facereko::engine::local::antispoof::AntiSpoof;
use facereko::engine::local::detector::{self, Detector, finder::Finder};
use facereko::engine::local::embedder::{EMBEDDERS, Embedder, Kind};
use facereko::engine::local::{self, LocalEngine, align, best_match};
use facereko::engine::{FaceEngine, FaceTemplate, Gallery, SearchOutcome, StoredFace, decode_rgb};
use facereko::frame::Frame;
use facereko::models::{self, ModelPaths};

use common::bench::{camera_frame, largest, machine, percentile, runs};

/// Median and 95th percentile of a set of timings.
#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    p95: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { median: percentile(&samples, 0.5), p95: percentile(&samples, 0.95) }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cell = format!("{:.2} / {:.2}", ms(self.median), ms(self.p95));
        f.pad(&cell)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A `kB` field of /proc/self/status (`VmHWM`, `VmRSS`) in bytes; `None` off Linux.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn memory(field: &str) -> String {
    proc_status_bytes(field).map_or_else(|| "n/a".to_owned(), |b| format!("{:.1} MiB", mib(b)))
}

/// The models folder, or a panic that says how to fill it.
fn models_dir() -> PathBuf {
    let dir = models::test_models_dir();
    let samples = models::samples_dir(&dir);
    let complete = ModelPaths::check(&dir).is_ok()
        && ["obama.jpg", "obama2.jpg", "biden.jpg"].iter().all(|s| samples.join(s).is_file());
    assert!(
        complete,
        "the face models or sample pictures are missing from {}: run `cargo run -- models fetch --dir {}` \
         (or set FACEREKO_TEST_MODELS)",
        dir.display(),
        dir.display()
    );
    dir
}

fn read_frame(path: &Path) -> Frame {
    Frame::read(path).unwrap_or_else(|e| panic!("{e}"))
}

/// The time of each stage, each fed with the previous stage's output, over `runs` runs.
struct Stages {
    decode: Stats,
    /// The largest face, as a description finds it.
    detect: Stats,
    /// Every face (not part of the total): what `DetectFaces` and enrolment's one-face rule need.
    every_face: Stats,
    align: Stats,
    embed: Stats,
    total: Stats,
}

fn time_stages(frame: &Frame, what: &str, detector: &Detector, embedder: &Embedder, runs: usize) -> Stages {
    let mut samples: [Vec<Duration>; 5] = Default::default();
    let mut every_face = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let image = decode_rgb(black_box(frame), what).unwrap();
        let decoded = Instant::now();
        let face = detector.detect_largest(&image).unwrap().unwrap_or_else(|| panic!("no face found in {what}"));
        let detected = Instant::now();
        let chip = align::chip(&image, &face.landmarks, &embedder.kind().template);
        let aligned = Instant::now();
        black_box(embedder.embed(&chip).unwrap());
        let embedded = Instant::now();
        for (stage, (from, to)) in samples.iter_mut().zip([
            (started, decoded),
            (decoded, detected),
            (detected, aligned),
            (aligned, embedded),
            (started, embedded),
        ]) {
            stage.push(to - from);
        }
        let started = Instant::now();
        black_box(detector.detect(&image).unwrap());
        every_face.push(started.elapsed());
    }
    let [decode, detect, align, embed, total] = samples.map(Stats::of);
    Stages { decode, detect, every_face: Stats::of(every_face), align, embed, total }
}

/// The anti-spoofing model's time per face (square crop, resize to 128×128, network) on the largest
/// face of `frame`, with the score it gave.
fn time_live_score(frame: &Frame, what: &str, detector: &Detector, antispoof: &AntiSpoof, runs: usize) -> (Stats, f32) {
    let image = decode_rgb(frame, what).unwrap();
    let face = largest(&detector.detect(&image).unwrap()).unwrap_or_else(|| panic!("no face found in {what}"));
    let mut score = 0.0;
    let samples = (0..runs)
        .map(|_| {
            let started = Instant::now();
            score = black_box(antispoof.live_score(black_box(&image), &face).unwrap());
            started.elapsed()
        })
        .collect();
    (Stats::of(samples), score)
}

/// Length of the default embedder's (MobileFaceNet's) descriptors, for the 1:N search.
const DESCRIPTOR_LEN: usize = 192;

/// SplitMix64: deterministic, good enough for test vectors, no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_signed(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn unit_descriptor(&mut self, len: usize) -> Vec<f32> {
        let raw: Vec<f32> = (0..len).map(|_| self.next_signed()).collect();
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        raw.into_iter().map(|v| v / norm).collect()
    }
}

/// `count` random faces of `len` values, three per person, with ids from `first_id`.
fn random_faces(rng: &mut SplitMix64, count: usize, first_id: i64, len: usize) -> Vec<StoredFace> {
    (0..count as i64)
        .map(|i| StoredFace {
            id: first_id + i,
            person: PersonId(first_id + i / 3),
            template: FaceTemplate::Descriptor(rng.unit_descriptor(len)),
        })
        .collect()
}

/// What a gallery of `faces` descriptors occupies: the slice of `StoredFace` plus one heap
/// vector of `DESCRIPTOR_LEN` `f32` per face, and the matrix's row of `DESCRIPTOR_LEN` bytes with
/// its index and scales ([`MATRIX_ROW_EXTRA`]); allocator overhead not counted.
fn gallery_bytes(faces: usize) -> u64 {
    (faces * (size_of::<StoredFace>() + DESCRIPTOR_LEN * size_of::<f32>() + DESCRIPTOR_LEN + MATRIX_ROW_EXTRA)) as u64
}

/// A matrix row's face index, scale and L1 norm.
const MATRIX_ROW_EXTRA: usize = size_of::<usize>() + 2 * size_of::<f32>();

/// How the door searched before the gallery kept a matrix: every face's own vector, one by one.
fn scan_every_face(kind: &Kind, descriptor: &[f32], gallery: &Gallery) -> Option<(PersonId, f32)> {
    let described = gallery.iter().filter_map(|stored| match &stored.template {
        FaceTemplate::Descriptor(d) => Some((stored.person, d.as_slice())),
        FaceTemplate::Remote(_) => None,
    });
    local::closest(kind, descriptor, described)
}

/// One gallery size's 1:N search times.
struct OneToN {
    faces: usize,
    matrix: Stats,
    scan: Stats,
    built: Duration,
    runs: usize,
}

/// Passed to a child copy of this program, which builds only the 100k gallery and prints how much
/// its resident size grew: in the benchmark process the gallery reuses heap that loading the
/// models freed, so its own growth does not show there.
const GALLERY_ONLY: &str = "--gallery-rss-only";

fn gallery_rss_only() {
    let before = proc_status_bytes("VmRSS").unwrap_or(0);
    let gallery: Gallery = random_faces(&mut SplitMix64(1), 100_000, 0, DESCRIPTOR_LEN).into();
    let after = proc_status_bytes("VmRSS").unwrap_or(0);
    black_box(&gallery);
    println!("{}", after.saturating_sub(before));
}

/// The resident growth measured by a fresh process building the 100k gallery.
fn measured_gallery_rss() -> Option<u64> {
    let output = std::process::Command::new(std::env::current_exe().ok()?).arg(GALLERY_ONLY).output().ok()?;
    String::from_utf8(output.stdout).ok()?.trim().parse().ok().filter(|&bytes| bytes > 0)
}

/// A whole `LocalEngine::search` of the 640×480 frame, as the daemon runs it, against a small
/// gallery: Obama's and Biden's enrolled faces and noise.
struct Searches {
    embedder: &'static str,
    threads: usize,
    /// A frame the engine has not seen, as `search` after a restart or on an uploaded picture.
    cold: Stats,
    /// The frame the burst just ran `detect` on, whose analysis the engine keeps for `search`.
    warm: Stats,
    gallery_len: usize,
    similarity: f32,
    face_confidence: f32,
}

fn time_search(
    engine: &LocalEngine,
    threads: usize,
    frame: &Frame,
    samples: &Path,
    rng: &mut SplitMix64,
    runtime: &tokio::runtime::Runtime,
) -> Searches {
    let mut gallery = Vec::new();
    for (id, file) in [(1, "obama.jpg"), (2, "biden.jpg")] {
        let template = runtime.block_on(engine.enroll(PersonId(id), &read_frame(&samples.join(file)))).unwrap();
        gallery.push(StoredFace { id, person: PersonId(id), template });
    }
    let FaceTemplate::Descriptor(enrolled) = &gallery[0].template else {
        panic!("the local engine stores descriptors")
    };
    gallery.extend(random_faces(rng, 8, 100, enrolled.len()));
    let gallery_len = gallery.len();
    let gallery: Gallery = gallery.into();
    let mut cold_samples = Vec::new();
    let mut warm_samples = Vec::new();
    let mut outcomes = Vec::new();
    for _ in 0..runs(50, 2) {
        let fresh = Frame::from_bytes(frame.bytes().to_vec(), "a fresh copy of the frame").unwrap();
        let started = Instant::now();
        let cold = runtime.block_on(engine.search(black_box(&fresh), &gallery)).unwrap();
        cold_samples.push(started.elapsed());
        runtime.block_on(engine.detect(&fresh)).unwrap();
        let started = Instant::now();
        let warm = runtime.block_on(engine.search(black_box(&fresh), &gallery)).unwrap();
        warm_samples.push(started.elapsed());
        outcomes.extend([cold, warm]);
    }
    let embedder = engine.embedder().name;
    let Some(&SearchOutcome::Candidate { person: PersonId(1), similarity, face_confidence }) = outcomes.first() else {
        panic!("with {embedder}, the 640×480 frame of Obama should match Obama's photo, got {:?}", outcomes.first());
    };
    assert!(outcomes.iter().all(|o| *o == outcomes[0]), "searches of one frame disagree: {outcomes:?}");
    Searches {
        embedder,
        threads,
        cold: Stats::of(cold_samples),
        warm: Stats::of(warm_samples),
        gallery_len,
        similarity,
        face_confidence,
    }
}

fn main() {
    facereko::engine::local::keep_freed_memory();
    if std::env::args().any(|arg| arg == GALLERY_ONLY) {
        return gallery_rss_only();
    }
    let dir = models_dir();
    let samples = models::samples_dir(&dir);
    println!("facereko engine benchmark: {}", machine());
    println!("models: {}", dir.display());
    println!();

    // Load first, so that the high-water mark below is the loaded engine and nothing else.
    let started = Instant::now();
    let engine = LocalEngine::load(&dir, EMBEDDERS[0].name).unwrap_or_else(|e| panic!("{e}"));
    let engine_load = started.elapsed();
    let (hwm_loaded, rss_loaded) = (memory("VmHWM"), memory("VmRSS"));

    // 1:N search over galleries of random unit descriptors, before anything else takes memory, so
    // that the high-water mark is the engine plus the largest gallery: the gallery's quantised
    // matrix (`best_match`, the search the door runs) against a scan of every face's own vector
    // (`closest`, how the door searched before), which must agree.
    let mut rng = SplitMix64(0x5EED_FACE);
    let mut one_to_n = Vec::new();
    let (mut hwm_gallery, mut rss_gallery) = (String::new(), String::new());
    for (faces, measured) in [(1_000, 2_000), (10_000, 300), (100_000, 50)] {
        let stored = random_faces(&mut rng, faces, 1_000, DESCRIPTOR_LEN);
        let started = Instant::now();
        let gallery: Gallery = stored.into();
        let built = started.elapsed();
        // Kept from the last, largest gallery.
        (hwm_gallery, rss_gallery) = (memory("VmHWM"), memory("VmRSS"));
        let search_runs = runs(measured, 3);
        let (mut matrix, mut scan) = (Vec::with_capacity(search_runs), Vec::with_capacity(search_runs));
        for _ in 0..search_runs {
            let query = rng.unit_descriptor(DESCRIPTOR_LEN);
            let started = Instant::now();
            let found = black_box(best_match(engine.embedder(), black_box(&query), &gallery));
            matrix.push(started.elapsed());
            let started = Instant::now();
            let scanned = black_box(scan_every_face(engine.embedder(), black_box(&query), &gallery));
            scan.push(started.elapsed());
            assert_eq!(found, scanned, "the matrix search and the scan of every face disagree");
            assert!(found.is_some_and(|(_, s)| (0.0..=100.0).contains(&s)));
        }
        one_to_n.push(OneToN { faces, matrix: Stats::of(matrix), scan: Stats::of(scan), built, runs: search_runs });
    }

    // A second copy of the two networks, for timing each stage on its own.
    let paths = ModelPaths::check(&dir).unwrap();
    let started = Instant::now();
    let detector = Detector::load(&paths).unwrap();
    let detector_load = started.elapsed();
    let embedders: Vec<(Embedder, Duration)> = EMBEDDERS
        .iter()
        .map(|kind| {
            let started = Instant::now();
            let embedder = Embedder::load(kind.name, &dir).unwrap();
            (embedder, started.elapsed())
        })
        .collect();

    let started = Instant::now();
    let antispoof = AntiSpoof::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let antispoof_load = started.elapsed();

    let photo = read_frame(&samples.join("obama.jpg"));
    let frame = camera_frame(&read_frame(&samples.join("obama2.jpg")), &detector);
    let photo_size = decode_rgb(&photo, "obama.jpg").unwrap().dimensions();

    // A later frame of a burst: only the region around the face of the frame before is looked at.
    // What it changes for the embedders: how far the landmarks move, how alike the descriptors stay.
    let image = decode_rgb(&frame, "the 640×480 frame").unwrap();
    let whole = largest(&detector.detect(&image).unwrap()).expect("a face in the frame");
    let around = (whole.left, whole.top, whole.width, whole.height);
    let region = Stats::of(
        (0..runs(50, 2))
            .map(|_| {
                let started = Instant::now();
                black_box(detector.detect_in(black_box(&image), around).unwrap());
                started.elapsed()
            })
            .collect(),
    );
    let near = largest(&detector.detect_in(&image, around).unwrap()).expect("the face is found around itself");
    let landmark_shift =
        whole.landmarks.iter().zip(&near.landmarks).map(|(a, b)| (a.0 - b.0).hypot(a.1 - b.1)).fold(0.0, f32::max);
    let region_agreement: Vec<(&str, f32)> = embedders
        .iter()
        .map(|(embedder, _)| {
            let template = &embedder.kind().template;
            let [a, b] = [&whole, &near].map(|d| embedder.embed(&align::chip(&image, &d.landmarks, template)).unwrap());
            (embedder.kind().name, facereko::engine::cosine(&a, &b))
        })
        .collect();

    // Per stage, on both pictures, with each embedder.
    let stage_runs = runs(50, 2);
    let stages: Vec<(&str, Stages, Stages)> = embedders
        .iter()
        .map(|(embedder, _)| {
            let on_frame = time_stages(&frame, "the 640×480 frame", &detector, embedder, stage_runs);
            let on_photo = time_stages(&photo, "obama.jpg", &detector, embedder, stage_runs);
            (embedder.kind().name, on_frame, on_photo)
        })
        .collect();

    let finder = Finder::load(&paths.finder).expect("BlazeFace: run `facereko models fetch`");
    let time_finder = |frame: &Frame, what: &str| {
        let image = decode_rgb(frame, what).unwrap();
        let samples = (0..stage_runs)
            .map(|_| {
                let started = Instant::now();
                black_box(finder.find(black_box(&image)).unwrap());
                started.elapsed()
            })
            .collect();
        Stats::of(samples)
    };
    let (finder_on_frame, finder_on_photo) = (time_finder(&frame, "the frame"), time_finder(&photo, "obama.jpg"));

    let (live_on_frame, live_score_frame) =
        time_live_score(&frame, "the 640×480 frame", &detector, &antispoof, stage_runs);
    let (live_on_photo, live_score_photo) = time_live_score(&photo, "obama.jpg", &detector, &antispoof, stage_runs);

    // The whole search with each embedder, on one core and on the default number; the engine
    // loaded first serves the default embedder on the default cores.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let default_threads = local::default_threads();
    let searches: Vec<Searches> = EMBEDDERS
        .iter()
        .flat_map(|kind| [1, default_threads].map(|threads| (kind, threads)))
        .map(|(kind, threads)| {
            let engine = if kind.name == engine.embedder().name && threads == default_threads {
                engine.clone()
            } else {
                LocalEngine::load_tuned(&dir, kind.name, None, threads).unwrap_or_else(|e| panic!("{e}"))
            };
            time_search(&engine, threads, &frame, &samples, &mut rng, &runtime)
        })
        .collect();
    let hwm_end = memory("VmHWM");

    let (pw, ph) = photo_size;
    println!("Per stage, one thread, median / p95 in ms over {stage_runs} runs (each stage fed by the one before):");
    for (name, on_frame, on_photo) in &stages {
        println!(
            "  {:<34} {:>18} {:>22}",
            format!("stage, embedder {name}"),
            "640×480 frame",
            format!("obama.jpg {pw}×{ph}")
        );
        for (stage, a, b) in [
            ("JPEG decode (decode_rgb)", on_frame.decode, on_photo.decode),
            ("largest face (detect_largest)", on_frame.detect, on_photo.detect),
            ("alignment (align::chip)", on_frame.align, on_photo.align),
            ("embedding (Embedder::embed)", on_frame.embed, on_photo.embed),
            ("all four", on_frame.total, on_photo.total),
        ] {
            println!("  {stage:<34} {a:>18} {b:>22}");
        }
        println!("  {:<34} {:>18} {:>22}", "  every face (Detector::detect)", on_frame.every_face, on_photo.every_face);
    }
    println!("  {:<34} {finder_on_frame:>18} {finder_on_photo:>22}", "BlazeFace alone (Finder::find)");
    println!("  {:<34} {live_on_frame:>18} {live_on_photo:>22}", "anti-spoofing (AntiSpoof::live_score)");
    println!("    (live score {live_score_frame:.3} on the frame, {live_score_photo:.3} on the photo)");
    println!("  {:<34} {region:>18}", "detection around the frame's face");
    println!(
        "    (region of {}×{} px shrunk to {}: landmarks move by at most {landmark_shift:.1} px; descriptors of the \
         two alignments agree at cosine {})",
        (whole.width.max(whole.height) * detector::REGION_SPAN).round(),
        (whole.width.max(whole.height) * detector::REGION_SPAN).round(),
        detector::REGION_CANVAS,
        region_agreement.iter().map(|(name, c)| format!("{c:.4} ({name})")).collect::<Vec<_>>().join(", ")
    );
    for Searches { embedder, threads, cold, warm, gallery_len, similarity, face_confidence } in &searches {
        println!("  LocalEngine::search, {embedder}, {threads} thread(s)");
        println!("  {:<34} {cold:>18}", "  cold (a frame not seen before)");
        println!("  {:<34} {warm:>18}", "  warm (right after detect)");
        println!(
            "    (640×480 frame against {gallery_len} faces; matched Obama at {similarity:.1}, face {face_confidence:.0}%)"
        );
    }
    println!();
    println!("1:N search over random unit {DESCRIPTOR_LEN}-d descriptors, a new query each run:");
    println!(
        "  {:>8} {:>22} {:>12} {:>24} {:>12} {:>10} {:>6}",
        "faces", "matrix: median / p95", "ns per face", "every face: median / p95", "ns per face", "build ms", "runs"
    );
    for OneToN { faces, matrix, scan, built, runs } in &one_to_n {
        let per_face = |stats: &Stats| stats.median.as_secs_f64() * 1e9 / *faces as f64;
        println!(
            "  {faces:>8} {:>22} {:>12.1} {:>24} {:>12.1} {:>10.1} {runs:>6}",
            matrix.to_string(),
            per_face(matrix),
            scan.to_string(),
            per_face(scan),
            ms(*built),
        );
    }
    println!();
    println!("Load and memory:");
    println!("  {:<48} {:>10.0} ms", "engine load (LocalEngine::load, models → ready)", ms(engine_load));
    println!("  {:<48} {:>10.0} ms", "detector alone (Detector::load)", ms(detector_load));
    println!("  {:<48} {:>10.0} ms", "anti-spoofing model alone (AntiSpoof::load)", ms(antispoof_load));
    for (embedder, load) in &embedders {
        println!(
            "  {:<48} {:>10.0} ms",
            format!("embedder {} alone (Embedder::load)", embedder.kind().name),
            ms(*load)
        );
    }
    println!("  {:<48} {:>13}   (VmRSS now {rss_loaded})", "peak RSS (VmHWM) after loading the models", hwm_loaded);
    println!("  {:<48} {:>13}   (VmRSS now {rss_gallery})", "peak RSS (VmHWM) with the 100k gallery", hwm_gallery);
    println!("  {:<48} {:>13}", "peak RSS (VmHWM) at the end (+ copies of models)", hwm_end);
    println!(
        "  {:<48} {:>9.1} MiB  ({} B StoredFace + {} B descriptor + {} B matrix row per face)",
        "100k gallery, estimated from its element count",
        mib(gallery_bytes(100_000)),
        size_of::<StoredFace>(),
        DESCRIPTOR_LEN * size_of::<f32>(),
        DESCRIPTOR_LEN + MATRIX_ROW_EXTRA
    );
    match measured_gallery_rss() {
        Some(bytes) => println!("  {:<48} {:>9.1} MiB", "100k gallery, VmRSS growth in a fresh process", mib(bytes)),
        None => println!("  {:<48} {:>13}", "100k gallery, VmRSS growth in a fresh process", "n/a"),
    }
}
