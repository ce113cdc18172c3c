//! People, their faces and cards: add, enrol photos (uploaded or from the door camera), bind cards
//! (typed or tapped), remove. Removing a person removes their biometric data from the engine too.
//! Their time limits and the doors they may use have sections of their own.

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::{Admin, AdminForm, Button, Flash, Signed, User};
use super::views::{Section, capitalised, csrf_field, danger_zone, page as frame, post_button, time_cell};
use super::{WebError, WebState};
use crate::access::{Person, PersonId};
use crate::card::CardUid;
use crate::engine::EngineError;
use crate::enrolment::{self, EnrolError};
use crate::frame::Frame;

/// More photos than this in one upload are refused: enrolment runs the engine on each.
const MAX_PHOTOS_PER_UPLOAD: usize = 10;
/// How long the door camera gets for one picture.
const CAMERA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn person_url(id: PersonId) -> String {
    format!("/people/{id}")
}

/// Redirects to `to` with `flash` shown there.
pub(super) fn done(state: &WebState, user: &User, flash: Flash, to: &str) -> Response {
    state.auth().set_flash(user, flash);
    Redirect::to(to).into_response()
}

async fn list_view(state: &WebState, user: &User, flash: Option<Flash>, name: &str) -> Result<Markup, WebError> {
    let people = state.store().people().list_people().await?;
    let body = html! {
        div.page-head { h1 { "People" } a.button.secondary href="/groups" { "Groups" } }
        @if user.is_admin() {
            section.card {
                h2 { "Add a person" }
                form.row method="post" action="/people" {
                    (csrf_field(user))
                    label for="person-name" { "Name" }
                    input #person-name name="name" value=(name) required maxlength="64" autocomplete="off";
                    button.primary type="submit" { "Add person" }
                }
            }
        }
        section.card {
            @if people.is_empty() {
                p.muted { "Nobody is enrolled yet." }
            } @else {
                ul.people-list {
                    @for person in &people {
                        li {
                            a href=(person_url(person.id)) { (person.name) }
                            span.muted {
                                (person.cards) " card" @if person.cards != 1 { "s" }
                                " · " (person.faces) " face" @if person.faces != 1 { "s" }
                            }
                            @if person.faces == 0 || person.cards == 0 { span.badge.warn { "incomplete" } }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(state.machine(), user, flash, Section::People, "People", body))
}

pub async fn list(State(state): State<WebState>, Signed(user): Signed) -> Result<Markup, WebError> {
    let flash = state.auth().take_flash(&user);
    list_view(&state, &user, flash, "").await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NameForm {
    pub(super) name: String,
}

pub async fn add(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<NameForm>,
) -> Result<Response, WebError> {
    let refused = |message: String| async {
        let page = list_view(&state, &user, Some(Flash::error(message)), &form.name).await?;
        Ok::<_, WebError>((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
    };
    match enrolment::add_person(state.store(), &form.name).await {
        Ok(person) => {
            tracing::info!(user = %user.username, person = %person.name, "person added from the web app");
            let message = format!("Added {}. Now add a photo of their face and bind their card.", person.name);
            Ok(done(&state, &user, Flash::ok(message), &person_url(person.id)))
        }
        Err(EnrolError::Name(e)) => refused(capitalised(&e.to_string())).await,
        Err(EnrolError::Store(crate::store::StoreError::Conflict(message))) => refused(capitalised(&message)).await,
        Err(e) => Err(enrol_failure(e)),
    }
}

fn enrol_failure(e: EnrolError) -> WebError {
    match e {
        EnrolError::Store(e) => e.into(),
        other => WebError::Internal(other.to_string()),
    }
}

async fn person(state: &WebState, id: i64) -> Result<Person, WebError> {
    state
        .store()
        .people()
        .person(PersonId(id))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("there is no person {id}")))
}

/// Whether two template kinds come from the same engine (`local/dlib` and `local/mobilefacenet`).
fn same_engine(a: &str, b: &str) -> bool {
    let engine = |kind: &str| kind.split('/').next().unwrap_or_default().to_owned();
    engine(a) == engine(b)
}

async fn person_view(state: &WebState, user: &User, id: i64, flash: Option<Flash>) -> Result<Markup, WebError> {
    let person = person(state, id).await?;
    let cards = state.store().people().person_cards(person.id).await?;
    let faces = state.store().people().person_faces(person.id).await?;
    let rules = state.store().door().access_rules().await?;
    let doors = state.store().doors().list_doors().await?;
    let engine = state.engine().template_kind();
    let url = person_url(person.id);
    let max_mib = state.config().max_upload_bytes as f64 / (1024.0 * 1024.0);
    let admin = user.is_admin();
    // A console has no camera or reader of its own: those buttons are a door's.
    let at_door = state.door().is_ok();
    let body = html! {
        nav.crumbs { a href="/people" { "People" } " / " }
        div.page-head { h1 { (person.name) } }
        div.two-columns {
            section.card {
                h2 { "Faces" }
                @if !faces.iter().any(|f| f.engine == engine) {
                    p.flash.error { "No face for the " (engine) " engine yet: the door cannot recognise " (person.name) "." }
                }
                ul #faces.items {
                    @for face in &faces {
                        li {
                            span { "Face " (face.id) " · " (face.engine) " · added " (time_cell(face.created)) }
                            @if face.engine != engine {
                                @if face.photo.is_some() && same_engine(&face.engine, engine) {
                                    span.badge.warn title="Described by another embedder: `facereko faces reindex` describes it again from its photo" { "needs reindexing" }
                                } @else if same_engine(&face.engine, engine) {
                                    span.badge.warn title="Enrolled before photos were kept: upload a new photo" { "enrol again" }
                                } @else {
                                    span.badge.warn title="Enrolled with another engine" { "not in use" }
                                }
                            }
                            @if admin {
                                (post_button(user, &format!("{url}/faces/{}/remove", face.id), "Remove", "quiet danger-text",
                                    Some("Remove this face?")))
                            }
                        }
                    }
                }
                @if admin {
                    form.stack method="post" action=(format!("{url}/faces")) enctype="multipart/form-data" {
                        (csrf_field(user))
                        label for="photo" { "Photo" }
                        input #photo type="file" name="photo" accept="image/jpeg,image/png" multiple required;
                        p.hint { "JPEG or PNG with exactly one face, looking at the camera; up to "
                            (format!("{max_mib:.0}")) " MB each, " (MAX_PHOTOS_PER_UPLOAD) " at a time." }
                        button.primary type="submit" { "Upload photo" }
                    }
                    @if at_door {
                        form.inline method="post" action=(format!("{url}/faces/camera")) {
                            (csrf_field(user))
                            button.secondary type="submit" { "Take a photo with the door camera" }
                        }
                    }
                }
            }
            section.card {
                h2 { "Cards" }
                @if cards.is_empty() { p.muted { "No card yet." } }
                ul #cards.items {
                    @for card in &cards {
                        li {
                            code { (card) }
                            @if admin {
                                (post_button(user, &format!("{url}/cards/{card}/remove"), "Remove", "quiet danger-text",
                                    Some("Remove this card?")))
                            }
                        }
                    }
                }
                @if admin {
                    form.row method="post" action=(format!("{url}/cards")) {
                        (csrf_field(user))
                        label for="card-uid" { "Card UID" }
                        input #card-uid name="card" placeholder="04A1B2C3" required autocomplete="off";
                        button.primary type="submit" { "Bind card" }
                    }
                    @if at_door {
                        form.inline method="post" action=(format!("{url}/cards/tap")) data-busy="Waiting for a card on the reader…" {
                            (csrf_field(user))
                            button.secondary type="submit" { "Tap the card now" }
                        }
                        p.hint { "Waits up to " (humantime::format_duration(state.config().tap_timeout))
                            " for the next card on the door's reader (that tap is also logged as an attempt)." }
                    }
                }
            }
        }
        (super::schedules::person_section(state, user, person.id, &cards, &rules))
        (super::doors::person_section(user, person.id, &doors, &rules))
        @if admin {
            (danger_zone(user, &format!("{url}/remove"), &format!("Remove {}", person.name),
                "Removes their cards and every enrolled face (from the face engine too). The history keeps their name.",
                &format!("Remove {} with their cards and faces?", person.name)))
        }
    };
    Ok(frame(state.machine(), user, flash, Section::People, &person.name, body))
}

pub async fn page(
    State(state): State<WebState>,
    Signed(user): Signed,
    Path(id): Path<i64>,
) -> Result<Markup, WebError> {
    let flash = state.auth().take_flash(&user);
    person_view(&state, &user, id, flash).await
}

/// The person page again with an error and 422: nothing was changed.
async fn refuse(state: &WebState, user: &User, id: i64, message: String) -> Result<Response, WebError> {
    let page = person_view(state, user, id, Some(Flash::error(message))).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// Why a picture could not be enrolled, in words for the user.
fn enrol_problem(e: EnrolError) -> Result<String, WebError> {
    match e {
        EnrolError::NoFace => Ok("no face found; use a photo where the face is clear and large enough".into()),
        EnrolError::SeveralFaces(n) => Ok(format!("{n} faces found; use a photo with exactly one face")),
        EnrolError::Engine(EngineError::BadImage { detail, .. }) => Ok(format!("not a picture we can read ({detail})")),
        EnrolError::Engine(EngineError::PoorFace(problem)) => Ok(problem.to_string()),
        EnrolError::Store(e) => Err(e.into()),
        other => Err(WebError::Internal(other.to_string())),
    }
}

async fn enrol(state: &WebState, person: &Person, frame: &Frame) -> Result<Result<i64, String>, WebError> {
    match enrolment::enrol_face(state.store(), state.engine().as_ref(), &state.0.photos, person, frame).await {
        Ok(id) => Ok(Ok(id)),
        Err(e) => enrol_problem(e).map(Err),
    }
}

/// Reads the upload's fields; the CSRF token is checked before any photo is looked at.
async fn read_upload(user: &User, mut multipart: Multipart, limit: usize) -> Result<Vec<(String, Vec<u8>)>, WebError> {
    let too_large = || WebError::TooLarge(format!("the upload is larger than {} bytes (web.max_upload_bytes)", limit));
    let failed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE { too_large() } else { WebError::BadRequest(e.body_text()) }
    };
    let mut csrf_checked = false;
    let mut photos = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        match field.name() {
            Some("csrf") => {
                user.check_csrf(&field.text().await.map_err(failed)?)?;
                csrf_checked = true;
            }
            Some("photo") if csrf_checked => {
                let name = field.file_name().filter(|n| !n.is_empty()).unwrap_or("the photo").to_owned();
                let bytes = field.bytes().await.map_err(failed)?;
                if !bytes.is_empty() {
                    photos.push((name, bytes.to_vec()));
                }
                if photos.len() > MAX_PHOTOS_PER_UPLOAD {
                    return Err(WebError::BadRequest(format!(
                        "upload at most {MAX_PHOTOS_PER_UPLOAD} photos at a time"
                    )));
                }
            }
            // A photo before the token: the form did not come from our page.
            Some("photo") => return Err(WebError::Csrf),
            _ => {}
        }
    }
    if !csrf_checked {
        return Err(WebError::Csrf);
    }
    Ok(photos)
}

pub async fn upload_faces(
    State(state): State<WebState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let photos = read_upload(&user, multipart, state.config().max_upload_bytes).await?;
    let person = person(&state, id).await?;
    if photos.is_empty() {
        return refuse(&state, &user, id, "Choose a photo first.".into()).await;
    }
    let (mut enrolled, mut problems) = (Vec::new(), Vec::new());
    for (name, bytes) in photos {
        let outcome = match Frame::from_bytes(bytes, &name) {
            Ok(frame) => enrol(&state, &person, &frame).await?,
            Err(_) => Err("not a JPEG or PNG picture".into()),
        };
        match outcome {
            Ok(_) => enrolled.push(name),
            Err(problem) => problems.push(format!("{name}: {problem}")),
        }
    }
    tracing::info!(user = %user.username, person = %person.name, enrolled = enrolled.len(), refused = problems.len(), "photos uploaded");
    let not_enrolled =
        if problems.is_empty() { String::new() } else { format!(" Not enrolled: {}.", problems.join("; ")) };
    if enrolled.is_empty() {
        return refuse(&state, &user, id, format!("No face enrolled.{not_enrolled}")).await;
    }
    let message = format!("Face enrolled from {}.{not_enrolled}", enrolled.join(", "));
    let flash = if problems.is_empty() { Flash::ok(message) } else { Flash::error(message) };
    Ok(done(&state, &user, flash, &person_url(person.id)))
}

pub async fn camera_face(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let person = person(&state, id).await?;
    let frame = match tokio::time::timeout(CAMERA_TIMEOUT, state.door()?.camera.frame()).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(e)) => return refuse(&state, &user, id, capitalised(&format!("the door camera failed: {e}"))).await,
        Err(_) => {
            return refuse(&state, &user, id, format!("The door camera gave no picture within {CAMERA_TIMEOUT:?}."))
                .await;
        }
    };
    match enrol(&state, &person, &frame).await? {
        Ok(_) => Ok(done(&state, &user, Flash::ok("Face enrolled from the door camera."), &person_url(person.id))),
        Err(problem) => refuse(&state, &user, id, capitalised(&format!("the camera's picture: {problem}"))).await,
    }
}

pub async fn remove_face(
    State(state): State<WebState>,
    Path((id, face)): Path<(i64, i64)>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let person = person(&state, id).await?;
    if !state.store().people().person_faces(person.id).await?.iter().any(|f| f.id == face) {
        return Err(WebError::NotFound(format!("{} has no face {face}", person.name)));
    }
    let flash = match enrolment::remove_face(state.store(), state.engine().as_ref(), &state.0.photos, face).await {
        Ok(()) => Flash::ok("Face removed."),
        // Our database forgot it first, so the door no longer matches it; the engine's copy is
        // what is left over, noted for deletion later.
        Err(e @ EnrolError::KeptByEngine { .. }) => Flash::error(format!("Face removed, but {e}.")),
        Err(e) => return Err(enrol_failure(e)),
    };
    tracing::info!(user = %user.username, person = %person.name, face, "face removed");
    Ok(done(&state, &user, flash, &person_url(person.id)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CardForm {
    card: String,
}

async fn bind(state: &WebState, user: &User, person: &Person, card: &CardUid) -> Result<Response, WebError> {
    match state.store().people().add_card(card, person.id).await {
        Ok(()) => {
            tracing::info!(user = %user.username, person = %person.name, %card, "card bound");
            Ok(done(
                state,
                user,
                Flash::ok(format!("Card {card} now opens for {}.", person.name)),
                &person_url(person.id),
            ))
        }
        Err(crate::store::StoreError::Conflict(message)) => {
            refuse(state, user, person.id.0, capitalised(&message)).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn bind_card(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, form): AdminForm<CardForm>,
) -> Result<Response, WebError> {
    let person = person(&state, id).await?;
    match form.card.parse::<CardUid>() {
        Ok(card) => bind(&state, &user, &person, &card).await,
        Err(e) => refuse(&state, &user, id, capitalised(&e.to_string())).await,
    }
}

pub async fn bind_tapped_card(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let person = person(&state, id).await?;
    let mut reads = state.door()?.card_reads.subscribe();
    let timeout = state.config().tap_timeout;
    let tapped = tokio::time::timeout(timeout, async {
        loop {
            match reads.recv().await {
                Ok(card) => return Some(card),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    match tapped {
        Ok(Some(card)) => bind(&state, &user, &person, &card).await,
        Ok(None) => Err(WebError::Unavailable("the card reader stopped".into())),
        Err(_) => {
            let waited = humantime::format_duration(timeout);
            refuse(&state, &user, id, format!("No card was tapped within {waited}; nothing was bound.")).await
        }
    }
}

pub async fn remove_card(
    State(state): State<WebState>,
    Path((id, card)): Path<(i64, String)>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let person = person(&state, id).await?;
    let card: CardUid = card.parse().map_err(|e: crate::card::CardUidError| WebError::BadRequest(e.to_string()))?;
    if !state.store().people().person_cards(person.id).await?.contains(&card) {
        return Err(WebError::NotFound(format!("{} has no card {card}", person.name)));
    }
    state.store().removals().remove_card(&card).await?;
    tracing::info!(user = %user.username, person = %person.name, %card, "card removed");
    Ok(done(&state, &user, Flash::ok(format!("Card {card} removed.")), &person_url(person.id)))
}

pub async fn remove(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let person = person(&state, id).await?;
    let flash = match enrolment::remove_person(state.store(), state.engine().as_ref(), &state.0.photos, &person).await {
        Ok(faces) => {
            tracing::info!(user = %user.username, person = %person.name, faces, "person removed");
            let plural = if faces == 1 { "" } else { "s" };
            Flash::ok(format!("Removed {} with their cards and {faces} face{plural}.", person.name))
        }
        Err(e @ EnrolError::KeptByEngine { .. }) => {
            tracing::info!(user = %user.username, person = %person.name, "person removed");
            Flash::error(format!("Removed {} with their cards, but {e}.", person.name))
        }
        Err(e) => return Err(enrol_failure(e)),
    };
    Ok(done(&state, &user, flash, "/people"))
}
