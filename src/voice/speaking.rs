//! The voice's own thread: it renders the phrases ahead of time, plays them when told, and says
//! why the speaker fails. The door only ever sends it a message, which never waits.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::clips::{Clips, Sound};
use super::{Utterance, VoiceConfig};
use crate::hw::{HwError, Speaker, Trouble};

/// How often a clip that plays is looked at, to notice its end (and a failing device).
const WHILE_PLAYING: Duration = Duration::from_millis(100);
/// How often a failing speaker is probed, until it works again.
const PROBE_EVERY: Duration = Duration::from_secs(30);
/// The longest wait between two looks when nothing happens.
const IDLE: Duration = Duration::from_secs(60);

enum Request {
    Say { utterance: Utterance, in_quiet_hours: bool },
    Prepare(Utterance),
    Names(Vec<String>),
    Settings(Box<VoiceConfig>),
}

/// The door's voice: a cheap handle to the thread that speaks. Dropping the last handle stops
/// the thread, and with it whatever plays.
#[derive(Clone)]
pub struct Voice {
    requests: mpsc::Sender<Request>,
    trouble: Trouble,
}

impl Voice {
    /// Starts the voice on `speaker` with `config`, its clips kept in `clips_dir`. Every phrase
    /// is rendered at once, in the background.
    pub fn start(speaker: Box<dyn Speaker>, config: VoiceConfig, clips_dir: PathBuf) -> Voice {
        let (requests, received) = mpsc::channel();
        let trouble = Trouble::default();
        let sound = Sound { renderer: speaker.renderer(), voice: config.spec(), volume: config.volume };
        let speaking = Speaking {
            speaker,
            config,
            sound,
            clips: Clips::new(clips_dir),
            names: BTreeSet::new(),
            to_render: VecDeque::new(),
            prune_when_done: false,
            playing: false,
            trouble: trouble.clone(),
            last_problem: None,
            next_probe: None,
        };
        let started = std::thread::Builder::new().name("voice".into()).spawn(move || speaking.run(&received));
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start the voice's thread; the door stays silent");
            trouble.set(format!("cannot start the voice's thread: {e}"));
        }
        Voice { requests, trouble }
    }

    fn send(&self, request: Request) {
        // The thread is gone only when it could not start; the door goes on silent.
        let _ = self.requests.send(request);
    }

    /// Says `utterance`, cutting what is being said; nothing during quiet hours.
    pub fn say(&self, utterance: Utterance) {
        self.send(Request::Say { utterance, in_quiet_hours: false });
    }

    /// Says `utterance` even during quiet hours: someone asked to hear it (the settings page).
    pub fn say_anyway(&self, utterance: Utterance) {
        self.send(Request::Say { utterance, in_quiet_hours: true });
    }

    /// Renders `utterance` now, if it is not yet, so that it is ready when it is said.
    pub fn prepare(&self, utterance: Utterance) {
        self.send(Request::Prepare(utterance));
    }

    /// The people the door may greet: their greetings are rendered ahead of time.
    pub fn know_names(&self, names: Vec<String>) {
        self.send(Request::Names(names));
    }

    /// New phrases or voice: every phrase is rendered again.
    pub fn set_config(&self, config: VoiceConfig) {
        self.send(Request::Settings(Box::new(config)));
    }

    /// Why the speaker fails now, if it does.
    pub fn trouble(&self) -> Trouble {
        self.trouble.clone()
    }
}

struct Speaking {
    speaker: Box<dyn Speaker>,
    config: VoiceConfig,
    sound: Sound,
    clips: Clips,
    /// The names greetings are rendered for.
    names: BTreeSet<String>,
    /// Texts to render, the next first.
    to_render: VecDeque<String>,
    /// Delete unused clips once the texts queued are rendered.
    prune_when_done: bool,
    playing: bool,
    trouble: Trouble,
    /// The problem logged last, so that a failing speaker is not logged at every phrase.
    last_problem: Option<String>,
    next_probe: Option<Instant>,
}

