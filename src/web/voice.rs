//! The door's voice on the settings page: its phrases, language, volume and quiet hours, checked
//! as `config check` checks `[voice]`, saved in the database in its place and handed to the
//! running door at once; and a "say it" button per phrase to hear it at the door.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::auth::{AdminForm, Button, Flash, User};
use super::views::{csrf_field, post_button};
use super::{WebError, WebState, settings};
use crate::access::Reason;
use crate::checks::Checks;
use crate::driver::{Command, DoorLink};
use crate::notify::reason_in_words;
use crate::voice::{PhraseKey, Utterance, VoiceConfig};

/// Where the page jumps to after a change.
const ANCHOR: &str = "/settings#voice";

/// One setting of the voice besides its phrases: its form field and where it lives.
struct Field {
    name: &'static str,
    label: &'static str,
    help: &'static str,
    slot: Slot,
}

enum Slot {
    Text(fn(&mut VoiceConfig) -> &mut String),
    Number(fn(&mut VoiceConfig) -> &mut u32),
    Percent(fn(&mut VoiceConfig) -> &mut u8),
}

const FIELDS: &[Field] = &[
    Field {
        name: "language",
        label: "Language",
        help: "An espeak-ng voice: en, en-gb, en-us, de, fr, es, nl… (`espeak-ng --voices`).",
        slot: Slot::Text(|v| &mut v.language),
    },
    Field {
        name: "variant",
        label: "Voice variant",
        help: "Empty for the language's own, or e.g. f3, m3 (`espeak-ng --voices=variant`).",
        slot: Slot::Text(|v| &mut v.variant),
    },
    Field {
        name: "volume",
        label: "Volume (%)",
        help: "0 to 100, of the rendered level; the amplifier sets the rest.",
        slot: Slot::Percent(|v| &mut v.volume),
    },
    Field {
        name: "speed",
        label: "Speed (words a minute)",
        help: "80 to 450; 160 is calm.",
        slot: Slot::Number(|v| &mut v.speed),
    },
    Field {
        name: "quiet_hours",
        label: "Quiet hours",
        help: "The door only beeps then, e.g. 22:00-07:00 (the door's local time); empty: never.",
        slot: Slot::Text(|v| &mut v.quiet_hours),
    },
];

fn phrase_label(key: PhraseKey) -> &'static str {
    match key {
        PhraseKey::LookAtCamera => "No face in the first frame",
        PhraseKey::TurnHead => "Asking for a head turn (liveness.challenge)",
        PhraseKey::Granted => "Granted",
        PhraseKey::Denied => "Denied",
        PhraseKey::Disarmed => "Tap while disarmed",
        PhraseKey::VisitorRang => "Visitor rang",
        PhraseKey::PasscodeWrong => "Wrong passcode",
    }
}

fn phrase_help(key: PhraseKey) -> &'static str {
    match key {
        PhraseKey::Granted => "{name} is the person's name.",
        PhraseKey::Denied => "{reason} is the reason's words below, if it has any: none tells a stranger nothing.",
        PhraseKey::VisitorRang | PhraseKey::PasscodeWrong => "For visitors at the door.",
        _ => "",
    }
}

/// The reasons for a denial, which may each have words for `{reason}`.
fn denial_reasons() -> impl Iterator<Item = Reason> {
    Reason::ALL.iter().copied().filter(|reason| reason.denies() && *reason != Reason::Interrupted)
}

fn reason_field(reason: Reason) -> String {
    format!("reason.{reason}")
}

fn phrase_field(key: PhraseKey) -> String {
    format!("phrase.{key}")
}

/// Reads the form into `voice`; returns the fields that could not be read, with why.
fn read_form(form: &HashMap<String, String>, mut voice: VoiceConfig) -> (VoiceConfig, HashMap<String, String>) {
    let mut errors = HashMap::new();
    let text = |name: &str| form.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    for field in FIELDS {
        let value = text(field.name);
        match field.slot {
            Slot::Text(slot) => *slot(&mut voice) = value,
            Slot::Number(slot) => match value.parse() {
                Ok(number) => *slot(&mut voice) = number,
                Err(_) => {
                    errors.insert(field.name.to_owned(), "use a whole number".to_owned());
                }
            },
            Slot::Percent(slot) => match value.parse() {
                Ok(number) => *slot(&mut voice) = number,
                Err(_) => {
                    errors.insert(field.name.to_owned(), "use a whole number from 0 to 100".to_owned());
                }
            },
        }
    }
    for key in PhraseKey::ALL {
        *voice.phrases.get_mut(*key) = text(&phrase_field(*key));
    }
    voice.phrases.reasons.clear();
    for reason in denial_reasons() {
        let words = text(&reason_field(reason));
        if !words.is_empty() {
            voice.phrases.reasons.insert(reason.as_str().to_owned(), words);
        }
    }
    (voice, errors)
}

