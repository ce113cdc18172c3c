//! Face sign-in: an account linked to an enrolled person (by an admin, on the settings page) and
//! turned on (by the account itself) signs in with a short burst from the browser's camera. The
//! server describes each frame with the door's on-device engine, judges the burst with the door's
//! liveness checks in their configured mode, and compares it with the person's enrolled faces at
//! `web.face_sign_in_threshold`, stricter than the door's. It gives at most the viewer role unless
//! an admin allowed more, is throttled like password sign-in, and every attempt is logged with
//! its similarity and a small picture of the face.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::account::check_form_token;
use super::auth::{AdminForm, ClientAddress, Flash, SignInKey, SignedForm, User, minutes};
use super::sign_ins::{self, Caller, FaceSeen};
use super::views::csrf_field;
use super::{WebError, WebState};
use crate::access::PersonId;
use crate::accounts::Role;
use crate::capture::Taken;
use crate::door::Capture;
use crate::engine::local::LocalEngine;
use crate::engine::{DetectedFace, FaceTemplate, clears_threshold};
use crate::frame::Frame;
use crate::liveness::{Burst, BurstFrame, Challenge, TURN_PACE};
use crate::store::{FaceLink, PersonSummary, SignInOutcome};

/// The most frames a burst may carry; the page sends [`BURST_FRAMES`].
pub const MAX_FRAMES: usize = 10;
/// Frames the page captures.
pub const BURST_FRAMES: usize = 5;
/// The largest burst: ten webcam JPEGs of up to about 400 KB each, and the form's fields.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Time between the page's frames of a still face; a face asked to turn takes the door's pace.
const STILL_PACE: Duration = Duration::from_millis(150);
/// The side of the square picture of the face kept in the sign-in log.
const THUMBNAIL_SIDE: u32 = 96;
/// Room kept around the face's box in that picture, as a share of the box.
const THUMBNAIL_MARGIN: f32 = 0.25;

/// What the page reads back: where to go once signed in, or why not.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refused(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "error": message }))
}

/// The burst as posted: the sign-in form's token and user name, and the camera's frames.
struct Posted {
    csrf: String,
    username: String,
    frames: Vec<Frame>,
}

async fn read_burst(mut multipart: Multipart) -> Result<Posted, String> {
    let mut posted = Posted { csrf: String::new(), username: String::new(), frames: Vec::new() };
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        match field.name() {
            Some("csrf") => posted.csrf = field.text().await.map_err(|e| e.body_text())?,
            Some("username") => posted.username = field.text().await.map_err(|e| e.body_text())?.trim().to_owned(),
            Some("frame") if posted.frames.len() < MAX_FRAMES => {
                let bytes = field.bytes().await.map_err(|e| e.body_text())?;
                posted.frames.push(Frame::from_bytes(bytes.to_vec(), "a camera frame").map_err(|e| e.to_string())?);
            }
            Some("frame") => return Err(format!("at most {MAX_FRAMES} frames")),
            _ => {}
        }
    }
    if posted.frames.is_empty() {
        return Err("no camera frames".into());
    }
    Ok(posted)
}

