//! Visitors without a card: the visitor page `/visit` where they ring, the owner's decision page
//! `/visits/{id}` behind the signed link in the owner's message, the virtual door `/door` where a
//! passcode opens, and the Visitors list for admins with the known visitors (kept for next time:
//! edit, auto-pass, forget). The public pages work without script and carry a double-submit token
//! like the sign-in form; all of them answer 404 while `visitors.enabled` is off.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::account::{check_form_token, form_token, with_form_cookie};
use super::auth::{Admin, AdminForm, Button, ClientAddress, Flash, SESSION_COOKIE, SignInKey, User, cookie, minutes};
use super::history::{image_response, read_photo};
use super::views::{Machine, Section, bare_page, csrf_field, danger_zone, page, post_button, time_cell};
use super::{WebError, WebState, step_up};
use crate::access::{Credential, Decision, Reason};
use crate::checks::Secret;
use crate::doorbell::Ringer;
use crate::driver::{Answer, Command};
use crate::store::{KnownVisitor, Visit, VisitId, VisitQuery, VisitStatus, VisitorId};
use crate::visitor::{Desk, Ring, Sent, edited_details, has_contact};

/// The visitors' desk is a door's: a console says it is not a door, so every visitors page is
/// drawn with a door's navigation.
fn desk(state: &WebState) -> Result<&Desk, WebError> {
    state.door()?;
    state.0.desk.as_ref().ok_or_else(|| WebError::NotFound("this page does not exist".into()))
}

fn ringer(state: &WebState) -> Result<&Ringer, WebError> {
    state.door()?;
    state.0.ringer.as_ref().ok_or_else(|| WebError::NotFound("this page does not exist".into()))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

// ---- The visitor page: ring -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VisitForm {
    csrf: String,
    name: String,
    email: String,
    mobile: String,
    message: String,
}

fn visit_form(token: &str, form: &VisitForm, error: Option<&str>) -> Markup {
    bare_page(
        "Ring the door",
        html! {
            section.card {
                h1 { "Ring the door" }
                p.hint { "The owner is told at once, with a photo from the door camera. If they let you in, a \
                          passcode reaches you by text message or e-mail." }
                @if let Some(error) = error { p.flash.error role="alert" { (error) } }
                form.stack method="post" action="/visit" {
                    input type="hidden" name="csrf" value=(token);
                    label for="name" { "Your name" }
                    input #name name="name" value=(form.name) maxlength="80" autocomplete="name" required autofocus;
                    label for="mobile" { "Mobile number (with country code)" }
                    input #mobile name="mobile" type="tel" value=(form.mobile) autocomplete="tel" placeholder="+44 7700 900123";
                    label for="email" { "E-mail" }
                    input #email name="email" type="email" value=(form.email) autocomplete="email";
                    label for="message" { "Message (optional)" }
                    textarea #message name="message" maxlength="500" rows="3" { (form.message) }
                    button.primary type="submit" { "Ring" }
                }
            }
        },
    )
}

pub async fn visit_page(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    desk(&state)?;
    let (token, new_token) = form_token(&headers);
    Ok(with_form_cookie(&state, StatusCode::OK, new_token, visit_form(&token, &VisitForm::default(), None)))
}

pub async fn ring(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<VisitForm>,
) -> Result<Response, WebError> {
    let ringer = ringer(&state)?;
    check_form_token(&headers, &form.csrf)?;
    let ring = match Ring::new(&form.name, &form.email, &form.mobile, &form.message) {
        Ok(ring) => ring,
        Err(problem) => {
            return Ok((StatusCode::BAD_REQUEST, visit_form(&form.csrf, &form, Some(&problem))).into_response());
        }
    };
    // Every ring counts: each costs a photo and messages to the owner.
    let _counted = state.auth().attempt(vec![SignInKey::ring(address)]).await.map_err(|wait| {
        WebError::TooManyAttempts(format!("the owner has been told often from here; try again in {}", minutes(wait)))
    })?;
    let visit = ringer.ring(ring).await.map_err(internal)?;
    Ok(bare_page(
        "The owner has been told",
        html! {
            section.card {
                h1 { "Thank you, " (visit.name) }
                p { "The owner has been told. If they let you in, your passcode arrives in a moment; type it on the "
                    a href="/door" { "door page" } "." }
            }
        },
    )
    .into_response())
}

