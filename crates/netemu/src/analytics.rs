//! Path-performance analytics, modelled on 3GPP NWDAF `Nnwdaf_AnalyticsInfo` (TS 29.520) with
//! the `DN_PERFORMANCE` analytics event, so the platform can learn the expected latency, jitter
//! and bandwidth from a cell to each DNAI.
//!
//! **This is a simplified shape, not a conformant NWDAF.** The request is
//! `GET /nnwdaf-analyticsinfo/v1/analytics?event-id=DN_PERFORMANCE&event-filter=<JSON>` where the
//! URL-encoded `EventFilter` carries `networkArea.ncgis[].nrCellId` (the scenario's cell ids, not
//! necessarily 36-bit NR cell identities) and/or `networkArea.tais[].tac`, and optionally `dnais`.
//! The answer is an `AnalyticsData` with one `dnPerfInfos` entry whose `dnPerf[]` has one item
//! per (cell, DNAI): `dnai`, `spatialValidCon.ncgis` (the cell) and `perfData` with
//! `avePacketDelay` (ms, a number rather than TS 29.520's integer), `avgTrafficRate` (`BitRate`
//! string, the available bandwidth) and the emulator extension `packetDelayVariation` (jitter,
//! ms), which TS 29.520's `PerfData` does not define. Other query parameters (`ana-req`, `tgt-ue`,
//! `supported-features`) are ignored. Errors are `ProblemDetails`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::NefClient;
use crate::camara::rfc3339;
use crate::error::ProblemError;
use crate::state::Emulator;

/// The analytics event this endpoint answers.
pub const DN_PERFORMANCE: &str = "DN_PERFORMANCE";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EventFilter {
    #[serde(default)]
    dnais: Vec<String>,
    network_area: Option<NetworkArea>,
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

/// `GET /nnwdaf-analyticsinfo/v1/analytics` (simplified `DN_PERFORMANCE`).
pub async fn analytics(
    State(emu): State<Arc<Emulator>>,
    _client: NefClient,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ProblemError> {
    match q.get("event-id").map(String::as_str) {
        Some(DN_PERFORMANCE) => {}
        Some(other) => {
            return Err(ProblemError::invalid_param(
                "event-id",
                format!("'{other}' is not offered by the emulator (only {DN_PERFORMANCE})"),
            ))
        }
        None => return Err(ProblemError::missing("event-id")),
    }
    let filter: EventFilter = match q.get("event-filter") {
        Some(f) => serde_json::from_str(f)
            .map_err(|e| ProblemError::invalid_param("event-filter", format!("not an EventFilter: {e}")))?,
        None => EventFilter::default(),
    };
    let area = filter.network_area.unwrap_or_default();
    let s = &emu.scenario;
    let mut cells = Vec::new();
    for (i, n) in area.ncgis.iter().enumerate() {
        let cell = s.cell(&n.nr_cell_id).ok_or_else(|| {
            ProblemError::invalid_param("event-filter", format!("networkArea.ncgis[{i}].nrCellId: unknown cell '{}'", n.nr_cell_id))
        })?;
        cells.push(cell);
    }
    for (i, t) in area.tais.iter().enumerate() {
        let before = cells.len();
        cells.extend(s.cells.iter().filter(|c| c.tracking_area == t.tac));
        if cells.len() == before {
            return Err(ProblemError::invalid_param(
                "event-filter",
                format!("networkArea.tais[{i}].tac: unknown tracking area '{}'", t.tac),
            ));
        }
    }
    if cells.is_empty() {
        return Err(ProblemError::invalid_param(
            "event-filter",
            "networkArea with ncgis or tais is required for DN_PERFORMANCE in the emulator",
        ));
    }
    let dnais: Vec<String> = if filter.dnais.is_empty() {
        s.upfs.iter().map(|u| u.dnai.clone()).collect()
    } else {
        for (i, d) in filter.dnais.iter().enumerate() {
            if !s.has_dnai(d) {
                return Err(ProblemError::invalid_param("event-filter", format!("dnais[{i}]: unknown DNAI '{d}'")));
            }
        }
        filter.dnais
    };
    let plmn = json!({"mcc": s.operator.mcc, "mnc": s.operator.mnc});
    let mut dn_perf = Vec::new();
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
    let now = chrono::Utc::now();
    Ok(Json(json!({
        "timeStampGen": rfc3339(now),
        "expiry": rfc3339(now + chrono::Duration::seconds(300)),
        "dnPerfInfos": [{"dnPerf": dn_perf, "confidence": 100}],
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bit_rate_strings() {
        assert_eq!(super::bit_rate(100.0), "100 Mbps");
        assert_eq!(super::bit_rate(1.5), "1.5 Mbps");
    }
}
