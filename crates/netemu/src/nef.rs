//! 3GPP NEF MonitoringEvent (TS 29.122, `/3gpp-monitoring-event/v1/{scsAsId}/subscriptions`).
//!
//! Supported monitoring types: `LOCATION_REPORTING` (cell, tracking area and PLMN in
//! `locationInfo`; a `POINT_UNCERTAINTY_CIRCLE` `geographicArea` of the cell when the request sets
//! `reportingLocEstInd` or `accuracy: GEO_AREA`) and `PDN_CONNECTIVITY_STATUS` (the device's PDN
//! connection with its current address: the event TS 29.122 offers for a new IP address) and
//! `ROAMING_STATUS` (`roamingStatus`: whether the serving PLMN differs from the operator's, which
//! the emulator takes as every device's home PLMN; with `plmnIndication: true` also the serving
//! `plmnId` as a TS 29.122 `PlmnId` `{mcc, mnc}`). One subscription may carry several through
//! `addnMonTypes`. The serving PLMN is the device's scenario `servingPlmn` or what
//! `POST /emulator/v1/devices/{device}/roam` set; it changes nothing else (a roaming device keeps
//! its cell in location reports and cell loads).
//!
//! A one-time request (`maximumNumberOfReports: 1`) creates no resource: the spec's `200` answer
//! carries the `MonitoringEventReport` (or `MonitoringEventReports` for several types) inline.
//! Continuous subscriptions answer `201` with `Location` and `self`; `MonitoringNotification`s are
//! POSTed to `notificationDestination`, in order, when the device moves (scripted or triggered
//! events), gets a new address or changes serving PLMN. Errors are `ProblemDetails`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::auth::NefClient;
use crate::camara::rfc3339;
use crate::error::{problem_body, ProblemError};
use crate::scenario::split_plmn_id;
use crate::state::{lock, Emulator, World};

/// `MonitoringType` for location reports.
pub const LOCATION_REPORTING: &str = "LOCATION_REPORTING";
/// `MonitoringType` for PDN connection (address) changes.
pub const PDN_CONNECTIVITY_STATUS: &str = "PDN_CONNECTIVITY_STATUS";
/// `MonitoringType` for the roaming status (serving PLMN) of a UE.
pub const ROAMING_STATUS: &str = "ROAMING_STATUS";
const SUPPORTED: [&str; 3] = [LOCATION_REPORTING, PDN_CONNECTIVITY_STATUS, ROAMING_STATUS];
const BASE: &str = "/3gpp-monitoring-event/v1";

/// How the subscriber identified the UE; reports echo the same identifier.
#[derive(Clone, Debug)]
pub(crate) enum Ident {
    Msisdn(String),
    ExternalId(String),
    Ip,
}

/// A continuous monitoring subscription.
pub(crate) struct MonSub {
    pub id: String,
    pub scs_as_id: String,
    pub link: String,
    pub device: usize,
    pub ident: Ident,
    pub types: Vec<String>,
    pub remaining: Option<u32>,
    pub expires: Option<DateTime<Utc>>,
    pub opts: ReportOpts,
    pub body: Value,
    pub tx: UnboundedSender<Value>,
}

/// What the subscriber asked reports to include.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReportOpts {
    /// A geographic area in location reports (`reportingLocEstInd` or `accuracy: GEO_AREA`).
    pub geo: bool,
    /// The serving PLMN in roaming reports (`plmnIndication`).
    pub plmn: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubReq {
    notification_destination: Option<String>,
    monitoring_type: Option<String>,
    #[serde(default)]
    addn_mon_types: Vec<String>,
    maximum_number_of_reports: Option<i64>,
    monitor_expire_time: Option<String>,
    msisdn: Option<String>,
    external_id: Option<String>,
    ipv4_addr: Option<String>,
    ipv6_addr: Option<String>,
    external_group_id: Option<String>,
    reporting_loc_est_ind: Option<bool>,
    immediate_rep: Option<bool>,
    accuracy: Option<String>,
    plmn_indication: Option<bool>,
}

