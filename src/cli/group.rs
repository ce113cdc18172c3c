//! `facereko group …`: groups of people and the doors of the site a group may use.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::schedule::{AccessRules, DoorRight, Group};
use facereko::store::Store;
use serde::Serialize;

use super::GroupCommand;
use super::admin::{existing_person, open_store, print_json};
use super::schedule::{describe_doors, door_rights};

/// A group as `group list --json` prints it: members by name.
#[derive(Serialize)]
struct ListedGroup<'a> {
    id: i64,
    name: &'a str,
    members: Vec<String>,
    /// `null`: not set, the group keeps nobody to doors.
    doors: Option<&'a [DoorRight]>,
}

async fn existing_group(store: &dyn Store, name: &str) -> Result<Group> {
    let rules = store.door().access_rules().await?;
    rules.group_named(name).cloned().with_context(|| format!("no group named {name:?}; see `facereko group list`"))
}

/// The members' names, for people to read.
async fn member_names(store: &dyn Store, group: &Group) -> Result<Vec<String>> {
    let people = store.people().list_people().await?;
    Ok(group
        .members
        .iter()
        .map(|id| people.iter().find(|p| p.id == *id).map_or_else(|| format!("person {id}"), |p| p.name.clone()))
        .collect())
}

fn describe_group_doors(group: &Group, rules: &AccessRules) -> String {
    match group.doors.as_deref() {
        None => "not set (keeps nobody to doors)".into(),
        rights => describe_doors(rights, rules),
    }
}

/// Refuses doors no daemon has registered, unless `unregistered` allows naming them ahead.
async fn check_registered(store: &dyn Store, rights: &[DoorRight], unregistered: bool) -> Result<()> {
    let registered = store.doors().list_doors().await?;
    let Some(unknown) = rights.iter().find(|right| !registered.iter().any(|door| door.id == right.door)) else {
        return Ok(());
    };
    let known: Vec<&str> = registered.iter().map(|door| door.id.as_str()).collect();
    if unregistered {
        eprintln!("note: no door {:?} has registered yet (a door registers when its daemon starts)", unknown.door);
        return Ok(());
    }
    let known = if known.is_empty() { "none yet".to_owned() } else { known.join(", ") };
    bail!(
        "no door {:?} has registered with the site (registered: {known}); check the door.id, or pass \
         --unregistered to name a door before its daemon first starts",
        unknown.door
    )
}

pub async fn group(config: &facereko::config::Config, command: &GroupCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    let store = store.as_ref();
    match command {
        GroupCommand::Add { name } => {
            let group = store.groups().add_group(name).await?;
            println!(
                "added group {} (id {}); its doors are not set, so it keeps nobody to doors yet",
                group.name, group.id
            );
        }
        GroupCommand::Rename { name, new_name } => {
            let group = existing_group(store, name).await?;
            store.groups().rename_group(group.id, new_name).await?;
            println!("renamed group {} to {}", group.name, new_name.trim());
        }
        GroupCommand::Remove { name } => {
            let group = existing_group(store, name).await?;
            store.groups().remove_group(group.id).await?;
            println!("removed group {} (its {} member(s) stay)", group.name, group.members.len());
        }
        GroupCommand::List { json } => {
            let rules = store.door().access_rules().await?;
            let mut listed = Vec::new();
            for group in &rules.groups {
                let members = member_names(store, group).await?;
                listed.push(ListedGroup { id: group.id, name: &group.name, members, doors: group.doors.as_deref() });
            }
            if *json {
                print_json(&listed);
            } else if listed.is_empty() {
                println!("no groups yet: `facereko group add NAME` adds one");
            } else {
                for (group, shown) in rules.groups.iter().zip(&listed) {
                    let members = if shown.members.is_empty() { "no members".into() } else { shown.members.join(", ") };
                    println!("{}: {}; doors: {}", group.name, members, describe_group_doors(group, &rules));
                }
            }
        }
        GroupCommand::Members { name, add, remove } => {
            let group = existing_group(store, name).await?;
            for person in add {
                let person = existing_person(store, person).await?;
                store.groups().add_member(group.id, person.id).await?;
            }
            for person in remove {
                let person = existing_person(store, person).await?;
                if !existing_group(store, &group.name).await?.members.contains(&person.id) {
                    bail!("{} is not in the group {}", person.name, group.name);
                }
                store.groups().remove_member(group.id, person.id).await?;
            }
            let group = existing_group(store, &group.name).await?;
            let members = member_names(store, &group).await?;
            println!("{}: {}", group.name, if members.is_empty() { "no members".into() } else { members.join(", ") });
        }
        GroupCommand::Doors { name, rights, unregistered } => {
            let group = existing_group(store, name).await?;
            if let Some(doors) = rights.change() {
                let rules = store.door().access_rules().await?;
                let rights = doors.map(|doors| door_rights(&rules, doors)).transpose()?;
                check_registered(store, rights.as_deref().unwrap_or_default(), *unregistered).await?;
                store.groups().set_group_doors(group.id, rights.as_deref()).await?;
            }
            let rules = store.door().access_rules().await?;
            let group = existing_group(store, &group.name).await?;
            println!("{}: {}", group.name, describe_group_doors(&group, &rules));
        }
    }
    Ok(ExitCode::SUCCESS)
}
