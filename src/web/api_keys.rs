//! The face API's keys on the settings page: admins make one (shown once, kept only as its
//! SHA-256) and revoke it; every request to `/api/v1/…` names one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::{AdminForm, Button, Flash, User, same_secret};
use super::views::{csrf_field, post_button, time_cell};
use super::{WebError, WebState, settings};
use crate::accounts::random_token;
use crate::store::{ApiKey, Store, StoreError};

/// Every key starts with this, so that a leaked one is easy to recognise (and to search for).
pub const KEY_PREFIX: &str = "frk_";
/// The longest name a key may have.
const MAX_NAME_CHARS: usize = 80;

/// The stored form of `key`: its hex SHA-256. Keys are 192 random bits, so a plain hash cannot
/// be turned back by guessing.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// The key in force whose hash is `key`'s, compared with every stored hash in constant time.
pub async fn find_key(store: &dyn Store, key: &str) -> Result<Option<ApiKey>, StoreError> {
    let hash = key_hash(key);
    let keys = store.api_keys().list_api_keys().await?;
    // No early exit: the time taken does not tell which stored key came close.
    Ok(keys.into_iter().fold(None, |found, stored| {
        let same = same_secret(&hash, &stored.key_hash);
        if same && found.is_none() { Some(stored) } else { found }
    }))
}

/// The API keys part of the settings page.
pub async fn section(state: &WebState, user: &User) -> Result<Markup, WebError> {
    let keys = state.store().api_keys().list_api_keys().await?;
    let admin = user.is_admin();
    Ok(html! {
        section.card #api-keys {
            h2 { "API keys" }
            p.hint {
                "Programs that compare an ID photo with a selfie (" code { "/api/v1/compare" } ", or CompreFace's "
                code { "/api/v1/verification/verify" } ") send one of these keys. A key is shown once, when it is made; "
                "revoking it stops it at once."
            }
            @if keys.is_empty() {
                p.muted { "No API keys." }
            } @else {
                ul.items #api-key-list {
                    @for key in &keys {
                        li {
                            span { strong { (key.name) } " · made " (time_cell(key.created)) " · "
                                @match key.last_used {
                                    Some(at) => { "last used " (time_cell(at)) },
                                    None => { "never used" },
                                }
                            }
                            @if admin {
                                (post_button(user, &format!("/settings/api-keys/{}/revoke", key.id), "Revoke", "quiet danger-text",
                                    Some(&format!("Revoke the API key {}? Programs using it stop working.", key.name))))
                            }
                        }
                    }
                }
            }
            @if admin {
                form.stack method="post" action="/settings/api-keys" {
                    (csrf_field(user))
                    label for="api-key-name" { "New key's name (who or what uses it)" }
                    input #api-key-name name="name" required maxlength=(MAX_NAME_CHARS) autocomplete="off";
                    button.secondary type="submit" { "Make an API key" }
                }
            }
        }
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewKeyForm {
    name: String,
}

pub async fn create(
    State(state): State<WebState>,
    AdminForm(user, form): AdminForm<NewKeyForm>,
) -> Result<Response, WebError> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        let message = format!("Give the key a name of 1 to {MAX_NAME_CHARS} characters; nothing was made.");
        return settings::render(&state, &user, Some(Flash::error(message)), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let key = format!("{KEY_PREFIX}{}", random_token(24));
    let stored = state.store().api_keys().add_api_key(name, &key_hash(&key)).await?;
    tracing::info!(user = %user.username, key = %stored.name, id = stored.id, "API key made");
    let message = format!("Made the API key \"{}\": {key} — copy it now; it is not shown again.", stored.name);
    state.auth().set_flash(&user, Flash::ok(message));
    Ok(Redirect::to("/settings#api-keys").into_response())
}

pub async fn revoke(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    AdminForm(user, _form): AdminForm<Button>,
) -> Result<Response, WebError> {
    let keys = state.store().api_keys().list_api_keys().await?;
    let key =
        keys.iter().find(|k| k.id == id).ok_or_else(|| WebError::NotFound(format!("there is no API key {id}")))?;
    state.store().api_keys().revoke_api_key(id).await?;
    tracing::info!(user = %user.username, key = %key.name, id, "API key revoked");
    state.auth().set_flash(&user, Flash::ok(format!("Revoked the API key \"{}\".", key.name)));
    Ok(Redirect::to("/settings#api-keys").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_whole_and_trimmed() {
        let hash = key_hash("frk_abc");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, key_hash(" frk_abc\n"));
        assert_ne!(hash, key_hash("frk_abd"));
    }
}
