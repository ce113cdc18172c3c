//! Configuration: defaults, then a TOML file, then `FACEREKO_*` environment variables, then
//! `--set key=value` flags, validated once into one [`Config`] that is passed to whoever needs it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::door::{DoorSettings, Mode};
use crate::hw::{self, BeepPattern, BurstLimits};
use crate::store::DatabaseUrl;

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
    pub capture: CaptureConfig,
    pub engine: EngineConfig,
    pub database: DatabaseConfig,
    pub hardware: HardwareConfig,
    pub control: ControlConfig,
    /// Notifications of attempts over MQTT; off while `mqtt.url` is empty.
    pub mqtt: crate::notify::MqttConfig,
    /// The Rekognition-compatible API; off while `api.listen` is empty.
    pub api: crate::api::ApiConfig,
    /// The web app; off while `web.listen` is empty.
    pub web: crate::web::WebConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DoorConfig {
    pub id: String,
    pub mode: Mode,
    #[serde(with = "humantime_serde")]
    pub unlock_time: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    #[serde(with = "humantime_serde")]
    pub grant_beep: Duration,
    pub deny_beeps: u32,
    #[serde(with = "humantime_serde")]
    pub deny_beep: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureConfig {
    pub frames: u32,
    #[serde(with = "humantime_serde")]
    pub time_limit: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    pub kind: String,
    /// Where `facereko models fetch` puts the on-device models and the engine loads them from.
    pub models_dir: PathBuf,
    pub match_threshold: f32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The `rekognition` engine: AWS Rekognition, or FaceReko's own API through `endpoint_url`.
    pub rekognition: crate::engine::rekognition::RekognitionConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: String,
    /// The MySQL password when the URL has none; best given as `FACEREKO_DATABASE__PASSWORD_FILE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

impl DatabaseConfig {
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(Secret::expose)
    }
}

/// A value that must never be shown: its `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HardwareConfig {
    pub leds: String,
    pub buzzer: String,
    pub lock: String,
    pub reader: String,
    pub camera: String,
    /// Pins of the `gpio` LEDs, buzzer and relay.
    pub gpio: hw::gpio::GpioPins,
    pub mfrc522: Mfrc522Config,
    /// The camera stream of the `rpicam` camera: a program writing MJPEG to its stdout.
    pub rpicam: hw::rpicam::StreamSettings,
    /// The `v4l2` camera: a USB webcam.
    #[cfg(feature = "v4l2")]
    pub v4l2: hw::v4l2::V4l2Settings,
    pub simulated: SimulatedConfig,
}

/// The MFRC522 card reader on SPI. The defaults are the original wiring: SPI 0, CE0, reset on BCM 25.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mfrc522Config {
    pub spi_bus: u8,
    pub chip_select: u8,
    pub reset_pin: u8,
    pub clock_hz: u32,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often the chip's version register is checked; a chip that stops answering is reset.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
}

impl Default for Mfrc522Config {
    fn default() -> Self {
        Self {
            spi_bus: 0,
            chip_select: 0,
            reset_pin: 25,
            clock_hz: 1_000_000,
            poll_interval: Duration::from_millis(50),
            health_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulatedConfig {
    /// A picture file, or a folder with one subfolder of pictures per card UID (and `default/`).
    pub camera: Option<PathBuf>,
    /// Where to append a JSON line for every switch of a simulated output.
    pub outputs_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlConfig {
    /// Unix socket for `facereko tap|arm|disarm|status|healthcheck`; default `<data_dir>/control.sock`.
    pub socket: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/facereko"),
            door: DoorConfig::default(),
            capture: CaptureConfig::default(),
            engine: EngineConfig::default(),
            database: DatabaseConfig::default(),
            hardware: HardwareConfig::default(),
            control: ControlConfig::default(),
            mqtt: crate::notify::MqttConfig::default(),
            api: crate::api::ApiConfig::default(),
            web: crate::web::WebConfig::default(),
        }
    }
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            id: "front".into(),
            mode: Mode::CardAndFace,
            unlock_time: Duration::from_secs(10),
            debounce: Duration::from_secs(2),
            grant_beep: Duration::from_secs(2),
            deny_beeps: 3,
            deny_beep: Duration::from_millis(150),
        }
    }
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self { frames: 5, time_limit: Duration::from_secs(3) }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kind: crate::engine::local::NAME.into(),
            models_dir: PathBuf::from("/var/lib/facereko/models"),
            // Calibrated with `facereko eval`: no false accept on either shared data set (README).
            match_threshold: 93.0,
            timeout: Duration::from_secs(5),
            rekognition: crate::engine::rekognition::RekognitionConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://facereko.db".into(), password: None }
    }
}

