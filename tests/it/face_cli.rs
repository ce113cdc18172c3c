//! The face commands of the real binary with the on-device engine: `compare`, `eval`, `enroll`,
//! `simulate` and the interactive `demo`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{BIN, TestDoor, face, grey_png, models_dir, sample, side_by_side};

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("one JSON object ({e}):\n{stdout}"))
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn compare_reports_similarity_match_threshold_and_faces() {
    let door = TestDoor::with_local_engine();
    let (obama, obama2, biden) = (sample("obama.jpg"), sample("obama2.jpg"), sample("biden.jpg"));

    let same = json(&door.ok(&["compare", arg(&obama), arg(&obama2), "--json"]));
    println!("obama.jpg vs obama2.jpg: {same}");
    let similarity = same["similarity"].as_f64().expect("a similarity");
    assert!((0.0..=100.0).contains(&similarity), "{same}");
    assert_eq!(same["threshold"].as_f64(), Some(90.0), "the default threshold: {same}");
    assert_eq!(same["match"], true, "{same}");
    let faces = same["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 2, "{same}");
    for (face, picture) in faces.iter().zip([&obama, &obama2]) {
        assert_eq!(face["image"].as_str(), Some(arg(picture)), "{face}");
        for key in ["x", "y", "width", "height"] {
            assert!(face["box"][key].is_u64(), "box.{key}: {face}");
        }
        assert!(face["box"]["width"].as_u64() > Some(50), "a face, not a speck: {face}");
        let confidence = face["confidence"].as_f64().expect("a confidence");
        assert!(confidence > 0.0 && confidence <= 100.0, "{face}");
    }

    let different = json(&door.ok(&["compare", arg(&obama), arg(&biden), "--json"]));
    println!("obama.jpg vs biden.jpg: {different}");
    assert_eq!(different["match"], false, "{different}");
    assert!(different["similarity"].as_f64() < Some(90.0), "{different}");

    let human = door.ok(&["compare", arg(&obama), arg(&obama2)]);
    assert!(human.contains("the same person (threshold 90)"), "{human}");
}

#[test]
fn compare_without_a_face_fails_clearly() {
    let door = TestDoor::with_local_engine();
    let grey = door.path("grey.png");
    std::fs::write(&grey, grey_png()).unwrap();
    let output = door.run(&["compare", arg(&sample("obama.jpg")), arg(&grey), "--json"]);
    let text = text(&output);
    assert!(!output.status.success(), "no face is a failure:\n{text}");
    assert!(text.contains("no face found"), "{text}");
    assert!(text.contains("grey.png"), "the message names the picture:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(output.stdout.is_empty(), "no half-written JSON on stdout:\n{text}");
}

/// TAR at FAR 1 % of the default embedder per group, as the README's accuracy table gives it.
const README_TAR_AT_FAR_1_PERCENT: &[(&str, f64)] = &[
    ("diverse/black", 0.971),
    ("diverse/east_asian", 0.913),
    ("diverse/south_asian", 1.0),
    ("lfw10", 0.996),
    ("master", 1.0),
];

/// Accuracy can only go up: no group may fall more than 0.02 below the README, and at the default
/// threshold no stranger of any group is accepted.
#[test]
fn eval_per_group_stays_at_the_readme_figures() {
    let door = TestDoor::with_local_engine();
    let diverse = face("diverse/README.md");
    let lfw = face("lfw10/Colin_Powell/Colin_Powell_0001.jpg").parent().unwrap().parent().unwrap().to_owned();
    let args = ["eval", "--groups", arg(&diverse), arg(diverse.parent().unwrap()), arg(&lfw)];
    let report = json(&door.ok(&[&args[..], &[arg(&face("deepface/master.csv")), "--json"]].concat()));
    assert_eq!(report["embedder"], "mobilefacenet", "{report}");
    assert_eq!(report["skipped"].as_array().map(Vec::len), Some(0), "every picture has a face: {report}");
    let groups = report["groups"].as_array().expect("groups");
    for (name, readme) in README_TAR_AT_FAR_1_PERCENT {
        let group = groups.iter().find(|g| g["name"] == *name).unwrap_or_else(|| panic!("no group {name}: {report}"));
        let metrics = &group["metrics"];
        println!("{name}: {metrics}");
        let tar = metrics["at_far_1_percent"]["tar"].as_f64().expect("TAR at FAR 1%");
        assert!(tar >= readme - 0.02, "{name}: TAR at FAR 1% is {tar}, the README says {readme}: {metrics}");
        let configured = &metrics["at_configured_threshold"];
        assert_eq!(configured["far"].as_f64(), Some(0.0), "{name}: a stranger passes the default threshold: {metrics}");
    }
    let pooled = groups.iter().find(|g| g["name"] == "pooled").expect("the pooled figures");
    assert_eq!(pooled["metrics"]["genuine"], 450 + 170 + 286 + 75 + 38, "{pooled}");
}

/// A folder of two people of lfw10 with `photos` photos each (at most 10).
fn two_people_of_lfw(people: &Path, photos: usize) {
    for person in ["Colin_Powell", "George_W_Bush"] {
        let from = face(&format!("lfw10/{person}/{person}_0001.jpg")).parent().unwrap().to_owned();
        std::fs::create_dir_all(people.join(person)).unwrap();
        for n in 1..=photos {
            let name = format!("{person}_{n:04}.jpg");
            std::fs::copy(from.join(&name), people.join(person).join(&name)).unwrap();
        }
    }
}

/// `eval --enrol` scores as the door does: each person's first picture enrolled, the others
/// probes whose faces are found as in a door's camera frames (BlazeFace, then CenterFace around
/// it), with every genuine probe recognised at the default threshold.
#[test]
fn eval_with_a_gallery_scores_probes_found_as_the_door_finds_them() {
    let door = TestDoor::with_local_engine();
    let people = door.path("people");
    two_people_of_lfw(&people, 3);
    let report = json(&door.ok(&["eval", arg(&people), "--enrol", "1", "--json"]));
    let metrics = &report["groups"][0]["metrics"];
    assert_eq!((metrics["genuine"].as_u64(), metrics["impostor"].as_u64()), (Some(4), Some(4)), "{report}");
    assert_eq!(metrics["at_configured_threshold"]["tar"].as_f64(), Some(1.0), "{report}");
    assert_eq!(metrics["at_configured_threshold"]["far"].as_f64(), Some(0.0), "{report}");
}

/// `eval` looks at 250×250 LFW photos on a 256×256 canvas, the smallest that holds them, and plans
/// no other: on the 320×320 canvas every picture once had, the network worked through 39 % black.
#[test]
fn eval_looks_at_each_picture_on_the_canvas_that_fits_it() {
    let scratch = tempfile::tempdir().unwrap();
    let people = scratch.path().join("people");
    two_people_of_lfw(&people, 2);
    let output = Command::new(BIN)
        .env("RUST_LOG", "facereko=debug")
        .arg("--set")
        .arg(format!("engine.models_dir={}", models_dir().display()))
        .args(["eval", arg(&people), "--json"])
        .output()
        .expect("facereko runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let planned: Vec<&str> =
        log.lines().filter(|line| line.contains("planning the face detector for a canvas")).collect();
    assert_eq!(planned.len(), 1, "one canvas for pictures of one size: {planned:?}");
    assert!(planned[0].contains("canvas=256×256"), "{planned:?}");
}

/// The minor page faults of `facereko eval` on `people`, run to its end.
#[expect(clippy::zombie_processes, reason = "wait4 reaps the child, and gives its resource usage as well")]
fn eval_page_faults(people: &Path) -> i64 {
    let child = Command::new(BIN)
        .arg("--set")
        .arg(format!("engine.models_dir={}", models_dir().display()))
        .args(["eval", arg(people), "--json"])
        .stdout(Stdio::null())
        .spawn()
        .expect("facereko runs");
    let mut status = 0;
    // SAFETY: rusage holds only integers, for which zeroes are valid; wait4 waits for this test's
    // own child, which std has not waited for, and writes into these locals.
    let (waited, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage), usage)
    };
    assert_eq!(waited, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "eval failed: status {status}");
    usage.ru_minflt
}

/// The networks' buffers of one picture are reused by the next (`keep_freed_memory`): when the
/// process gave them back to the system, every picture faulted them in again, about 14,000 page
/// faults a picture of lfw10 and 40 % of `eval`'s CPU.
#[test]
fn eval_reuses_the_memory_of_one_picture_for_the_next() {
    let scratch = tempfile::tempdir().unwrap();
    let (few, more) = (scratch.path().join("few"), scratch.path().join("more"));
    two_people_of_lfw(&few, 2);
    two_people_of_lfw(&more, 8);
    let (on_few, on_more) = (eval_page_faults(&few), eval_page_faults(&more));
    let per_picture = (on_more - on_few) / 12;
    println!("page faults: {on_few} for 4 pictures, {on_more} for 16: {per_picture} a picture");
    assert!(per_picture < 2_000, "{per_picture} page faults a picture ({on_few} for 4, {on_more} for 16)");
}

/// `compare`, `eval` and `models fetch` stand alone: no config file, and the data directory
/// (which only the door needs) does not exist.
#[test]
fn standalone_commands_need_no_data_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("no-such-data-dir");
    let people = scratch.path().join("people");
    two_people_of_lfw(&people, 3);
    let models = models_dir();
    let facereko = |args: &[&str]| {
        let output = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(scratch.path())
            .arg("--set")
            .arg(format!("data_dir={}", missing.display()))
            .arg("--set")
            .arg(format!("engine.models_dir={}", models.display()))
            .args(args)
            .output()
            .expect("facereko runs");
        assert!(output.status.success(), "{args:?} fails without a data directory:\n{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let compared = json(&facereko(&["compare", arg(&sample("obama.jpg")), arg(&sample("obama2.jpg")), "--json"]));
    assert_eq!(compared["match"], true, "{compared}");
    let evaluated = json(&facereko(&["eval", arg(&people), "--json"]));
    assert_eq!(evaluated["groups"][0]["metrics"]["genuine"], 6, "{evaluated}");
    facereko(&["models", "fetch", "--dir", arg(&models)]);
    assert!(!missing.exists(), "nothing created the data directory");
}

/// Runs `facereko simulate` and returns its JSON report.
fn simulate(door: &TestDoor, card: &str, picture: &Path) -> Value {
    json(&door.ok(&["simulate", "--card", card, "--image", arg(picture), "--json"]))
}

#[test]
fn enroll_then_simulate_attempts_through_the_real_pipeline() {
    let door = TestDoor::with_local_engine();
    let enrolled = door.ok(&[
        "enroll",
        "--person",
        "Obama",
        "--card",
        "04A1B2C3",
        arg(&sample("obama.jpg")),
        arg(&sample("obama3.jpg")),
    ]);
    assert!(enrolled.contains("enrolled 2 of 2 picture(s) for Obama"), "{enrolled}");

    // A picture with two faces is skipped and said so; the others are enrolled.
    let two = door.path("two-faces.jpg");
    std::fs::write(&two, side_by_side(&sample("obama.jpg"), 800, &sample("biden.jpg"), 800)).unwrap();
    let enrolled =
        door.ok(&["enroll", "--person", "Biden", "--card", "04B1D3E5", arg(&sample("biden.jpg")), arg(&two)]);
    assert!(enrolled.contains("enrolled 1 of 2 picture(s) for Biden"), "{enrolled}");
    assert!(enrolled.contains(&format!("skipped {}: 2 faces found", two.display())), "{enrolled}");

    let granted = simulate(&door, "04A1B2C3", &sample("obama2.jpg"));
    println!("Obama's card, obama2.jpg: {granted}");
    assert_eq!(granted["decision"], "granted", "{granted}");
    assert_eq!(granted["reason"], "card_and_face", "{granted}");
    assert_eq!(granted["person"], "Obama", "{granted}");
    assert!(granted["similarity"].as_f64() >= Some(90.0), "{granted}");
    let timings = granted["timings_ms"].as_object().expect("timings_ms");
    for stage in ["read", "capture", "match", "actuate", "total"] {
        assert!(timings.get(stage).is_some_and(Value::is_u64), "timings_ms.{stage}: {granted}");
    }
    let stages: u64 = ["read", "capture", "match", "actuate"].iter().map(|s| timings[*s].as_u64().unwrap()).sum();
    assert!(timings["total"].as_u64().unwrap() + 4 >= stages, "the total covers the stages: {granted}");

    let wrong = simulate(&door, "04A1B2C3", &sample("biden.jpg"));
    println!("Obama's card, biden.jpg: {wrong}");
    assert_eq!((&wrong["decision"], &wrong["reason"]), (&"denied".into(), &"wrong_person".into()), "{wrong}");

    let grey = door.path("grey.png");
    std::fs::write(&grey, grey_png()).unwrap();
    let covered = simulate(&door, "04A1B2C3", &grey);
    assert_eq!((&covered["decision"], &covered["reason"]), (&"denied".into(), &"no_face".into()), "{covered}");

    // A camera frame that does not decode fails safe.
    let corrupt = door.path("corrupt.jpg");
    std::fs::write(&corrupt, b"\xFF\xD8\xFF\xE0 not a picture at all").unwrap();
    let broken = simulate(&door, "04A1B2C3", &corrupt);
    assert_eq!((&broken["decision"], &broken["reason"]), (&"denied".into(), &"camera_error".into()), "{broken}");

    let unknown = simulate(&door, "DEADBEEF", &sample("obama2.jpg"));
    assert_eq!((&unknown["decision"], &unknown["reason"]), (&"denied".into(), &"unknown_card".into()), "{unknown}");
    assert_eq!(unknown["person"], Value::Null, "{unknown}");

    // Issue 15, item 10: rehearsals used to land in the real access log and outbox (a log row
    // and its notification are written together, so no row means no notification).
    assert!(door.log_rows().is_empty(), "a rehearsal writes no log row: {:?}", door.log_rows());
    let attempt_photos: Vec<_> = std::fs::read_dir(door.path("photos"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "faces")
        .collect();
    assert!(attempt_photos.is_empty(), "nor a photo: {attempt_photos:?}");
}

#[test]
fn simulate_with_someone_else_when_only_the_holder_is_enrolled() {
    let door = TestDoor::with_local_engine();
    door.ok(&["enroll", "--person", "Obama", "--card", "04A1B2C3", arg(&sample("obama.jpg"))]);
    let stranger = simulate(&door, "04A1B2C3", &sample("biden.jpg"));
    println!("Obama's card, biden.jpg, Biden not enrolled: {stranger}");
    assert_eq!(
        (&stranger["decision"], &stranger["reason"]),
        (&"denied".into(), &"face_not_recognised".into()),
        "{stranger}"
    );
}

/// `facereko demo` driven through its stdin, with its stdout read line by line.
struct Demo {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<String>,
    transcript: Vec<String>,
    deadline: Instant,
}

impl Demo {
    fn start(scratch: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["demo", "--models-dir"])
            .arg(models_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take().unwrap();
        // One budget for the whole session, so a hang fails the test instead of blocking it.
        Self { child, stdin, lines, transcript: Vec::new(), deadline: Instant::now() + Duration::from_secs(60) }
    }

    /// Reads output until a line contains `needle`; returns that line.
    fn expect(&mut self, needle: &str) -> String {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {needle:?} ({e}); the demo said:\n{}", self.transcript.join("\n")),
            }
        }
    }

    fn say(&mut self, input: &str) {
        self.stdin.write_all(input.as_bytes()).expect("the demo reads its stdin");
        self.stdin.flush().unwrap();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Only when the test failed half-way: the demo must not outlive it.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn demo_runs_the_door_from_the_keyboard() {
    let scratch = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(scratch.path());
    demo.expect("Tap a card: type its number");
    demo.expect("DEADBEEF");

    demo.say("1\n");
    let granted = demo.expect("→ GRANTED");
    assert!(granted.contains("(card_and_face): card of Barack Obama, similarity"), "{granted}");
    // Biden's card, Obama's face.
    demo.say("2\n");
    let wrong = demo.expect("→ DENIED (wrong_person)");
    assert!(wrong.contains("card of Joe Biden"), "{wrong}");
    demo.say("4\n");
    let unknown = demo.expect("→ DENIED (unknown_card)");
    assert!(unknown.contains("unknown card"), "{unknown}");
    demo.say("q\n");
    demo.expect("demo stopped");

    let left = demo.deadline.saturating_duration_since(Instant::now());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < left, "the demo did not exit; it said:\n{}", demo.transcript.join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the demo exits cleanly ({status}); it said:\n{}", demo.transcript.join("\n"));
    println!("{}", demo.transcript.join("\n"));
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "the throw-away data directory is removed: {leftovers:?}");
}

/// Switching the embedder: `config check` refuses until `faces reindex` has described every face
/// again from its kept photo; a face enrolled before photos were kept is listed to enrol again.
#[test]
fn changing_the_embedder_needs_a_reindex_that_uses_the_kept_photos() {
    let mut door = TestDoor::with_local_engine();
    door.set_env("FACEREKO_ENGINE__EMBEDDER", "dlib");
    door.ok(&["enroll", "--person", "Obama", "--card", "04A1B2C3", arg(&sample("obama.jpg"))]);
    door.ok(&["config", "check"]);
    door.set_env("FACEREKO_ENGINE__EMBEDDER", "mobilefacenet");

    let check = door.run(&["config", "check"]);
    let said = text(&check);
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("engine.embedder: 1 enrolled face(s) were described as local/dlib"), "{said}");
    assert!(said.contains("run `facereko faces reindex`"), "{said}");
    let refused = simulate(&door, "04A1B2C3", &sample("obama2.jpg"));
    assert_eq!(refused["decision"], "denied", "dlib's face is not searched by MobileFaceNet: {refused}");

    let reindexed = door.ok(&["faces", "reindex"]);
    assert!(reindexed.contains("1 face(s) described again as local/mobilefacenet; 0 already were"), "{reindexed}");
    door.ok(&["config", "check"]);
    let granted = simulate(&door, "04A1B2C3", &sample("obama2.jpg"));
    assert_eq!(granted["decision"], "granted", "{granted}");
    let again = door.ok(&["faces", "reindex"]);
    assert!(again.contains("0 face(s) described again as local/mobilefacenet; 1 already were"), "{again}");
}

/// A PNG chunk: length, type, data, CRC over type and data.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    [&(data.len() as u32).to_be_bytes()[..], kind, data, &crc.sum().to_be_bytes()].concat()
}