/// The form field a problem of `[voice]` is about.
fn field_of(key: &str) -> String {
    let rest = key.strip_prefix("voice.").unwrap_or(key);
    if let Some(reason) = rest.strip_prefix("phrases.reasons.") {
        return format!("reason.{reason}");
    }
    if let Some(phrase) = rest.strip_prefix("phrases.") {
        return format!("phrase.{phrase}");
    }
    rest.to_owned()
}

fn shown(voice: &VoiceConfig) -> HashMap<String, String> {
    let mut voice = voice.clone();
    let mut values: HashMap<String, String> = FIELDS
        .iter()
        .map(|field| {
            let value = match field.slot {
                Slot::Text(slot) => slot(&mut voice).clone(),
                Slot::Number(slot) => slot(&mut voice).to_string(),
                Slot::Percent(slot) => slot(&mut voice).to_string(),
            };
            (field.name.to_owned(), value)
        })
        .collect();
    for key in PhraseKey::ALL {
        values.insert(phrase_field(*key), voice.phrases.get(*key).to_owned());
    }
    for reason in denial_reasons() {
        values.insert(reason_field(reason), voice.phrases.reasons.get(reason.as_str()).cloned().unwrap_or_default());
    }
    values
}

fn text_field(
    name: &str,
    label: &str,
    help: &str,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    admin: bool,
) -> Markup {
    let id = format!("voice-{}", name.replace('.', "-"));
    let error = errors.get(name);
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) value=(values.get(name).cloned().unwrap_or_default()) disabled[!admin]
                aria-invalid=[error.map(|_| "true")];
            @if let Some(error) = error { span.field-error { (error) } }
            @if !help.is_empty() { span.hint { (help) } }
        }
    }
}

/// The voice part of the settings page.
fn view(user: &User, saved: bool, values: &HashMap<String, String>, errors: &HashMap<String, String>) -> Markup {
    let admin = user.is_admin();
    html! {
        section.card #voice {
            h2 { "Voice" }
            p.hint {
                "What the door says through its speaker (" code { "hardware.speaker" } "). "
                @if saved {
                    "These settings were saved here: they replace the config file's " code { "[voice]" } " until you go back to it."
                } @else {
                    "These are the config file's " code { "[voice]" } "; saved changes replace it."
                }
                " Every phrase is rendered again when they change. An empty phrase says nothing."
                @if !admin { " Your account can only look at them." }
            }
            form method="post" action="/settings/voice" novalidate {
                (csrf_field(user))
                div.settings-grid {
                    @for field in FIELDS { (text_field(field.name, field.label, field.help, values, errors, admin)) }
                }
                fieldset.settings-grid {
                    legend { "Phrases" }
                    @for key in PhraseKey::ALL {
                        (text_field(&phrase_field(*key), phrase_label(*key), phrase_help(*key), values, errors, admin))
                    }
                }
                fieldset.settings-grid {
                    legend { "Words for {reason}" }
                    @for reason in denial_reasons() {
                        (text_field(&reason_field(reason), &super::views::capitalised(reason_in_words(reason)), "", values, errors, admin))
                    }
                }
                @if admin {
                    div.form-actions { button.primary type="submit" { "Save voice settings" } }
                }
            }
            @if admin {
                div.tap-buttons {
                    span.muted { "Say it at the door (also in quiet hours): " }
                    @for key in PhraseKey::ALL {
                        form.inline method="post" action="/settings/voice/say" {
                            (csrf_field(user))
                            input type="hidden" name="phrase" value=(key.as_str());
                            button.secondary type="submit" { (phrase_label(*key)) }
                        }
                    }
                }
                @if saved {
                    (post_button(user, "/settings/voice/reset", "Go back to the config file's voice", "secondary",
                        Some("Forget the voice settings saved here and use the config file's?")))
                }
            }
        }
    }
}

/// The part as it stands: the voice in force.
pub fn current(state: &WebState, user: &User) -> Markup {
    let voice = state.0.voice.read().expect("voice lock").clone();
    let saved = voice != state.0.file_voice;
    view(user, saved, &shown(&voice), &HashMap::new())
}

