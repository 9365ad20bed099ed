//! The UNI: where a device app learns its edge. Registration authenticates the device through
//! the network and the app through its provider's key, picks the best instance from the
//! in-memory index, and returns a session token the edge verifies on its own. Also the CAMARA
//! discovery APIs (Simple Edge Discovery, Application Endpoint Discovery) on the same index.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use op_network::{DeviceRef, NetworkAdapter, NetworkError, NetworkLocation};
use op_types::specs::{AppSpec, GeoPoint, InstantiationType, UnmetPolicy, ZoneSpec};
use op_types::Kind;
use op_types::{Name, Uid};
use op_uni::feed::SharedIndex;
use op_uni::select::{closest_zone, rank, DeviceAt, Rejection};
use op_uni::token::{now, SessionClaims, SessionSigner, SESSION_ISSUER};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::state::AppState;
pub use op_types::uni::*;

/// How far (km) a claimed position may be from where the network places the device.
const CLAIM_TOLERANCE_KM: f64 = 5.0;

/// UNI configuration and the shared index.
pub struct UniState {
    /// Zones, cloudlets, apps and instances, kept current by watches.
    pub index: SharedIndex,
    /// Signs session tokens.
    pub signer: SessionSigner,
    /// The mobile network, when configured.
    pub network: Option<Arc<dyn NetworkAdapter>>,
    /// Mobile country code.
    pub mcc: String,
    /// Mobile network code.
    pub mnc: String,
    /// Partner networks (PLMN ids) an app's customer reach may name besides this one.
    pub partner_plmns: Vec<String>,
    /// Session lifetime, seconds (also the revalidation timer).
    pub session_ttl: u64,
    /// Per-device and global request limits.
    pub limiter: op_uni::limit::RateLimiter,
    /// Live sessions and their push channels.
    pub sessions: op_uni::sessions::Sessions,
    /// Where the network posts device events (`{public URL}/uni/v1/network-events/{secret}`),
    /// when the platform's public URL is known.
    pub callback_url: Option<String>,
    /// The secret path segment of `callback_url`, so only the network can post events.
    pub callback_secret: String,
    /// Network subscriptions: subscription id -> device key.
    pub subscriptions: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl UniState {
    /// This operator's PLMN id.
    pub fn plmn(&self) -> String {
        format!("{}{}", self.mcc, self.mnc)
    }

    /// Charges one request to `device`; a 429 naming which limit was hit when refused.
    fn admit(&self, device: &DeviceRef) -> Result<(), ApiError> {
        self.limiter.check(&device_key(device)).map_err(|which| {
            ApiError::TooManyRequests(match which {
                op_uni::limit::Limited::Device => "this device asks too often; wait and retry".into(),
                op_uni::limit::Limited::Global => "the UNI is at its request limit; retry shortly".into(),
            })
        })
    }

    fn network(&self) -> Result<&Arc<dyn NetworkAdapter>, ApiError> {
        self.network
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("no mobile network is configured; start opd with --network-api".into()))
    }
}

/// One string per device, for rate limits and sessions.
pub fn device_key(device: &DeviceRef) -> String {
    device
        .phone_number
        .clone()
        .or_else(|| device.network_access_identifier.clone())
        .or_else(|| device.ip.map(|i| i.to_string()))
        .unwrap_or_default()
}


/// The network-side reference of a CAMARA device, or CAMARA's 422 MISSING_IDENTIFIER.
fn device_ref(d: &Device) -> Result<DeviceRef, ApiError> {
    {
        if let Some(p) = &d.phone_number {
            let ok = p.len() >= 6 && p.len() <= 16 && p.starts_with('+') && p[1..].bytes().all(|b| b.is_ascii_digit()) && !p[1..].starts_with('0');
            if !ok {
                return Err(ApiError::invalid("device.phoneNumber", "must be E.164 with a leading '+'"));
            }
        }
        let (mut phone, mut nai) = (d.phone_number.clone(), d.network_access_identifier.clone());
        if let Some(g) = &d.gpsi {
            let bad = || ApiError::invalid("device.gpsi", "must be msisdn-<digits> or extid-<id>@<domain>, and agree with the other identifiers");
            let (slot, value) = match (g.strip_prefix("msisdn-"), g.strip_prefix("extid-")) {
                (Some(digits), _) if (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) => (&mut phone, format!("+{digits}")),
                (_, Some(ext)) if ext.contains('@') && ext.len() <= 256 => (&mut nai, ext.to_string()),
                _ => return Err(bad()),
            };
            if slot.as_ref().is_some_and(|v| *v != value) {
                return Err(bad());
            }
            *slot = Some(value);
        }
        let r = DeviceRef {
            phone_number: phone,
            network_access_identifier: nai,
            ip: d.ipv4_address.as_ref().map(|a| a.public_address.into()).or(d.ipv6_address.map(Into::into)),
        };
        if r == DeviceRef::default() {
            return Err(ApiError::Unprocessable("MISSING_IDENTIFIER", "the device is not identified: give phoneNumber, networkAccessIdentifier or an IP address".into()));
        }
        Ok(r)
    }
}

/// Fails with CAMARA's 422 SERVICE_NOT_APPLICABLE when no zone's service area holds the device.
fn in_coverage(ix: &op_uni::index::EdgeIndex, at: &DeviceAt) -> Result<(), ApiError> {
    if !ix.covers(at.cell.as_deref(), at.point) {
        return Err(ApiError::Unprocessable(
            "SERVICE_NOT_APPLICABLE",
            "the device is outside the service area of every edge zone".into(),
        ));
    }
    Ok(())
}

