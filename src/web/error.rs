//! Errors of the web app: what the user reads apart from what goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::views;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {address}: {detail}")]
    Listen { address: String, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("this form has expired or did not come from this app; reload the page and try again")]
    Csrf,
    #[error("your account can look but not change anything; ask an admin")]
    Forbidden,
    #[error("this link has expired or is not valid; open the visit from the Visitors page")]
    LinkExpired,
    /// A page of the door's own (its dashboard, settings, camera, card reader, visitors) asked of a
    /// console, which is not a door.
    #[error("this machine is not a door: it shows the site's doors, each of which has this page of its own")]
    NotADoor,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooManyAttempts(String),
    /// The detail is logged; the user reads that the database is away.
    #[error("the database cannot be reached; try again in a moment")]
    Unavailable(String),
    /// The detail is logged; the user reads that something failed.
    #[error("something went wrong; the details are in the daemon's log")]
    Internal(String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) | Self::NotADoor => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Csrf | Self::Forbidden | Self::LinkExpired => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Listen { .. } | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::Conflict(message) => Self::BadRequest(message),
            StoreError::Unreachable(detail) => Self::Unavailable(detail),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(detail) => tracing::warn!(%detail, "web request failed: the database is away"),
            Self::Internal(detail) | Self::Listen { detail, .. } => tracing::error!(%detail, "web request failed"),
            _ => tracing::debug!(error = %self, "web request refused"),
        }
        let page = match self {
            Self::NotADoor => views::not_a_door_page(),
            _ => views::error_page(self.status(), &self.to_string()),
        };
        (self.status(), page).into_response()
    }
}

pub async fn not_found() -> WebError {
    WebError::NotFound("there is no such page".into())
}