impl Default for HardwareConfig {
    fn default() -> Self {
        let sim = || hw::simulated::NAME.to_owned();
        Self {
            leds: sim(),
            buzzer: sim(),
            lock: sim(),
            reader: sim(),
            camera: sim(),
            gpio: hw::gpio::GpioPins::default(),
            mfrc522: Mfrc522Config::default(),
            rpicam: hw::rpicam::StreamSettings::default(),
            #[cfg(feature = "v4l2")]
            v4l2: hw::v4l2::V4l2Settings::default(),
            simulated: SimulatedConfig::default(),
        }
    }
}

impl Config {
    pub fn door_settings(&self) -> DoorSettings {
        let door = &self.door;
        DoorSettings {
            mode: door.mode,
            unlock_time: door.unlock_time,
            debounce: door.debounce,
            match_threshold: self.engine.match_threshold,
            grant_beep: BeepPattern { count: 1, on: door.grant_beep, off: Duration::ZERO },
            deny_beep: BeepPattern { count: door.deny_beeps, on: door.deny_beep, off: door.deny_beep },
        }
    }

    pub fn burst_limits(&self) -> BurstLimits {
        BurstLimits { max_frames: self.capture.frames, time_limit: self.capture.time_limit }
    }

    pub fn control_socket(&self) -> PathBuf {
        self.control.socket.clone().unwrap_or_else(|| self.data_dir.join("control.sock"))
    }

    pub fn photos_dir(&self) -> PathBuf {
        self.data_dir.join("photos")
    }

