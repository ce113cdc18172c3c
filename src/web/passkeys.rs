//! Passkeys (WebAuthn): accounts add them on the settings page, sign in with them from the sign-in
//! page without typing a name, and pass a step-up with them. The browser's half is in app.js.
//!
//! A passkey belongs to one site name (the relying party): the names the door is reached by
//! (its host name, `<host>.local`, `localhost`) and the host of `web.public_url`, over https
//! (`web.tls`, or a TLS proxy with `web.secure_cookies`); plain http only at `localhost`.
//! Browsers refuse passkeys for addresses. Each ceremony's state stays here, for
//! [`CEREMONY_LIFETIME`], and is used once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::account::check_form_token;
use super::auth::{Button, ClientAddress, Flash, SignInKey, Signed, SignedForm, User, minutes};
use super::sign_ins::{self, Caller};
use super::views::time_cell;
use super::{WebConfig, WebError, WebState};
use crate::accounts::{Role, random_token};
use crate::store::{NewPasskey, SignInMethod, SignInOutcome, StoreError, StoredPasskey};

/// How long the browser and its owner have to answer a ceremony.
const CEREMONY_LIFETIME: Duration = Duration::from_secs(120);
/// Bounds the memory unfinished ceremonies can take.
const MAX_CEREMONIES: usize = 1000;
const MAX_NAME_CHARS: usize = 64;

/// The relying parties (one per name the app is reached by) and the ceremonies under way.
pub struct Passkeys {
    parties: HashMap<String, Webauthn>,
    /// Why passkeys do not work at names not in `parties`.
    elsewhere: String,
    ceremonies: Mutex<HashMap<String, (Instant, Ceremony)>>,
}

enum Ceremony {
    Register {
        username: String,
        name: String,
        user_handle: Uuid,
        host: String,
        state: PasskeyRegistration,
    },
    /// A sign-in (`username` None) or a step-up of `username`.
    Assert {
        username: Option<String>,
        host: String,
        state: DiscoverableAuthentication,
    },
}

impl Passkeys {
    /// For the names this machine and `web.public_url` give.
    pub fn new(config: &WebConfig) -> Self {
        let mut names = crate::tls::machine_names();
        if let Some(uri) = config.public_url.as_ref().and_then(|url| url.parse::<axum::http::Uri>().ok())
            && let Some(host) = uri.host()
        {
            names.push(host.to_owned());
        }
        Self::for_names(&names, config.secure())
    }

    /// For `names` (addresses among them are skipped), served over https when `secure`.
    pub fn for_names(names: &[String], secure: bool) -> Self {
        let scheme = if secure { "https" } else { "http" };
        let parties: HashMap<String, Webauthn> = names
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .filter(|name| name.parse::<IpAddr>().is_err() && (secure || name == "localhost"))
            .filter_map(|name| {
                let origin = Url::parse(&format!("{scheme}://{name}")).ok()?;
                let party = WebauthnBuilder::new(&name, &origin)
                    .ok()?
                    .rp_name("FaceReko")
                    .allow_any_port(true)
                    .timeout(CEREMONY_LIFETIME)
                    .build()
                    .ok()?;
                Some((name, party))
            })
            .collect();
        let mut known: Vec<&str> = parties.keys().map(String::as_str).filter(|name| *name != "localhost").collect();
        known.sort_unstable();
        let elsewhere = if !secure {
            "Passkeys need HTTPS: set web.tls = \"self\" in the door's config, or open this page on the door itself \
             at http://localhost."
                .to_owned()
        } else if known.is_empty() {
            "Passkeys need a name for this site, not an address: set web.public_url.".to_owned()
        } else {
            format!("Passkeys work under the door's name, not an address: open https://{}.", known.join(" or https://"))
        };
        Self { parties, elsewhere, ceremonies: Mutex::new(HashMap::new()) }
    }

    /// The name the request was sent to and its relying party, or why passkeys do not work there.
    fn party(&self, headers: &HeaderMap) -> Result<(String, &Webauthn), String> {
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
            .map(|authority| authority.host().to_ascii_lowercase())
            .unwrap_or_default();
        match self.parties.get(&host) {
            Some(party) => Ok((host, party)),
            None => Err(self.elsewhere.clone()),
        }
    }