fn internal(e: impl std::fmt::Display) -> WebError {
    WebError::Internal(e.to_string())
}

// ---- The virtual door: a passcode opens ---------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DoorForm {
    csrf: String,
    code: String,
}

fn door_form(token: &str, outcome: Option<(bool, &str)>) -> Markup {
    bare_page(
        "Door",
        html! {
            section.card {
                h1 { "Door" }
                @match outcome {
                    Some((true, message)) => p.flash.ok role="status" { (message) },
                    Some((false, message)) => p.flash.error role="alert" { (message) },
                    None => p.hint { "Type the passcode you were sent." },
                }
                form.stack method="post" action="/door" {
                    input type="hidden" name="csrf" value=(token);
                    label for="code" { "Passcode" }
                    input #code name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="12"
                        pattern="[0-9 \\-]*" required autofocus;
                    button.primary type="submit" { "Open" }
                }
            }
        },
    )
}

pub async fn door_page(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    desk(&state)?;
    let (token, new_token) = form_token(&headers);
    Ok(with_form_cookie(&state, StatusCode::OK, new_token, door_form(&token, None)))
}

pub async fn open_with_passcode(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<DoorForm>,
) -> Result<Response, WebError> {
    let desk = desk(&state)?;
    check_form_token(&headers, &form.csrf)?;
    if form.code.len() > 12 {
        return Err(WebError::BadRequest("a passcode has six digits".into()));
    }
    let attempt = state.auth().attempt(vec![SignInKey::address(address)]).await.map_err(|wait| {
        tracing::warn!(?address, "passcode refused: too many wrong ones from this address");
        WebError::TooManyAttempts(format!("too many wrong passcodes from here; try again in {}", minutes(wait)))
    })?;
    let secret = Secret::new(form.code);
    let answer = state
        .door()?
        .control
        .ask(|reply| Command::PresentPass { credential: Credential::Passcode, secret, reply })
        .await
        .map_err(internal)?;
    let tries = desk.passes().config().passcode_tries;
    let (status, opened, message) = match answer {
        Answer::Busy => (StatusCode::SERVICE_UNAVAILABLE, false, "The door is busy; try again in a moment.".to_owned()),
        Answer::Concluded { decision: Decision::Granted, visitor, .. } => {
            attempt.succeeded();
            let name = visitor.unwrap_or_default();
            (StatusCode::OK, true, format!("Welcome, {name}. The door is open."))
        }
        Answer::Concluded { reason, .. } => {
            let why = match reason {
                Reason::PassExpired => "This passcode has expired; ring again.".to_owned(),
                Reason::PassUsed => "This passcode was already used; ring again.".to_owned(),
                Reason::PasscodeLocked => "Too many wrong passcodes: this one is locked. Ring again.".to_owned(),
                Reason::Disarmed => "The door is not taking passcodes now.".to_owned(),
                Reason::LookupError => "The passcode cannot be checked now; try again in a moment.".to_owned(),
                _ => format!("Permission denied. Check the code; after {tries} wrong ones, passcodes lock."),
            };
            (StatusCode::FORBIDDEN, false, why)
        }
    };
    Ok((status, door_form(&form.csrf, Some((opened, &message)))).into_response())
}

// ---- The owner's decision ---------------------------------------------------------------------

/// The signed part of an approve link.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct LinkQuery {
    until: i64,
    sig: String,
}

/// Who may decide: the holder of a valid link, or a signed-in admin.
enum Decider {
    Link(LinkQuery),
    Admin(User),
}

