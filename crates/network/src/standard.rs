//! [`StandardAdapter`]: the [`NetworkAdapter`] that speaks the standard exposure APIs over HTTP —
//! CAMARA Device Location (retrieval v0.5, verification v3), CAMARA Traffic Influence v0.10, 3GPP
//! NEF MonitoringEvent (TS 29.122: location and PDN connection events, one-time location and
//! roaming status reports) and NWDAF-like analytics queries (`DN_PERFORMANCE` for path
//! performance, `NETWORK_PERFORMANCE` / `NUM_OF_UE` for cell load) — to any gateway at a
//! configurable base URL: the project's emulator `op-netemu` in tests and labs, an operator's
//! exposure gateway in production.
//!
//! Analytics: one request covers every cell (and DNAI) asked for; the answer's entries are matched
//! to the cells they name (`spatialValidCon.ncgis` / `networkArea.ncgis`), entries about cells or
//! DNAIs not asked for are ignored, and `204 No Content` means nothing is known. A `404` there is
//! `Rejected` (the analytics are not offered), not `UnknownDevice`.
//!
//! Authentication is OAuth2 client credentials: the token is fetched on first use, cached until
//! shortly before it expires, and fetched again once if an API answers 401 (revoked or rotated
//! keys), after which a second 401 is [`NetworkError::Unauthorized`].
//!
//! Error mapping: 404 → `UnknownDevice`; 401/403 → `Unauthorized`; 5xx, connection failures and
//! malformed answers → `Unavailable` (retryable); other 4xx → `Rejected` with the CAMARA
//! `code: message` (or the ProblemDetails `detail`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use op_types::specs::GeoPoint;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::callback::{LOCATION_REPORTING, PDN_CONNECTIVITY_STATUS, ROAMING_STATUS};
use crate::wire::{
    last_segment, parse_bit_rate, CamaraLocation, ErrorBody, MonitoringEventReport, RoamingReport,
    VerifyLocationResponse,
};
use crate::{
    CellLoad, DeviceRef, NetworkAdapter, NetworkError, NetworkEventKind, NetworkLocation,
    PathEntry, PathPerformance, RoamingStatus, TrafficInfluence, Verification,
};

/// Base path of CAMARA Device Location retrieval (`location-retrieval.yaml` servers entry).
pub const LOCATION_RETRIEVAL_PATH: &str = "/location-retrieval/v0.5";
/// Base path of CAMARA Device Location verification.
pub const LOCATION_VERIFICATION_PATH: &str = "/location-verification/v3";
/// Base path of CAMARA Traffic Influence.
pub const TRAFFIC_INFLUENCE_PATH: &str = "/traffic-influence/v0.10";
/// Base path of 3GPP NEF MonitoringEvent.
pub const MONITORING_EVENT_PATH: &str = "/3gpp-monitoring-event/v1";
/// Base path of the NWDAF-like analytics (simplified `Nnwdaf_AnalyticsInfo`).
pub const ANALYTICS_INFO_PATH: &str = "/nnwdaf-analyticsinfo/v1";

/// Where the exposure gateway is and how to authenticate to it.
#[derive(Clone)]
pub struct AdapterConfig {
    /// `apiRoot` of the gateway, e.g. `http://127.0.0.1:9091`; the API base paths are appended.
    pub base_url: String,
    /// OAuth2 token endpoint (client credentials grant).
    pub token_url: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// OAuth2 client secret (never logged: `Debug` redacts it).
    pub client_secret: String,
    /// OAuth2 scope to request, if the gateway wants one.
    pub scope: Option<String>,
    /// `scsAsId` path segment of the NEF APIs (our identity as SCS/AS / AF).
    pub scs_as_id: String,
    /// `apiConsumerId` of CAMARA Traffic Influence resources.
    pub api_consumer_id: String,
    /// `notificationDestination` of one-time location requests: TS 29.122 requires the attribute
    /// although the report comes back inline.
    pub one_time_notification_destination: String,
    /// Lifetime requested for event subscriptions (`monitorExpireTime`).
    pub subscription_lifetime: Duration,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}

