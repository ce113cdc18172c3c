//! Commands that work on the database and config directly, daemon running or not.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use facereko::config::{self, Config, Sources};
use facereko::engine::{self, FaceEngine};
use facereko::enrolment::{self, EnrolError};
use facereko::frame::Frame;
use facereko::notify::delivery::{self, Outcome};
use facereko::photos::Photos;
use facereko::store::{self, Channel, LogQuery, Store, legacy};
use facereko::tls::{self, TlsMode};
use facereko::{hw, store::StoreError};
use indicatif::{ProgressBar, ProgressStyle};

use super::{CardCommand, EnrollArgs, LogArgs, PersonCommand};

pub(super) async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    store::open(&config.database, &config.data_dir).await.context("cannot open the database")
}

fn open_engine(config: &Config) -> Result<Arc<dyn FaceEngine>> {
    engine::build(&config.engine).context("cannot start the face engine")
}

pub(super) fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).expect("our types serialise"));
}

/// What `config check` finds in the database: faces the configured embedder does not search.
async fn enrolled_face_problems(config: &Config) -> Option<facereko::checks::Problem> {
    if config.engine.template_kind() == config.engine.kind {
        return None;
    }
    let nothing_enrolled = store::DatabaseUrl::parse(&config.database.url, &config.data_dir)
        .is_ok_and(|url| matches!(url, store::DatabaseUrl::Sqlite(path) if !path.exists()));
    if nothing_enrolled {
        return None;
    }
    let kind = config.engine.template_kind();
    let found = async {
        let store = store::connect(&config.database, &config.data_dir).await?;
        enrolment::faces_to_reindex(store.as_ref(), &config.engine.kind, &kind).await
    };
    match found.await {
        Ok(faces) if faces.is_empty() => None,
        Ok(faces) => {
            let mut kinds: Vec<&str> = faces.iter().map(|f| f.kind.as_str()).collect();
            kinds.dedup();
            Some(facereko::checks::Problem::new(
                "engine.embedder",
                format!(
                    "{} enrolled face(s) were described as {} and the door would not search them with {:?}; \
                     run `facereko faces reindex` (or set engine.embedder back)",
                    faces.len(),
                    kinds.join(", "),
                    config.engine.embedder
                ),
            ))
        }
        Err(e) => {
            println!("note: cannot check the enrolled faces: {e}");
            None
        }
    }
}

