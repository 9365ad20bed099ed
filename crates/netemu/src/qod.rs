//! CAMARA Quality on Demand (`/quality-on-demand/v1`): sessions are created `AVAILABLE` at once,
//! become `UNAVAILABLE` (`DURATION_EXPIRED`) when their duration runs out, can be extended up to
//! the profile's maximum, read, listed per device and deleted. No CloudEvents are sent to `sink`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::CamaraClient;
use crate::camara::{resolve, rfc3339, CamaraDevice};
use crate::error::{camara_body, CamaraError};
use crate::state::{lock, Emulator};

/// A stored session.
pub(crate) struct QodSession {
    pub id: String,
    pub owner: String,
    pub device: usize,
    pub device_response: Value,
    pub application_server: Value,
    pub device_ports: Option<Value>,
    pub application_server_ports: Option<Value>,
    pub qos_profile: String,
    pub sink: Option<String>,
    pub duration: u32,
    pub started_at: DateTime<Utc>,
}

impl QodSession {
    fn expires_at(&self) -> DateTime<Utc> {
        self.started_at + chrono::Duration::seconds(i64::from(self.duration))
    }

    fn available(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at()
    }

    /// CAMARA `SessionInfo`.
    fn info(&self, now: DateTime<Utc>) -> Value {
        let mut v = json!({
            "sessionId": self.id,
            "device": self.device_response,
            "applicationServer": self.application_server,
            "qosProfile": self.qos_profile,
            "duration": self.duration,
            "startedAt": rfc3339(self.started_at),
            "expiresAt": rfc3339(self.expires_at()),
        });
        if self.available(now) {
            v["qosStatus"] = json!("AVAILABLE");
        } else {
            v["qosStatus"] = json!("UNAVAILABLE");
            v["statusInfo"] = json!("DURATION_EXPIRED");
        }
        if let Some(p) = &self.device_ports {
            v["devicePorts"] = p.clone();
        }
        if let Some(p) = &self.application_server_ports {
            v["applicationServerPorts"] = p.clone();
        }
        if let Some(s) = &self.sink {
            v["sink"] = json!(s);
        }
        v
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateSession {
    device: Option<CamaraDevice>,
    application_server: Option<Value>,
    device_ports: Option<Value>,
    application_server_ports: Option<Value>,
    qos_profile: Option<String>,
    sink: Option<String>,
    sink_credential: Option<Value>,
    duration: Option<i64>,
}

fn bad(code: &str, message: impl Into<String>) -> CamaraError {
    CamaraError::new(StatusCode::BAD_REQUEST, code, message)
}

fn check_sink(sink: Option<&str>, credential: Option<&Value>) -> Result<(), CamaraError> {
    if let Some(s) = sink {
        if !s.starts_with("https://") || s.len() <= "https://".len() {
            return Err(bad("INVALID_SINK", "sink: must be an https:// URL (^https:\\/\\/.+$)"));
        }
    }
    if let Some(c) = credential {
        if c.get("credentialType").and_then(Value::as_str) != Some("ACCESSTOKEN") {
            return Err(bad("INVALID_CREDENTIAL", "sinkCredential.credentialType: only ACCESSTOKEN is supported"));
        }
        if c.get("accessTokenType").and_then(Value::as_str) != Some("bearer") {
            return Err(bad("INVALID_TOKEN", "sinkCredential.accessTokenType: only bearer is supported"));
        }
        if c.get("accessToken").and_then(Value::as_str).is_none() {
            return Err(CamaraError::invalid_argument("sinkCredential.accessToken: is required"));
        }
    }
    Ok(())
}

/// `POST /sessions`.
pub async fn create(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    body: Bytes,
) -> Result<Response, CamaraError> {
    let req: CreateSession = camara_body(&body)?;
    let server = req.application_server.ok_or_else(|| CamaraError::invalid_argument("applicationServer: is required"))?;
    let has_addr = ["ipv4Address", "ipv6Address"].iter().any(|k| server.get(k).is_some_and(Value::is_string));
    if !has_addr {
        return Err(CamaraError::invalid_argument("applicationServer: needs ipv4Address or ipv6Address"));
    }
    let profile_name = req.qos_profile.ok_or_else(|| CamaraError::invalid_argument("qosProfile: is required"))?;
    let valid_name = (3..=256).contains(&profile_name.len())
        && profile_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid_name {
        return Err(CamaraError::invalid_argument("qosProfile: must match ^[a-zA-Z0-9_.-]+$, 3 to 256 characters"));
    }
    let duration = req.duration.ok_or_else(|| CamaraError::invalid_argument("duration: is required"))?;
    if duration < 1 {
        return Err(CamaraError::invalid_argument("duration: must be >= 1"));
    }
    check_sink(req.sink.as_deref(), req.sink_credential.as_ref())?;
    let profile = emu.scenario.qos_profile(&profile_name).ok_or_else(|| {
        CamaraError::unprocessable(
            "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE",
            format!("qosProfile: '{profile_name}' is not offered by this network"),
        )
    })?;
    if duration > i64::from(profile.max_duration_seconds) {
        return Err(bad(
            "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE",
            format!("duration: at most {} s for {profile_name}", profile.max_duration_seconds),
        ));
    }
    let duration = u32::try_from(duration).unwrap_or(profile.max_duration_seconds);
    let now = Utc::now();
    let mut world = lock(&emu.world);
    let dev = resolve(&emu, &world, req.device.as_ref())?;
    if world.sessions.values().any(|s| s.device == dev.idx && s.available(now)) {
        return Err(CamaraError::conflict("CONFLICT", "Conflict with an existing session for the same device."));
    }
    let session = QodSession {
        id: uuid::Uuid::new_v4().to_string(),
        owner,
        device: dev.idx,
        device_response: dev.response,
        application_server: server,
        device_ports: req.device_ports,
        application_server_ports: req.application_server_ports,
        qos_profile: profile_name,
        sink: req.sink,
        duration,
        started_at: now,
    };
    let info = session.info(now);
    world.sessions.insert(session.id.clone(), session);
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

fn session_id(id: &str) -> Result<(), CamaraError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| CamaraError::invalid_argument(format!("sessionId: '{id}' is not a UUID")))
}

fn not_found(id: &str) -> CamaraError {
    CamaraError::not_found(format!("sessionId: no session '{id}'"))
}

/// `GET /sessions/{sessionId}`.
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, CamaraError> {
    session_id(&id)?;
    let world = lock(&emu.world);
    let s = world.sessions.get(&id).filter(|s| s.owner == owner).ok_or_else(|| not_found(&id))?;
    Ok(Json(s.info(Utc::now())))
}

/// `DELETE /sessions/{sessionId}`: 204.
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Path(id): Path<String>,
) -> Result<StatusCode, CamaraError> {
    session_id(&id)?;
    let mut world = lock(&emu.world);
    if world.sessions.get(&id).is_none_or(|s| s.owner != owner) {
        return Err(not_found(&id));
    }
    world.sessions.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendSessionDuration {
    requested_additional_duration: Option<i64>,
}

/// `POST /sessions/{sessionId}/extend`: adds time, capped at the profile's maximum.
pub async fn extend(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, CamaraError> {
    session_id(&id)?;
    let req: ExtendSessionDuration = camara_body(&body)?;
    let add = req
        .requested_additional_duration
        .ok_or_else(|| CamaraError::invalid_argument("requestedAdditionalDuration: is required"))?;
    if add < 1 {
        return Err(CamaraError::invalid_argument("requestedAdditionalDuration: must be >= 1"));
    }
    let now = Utc::now();
    let mut world = lock(&emu.world);
    let s = world.sessions.get_mut(&id).filter(|s| s.owner == owner).ok_or_else(|| not_found(&id))?;
    if !s.available(now) {
        return Err(CamaraError::conflict(
            "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED",
            "Extending the session duration is not allowed in the current state (UNAVAILABLE). The session must be in the AVAILABLE state.",
        ));
    }
    let max = emu.scenario.qos_profile(&s.qos_profile).map_or(u32::MAX, |p| p.max_duration_seconds);
    let wanted = i64::from(s.duration).saturating_add(add).min(i64::from(max));
    s.duration = u32::try_from(wanted).unwrap_or(max);
    Ok(Json(s.info(now)))
}

#[derive(Deserialize)]
struct RetrieveSessionsInput {
    device: Option<CamaraDevice>,
}

/// `POST /retrieve-sessions`: the caller's sessions of a device.
pub async fn retrieve(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    body: Bytes,
) -> Result<Json<Vec<Value>>, CamaraError> {
    let req: RetrieveSessionsInput = camara_body(&body)?;
    let world = lock(&emu.world);
    let dev = resolve(&emu, &world, req.device.as_ref())?;
    let now = Utc::now();
    Ok(Json(
        world
            .sessions
            .values()
            .filter(|s| s.owner == owner && s.device == dev.idx)
            .map(|s| s.info(now))
            .collect(),
    ))
}