/// `POST /login/face`: multipart with `csrf`, `username` and up to [`MAX_FRAMES`] `frame` JPEGs.
pub async fn sign_in(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let posted = match read_burst(multipart).await {
        Ok(posted) => posted,
        Err(detail) => {
            return refused(StatusCode::BAD_REQUEST, &format!("The camera's pictures did not arrive: {detail}"));
        }
    };
    if let Err(e) = check_form_token(&headers, &posted.csrf) {
        return refused(StatusCode::FORBIDDEN, &e.to_string());
    }
    match attempt(&state, address, &headers, posted).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// What the comparison found in the burst.
struct Judged {
    outcome: SignInOutcome,
    seen: FaceSeen,
}

async fn attempt(
    state: &WebState,
    address: Option<IpAddr>,
    headers: &HeaderMap,
    posted: Posted,
) -> Result<Response, WebError> {
    let username = posted.username;
    let caller = || Caller { address, headers };
    let remember = |outcome, seen| sign_ins::remember_face(state, caller(), &username, outcome, seen);
    let keys = vec![SignInKey::account(&username), SignInKey::address(address)];
    let throttle = match state.auth().attempt(keys).await {
        Ok(throttle) => throttle,
        Err(wait) => {
            remember(SignInOutcome::TooManyAttempts, FaceSeen::default()).await;
            let message = format!("Too many failed sign-ins from here; try again in {}.", minutes(wait));
            return Ok(refused(StatusCode::TOO_MANY_REQUESTS, &message));
        }
    };
    let account = state.store().accounts().user_by_name(&username).await?;
    let link = match &account {
        Some(account) => state.store().face_links().face_link(&account.username).await?,
        None => None,
    };
    let (account, link) = match (account, link) {
        (Some(account), Some(link)) if link.enabled => (account, link),
        (account, _) => {
            let outcome = if account.is_none() { SignInOutcome::UnknownAccount } else { SignInOutcome::FaceSignInOff };
            remember(outcome, FaceSeen::default()).await;
            tracing::warn!(user = %username, ?address, %outcome, "face sign-in refused");
            return Ok(refused(StatusCode::UNAUTHORIZED, NOT_RECOGNISED));
        }
    };
    let Some(engine) = state.engine().on_device() else {
        return Ok(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Face sign-in needs the on-device face models, which this door has not loaded.",
        ));
    };
    let judged = {
        let _turn = state.0.comparisons.acquire().await.map_err(|e| WebError::Internal(e.to_string()))?;
        judge(state, &engine, link.person, posted.frames).await?
    };
    let role = account.role.parse::<Role>().ok().map(|own| at_most(own, &link));
    let outcome = match (judged.outcome, role) {
        (SignInOutcome::Succeeded, None) => SignInOutcome::UnusableAccount,
        (outcome, _) => outcome,
    };
    let similarity = judged.seen.similarity;
    remember(outcome, judged.seen).await;
    match (outcome, role) {
        (SignInOutcome::Succeeded, Some(role)) => {
            throttle.succeeded();
            tracing::info!(user = %account.username, %role, ?similarity, ?address, "signed in with a face");
            let cookie = state.auth().sign_in_at_most(&account, role);
            Ok(([(header::SET_COOKIE, cookie)], answer(StatusCode::OK, json!({ "redirect": "/" }))).into_response())
        }
        _ => {
            tracing::warn!(user = %username, %outcome, ?similarity, ?address, "face sign-in refused");
            let message = match outcome {
                SignInOutcome::NoFace => "No face was seen: face the camera, in good light, and try again.",
                SignInOutcome::SpoofSuspected => "The camera's pictures looked like a photo or a screen.",
                _ => NOT_RECOGNISED,
            };
            Ok(refused(StatusCode::UNAUTHORIZED, message))
        }
    }
}

/// What a refused face tells: not whether the account exists or has face sign-in on.
const NOT_RECOGNISED: &str =
    "Your face was not recognised for this account (or face sign-in is not on for it). Sign in with your password.";

/// The role a face sign-in gives: the account's own, at most the link's (viewer when the link's
/// is not a role this version knows).
fn at_most(own: Role, link: &FaceLink) -> Role {
    own.at_most(link.max_role.parse().unwrap_or(Role::Viewer))
}

/// One frame's largest face and how alike it is to the person's best enrolled face.
struct Described {
    frame: Frame,
    face: DetectedFace,
    similarity: f32,
}

