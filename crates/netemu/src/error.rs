//! Error bodies, as each family of standard specifies them: CAMARA answers `ErrorInfo`
//! `{status, code, message}` (application/json); the 3GPP APIs (NEF, NWDAF) answer RFC 7807
//! `ProblemDetails` (application/problem+json) per TS 29.122 / TS 29.571.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

/// A CAMARA error answer.
#[derive(Debug, Clone)]
pub struct CamaraError {
    /// HTTP status.
    pub status: StatusCode,
    /// CAMARA code, e.g. `IDENTIFIER_NOT_FOUND`.
    pub code: String,
    /// Human-readable message naming the field at fault.
    pub message: String,
}

impl CamaraError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        CamaraError { status, code: code.to_string(), message: message.into() }
    }

    /// 400 INVALID_ARGUMENT.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// 401 UNAUTHENTICATED.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// 404 NOT_FOUND (a resource).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 404 IDENTIFIER_NOT_FOUND (a device).
    pub fn identifier_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "IDENTIFIER_NOT_FOUND", message)
    }

    /// 422 with an API-specific code.
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 409 with an API-specific code.
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for CamaraError {
    fn into_response(self) -> Response {
        let body = json!({"status": self.status.as_u16(), "code": self.code, "message": self.message});
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// One entry of `ProblemDetails.invalidParams`.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidParam {
    /// JSON pointer of the attribute, or the header/query name.
    pub param: String,
    /// Why it is invalid.
    pub reason: String,
}

/// A 3GPP `ProblemDetails` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemError {
    /// HTTP status (serialized as a number).
    #[serde(serialize_with = "ser_status")]
    pub status: StatusCode,
    /// Short summary of the problem type.
    pub title: String,
    /// This occurrence.
    pub detail: String,
    /// Machine-readable cause (TS 29.122 / 29.571 application error), when one applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Fields at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

fn ser_status<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl ProblemError {
    /// Any status.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        ProblemError { status, title, detail: detail.into(), cause: None, invalid_params: Vec::new() }
    }

    /// 400 naming the attribute at fault (`param` is a JSON pointer such as `/monitoringType`).
    pub fn invalid_param(param: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let mut p = Self::new(StatusCode::BAD_REQUEST, format!("{param}: {reason}"));
        p.cause = Some("INVALID_MSG_FORMAT".into());
        p.invalid_params.push(InvalidParam { param: param.to_string(), reason });
        p
    }

    /// 400 for a missing mandatory attribute.
    pub fn missing(param: &str) -> Self {
        let mut p = Self::invalid_param(param, "mandatory attribute is missing");
        p.cause = Some("MANDATORY_IE_MISSING".into());
        p
    }

    /// 401.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
}

impl IntoResponse for ProblemError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Parses a CAMARA request body; a malformed body is a 400 INVALID_ARGUMENT naming serde's field.
pub fn camara_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CamaraError> {
    serde_json::from_slice(body).map_err(|e| CamaraError::invalid_argument(format!("request body: {e}")))
}

/// Parses a 3GPP request body; a malformed body is a 400 ProblemDetails.
pub fn problem_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProblemError> {
    serde_json::from_slice(body).map_err(|e| {
        let mut p = ProblemError::new(StatusCode::BAD_REQUEST, format!("request body: {e}"));
        p.cause = Some("INVALID_MSG_FORMAT".into());
        p
    })
}
