//! Which doors of the site a person or a group may use: the form on a person's page and on a
//! group's, every door (not kept) or the ticked ones, each with an optional schedule there.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::auth::{AdminForm, Flash, User};
use super::views::{capitalised, csrf_field};
use super::{WebError, WebState};
use crate::access::PersonId;
use crate::schedule::{AccessRules, DoorRight};
use crate::store::{SiteDoor, StoreError};

/// The form's choice between every door and the listed ones.
const EVERY: &str = "every";
const LISTED: &str = "listed";

/// Ids of the registered doors and of any door already listed that has not registered yet.
fn door_ids(doors: &[SiteDoor], rights: &[DoorRight]) -> Vec<String> {
    let mut ids: Vec<String> =
        doors.iter().map(|d| d.id.clone()).chain(rights.iter().map(|r| r.door.clone())).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn door_name(doors: &[SiteDoor], door: &str) -> String {
    doors.iter().find(|d| d.id == door).map_or(door.to_owned(), |d| d.name.clone())
}

/// `rights` in words: `every` when there are none (`None`).
pub fn rights_text(rights: Option<&[DoorRight]>, every: &str, doors: &[SiteDoor], rules: &AccessRules) -> Markup {
    let schedule_name = |id: i64| rules.schedule(id).map_or("?".to_owned(), |s| s.name.clone());
    html! {
        @match rights {
            None => (every),
            Some([]) => "No door at all.",
            Some(rights) => {
                "Only: "
                @for (n, right) in rights.iter().enumerate() {
                    @if n > 0 { ", " }
                    strong { (door_name(doors, &right.door)) }
                    @if let Some(id) = right.schedule { " (schedule " (schedule_name(id)) ")" }
                }
                "."
            }
        }
    }
}

/// The form that sets `rights` (posted to `action`); `every` labels the choice of no restriction.
pub fn rights_form(
    user: &User,
    action: &str,
    rights: Option<&[DoorRight]>,
    every: &str,
    doors: &[SiteDoor],
    rules: &AccessRules,
) -> Markup {
    let listed = rights.unwrap_or_default();
    let right = |door: &str| listed.iter().find(|r| r.door == door);
    html! {
        form.stack method="post" action=(action) {
            (csrf_field(user))
            label { input type="radio" name="rights" value=(EVERY) checked[rights.is_none()]; " " (every) }
            label { input type="radio" name="rights" value=(LISTED) checked[rights.is_some()]; " Only the doors ticked below (none ticked: no door)" }
            @for door in door_ids(doors, listed) {
                div.row {
                    label { input type="checkbox" name="door" value=(door) checked[right(&door).is_some()]; " " (door_name(doors, &door)) }
                    select name=(format!("schedule.{door}")) aria-label=(format!("Schedule at {}", door_name(doors, &door))) {
                        option value="" { "Any time" }
                        @for schedule in &rules.schedules {
                            option value=(schedule.id) selected[right(&door).and_then(|r| r.schedule) == Some(schedule.id)] { (schedule.name) }
                        }
                    }
                }
            }
            button.primary type="submit" { "Save doors" }
        }
    }
}

pub fn person_section(user: &User, person: PersonId, doors: &[SiteDoor], rules: &AccessRules) -> Markup {
    let own = rules.door_rights(person);
    let allowed = rules.allowed_doors(person);
    let kept_by: Vec<_> = rules.groups_of(person).filter(|group| group.doors.is_some()).collect();
    html! {
        section.card #doors {
            h2 { "Doors they may use" }
            p { (rights_text(allowed.as_deref(), "Every door of the site.", doors, rules)) }
            @if !kept_by.is_empty() {
                p.muted {
                    "Through their group" @if kept_by.len() > 1 { "s" } " "
                    @for (n, group) in kept_by.iter().enumerate() {
                        @if n > 0 { ", " }
                        a href=(super::groups::group_url(group.id)) { (group.name) }
                    }
                    " and their own doors, which are: "
                    (rights_text(own, "none (not kept themselves).", doors, rules))
                }
            }
            @if user.is_admin() {
                (rights_form(user, &format!("/people/{person}/doors"), own,
                    "Every door, now and added later (unless a group keeps them to some)", doors, rules))
            }
        }
    }
}

