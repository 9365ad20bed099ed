//! The global plane's side of regions: every call about a region's data (cloudlets, flavors,
//! instances, clusters, devices, their events and metrics) goes to that region's controller,
//! which keeps the data; the global plane passes requests and answers through and stores
//! nothing of them.
//!
//! Which region: `?region=` or the `X-OP-Region` header; else the zone a request body names
//! (`edgeCloudZoneId`, `spec.edgeCloudZoneId`, `spec.zone`) or a path names
//! (`/op/v1/zones/{zone}/...`). Without one, a list is asked of every region and the answers
//! are joined; a call on one object goes to each region in turn until one knows the object;
//! a create that names no zone is refused with a 400 naming `region`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use op_types::specs::{RegionSpec, ZoneSpec};
use op_types::{Kind, Name, Object, Uid};

use crate::error::ApiError;
use crate::state::AppState;

/// Paths whose data a region's controller keeps: the exact path is its collection, anything
/// below it one of its objects.
const REGIONAL: &[&str] = &[
    "/op/v1/cloudlets",
    "/op/v1/flavors",
    "/op/v1/platformservices",
    "/op/v1/appinstances",
    "/op/v1/serverless/pops",
    "/op/v1/mobility/reports",
    "/op/v1/relocations",
    "/op/v1/events",
    "/op/v1/clusters",
    "/op/v1/loadbalancers",
    "/op/v1/qoe",
    "/op/v1/alarms",
    "/op/v1/resources/instances",
    "/op/v1/resources/apps",
    "/op/v1/resources/tenants",
    "/op/v1/resources/cloudlets",
    "/edge-application-management/v0.1alpha1/appinstances",
    "/edge-application-management/v0.1alpha1/edge-cloud-zones",
    "/uni/v1/sessions",
    "/uni/v1/discover",
    "/uni/v1/keys",
    "/simple-edge-discovery/v2/retrieve-closest-edge-cloud-zone",
    "/optimal-edge-discovery/v0.1/retrieve-optimal-edge-cloud-zones",
    "/application-endpoint-discovery/v0.1/retrieve-optimal-app-endpoints",
    "/amsi/v1/app_mobility_services",
    "/amsi/v1/subscriptions",
    "/amsi/v1/queries/adjacent_app_instances",
];

/// What an app has in regions (placements, telemetry, serverless status): `/op/v1/apps/{id}/…`.
const APP_REGIONAL: &[&str] = &["placements", "telemetry", "serverless"];

/// Headers that belong to one hop and are not passed on.
const HOP: &[&str] = &["host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "content-length"];

/// The header that names the region a call is for, and that answers name the region in.
pub const REGION_HEADER: &str = "x-op-region";

/// How long a region's controller may take to start answering a call passed to it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The global plane's client to the regions' controllers.
#[derive(Clone)]
pub struct Forwarder {
    http: reqwest::Client,
}

impl Forwarder {
    /// A forwarder with its own connection pool.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self { http: reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()? })
    }
}

/// Where a path's data lives.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    /// Global data: served here.
    Here,
    /// A regional collection (list or create).
    Collection,
    /// One regional object (or an action on it).
    Item,
    /// Something about one zone, named in the path: its region's.
    Zone(String),
}

fn classify(path: &str) -> Scope {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if let ["", "op", "v1", "zones", zone, _, ..] = parts.as_slice() {
        return Scope::Zone((*zone).to_string());
    }
    if let ["", "op", "v1", "apps", _, what, ..] = parts.as_slice() {
        if APP_REGIONAL.contains(what) {
            return Scope::Collection;
        }
    }
    for p in REGIONAL {
        if path.trim_end_matches('/') == *p {
            return Scope::Collection;
        }
        if path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')) {
            return Scope::Item;
        }
    }
    Scope::Here
}

/// A region with a controller to send calls to.
struct Target {
    name: Name,
    url: String,
}