fn ident_fields(emu: &Emulator, sub_ident: &Ident, device: usize, report: &mut Value) {
    let d = &emu.scenario.devices[device];
    match sub_ident {
        Ident::Msisdn(m) => report["msisdn"] = json!(m),
        Ident::ExternalId(e) => report["externalId"] = json!(e),
        Ident::Ip => {
            if let Some(p) = &d.phone_number {
                report["msisdn"] = json!(p.trim_start_matches('+'));
            } else if let Some(n) = &d.network_access_identifier {
                report["externalId"] = json!(n);
            }
        }
    }
}

fn location_of(emu: &Emulator, world: &World, device: usize, ident: &Ident, geo: bool, now: DateTime<Utc>) -> Value {
    let cell_id = &world.devices[device].cell;
    let mut info = json!({"cellId": cell_id, "plmnId": emu.scenario.operator.plmn_id(), "ageOfLocationInfo": 0});
    if let Some(cell) = emu.scenario.cell(cell_id) {
        info["trackingAreaId"] = json!(cell.tracking_area);
        if geo {
            info["geographicArea"] = json!({
                "shape": "POINT_UNCERTAINTY_CIRCLE",
                "point": {"lon": cell.lon, "lat": cell.lat},
                "uncertainty": emu.scenario.cell_radius(cell),
            });
        }
    }
    let mut report = json!({"monitoringType": LOCATION_REPORTING, "eventTime": rfc3339(now), "locationInfo": info});
    ident_fields(emu, ident, device, &mut report);
    report
}

fn pdn_of(emu: &Emulator, world: &World, device: usize, ident: &Ident, now: DateTime<Utc>) -> Value {
    let rt = &world.devices[device];
    let conn = match (rt.ipv4.first(), rt.ipv6) {
        (Some(v4), Some(v6)) => {
            json!({"status": "CREATED", "pdnType": "IPV4V6", "ipv4Addr": v4.to_string(), "ipv6Addrs": [v6.to_string()]})
        }
        (Some(v4), None) => json!({"status": "CREATED", "pdnType": "IPV4", "ipv4Addr": v4.to_string()}),
        (None, Some(v6)) => json!({"status": "CREATED", "pdnType": "IPV6", "ipv6Addrs": [v6.to_string()]}),
        (None, None) => json!({"status": "RELEASED", "pdnType": "IPV4"}),
    };
    let mut report =
        json!({"monitoringType": PDN_CONNECTIVITY_STATUS, "eventTime": rfc3339(now), "pdnConnInfoList": [conn]});
    ident_fields(emu, ident, device, &mut report);
    report
}

fn roaming_of(
    emu: &Emulator,
    world: &World,
    device: usize,
    ident: &Ident,
    plmn: bool,
    now: DateTime<Utc>,
) -> Value {
    let serving = &world.devices[device].serving_plmn;
    let mut report = json!({
        "monitoringType": ROAMING_STATUS,
        "eventTime": rfc3339(now),
        "roamingStatus": *serving != emu.scenario.operator.plmn_id(),
    });
    if plmn {
        // Validated on the way in (scenario and admin API); a malformed one is left out.
        if let Some((mcc, mnc)) = split_plmn_id(serving) {
            report["plmnId"] = json!({"mcc": mcc, "mnc": mnc});
        }
    }
    ident_fields(emu, ident, device, &mut report);
    report
}

fn report_of(
    emu: &Emulator,
    world: &World,
    device: usize,
    ident: &Ident,
    opts: ReportOpts,
    kind: &str,
    now: DateTime<Utc>,
) -> Value {
    match kind {
        LOCATION_REPORTING => location_of(emu, world, device, ident, opts.geo, now),
        ROAMING_STATUS => roaming_of(emu, world, device, ident, opts.plmn, now),
        _ => pdn_of(emu, world, device, ident, now),
    }
}

/// `MonitoringEventReport` of the subscription's device location.
pub(crate) fn location_report(emu: &Emulator, world: &World, sub: &MonSub, now: DateTime<Utc>) -> Value {
    location_of(emu, world, sub.device, &sub.ident, sub.opts.geo, now)
}