impl Decider {
    fn name(&self) -> &str {
        match self {
            Decider::Link(_) => "the owner's link",
            Decider::Admin(user) => &user.username,
        }
    }

    /// The query to repeat on the photo and the form, so they hold as the page did.
    fn query(&self) -> String {
        match self {
            Decider::Link(link) => format!("?until={}&sig={}", link.until, link.sig),
            Decider::Admin(_) => String::new(),
        }
    }
}

async fn decider(state: &WebState, headers: &HeaderMap, id: VisitId, link: LinkQuery) -> Result<Decider, Response> {
    let desk = desk(state).map_err(IntoResponse::into_response)?;
    if !link.sig.is_empty() {
        return match desk.link_holds(id, link.until, &link.sig, now()).await {
            true => Ok(Decider::Link(link)),
            false => Err(WebError::LinkExpired.into_response()),
        };
    }
    let user = match cookie(headers, SESSION_COOKIE) {
        Some(token) => state.auth().user(token, state.store()).await,
        None => None,
    };
    match user {
        Some(user) if user.is_admin() => Ok(Decider::Admin(user)),
        Some(_) => Err(WebError::Forbidden.into_response()),
        None => Err(Redirect::to("/login").into_response()),
    }
}

pub async fn visit(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    Query(link): Query<LinkQuery>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let id = VisitId(id);
    let decider = decider(&state, &headers, id, link).await?;
    let visit = state.store().visits().visit(id).await.map_err(|e| WebError::from(e).into_response())?;
    let visit = visit.ok_or_else(|| WebError::NotFound(format!("there is no visit {id}")).into_response())?;
    let known = match visit.visitor {
        Some(visitor) => state.store().known_visitors().known_visitor(visitor).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, %visitor, "cannot read the known visitor of a visit");
            None
        }),
        None => None,
    };
    let (token, new_token) = form_token(&headers);
    let query = decider.query();
    let pending = visit.status == VisitStatus::Pending;
    let body = html! {
        section.card {
            h1 { (visit.name) " at " (visit.door) }
            @if visit.photo.is_some() {
                img.visitor-photo src=(format!("/visits/{id}/photo{query}")) alt=(format!("{} at the door", visit.name));
            }
            dl {
                @if let Some(known) = &known {
                    dt { "Known visitor" }
                    dd { (known.name) @if known.auto_pass { " " span.badge.granted { "auto-pass" } } }
                }
                dt { "Rang" } dd { (time_cell(visit.at)) }
                @if let Some(mobile) = &visit.mobile { dt { "Mobile" } dd { (mobile) } }
                @if let Some(email) = &visit.email { dt { "E-mail" } dd { (email) } }
                @if let Some(message) = &visit.message { dt { "Message" } dd { (message) } }
                dt { "Status" } dd { (visit.status) @if let Some(by) = &visit.decided_by { " by " (by) } }
            }
            @if pending {
                form.stack method="post" action=(format!("/visits/{id}{query}")) {
                    input type="hidden" name="csrf" value=(token);
                    @if has_contact(&visit) {
                        button.primary type="submit" name="action" value="passcode" { "Send a passcode" }
                    } @else {
                        p.hint { "They left no way to reach them, so no passcode can be sent: open the door or turn \
                                  them away." }
                    }
                    @if visit.email.is_some() {
                        button type="submit" name="action" value="qr" { "Send a QR pass by e-mail" }
                    }
                    button type="submit" name="action" value="open" { "Open the door now" }
                    button.danger type="submit" name="action" value="deny" { "Turn away" }
                }
            } @else {
                p.hint { "This visit has been decided." }
            }
        }
    };
    let markup = bare_page(&format!("Visitor {}", visit.name), body);
    Ok(with_form_cookie(&state, StatusCode::OK, new_token, markup))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DecideForm {
    csrf: String,
    action: String,
}