fn network_error(e: NetworkError) -> ApiError {
    match e {
        NetworkError::UnknownDevice(_) => ApiError::IdentifierNotFound("Device identifier not found.".into()),
        NetworkError::Unavailable(m) => ApiError::Unavailable(format!("the mobile network did not answer: {m}")),
        other => ApiError::Internal(other.to_string()),
    }
}

async fn locate(uni: &UniState, device: &DeviceRef) -> Result<NetworkLocation, ApiError> {
    uni.network()?.locate(device).await.map_err(network_error)
}

/// Whether the device roams and where. A network that does not offer roaming status (it
/// refuses the request) is taken to mean the device is at home, with a warning.
async fn roaming(uni: &UniState, device: &DeviceRef) -> Result<op_network::RoamingStatus, ApiError> {
    match uni.network()?.roaming_status(device).await {
        Ok(r) => Ok(r),
        Err(NetworkError::Rejected(why)) => {
            tracing::warn!(%why, "the network gave no roaming status; taking the device to be at home");
            Ok(op_network::RoamingStatus { roaming: false, serving_plmn: None })
        }
        Err(e) => Err(network_error(e)),
    }
}

fn at(loc: &NetworkLocation) -> DeviceAt {
    DeviceAt { cell: loc.cell_id.clone(), point: Some(loc.point) }
}

/// CAMARA Simple Edge Discovery request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosestZoneRequest {
    /// The device (two-legged access).
    #[serde(default)]
    pub device: Option<Device>,
}

/// CAMARA Simple Edge Discovery answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClosestZone {
    /// Zone id.
    pub edge_cloud_zone_id: Uid,
    /// Zone name.
    pub edge_cloud_zone_name: String,
    /// Operator.
    pub edge_cloud_provider: String,
    /// The identifier used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
}

/// The edge cloud zone with the shortest network path to the device.
#[utoipa::path(post, path = "/simple-edge-discovery/v2/retrieve-closest-edge-cloud-zone", tag = "Discovery",
    operation_id = "readClosestEdgeCloudZone", security(("bearer" = [])), request_body = ClosestZoneRequest,
    responses((status = 200, body = ClosestZone), (status = 404, body = ErrorInfo), (status = 422, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn closest_edge_zone(
    State(s): State<AppState>,
    _c: Caller,
    Body(req): Body<ClosestZoneRequest>,
) -> Result<Json<ClosestZone>, ApiError> {
    let device = device_ref(&req.device.unwrap_or_default())?;
    s.uni.admit(&device)?;
    let loc = locate(&s.uni, &device).await?;
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let z = closest_zone(&ix, &at(&loc)).ok_or_else(|| ApiError::NotFound("no edge cloud zone serves this device".into()))?;
    Ok(Json(ClosestZone {
        edge_cloud_zone_id: z.uid,
        edge_cloud_zone_name: z.name.to_string(),
        edge_cloud_provider: s.provider.clone(),
        device: None,
    }))
}

/// CAMARA Optimal Edge Discovery request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptimalEdgeRequest {
    /// The device.
    #[serde(default)]
    pub device: Option<Device>,
    /// The application profile: this platform's app id (the app's requirements are its profile).
    pub application_profile_id: Uid,
    /// Only zones of this region.
    #[serde(default)]
    pub edge_cloud_region: Option<String>,
}

/// CAMARA Optimal Edge Discovery answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimalEdgeResponse {
    /// Best first.
    pub edge_cloud_zones: Vec<op_types::views::EdgeCloudZone>,
    /// Echoed.
    pub application_profile_id: Uid,
}

/// The app `id` if the caller may see it, from the index.
fn visible_app(s: &AppState, c: &Caller, id: Uid) -> Result<op_uni::index::AppEntry, ApiError> {
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    ix.app(id)
        .filter(|a| c.can_read(Some(&a.org)))
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("app {id} not found")))
}

fn zone_view(s: &AppState, z: &op_uni::index::ZoneEntry) -> op_types::views::EdgeCloudZone {
    op_types::views::EdgeCloudZone {
        edge_cloud_zone_id: z.uid,
        edge_cloud_zone_name: z.name.to_string(),
        edge_cloud_zone_status: "active".into(),
        edge_cloud_provider: s.provider.clone(),
        edge_cloud_region: z.region.to_string(),
    }
}

/// The zones where an app would best serve a device, best first.
#[utoipa::path(post, path = "/optimal-edge-discovery/v0.1/retrieve-optimal-edge-cloud-zones", tag = "Discovery",
    operation_id = "discoverOptimalEdge", security(("bearer" = [])), request_body = OptimalEdgeRequest,
    responses((status = 200, body = OptimalEdgeResponse), (status = 404, body = ErrorInfo), (status = 422, body = ErrorInfo)))]
pub async fn optimal_edge_zones(
    State(s): State<AppState>,
    c: Caller,
    Body(req): Body<OptimalEdgeRequest>,
) -> Result<Json<OptimalEdgeResponse>, ApiError> {
    let device = device_ref(&req.device.unwrap_or_default())?;
    s.uni.admit(&device)?;
    let app = visible_app(&s, &c, req.application_profile_id)?;
    let loc = locate(&s.uni, &device).await?;
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let zones: Vec<_> = op_uni::select::rank_zones(&ix, &app, &at(&loc), &op_uni::select::weights_at(&ix, &app, &at(&loc)), &|_| None)
        .into_iter()
        .filter(|(z, _)| req.edge_cloud_region.as_ref().is_none_or(|r| z.region.as_str() == r))
        .map(|(z, _)| zone_view(&s, z))
        .collect();
    if zones.is_empty() {
        return Err(ApiError::NotFound("no edge cloud zone meets the app's criteria for this device".into()));
    }
    Ok(Json(OptimalEdgeResponse { edge_cloud_zones: zones, application_profile_id: req.application_profile_id }))
}