pub async fn config_check(sources: &Sources) -> ExitCode {
    match &sources.file {
        Some(path) => println!("config file: {}", path.display()),
        None => println!("config file: none (defaults, FACEREKO_* environment and --set only)"),
    }
    let loaded = config::load(sources, config::Section::ALL).and_then(|loaded| {
        let problems = loaded.config.run_problems();
        if problems.is_empty() { Ok(loaded) } else { Err(config::ConfigError { problems }) }
    });
    let loaded = match loaded {
        Ok(loaded) => match enrolled_face_problems(&loaded.config).await {
            Some(problem) => Err(config::ConfigError { problems: vec![problem] }),
            None => Ok(loaded),
        },
        Err(e) => Err(e),
    };
    match loaded {
        Ok(loaded) => {
            for key in &loaded.unknown_keys {
                println!("warning: {key}: unknown key, ignored; check its spelling against `facereko config example`");
            }
            let c = &loaded.config;
            println!("configuration OK");
            println!(
                "  door {:?}: mode {}, unlock {}, engine {} (threshold {}), database {}",
                c.door.id,
                c.door.mode,
                humantime::format_duration(c.door.unlock_time),
                c.engine.kind,
                c.engine.match_threshold,
                store::DatabaseUrl::redacted(&c.database.url)
            );
            if c.database.password.is_some() {
                println!("  database password: set (not shown)");
            }
            let listen = c.web.listen.trim();
            match (c.web.enabled(), c.web.tls) {
                (false, _) => println!("  web app: off (set web.listen, e.g. \"0.0.0.0:8080\")"),
                (true, TlsMode::Off) => println!("  web app: http://{listen}/ (web.tls = \"off\": plain HTTP)"),
                (true, TlsMode::SelfSigned) => println!(
                    "  web app: https://{listen}/ with the door's own certificate authority ({}); phones install it \
                     from /certificate",
                    c.data_dir.join(tls::TLS_DIR).display()
                ),
                (true, TlsMode::Files) => println!(
                    "  web app: https://{listen}/ with {}",
                    c.web.tls_cert.as_deref().map(|path| path.display().to_string()).unwrap_or_default()
                ),
            }
            for warning in unreachable_servers(c).await {
                println!("warning: {warning}");
            }
            for warning in speaker_warnings(c).await {
                println!("warning: {warning} (the door works on without its voice)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            for problem in &e.problems {
                println!("error: {problem}");
            }
            println!("{} problem(s) found", e.problems.len());
            ExitCode::FAILURE
        }
    }
}

/// What keeps the chosen speaker from speaking on this machine: a missing program, a device that
/// does not open, a language the renderer does not have.
async fn speaker_warnings(config: &Config) -> Vec<facereko::checks::Problem> {
    let (hardware, voice) = (config.hardware.clone(), config.voice.clone());
    let found = tokio::task::spawn_blocking(move || {
        let mut warnings = hardware.speaker_warnings();
        if warnings.iter().all(|w| w.key != "hardware.espeak.program")
            && let Ok(mut speaker) = hw::speaker_from_config(&hardware)
            && let Err(e) = speaker.render("test", &voice.spec())
        {
            warnings.push(facereko::checks::Problem::new("voice.language", e.to_string()));
        }
        warnings
    });
    found.await.unwrap_or_default()
}

/// The message servers that do not take a connection now: worth a warning, not a refusal to
/// start, since the deliverers wait for them.
async fn unreachable_servers(config: &Config) -> Vec<String> {
    let mut servers = Vec::new();
    if config.email.enabled() {
        servers.push(("email.server", config.email.server.trim().to_owned(), config.email.port()));
    }
    if config.sms.enabled()
        && let Ok(uri) = config.sms.url.trim().parse::<hyper::Uri>()
        && let Some(host) = uri.host()
    {
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        servers.push(("sms.url", host.trim_matches(['[', ']']).to_owned(), port));
    }
    let mut warnings = Vec::new();
    for (key, host, port) in servers {
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        let problem = match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 5s".to_owned(),
        };
        warnings.push(format!("{key}: cannot reach {host}:{port} now ({problem}); messages wait until it answers"));
    }
    warnings
}

pub fn hw_list() {
    for role in hw::ROLES {
        println!("{role:<8} {}", hw::backends_for(role).join(", "));
    }
    println!("{:<8} {}", "engine", engine::ENGINES.join(", "));
}

