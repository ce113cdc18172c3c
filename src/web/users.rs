//! Web accounts on the settings page: admins add and remove accounts; everyone changes their own
//! password.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::{Button, ClientAddress, Flash, SignedForm, User};
use super::sign_ins::Caller;
use super::step_up::{self, ConfirmedAdminForm};
use super::views::{capitalised, csrf_field, post_button};
use super::{WebError, WebState, face_sign_in, settings};
use crate::accounts::{self, Role};

const ROLES: &[(Role, &str)] =
    &[(Role::Viewer, "viewer: looks at the dashboard and history"), (Role::Admin, "admin: changes everything")];

/// The accounts part of the settings page.
pub async fn section(state: &WebState, user: &User) -> Result<Markup, WebError> {
    let accounts = state.store().accounts().list_users().await?;
    let admin = user.is_admin();
    let links = state.store().face_links().face_links().await?;
    let people = if admin { state.store().people().list_people().await? } else { Vec::new() };
    let own_face = face_sign_in::own_card(state, user).await?;
    Ok(html! {
        div.two-columns #accounts {
            section.card {
                h2 { "Accounts" }
                ul.items #account-list {
                    @for account in &accounts {
                        li {
                            span { strong { (account.username) } " · " (account.role)
                                @if account.username.eq_ignore_ascii_case(&user.username) { span.muted { " (you)" } } }
                            @if admin && !account.username.eq_ignore_ascii_case(&user.username) {
                                (post_button(user, &format!("/accounts/{}/remove", account.username), "Remove", "quiet danger-text",
                                    Some(&format!("Remove the account {}?", account.username))))
                            }
                            @if admin {
                                (face_sign_in::link_form(user, &account.username, links_of(&links, &account.username), &people))
                            }
                        }
                    }
                }
                @if admin {
                    p { a href="/sign-ins" { "Sign-in log" } " · every attempt to sign in, from where and how it ended" }
                    form.stack method="post" action="/accounts" {
                        (csrf_field(user))
                        label for="new-username" { "New account's username" }
                        input #new-username name="username" required autocomplete="off";
                        label for="new-role" { "Role" }
                        select #new-role name="role" {
                            @for (role, label) in ROLES { option value=(role.as_str()) { (label) } }
                        }
                        label for="new-account-password" { "Their password" }
                        input #new-account-password name="password" type="password" autocomplete="new-password" required
                            minlength=(accounts::MIN_PASSWORD_CHARS);
                        label for="new-account-confirm" { "Their password again" }
                        input #new-account-confirm name="confirm" type="password" autocomplete="new-password" required;
                        button.primary type="submit" { "Add account" }
                    }
                }
            }
            section.card {
                h2 { "Your password" }
                form.stack method="post" action="/account/password" {
                    (csrf_field(user))
                    label for="current-password" { "Current password" }
                    input #current-password name="current" type="password" autocomplete="current-password" required;
                    label for="new-password" { "New password" }
                    input #new-password name="password" type="password" autocomplete="new-password" required
                        minlength=(accounts::MIN_PASSWORD_CHARS);
                    label for="confirm-password" { "New password again" }
                    input #confirm-password name="confirm" type="password" autocomplete="new-password" required;
                    button.secondary type="submit" { "Change password" }
                }
            }
            (own_face)
        }
    })
}

/// The face sign-in link of account `name`, if it has one.
fn links_of<'a>(links: &'a [(String, crate::store::FaceLink)], name: &str) -> Option<&'a crate::store::FaceLink> {
    links.iter().find(|(account, _)| account.eq_ignore_ascii_case(name)).map(|(_, link)| link)
}

/// The settings page again with `message` as an error and 422: nothing was changed.
async fn refuse(state: &WebState, user: &User, message: impl Into<String>) -> Result<Response, WebError> {
    settings::render(state, user, Some(Flash::error(message)), StatusCode::UNPROCESSABLE_ENTITY).await
}

