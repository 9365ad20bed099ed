//! Mobility management (OPG.02): relocating a device's app server and session as the device
//! moves, per the app's mobility policy.
//!
//! Triggers reach [`reevaluate`]: the network's callbacks (cell, tracking area or IP change),
//! changes of the edge index (an edge in maintenance, failed, overloaded, new or larger; the
//! network's view of paths and loads), the periodic pass, and apps' reports of degraded
//! service ([`report`]). The decision is the UNI's ranking ([`op_uni::sessions`]); each decided
//! move is recorded as a [`Relocation`] with its timeline and carried out here:
//!
//! - **without notice**: the device was told at once on its UNI stream; its traffic is steered
//!   to the new edge (CAMARA Traffic Influence toward the zone's DNAI);
//! - **with prior notice**: the app is notified (MEC 021 `MobilityProcedureNotification`,
//!   `INTERHOST_MOVEOUT_TRIGGERED`, with the target instance) and moves the device's state; when
//!   its registration says `USER_CONTEXT_TRANSFER_COMPLETED` for the device the device is
//!   switched and its traffic steered (`INTERHOST_MOVEOUT_COMPLETED`); if the app refuses
//!   (`APP_MOBILITY_NOT_ALLOWED`), drops the device, or is not ready within
//!   [`NOTICE_TIMEOUT`], the move is cancelled (`INTERHOST_MOVEOUT_FAILED`), the device told
//!   and no other move is tried for [`HOLD_AFTER_CANCEL`].
//!
//! A device's edge apps are managed together: its traffic is not steered while another of its
//! active apps never moves, unless the move is forced (the edge went or failed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use op_network::{DeviceRef, TrafficInfluence};
use op_types::mobility::{Relocation, RelocationObserved, RelocationPhase, RelocationSpec, RelocationStep};
use op_types::specs::{AppInstanceSpec, AppSpec, InstanceObserved, MobilityPolicy};
use op_types::uni::ChangeReason;
use op_types::{Kind, Name, Object, Uid};
use op_uni::sessions::Move;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, InstanceCaller};
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::state::AppState;

/// How long an app has to move a device's state after notice.
pub const NOTICE_TIMEOUT: Duration = Duration::from_secs(30);
/// After a cancelled relocation, how long before another is tried for the session.
pub const HOLD_AFTER_CANCEL: Duration = Duration::from_secs(30);
/// The first spacing between an app's reports on one device; it doubles with each report
/// accepted within the spacing's double, up to [`REPORT_SPACING_MAX`].
pub const REPORT_SPACING: Duration = Duration::from_secs(1);
/// The longest spacing between reports.
pub const REPORT_SPACING_MAX: Duration = Duration::from_secs(64);

/// The mobility manager's shared state.
#[derive(Default)]
pub struct Mobility {
    /// Wakes relocations waiting on apps (a MEC 021 registration changed).
    changed: tokio::sync::Notify,
    /// The traffic influence in force per device (its id at the network).
    steering: Mutex<HashMap<String, String>>,
    /// Per (instance, device): the current spacing and when the next report is accepted.
    reports: Mutex<HashMap<(Uid, String), (Duration, Instant)>>,
}

/// An app instance changed its MEC 021 registration (e.g. reported a device's user context
/// transferred, or refused mobility): relocations waiting on it look again.
pub fn registration_changed(s: &AppState) {
    s.mobility.changed.notify_waiters();
}

/// The network says `device` moved: its sessions follow, and for each of its apps that the
/// platform instantiates dynamically an instance is started in its new zone if none runs
/// there (the server side of mobility: the move to it happens once it is Ready).
pub fn moved(s: &AppState, device: &str, at: op_uni::select::DeviceAt) {
    s.uni.sessions.moved(device, at.clone());
    let apps: Vec<op_uni::index::AppEntry> = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        s.uni.sessions.apps_of(device).iter().filter_map(|a| ix.app(*a).cloned()).filter(|a| a.requirements.instantiation == op_types::specs::InstantiationType::Dynamic).collect()
    };
    for app in apps {
        let (s, at) = (s.clone(), at.clone());
        tokio::spawn(async move {
            match crate::uni::start_near(&s, &app, &at, &Default::default()).await {
                Ok(Some(st)) => tracing::info!(app = %app.uid, zone = %st.edge_cloud_zone_name, "starting an instance where a device moved"),
                Ok(None) => {}
                Err(e) => tracing::warn!(app = %app.uid, error = %e, "cannot start an instance where a device moved"),
            }
        });
    }
}

