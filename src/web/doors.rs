//! Which doors of the site a person may use, on their page: every door until an admin keeps them
//! to some, each with an optional schedule there.

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

/// Ids of the registered doors and of any door the person is kept to that has not registered yet.
fn door_ids(doors: &[SiteDoor], rights: &[DoorRight]) -> Vec<String> {
    let mut ids: Vec<String> =
        doors.iter().map(|d| d.id.clone()).chain(rights.iter().map(|r| r.door.clone())).collect();
    ids.sort();
    ids.dedup();
    ids
}

pub fn person_section(user: &User, person: PersonId, doors: &[SiteDoor], rules: &AccessRules) -> Markup {
    let rights = rules.door_rights(person);
    let listed = rights.unwrap_or_default();
    let right = |door: &str| listed.iter().find(|r| r.door == door);
    let name = |door: &str| doors.iter().find(|d| d.id == door).map_or(door.to_owned(), |d| d.name.clone());
    let schedule_name = |id: i64| rules.schedule(id).map_or("?".to_owned(), |s| s.name.clone());
    html! {
        section.card #doors {
            h2 { "Doors they may use" }
            p {
                @match rights {
                    None => "Every door of the site.",
                    Some([]) => "No door at all.",
                    Some(rights) => {
                        "Only: "
                        @for (n, right) in rights.iter().enumerate() {
                            @if n > 0 { ", " }
                            strong { (name(&right.door)) }
                            @if let Some(id) = right.schedule { " (schedule " (schedule_name(id)) ")" }
                        }
                        "."
                    }
                }
            }
            @if user.is_admin() {
                form.stack method="post" action=(format!("/people/{person}/doors")) {
                    (csrf_field(user))
                    label { input type="radio" name="rights" value=(EVERY) checked[rights.is_none()]; " Every door, now and added later" }
                    label { input type="radio" name="rights" value=(LISTED) checked[rights.is_some()]; " Only the doors ticked below (none ticked: no door)" }
                    @for door in door_ids(doors, listed) {
                        div.row {
                            label { input type="checkbox" name="door" value=(door) checked[right(&door).is_some()]; " " (name(&door)) }
                            select name=(format!("schedule.{door}")) aria-label=(format!("Schedule at {}", name(&door))) {
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
    }
}

/// The rights the posted pairs ask for: `None` for every door.
fn rights_from(fields: &[(String, String)]) -> Result<Option<Vec<DoorRight>>, String> {
    let value = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    match value("rights") {
        Some(EVERY) => return Ok(None),
        Some(LISTED) => {}
        other => return Err(format!("{other:?} is neither every door nor listed doors")),
    }
    let doors = fields.iter().filter(|(key, _)| key == "door").map(|(_, door)| door);
    doors
        .map(|door| {
            let schedule = match value(&format!("schedule.{door}")).map(str::trim) {
                None | Some("") => None,
                Some(id) => Some(id.parse().map_err(|_| format!("{id:?} is not a schedule"))?),
            };
            Ok(DoorRight { door: door.clone(), schedule })
        })
        .collect::<Result<_, String>>()
        .map(Some)
}

pub async fn set_person_doors(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, fields): AdminForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let result = match rights_from(&fields) {
        Ok(rights) => state.store().schedules().set_door_rights(PersonId(id), rights.as_deref()).await,
        Err(problem) => Err(StoreError::Conflict(problem)),
    };
    let flash = match result {
        Ok(()) => {
            tracing::info!(user = %user.username, person = id, "doors changed");
            Flash::ok("Doors saved.")
        }
        Err(StoreError::Conflict(message) | StoreError::NotFound(message)) => Flash::error(capitalised(&message)),
        Err(e) => return Err(e.into()),
    };
    state.auth().set_flash(&user, flash);
    Ok(Redirect::to(&format!("/people/{id}#doors")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_form_asks_for_every_door_or_the_ticked_ones_with_their_schedules() {
        assert_eq!(rights_from(&pairs(&[("rights", "every"), ("door", "front")])), Ok(None), "ticks are ignored");
        let listed =
            pairs(&[("rights", "listed"), ("door", "front"), ("schedule.front", ""), ("schedule.garage", "3")]);
        assert_eq!(rights_from(&listed), Ok(Some(vec![DoorRight { door: "front".into(), schedule: None }])));
        let scheduled = pairs(&[("rights", "listed"), ("door", "garage"), ("schedule.garage", "3")]);
        assert_eq!(rights_from(&scheduled), Ok(Some(vec![DoorRight { door: "garage".into(), schedule: Some(3) }])));
        assert_eq!(rights_from(&pairs(&[("rights", "listed")])), Ok(Some(Vec::new())), "none ticked: no door");
        assert!(rights_from(&pairs(&[("door", "front")])).is_err());
        assert!(rights_from(&pairs(&[("rights", "listed"), ("door", "a"), ("schedule.a", "x")])).is_err());
    }
}
