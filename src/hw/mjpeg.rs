//! Splitting a Motion-JPEG byte stream (JPEG images back to back, as `rpicam-vid --codec mjpeg`
//! writes them to a pipe) into whole JPEG frames, fed chunk by chunk as the bytes arrive.
//!
//! The splitter follows the JPEG marker structure instead of searching for the end marker:
//! segments before the scan carry their length and are skipped whole, so an `FF D9` inside an
//! APP segment (an EXIF thumbnail is a complete JPEG) does not end the frame. In entropy-coded
//! data `FF 00` is a stuffed data byte, `FF D0`–`FF D7` are restart markers and `FF FF` is fill;
//! only `FF D9` (EOI) ends the frame. Frames that are cut short, too large or broken are dropped
//! and counted, and the splitter resynchronises on the next start of image.
//!
//! A frame cut short is noticed by the next frame's SOI (`FF D8`) wherever the cut falls, except
//! inside an EXIF or JFXX segment, which may hold a thumbnail with its own SOI: there the start of
//! the next frame is taken for segment data and that frame is lost too (normally dropped as
//! broken). Streams from `rpicam-vid` carry no EXIF, and each run of it gets a fresh splitter.

use std::mem;

/// Frames larger than this are dropped: a 1920×1080 MJPEG frame is typically a few hundred KiB.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
/// The temporary-use marker: standalone, like the restart markers.
const TEM: u8 = 0x01;

fn is_restart(marker: u8) -> bool {
    (0xD0..=0xD7).contains(&marker)
}

fn is_standalone(marker: u8) -> bool {
    marker == TEM || is_restart(marker)
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The frame ended early: a new frame started, or the stream ended, before its EOI.
    Truncated,
    /// The frame grew past the size limit.
    Oversized,
    /// The bytes broke the JPEG marker structure.
    Corrupt,
}

/// A frame the splitter gave up on, with the bytes it had collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub reason: DropReason,
    pub bytes: usize,
}

/// What [`MjpegSplitter::feed`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// A whole JPEG, from SOI to EOI inclusive.
    Frame(Vec<u8>),
    Dropped(Dropped),
}

/// Running totals since the splitter was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitterStats {
    pub frames: u64,
    pub truncated: u64,
    pub oversized: u64,
    pub corrupt: u64,
    /// Bytes outside any frame (garbage before or between frames).
    pub skipped_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside a frame, looking for SOI; `after_ff` when the last byte seen was FF.
    Seek { after_ff: bool },
    /// Between segments, expecting the FF that starts the next marker; `after_ff` when the last
    /// byte of the segment before was FF (a frame cut short there may be followed by an SOI).
    MarkerStart { after_ff: bool },
    /// After an FF between segments: the marker code comes next (more FFs are fill bytes).
    MarkerCode,
    /// The two length bytes of segment `marker`; `high` holds the first once it is read.
    Length { marker: u8, high: Option<u8> },
    /// The rest of segment `marker`, whose data starts at `start` in the frame; `after_ff` when
    /// the last byte was FF.
    Payload { marker: u8, start: usize, remaining: usize, after_ff: bool },
    /// Entropy-coded data after an SOS header.
    Entropy,
    /// Entropy-coded data right after an FF.
    EntropyFf,
}

/// An incremental MJPEG splitter: feed it chunks in any size, get whole frames out.
#[derive(Debug)]
pub struct MjpegSplitter {
    state: State,
    frame: Vec<u8>,
    max_frame: usize,
    stats: SplitterStats,
}