pub async fn decide(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    Query(link): Query<LinkQuery>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, Response> {
    let id = VisitId(id);
    let decider = decider(&state, &headers, id, link).await?;
    let form: DecideForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| WebError::BadRequest(format!("not a valid form: {e}")).into_response())?;
    check_form_token(&headers, &form.csrf).map_err(IntoResponse::into_response)?;
    // The owner's signed link is a proof of its own; a session may be an old one left open.
    if let Decider::Admin(user) = &decider {
        step_up::require_for_body(&state, user, address, &headers, &uri.to_string(), &body).await?;
    }
    decide_as(&state, id, &decider, &form.action).await.map_err(IntoResponse::into_response)
}

async fn decide_as(state: &WebState, id: VisitId, decider: &Decider, action: &str) -> Result<Response, WebError> {
    let desk = desk(state)?;
    let by = decider.name();
    let to = match action {
        "passcode" | "qr" => VisitStatus::Approved,
        "open" => VisitStatus::Opened,
        "deny" => VisitStatus::Denied,
        other => return Err(WebError::BadRequest(format!("{other:?} is not a decision"))),
    };
    let visit =
        state.store().visits().visit(id).await?.ok_or_else(|| WebError::NotFound(format!("there is no visit {id}")))?;
    if action == "passcode" && !has_contact(&visit) {
        return Err(WebError::BadRequest(
            "this visitor left no way to reach them: open the door or turn them away".into(),
        ));
    }
    if visit.status == VisitStatus::Expired {
        return Ok(outcome_page(
            "Expired",
            "Nobody decided this visit in time; nothing was done. They can ring again.",
        ));
    }
    if !desk.claim(id, to, by, now()).await.map_err(internal)? {
        return Ok(outcome_page("Already decided", "Someone has already decided this visit; nothing was done."));
    }
    tracing::info!(visit = %id, decision = %to, %by, "a visit was decided");
    match to {
        VisitStatus::Approved if action == "qr" => match desk.send_qr_pass(&visit, now()).await.map_err(internal)? {
            Sent::Delivered { to, .. } => {
                keep_visitor(desk, &visit).await;
                Ok(outcome_page(
                    "QR pass sent",
                    &format!("A QR pass went to {to}; {} shows it to the door camera.", visit.name),
                ))
            }
            Sent::NotSent { problem, .. } => {
                // Undecided again, so that the owner can choose a passcode or open from afar.
                desk.unclaim(id, VisitStatus::Approved, by, now()).await.map_err(internal)?;
                Ok(outcome_page(
                    "QR pass not sent",
                    &format!("It could not be sent ({problem}). Send a passcode instead, or open the door now."),
                ))
            }
        },
        VisitStatus::Approved => {
            let sent = desk.send_passcode(&visit, now()).await.map_err(internal)?;
            // Approved either way: the owner passes on a code that could not be sent.
            keep_visitor(desk, &visit).await;
            match sent {
                Sent::Delivered { channel, to } => {
                    Ok(outcome_page("Passcode sent", &format!("A passcode went to {} by {channel}.", to)))
                }
                Sent::NotSent { code, problem } => Ok(outcome_page(
                    "Passcode not sent",
                    &format!("It could not be sent ({problem}). Tell {} the passcode yourself: {code}", visit.name),
                )),
            }
        }
        VisitStatus::Opened => {
            let answer = state
                .door()?
                .control
                .ask(|reply| Command::OpenForVisitor { by: by.to_owned(), visitor: visit.name.clone(), reply })
                .await
                .map_err(internal)?;
            match answer {
                Answer::Concluded { decision: Decision::Granted, .. } => {
                    keep_visitor(desk, &visit).await;
                    Ok(outcome_page("Door open", &format!("The door is open for {}.", visit.name)))
                }
                other => {
                    desk.unclaim(id, VisitStatus::Opened, by, now()).await.map_err(internal)?;
                    let why = match other {
                        Answer::Busy => "the door is busy with someone at the reader",
                        _ => "the door is disarmed",
                    };
                    Ok(outcome_page("Not opened", &format!("The door did not open: {why}. Try again.")))
                }
            }
        }
        _ => Ok(outcome_page("Turned away", &format!("{} was turned away.", visit.name))),
    }
}

