//! A JSON body extractor whose errors name the offending field (by JSON path) in a CAMARA 400,
//! instead of axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted (app manifests are small; this stops abuse early).
pub const MAX_BODY: usize = 1024 * 1024;

/// `Json<T>` with field-naming errors.
pub struct Body<T>(pub T);

/// Parses `bytes` as `T`, naming the failing path in the error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The fast path first; only a failure pays for tracking the path to name the field.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() { "body".to_string() } else { path };
        ApiError::invalid(field, format!("invalid request body: {inner}"))
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::invalid("Content-Type", "must be application/json"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid("body", format!("could not read the body: {e}")))?;
        parse(&bytes).map(Body)
    }
}
