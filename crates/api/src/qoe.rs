//! Quality of experience per zone, from device probes: what devices measured to the instance
//! they chose (`measuredLatencyMs` at confirmation), kept per app and zone over the last hour
//! (at most [`KEEP`] probes each), set against what the network expects for the same paths.
//! Developers see their apps'; the operator sees every app and each zone over all apps.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::Json;
use op_types::observe::{QoeSummary as Summary, ZoneQoe};
use op_types::{Name, Uid};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// Probes kept per app and zone.
pub const KEEP: usize = 1000;
/// How long a probe counts.
pub const WINDOW: Duration = Duration::from_secs(3600);

struct Probe {
    at: Instant,
    measured_ms: f64,
    expected_ms: Option<f64>,
}

/// The probes, by (app, zone).
#[derive(Default)]
pub struct Qoe(Mutex<HashMap<(Uid, Uid), VecDeque<Probe>>>);

impl Qoe {
    /// Records one probe of `app`'s instance in `zone`: `measured_ms` by the device, and what
    /// the network expected for its path, when it said.
    pub fn record(&self, app: Uid, zone: Uid, measured_ms: f64, expected_ms: Option<f64>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let q = m.entry((app, zone)).or_default();
        q.push_back(Probe { at: Instant::now(), measured_ms, expected_ms });
        while q.len() > KEEP || q.front().is_some_and(|p| p.at.elapsed() > WINDOW) {
            q.pop_front();
        }
    }

    fn summaries(&self, keep: impl Fn(Uid) -> bool) -> Vec<(Uid, Uid, Summary)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((app, _), _)| keep(*app))
            .filter_map(|((app, zone), q)| {
                let recent: Vec<&Probe> = q.iter().filter(|p| p.at.elapsed() <= WINDOW).collect();
                summarize(&recent).map(|s| (*app, *zone, s))
            })
            .collect()
    }
}

fn summarize(probes: &[&Probe]) -> Option<Summary> {
    if probes.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = probes.iter().map(|p| p.measured_ms).collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let expected: Vec<f64> = probes.iter().filter_map(|p| p.expected_ms).collect();
    Some(Summary {
        probes: v.len(),
        mean_ms: v.iter().sum::<f64>() / v.len() as f64,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        max_ms: v[v.len() - 1],
        expected_mean_ms: (!expected.is_empty()).then(|| expected.iter().sum::<f64>() / expected.len() as f64),
    })
}

/// Filters of `GET /op/v1/qoe`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct QoeQuery {
    /// Only this app's.
    pub app_id: Option<Uid>,
    /// Per zone over all apps (the operator's view).
    #[serde(default)]
    pub by_zone: bool,
}

/// QoE per zone from device probes: per app and zone for the caller's apps; with `byZone`, the
/// operator's totals per zone over every app.
#[utoipa::path(get, path = "/op/v1/qoe", tag = "resources", security(("bearer" = [])), params(QoeQuery),
    responses((status = 200, body = Vec<ZoneQoe>), (status = 401, body = ErrorInfo), (status = 403, body = ErrorInfo)))]
pub async fn list(State(s): State<AppState>, c: Caller, Query(q): Query<QoeQuery>) -> Result<Json<Vec<ZoneQoe>>, ApiError> {
    if q.by_zone {
        c.require_operator()?;
    }
    let (org_of, zone_name): (HashMap<Uid, Name>, HashMap<Uid, String>) = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        (ix.apps().map(|a| (a.uid, a.org.clone())).collect(), ix.zones().map(|z| (z.uid, z.name.to_string())).collect())
    };
    let visible = |app: Uid| c.can_read(org_of.get(&app)) && q.app_id.is_none_or(|a| a == app);
    let name = |z: Uid| zone_name.get(&z).cloned().unwrap_or_else(|| z.to_string());
    let mut out: Vec<ZoneQoe> = if q.by_zone {
        // Pool the probes of every app per zone.
        let m = s.qoe.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut per_zone: HashMap<Uid, Vec<&Probe>> = HashMap::new();
        for ((_, zone), probes) in m.iter() {
            per_zone.entry(*zone).or_default().extend(probes.iter().filter(|p| p.at.elapsed() <= WINDOW));
        }
        per_zone.into_iter().filter_map(|(z, ps)| summarize(&ps).map(|summary| ZoneQoe { app_id: None, edge_cloud_zone_id: z, edge_cloud_zone_name: name(z), summary })).collect()
    } else {
        s.qoe.summaries(visible).into_iter().map(|(app, z, summary)| ZoneQoe { app_id: Some(app), edge_cloud_zone_id: z, edge_cloud_zone_name: name(z), summary }).collect()
    };
    out.sort_by(|a, b| (a.edge_cloud_zone_name.as_str(), a.app_id).cmp(&(b.edge_cloud_zone_name.as_str(), b.app_id)));
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_expectations() {
        let q = Qoe::default();
        let (app, zone) = (Uid::random(), Uid::random());
        for ms in 1..=100 {
            q.record(app, zone, f64::from(ms), (ms % 2 == 0).then_some(10.0));
        }
        let s = q.summaries(|_| true);
        assert_eq!(s.len(), 1);
        let x = &s[0].2;
        assert_eq!((x.probes, x.p50_ms, x.p95_ms, x.max_ms), (100, 51.0, 95.0, 100.0));
        assert!((x.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(x.expected_mean_ms, Some(10.0));
        assert!(q.summaries(|a| a != app).is_empty(), "another app's probes are not shown");
        for _ in 0..(KEEP + 10) {
            q.record(app, zone, 1.0, None);
        }
        assert_eq!(q.summaries(|_| true)[0].2.probes, KEEP, "at most KEEP probes are kept");
    }
}