/// The regions zones belong to.
#[utoipa::path(get, path = "/optimal-edge-discovery/v0.1/regions", tag = "Discovery", operation_id = "getRegions",
    security(("bearer" = [])), responses((status = 200, body = Vec<String>)))]
pub async fn regions(State(s): State<AppState>, _c: Caller) -> Json<Vec<String>> {
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let mut r: Vec<String> = ix.zones().map(|z| z.region.to_string()).collect();
    r.sort();
    r.dedup();
    Json(r)
}

/// CAMARA Application Endpoint Discovery request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointDiscoveryInfo {
    /// The device.
    #[serde(default)]
    pub device: Option<Device>,
    /// The app.
    pub app_id: Uid,
}

/// CAMARA `ApplicationEndpoint`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationEndpoint {
    /// Addresses.
    pub ipv4_addresses: Vec<String>,
    /// Port.
    pub port: u16,
    /// Its zone.
    pub edge_cloud_zone: op_types::views::EdgeCloudZone,
}

/// CAMARA Application Endpoint Discovery answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointDiscoveryResult {
    /// Best first.
    pub application_endpoints: Vec<ApplicationEndpoint>,
    /// Echoed.
    pub app_id: Uid,
}

/// The app's endpoints with the shortest network path to the device, best first.
#[utoipa::path(post, path = "/application-endpoint-discovery/v0.1/retrieve-optimal-app-endpoints", tag = "Discovery",
    security(("bearer" = [])), request_body = EndpointDiscoveryInfo,
    responses((status = 200, body = EndpointDiscoveryResult), (status = 404, body = ErrorInfo), (status = 422, body = ErrorInfo)))]
pub async fn optimal_app_endpoints(
    State(s): State<AppState>,
    c: Caller,
    Body(req): Body<EndpointDiscoveryInfo>,
) -> Result<Json<EndpointDiscoveryResult>, ApiError> {
    let device = device_ref(&req.device.unwrap_or_default())?;
    s.uni.admit(&device)?;
    let app = visible_app(&s, &c, req.app_id)?;
    let loc = locate(&s.uni, &device).await?;
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let ranking = rank(&ix, &app, &at(&loc), &op_uni::select::weights_at(&ix, &app, &at(&loc)), &|_| None);
    let endpoints: Vec<_> = ranking
        .ranked
        .iter()
        .filter_map(|ch| {
            let e = ch.instance.endpoint.as_ref()?;
            Some(ApplicationEndpoint { ipv4_addresses: vec![e.host.clone()], port: e.port, edge_cloud_zone: zone_view(&s, ch.zone) })
        })
        .collect();
    if endpoints.is_empty() {
        return Err(ApiError::NotFound("no instance of the app can serve this device".into()));
    }
    Ok(Json(EndpointDiscoveryResult { application_endpoints: endpoints, app_id: req.app_id }))
}

fn check_claim(claim: &ClaimedLocation, net: &NetworkLocation) -> Result<(), ApiError> {
    let contradicts = |field: &str| {
        Err(ApiError::Unprocessable(
            "LOCATION_MISMATCH",
            format!("location.{field}: the claimed location does not match where the network sees the device"),
        ))
    };
    if let (Some(c), Some(n)) = (&claim.cell_id, &net.cell_id) {
        if c != n {
            return contradicts("cellId");
        }
    }
    if let (Some(c), Some(n)) = (&claim.tracking_area, &net.tracking_area) {
        if c != n {
            return contradicts("trackingArea");
        }
    }
    if let (Some(lat), Some(lon)) = (claim.latitude, claim.longitude) {
        let p = GeoPoint { latitude: lat, longitude: lon };
        op_types::Validate::validate(&p).map_err(|e| e.under("location"))?;
        if op_uni::geo::distance_km(p, net.point) > CLAIM_TOLERANCE_KM + net.accuracy_m / 1000.0 {
            return contradicts("latitude");
        }
    }
    Ok(())
}

