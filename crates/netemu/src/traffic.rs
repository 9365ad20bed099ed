//! CAMARA Traffic Influence (`/traffic-influence/v0.10`): create (for any user or one device),
//! list, read, patch and delete `TrafficInfluence` resources, owned by the calling client.
//!
//! The emulator records where an influenced device's traffic breaks out: the DNAI at which the
//! requested `edgeCloudZoneId` is reachable (scenario `upfs[].edgeCloudZoneIds`, or a zone id that
//! is a DNAI), else the DNAI serving the device's cell. `GET /emulator/v1/devices/{device}` shows
//! it as `trafficDnai`. Resources are `active` at once; no CloudEvents are sent.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::CamaraClient;
use crate::camara::{resolve, CamaraDevice};
use crate::error::{camara_body, CamaraError};
use crate::state::{lock, Emulator, World};

const BASE: &str = "/traffic-influence/v0.10";

/// CAMARA `TrafficInfluence` (plus the request-only `device`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TiResource {
    /// Resource id (read-only).
    #[serde(rename = "trafficInfluenceID", default, skip_serializing_if = "Option::is_none")]
    pub traffic_influence_id: Option<String>,
    /// The API consumer (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_consumer_id: Option<String>,
    /// The application (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The instance to reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_cloud_region: Option<String>,
    /// Zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_cloud_zone_id: Option<String>,
    /// Lifecycle state (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Source port filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_traffic_filters: Option<Value>,
    /// Destination port/protocol filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_traffic_filters: Option<Value>,
    /// Notification subscription (stored, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_request: Option<Value>,
    /// The device (request only: for privacy it is never returned).
    #[serde(default, skip_serializing)]
    pub device: Option<CamaraDevice>,
}

/// A stored traffic influence.
pub(crate) struct Influence {
    pub id: String,
    pub owner: String,
    pub seq: u64,
    pub device: Option<usize>,
    pub dnai: Option<String>,
    pub resource: TiResource,
}

fn dnai_for(emu: &Emulator, world: &World, zone: Option<&str>, device: Option<usize>) -> Option<String> {
    zone.and_then(|z| emu.scenario.dnai_for_zone(z))
        .or_else(|| device.and_then(|i| emu.scenario.dnais_serving(&world.devices[i].cell).into_iter().next()))
}

fn created(emu: &Emulator, resource: &TiResource, id: &str) -> Response {
    let location = format!("{}{BASE}/traffic-influences/{id}", emu.base_url);
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(resource)).into_response()
}

fn create(emu: &Emulator, owner: &str, mut req: TiResource, per_device: bool) -> Result<Response, CamaraError> {
    if req.api_consumer_id.as_deref().is_none_or(str::is_empty) {
        return Err(CamaraError::invalid_argument("apiConsumerId: is required"));
    }
    if req.app_id.as_deref().is_none_or(str::is_empty) {
        return Err(CamaraError::invalid_argument("appId: is required"));
    }
    let mut world = lock(&emu.world);
    let device = if per_device {
        let r = resolve(emu, &world, req.device.as_ref())?;
        Some(r.idx)
    } else {
        None
    };
    req.device = None;
    let id = uuid::Uuid::new_v4().to_string();
    req.traffic_influence_id = Some(id.clone());
    req.state = Some("active".into());
    let dnai = dnai_for(emu, &world, req.edge_cloud_zone_id.as_deref(), device);
    let seq = world.next_seq();
    let resp = created(emu, &req, &id);
    tracing::info!(%id, ?device, ?dnai, "traffic influence created");
    world
        .influences
        .insert(id.clone(), Influence { id, owner: owner.to_string(), seq, device, dnai, resource: req });
    Ok(resp)
}

/// `POST /traffic-influences`: for any user.
pub async fn create_any(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    body: Bytes,
) -> Result<Response, CamaraError> {
    create(&emu, &owner, camara_body(&body)?, false)
}

/// `POST /traffic-influence-devices`: for one device.
pub async fn create_device(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    body: Bytes,
) -> Result<Response, CamaraError> {
    create(&emu, &owner, camara_body(&body)?, true)
}

/// `GET /traffic-influences?appId=`: the caller's resources.
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Vec<TiResource>> {
    let world = lock(&emu.world);
    let app = q.get("appId");
    Json(
        world
            .influences
            .values()
            .filter(|i| i.owner == owner && app.is_none_or(|a| i.resource.app_id.as_ref() == Some(a)))
            .map(|i| i.resource.clone())
            .collect(),
    )
}

fn not_found(id: &str) -> CamaraError {
    CamaraError::not_found(format!("trafficInfluenceID: no traffic influence '{id}'"))
}

/// `GET /traffic-influences/{trafficInfluenceID}`.
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Path(id): Path<String>,
) -> Result<Json<TiResource>, CamaraError> {
    let world = lock(&emu.world);
    world
        .influences
        .get(&id)
        .filter(|i| i.owner == owner)
        .map(|i| Json(i.resource.clone()))
        .ok_or_else(|| not_found(&id))
}

/// `PATCH /traffic-influences/{trafficInfluenceID}`: instance, zone, region and filters change;
/// read-only attributes and the device are ignored.
pub async fn patch(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TiResource>, CamaraError> {
    let req: TiResource = camara_body(&body)?;
    let mut world = lock(&emu.world);
    let (device, zone) = {
        let inf = world.influences.get_mut(&id).filter(|i| i.owner == owner).ok_or_else(|| not_found(&id))?;
        let r = &mut inf.resource;
        if req.app_instance_id.is_some() {
            r.app_instance_id = req.app_instance_id;
        }
        if req.edge_cloud_region.is_some() {
            r.edge_cloud_region = req.edge_cloud_region;
        }
        if req.edge_cloud_zone_id.is_some() {
            r.edge_cloud_zone_id = req.edge_cloud_zone_id;
        }
        if req.source_traffic_filters.is_some() {
            r.source_traffic_filters = req.source_traffic_filters;
        }
        if req.destination_traffic_filters.is_some() {
            r.destination_traffic_filters = req.destination_traffic_filters;
        }
        if req.subscription_request.is_some() {
            r.subscription_request = req.subscription_request;
        }
        (inf.device, r.edge_cloud_zone_id.clone())
    };
    let dnai = dnai_for(&emu, &world, zone.as_deref(), device);
    let seq = world.next_seq();
    let inf = world.influences.get_mut(&id).ok_or_else(|| not_found(&id))?;
    inf.dnai = dnai;
    inf.seq = seq;
    Ok(Json(inf.resource.clone()))
}

/// `DELETE /traffic-influences/{trafficInfluenceID}`: 202, the resource is gone at once.
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    CamaraClient(owner): CamaraClient,
    Path(id): Path<String>,
) -> Result<StatusCode, CamaraError> {
    let mut world = lock(&emu.world);
    if world.influences.get(&id).is_none_or(|i| i.owner != owner) {
        return Err(not_found(&id));
    }
    world.influences.remove(&id);
    tracing::info!(%id, "traffic influence deleted");
    Ok(StatusCode::ACCEPTED)
}
