//! The sign-in log: every attempt to sign in or to prove a password again is written down as it
//! ends, and admins read it on a page with filters.

use std::net::IpAddr;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::auth::Admin;
use super::views::{Paging, Section, filter_select, page as frame, pager, time_cell};
use super::{WebError, WebState};
use crate::store::{SignInAttempt, SignInEntry, SignInMethod, SignInOutcome, SignInQuery};

const PAGE_SIZE: u32 = 50;
/// Attempts older than this are deleted as new ones come in.
const KEPT_FOR: time::Duration = time::Duration::days(365);
/// At most this many attempts are kept, so that a flood of refused guesses cannot fill the disk.
const MOST_KEPT: u64 = 100_000;
/// The log is pruned at every this many attempts rather than at each, which would double the writes.
const PRUNE_EVERY: i64 = 100;

/// Who tried to sign in, from where and with what: read from the request.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub address: Option<IpAddr>,
    pub headers: &'a HeaderMap,
}

/// Writes down an attempt. The log is the owner's view, not a gate: when the database cannot take
/// it, the attempt still ends as it did and the daemon's log says so.
pub async fn remember(
    state: &WebState,
    caller: Caller<'_>,
    account: &str,
    method: SignInMethod,
    outcome: SignInOutcome,
) {
    write(state, attempt(caller, account, method, outcome), None).await;
}

/// What a face attempt saw: how alike the face was and a small picture of it, when it got that far.
#[derive(Debug, Default)]
pub struct FaceSeen {
    pub similarity: Option<f32>,
    pub thumbnail: Option<Vec<u8>>,
}

/// [`remember`] for a face attempt, with what it saw.
pub async fn remember_face(
    state: &WebState,
    caller: Caller<'_>,
    account: &str,
    outcome: SignInOutcome,
    seen: FaceSeen,
) {
    let attempt =
        SignInAttempt { similarity: seen.similarity, ..attempt(caller, account, SignInMethod::Face, outcome) };
    write(state, attempt, seen.thumbnail.as_deref()).await;
}

fn attempt(caller: Caller<'_>, account: &str, method: SignInMethod, outcome: SignInOutcome) -> SignInAttempt {
    SignInAttempt {
        at: OffsetDateTime::now_utc(),
        account: account.to_owned(),
        method,
        outcome,
        address: caller.address,
        user_agent: caller.headers.get(header::USER_AGENT).and_then(|agent| agent.to_str().ok()).map(str::to_owned),
        similarity: None,
    }
}

async fn write(state: &WebState, attempt: SignInAttempt, thumbnail: Option<&[u8]>) {
    let (account, method, outcome) = (&attempt.account, attempt.method, attempt.outcome);
    let log = state.store().sign_ins();
    match log.record_sign_in(&attempt, thumbnail).await {
        Ok(id) if id % PRUNE_EVERY == 0 => {
            if let Err(e) = log.prune_sign_ins(attempt.at - KEPT_FOR, MOST_KEPT).await {
                tracing::warn!(error = %e, "could not prune the sign-in log");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, account, %method, %outcome, "could not log a sign-in attempt"),
    }
}

/// The filters as the form and the links carry them; empty means "any".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Filters {
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    outcome: String,
    #[serde(skip_serializing)]
    page: Option<u32>,
}