    /// Every problem with the values, each naming its key and how to fix it.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                problems.push(Problem { key: key.to_owned(), message });
            }
        };

        check(
            self.data_dir.is_dir(),
            "data_dir",
            format!(
                "{} is not an existing folder; create it (mkdir -p {}) or point data_dir at one",
                self.data_dir.display(),
                self.data_dir.display()
            ),
        );
        let id_ok = !self.door.id.is_empty()
            && self.door.id.len() <= 32
            && self.door.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        check(id_ok, "door.id", format!("{:?} must be 1-32 letters, digits, '-' or '_'", self.door.id));
        check_range(
            &mut check,
            "door.unlock_time",
            self.door.unlock_time,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        check_range(&mut check, "door.debounce", self.door.debounce, Duration::ZERO, Duration::from_secs(60));
        check_range(&mut check, "door.grant_beep", self.door.grant_beep, Duration::ZERO, Duration::from_secs(10));
        check_range(
            &mut check,
            "door.deny_beep",
            self.door.deny_beep,
            Duration::from_millis(20),
            Duration::from_secs(2),
        );
        check(
            self.door.deny_beeps <= 10,
            "door.deny_beeps",
            format!("{} is too many; use 0 to 10", self.door.deny_beeps),
        );

        check(
            (1..=30).contains(&self.capture.frames),
            "capture.frames",
            format!("{} is out of range; use 1 to 30 frames", self.capture.frames),
        );
        check_range(
            &mut check,
            "capture.time_limit",
            self.capture.time_limit,
            Duration::from_millis(100),
            Duration::from_secs(10),
        );

        check(
            crate::engine::ENGINES.contains(&self.engine.kind.as_str()),
            "engine.kind",
            format!("{:?} is not compiled in; choose one of: {}", self.engine.kind, crate::engine::ENGINES.join(", ")),
        );
        check(
            self.engine.match_threshold > 0.0 && self.engine.match_threshold <= 100.0,
            "engine.match_threshold",
            format!("{} must be above 0 and at most 100 (a similarity percentage)", self.engine.match_threshold),
        );
        check_range(
            &mut check,
            "engine.timeout",
            self.engine.timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );

        if let Err(fix) = DatabaseUrl::parse(&self.database.url, &self.data_dir) {
            check(false, "database.url", format!("{:?}: {fix}", DatabaseUrl::redacted(&self.database.url)));
        }

        let roles = [
            ("leds", &self.hardware.leds),
            ("buzzer", &self.hardware.buzzer),
            ("lock", &self.hardware.lock),
            ("reader", &self.hardware.reader),
            ("camera", &self.hardware.camera),
        ];
        for (role, backend) in roles {
            let known = hw::backends_for(role);
            check(
                known.contains(&backend.as_str()),
                &format!("hardware.{role}"),
                format!("{backend:?} is not compiled in; choose one of: {}", known.join(", ")),
            );
        }
        let gpio = &self.hardware.gpio;
        let mut pins = vec![
            ("hardware.gpio.red_led", gpio.red_led, self.hardware.leds == hw::gpio::NAME),
            ("hardware.gpio.green_led", gpio.green_led, self.hardware.leds == hw::gpio::NAME),
            ("hardware.gpio.buzzer", gpio.buzzer, self.hardware.buzzer == hw::gpio::NAME),
            ("hardware.gpio.relay", gpio.relay, self.hardware.lock == hw::gpio::NAME),
            ("hardware.mfrc522.reset_pin", self.hardware.mfrc522.reset_pin, self.hardware.reader == hw::mfrc522::NAME),
        ];
        pins.retain(|(_, _, used)| *used);
        for (i, (key, pin, _)) in pins.iter().enumerate() {
            check(*pin <= 27, key, format!("BCM {pin} is not on the 40-pin header; use 2 to 27"));
            if let Some((other, _, _)) = pins[..i].iter().find(|(_, p, _)| p == pin) {
                check(false, key, format!("BCM {pin} is already {other}; give each output its own pin"));
            }
        }
        if self.hardware.reader == hw::mfrc522::NAME {
            let reader = &self.hardware.mfrc522;
            check(
                (100_000..=10_000_000).contains(&reader.clock_hz),
                "hardware.mfrc522.clock_hz",
                format!(
                    "{} Hz is out of range; use 100000 to 10000000 (1000000 is safe on jumper wires)",
                    reader.clock_hz
                ),
            );
            check_range(
                &mut check,
                "hardware.mfrc522.poll_interval",
                reader.poll_interval,
                Duration::from_millis(10),
                Duration::from_secs(1),
            );
            check_range(
                &mut check,
                "hardware.mfrc522.health_interval",
                reader.health_interval,
                Duration::from_secs(1),
                Duration::from_secs(600),
            );
        }
        let mqtt = &self.mqtt;
        check(
            !mqtt.topic_prefix.is_empty()
                && !mqtt.topic_prefix.contains(['#', '+'])
                && !mqtt.topic_prefix.ends_with('/'),
            "mqtt.topic_prefix",
            format!("{:?} cannot name topics; use letters and / without # or + (e.g. \"FaceReko\")", mqtt.topic_prefix),
        );
        check(
            mqtt.outbox_limit >= 100,
            "mqtt.outbox_limit",
            format!("{} is too small to ride out an outage; use at least 100 (default 10000)", mqtt.outbox_limit),
        );
        check_range(&mut check, "mqtt.keep_alive", mqtt.keep_alive, Duration::from_secs(5), Duration::from_secs(1200));
        if self.hardware.camera == hw::rpicam::NAME
            && let Err(fix) = self.hardware.rpicam.validate()
        {
            check(false, "hardware.rpicam", fix);
        }
        #[cfg(feature = "v4l2")]
        if self.hardware.camera == hw::v4l2::NAME
            && let Err(fix) = self.hardware.v4l2.validate()
        {
            check(false, "hardware.v4l2", fix);
        }
        if let Some(path) = &self.hardware.simulated.camera {
            check(
                path.exists(),
                "hardware.simulated.camera",
                format!("{path:?} does not exist; point it at a picture file or a folder of pictures"),
            );
        }
        let socket = self.control_socket();
        // sun_path holds 108 bytes including the terminating NUL.
        let socket_len = socket.as_os_str().len();
        check(
            (1..=107).contains(&socket_len),
            "control.socket",
            format!("{socket:?} is {socket_len} bytes; a Unix socket path needs 1 to 107: choose a shorter path"),
        );
        if let Some(parent) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
            check(
                parent.is_dir(),
                "control.socket",
                format!("the folder {} does not exist; create it or choose another path", parent.display()),
            );
        }
        check(
            self.engine.kind != crate::engine::hybrid::NAME
                || self.engine.rekognition.fallback_after < self.engine.timeout,
            "engine.rekognition.fallback_after",
            format!(
                "{} leaves the on-device engine no time within engine.timeout ({}); make it shorter",
                humantime::format_duration(self.engine.rekognition.fallback_after),
                humantime::format_duration(self.engine.timeout)
            ),
        );
        problems.extend(self.engine.rekognition.problems());
        problems.extend(self.api.problems());
        problems.extend(self.web.problems());
        problems
    }

    /// The timings and thresholds the web app's settings page may change.
    pub fn tuning(&self) -> DoorTuning {
        DoorTuning {
            unlock_time: self.door.unlock_time,
            debounce: self.door.debounce,
            grant_beep: self.door.grant_beep,
            deny_beeps: self.door.deny_beeps,
            deny_beep: self.door.deny_beep,
            capture_frames: self.capture.frames,
            capture_time_limit: self.capture.time_limit,
            match_threshold: self.engine.match_threshold,
            engine_timeout: self.engine.timeout,
        }
    }

    /// This config with `tuning` in place of its timings and thresholds.
    pub fn with_tuning(&self, tuning: &DoorTuning) -> Config {
        let mut config = self.clone();
        config.door.unlock_time = tuning.unlock_time;
        config.door.debounce = tuning.debounce;
        config.door.grant_beep = tuning.grant_beep;
        config.door.deny_beeps = tuning.deny_beeps;
        config.door.deny_beep = tuning.deny_beep;
        config.capture.frames = tuning.capture_frames;
        config.capture.time_limit = tuning.capture_time_limit;
        config.engine.match_threshold = tuning.match_threshold;
        config.engine.timeout = tuning.engine_timeout;
        config
    }

    /// What `tuning` would break in this config (problems it has already are not repeated),
    /// keyed like the config file.
    pub fn tuning_problems(&self, tuning: &DoorTuning) -> Vec<Problem> {
        let before = self.problems();
        let mut problems = self.with_tuning(tuning).problems();
        problems.retain(|p| !before.contains(p));
        problems
    }

    /// What only running the door needs, on top of [`Config::problems`].
    pub fn run_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let needs_sim_pictures = self.hardware.camera == hw::simulated::NAME && self.door.mode == Mode::CardAndFace;
        if needs_sim_pictures && self.hardware.simulated.camera.is_none() {
            problems.push(Problem {
                key: "hardware.simulated.camera".into(),
                message: "the simulated camera needs pictures: set it to a picture file or to a folder with a \
                          subfolder of pictures per card UID (and default/)"
                    .into(),
            });
        }
        if [crate::engine::local::NAME, crate::engine::hybrid::NAME].contains(&self.engine.kind.as_str())
            && let Err(e) = crate::models::ModelPaths::check(&self.engine.models_dir)
        {
            problems.push(Problem { key: "engine.models_dir".into(), message: e.to_string() });
        }
        if self.mqtt.enabled()
            && let Err(e) = crate::notify::mqtt::options(&self.mqtt, &self.door.id)
        {
            problems.push(Problem { key: e.config_key().into(), message: e.to_string() });
        }
        problems
    }
}

