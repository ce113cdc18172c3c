//! The `espeak` speaker: Debian's `espeak-ng` renders the phrases into WAV sound, `aplay` (from
//! `alsa-utils`) plays them on an ALSA device. Both are plain programs run with `std::process`:
//! one `espeak-ng` per phrase rendered, one `aplay` per phrase played, killed when a new phrase
//! cuts it short.
//!
//! When `facereko voice fetch` has put a neural voice (Piper) in `neural_voice`, it renders the
//! phrases instead of espeak-ng; see [`super::piper`]. Playback is the same either way.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::piper::{self, Piper};
use super::{HwError, Pcm, Speaker, VoiceSpec};
use crate::checks::{Checks, Problem};

pub const NAME: &str = "espeak";
const ROLE: &str = "speaker";
/// How long a probe's bit of silence may take to play.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `[hardware.espeak]`: the programs and the sound device of the `espeak` speaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EspeakSettings {
    /// The program that renders text into speech.
    pub program: String,
    /// The program that plays WAV files.
    pub player: String,
    /// The ALSA device to play on, as `aplay -L` lists it: "default", "plughw:CARD=Headphones",
    /// "null" (plays nothing).
    pub device: String,
    /// Where `facereko voice fetch` installs the neural voice; used in place of espeak-ng once it
    /// is there.
    pub neural_voice: PathBuf,
}

impl Default for EspeakSettings {
    fn default() -> Self {
        Self {
            program: "espeak-ng".into(),
            player: "aplay".into(),
            device: "default".into(),
            neural_voice: PathBuf::from("/var/lib/facereko/piper"),
        }
    }
}

/// Where a program named in the settings is: a path as it is, a bare name looked up on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// The program's file name, for messages.
fn file_name(program: &str) -> &str {
    Path::new(program).file_name().and_then(|name| name.to_str()).unwrap_or(program)
}

/// What to install when `program` is missing.
fn install_hint(program: &str) -> String {
    match file_name(program) {
        "espeak-ng" | "espeak" => "install it with `sudo apt install espeak-ng`".to_owned(),
        "aplay" => "install it with `sudo apt install alsa-utils`".to_owned(),
        _ => "check hardware.espeak and PATH".to_owned(),
    }
}

fn not_found(program: &str) -> String {
    format!("{program} not found: {}", install_hint(program))
}

fn io(detail: String) -> HwError {
    HwError::Io { role: ROLE, detail }
}

/// The last line a program wrote to stderr, for messages.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr).lines().map(str::trim).rfind(|line| !line.is_empty()).unwrap_or("").to_owned()
}

impl EspeakSettings {
    /// What `config check` says of the settings themselves.
    pub fn check(&self, checks: &mut Checks) {
        for (key, value) in [("program", &self.program), ("player", &self.player), ("device", &self.device)] {
            checks.check(!value.trim().is_empty(), &format!("hardware.espeak.{key}"), "must not be empty");
        }
    }

    /// What is missing on this machine for the speaker to work: the programs, and a device that
    /// opens (a twentieth of a second of silence is played on it). A warning, not a refusal:
    /// the door runs without its voice.
    pub fn probe(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if find_program(&self.program).is_none() {
            problems.push(Problem::new("hardware.espeak.program", not_found(&self.program)));
        }
        if find_program(&self.player).is_none() {
            problems.push(Problem::new("hardware.espeak.player", not_found(&self.player)));
        } else if let Err(why) = self.play_silence() {
            problems.push(Problem::new("hardware.espeak.device", why));
        }
        problems
    }

