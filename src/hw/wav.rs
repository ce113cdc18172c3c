//! Sound as the speaker handles it: 16-bit PCM, read from and written to WAV files.

use std::time::Duration;

/// Mono 16-bit samples at `rate` per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Pcm {
    /// Reads a RIFF/WAVE file of 16-bit PCM; channels are mixed down to one. A `data` chunk that
    /// claims more than there is (what `espeak-ng --stdout` writes, not knowing the length ahead)
    /// is read to the end of the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Pcm, String> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("not a WAV file".into());
        }
        let mut format = None;
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            let body = &bytes[at + 8..(at + 8).saturating_add(size).min(bytes.len())];
            match id {
                b"fmt " if body.len() >= 16 => {
                    let tag = u16::from_le_bytes([body[0], body[1]]);
                    let channels = u16::from_le_bytes([body[2], body[3]]);
                    let rate = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
                    let bits = u16::from_le_bytes([body[14], body[15]]);
                    if tag != 1 || bits != 16 || channels == 0 || rate == 0 {
                        return Err(format!(
                            "a WAV of format {tag}, {bits} bits, {channels} channel(s): only 16-bit PCM is read"
                        ));
                    }
                    format = Some((channels, rate));
                }
                b"data" => {
                    let (channels, rate) = format.ok_or("the WAV file has its data before its format")?;
                    let frame = 2 * usize::from(channels);
                    let samples = body
                        .chunks_exact(frame)
                        .map(|frame| {
                            let sum: i32 =
                                frame.chunks_exact(2).map(|s| i32::from(i16::from_le_bytes([s[0], s[1]]))).sum();
                            (sum / i32::from(channels)) as i16
                        })
                        .collect();
                    return Ok(Pcm { rate, samples });
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            at = at.saturating_add(8).saturating_add(size).saturating_add(size & 1);
        }
        Err("the WAV file has no sound data".into())
    }

    /// The samples as a WAV file.
    pub fn to_wav(&self) -> Vec<u8> {
        let data_len = u32::try_from(self.samples.len() * 2).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(44 + self.samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&1u16.to_le_bytes()); // mono
        out.extend_from_slice(&self.rate.to_le_bytes());
        out.extend_from_slice(&(self.rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for sample in &self.samples {
            out.extend_from_slice(&sample.to_le_bytes());
        }
        out
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate.max(1)))
    }

    /// Root mean square of the samples, 0 (silence) to 32767 (full scale).
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / self.samples.len() as f64).sqrt()
    }

    /// `silence` of nothing before the sound (amplifiers that wake up on sound clip its start).
    pub fn with_leading_silence(mut self, silence: Duration) -> Pcm {
        let count = (silence.as_secs_f64() * f64::from(self.rate)).round() as usize;
        self.samples.splice(0..0, std::iter::repeat_n(0, count));
        self
    }

    /// Every sample scaled to `percent` of its level (100 leaves it as it is).
    pub fn with_volume(mut self, percent: u8) -> Pcm {
        if percent != 100 {
            let gain = f64::from(percent) / 100.0;
            for sample in &mut self.samples {
                *sample = (f64::from(*sample) * gain).round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_wav_reads_back() {
        let pcm = Pcm { rate: 22050, samples: vec![0, 1000, -1000, i16::MAX, i16::MIN] };
        assert_eq!(Pcm::parse(&pcm.to_wav()).unwrap(), pcm);
    }

    #[test]
    fn a_streamed_wav_with_an_unknown_length_is_read_to_its_end() {
        let mut wav = Pcm { rate: 16000, samples: vec![5; 100] }.to_wav();
        // What espeak-ng --stdout writes: sizes it cannot know yet.
        wav[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        wav[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        let pcm = Pcm::parse(&wav).unwrap();
        assert_eq!((pcm.rate, pcm.samples.len()), (16000, 100));
    }

    #[test]
    fn silence_comes_first_and_volume_scales() {
        let pcm = Pcm { rate: 1000, samples: vec![1000, -2000] }.with_leading_silence(Duration::from_millis(250));
        assert_eq!(pcm.samples.len(), 252);
        assert!(pcm.samples[..250].iter().all(|&s| s == 0));
        assert_eq!(pcm.with_volume(50).samples[250..], [500, -1000]);
        assert_eq!(Pcm { rate: 1000, samples: vec![] }.rms(), 0.0);
    }

    #[test]
    fn what_is_not_16_bit_pcm_is_refused() {
        assert_eq!(Pcm::parse(b"hello").unwrap_err(), "not a WAV file");
        let mut wav = Pcm { rate: 8000, samples: vec![1] }.to_wav();
        wav[34] = 8;
        assert!(Pcm::parse(&wav).unwrap_err().contains("8 bits"));
    }
}
