//! Signing in and out, and the first-run page that creates the first admin.

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::{Button, ClientAddress, FORM_COOKIE, SignInKey, SignedForm, cookie, minutes, same_secret};
use super::sign_ins::{self, Caller};
use super::views::{bare_page, capitalised};
use super::{WebError, WebState, passkeys};
use crate::accounts::{self, Role};
use crate::liveness::Challenge;
use crate::store::{SignInMethod, SignInOutcome};

/// The double-submit token of the sign-in and setup forms: the browser's cookie, or a new one.
pub(super) fn form_token(headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, FORM_COOKIE).filter(|token| token.len() == 64) {
        Some(token) => (token.to_owned(), None),
        None => {
            let token = accounts::random_token(32);
            (token.clone(), Some(token))
        }
    }
}

/// `page` with the form cookie set when the browser had none.
pub(super) fn with_form_cookie(
    state: &WebState,
    status: StatusCode,
    new_token: Option<String>,
    page: Markup,
) -> Response {
    match new_token {
        Some(token) => {
            let cookie = state.auth().cookie(FORM_COOKIE, &token, Duration::from_secs(24 * 3600));
            (status, [(header::SET_COOKIE, cookie)], page).into_response()
        }
        None => (status, page).into_response(),
    }
}

pub(super) fn check_form_token(headers: &HeaderMap, given: &str) -> Result<(), WebError> {
    match cookie(headers, FORM_COOKIE) {
        Some(expected) if same_secret(given, expected) => Ok(()),
        _ => Err(WebError::Csrf),
    }
}

/// The sign-in page; `own_certificate` when the door serves https with its own authority; what
/// face sign-in asks of the person; the passkey button.
fn login_form(
    token: &str,
    username: &str,
    error: Option<&str>,
    no_accounts: bool,
    own_certificate: bool,
    challenge: Challenge,
    passkey: Markup,
) -> Markup {
    bare_page(
        "Sign in",
        html! {
            section.card {
                h1 { "Sign in" }
                @if let Some(error) = error { p.flash.error role="alert" { (error) } }
                @if no_accounts {
                    p.hint {
                        "No accounts yet. Create the first admin on the " a href="/setup" { "setup page" }
                        " with the setup code from the daemon's log (" code { "journalctl -u facereko" }
                        "), or with " code { "facereko user add NAME" } "."
                    }
                }
                form.stack method="post" action="/login" {
                    input type="hidden" name="csrf" value=(token);
                    label for="username" { "Username" }
                    input #username name="username" value=(username) autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button.primary type="submit" { "Sign in" }
                }
                @if !no_accounts { (passkey) }
                (super::face_sign_in::login_section(challenge))
                @if own_certificate {
                    p.hint {
                        "Does your browser warn about this site? "
                        a href="/certificate" { "Install the door's certificate" } " once on this device."
                    }
                }
            }
        },
    )
}