/// `MonitoringEventReport` of the subscription's device roaming status.
pub(crate) fn roaming_report(
    emu: &Emulator,
    world: &World,
    sub: &MonSub,
    now: DateTime<Utc>,
) -> Value {
    roaming_of(emu, world, sub.device, &sub.ident, sub.opts.plmn, now)
}

/// `MonitoringEventReport` of the subscription's device PDN connection.
pub(crate) fn pdn_report(emu: &Emulator, world: &World, sub: &MonSub, now: DateTime<Utc>) -> Value {
    pdn_of(emu, world, sub.device, &sub.ident, now)
}

/// `MonitoringNotification`.
pub(crate) fn notification(sub: &MonSub, reports: Vec<Value>) -> Value {
    json!({"subscription": sub.link, "monitoringEventReports": reports})
}

fn resolve(emu: &Emulator, world: &World, req: &SubReq) -> Result<(usize, Ident), ProblemError> {
    if req.external_group_id.is_some() {
        return Err(ProblemError::invalid_param("/externalGroupId", "group subscriptions are not supported by the emulator"));
    }
    let not_found = |what: String| ProblemError::not_found(format!("no UE with {what} in this network"));
    if let Some(m) = &req.msisdn {
        let phone = format!("+{}", m.trim_start_matches('+'));
        let idx = emu.find_phone(&phone).ok_or_else(|| not_found(format!("msisdn {m}")))?;
        return Ok((idx, Ident::Msisdn(m.clone())));
    }
    if let Some(e) = &req.external_id {
        let idx = emu.find_nai(e).ok_or_else(|| not_found(format!("externalId {e}")))?;
        return Ok((idx, Ident::ExternalId(e.clone())));
    }
    if let Some(a) = &req.ipv4_addr {
        let ip = a.parse().map_err(|_| ProblemError::invalid_param("/ipv4Addr", format!("'{a}' is not an IPv4 address")))?;
        let idx = world.find_ipv4(ip).ok_or_else(|| not_found(format!("ipv4Addr {a}")))?;
        return Ok((idx, Ident::Ip));
    }
    if let Some(a) = &req.ipv6_addr {
        let ip = a.parse().map_err(|_| ProblemError::invalid_param("/ipv6Addr", format!("'{a}' is not an IPv6 address")))?;
        let idx = world.find_ipv6(ip).ok_or_else(|| not_found(format!("ipv6Addr {a}")))?;
        return Ok((idx, Ident::Ip));
    }
    let mut p = ProblemError::missing("/msisdn");
    p.detail = "the UE is needed: one of msisdn, externalId, ipv4Addr, ipv6Addr".into();
    Err(p)
}