/// The network says `device` has a new IP address: its sessions are told, and the apps
/// serving it (a MEC 021 `UeIpChangeNotification`, the platform's extension).
pub fn ip_changed(s: &AppState, device: &str, ip: std::net::IpAddr) {
    for (_, instance, old) in s.uni.sessions.ip_changed(device, &ip.to_string()) {
        let Some(old) = old.and_then(|o| o.parse::<std::net::IpAddr>().ok()) else { continue };
        let s = s.clone();
        tokio::spawn(async move {
            match crate::ams::notify_ip_change(&s, instance, address(old), address(ip)).await {
                Ok(n) => tracing::info!(%instance, told = n, "device address change notified to the app"),
                Err(e) => tracing::warn!(%instance, error = %e, "cannot notify the app of a device's new address"),
            }
        });
    }
}

/// A device's MEC 021 associate id from its address.
fn address(ip: std::net::IpAddr) -> op_types::ams::AssociateId {
    let kind = if ip.is_ipv6() { op_types::ams::AssociateIdType::UeIpv6Address } else { op_types::ams::AssociateIdType::UeIpv4Address };
    op_types::ams::AssociateId { kind, value: ip.to_string() }
}

/// At start: relocations a previous run left half-done are closed as cancelled (sessions are
/// soft state: their devices register again and are placed afresh), so no record stays open.
pub async fn recover(s: &AppState) -> Result<usize, ApiError> {
    let (all, _) = s.repo.list::<RelocationSpec, RelocationObserved>(Kind::Relocation).await?;
    let mut closed = 0;
    for mut r in all.into_iter().filter(|r| matches!(r.observed.phase, RelocationPhase::Decided | RelocationPhase::AppNotified)) {
        r.observed.phase = RelocationPhase::Cancelled;
        r.observed.timeline.push(RelocationStep {
            at: stamp(),
            phase: RelocationPhase::Cancelled,
            detail: "the platform restarted during the relocation; the device stays where it was and is placed again when it registers".into(),
        });
        s.repo.update(&mut r).await?;
        closed += 1;
    }
    Ok(closed)
}

/// Re-ranks every session and carries out the moves decided.
pub fn reevaluate(s: &AppState) {
    let moves = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        s.uni.sessions.reevaluate(&ix, op_uni::token::now())
    };
    for m in moves {
        s.http.observe_mobility_decision(m.decided_in);
        tokio::spawn(relocate(s.clone(), m));
    }
}

fn stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A relocation record being written as the move goes.
struct Record {
    obj: Option<Relocation>,
}

impl Record {
    async fn open(s: &AppState, m: &Move) -> Self {
        let org = match s.repo.get::<AppSpec, ()>(Kind::App, m.app).await {
            Ok(Some(a)) => a.metadata.organization,
            _ => None,
        };
        let Some(org) = org else { return Record { obj: None } };
        let uid = Uid::random();
        let Ok(name) = Name::new(format!("r-{}", uid.to_string().replace('-', ""))) else { return Record { obj: None } };
        let spec = RelocationSpec {
            app_id: m.app,
            device_address: m.ip.clone(),
            from_instance: m.from,
            to_instance: m.to,
            to_zone: m.to_zone,
            reason: m.reason,
            with_notice: m.with_notice,
            decision_ms: m.decided_in.as_secs_f64() * 1000.0,
        };
        let mut obj: Relocation = Object::new(Kind::Relocation, Some(org), name, spec);
        obj.observed = RelocationObserved {
            phase: RelocationPhase::Decided,
            timeline: vec![RelocationStep {
                at: stamp(),
                phase: RelocationPhase::Decided,
                detail: format!("{:?} in {:.2} ms{}", m.reason, m.decided_in.as_secs_f64() * 1000.0, if m.with_notice { "; the app is told first" } else { "; the device was told" }),
            }],
        };
        match s.repo.create(&mut obj).await {
            Ok(()) => Record { obj: Some(obj) },
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a relocation");
                Record { obj: None }
            }
        }
    }

    async fn step(&mut self, s: &AppState, phase: RelocationPhase, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!(?phase, %detail, "relocation");
        let Some(obj) = self.obj.as_mut() else { return };
        obj.observed.phase = phase;
        obj.observed.timeline.push(RelocationStep { at: stamp(), phase, detail });
        if let Err(e) = s.repo.update(obj).await {
            tracing::warn!(error = %e, "cannot record a relocation step");
        }
    }
}

