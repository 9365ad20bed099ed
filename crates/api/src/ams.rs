//! ETSI GS MEC 021 Application Mobility Service (AMS) under [`BASE`]: app instances register
//! the devices they serve and how they may be moved (`/app_mobility_services`), subscribe to
//! mobility procedure and adjacent-instance notifications (`/subscriptions`), and ask for the
//! other Ready instances of their app (`/queries/adjacent_app_instances`). Paths, field names
//! and status codes are MEC 021's; notification bodies are AdvantEDGE `meep-ams`'s; every error
//! is a `ProblemDetails` (`application/problem+json`).
//!
//! Callers are app instances (their `OP_INSTANCE_TOKEN`) or their organization's developers
//! (login JWT); the operator reads. Everyone sees only its organization's registrations and
//! subscriptions; an instance registers only itself or other instances of its app.
//! Registrations and subscriptions are stored objects (kinds `AmsRegistration`,
//! `AmsSubscription`), so they survive restarts; [`run`] expires them and watches for changes
//! in apps' Ready instances. The relocation engine ([`crate::mobility`]) reads registrations
//! with [`device_state`] and [`registered`] and notifies with [`notify_mobility`].
//!
//! Not supported: WebSocket delivery (`websockNotifConfig`, refused with a 400), registration
//! by a MEC platform (`mepId`), and the MEC 011 `fields`/`all_fields`/`exclude_*` selectors
//! (ignored). `GET /app_mobility_services` ignores `filter`; `GET
//! /queries/adjacent_app_instances` supports `filter` with `eq`, `neq`, `in`, `nin` on
//! `appInstanceId`, `appDId`, `registeredInstanceId`, `mecHostInformation/hostName` and
//! `mecHostInformation/hostId/edgeCloudZoneId`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use op_types::ams::{
    AdjacentAppInfo, AdjacentAppInfoFilter, AdjacentAppInfoNotification, AdjacentAppInstanceInfo, AmsRegistrationSpec, AmsSubscription, AmsSubscriptionSpec,
    AppMobilityServiceLevel, AssociateId, CommunicationInterface, ContextTransferState, ExpiryNotification, IpAddress, LinkType, MecHostInformation,
    MobilityProcedureNotification, MobilityStatus, ProblemDetails, RegistrationInfo, SubscriptionLinkList, SubscriptionLinkListLinks,
    SubscriptionLinkListSubscription, SubscriptionType, TargetAppInfo, TestNotification,
};
use op_types::specs::{AppInstance, AppInstanceSpec, InstanceObserved, Role};
use op_types::{Kind, Name, Object, State as ObjState, Uid};
use serde::Serialize;

use crate::auth::{Caller, InstanceCaller};
use crate::error::ApiError;
use crate::json::{parse, MAX_BODY};
use crate::state::AppState;

/// Where the AMS is served (MEC 021's `apiRoot/amsi/v1`).
pub const BASE: &str = "/amsi/v1";

/// How long one notification delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

const PROBLEM_JSON: &str = "application/problem+json";

type Registration = Object<AmsRegistrationSpec>;
type Subscription = Object<AmsSubscriptionSpec>;

// ---------------------------------------------------------------------------------------------
// Errors as ProblemDetails

/// An AMS error: any [`ApiError`], answered as MEC `ProblemDetails` with the status
/// `error.rs` gives it.
#[derive(Debug)]
pub struct AmsError(pub ApiError);

impl<E: Into<ApiError>> From<E> for AmsError {
    fn from(e: E) -> Self {
        AmsError(e.into())
    }
}

impl IntoResponse for AmsError {
    fn into_response(self) -> Response {
        let detail = self.0.to_string();
        // The status is the platform's one mapping's (which also logs server errors).
        let status = self.0.into_response().status();
        let pd = ProblemDetails {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            instance: None,
        };
        let mut r = problem_response(&pd);
        r.extensions_mut().insert(pd);
        r
    }
}

fn problem_response(pd: &ProblemDetails) -> Response {
    let status = StatusCode::from_u16(pd.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(pd).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response()
}

/// Route layer of the AMS routes: fills `instance` of a `ProblemDetails` answer with the
/// request's path.
pub async fn problem_instance(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    match resp.extensions_mut().remove::<ProblemDetails>() {
        Some(mut pd) => {
            pd.instance = Some(path);
            problem_response(&pd)
        }
        None => resp,
    }
}

/// Any other path under [`BASE`]: a `ProblemDetails` 404.
pub async fn not_found() -> AmsError {
    AmsError(ApiError::NotFound(format!(
        "no such AMS resource; the AMS serves {BASE}/app_mobility_services, {BASE}/subscriptions and {BASE}/queries/adjacent_app_instances"
    )))
}

// ---------------------------------------------------------------------------------------------
// Callers and bodies

/// Who calls the AMS: an app instance with its `OP_INSTANCE_TOKEN`, or a user with a login
/// token (developers act for their organization; the operator reads everything).
#[derive(Debug, Clone)]
pub struct AmsCaller {
    /// The organization acted for; `None` for the operator.
    pub org: Option<Name>,
    /// The calling instance (its id, app and organization), when an instance calls.
    pub instance: Option<InstanceCaller>,
    can_write: bool,
}

impl AmsCaller {
    /// Whether the caller sees objects of `org`.
    pub fn sees(&self, org: Option<&Name>) -> bool {
        match &self.org {
            Some(mine) => org == Some(mine),
            None => true,
        }
    }

    /// The organization the caller writes for, or why it may not write.
    fn writer(&self) -> Result<Name, ApiError> {
        match (&self.org, self.can_write) {
            (Some(org), true) => Ok(org.clone()),
            (None, _) => Err(ApiError::Forbidden("the operator reads the AMS; app instances and their developers write it".into())),
            (Some(_), false) => Err(ApiError::Forbidden("this role is read-only".into())),
        }
    }

    /// Fails when an instance would change what belongs to another app of its organization.
    fn require_app(&self, app: Uid) -> Result<(), ApiError> {
        match &self.instance {
            Some(me) if me.app != app => Err(ApiError::Forbidden("an app instance changes only what belongs to its app".into())),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for AmsCaller {
    type Rejection = AmsError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Err(
                ApiError::Unauthenticated("missing bearer token: an app instance presents its OP_INSTANCE_TOKEN, a developer a login token".into()).into()
            );
        };
        let instance_token = auth.strip_prefix("Bearer ").is_some_and(|t| op_types::secret::is_instance_token(t.trim()));
        if instance_token {
            let i = InstanceCaller::from_request_parts(parts, state).await?;
            return Ok(AmsCaller { org: Some(i.org.clone()), instance: Some(i), can_write: true });
        }
        let c = Caller::from_request_parts(parts, state).await?;
        Ok(AmsCaller { org: c.org, instance: None, can_write: matches!(c.role, Role::Manager | Role::Contributor) })
    }
}

/// A JSON request body, refused with a `ProblemDetails` 400 when it is not JSON.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = AmsError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::invalid("Content-Type", "must be application/json").into());
        }
        let b =
            Bytes::from_request(req, state).await.map_err(|e| ApiError::invalid("body", format!("could not read the body (at most {MAX_BODY} bytes): {e}")))?;
        Ok(JsonBytes(b))
    }
}

