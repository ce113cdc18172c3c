//! Step-up: opening the door from afar, deciding visits and changing accounts ask for the
//! password or a passkey again once the session's last sign-in or check is older than
//! `web.step_up_after`. The action's form comes back as a page that asks for either and posts
//! the same fields again with the proof, so the action goes on once the proof holds.
//!
//! Every check is throttled and logged like a sign-in (methods `password_check` and
//! `passkey_check`); the password asked before it is changed is the same check.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::de::DeserializeOwned;

use super::auth::{Admin, ClientAddress, SignInKey, User, bad_form, minutes, signed_body};
use super::sign_ins::{self, Caller};
use super::views::bare_page;
use super::{WebError, WebState, passkeys};
use crate::accounts;
use crate::store::{SignInMethod, SignInOutcome};

/// The confirmation page's password field.
pub const PASSWORD_FIELD: &str = "step_up_password";
/// The confirmation page's passkey answer (JSON, from the page script) and its ceremony.
pub const PASSKEY_FIELD: &str = "step_up_passkey";
pub const CEREMONY_FIELD: &str = "step_up_ceremony";

/// Proves that `user` is who they say once more with `verify`, throttled per account and address
/// like a sign-in and logged under `method`; on success the session counts as checked now.
async fn prove(
    state: &WebState,
    user: &User,
    caller: Caller<'_>,
    method: SignInMethod,
    verify: impl Future<Output = Result<SignInOutcome, WebError>>,
) -> Result<bool, WebError> {
    let keys = vec![SignInKey::account(&user.username), SignInKey::address(caller.address)];
    let attempt = match state.auth().attempt(keys).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            sign_ins::remember(state, caller, &user.username, method, SignInOutcome::TooManyAttempts).await;
            return Err(WebError::TooManyAttempts(format!("too many failed checks; try again in {}", minutes(wait))));
        }
    };
    let outcome = verify.await?;
    sign_ins::remember(state, caller, &user.username, method, outcome).await;
    if outcome.succeeded() {
        attempt.succeeded();
        state.auth().checked_again(user);
    }
    Ok(outcome.succeeded())
}

/// The account of `user` as stored now.
pub async fn own_account(state: &WebState, user: &User) -> Result<crate::store::User, WebError> {
    state
        .store()
        .accounts()
        .user_by_name(&user.username)
        .await?
        .ok_or_else(|| WebError::NotFound("your account no longer exists".into()))
}

/// Whether `password` is `user`'s (see [`prove`]).
pub async fn check_password(
    state: &WebState,
    user: &User,
    caller: Caller<'_>,
    password: &str,
) -> Result<bool, WebError> {
    let verify = async {
        let account = own_account(state, user).await?;
        let (hash, password) = (account.password_hash, password.to_owned());
        let matches = tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &password))
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?;
        Ok::<_, WebError>(if matches { SignInOutcome::Succeeded } else { SignInOutcome::WrongPassword })
    };
    prove(state, user, caller, SignInMethod::PasswordCheck, verify).await
}

/// Whether the passkey answer `credential` (to `ceremony`) is from one of `user`'s passkeys (see [`prove`]).
async fn check_passkey(
    state: &WebState,
    user: &User,
    caller: Caller<'_>,
    ceremony: &str,
    credential: &str,
) -> Result<bool, WebError> {
    let verify = passkeys::check(state, user, ceremony, credential);
    prove(state, user, caller, SignInMethod::PasskeyCheck, verify).await
}

/// Lets an action by `user` go on when the session was checked recently or when the posted
/// `fields` carry a proof that holds; otherwise answers with the page that asks for one and posts
/// `fields` to `action` again.
pub async fn require(
    state: &WebState,
    user: &User,
    caller: Caller<'_>,
    action: &str,
    fields: &[(String, String)],
) -> Result<(), Response> {
    if user.checked_within(state.config().step_up_after) {
        return Ok(());
    }
    let field = |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let proved = match (field(PASSWORD_FIELD), field(PASSKEY_FIELD), field(CEREMONY_FIELD)) {
        (Some(password), _, _) if !password.is_empty() => Some(check_password(state, user, caller, password).await),
        (_, Some(credential), Some(ceremony)) if !credential.is_empty() => {
            Some(check_passkey(state, user, caller, ceremony, credential).await)
        }
        _ => None,
    };
    let problem = match proved {
        Some(Ok(true)) => return Ok(()),
        Some(Ok(false)) => Some("That did not prove it is you; nothing was done. Try again."),
        Some(Err(e)) => return Err(e.into_response()),
        None => None,
    };
    let status = if problem.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
    Err((status, confirm_page(user, action, fields, problem)).into_response())
}

/// Asks for the password or a passkey, then posts `fields` (without any earlier proof) to `action`.
fn confirm_page(user: &User, action: &str, fields: &[(String, String)], problem: Option<&str>) -> Markup {
    let proofs = [PASSWORD_FIELD, PASSKEY_FIELD, CEREMONY_FIELD];
    bare_page(
        "Confirm it is you",
        html! {
            section.card #step-up {
                h1 { "Confirm it is you" }
                p.hint {
                    "This changes who can get in, so it needs your password or a passkey again ("
                    (user.username) ")."
                }
                @if let Some(problem) = problem { p.flash.error role="alert" { (problem) } }
                form.stack #step-up-form method="post" action=(action) {
                    @for (name, value) in fields.iter().filter(|(name, _)| !proofs.contains(&name.as_str())) {
                        input type="hidden" name=(name) value=(value);
                    }
                    input type="hidden" name=(CEREMONY_FIELD);
                    input type="hidden" name=(PASSKEY_FIELD);
                    label for="step-up-password" { "Your password" }
                    input #step-up-password name=(PASSWORD_FIELD) type="password" autocomplete="current-password" autofocus;
                    button.primary type="submit" { "Confirm" }
                }
                (passkeys::check_button(user))
            }
        },
    )
}

/// The fields of a urlencoded form, in order.
fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, WebError> {
    serde_urlencoded::from_bytes(body).map_err(|e| WebError::BadRequest(format!("not a valid form: {e}")))
}

/// A form posted by an admin, its CSRF token checked, for an action that needs a recent check
/// (see [`require`]); viewers are refused before anything is asked.
pub struct ConfirmedAdminForm<T>(pub User, pub T);

impl<T: DeserializeOwned> FromRequest<WebState> for ConfirmedAdminForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Admin(user) = Admin::from_request_parts(&mut parts, state).await?;
        let Ok(ClientAddress(address)) = ClientAddress::from_request_parts(&mut parts, state).await;
        let (headers, action) = (parts.headers.clone(), parts.uri.to_string());
        let body = signed_body(&user, Request::from_parts(parts, body), state).await?;
        let fields = form_fields(&body).map_err(IntoResponse::into_response)?;
        require(state, &user, Caller { address, headers: &headers }, &action, &fields).await?;
        let form = serde_urlencoded::from_bytes(&body).map_err(bad_form)?;
        Ok(Self(user, form))
    }
}

/// [`require`] for a form whose body was read as `body` (one not read by [`ConfirmedAdminForm`]).
pub async fn require_for_body(
    state: &WebState,
    user: &User,
    address: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    action: &str,
    body: &Bytes,
) -> Result<(), Response> {
    let fields = form_fields(body).map_err(IntoResponse::into_response)?;
    require(state, user, Caller { address, headers }, action, &fields).await
}
