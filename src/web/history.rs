//! The access history: newest first, filtered and paginated, with photos served only by log-row id
//! to signed-in users, and a CSV export.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::auth::Signed;
use super::views::{Paging, Section, decision_badge, filter_select, page as frame, pager, time_cell};
use super::{WebError, WebState};
use crate::access::{Decision, Reason};
use crate::store::{LogEntry, LogQuery};

const PAGE_SIZE: u32 = 25;
/// The live fragment and the dashboard ask for at most this many rows.
const MAX_FRAGMENT_ROWS: u32 = 100;
/// Rows read from the store per round while exporting.
const EXPORT_CHUNK: u32 = 500;
/// An export larger than this is cut (the filters narrow it down).
const MAX_EXPORT_ROWS: u32 = 100_000;
const THUMB_WIDTH: u32 = 240;
const THUMB_HEIGHT: u32 = 180;

/// The filters as the form and the links carry them; empty means "any".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Filters {
    #[serde(skip_serializing_if = "String::is_empty")]
    person: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    card: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    decision: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    /// One door of the site, by its id.
    #[serde(skip_serializing_if = "String::is_empty")]
    door: String,
    /// First day shown, YYYY-MM-DD, in the browser's time zone.
    #[serde(skip_serializing_if = "String::is_empty")]
    from: String,
    /// Last day shown, YYYY-MM-DD, in the browser's time zone.
    #[serde(skip_serializing_if = "String::is_empty")]
    to: String,
    /// One attempt only: the link in an e-mail or text message.
    #[serde(skip_serializing_if = "String::is_empty")]
    event: String,
    /// The browser's offset from UTC in minutes, set by the page script.
    #[serde(skip_serializing_if = "Option::is_none")]
    tz: Option<i32>,
    #[serde(skip_serializing)]
    page: Option<u32>,
    #[serde(skip_serializing)]
    limit: Option<u32>,
}

fn bad(field: &str, detail: impl std::fmt::Display) -> WebError {
    WebError::BadRequest(format!("filter {field}: {detail}"))
}