    /// Why passkeys do not work for this request, if they do not.
    pub fn unavailable(&self, headers: &HeaderMap) -> Option<String> {
        self.party(headers).err()
    }

    /// Keeps `ceremony` for its answer; the id the browser sends back with it.
    fn begin(&self, ceremony: Ceremony) -> String {
        let id = random_token(32);
        let now = Instant::now();
        let mut ceremonies = self.ceremonies.lock().expect("ceremonies lock");
        ceremonies.retain(|_, (started, _)| now.duration_since(*started) < CEREMONY_LIFETIME);
        if ceremonies.len() >= MAX_CEREMONIES
            && let Some(oldest) = ceremonies.iter().min_by_key(|(_, (started, _))| *started).map(|(id, _)| id.clone())
        {
            ceremonies.remove(&oldest);
        }
        ceremonies.insert(id.clone(), (now, ceremony));
        id
    }

    /// The ceremony `id`, once, while it is fresh.
    fn take(&self, id: &str) -> Option<Ceremony> {
        let (started, ceremony) = self.ceremonies.lock().expect("ceremonies lock").remove(id)?;
        (started.elapsed() < CEREMONY_LIFETIME).then_some(ceremony)
    }

    /// Starts a discoverable assertion: a sign-in (`username` None) or a step-up.
    fn start_assertion(&self, headers: &HeaderMap, username: Option<String>) -> Result<serde_json::Value, Refusal> {
        let (host, party) = self.party(headers).map_err(|why| Refusal(StatusCode::CONFLICT, why))?;
        let (mut options, state) = party.start_discoverable_authentication().map_err(|e| {
            tracing::error!(error = %e, "cannot start a passkey ceremony");
            Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong; the details are in the daemon's log.".into(),
            )
        })?;
        // A button starts it, not the browser's autofill: the browser asks at once.
        options.mediation = None;
        let ceremony = self.begin(Ceremony::Assert { username, host, state });
        Ok(json!({ "ceremony": ceremony, "options": options }))
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    WebError::Internal(e.to_string()).into_response()
}

/// A refusal the page script shows: JSON with a message for people.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    Refusal(status, message.into()).into_response()
}

fn store_error(e: StoreError) -> Response {
    WebError::from(e).into_response()
}

/// A JSON body posted by the page script, with the token that proves the page came from us.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Start {
    csrf: String,
    /// What the owner calls a new passkey.
    name: String,
    /// The account's password, needed when the session was last proved before `web.step_up_after`.
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Finish {
    csrf: String,
    ceremony: String,
    /// The browser's answer, as the page script encodes it.
    credential: serde_json::Value,
}

/// The user a passkey request is for, refused as JSON (not sent to the sign-in page) when there is none.
pub struct SignedJson(User);

impl FromRequestParts<WebState> for SignedJson {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        match Signed::from_request_parts(parts, state).await {
            Ok(Signed(user)) => Ok(Self(user)),
            Err(_) => Err(refuse(StatusCode::UNAUTHORIZED, "You are signed out; sign in again.")),
        }
    }
}

// ---- Adding and removing passkeys --------------------------------------------------------------