/// Register a device app: authenticate device (network) and app (provider's key), pick the
/// best edge, open a session.
#[utoipa::path(post, path = "/uni/v1/sessions", tag = "UNI", request_body = RegisterRequest,
    responses((status = 201, body = Registration), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo),
        (status = 404, body = ErrorInfo), (status = 422, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn register(State(s): State<AppState>, Body(req): Body<RegisterRequest>) -> Result<(StatusCode, Json<Registration>), ApiError> {
    let device = device_ref(&req.device)?;
    s.uni.admit(&device)?;
    let (org, name) = (
        Name::new(req.app.provider.clone()).map_err(|e| ApiError::invalid("app.provider", e.to_string()))?,
        Name::new(req.app.name.clone()).map_err(|e| ApiError::invalid("app.name", e.to_string()))?,
    );
    let max_alt = req.max_alternatives.unwrap_or(2);
    if max_alt > 10 {
        return Err(ApiError::invalid("maxAlternatives", "must be at most 10"));
    }
    let app = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        ix.app_by(&org, &name, &req.app.version).cloned()
    }
    .ok_or_else(|| ApiError::NotFound(format!("app {}/{} version {} is not onboarded", org, name, req.app.version)))?;
    let key = app
        .device_key
        .as_ref()
        .ok_or_else(|| ApiError::Forbidden("this app has no deviceAuth key onboarded; its devices cannot register".into()))?;
    key.verify(&req.app_token).map_err(|e| ApiError::Unauthenticated(format!("appToken: {e}")))?;
    let (net, roams) = tokio::join!(locate(&s.uni, &device), roaming(&s.uni, &device));
    let (net, roams) = (net?, roams?);
    let refused = op_uni::select::reach_refusal(&app.requirements, &s.uni.plmn(), roams.roaming, roams.serving_plmn.as_deref());
    if let Some(why) = &refused {
        if !matches!(app.requirements.on_unmet, UnmetPolicy::FallbackToCloud) {
            return Err(ApiError::Forbidden(format!("{why}; the app is not offered to this device")));
        }
    }
    // Roaming in a federated partner's network: its edges serve the device (edge node sharing,
    // local breakout), ranked by the partner for where the device is.
    let shared = match (&refused, roams.roaming, roams.serving_plmn.as_deref()) {
        (None, true, Some(plmn)) => crate::ewbi::peer::shared_edges(&s, app.uid, plmn, net.point, &device_key(&device)).await?,
        _ => None,
    };
    if let Some((mut offers, auth)) = shared {
        let best = offers.remove(0);
        offers.truncate(max_alt);
        let offers = Offers { best, alternatives: offers, area: ServiceAreaView { cells: Vec::new(), polygon: Vec::new() }, best_effort: false };
        return open_session(&s, &app, &device, &net, offers, Ok(None), Some(auth)).await;
    }
    if let Some(claim) = &req.location {
        check_claim(claim, &net)?;
    }
    let device_at = at(&net);
    {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        in_coverage(&ix, &device_at)?;
        let ids: Vec<&str> = [device.phone_number.as_deref(), device.network_access_identifier.as_deref()].into_iter().flatten().collect();
        if ix.device_barred(&ids, closest_zone(&ix, &device_at).map(|z| &z.region)) {
            return Err(ApiError::Forbidden("the operator bars this device from edge applications".into()));
        }
    }
    let network = s.uni.network()?.clone();
    // Path estimates for the zones with instances of this app and, for an app instantiated on
    // demand, the zones serving the device (outside the index lock).
    // Dynamic apps start where their devices are; capacity-based ones too for their first
    // users (the scaler adds the rest as users come).
    let dynamic = matches!(app.requirements.instantiation, InstantiationType::Dynamic | InstantiationType::CapacityBased);
    let serverless = app.requirements.instantiation == InstantiationType::Serverless;
    let zones: Vec<(Uid, String)> = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        let local = if dynamic || serverless { ix.zones_serving(device_at.cell.as_deref(), device_at.point) } else { Vec::new() };
        let mut z: Vec<Uid> = ix.instances_of(app.uid).map(|i| i.zone).chain(local).collect();
        z.sort();
        z.dedup();
        z.into_iter().filter_map(|u| ix.zone(u)).filter_map(|z| Some((z.uid, z.dnai.clone()?))).collect()
    };
    // The network view answers for the cells it knows; the network is asked only for the rest
    // (a cell the last refresh did not cover yet).
    let mut paths = std::collections::HashMap::new();
    if let Some(cell) = &device_at.cell {
        let mut ask = Vec::new();
        {
            let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
            for (uid, dnai) in zones {
                match ix.zone(uid).and_then(|z| ix.path(Some(cell), z)) {
                    Some(p) => {
                        paths.insert(uid, p);
                    }
                    None if !ix.knows_paths_from(cell) => ask.push((uid, dnai)),
                    None => {}
                }
            }
        }
        for (uid, dnai) in ask {
            if let Ok(p) = network.path_performance(cell, &dnai).await {
                paths.insert(uid, PathInfo { latency_ms: p.latency_ms, jitter_ms: p.jitter_ms, bandwidth_mbps: p.bandwidth_mbps });
            }
        }
    }
    // A serverless app is reached at the point of presence closest to the device, whether or
    // not an instance runs anywhere: its ingress starts or finds one.
    if serverless && refused.is_none() {
        let (offers, area) = {
            let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
            let offers = crate::serverless::offers(&s, &ix, &app, &device_at, &|z| paths.get(&z.uid).copied(), max_alt + 1);
            let area = offers.first().and_then(|o| ix.zone(o.edge_cloud_zone_id)).map(|z| ServiceAreaView { cells: z.cells.clone(), polygon: z.polygon.clone() });
            (offers, area)
        };
        let mut offers = offers.into_iter();
        let (Some(best), Some(area)) = (offers.next(), area) else {
            return Err(ApiError::NotFound("no point of presence serves this device's area (the app's footprint, data regions and path bounds rule every zone out); try again later".into()));
        };
        let offers = Offers { best, alternatives: offers.collect(), area, best_effort: false };
        return open_session(&s, &app, &device, &net, offers, Ok(None), None).await;
    }
    let starting = if dynamic && refused.is_none() { start_near(&s, &app, &device_at, &paths).await } else { Ok(None) };
    let deadline = tokio::time::Instant::now() + DYNAMIC_WAIT;
    let Offers { best, alternatives, area, best_effort } = loop {
        // Not offered here at all, and the app sends such devices to its cloud.
        let found = match (&refused, &app.requirements.fallback_endpoint) {
            (Some(_), Some(url)) => Err(Unmet::Fallback(url.clone())),
            _ => best_offers(&s.uni, &app, &device_at, &paths, max_alt),
        };
        match found {
            Ok(found) => break found,
            // Nothing runs yet, but an instance is starting for this device: answer once it is up.
            Err(Unmet::NoInstance(_)) if matches!(starting, Ok(Some(_))) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(DYNAMIC_POLL).await;
            }
            Err(Unmet::Qos(why)) => {
                return Err(ApiError::Unprocessable(
                    "SERVICE_NOT_APPLICABLE",
                    format!("the app's QoS bounds cannot be met for this device ({}); its onUnmet policy is reject", why.join("; ")),
                ))
            }
            Err(Unmet::Fallback(url)) => {
                let best = cloud_offer(&url)?;
                break Offers { best, alternatives: Vec::new(), area: ServiceAreaView { cells: Vec::new(), polygon: Vec::new() }, best_effort: false };
            }
            Err(Unmet::NoInstance(rejected)) => {
                return Err(match starting {
                    Err(e) => e,
                    Ok(Some(st)) => ApiError::Unavailable(format!(
                        "an instance is starting in zone {} for this device and was not ready within {}s; register again shortly",
                        st.edge_cloud_zone_name,
                        DYNAMIC_WAIT.as_secs()
                    )),
                    Ok(None) => ApiError::NotFound(format!("no instance of the app can serve this device ({rejected} ruled out); try again later")),
                })
            }
        }
    };
    open_session(&s, &app, &device, &net, Offers { best, alternatives, area, best_effort }, starting, None).await
}