/// What came back from one region.
struct Answer {
    region: Name,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// The layer: passes regional calls to their region's controller (only on a process that is
/// the global plane alone); everything else goes on to the router.
pub async fn route(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(fwd) = s.regions.clone() else { return next.run(req).await };
    if req.method() == Method::DELETE {
        if let Some(app) = app_path(req.uri().path()).map(str::to_string) {
            if let Err(e) = app_unused(&s, &fwd, &app, req.headers().clone()).await {
                return e.into_response();
            }
            return next.run(req).await;
        }
    }
    let scope = classify(req.uri().path());
    if scope == Scope::Here {
        return next.run(req).await;
    }
    match pass(&s, &fwd, req, scope).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn pass(s: &AppState, fwd: &Forwarder, req: Request, scope: Scope) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, crate::json::MAX_BODY).await.map_err(|e| ApiError::invalid("body", format!("cannot read the request body: {e}")))?;
    let regions = targets(s).await?;
    let named = match named_region(&parts) {
        Some(r) => Some(r),
        None => match &scope {
            Scope::Zone(zone) => Some(zone_region(s, zone).await?),
            _ => match zone_in_body(&body) {
                Some(zone) => Some(zone_region(s, &zone).await?),
                None => None,
            },
        },
    };
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    if let Some(name) = named {
        let t = regions
            .iter()
            .find(|t| t.name.as_str() == name)
            .ok_or_else(|| ApiError::invalid("region", format!("region '{name}' does not exist or has no controller (spec.controllerUrl); see GET /op/v1/regions")))?;
        if is_upgrade(&parts.headers) {
            return Err(terminal_elsewhere(t, &path));
        }
        return Ok(stream(t, send(fwd, t, &parts.method, &path, &parts.headers, body).await?));
    }
    if regions.is_empty() {
        return Err(ApiError::Misdirected("no region has a controller yet (spec.controllerUrl of the regions): regional data is kept by the regions' controllers".into()));
    }
    match scope {
        Scope::Collection if parts.method == Method::GET => join(fwd, &regions, &parts, &path).await,
        Scope::Collection => Err(ApiError::invalid(
            "region",
            "name the region this is for (?region= or the X-OP-Region header), or a zone (edgeCloudZoneId, spec.zone)",
        )),
        Scope::Item => {
            let mut last = None;
            for t in &regions {
                if is_upgrade(&parts.headers) {
                    let probe = send(fwd, t, &Method::GET, parts.uri.path().trim_end_matches("/exec"), &parts.headers, Bytes::new()).await?;
                    if probe.status() != reqwest::StatusCode::NOT_FOUND {
                        return Err(terminal_elsewhere(t, &path));
                    }
                    continue;
                }
                let r = send(fwd, t, &parts.method, &path, &parts.headers, body.clone()).await?;
                if r.status() != reqwest::StatusCode::NOT_FOUND {
                    return Ok(stream(t, r));
                }
                last = Some((t, r));
            }
            match last {
                Some((t, r)) => Ok(stream(t, r)),
                None => Err(ApiError::NotFound("not found in any region".into())),
            }
        }
        // A zone in the path always names its region (above); global paths never come here.
        Scope::Here | Scope::Zone(_) => Err(ApiError::Internal("a path without a region reached the regions".into())),
    }
}

/// The regions that have a controller, in name order.
async fn targets(s: &AppState) -> Result<Vec<Target>, ApiError> {
    let (regions, _) = s.repo.list::<RegionSpec, ()>(Kind::Region).await?;
    let mut out: Vec<Target> = regions
        .into_iter()
        .filter_map(|r| r.spec.controller_url.map(|u| Target { name: r.metadata.name, url: u.trim_end_matches('/').to_string() }))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn named_region(parts: &axum::http::request::Parts) -> Option<String> {
    let query = parts.uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v.into_owned())
        .or_else(|| parts.headers.get(REGION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string))
}

/// The zone a create names: CAMARA's `edgeCloudZoneId` (a uid), a cluster's
/// `spec.edgeCloudZoneId`, a cloudlet's `spec.zone` (a name).
fn zone_in_body(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let spec = v.get("spec");
    let found = [v.get("edgeCloudZoneId"), spec.and_then(|s| s.get("edgeCloudZoneId")), spec.and_then(|s| s.get("zone"))]
        .into_iter()
        .flatten()
        .find_map(|z| z.as_str().map(str::to_string));
    found
}

