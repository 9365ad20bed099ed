//! The one place errors become HTTP: every API error answers with CAMARA's `ErrorInfo` body
//! `{status, code, message}`; messages name the field at fault and say what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use op_store::RepoError;
use op_types::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// CAMARA `ErrorInfo`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorInfo {
    /// HTTP status code.
    pub status: u16,
    /// Machine-readable code, e.g. `INVALID_ARGUMENT`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the request is wrong.
    #[error("{0}")]
    Invalid(FieldError),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// No such object (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The name is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// Refused because of the object's current state (e.g. deleting an app with instances).
    #[error("{0}")]
    Aborted(String),
    /// Lost a concurrent update race; retry.
    #[error("{0}")]
    Conflict(String),
    /// Understood but not applicable (CAMARA 422 with a specific code).
    #[error("{1}")]
    Unprocessable(&'static str, String),
    /// A device identifier the network does not know (CAMARA 404 IDENTIFIER_NOT_FOUND).
    #[error("{0}")]
    IdentifierNotFound(String),
    /// The data is kept by another plane (a region's controller, or the global plane); the
    /// message says which one to ask.
    #[error("{0}")]
    Misdirected(String),
    /// Too many requests; retry later.
    #[error("{0}")]
    TooManyRequests(String),
    /// The store or a runtime is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid(FieldError::new(field, message))
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            ApiError::Aborted(_) => (StatusCode::CONFLICT, "ABORTED"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::Unprocessable(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::IdentifierNotFound(_) => (StatusCode::NOT_FOUND, "IDENTIFIER_NOT_FOUND"),
            ApiError::Misdirected(_) => (StatusCode::MISDIRECTED_REQUEST, "MISDIRECTED_REQUEST"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::AlreadyExists { .. } => ApiError::AlreadyExists(e.to_string()),
            RepoError::Conflict => ApiError::Conflict("the object changed concurrently; retry".into()),
            RepoError::Store(op_store::StoreError::Unavailable(m)) => ApiError::Unavailable(format!("store unavailable: {m}")),
            RepoError::Store(op_store::StoreError::Elsewhere(m)) => ApiError::Misdirected(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorInfo { status: status.as_u16(), code: code.to_string(), message: self.to_string() };
        (status, Json(body)).into_response()
    }
}
