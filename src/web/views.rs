//! The page frame and the small pieces every page uses.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;

use super::auth::{Flash, User};
use crate::access::Decision;

/// The sections in the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Site,
    History,
    People,
    Visitors,
    Schedules,
    Settings,
}

impl Section {
    /// Whether the section's pages are those of the door the app runs beside, which a console
    /// answers with "this machine is not a door".
    fn needs_door(self) -> bool {
        matches!(self, Section::Dashboard | Section::Visitors)
    }
}

/// The machine the web app runs on: a door, or a console (`facereko serve-web`) whose navigation
/// leaves out the sections only a door has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    Door,
    Console,
}

impl Machine {
    /// The first page of its navigation: a door's dashboard, a console's site view.
    fn home(self) -> &'static str {
        match self {
            Machine::Door => "/",
            Machine::Console => "/site",
        }
    }
}

const SECTIONS: &[(Section, &str, &str)] = &[
    (Section::Dashboard, "/", "Dashboard"),
    (Section::Site, "/site", "Site"),
    (Section::History, "/history", "History"),
    (Section::People, "/people", "People"),
    (Section::Visitors, "/visitors", "Visitors"),
    (Section::Schedules, "/schedules", "Schedules"),
    (Section::Settings, "/settings", "Settings"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · FaceReko" }
            link rel="stylesheet" href=(super::assets::CSS_PATH);
            link rel="icon" href=(super::assets::ICON_PATH);
            script src=(super::assets::JS_PATH) defer {}
        }
    }
}

/// A page for a signed-in user, with the navigation of `machine` and the pending flash message.
pub fn page(
    machine: Machine,
    user: &User,
    flash: Option<Flash>,
    section: Section,
    title: &str,
    body: Markup,
) -> Markup {
    let shown = SECTIONS.iter().filter(|(target, ..)| machine == Machine::Door || !target.needs_door());
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.topbar {
                    a.brand href=(machine.home()) { span.logo aria-hidden="true" {} "FaceReko" }
                    nav.sections aria-label="Sections" {
                        @for (target, href, label) in shown {
                            @if *target == section {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        (csrf_field(user))
                        span.who title=(format!("signed in as {} ({})", user.username, user.role)) {
                            (user.username)
                            @if !user.is_admin() { " · viewer" }
                        }
                        button.quiet type="submit" { "Sign out" }
                    }
                }
                main {
                    @if let Some(flash) = flash {
                        div class=(if flash.ok { "flash ok" } else { "flash error" }) role="status" { (flash.message) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation: sign-in, setup, errors.
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main.narrow {
                    div.brand.center { span.logo aria-hidden="true" {} "FaceReko" }
                    (body)
                }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    bare_page(
        title,
        html! {
            section.card {
                h1 { (title) }
                p.error-text { (capitalised(message)) }
                p { a href="/" data-back { "Back" } }
            }
        },
    )
}

/// What a console (`facereko serve-web`) answers for a page only a door has.
pub fn not_a_door_page() -> Markup {
    bare_page(
        "Not a door",
        html! {
            section.card #not-a-door {
                h1 { "This machine is not a door" }
                p {
                    "It shows every door of the site, but has no lock, camera or card reader of its own. "
                    "This page belongs to a door: open it from the door's own web app, linked from the site view."
                }
                p { a.button.primary href="/site" { "Site view" } }
            }
        },
    )
}

pub fn csrf_field(user: &User) -> Markup {
    html! { input type="hidden" name="csrf" value=(user.csrf); }
}

/// A one-button form posting to `action`, with the CSRF token; `confirm` asks first.
pub fn post_button(user: &User, action: &str, label: &str, class: &str, confirm: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf_field(user))
            button class=(class) type="submit" { (label) }
        }
    }
}

/// The card at the foot of a page that deletes what the page shows: `title` ("Remove Ada"),
/// what it does to what, and the button that asks `confirm` first.
pub fn danger_zone(user: &User, action: &str, title: &str, explanation: &str, confirm: &str) -> Markup {
    html! {
        section.card.danger-zone {
            h2 { (title) }
            p { (explanation) }
            (post_button(user, action, title, "danger", Some(confirm)))
        }
    }
}

/// A time in UTC for machines, shown in the browser's own time zone by the page script.
pub fn time_cell(at: OffsetDateTime) -> Markup {
    let iso = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let fallback = at
        .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
        .unwrap_or_default();
    html! { time datetime=(iso) { (fallback) } }
}

pub fn decision_badge(decision: Decision) -> Markup {
    html! { span class=(format!("badge {}", decision.as_str())) { (decision.as_str()) } }
}

/// `message` with its first letter in upper case, for errors written as clauses.
pub fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Which page of a filtered, newest-first list is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// From 1.
    pub page: u32,
    pub pages: u32,
    /// Rows before this page's first.
    pub offset: u32,
}

impl Paging {
    /// The `requested` page (the first when none) of `total` rows, `size` a page, moved inside the list.
    pub fn new(requested: Option<u32>, total: u64, size: u32) -> Self {
        let pages = u32::try_from(total.div_ceil(u64::from(size))).unwrap_or(u32::MAX).max(1);
        let page = requested.unwrap_or(1).clamp(1, pages);
        Self { page, pages, offset: (page - 1).saturating_mul(size) }
    }
}

/// Links to the newer and older pages under a list, nothing for a single page. `path` is the
/// list's address and `filters` its query string without the page.
pub fn pager(paging: Paging, path: &str, filters: &str) -> Markup {
    let separator = if filters.is_empty() { "" } else { "&" };
    let link = |page: u32| format!("{path}?{filters}{separator}page={page}");
    let Paging { page, pages, .. } = paging;
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Newer" } } @else { span {} }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a href=(link(page + 1)) rel="next" { "Older →" } } @else { span {} }
            }
        }
    }
}

/// A filter's drop-down: "any" first, then `options`, with `current` selected.
pub fn filter_select(name: &str, label: &str, current: &str, options: &[impl AsRef<str>]) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            option value="" { "any" }
            @for option in options {
                @let option = option.as_ref();
                option value=(option) selected[option == current] { (option) }
            }
        }
    }
}
