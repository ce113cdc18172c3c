//! Schedules and holidays on their own page, and a person's time limits on their page: when
//! people and cards may open the door.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::{AdminForm, Button, Flash, Signed, User};
use super::views::{Section, capitalised, csrf_field, page as frame, post_button};
use super::{WebError, WebState};
use crate::access::PersonId;
use crate::card::CardUid;
use crate::schedule::{self, AccessRules, Holiday, Limits, Window};
use crate::store::StoreError;

const PAGE: &str = "/schedules";

fn zone(state: &WebState) -> &jiff::tz::TimeZone {
    &state.clock().zone
}

async fn view(state: &WebState, user: &User, flash: Option<Flash>) -> Result<Markup, WebError> {
    let rules = state.store().door().access_rules().await?;
    let admin = user.is_admin();
    let body = html! {
        div.page-head { h1 { "Schedules and holidays" } }
        p.hint { "Times are in " (zone(state).iana_name().unwrap_or("UTC")) " (schedule.time_zone). "
            "A window whose end is not after its start runs past midnight." }
        div.two-columns {
            section.card {
                h2 { "Weekly schedules" }
                @if rules.schedules.is_empty() { p.muted { "No schedule yet: everyone may come in at any time." } }
                ul #schedules.items {
                    @for schedule in &rules.schedules {
                        li {
                            strong { (schedule.name) }
                            span.muted {
                                @for window in &schedule.windows { " · " (window.to_string()) }
                                @if schedule.open_on_holidays { " · open on holidays" } @else { " · closed on holidays" }
                            }
                            @if admin {
                                (post_button(user, &format!("{PAGE}/{}/remove", schedule.id), "Remove", "quiet danger-text",
                                    Some("Remove this schedule?")))
                            }
                        }
                    }
                }
                @if admin {
                    form.stack method="post" action=(PAGE) {
                        (csrf_field(user))
                        label for="schedule-name" { "Name (an existing one is replaced)" }
                        input #schedule-name name="name" required maxlength="100" autocomplete="off";
                        label for="schedule-windows" { "Windows, one a line" }
                        textarea #schedule-windows name="windows" rows="3" required placeholder="mon-fri 09:00-17:00" {}
                        label { input type="checkbox" name="open_on_holidays" value="true"; " Open on holidays too" }
                        button.primary type="submit" { "Save schedule" }
                    }
                }
            }
            section.card {
                h2 { "Holidays" }
                @if rules.holidays.is_empty() { p.muted { "No holidays." } }
                ul #holidays.items {
                    @for holiday in &rules.holidays {
                        li {
                            strong { (holiday.name) }
                            span.muted {
                                " · " (holiday.first)
                                @if holiday.last != holiday.first { " to " (holiday.last) }
                                @if holiday.yearly { " · every year" }
                            }
                            @if admin {
                                (post_button(user, &format!("{PAGE}/holidays/{}/remove", holiday.id), "Remove",
                                    "quiet danger-text", Some("Remove this holiday?")))
                            }
                        }
                    }
                }
                @if admin {
                    form.stack method="post" action=(format!("{PAGE}/holidays")) {
                        (csrf_field(user))
                        label for="holiday-name" { "Name" }
                        input #holiday-name name="name" required maxlength="100" autocomplete="off";
                        label for="holiday-first" { "First day" }
                        input #holiday-first type="date" name="first" required;
                        label for="holiday-last" { "Last day (empty: the first)" }
                        input #holiday-last type="date" name="last";
                        label { input type="checkbox" name="yearly" value="true"; " Every year" }
                        button.primary type="submit" { "Add holiday" }
                    }
                }
            }
        }
    };
    Ok(frame(state.machine(), user, flash, Section::Schedules, "Schedules", body))
}

pub async fn page(State(state): State<WebState>, Signed(user): Signed) -> Result<Markup, WebError> {
    let flash = state.auth().take_flash(&user);
    view(&state, &user, flash).await
}

/// After a change: back to the page with `flash`; a refused change shows the page again with 422.
async fn answer(state: &WebState, user: &User, result: Result<String, StoreError>) -> Result<Response, WebError> {
    match result {
        Ok(message) => {
            state.auth().set_flash(user, Flash::ok(message));
            Ok(Redirect::to(PAGE).into_response())
        }
        Err(StoreError::Conflict(message) | StoreError::NotFound(message)) => refuse(state, user, message).await,
        Err(e) => Err(e.into()),
    }
}