/// `scheme://host` the caller reached us at (for `_links` and `Location`).
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@'))
        .unwrap_or("localhost");
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

fn location(href: &str) -> [(header::HeaderName, HeaderValue); 1] {
    [(header::LOCATION, HeaderValue::from_str(href).unwrap_or_else(|_| HeaderValue::from_static("")))]
}

fn not_found_reg(id: &str) -> ApiError {
    ApiError::NotFound(format!("no application mobility service '{id}'"))
}

fn not_found_sub(id: &str) -> ApiError {
    ApiError::NotFound(format!("no subscription '{id}'"))
}

/// A new object of `kind` for `org`, named `<prefix>-<its uid>`.
fn new_object<S>(kind: Kind, org: Name, prefix: &str, spec: S) -> Result<Object<S>, ApiError> {
    let bad = |e: op_types::ids::NameError| ApiError::Internal(format!("object name: {e}"));
    let mut o: Object<S> = Object::new(kind, Some(org), Name::new(format!("{prefix}-new")).map_err(bad)?, spec);
    o.metadata.name = Name::new(format!("{prefix}-{}", o.metadata.uid)).map_err(bad)?;
    o.status.state = ObjState::Ready;
    Ok(o)
}

/// The app instance a body names in `field`: an existing instance (not being deleted) of the
/// caller's organization, and for an instance caller, of its app. A 400 naming `field`
/// otherwise (the same for a foreign instance as for none, so nothing leaks).
async fn named_instance(s: &AppState, c: &AmsCaller, raw: &str, field: &str) -> Result<AppInstance, ApiError> {
    let bad = || ApiError::invalid(field, format!("'{raw}' is not an app instance of your organization; give the id of one (appInstanceId)"));
    let uid: Uid = raw.parse().map_err(|_| bad())?;
    let inst = s
        .repo
        .get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, uid)
        .await?
        .filter(|i| i.metadata.deletion_requested.is_none() && c.org.is_some() && c.sees(i.metadata.organization.as_ref()))
        .ok_or_else(bad)?;
    if let Some(me) = &c.instance {
        if inst.spec.app_id != me.app {
            return Err(ApiError::invalid(field, "an app instance may name only itself or another instance of its app"));
        }
    }
    Ok(inst)
}

fn expires_at(expiry_time: Option<u32>, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    expiry_time.filter(|t| *t > 0).map(|t| from + chrono::Duration::seconds(i64::from(t)))
}

// ---------------------------------------------------------------------------------------------
// /app_mobility_services

async fn registrations(s: &AppState) -> Result<Vec<Registration>, ApiError> {
    Ok(s.repo.list::<AmsRegistrationSpec, ()>(Kind::AmsRegistration).await?.0)
}

async fn visible_registration(s: &AppState, c: &AmsCaller, id: &str) -> Result<Registration, ApiError> {
    let uid: Uid = id.parse().map_err(|_| not_found_reg(id))?;
    s.repo
        .get::<AmsRegistrationSpec, ()>(Kind::AmsRegistration, uid)
        .await?
        .filter(|r| c.sees(r.metadata.organization.as_ref()) && !r.spec.expired(Utc::now()))
        .ok_or_else(|| not_found_reg(id))
}