impl Default for MjpegSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl MjpegSplitter {
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A splitter that drops frames larger than `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self { state: State::Seek { after_ff: false }, frame: Vec::new(), max_frame, stats: SplitterStats::default() }
    }

    pub fn stats(&self) -> SplitterStats {
        self.stats
    }

    /// True while a frame has started and not yet ended.
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Seek { .. })
    }

    /// Consumes `chunk`, handing every frame completed (or dropped) by it to `sink`, in order.
    pub fn feed(&mut self, mut chunk: &[u8], mut sink: impl FnMut(Split)) {
        while !chunk.is_empty() {
            let used = self.step(chunk, &mut sink);
            chunk = &chunk[used..];
            if self.in_frame() && self.frame.len() > self.max_frame {
                self.drop_frame(DropReason::Oversized, &mut sink);
                // The collected bytes may have been a large buffer: do not keep it around.
                self.frame = Vec::new();
            }
        }
    }

    /// The stream has ended: a frame still open is truncated and dropped.
    pub fn finish(&mut self, mut sink: impl FnMut(Split)) {
        if self.in_frame() {
            self.drop_frame(DropReason::Truncated, &mut sink);
        }
        self.state = State::Seek { after_ff: false };
    }

    /// Handles the start of `chunk` and returns how many bytes it used. It uses none only when it
    /// gives up on a frame and leaves the byte to [`State::Seek`], which always uses one.
    fn step(&mut self, chunk: &[u8], sink: &mut impl FnMut(Split)) -> usize {
        let byte = chunk[0];
        match self.state {
            State::Seek { after_ff } => self.seek(chunk, after_ff),
            State::MarkerStart { after_ff: true } if byte == SOI => {
                self.restart_frame(sink);
                1
            }
            State::MarkerStart { .. } => {
                if byte != 0xFF {
                    self.give_up(DropReason::Corrupt, sink);
                    return 0;
                }
                self.frame.push(byte);
                self.state = State::MarkerCode;
                1
            }
            State::MarkerCode => {
                match byte {
                    0xFF => self.frame.push(byte),
                    SOI => self.restart_frame(sink),
                    EOI => self.complete(sink),
                    0x00 => {
                        self.give_up(DropReason::Corrupt, sink);
                        return 0;
                    }
                    marker if is_standalone(marker) => {
                        self.frame.push(marker);
                        self.state = State::MarkerStart { after_ff: false };
                    }
                    marker => {
                        self.frame.push(marker);
                        self.state = State::Length { marker, high: None };
                    }
                }
                1
            }
            State::Length { marker, high: None } => {
                self.frame.push(byte);
                self.state = State::Length { marker, high: Some(byte) };
                1
            }
            // A length of FF D8 is the SOI of a new frame: this one was cut short.
            State::Length { high: Some(0xFF), .. } if byte == SOI => {
                self.restart_frame(sink);
                1
            }
            State::Length { marker, high: Some(high) } => {
                self.frame.push(byte);
                let start = self.frame.len();
                // The length counts its own two bytes.
                match (usize::from(high) << 8 | usize::from(byte)).checked_sub(2) {
                    None => self.give_up(DropReason::Corrupt, sink),
                    Some(0) => self.end_segment(marker, false),
                    // An FF as the length's last byte may begin the SOI of a new frame.
                    Some(remaining) => self.state = State::Payload { marker, start, remaining, after_ff: byte == 0xFF },
                }
                1
            }
            State::Payload { marker, start, remaining, after_ff } => {
                if after_ff && byte == SOI && !self.may_hold_thumbnail(marker, start) {
                    // Segments other than thumbnail holders never contain FF D8: this frame was
                    // cut off inside its headers and a new one has begun.
                    self.restart_frame(sink);
                } else {
                    self.frame.push(byte);
                    self.continue_payload(marker, start, remaining - 1, byte == 0xFF);
                }
                1
            }
            State::Entropy => match chunk.iter().position(|&b| b == 0xFF) {
                Some(at) => {
                    self.frame.extend_from_slice(&chunk[..=at]);
                    self.state = State::EntropyFf;
                    at + 1
                }
                None => {
                    self.frame.extend_from_slice(chunk);
                    chunk.len()
                }
            },
            State::EntropyFf => {
                match byte {
                    // A stuffed zero, a restart marker: still entropy-coded data.
                    0x00 => self.entropy_byte(byte, State::Entropy),
                    marker if is_standalone(marker) => self.entropy_byte(marker, State::Entropy),
                    0xFF => self.entropy_byte(byte, State::EntropyFf),
                    EOI => self.complete(sink),
                    SOI => self.restart_frame(sink),
                    // Another segment: tables or the next scan of a progressive JPEG.
                    marker => self.entropy_byte(marker, State::Length { marker, high: None }),
                }
                1
            }
        }
    }

    fn seek(&mut self, chunk: &[u8], mut after_ff: bool) -> usize {
        for (i, &byte) in chunk.iter().enumerate() {
            if after_ff && byte == SOI {
                // The FF before it was counted as skipped, possibly in an earlier chunk.
                self.stats.skipped_bytes = self.stats.skipped_bytes + i as u64 - 1;
                self.frame.clear();
                self.frame.extend_from_slice(&[0xFF, SOI]);
                self.state = State::MarkerStart { after_ff: false };
                return i + 1;
            }
            after_ff = byte == 0xFF;
        }
        self.stats.skipped_bytes += chunk.len() as u64;
        self.state = State::Seek { after_ff };
        chunk.len()
    }

    fn entropy_byte(&mut self, byte: u8, next: State) {
        self.frame.push(byte);
        self.state = next;
    }

    fn continue_payload(&mut self, marker: u8, start: usize, remaining: usize, after_ff: bool) {
        if remaining == 0 {
            self.end_segment(marker, after_ff);
        } else {
            self.state = State::Payload { marker, start, remaining, after_ff };
        }
    }

    /// EXIF (APP1) and JFIF extension (APP0 `JFXX`) segments may hold a JPEG thumbnail.
    fn may_hold_thumbnail(&self, marker: u8, start: usize) -> bool {
        let data = &self.frame[start..];
        (marker == APP1 && data.starts_with(b"Exif\0")) || (marker == APP0 && data.starts_with(b"JFXX\0"))
    }

    /// After segment `marker`, whose last byte was FF if `after_ff`.
    fn end_segment(&mut self, marker: u8, after_ff: bool) {
        self.state = match (marker, after_ff) {
            (SOS, false) => State::Entropy,
            // Only a cut-off frame ends a scan header with FF: watch for the next SOI.
            (SOS, true) => State::EntropyFf,
            _ => State::MarkerStart { after_ff },
        };
    }

    /// EOI: the frame is whole.
    fn complete(&mut self, sink: &mut impl FnMut(Split)) {
        self.frame.push(EOI);
        let capacity = self.frame.len();
        let frame = mem::replace(&mut self.frame, Vec::with_capacity(capacity));
        self.stats.frames += 1;
        self.state = State::Seek { after_ff: false };
        sink(Split::Frame(frame));
    }

    /// SOI inside a frame: the frame so far was cut short and a new one starts here.
    fn restart_frame(&mut self, sink: &mut impl FnMut(Split)) {
        // The FF just collected belongs to the new frame's SOI.
        self.frame.pop();
        self.drop_frame(DropReason::Truncated, sink);
        self.frame.extend_from_slice(&[0xFF, SOI]);
        self.state = State::MarkerStart { after_ff: false };
    }

    /// Drops the frame and looks for the next SOI, starting with the byte at hand.
    fn give_up(&mut self, reason: DropReason, sink: &mut impl FnMut(Split)) {
        self.drop_frame(reason, sink);
        self.state = State::Seek { after_ff: false };
    }

    fn drop_frame(&mut self, reason: DropReason, sink: &mut impl FnMut(Split)) {
        let bytes = self.frame.len();
        self.frame.clear();
        let counter = match reason {
            DropReason::Truncated => &mut self.stats.truncated,
            DropReason::Oversized => &mut self.stats.oversized,
            DropReason::Corrupt => &mut self.stats.corrupt,
        };
        *counter += 1;
        self.state = State::Seek { after_ff: false };
        sink(Split::Dropped(Dropped { reason, bytes }));
    }
}

#[cfg(test)]
mod tests {
    use image::codecs::jpeg::JpegEncoder;
    use image::{Rgb, RgbImage};

    use super::*;

    /// A noisy picture (so the entropy-coded data has stuffed `FF 00` bytes), as JPEG.
    fn noisy_jpeg(seed: u32, width: u32, height: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let picture = RgbImage::from_fn(width, height, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let [a, b, c, _] = state.to_be_bytes();
            Rgb([a, b, c])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90).encode_image(&picture).unwrap();
        out
    }

    #[derive(Debug, Default, PartialEq)]
    struct Collected {
        frames: Vec<Vec<u8>>,
        dropped: Vec<DropReason>,
    }

    fn split(splitter: &mut MjpegSplitter, chunks: &[&[u8]]) -> Collected {
        let mut out = Collected::default();
        let mut sink = |piece| match piece {
            Split::Frame(frame) => out.frames.push(frame),
            Split::Dropped(dropped) => out.dropped.push(dropped.reason),
        };
        for chunk in chunks {
            splitter.feed(chunk, &mut sink);
        }
        splitter.finish(&mut sink);
        out
    }

    fn has_stuffed_bytes(jpeg: &[u8]) -> bool {
        jpeg.windows(2).any(|pair| pair == [0xFF, 0x00])
    }

    #[test]
    fn splits_at_every_chunk_boundary() {
        let frames = [noisy_jpeg(1, 16, 16), noisy_jpeg(2, 16, 8), noisy_jpeg(3, 8, 16)];
        assert!(frames.iter().any(|f| has_stuffed_bytes(f)), "the test pictures should have stuffed bytes");
        for frame in &frames {
            image::load_from_memory(frame).expect("the encoder makes valid JPEGs");
        }
        let stream = frames.concat();
        for cut in 0..=stream.len() {
            let (head, tail) = stream.split_at(cut);
            let out = split(&mut MjpegSplitter::new(), &[head, tail]);
            assert_eq!(out.frames, frames, "split at byte {cut}");
            assert!(out.dropped.is_empty(), "split at byte {cut}: {:?}", out.dropped);
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let mut splitter = MjpegSplitter::new();
        assert_eq!(split(&mut splitter, &bytes).frames, frames, "one byte at a time");
        assert_eq!(splitter.stats(), SplitterStats { frames: 3, ..SplitterStats::default() });
    }

    #[test]
    fn skips_garbage_before_and_between_frames() {
        let (a, b) = (noisy_jpeg(4, 8, 8), noisy_jpeg(5, 8, 8));
        let garbage_before: &[u8] = b"--boundary\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xFF\xD9\xFF";
        let garbage_between: &[u8] = b"\r\n\xFF\x00\xFF\xD9 junk \xFF";
        let stream = [garbage_before, &a, garbage_between, &b, b"\xFF"].concat();
        for cut in 0..=stream.len() {
            let mut splitter = MjpegSplitter::new();
            let out = split(&mut splitter, &[&stream[..cut], &stream[cut..]]);
            assert_eq!(out.frames, [a.clone(), b.clone()], "split at byte {cut}");
            let garbage = garbage_before.len() + garbage_between.len() + 1;
            assert_eq!(splitter.stats().skipped_bytes, garbage as u64, "split at byte {cut}");
        }
    }

    #[test]
    fn only_garbage_gives_no_frame() {
        let mut splitter = MjpegSplitter::new();
        let out = split(&mut splitter, &[b"\xFF\xD9\x00\xFF", b"\xFF\xD7 nothing here"]);
        assert_eq!(out, Collected::default());
        assert_eq!(splitter.stats().skipped_bytes, 19);
    }

    #[test]
    fn drops_a_frame_cut_short_by_the_next_one() {
        let (a, b, c) = (noisy_jpeg(6, 16, 16), noisy_jpeg(7, 16, 16), noisy_jpeg(8, 16, 16));
        assert_eq!(&b[2..4], [0xFF, 0xE0], "the encoder writes a JFIF APP0 segment first");
        // Every cut: in the SOI, a marker, a length, the JFIF segment, the tables, the picture data.
        for cut in 2..b.len() {
            let stream = [&a[..], &b[..cut], &c[..], &a[..]].concat();
            let mut splitter = MjpegSplitter::new();
            let out = split(&mut splitter, &[&stream]);
            let whole = out.frames == [a.clone(), c.clone(), a.clone()];
            assert!(whole, "cut at byte {cut}: {} frames, dropped {:?}", out.frames.len(), out.dropped);
            assert_eq!(out.dropped, [DropReason::Truncated], "cut at byte {cut}");
            assert_eq!(splitter.stats().truncated, 1);
        }
    }

    #[test]
    fn drops_a_frame_cut_short_by_the_end_of_the_stream() {
        let a = noisy_jpeg(9, 8, 8);
        let mut splitter = MjpegSplitter::new();
        let out = split(&mut splitter, &[&a, &a[..a.len() - 1]]);
        assert_eq!(out.frames, [a]);
        assert_eq!(out.dropped, [DropReason::Truncated]);
        assert!(!splitter.in_frame());
    }

    /// `jpeg` with an APP1 segment right after its SOI holding an EXIF block and `thumbnail`.
    fn with_exif_thumbnail(jpeg: &[u8], thumbnail: &[u8]) -> Vec<u8> {
        // "Exif\0\0", then a big-endian TIFF header pointing at an empty IFD0, then the thumbnail.
        let mut payload = b"Exif\0\0MM\0\x2A\0\0\0\x08\0\0\0\0\0\0".to_vec();
        payload.extend_from_slice(thumbnail);
        let length = u16::try_from(payload.len() + 2).unwrap();
        [&jpeg[..2], &[0xFF, 0xE1], &length.to_be_bytes(), &payload, &jpeg[2..]].concat()
    }

    #[test]
    fn a_thumbnail_inside_an_app_segment_does_not_end_the_frame() {
        let thumbnail = noisy_jpeg(10, 8, 8);
        let photo = with_exif_thumbnail(&noisy_jpeg(11, 24, 16), &thumbnail);
        let decoded = image::load_from_memory(&photo).expect("the photo with a thumbnail is a valid JPEG");
        assert_eq!((decoded.width(), decoded.height()), (24, 16));
        let stream = [&photo[..], &photo[..]].concat();
        for cut in 0..=stream.len() {
            let out = split(&mut MjpegSplitter::new(), &[&stream[..cut], &stream[cut..]]);
            assert_eq!(out.frames, [photo.clone(), photo.clone()], "split at byte {cut}");
            assert!(out.dropped.is_empty(), "split at byte {cut}");
        }
    }

    #[test]
    fn restart_markers_stuffing_and_fill_bytes_stay_inside_the_frame() {
        let frame: &[u8] = &[
            0xFF, SOI, // start of image
            0xFF, 0xFF, 0xDD, 0x00, 0x04, 0x00, 0x02, // a fill byte, then DRI
            0xFF, SOS, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, // scan header
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD1, 0x78, 0xFF, 0xD7, // data
            0xFF, EOI,
        ];
        let stream = [frame, frame].concat();
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let out = split(&mut MjpegSplitter::new(), &bytes);
        assert_eq!(out.frames, [frame, frame]);
        assert!(out.dropped.is_empty());
    }

    #[test]
    fn drops_oversized_frames_and_resynchronises() {
        let (small, big) = (noisy_jpeg(12, 8, 8), noisy_jpeg(13, 64, 64));
        assert!(small.len() < 1500 && big.len() > 1500);
        let stream = [&small[..], &big[..], &small[..]].concat();
        for chunk in [1, 7, 4096] {
            let mut splitter = MjpegSplitter::with_max_frame(1500);
            let pieces: Vec<&[u8]> = stream.chunks(chunk).collect();
            let out = split(&mut splitter, &pieces);
            assert_eq!(out.frames, [small.clone(), small.clone()], "chunks of {chunk}");
            assert_eq!(out.dropped, [DropReason::Oversized], "chunks of {chunk}");
        }
    }

    #[test]
    fn drops_frames_that_break_the_marker_structure() {
        let a = noisy_jpeg(14, 8, 8);
        let broken_marker: &[u8] = &[0xFF, SOI, 0x12, 0x34];
        let stuffed_in_headers: &[u8] = &[0xFF, SOI, 0xFF, 0x00];
        let bad_length: &[u8] = &[0xFF, SOI, 0xFF, 0xDB, 0x00, 0x01];
        let stream = [broken_marker, &a, stuffed_in_headers, bad_length, &a].concat();
        let mut splitter = MjpegSplitter::new();
        let out = split(&mut splitter, &[&stream]);
        assert_eq!(out.frames, [a.clone(), a]);
        assert_eq!(out.dropped, [DropReason::Corrupt; 3]);
        assert_eq!(splitter.stats().corrupt, 3);
    }
}
