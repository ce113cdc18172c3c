//! The Raspberry Pi camera through `rpicam-vid`: a supervised child process streams MJPEG into a
//! pipe, a reader thread keeps only the most recent frame, and [`StreamCamera::frame`] hands out a
//! frame that arrived after it was asked for, so the burst after a tap sees fresh pictures.
//!
//! The child is started again, with exponential backoff, when it exits, closes its output or
//! stops sending frames; dropping the camera kills it. The child is run with `std::process` and
//! read by plain threads: the build's tokio has no `process` feature, and the pipe is read with
//! blocking calls anyway.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::fresh::{FreshFrames, join_within, rounded};
use super::mjpeg::{DropReason, MjpegSplitter, Split};
use super::{Camera, HwError};
use crate::checks::Checks;
use crate::frame::Frame;

pub const NAME: &str = "rpicam";
const ROLE: &str = "camera";

/// The default arguments; `{width}`, `{height}` and `{framerate}` are filled in from the settings.
/// `--flush` makes each frame leave rpicam-vid's stdio buffer as soon as it is encoded.
pub const DEFAULT_ARGS: &[&str] = &[
    "-t",
    "0",
    "-n",
    "--codec",
    "mjpeg",
    "--flush",
    "--width",
    "{width}",
    "--height",
    "{height}",
    "--framerate",
    "{framerate}",
    "-o",
    "-",
];

/// Beyond two frame intervals, how long [`StreamCamera::frame`] waits for a frame.
const FRAME_SLACK: Duration = Duration::from_millis(500);
/// A fresh child must send its first frame within this (rpicam-vid takes a second or two).
const STARTUP_GRACE: Duration = Duration::from_secs(10);
/// A running child that sends no frame for this long (or ten frame intervals) is restarted.
const STALL_AFTER: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A run this long that delivered frames resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How often the supervisor looks at the child between events.
const TICK: Duration = Duration::from_millis(250);
/// How long to let the reader drain the pipe, and the stderr thread finish, after the child ended.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Lines of the child's stderr kept for the warning when it ends.
const STDERR_LINES: usize = 10;
const READ_CHUNK: usize = 64 * 1024;

/// How the camera stream is started; deserialises from a config section, missing keys defaulted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// The program writing MJPEG to its stdout.
    pub program: String,
    /// Its arguments; `{width}`, `{height}` and `{framerate}` are replaced by the values below.
    pub args: Vec<String>,
    pub width: u32,
    pub height: u32,
    /// Frames per second; also sets how long [`StreamCamera::frame`] waits for a fresh frame.
    pub framerate: f64,
    /// The longest pause between restarts of a failing child.
    #[serde(with = "humantime_serde")]
    pub restart_backoff_max: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            program: "rpicam-vid".into(),
            args: DEFAULT_ARGS.iter().map(|arg| (*arg).to_owned()).collect(),
            width: 640,
            height: 480,
            framerate: 15.0,
            restart_backoff_max: Duration::from_secs(30),
        }
    }
}

impl StreamSettings {
    /// What `config check` says of these settings: what [`Self::validate`] finds, under `hardware.rpicam`.
    pub fn check(&self, checks: &mut Checks) {
        if let Err(fix) = self.validate() {
            checks.check(false, "hardware.rpicam", fix);
        }
    }