/// The costliest picture to read within `engine.max_megapixels`: 16-bit RGBA, `width`×`height`,
/// black, turned by an EXIF orientation of 6 (90°), so that the decoder, the conversion to RGB
/// and the turn each need a copy. Streamed through zlib: a few hundred KB on disk.
fn costliest_png(path: &Path, width: u32, height: u32) {
    use std::io::Write as _;
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([16, 6, 0, 0, 0]); // 16 bits per channel, RGBA, deflate, no filter, no interlace
    // A big-endian TIFF block with one entry: orientation (0x0112), a SHORT, 6.
    let exif = [b"MM\0\x2a\0\0\0\x08\0\x01".as_slice(), &[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0], &[0; 4]].concat();
    let mut rows = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let row = vec![0u8; 1 + width as usize * 8];
    for _ in 0..height {
        rows.write_all(&row).unwrap();
    }
    let png = [
        b"\x89PNG\r\n\x1a\n".to_vec(),
        png_chunk(b"IHDR", &header),
        png_chunk(b"eXIf", &exif),
        png_chunk(b"IDAT", &rows.finish().unwrap()),
        png_chunk(b"IEND", &[]),
    ]
    .concat();
    std::fs::write(path, png).unwrap();
}

/// Runs `facereko` with `args` to its end; its output and the most memory it held (peak RSS).
/// A small Python parent runs it and reports its children's peak: the kernel counts the memory of
/// the process a child was started from, which for a direct child of this test is the whole test.
fn run_measuring_memory(door: &TestDoor, args: &[&str]) -> (Output, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        code = subprocess.call(sys.argv[2:])\n\
        open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n\
        sys.exit(code)\n";
    let facereko = door.command();
    let peak_file = door.path("peak-rss-kib");
    let mut measured = Command::new("python3");
    measured.env_clear().envs(facereko.get_envs().filter_map(|(name, value)| Some((name, value?))));
    measured.arg("-c").arg(MEASURE).arg(&peak_file).arg(facereko.get_program()).args(facereko.get_args()).args(args);
    let output = measured.output().expect("python3 runs");
    let kib: u64 = std::fs::read_to_string(&peak_file).unwrap().trim().parse().unwrap();
    (output, kib * 1024)
}