/// The rights the posted pairs ask for (`None` for every door), each door registered or already
/// listed in `current`: the form offers no other.
pub fn rights_from(
    fields: &[(String, String)],
    doors: &[SiteDoor],
    current: Option<&[DoorRight]>,
) -> Result<Option<Vec<DoorRight>>, String> {
    let value = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    match value("rights") {
        Some(EVERY) => return Ok(None),
        Some(LISTED) => {}
        other => return Err(format!("{other:?} is neither every door nor listed doors")),
    }
    let known = door_ids(doors, current.unwrap_or_default());
    let ticked = fields.iter().filter(|(key, _)| key == "door").map(|(_, door)| door);
    ticked
        .map(|door| {
            if !known.contains(door) {
                return Err(format!("no door {door:?} has registered with the site"));
            }
            let schedule = match value(&format!("schedule.{door}")).map(str::trim) {
                None | Some("") => None,
                Some(id) => Some(id.parse().map_err(|_| format!("{id:?} is not a schedule"))?),
            };
            Ok(DoorRight { door: door.clone(), schedule })
        })
        .collect::<Result<_, String>>()
        .map(Some)
}

/// A flash for the outcome of a change: what the store refused is the user's to fix.
pub fn outcome(result: Result<(), StoreError>, done: &str) -> Result<Flash, WebError> {
    match result {
        Ok(()) => Ok(Flash::ok(done)),
        Err(StoreError::Conflict(message) | StoreError::NotFound(message)) => Ok(Flash::error(capitalised(&message))),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_person_doors(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, fields): AdminForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let doors = state.store().doors().list_doors().await?;
    let rules = state.store().door().access_rules().await?;
    let result = match rights_from(&fields, &doors, rules.door_rights(PersonId(id))) {
        Ok(rights) => state.store().schedules().set_door_rights(PersonId(id), rights.as_deref()).await,
        Err(problem) => Err(StoreError::Conflict(problem)),
    };
    if result.is_ok() {
        tracing::info!(user = %user.username, person = id, "doors changed");
    }
    state.auth().set_flash(&user, outcome(result, "Doors saved.")?);
    Ok(Redirect::to(&format!("/people/{id}#doors")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn door(id: &str) -> SiteDoor {
        SiteDoor {
            id: id.into(),
            name: id.into(),
            web_address: None,
            version: "1".into(),
            last_seen: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_form_asks_for_every_door_or_the_ticked_ones_with_their_schedules() {
        let doors = [door("front"), door("garage"), door("a")];
        let read = |fields: &[(&str, &str)]| rights_from(&pairs(fields), &doors, None);
        assert_eq!(read(&[("rights", "every"), ("door", "front")]), Ok(None), "ticks are ignored");
        let listed = [("rights", "listed"), ("door", "front"), ("schedule.front", ""), ("schedule.garage", "3")];
        assert_eq!(read(&listed), Ok(Some(vec![DoorRight { door: "front".into(), schedule: None }])));
        let scheduled = [("rights", "listed"), ("door", "garage"), ("schedule.garage", "3")];
        assert_eq!(read(&scheduled), Ok(Some(vec![DoorRight { door: "garage".into(), schedule: Some(3) }])));
        assert_eq!(read(&[("rights", "listed")]), Ok(Some(Vec::new())), "none ticked: no door");
        assert!(read(&[("door", "front")]).is_err());
        assert!(read(&[("rights", "listed"), ("door", "a"), ("schedule.a", "x")]).is_err());
    }

    #[test]
    fn only_registered_or_already_listed_doors_are_taken() {
        let posted = pairs(&[("rights", "listed"), ("door", "shed")]);
        let refused = rights_from(&posted, &[door("front")], None).unwrap_err();
        assert_eq!(refused, "no door \"shed\" has registered with the site");
        let shed = [DoorRight { door: "shed".into(), schedule: None }];
        assert_eq!(rights_from(&posted, &[door("front")], Some(&shed)), Ok(Some(shed.to_vec())), "kept as it was");
    }
}
