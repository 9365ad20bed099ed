//! Instantiation strategies (OPG.02): deploy an app on every available edge of its footprint,
//! or on the minimum number of edges that covers the footprint's cells within a latency bound.
//! (One named edge is CAMARA's `POST /appinstances`; dynamic instantiation is the UNI's.)
//!
//! Each chosen zone goes through the same admission as a single deployment; a zone that
//! already runs the app is reported, not deployed twice, so asking again is harmless.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use op_placement::cover::{self, CoverProblem, Limits, Method};
use op_types::specs::{App, AppInstance, AppSpec, CloudletObserved, CloudletSpec, GeoPoint, ZoneSpec};
use op_types::{Kind, Name, Object, Uid};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::state::AppState;
pub use op_types::views::{LatencySources, PlacedZone, PlacementResult};

/// How to place an app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", tag = "strategy", deny_unknown_fields)]
pub enum PlacementRequest {
    /// One instance on every zone of the footprint with a cloudlet accepting instances.
    EveryEdge,
    /// The fewest zones whose reach covers every cell of the footprint within the bound.
    MinimumCover {
        /// Latency bound, ms (default: the app's `requirements.maxLatencyMs`).
        #[serde(default, rename = "maxLatencyMs")]
        max_latency_ms: Option<f64>,
    },
}

/// The latency the cover plan assumes from a cell to a zone when the network's view has no
/// figure for the pair: 1 ms plus 1 ms per 100 km between the cell's serving zone and the zone
/// (fibre and routing). Discovery checks each device's path against the bound anyway.
fn modelled_latency_ms(from: GeoPoint, to: GeoPoint) -> f64 {
    1.0 + op_uni::geo::distance_km(from, to) / 100.0
}

/// Place an app by strategy: on every edge of its footprint, or on the minimum cover of it.
#[utoipa::path(post, path = "/op/v1/apps/{appId}/placements", tag = "placement", security(("bearer" = [])),
    params(("appId" = String, Path)), request_body = PlacementRequest,
    responses((status = 202, body = PlacementResult), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn place(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<PlacementRequest>,
) -> Result<(StatusCode, Json<PlacementResult>), ApiError> {
    let id: Uid = id.parse().map_err(|_| ApiError::invalid("appId", "not an app id"))?;
    let app: App = s
        .repo
        .get::<AppSpec, ()>(Kind::App, id)
        .await?
        .filter(|a| c.can_read(a.metadata.organization.as_ref()))
        .ok_or_else(|| ApiError::NotFound("App not found".into()))?;
    let org = app.metadata.organization.clone().ok_or_else(|| ApiError::Internal("app without organization".into()))?;
    c.require_write(&org)?;
    // Zones the app may run in, with a cloudlet accepting instances.
    let (zones, _) = s.repo.list::<ZoneSpec, ()>(Kind::Zone).await?;
    let (cloudlets, _) = s.repo.list::<CloudletSpec, CloudletObserved>(Kind::Cloudlet).await?;
    let open: BTreeSet<&Name> = cloudlets.iter().filter(|c| !c.spec.maintenance).map(|c| &c.spec.zone).collect();
    let r = &app.spec.requirements;
    let allowed: Vec<&Object<ZoneSpec>> = zones
        .iter()
        .filter(|z| open.contains(&z.metadata.name))
        .filter(|z| op_uni::select::outside_footprint(&r.footprint, z.metadata.uid, &z.spec.region, &z.spec.service_area.cells, z.spec.location).is_none())
        .filter(|z| r.data_regions.is_empty() || r.data_regions.contains(&z.spec.region))
        .collect();
    let mut result = PlacementResult { zones: Vec::new(), method: None, lower_bound: None, uncovered_cells: Vec::new(), latencies: None };
    let chosen: Vec<&Object<ZoneSpec>> = match req {
        PlacementRequest::EveryEdge => allowed,
        PlacementRequest::MinimumCover { max_latency_ms } => {
            let bound = max_latency_ms.or(r.max_latency_ms).ok_or_else(|| {
                ApiError::invalid("maxLatencyMs", "give a latency bound, or onboard the app with requirements.maxLatencyMs")
            })?;
            if !(bound.is_finite() && bound > 0.0) {
                return Err(ApiError::invalid("maxLatencyMs", "must be a positive number"));
            }
            // The footprint's cells: the ones it names, else every cell its zones serve; each
            // located at the zone that serves it.
            let mut cells: BTreeMap<String, GeoPoint> = BTreeMap::new();
            for z in &zones {
                for cell in &z.spec.service_area.cells {
                    let wanted = if r.footprint.cells.is_empty() { allowed.iter().any(|a| a.metadata.uid == z.metadata.uid) } else { r.footprint.cells.contains(cell) };
                    if wanted {
                        cells.entry(cell.clone()).or_insert(z.spec.location);
                    }
                }
            }
            if cells.is_empty() {
                return Err(ApiError::invalid("strategy", "the app's footprint holds no cell to cover; give requirements.footprint.cells or zones with service areas"));
            }
            let names: Vec<&String> = cells.keys().collect();
            // Latency per (cell, zone): the network's figure when its view has one, else the
            // distance model.
            let mut sources = LatencySources { network: 0, modelled: 0 };
            let sets = {
                let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
                allowed
                    .iter()
                    .map(|z| {
                        let entry = ix.zone(z.metadata.uid);
                        cells
                            .iter()
                            .enumerate()
                            .filter(|(_, (cell, at))| {
                                let latency = match entry.and_then(|e| ix.path(Some(cell.as_str()), e)) {
                                    Some(p) => {
                                        sources.network += 1;
                                        p.latency_ms
                                    }
                                    None => {
                                        sources.modelled += 1;
                                        modelled_latency_ms(**at, z.spec.location)
                                    }
                                };
                                latency <= bound
                            })
                            .map(|(i, _)| i as u32)
                            .collect()
                    })
                    .collect()
            };
            result.latencies = Some(sources);
            let problem = CoverProblem { elements: cells.len(), sets };
            let cover = cover::solve(&problem, Limits::default());
            result.method = Some(if cover.method == Method::Exact { "exact" } else { "greedy" }.into());
            result.lower_bound = Some(cover.lower_bound);
            result.uncovered_cells = cover.uncovered.iter().map(|e| names[*e as usize].clone()).collect();
            cover.chosen.iter().map(|j| allowed[*j]).collect()
        }
    };
    let (instances, _) = s.repo.list::<op_types::specs::AppInstanceSpec, op_types::specs::InstanceObserved>(Kind::AppInstance).await?;
    for z in chosen {
        let existing: Option<&AppInstance> =
            instances.iter().find(|i| i.spec.app_id == app.metadata.uid && i.spec.edge_cloud_zone_id == z.metadata.uid && i.metadata.deletion_requested.is_none());
        let mut placed = PlacedZone {
            edge_cloud_zone_id: z.metadata.uid,
            edge_cloud_zone_name: z.metadata.name.to_string(),
            outcome: "existing".into(),
            app_instance_id: existing.map(|i| i.metadata.uid),
            reason: None,
        };
        if existing.is_none() {
            let name = crate::camara::platform_instance_name(&app.metadata.name, "z", z.metadata.uid)?;
            match crate::camara::create_instance(&s, &app, z, name, &c.user).await {
                Ok(inst) => {
                    placed.outcome = "created".into();
                    placed.app_instance_id = Some(inst.metadata.uid);
                }
                Err(e) => {
                    placed.outcome = "refused".into();
                    placed.reason = Some(e.to_string());
                }
            }
        }
        result.zones.push(placed);
    }
    Ok((StatusCode::ACCEPTED, Json(result)))
}