fn check_range(check: &mut impl FnMut(bool, &str, String), key: &str, value: Duration, min: Duration, max: Duration) {
    check(
        value >= min && value <= max,
        key,
        format!(
            "{} is out of range; use a duration from {} to {} (e.g. \"10s\", \"500ms\")",
            humantime::format_duration(value),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ),
    );
}

/// The door's timings and thresholds, as the web app edits them. Saved changes are kept in the
/// database and override the config file's values until changed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoorTuning {
    #[serde(with = "humantime_serde")]
    pub unlock_time: Duration,
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    #[serde(with = "humantime_serde")]
    pub grant_beep: Duration,
    pub deny_beeps: u32,
    #[serde(with = "humantime_serde")]
    pub deny_beep: Duration,
    pub capture_frames: u32,
    #[serde(with = "humantime_serde")]
    pub capture_time_limit: Duration,
    pub match_threshold: f32,
    #[serde(with = "humantime_serde")]
    pub engine_timeout: Duration,
}

impl DoorTuning {
    /// Where the web app saves them (the `settings` table).
    pub const SETTING: &str = "door_tuning";
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
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
    Problem { key: key.into(), message: message.into() }
}

/// Reads a value given as text (environment, `--set`) as the key's type: text keys take it as
/// it is (a door may be called `1234`); others read it as TOML would (`true`, `5`, `0.5`).
fn parse_scalar(defaults: &toml::Table, path: &[&str], raw: &str) -> toml::Value {
    let default = path.iter().try_fold(None::<&toml::Value>, |node, part| {
        let table = match node {
            None => defaults,
            Some(value) => value.as_table()?,
        };
        table.get(*part).map(Some)
    });
    let is_number_or_flag =
        matches!(default.flatten(), Some(toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)));
    if !is_number_or_flag {
        return toml::Value::String(raw.to_owned());
    }
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
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
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let mut table = toml::Table::new();
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialise");

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
        let (key_path, value) = match lower.strip_suffix("_file") {
            Some(key_path) => match std::fs::read_to_string(raw) {
                Ok(text) => (key_path.to_owned(), toml::Value::String(text.trim_end_matches(['\r', '\n']).to_owned())),
                Err(e) => {
                    problems.push(problem(name, format!("cannot read {raw}: {e}")));
                    continue;
                }
            },
            None => {
                let path: Vec<&str> = lower.split("__").collect();
                (lower.clone(), parse_scalar(&defaults, &path, raw))
            }
        };
        let path: Vec<&str> = key_path.split("__").collect();
        if let Err(e) = set_path(&mut table, &path, value) {
            problems.push(problem(name, e));
        }
    }

    for item in &sources.overrides {
        let Some((key, raw)) = item.split_once('=') else {
            problems.push(problem(item, "a --set override must look like key=value, e.g. door.unlock_time=5s"));
            continue;
        };
        let path: Vec<&str> = key.trim().split('.').collect();
        if let Err(e) = set_path(&mut table, &path, parse_scalar(&defaults, &path, raw.trim())) {
            problems.push(problem(key, e));
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
                let before = table.clone();
                remove_path(&mut table, &path);
                problems.push(problem(key.clone(), e.into_inner().to_string()));
                if table == before {
                    return Err(ConfigError { problems });
                }
            }
        }
    };
    problems.extend(config.problems());
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Loaded { config, unknown_keys })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
        let config = load(&sources).unwrap().config;
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
        assert_eq!(load(&sources).unwrap().config.database.url, "sqlite://other.db");
    }

    #[test]
    fn the_database_password_comes_from_a_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db-password");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut sources = sources_in(dir.path(), Some("[database]\nurl = \"mysql://door@db.local/facereko\"\n"));
        sources.env.push(("FACEREKO_DATABASE__PASSWORD_FILE".into(), secret.display().to_string()));
        let config = load(&sources).unwrap().config;
        assert_eq!(config.database.password(), Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"), "Debug output hides the password");
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources_in(dir.path(), Some("colour = \"blue\"\n[door]\nunlock_tme = \"3s\"\n"));
        let loaded = load(&sources).unwrap();
        assert_eq!(loaded.unknown_keys, ["colour", "door.unlock_tme"]);
    }

    #[test]
    fn type_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&sources_in(dir.path(), Some("[door]\nunlock_time = \"ten seconds\"\n"))).unwrap_err();
        assert_eq!(err.problems[0].key, "door.unlock_time");
        let err = load(&sources_in(dir.path(), Some("[door]\nmode = \"face\"\n"))).unwrap_err();
        assert_eq!(err.problems[0].key, "door.mode");
        assert!(err.problems[0].message.contains("card+face"), "{}", err.problems[0].message);
    }

    #[test]
    fn every_type_error_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[door]\nunlock_time = 5\nmode = \"face\"\n[capture]\nframes = \"many\"\n";
        let keys: Vec<String> =
            load(&sources_in(dir.path(), Some(text))).unwrap_err().problems.into_iter().map(|p| p.key).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        for key in ["door.unlock_time", "door.mode", "capture.frames"] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
    }

    #[test]
    fn text_keys_take_number_like_values_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides.push("door.id=1234".into());
        sources.env.push(("FACEREKO_CAPTURE__FRAMES".into(), "7".into()));
        let config = load(&sources).unwrap().config;
        assert_eq!(config.door.id, "1234");
        assert_eq!(config.capture.frames, 7);
    }

    #[test]
    fn socket_paths_must_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path(), None);
        sources.overrides.push(format!("control.socket={}/{}", dir.path().display(), "s".repeat(120)));
        let err = load(&sources).unwrap_err();
        assert_eq!(err.problems[0].key, "control.socket");
        assert!(err.problems[0].message.contains("1 to 107"), "{}", err.problems[0].message);
    }

    #[test]
    fn malformed_toml_is_a_problem_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&sources_in(dir.path(), Some("[door\nunlock_time = 3"))).unwrap_err();
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
        let keys: Vec<String> = load(&sources).unwrap_err().problems.into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "door.id",
                "door.unlock_time",
                "capture.frames",
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
        let err = load(&sources).unwrap_err();
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
        let loaded = load(&sources).unwrap();
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let defaults = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        assert_eq!(loaded.config.door, defaults.door, "the example shows the defaults");
        assert_eq!(loaded.config.capture, defaults.capture);
        assert_eq!(loaded.config.engine, defaults.engine);
        assert_eq!(loaded.config.mqtt, defaults.mqtt);
        assert_eq!(loaded.config.web, defaults.web);
    }
}
