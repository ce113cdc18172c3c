//! Configuration: defaults, then a TOML file, then `FACEREKO_*` environment variables, then
//! `--set key=value` flags, validated once into one [`Config`] that is passed to whoever needs it.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::ApiConfig;
use crate::capture::CaptureConfig;
use crate::checks::{Checks, Problem};
use crate::control::ControlConfig;
use crate::door::{DoorConfig, Mode};
use crate::driver::Tunable;
use crate::engine::EngineConfig;
use crate::hw::HardwareConfig;
use crate::liveness::LivenessConfig;
use crate::notify::MqttConfig;
use crate::notify::email::EmailConfig;
use crate::notify::rules::{Announcer, NotifyConfig, NotifySections};
use crate::notify::sms::SmsConfig;
use crate::schedule::ScheduleConfig;
use crate::store::DatabaseConfig;
use crate::visitor::{Contact, VisitorsConfig};
use crate::voice::VoiceConfig;
use crate::web::WebConfig;

/// Environment variables with this prefix override config keys; `__` separates sections
/// (`FACEREKO_DOOR__UNLOCK_TIME=5s`), and a `_FILE` suffix reads the value from a file.
pub const ENV_PREFIX: &str = "FACEREKO_";
/// The environment variable naming the config file; not itself a config key.
pub const CONFIG_PATH_ENV: &str = "FACEREKO_CONFIG";
pub const DEFAULT_CONFIG_PATH: &str = "/etc/facereko/config.toml";
/// The commented example, also printed by `facereko config example`.
pub const EXAMPLE: &str = include_str!("../facereko.example.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Database file, photos and the control socket live here.
    pub data_dir: PathBuf,
    pub door: DoorConfig,
    /// Time zone and clock for people's and cards' time limits.
    pub schedule: ScheduleConfig,
    pub capture: CaptureConfig,
    /// The checks that tell a face from a picture of one, on the capture's burst.
    pub liveness: LivenessConfig,
    pub engine: EngineConfig,
    pub database: DatabaseConfig,
    pub hardware: HardwareConfig,
    /// What the door says through `hardware.speaker`, and how.
    pub voice: VoiceConfig,
    pub control: ControlConfig,
    /// Notifications of attempts over MQTT; off while `mqtt.url` is empty.
    pub mqtt: MqttConfig,
    /// E-mail over SMTP; off while `email.server` is empty.
    pub email: EmailConfig,
    /// Text messages through a webhook or Amazon SNS; off while `sms.url` is empty, unless
    /// `sms.service = "sns"`.
    pub sms: SmsConfig,
    /// Who is told of which attempts by e-mail and text message.
    pub notify: NotifyConfig,
    /// The Rekognition-compatible API; off while `api.listen` is empty.
    pub api: ApiConfig,
    /// The web app; off while `web.listen` is empty.
    pub web: WebConfig,
    /// Visits, the owner's approval and visitors' passcodes; served by the web app.
    pub visitors: VisitorsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/facereko"),
            door: DoorConfig::default(),
            schedule: ScheduleConfig::default(),
            capture: CaptureConfig::default(),
            liveness: LivenessConfig::default(),
            engine: EngineConfig::default(),
            database: DatabaseConfig::default(),
            hardware: HardwareConfig::default(),
            voice: VoiceConfig::default(),
            control: ControlConfig::default(),
            mqtt: MqttConfig::default(),
            email: EmailConfig::default(),
            sms: SmsConfig::default(),
            notify: NotifyConfig::default(),
            api: ApiConfig::default(),
            web: WebConfig::default(),
            visitors: VisitorsConfig::default(),
        }
    }
}

/// The parts of the configuration a command can use; each command checks only its own, so a
/// stand-alone command (`compare`, `eval`) needs no data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    DataDir,
    Door,
    Capture,
    Engine,
    Database,
    Hardware,
    Voice,
    Control,
    Mqtt,
    /// `[email]`, `[sms]` and `[notify]`.
    Messages,
    Api,
    Web,
}

