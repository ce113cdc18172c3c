//! The dashboard: the door's state, live; arm and disarm; simulated taps and doorbell presses;
//! the latest attempts.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::Stream;
use maud::{Markup, html};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use super::auth::{AdminForm, Button, Flash, Signed, User};
use super::views::{Section, csrf_field, page as frame};
use super::{WebError, WebState, history};
use crate::access::AccessEvent;
use crate::card::CardUid;
use crate::door::Mode;
use crate::driver::{Command, ControlHandle, Status};
use crate::hw::Lock;

/// The notification backlog is re-read this often for open dashboards.
const STATUS_REFRESH: Duration = Duration::from_secs(5);

fn armed_text(armed: bool) -> &'static str {
    if armed { "Armed" } else { "Disarmed" }
}

fn lock_text(lock: Lock) -> &'static str {
    if lock == Lock::Unlocked { "Unlocked" } else { "Locked" }
}

fn busy_text(busy: bool) -> &'static str {
    if busy { "Checking a tap…" } else { "Idle" }
}

/// A device's backend and whether it works.
fn device_text(backend: &str, error: Option<&String>) -> String {
    match error {
        Some(error) => format!("{backend} · failing: {error}"),
        None => format!("{backend} · working"),
    }
}

/// What waits to be sent: the MQTT outbox, then each message channel's waiting and failed messages.
fn backlog_text(status: &Status) -> String {
    let outbox = status.outbox_backlog.map_or_else(|| "unknown (database away)".to_owned(), |n| n.to_string());
    if status.messages.is_empty() {
        return outbox;
    }
    let mut parts = vec![format!("MQTT {outbox}")];
    for (channel, counts) in &status.messages {
        let failed = if counts.failed > 0 { format!(", {} failed", counts.failed) } else { String::new() };
        parts.push(format!("{channel} {}{failed}", counts.waiting));
    }
    parts.join(" · ")
}

/// Whether time limits can be trusted; read when the page is built, not part of the live feed.
fn clock_text(synchronised: Option<bool>) -> &'static str {
    match synchronised {
        Some(true) => "Synchronised",
        Some(false) => "Not synchronised: people and cards with time limits are refused",
        None => "Unknown",
    }
}

/// The status as the page script reads it from the live feed.
fn status_json(status: &Status) -> serde_json::Value {
    serde_json::json!({
        "armed": status.armed,
        "armed_text": armed_text(status.armed),
        "lock_text": lock_text(status.lock),
        "unlocked": status.lock == Lock::Unlocked,
        "busy_text": busy_text(status.busy),
        "camera_text": device_text(&status.camera, status.camera_error.as_ref()),
        "camera_ok": status.camera_error.is_none(),
        "reader_text": device_text(&status.reader, status.reader_error.as_ref()),
        "reader_ok": status.reader_error.is_none(),
        "speaker_text": device_text(&status.speaker, status.speaker_error.as_ref()),
        "speaker_ok": status.speaker_error.is_none(),
        "backlog_text": backlog_text(status),
    })
}

fn tile(label: &str, id: &str, value: &str, extra: Markup) -> Markup {
    html! {
        div.tile {
            span.tile-label { (label) }
            strong id=(id) { (value) }
            (extra)
        }
    }
}

/// Cards to offer as one-click simulated taps: the enrolled ones and those the simulated camera
/// has pictures for (the demo's), with who holds them.
async fn tappable_cards(state: &WebState) -> Result<BTreeMap<CardUid, Option<String>>, WebError> {
    let mut cards: BTreeMap<CardUid, Option<String>> =
        state.store().people().list_cards().await?.into_iter().map(|card| (card.uid, Some(card.person.name))).collect();
    if let Some(folder) = &state.0.simulated_camera
        && let Ok(entries) = std::fs::read_dir(folder)
    {
        for entry in entries.flatten() {
            if let Some(uid) = entry.file_name().to_str().and_then(|name| name.parse::<CardUid>().ok()) {
                cards.entry(uid).or_insert(None);
            }
        }
    }
    Ok(cards)
}

