//! Telemetry the app provider receives (OPG.02 application provider criterion): the kinds the
//! app named at onboarding (`requirements.telemetry`), read at `GET
//! /op/v1/apps/{appId}/telemetry` and, when the app gave a webhook, POSTed there every
//! `intervalSeconds`. A kind the app did not ask for is neither collected nor sent.
//!
//! Reports are built from the UNI's in-memory index and sessions (no store read per session);
//! they name zones, never cloudlets or capacities.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use op_types::specs::{AppSpec, Telemetry, TelemetryKind};
use op_types::{Kind, Uid};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// One telemetry report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryReport {
    /// The app.
    pub app_id: Uid,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Each instance's zone and state (kind `instances`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceTelemetry>>,
    /// Sessions and distinct devices per zone (kind `sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<ZoneSessions>>,
    /// Expected QoS of the app's sessions per zone (kind `qos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<Vec<ZoneQos>>,
    /// The last push to the app's webhook, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<Delivery>,
}

/// An instance in a report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTelemetry {
    /// Instance id.
    pub app_instance_id: Uid,
    /// Its zone.
    pub edge_cloud_zone_name: String,
    /// Ready to serve.
    pub ready: bool,
}

/// Sessions in one zone (the zone of the instance each session uses).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSessions {
    /// Zone.
    pub edge_cloud_zone_name: String,
    /// Live sessions.
    pub sessions: usize,
    /// Distinct devices among them.
    pub devices: usize,
}

/// The network's expected QoS for the sessions served from one zone, over the sessions whose
/// cell the network gave a figure for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneQos {
    /// Zone.
    pub edge_cloud_zone_name: String,
    /// Sessions with a known path.
    pub measured_sessions: usize,
    /// Mean expected latency, ms.
    pub mean_latency_ms: f64,
    /// Worst expected latency, ms.
    pub max_latency_ms: f64,
    /// Worst expected jitter, ms.
    pub max_jitter_ms: f64,
    /// Least expected bandwidth, Mbit/s.
    pub min_bandwidth_mbps: f64,
}

pub use op_types::views::Delivery;

/// Pushes made, by app (or alarm receiver): when (seconds since the epoch) and how it went.
#[derive(Default)]
pub struct Deliveries(Mutex<HashMap<Uid, (u64, Delivery)>>);

impl Deliveries {
    pub(crate) fn last(&self, app: Uid) -> Option<(u64, Delivery)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&app).cloned()
    }

    pub(crate) fn put(&self, app: Uid, at: u64, d: Delivery) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(app, (at, d));
    }

    fn retain(&self, live: &BTreeSet<Uid>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live.contains(k));
    }
}

/// Builds the report of the kinds `t` names for `app`.
fn report(s: &AppState, app: Uid, t: &Telemetry) -> TelemetryReport {
    let want = |k| t.kinds.contains(&k);
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let zone_name = |z: Uid| ix.zone(z).map_or_else(|| "unknown".to_string(), |z| z.name.to_string());
    let instances = want(TelemetryKind::Instances).then(|| {
        let mut v: Vec<InstanceTelemetry> = ix
            .instances_of(app)
            .map(|i| InstanceTelemetry { app_instance_id: i.uid, edge_cloud_zone_name: zone_name(i.zone), ready: i.ready })
            .collect();
        v.sort_by_key(|i| (i.edge_cloud_zone_name.clone(), i.app_instance_id));
        v
    });
    let users = if want(TelemetryKind::Sessions) || want(TelemetryKind::Qos) {
        s.uni.sessions.users_of(app, op_uni::token::now())
    } else {
        Vec::new()
    };
    // Sessions by the zone of the instance they use (the cloud fallback has none).
    let by_zone = || users.iter().filter_map(|(dev, at, inst)| ix.instance(*inst).and_then(|i| ix.zone(i.zone)).map(|z| (z, dev, at)));
    let sessions = want(TelemetryKind::Sessions).then(|| {
        let mut m: BTreeMap<String, (usize, BTreeSet<&String>)> = BTreeMap::new();
        for (z, dev, _) in by_zone() {
            let e = m.entry(z.name.to_string()).or_default();
            e.0 += 1;
            e.1.insert(dev);
        }
        m.into_iter().map(|(z, (n, d))| ZoneSessions { edge_cloud_zone_name: z, sessions: n, devices: d.len() }).collect()
    });
    let qos = want(TelemetryKind::Qos).then(|| {
        let mut m: BTreeMap<String, Vec<op_uni::select::PathInfo>> = BTreeMap::new();
        for (z, _, at) in by_zone() {
            if let Some(p) = ix.path(at.cell.as_deref(), z) {
                m.entry(z.name.to_string()).or_default().push(p);
            }
        }
        m.into_iter()
            .map(|(z, ps)| ZoneQos {
                edge_cloud_zone_name: z,
                measured_sessions: ps.len(),
                mean_latency_ms: ps.iter().map(|p| p.latency_ms).sum::<f64>() / ps.len() as f64,
                max_latency_ms: ps.iter().map(|p| p.latency_ms).fold(0.0, f64::max),
                max_jitter_ms: ps.iter().map(|p| p.jitter_ms).fold(0.0, f64::max),
                min_bandwidth_mbps: ps.iter().map(|p| p.bandwidth_mbps).fold(f64::INFINITY, f64::min),
            })
            .collect()
    });
    TelemetryReport {
        app_id: app,
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        instances,
        sessions,
        qos,
        last_delivery: s.telemetry.last(app).map(|(_, d)| d),
    }
}

