//! Analytics modelled on 3GPP NWDAF `Nnwdaf_AnalyticsInfo` (TS 29.520): the `DN_PERFORMANCE`
//! event, so the platform can learn the expected latency, jitter and bandwidth from cells to
//! DNAIs, and the `NETWORK_PERFORMANCE` event with `NUM_OF_UE`, so it can learn how loaded cells
//! are.
//!
//! **This is a simplified shape, not a conformant NWDAF.** The request is
//! `GET /nnwdaf-analyticsinfo/v1/analytics?event-id=<event>&event-filter=<JSON>` where the
//! URL-encoded `EventFilter` carries `networkArea.ncgis[].nrCellId` (the scenario's cell ids, not
//! necessarily 36-bit NR cell identities; `plmnId` is not needed) and/or `networkArea.tais[].tac`.
//! Cells and tracking areas the scenario does not know are left out of the answer, as are DNAIs
//! it does not know; when a filter names cells but none is known (or, for `DN_PERFORMANCE`, no
//! DNAI is), the answer is `204 No Content`, as TS 29.520 answers when no analytics exist. Other
//! query parameters (`ana-req`, `tgt-ue`, `supported-features`) are ignored; the answer is computed
//! from the live state, not from collected statistics, and always has `confidence: 100`. Errors
//! are `ProblemDetails`.
//!
//! - `DN_PERFORMANCE`: the filter needs an area (ncgis or tais) and may list `dnais` (default:
//!   every DNAI). The answer is an `AnalyticsData` with one `dnPerfInfos` entry whose `dnPerf[]`
//!   has one item per known (cell, DNAI) pair, the full cross product: `dnai`,
//!   `spatialValidCon.ncgis` (the cell) and `perfData` with `avePacketDelay` (ms, a number rather
//!   than TS 29.520's integer), `avgTrafficRate` (`BitRate` string, the available bandwidth) and
//!   the emulator extension `packetDelayVariation` (jitter, ms), which TS 29.520's `PerfData` does
//!   not define.
//! - `NETWORK_PERFORMANCE`: the filter may name cells (default: every cell) and `nwPerfTypes`
//!   (only `NUM_OF_UE` is offered, and is the default). The answer is an `AnalyticsData` whose
//!   `nwPerfs[]` has one `NetworkPerfInfo` per cell: `networkArea.ncgis` (the cell),
//!   `nwPerfType` (`NUM_OF_UE`), `absoluteNum` (the scenario devices the cell serves now plus its
//!   background UEs: scenario `backgroundUes`, changed by `POST /emulator/v1/cells/{cell}/load`) and
//!   `relativeRatio` (that number in percent of the cell's `capacityUes`, rounded and held within
//!   the `SamplingRatio` range 1..=100, so an idle cell reads 1). A real NWDAF counts UEs from
//!   AMF/OAM data over an analytics period; the emulator counts the instant's state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::NefClient;
use crate::camara::rfc3339;
use crate::error::ProblemError;
use crate::scenario::{Cell, Scenario};
use crate::state::{lock, Emulator};

/// The analytics event of path performance between cells and DNAIs.
pub const DN_PERFORMANCE: &str = "DN_PERFORMANCE";
/// The analytics event of network (here: cell load) performance.
pub const NETWORK_PERFORMANCE: &str = "NETWORK_PERFORMANCE";
/// The `NetworkPerfType` the emulator offers: number of UEs in the area.
pub const NUM_OF_UE: &str = "NUM_OF_UE";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EventFilter {
    #[serde(default)]
    dnais: Vec<String>,
    network_area: Option<NetworkArea>,
    #[serde(default)]
    nw_perf_types: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NetworkArea {
    #[serde(default)]
    ncgis: Vec<Ncgi>,
    #[serde(default)]
    tais: Vec<Tai>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ncgi {
    nr_cell_id: String,
}

#[derive(Deserialize)]
struct Tai {
    tac: String,
}

/// `BitRate` string (TS 29.571) for a rate in Mbit/s.
fn bit_rate(mbps: f64) -> String {
    format!("{mbps} Mbps")
}

/// The known cells an area designates, each once, in request order; `None` when the area names
/// no cell and no tracking area at all.
fn cells_of<'s>(s: &'s Scenario, area: &NetworkArea) -> Option<Vec<&'s Cell>> {
    if area.ncgis.is_empty() && area.tais.is_empty() {
        return None;
    }
    let mut seen = HashSet::new();
    let by_id = area.ncgis.iter().filter_map(|n| s.cell(&n.nr_cell_id));
    let by_ta = area
        .tais
        .iter()
        .flat_map(|t| s.cells.iter().filter(move |c| c.tracking_area == t.tac));
    Some(
        by_id
            .chain(by_ta)
            .filter(|c| seen.insert(c.id.as_str()))
            .collect(),
    )
}

