//! The operator's side of federation on the NBI (`/op/v1/federation/...`): register partner
//! operators that may call our EWBI (partner role) and the partners whose EWBI we call
//! (originating role), see the federation contexts partners created, and read settlement.
//! Secrets are shown once (a partner's client secret, at registration) and never again.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use op_types::ewbi::objects::{FederationPartnerSpec, FederationPeerObserved, FederationPeerSpec, FederationSpec};
use op_types::specs::ZoneSpec;
use op_types::{Kind, Name, Object, State as ObjState, Validate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::infra::{path_name, CreateRequest};
use crate::json::Body;
use crate::state::AppState;

/// A partner registration as answered: the secret hash is never returned.
pub type PartnerView = Object<FederationPartnerSpec>;

/// What registering a partner answers: the registration and, this once, its client secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerCreated {
    /// The registration.
    pub partner: PartnerView,
    /// The OAuth2 client secret to give the partner operator. Shown only here.
    pub client_secret: String,
}

fn redact_partner(mut p: PartnerView) -> PartnerView {
    p.spec.secret_hash.clear();
    p
}

/// Register a partner operator that may call our EWBI, with the zones offered to it.
#[utoipa::path(post, path = "/op/v1/federation/partners", tag = "Federation", security(("bearer" = [])), request_body = CreateRequest<FederationPartnerSpec>,
    responses((status = 201, body = PartnerCreated), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_partner(State(s): State<AppState>, c: Caller, Body(req): Body<CreateRequest<FederationPartnerSpec>>) -> Result<(StatusCode, Json<PartnerCreated>), ApiError> {
    c.require_operator_admin()?;
    let mut spec = req.spec;
    if !spec.secret_hash.is_empty() {
        return Err(ApiError::invalid("spec.secretHash", "the platform makes the client secret; omit it"));
    }
    spec.validate().map_err(|e| e.under("spec"))?;
    check_zones(&s, &spec).await?;
    if super::partner_by_client(&s, &spec.client_id).await?.is_some() {
        return Err(ApiError::AlreadyExists(format!("spec.clientId: client '{}' is already registered", spec.client_id)));
    }
    let secret = super::oauth::new_secret();
    spec.secret_hash = super::oauth::hash_secret(&secret).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut obj: PartnerView = Object::new(Kind::FederationPartner, None, req.name, spec);
    obj.metadata.labels = req.labels;
    obj.status.state = ObjState::Ready;
    s.repo.create(&mut obj).await?;
    tracing::info!(partner = %obj.metadata.name, user = %c.user, "federation partner registered");
    Ok((StatusCode::CREATED, Json(PartnerCreated { partner: redact_partner(obj), client_secret: secret })))
}

/// List registered partner operators.
#[utoipa::path(get, path = "/op/v1/federation/partners", tag = "Federation", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object<FederationPartnerSpec>>), (status = 403, body = ErrorInfo)))]
pub async fn list_partners(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<PartnerView>>, ApiError> {
    c.require_operator()?;
    let (all, _) = s.repo.list::<FederationPartnerSpec, ()>(Kind::FederationPartner).await?;
    Ok(Json(all.into_iter().map(redact_partner).collect()))
}

/// Read one partner registration.
#[utoipa::path(get, path = "/op/v1/federation/partners/{name}", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = Object<FederationPartnerSpec>), (status = 404, body = ErrorInfo)))]
pub async fn get_partner(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<Json<PartnerView>, ApiError> {
    c.require_operator()?;
    let name = path_name(&name)?;
    let p = s.repo.get_by_name::<FederationPartnerSpec, ()>(Kind::FederationPartner, None, &name).await?;
    p.map(|p| Json(redact_partner(p))).ok_or_else(|| ApiError::NotFound(format!("partner '{name}' not found")))
}

/// What replacing a partner's registration takes: the spec (its secret stays).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerUpdate {
    /// The new spec; `clientId` cannot change.
    pub spec: FederationPartnerSpec,
}

/// Replace what a partner is offered (zones, reservations, network codes, certificate pin);
/// the partner is told about added, removed and changed zones.
#[utoipa::path(put, path = "/op/v1/federation/partners/{name}", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path)), request_body = PartnerUpdate,
    responses((status = 200, body = Object<FederationPartnerSpec>), (status = 400, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn update_partner(State(s): State<AppState>, c: Caller, Path(name): Path<String>, Body(req): Body<PartnerUpdate>) -> Result<Json<PartnerView>, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    let mut p = s.repo.get_by_name::<FederationPartnerSpec, ()>(Kind::FederationPartner, None, &name).await?.ok_or_else(|| ApiError::NotFound(format!("partner '{name}' not found")))?;
    let mut spec = req.spec;
    if spec.client_id != p.spec.client_id {
        return Err(ApiError::invalid("spec.clientId", "cannot change; register a new partner instead"));
    }
    if !spec.secret_hash.is_empty() {
        return Err(ApiError::invalid("spec.secretHash", "the platform keeps the client secret; omit it"));
    }
    spec.validate().map_err(|e| e.under("spec"))?;
    check_zones(&s, &spec).await?;
    spec.secret_hash = std::mem::take(&mut p.spec.secret_hash);
    p.spec = spec;
    s.repo.update(&mut p).await?;
    tracing::info!(partner = %name, user = %c.user, "federation partner offer changed");
    Ok(Json(redact_partner(p)))
}

/// Every offered zone exists and is ours (a partner's zone is never re-offered).
async fn check_zones(s: &AppState, spec: &FederationPartnerSpec) -> Result<(), ApiError> {
    for (i, z) in spec.zones.iter().enumerate() {
        let zone = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &z.zone).await?;
        match zone {
            None => return Err(ApiError::invalid(format!("spec.zones[{i}].zone"), format!("zone '{}' does not exist", z.zone))),
            Some(zone) if zone.spec.federated.is_some() || zone.metadata.labels.contains_key(super::cloudlets::LABEL_PARTNER) => {
                return Err(ApiError::invalid(format!("spec.zones[{i}].zone"), "a partner's zone cannot be offered to another partner"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Remove a partner: its token stops working at once; its federation contexts are ended.
#[utoipa::path(delete, path = "/op/v1/federation/partners/{name}", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorInfo)))]
pub async fn delete_partner(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    let p = s.repo.get_by_name::<FederationPartnerSpec, ()>(Kind::FederationPartner, None, &name).await?.ok_or_else(|| ApiError::NotFound(format!("partner '{name}' not found")))?;
    let (feds, _) = s.repo.list::<FederationSpec, ()>(Kind::Federation).await?;
    for mut f in feds.into_iter().filter(|f| f.spec.partner == name && f.metadata.deletion_requested.is_none()) {
        f.metadata.deletion_requested = Some(chrono::Utc::now());
        s.repo.update(&mut f).await?;
    }
    s.repo.delete(&p).await?;
    tracing::info!(partner = %name, user = %c.user, "federation partner removed");
    Ok(StatusCode::NO_CONTENT)
}

/// List the federation contexts partners created with us.
#[utoipa::path(get, path = "/op/v1/federation/contexts", tag = "Federation", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object<FederationSpec>>), (status = 403, body = ErrorInfo)))]
pub async fn list_contexts(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<Object<FederationSpec>>>, ApiError> {
    c.require_operator()?;
    let (all, _) = s.repo.list::<FederationSpec, ()>(Kind::Federation).await?;
    Ok(Json(all))
}

/// A peer as answered: secrets removed.
pub type PeerView = Object<FederationPeerSpec, FederationPeerObserved>;

fn redact_peer(mut p: PeerView) -> PeerView {
    p.spec = p.spec.redacted();
    p.observed.callback_id = None;
    p
}

/// Register a partner operator whose EWBI we call: the platform federates with it and makes
/// its zones ours to deploy to.
#[utoipa::path(post, path = "/op/v1/federation/peers", tag = "Federation", security(("bearer" = [])), request_body = CreateRequest<FederationPeerSpec>,
    responses((status = 201, body = Object<FederationPeerSpec, FederationPeerObserved>), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_peer(State(s): State<AppState>, c: Caller, Body(req): Body<CreateRequest<FederationPeerSpec>>) -> Result<(StatusCode, Json<PeerView>), ApiError> {
    c.require_operator_admin()?;
    req.spec.validate().map_err(|e| e.under("spec"))?;
    super::client::PeerClient::new(&req.spec).map_err(|e| ApiError::invalid("spec", e.to_string()))?;
    let mut obj: PeerView = Object::new(Kind::FederationPeer, None, req.name, req.spec);
    obj.metadata.labels = req.labels;
    s.repo.create(&mut obj).await?;
    tracing::info!(peer = %obj.metadata.name, user = %c.user, "federation peer registered");
    Ok((StatusCode::CREATED, Json(redact_peer(obj))))
}

/// List the partners we federate with, with the federation's state and their zones.
#[utoipa::path(get, path = "/op/v1/federation/peers", tag = "Federation", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object<FederationPeerSpec, FederationPeerObserved>>), (status = 403, body = ErrorInfo)))]
pub async fn list_peers(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<PeerView>>, ApiError> {
    c.require_operator()?;
    let (all, _) = s.repo.list::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer).await?;
    Ok(Json(all.into_iter().map(redact_peer).collect()))
}

/// Read one peer.
#[utoipa::path(get, path = "/op/v1/federation/peers/{name}", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = Object<FederationPeerSpec, FederationPeerObserved>), (status = 404, body = ErrorInfo)))]
pub async fn get_peer(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<Json<PeerView>, ApiError> {
    c.require_operator()?;
    let name = path_name(&name)?;
    let p = s.repo.get_by_name::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, None, &name).await?;
    p.map(|p| Json(redact_peer(p))).ok_or_else(|| ApiError::NotFound(format!("peer '{name}' not found")))
}

/// End the federation with a peer: refused while instances run on its zones; otherwise the
/// platform deletes the federation at the partner and removes the peer's zones here.
#[utoipa::path(delete, path = "/op/v1/federation/peers/{name}", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 202), (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn delete_peer(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    let mut p = s
        .repo
        .get_by_name::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, None, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("peer '{name}' not found")))?;
    let (insts, _) = s.repo.list::<op_types::specs::AppInstanceSpec, serde_json::Value>(Kind::AppInstance).await?;
    if insts.iter().any(|i| i.spec.federated.as_ref().is_some_and(|f| f.peer == name)) {
        return Err(ApiError::Aborted(format!("instances still run on zones of peer '{name}'; delete them first")));
    }
    if p.metadata.deletion_requested.is_none() {
        p.metadata.deletion_requested = Some(chrono::Utc::now());
        s.repo.update(&mut p).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// Filters of the settlement report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct UsageQuery {
    /// A peer's name (originating role) or a partner's name (partner role).
    pub counterpart: String,
    /// Start of the period (RFC 3339), inclusive; default 24 h before `to`.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the period (RFC 3339), exclusive; default the start of the current hour.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// `peer` (we deploy at the counterpart) or `partner` (it deploys here), when it is both;
    /// default the peer's.
    pub role: Option<String>,
}

fn role_of(q: &UsageQuery) -> Result<super::settle::Role, ApiError> {
    use super::settle::Role;
    match q.role.as_deref() {
        None => Ok(Role::Either),
        Some("peer") => Ok(Role::Peer),
        Some("partner") => Ok(Role::Partner),
        Some(other) => Err(ApiError::invalid("role", format!("'{other}' is not peer or partner"))),
    }
}

/// Settlement: usage records with a peer or partner for a period, as JSON (with totals and
/// the digest both sides compare) or CSV.
#[utoipa::path(get, path = "/op/v1/federation/usage", tag = "Federation", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, description = "A usage report (JSON) or its records (CSV)"), (status = 400, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn usage(State(s): State<AppState>, c: Caller, Query(q): Query<UsageQuery>) -> Result<Response, ApiError> {
    c.require_operator()?;
    let who = Name::new(q.counterpart.clone()).map_err(|e| ApiError::invalid("counterpart", e.to_string()))?;
    let (from, to) = super::settle::window(q.from, q.to)?;
    let report = super::settle::local_report(&s, &who, role_of(&q)?, from, to).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(report).into_response()),
        "csv" => Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], op_types::ewbi::usage::to_csv(&report.records)).into_response()),
        other => Err(ApiError::invalid("format", format!("'{other}' is not json or csv"))),
    }
}

/// Our report and the partner's for the same window, and where they differ.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageCheck {
    /// Whether both sides computed the same records.
    pub agreed: bool,
    /// Our digest.
    pub local_digest: String,
    /// The partner's digest.
    pub partner_digest: String,
    /// Our report.
    #[schema(value_type = Object)]
    pub local: op_types::ewbi::usage::UsageReport,
    /// Every difference (empty when agreed).
    #[schema(value_type = Vec<Object>)]
    pub mismatches: Vec<op_types::ewbi::usage::UsageMismatch>,
}

/// Settlement check with a peer (originating role): fetches the partner's report over the
/// EWBI extension `usage-v1` and compares it with ours, record by record.
#[utoipa::path(get, path = "/op/v1/federation/peers/{name}/usage-check", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path), UsageQuery),
    responses((status = 200, body = UsageCheck), (status = 404, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn usage_check(State(s): State<AppState>, c: Caller, Path(name): Path<String>, Query(q): Query<UsageQuery>) -> Result<Json<UsageCheck>, ApiError> {
    c.require_operator()?;
    let name = path_name(&name)?;
    let peer = s
        .repo
        .get_by_name::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, None, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("peer '{name}' not found")))?;
    if !peer.observed.extensions.iter().any(|e| e == "usage-v1") {
        return Err(ApiError::Unprocessable("NO_EXTENSION", format!("peer '{name}' does not publish usage (extension usage-v1)")));
    }
    let (from, to) = super::settle::window(q.from, q.to)?;
    let local = super::settle::local_report(&s, &name, super::settle::Role::Peer, from, to).await?;
    let ctx = peer.observed.context_id.clone().unwrap_or_default();
    let client = s.ewbi.clients.of(&peer).map_err(|e| ApiError::Internal(e.to_string()))?;
    let path = format!("/{ctx}/x-op/usage?from={}&to={}", from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let reply = client.call(reqwest::Method::GET, &path, None).await.map_err(|e| ApiError::Unavailable(format!("the partner's report: {e}")))?;
    let theirs: op_types::ewbi::usage::UsageReport =
        serde_json::from_value(reply.body.unwrap_or_default()).map_err(|e| ApiError::Unavailable(format!("the partner's report does not parse: {e}")))?;
    let mismatches = op_types::ewbi::usage::diff(&local, &theirs);
    Ok(Json(UsageCheck { agreed: mismatches.is_empty(), local_digest: local.digest.clone(), partner_digest: theirs.digest, local, mismatches }))
}

/// A roaming user to check with its home operator.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoamingCheck {
    /// The home operator's federation id (as the device shows it).
    pub home_operator: String,
    /// The device's federated id.
    pub device_id: String,
    /// The token it shows.
    pub token: String,
}

/// The home operator's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoamingVerdict {
    /// Whether the home operator vouches for the device.
    pub authenticated: bool,
}