pub async fn login_page(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    let (token, new_token) = form_token(&headers);
    // While the database is away the page still shows; signing in then says why it fails.
    let no_accounts = matches!(state.store().accounts().list_users().await, Ok(users) if users.is_empty());
    Ok(with_form_cookie(
        &state,
        StatusCode::OK,
        new_token,
        login_form(
            &token,
            "",
            None,
            no_accounts,
            state.has_own_certificate(),
            state.liveness().challenge(),
            passkeys::sign_in_button(&state, &headers, &token),
        ),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    check_form_token(&headers, &form.csrf)?;
    let username = form.username.trim().to_owned();
    let caller = || Caller { address, headers: &headers };
    let keys = vec![SignInKey::account(&username), SignInKey::address(address)];
    let attempt = match state.auth().attempt(keys).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            tracing::warn!(user = %username, ?address, "sign-in refused: too many failures from this address");
            sign_ins::remember(&state, caller(), &username, SignInMethod::Password, SignInOutcome::TooManyAttempts)
                .await;
            let message = format!("too many failed sign-ins from here; try again in {}", minutes(wait));
            return Err(WebError::TooManyAttempts(message));
        }
    };
    let account = state.store().accounts().user_by_name(&username).await?;
    let hash = account.as_ref().map_or_else(|| accounts::decoy_hash().to_owned(), |a| a.password_hash.clone());
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let role = account.as_ref().and_then(|a| a.role.parse::<Role>().ok());
    let outcome = match (&account, role, matches) {
        (None, _, _) => SignInOutcome::UnknownAccount,
        (Some(_), _, false) => SignInOutcome::WrongPassword,
        (Some(_), None, true) => SignInOutcome::UnusableAccount,
        (Some(_), Some(_), true) => SignInOutcome::Succeeded,
    };
    sign_ins::remember(&state, caller(), &username, SignInMethod::Password, outcome).await;
    match (account, role, matches) {
        (Some(account), Some(role), true) => {
            attempt.succeeded();
            tracing::info!(user = %account.username, %role, ?address, "signed in");
            let cookie = state.auth().sign_in(&account, role, None);
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
        }
        _ => {
            tracing::warn!(user = %username, ?address, "failed sign-in");
            let page = login_form(
                &form.csrf,
                &username,
                Some("Wrong user name or password."),
                false,
                state.has_own_certificate(),
                state.liveness().challenge(),
                passkeys::sign_in_button(&state, &headers, &form.csrf),
            );
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
    }
}

pub async fn logout(
    State(state): State<WebState>,
    SignedForm(user, _form): SignedForm<Button>,
) -> Result<Response, WebError> {
    let cookie = state.auth().sign_out(&user);
    tracing::info!(user = %user.username, "signed out");
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

fn setup_form(token: &str, username: &str, error: Option<&str>) -> Markup {
    bare_page(
        "First-run setup",
        html! {
            section.card {
                h1 { "Create the first admin" }
                p.hint {
                    "Enter the setup code that the daemon printed in its log when it started ("
                    code { "journalctl -u facereko | grep setup_code" } "). It works once."
                }
                @if let Some(error) = error { p.flash.error role="alert" { (error) } }
                form.stack method="post" action="/setup" {
                    input type="hidden" name="csrf" value=(token);
                    label for="code" { "Setup code" }
                    input #code name="code" autocomplete="one-time-code" required autofocus placeholder="XXXX-XXXX-XXXX";
                    label for="username" { "Username" }
                    input #username name="username" value=(username) autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="new-password" required
                        minlength=(accounts::MIN_PASSWORD_CHARS);
                    label for="confirm" { "Password again" }
                    input #confirm name="confirm" type="password" autocomplete="new-password" required;
                    button.primary type="submit" { "Create admin and sign in" }
                }
            }
        },
    )
}

async fn has_accounts(state: &WebState) -> Result<bool, WebError> {
    Ok(!state.store().accounts().list_users().await?.is_empty())
}

pub async fn setup_page(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    if has_accounts(&state).await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let (token, new_token) = form_token(&headers);
    Ok(with_form_cookie(&state, StatusCode::OK, new_token, setup_form(&token, "", None)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SetupForm {
    csrf: String,
    code: String,
    username: String,
    password: String,
    confirm: String,
}

pub async fn setup(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Result<Response, WebError> {
    check_form_token(&headers, &form.csrf)?;
    if has_accounts(&state).await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let refuse = |message: String| {
        Ok((StatusCode::UNPROCESSABLE_ENTITY, setup_form(&form.csrf, &form.username, Some(&message))).into_response())
    };
    let username = match accounts::clean_username(&form.username) {
        Ok(name) => name.to_owned(),
        Err(e) => return refuse(capitalised(&e.to_string())),
    };
    if let Err(e) = accounts::check_new_password(&form.password) {
        return refuse(capitalised(&e.to_string()));
    }
    if form.password != form.confirm {
        return refuse("The two passwords differ.".into());
    }
    // Guessing the code counts against the address like guessing a password.
    let caller = || Caller { address, headers: &headers };
    let attempt = match state.auth().attempt(vec![SignInKey::address(address)]).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            sign_ins::remember(&state, caller(), &username, SignInMethod::SetupCode, SignInOutcome::TooManyAttempts)
                .await;
            let message = format!("too many wrong setup codes; try again in {}", minutes(wait));
            return Err(WebError::TooManyAttempts(message));
        }
    };
    if !state.auth().take_setup_code(&form.code) {
        sign_ins::remember(&state, caller(), &username, SignInMethod::SetupCode, SignInOutcome::WrongSetupCode).await;
        return refuse("That is not the setup code from the log (it works only once).".into());
    }
    attempt.succeeded();
    sign_ins::remember(&state, caller(), &username, SignInMethod::SetupCode, SignInOutcome::Succeeded).await;
    let password = form.password.clone();
    let hash = tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let account = state.store().accounts().add_user(&username, &hash, Role::Admin.as_str()).await?;
    tracing::info!(user = %username, "first admin created on the setup page");
    let cookie = state.auth().sign_in(&account, Role::Admin, None);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}
