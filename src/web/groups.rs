//! Groups of people ("Staff", "Cleaners"): create, rename and remove them, add and remove
//! members, and set the doors of the site the members may use (the form a person's page has).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::{AdminForm, Button, Flash, Signed, User};
use super::doors::{outcome, rights_form, rights_from, rights_text};
use super::people::{NameForm, done};
use super::views::{Section, capitalised, csrf_field, danger_zone, page as frame, post_button};
use super::{WebError, WebState};
use crate::access::PersonId;
use crate::schedule::Group;
use crate::store::StoreError;

const PAGE: &str = "/groups";

pub fn group_url(id: i64) -> String {
    format!("{PAGE}/{id}")
}

/// What a group's doors say when they are not set.
const NOT_SET: &str = "Not set: the group keeps nobody to doors.";

async fn list_view(state: &WebState, user: &User, flash: Option<Flash>, name: &str) -> Result<Markup, WebError> {
    let rules = state.store().door().access_rules().await?;
    let doors = state.store().doors().list_doors().await?;
    let body = html! {
        nav.crumbs { a href="/people" { "People" } " / " }
        div.page-head { h1 { "Groups" } }
        p.hint { "A group keeps nobody to doors until its doors are set. Then each member may use the doors of "
            "their groups and their own (on their page), and no other." }
        @if user.is_admin() {
            section.card {
                h2 { "Add a group" }
                form.row method="post" action=(PAGE) {
                    (csrf_field(user))
                    label for="group-name" { "Name" }
                    input #group-name name="name" value=(name) required maxlength="100" autocomplete="off";
                    button.primary type="submit" { "Add group" }
                }
            }
        }
        section.card {
            @if rules.groups.is_empty() {
                p.muted { "No groups yet." }
            } @else {
                ul #groups.people-list {
                    @for group in &rules.groups {
                        li {
                            a href=(group_url(group.id)) { (group.name) }
                            span.muted {
                                (group.members.len()) " member" @if group.members.len() != 1 { "s" }
                                " · " (rights_text(group.doors.as_deref(), NOT_SET, &doors, &rules))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(state.machine(), user, flash, Section::People, "Groups", body))
}

pub async fn list(State(state): State<WebState>, Signed(user): Signed) -> Result<Markup, WebError> {
    let flash = state.auth().take_flash(&user);
    list_view(&state, &user, flash, "").await
}

pub async fn add(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<NameForm>,
) -> Result<Response, WebError> {
    match state.store().groups().add_group(&form.name).await {
        Ok(group) => {
            tracing::info!(user = %user.username, group = %group.name, "group added from the web app");
            let message = format!("Added {}. Add its members, then set its doors.", group.name);
            Ok(done(&state, &user, Flash::ok(message), &group_url(group.id)))
        }
        Err(StoreError::Conflict(message)) => {
            let page = list_view(&state, &user, Some(Flash::error(capitalised(&message))), &form.name).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn group(state: &WebState, id: i64) -> Result<Group, WebError> {
    let rules = state.store().door().access_rules().await?;
    rules.groups.into_iter().find(|g| g.id == id).ok_or_else(|| WebError::NotFound(format!("there is no group {id}")))
}

async fn group_view(state: &WebState, user: &User, id: i64, flash: Option<Flash>) -> Result<Markup, WebError> {
    let group = group(state, id).await?;
    let rules = state.store().door().access_rules().await?;
    let doors = state.store().doors().list_doors().await?;
    let people = state.store().people().list_people().await?;
    let url = group_url(group.id);
    let admin = user.is_admin();
    let (members, others): (Vec<_>, Vec<_>) = people.iter().partition(|p| group.members.contains(&p.id));
    let body = html! {
        nav.crumbs { a href="/people" { "People" } " / " a href=(PAGE) { "Groups" } " / " }
        div.page-head { h1 { (group.name) } }
        div.two-columns {
            section.card #members {
                h2 { "Members" }
                @if members.is_empty() { p.muted { "No members yet." } }
                ul.items {
                    @for person in &members {
                        li {
                            a href=(format!("/people/{}", person.id)) { (person.name) }
                            @if admin {
                                (post_button(user, &format!("{url}/members/{}/remove", person.id), "Take out",
                                    "quiet danger-text", None))
                            }
                        }
                    }
                }
                @if admin && !others.is_empty() {
                    form.row method="post" action=(format!("{url}/members")) {
                        (csrf_field(user))
                        label for="member" { "Person" }
                        select #member name="person" required {
                            @for person in &others { option value=(person.id) { (person.name) } }
                        }
                        button.primary type="submit" { "Add member" }
                    }
                }
            }
            section.card #doors {
                h2 { "Doors its members may use" }
                p { (rights_text(group.doors.as_deref(), NOT_SET, &doors, &rules)) }
                @if admin {
                    (rights_form(user, &format!("{url}/doors"), group.doors.as_deref(),
                        "Not set: keeps nobody to doors", &doors, &rules))
                }
            }
        }
        @if admin {
            section.card {
                h2 { "Rename" }
                form.row method="post" action=(format!("{url}/rename")) {
                    (csrf_field(user))
                    label for="group-name" { "Name" }
                    input #group-name name="name" value=(group.name) required maxlength="100" autocomplete="off";
                    button.primary type="submit" { "Rename" }
                }
            }
            (danger_zone(user, &format!("{url}/remove"), &format!("Remove {}", group.name),
                "Its members stay; they are no longer kept to doors through this group.",
                &format!("Remove the group {}?", group.name)))
        }
    };
    Ok(frame(state.machine(), user, flash, Section::People, &group.name, body))
}

pub async fn page(
    State(state): State<WebState>,
    Signed(user): Signed,
    Path(id): Path<i64>,
) -> Result<Markup, WebError> {
    let flash = state.auth().take_flash(&user);
    group_view(&state, &user, id, flash).await
}

/// Back to the group's page with what came of a change.
async fn answer(
    state: &WebState,
    user: &User,
    id: i64,
    result: Result<(), StoreError>,
    ok: &str,
) -> Result<Response, WebError> {
    if result.is_ok() {
        tracing::info!(user = %user.username, group = id, "{ok}");
    }
    Ok(done(state, user, outcome(result, ok)?, &group_url(id)))
}

pub async fn rename(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, form): AdminForm<NameForm>,
) -> Result<Response, WebError> {
    let renamed = state.store().groups().rename_group(id, &form.name).await;
    answer(&state, &user, id, renamed, "Group renamed.").await
}

pub async fn remove(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    match state.store().groups().remove_group(id).await {
        Ok(()) => {
            tracing::info!(user = %user.username, group = id, "group removed from the web app");
            Ok(done(&state, &user, Flash::ok("Group removed."), PAGE))
        }
        Err(StoreError::NotFound(message)) => Err(WebError::NotFound(message)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MemberForm {
    person: String,
}

pub async fn add_member(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, form): AdminForm<MemberForm>,
) -> Result<Response, WebError> {
    let added = match form.person.trim().parse() {
        Ok(person) => state.store().groups().add_member(id, PersonId(person)).await,
        Err(_) => Err(StoreError::Conflict(format!("{:?} is not a person", form.person))),
    };
    answer(&state, &user, id, added, "Member added.").await
}

pub async fn remove_member(
    State(state): State<WebState>,
    Path((id, person)): Path<(i64, i64)>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let removed = state.store().groups().remove_member(id, PersonId(person)).await;
    answer(&state, &user, id, removed, "Member taken out.").await
}

pub async fn set_doors(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, fields): AdminForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let current = group(&state, id).await?;
    let doors = state.store().doors().list_doors().await?;
    let result = match rights_from(&fields, &doors, current.doors.as_deref()) {
        Ok(rights) => state.store().groups().set_group_doors(id, rights.as_deref()).await,
        Err(problem) => Err(StoreError::Conflict(problem)),
    };
    answer(&state, &user, id, result, "Doors saved.").await
}