/// Roaming user authentication (visited side): an app instance running here (its
/// `OP_INSTANCE_TOKEN`) or the operator asks whether a device roaming in our network is a user
/// of a federated home operator; the platform asks that operator (AuthenticateDevice), so apps
/// never talk to partners themselves.
#[utoipa::path(post, path = "/op/v1/federation/roaming-check", tag = "Federation", security(("bearer" = [])), request_body = RoamingCheck,
    responses((status = 200, body = RoamingVerdict), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn roaming_check(
    State(s): State<AppState>,
    instance: Result<crate::auth::InstanceCaller, ApiError>,
    caller: Result<Caller, ApiError>,
    Body(req): Body<RoamingCheck>,
) -> Result<Json<RoamingVerdict>, ApiError> {
    match (instance, caller) {
        (Ok(_), _) => {}
        (_, Ok(c)) => c.require_operator()?,
        (Err(e), Err(_)) => return Err(e),
    }
    let ok_id = |v: &str| !v.is_empty() && v.len() <= 130 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_id(&req.device_id) {
        return Err(ApiError::invalid("deviceId", "letters, digits and '_' only"));
    }
    if !ok_id(&req.token) {
        return Err(ApiError::invalid("token", "letters, digits and '_' only"));
    }
    let (peers, _) = s.repo.list::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer).await?;
    let peer = peers
        .into_iter()
        .find(|p| p.metadata.deletion_requested.is_none() && p.observed.partner_federation_id.as_deref() == Some(req.home_operator.as_str()))
        .ok_or_else(|| ApiError::NotFound(format!("homeOperator: we do not federate with '{}'", req.home_operator)))?;
    let ctx = peer.observed.context_id.clone().unwrap_or_default();
    let client = s.ewbi.clients.of(&peer).map_err(|e| ApiError::Internal(e.to_string()))?;
    let path = format!("/{ctx}/roaminguserauth/device/{}/token/{}", req.device_id, req.token);
    let authenticated = match client.call(reqwest::Method::GET, &path, None).await {
        Ok(r) => {
            // The home operator bills the check at the time it states: record the same.
            if let Some(at) = r.date {
                let ev = op_types::ewbi::usage::UsageEvent::ServiceCalls(op_types::ewbi::usage::ServiceCalls {
                    federation_context_id: ctx.clone(),
                    app_provider_id: "roaming".into(),
                    app_id: "roaming".into(),
                    zone_id: "home".into(),
                    flavour_id: None,
                    service: "roamingAuth".into(),
                    count: 1,
                    at,
                });
                super::settle::record(&s, &peer.metadata.name, ev).await?;
            }
            true
        }
        Err(e) if e.status() == Some(404) => false,
        Err(e) => return Err(ApiError::Unavailable(format!("the home operator could not be asked: {e}"))),
    };
    Ok(Json(RoamingVerdict { authenticated }))
}

