//! The rendered phrases: one WAV file per text and sound, in a folder of their own, named by a
//! hash of everything that makes the sound (renderer, voice, volume, words), so a clip rendered
//! once is reused across restarts and a change of settings never plays an old one.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::hw::{HwError, Speaker, VoiceSpec};

/// Silence before every phrase: many amplifiers wake up on sound and clip the first syllable.
pub const LEADING_SILENCE: Duration = Duration::from_millis(250);

/// What a clip sounds like, besides its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sound {
    pub renderer: String,
    pub voice: VoiceSpec,
    pub volume: u8,
}

pub struct Clips {
    dir: PathBuf,
    /// The clips on disk for the current sound, by text.
    ready: HashMap<String, PathBuf>,
}

impl Clips {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, ready: HashMap::new() }
    }

    fn path(&self, sound: &Sound, text: &str) -> PathBuf {
        let mut hash = Sha256::new();
        for part in [
            sound.renderer.as_str(),
            &sound.voice.language,
            &sound.voice.variant,
            &sound.voice.speed.to_string(),
            &sound.voice.pitch.to_string(),
            &sound.volume.to_string(),
            &LEADING_SILENCE.as_millis().to_string(),
            text,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        self.dir.join(format!("{}.wav", hex::encode(&hash.finalize()[..12])))
    }

    /// The settings changed: clips are looked for again under their new names.
    pub fn forget(&mut self) {
        self.ready.clear();
    }

    pub fn ready(&self, text: &str) -> Option<&Path> {
        self.ready.get(text).map(PathBuf::as_path)
    }

    /// The clip of `text`, rendered now unless it is on disk already.
    pub fn clip(&mut self, speaker: &mut dyn Speaker, sound: &Sound, text: &str) -> Result<PathBuf, HwError> {
        if let Some(path) = self.ready.get(text) {
            return Ok(path.clone());
        }
        let path = self.path(sound, text);
        if !path.is_file() {
            let pcm =
                speaker.render(text, &sound.voice)?.with_volume(sound.volume).with_leading_silence(LEADING_SILENCE);
            let write = || {
                std::fs::create_dir_all(&self.dir)?;
                // Written aside and renamed, so a clip is never played half-written.
                let part = path.with_extension("part");
                std::fs::write(&part, pcm.to_wav())?;
                std::fs::rename(&part, &path)
            };
            write().map_err(|e| HwError::Io {
                role: "speaker",
                detail: format!("cannot keep the phrase in {}: {e}", self.dir.display()),
            })?;
        }
        self.ready.insert(text.to_owned(), path.clone());
        Ok(path)
    }

    /// Deletes the clips no current text uses.
    pub fn prune(&self) {
        let keep: BTreeSet<&PathBuf> = self.ready.values().collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for path in entries.flatten().map(|entry| entry.path()) {
            let ours = path.extension().is_some_and(|ext| ext == "wav" || ext == "part");
            if ours && !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::Pcm;
    use crate::hw::simulated::{OutputRecorder, SimSpeaker};

    fn sound(volume: u8) -> Sound {
        let voice = VoiceSpec { language: "en".into(), variant: String::new(), speed: 160, pitch: 50 };
        Sound { renderer: "simulated".into(), voice, volume }
    }

    #[test]
    fn clips_are_rendered_once_with_silence_first_and_pruned_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        let mut speaker = SimSpeaker::new(&OutputRecorder::default());
        let mut clips = Clips::new(dir.path().join("voice"));
        let first = clips.clip(&mut speaker, &sound(100), "Welcome, Alice").unwrap();
        let pcm = Pcm::parse(&std::fs::read(&first).unwrap()).unwrap();
        let silent = pcm.samples.iter().take_while(|&&s| s == 0).count();
        assert_eq!(silent, 2000, "250 ms at 8000 samples a second");
        assert_eq!(clips.clip(&mut speaker, &sound(100), "Welcome, Alice").unwrap(), first);

        clips.forget();
        let quieter = clips.clip(&mut speaker, &sound(50), "Welcome, Alice").unwrap();
        assert_ne!(quieter, first, "another volume is another clip");
        let louder = Pcm::parse(&std::fs::read(&first).unwrap()).unwrap();
        let softer = Pcm::parse(&std::fs::read(&quieter).unwrap()).unwrap();
        assert!((softer.rms() * 2.0 - louder.rms()).abs() < 1.0);
        clips.prune();
        assert!(!first.exists() && quieter.exists(), "only the clips in use are kept");
    }
}