fn simulated_taps(user: &User, cards: &BTreeMap<CardUid, Option<String>>) -> Markup {
    html! {
        section.card {
            h2 { "Simulate a tap" }
            p.hint { "The card reader is simulated: tap a card from here and watch the door decide." }
            @if !cards.is_empty() {
                div.tap-buttons {
                    @for (uid, holder) in cards {
                        form.inline method="post" action="/tap" {
                            (csrf_field(user))
                            input type="hidden" name="card" value=(uid);
                            button.secondary type="submit" {
                                "Tap " code { (uid) }
                                span.muted { " · " (holder.as_deref().unwrap_or("unknown card")) }
                            }
                        }
                    }
                }
            }
            form.row method="post" action="/tap" {
                (csrf_field(user))
                label for="tap-card" { "Card to tap" }
                input #tap-card name="card" placeholder="04A1B2C3" autocomplete="off" required;
                button.primary type="submit" { "Simulate tap" }
            }
        }
    }
}

/// The simulated doorbell's button, for admins while visitors ring.
fn simulated_bell(user: &User) -> Markup {
    html! {
        section.card {
            h2 { "Simulate the doorbell" }
            p.hint { "The doorbell is simulated: press it and the owner is told, with the door camera's photo." }
            form.inline method="post" action="/ring" {
                (csrf_field(user))
                button.primary type="submit" { "Ring the bell" }
            }
        }
    }
}

/// The door's dashboard; a console, which has no door of its own, shows the site instead.
pub async fn page(State(state): State<WebState>, Signed(user): Signed) -> Result<Response, WebError> {
    let Ok(door) = state.door() else {
        return Ok(Redirect::to("/site").into_response());
    };
    let status = door.control.current_status().await;
    let taps = match (&door.control.taps, user.is_admin()) {
        (Some(_), true) => Some(tappable_cards(&state).await?),
        _ => None,
    };
    // Without visitors nothing listens to the bell: no button that cannot ring.
    let bell_button = user.is_admin() && door.control.presses.is_some() && state.0.ringer.is_some();
    let recent = history::recent_rows(&state, 5).await?;
    let arm_forms = html! {
        @if user.is_admin() {
            form.inline method="post" action="/arm" data-show-when="disarmed" hidden[status.armed] {
                (csrf_field(&user))
                button.primary type="submit" { "Arm" }
            }
            form.inline method="post" action="/disarm" data-show-when="armed" hidden[!status.armed] {
                (csrf_field(&user))
                button.danger type="submit" { "Disarm" }
            }
        }
    };
    let body = html! {
        div.page-head {
            h1 { "Door " q { (status.door) } }
            span.live-dot title="Live: this page updates by itself" { "live" }
        }
        @if status.mode == Mode::CardOnly {
            // Card-only is for commissioning; left on, any enrolled card opens without its face.
            div.flash.error #card-only role="alert" {
                "Card-only mode: any enrolled card opens this door without a face. Set door.mode = \"card+face\" \
                 in the configuration once commissioning is done."
            }
        }
        section.status-grid data-status-feed="/events" {
            div.tile.main-tile data-armed=(status.armed) {
                span.tile-label { "System" }
                strong #armed-state { (armed_text(status.armed)) }
                div.tile-actions { (arm_forms) }
            }
            (tile("Lock", "lock-state", lock_text(status.lock), html! {}))
            (tile("Attempt", "busy-state", busy_text(status.busy), html! {}))
            (tile("Card reader", "reader-state", &device_text(&status.reader, status.reader_error.as_ref()), html! {}))
            (tile("Camera", "camera-state", &device_text(&status.camera, status.camera_error.as_ref()), html! {}))
            (tile("Speaker", "speaker-state", &device_text(&status.speaker, status.speaker_error.as_ref()), html! {}))
            (tile("Face engine", "engine-state", &status.engine, html! {}))
            (tile("Clock", "clock-state", clock_text(status.clock_synchronised), html! {}))
            (tile("Notifications waiting", "backlog", &backlog_text(&status), html! {}))
        }
        @if let Some(cards) = &taps { (simulated_taps(&user, cards)) }
        @if bell_button { (simulated_bell(&user)) }
        section.card {
            div.section-head {
                h2 { "Latest attempts" }
                a href="/history" { "All history →" }
            }
            (history::table(recent, Some("/history/rows?limit=5")))
        }
    };
    let flash = state.auth().take_flash(&user);
    Ok(frame(state.machine(), &user, flash, Section::Dashboard, "Dashboard", body).into_response())
}