/// Describes each frame, judges the burst's liveness as the door does, and compares it with
/// `person`'s enrolled faces.
async fn judge(
    state: &WebState,
    engine: &LocalEngine,
    person: PersonId,
    frames: Vec<Frame>,
) -> Result<Judged, WebError> {
    let (_, faces) = state.store().door().faces(state.engine().template_kind()).await?;
    let enrolled: Vec<Vec<f32>> = faces
        .into_iter()
        .filter(|face| face.person == person)
        .filter_map(|face| match face.template {
            FaceTemplate::Descriptor(descriptor) => Some(descriptor),
            FaceTemplate::Remote(_) => None,
        })
        .collect();
    let picked = engine.clone();
    let described = tokio::task::spawn_blocking(move || -> Result<Vec<Described>, String> {
        let mut described = Vec::new();
        for frame in frames {
            let Some(found) = picked.describe_blocking(&frame, "a camera frame").map_err(|e| e.to_string())? else {
                continue;
            };
            let similarity = enrolled
                .iter()
                .map(|descriptor| picked.similarity(&found.descriptor, descriptor))
                .fold(0.0_f32, f32::max);
            described.push(Described { frame, face: found.face, similarity });
        }
        Ok(described)
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(WebError::BadRequest)?;
    let Some(best) = described.iter().max_by(|a, b| a.similarity.total_cmp(&b.similarity)) else {
        return Ok(Judged { outcome: SignInOutcome::NoFace, seen: FaceSeen::default() });
    };
    let thumbnail = thumbnail(&best.frame, &best.face).await;
    let similarity = burst_similarity(&described);
    let best = Capture { frame: best.frame.clone(), face: Some(best.face), liveness: None };
    let burst = Burst { frames: described.into_iter().map(|d| BurstFrame::new(d.frame, d.face)).collect() };
    let judged = crate::driver::judge_liveness(state.liveness(), Taken { best, burst }).await;
    let outcome = if !clears_threshold(similarity, state.config().face_sign_in_threshold) {
        SignInOutcome::FaceNotMatched
    } else if judged.liveness.as_ref().is_some_and(|assessment| assessment.denies()) {
        SignInOutcome::SpoofSuspected
    } else {
        SignInOutcome::Succeeded
    };
    Ok(Judged { outcome, seen: FaceSeen { similarity: Some(similarity), thumbnail } })
}

/// The burst's similarity: its median frame's, so that one lucky frame does not carry it.
fn burst_similarity(described: &[Described]) -> f32 {
    let mut similarities: Vec<f32> = described.iter().map(|d| d.similarity).collect();
    similarities.sort_by(f32::total_cmp);
    // The lower middle of an even count: the stricter of the two.
    similarities.get((similarities.len().saturating_sub(1)) / 2).copied().unwrap_or(0.0)
}

/// A small square JPEG of `face` in `frame`, for the sign-in log; none when it cannot be made.
async fn thumbnail(frame: &Frame, face: &DetectedFace) -> Option<Vec<u8>> {
    let (frame, face) = (frame.clone(), *face);
    let made = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let picture = crate::engine::decode_rgb(&frame, "a camera frame").map_err(|e| e.to_string())?;
        let side = (face.width.max(face.height) as f32 * (1.0 + 2.0 * THUMBNAIL_MARGIN)).round() as u32;
        let side = side.min(picture.width().min(picture.height())).max(1);
        let centre = (face.x + face.width / 2, face.y + face.height / 2);
        let left = centre.0.saturating_sub(side / 2).min(picture.width().saturating_sub(side));
        let top = centre.1.saturating_sub(side / 2).min(picture.height().saturating_sub(side));
        let crop = image::imageops::crop_imm(&picture, left, top, side, side).to_image();
        let small = image::imageops::resize(&crop, THUMBNAIL_SIDE, THUMBNAIL_SIDE, image::imageops::Triangle);
        let mut encoded = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 80)
            .encode_image(&small)
            .map_err(|e| e.to_string())?;
        Ok(encoded.into_inner())
    })
    .await;
    match made {
        Ok(Ok(bytes)) => Some(bytes),
        Ok(Err(detail)) => {
            tracing::warn!(%detail, "cannot make the face sign-in's thumbnail");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot make the face sign-in's thumbnail");
            None
        }
    }
}