impl Speaking {
    fn run(mut self, requests: &mpsc::Receiver<Request>) {
        if let Err(e) = self.speaker.probe() {
            self.problem(&e);
        }
        self.render_everything();
        loop {
            let request = if self.to_render.is_empty() {
                let wait = if self.playing { WHILE_PLAYING } else { self.until_probe().min(IDLE) };
                match requests.recv_timeout(wait) {
                    Ok(request) => Some(request),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                // Rendering ahead gives way to anything asked for.
                match requests.try_recv() {
                    Ok(request) => Some(request),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            match request {
                Some(request) => self.handle(request),
                None => self.render_next(),
            }
            self.look_at_playback();
            self.probe_when_due();
        }
        self.speaker.stop();
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Say { utterance, in_quiet_hours } => self.say(&utterance, in_quiet_hours),
            Request::Prepare(utterance) => {
                if let Some(text) = self.config.text(&utterance)
                    && self.clips.ready(&text).is_none()
                {
                    self.to_render.retain(|queued| *queued != text);
                    self.to_render.push_front(text);
                }
            }
            Request::Names(names) => {
                for name in names {
                    let greeting = self.config.text(&Utterance::Granted { name: name.clone() });
                    if self.names.insert(name)
                        && let Some(text) = greeting
                    {
                        self.to_render.push_back(text);
                    }
                }
            }
            Request::Settings(config) => {
                self.config = *config;
                self.sound =
                    Sound { renderer: self.speaker.renderer(), voice: self.config.spec(), volume: self.config.volume };
                self.clips.forget();
                self.render_everything();
            }
        }
    }

    /// Queues every phrase, and deletes the clips nothing uses once they are rendered.
    fn render_everything(&mut self) {
        self.to_render = self.config.every_text(&self.names).into();
        self.prune_when_done = true;
    }

    fn render_next(&mut self) {
        let Some(text) = self.to_render.pop_front() else { return };
        if let Err(e) = self.clips.clip(self.speaker.as_mut(), &self.sound, &text) {
            self.problem(&e);
        }
        if self.to_render.is_empty() {
            self.speaker.rest();
            if std::mem::take(&mut self.prune_when_done) {
                self.clips.prune();
            }
        }
    }

    fn say(&mut self, utterance: &Utterance, in_quiet_hours: bool) {
        let Some(text) = self.config.text(utterance) else { return };
        if !in_quiet_hours && self.config.quiet_hours().is_some_and(|quiet| quiet.now()) {
            tracing::debug!(text, "quiet hours: not said");
            return;
        }
        self.to_render.retain(|queued| *queued != text);
        let clip = match self.clips.clip(self.speaker.as_mut(), &self.sound, &text) {
            Ok(clip) => clip,
            Err(e) => return self.problem(&e),
        };
        match self.speaker.play(&clip, &text) {
            Ok(()) => self.playing = true,
            Err(e) => self.problem(&e),
        }
    }

    fn look_at_playback(&mut self) {
        if !self.playing {
            return;
        }
        match self.speaker.finished() {
            None => {}
            Some(Ok(())) => {
                self.playing = false;
                self.works_again();
            }
            Some(Err(e)) => {
                self.playing = false;
                self.problem(&e);
            }
        }
    }

    fn until_probe(&self) -> Duration {
        self.next_probe.map_or(IDLE, |at| at.saturating_duration_since(Instant::now()))
    }

    /// A failing speaker is asked now and then whether it works again; once it does, the
    /// phrases it could not render are rendered.
    fn probe_when_due(&mut self) {
        let Some(at) = self.next_probe else { return };
        if Instant::now() < at || self.playing {
            return;
        }
        match self.speaker.probe() {
            Ok(()) => {
                self.next_probe = None;
                self.trouble.clear();
                let missing: Vec<String> = self
                    .config
                    .every_text(&self.names)
                    .into_iter()
                    .filter(|text| self.clips.ready(text).is_none())
                    .collect();
                self.to_render.extend(missing);
            }
            Err(e) => self.problem(&e),
        }
    }

    fn problem(&mut self, error: &HwError) {
        let said = error.to_string();
        if self.last_problem.as_ref() != Some(&said) {
            tracing::warn!(error = %said, "the door's voice fails; the door works on without it");
        }
        self.trouble.set(said.clone());
        self.last_problem = Some(said);
        self.next_probe = Some(Instant::now() + PROBE_EVERY);
    }

    fn works_again(&mut self) {
        if self.last_problem.take().is_some() {
            tracing::info!("the door's voice works again");
        }
        self.trouble.clear();
        self.next_probe = None;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::access::Reason;
    use crate::hw::simulated::{OutputRecorder, SimSpeaker};
    use crate::hw::{Pcm, VoiceSpec};

    /// Waits (a bounded time) until `done`.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn phrases_are_said_in_order_and_rendered_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = OutputRecorder::default();
        let voice = Voice::start(Box::new(SimSpeaker::new(&recorder)), VoiceConfig::default(), dir.path().into());
        voice.know_names(vec!["Alice".into()]);
        wait_for("the phrases to be rendered", || std::fs::read_dir(dir.path()).map_or(0, Iterator::count) == 7);
        voice.say(Utterance::LookAtCamera);
        voice.say(Utterance::Granted { name: "Alice".into() });
        voice.say(Utterance::Denied { reason: Reason::WrongPerson });
        wait_for("three phrases", || recorder.said().len() == 3);
        assert_eq!(recorder.said(), ["Please look at the camera", "Welcome, Alice", "Access denied."]);
        assert!(voice.trouble().now().is_none());
    }

    #[test]
    fn quiet_hours_keep_the_door_quiet_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = OutputRecorder::default();
        let now = super::super::local_minute_of_day().unwrap();
        let at = |minute: u16| format!("{:02}:{:02}", minute / 60, minute % 60);
        // Quiet from a minute ago for two hours.
        let from = (now + 24 * 60 - 1) % (24 * 60);
        let config =
            VoiceConfig { quiet_hours: format!("{}-{}", at(from), at((from + 120) % (24 * 60))), ..Default::default() };
        let voice = Voice::start(Box::new(SimSpeaker::new(&recorder)), config, dir.path().into());
        voice.say(Utterance::Disarmed);
        voice.say_anyway(Utterance::VisitorRang);
        wait_for("the phrase asked for", || !recorder.said().is_empty());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(recorder.said(), ["The owner has been told"]);
    }

    /// A speaker whose device is unplugged until `plugged` is set.
    struct Unplugged {
        plugged: Arc<Mutex<bool>>,
        played: Arc<Mutex<Vec<String>>>,
    }

    impl Speaker for Unplugged {
        fn renderer(&self) -> String {
            "test".into()
        }
        fn render(&mut self, text: &str, _voice: &VoiceSpec) -> Result<Pcm, HwError> {
            Ok(Pcm { rate: 8000, samples: vec![100; text.len() * 10] })
        }
        fn play(&mut self, _clip: &Path, text: &str) -> Result<(), HwError> {
            if !*self.plugged.lock().unwrap() {
                return Err(HwError::Io { role: "speaker", detail: "aplay cannot play on \"plughw:1\"".into() });
            }
            self.played.lock().unwrap().push(text.to_owned());
            Ok(())
        }
        fn stop(&mut self) {}
        fn finished(&mut self) -> Option<Result<(), HwError>> {
            Some(Ok(()))
        }
    }

    #[test]
    fn a_failing_speaker_is_a_warning_until_it_plays_again() {
        let dir = tempfile::tempdir().unwrap();
        let (plugged, played) = (Arc::new(Mutex::new(false)), Arc::default());
        let speaker = Unplugged { plugged: Arc::clone(&plugged), played: Arc::clone(&played) };
        let voice = Voice::start(Box::new(speaker), VoiceConfig::default(), dir.path().into());
        voice.say(Utterance::Disarmed);
        wait_for("the warning", || voice.trouble().now().is_some());
        assert_eq!(voice.trouble().now().unwrap(), "speaker: aplay cannot play on \"plughw:1\"");
        *plugged.lock().unwrap() = true;
        voice.say(Utterance::Disarmed);
        wait_for("the warning to go", || voice.trouble().now().is_none());
        assert_eq!(*played.lock().unwrap(), ["The door is disarmed"]);
    }
}