/// The passkeys part of the settings page: the user's own passkeys and a form to add one.
pub async fn section(state: &WebState, user: &User) -> Result<Markup, WebError> {
    let keys = state.store().passkeys().passkeys_of(&user.username).await?;
    Ok(html! {
        section.card #passkeys {
            h2 { "Your passkeys" }
            p.hint {
                "Sign in with your phone's or computer's screen lock instead of the password. Passkeys need this \
                 app over HTTPS under the door's name (or at http://localhost on the door itself)."
            }
            ul.items #passkey-list {
                @for key in &keys {
                    li {
                        span {
                            strong { (key.name) }
                            span.muted { " · added " (time_cell(key.created)) " · "
                                @match key.last_used { Some(at) => { "last used " (time_cell(at)) }, None => { "never used" } }
                            }
                        }
                        (super::views::post_button(user, &format!("/account/passkeys/{}/remove", key.id), "Remove",
                            "quiet danger-text", Some(&format!("Remove the passkey {}? It stops working at once.", key.name))))
                    }
                }
                @if keys.is_empty() { li.muted { "No passkeys yet." } }
            }
            form.stack data-passkey-register data-csrf=(user.csrf) {
                label for="passkey-name" { "Name of the new passkey" }
                input #passkey-name name="name" required maxlength=(MAX_NAME_CHARS) placeholder="e.g. Phone" autocomplete="off";
                label for="passkey-password" { "Your password" }
                input #passkey-password name="password" type="password" autocomplete="current-password";
                p.hint { "Asked when you signed in or confirmed it more than a few minutes ago." }
                button.secondary type="submit" { "Add a passkey" }
                p.hint data-passkey-status role="status" {}
            }
        }
    })
}

/// Starts making a passkey of account `username` that the sign-in page can find without a user
/// name (a discoverable one), none of `existing` again.
fn start_registration(
    party: &Webauthn,
    user_handle: Uuid,
    username: &str,
    existing: Vec<Vec<u8>>,
) -> Result<(CreationChallengeResponse, PasskeyRegistration), WebauthnError> {
    let (mut options, registration) =
        party.start_passkey_registration(user_handle, username, username, Some(existing))?;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    Ok((options, registration))
}

pub async fn register_options(
    State(state): State<WebState>,
    SignedJson(user): SignedJson,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Json(start): Json<Start>,
) -> Result<Response, Response> {
    user.check_csrf(&start.csrf).map_err(IntoResponse::into_response)?;
    let name = start.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Name the passkey in 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    // A passkey is a way in that outlives the session: one taken over must not add its own.
    if !user.checked_within(state.config().step_up_after) {
        if start.password.is_empty() {
            return Err(refuse(StatusCode::FORBIDDEN, "Adding a passkey needs your password too."));
        }
        let caller = Caller { address, headers: &headers };
        if !super::step_up::check_password(&state, &user, caller, &start.password)
            .await
            .map_err(IntoResponse::into_response)?
        {
            return Err(refuse(StatusCode::UNAUTHORIZED, "That is not your password; no passkey was added."));
        }
    }
    let passkeys = &state.passkeys();
    let (host, party) = passkeys.party(&headers).map_err(|why| refuse(StatusCode::CONFLICT, why))?;
    let kept = state.store().passkeys().passkeys_of(&user.username).await.map_err(store_error)?;
    // One handle per account, so that an authenticator keeps one passkey for it here.
    let user_handle = kept.first().and_then(|key| key.user_handle.parse().ok()).unwrap_or_else(Uuid::new_v4);
    let existing = kept.into_iter().map(|key| key.credential_id).collect();
    let (options, registration) = start_registration(party, user_handle, &user.username, existing).map_err(internal)?;
    let ceremony = passkeys.begin(Ceremony::Register {
        username: user.username.clone(),
        name,
        user_handle,
        host,
        state: registration,
    });
    Ok(Json(json!({ "ceremony": ceremony, "options": options })).into_response())
}