/// Issue 15, item 6: the largest picture `engine.max_megapixels` lets through, in its costliest
/// form, is read within a known amount of memory; a larger one is refused before decoding, and
/// the limit is the owner's to lower.
#[test]
fn the_costliest_picture_allowed_is_read_within_a_measured_memory() {
    let door = TestDoor::with_local_engine();
    let obama = sample("obama.jpg");
    let (small, baseline) = run_measuring_memory(&door, &["compare", arg(&obama), arg(&sample("obama2.jpg"))]);
    assert!(small.status.success(), "{}", text(&small));

    // 7,300 × 5,479 = 39,996,700 pixels: just within the default 40 megapixels.
    let costliest = door.path("costliest.png");
    costliest_png(&costliest, 7_300, 5_479);
    let (read, peak) = run_measuring_memory(&door, &["compare", arg(&costliest), arg(&obama)]);
    let said = text(&read);
    assert!(said.contains("no face"), "decoded, and found no face on black: {said}");
    let mib = |bytes: u64| bytes / (1024 * 1024);
    println!(
        "peak RSS: {} MiB reading a 40-megapixel 16-bit RGBA PNG turned by EXIF; {} MiB comparing two photos",
        mib(peak),
        mib(baseline)
    );
    assert!(mib(peak) < 640, "the costliest 40-megapixel picture took {} MiB", mib(peak));

    // One pixel more is refused unread, and the owner may lower the limit.
    let larger = door.path("larger.png");
    costliest_png(&larger, 7_300, 5_480);
    let (refused, refused_peak) = run_measuring_memory(&door, &["compare", arg(&larger), arg(&obama)]);
    assert!(
        text(&refused).contains("pictures of up to 40 megapixels are read (engine.max_megapixels)"),
        "{}",
        text(&refused)
    );
    assert!(
        mib(refused_peak) < mib(baseline) + 64,
        "refused before decoding: {} MiB: {}",
        mib(refused_peak),
        text(&refused)
    );
    let mut lowered = door.command();
    lowered.env("FACEREKO_ENGINE__MAX_MEGAPIXELS", "12").args(["compare", arg(&costliest), arg(&obama)]);
    let lowered = lowered.output().unwrap();
    assert!(text(&lowered).contains("pictures of up to 12 megapixels are read"), "{}", text(&lowered));
}

