//! The stylesheet, script and icon, built into the binary.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::WebError;

/// The version in the names lets browsers cache the files until the next release.
pub const CSS_PATH: &str = concat!("/static/app-", env!("CARGO_PKG_VERSION"), ".css");
pub const JS_PATH: &str = concat!("/static/app-", env!("CARGO_PKG_VERSION"), ".js");
pub const ICON_PATH: &str = concat!("/static/icon-", env!("CARGO_PKG_VERSION"), ".svg");

const FILES: &[(&str, &str, &str)] = &[
    (CSS_PATH, "text/css; charset=utf-8", include_str!("assets/app.css")),
    (JS_PATH, "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    (ICON_PATH, "image/svg+xml", include_str!("assets/icon.svg")),
];

pub async fn serve(Path(file): Path<String>) -> Result<Response, WebError> {
    let path = format!("/static/{file}");
    let (_, content_type, text) = FILES
        .iter()
        .find(|(known, _, _)| *known == path)
        .ok_or_else(|| WebError::NotFound(format!("there is no file {file}")))?;
    Ok(([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=604800, immutable")], *text)
        .into_response())
}