/// Opens a session on `offers` for `device` (signed token, revalidation timer, the device
/// followed by the network) and answers the registration.
async fn open_session(
    s: &AppState,
    app: &op_uni::index::AppEntry,
    device: &DeviceRef,
    net: &NetworkLocation,
    offers: Offers,
    starting: Result<Option<StartingInstance>, ApiError>,
    roaming_auth: Option<op_types::uni::RoamingAuth>,
) -> Result<(StatusCode, Json<Registration>), ApiError> {
    let Offers { best, alternatives, area, best_effort } = offers;
    let device_at = at(net);
    let cloud_fallback = best.edge_cloud_zone_id == Uid::nil();
    let serverless_host = match (&app.requirements.serverless, cloud_fallback) {
        (Some(p), false) if app.requirements.instantiation == InstantiationType::Serverless => Some(p.host_for(&app.org, &app.name)),
        _ => None,
    };
    let starting = match starting {
        Ok(st) => st.filter(|st| st.app_instance_id != best.app_instance_id),
        Err(e) => {
            tracing::warn!(app = %app.uid, error = %e, "could not start an instance near the device; serving from the best existing one");
            None
        }
    };
    let session_id = Uid::random().to_string();
    let iat = now();
    let claims = SessionClaims {
        sub: session_id.clone(),
        app: app.uid,
        inst: best.app_instance_id,
        zone: best.edge_cloud_zone_id,
        iat,
        exp: iat + s.uni.session_ttl,
        iss: SESSION_ISSUER.into(),
        dev: s.uni.signer.pseudonym(&device_key(device)),
        mac: String::new(),
    };
    let session_token = s.uni.signer.sign(&claims).map_err(|e| ApiError::Internal(e.to_string()))?;
    follow_device(&s.uni, device).await;
    s.uni.sessions.open(session_id.clone(), app.uid, device_key(device), device_at, best.app_instance_id, claims.exp);
    if let Some(ip) = device.ip {
        s.uni.sessions.set_ip(&session_id, ip.to_string());
    }
    let expected = std::iter::once(&best).chain(&alternatives).filter_map(|o| Some((o.edge_cloud_zone_id, o.expected_qos.as_ref()?.latency_ms))).collect();
    s.uni.sessions.set_expected(&session_id, expected);
    Ok((
        StatusCode::CREATED,
        Json(Registration {
            session_id,
            session_token,
            endpoint: best,
            alternatives,
            service_area: area,
            revalidate_after_seconds: s.uni.session_ttl,
            starting,
            best_effort,
            cloud_fallback,
            roaming_auth,
            serverless_host,
        }),
    ))
}


/// How long a registration waits for an instance started for it when nothing else can serve.
const DYNAMIC_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// How often the index is looked at meanwhile.
const DYNAMIC_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The best offer for a device, the alternatives and the best one's service area, from the
/// index; `Err` carries how many instances were ruled out when none can serve.
fn best_offers(
    uni: &UniState,
    app: &op_uni::index::AppEntry,
    at: &DeviceAt,
    paths: &std::collections::HashMap<Uid, PathInfo>,
    max_alt: usize,
) -> Result<Offers, Unmet> {
    let ix = uni.index.read().unwrap_or_else(|e| e.into_inner());
    let weights = op_uni::select::weights_at(&ix, app, at);
    let mut ranking = rank(&ix, app, at, &weights, &|z| paths.get(&z.uid).copied());
    let qos = |r: &Rejection| matches!(r, Rejection::Latency { .. } | Rejection::Jitter { .. } | Rejection::Bandwidth { .. });
    let qos_unmet: Vec<String> = ranking.rejected.iter().filter(|(_, r)| qos(r)).map(|(_, r)| unmet_text(r)).collect();
    let mut best_effort = false;
    if ranking.ranked.is_empty() && !qos_unmet.is_empty() {
        match app.requirements.on_unmet {
            UnmetPolicy::Reject => return Err(Unmet::Qos(qos_unmet)),
            // Serve from the best edge the other criteria allow, QoS bounds set aside.
            UnmetPolicy::BestEffort => {
                ranking = rank(&ix, app, at, &weights, &|_| None);
                best_effort = true;
            }
            UnmetPolicy::FallbackToCloud => {}
        }
    }
    let mut offers = ranking.ranked.iter().filter_map(|c| offer(&ix, c).map(|o| (o, c.zone)));
    let Some((mut best, zone)) = offers.next() else {
        return Err(match (&app.requirements.on_unmet, &app.requirements.fallback_endpoint) {
            (UnmetPolicy::FallbackToCloud, Some(url)) => Unmet::Fallback(url.clone()),
            _ => Unmet::NoInstance(ranking.rejected.len()),
        });
    };
    let area = ServiceAreaView { cells: zone.cells.clone(), polygon: zone.polygon.clone() };
    let mut alternatives: Vec<EdgeOffer> = offers.take(max_alt).map(|(o, _)| o).collect();
    if best_effort {
        // What the network expects all the same, so the device knows what it gets.
        for o in std::iter::once(&mut best).chain(alternatives.iter_mut()) {
            o.expected_qos = paths.get(&o.edge_cloud_zone_id).copied();
        }
    }
    Ok(Offers { best, alternatives, area, best_effort })
}