/// Carries out one move.
async fn relocate(s: AppState, m: Move) {
    let mut rec = Record::open(&s, &m).await;
    if m.with_notice {
        with_notice(&s, &m, &mut rec).await;
    } else {
        let steered = steer(&s, &m).await;
        rec.step(&s, RelocationPhase::Completed, format!("device switched to instance {}; {steered}", m.to)).await;
    }
}

/// The move with prior notice (see the module doc).
async fn with_notice(s: &AppState, m: &Move, rec: &mut Record) {
    match notice(s, m, rec).await {
        Ok(()) => {
            if !s.uni.sessions.complete(m) {
                rec.step(s, RelocationPhase::Cancelled, "the session ended before the switch").await;
                return;
            }
            let steered = steer(s, m).await;
            let told = notify(s, m, op_types::ams::MobilityStatus::InterhostMoveoutCompleted, false).await;
            rec.step(s, RelocationPhase::Completed, format!("device switched to instance {}; {steered}; {told}", m.to)).await;
        }
        Err(why) => {
            let hold = op_uni::token::now() + HOLD_AFTER_CANCEL.as_secs();
            s.uni.sessions.cancel(m, hold, &why);
            let told = notify(s, m, op_types::ams::MobilityStatus::InterhostMoveoutFailed, false).await;
            rec.step(s, RelocationPhase::Cancelled, format!("{why}; the device stays on instance {}, service may be degraded; {told}", m.from)).await;
        }
    }
}

/// The device's MEC 021 associate id.
fn associate(m: &Move) -> Option<op_types::ams::AssociateId> {
    m.ip.as_ref()?.parse().ok().map(address)
}

/// Tells the source instance's app about the move; returns what to record.
async fn notify(s: &AppState, m: &Move, status: op_types::ams::MobilityStatus, with_target: bool) -> String {
    let Some(a) = associate(m) else { return "the app was not told: the device's address is unknown".into() };
    let target = if with_target { target_info(s, m.to).await } else { None };
    match crate::ams::notify_mobility(s, m.from, std::slice::from_ref(&a), status, target).await {
        Ok(n) => format!("{n} subscription(s) of the app told {status:?}"),
        Err(e) => format!("telling the app failed: {e}"),
    }
}

/// The target instance as MEC 021 describes it: its id and where it is reached, from other
/// instances (its container's address) first, then from outside.
async fn target_info(s: &AppState, to: Uid) -> Option<op_types::ams::TargetAppInfo> {
    let inst = s.repo.get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, to).await.ok()??;
    let ip_addresses = inst
        .observed
        .internal_endpoints
        .iter()
        .chain(&inst.observed.endpoints)
        .map(|e| op_types::ams::IpAddress { host: e.host.clone(), port: e.port })
        .collect();
    Some(op_types::ams::TargetAppInfo { app_instance_id: to, comm_interface: Some(op_types::ams::CommunicationInterface { ip_addresses }) })
}