    /// The arguments with the placeholders filled in.
    pub fn command_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                arg.replace("{width}", &self.width.to_string())
                    .replace("{height}", &self.height.to_string())
                    .replace("{framerate}", &self.framerate.to_string())
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.program.trim().is_empty() {
            return Err("the camera program is empty".into());
        }
        if self.width == 0 || self.height == 0 {
            return Err(format!("the frame size {}×{} is empty", self.width, self.height));
        }
        if !(self.framerate.is_finite() && self.framerate > 0.0) {
            return Err(format!("the frame rate {} is not a positive number", self.framerate));
        }
        if self.restart_backoff_max.is_zero() {
            return Err("restart_backoff_max must be longer than 0 s".into());
        }
        Ok(())
    }

    fn frame_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.framerate)
    }

    /// How long a call to [`StreamCamera::frame`] waits for a frame newer than the call.
    pub fn frame_wait(&self) -> Duration {
        2 * self.frame_interval() + FRAME_SLACK
    }

    fn stall_limit(&self) -> Duration {
        STALL_AFTER.max(10 * self.frame_interval())
    }

    /// The program's file name, for messages.
    fn program_name(&self) -> &str {
        Path::new(&self.program).file_name().and_then(|name| name.to_str()).unwrap_or(&self.program)
    }

    fn spawn(&self) -> Result<Child, String> {
        Command::new(&self.program)
            .args(self.command_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&e))
    }

    fn spawn_error(&self, error: &std::io::Error) -> String {
        let program = self.program_name();
        match error.kind() {
            ErrorKind::NotFound if program.starts_with("rpicam-") || program.starts_with("libcamera-") => {
                format!(
                    "{program} not found: install it with `sudo apt install rpicam-apps` (Raspberry Pi OS Bookworm)"
                )
            }
            ErrorKind::NotFound => format!("{} not found: check the camera program setting and PATH", self.program),
            ErrorKind::PermissionDenied => format!("{} cannot be run: permission denied", self.program),
            _ => format!("cannot start {}: {error}", self.program),
        }
    }
}

/// Counters and the child's state, for tools and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Whole frames received, fresh or not.
    pub frames: u64,
    /// Frames cut short (by the child dying mid-frame, say); never handed out.
    pub truncated: u64,
    /// Frames dropped as oversized or broken; never handed out.
    pub discarded: u64,
    /// How often the program was started again after its first start.
    pub restarts: u64,
    /// The running child's process id.
    pub pid: Option<u32>,
    /// How the last run ended, with the last lines it wrote to stderr.
    pub last_exit: Option<String>,
}

#[derive(Default)]
struct State {
    stopping: bool,
    /// The running child; taken by whoever kills it.
    child: Option<Child>,
    /// Counts runs, so a reader left over from an earlier run cannot publish.
    generation: u64,
    started: Option<Instant>,
    last_frame: Option<Instant>,
    reader_done: bool,
    next_start: Option<Instant>,
    stats: StreamStats,
}

struct Shared {
    settings: StreamSettings,
    frames: FreshFrames,
    state: Mutex<State>,
    /// Signalled when the reader ends, the camera is dropped, or a run ends.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits on `wake` until `done` holds, the camera is being dropped, or `timeout` passes.
    fn wait_until<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
        mut done: impl FnMut(&mut State) -> bool,
    ) -> MutexGuard<'a, State> {
        self.wake
            .wait_timeout_while(guard, timeout, |state| !state.stopping && !done(state))
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
    }

    /// When a call to `frame()` made at `asked` gives up: two frame intervals and some slack,
    /// or, while a fresh child has not sent its first frame, the end of its start-up grace.
    fn deadline(&self, asked: Instant) -> Instant {
        let deadline = asked + self.settings.frame_wait();
        let state = self.lock();
        match (state.stats.pid, state.started, state.last_frame) {
            (Some(_), Some(started), None) => deadline.max(started + STARTUP_GRACE),
            _ => deadline,
        }
    }

    fn no_frame_error(&self, waited: Duration) -> HwError {
        let program = self.settings.program_name();
        let state = self.lock();
        let now = Instant::now();
        let why = match (&state.stats.pid, state.started, state.last_frame) {
            _ if state.stopping => "the camera is shutting down".to_owned(),
            (Some(pid), _, Some(last)) => {
                format!("{program} (pid {pid}) sent its last frame {} ago", rounded(now - last))
            }
            (Some(pid), Some(started), None) => {
                format!("{program} (pid {pid}) started {} ago and has sent no frame yet", rounded(now - started))
            }
            _ => {
                let ended = state.stats.last_exit.as_deref().unwrap_or("it has not started");
                let next = state.next_start.map_or_else(
                    || "it is starting again".to_owned(),
                    |at| format!("next start in {}", rounded(at.saturating_duration_since(now))),
                );
                format!("{program} is not running: {ended}; {next}")
            }
        };
        HwError::Io { role: ROLE, detail: format!("no frame from the camera within {} ({why})", rounded(waited)) }
    }

    /// Called by the reader of run `generation` after each chunk of the stream.
    fn publish(&self, generation: u64, newest: Option<Vec<u8>>, frames: u64, truncated: u64, discarded: u64) -> bool {
        let received = Instant::now();
        let frame = newest.and_then(|bytes| match Frame::from_bytes(bytes, "the camera frame") {
            Ok(frame) => Some(frame),
            Err(e) => {
                tracing::debug!(error = %e, "dropping an unusable camera frame");
                None
            }
        });
        let mut state = self.lock();
        state.stats.frames += frames;
        state.stats.truncated += truncated;
        state.stats.discarded += discarded;
        let current = generation == state.generation && !state.stopping;
        if current && let Some(frame) = frame {
            state.last_frame = Some(received);
            drop(state);
            self.frames.publish(frame);
        }
        current
    }

    fn reader_finished(&self, generation: u64) {
        let mut state = self.lock();
        if generation == state.generation {
            state.reader_done = true;
        }
        drop(state);
        self.wake.notify_all();
    }
}