/// Hands `voice` to the running door.
async fn revoice(door: &DoorLink, voice: &VoiceConfig) -> Result<(), WebError> {
    let voice = Box::new(voice.clone());
    door.control.command(|done| Command::Revoice { voice, done }).await.map_err(|e| WebError::Internal(e.to_string()))
}

pub async fn save(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let door = state.door()?;
    let current = state.0.voice.read().expect("voice lock").clone();
    let (voice, mut errors) = read_form(&form, current.clone());
    let mut checks = Checks::default();
    voice.check(&mut checks);
    for problem in checks.into_problems() {
        errors.entry(field_of(&problem.key)).or_insert(problem.message);
    }
    if !errors.is_empty() {
        let typed: HashMap<String, String> = form.into_iter().filter(|(name, _)| name != "csrf").collect();
        let part = view(&user, current != state.0.file_voice, &typed, &errors);
        let flash = Flash::error("Nothing was saved: fix the voice settings marked below.");
        return settings::render_voice(&state, &user, Some(flash), StatusCode::UNPROCESSABLE_ENTITY, part).await;
    }
    let json = serde_json::to_string(&voice).map_err(|e| WebError::Internal(e.to_string()))?;
    state.store().settings().set_setting(VoiceConfig::SETTING, &json).await?;
    revoice(door, &voice).await?;
    tracing::info!(user = %user.username, "voice settings changed from the web app");
    *state.0.voice.write().expect("voice lock") = voice;
    state.auth().set_flash(&user, Flash::ok("Voice settings saved; the door renders its phrases again."));
    Ok(Redirect::to(ANCHOR).into_response())
}

/// Forgets the saved voice: the config file's is in force again.
pub async fn reset(
    State(state): State<WebState>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let door = state.door()?;
    state.store().settings().remove_setting(VoiceConfig::SETTING).await?;
    let voice = state.0.file_voice.clone();
    revoice(door, &voice).await?;
    tracing::info!(user = %user.username, "voice settings reset to the config file's from the web app");
    *state.0.voice.write().expect("voice lock") = voice;
    state.auth().set_flash(&user, Flash::ok("The config file's voice settings apply again."));
    Ok(Redirect::to(ANCHOR).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SayForm {
    phrase: String,
}

/// Says one phrase at the door, with the admin's name for `{name}`.
pub async fn say(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<SayForm>,
) -> Result<Response, WebError> {
    let door = state.door()?;
    let key: PhraseKey = form.phrase.parse().map_err(WebError::BadRequest)?;
    let utterance = Utterance::example(key, &user.username);
    let text = state.0.voice.read().expect("voice lock").text(&utterance);
    door.control
        .command(|done| Command::Say { utterance, done })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let message = match text {
        Some(text) => format!("Said at the door: “{text}”."),
        None => format!("The phrase for “{}” is empty: the door says nothing.", phrase_label(key)),
    };
    state.auth().set_flash(&user, Flash::ok(message));
    Ok(Redirect::to(ANCHOR).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> HashMap<String, String> {
        let mut form = shown(&VoiceConfig::default());
        for (name, value) in fields {
            form.insert((*name).to_owned(), (*value).to_owned());
        }
        form
    }

    #[test]
    fn the_form_reads_back_into_the_voice_it_shows() {
        let mut voice = VoiceConfig::default();
        voice.phrases.reasons.insert("unknown_card".into(), "This card is not known".into());
        voice.quiet_hours = "22:00-07:00".into();
        let (read, errors) = read_form(&shown(&voice), VoiceConfig::default());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(read, voice);
    }

    #[test]
    fn what_cannot_be_read_names_its_field() {
        let (voice, errors) = read_form(
            &form(&[("volume", "loud"), ("phrase.granted", " Hello {name} "), ("reason.no_face", "")]),
            VoiceConfig::default(),
        );
        assert_eq!(errors["volume"], "use a whole number from 0 to 100");
        assert_eq!(voice.phrases.granted, "Hello {name}");
        assert!(voice.phrases.reasons.is_empty());
        assert_eq!(field_of("voice.phrases.reasons.unknown_card"), "reason.unknown_card");
        assert_eq!(field_of("voice.phrases.denied"), "phrase.denied");
        assert_eq!(field_of("voice.quiet_hours"), "quiet_hours");
    }
}