/// Notifies the app and waits for its answer: `Ok` once it moved the device's state.
async fn notice(s: &AppState, m: &Move, rec: &mut Record) -> Result<(), String> {
    let a = associate(m).ok_or("the device's address is unknown (register with device.ipv4Address), so the app cannot be told")?;
    if !crate::ams::registered(s, m.from).await.map_err(|e| e.to_string())? {
        return Err("the app instance is not registered with the mobility service (MEC 021), so it cannot be told".into());
    }
    let since = chrono::Utc::now();
    let target = target_info(s, m.to).await;
    let told = crate::ams::notify_mobility(s, m.from, std::slice::from_ref(&a), op_types::ams::MobilityStatus::InterhostMoveoutTriggered, target)
        .await
        .map_err(|e| e.to_string())?;
    if told == 0 {
        return Err("no subscription of the app accepted the mobility notification".into());
    }
    rec.step(s, RelocationPhase::AppNotified, format!("{told} subscription(s) told INTERHOST_MOVEOUT_TRIGGERED with target instance {}", m.to)).await;
    let deadline = tokio::time::Instant::now() + NOTICE_TIMEOUT;
    loop {
        let changed = s.mobility.changed.notified();
        match crate::ams::device_state_since(s, m.from, &a, since).await.map_err(|e| e.to_string())? {
            None => return Err("the app dropped the device from its registration".into()),
            Some((op_types::ams::AppMobilityServiceLevel::AppMobilityNotAllowed, _)) => return Err("the app refused the move (APP_MOBILITY_NOT_ALLOWED)".into()),
            Some((_, true)) => return Ok(()),
            Some((_, false)) => {}
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(format!("the app did not report the device's context transferred within {} s", NOTICE_TIMEOUT.as_secs()));
        }
    }
}

/// The device's identity for the network, from its session key (phone number, NAI or IP).
fn device_ref(key: &str) -> DeviceRef {
    if key.starts_with('+') {
        DeviceRef { phone_number: Some(key.into()), ..Default::default() }
    } else if key.contains('@') {
        DeviceRef { network_access_identifier: Some(key.into()), ..Default::default() }
    } else {
        DeviceRef { ip: key.parse().ok(), ..Default::default() }
    }
}

/// Steers the device's traffic to the move's zone (CAMARA Traffic Influence toward its DNAI),
/// replacing the influence in force, unless another active app of the device never moves and
/// the move is not forced. Returns what to record.
async fn steer(s: &AppState, m: &Move) -> String {
    let Some(net) = s.uni.network.clone() else { return "no network configured: traffic not steered".into() };
    let forced = matches!(m.reason, ChangeReason::EdgeMaintenance | ChangeReason::InstanceUnhealthy);
    if !forced {
        let apps = s.uni.sessions.apps_of(&m.device);
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        if apps.iter().any(|a| ix.app(*a).is_some_and(|a| a.requirements.mobility_policy == MobilityPolicy::NeverMove)) {
            return "traffic not steered: another active app of the device never moves".into();
        }
    }
    let dnai = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        ix.zone(m.to_zone).and_then(|z| z.dnai.clone())
    };
    let Some(dnai) = dnai else { return "traffic not steered: the zone has no DNAI".into() };
    let req = TrafficInfluence { device: device_ref(&m.device), app_id: m.app.to_string(), app_instance_id: m.to.to_string(), edge_cloud_zone_id: dnai.clone() };
    match net.influence_traffic(&req).await {
        Ok(id) => {
            let old = s.mobility.steering.lock().unwrap_or_else(|e| e.into_inner()).insert(m.device.clone(), id);
            if let Some(old) = old {
                if let Err(e) = net.remove_traffic_influence(&old).await {
                    tracing::warn!(error = %e, "cannot remove the previous traffic influence");
                }
            }
            format!("traffic steered to {dnai}")
        }
        Err(e) => format!("steering traffic to {dnai} failed: {e}"),
    }
}

/// An app's report of degraded service for one of its devices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceReport {
    /// The device (MEC 021 associate id: its IP address).
    pub associate_id: op_types::ams::AssociateId,
    /// What degraded.
    pub kind: ReportKind,
    /// Free text for the record.
    #[serde(default)]
    pub detail: Option<String>,
}

/// What an app reports.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReportKind {
    /// Network quality (latency, loss) seen by the app.
    Qos,
    /// The user's experience (stalls, frame drops).
    Qoe,
}