/// The app's telemetry, of the kinds it asked for at onboarding.
#[utoipa::path(get, path = "/op/v1/apps/{appId}/telemetry", tag = "telemetry", security(("bearer" = [])),
    params(("appId" = String, Path)),
    responses((status = 200, body = TelemetryReport), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn get(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<TelemetryReport>, ApiError> {
    let id: Uid = id.parse().map_err(|_| ApiError::invalid("appId", "not an app id"))?;
    let app = s
        .repo
        .get::<AppSpec, ()>(Kind::App, id)
        .await?
        .filter(|a| c.can_read(a.metadata.organization.as_ref()))
        .ok_or_else(|| ApiError::NotFound("App not found".into()))?;
    let t = app.spec.requirements.telemetry.as_ref().ok_or_else(|| {
        ApiError::invalid("requirements.telemetry", "the app was onboarded without telemetry: nothing is collected for it; onboard a version that names telemetry.kinds")
    })?;
    Ok(Json(report(&s, id, t)))
}

/// Pushes due reports to apps' webhooks, checking every `tick`, until the process ends.
pub async fn run(s: AppState, tick: Duration) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "telemetry pushes disabled: no HTTP client");
            return;
        }
    };
    loop {
        if let Err(e) = push_due(&s, &client).await {
            tracing::warn!(error = %e, "telemetry pass failed");
        }
        tokio::time::sleep(tick).await;
    }
}

async fn push_due(s: &AppState, client: &reqwest::Client) -> Result<(), ApiError> {
    let (apps, _) = s.repo.list::<AppSpec, ()>(Kind::App).await?;
    let now = op_uni::token::now();
    s.telemetry.retain(&apps.iter().map(|a| a.metadata.uid).collect());
    for app in &apps {
        let Some(t) = &app.spec.requirements.telemetry else { continue };
        let Some(url) = &t.webhook else { continue };
        let every = u64::from(t.interval_seconds.unwrap_or(60));
        if s.telemetry.last(app.metadata.uid).is_some_and(|(at, _)| now < at + every) {
            continue;
        }
        let body = report(s, app.metadata.uid, t);
        let (delivered, outcome) = match client.post(url).json(&body).send().await {
            Ok(r) => (r.status().is_success(), format!("HTTP {}", r.status().as_u16())),
            Err(e) => (false, format!("not delivered: {}", if e.is_timeout() { "timed out".to_string() } else { e.to_string() })),
        };
        if !delivered {
            tracing::info!(app = %app.metadata.uid, %outcome, "telemetry push failed; retried next interval");
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        s.telemetry.put(app.metadata.uid, now, Delivery { at, delivered, outcome });
    }
    Ok(())
}
