//! Errors of the Rekognition-compatible API, answered as Rekognition answers them: HTTP status
//! plus `{"__type": ..., "message": ...}`, which the AWS SDKs turn into typed errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::collections::CollectionsError;
use super::sigv4::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceAlreadyExists(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    ImageTooLarge(String),
    #[error("{0}")]
    InvalidImageFormat(String),
    #[error("{0}")]
    InvalidS3Object(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Our own failure: the detail is logged, the caller sees a generic message.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Rekognition's error type name, as the SDK matches it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceAlreadyExists(_) => "ResourceAlreadyExistsException",
            Self::InvalidParameter(_) => "InvalidParameterException",
            Self::ImageTooLarge(_) => "ImageTooLargeException",
            Self::InvalidImageFormat(_) => "InvalidImageFormatException",
            Self::InvalidS3Object(_) => "InvalidS3ObjectException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::Auth(AuthError::Missing(_)) => "MissingAuthenticationTokenException",
            Self::Auth(AuthError::UnknownAccessKey) => "UnrecognizedClientException",
            Self::Auth(AuthError::BadSignature(_)) => "InvalidSignatureException",
            Self::Internal(_) => "InternalServerError",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Auth(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn collection_not_found(id: &str) -> Self {
        Self::ResourceNotFound(format!("The collection id: {id} does not exist"))
    }

    pub fn no_face() -> Self {
        Self::InvalidParameter("There are no faces in the image. Should be at least 1.".into())
    }
}

impl From<CollectionsError> for ApiError {
    fn from(error: CollectionsError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(detail = %detail, "Rekognition API request failed");
                "Internal server error".to_owned()
            }
            other => {
                tracing::debug!(error = other.type_name(), message = %other, "Rekognition API request refused");
                other.to_string()
            }
        };
        let body = serde_json::json!({ "__type": self.type_name(), "message": message });
        (
            self.status(),
            [("content-type", "application/x-amz-json-1.1"), ("x-amzn-errortype", self.type_name())],
            body.to_string(),
        )
            .into_response()
    }
}