async fn refuse(state: &WebState, user: &User, message: String) -> Result<Response, WebError> {
    let page = view(state, user, Some(Flash::error(capitalised(&message)))).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ScheduleForm {
    name: String,
    windows: String,
    #[serde(default)]
    open_on_holidays: bool,
}

pub async fn save(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<ScheduleForm>,
) -> Result<Response, WebError> {
    let windows: Result<Vec<Window>, String> =
        form.windows.lines().filter(|line| !line.trim().is_empty()).map(str::parse).collect();
    let windows = match windows {
        Ok(windows) if !windows.is_empty() => windows,
        Ok(_) => return refuse(&state, &user, "give at least one window, e.g. mon-fri 09:00-17:00".into()).await,
        Err(problem) => return refuse(&state, &user, problem).await,
    };
    let saved = state.store().schedules().save_schedule(&form.name, &windows, form.open_on_holidays).await;
    answer(&state, &user, saved.map(|s| format!("Schedule {} saved.", s.name))).await
}

pub async fn remove(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let rules = state.store().door().access_rules().await?;
    let Some(schedule) = rules.schedule(id) else {
        return refuse(&state, &user, format!("no schedule with id {id}")).await;
    };
    let removed = state.store().schedules().remove_schedule(&schedule.name).await;
    answer(&state, &user, removed.map(|()| format!("Schedule {} removed.", schedule.name))).await
}

#[derive(Debug, Deserialize)]
pub struct HolidayForm {
    name: String,
    first: String,
    #[serde(default)]
    last: String,
    #[serde(default)]
    yearly: bool,
}

pub async fn add_holiday(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<HolidayForm>,
) -> Result<Response, WebError> {
    let day = |text: &str| text.trim().parse::<jiff::civil::Date>().map_err(|_| format!("{text:?} is not a date"));
    let first = match day(&form.first) {
        Ok(first) => first,
        Err(problem) => return refuse(&state, &user, problem).await,
    };
    let last = match form.last.trim() {
        "" => Ok(first),
        text => day(text),
    };
    let last = match last {
        Ok(last) => last,
        Err(problem) => return refuse(&state, &user, problem).await,
    };
    let holiday = Holiday { id: 0, name: form.name, first, last, yearly: form.yearly };
    let added = state.store().schedules().add_holiday(&holiday).await;
    answer(&state, &user, added.map(|h| format!("Holiday {} added.", h.name))).await
}

pub async fn remove_holiday(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let removed = state.store().schedules().remove_holiday(id).await;
    answer(&state, &user, removed.map(|()| "Holiday removed.".into())).await
}

/// A person's limits, their cards' and when each card can next get in, for the person's page.
pub fn person_section(
    state: &WebState,
    user: &User,
    person: PersonId,
    cards: &[CardUid],
    rules: &AccessRules,
) -> Markup {
    let zone = zone(state);
    let now = jiff::Timestamp::now();
    let limits = rules.person_limits(person);
    let local = |at: Option<jiff::Timestamp>| at.map(|at| schedule::local_time(at, zone));
    let schedule_name = |limits: &Limits| limits.schedule.and_then(|id| rules.schedule(id)).map(|s| s.name.clone());
    let next = rules.next_open(person, None, now, zone);
    html! {
        section.card #access {
            h2 { "When they may come in" }
            p {
                @if limits.is_unlimited() { "At any time: no limits." } @else {
                    @if let Some(from) = local(limits.valid_from) { "From " (from) ". " }
                    @if let Some(until) = local(limits.valid_until) { "Until " (until) " (that second is outside). " }
                    @if let Some(name) = schedule_name(&limits) { "Schedule " strong { (name) } "." }
                }
            }
            p.muted {
                "Next in: "
                @match next {
                    Some(at) if at == now => "now",
                    Some(at) => (schedule::local_time(at, zone)),
                    None => "never (expired, or no window within a year)",
                }
                @if !state.clock().sync.is_synchronised() {
                    " · the clock is not synchronised, so anyone with limits is refused for now"
                }
            }
            @for (card, card_limits) in rules.cards.iter().filter(|(uid, _)| cards.contains(uid)) {
                p.muted { "Card " code { (card) } " has its own limits"
                    @if let Some(until) = local(card_limits.valid_until) { ", until " (until) }
                    @if let Some(name) = schedule_name(card_limits) { ", schedule " (name) } "." }
            }
            @if user.is_admin() {
                form.stack method="post" action=(format!("/people/{person}/limits")) {
                    (csrf_field(user))
                    label for="valid-from" { "Valid from (empty: no limit)" }
                    input #valid-from name="valid_from" value=(local(limits.valid_from).unwrap_or_default()) placeholder="2026-06-01 08:00";
                    label for="valid-until" { "Valid until (empty: no limit)" }
                    input #valid-until name="valid_until" value=(local(limits.valid_until).unwrap_or_default()) placeholder="2026-06-15 00:00";
                    label for="schedule" { "Schedule" }
                    select #schedule name="schedule" {
                        option value="" { "None: any time" }
                        @for schedule in &rules.schedules {
                            option value=(schedule.id) selected[limits.schedule == Some(schedule.id)] { (schedule.name) }
                        }
                    }
                    button.primary type="submit" { "Save limits" }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    schedule: String,
}

/// The limits the form asks for; empty fields set none.
fn limits_from(form: &LimitsForm, zone: &jiff::tz::TimeZone) -> Result<Limits, String> {
    let moment = |text: &str| match text.trim() {
        "" => Ok(None),
        text => schedule::parse_moment(text, zone).map(Some),
    };
    let schedule = match form.schedule.trim() {
        "" => None,
        id => Some(id.parse().map_err(|_| format!("{id:?} is not a schedule"))?),
    };
    Ok(Limits { valid_from: moment(&form.valid_from)?, valid_until: moment(&form.valid_until)?, schedule })
}

pub async fn set_person_limits(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, form): AdminForm<LimitsForm>,
) -> Result<Response, WebError> {
    let url = format!("/people/{id}");
    let result = match limits_from(&form, zone(&state)) {
        Ok(limits) => state.store().schedules().set_person_limits(PersonId(id), &limits).await,
        Err(problem) => Err(StoreError::Conflict(problem)),
    };
    let flash = match result {
        Ok(()) => Flash::ok("Limits saved."),
        Err(StoreError::Conflict(message) | StoreError::NotFound(message)) => Flash::error(capitalised(&message)),
        Err(e) => return Err(e.into()),
    };
    state.auth().set_flash(&user, flash);
    Ok(Redirect::to(&url).into_response())
}