/// A camera that streams continuously from a child process and hands out fresh frames.
pub struct StreamCamera {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

impl StreamCamera {
    /// Starts the stream. Fails at once when the settings are invalid or the program cannot be
    /// started; a program that starts and then fails is retried in the background, and
    /// [`Self::frame`] says why there is no picture.
    pub fn start(settings: StreamSettings) -> Result<Self, HwError> {
        let unavailable = |detail: String| HwError::Unavailable { role: ROLE, backend: NAME.into(), detail };
        settings.validate().map_err(unavailable)?;
        let child = settings.spawn().map_err(unavailable)?;
        tracing::info!(
            program = %settings.program,
            args = ?settings.command_args(),
            pid = child.id(),
            "camera stream started"
        );
        // Counted as starting from now, so that a `frame()` right away waits for the first frame.
        let mut state = State { started: Some(Instant::now()), ..State::default() };
        state.stats.pid = Some(child.id());
        let shared =
            Arc::new(Shared { settings, frames: FreshFrames::new(), state: Mutex::new(state), wake: Condvar::new() });
        let supervisor = thread::Builder::new()
            .name("camera-supervisor".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || supervise(&shared, child)
            })
            .map_err(|e| unavailable(format!("cannot start the camera thread: {e}")))?;
        Ok(Self { shared, supervisor: Some(supervisor) })
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.shared.settings
    }

    pub fn stats(&self) -> StreamStats {
        self.shared.lock().stats.clone()
    }
}

#[async_trait]
impl Camera for StreamCamera {
    /// The first frame received after this call began; waits at most two frame intervals plus
    /// half a second (longer only while a freshly started child has not sent its first frame).
    async fn frame(&self) -> Result<Frame, HwError> {
        let asked = Instant::now();
        let deadline = || self.shared.deadline(asked);
        match self.shared.frames.after(asked, deadline).await {
            Some(frame) => Ok(frame),
            None => Err(self.shared.no_frame_error(deadline() - asked)),
        }
    }
}

impl Drop for StreamCamera {
    fn drop(&mut self) {
        let child = {
            let mut state = self.shared.lock();
            state.stopping = true;
            state.child.take()
        };
        self.shared.wake.notify_all();
        if let Some(child) = child {
            kill(child, self.shared.settings.program_name());
        }
        if let Some(supervisor) = self.supervisor.take() {
            join_within(supervisor, DRAIN_GRACE + TICK, "camera supervisor");
        }
    }
}

