//! What the streaming camera backends share: the most recent frame and the wait for one newer
//! than the request, and the care of their background threads.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::frame::Frame;

/// How often a waiting request looks at its deadline again, since the deadline may move.
const RECHECK: Duration = Duration::from_millis(250);

struct Latest {
    received: Instant,
    frame: Frame,
}

/// The newest frame of a stream; written by a capture thread, read by [`FreshFrames::after`].
pub(crate) struct FreshFrames {
    latest: watch::Sender<Option<Latest>>,
}

impl FreshFrames {
    pub fn new() -> Self {
        Self { latest: watch::Sender::new(None) }
    }

    pub fn publish(&self, frame: Frame) {
        self.latest.send_replace(Some(Latest { received: Instant::now(), frame }));
    }

    /// Whether a request is waiting; lets a stream skip costly conversions of frames nobody takes
    /// (only the webcam converts frames).
    #[cfg(feature = "v4l2")]
    pub fn wanted(&self) -> bool {
        self.latest.receiver_count() > 0
    }

    /// The first frame published at or after `asked`, or `None` once `deadline()` has passed.
    pub async fn after(&self, asked: Instant, deadline: impl Fn() -> Instant) -> Option<Frame> {
        let mut latest = self.latest.subscribe();
        loop {
            let fresh = latest.borrow_and_update().as_ref().filter(|l| l.received >= asked).map(|l| l.frame.clone());
            if fresh.is_some() {
                return fresh;
            }
            let now = Instant::now();
            let deadline = deadline();
            if now >= deadline {
                return None;
            }
            let nap = (deadline - now).min(RECHECK);
            // The sender lives as long as `self`, so `changed` only returns early when a frame came.
            let _ = tokio::time::timeout(nap, latest.changed()).await;
        }
    }
}

/// `duration` to the millisecond, for messages.
pub(crate) fn rounded(duration: Duration) -> humantime::FormattedDuration {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis))
}

/// Waits up to `grace` for a camera's thread to end (it was told to), else leaves it behind.
pub(crate) fn join_within(thread: JoinHandle<()>, grace: Duration, name: &str) {
    let deadline = Instant::now() + grace;
    while !thread.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    if thread.is_finished() {
        let _ = thread.join();
    } else {
        tracing::warn!("the {name} thread did not stop in time; leaving it behind");
    }
}