impl AdapterConfig {
    /// Defaults for a gateway at `base_url`: token endpoint `{base_url}/oauth2/token`, `scsAsId`
    /// and `apiConsumerId` = `client_id`, 24 h subscriptions, 10 s requests.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        AdapterConfig {
            token_url: format!("{base_url}/oauth2/token"),
            one_time_notification_destination: format!("{base_url}/op-network/one-time-report-inline"),
            base_url,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            scope: None,
            scs_as_id: client_id.to_string(),
            api_consumer_id: client_id.to_string(),
            subscription_lifetime: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for AdapterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterConfig")
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .field("scs_as_id", &self.scs_as_id)
            .field("api_consumer_id", &self.api_consumer_id)
            .field("subscription_lifetime", &self.subscription_lifetime)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

struct CachedToken {
    value: String,
    refresh_at: Option<Instant>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A reqwest client of the standard exposure APIs; see the module documentation.
pub struct StandardAdapter {
    cfg: AdapterConfig,
    http: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
}

impl fmt::Debug for StandardAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardAdapter").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn error_of(status: StatusCode, body: &[u8], what: &str) -> NetworkError {
    let msg = format!("{what}: HTTP {}: {}", status.as_u16(), ErrorBody::message(body));
    match status.as_u16() {
        404 => NetworkError::UnknownDevice(msg),
        401 | 403 => NetworkError::Unauthorized(msg),
        s if s >= 500 => NetworkError::Unavailable(msg),
        _ => NetworkError::Rejected(msg),
    }
}

fn malformed(what: &str, e: impl fmt::Display) -> NetworkError {
    NetworkError::Unavailable(format!("{what}: malformed answer: {e}"))
}

fn no_identifier() -> NetworkError {
    NetworkError::Rejected("device: needs a phone number, a network access identifier or an IP address".into())
}

/// CAMARA `Device` with the one identifier gateways accept most widely (phone, then IP, then NAI).
fn camara_device(d: &DeviceRef) -> Result<Value, NetworkError> {
    if let Some(p) = &d.phone_number {
        return Ok(json!({"phoneNumber": p}));
    }
    match d.ip {
        // Without NAT knowledge the observed and allocated address are taken to be the same.
        Some(std::net::IpAddr::V4(ip)) => {
            return Ok(json!({"ipv4Address": {"publicAddress": ip.to_string(), "privateAddress": ip.to_string()}}))
        }
        Some(std::net::IpAddr::V6(ip)) => return Ok(json!({"ipv6Address": ip.to_string()})),
        None => {}
    }
    if let Some(n) = &d.network_access_identifier {
        return Ok(json!({"networkAccessIdentifier": n}));
    }
    Err(no_identifier())
}

/// TS 29.122 UE identification: `msisdn` (no `+`), else `externalId`, else the UE address.
fn nef_device(d: &DeviceRef, body: &mut Value) -> Result<(), NetworkError> {
    if let Some(p) = &d.phone_number {
        body["msisdn"] = json!(p.trim_start_matches('+'));
    } else if let Some(n) = &d.network_access_identifier {
        body["externalId"] = json!(n);
    } else {
        match d.ip {
            Some(std::net::IpAddr::V4(ip)) => body["ipv4Addr"] = json!(ip.to_string()),
            Some(std::net::IpAddr::V6(ip)) => body["ipv6Addr"] = json!(ip.to_string()),
            None => return Err(no_identifier()),
        }
    }
    Ok(())
}

/// NWDAF analytics event of path performance between cells and DNAIs.
const DN_PERFORMANCE: &str = "DN_PERFORMANCE";
/// NWDAF analytics event of network performance; the adapter asks for [`NUM_OF_UE`] only.
const NETWORK_PERFORMANCE: &str = "NETWORK_PERFORMANCE";
/// TS 29.520 `NetworkPerfType`: number of UEs in the area.
const NUM_OF_UE: &str = "NUM_OF_UE";

/// The distinct strings of `items`, in their first order.
fn unique(items: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    items
        .iter()
        .map(String::as_str)
        .filter(|s| seen.insert(*s))
        .collect()
}

/// `networkArea.ncgis` of an analytics `EventFilter` for `cells`.
fn ncgis(cells: &[&str]) -> Vec<Value> {
    cells.iter().map(|c| json!({"nrCellId": c})).collect()
}

/// A TS 29.520 `PerfData` as path performance.
fn path_performance_of(perf: &Value, what: &str) -> Result<PathPerformance, NetworkError> {
    let latency_ms = perf
        .get("avePacketDelay")
        .and_then(Value::as_f64)
        .ok_or_else(|| malformed(what, "perfData.avePacketDelay missing"))?;
    let bandwidth_mbps = ["avgTrafficRate", "maxTrafficRate"]
        .iter()
        .find_map(|k| {
            perf.get(*k)
                .and_then(Value::as_str)
                .and_then(parse_bit_rate)
        })
        .ok_or_else(|| malformed(what, "perfData.avgTrafficRate missing or not a BitRate"))?;
    // Jitter is the emulator's extension of PerfData; gateways without it report none.
    let jitter_ms = perf
        .get("packetDelayVariation")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    Ok(PathPerformance {
        latency_ms,
        jitter_ms,
        bandwidth_mbps,
    })
}

/// The entries of a `DN_PERFORMANCE` `AnalyticsData` (`dnPerfInfos[].dnPerf[]`) for pairs of
/// `cells` x `dnais` (both without repeats), in that order (cells outer), each pair once (the
/// first item wins). An item names its cells in `spatialValidCon.ncgis`; an item naming none is
/// taken to be about the only cell asked for, and skipped when several were. Items without
/// `perfData` are skipped; malformed `perfData` is an error.
fn dn_performance_entries(
    v: &Value,
    cells: &[&str],
    dnais: &[&str],
    what: &str,
) -> Result<Vec<PathEntry>, NetworkError> {
    let asked_cells: HashSet<&str> = cells.iter().copied().collect();
    let asked_dnais: HashSet<&str> = dnais.iter().copied().collect();
    let mut found: HashMap<(&str, &str), PathPerformance> = HashMap::new();
    let items = v
        .get("dnPerfInfos")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|info| info.get("dnPerf").and_then(Value::as_array))
        .flatten();
    for item in items {
        let Some(dnai) = item
            .get("dnai")
            .and_then(Value::as_str)
            .and_then(|d| asked_dnais.get(d).copied())
        else {
            continue;
        };
        let Some(perf) = item.get("perfData") else {
            continue;
        };
        let named: Vec<&str> = item
            .pointer("/spatialValidCon/ncgis")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|n| n.get("nrCellId").and_then(Value::as_str))
            .collect();
        let item_cells: Vec<&str> = match (named.is_empty(), cells) {
            (true, [only]) => vec![*only],
            (true, _) => continue,
            (false, _) => named
                .iter()
                .filter_map(|n| asked_cells.get(n).copied())
                .collect(),
        };
        if item_cells.is_empty() {
            continue;
        }
        let performance = path_performance_of(perf, what)?;
        for cell in item_cells {
            found.entry((cell, dnai)).or_insert(performance);
        }
    }
    let mut out = Vec::with_capacity(found.len());
    for cell in cells {
        for dnai in dnais {
            if let Some(performance) = found.get(&(*cell, *dnai)) {
                out.push(PathEntry {
                    cell: cell.to_string(),
                    dnai: dnai.to_string(),
                    performance: *performance,
                });
            }
        }
    }
    Ok(out)
}