/// `POST /{scsAsId}/subscriptions`.
pub async fn create(
    State(emu): State<Arc<Emulator>>,
    _client: NefClient,
    Path(scs_as_id): Path<String>,
    body: Bytes,
) -> Result<Response, ProblemError> {
    let raw: Value = problem_body(&body)?;
    if !raw.is_object() {
        return Err(ProblemError::invalid_param("/", "must be a MonitoringEventSubscription object"));
    }
    let req: SubReq = serde_json::from_value(raw.clone()).map_err(|e| ProblemError::invalid_param("/", e.to_string()))?;
    let destination = req.notification_destination.clone().ok_or_else(|| ProblemError::missing("/notificationDestination"))?;
    let first = req.monitoring_type.clone().ok_or_else(|| ProblemError::missing("/monitoringType"))?;
    let mut types = vec![first];
    types.extend(req.addn_mon_types.iter().cloned());
    for (i, t) in types.iter().enumerate() {
        if !SUPPORTED.contains(&t.as_str()) {
            let param = if i == 0 { "/monitoringType".to_string() } else { format!("/addnMonTypes/{}", i - 1) };
            return Err(ProblemError::invalid_param(
                &param,
                format!("'{t}' is not supported by the emulator (supported: {})", SUPPORTED.join(", ")),
            ));
        }
    }
    types.dedup();
    let max_reports = match req.maximum_number_of_reports {
        Some(n) if n < 1 => return Err(ProblemError::invalid_param("/maximumNumberOfReports", "must be >= 1")),
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        None => None,
    };
    let now = Utc::now();
    let expires = match &req.monitor_expire_time {
        Some(t) => {
            let t = DateTime::parse_from_rfc3339(t)
                .map_err(|e| ProblemError::invalid_param("/monitorExpireTime", format!("not an RFC 3339 date-time: {e}")))?
                .with_timezone(&Utc);
            if t <= now {
                return Err(ProblemError::invalid_param("/monitorExpireTime", "is in the past"));
            }
            Some(t)
        }
        None => None,
    };
    if max_reports.is_none() && expires.is_none() {
        return Err(ProblemError::invalid_param(
            "/maximumNumberOfReports",
            "one of maximumNumberOfReports and monitorExpireTime is required",
        ));
    }
    let opts = ReportOpts {
        geo: req.reporting_loc_est_ind == Some(true) || req.accuracy.as_deref() == Some("GEO_AREA"),
        plmn: req.plmn_indication == Some(true),
    };

    let mut world = lock(&emu.world);
    let (device, ident) = resolve(&emu, &world, &req)?;

    if max_reports == Some(1) {
        let mut reports: Vec<Value> =
            types.iter().map(|t| report_of(&emu, &world, device, &ident, opts, t, now)).collect();
        let body = if reports.len() == 1 { reports.remove(0) } else { json!({"monitoringEventReports": reports}) };
        return Ok((StatusCode::OK, Json(body)).into_response());
    }

    let id = uuid::Uuid::new_v4().to_string();
    let link = format!("{}{BASE}/{scs_as_id}/subscriptions/{id}", emu.base_url);
    let mut body = raw;
    body["self"] = json!(link);
    let mut remaining = max_reports;
    if req.immediate_rep == Some(true) {
        let mut reports = types.iter().map(|t| report_of(&emu, &world, device, &ident, opts, t, now));
        if let Some(r) = reports.next() {
            body["monitoringEventReport"] = r;
        }
        let rest: Vec<Value> = reports.collect();
        if !rest.is_empty() {
            body["addnMonEventReports"] = json!(rest);
        }
        remaining = remaining.map(|n| n.saturating_sub(1));
    }
    let tx = emu.delivery_queue(&destination);
    tracing::info!(%id, %scs_as_id, device, ?types, "monitoring subscription created");
    world.subscriptions.insert(
        id.clone(),
        MonSub {
            id,
            scs_as_id,
            link: link.clone(),
            device,
            ident,
            types,
            remaining,
            expires,
            opts,
            body: body.clone(),
            tx,
        },
    );
    Ok((StatusCode::CREATED, [(header::LOCATION, link)], Json(body)).into_response())
}

/// `GET /{scsAsId}/subscriptions`.
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    _client: NefClient,
    Path(scs_as_id): Path<String>,
) -> Json<Vec<Value>> {
    let mut world = lock(&emu.world);
    let now = Utc::now();
    world.subscriptions.retain(|_, s| s.expires.is_none_or(|e| e > now));
    Json(world.subscriptions.values().filter(|s| s.scs_as_id == scs_as_id).map(|s| s.body.clone()).collect())
}

fn not_found(id: &str) -> ProblemError {
    ProblemError::not_found(format!("no subscription '{id}' for this SCS/AS"))
}

/// `GET /{scsAsId}/subscriptions/{subscriptionId}`.
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    _client: NefClient,
    Path((scs_as_id, id)): Path<(String, String)>,
) -> Result<Json<Value>, ProblemError> {
    let mut world = lock(&emu.world);
    let now = Utc::now();
    world.subscriptions.retain(|_, s| s.expires.is_none_or(|e| e > now));
    world
        .subscriptions
        .get(&id)
        .filter(|s| s.scs_as_id == scs_as_id)
        .map(|s| Json(s.body.clone()))
        .ok_or_else(|| not_found(&id))
}

/// `DELETE /{scsAsId}/subscriptions/{subscriptionId}`: 204.
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    _client: NefClient,
    Path((scs_as_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ProblemError> {
    let mut world = lock(&emu.world);
    if world.subscriptions.get(&id).is_none_or(|s| s.scs_as_id != scs_as_id) {
        return Err(not_found(&id));
    }
    world.subscriptions.remove(&id);
    tracing::info!(%id, "monitoring subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}