/// The region of zone `zone` (a uid or a name).
async fn zone_region(s: &AppState, zone: &str) -> Result<String, ApiError> {
    let found: Option<Object<ZoneSpec, ()>> = match zone.parse::<Uid>() {
        Ok(uid) => s.repo.get(Kind::Zone, uid).await?,
        Err(_) => match Name::new(zone) {
            Ok(n) => s.repo.get_by_name(Kind::Zone, None, &n).await?,
            Err(_) => None,
        },
    };
    found.map(|z| z.spec.region.to_string()).ok_or_else(|| ApiError::NotFound(format!("zone '{zone}' does not exist")))
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.get(axum::http::header::UPGRADE).is_some()
}

/// Terminal sessions are not passed through: the answer says where to open them.
fn terminal_elsewhere(t: &Target, path: &str) -> ApiError {
    ApiError::Misdirected(format!("the instance runs in region {}: open the terminal at its controller, {}{path}", t.name, t.url))
}

async fn send(fwd: &Forwarder, t: &Target, method: &Method, path: &str, headers: &HeaderMap, body: Bytes) -> Result<reqwest::Response, ApiError> {
    let mut out = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        if !HOP.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| ApiError::Internal(e.to_string()))?;
    fwd.http
        .request(m, format!("{}{path}", t.url))
        .headers(out)
        .body(body)
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| ApiError::Unavailable(format!("region {}'s controller at {} does not answer: {e}", t.name, t.url)))
}

/// The region's answer, passed through as it comes (logs that follow keep flowing).
fn stream(t: &Target, r: reqwest::Response) -> Response {
    let mut out = Response::builder().status(r.status().as_u16());
    if let Some(h) = out.headers_mut() {
        copy_headers(r.headers(), h);
        if let Ok(v) = HeaderValue::from_str(t.name.as_str()) {
            h.insert(HeaderName::from_static(REGION_HEADER), v);
        }
    }
    out.body(Body::from_stream(r.bytes_stream())).unwrap_or_else(|e| ApiError::Internal(e.to_string()).into_response())
}

fn copy_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Asks every region and joins their lists; an answer that is not a list is taken from the
/// first region that answers with success. Regions that do not answer are named in
/// `X-OP-Unreachable-Regions`; when none answers, the call fails naming them.
async fn join(fwd: &Forwarder, regions: &[Target], parts: &axum::http::request::Parts, path: &str) -> Result<Response, ApiError> {
    let calls = regions.iter().map(|t| async move {
        let r = send(fwd, t, &parts.method, path, &parts.headers, Bytes::new()).await?;
        let (status, headers) = (StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY), r.headers().clone());
        let body = r.bytes().await.map_err(|e| ApiError::Unavailable(format!("region {}'s answer broke off: {e}", t.name)))?.to_vec();
        let mut h = HeaderMap::new();
        copy_headers(&headers, &mut h);
        Ok::<_, ApiError>(Answer { region: t.name.clone(), status, headers: h, body })
    });
    let results = futures::future::join_all(calls).await;
    let mut answers = Vec::new();
    let mut unreachable = Vec::new();
    for (t, r) in regions.iter().zip(results) {
        match r {
            Ok(a) => answers.push(a),
            Err(e) => {
                tracing::warn!(region = %t.name, error = %e, "a region did not answer");
                unreachable.push(t.name.to_string());
            }
        }
    }
    if answers.is_empty() {
        return Err(ApiError::Unavailable(format!("no region's controller answers ({})", unreachable.join(", "))));
    }
    let ok: Vec<&Answer> = answers.iter().filter(|a| a.status.is_success()).collect();
    let lists: Option<Vec<Vec<serde_json::Value>>> =
        if ok.is_empty() { None } else { ok.iter().map(|a| serde_json::from_slice::<Vec<serde_json::Value>>(&a.body).ok()).collect() };
    let mut resp = match lists {
        Some(lists) => {
            let joined: Vec<serde_json::Value> = lists.into_iter().flatten().collect();
            (StatusCode::OK, axum::Json(joined)).into_response()
        }
        None => {
            let pick = ok.first().copied().or_else(|| answers.iter().find(|a| a.status != StatusCode::NOT_FOUND)).unwrap_or(&answers[0]);
            let mut r = Response::builder().status(pick.status);
            if let Some(h) = r.headers_mut() {
                h.extend(pick.headers.clone());
                if let Ok(v) = HeaderValue::from_str(pick.region.as_str()) {
                    h.insert(HeaderName::from_static(REGION_HEADER), v);
                }
            }
            r.body(Body::from(pick.body.clone())).unwrap_or_else(|e| ApiError::Internal(e.to_string()).into_response())
        }
    };
    if !unreachable.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&unreachable.join(",")) {
            resp.headers_mut().insert(HeaderName::from_static("x-op-unreachable-regions"), v);
        }
    }
    Ok(resp)
}