pub async fn register(
    State(state): State<WebState>,
    SignedJson(user): SignedJson,
    Json(finish): Json<Finish>,
) -> Result<Response, Response> {
    user.check_csrf(&finish.csrf).map_err(IntoResponse::into_response)?;
    let expired = || refuse(StatusCode::GONE, "That took too long; add the passkey again.");
    let Some(Ceremony::Register { username, name, user_handle, host, state: registration }) =
        state.passkeys().take(&finish.ceremony)
    else {
        return Err(expired());
    };
    if !username.eq_ignore_ascii_case(&user.username) {
        return Err(expired());
    }
    let credential: RegisterPublicKeyCredential = serde_json::from_value(finish.credential)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("The browser's answer is not a passkey: {e}")))?;
    let party = state.passkeys().parties.get(&host).ok_or_else(expired)?;
    let passkey = party.finish_passkey_registration(&credential, &registration).map_err(|e| {
        tracing::warn!(user = %user.username, error = %e, "a new passkey was refused");
        refuse(StatusCode::BAD_REQUEST, format!("The passkey was refused ({e}); try again."))
    })?;
    let serialised = serde_json::to_string(&passkey).map_err(internal)?;
    let handle = user_handle.to_string();
    let new = NewPasskey {
        username: &user.username,
        user_handle: &handle,
        credential_id: passkey.cred_id(),
        name: &name,
        credential: &serialised,
    };
    match state.store().passkeys().add_passkey(&new).await {
        Ok(kept) => {
            tracing::info!(user = %user.username, passkey = %kept.name, "passkey added");
            state.auth().set_flash(&user, Flash::ok(format!("Added the passkey {name}.")));
            Ok(Json(json!({ "ok": true })).into_response())
        }
        Err(StoreError::Conflict(_)) => Err(refuse(StatusCode::CONFLICT, "This passkey is added already.")),
        Err(e) => Err(store_error(e)),
    }
}

pub async fn remove(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    SignedForm(user, _form): SignedForm<Button>,
) -> Result<Response, WebError> {
    state.store().passkeys().remove_passkey(&user.username, id).await?;
    tracing::info!(user = %user.username, passkey = id, "passkey removed");
    state.auth().set_flash(&user, Flash::ok("Removed the passkey; it no longer signs you in."));
    Ok(Redirect::to("/settings#passkeys").into_response())
}

// ---- Signing in and stepping up ----------------------------------------------------------------