impl Filters {
    fn query(&self) -> Result<SignInQuery, WebError> {
        let text = |value: &str| Some(value.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
        let bad = |field: &str, detail: String| WebError::BadRequest(format!("filter {field}: {detail}"));
        Ok(SignInQuery {
            account: text(&self.account),
            method: text(&self.method).map(|m| m.parse()).transpose().map_err(|e| bad("method", e))?,
            outcome: text(&self.outcome).map(|o| o.parse()).transpose().map_err(|e| bad("outcome", e))?,
            ..SignInQuery::default()
        })
    }
}

fn row(entry: &SignInEntry) -> Markup {
    let a = &entry.attempt;
    let badge = if a.outcome.succeeded() { "badge granted" } else { "badge denied" };
    html! {
        tr data-id=(entry.id) {
            td data-label="Time" { (time_cell(a.at)) }
            td data-label="Account" { (a.account) }
            td data-label="Method" { (a.method) }
            td data-label="Outcome" { span class=(badge) { (a.outcome) } }
            td data-label="Address" { @if let Some(address) = a.address { code { (address) } } @else { "—" } }
            td data-label="Face" {
                @if entry.has_thumbnail {
                    img.thumb.face-thumb src=(format!("/sign-ins/{}/face", entry.id)) alt="The face of the attempt" loading="lazy";
                }
                @if let Some(similarity) = a.similarity { span.similarity { (format!("{similarity:.1}")) } }
                @if !entry.has_thumbnail && a.similarity.is_none() { "—" }
            }
            td.agent data-label="Browser" title=[a.user_agent.as_deref()] { (a.user_agent.as_deref().unwrap_or("—")) }
        }
    }
}

pub async fn page(
    State(state): State<WebState>,
    Admin(user): Admin,
    Query(filters): Query<Filters>,
) -> Result<Markup, WebError> {
    let query = filters.query()?;
    let log = state.store().sign_ins();
    let total = log.count_sign_ins(&query).await?;
    let paging = Paging::new(filters.page, total, PAGE_SIZE);
    let entries = log.sign_ins(&SignInQuery { limit: PAGE_SIZE, offset: paging.offset, ..query }).await?;
    let methods: Vec<&str> = SignInMethod::ALL.iter().map(|m| m.as_str()).collect();
    let outcomes: Vec<&str> = SignInOutcome::ALL.iter().map(|o| o.as_str()).collect();
    let encoded = serde_urlencoded::to_string(&filters).unwrap_or_default();
    let body = html! {
        div.page-head { h1 { "Sign-in log" } }
        p.muted { "Every attempt to sign in to this web app, or to prove who one is again (a password change, a step-up), \
                   whether it worked or not; face attempts with how alike the face was (0–100) and a small \
                   picture of it. Kept for a year, at most " (MOST_KEPT) " attempts." }
        details.card.filters open[!encoded.is_empty()] {
            summary { "Filter" @if !encoded.is_empty() { span.muted { " (active)" } } }
            form.filter-grid method="get" action="/sign-ins" {
                div {
                    label for="account" { "Account" }
                    input #account name="account" value=(filters.account) autocomplete="off";
                }
                div { (filter_select("method", "Method", &filters.method, &methods)) }
                div { (filter_select("outcome", "Outcome", &filters.outcome, &outcomes)) }
                div.filter-actions {
                    button.primary type="submit" { "Filter" }
                    a href="/sign-ins" { "Clear" }
                }
            }
        }
        p.muted { span #sign-in-total { (total) " attempt" @if total != 1 { "s" } } }
        div.table-wrap {
            table #sign-ins.history {
                thead { tr {
                    th { "Time" } th { "Account" } th { "Method" } th { "Outcome" } th { "Address" } th { "Face" } th { "Browser" }
                } }
                tbody {
                    @for entry in &entries { (row(entry)) }
                    @if entries.is_empty() { tr.empty { td colspan="7" { "No sign-in attempts." } } }
                }
            }
        }
        (pager(paging, "/sign-ins", &encoded))
    };
    let flash = state.auth().take_flash(&user);
    Ok(frame(state.machine(), &user, flash, Section::Settings, "Sign-in log", body))
}

/// The small picture of a face attempt: admins only, as the log is.
pub async fn face(
    State(state): State<WebState>,
    Admin(_user): Admin,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<axum::response::Response, WebError> {
    let thumbnail = state
        .store()
        .sign_ins()
        .sign_in_thumbnail(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("attempt {id} kept no picture")))?;
    Ok(super::history::image_response(thumbnail, "image/jpeg"))
}
