//! The emulator's own control API under `/emulator/v1` — **emulator-only, not a standard API**
//! and not protected by tokens: tests and operators of the lab use it to trigger events now, read
//! the network's state and start over.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/emulator/v1/scenario` | the running scenario (client secrets redacted) |
//! | GET | `/emulator/v1/devices` | every device's state (cell, addresses, traffic DNAI) |
//! | GET | `/emulator/v1/devices/{device}` | one device (name, phone number, NAI or IP address) |
//! | POST | `/emulator/v1/devices/{device}/move` | `{"cell": "<id>"}`: handover now, NEF notifications sent |
//! | POST | `/emulator/v1/devices/{device}/ip` | `{"ipv4Address": "a.b.c.d"}`: new PDU session address now |
//! | POST | `/emulator/v1/devices/{device}/roam` | `{"servingPlmn": "23415"}`: served by that PLMN now (the operator's own: home again), NEF notifications sent |
//! | GET | `/emulator/v1/cells` | every cell's load (devices, background UEs, capacity, `relativeRatio`) |
//! | GET | `/emulator/v1/cells/{cell}` | one cell's load |
//! | POST | `/emulator/v1/cells/{cell}/load` | `{"backgroundUes": n}`: the cell's background UEs from now on |
//! | POST | `/emulator/v1/reset` | back to the scenario's start (cells, PLMNs, loads), event clock restarted |
//! | POST | `/emulator/v1/tokens/revoke` | invalidate every access token issued so far |
//! | GET | `/emulator/v1/history` | device events applied (scripted and triggered; cell loads are not device events and are not recorded) |
//! | GET | `/emulator/v1/notifications` | NEF notification deliveries and their outcome |

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{camara_body, CamaraError};
use crate::scenario::{Action, Scenario};
use crate::state::{lock, CellView, Delivery, DeviceView, Emulator, HistoryEntry};

/// The admin routes, to nest under `/emulator/v1`.
pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/scenario", get(scenario))
        .route("/devices", get(devices))
        .route("/devices/{device}", get(device))
        .route("/devices/{device}/move", post(move_device))
        .route("/devices/{device}/ip", post(change_ip))
        .route("/devices/{device}/roam", post(roam))
        .route("/cells", get(cells))
        .route("/cells/{cell}", get(cell))
        .route("/cells/{cell}/load", post(cell_load))
        .route("/reset", post(reset))
        .route("/tokens/revoke", post(revoke))
        .route("/history", get(history))
        .route("/notifications", get(notifications))
}

async fn scenario(State(emu): State<Arc<Emulator>>) -> Json<Scenario> {
    Json(emu.scenario.redacted())
}

async fn devices(State(emu): State<Arc<Emulator>>) -> Json<Vec<DeviceView>> {
    Json(emu.devices())
}

fn find(emu: &Emulator, reference: &str) -> Result<usize, CamaraError> {
    let world = lock(&emu.world);
    emu.find_any(&world, reference)
        .ok_or_else(|| CamaraError::identifier_not_found(format!("device: no device named, numbered or addressed '{reference}'")))
}

async fn device(State(emu): State<Arc<Emulator>>, Path(reference): Path<String>) -> Result<Json<DeviceView>, CamaraError> {
    let idx = find(&emu, &reference)?;
    let world = lock(&emu.world);
    Ok(Json(emu.view(&world, idx)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveRequest {
    cell: String,
}

async fn move_device(
    State(emu): State<Arc<Emulator>>,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Json<DeviceView>, CamaraError> {
    let req: MoveRequest = camara_body(&body)?;
    let idx = find(&emu, &reference)?;
    emu.apply(idx, &Action::Move { cell: req.cell }, "admin").map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IpRequest {
    ipv4_address: Ipv4Addr,
}

async fn change_ip(
    State(emu): State<Arc<Emulator>>,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Json<DeviceView>, CamaraError> {
    let req: IpRequest = camara_body(&body)?;
    let idx = find(&emu, &reference)?;
    emu.apply(idx, &Action::IpChange { ipv4_address: req.ipv4_address }, "admin").map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RoamRequest {
    serving_plmn: String,
}

async fn roam(
    State(emu): State<Arc<Emulator>>,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Json<DeviceView>, CamaraError> {
    let req: RoamRequest = camara_body(&body)?;
    let idx = find(&emu, &reference)?;
    emu.apply(
        idx,
        &Action::Roam {
            serving_plmn: req.serving_plmn,
        },
        "admin",
    )
    .map(Json)
}

async fn cells(State(emu): State<Arc<Emulator>>) -> Json<Vec<CellView>> {
    Json(emu.cells())
}

fn unknown_cell(id: &str) -> CamaraError {
    CamaraError::not_found(format!("cell: no cell '{id}' in this network"))
}

async fn cell(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
) -> Result<Json<CellView>, CamaraError> {
    emu.cell(&id).map(Json).ok_or_else(|| unknown_cell(&id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoadRequest {
    background_ues: u64,
}

async fn cell_load(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CellView>, CamaraError> {
    let req: LoadRequest = camara_body(&body)?;
    emu.set_background_ues(&id, req.background_ues)
        .map(Json)
        .ok_or_else(|| unknown_cell(&id))
}

async fn reset(State(emu): State<Arc<Emulator>>) -> StatusCode {
    emu.reset();
    StatusCode::NO_CONTENT
}

async fn revoke(State(emu): State<Arc<Emulator>>) -> StatusCode {
    emu.tokens.revoke_all();
    StatusCode::NO_CONTENT
}

async fn history(State(emu): State<Arc<Emulator>>) -> Json<Vec<HistoryEntry>> {
    Json(emu.history())
}

async fn notifications(State(emu): State<Arc<Emulator>>) -> Json<Vec<Delivery>> {
    Json(emu.deliveries())
}