/// Keeps the visitor of a visit the owner approved for next time; the decision stands even when
/// that fails.
async fn keep_visitor(desk: &Desk, visit: &Visit) {
    if let Err(e) = desk.keep_visitor(visit, now()).await {
        tracing::warn!(visit = %visit.id, error = %e, "cannot keep the visitor for next time");
    }
}

fn outcome_page(title: &str, message: &str) -> Response {
    bare_page(title, html! { section.card { h1 { (title) } p { (message) } } }).into_response()
}

pub async fn visit_photo(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    Query(link): Query<LinkQuery>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let id = VisitId(id);
    decider(&state, &headers, id, link).await?;
    let missing = || WebError::NotFound(format!("visit {id} has no photo"));
    let found = async {
        let visit = state.store().visits().visit(id).await?.ok_or_else(missing)?;
        let name = visit.photo.ok_or_else(missing)?;
        read_photo(&state, &name, missing).await
    };
    let (bytes, content_type) = found.await.map_err(IntoResponse::into_response)?;
    Ok(image_response(bytes, content_type))
}

// ---- The Visitors list --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    status: String,
}

pub async fn list(
    State(state): State<WebState>,
    Admin(user): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    state.door()?;
    let flash = state.auth().take_flash(&user);
    if state.0.desk.is_none() {
        let body = html! {
            h1 { "Visitors" }
            p { "Visitors are turned off. Set " code { "visitors.enabled = true" } ", " code { "visitors.tell" }
                " and " code { "web.public_url" } " in the config file and restart FaceReko." }
        };
        return Ok(page(Machine::Door, &user, flash, Section::Visitors, "Visitors", body).into_response());
    }
    let status = match query.status.as_str() {
        "" => None,
        text => Some(text.parse::<VisitStatus>().map_err(WebError::BadRequest)?),
    };
    let visits = state.store().visits().list_visits(&VisitQuery { limit: 100, offset: 0, status }).await?;
    let known = state.store().known_visitors().list_known_visitors().await?;
    let retention = humantime::format_duration(desk(&state)?.passes().config().retention).to_string();
    let body = html! {
        h1 { "Visitors" }
        (known_visitors(&user, &known, &retention))
        h2 { "Visits" }
        p.hint { "People who rang at the door. Visits and their photos are deleted " (retention) " after the visit." }
        form.filters method="get" action="/visitors" {
            label for="status" { "Status" }
            select #status name="status" {
                option value="" { "any" }
                @for choice in VisitStatus::ALL {
                    option value=(choice) selected[status == Some(*choice)] { (choice) }
                }
            }
            button type="submit" { "Show" }
        }
        @if visits.is_empty() { p.muted { "No visits." } }
        div.table-wrap { table.history.visits {
            thead { tr { th { "Photo" } th { "Name" } th { "Contact" } th { "Rang" } th { "Status" } th {} } }
            tbody {
                @for visit in &visits {
                    tr {
                        td.photo-cell data-label="Photo" {
                            @if visit.photo.is_some() {
                                img.thumb src=(format!("/visits/{}/photo", visit.id)) alt="" loading="lazy";
                            }
                        }
                        td data-label="Name" {
                            a href=(format!("/visits/{}", visit.id)) { (visit.name) }
                            @if let Some(visitor) = visit.visitor {
                                " " a.badge href=(known_url(visitor)) title="A known visitor" { "known" }
                            }
                        }
                        td data-label="Contact" { (contact(visit.mobile.as_deref(), visit.email.as_deref())) }
                        td data-label="Rang" { (time_cell(visit.at)) }
                        td data-label="Status" {
                            (visit.status) @if let Some(by) = &visit.decided_by { " by " (by) }
                        }
                        td { (post_button(&user, &format!("/visitors/{}/forget", visit.id), "Forget", "danger",
                                Some("Delete this visit, its photo and its contact now?"))) }
                    }
                }
            }
        } }
    };
    Ok(page(Machine::Door, &user, flash, Section::Visitors, "Visitors", body).into_response())
}

