//! The door camera as a reader of visitors' QR passes. While a QR pass could open this door, the
//! scanner reads a few frames a second and presents every FaceReko code it finds to the door,
//! which checks, logs and opens as for any other attempt. Cards come first: no frame is read while
//! an attempt is under way, and a busy door only means the next frame is tried.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};

use crate::access::Credential;
use crate::checks::Secret;
use crate::driver::{Answer, Command, ControlHandle};
use crate::engine;
use crate::frame::Frame;
use crate::hw::Camera;
use crate::visitor::{Passes, QrToken};

/// How often the scanner looks, asks and presents again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Between frames while a QR pass is live.
    pub frame_every: Duration,
    /// Between questions to the database whether a QR pass is live at this door.
    pub ask_every: Duration,
    /// A code already presented is not presented again within this window: a visitor holds the
    /// phone up for a while, and the first presentation's verdict stands.
    pub repeat_after: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            frame_every: Duration::from_millis(250),
            ask_every: Duration::from_secs(5),
            repeat_after: Duration::from_secs(10),
        }
    }
}

/// The codes of every QR code in `frame`, as text; a frame that cannot be decoded has none.
pub fn read_codes(frame: &Frame) -> Vec<String> {
    let picture = match engine::decode_rgb(frame, "the door camera's frame") {
        Ok(picture) => picture,
        Err(e) => {
            tracing::debug!(error = %e, "no QR codes read: the frame cannot be decoded");
            return Vec::new();
        }
    };
    let grey = image::DynamicImage::ImageRgb8(picture).into_luma8();
    let (width, height) = (grey.width() as usize, grey.height() as usize);
    let pixels = grey.as_raw();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    prepared.detect_grids().iter().filter_map(|grid| grid.decode().ok().map(|(_, text)| text)).collect()
}

/// Codes presented lately, forgotten after the repeat window.
struct Presented {
    window: Duration,
    codes: Vec<(String, Instant)>,
}

impl Presented {
    /// Whether `code` may be presented now; if so, it counts as presented from now on.
    fn take(&mut self, code: &str, now: Instant) -> bool {
        self.codes.retain(|(_, at)| now.duration_since(*at) < self.window);
        let fresh = !self.codes.iter().any(|(seen, _)| seen == code);
        if fresh {
            self.codes.push((code.to_owned(), now));
        }
        fresh
    }

    /// Lets `code` be presented at the next frame.
    fn forget(&mut self, code: &str) {
        self.codes.retain(|(seen, _)| seen != code);
    }
}

/// Reads QR passes from `camera` and presents them to the door until the task is aborted or the
/// door shuts down.
pub async fn run(passes: Passes, camera: Arc<dyn Camera>, control: ControlHandle, pace: Pace) {
    let mut ticks = tokio::time::interval(pace.frame_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut presented = Presented { window: pace.repeat_after, codes: Vec::new() };
    let mut live = false;
    let mut next_ask = Instant::now();
    loop {
        let now = ticks.tick().await;
        if now >= next_ask {
            next_ask = now + pace.ask_every;
            live = match passes.qr_live(OffsetDateTime::now_utc()).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell whether a QR pass is live; the camera does not look for one");
                    false
                }
            };
        }
        if !live || control.status.borrow().busy {
            continue;
        }
        let frame = match camera.frame().await {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(error = %e, "no frame to read QR passes from");
                continue;
            }
        };
        // Decoding is CPU work: off the threads the door's own tasks run on.
        let codes = tokio::task::spawn_blocking(move || read_codes(&frame)).await.unwrap_or_default();
        for code in codes.into_iter().filter(|code| code.starts_with(QrToken::PREFIX)) {
            if !presented.take(&code, Instant::now()) {
                continue;
            }
            let secret = Secret::new(code.clone());
            let asked = control.ask(|reply| Command::PresentPass { credential: Credential::QrPass, secret, reply });
            match asked.await {
                Ok(Answer::Concluded { decision, reason, visitor }) => {
                    tracing::info!(%decision, %reason, visitor = visitor.as_deref(), "a QR pass was shown to the camera");
                }
                // A card was tapped meanwhile; the code is still in front of the camera.
                Ok(Answer::Busy) => presented.forget(&code),
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_code_is_presented_again_only_after_the_window() {
        let mut presented = Presented { window: Duration::from_secs(10), codes: Vec::new() };
        let start = Instant::now();
        assert!(presented.take("FR1-a", start));
        assert!(!presented.take("FR1-a", start + Duration::from_secs(9)));
        assert!(presented.take("FR1-b", start + Duration::from_secs(9)), "another code is another visitor");
        assert!(presented.take("FR1-a", start + Duration::from_secs(10)));
        presented.forget("FR1-a");
        assert!(presented.take("FR1-a", start + Duration::from_secs(11)), "a busy door heard nothing");
    }
}