/// The `NUM_OF_UE` loads of a `NETWORK_PERFORMANCE` `AnalyticsData` (`nwPerfs[]`) for `cells`
/// (without repeats), in that order, each cell once (the first entry wins). Only entries whose
/// `networkArea.ncgis` is exactly one asked-for cell count: an entry over several cells is an
/// area's aggregate, not a cell's load. `absoluteNum` and `relativeRatio` are both needed.
fn cell_loads_of(v: &Value, cells: &[&str], what: &str) -> Result<Vec<CellLoad>, NetworkError> {
    let asked: HashSet<&str> = cells.iter().copied().collect();
    let mut found: HashMap<&str, (u64, f64)> = HashMap::new();
    for info in v
        .get("nwPerfs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if info.get("nwPerfType").and_then(Value::as_str) != Some(NUM_OF_UE) {
            continue;
        }
        let area = info
            .pointer("/networkArea/ncgis")
            .and_then(Value::as_array)
            .map(Vec::as_slice);
        let [ncgi] = area.unwrap_or_default() else {
            continue;
        };
        let Some(cell) = ncgi
            .get("nrCellId")
            .and_then(Value::as_str)
            .and_then(|c| asked.get(c).copied())
        else {
            continue;
        };
        let ues = info
            .get("absoluteNum")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                malformed(
                    what,
                    format!("absoluteNum of cell {cell} missing or not a count"),
                )
            })?;
        let ratio = info
            .get("relativeRatio")
            .and_then(Value::as_f64)
            .ok_or_else(|| {
                malformed(
                    what,
                    format!("relativeRatio of cell {cell} missing or not a number"),
                )
            })?;
        found
            .entry(cell)
            .or_insert((ues, (ratio / 100.0).clamp(0.0, 1.0)));
    }
    Ok(cells
        .iter()
        .filter_map(|c| {
            found.get(c).map(|&(ues, ratio)| CellLoad {
                cell: c.to_string(),
                ues,
                ratio,
            })
        })
        .collect())
}

/// The roaming status a `ROAMING_STATUS` `MonitoringEventReport` carries.
fn roaming_status_of(report: Value, what: &str) -> Result<RoamingStatus, NetworkError> {
    let r: RoamingReport = serde_json::from_value(report).map_err(|e| malformed(what, e))?;
    let serving_plmn = match r.plmn_id {
        Some(p) => Some(p.joined().ok_or_else(|| {
            malformed(what, format!("plmnId {{mcc: {}, mnc: {}}}", p.mcc, p.mnc))
        })?),
        None => None,
    };
    Ok(RoamingStatus {
        roaming: r.roaming_status.unwrap_or(false),
        serving_plmn,
    })
}