    /// Plays a little silence on the device: whether it opens.
    fn play_silence(&self) -> Result<(), String> {
        let silence = Pcm { rate: 22050, samples: vec![0; 1102] };
        let mut file = tempfile::Builder::new().suffix(".wav").tempfile().map_err(|e| e.to_string())?;
        file.write_all(&silence.to_wav()).map_err(|e| e.to_string())?;
        let mut child = self.start_player(file.path())?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(_)) => return Err(self.playback_error(&mut child)),
                Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not finish playing {} of silence on {:?} within {PROBE_TIMEOUT:?}",
                        self.player, "50 ms", self.device
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("cannot wait for {}: {e}", self.player)),
            }
        }
    }

    fn start_player(&self, clip: &Path) -> Result<Child, String> {
        Command::new(&self.player)
            .args(["-q", "-D", &self.device])
            .arg(clip)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => not_found(&self.player),
                _ => format!("cannot start {}: {e}", self.player),
            })
    }

    /// Why a player that exited with an error failed, from what it wrote to stderr.
    fn playback_error(&self, child: &mut Child) -> String {
        let mut stderr = Vec::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        let said = last_line(&stderr);
        let hint = if said.contains("audio open error") || said.contains("Unknown PCM") {
            "; `aplay -L` lists the devices (hardware.espeak.device)"
        } else {
            ""
        };
        format!("{} cannot play on {:?}: {said}{hint}", self.player, self.device)
    }

    /// Renders `text` with espeak-ng.
    fn render_espeak(&self, text: &str, voice: &VoiceSpec) -> Result<Pcm, HwError> {
        let name = if voice.variant.is_empty() {
            voice.language.clone()
        } else {
            format!("{}+{}", voice.language, voice.variant)
        };
        let mut child = Command::new(&self.program)
            .args(["--stdout", "-v", &name, "-s", &voice.speed.to_string(), "-p", &voice.pitch.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => io(not_found(&self.program)),
                _ => io(format!("cannot start {}: {e}", self.program)),
            })?;
        // The text goes in on stdin, so that nothing in it is taken for an option.
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).map_err(|e| io(format!("cannot hand {} the text: {e}", self.program)))?;
        }
        let output = child.wait_with_output().map_err(|e| io(format!("{} failed: {e}", self.program)))?;
        if !output.status.success() {
            let said = last_line(&output.stderr);
            let hint = if said.contains("voice does not exist") {
                format!(" (voice {name:?}; `espeak-ng --voices` lists the languages, `--voices=variant` the variants)")
            } else {
                String::new()
            };
            return Err(io(format!("{} cannot say {text:?}: {said}{hint}", self.program)));
        }
        Pcm::parse(&output.stdout).map_err(|e| io(format!("{} wrote no usable sound: {e}", self.program)))
    }
}

/// The `espeak` speaker.
pub struct EspeakSpeaker {
    settings: EspeakSettings,
    /// The neural voice, when one is installed.
    piper: Option<Piper>,
    /// The player playing now.
    playing: Option<Child>,
}

impl EspeakSpeaker {
    /// Never fails: a missing program or device is found when the speaker is used (and by
    /// [`EspeakSettings::probe`]), so that the door runs without its voice.
    pub fn new(settings: EspeakSettings) -> Self {
        let piper = piper::installed(&settings.neural_voice).map(Piper::new);
        if let Some(piper) = &piper {
            tracing::info!(voice = %piper.name(), "phrases are rendered with the neural voice");
        }
        Self { settings, piper, playing: None }
    }
}

impl Speaker for EspeakSpeaker {
    fn renderer(&self) -> String {
        match &self.piper {
            Some(piper) => format!("piper {}", piper.name()),
            None => file_name(&self.settings.program).to_owned(),
        }
    }

    fn render(&mut self, text: &str, voice: &VoiceSpec) -> Result<Pcm, HwError> {
        match &mut self.piper {
            Some(piper) => piper.render(text, voice).map_err(io),
            None => self.settings.render_espeak(text, voice),
        }
    }

    fn play(&mut self, clip: &Path, _text: &str) -> Result<(), HwError> {
        self.stop();
        self.playing = Some(self.settings.start_player(clip).map_err(io)?);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.playing.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn finished(&mut self) -> Option<Result<(), HwError>> {
        let child = self.playing.as_mut()?;
        let outcome = match child.try_wait() {
            Ok(None) => return None,
            Ok(Some(status)) if status.success() => Ok(()),
            Ok(Some(_)) => Err(io(self.settings.playback_error(child))),
            Err(e) => Err(io(format!("cannot wait for {}: {e}", self.settings.player))),
        };
        self.playing = None;
        Some(outcome)
    }

    fn rest(&mut self) {
        if let Some(piper) = &mut self.piper {
            piper.rest();
        }
    }

    fn probe(&mut self) -> Result<(), HwError> {
        match self.settings.probe().into_iter().next() {
            None => Ok(()),
            Some(problem) => Err(io(problem.message)),
        }
    }
}

impl Drop for EspeakSpeaker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_say_which_package_to_install() {
        let settings = EspeakSettings {
            program: "/nonexistent/espeak-ng".into(),
            player: "aplay-nowhere".into(),
            ..Default::default()
        };
        let problems: Vec<String> = settings.probe().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "hardware.espeak.program: /nonexistent/espeak-ng not found: install it with `sudo apt install espeak-ng`",
                "hardware.espeak.player: aplay-nowhere not found: check hardware.espeak and PATH",
            ]
        );
        let settings = EspeakSettings { player: "/usr/local/bin/aplay".into(), ..settings };
        assert!(settings.probe()[1].message.ends_with("install it with `sudo apt install alsa-utils`"));
    }

    #[test]
    fn empty_settings_are_named() {
        let mut checks = Checks::default();
        EspeakSettings { device: " ".into(), ..Default::default() }.check(&mut checks);
        let problems: Vec<String> = checks.into_problems().iter().map(ToString::to_string).collect();
        assert_eq!(problems, ["hardware.espeak.device: must not be empty"]);
    }
}