/// BlazeFace is planned only for a door's frames: with its file broken, `compare` (which looks at
/// every face) still works, and the daemon refuses to start, naming the file, rather than failing
/// every tap.
#[test]
fn a_broken_face_finder_stops_the_door_at_its_start_but_not_compare() {
    let scratch = tempfile::tempdir().unwrap();
    let models = scratch.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), models.join(entry.file_name())).unwrap();
    }
    let finder = models.join(facereko::models::FINDER);
    std::fs::remove_file(&finder).unwrap();
    std::fs::write(&finder, b"not an ONNX file").unwrap();
    let quoted = format!("{:?}", models.display().to_string());
    let door = TestDoor::new(&[("engine.kind", "\"local\""), ("engine.models_dir", &quoted)]);

    let compared = json(&door.ok(&["compare", arg(&sample("obama.jpg")), arg(&sample("obama2.jpg")), "--json"]));
    assert_eq!(compared["match"], true, "{compared}");
    let mut daemon = door.command().arg("run").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while daemon.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            daemon.kill().unwrap();
            panic!("the daemon started with a broken BlazeFace file:\n{}", text(&daemon.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = daemon.wait_with_output().unwrap();
    let said = text(&run);
    assert!(!run.status.success(), "{said}");
    assert!(said.contains(facereko::models::FINDER), "the message names the file:\n{said}");
}