pub async fn migrate(config: &Config) -> Result<ExitCode> {
    let store = store::connect(&config.database, &config.data_dir).await.context("cannot open the database")?;
    let shown = store::DatabaseUrl::redacted(&config.database.url);
    let applied = store.schema().migrate().await.with_context(|| format!("cannot migrate {shown}"))?;
    if applied.is_empty() {
        println!("the database schema is up to date");
    } else {
        let versions: Vec<String> = applied.iter().map(u32::to_string).collect();
        println!("applied migration(s) {}", versions.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn import_legacy(config: &Config, url: &str, password_file: Option<&std::path::Path>) -> Result<ExitCode> {
    let password = password_file.map(super::user::read_secret_file).transpose()?;
    let store = store::connect(&config.database, &config.data_dir).await.context("cannot open the database")?;
    store.schema().migrate().await.context("cannot bring the database schema up to date")?;
    let imported = legacy::import(url, password.as_deref(), store.as_ref(), &config.door.id).await?;
    println!(
        "imported {} access-log row(s) as granted attempts at door {:?} (rows imported before are not added twice)",
        imported.log_rows, config.door.id
    );
    if imported.log_rows_without_time > 0 {
        println!("  left out {} row(s) without a time", imported.log_rows_without_time);
    }
    println!("imported {} login account(s) as admins", imported.accounts);
    if imported.accounts_existing > 0 {
        println!("  {} account(s) already existed and were left as they are", imported.accounts_existing);
    }
    if imported.accounts > 0 {
        println!(
            "warning: the old database kept these passwords in plain text: treat them as known, change every \
             imported account's password, and drop the old Login table"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn existing_person(store: &dyn Store, name: &str) -> Result<facereko::access::Person> {
    store
        .people()
        .person_by_name(name)
        .await?
        .with_context(|| format!("no person named {name:?}; see `facereko person list`"))
}

pub async fn person(config: &Config, command: &PersonCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    match command {
        PersonCommand::Add { name } => {
            let person = enrolment::add_person(store.as_ref(), name).await?;
            println!("added {} (id {})", person.name, person.id);
        }
        PersonCommand::List { json } => {
            let people = store.people().list_people().await?;
            if *json {
                print_json(&people);
            } else if people.is_empty() {
                println!("no people yet: `facereko enroll --person NAME --card UID PICTURE...` adds one");
            } else {
                println!("{:<24} {:>5} {:>5}", "NAME", "CARDS", "FACES");
                for p in people {
                    println!("{:<24} {:>5} {:>5}", p.name, p.cards, p.faces);
                }
            }
        }
        PersonCommand::Remove { name } => {
            let engine = open_engine(config)?;
            let person = existing_person(store.as_ref(), name).await?;
            match enrolment::remove_person(store.as_ref(), engine.as_ref(), &Photos::new(config.photos_dir()), &person)
                .await
            {
                Ok(faces) => println!("removed {} with their cards and {faces} face(s)", person.name),
                Err(e @ EnrolError::KeptByEngine { .. }) => {
                    eprintln!("error: removed {} with their cards, but {e}", person.name);
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            }
        }
        PersonCommand::Set { name, limits } => {
            let person = existing_person(store.as_ref(), name).await?;
            super::schedule::set_person_limits(config, store.as_ref(), &person, limits).await?;
        }
        PersonCommand::Doors { name, rights } => {
            let person = existing_person(store.as_ref(), name).await?;
            super::schedule::person_doors(store.as_ref(), &person, rights.change()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn card(config: &Config, command: &CardCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    match command {
        CardCommand::Add { card, person } => {
            let holder = existing_person(store.as_ref(), person).await?;
            store.people().add_card(card, holder.id).await?;
            println!("card {card} now opens for {}", holder.name);
        }
        CardCommand::List { json } => {
            let cards = store.people().list_cards().await?;
            if *json {
                print_json(&cards);
            } else if cards.is_empty() {
                println!("no cards yet: `facereko card add UID --person NAME` adds one");
            } else {
                println!("{:<22} HOLDER", "CARD");
                for c in cards {
                    println!("{:<22} {}", c.uid, c.person.name);
                }
            }
        }
        CardCommand::Remove { card } => {
            store.removals().remove_card(card).await?;
            println!("removed card {card}");
        }
        CardCommand::Set { card, limits } => {
            super::schedule::set_card_limits(config, store.as_ref(), card, limits).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reindex(config: &Config) -> Result<ExitCode> {
    let store = open_store(config).await?;
    let engine = open_engine(config)?;
    let photos = Photos::new(config.photos_dir());
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} faces").expect("the progress template is valid"));
    let report = enrolment::reindex(store.as_ref(), engine.as_ref(), &photos, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "{} face(s) described again as {}; {} already were",
        report.reindexed,
        engine.template_kind(),
        report.current
    );
    if report.not_reindexed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} face(s) must be enrolled again with a new picture:", report.not_reindexed.len());
    for face in &report.not_reindexed {
        let name = store.people().person(face.person).await?.map_or_else(|| face.person.to_string(), |p| p.name);
        println!(
            "  face {} of {name} ({}): {}; `facereko enroll --person {name:?} PICTURE`",
            face.face, face.kind, face.why
        );
    }
    Ok(ExitCode::FAILURE)
}

pub async fn enroll(config: &Config, args: &EnrollArgs) -> Result<ExitCode> {
    let store = open_store(config).await?;
    let engine = open_engine(config)?;
    let (person, created) = enrolment::person_named(store.as_ref(), &args.person).await?;
    if created {
        println!("added {} (id {})", person.name, person.id);
    }
    if let Some(card) = &args.card {
        match store.door().card_holder(card).await? {
            Some(holder) if holder.id == person.id => println!("card {card} already belongs to {}", person.name),
            Some(holder) => bail!(
                "card {card} already belongs to {}; remove it first with `facereko card remove {card}`",
                holder.name
            ),
            None => {
                store.people().add_card(card, person.id).await?;
                println!("card {card} now opens for {}", person.name);
            }
        }
    }

    let photos = Photos::new(config.photos_dir());
    let bar = ProgressBar::new(args.pictures.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("the progress template is valid"),
    );
    let mut skipped = Vec::new();
    for path in &args.pictures {
        bar.set_message(path.display().to_string());
        let outcome = match Frame::read(path) {
            Ok(picture) => enrolment::enrol_face(store.as_ref(), engine.as_ref(), &photos, &person, &picture).await,
            Err(e) => Err(EnrolError::Engine(facereko::engine::EngineError::BadImage {
                what: path.display().to_string(),
                detail: e.to_string(),
            })),
        };
        match outcome {
            Ok(_) => {}
            Err(EnrolError::Store(e @ (StoreError::Database(_) | StoreError::Unreachable(_)))) => return Err(e.into()),
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let enrolled = args.pictures.len() - skipped.len();
    println!("enrolled {enrolled} of {} picture(s) for {}", args.pictures.len(), person.name);
    for line in &skipped {
        println!("  skipped {line}");
    }
    Ok(if enrolled == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub async fn log(config: &Config, args: &LogArgs) -> Result<ExitCode> {
    let store = open_store(config).await?;
    let query = LogQuery { limit: args.limit, decision: args.decision, reason: args.reason, ..LogQuery::default() };
    let entries = store.log().access_log(&query).await?;
    if args.json {
        for entry in &entries {
            print_json(entry);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no access attempts logged yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<9} {:<20} {:<16} {:<15} {:>5} {:>7}",
        "TIME (UTC)", "DECISION", "REASON", "PERSON", "CARD", "SIM", "TOTAL"
    );
    let time_format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    for entry in &entries {
        let e = &entry.event;
        println!(
            "{:<20} {:<9} {:<20} {:<16} {:<15} {:>5} {:>5}ms",
            e.at.format(time_format).unwrap_or_default(),
            e.decision,
            e.reason,
            e.person_name.as_deref().unwrap_or("-"),
            e.card_uid.as_ref().map_or("-", |c| c.as_str()),
            e.similarity.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
            e.timings.total_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `notify test` reports for one recipient of an e-mail or text message.
#[derive(serde::Serialize)]
struct MessageTestReport {
    channel: Channel,
    to: String,
    delivered: bool,
    /// The server's answer, or why it could not be sent.
    answer: String,
}

pub async fn message_test(config: &Config, channel: Channel, to: Option<&str>, json: bool) -> Result<ExitCode> {
    let event = facereko::notify::test_event(&config.door.id);
    let door = &config.door.id;
    let story = delivery::Story {
        subject: format!("FaceReko: a test message from {door}"),
        sentence: format!("This is a test message from FaceReko at door {door}: its {channel} settings work."),
        link: config.web.public_url.clone(),
    };
    let configured = match channel {
        Channel::Email if !config.email.enabled() => bail!("e-mail is off: set email.server, email.from and email.to"),
        Channel::Sms if !config.sms.enabled() => {
            bail!("text messages are off: set sms.url and sms.to, or sms.service = \"sns\" and sms.to")
        }
        Channel::Email => &config.email.to,
        Channel::Sms => &config.sms.to,
    };
    let recipients: Vec<String> = match to {
        Some(to) => vec![to.to_owned()],
        None => configured.clone(),
    };
    if recipients.is_empty() {
        bail!("no one to send to: give --to or set {channel}.to");
    }
    let couriers = facereko::app::couriers(config)?;
    let courier = couriers.iter().find(|courier| courier.channel() == channel).expect("the channel is on");
    let mut reports = Vec::new();
    for to in recipients {
        let outcome = courier.send(&to, &story, None, &event.event_id).await;
        let (delivered, answer) = match outcome {
            Outcome::Delivered(answer) => (true, answer),
            Outcome::Retry(problem) | Outcome::Failed(problem) => (false, problem),
        };
        reports.push(MessageTestReport { channel, to, delivered, answer });
    }
    for report in &reports {
        if json {
            print_json(report);
        } else if report.delivered {
            println!("sent a test {} to {}; the server answered: {}", report.channel, report.to, report.answer);
        } else {
            eprintln!("could not send a test {} to {}: {}", report.channel, report.to, report.answer);
        }
    }
    Ok(if reports.iter().all(|r| r.delivered) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn notify_test(config: &Config, timeout: std::time::Duration, json: bool) -> Result<ExitCode> {
    if !config.mqtt.enabled() {
        bail!("notifications are off: set mqtt.url (e.g. mqtts://<endpoint>-ats.iot.<region>.amazonaws.com:8883)");
    }
    let report = facereko::notify::mqtt::send_test(&config.mqtt, &config.door.id, timeout).await?;
    if json {
        print_json(&report);
    } else {
        println!(
            "published test event {} to {} on {}; the broker acknowledged it in {} ms",
            report.event_id, report.topic, config.mqtt.url, report.acknowledged_in_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