/// The sign-in page's part: the camera's preview and the button; the app's script drives it.
/// When the door's liveness checks enforce a head turn, the page asks for one too and spreads
/// the frames over about a second, as the door does.
pub fn login_section(challenge: Challenge) -> Markup {
    let turn = challenge == Challenge::Turn;
    let (ask, pace) =
        if turn { ("Turn your head a little…", TURN_PACE) } else { ("Look at the camera…", STILL_PACE) };
    html! {
        div #face-sign-in data-frames=(BURST_FRAMES) data-pace=(pace.as_millis()) data-ask=(ask) {
            h2 { "Sign in with your face" }
            p.hint {
                "Type your username above, then look at the camera"
                @if turn { " and turn your head a little when asked" }
                ". Works for accounts whose owner turned face sign-in on; it gives the viewer role unless an \
                 admin allowed more."
            }
            video #face-preview autoplay muted playsinline hidden {}
            button.secondary #face-start type="button" { "Sign in with your face" }
            p #face-status role="status" {}
        }
    }
}

/// The settings page's card for the signed-in account: its link, and the switch.
pub async fn own_card(state: &WebState, user: &User) -> Result<Markup, WebError> {
    let link = state.store().face_links().face_link(&user.username).await?;
    let person = match &link {
        Some(link) => state.store().people().person(link.person).await?,
        None => None,
    };
    Ok(html! {
        section.card #face-sign-in-settings {
            h2 { "Face sign-in" }
            @match (&link, &person) {
                (Some(link), Some(person)) => {
                    p {
                        "Your account is linked to " strong { (person.name) } ", enrolled at the door. "
                        "Face sign-in is " strong #face-sign-in-state { @if link.enabled { "on" } @else { "off" } } "."
                    }
                    p.hint {
                        "Signing in with your face gives the " (at_most(user.role, link)) " role. A printed \
                         photo of you may pass unless the door's liveness checks are enforced."
                    }
                    form.stack method="post" action="/account/face-sign-in" {
                        (csrf_field(user))
                        input type="hidden" name="enabled" value=(if link.enabled { "false" } else { "true" });
                        button.secondary type="submit" {
                            @if link.enabled { "Turn face sign-in off" } @else { "Turn face sign-in on" }
                        }
                    }
                }
                _ => {
                    p.hint { "An admin can link your account to the person you are enrolled as; you can then turn \
                              face sign-in on here." }
                }
            }
        }
    })
}