/// Checks a new password and its repetition; hashes it off the async threads.
async fn new_hash(password: &str, confirm: &str) -> Result<Result<String, String>, WebError> {
    if let Err(e) = accounts::check_new_password(password) {
        return Ok(Err(capitalised(&e.to_string())));
    }
    if password != confirm {
        return Ok(Err("The two passwords differ.".into()));
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(Ok(hash))
}

fn to_settings(state: &WebState, user: &User, flash: Flash) -> Response {
    state.auth().set_flash(user, flash);
    Redirect::to("/settings#accounts").into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AddForm {
    username: String,
    role: String,
    password: String,
    confirm: String,
}

pub async fn add(
    State(state): State<WebState>,
    ConfirmedAdminForm(user, form): ConfirmedAdminForm<AddForm>,
) -> Result<Response, WebError> {
    let username = match accounts::clean_username(&form.username) {
        Ok(name) => name.to_owned(),
        Err(e) => return refuse(&state, &user, capitalised(&e.to_string())).await,
    };
    let role = match form.role.parse::<Role>() {
        Ok(role) => role,
        Err(e) => return refuse(&state, &user, capitalised(&e.to_string())).await,
    };
    let hash = match new_hash(&form.password, &form.confirm).await? {
        Ok(hash) => hash,
        Err(message) => return refuse(&state, &user, message).await,
    };
    match state.store().accounts().add_user(&username, &hash, role.as_str()).await {
        Ok(_) => {
            tracing::info!(user = %user.username, account = %username, %role, "web account added");
            Ok(to_settings(&state, &user, Flash::ok(format!("Added the {role} account {username}."))))
        }
        Err(crate::store::StoreError::Conflict(message)) => refuse(&state, &user, capitalised(&message)).await,
        Err(e) => Err(e.into()),
    }
}

pub async fn remove(
    State(state): State<WebState>,
    Path(name): Path<String>,
    ConfirmedAdminForm(user, _form): ConfirmedAdminForm<Button>,
) -> Result<Response, WebError> {
    // Only admins remove accounts and never their own, so an admin always remains.
    if name.eq_ignore_ascii_case(&user.username) {
        return refuse(&state, &user, "You cannot remove your own account; another admin can.").await;
    }
    let accounts = state.store().accounts().list_users().await?;
    let account = accounts
        .iter()
        .find(|a| a.username.eq_ignore_ascii_case(&name))
        .ok_or_else(|| WebError::NotFound(format!("there is no account {name}")))?;
    state.store().accounts().remove_user(&account.username).await?;
    tracing::info!(user = %user.username, account = %account.username, "web account removed");
    Ok(to_settings(
        &state,
        &user,
        Flash::ok(format!("Removed the account {}; its sessions have ended.", account.username)),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    current: String,
    password: String,
    confirm: String,
}

pub async fn change_password(
    State(state): State<WebState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    SignedForm(user, form): SignedForm<PasswordForm>,
) -> Result<Response, WebError> {
    // Guessing the current password here counts, and is logged, like guessing it at sign-in.
    let caller = Caller { address, headers: &headers };
    if !step_up::check_password(&state, &user, caller, &form.current).await? {
        return refuse(&state, &user, "The current password is not right; nothing was changed.").await;
    }
    let account = step_up::own_account(&state, &user).await?;
    let hash = match new_hash(&form.password, &form.confirm).await? {
        Ok(hash) => hash,
        Err(message) => return refuse(&state, &user, message).await,
    };
    state.store().accounts().set_password_hash(&account.username, &hash).await?;
    tracing::info!(user = %user.username, "password changed from the web app");
    // The new hash ends every session of the account, this one too: start a fresh one.
    state.auth().sign_out(&user);
    let account = crate::store::User { password_hash: hash, ..account };
    let flash = Flash::ok("Password changed; other sessions of your account have ended.");
    let cookie = state.auth().sign_in(&account, user.role, Some(flash));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/settings#accounts")).into_response())
}
