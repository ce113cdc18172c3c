//! Peak memory: the real daemon (`facereko run` on simulated hardware and SQLite) with the
//! on-device engine's models loaded and 0 or 10,000 enrolled faces, after taps that load and search
//! them; and `facereko eval` on the shared face sets. Run with `cargo bench --bench memory`; the
//! models come from `facereko models fetch` (`FACEREKO_TEST_MODELS`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use facereko::access::PersonId;
use facereko::engine::FaceTemplate;
use facereko::engine::local::detector::Detector;
use facereko::frame::Frame;
use facereko::models::ModelPaths;
use facereko::store::Store;
use facereko::store::sqlite::SqliteStore;

use common::bench::{camera_frame, machine, measuring, runs};
use common::{BIN, TestDoor, face, models_dir};

const CARD: &str = "04A1B2C3";

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A `kB` field (`VmHWM`, `VmRSS`) of a process's /proc status.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':'))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The largest resident size of any child process waited for so far, in KiB.
fn children_peak_kib() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as u64
}

/// Unit vectors of `len` values from a fixed seed (SplitMix64).
fn random_descriptors(count: usize, len: usize) -> impl Iterator<Item = Vec<f32>> {
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    (0..count).map(move |_| {
        let raw: Vec<f32> = (0..len).map(|_| next()).collect();
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        raw.into_iter().map(|v| v / norm).collect()
    })
}

/// Adds `count` faces, three per person, beside the one enrolled from a photo.
async fn enrol_strangers(database: &Path, count: usize) {
    let store = SqliteStore::open(database).await.unwrap();
    let people = store.people();
    let (kind, enrolled) = {
        let kind = facereko::engine::EngineConfig { kind: "local".into(), ..Default::default() }.template_kind();
        let (_, faces) = store.door().faces(&kind).await.unwrap();
        (kind, faces)
    };
    let FaceTemplate::Descriptor(alice) = &enrolled.first().expect("Alice is enrolled").template else {
        panic!("the on-device engine stores descriptors")
    };
    let mut person = PersonId(0);
    for (n, descriptor) in random_descriptors(count, alice.len()).enumerate() {
        if n % 3 == 0 {
            person = people.add_person(&format!("Stranger {n}")).await.unwrap().id;
        }
        people.add_face(person, &kind, &FaceTemplate::Descriptor(descriptor)).await.unwrap();
    }
}

/// Longer than the test door's `door.debounce` (300 ms), so the next tap of the card counts.
const DEBOUNCED: Duration = Duration::from_millis(500);

/// The daemon's peak and current resident size after `taps` taps with `faces` more faces enrolled.
fn daemon_memory(faces: usize, taps: usize, camera: &Path) -> (u64, u64) {
    let mut door = TestDoor::with_local_engine();
    let alice = face("deepface/img1.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", CARD, alice.to_str().unwrap()]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(enrol_strangers(&door.path("facereko.db"), faces));
    door.show_for_card(CARD, camera);
    door.start();
    for _ in 0..taps {
        let row = door.tap_and_wait(CARD);
        assert_eq!(row["decision"], "granted", "{row}");
        // The same card again within `door.debounce` is the card still lying on the reader.
        std::thread::sleep(DEBOUNCED);
    }
    let pid = door.pid();
    let memory = (status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS"));
    door.stop();
    memory
}

fn main() {
    println!("facereko memory benchmark: {}", machine());
    let models = models_dir();

    // First, while no other child has been waited for: the children's peak is eval's own.
    let facedata = face("diverse/README.md").parent().unwrap().parent().unwrap().to_owned();
    let eval = |sources: &[&str]| {
        let mut command = Command::new(BIN);
        // `--set` takes a text key's value as it is: quotes would be part of the path.
        command.arg("--set").arg(format!("engine.models_dir={}", models.display())).arg("eval");
        command.args(sources.iter().map(|source| facedata.join(source))).arg("--json");
        let output = command.output().expect("facereko eval runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        children_peak_kib()
    };
    // Under `cargo test` the smoke run skips `eval`: face_cli's tests run it on every set already.
    let eval_peaks = measuring().then(|| (eval(&["lfw10"]), eval(&["diverse", "lfw10", "deepface/master.csv"])));

    let camera = tempfile::tempdir().unwrap();
    let frame = camera.path().join("img2-640x480.jpg");
    let detector = Detector::load(&ModelPaths::check(&models).unwrap()).unwrap();
    std::fs::write(&frame, camera_frame(&Frame::read(&face("deepface/img2.jpg")).unwrap(), &detector).bytes()).unwrap();
    drop(detector);
    let taps = runs(5, 1);
    let enrolled = [0, runs(10_000, 100)].map(|faces| (faces, daemon_memory(faces, taps, &frame)));

    println!("Peak resident memory (VmHWM), current (VmRSS) in brackets:");
    for (faces, (peak, now)) in enrolled {
        println!(
            "  daemon, engine local/mobilefacenet, {:>6} faces enrolled, after {taps} taps: {:>6.1} MiB ({:.1} MiB)",
            faces + 1,
            mib(peak),
            mib(now)
        );
    }
    if let Some((lfw_peak, all_peak)) = eval_peaks {
        println!("  facereko eval, lfw10 (100 photos of 250×250):                      {:>6.1} MiB", mib(lfw_peak));
        println!(
            "  facereko eval, diverse + lfw10 + deepface (up to 4600×3061 pixels):  {:>6.1} MiB (the largest photo \
             decoded)",
            mib(all_peak)
        );
    }
}
