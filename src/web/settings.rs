//! The door's timings and thresholds: checked like the config file, saved in the database, and
//! handed to the running door at once.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::auth::{AdminForm, Flash, Signed, User};
use super::views::{Machine, Section, csrf_field, page as frame};
use super::{WebError, WebState, api_keys, notifications, passkeys, users, voice};
use crate::driver::{Command, DoorTuning};

/// One setting on the page: its form field, its config key, and where it lives in [`DoorTuning`].
struct Field {
    name: &'static str,
    key: &'static str,
    label: &'static str,
    help: &'static str,
    slot: Slot,
}

enum Slot {
    Duration(fn(&mut DoorTuning) -> &mut Duration),
    Count(fn(&mut DoorTuning) -> &mut u32),
    Percent(fn(&mut DoorTuning) -> &mut f32),
}

const FIELDS: &[Field] = &[
    Field {
        name: "unlock_time",
        key: "door.unlock_time",
        label: "Unlock time",
        help: "How long the door stays open after a grant (1s to 5m).",
        slot: Slot::Duration(|t| &mut t.unlock_time),
    },
    Field {
        name: "debounce",
        key: "door.debounce",
        label: "Repeat-tap window",
        help: "Taps of the same card within this time are ignored (0s to 1m).",
        slot: Slot::Duration(|t| &mut t.debounce),
    },
    Field {
        name: "match_threshold",
        key: "engine.match_threshold",
        label: "Match threshold (%)",
        help: "Lowest similarity that counts as the card holder's face. Higher is stricter (see the README).",
        slot: Slot::Percent(|t| &mut t.match_threshold),
    },
    Field {
        name: "capture_frames",
        key: "capture.frames",
        label: "Frames per tap",
        help: "The camera looks at up to this many frames for a face (1 to 30).",
        slot: Slot::Count(|t| &mut t.capture_frames),
    },
    Field {
        name: "capture_time_limit",
        key: "capture.time_limit",
        label: "Capture time limit",
        help: "Longest look for a face after a tap (100ms to 10s).",
        slot: Slot::Duration(|t| &mut t.capture_time_limit),
    },
    Field {
        name: "engine_timeout",
        key: "engine.timeout",
        label: "Face engine time limit",
        help: "A match slower than this is denied (100ms to 1m).",
        slot: Slot::Duration(|t| &mut t.engine_timeout),
    },
    Field {
        name: "grant_beep",
        key: "door.grant_beep",
        label: "Grant beep",
        help: "Length of the long beep on a grant (0s to 10s).",
        slot: Slot::Duration(|t| &mut t.grant_beep),
    },
    Field {
        name: "deny_beeps",
        key: "door.deny_beeps",
        label: "Denial beeps",
        help: "Number of short beeps on a denial (0 to 10).",
        slot: Slot::Count(|t| &mut t.deny_beeps),
    },
    Field {
        name: "deny_beep",
        key: "door.deny_beep",
        label: "Denial beep length",
        help: "Length of each short beep (20ms to 2s).",
        slot: Slot::Duration(|t| &mut t.deny_beep),
    },
];

impl Field {
    fn shown(&self, tuning: &DoorTuning) -> String {
        let mut tuning = tuning.clone();
        match self.slot {
            Slot::Duration(slot) => humantime::format_duration(*slot(&mut tuning)).to_string(),
            Slot::Count(slot) => slot(&mut tuning).to_string(),
            Slot::Percent(slot) => slot(&mut tuning).to_string(),
        }
    }

    /// Stores `text` in `tuning`, or says how to write it.
    fn read(&self, text: &str, tuning: &mut DoorTuning) -> Result<(), String> {
        match self.slot {
            Slot::Duration(slot) => humantime::parse_duration(text)
                .map(|value| *slot(tuning) = value)
                .map_err(|_| "use a duration such as 10s, 500ms or 1m".to_owned()),
            Slot::Count(slot) => {
                text.parse().map(|value| *slot(tuning) = value).map_err(|_| "use a whole number".to_owned())
            }
            Slot::Percent(slot) => text
                .parse::<f32>()
                .ok()
                .filter(|value| value.is_finite())
                .map(|value| *slot(tuning) = value)
                .ok_or_else(|| "use a number from 0 to 100".to_owned()),
        }
    }
}

/// Reads the form into `tuning`; returns the fields that could not be read, with why.
fn read_form(form: &HashMap<String, String>, mut tuning: DoorTuning) -> (DoorTuning, HashMap<&'static str, String>) {
    let mut errors = HashMap::new();
    for field in FIELDS {
        let text = form.get(field.name).map(|v| v.trim()).unwrap_or_default();
        if let Err(message) = field.read(text, &mut tuning) {
            errors.insert(field.name, message);
        }
    }
    (tuning, errors)
}

/// A door's settings page: its own settings, then the site's accounts and keys.
fn view(
    user: &User,
    flash: Option<Flash>,
    values: &HashMap<&str, String>,
    errors: &HashMap<&str, String>,
    notifications: Markup,
    voice: Markup,
    accounts: Markup,
) -> Markup {
    let admin = user.is_admin();
    let body = html! {
        div.page-head { h1 { "Settings" } }
        section.card {
            p.hint {
                "The door's timings and thresholds. Saved values apply from the next tap, without a restart, and are kept \
                 in the database: they take the place of the same keys in the config file."
                @if !admin { " Your account can only look at them." }
            }
            form.settings-grid method="post" action="/settings" novalidate {
                (csrf_field(user))
                @for field in FIELDS {
                    @let error = errors.get(field.name);
                    div.field.invalid[error.is_some()] {
                        label for=(field.name) { (field.label) }
                        input id=(field.name) name=(field.name) value=(values.get(field.name).cloned().unwrap_or_default())
                            disabled[!admin] aria-invalid=[error.map(|_| "true")] inputmode=[matches!(field.slot, Slot::Count(_)).then_some("numeric")];
                        @if let Some(error) = error { span.field-error { (error) } }
                        span.hint { (field.help) " " code { (field.key) } }
                    }
                }
                @if admin {
                    div.form-actions { button.primary type="submit" { "Save settings" } }
                }
            }
        }
        (notifications)
        (voice)
        (accounts)
    };
    frame(Machine::Door, user, flash, Section::Settings, "Settings", body)
}