/// Kills the child and reaps it, so that no zombie is left behind.
fn kill(mut child: Child, program: &str) {
    if let Err(e) = child.kill() {
        tracing::debug!(error = %e, "{program} could not be killed (it had probably exited)");
    }
    let _ = child.wait();
}

/// Runs the child, starts it again when a run ends, until the camera is dropped.
fn supervise(shared: &Arc<Shared>, first: Child) {
    let settings = &shared.settings;
    let program = settings.program_name();
    let mut backoff = FIRST_BACKOFF;
    let mut next = Some(first);
    loop {
        let again = next.is_none();
        let child = match next.take().map_or_else(|| settings.spawn(), Ok) {
            Ok(child) if again => {
                shared.lock().stats.restarts += 1;
                tracing::info!(pid = child.id(), "{program} started again");
                child
            }
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(error = %e, "the camera program could not be started again");
                shared.lock().stats.last_exit = Some(e);
                if pause(shared, &mut backoff) {
                    return;
                }
                continue;
            }
        };
        let Some(run) = watch_run(shared, child) else { return };
        let state = shared.lock();
        if state.stopping {
            return;
        }
        drop(state);
        if run.delivered && run.lasted >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(
            restart_in = %rounded(backoff),
            "{program} stopped after {}: {}",
            rounded(run.lasted),
            run.ending,
        );
        if pause(shared, &mut backoff) {
            return;
        }
    }
}

/// Sleeps `backoff` unless the camera is dropped meanwhile (then true), and doubles it.
fn pause(shared: &Shared, backoff: &mut Duration) -> bool {
    let mut state = shared.lock();
    state.next_start = Some(Instant::now() + *backoff);
    let mut state = shared.wait_until(state, *backoff, |_| false);
    state.next_start = None;
    *backoff = (*backoff * 2).min(shared.settings.restart_backoff_max);
    state.stopping
}

struct RunEnd {
    lasted: Duration,
    delivered: bool,
    /// How it ended, with its last stderr lines.
    ending: String,
}