async fn set_armed(state: &WebState, user: &User, armed: bool) -> Result<Response, WebError> {
    state
        .door()?
        .control
        .command(|done| Command::SetArmed { armed, done })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    tracing::info!(user = %user.username, armed, "armed state changed from the web app");
    let message =
        if armed { "Armed: enrolled people can open the door." } else { "Disarmed: taps are logged, nothing opens." };
    state.auth().set_flash(user, Flash::ok(message));
    Ok(Redirect::to("/").into_response())
}

pub async fn arm(
    State(state): State<WebState>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    set_armed(&state, &user, true).await
}

pub async fn disarm(
    State(state): State<WebState>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    set_armed(&state, &user, false).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TapForm {
    card: String,
}

pub async fn tap(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<TapForm>,
) -> Result<Response, WebError> {
    let card: CardUid =
        form.card.parse().map_err(|e: crate::card::CardUidError| WebError::BadRequest(e.to_string()))?;
    let Some(taps) = &state.door()?.control.taps else {
        return Err(WebError::BadRequest("the card reader is not simulated (hardware.reader); tap a real card".into()));
    };
    taps.tap(card.clone()).await.map_err(|e| WebError::Internal(e.to_string()))?;
    state.auth().set_flash(
        &user,
        Flash::ok(format!("Tapped card {card}; the attempt appears below as soon as it is decided.")),
    );
    Ok(Redirect::to("/").into_response())
}

/// Presses the simulated doorbell, as `facereko ring` does.
pub async fn ring(
    State(state): State<WebState>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let Some(presses) = &state.door()?.control.presses else {
        return Err(WebError::BadRequest("the doorbell is not simulated (hardware.bell); press the real one".into()));
    };
    presses.press().await.map_err(|e| WebError::BadRequest(e.to_string()))?;
    tracing::info!(user = %user.username, "the simulated doorbell was pressed from the web app");
    state.auth().set_flash(&user, Flash::ok("Rang the bell; the owner is told unless it rang moments ago."));
    Ok(Redirect::to("/").into_response())
}

/// What the live feed holds between events.
struct Feed {
    control: ControlHandle,
    status: watch::Receiver<Status>,
    attempts: broadcast::Receiver<AccessEvent>,
    refresh: tokio::time::Interval,
    first: bool,
}

impl Feed {
    async fn status_event(&mut self) -> Event {
        self.status.borrow_and_update();
        let status = self.control.current_status().await;
        Event::default().event("status").data(status_json(&status).to_string())
    }

    /// The next event, or `None` once the door has stopped.
    async fn next(&mut self) -> Option<Event> {
        if std::mem::take(&mut self.first) {
            return Some(self.status_event().await);
        }
        tokio::select! {
            changed = self.status.changed() => match changed {
                Ok(()) => Some(self.status_event().await),
                Err(_) => None,
            },
            attempt = self.attempts.recv() => match attempt {
                Ok(event) => {
                    let data = serde_json::json!({ "decision": event.decision, "reason": event.reason });
                    Some(Event::default().event("attempt").data(data.to_string()))
                }
                // Missed some: the page reloads its rows all the same.
                Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::default().event("attempt").data("{}")),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            _ = self.refresh.tick() => Some(self.status_event().await),
        }
    }
}

/// Server-sent events: `status` whenever the door's state changes (and every few seconds for the
/// backlog), `attempt` whenever an attempt is logged.
pub async fn events(
    State(state): State<WebState>,
    Signed(user): Signed,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let door = state.door()?;
    let mut refresh = tokio::time::interval(STATUS_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.reset();
    let feed = Feed {
        control: door.control.clone(),
        status: door.control.status.clone(),
        attempts: door.attempts.subscribe(),
        refresh,
        first: true,
    };
    let stream = futures_util::stream::unfold((feed, state, user), |(mut feed, state, user)| async move {
        let event = feed.next().await?;
        // The feed lasts only as long as its session: signing out, a removed account or a changed
        // password ends it at the next event.
        if !state.auth().still_signed_in(&user, state.store()).await {
            return None;
        }
        Some((Ok(event), (feed, state, user)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