/// The accounts list's form, for admins: the person an account signs in as, and what a face may give.
pub fn link_form(user: &User, account: &str, link: Option<&FaceLink>, people: &[PersonSummary]) -> Markup {
    let linked = link.map(|link| link.person);
    let allows_admin = link.is_some_and(|link| link.max_role == Role::Admin.as_str());
    html! {
        form.inline.face-link method="post" action=(format!("/accounts/{account}/face")) {
            (csrf_field(user))
            label { "Face sign-in as "
                select name="person" aria-label=(format!("Person {account} signs in as")) {
                    option value="" selected[linked.is_none()] { "— no one —" }
                    @for person in people {
                        option value=(person.id.0) selected[linked == Some(person.id)] { (person.name) }
                    }
                }
            }
            label { "gives at most "
                select name="max_role" aria-label=(format!("Most role of {account}'s face sign-in")) {
                    option value="viewer" selected[!allows_admin] { "viewer" }
                    option value="admin" selected[allows_admin] { "their own role" }
                }
            }
            @if let Some(link) = link { span.muted { @if link.enabled { " (on)" } @else { " (off until they turn it on)" } } }
            button.quiet type="submit" { "Save" }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SwitchForm {
    enabled: bool,
}

/// `POST /account/face-sign-in`: the account turns its own face sign-in on or off.
pub async fn switch(
    State(state): State<WebState>,
    SignedForm(user, form): SignedForm<SwitchForm>,
) -> Result<Response, WebError> {
    let links = state.store().face_links();
    let link = links
        .face_link(&user.username)
        .await?
        .ok_or_else(|| WebError::BadRequest("your account is not linked to an enrolled person; ask an admin".into()))?;
    links.set_face_link(&user.username, &FaceLink { enabled: form.enabled, ..link }).await?;
    let word = if form.enabled { "on" } else { "off" };
    tracing::info!(user = %user.username, enabled = form.enabled, "face sign-in switched");
    state.auth().set_flash(&user, Flash::ok(format!("Face sign-in is {word}.")));
    Ok(Redirect::to("/settings#face-sign-in-settings").into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LinkForm {
    /// The person's id; empty unlinks.
    person: String,
    /// "admin" lets a face sign-in give an admin account its own role.
    max_role: String,
}

/// `POST /accounts/{name}/face`: an admin links an account to an enrolled person (or unlinks it)
/// and says what a face sign-in may give it.
pub async fn link(
    State(state): State<WebState>,
    Path(name): Path<String>,
    AdminForm(user, form): AdminForm<LinkForm>,
) -> Result<Response, WebError> {
    let account = state
        .store()
        .accounts()
        .user_by_name(&name)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("there is no account {name}")))?;
    let links = state.store().face_links();
    let flash = if form.person.trim().is_empty() {
        links.remove_face_link(&account.username).await?;
        format!("{} can no longer sign in with a face.", account.username)
    } else {
        let person = PersonId(
            form.person
                .trim()
                .parse()
                .map_err(|_| WebError::BadRequest(format!("{:?} is not a person", form.person)))?,
        );
        let max_role = form.max_role.parse::<Role>().unwrap_or(Role::Viewer);
        let before = links.face_link(&account.username).await?;
        // A link to someone else starts off: the account's owner turns it on for themselves.
        let enabled = before.is_some_and(|link| link.person == person && link.enabled);
        links
            .set_face_link(&account.username, &FaceLink { person, enabled, max_role: max_role.as_str().into() })
            .await?;
        format!("{} is linked for face sign-in (at most {max_role}); its owner turns it on.", account.username)
    };
    tracing::info!(user = %user.username, account = %account.username, person = %form.person, "face sign-in link changed");
    state.auth().set_flash(&user, Flash::ok(flash));
    Ok(Redirect::to("/settings#accounts").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(max_role: &str) -> FaceLink {
        FaceLink { person: PersonId(1), enabled: true, max_role: max_role.into() }
    }

    #[test]
    fn a_burst_scores_its_median_frame_so_one_lucky_frame_does_not_carry_it() {
        let frame = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0], "test frame").unwrap();
        let face = DetectedFace { x: 0, y: 0, width: 10, height: 10, confidence: 99.0, landmarks: None };
        let burst = |scores: &[f32]| -> Vec<Described> {
            scores.iter().map(|&similarity| Described { frame: frame.clone(), face, similarity }).collect()
        };
        assert_eq!(burst_similarity(&burst(&[40.0, 99.0, 94.0, 93.5, 10.0])), 93.5);
        assert_eq!(burst_similarity(&burst(&[96.0, 92.0])), 92.0, "of two, the lower");
        assert_eq!(burst_similarity(&burst(&[95.0])), 95.0);
        assert_eq!(burst_similarity(&[]), 0.0);
    }

    #[test]
    fn a_face_gives_the_viewer_role_unless_an_admin_allowed_more() {
        assert_eq!(at_most(Role::Admin, &link("viewer")), Role::Viewer);
        assert_eq!(at_most(Role::Admin, &link("admin")), Role::Admin);
        assert_eq!(at_most(Role::Viewer, &link("admin")), Role::Viewer, "never more than the account's own");
        assert_eq!(at_most(Role::Admin, &link("owner")), Role::Viewer, "an unknown role gives the least");
    }
}