/// An RFC 3339 timestamp `d` from now.
fn after(d: Duration) -> String {
    let d = chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(1));
    (chrono::Utc::now() + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl StandardAdapter {
    /// An adapter for the gateway `config` describes; no request is made until first use.
    pub fn new(config: AdapterConfig) -> Result<Self, NetworkError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| NetworkError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(StandardAdapter { cfg: config, http, token: Mutex::new(None) })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AdapterConfig {
        &self.cfg
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url)
    }

    async fn fetch_token(&self) -> Result<CachedToken, NetworkError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.cfg.scope {
            form.push(("scope", scope.as_str()));
        }
        let resp = self
            .http
            .post(&self.cfg.token_url)
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| NetworkError::Unavailable(format!("token endpoint {}: {}", self.cfg.token_url, op_types::error_chain(&e))))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| NetworkError::Unavailable(format!("token endpoint {}: {}", self.cfg.token_url, op_types::error_chain(&e))))?;
        if !status.is_success() {
            let msg = format!("token endpoint: HTTP {}: {}", status.as_u16(), ErrorBody::message(&body));
            let oauth_error = serde_json::from_slice::<ErrorBody>(&body).ok().and_then(|e| e.error);
            return Err(match (status.as_u16(), oauth_error.as_deref()) {
                (401 | 403, _) => NetworkError::Unauthorized(msg),
                (_, Some("invalid_client" | "unauthorized_client" | "invalid_grant" | "invalid_scope")) => {
                    NetworkError::Unauthorized(msg)
                }
                (s, _) if s >= 500 => NetworkError::Unavailable(msg),
                _ => NetworkError::Rejected(msg),
            });
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| malformed("token endpoint", e))?;
        // Refresh a fifth of the lifetime early, at most a minute: never use a token at its edge.
        let refresh_at = t.expires_in.map(|s| {
            let margin = (s / 5).min(60);
            Instant::now() + Duration::from_secs(s.saturating_sub(margin))
        });
        Ok(CachedToken { value: t.access_token, refresh_at })
    }

    /// The cached token, or a new one when there is none or it is about to expire.
    async fn token(&self) -> Result<String, NetworkError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            if t.refresh_at.is_none_or(|at| Instant::now() < at) {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Forgets `rejected` if it is still the cached token (a concurrent call may have replaced it).
    async fn invalidate(&self, rejected: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == rejected) {
            *cached = None;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        token: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>, Option<String>), NetworkError> {
        let mut rb = self.http.request(method.clone(), url).bearer_auth(token);
        if !query.is_empty() {
            rb = rb.query(query);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| NetworkError::Unavailable(format!("{method} {url}: {}", op_types::error_chain(&e))))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await.map_err(|e| NetworkError::Unavailable(format!("{method} {url}: {}", op_types::error_chain(&e))))?;
        Ok((status, bytes.to_vec(), location))
    }

    /// One authenticated call; a 401 invalidates the token and the call is made once more.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>, Option<String>), NetworkError> {
        let url = self.url(path);
        let token = self.token().await?;
        let first = self.send_once(&method, &url, &token, query, body).await?;
        if first.0 != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        tracing::debug!(%url, "401: fetching a new token and retrying once");
        self.invalidate(&token).await;
        let token = self.token().await?;
        self.send_once(&method, &url, &token, query, body).await
    }

    /// A TS 29.122 one-time request (`maximumNumberOfReports: 1`) of `monitoring_type` about
    /// `device`, with the type's own attributes in `fields`: the report the NEF answers at once.
    async fn nef_one_time(
        &self,
        what: &str,
        device: &DeviceRef,
        monitoring_type: &str,
        fields: Value,
    ) -> Result<Value, NetworkError> {
        let mut body = json!({
            "monitoringType": monitoring_type,
            "maximumNumberOfReports": 1,
            "notificationDestination": self.cfg.one_time_notification_destination,
        });
        if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), fields) {
            b.extend(extra);
        }
        nef_device(device, &mut body)?;
        let path = format!(
            "{MONITORING_EVENT_PATH}/{}/subscriptions",
            seg(&self.cfg.scs_as_id)
        );
        let (status, bytes, _) = self.call(Method::POST, &path, &[], Some(&body)).await?;
        match status.as_u16() {
            // TS 29.122: 200 with the immediate report (one, or a MonitoringEventReports set).
            200 => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(what, e))?;
                match v.get("monitoringEventReports").and_then(Value::as_array) {
                    Some(list) => list
                        .iter()
                        .find(|r| {
                            r.get("monitoringType").and_then(Value::as_str) == Some(monitoring_type)
                        })
                        .cloned()
                        .ok_or_else(|| malformed(what, format!("no {monitoring_type} report"))),
                    None => Ok(v),
                }
            }
            // Older NEFs create the subscription and put the report in it.
            201 => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(what, e))?;
                v.get("monitoringEventReport").cloned().ok_or_else(|| {
                    NetworkError::Rejected(format!(
                        "{what}: the NEF did not answer with an immediate report"
                    ))
                })
            }
            _ => Err(error_of(status, &bytes, what)),
        }
    }

    /// NEF one-time location report: cell and tracking area.
    async fn nef_location(&self, device: &DeviceRef) -> Result<(Option<String>, Option<String>), NetworkError> {
        const WHAT: &str = "NEF one-time location request";
        let fields = json!({"locationType": "CURRENT_LOCATION", "accuracy": "CGI_ECGI"});
        let report = self
            .nef_one_time(WHAT, device, LOCATION_REPORTING, fields)
            .await?;
        let report: MonitoringEventReport =
            serde_json::from_value(report).map_err(|e| malformed(WHAT, e))?;
        let info = report.location_info.unwrap_or_default();
        Ok((info.cell_id, info.tracking_area_id))
    }

    /// One NWDAF-like analytics request (`GET .../analytics?event-id=&event-filter=`): the
    /// `AnalyticsData`, or `None` when the NWDAF has none for the filter (204).
    async fn analytics(
        &self,
        what: &str,
        event: &str,
        filter: &Value,
    ) -> Result<Option<Value>, NetworkError> {
        let query = [
            ("event-id", event.to_string()),
            ("event-filter", filter.to_string()),
        ];
        let path = format!("{ANALYTICS_INFO_PATH}/analytics");
        let (status, bytes, _) = self.call(Method::GET, &path, &query, None).await?;
        match status.as_u16() {
            200 => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| malformed(what, e)),
            204 => Ok(None),
            // No device is involved: a 404 means the analytics are not offered, not an unknown device.
            404 => Err(NetworkError::Rejected(format!(
                "{what}: HTTP 404: {}",
                ErrorBody::message(&bytes)
            ))),
            _ => Err(error_of(status, &bytes, what)),
        }
    }

    /// One `DN_PERFORMANCE` request over `cells` x `dnais` (both without repeats): the pairs the
    /// answer holds, cells outer. Nothing asked, nothing requested.
    async fn dn_performance(
        &self,
        cells: &[&str],
        dnais: &[&str],
    ) -> Result<Vec<PathEntry>, NetworkError> {
        const WHAT: &str = "DN_PERFORMANCE analytics";
        if cells.is_empty() || dnais.is_empty() {
            return Ok(Vec::new());
        }
        let filter = json!({"networkArea": {"ncgis": ncgis(cells)}, "dnais": dnais});
        match self.analytics(WHAT, DN_PERFORMANCE, &filter).await? {
            Some(v) => dn_performance_entries(&v, cells, dnais, WHAT),
            None => Ok(Vec::new()),
        }
    }

    /// CAMARA location retrieval: centre and radius of the device's area.
    async fn camara_location(&self, device: &DeviceRef) -> Result<(GeoPoint, f64), NetworkError> {
        const WHAT: &str = "CAMARA location retrieval";
        let body = json!({"device": camara_device(device)?});
        let path = format!("{LOCATION_RETRIEVAL_PATH}/retrieve");
        let (status, bytes, _) = self.call(Method::POST, &path, &[], Some(&body)).await?;
        if status != StatusCode::OK {
            return Err(error_of(status, &bytes, WHAT));
        }
        let loc: CamaraLocation = serde_json::from_slice(&bytes).map_err(|e| malformed(WHAT, e))?;
        loc.area.circle().ok_or_else(|| malformed(WHAT, format!("unusable area of type {}", loc.area.area_type)))
    }
}