/// The app provider's cloud endpoint as an offer (zone `cloud`, nil ids), for devices no edge
/// can serve when the app says so (`onUnmet: fallbackToCloud`).
fn cloud_offer(url: &str) -> Result<EdgeOffer, ApiError> {
    let uri: axum::http::Uri = url.parse().map_err(|_| ApiError::Internal(format!("the app's fallbackEndpoint '{url}' is not a URL")))?;
    let host = uri.host().ok_or_else(|| ApiError::Internal(format!("the app's fallbackEndpoint '{url}' has no host")))?;
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    Ok(EdgeOffer {
        app_instance_id: Uid::nil(),
        edge_cloud_zone_id: Uid::nil(),
        edge_cloud_zone_name: "cloud".into(),
        host: host.to_string(),
        port,
        expected_qos: None,
        distance_km: None,
        probe_url: None,
    })
}

/// What a registration can offer.
struct Offers {
    best: EdgeOffer,
    alternatives: Vec<EdgeOffer>,
    area: ServiceAreaView,
    best_effort: bool,
}

/// Why nothing can be offered.
enum Unmet {
    /// No instance can serve (this many were ruled out).
    NoInstance(usize),
    /// Instances exist but miss the app's QoS bounds, and the app says reject.
    Qos(Vec<String>),
    /// Nothing serves; the app sends its devices to its cloud endpoint.
    Fallback(String),
}

fn unmet_text(r: &Rejection) -> String {
    match r {
        Rejection::Latency { expected_ms } => format!("latency {expected_ms:.1} ms above requirements.maxLatencyMs"),
        Rejection::Jitter { expected_ms } => format!("jitter {expected_ms:.1} ms above requirements.maxJitterMs"),
        Rejection::Bandwidth { expected_mbps } => format!("bandwidth {expected_mbps:.0} Mbit/s below requirements.minBandwidthMbps"),
        other => format!("{other:?}"),
    }
}

/// Dynamic instantiation (OPG.02): when the best zone for the device has no instance of the
/// app, ask for one there. Idempotent: the instance's name is derived from app and zone, so
/// devices registering together ask once. `None` when the best zone already has one.
pub(crate) async fn start_near(
    s: &AppState,
    app: &op_uni::index::AppEntry,
    at: &DeviceAt,
    paths: &std::collections::HashMap<Uid, PathInfo>,
) -> Result<Option<StartingInstance>, ApiError> {
    let zone = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        let ranked = op_uni::select::rank_zones(&ix, app, at, &op_uni::select::weights_at(&ix, app, at), &|z| paths.get(&z.uid).copied());
        // "Near" is a zone whose service area holds the device, when the operator has drawn any.
        let local = ix.zones_serving(at.cell.as_deref(), at.point);
        let best = ranked.iter().find(|(z, _)| local.contains(&z.uid)).or(ranked.first());
        let Some((z, _)) = best else { return Ok(None) };
        if ix.instances_in(app.uid, z.uid).any(|i| i.ready) {
            return Ok(None);
        }
        // One is already on its way (another device asked): report it.
        if let Some(i) = ix.instances_in(app.uid, z.uid).next() {
            return Ok(Some(StartingInstance { app_instance_id: i.uid, edge_cloud_zone_id: z.uid, edge_cloud_zone_name: z.name.to_string() }));
        }
        z.uid
    };
    let full = s.repo.get::<AppSpec, ()>(Kind::App, app.uid).await?.ok_or_else(|| ApiError::NotFound("the app is no longer onboarded".into()))?;
    let zone = s.repo.get::<ZoneSpec, ()>(Kind::Zone, zone).await?.ok_or_else(|| ApiError::NotFound("the zone is gone".into()))?;
    let org = full.metadata.organization.clone();
    let name = crate::camara::platform_instance_name(&app.name, "dyn", zone.metadata.uid)?;
    let inst = match crate::camara::create_instance(s, &full, &zone, name.clone(), "uni").await {
        Ok(i) => i.metadata.uid,
        // Another device asked first (or the zone refuses for a port clash: then that error).
        Err(ApiError::AlreadyExists(m)) => {
            let found = s.repo.get_by_name::<serde_json::Value, serde_json::Value>(Kind::AppInstance, org.as_ref(), &name).await?;
            found.map(|i| i.metadata.uid).ok_or(ApiError::AlreadyExists(m))?
        }
        Err(e) => return Err(e),
    };
    tracing::info!(app = %app.uid, zone = %zone.metadata.name, instance = %inst, "dynamic instance requested for a device");
    Ok(Some(StartingInstance { app_instance_id: inst, edge_cloud_zone_id: zone.metadata.uid, edge_cloud_zone_name: zone.metadata.name.to_string() }))
}

/// The session a request's bearer token proves (checked by the issuer's MAC: no signature
/// verification, no store, no copy of the headers).
pub struct Session(pub SessionClaims);

impl Session {
    /// The claims, when the token is for session `id`.
    fn for_session(self, id: &str) -> Result<SessionClaims, ApiError> {
        if self.0.sub != id {
            return Err(ApiError::Forbidden("this token is for another session".into()));
        }
        Ok(self.0)
    }
}