/// `AnalyticsData` with its generation time and a 5-minute validity, plus `fields`.
fn analytics_data(fields: Value) -> Response {
    let now = chrono::Utc::now();
    let mut v = json!({
        "timeStampGen": rfc3339(now),
        "expiry": rfc3339(now + chrono::Duration::seconds(300)),
    });
    if let (Some(out), Value::Object(extra)) = (v.as_object_mut(), fields) {
        out.extend(extra);
    }
    Json(v).into_response()
}

/// `GET /nnwdaf-analyticsinfo/v1/analytics` (simplified `DN_PERFORMANCE` and `NETWORK_PERFORMANCE`).
pub async fn analytics(
    State(emu): State<Arc<Emulator>>,
    _client: NefClient,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ProblemError> {
    let event = match q.get("event-id").map(String::as_str) {
        Some(e @ (DN_PERFORMANCE | NETWORK_PERFORMANCE)) => e,
        Some(other) => {
            return Err(ProblemError::invalid_param(
                "event-id",
                format!("'{other}' is not offered by the emulator (only {DN_PERFORMANCE} and {NETWORK_PERFORMANCE})"),
            ))
        }
        None => return Err(ProblemError::missing("event-id")),
    };
    let filter: EventFilter = match q.get("event-filter") {
        Some(f) => serde_json::from_str(f).map_err(|e| {
            ProblemError::invalid_param("event-filter", format!("not an EventFilter: {e}"))
        })?,
        None => EventFilter::default(),
    };
    if event == DN_PERFORMANCE {
        dn_performance(&emu, filter)
    } else {
        network_performance(&emu, filter)
    }
}

fn dn_performance(emu: &Emulator, filter: EventFilter) -> Result<Response, ProblemError> {
    let s = &emu.scenario;
    let area = filter.network_area.unwrap_or_default();
    let Some(cells) = cells_of(s, &area) else {
        return Err(ProblemError::invalid_param(
            "event-filter",
            "networkArea with ncgis or tais is required for DN_PERFORMANCE in the emulator",
        ));
    };
    let dnais: Vec<&str> = if filter.dnais.is_empty() {
        s.upfs.iter().map(|u| u.dnai.as_str()).collect()
    } else {
        let mut seen = HashSet::new();
        filter
            .dnais
            .iter()
            .map(String::as_str)
            .filter(|d| s.has_dnai(d) && seen.insert(*d))
            .collect()
    };
    if cells.is_empty() || dnais.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let plmn = json!({"mcc": s.operator.mcc, "mnc": s.operator.mnc});
    let mut dn_perf = Vec::with_capacity(cells.len() * dnais.len());
    for cell in &cells {
        for dnai in &dnais {
            let p = s.path_perf(cell, dnai);
            dn_perf.push(json!({
                "dnai": dnai,
                "spatialValidCon": {"ncgis": [{"plmnId": plmn, "nrCellId": cell.id}]},
                "perfData": {
                    "avePacketDelay": p.latency_ms,
                    "avgTrafficRate": bit_rate(p.bandwidth_mbps),
                    "packetDelayVariation": p.jitter_ms,
                },
            }));
        }
    }
    Ok(analytics_data(
        json!({"dnPerfInfos": [{"dnPerf": dn_perf, "confidence": 100}]}),
    ))
}

fn network_performance(emu: &Emulator, filter: EventFilter) -> Result<Response, ProblemError> {
    for (i, t) in filter.nw_perf_types.iter().enumerate() {
        if t != NUM_OF_UE {
            return Err(ProblemError::invalid_param(
                "event-filter",
                format!(
                    "nwPerfTypes[{i}]: '{t}' is not offered by the emulator (only {NUM_OF_UE})"
                ),
            ));
        }
    }
    let s = &emu.scenario;
    let area = filter.network_area.unwrap_or_default();
    let cells = cells_of(s, &area).unwrap_or_else(|| s.cells.iter().collect());
    if cells.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let plmn = json!({"mcc": s.operator.mcc, "mnc": s.operator.mnc});
    let world = lock(&emu.world);
    let nw_perfs: Vec<Value> = cells
        .iter()
        .map(|cell| {
            let load = emu.cell_view(&world, cell);
            json!({
                "networkArea": {"ncgis": [{"plmnId": plmn, "nrCellId": cell.id}]},
                "nwPerfType": NUM_OF_UE,
                "relativeRatio": load.relative_ratio,
                "absoluteNum": load.ues,
                "confidence": 100,
            })
        })
        .collect();
    drop(world);
    Ok(analytics_data(json!({"nwPerfs": nw_perfs})))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bit_rate_strings() {
        assert_eq!(super::bit_rate(100.0), "100 Mbps");
        assert_eq!(super::bit_rate(1.5), "1.5 Mbps");
    }
}