impl Section {
    pub const ALL: &[Section] = &[
        Section::DataDir,
        Section::Door,
        Section::Capture,
        Section::Engine,
        Section::Database,
        Section::Hardware,
        Section::Voice,
        Section::Control,
        Section::Mqtt,
        Section::Messages,
        Section::Api,
        Section::Web,
    ];
    /// What the store needs: its URL may be relative to the data directory.
    pub const STORE: &[Section] = &[Section::DataDir, Section::Database];
}

impl Config {
    pub fn control_socket(&self) -> PathBuf {
        self.control.socket_path(&self.data_dir)
    }

    pub fn photos_dir(&self) -> PathBuf {
        self.data_dir.join("photos")
    }

    /// The phrases the door says, rendered (`voice`).
    pub fn voice_clips_dir(&self) -> PathBuf {
        self.data_dir.join("voice")
    }

    /// Each attempt's log row until it is in the store (`driver::Journal`).
    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join("attempts.journal")
    }

    /// The sections the web app's settings page may retune.
    pub fn tunable(&self) -> Tunable {
        Tunable { door: self.door.clone(), capture: self.capture.clone(), engine: self.engine.clone() }
    }

    /// This config with `tunable`'s sections in place of its own.
    pub fn with_tunable(mut self, tunable: Tunable) -> Config {
        let Tunable { door, capture, engine } = tunable;
        (self.door, self.capture, self.engine) = (door, capture, engine);
        self
    }

    /// The problems of the values in `sections` (all of them: [`Section::ALL`]), each naming its
    /// key and how to fix it.
    pub fn problems_in(&self, sections: &[Section]) -> Vec<Problem> {
        let mut checks = Checks::default();
        let uses = |section| sections.contains(&section);
        if uses(Section::DataDir) {
            checks.check(
                self.data_dir.is_dir(),
                "data_dir",
                format!(
                    "{} is not an existing folder; create it (mkdir -p {}) or point data_dir at one",
                    self.data_dir.display(),
                    self.data_dir.display()
                ),
            );
        }
        if uses(Section::Door) {
            self.door.check(&mut checks);
            self.schedule.check(&mut checks);
        }
        if uses(Section::Capture) {
            self.capture.check(&mut checks);
            self.liveness.check(&mut checks);
            self.liveness.check_capture(self.capture.frames, &mut checks);
        }
        if uses(Section::Engine) {
            self.engine.check(&mut checks);
        }
        if uses(Section::Database) {
            self.database.check(&self.data_dir, &mut checks);
        }
        if uses(Section::Hardware) {
            self.hardware.check(&mut checks);
        }
        if uses(Section::Voice) {
            self.voice.check(&mut checks);
        }
        if uses(Section::Mqtt) {
            self.mqtt.check(&mut checks);
        }
        if uses(Section::Messages) {
            self.email.check(&mut checks);
            self.sms.check(&mut checks);
            self.notify.check(&self.email, &self.sms, &mut checks);
        }
        if uses(Section::Control) {
            self.control.check(&self.data_dir, &mut checks);
        }
        if uses(Section::Engine) {
            self.engine.check_rekognition(&mut checks);
        }
        if uses(Section::Api) {
            self.api.check(&self.data_dir, &mut checks);
        }
        if uses(Section::Web) {
            self.web.check(&self.data_dir, &mut checks);
            self.visitors.check(&mut checks);
            if self.visitors.enabled {
                self.check_visitors_reach(&mut checks);
            }
        }
        checks.into_problems()
    }

    /// Visitors need the web app, its public address for the owner's link, and the channels
    /// that `visitors.tell` names.
    fn check_visitors_reach(&self, checks: &mut Checks) {
        checks.check(
            self.web.enabled(),
            "visitors.enabled",
            "visitors ring and enter through the web app; set web.listen too",
        );
        checks.check(
            self.web.public_url.is_some(),
            "visitors.enabled",
            "the owner's message links to the visit through the web app's address; set web.public_url too",
        );
        for (i, owner) in self.visitors.owners().iter().enumerate() {
            let (set_up, section) = match owner {
                Contact::Email(_) => (self.email.enabled(), "[email] (email.server)"),
                Contact::Sms(_) => (self.sms.enabled(), "[sms] (sms.url or sms.service = \"sns\")"),
            };
            checks.check(set_up, &format!("visitors.tell[{i}]"), format!("nothing can send it: set up {section}"));
        }
    }

    /// What only running the door needs, on top of the problems of [`Section::ALL`].
    pub fn run_problems(&self) -> Vec<Problem> {
        let mut checks = Checks::default();
        self.hardware.check_run(self.door.mode == Mode::CardAndFace, &mut checks);
        self.engine.check_models(&mut checks);
        self.mqtt.check_connection(&self.door.id, &mut checks);
        self.email.check_connection(&mut checks);
        checks.into_problems()
    }

    /// The sections notification rules are checked against and resolved with.
    pub fn notify_sections(&self) -> NotifySections {
        NotifySections {
            mqtt: self.mqtt.enabled(),
            notify: self.notify.clone(),
            email: self.email.clone(),
            sms: self.sms.clone(),
        }
    }

    /// Who is told of each attempt, and how.
    pub fn announcer(&self) -> Announcer {
        Announcer::new(self.mqtt.enabled(), &self.notify, &self.email, &self.sms)
    }
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration has {} problem(s):", self.problems.len())?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        write!(f, "run `facereko config check` after fixing, or `facereko config example` for a commented example")
    }
}