/// The app id of a CAMARA `/apps/{appId}` path.
fn app_path(path: &str) -> Option<&str> {
    path.strip_prefix(crate::camara::BASE).and_then(|r| r.strip_prefix("/apps/")).filter(|id| !id.is_empty() && !id.contains('/'))
}

/// An app is deleted only once no region runs an instance of it: the global plane cannot see
/// the instances, so it asks every region first (with the caller's own credentials).
async fn app_unused(s: &AppState, fwd: &Forwarder, app: &str, headers: HeaderMap) -> Result<(), ApiError> {
    let path = format!("{}/appinstances?appId={}", crate::camara::BASE, percent_encoding::utf8_percent_encode(app, percent_encoding::NON_ALPHANUMERIC));
    for t in targets(s).await? {
        let r = send(fwd, &t, &Method::GET, &path, &headers, Bytes::new()).await?;
        if !r.status().is_success() {
            continue;
        }
        let list: Vec<serde_json::Value> = r.json().await.unwrap_or_default();
        if !list.is_empty() {
            return Err(ApiError::Aborted(format!("the app still has {} instance(s) in region {}; delete them first", list.len(), t.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sorted_into_global_and_regional() {
        assert_eq!(classify("/op/v1/apps"), Scope::Here);
        assert_eq!(classify("/op/v1/organizations/acme"), Scope::Here);
        assert_eq!(classify("/op/v1/alarmreceivers"), Scope::Here, "a longer name is not under /op/v1/alarms");
        assert_eq!(classify("/op/v1/alarms"), Scope::Collection);
        assert_eq!(classify("/op/v1/alarms/abc"), Scope::Item);
        assert_eq!(classify("/edge-application-management/v0.1alpha1/appinstances"), Scope::Collection);
        assert_eq!(classify("/edge-application-management/v0.1alpha1/appinstances/x"), Scope::Item);
        assert_eq!(classify("/edge-application-management/v0.1alpha1/apps/x"), Scope::Here);
        assert_eq!(classify("/op/v1/zones/eu-1/flavors"), Scope::Zone("eu-1".into()));
        assert_eq!(classify("/op/v1/zones/eu-1"), Scope::Here);
        assert_eq!(classify("/op/v1/apps/x/placements"), Scope::Collection);
        assert_eq!(classify("/op/v1/appinstances/x/logs"), Scope::Item);
        assert_eq!(classify("/uni/v1/sessions/x/confirm"), Scope::Item);
        assert_eq!(classify("/amsi/v1/subscriptions"), Scope::Collection);
        assert_eq!(classify("/amsi/v1/subscriptions/s1"), Scope::Item);
    }

    #[test]
    fn the_zone_of_a_create_is_found_in_its_body() {
        assert_eq!(zone_in_body(br#"{"appId":"a","edgeCloudZoneId":"z1"}"#).as_deref(), Some("z1"));
        assert_eq!(zone_in_body(br#"{"name":"c","spec":{"zone":"eu-1"}}"#).as_deref(), Some("eu-1"));
        assert_eq!(zone_in_body(br#"{"name":"c","spec":{"edgeCloudZoneId":"z2"}}"#).as_deref(), Some("z2"));
        assert_eq!(zone_in_body(br#"{"name":"f","spec":{"vcpus":1}}"#), None);
        assert_eq!(zone_in_body(b"not json"), None);
    }

    #[test]
    fn only_an_app_itself_is_an_app_path() {
        let b = crate::camara::BASE;
        assert_eq!(app_path(&format!("{b}/apps/abc")), Some("abc"));
        assert_eq!(app_path(&format!("{b}/apps")), None);
        assert_eq!(app_path(&format!("{b}/apps/abc/x")), None);
        assert_eq!(app_path("/op/v1/apps/abc"), None);
    }
}
