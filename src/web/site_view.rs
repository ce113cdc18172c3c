//! The site view: every door of the site from the database's `doors` table with the state it
//! keeps retained on MQTT, its last attempts, and (admins) arm, disarm and open sent to it as
//! commands over MQTT; disarm and open ask for the step-up first.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::auth::{AdminForm, Button, Flash, Signed, User};
use super::step_up::ConfirmedAdminForm;
use super::views::{Section, page as frame, post_button, time_cell};
use super::{WebError, WebState, history};
use crate::hw::Lock;
use crate::notify::{PartState, slug};
use crate::site::{self, Action};
use crate::site_link::{ACK_WAIT, Reported, Sent};
use crate::store::{LogQuery, SiteDoor};

/// Attempts shown under each door.
const RECENT: u32 = 3;

fn part_text(part: &PartState) -> String {
    match &part.error {
        Some(error) => format!("{} · failing: {error}", part.backend),
        None => format!("{} · working", part.backend),
    }
}

fn tile(label: &str, value: &str) -> Markup {
    html! { div.tile { span.tile-label { (label) } strong { (value) } } }
}

/// The door's state as heard on MQTT: its tiles, or why there are none.
fn state_markup(reported: Option<&Reported>, heard: bool) -> Markup {
    html! {
        @match reported {
            Some(Reported::Online { state, backlog }) => div.status-grid {
                (tile("System", if state.armed { "Armed" } else { "Disarmed" }))
                (tile("Lock", if state.lock == Lock::Unlocked { "Unlocked" } else { "Locked" }))
                (tile("Card reader", &part_text(&state.reader)))
                (tile("Camera", &part_text(&state.camera)))
                (tile("Face engine", &state.engine))
                (tile("Notifications waiting", &backlog.map_or_else(|| "unknown (database away)".into(), |n| n.to_string())))
            },
            Some(Reported::Offline) => p.hint { "Offline: the broker lost the door (its last will). Commands are refused until it is back." },
            None if heard => p.hint { "No state heard from this door: it does not run, or it does not publish its state (mqtt.door_state)." },
            None => p.hint { "Door states and commands need MQTT here: set mqtt.door_state and mqtt.commands." },
        }
    }
}

fn door_card(user: &User, door: &SiteDoor, reported: Option<&Reported>, heard: bool, recent: Markup) -> Markup {
    let now = OffsetDateTime::now_utc();
    let armed = match reported {
        Some(Reported::Online { state, .. }) => Some(state.armed),
        _ => None,
    };
    let (badge, label) = match reported {
        Some(Reported::Online { .. }) => ("badge granted", "online"),
        Some(Reported::Offline) => ("badge denied", "offline"),
        None => ("badge warn", "state unknown"),
    };
    let action = |verb: Action| format!("/site/{}/{}", door.id, verb.as_str());
    html! {
        section.card.site-door id=(format!("door-{}", slug(&door.id))) data-door=(door.id) {
            div.section-head {
                h2 { (door.name) }
                span class=(badge) data-door-state { (label) }
            }
            p.hint {
                code { (door.id) } " · version " (door.version) " · seen in the database " (time_cell(door.last_seen))
                @if let Some(address) = &door.web_address { " · " a href=(address) { "its web app" } }
            }
            @if site::cut_off(door, now) {
                p.flash.error data-cut-off {
                    "Cut off from the database: not seen there for "
                    ((now - door.last_seen).whole_minutes()) " minutes. "
                    "If it runs, it decides from its local copy and keeps its attempts in its spool until the database is back."
                }
            }
            (state_markup(reported, heard))
            @if let (true, Some(armed)) = (user.is_admin(), armed) {
                div.tile-actions {
                    @if armed {
                        (post_button(user, &action(Action::Disarm), "Disarm", "danger", None))
                        (post_button(user, &action(Action::Open), "Open", "secondary", Some("Open this door now?")))
                    } @else {
                        (post_button(user, &action(Action::Arm), "Arm", "primary", None))
                    }
                }
            }
            (recent)
            p { a href=(format!("/history?door={}", door.id)) { "History of this door →" } }
        }
    }
}

pub async fn page(State(state): State<WebState>, Signed(user): Signed) -> Result<Markup, WebError> {
    let doors = state.store().doors().list_doors().await?;
    let site = state.0.site.as_ref();
    let mut cards = Vec::with_capacity(doors.len());
    for door in &doors {
        let query = LogQuery { limit: RECENT, door: Some(door.id.clone()), ..LogQuery::default() };
        let recent = state.store().log().access_log(&query).await?;
        let reported = site.and_then(|site| site.reported(&door.id));
        cards.push(door_card(&user, door, reported.as_ref(), site.is_some(), history::table(recent, None)));
    }
    let body = html! {
        div.page-head {
            h1 { "Site" }
            a.button.secondary href="/history" { "History of every door" }
        }
        p.hint {
            "Every door registered in the database, with the state it keeps on MQTT. A door is cut off when it "
            "has not noted itself in the database for " (site::CUT_OFF_AFTER.as_secs() / 60) " minutes and a half."
        }
        @if doors.is_empty() { section.card { p { "No door has registered yet." } } }
        @for card in cards { (card) }
    };
    let flash = state.auth().take_flash(&user);
    Ok(frame(state.machine(), &user, flash, Section::Site, "Site", body))
}

/// Sends `action` to `door` and says how it went.
async fn command(state: &WebState, user: &User, door: &str, action: Action) -> Result<Response, WebError> {
    let Some(site) = state.0.site.as_ref() else {
        return Err(WebError::BadRequest("commands to the site's doors need mqtt.commands = true here".into()));
    };
    let doors = state.store().doors().list_doors().await?;
    let Some(known) = doors.iter().find(|known| known.id == door) else {
        return Err(WebError::NotFound(format!("no door {door:?} is registered")));
    };
    let name = &known.name;
    let sent = site.send(door, action, &user.username).await;
    tracing::info!(user = %user.username, %door, command = action.as_str(), outcome = ?sent, "command from the site view");
    let flash = match sent {
        Sent::Done => Flash::ok(format!("{name}: {} done (the door acknowledged it).", action.as_str())),
        Sent::Refused(reason) => Flash::error(format!("{name} refused to {}: {reason}.", action.as_str())),
        Sent::NoAnswer => Flash::error(format!(
            "No answer from {name} within {} s: it may or may not have done it; look at its state.",
            ACK_WAIT.as_secs()
        )),
        Sent::Offline => Flash::error(format!("{name} is offline: nothing was sent (commands are never queued).")),
    };
    state.auth().set_flash(user, flash);
    Ok(Redirect::to(&format!("/site#door-{}", slug(door))).into_response())
}

pub async fn arm(
    State(state): State<WebState>,
    Path(door): Path<String>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    command(&state, &user, &door, Action::Arm).await
}

/// Disarming another door changes who can get in: it needs a recent sign-in or the step-up.
pub async fn disarm(
    State(state): State<WebState>,
    Path(door): Path<String>,
    ConfirmedAdminForm(user, _form): ConfirmedAdminForm<Button>,
) -> Result<Response, WebError> {
    command(&state, &user, &door, Action::Disarm).await
}

/// Opening from afar: a recent sign-in or the step-up, then the door's normal timed unlock.
pub async fn open(
    State(state): State<WebState>,
    Path(door): Path<String>,
    ConfirmedAdminForm(user, _form): ConfirmedAdminForm<Button>,
) -> Result<Response, WebError> {
    command(&state, &user, &door, Action::Open).await
}