/// The sign-in page's passkey button, or why passkeys do not work here; `token` is the form token.
pub fn sign_in_button(state: &WebState, headers: &HeaderMap, token: &str) -> Markup {
    html! {
        div.passkey-sign-in {
            @match state.passkeys().unavailable(headers) {
                None => {
                    button.secondary type="button" data-passkey-sign-in data-csrf=(token) { "Sign in with a passkey" }
                    p.hint data-passkey-status role="status" {}
                }
                Some(why) => { p.hint #passkeys-unavailable { (why) } }
            }
        }
    }
}

/// The step-up page's passkey button (the page script fills the form's passkey fields and posts it).
pub fn check_button(user: &User) -> Markup {
    html! {
        div.passkey-sign-in {
            button.secondary type="button" data-passkey-check data-csrf=(user.csrf) { "Use a passkey instead" }
            p.hint data-passkey-status role="status" {}
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Token {
    csrf: String,
}

pub async fn sign_in_options(
    State(state): State<WebState>,
    headers: HeaderMap,
    Json(token): Json<Token>,
) -> Result<Response, Response> {
    check_form_token(&headers, &token.csrf).map_err(IntoResponse::into_response)?;
    let started = state.passkeys().start_assertion(&headers, None).map_err(IntoResponse::into_response)?;
    Ok(Json(started).into_response())
}

pub async fn check_options(
    State(state): State<WebState>,
    SignedJson(user): SignedJson,
    headers: HeaderMap,
    Json(token): Json<Token>,
) -> Result<Response, Response> {
    user.check_csrf(&token.csrf).map_err(IntoResponse::into_response)?;
    let started =
        state.passkeys().start_assertion(&headers, Some(user.username)).map_err(IntoResponse::into_response)?;
    Ok(Json(started).into_response())
}

/// The browser's answer to an assertion, checked against the ceremony and the passkey it names:
/// that passkey, now used (its counter moved on), or how the attempt ended.
async fn finish_assertion(
    state: &WebState,
    ceremony: &str,
    credential: &PublicKeyCredential,
    stored: Option<StoredPasskey>,
    for_user: Option<&str>,
) -> Result<Result<StoredPasskey, SignInOutcome>, WebError> {
    let passkeys = &state.passkeys();
    let Some(Ceremony::Assert { username, host, state: assertion }) = passkeys.take(ceremony) else {
        return Ok(Err(SignInOutcome::PasskeyRefused));
    };
    if username.as_deref().map(str::to_ascii_lowercase) != for_user.map(str::to_ascii_lowercase) {
        return Ok(Err(SignInOutcome::PasskeyRefused));
    }
    let Some(stored) = stored else { return Ok(Err(SignInOutcome::UnknownPasskey)) };
    let Some(party) = passkeys.parties.get(&host) else { return Ok(Err(SignInOutcome::PasskeyRefused)) };
    // The handle the authenticator keeps for the account must be the one it was given.
    match party.identify_discoverable_authentication(credential) {
        Ok((handle, _)) if handle.to_string() == stored.user_handle => {}
        _ => return Ok(Err(SignInOutcome::PasskeyRefused)),
    }
    let mut passkey: Passkey = serde_json::from_str(&stored.credential)
        .map_err(|e| WebError::Internal(format!("passkey {} cannot be read: {e}", stored.id)))?;
    let result = match party.finish_discoverable_authentication_v2(credential, assertion, &passkey) {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(account = %stored.username, passkey = %stored.name, error = %e, "a passkey was refused");
            return Ok(Err(SignInOutcome::PasskeyRefused));
        }
    };
    passkey.update_credential(&result);
    let now = serde_json::to_string(&passkey).map_err(|e| WebError::Internal(e.to_string()))?;
    state.store().passkeys().passkey_used(stored.id, OffsetDateTime::now_utc(), &now).await?;
    Ok(Ok(stored))
}

/// The browser's answer as a credential, or nothing it could be.
fn assertion(value: serde_json::Value) -> Option<PublicKeyCredential> {
    serde_json::from_value(value).ok()
}

/// The stored passkey the answer names, if any.
async fn named_passkey(
    state: &WebState,
    credential: Option<&PublicKeyCredential>,
) -> Result<Option<StoredPasskey>, WebError> {
    match credential {
        Some(credential) => Ok(state.store().passkeys().passkey_by_credential(credential.get_credential_id()).await?),
        None => Ok(None),
    }
}

/// A step-up with a passkey of `user`: the answer `credential` (JSON) to `ceremony`. Throttled and
/// logged by the caller (see `step_up`).
pub async fn check(state: &WebState, user: &User, ceremony: &str, credential: &str) -> Result<SignInOutcome, WebError> {
    let credential = serde_json::from_str(credential).ok().and_then(assertion);
    let stored = named_passkey(state, credential.as_ref())
        .await?
        .filter(|stored| stored.username.eq_ignore_ascii_case(&user.username));
    let Some(credential) = credential else { return Ok(SignInOutcome::PasskeyRefused) };
    Ok(match finish_assertion(state, ceremony, &credential, stored, Some(&user.username)).await? {
        Ok(_) => SignInOutcome::Succeeded,
        Err(outcome) => outcome,
    })
}

pub async fn sign_in(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Json(finish): Json<Finish>,
) -> Result<Response, Response> {
    check_form_token(&headers, &finish.csrf).map_err(IntoResponse::into_response)?;
    let caller = Caller { address, headers: &headers };
    let credential = assertion(finish.credential);
    let stored = named_passkey(&state, credential.as_ref()).await.map_err(IntoResponse::into_response)?;
    // Failures count against the passkey's account too, once it is known.
    let account = stored.as_ref().map(|stored| stored.username.clone()).unwrap_or_default();
    let mut keys = vec![SignInKey::address(address)];
    if !account.is_empty() {
        keys.push(SignInKey::account(&account));
    }
    let remember = |outcome| sign_ins::remember(&state, caller, &account, SignInMethod::Passkey, outcome);
    let attempt = match state.auth().attempt(keys).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            remember(SignInOutcome::TooManyAttempts).await;
            let message = format!("Too many failed sign-ins from here; try again in {}.", minutes(wait));
            return Err(refuse(StatusCode::TOO_MANY_REQUESTS, message));
        }
    };
    let Some(credential) = credential else {
        remember(SignInOutcome::PasskeyRefused).await;
        return Err(refuse(StatusCode::BAD_REQUEST, "The browser's answer is not a passkey."));
    };
    let finished = finish_assertion(&state, &finish.ceremony, &credential, stored, None)
        .await
        .map_err(IntoResponse::into_response)?;
    let found = match finished {
        Ok(stored) => state.store().accounts().user_by_name(&stored.username).await.map_err(store_error)?,
        Err(outcome) => {
            remember(outcome).await;
            tracing::warn!(account = %account, ?address, %outcome, "failed passkey sign-in");
            let message = match outcome {
                SignInOutcome::UnknownPasskey => "This passkey is not one of this door's; sign in with your password.",
                _ => "The passkey was not accepted; try again.",
            };
            return Err(refuse(StatusCode::UNAUTHORIZED, message));
        }
    };
    let Some((account, role)) = found.and_then(|a| a.role.parse::<Role>().ok().map(|role| (a, role))) else {
        remember(SignInOutcome::UnusableAccount).await;
        return Err(refuse(StatusCode::UNAUTHORIZED, "This account cannot sign in; ask an admin."));
    };
    attempt.succeeded();
    remember(SignInOutcome::Succeeded).await;
    tracing::info!(user = %account.username, %role, ?address, "signed in with a passkey");
    let cookie = state.auth().sign_in(&account, role, None);
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "redirect": "/" }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        headers
    }

    #[test]
    fn passkeys_work_under_the_doors_names_over_https_and_at_localhost() {
        let names = ["doorpi".to_owned(), "doorpi.local".to_owned(), "localhost".to_owned(), "192.168.1.20".to_owned()];
        let https = Passkeys::for_names(&names, true);
        assert_eq!(https.party(&with_host("DoorPi.local:8443")).map(|(host, _)| host), Ok("doorpi.local".to_owned()));
        assert!(https.unavailable(&with_host("doorpi")).is_none());
        let by_address = https.unavailable(&with_host("192.168.1.20:8443")).expect("no passkeys for an address");
        assert!(by_address.contains("https://doorpi or https://doorpi.local"), "{by_address}");
        assert!(https.unavailable(&HeaderMap::new()).is_some(), "no Host header");

        let http = Passkeys::for_names(&names, false);
        assert!(http.unavailable(&with_host("localhost:8080")).is_none(), "localhost is a secure context");
        let plain = http.unavailable(&with_host("doorpi.local:8080")).expect("not over plain http");
        assert!(plain.contains("HTTPS"), "{plain}");
    }

    #[test]
    fn a_ceremony_is_taken_once_and_only_while_fresh() {
        let passkeys = Passkeys::for_names(&["localhost".to_owned()], false);
        let (_, state) = passkeys.parties["localhost"].start_discoverable_authentication().unwrap();
        let id = passkeys.begin(Ceremony::Assert { username: None, host: "localhost".into(), state });
        assert!(passkeys.take("not-an-id").is_none());
        assert!(matches!(passkeys.take(&id), Some(Ceremony::Assert { username: None, .. })));
        assert!(passkeys.take(&id).is_none(), "used once");

        let (_, state) = passkeys.parties["localhost"].start_discoverable_authentication().unwrap();
        let id = passkeys.begin(Ceremony::Assert { username: None, host: "localhost".into(), state });
        passkeys.ceremonies.lock().unwrap().get_mut(&id).unwrap().0 -= CEREMONY_LIFETIME;
        assert!(passkeys.take(&id).is_none(), "stale");
    }

    #[test]
    fn registration_asks_for_a_discoverable_passkey_with_user_verification() {
        let passkeys = Passkeys::for_names(&["localhost".to_owned()], false);
        let existing = vec![vec![1u8, 2, 3]];
        let (options, _) = start_registration(&passkeys.parties["localhost"], Uuid::new_v4(), "ada", existing).unwrap();
        let options = serde_json::to_value(&options).unwrap()["publicKey"].clone();
        assert_eq!(options["rp"]["id"], "localhost");
        assert_eq!(options["user"]["name"], "ada");
        let selection = &options["authenticatorSelection"];
        assert_eq!((&selection["residentKey"], &selection["requireResidentKey"]), (&json!("required"), &json!(true)));
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["excludeCredentials"][0]["id"], "AQID", "the account's passkeys are not made again");
    }
}