fn current_values(tuning: &DoorTuning) -> HashMap<&'static str, String> {
    FIELDS.iter().map(|f| (f.name, f.shown(tuning))).collect()
}

/// The settings page with the settings in use and `flash`, answered with `status`.
pub async fn render(
    state: &WebState,
    user: &User,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<Response, WebError> {
    render_with(state, user, flash, status, notifications::current(state, user)).await
}

/// The settings page with the door settings in use, `notifications` as its notifications part
/// and `flash`, answered with `status`.
pub async fn render_with(
    state: &WebState,
    user: &User,
    flash: Option<Flash>,
    status: StatusCode,
    notifications: Markup,
) -> Result<Response, WebError> {
    render_parts(state, user, flash, status, notifications, voice::current(state, user)).await
}

/// The settings page with `voice` as its voice part.
pub async fn render_voice(
    state: &WebState,
    user: &User,
    flash: Option<Flash>,
    status: StatusCode,
    voice: Markup,
) -> Result<Response, WebError> {
    render_parts(state, user, flash, status, notifications::current(state, user), voice).await
}

async fn render_parts(
    state: &WebState,
    user: &User,
    flash: Option<Flash>,
    status: StatusCode,
    notifications: Markup,
    voice: Markup,
) -> Result<Response, WebError> {
    let accounts = accounts_and_keys(state, user).await?;
    if state.door().is_err() {
        return Ok((status, console_view(user, flash, accounts)).into_response());
    }
    let tuning = state.0.tuning.read().expect("tuning lock").clone();
    let page = view(user, flash, &current_values(&tuning), &HashMap::new(), notifications, voice, accounts);
    Ok((status, page).into_response())
}

/// A console's settings: only what belongs to the site, since it has no door to tune.
fn console_view(user: &User, flash: Option<Flash>, accounts: Markup) -> Markup {
    let body = html! {
        div.page-head { h1 { "Settings" } }
        section.card #console-settings {
            p.hint {
                "This machine is not a door: each door's timings, notification rules and voice are set on the door's own                  web app (linked from the " a href="/site" { "site view" } "). The accounts, passkeys and face API keys                  below are the site's, kept in its database."
            }
        }
        (accounts)
    };
    frame(Machine::Console, user, flash, Section::Settings, "Settings", body)
}

/// The web accounts, the user's passkeys, then the face API's keys.
async fn accounts_and_keys(state: &WebState, user: &User) -> Result<Markup, WebError> {
    let accounts = users::section(state, user).await?;
    let passkeys = passkeys::section(state, user).await?;
    let keys = api_keys::section(state, user).await?;
    Ok(html! { (accounts) (passkeys) (keys) })
}

pub async fn page(State(state): State<WebState>, Signed(user): Signed) -> Result<Response, WebError> {
    let flash = state.auth().take_flash(&user);
    render(&state, &user, flash, StatusCode::OK).await
}

pub async fn save(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let door = state.door()?;
    let current = state.0.tuning.read().expect("tuning lock").clone();
    let (tuning, mut errors) = read_form(&form, current);
    // Fields that could not be read kept their current value, so the rest is checked all the same.
    for problem in state.0.door_config.tuning_problems(&tuning) {
        let field = FIELDS.iter().find(|f| f.key == problem.key).map_or("engine_timeout", |f| f.name);
        errors.entry(field).or_insert(problem.message);
    }
    if !errors.is_empty() {
        let typed: HashMap<&str, String> =
            FIELDS.iter().map(|f| (f.name, form.get(f.name).cloned().unwrap_or_default())).collect();
        let flash = Flash::error("Nothing was saved: fix the values marked below.");
        let notifications = notifications::current(&state, &user);
        let voice = voice::current(&state, &user);
        let accounts = accounts_and_keys(&state, &user).await?;
        let page = view(&user, Some(flash), &typed, &errors, notifications, voice, accounts);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let json = serde_json::to_string(&tuning).map_err(|e| WebError::Internal(e.to_string()))?;
    state.store().settings().set_setting(DoorTuning::SETTING, &json).await?;
    let tuned = state.0.door_config.with_tuning(&tuning);
    let (settings, limits, engine_timeout) = (tuned.door_settings(), tuned.capture.limits(), tuned.engine.timeout);
    door.control
        .command(|done| Command::Retune { settings, limits, engine_timeout, done })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    // Known visitors are recognised at the door's threshold.
    if let Some(desk) = &state.0.desk {
        desk.set_match_threshold(tuning.match_threshold);
    }
    *state.0.tuning.write().expect("tuning lock") = tuning;
    tracing::info!(user = %user.username, "door settings changed from the web app");
    state.auth().set_flash(&user, Flash::ok("Settings saved; the door uses them from the next tap."));
    Ok(Redirect::to("/settings").into_response())
}
