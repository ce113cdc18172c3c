//! `facereko schedule …`, and the time limits `person set` and `card set` give.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::access::Person;
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::schedule::{self, AccessRules, DoorRight, Holiday, Limits};
use facereko::store::Store;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::admin::{existing_person, open_store, print_json};
use super::{LimitsArgs, ScheduleCommand};

const NONE: &str = "none";

pub async fn schedule(config: &Config, command: &ScheduleCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    let schedules = store.schedules();
    match command {
        ScheduleCommand::List { json } => {
            let rules = store.door().access_rules().await?;
            if *json {
                print_json(&serde_json::json!({ "schedules": rules.schedules, "holidays": rules.holidays }));
            } else {
                print_rules(&rules);
            }
        }
        ScheduleCommand::Set { name, windows, open_on_holidays } => {
            let saved = schedules.save_schedule(name, windows, *open_on_holidays).await?;
            let windows: Vec<String> = saved.windows.iter().map(ToString::to_string).collect();
            println!("schedule {} (id {}): {}", saved.name, saved.id, windows.join("; "));
        }
        ScheduleCommand::Remove { name } => {
            schedules.remove_schedule(name).await?;
            println!("removed schedule {name}");
        }
        ScheduleCommand::AddHoliday { name, from, to, yearly } => {
            let holiday =
                Holiday { id: 0, name: name.clone(), first: *from, last: to.unwrap_or(*from), yearly: *yearly };
            let added = schedules.add_holiday(&holiday).await?;
            println!("added holiday {} (id {}): {}", added.name, added.id, days(&added));
        }
        ScheduleCommand::RemoveHoliday { id } => {
            schedules.remove_holiday(*id).await?;
            println!("removed holiday {id}");
        }
        ScheduleCommand::Show { person, json } => {
            let person = existing_person(store.as_ref(), person).await?;
            let zone = config.schedule.zone()?;
            let standing = standing(store.as_ref(), &person, &zone).await?;
            if *json {
                print_json(&standing);
            } else {
                print_standing(&standing);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn days(holiday: &Holiday) -> String {
    let every_year = if holiday.yearly { ", every year" } else { "" };
    if holiday.first == holiday.last {
        format!("{}{every_year}", holiday.first)
    } else {
        format!("{} to {}{every_year}", holiday.first, holiday.last)
    }
}

fn print_rules(rules: &AccessRules) {
    if rules.schedules.is_empty() {
        println!("no schedules yet: `facereko schedule set NAME --window \"mon-fri 09:00-17:00\"` adds one");
    }
    for schedule in &rules.schedules {
        let holidays = if schedule.open_on_holidays { "open on holidays" } else { "closed on holidays" };
        let windows: Vec<String> = schedule.windows.iter().map(ToString::to_string).collect();
        println!("{} ({holidays}): {}", schedule.name, windows.join("; "));
    }
    for holiday in &rules.holidays {
        println!("holiday {:>3}  {:<24} {}", holiday.id, holiday.name, days(holiday));
    }
}

/// What a person's limits and their cards' allow, for `schedule show`.
#[derive(Debug, Serialize)]
struct Standing {
    person: String,
    time_zone: String,
    limits: ShownLimits,
    cards: Vec<CardStanding>,
}

#[derive(Debug, Serialize)]
struct CardStanding {
    card: CardUid,
    limits: ShownLimits,
    /// Local time of the next moment the card opens; `None` if it never does again.
    next_open: Option<String>,
}

/// Limits as people read them: local times and the schedule's name.
#[derive(Debug, Serialize)]
struct ShownLimits {
    valid_from: Option<String>,
    valid_until: Option<String>,
    schedule: Option<String>,
}

fn shown(limits: &Limits, rules: &AccessRules, zone: &TimeZone) -> ShownLimits {
    let name = |id| rules.schedule(id).map_or_else(|| format!("#{id}"), |s| s.name.clone());
    ShownLimits {
        valid_from: limits.valid_from.map(|at| schedule::local_time(at, zone)),
        valid_until: limits.valid_until.map(|at| schedule::local_time(at, zone)),
        schedule: limits.schedule.map(name),
    }
}

async fn standing(store: &dyn Store, person: &Person, zone: &TimeZone) -> Result<Standing> {
    let rules = store.door().access_rules().await?;
    let now = Timestamp::now();
    let mut cards = Vec::new();
    for card in store.people().person_cards(person.id).await? {
        let next_open = rules.next_open(person.id, Some(&card), now, zone).map(|at| schedule::local_time(at, zone));
        cards.push(CardStanding { limits: shown(&rules.card_limits(&card), &rules, zone), card, next_open });
    }
    Ok(Standing {
        person: person.name.clone(),
        time_zone: zone.iana_name().unwrap_or("UTC").to_owned(),
        limits: shown(&rules.person_limits(person.id), &rules, zone),
        cards,
    })
}

fn describe(limits: &ShownLimits) -> String {
    let parts: Vec<String> = [
        limits.valid_from.as_ref().map(|at| format!("from {at}")),
        limits.valid_until.as_ref().map(|at| format!("until {at}")),
        limits.schedule.as_ref().map(|name| format!("schedule {name}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() { "no limits".into() } else { parts.join(", ") }
}

fn print_standing(standing: &Standing) {
    println!("{} ({}): {}", standing.person, standing.time_zone, describe(&standing.limits));
    if standing.cards.is_empty() {
        println!("  no cards");
    }
    for card in &standing.cards {
        let next = card.next_open.as_deref().unwrap_or("never (expired, or no window within a year)");
        println!("  card {}: {}; next in: {next}", card.card, describe(&card.limits));
    }
}

/// `limits` with what `args` changes.
async fn changed(store: &dyn Store, zone: &TimeZone, mut limits: Limits, args: &LimitsArgs) -> Result<Limits> {
    let moment = |text: &str| -> Result<Option<Timestamp>> {
        if text.eq_ignore_ascii_case(NONE) {
            return Ok(None);
        }
        schedule::parse_moment(text, zone).map(Some).map_err(anyhow::Error::msg)
    };
    if let Some(text) = &args.valid_from {
        limits.valid_from = moment(text).context("--valid-from")?;
    }
    if let Some(text) = &args.valid_until {
        limits.valid_until = moment(text).context("--valid-until")?;
    }
    if let Some(name) = &args.schedule {
        limits.schedule = if name.eq_ignore_ascii_case(NONE) {
            None
        } else {
            Some(schedule_named(&store.door().access_rules().await?, name)?)
        };
    }
    Ok(limits)
}

fn schedule_named(rules: &AccessRules, name: &str) -> Result<i64> {
    match rules.schedules.iter().find(|s| s.name.eq_ignore_ascii_case(name.trim())) {
        Some(schedule) => Ok(schedule.id),
        None => bail!("no schedule named {name:?}; see `facereko schedule list`"),
    }
}

/// The doors a person or group may use, as people read them.
pub(super) fn describe_doors(rights: Option<&[DoorRight]>, rules: &AccessRules) -> String {
    let Some(rights) = rights else { return "every door".into() };
    if rights.is_empty() {
        return "no door".into();
    }
    let doors: Vec<String> = rights
        .iter()
        .map(|right| match right.schedule.map(|id| rules.schedule(id).map_or("?", |s| s.name.as_str())) {
            Some(schedule) => format!("{} (schedule {schedule})", right.door),
            None => right.door.clone(),
        })
        .collect();
    format!("only {}", doors.join(", "))
}

/// `person doors`: with `change`, keeps the person to `DOOR[@SCHEDULE]` doors (`None`: every door
/// again); then shows where they may go.
pub async fn person_doors(store: &dyn Store, person: &Person, change: Option<Option<&[String]>>) -> Result<()> {
    if let Some(doors) = change {
        let rules = store.door().access_rules().await?;
        let rights = doors.map(|doors| door_rights(&rules, doors)).transpose()?;
        store.schedules().set_door_rights(person.id, rights.as_deref()).await?;
        let registered = store.doors().list_doors().await?;
        for right in rights.iter().flatten().filter(|right| !registered.iter().any(|door| door.id == right.door)) {
            eprintln!("note: no door {:?} has registered yet (a door registers when its daemon starts)", right.door);
        }
    }
    let rules = store.door().access_rules().await?;
    let groups: Vec<&str> = rules.groups_of(person.id).filter(|g| g.doors.is_some()).map(|g| g.name.as_str()).collect();
    if groups.is_empty() {
        println!("{}: {}", person.name, describe_doors(rules.door_rights(person.id), &rules));
    } else {
        let own = match rules.door_rights(person.id) {
            Some(rights) => describe_doors(Some(rights), &rules),
            None => "not kept themselves".into(),
        };
        let allowed = rules.allowed_doors(person.id);
        let together = describe_doors(allowed.as_deref(), &rules);
        println!("{}: {together} (their own: {own}; through the group(s) {})", person.name, groups.join(", "));
    }
    Ok(())
}

/// Door rights written `DOOR` or `DOOR@SCHEDULE`, the schedule by name.
pub(super) fn door_rights(rules: &AccessRules, texts: &[String]) -> Result<Vec<DoorRight>> {
    texts
        .iter()
        .map(|text| {
            let (door, schedule) = text.split_once('@').map_or((text.as_str(), None), |(d, s)| (d, Some(s)));
            let schedule = schedule.map(|name| schedule_named(rules, name)).transpose()?;
            Ok(DoorRight { door: door.trim().to_owned(), schedule })
        })
        .collect()
}

pub async fn set_person_limits(config: &Config, store: &dyn Store, person: &Person, args: &LimitsArgs) -> Result<()> {
    let zone = config.schedule.zone()?;
    let current = store.door().access_rules().await?.person_limits(person.id);
    let limits = changed(store, &zone, current, args).await?;
    store.schedules().set_person_limits(person.id, &limits).await?;
    println!("{}: {}", person.name, describe(&shown(&limits, &store.door().access_rules().await?, &zone)));
    Ok(())
}

pub async fn set_card_limits(config: &Config, store: &dyn Store, card: &CardUid, args: &LimitsArgs) -> Result<()> {
    let zone = config.schedule.zone()?;
    let current = store.door().access_rules().await?.card_limits(card);
    let limits = changed(store, &zone, current, args).await?;
    store.schedules().set_card_limits(card, &limits).await?;
    println!("card {card}: {}", describe(&shown(&limits, &store.door().access_rules().await?, &zone)));
    Ok(())
}