/// A partner's federated cloudlet as the operator sees it (no credentials).
pub type FederatedCloudletView = Object<op_types::ewbi::objects::FederatedCloudletSpec, op_types::ewbi::objects::FederatedCloudletObserved>;

/// List the cloudlets partners federated with us, with their onboarding phases and
/// compliance reports (never their control-endpoint credentials).
#[utoipa::path(get, path = "/op/v1/federation/cloudlets", tag = "Federation", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object<op_types::ewbi::objects::FederatedCloudletSpec, op_types::ewbi::objects::FederatedCloudletObserved>>), (status = 403, body = ErrorInfo)))]
pub async fn list_federated_cloudlets(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<FederatedCloudletView>>, ApiError> {
    c.require_operator()?;
    let (all, _) = s.repo.list::<op_types::ewbi::objects::FederatedCloudletSpec, op_types::ewbi::objects::FederatedCloudletObserved>(Kind::FederatedCloudlet).await?;
    Ok(Json(all.into_iter().map(super::cloudlets::redacted).collect()))
}

/// Reserve aggregate resources on a partner's federated cloudlet (the workflow's reserve
/// step): the local cloudlet's capacity becomes the reservation, and onboarding (inventory,
/// catalogue, sizes, compliance) goes on.
#[utoipa::path(post, path = "/op/v1/federation/cloudlets/{name}/reservation", tag = "Federation", security(("bearer" = [])), params(("name" = String, Path)),
    request_body = op_types::specs::Resources,
    responses((status = 200, body = Object<op_types::ewbi::objects::FederatedCloudletSpec, op_types::ewbi::objects::FederatedCloudletObserved>), (status = 400, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn reserve_cloudlet(State(s): State<AppState>, c: Caller, Path(name): Path<String>, Body(res): Body<op_types::specs::Resources>) -> Result<Json<FederatedCloudletView>, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    res.validate()?;
    let rec = super::cloudlets::reserve(&s, &name, res).await?;
    tracing::info!(cloudlet = %name, user = %c.user, reservation = %res, "partner cloudlet reserved");
    Ok(Json(rec))
}

/// The operator routes, merged into the NBI router.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/op/v1/federation/partners", get(list_partners).post(create_partner))
        .route("/op/v1/federation/partners/{name}", get(get_partner).delete(delete_partner).put(update_partner))
        .route("/op/v1/federation/contexts", get(list_contexts))
        .route("/op/v1/federation/peers", get(list_peers).post(create_peer))
        .route("/op/v1/federation/peers/{name}", get(get_peer).delete(delete_peer))
        .route("/op/v1/federation/usage", get(usage))
        .route("/op/v1/federation/roaming-check", axum::routing::post(roaming_check))
        .route("/op/v1/federation/peers/{name}/usage-check", get(usage_check))
        .route("/op/v1/federation/cloudlets", get(list_federated_cloudlets))
        .route("/op/v1/federation/cloudlets/{name}/reservation", axum::routing::post(reserve_cloudlet))
}