impl axum::extract::FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::Unauthenticated("present the session token as a bearer token".into()))?;
        s.uni.signer.verify_own(token.trim()).map(Session).map_err(|e| ApiError::Unauthenticated(format!("{e}; register again")))
    }
}

/// The offer for a ranked choice (None when the instance has no endpoint yet).
fn offer(ix: &op_uni::index::EdgeIndex, c: &op_uni::select::Choice<'_>) -> Option<EdgeOffer> {
    c.instance.endpoint.as_ref().map(|e| EdgeOffer {
        app_instance_id: c.instance.uid,
        edge_cloud_zone_id: c.zone.uid,
        edge_cloud_zone_name: c.zone.name.to_string(),
        host: e.host.clone(),
        port: e.port,
        expected_qos: c.path,
        distance_km: c.distance_km,
        probe_url: ix.cloudlet_of(c.instance).and_then(|cl| cl.probe_url.clone()),
    })
}

/// The hot path: a registered device asks where its edge is now. Authenticated by its session
/// token alone (no network round trip, no store read), answered from the in-memory index.
#[utoipa::path(post, path = "/uni/v1/discover", tag = "UNI", request_body = DiscoverRequest,
    responses((status = 200, body = Discovery), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo),
        (status = 404, body = ErrorInfo), (status = 429, body = ErrorInfo)))]
pub async fn discover(
    State(s): State<AppState>,
    Session(claims): Session,
    Body(req): Body<DiscoverRequest>,
) -> Result<Json<Discovery>, ApiError> {
    s.uni.limiter.check(&claims.sub).map_err(|_| ApiError::TooManyRequests("this session asks too often; wait and retry".into()))?;
    let max_alt = req.max_alternatives.unwrap_or(2);
    if max_alt > 10 {
        return Err(ApiError::invalid("maxAlternatives", "must be at most 10"));
    }
    let point = match (req.location.latitude, req.location.longitude) {
        (Some(latitude), Some(longitude)) => {
            let p = GeoPoint { latitude, longitude };
            op_types::Validate::validate(&p).map_err(|e| e.under("location"))?;
            Some(p)
        }
        (None, None) => None,
        _ => return Err(ApiError::invalid("location", "give both latitude and longitude")),
    };
    let at = DeviceAt { cell: req.location.cell_id, point };
    if at.cell.is_none() && at.point.is_none() {
        return Err(ApiError::invalid("location", "give a cellId or a position"));
    }
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    in_coverage(&ix, &at)?;
    let app = ix.app(claims.app).ok_or_else(|| ApiError::NotFound("the session's app is no longer onboarded".into()))?;
    let offers: Vec<EdgeOffer> = if app.requirements.instantiation == InstantiationType::Serverless {
        crate::serverless::offers(&s, &ix, app, &at, &op_uni::select::network_path(&ix, &at), max_alt + 1)
    } else {
        let best = op_uni::select::best_near(&ix, app, &at, &op_uni::select::weights_at(&ix, app, &at), max_alt + 1);
        best.iter().filter_map(|c| offer(&ix, c)).collect()
    };
    let mut offers = offers.into_iter();
    let endpoint = match (offers.next(), &app.requirements.on_unmet, &app.requirements.fallback_endpoint) {
        (Some(o), _, _) => o,
        (None, UnmetPolicy::FallbackToCloud, Some(url)) => cloud_offer(url)?,
        (None, _, _) => return Err(ApiError::NotFound("no instance of the app can serve this location".into())),
    };
    Ok(Json(Discovery { endpoint, alternatives: offers.take(max_alt).collect(), revalidate_after_seconds: s.uni.session_ttl }))
}

/// The device confirms which offered instance it uses; the platform records it.
#[utoipa::path(post, path = "/uni/v1/sessions/{id}/confirm", tag = "UNI", params(("id" = String, Path)), request_body = Confirm,
    responses((status = 200, body = Confirmed), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn confirm(
    State(s): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    session: Session,
    Body(req): Body<Confirm>,
) -> Result<Json<Confirmed>, ApiError> {
    let mut claims = session.for_session(&id)?;
    if let Some(ms) = req.measured_latency_ms {
        if !ms.is_finite() || !(0.0..=60_000.0).contains(&ms) {
            return Err(ApiError::invalid("measuredLatencyMs", "must be a latency in milliseconds, 0 to 60000"));
        }
    }
    {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        let ok = ix.instances_of(claims.app).any(|i| i.uid == req.app_instance_id && i.ready);
        if !ok {
            return Err(ApiError::invalid("appInstanceId", "not a ready instance of this session's app"));
        }
        claims.zone = ix.instances_of(claims.app).find(|i| i.uid == req.app_instance_id).map_or(claims.zone, |i| i.zone);
    }
    let Some(expected) = s.uni.sessions.confirm(&id, req.app_instance_id, claims.zone) else {
        return Err(ApiError::NotFound("session not found (expired or the platform restarted); register again".into()));
    };
    if let Some(ms) = req.measured_latency_ms {
        // The device's probe, for the QoE view, next to what the network expected on its path.
        s.qoe.record(claims.app, claims.zone, ms, expected);
    }
    claims.inst = req.app_instance_id;
    let session_token = s.uni.signer.sign(&claims).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Confirmed { session_token }))
}

/// End a session: the device is done with the app (its user no longer counts toward the app's
/// capacity-based instances).
#[utoipa::path(delete, path = "/uni/v1/sessions/{id}", tag = "UNI", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn close(State(s): State<AppState>, axum::extract::Path(id): axum::extract::Path<String>, session: Session) -> Result<StatusCode, ApiError> {
    session.for_session(&id)?;
    if s.uni.sessions.close(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("session not found (expired or already closed)".into()))
    }
}