#[async_trait]
impl NetworkAdapter for StandardAdapter {
    async fn locate(&self, device: &DeviceRef) -> Result<NetworkLocation, NetworkError> {
        let ((cell_id, tracking_area), (point, accuracy_m)) =
            tokio::try_join!(self.nef_location(device), self.camara_location(device))?;
        Ok(NetworkLocation { cell_id, tracking_area, point, accuracy_m })
    }

    async fn verify_location(
        &self,
        device: &DeviceRef,
        center: GeoPoint,
        radius_m: f64,
    ) -> Result<Verification, NetworkError> {
        const WHAT: &str = "CAMARA location verification";
        let body = json!({
            "device": camara_device(device)?,
            "area": {
                "areaType": "CIRCLE",
                "center": {"latitude": center.latitude, "longitude": center.longitude},
                "radius": radius_m,
            },
        });
        let path = format!("{LOCATION_VERIFICATION_PATH}/verify");
        let (status, bytes, _) = self.call(Method::POST, &path, &[], Some(&body)).await?;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            let code = serde_json::from_slice::<ErrorBody>(&bytes).ok().and_then(|e| e.code);
            if code.as_deref() == Some("LOCATION_VERIFICATION.UNABLE_TO_LOCATE") {
                return Ok(Verification::Unknown);
            }
        }
        if status != StatusCode::OK {
            return Err(error_of(status, &bytes, WHAT));
        }
        let r: VerifyLocationResponse = serde_json::from_slice(&bytes).map_err(|e| malformed(WHAT, e))?;
        match r.verification_result.as_str() {
            "TRUE" => Ok(Verification::True),
            "FALSE" => Ok(Verification::False),
            "PARTIAL" => Ok(Verification::Partial(r.match_rate.unwrap_or(50))),
            other => Err(malformed(WHAT, format!("verificationResult '{other}'"))),
        }
    }

    async fn subscribe(
        &self,
        device: &DeviceRef,
        kinds: &[NetworkEventKind],
        callback_url: &str,
    ) -> Result<String, NetworkError> {
        const WHAT: &str = "NEF monitoring subscription";
        let mut types: Vec<&str> = Vec::new();
        for k in kinds {
            let t = match k {
                NetworkEventKind::LocationChange => LOCATION_REPORTING,
                NetworkEventKind::IpChange => PDN_CONNECTIVITY_STATUS,
            };
            if !types.contains(&t) {
                types.push(t);
            }
        }
        let Some((first, rest)) = types.split_first() else {
            return Err(NetworkError::Rejected("kinds: at least one event kind is needed".into()));
        };
        let mut body = json!({
            "notificationDestination": callback_url,
            "monitoringType": first,
            "monitorExpireTime": after(self.cfg.subscription_lifetime),
        });
        if !rest.is_empty() {
            body["addnMonTypes"] = json!(rest);
        }
        if types.contains(&LOCATION_REPORTING) {
            body["locationType"] = json!("CURRENT_LOCATION");
            // Ask for the geographic estimate in each report, so events carry a position.
            body["reportingLocEstInd"] = json!(true);
        }
        nef_device(device, &mut body)?;
        let path = format!("{MONITORING_EVENT_PATH}/{}/subscriptions", seg(&self.cfg.scs_as_id));
        let (status, bytes, location) = self.call(Method::POST, &path, &[], Some(&body)).await?;
        if status != StatusCode::CREATED {
            return Err(error_of(status, &bytes, WHAT));
        }
        let link = match location {
            Some(l) => l,
            None => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(WHAT, e))?;
                v.get("self")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| malformed(WHAT, "neither Location nor self"))?
            }
        };
        Ok(last_segment(&link).to_string())
    }

    async fn unsubscribe(&self, subscription_id: &str) -> Result<(), NetworkError> {
        let path = format!(
            "{MONITORING_EVENT_PATH}/{}/subscriptions/{}",
            seg(&self.cfg.scs_as_id),
            seg(subscription_id)
        );
        let (status, bytes, _) = self.call(Method::DELETE, &path, &[], None).await?;
        match status.as_u16() {
            200 | 202 | 204 | 404 => Ok(()),
            _ => Err(error_of(status, &bytes, "NEF monitoring subscription delete")),
        }
    }

    async fn path_performance(&self, cell: &str, dnai: &str) -> Result<PathPerformance, NetworkError> {
        let entries = self.dn_performance(&[cell], &[dnai]).await?;
        entries
            .into_iter()
            .next()
            .map(|e| e.performance)
            .ok_or_else(|| {
                NetworkError::Rejected(format!(
                "DN_PERFORMANCE analytics: no performance known from cell {cell} to DNAI {dnai}"
            ))
            })
    }

    async fn path_matrix(
        &self,
        cells: &[String],
        dnais: &[String],
    ) -> Result<Vec<PathEntry>, NetworkError> {
        self.dn_performance(&unique(cells), &unique(dnais)).await
    }

    async fn cell_loads(&self, cells: &[String]) -> Result<Vec<CellLoad>, NetworkError> {
        const WHAT: &str = "NETWORK_PERFORMANCE analytics";
        let cells = unique(cells);
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        let filter = json!({"networkArea": {"ncgis": ncgis(&cells)}, "nwPerfTypes": [NUM_OF_UE]});
        match self.analytics(WHAT, NETWORK_PERFORMANCE, &filter).await? {
            Some(v) => cell_loads_of(&v, &cells, WHAT),
            None => Ok(Vec::new()),
        }
    }

    async fn roaming_status(&self, device: &DeviceRef) -> Result<RoamingStatus, NetworkError> {
        const WHAT: &str = "NEF one-time roaming status request";
        let report = self
            .nef_one_time(
                WHAT,
                device,
                ROAMING_STATUS,
                json!({"plmnIndication": true}),
            )
            .await?;
        roaming_status_of(report, WHAT)
    }

    async fn influence_traffic(&self, req: &TrafficInfluence) -> Result<String, NetworkError> {
        const WHAT: &str = "CAMARA traffic influence";
        let body = json!({
            "apiConsumerId": self.cfg.api_consumer_id,
            "appId": req.app_id,
            "appInstanceId": req.app_instance_id,
            "edgeCloudZoneId": req.edge_cloud_zone_id,
            "device": camara_device(&req.device)?,
        });
        let path = format!("{TRAFFIC_INFLUENCE_PATH}/traffic-influence-devices");
        let (status, bytes, location) = self.call(Method::POST, &path, &[], Some(&body)).await?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            return Err(error_of(status, &bytes, WHAT));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(WHAT, e))?;
        v.get("trafficInfluenceID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| location.as_deref().map(|l| last_segment(l).to_string()))
            .ok_or_else(|| malformed(WHAT, "no trafficInfluenceID"))
    }

    async fn remove_traffic_influence(&self, id: &str) -> Result<(), NetworkError> {
        let path = format!("{TRAFFIC_INFLUENCE_PATH}/traffic-influences/{}", seg(id));
        let (status, bytes, _) = self.call(Method::DELETE, &path, &[], None).await?;
        match status.as_u16() {
            200 | 202 | 204 | 404 => Ok(()),
            _ => Err(error_of(status, &bytes, "CAMARA traffic influence delete")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("abc-1._~"), "abc-1._~");
        assert_eq!(seg("a b/c+"), "a%20b%2Fc%2B");
    }

    #[test]
    fn status_mapping() {
        let body = br#"{"status":404,"code":"IDENTIFIER_NOT_FOUND","message":"Device identifier not found."}"#;
        assert!(matches!(error_of(StatusCode::NOT_FOUND, body, "x"), NetworkError::UnknownDevice(_)));
        assert!(matches!(error_of(StatusCode::UNAUTHORIZED, b"", "x"), NetworkError::Unauthorized(_)));
        assert!(matches!(error_of(StatusCode::FORBIDDEN, b"", "x"), NetworkError::Unauthorized(_)));
        assert!(matches!(error_of(StatusCode::BAD_GATEWAY, b"", "x"), NetworkError::Unavailable(_)));
        match error_of(StatusCode::CONFLICT, br#"{"status":409,"code":"CONFLICT","message":"busy"}"#, "x") {
            NetworkError::Rejected(m) => assert!(m.contains("CONFLICT: busy"), "{m}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn device_identification() {
        let d = DeviceRef { phone_number: Some("+33612340001".into()), ..Default::default() };
        assert_eq!(camara_device(&d).unwrap(), json!({"phoneNumber": "+33612340001"}));
        let mut b = json!({});
        nef_device(&d, &mut b).unwrap();
        assert_eq!(b, json!({"msisdn": "33612340001"}));
        let d = DeviceRef { ip: Some("10.45.0.1".parse().unwrap()), ..Default::default() };
        assert_eq!(camara_device(&d).unwrap()["ipv4Address"]["publicAddress"], "10.45.0.1");
        assert!(matches!(camara_device(&DeviceRef::default()), Err(NetworkError::Rejected(_))));
    }

    fn dn_item(cell: Option<&str>, dnai: &str, delay: f64) -> Value {
        let mut item = json!({"dnai": dnai, "perfData": {"avePacketDelay": delay, "avgTrafficRate": "1 Gbps"}});
        if let Some(c) = cell {
            item["spatialValidCon"] =
                json!({"ncgis": [{"plmnId": {"mcc": "208", "mnc": "01"}, "nrCellId": c}]});
        }
        item
    }

    #[test]
    fn dn_performance_entries_are_matched_to_cells_and_dnais() {
        let v = json!({"dnPerfInfos": [
            {"dnPerf": [dn_item(Some("c2"), "d1", 7.0), dn_item(Some("c1"), "d2", 3.0), dn_item(Some("c9"), "d1", 1.0)]},
            {"dnPerf": [dn_item(Some("c1"), "d1", 5.0), dn_item(Some("c1"), "d1", 99.0), dn_item(Some("c1"), "d9", 1.0)]},
        ]});
        let got = dn_performance_entries(&v, &["c1", "c2"], &["d1", "d2"], "x").unwrap();
        let got: Vec<(&str, &str, f64)> = got
            .iter()
            .map(|e| (e.cell.as_str(), e.dnai.as_str(), e.performance.latency_ms))
            .collect();
        // Cells outer in the asked order, the first item of a pair wins, unasked cells and DNAIs ignored.
        assert_eq!(
            got,
            [("c1", "d1", 5.0), ("c1", "d2", 3.0), ("c2", "d1", 7.0)]
        );
        assert_eq!(
            dn_performance_entries(&v, &["c1"], &["d1"], "x").unwrap()[0]
                .performance
                .bandwidth_mbps,
            1000.0
        );
    }

    #[test]
    fn dn_performance_item_without_cell_is_the_only_cell_asked() {
        let v = json!({"dnPerfInfos": [{"dnPerf": [dn_item(None, "d1", 4.0)]}]});
        let one = dn_performance_entries(&v, &["c1"], &["d1"], "x").unwrap();
        assert_eq!(
            (
                one.len(),
                one[0].cell.as_str(),
                one[0].performance.latency_ms
            ),
            (1, "c1", 4.0)
        );
        assert!(dn_performance_entries(&v, &["c1", "c2"], &["d1"], "x")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_perf_data_is_unavailable() {
        let v = json!({"dnPerfInfos": [{"dnPerf": [{"dnai": "d1", "perfData": {"avgTrafficRate": "1 Gbps"}}]}]});
        assert!(matches!(
            dn_performance_entries(&v, &["c1"], &["d1"], "x"),
            Err(NetworkError::Unavailable(_))
        ));
        let v = json!({"dnPerfInfos": [{"dnPerf": [{"dnai": "d1", "perfData": {"avePacketDelay": 1, "avgTrafficRate": "fast"}}]}]});
        assert!(matches!(
            dn_performance_entries(&v, &["c1"], &["d1"], "x"),
            Err(NetworkError::Unavailable(_))
        ));
    }

    fn nw_perf(cells: &[&str], kind: &str, ratio: Value, num: Value) -> Value {
        let ncgis: Vec<Value> = cells.iter().map(|c| json!({"nrCellId": c})).collect();
        json!({"networkArea": {"ncgis": ncgis}, "nwPerfType": kind, "relativeRatio": ratio, "absoluteNum": num})
    }

    #[test]
    fn cell_loads_are_read_per_cell() {
        let v = json!({"nwPerfs": [
            nw_perf(&["c2"], "NUM_OF_UE", json!(40), json!(8)),
            nw_perf(&["c1", "c2"], "NUM_OF_UE", json!(90), json!(100)),
            nw_perf(&["c1"], "HO_SUCC_RATIO", json!(99), json!(1)),
            nw_perf(&["c1"], "NUM_OF_UE", json!(150), json!(3)),
            nw_perf(&["c2"], "NUM_OF_UE", json!(10), json!(1)),
            nw_perf(&["c9"], "NUM_OF_UE", json!(10), json!(1)),
        ]});
        let got = cell_loads_of(&v, &["c1", "c2", "c3"], "x").unwrap();
        assert_eq!(
            got,
            [
                CellLoad {
                    cell: "c1".into(),
                    ues: 3,
                    ratio: 1.0
                },
                CellLoad {
                    cell: "c2".into(),
                    ues: 8,
                    ratio: 0.4
                },
            ]
        );
        let v = json!({"nwPerfs": [nw_perf(&["c1"], "NUM_OF_UE", json!(40), Value::Null)]});
        assert!(matches!(
            cell_loads_of(&v, &["c1"], "x"),
            Err(NetworkError::Unavailable(_))
        ));
        let v = json!({"nwPerfs": [nw_perf(&["c1"], "NUM_OF_UE", json!("40"), json!(2))]});
        assert!(matches!(
            cell_loads_of(&v, &["c1"], "x"),
            Err(NetworkError::Unavailable(_))
        ));
        assert!(cell_loads_of(&json!({}), &["c1"], "x").unwrap().is_empty());
    }

    #[test]
    fn roaming_reports() {
        let r = roaming_status_of(
            json!({"monitoringType": "ROAMING_STATUS", "roamingStatus": true, "plmnId": {"mcc": "234", "mnc": "15"}}),
            "x",
        );
        assert_eq!(
            r.unwrap(),
            RoamingStatus {
                roaming: true,
                serving_plmn: Some("23415".into())
            }
        );
        // Omitted roamingStatus means at home (TS 29.122); no plmnId, no serving PLMN.
        let r = roaming_status_of(json!({"monitoringType": "ROAMING_STATUS"}), "x");
        assert_eq!(
            r.unwrap(),
            RoamingStatus {
                roaming: false,
                serving_plmn: None
            }
        );
        let r = roaming_status_of(
            json!({"roamingStatus": false, "plmnId": {"mcc": "2080", "mnc": "1"}}),
            "x",
        );
        assert!(matches!(r, Err(NetworkError::Unavailable(_))));
        let r = roaming_status_of(json!({"roamingStatus": "yes"}), "x");
        assert!(matches!(r, Err(NetworkError::Unavailable(_))));
    }

    #[test]
    fn unique_keeps_the_first_order() {
        let items: Vec<String> = ["b", "a", "b", "c", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(unique(&items), ["b", "a", "c"]);
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let c = AdapterConfig::new("http://gw/", "op", "s3cret");
        assert_eq!(c.base_url, "http://gw");
        assert_eq!(c.token_url, "http://gw/oauth2/token");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