/// Watches one run of the child until it ends; `None` when the camera was dropped meanwhile.
fn watch_run(shared: &Arc<Shared>, mut child: Child) -> Option<RunEnd> {
    let program = shared.settings.program_name();
    let pid = child.id();
    let started = Instant::now();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let generation = {
        let mut state = shared.lock();
        if state.stopping {
            drop(state);
            kill(child, program);
            return None;
        }
        state.generation += 1;
        state.child = Some(child);
        state.started = Some(started);
        state.last_frame = None;
        state.reader_done = false;
        state.stats.pid = Some(pid);
        state.generation
    };
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr_thread = stderr.and_then(|stderr| {
        let tail = Arc::clone(&tail);
        thread::Builder::new().name("camera-stderr".into()).spawn(move || keep_tail(stderr, &tail)).ok()
    });
    if let Some(stdout) = stdout {
        // The reader holds the shared state only through this Arc; it ends with the pipe.
        let reader = Arc::clone(shared);
        let spawned =
            thread::Builder::new().name("camera-reader".into()).spawn(move || read_stream(&reader, generation, stdout));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the camera reader thread");
            shared.reader_finished(generation);
        }
    } else {
        shared.reader_finished(generation);
    }

    let stall_limit = shared.settings.stall_limit();
    let mut state = shared.lock();
    let mut ending = loop {
        if state.stopping {
            break "the camera was closed".to_owned();
        }
        if state.reader_done {
            break "it closed its output".to_owned();
        }
        match state.child.as_mut().map(Child::try_wait) {
            None => break "it was killed".to_owned(),
            Some(Ok(Some(status))) => break format!("it exited ({status})"),
            Some(Err(e)) => break format!("its state cannot be read: {e}"),
            Some(Ok(None)) => {}
        }
        let (since, limit) = match state.last_frame {
            Some(last) => (last, stall_limit),
            None => (started, STARTUP_GRACE),
        };
        if since.elapsed() > limit {
            break format!("it sent no frame for {}", rounded(since.elapsed()));
        }
        state = shared.wait_until(state, TICK, |state| state.reader_done);
    };

    // Let a child that closed its output exit by itself for a moment, then make sure it is gone.
    if state.reader_done && !state.stopping {
        let deadline = Instant::now() + DRAIN_GRACE;
        while let Some(Ok(None)) = state.child.as_mut().map(Child::try_wait) {
            if Instant::now() >= deadline || state.stopping {
                break;
            }
            state = shared.wait_until(state, Duration::from_millis(20), |_| false);
        }
    }
    let child = state.child.take();
    drop(state);
    if let Some(mut child) = child {
        match child.try_wait() {
            Ok(Some(status)) if !ending.starts_with("it exited") => ending = format!("{ending} and exited ({status})"),
            Ok(Some(_)) => {}
            _ => {
                kill(child, program);
                ending = format!("{ending}, so it was killed");
            }
        }
    }

    // The last frames may still be in the pipe, and the last words on stderr.
    let state = shared.lock();
    let mut state = shared.wait_until(state, DRAIN_GRACE, |state| state.reader_done);
    state.generation += 1;
    state.stats.pid = None;
    let delivered = state.last_frame.is_some();
    drop(state);
    if let Some(thread) = stderr_thread {
        let deadline = Instant::now() + DRAIN_GRACE;
        while !thread.is_finished() && Instant::now() < deadline && !shared.lock().stopping {
            thread::sleep(Duration::from_millis(10));
        }
    }
    let lines: Vec<String> = tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
    if !lines.is_empty() {
        ending = format!("{ending}; its last output: {}", lines.join(" | "));
    }
    let mut state = shared.lock();
    state.stats.last_exit = Some(ending.clone());
    if state.stopping {
        return None;
    }
    Some(RunEnd { lasted: started.elapsed(), delivered, ending })
}

/// Keeps the last [`STDERR_LINES`] lines the child writes to stderr, and logs them at debug.
fn keep_tail(stderr: ChildStderr, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line).trim_end().to_owned();
        if line.is_empty() {
            continue;
        }
        tracing::debug!(target: "facereko::hw::rpicam::child", "{line}");
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Splits the child's stdout into frames and publishes the newest of each chunk.
fn read_stream(shared: &Shared, generation: u64, mut stdout: ChildStdout) {
    let mut splitter = MjpegSplitter::new();
    let mut buffer = vec![0; READ_CHUNK];
    let mut tally = Tally::default();
    loop {
        let read = match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the camera stream");
                break;
            }
        };
        splitter.feed(&buffer[..read], |piece| tally.add(piece));
        if !tally.is_empty() {
            let Tally { newest, frames, truncated, discarded } = std::mem::take(&mut tally);
            if !shared.publish(generation, newest, frames, truncated, discarded) {
                // This run is over (a child left behind by the one we killed may still write).
                return;
            }
        }
    }
    splitter.finish(|piece| tally.add(piece));
    let Tally { newest, frames, truncated, discarded } = tally;
    shared.publish(generation, newest, frames, truncated, discarded);
    shared.reader_finished(generation);
}

#[derive(Default)]
struct Tally {
    newest: Option<Vec<u8>>,
    frames: u64,
    truncated: u64,
    discarded: u64,
}

impl Tally {
    fn add(&mut self, piece: Split) {
        match piece {
            Split::Frame(bytes) => {
                self.frames += 1;
                self.newest = Some(bytes);
            }
            Split::Dropped(dropped) => {
                tracing::debug!(reason = ?dropped.reason, bytes = dropped.bytes, "dropped a camera frame");
                match dropped.reason {
                    DropReason::Truncated => self.truncated += 1,
                    DropReason::Oversized | DropReason::Corrupt => self.discarded += 1,
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.frames == 0 && self.truncated == 0 && self.discarded == 0
    }
}
