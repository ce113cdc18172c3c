//! Commands that work on the database and config directly, daemon running or not.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use facereko::config::{self, Config, Sources};
use facereko::engine::{self, FaceEngine};
use facereko::enrolment::{self, EnrolError};
use facereko::frame::Frame;
use facereko::store::{self, LogQuery, Store, legacy};
use facereko::{hw, store::StoreError};
use indicatif::{ProgressBar, ProgressStyle};

use super::{CardCommand, EnrollArgs, LogArgs, PersonCommand};

pub(super) async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    store::open(&config.database, &config.data_dir).await.context("cannot open the database")
}

fn open_engine(config: &Config) -> Result<Arc<dyn FaceEngine>> {
    engine::build(&config.engine).context("cannot start the face engine")
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).expect("our types serialise"));
}

pub fn config_check(sources: &Sources) -> ExitCode {
    match &sources.file {
        Some(path) => println!("config file: {}", path.display()),
        None => println!("config file: none (defaults, FACEREKO_* environment and --set only)"),
    }
    match config::load(sources, config::Section::ALL).and_then(|loaded| {
        let problems = loaded.config.run_problems();
        if problems.is_empty() { Ok(loaded) } else { Err(config::ConfigError { problems }) }
    }) {
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
            match c.web.enabled() {
                true => println!("  web app: http://{}/", c.web.listen.trim()),
                false => println!("  web app: off (set web.listen, e.g. \"0.0.0.0:8080\")"),
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

async fn existing_person(store: &dyn Store, name: &str) -> Result<facereko::access::Person> {
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
            let faces = enrolment::remove_person(store.as_ref(), engine.as_ref(), &person).await?;
            println!("removed {} with their cards and {faces} face(s)", person.name);
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
            store.people().remove_card(card).await?;
            println!("removed card {card}");
        }
    }
    Ok(ExitCode::SUCCESS)
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

    let bar = ProgressBar::new(args.pictures.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("the progress template is valid"),
    );
    let mut skipped = Vec::new();
    for path in &args.pictures {
        bar.set_message(path.display().to_string());
        let outcome = match Frame::read(path) {
            Ok(picture) => enrolment::enrol_face(store.as_ref(), engine.as_ref(), &person, &picture).await,
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