impl Filters {
    /// The store query for these filters, without limit and offset.
    fn query(&self) -> Result<LogQuery, WebError> {
        let text = |value: &str| Some(value.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
        let offset_minutes = self.tz.unwrap_or(0);
        let offset = UtcOffset::from_whole_seconds(offset_minutes.saturating_mul(60)).map_err(|e| bad("tz", e))?;
        let day = |field: &str, value: &str| -> Result<Option<Date>, WebError> {
            text(value)
                .map(|v| {
                    Date::parse(&v, format_description!("[year]-[month]-[day]"))
                        .map_err(|_| bad(field, "use YYYY-MM-DD"))
                })
                .transpose()
        };
        let midnight = |date: Date| PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(offset);
        Ok(LogQuery {
            person: text(&self.person),
            card: text(&self.card).map(|c| c.parse()).transpose().map_err(|e| bad("card", e))?,
            decision: text(&self.decision)
                .map(|d| d.parse::<Decision>())
                .transpose()
                .map_err(|e| bad("decision", e))?,
            reason: text(&self.reason).map(|r| r.parse::<Reason>()).transpose().map_err(|e| bad("reason", e))?,
            since: day("from", &self.from)?.map(midnight),
            until: day("to", &self.to)?.and_then(|d| d.next_day()).map(midnight),
            event_id: text(&self.event),
            door: text(&self.door),
            ..LogQuery::default()
        })
    }

    /// These filters as a query string, for links and the live fragment.
    fn encoded(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

fn timings(entry: &LogEntry) -> String {
    let t = &entry.event.timings;
    let mut parts = vec![format!("read {}", t.read_ms)];
    if let Some(ms) = t.capture_ms {
        parts.push(format!("capture {ms}"));
    }
    if let Some(ms) = t.match_ms {
        parts.push(format!("match {ms}"));
    }
    parts.push(format!("actuate {}", t.actuate_ms));
    format!("{} = {} ms", parts.join(" · "), t.total_ms)
}

fn row(entry: &LogEntry) -> Markup {
    let e = &entry.event;
    html! {
        tr data-id=(entry.id) {
            td data-label="Time" { (time_cell(e.at)) }
            td.photo-cell data-label="Photo" {
                @if e.photo.is_some() {
                    a.photo href=(format!("/history/{}/photo", entry.id)) target="_blank" rel="noopener" {
                        img.thumb src=(format!("/history/{}/thumb", entry.id)) alt="Photo of the attempt"
                            width=(THUMB_WIDTH / 2) height=(THUMB_HEIGHT / 2);
                    }
                } @else {
                    span.muted { "no photo" }
                }
            }
            td data-label="Door" { (e.door) }
            td data-label="Person" { (e.person_name.as_deref().unwrap_or("—")) }
            td data-label="Card" { @if let Some(card) = &e.card_uid { code { (card) } } @else { "—" } }
            td.decision data-label="Decision" { (decision_badge(e.decision)) }
            td.reason data-label="Reason" title=[e.detail.as_deref()] { (e.reason) }
            td data-label="Similarity" { @if let Some(s) = e.similarity { (format!("{s:.1} %")) } @else { "—" } }
            td data-label="Engine" { (e.engine.as_deref().unwrap_or("—")) }
            td.timings data-label="Timings" { (timings(entry)) }
        }
    }
}

fn rows_markup(entries: &[LogEntry]) -> Markup {
    html! {
        @for entry in entries { (row(entry)) }
        @if entries.is_empty() {
            tr.empty { td colspan="10" { "No attempts yet." } }
        }
    }
}

/// The history table; with `live_src` the page script reloads its rows from there whenever an
/// attempt is logged.
pub fn table(entries: Vec<LogEntry>, live_src: Option<&str>) -> Markup {
    html! {
        div.table-wrap {
            table #history.history {
                thead { tr {
                    th { "Time" } th { "Photo" } th { "Door" } th { "Person" } th { "Card" } th { "Decision" }
                    th { "Reason" } th { "Similarity" } th { "Engine" } th { "Timings (ms)" }
                } }
                tbody data-live-src=[live_src] { (rows_markup(&entries)) }
            }
        }
    }
}

/// The newest `limit` attempts.
pub async fn recent_rows(state: &WebState, limit: u32) -> Result<Vec<LogEntry>, WebError> {
    Ok(state.store().log().access_log(&LogQuery { limit, ..LogQuery::default() }).await?)
}

pub async fn page(
    State(state): State<WebState>,
    Signed(user): Signed,
    Query(filters): Query<Filters>,
) -> Result<Markup, WebError> {
    let query = filters.query()?;
    let total = state.store().log().count_access_log(&query).await?;
    let paging = Paging::new(filters.page, total, PAGE_SIZE);
    let entries =
        state.store().log().access_log(&LogQuery { limit: PAGE_SIZE, offset: paging.offset, ..query }).await?;
    let mut people: Vec<String> = state.store().people().list_people().await?.into_iter().map(|p| p.name).collect();
    if !filters.person.is_empty() && !people.contains(&filters.person) {
        // Someone removed since: their attempts keep the name.
        people.push(filters.person.clone());
    }
    let mut doors: Vec<String> = state.store().doors().list_doors().await?.into_iter().map(|d| d.id).collect();
    if !filters.door.is_empty() && !doors.contains(&filters.door) {
        // A door that never registered (its attempts were imported, or it ran before sites).
        doors.push(filters.door.clone());
    }
    let decisions: Vec<String> = Decision::ALL.iter().map(|d| d.as_str().to_owned()).collect();
    let reasons: Vec<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    let encoded = filters.encoded();
    let live_src = (paging.page == 1).then(|| format!("/history/rows?{encoded}"));
    let body = html! {
        div.page-head {
            h1 { "Access history" }
            a.button.secondary href=(format!("/history.csv?{encoded}")) download { "Export CSV" }
        }
        details.card.filters open[!encoded.is_empty()] {
            summary { "Filter" @if !encoded.is_empty() { span.muted { " (active)" } } }
            form.filter-grid method="get" action="/history" {
                input type="hidden" name="tz" value=(filters.tz.unwrap_or(0)) data-tz;
                div { (filter_select("person", "Person", &filters.person, &people)) }
                div {
                    label for="card" { "Card" }
                    input #card name="card" value=(filters.card) placeholder="04A1B2C3";
                }
                div { (filter_select("door", "Door", &filters.door, &doors)) }
                div { (filter_select("decision", "Decision", &filters.decision, &decisions)) }
                div { (filter_select("reason", "Reason", &filters.reason, &reasons)) }
                div { label for="from" { "From" } input #from type="date" name="from" value=(filters.from); }
                div { label for="to" { "To" } input #to type="date" name="to" value=(filters.to); }
                div.filter-actions {
                    button.primary type="submit" { "Filter" }
                    a href="/history" { "Clear" }
                }
            }
        }
        p.muted {
            span #history-total { (total) " attempt" @if total != 1 { "s" } }
            @if paging.page == 1 { " · new ones appear by themselves" }
        }
        (table(entries, live_src.as_deref()))
        (pager(paging, "/history", &encoded))
    };
    let flash = state.auth().take_flash(&user);
    Ok(frame(state.machine(), &user, flash, Section::History, "History", body))
}

/// The first rows for the filters, without the page around them: what live updates swap in. The
/// `X-Total-Count` header says how many rows the filters match in all.
pub async fn rows(
    State(state): State<WebState>,
    Signed(_user): Signed,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let limit = filters.limit.unwrap_or(PAGE_SIZE).clamp(1, MAX_FRAGMENT_ROWS);
    let query = filters.query()?;
    let total = state.store().log().count_access_log(&query).await?;
    let entries = state.store().log().access_log(&LogQuery { limit, ..query }).await?;
    Ok(([("x-total-count", total.to_string())], rows_markup(&entries)).into_response())
}

/// One CSV field, quoted when needed; a leading formula character is neutralised so that a
/// spreadsheet never runs a name or detail as a formula.
fn csv_field(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

fn csv_line(entry: &LogEntry) -> String {
    let e = &entry.event;
    let t = &e.timings;
    let number = |value: Option<u32>| value.map(|v| v.to_string()).unwrap_or_default();
    let fields = [
        entry.id.to_string(),
        e.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        e.door.clone(),
        e.card_uid.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        e.person_name.clone().unwrap_or_default(),
        e.decision.to_string(),
        e.reason.to_string(),
        e.similarity.map(|s| format!("{s:.2}")).unwrap_or_default(),
        e.confidence.map(|s| format!("{s:.2}")).unwrap_or_default(),
        e.engine.clone().unwrap_or_default(),
        t.read_ms.to_string(),
        number(t.capture_ms),
        number(t.match_ms),
        t.actuate_ms.to_string(),
        t.total_ms.to_string(),
        e.detail.clone().unwrap_or_default(),
        if e.photo.is_some() { format!("/history/{}/photo", entry.id) } else { String::new() },
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

const CSV_HEADER: &str = "id,time,door,card,person,decision,reason,similarity,confidence,engine,\
                          read_ms,capture_ms,match_ms,actuate_ms,total_ms,detail,photo\r\n";

pub async fn csv(
    State(state): State<WebState>,
    Signed(_user): Signed,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let query = filters.query()?;
    let mut text = String::from(CSV_HEADER);
    let mut offset = 0;
    while offset < MAX_EXPORT_ROWS {
        let chunk = state.store().log().access_log(&LogQuery { limit: EXPORT_CHUNK, offset, ..query.clone() }).await?;
        text.extend(chunk.iter().map(csv_line));
        if chunk.len() < EXPORT_CHUNK as usize {
            break;
        }
        offset += EXPORT_CHUNK;
    }
    let name = format!("facereko-history-{}.csv", OffsetDateTime::now_utc().date());
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        text,
    )
        .into_response())
}

/// The photo file of log row `id`: the name comes from the database row, never from the URL.
async fn photo_bytes(state: &WebState, id: i64) -> Result<(Vec<u8>, &'static str), WebError> {
    let missing = || WebError::NotFound(format!("attempt {id} has no photo"));
    let entry = state.store().log().log_entry(id).await?.ok_or_else(missing)?;
    let name = entry.event.photo.ok_or_else(missing)?;
    read_photo(state, &name, missing).await
}

/// A photo we saved, by the name a database row gives, with its content type.
pub(super) async fn read_photo(
    state: &WebState,
    name: &str,
    missing: impl Fn() -> WebError,
) -> Result<(Vec<u8>, &'static str), WebError> {
    let path = state.0.photos.path_of(name).ok_or_else(&missing)?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "cannot read a photo");
        missing()
    })?;
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        _ => "image/jpeg",
    };
    Ok((bytes, content_type))
}

pub(super) fn image_response(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A photo never changes once written; only signed-in browsers hold it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400, immutable"));
    response
}

pub async fn photo(
    State(state): State<WebState>,
    Signed(_user): Signed,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let (bytes, content_type) = photo_bytes(&state, id).await?;
    Ok(image_response(bytes, content_type))
}

pub async fn thumbnail(
    State(state): State<WebState>,
    Signed(_user): Signed,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let (bytes, _) = photo_bytes(&state, id).await?;
    let thumb = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let frame = crate::frame::Frame::from_bytes(bytes, "the photo").map_err(|e| e.to_string())?;
        let picture = crate::engine::decode_rgb(&frame, "the photo").map_err(|e| e.to_string())?;
        let small = image::DynamicImage::ImageRgb8(picture).thumbnail(THUMB_WIDTH, THUMB_HEIGHT).into_rgb8();
        let mut encoded = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 80)
            .encode_image(&small)
            .map_err(|e| e.to_string())?;
        Ok(encoded.into_inner())
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(|detail| {
        tracing::warn!(id, %detail, "cannot make a thumbnail");
        WebError::NotFound(format!("the photo of attempt {id} cannot be shown"))
    })?;
    Ok(image_response(thumb, "image/jpeg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("Ada"), "Ada");
        assert_eq!(csv_field("Lovelace, Ada"), "\"Lovelace, Ada\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
    }

    #[test]
    fn date_filters_use_the_browsers_time_zone() {
        let filters =
            Filters { from: "2026-11-30".into(), to: "2026-11-30".into(), tz: Some(60), ..Filters::default() };
        let query = filters.query().unwrap();
        assert_eq!(query.since.unwrap(), time::macros::datetime!(2026-11-29 23:00 UTC));
        assert_eq!(query.until.unwrap(), time::macros::datetime!(2026-11-30 23:00 UTC));
        let bad = Filters { from: "30/11/2026".into(), ..Filters::default() };
        assert!(bad.query().unwrap_err().to_string().contains("YYYY-MM-DD"));
    }
}