pub async fn forget(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    desk(&state)?.forget(VisitId(id)).await.map_err(internal)?;
    tracing::info!(visit = id, by = %user.username, "a visit was forgotten");
    state.auth().set_flash(&user, Flash::ok("The visit, its photo and its contact are deleted."));
    Ok(Redirect::to("/visitors").into_response())
}

// ---- Known visitors ---------------------------------------------------------------------------

fn known_url(id: VisitorId) -> String {
    format!("/visitors/known/{id}")
}

fn contact(mobile: Option<&str>, email: Option<&str>) -> String {
    [mobile, email].into_iter().flatten().collect::<Vec<_>>().join(" ")
}

/// The known visitors' table on the Visitors page, each with their auto-pass switch and forget.
fn known_visitors(user: &User, known: &[KnownVisitor], retention: &str) -> Markup {
    html! {
        section.card #known-visitors {
            h2 { "Known visitors" }
            p.hint { "Visitors you let in, kept with descriptors of their faces so that the door names them when \
                      they ring again. A visitor marked auto-pass gets a passcode at once, and you are told \
                      afterwards. Each is deleted with their faces, visits and photos " (retention) " after their \
                      last visit." }
            @if known.is_empty() {
                p.muted { "Nobody yet: letting a visitor in keeps them for next time." }
            } @else {
                div.table-wrap { table.history.known-visitors {
                    thead { tr {
                        th { "Name" } th { "Contact" } th { "Last visit" } th { "Visits" } th { "Auto-pass" } th {}
                    } }
                    tbody {
                        @for visitor in known {
                            @let url = known_url(visitor.id);
                            tr {
                                td data-label="Name" { a href=(url) { (visitor.name) } }
                                td data-label="Contact" {
                                    (contact(visitor.mobile.as_deref(), visitor.email.as_deref()))
                                }
                                td data-label="Last visit" { (time_cell(visitor.last_visit)) }
                                td data-label="Visits" { (visitor.visits) }
                                td data-label="Auto-pass" {
                                    @if visitor.auto_pass {
                                        span.badge.granted { "on" } " "
                                        (post_button(user, &format!("{url}/auto-pass/off"), "Turn off", "quiet", None))
                                    } @else {
                                        span.badge { "off" } " "
                                        (post_button(user, &format!("{url}/auto-pass/on"), "Turn on", "quiet",
                                            Some(&format!("Send {} a passcode whenever the door recognises them?",
                                                visitor.name))))
                                    }
                                }
                                td { (post_button(user, &format!("{url}/forget"), "Forget", "danger",
                                        Some(&format!("Delete {}, their faces, visits and photos now?",
                                            visitor.name)))) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

async fn known_visitor(state: &WebState, id: i64) -> Result<KnownVisitor, WebError> {
    desk(state)?;
    let found = state.store().known_visitors().known_visitor(VisitorId(id)).await?;
    found.ok_or_else(|| WebError::NotFound(format!("there is no known visitor {id}")))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct KnownVisitorForm {
    name: String,
    email: String,
    mobile: String,
    /// "on" when the box is ticked; a form leaves an unticked box out.
    auto_pass: String,
}

fn known_visitor_view(user: &User, flash: Option<Flash>, visitor: &KnownVisitor, form: &KnownVisitorForm) -> Markup {
    let url = known_url(visitor.id);
    let body = html! {
        p { a href="/visitors" { "← Visitors" } }
        h1 { (visitor.name) }
        section.card {
            p.hint {
                "Last here " (time_cell(visitor.last_visit)) "; "
                (visitor.visits) " visit" @if visitor.visits != 1 { "s" }
                " and " (visitor.faces) " face" @if visitor.faces != 1 { "s" } " kept."
            }
            form.stack method="post" action=(url) {
                (csrf_field(user))
                label for="name" { "Name" }
                input #name name="name" value=(form.name) maxlength="80" required;
                label for="mobile" { "Mobile number (with country code)" }
                input #mobile name="mobile" type="tel" value=(form.mobile) placeholder="+44 7700 900123";
                label for="email" { "E-mail" }
                input #email name="email" type="email" value=(form.email);
                div.choices {
                    label {
                        input type="checkbox" name="auto_pass" value="on" checked[form.auto_pass == "on"];
                        "Auto-pass: send a passcode at once whenever the door recognises them"
                    }
                }
                button.primary type="submit" { "Save" }
            }
        }
        (danger_zone(user, &format!("{url}/forget"), &format!("Forget {}", visitor.name),
            "Deletes their faces, their visits and those visits' photos now.",
            &format!("Delete {}, their faces, visits and photos now?", visitor.name)))
    };
    page(Machine::Door, user, flash, Section::Visitors, &visitor.name, body)
}

pub async fn known_page(
    State(state): State<WebState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
) -> Result<Markup, WebError> {
    let flash = state.auth().take_flash(&user);
    let visitor = known_visitor(&state, id).await?;
    let form = KnownVisitorForm {
        name: visitor.name.clone(),
        email: visitor.email.clone().unwrap_or_default(),
        mobile: visitor.mobile.clone().unwrap_or_default(),
        auto_pass: if visitor.auto_pass { "on".into() } else { String::new() },
    };
    Ok(known_visitor_view(&user, flash, &visitor, &form))
}

pub async fn edit_known(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, form): AdminForm<KnownVisitorForm>,
) -> Result<Response, WebError> {
    let visitor = known_visitor(&state, id).await?;
    let details = match edited_details(&form.name, &form.email, &form.mobile) {
        Ok(details) => details,
        Err(problem) => {
            let page = known_visitor_view(&user, Some(Flash::error(problem)), &visitor, &form);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let visitors = state.store().known_visitors();
    visitors.update_known_visitor(visitor.id, &details).await?;
    visitors.set_auto_pass(visitor.id, form.auto_pass == "on").await?;
    tracing::info!(visitor = %visitor.id, by = %user.username, "a known visitor was changed");
    state.auth().set_flash(&user, Flash::ok(format!("{} is saved.", details.name)));
    Ok(Redirect::to(&known_url(visitor.id)).into_response())
}

pub async fn set_auto_pass(
    State(state): State<WebState>,
    Path((id, switch)): Path<(i64, String)>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let visitor = known_visitor(&state, id).await?;
    let on = match switch.as_str() {
        "on" => true,
        "off" => false,
        other => return Err(WebError::BadRequest(format!("auto-pass is \"on\" or \"off\", not {other:?}"))),
    };
    state.store().known_visitors().set_auto_pass(visitor.id, on).await?;
    tracing::info!(visitor = %visitor.id, auto_pass = on, by = %user.username, "auto-pass was switched");
    let message = match on {
        true => format!("{} gets a passcode at once whenever the door recognises them.", visitor.name),
        false => format!("You decide again when {} rings.", visitor.name),
    };
    state.auth().set_flash(&user, Flash::ok(message));
    Ok(Redirect::to("/visitors").into_response())
}

pub async fn forget_known(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let desk = desk(&state)?;
    let visitor = match known_visitor(&state, id).await {
        Ok(visitor) => visitor,
        // Forgotten already (a second click, or the hourly tidy-up): nothing is left to delete.
        Err(WebError::NotFound(_)) => return Ok(Redirect::to("/visitors").into_response()),
        Err(e) => return Err(e),
    };
    let photos = desk.forget_visitor(visitor.id).await.map_err(internal)?;
    tracing::info!(visitor = %visitor.id, photos, by = %user.username, "a known visitor was forgotten");
    let message = format!("{} is forgotten: their faces, visits and photos are deleted.", visitor.name);
    state.auth().set_flash(&user, Flash::ok(message));
    Ok(Redirect::to("/visitors").into_response())
}