/// The registrations the caller sees.
#[utoipa::path(get, path = "/amsi/v1/app_mobility_services", tag = "amsi", operation_id = "app_mobility_serviceGET",
    security(("bearer" = [])),
    params(("filter" = Option<String>, Query, description = "MEC 011 attribute filter: ignored (every registration the caller sees is listed)")),
    responses((status = 200, body = Vec<RegistrationInfo>),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn list_registrations(State(s): State<AppState>, c: AmsCaller) -> Result<Json<Vec<RegistrationInfo>>, AmsError> {
    let now = Utc::now();
    let mut regs: Vec<Registration> =
        registrations(&s).await?.into_iter().filter(|r| c.sees(r.metadata.organization.as_ref()) && !r.spec.expired(now)).collect();
    regs.sort_by_key(|r| (r.metadata.created, r.metadata.uid));
    Ok(Json(regs.iter().map(|r| r.spec.to_wire(r.metadata.uid)).collect()))
}

/// Register an app instance (and the devices it serves) to the AMS.
#[utoipa::path(post, path = "/amsi/v1/app_mobility_services", tag = "amsi", operation_id = "app_mobility_servicePOST",
    security(("bearer" = [])), request_body = RegistrationInfo,
    responses((status = 201, body = RegistrationInfo),
        (status = 400, description = "Bad Request (detail names the field)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn create_registration(
    State(s): State<AppState>,
    c: AmsCaller,
    headers: HeaderMap,
    JsonBytes(b): JsonBytes,
) -> Result<(StatusCode, [(header::HeaderName, HeaderValue); 1], Json<RegistrationInfo>), AmsError> {
    c.writer()?;
    let info: RegistrationInfo = parse(&b)?;
    if info.app_mobility_service_id.is_some() {
        return Err(ApiError::invalid("appMobilityServiceId", "must be absent in POST: the AMS assigns it").into());
    }
    let raw = info.validate()?;
    let inst = named_instance(&s, &c, raw, "serviceConsumerId.appInstanceId").await?;
    let org = inst.metadata.organization.clone().ok_or_else(|| ApiError::Internal("instance without organization".into()))?;
    let spec = AmsRegistrationSpec {
        app_instance_id: inst.metadata.uid,
        app_id: inst.spec.app_id,
        device_information: info.device_information,
        expiry_time: info.expiry_time,
        expires_at: expires_at(info.expiry_time, Utc::now()),
    };
    let mut reg = new_object(Kind::AmsRegistration, org, "reg", spec)?;
    s.repo.create(&mut reg).await?;
    crate::mobility::registration_changed(&s);
    tracing::info!(registration = %reg.metadata.uid, instance = %inst.metadata.uid, "AMS registration created");
    let href = format!("{}{BASE}/app_mobility_services/{}", origin(&headers), reg.metadata.uid);
    Ok((StatusCode::CREATED, location(&href), Json(reg.spec.to_wire(reg.metadata.uid))))
}

/// One registration.
#[utoipa::path(get, path = "/amsi/v1/app_mobility_services/{appMobilityServiceId}", tag = "amsi", operation_id = "app_mobility_service_by_idGET",
    security(("bearer" = [])), params(("appMobilityServiceId" = String, Path, description = "The registration's id")),
    responses((status = 200, body = RegistrationInfo),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn get_registration(State(s): State<AppState>, c: AmsCaller, Path(id): Path<String>) -> Result<Json<RegistrationInfo>, AmsError> {
    let reg = visible_registration(&s, &c, &id).await?;
    Ok(Json(reg.spec.to_wire(reg.metadata.uid)))
}

/// Replace a registration's devices and expiry (e.g. report a device's user context
/// transferred). `serviceConsumerId.appInstanceId` cannot change; `expiryTime` counts again
/// from now.
#[utoipa::path(put, path = "/amsi/v1/app_mobility_services/{appMobilityServiceId}", tag = "amsi", operation_id = "app_mobility_service_by_idPUT",
    security(("bearer" = [])), params(("appMobilityServiceId" = String, Path, description = "The registration's id")), request_body = RegistrationInfo,
    responses((status = 200, body = RegistrationInfo),
        (status = 400, description = "Bad Request (detail names the field)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently; retry", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn put_registration(
    State(s): State<AppState>,
    c: AmsCaller,
    Path(id): Path<String>,
    JsonBytes(b): JsonBytes,
) -> Result<Json<RegistrationInfo>, AmsError> {
    let mut reg = visible_registration(&s, &c, &id).await?;
    c.writer()?;
    c.require_app(reg.spec.app_id)?;
    let info: RegistrationInfo = parse(&b)?;
    if info.app_mobility_service_id.as_deref().is_some_and(|given| given != reg.metadata.uid.to_string()) {
        return Err(ApiError::invalid("appMobilityServiceId", "must be this registration's id (or absent)").into());
    }
    let raw = info.validate()?;
    if raw.parse::<Uid>().ok() != Some(reg.spec.app_instance_id) {
        return Err(ApiError::invalid("serviceConsumerId.appInstanceId", "cannot change; register the other instance with a POST").into());
    }
    named_instance(&s, &c, raw, "serviceConsumerId.appInstanceId").await?;
    reg.spec.device_information = info.device_information;
    reg.spec.expiry_time = info.expiry_time;
    reg.spec.expires_at = expires_at(info.expiry_time, Utc::now());
    s.repo.update(&mut reg).await?;
    crate::mobility::registration_changed(&s);
    Ok(Json(reg.spec.to_wire(reg.metadata.uid)))
}

async fn remove_registration(s: &AppState, c: &AmsCaller, id: &str) -> Result<StatusCode, AmsError> {
    let reg = visible_registration(s, c, id).await?;
    c.writer()?;
    c.require_app(reg.spec.app_id)?;
    s.repo.delete(&reg).await?;
    crate::mobility::registration_changed(s);
    tracing::info!(registration = %reg.metadata.uid, "AMS registration removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Deregister.
#[utoipa::path(delete, path = "/amsi/v1/app_mobility_services/{appMobilityServiceId}", tag = "amsi", operation_id = "app_mobility_service_by_idDELETE",
    security(("bearer" = [])), params(("appMobilityServiceId" = String, Path, description = "The registration's id")),
    responses((status = 204),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn delete_registration(State(s): State<AppState>, c: AmsCaller, Path(id): Path<String>) -> Result<StatusCode, AmsError> {
    remove_registration(&s, &c, &id).await
}

/// Deregister (MEC 021's task resource; the same as `DELETE`).
#[utoipa::path(post, path = "/amsi/v1/app_mobility_services/{appMobilityServiceId}/deregister_task", tag = "amsi", operation_id = "app_mobility_service_derPOST",
    security(("bearer" = [])), params(("appMobilityServiceId" = String, Path, description = "The registration's id")),
    responses((status = 204),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn deregister_task(State(s): State<AppState>, c: AmsCaller, Path(id): Path<String>) -> Result<StatusCode, AmsError> {
    remove_registration(&s, &c, &id).await
}

// ---------------------------------------------------------------------------------------------
// /subscriptions

async fn subscriptions(s: &AppState) -> Result<Vec<Subscription>, ApiError> {
    Ok(s.repo.list::<AmsSubscriptionSpec, ()>(Kind::AmsSubscription).await?.0)
}

async fn visible_subscription(s: &AppState, c: &AmsCaller, id: &str) -> Result<Subscription, ApiError> {
    let uid: Uid = id.parse().map_err(|_| not_found_sub(id))?;
    s.repo
        .get::<AmsSubscriptionSpec, ()>(Kind::AmsSubscription, uid)
        .await?
        .filter(|o| c.sees(o.metadata.organization.as_ref()) && !o.spec.expired(Utc::now()))
        .ok_or_else(|| not_found_sub(id))
}

/// Parses a subscription body: `subscriptionType` first (so its absence or an unknown value is
/// named), then the type's fields (unknown ones refused).
fn parse_subscription(b: &[u8]) -> Result<AmsSubscription, ApiError> {
    let v: serde_json::Value = parse(b)?;
    let obj = v.as_object().ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    let expected = "MobilityProcedureSubscription or AdjacentAppInfoSubscription";
    let kind = match obj.get("subscriptionType") {
        None => return Err(ApiError::invalid("subscriptionType", format!("is required: {expected}"))),
        Some(serde_json::Value::String(t)) => match t.as_str() {
            "MobilityProcedureSubscription" => SubscriptionType::MobilityProcedureSubscription,
            "AdjacentAppInfoSubscription" => SubscriptionType::AdjacentAppInfoSubscription,
            other => return Err(ApiError::invalid("subscriptionType", format!("unknown type '{other}': must be {expected}"))),
        },
        Some(_) => return Err(ApiError::invalid("subscriptionType", format!("must be a string: {expected}"))),
    };
    Ok(match kind {
        SubscriptionType::MobilityProcedureSubscription => AmsSubscription::MobilityProcedure(parse(b)?),
        SubscriptionType::AdjacentAppInfoSubscription => AmsSubscription::AdjacentAppInfo(parse(b)?),
    })
}

/// Checks a subscription body and resolves its filter's instance: the app an adjacent-info
/// subscription is about (an instance subscribing for itself may leave the instance out).
async fn check_subscription(s: &AppState, c: &AmsCaller, sub: &mut AmsSubscription) -> Result<Option<Uid>, ApiError> {
    sub.validate(Utc::now())?;
    if let Some(raw) = sub.filter_instance().map(str::to_string) {
        let inst = named_instance(s, c, &raw, "filterCriteria.appInstanceId").await?;
        return Ok(Some(inst.spec.app_id));
    }
    match (sub, &c.instance) {
        (AmsSubscription::AdjacentAppInfo(a), Some(me)) => {
            a.filter_criteria = Some(AdjacentAppInfoFilter { app_instance_id: Some(me.instance.to_string()) });
            Ok(Some(me.app))
        }
        (AmsSubscription::AdjacentAppInfo(_), None) => {
            Err(ApiError::invalid("filterCriteria.appInstanceId", "is required: the app instance whose adjacent instances are reported"))
        }
        (AmsSubscription::MobilityProcedure(_), _) => Ok(None),
    }
}

/// Query of `GET /subscriptions`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// `mobility_proc` or `adj_app_info` (or the full type names); absent: every type.
    #[serde(rename = "subscriptionType")]
    pub subscription_type: Option<String>,
    /// The same filter under MEC 021 v3's name.
    #[serde(rename = "subscription_type")]
    #[param(rename = "subscription_type")]
    pub subscription_type_v3: Option<String>,
}

/// The caller's subscriptions, as links.
#[utoipa::path(get, path = "/amsi/v1/subscriptions", tag = "amsi", operation_id = "subGET",
    security(("bearer" = [])), params(SubscriptionQuery),
    responses((status = 200, body = SubscriptionLinkList),
        (status = 400, description = "Bad Request (detail names the field)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn list_subscriptions(
    State(s): State<AppState>,
    c: AmsCaller,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SubscriptionLinkList>, AmsError> {
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let mut only = None;
    for name in ["subscriptionType", "subscription_type"] {
        if let Some(v) = q.get(name) {
            only = Some(SubscriptionType::parse(v).ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("unknown type '{v}': mobility_proc or adj_app_info (or MobilityProcedureSubscription, AdjacentAppInfoSubscription)"),
                )
            })?);
        }
    }
    let now = Utc::now();
    let mut subs: Vec<Subscription> = subscriptions(&s)
        .await?
        .into_iter()
        .filter(|o| c.sees(o.metadata.organization.as_ref()) && !o.spec.expired(now))
        .filter(|o| only.is_none_or(|t| o.spec.subscription.kind() == t))
        .collect();
    subs.sort_by_key(|o| (o.metadata.created, o.metadata.uid));
    Ok(Json(link_list(&origin(&headers), &subs)))
}

fn link_list(origin: &str, subs: &[Subscription]) -> SubscriptionLinkList {
    SubscriptionLinkList {
        links: SubscriptionLinkListLinks {
            self_: LinkType { href: format!("{origin}{BASE}/subscriptions") },
            subscription: subs
                .iter()
                .map(|o| SubscriptionLinkListSubscription { href: o.spec.href().to_string(), subscription_type: o.spec.subscription.kind() })
                .collect(),
        },
    }
}

/// Subscribe to mobility procedure or adjacent-instance notifications; with
/// `requestTestNotification: true` a `TestNotification` is POSTed to the callback right after.
#[utoipa::path(post, path = "/amsi/v1/subscriptions", tag = "amsi", operation_id = "subPOST",
    security(("bearer" = [])), request_body = AmsSubscription,
    responses((status = 201, body = AmsSubscription),
        (status = 400, description = "Bad Request (detail names the field)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn create_subscription(
    State(s): State<AppState>,
    c: AmsCaller,
    headers: HeaderMap,
    JsonBytes(b): JsonBytes,
) -> Result<(StatusCode, [(header::HeaderName, HeaderValue); 1], Json<AmsSubscription>), AmsError> {
    let org = c.writer()?;
    let mut sub = parse_subscription(&b)?;
    let app_id = check_subscription(&s, &c, &mut sub).await?;
    let ready_instances = app_id.map(|app| indexed_ready(&s, app)).unwrap_or_default();
    let mut obj = new_object(Kind::AmsSubscription, org, "sub", AmsSubscriptionSpec { subscription: sub, app_id, ready_instances })?;
    let href = format!("{}{BASE}/subscriptions/{}", origin(&headers), obj.metadata.uid);
    obj.spec.subscription.set_self(&href);
    s.repo.create(&mut obj).await?;
    tracing::info!(subscription = %obj.metadata.uid, kind = ?obj.spec.subscription.kind(), "AMS subscription created");
    if obj.spec.subscription.wants_test() {
        if let Some(cb) = obj.spec.subscription.callback().map(str::to_string) {
            let (id, body) = (obj.metadata.uid, TestNotification::new(&href));
            tokio::spawn(async move {
                deliver(id, &cb, &body).await;
            });
        }
    }
    Ok((StatusCode::CREATED, location(&href), Json(obj.spec.subscription)))
}

/// One subscription.
#[utoipa::path(get, path = "/amsi/v1/subscriptions/{subscriptionId}", tag = "amsi", operation_id = "sub_byIdGET",
    security(("bearer" = [])), params(("subscriptionId" = String, Path, description = "The subscription's id")),
    responses((status = 200, body = AmsSubscription),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn get_subscription(State(s): State<AppState>, c: AmsCaller, Path(id): Path<String>) -> Result<Json<AmsSubscription>, AmsError> {
    Ok(Json(visible_subscription(&s, &c, &id).await?.spec.subscription))
}

/// Replace a subscription (same `subscriptionType`; `_links` is ignored).
#[utoipa::path(put, path = "/amsi/v1/subscriptions/{subscriptionId}", tag = "amsi", operation_id = "sub_byIdPUT",
    security(("bearer" = [])), params(("subscriptionId" = String, Path, description = "The subscription's id")), request_body = AmsSubscription,
    responses((status = 200, body = AmsSubscription),
        (status = 400, description = "Bad Request (detail names the field)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently; retry", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn put_subscription(
    State(s): State<AppState>,
    c: AmsCaller,
    Path(id): Path<String>,
    JsonBytes(b): JsonBytes,
) -> Result<Json<AmsSubscription>, AmsError> {
    let mut obj = visible_subscription(&s, &c, &id).await?;
    c.writer()?;
    let mut sub = parse_subscription(&b)?;
    if sub.kind() != obj.spec.subscription.kind() {
        return Err(ApiError::invalid(
            "subscriptionType",
            format!("cannot change (it is {:?}); delete the subscription and subscribe anew", obj.spec.subscription.kind()),
        )
        .into());
    }
    let app_id = check_subscription(&s, &c, &mut sub).await?;
    let href = obj.spec.href().to_string();
    sub.set_self(&href);
    // What the subscriber knows stays, unless it now watches another app.
    let ready_instances = match app_id {
        Some(app) if obj.spec.app_id != Some(app) => indexed_ready(&s, app),
        Some(_) => std::mem::take(&mut obj.spec.ready_instances),
        None => Vec::new(),
    };
    obj.spec = AmsSubscriptionSpec { subscription: sub, app_id, ready_instances };
    s.repo.update(&mut obj).await?;
    Ok(Json(obj.spec.subscription))
}

/// Cancel a subscription.
#[utoipa::path(delete, path = "/amsi/v1/subscriptions/{subscriptionId}", tag = "amsi", operation_id = "sub_byIdDELETE",
    security(("bearer" = [])), params(("subscriptionId" = String, Path, description = "The subscription's id")),
    responses((status = 204),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Not Found", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn delete_subscription(State(s): State<AppState>, c: AmsCaller, Path(id): Path<String>) -> Result<StatusCode, AmsError> {
    let obj = visible_subscription(&s, &c, &id).await?;
    c.writer()?;
    s.repo.delete(&obj).await?;
    tracing::info!(subscription = %obj.metadata.uid, "AMS subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// /queries/adjacent_app_instances

/// The Ready instances of `app` (not being deleted), by id: listed from the UNI's index,
/// each read from the store.
async fn ready_instances(s: &AppState, app: Uid) -> Result<Vec<AppInstance>, ApiError> {
    let mut uids: Vec<Uid> = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        ix.instances_of(app).map(|i| i.uid).collect()
    };
    uids.sort();
    let mut out = Vec::with_capacity(uids.len());
    for uid in uids {
        if let Some(i) = s.repo.get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, uid).await? {
            if i.status.state == ObjState::Ready && i.metadata.deletion_requested.is_none() && i.spec.app_id == app {
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// The app's Ready instances as the UNI's index has them, sorted: what adjacent-info
/// subscriptions are compared against.
fn indexed_ready(s: &AppState, app: Uid) -> Vec<Uid> {
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<Uid> = ix.instances_of(app).filter(|i| i.ready).map(|i| i.uid).collect();
    v.sort();
    v
}

/// Where an instance is reached: one interface per endpoint, those other instances reach
/// (its container's network address) first, then its published ones (an instance without any
/// gets an interface with no address, as the spec wants at least one).
fn comm_links(i: &AppInstance) -> Vec<CommunicationInterface> {
    let v: Vec<CommunicationInterface> = i
        .observed
        .internal_endpoints
        .iter()
        .chain(&i.observed.endpoints)
        .map(|e| CommunicationInterface { ip_addresses: vec![IpAddress { host: e.host.clone(), port: e.port }] })
        .collect();
    if v.is_empty() {
        vec![CommunicationInterface::default()]
    } else {
        v
    }
}

fn adjacent_info(s: &AppState, i: &AppInstance, registered: &BTreeSet<Uid>) -> AdjacentAppInstanceInfo {
    let zone = i.spec.edge_cloud_zone_id;
    let host_name = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        ix.zone(zone).map(|z| z.name.to_string())
    };
    AdjacentAppInstanceInfo {
        app_d_id: i.spec.app_id,
        app_instance_comm_link: comm_links(i),
        app_instance_id: i.metadata.uid,
        mec_host_information: Some(MecHostInformation { host_name, host_id: BTreeMap::from([("edgeCloudZoneId".to_string(), zone.to_string())]) }),
        registered_instance_id: registered.contains(&i.metadata.uid).then_some(i.metadata.uid),
    }
}

/// One condition of a MEC 011 attribute filter: `(op,attribute,value[,value...])`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCond {
    op: FilterOp,
    attr: FilterAttr,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FilterOp {
    Eq,
    Neq,
    In,
    Nin,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FilterAttr {
    AppInstanceId,
    AppDId,
    RegisteredInstanceId,
    HostName,
    ZoneId,
}

/// Parses `filter` (`(eq,appInstanceId,ID);(neq,appDId,ID)`...): what `GET
/// /queries/adjacent_app_instances` supports, or why not.
pub fn parse_filter(f: &str) -> Result<Vec<FilterCond>, String> {
    let mut out = Vec::new();
    for part in f.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let inner = part.strip_prefix('(').and_then(|p| p.strip_suffix(')')).ok_or_else(|| format!("'{part}' is not (op,attribute,value)"))?;
        let mut it = inner.split(',');
        let op = match it.next().unwrap_or_default() {
            "eq" => FilterOp::Eq,
            "neq" => FilterOp::Neq,
            "in" => FilterOp::In,
            "nin" => FilterOp::Nin,
            other => return Err(format!("operator '{other}' is not supported (eq, neq, in, nin)")),
        };
        let attr = match it.next().unwrap_or_default() {
            "appInstanceId" => FilterAttr::AppInstanceId,
            "appDId" => FilterAttr::AppDId,
            "registeredInstanceId" => FilterAttr::RegisteredInstanceId,
            "mecHostInformation/hostName" => FilterAttr::HostName,
            "mecHostInformation/hostId/edgeCloudZoneId" => FilterAttr::ZoneId,
            other => {
                return Err(format!(
                    "attribute '{other}' is not supported (appInstanceId, appDId, registeredInstanceId, mecHostInformation/hostName, mecHostInformation/hostId/edgeCloudZoneId)"
                ))
            }
        };
        let values: Vec<String> = it.map(str::to_string).collect();
        if values.is_empty() || (matches!(op, FilterOp::Eq | FilterOp::Neq) && values.len() != 1) {
            return Err(format!("'{part}': eq and neq take one value, in and nin one or more"));
        }
        out.push(FilterCond { op, attr, values });
    }
    Ok(out)
}

impl FilterCond {
    /// Whether `info` satisfies the condition (an absent attribute equals nothing).
    pub fn matches(&self, info: &AdjacentAppInstanceInfo) -> bool {
        let got: Option<String> = match self.attr {
            FilterAttr::AppInstanceId => Some(info.app_instance_id.to_string()),
            FilterAttr::AppDId => Some(info.app_d_id.to_string()),
            FilterAttr::RegisteredInstanceId => info.registered_instance_id.map(|u| u.to_string()),
            FilterAttr::HostName => info.mec_host_information.as_ref().and_then(|h| h.host_name.clone()),
            FilterAttr::ZoneId => info.mec_host_information.as_ref().and_then(|h| h.host_id.get("edgeCloudZoneId").cloned()),
        };
        let hit = got.is_some_and(|g| self.values.iter().any(|v| v.eq_ignore_ascii_case(&g)));
        match self.op {
            FilterOp::Eq | FilterOp::In => hit,
            FilterOp::Neq | FilterOp::Nin => !hit,
        }
    }
}

/// The other Ready instances of the caller's app (an instance calling), or the Ready instances
/// of the organization's apps (a developer calling; the operator: every app's).
#[utoipa::path(get, path = "/amsi/v1/queries/adjacent_app_instances", tag = "amsi", operation_id = "adj_app_instGET",
    security(("bearer" = [])),
    params(("filter" = Option<String>, Query, description = "MEC 011 attribute filter, e.g. `(eq,appInstanceId,ID)`: eq, neq, in, nin on appInstanceId, appDId, registeredInstanceId, mecHostInformation/hostName, mecHostInformation/hostId/edgeCloudZoneId")),
    responses((status = 200, body = Vec<AdjacentAppInstanceInfo>),
        (status = 400, description = "Bad Request (detail names the field)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn adjacent_app_instances(
    State(s): State<AppState>,
    c: AmsCaller,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AdjacentAppInstanceInfo>>, AmsError> {
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let conds = match q.get("filter") {
        Some(f) => parse_filter(f).map_err(|m| ApiError::invalid("filter", m))?,
        None => Vec::new(),
    };
    let (apps, exclude): (Vec<Uid>, Option<Uid>) = match &c.instance {
        Some(me) => (vec![me.app], Some(me.instance)),
        None => {
            let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<Uid> = ix.apps().filter(|a| c.sees(Some(&a.org))).map(|a| a.uid).collect();
            v.sort();
            (v, None)
        }
    };
    let now = Utc::now();
    let registered: BTreeSet<Uid> = registrations(&s).await?.into_iter().filter(|r| !r.spec.expired(now)).map(|r| r.spec.app_instance_id).collect();
    let mut out = Vec::new();
    for app in apps {
        for i in ready_instances(&s, app).await? {
            if Some(i.metadata.uid) == exclude || !c.sees(i.metadata.organization.as_ref()) {
                continue;
            }
            let info = adjacent_info(&s, &i, &registered);
            if conds.iter().all(|f| f.matches(&info)) {
                out.push(info);
            }
        }
    }
    Ok(Json(out))
}

// ---------------------------------------------------------------------------------------------
// Notifications

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default())
}

/// POSTs `body` to `url` for subscription `sub`; whether it answered 2xx within
/// [`DELIVERY_TIMEOUT`]. Failures are logged (by subscription, not URL: URLs may hold secrets).
async fn deliver<T: Serialize>(sub: Uid, url: &str, body: &T) -> bool {
    match client().post(url).timeout(DELIVERY_TIMEOUT).json(body).send().await {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            tracing::info!(subscription = %sub, status = r.status().as_u16(), "AMS notification refused by the callback");
            false
        }
        Err(e) => {
            let why = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
            tracing::info!(subscription = %sub, error = %why, "AMS notification not delivered");
            false
        }
    }
}

/// The mobility procedure subscriptions a move selects: live, of `org` (or, when the source
/// instance's organization is unknown, naming the source instance), whose filter matches.
pub fn mobility_targets<'a>(
    subs: &'a [Subscription],
    org: Option<&Name>,
    source: Uid,
    associate: &[AssociateId],
    status: MobilityStatus,
    now: DateTime<Utc>,
) -> Vec<&'a Subscription> {
    subs.iter()
        .filter(|o| !o.spec.expired(now))
        .filter(|o| {
            let AmsSubscription::MobilityProcedure(m) = &o.spec.subscription else { return false };
            let f = m.filter_criteria.clone().unwrap_or_default();
            let org_ok = match org {
                Some(org) => o.metadata.organization.as_ref() == Some(org),
                None => f.app_instance_id.is_some(),
            };
            org_ok && f.matches(source, associate, status)
        })
        .collect()
}

/// Delivers a MobilityProcedureNotification (AdvantEDGE body: notificationType, timeStamp
/// {seconds, nanoSeconds}, associateId[], mobilityStatus, targetAppInfo {appInstanceId,
/// commInterface {ipAddresses:[{host,port}]}}, _links.subscription.href) to every
/// MobilityProcedureSubscription of `source_instance`'s organization whose filterCriteria match
/// (appInstanceId == source_instance when given; associateId list contains one of `associate`
/// when given; mobilityStatus list includes `status`, default [INTERHOST_MOVEOUT_TRIGGERED]
/// when absent); returns how many callbacks answered 2xx. Deliveries run concurrently with a
/// 5 s timeout each; failures are logged, not retried here.
///
/// When the source instance is gone, its organization is taken from one of its registrations;
/// failing that, only subscriptions naming the instance are notified.
pub async fn notify_mobility(
    s: &AppState,
    source_instance: Uid,
    associate: &[AssociateId],
    status: MobilityStatus,
    target: Option<TargetAppInfo>,
) -> Result<usize, ApiError> {
    let org = match s.repo.get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, source_instance).await? {
        Some(i) => i.metadata.organization,
        None => registrations(s).await?.into_iter().find(|r| r.spec.app_instance_id == source_instance).and_then(|r| r.metadata.organization),
    };
    let subs = subscriptions(s).await?;
    let targets = mobility_targets(&subs, org.as_ref(), source_instance, associate, status, Utc::now());
    let sends = targets.into_iter().filter_map(|o| {
        let cb = o.spec.subscription.callback()?.to_string();
        let body = MobilityProcedureNotification::new(o.spec.href(), associate.to_vec(), status, target.clone());
        let id = o.metadata.uid;
        Some(async move { deliver(id, &cb, &body).await })
    });
    Ok(futures::future::join_all(sends).await.into_iter().filter(|ok| *ok).count())
}

/// Tells the mobility procedure subscriptions of `instance` (as [`notify_mobility`] selects
/// them for the device `old`) that the device's address is now `new`
/// ([`op_types::ams::UeIpChangeNotification`]); returns how many callbacks answered 2xx.
pub async fn notify_ip_change(s: &AppState, instance: Uid, old: AssociateId, new: AssociateId) -> Result<usize, ApiError> {
    let org = s.repo.get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, instance).await?.and_then(|i| i.metadata.organization);
    let subs = subscriptions(s).await?;
    let targets = mobility_targets(&subs, org.as_ref(), instance, std::slice::from_ref(&old), MobilityStatus::InterhostMoveoutTriggered, Utc::now());
    let sends = targets.into_iter().filter_map(|o| {
        let cb = o.spec.subscription.callback()?.to_string();
        let body = op_types::ams::UeIpChangeNotification {
            notification_type: "UeIpChangeNotification".into(),
            time_stamp: op_types::ams::TimeStamp::now(),
            associate_id: vec![old.clone()],
            new_associate_id: new.clone(),
            links: op_types::ams::SubscriptionLink::to(o.spec.href()),
        };
        let id = o.metadata.uid;
        Some(async move { deliver(id, &cb, &body).await })
    });
    Ok(futures::future::join_all(sends).await.into_iter().filter(|ok| *ok).count())
}

/// The app's say on one device: the appMobilityServiceLevel and contextTransferState that the
/// registration of `instance` (serviceConsumerId.appInstanceId == instance) holds for
/// `associate`, if it registered that device.
///
/// With several registrations listing the device, the last written one counts; a device
/// registered without a level reads as `APP_MOBILITY_WITHOUT_CONFIRMATION` (the app keeps no
/// state worth asking about). Expired registrations count for nothing.
pub async fn device_state(
    s: &AppState,
    instance: Uid,
    associate: &AssociateId,
) -> Result<Option<(AppMobilityServiceLevel, Option<ContextTransferState>)>, ApiError> {
    Ok(latest_device(s, instance, associate).await?.map(|(_, level, state)| (level, state)))
}

/// The last written registration entry of `instance` for `associate`: when it was written,
/// the level (`APP_MOBILITY_WITHOUT_CONFIRMATION` when absent) and the transfer state.
async fn latest_device(
    s: &AppState,
    instance: Uid,
    associate: &AssociateId,
) -> Result<Option<(DateTime<Utc>, AppMobilityServiceLevel, Option<ContextTransferState>)>, ApiError> {
    let now = Utc::now();
    let regs = registrations(s).await?;
    let best = regs
        .iter()
        .filter(|r| r.spec.app_instance_id == instance && !r.spec.expired(now))
        .filter_map(|r| r.spec.device(associate).map(|d| (r.metadata.updated, r.metadata.revision, d)))
        .max_by_key(|(t, rev, _)| (*t, *rev));
    Ok(best.map(|(t, _, d)| (t, d.app_mobility_service_level.unwrap_or(AppMobilityServiceLevel::AppMobilityWithoutConfirmation), d.context_transfer_state)))
}

/// Like [`device_state`], for a relocation waiting on the app: the level, and whether the
/// app reported the device's user context transferred in a registration written after `since`
/// (a `USER_CONTEXT_TRANSFER_COMPLETED` left from an earlier move does not count).
pub async fn device_state_since(
    s: &AppState,
    instance: Uid,
    associate: &AssociateId,
    since: DateTime<Utc>,
) -> Result<Option<(AppMobilityServiceLevel, bool)>, ApiError> {
    Ok(latest_device(s, instance, associate)
        .await?
        .map(|(t, level, state)| (level, t > since && state == Some(ContextTransferState::UserContextTransferCompleted))))
}

/// Whether `instance` has any registration (an app that takes part in mobility).
pub async fn registered(s: &AppState, instance: Uid) -> Result<bool, ApiError> {
    let now = Utc::now();
    Ok(registrations(s).await?.iter().any(|r| r.spec.app_instance_id == instance && !r.spec.expired(now)))
}

/// Delivers AdjacentAppInfoNotification to AdjacentAppInfoSubscriptions of the app's org
/// matching the app (filterCriteria.appInstanceId's app) listing the app's Ready instances;
/// call it when instances of an app appear or go.
///
/// Each subscription is told the instances adjacent to its filter's instance (the app's other
/// Ready instances). Returns how many callbacks answered 2xx; deliveries run concurrently with a
/// 5 s timeout each.
pub async fn notify_adjacent(s: &AppState, app: Uid) -> Result<usize, ApiError> {
    let now = Utc::now();
    let subs: Vec<Subscription> = subscriptions(s).await?.into_iter().filter(|o| !o.spec.expired(now) && watches(o) == Some(app)).collect();
    if subs.is_empty() {
        return Ok(0);
    }
    let ids = indexed_ready(s, app);
    let ready = ready_instances(s, app).await?;
    let mut sends = Vec::with_capacity(subs.len());
    for mut o in subs {
        if o.spec.ready_instances != ids {
            // Remembered so the background pass does not tell it again; a lost race only
            // means it may be told twice.
            o.spec.ready_instances = ids.clone();
            if let Err(e) = s.repo.update(&mut o).await {
                tracing::debug!(subscription = %o.metadata.uid, error = %e, "adjacent state not remembered");
            }
        }
        sends.push(tell_adjacent(o, &ready));
    }
    Ok(futures::future::join_all(sends).await.into_iter().filter(|ok| *ok).count())
}

/// The app an adjacent-info subscription watches.
fn watches(o: &Subscription) -> Option<Uid> {
    match o.spec.subscription {
        AmsSubscription::AdjacentAppInfo(_) => o.spec.app_id,
        AmsSubscription::MobilityProcedure(_) => None,
    }
}

/// Tells one adjacent-info subscription the instances adjacent to its filter's instance among
/// `ready` (the app's Ready instances, of its organization); whether the callback took it.
async fn tell_adjacent(o: Subscription, ready: &[AppInstance]) -> bool {
    let Some(cb) = o.spec.subscription.callback().map(str::to_string) else { return false };
    let me = o.spec.subscription.filter_instance().and_then(|i| i.parse::<Uid>().ok());
    let list: Vec<AdjacentAppInfo> = ready
        .iter()
        .filter(|i| Some(i.metadata.uid) != me && i.metadata.organization == o.metadata.organization)
        .map(|i| AdjacentAppInfo { app_instance_id: i.metadata.uid, comm_interface: comm_links(i) })
        .collect();
    let body = AdjacentAppInfoNotification::new(o.spec.href(), list);
    deliver(o.metadata.uid, &cb, &body).await
}

// ---------------------------------------------------------------------------------------------
// Background: expiry and adjacency changes

/// Every second until the process ends: sends an ExpiryNotification to each subscription whose
/// `expiryDeadline` passed and deletes it, removes registrations whose `expiryTime` passed (and,
/// every 30 s, those whose instance is gone), and notifies each adjacent-info subscription whose
/// app's set of Ready instances differs from the one it was last told (or subscribed with).
pub async fn run(s: AppState) {
    let mut pass_no: u64 = 0;
    loop {
        if let Err(e) = pass(&s, pass_no.is_multiple_of(30)).await {
            tracing::warn!(error = %e, "AMS pass failed; retried in a second");
        }
        pass_no = pass_no.wrapping_add(1);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn pass(s: &AppState, collect_orphans: bool) -> Result<(), ApiError> {
    let now = Utc::now();
    let mut ready: HashMap<Uid, Vec<Uid>> = HashMap::new();
    for mut o in subscriptions(s).await? {
        if o.spec.expired(now) {
            // Deleted first (a compare-and-swap: a PUT that moved the deadline wins), then told.
            match s.repo.delete(&o).await {
                Ok(()) => {
                    tracing::info!(subscription = %o.metadata.uid, "AMS subscription expired");
                    if let (Some(cb), Some(deadline)) = (o.spec.subscription.callback().map(str::to_string), o.spec.subscription.expiry_deadline()) {
                        let body = ExpiryNotification::new(o.spec.href(), deadline);
                        let id = o.metadata.uid;
                        tokio::spawn(async move {
                            deliver(id, &cb, &body).await;
                        });
                    }
                }
                Err(e) => tracing::debug!(subscription = %o.metadata.uid, error = %e, "expiry deferred"),
            }
            continue;
        }
        let Some(app) = watches(&o) else { continue };
        let ids = ready.entry(app).or_insert_with(|| indexed_ready(s, app));
        if o.spec.ready_instances == *ids {
            continue;
        }
        // Remembered first (compare-and-swap), so a slow callback is not told twice.
        o.spec.ready_instances = ids.clone();
        if s.repo.update(&mut o).await.is_err() {
            continue;
        }
        let s = s.clone();
        tokio::spawn(async move {
            match ready_instances(&s, app).await {
                Ok(list) => {
                    let id = o.metadata.uid;
                    let ok = tell_adjacent(o, &list).await;
                    tracing::info!(subscription = %id, %app, delivered = ok, "adjacent app instances changed");
                }
                Err(e) => tracing::warn!(%app, error = %e, "adjacent app info not sent"),
            }
        });
    }
    let mut changed = false;
    for r in registrations(s).await? {
        let gone = r.spec.expired(now)
            || (collect_orphans && s.repo.get::<serde_json::Value, serde_json::Value>(Kind::AppInstance, r.spec.app_instance_id).await?.is_none());
        if gone && s.repo.delete(&r).await.is_ok() {
            tracing::info!(registration = %r.metadata.uid, "AMS registration expired or its instance is gone");
            changed = true;
        }
    }
    if changed {
        crate::mobility::registration_changed(s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use op_types::ams::{AssociateIdType, MobilityProcedureFilter, MobilityProcedureSubscription, MobilityProcedureSubscriptionType};

    fn sub(org: &str, filter: MobilityProcedureFilter, deadline: Option<op_types::ams::TimeStamp>) -> Subscription {
        let m = MobilityProcedureSubscription {
            links: None,
            callback_reference: Some("http://127.0.0.1:1/cb".into()),
            request_test_notification: None,
            websock_notif_config: None,
            expiry_deadline: deadline,
            filter_criteria: Some(filter),
            subscription_type: MobilityProcedureSubscriptionType::MobilityProcedureSubscription,
        };
        new_object(
            Kind::AmsSubscription,
            Name::new(org).unwrap(),
            "sub",
            AmsSubscriptionSpec { subscription: AmsSubscription::MobilityProcedure(m), app_id: None, ready_instances: vec![] },
        )
        .unwrap()
    }

    #[test]
    fn mobility_targets_respect_org_filter_and_expiry() {
        let (src, other) = (Uid::random(), Uid::random());
        let org = Name::new("org_a").unwrap();
        let dev = [AssociateId { kind: AssociateIdType::UeIpv4Address, value: "10.0.0.7".into() }];
        let now = Utc::now();
        let past = op_types::ams::TimeStamp::from(now - chrono::Duration::seconds(5));
        let subs = vec![
            sub("org_a", MobilityProcedureFilter::default(), None),
            sub("org_b", MobilityProcedureFilter::default(), None),
            sub("org_a", MobilityProcedureFilter { app_instance_id: Some(other.to_string()), ..Default::default() }, None),
            sub("org_a", MobilityProcedureFilter { app_instance_id: Some(src.to_string()), ..Default::default() }, None),
            sub("org_a", MobilityProcedureFilter::default(), Some(past)),
            sub("org_a", MobilityProcedureFilter { mobility_status: vec![MobilityStatus::InterhostMoveoutCompleted], ..Default::default() }, None),
        ];
        let ids = |v: Vec<&Subscription>| v.iter().map(|o| o.metadata.uid).collect::<Vec<_>>();
        let got = ids(mobility_targets(&subs, Some(&org), src, &dev, MobilityStatus::InterhostMoveoutTriggered, now));
        assert_eq!(got, vec![subs[0].metadata.uid, subs[3].metadata.uid], "own org, matching instance, live, default status");
        let done = ids(mobility_targets(&subs, Some(&org), src, &dev, MobilityStatus::InterhostMoveoutCompleted, now));
        assert_eq!(done, vec![subs[5].metadata.uid]);
        let unknown_org = ids(mobility_targets(&subs, None, src, &dev, MobilityStatus::InterhostMoveoutTriggered, now));
        assert_eq!(unknown_org, vec![subs[3].metadata.uid], "only subscriptions naming the instance");
    }

    #[test]
    fn adjacent_filter() {
        let (app, inst, zone) = (Uid::random(), Uid::random(), Uid::random());
        let info = AdjacentAppInstanceInfo {
            app_d_id: app,
            app_instance_comm_link: vec![],
            app_instance_id: inst,
            mec_host_information: Some(MecHostInformation {
                host_name: Some("local".into()),
                host_id: BTreeMap::from([("edgeCloudZoneId".into(), zone.to_string())]),
            }),
            registered_instance_id: None,
        };
        let ok = |f: &str| parse_filter(f).unwrap().iter().all(|c| c.matches(&info));
        assert!(ok(&format!("(eq,appInstanceId,{inst})")));
        assert!(!ok(&format!("(eq,appInstanceId,{app})")));
        assert!(ok(&format!("(neq,appInstanceId,{app})")));
        assert!(ok(&format!("(eq,appDId,{app});(eq,mecHostInformation/hostName,local)")));
        assert!(!ok(&format!("(eq,appDId,{app});(eq,mecHostInformation/hostName,paris)")));
        assert!(ok(&format!("(in,mecHostInformation/hostId/edgeCloudZoneId,{app},{zone})")));
        assert!(!ok(&format!("(nin,appInstanceId,{app},{inst})")));
        assert!(!ok(&format!("(eq,registeredInstanceId,{inst})")), "absent attribute equals nothing");
        assert!(ok(""), "no condition");
        for bad in ["eq,appInstanceId,x", "(gt,appInstanceId,x)", "(eq,cloudlet,x)", "(eq,appInstanceId)", "(eq,appInstanceId,a,b)"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn errors_are_problem_details() {
        let r = AmsError(ApiError::invalid("callbackReference", "must be an http:// or https:// URL")).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(PROBLEM_JSON));
        let pd = r.extensions().get::<ProblemDetails>().cloned().unwrap();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["title"], "Bad Request");
        assert_eq!(v["type"], "about:blank");
        assert!(v["detail"].as_str().unwrap().starts_with("callbackReference: "), "{v}");
        assert_eq!(pd.detail, v["detail"].as_str().unwrap());
        let r = AmsError(ApiError::NotFound("x".into())).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = AmsError(ApiError::Unauthenticated("x".into())).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn problem_instance_names_the_path() {
        use tower::ServiceExt;
        let app: axum::Router = axum::Router::new()
            .route("/amsi/v1/x", axum::routing::get(|| async { AmsError(ApiError::invalid("f", "bad")) }))
            .route("/amsi/v1/ok", axum::routing::get(|| async { "fine" }))
            .route_layer(axum::middleware::from_fn(problem_instance));
        let r = app.clone().oneshot(axum::http::Request::get("/amsi/v1/x").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap()).unwrap();
        assert_eq!(v["instance"], "/amsi/v1/x");
        let r = app.oneshot(axum::http::Request::get("/amsi/v1/ok").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        assert_eq!(axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap(), "fine");
    }

    #[test]
    fn subscription_bodies_name_the_type_field() {
        let field = |b: &str| match parse_subscription(b.as_bytes()) {
            Err(ApiError::Invalid(f)) => f.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(r#"{"callbackReference":"http://x/"}"#), "subscriptionType");
        assert_eq!(field(r#"{"subscriptionType":"Nope"}"#), "subscriptionType");
        assert_eq!(field(r#"{"subscriptionType":3}"#), "subscriptionType");
        assert_eq!(field(r#"[]"#), "body");
        assert_eq!(field(r#"{"subscriptionType":"MobilityProcedureSubscription","extra":1}"#), "extra");
        assert!(matches!(
            parse_subscription(br#"{"subscriptionType":"AdjacentAppInfoSubscription","callbackReference":"http://x/","filterCriteria":{}}"#),
            Ok(AmsSubscription::AdjacentAppInfo(_))
        ));
    }

    #[test]
    fn origin_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(origin(&h), "http://localhost");
        h.insert(header::HOST, HeaderValue::from_static("10.88.0.1:7080"));
        assert_eq!(origin(&h), "http://10.88.0.1:7080");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(origin(&h), "https://10.88.0.1:7080");
        h.insert(header::HOST, HeaderValue::from_static("evil/path"));
        assert_eq!(origin(&h), "https://localhost");
    }
}