/// What happened to a report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportOutcome {
    /// Sessions of the device on this instance that will be moved if another edge can serve.
    pub sessions: usize,
    /// Seconds before the next report on this device is accepted.
    pub next_report_after_seconds: u64,
}

/// Charges one report on `(instance, device)`: accepted reports are spaced exponentially;
/// `Err` says how long to wait.
fn charge(s: &AppState, instance: Uid, device: &str) -> Result<Duration, Duration> {
    let now = Instant::now();
    let mut map = s.mobility.reports.lock().unwrap_or_else(|e| e.into_inner());
    let entry = map.entry((instance, device.to_string()));
    match entry {
        std::collections::hash_map::Entry::Occupied(mut o) => {
            let (spacing, next) = *o.get();
            if now < next {
                return Err(next - now);
            }
            // Reporting again soon after the spacing ended doubles it; a quiet device starts over.
            let spacing = if now < next + spacing { (spacing * 2).min(REPORT_SPACING_MAX) } else { REPORT_SPACING };
            o.insert((spacing, now + spacing));
            Ok(spacing)
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert((REPORT_SPACING, now + REPORT_SPACING));
            Ok(REPORT_SPACING)
        }
    }
}

/// An app instance reports degraded service (QoS or QoE) for one of its devices: the device
/// is moved to another edge if one can serve it. Reports are spaced exponentially per device:
/// over-reporting gets 429 saying when the next is accepted.
#[utoipa::path(post, path = "/op/v1/mobility/reports", tag = "mobility", security(("bearer" = [])), request_body = ServiceReport,
    responses((status = 202, body = ReportOutcome), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo), (status = 429, body = ErrorInfo)))]
pub async fn report(State(s): State<AppState>, caller: InstanceCaller, Body(r): Body<ServiceReport>) -> Result<(StatusCode, Json<ReportOutcome>), ApiError> {
    if r.associate_id.value.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::invalid("associateId.value", "must be the device's IP address"));
    }
    let spacing = charge(&s, caller.instance, &r.associate_id.value).map_err(|wait| {
        ApiError::TooManyRequests(format!(
            "reports on this device are throttled (spacing doubles while they keep coming); the next is accepted in {} s",
            wait.as_secs_f64().ceil()
        ))
    })?;
    let sessions = s.uni.sessions.degraded(caller.instance, &r.associate_id.value);
    tracing::info!(instance = %caller.instance, kind = ?r.kind, detail = r.detail.as_deref().unwrap_or(""), sessions, "app reported degraded service");
    if sessions > 0 {
        reevaluate(&s);
    }
    Ok((StatusCode::ACCEPTED, Json(ReportOutcome { sessions, next_report_after_seconds: spacing.as_secs() })))
}

/// List the relocations the caller may see (its organization's; all for operators), newest
/// first.
#[utoipa::path(get, path = "/op/v1/relocations", tag = "mobility", security(("bearer" = [])),
    responses((status = 200, body = Vec<Relocation>), (status = 401, body = ErrorInfo)))]
pub async fn list_relocations(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<Relocation>>, ApiError> {
    let (mut all, _) = s.repo.list::<RelocationSpec, RelocationObserved>(Kind::Relocation).await?;
    all.retain(|r| c.can_read(r.metadata.organization.as_ref()));
    all.sort_by_key(|r| std::cmp::Reverse(r.metadata.created));
    Ok(Json(all))
}

/// One relocation and its timeline.
#[utoipa::path(get, path = "/op/v1/relocations/{id}", tag = "mobility", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Relocation), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn get_relocation(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Relocation>, ApiError> {
    let not_found = || ApiError::NotFound("relocation not found".into());
    let id: Uid = id.parse().map_err(|_| not_found())?;
    s.repo
        .get::<RelocationSpec, RelocationObserved>(Kind::Relocation, id)
        .await?
        .filter(|r| c.can_read(r.metadata.organization.as_ref()))
        .map(Json)
        .ok_or_else(not_found)
}