/// Where configuration values come from, lowest precedence first.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    /// Environment variables (all of them; only `FACEREKO_*` ones are used).
    pub env: Vec<(String, String)>,
    /// `key=value` overrides from the command line.
    pub overrides: Vec<String>,
}

/// A validated configuration and what was noticed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Keys that were set but mean nothing to this version.
    pub unknown_keys: Vec<String>,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem::new(key, message)
}

/// Whether a deserialiser's `message` says the key takes something other than text (serde's
/// wording for a string where a number, flag, list or section belongs).
fn refuses_text(message: &str) -> bool {
    message.starts_with("invalid type: string")
}

/// `text`, given to a key that takes no text, read as the config file would have it: `7`, `0.5`,
/// `true`, `["a", "b"]`; none when TOML reads no such value in it.
fn read_as_toml(text: &str) -> Option<toml::Value> {
    let value = toml::from_str::<toml::Table>(&format!("v = {text}")).ok()?.remove("v")?;
    (!value.is_str()).then_some(value)
}

fn value_at<'t>(table: &'t toml::Table, path: &[&str]) -> Option<&'t toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut node = table;
    for part in parents {
        node = node.get(*part)?.as_table()?;
    }
    node.get(*last)
}

fn remove_path(table: &mut toml::Table, path: &[&str]) {
    match path {
        [] => {}
        [last] => {
            table.remove(*last);
        }
        [first, rest @ ..] => {
            if let Some(toml::Value::Table(inner)) = table.get_mut(*first) {
                remove_path(inner, rest);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[&str], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut node = table;
    for part in parents {
        let entry = node.entry((*part).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| format!("{part} is a value, not a section"))?;
    }
    node.insert((*last).to_owned(), value);
    Ok(())
}

fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Loads and validates the configuration from `sources`.
/// Only the problems of `sections` are reported (see [`Section`]); type errors always are.
pub fn load(sources: &Sources, sections: &[Section]) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let mut table = toml::Table::new();
    // The environment and `--set` give every value as text; these are the keys they set.
    let mut given_as_text = HashSet::new();

    if let Some(path) = &sources.file {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => match toml::from_str::<toml::Table>(&text) {
                Ok(file_table) => merge(&mut table, file_table),
                Err(e) => problems.push(problem(shown, format!("not valid TOML: {}", e.to_string().trim_end()))),
            },
            Err(e) => problems.push(problem(shown, format!("cannot read the config file: {e}"))),
        }
    }

    for (name, raw) in &sources.env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        if name == CONFIG_PATH_ENV || rest.is_empty() {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let (key_path, text) = match lower.strip_suffix("_file") {
            Some(key_path) => match std::fs::read_to_string(raw) {
                Ok(text) => (key_path, text.trim_end_matches(['\r', '\n']).to_owned()),
                Err(e) => {
                    problems.push(problem(name, format!("cannot read {raw}: {e}")));
                    continue;
                }
            },
            None => (lower.as_str(), raw.clone()),
        };
        let path: Vec<&str> = key_path.split("__").collect();
        match set_path(&mut table, &path, toml::Value::String(text)) {
            Ok(()) => {
                given_as_text.insert(path.join("."));
            }
            Err(e) => problems.push(problem(name, e)),
        }
    }

    for item in &sources.overrides {
        let Some((key, raw)) = item.split_once('=') else {
            problems.push(problem(item, "a --set override must look like key=value, e.g. door.unlock_time=5s"));
            continue;
        };
        let path: Vec<&str> = key.trim().split('.').collect();
        match set_path(&mut table, &path, toml::Value::String(raw.trim().to_owned())) {
            Ok(()) => {
                given_as_text.insert(path.join("."));
            }
            Err(e) => problems.push(problem(key, e)),
        }
    }

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }

    // A value of the wrong type is reported and dropped, and reading goes on, so that one run
    // names every mistake.
    let (config, unknown_keys) = loop {
        let mut unknown_keys = Vec::new();
        let mut note_unknown = |path: serde_ignored::Path| unknown_keys.push(path.to_string());
        let deserializer = serde_ignored::Deserializer::new(toml::Value::Table(table.clone()), &mut note_unknown);
        match serde_path_to_error::deserialize::<_, Config>(deserializer) {
            Ok(config) => break (config, unknown_keys),
            Err(e) => {
                let key = e.path().to_string();
                let path: Vec<&str> = key.split('.').collect();
                let error = e.into_inner().to_string();
                // toml closes its message with the key, which the problem names already.
                let mut message = error.trim_end().trim_end_matches(&format!("in `{key}`")).trim_end().to_owned();
                // Text refused by the key's own type is read as TOML and tried again. Asking the
                // type itself, rather than the defaults, also reaches keys that are unset by
                // default (`engine.threads`), and a key that takes text gets exactly what was given.
                if refuses_text(&message) && given_as_text.remove(&key) {
                    match value_at(&table, &path).and_then(toml::Value::as_str).and_then(read_as_toml) {
                        Some(value) => {
                            set_path(&mut table, &path, value).expect("the key holds a value already");
                            continue;
                        }
                        None => message.push_str(
                            "; give the value as the config file would have it, e.g. 4, 0.5, true or [\"a\"]",
                        ),
                    }
                }
                let before = table.clone();
                remove_path(&mut table, &path);
                problems.push(problem(key, message));
                if table == before {
                    return Err(ConfigError { problems });
                }
            }
        }
    };
    problems.extend(config.problems_in(sections));
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Loaded { config, unknown_keys })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn load_all(sources: &Sources) -> Result<Loaded, ConfigError> {
        load(sources, Section::ALL)
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn sources_in(dir: &Path, file_text: Option<&str>) -> Sources {
        let file = file_text.map(|text| {
            let path = dir.join("config.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let base = vec![
            ("FACEREKO_DATA_DIR".to_owned(), dir.display().to_string()),
            ("FACEREKO_HARDWARE__SIMULATED__CAMERA".to_owned(), dir.display().to_string()),
        ];
        Sources { file, env: base, overrides: Vec::new() }
    }

    #[test]
    fn layers_apply_in_order_file_env_cli() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources =
            sources_in(dir.path(), Some("[door]\nunlock_time = \"4s\"\ndebounce = \"1s\"\nid = \"file\"\n"));
        sources.env.extend(env(&[("FACEREKO_DOOR__UNLOCK_TIME", "6s"), ("FACEREKO_DOOR__ID", "env")]));
        sources.overrides.push("door.id=cli".into());
        let config = load(&sources, Section::ALL).unwrap().config;
        assert_eq!(config.door.debounce, Duration::from_secs(1));
        assert_eq!(config.door.unlock_time, Duration::from_secs(6));
        assert_eq!(config.door.id, "cli");
        assert_eq!(config.capture.frames, 5, "untouched keys keep their defaults");
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("url");
        std::fs::write(&secret, "sqlite://other.db\n").unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.env.push(("FACEREKO_DATABASE__URL_FILE".into(), secret.display().to_string()));
        assert_eq!(load(&sources, Section::ALL).unwrap().config.database.url, "sqlite://other.db");
    }

    #[test]
    fn the_database_password_comes_from_a_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db-password");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut sources = sources_in(dir.path(), Some("[database]\nurl = \"mysql://door@db.local/facereko\"\n"));
        sources.env.push(("FACEREKO_DATABASE__PASSWORD_FILE".into(), secret.display().to_string()));
        let config = load(&sources, Section::ALL).unwrap().config;
        assert_eq!(config.database.password(), Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"), "Debug output hides the password");
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources_in(dir.path(), Some("colour = \"blue\"\n[door]\nunlock_tme = \"3s\"\n"));
        let loaded = load(&sources, Section::ALL).unwrap();
        assert_eq!(loaded.unknown_keys, ["colour", "door.unlock_tme"]);
    }

    #[test]
    fn type_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_all(&sources_in(dir.path(), Some("[door]\nunlock_time = \"ten seconds\"\n"))).unwrap_err();
        assert_eq!(err.problems[0].key, "door.unlock_time");
        let err = load_all(&sources_in(dir.path(), Some("[door]\nmode = \"face\"\n"))).unwrap_err();
        assert_eq!(err.problems[0].key, "door.mode");
        assert!(err.problems[0].message.contains("card+face"), "{}", err.problems[0].message);
    }

    #[test]
    fn every_type_error_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[door]\nunlock_time = 5\nmode = \"face\"\n[capture]\nframes = \"many\"\n";
        let keys: Vec<String> =
            load_all(&sources_in(dir.path(), Some(text))).unwrap_err().problems.into_iter().map(|p| p.key).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        for key in ["door.unlock_time", "door.mode", "capture.frames"] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
    }

    #[test]
    fn set_and_env_reach_number_and_flag_keys_as_their_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        // engine.threads is unset by default, so no default tells its type.
        sources.overrides.push("engine.threads=1".into());
        sources.overrides.push("door.capture_when_closed=true".into());
        sources.env.push(("FACEREKO_CAPTURE__FRAMES".into(), "7".into()));
        sources.env.push(("FACEREKO_ENGINE__MATCH_THRESHOLD".into(), "92.5".into()));
        sources.env.push(("FACEREKO_VISITORS__TELL".into(), r#"["email:owner@example.com"]"#.into()));
        let config = load_all(&sources).unwrap().config;
        assert_eq!(config.engine.threads, Some(1));
        assert!(config.door.capture_when_closed);
        assert_eq!(config.capture.frames, 7);
        assert_eq!(config.engine.match_threshold, 92.5);
        assert_eq!(config.visitors.tell, ["email:owner@example.com"]);
    }

    #[test]
    fn env_reaches_a_number_key_unset_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.env.push(("FACEREKO_ENGINE__THREADS".into(), "2".into()));
        assert_eq!(load_all(&sources).unwrap().config.engine.threads, Some(2));
    }

    #[test]
    fn text_keys_take_number_like_values_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides.push("door.id=0042".into());
        sources.overrides.push(r#"engine.models_dir="/srv/models""#.into());
        sources.env.push(("FACEREKO_DATABASE__PASSWORD".into(), "1234".into()));
        let config = load_all(&sources).unwrap().config;
        assert_eq!(config.door.id, "0042");
        assert_eq!(config.engine.models_dir, Path::new(r#""/srv/models""#), "a text key keeps even the quotes");
        assert_eq!(config.database.password(), Some("1234"));
    }

    #[test]
    fn a_bad_number_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides.push("engine.threads=four".into());
        sources.env.push(("FACEREKO_CAPTURE__FRAMES".into(), "-1".into()));
        let problems = load_all(&sources).unwrap_err().problems;
        let said: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        assert_eq!(said.len(), 2, "{said:#?}");
        let threads = said.iter().find(|p| p.starts_with("engine.threads: ")).expect("engine.threads named");
        assert!(threads.contains(r#""four", expected usize; give the value as"#), "{threads}");
        let frames = said.iter().find(|p| p.starts_with("capture.frames: ")).expect("capture.frames named");
        assert!(frames.contains("-1"), "{frames}");
    }

    #[test]
    fn socket_paths_must_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides.push(format!("control.socket={}/{}", dir.path().display(), "s".repeat(120)));
        let err = load(&sources, Section::ALL).unwrap_err();
        assert_eq!(err.problems[0].key, "control.socket");
        assert!(err.problems[0].message.contains("1 to 107"), "{}", err.problems[0].message);
    }

    #[test]
    fn malformed_toml_is_a_problem_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_all(&sources_in(dir.path(), Some("[door\nunlock_time = 3"))).unwrap_err();
        assert!(err.problems[0].key.ends_with("config.toml"));
        assert!(err.problems[0].message.starts_with("not valid TOML"), "{}", err.problems[0].message);
    }

    #[test]
    fn every_range_problem_is_listed_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides = [
            "door.unlock_time=0s",
            "capture.frames=0",
            "engine.match_threshold=150",
            "hardware.lock=servo",
            "engine.kind=magic",
            "door.id=front door",
            "database.url=postgres://x",
        ]
        .map(String::from)
        .to_vec();
        let keys: Vec<String> = load(&sources, Section::ALL).unwrap_err().problems.into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "door.id",
                "door.unlock_time",
                "capture.frames",
                // With the default liveness checks on, the burst must hold their frames.
                "liveness.frames",
                "engine.kind",
                "engine.match_threshold",
                "database.url",
                "hardware.lock"
            ]
        );
    }

    #[test]
    fn missing_data_dir_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides.push(format!("data_dir={}", dir.path().join("nope").display()));
        let err = load(&sources, Section::ALL).unwrap_err();
        assert_eq!(err.problems[0].key, "data_dir");
        assert!(err.problems[0].message.contains("mkdir -p"));
    }

    #[test]
    fn the_example_is_complete_and_valid() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), Some(EXAMPLE));
        // The example points at system paths; aim them at the temp dir, as an installer would.
        sources.overrides.push(format!("data_dir={}", dir.path().display()));
        sources.overrides.push(format!("hardware.simulated.camera={}", dir.path().display()));
        let loaded = load(&sources, Section::ALL).unwrap();
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let defaults = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        assert_eq!(loaded.config.door, defaults.door, "the example shows the defaults");
        assert_eq!(loaded.config.capture, defaults.capture);
        assert_eq!(loaded.config.engine, defaults.engine);
        assert_eq!(loaded.config.mqtt, defaults.mqtt);
        // Installed configs serve https with the door's own authority; an unset key stays off (README, "HTTPS").
        let web = crate::web::WebConfig { tls: crate::tls::TlsMode::SelfSigned, ..defaults.web.clone() };
        assert_eq!(loaded.config.web, web);
        assert_eq!(loaded.config.api, defaults.api);
        assert_eq!(loaded.config.control, defaults.control);
        assert_eq!(loaded.config.voice, defaults.voice);
        assert_eq!(loaded.config.visitors, defaults.visitors);
    }

    #[test]
    fn visitors_need_the_web_app_its_address_and_the_channels_they_tell() {
        let dir = tempfile::tempdir().unwrap();
        let file = "[visitors]\nenabled = true\ntell = [\"email:owner@example.com\", \"sms:+4915112345678\"]\n";
        let sources = sources_in(dir.path(), Some(file));
        let problems = load(&sources, Section::ALL).unwrap_err().problems;
        let said: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        assert_eq!(said.len(), 4, "{said:#?}");
        assert!(said[0].contains("set web.listen") && said[1].contains("set web.public_url"), "{said:#?}");
        assert!(said[2].starts_with("visitors.tell[0]: nothing can send it: set up [email]"), "{said:#?}");
        assert!(said[3].starts_with("visitors.tell[1]: nothing can send it: set up [sms]"), "{said:#?}");
    }
}