/// Server-sent events for a session: `edgeChanged`, `ipChanged`, `noEdge`.
#[utoipa::path(get, path = "/uni/v1/sessions/{id}/events", tag = "UNI", params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream of UniEvent JSON"), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn events(
    State(s): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    session: Session,
) -> Result<axum::response::sse::Sse<impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>, ApiError> {
    use futures::StreamExt;
    session.for_session(&id)?;
    let rx = s
        .uni
        .sessions
        .subscribe(&id)
        .ok_or_else(|| ApiError::NotFound("session not found (expired or the platform restarted); register again".into()))?;
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|ev| async move {
        let ev = ev.ok()?;
        let name = match &ev {
            op_uni::sessions::UniEvent::EdgeChanged { .. } => "edgeChanged",
            op_uni::sessions::UniEvent::IpChanged { .. } => "ipChanged",
            op_uni::sessions::UniEvent::NoEdge => "noEdge",
            op_uni::sessions::UniEvent::RelocationCancelled { .. } => "relocationCancelled",
        };
        let data = serde_json::to_string(&ev).ok()?;
        Some(Ok(axum::response::sse::Event::default().event(name).data(data)))
    });
    Ok(axum::response::sse::Sse::new(stream).keep_alive(axum::response::sse::KeepAlive::default()))
}

/// Subscribes once per device to its location and IP changes, so sessions follow it. A failure
/// is logged, not fatal: the device still gets its answer and revalidates on its timer.
async fn follow_device(uni: &UniState, device: &DeviceRef) {
    let (Some(url), Some(net)) = (&uni.callback_url, &uni.network) else { return };
    let key = device_key(device);
    if uni.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).values().any(|k| *k == key) {
        return;
    }
    let kinds = [op_network::NetworkEventKind::LocationChange, op_network::NetworkEventKind::IpChange];
    match net.subscribe(device, &kinds, url).await {
        Ok(id) => {
            uni.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).insert(id, key);
        }
        Err(e) => tracing::warn!(error = %e, "cannot subscribe to the device's network events"),
    }
}

/// Receives the network's notifications (3GPP NEF MonitoringNotification): a device moved or
/// changed address; its sessions are re-evaluated and told.
#[utoipa::path(post, path = "/uni/v1/network-events/{secret}", tag = "UNI", params(("secret" = String, Path)),
    request_body(content = String, description = "3GPP TS 29.122 MonitoringNotification", content_type = "application/json"),
    responses((status = 204), (status = 400, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn network_events(
    State(s): State<AppState>,
    axum::extract::Path(secret): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    if secret != s.uni.callback_secret {
        return Err(ApiError::NotFound("no such API path; see /openapi.json".into()));
    }
    let events = op_network::decode_monitoring_notification(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    for ev in events {
        let key = s.uni.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).get(&ev.subscription_id).cloned();
        let Some(key) = key else { continue };
        match ev.kind {
            op_network::NetworkEventKind::LocationChange => {
                let loc = match ev.location {
                    Some(l) if l.cell_id.is_some() => l,
                    _ => match s.uni.network()?.locate(&ev.device).await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot locate a device that moved");
                            continue;
                        }
                    },
                };
                crate::mobility::moved(&s, &key, at(&loc));
            }
            op_network::NetworkEventKind::IpChange => {
                if let Some(ip) = ev.ip {
                    crate::mobility::ip_changed(&s, &key, ip);
                }
            }
        }
    }
    crate::mobility::reevaluate(&s);
    Ok(StatusCode::NO_CONTENT)
}

/// The key edges verify session tokens with.
#[utoipa::path(get, path = "/uni/v1/keys", tag = "UNI", responses((status = 200, body = SessionKeys)))]
pub async fn keys(State(s): State<AppState>) -> Json<SessionKeys> {
    Json(SessionKeys { alg: "EdDSA".into(), public_key_pem: s.uni.signer.public_pem().to_string(), issuer: SESSION_ISSUER.into() })
}

/// Where the UNI is, for device SDKs that start from MCC/MNC.
#[utoipa::path(get, path = "/.well-known/op-uni", tag = "UNI", responses((status = 200, body = UniInfo)))]
pub async fn well_known(State(s): State<AppState>) -> Json<UniInfo> {
    Json(UniInfo {
        mcc: s.uni.mcc.clone(),
        mnc: s.uni.mnc.clone(),
        well_known_host: well_known_host(&s.uni.mcc, &s.uni.mnc),
        sessions: "/uni/v1/sessions".into(),
        keys: "/uni/v1/keys".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names() {
        assert_eq!(well_known_host("208", "1"), "uni.mnc001.mcc208.pub.3gppnetwork.org");
    }

    #[test]
    fn claims_that_contradict_the_network_are_refused() {
        let net = NetworkLocation {
            cell_id: Some("c1".into()),
            tracking_area: Some("ta1".into()),
            point: GeoPoint { latitude: 48.85, longitude: 2.35 },
            accuracy_m: 500.0,
        };
        let claim = |cell: Option<&str>, lat: Option<f64>| ClaimedLocation {
            cell_id: cell.map(str::to_string),
            tracking_area: None,
            latitude: lat,
            longitude: lat.map(|_| 2.35),
        };
        assert!(check_claim(&claim(Some("c1"), None), &net).is_ok());
        assert!(check_claim(&claim(Some("c2"), None), &net).is_err());
        assert!(check_claim(&claim(None, Some(48.86)), &net).is_ok());
        assert!(check_claim(&claim(None, Some(45.0)), &net).is_err());
    }
}
