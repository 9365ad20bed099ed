//! CAMARA Device Location: retrieval (`/location-retrieval/v0.5/retrieve`) and verification
//! (`/location-verification/v3/verify`). The network locates a device to its serving cell: the
//! area is a circle around the cell's centre with the cell's radius.

use std::f64::consts::PI;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::CamaraClient;
use crate::camara::{resolve, rfc3339, CamaraDevice};
use crate::error::{camara_body, CamaraError};
use crate::geo;
use crate::state::{lock, Emulator};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetrievalLocationRequest {
    device: Option<CamaraDevice>,
    max_age: Option<i64>,
    max_surface: Option<i64>,
}

/// Where the network locates device `idx`: cell centre and radius.
fn cell_circle(emu: &Emulator, cell_id: &str) -> Result<(f64, f64, f64), CamaraError> {
    let cell = emu.scenario.cell(cell_id).ok_or_else(|| {
        CamaraError::unprocessable("LOCATION_RETRIEVAL.UNABLE_TO_LOCATE", "The network is unable to locate the device")
    })?;
    Ok((cell.lat, cell.lon, emu.scenario.cell_radius(cell)))
}

/// `POST /location-retrieval/v0.5/retrieve`.
pub async fn retrieve(
    State(emu): State<Arc<Emulator>>,
    _client: CamaraClient,
    body: Bytes,
) -> Result<Json<Value>, CamaraError> {
    let req: RetrievalLocationRequest = camara_body(&body)?;
    if req.max_age.is_some_and(|a| a < 0) {
        return Err(CamaraError::invalid_argument("maxAge: must be >= 0"));
    }
    if req.max_surface.is_some_and(|s| s < 1) {
        return Err(CamaraError::new(axum::http::StatusCode::BAD_REQUEST, "OUT_OF_RANGE", "maxSurface: must be >= 1"));
    }
    let (device, cell) = {
        let world = lock(&emu.world);
        let r = resolve(&emu, &world, req.device.as_ref())?;
        (r.response, world.devices[r.idx].cell.clone())
    };
    let (lat, lon, radius) = cell_circle(&emu, &cell)?;
    if let Some(max) = req.max_surface {
        // Precision loss only matters beyond 2^53 square metres.
        if PI * radius * radius > max as f64 {
            return Err(CamaraError::unprocessable(
                "LOCATION_RETRIEVAL.UNABLE_TO_FULFILL_MAX_SURFACE",
                format!("Unable to provide accurate acceptable surface for location: the serving cell covers {:.0} m2", PI * radius * radius),
            ));
        }
    }
    // The emulated network locates on demand, so the location is always fresh (any maxAge holds).
    Ok(Json(json!({
        "lastLocationTime": rfc3339(chrono::Utc::now()),
        "area": {"areaType": "CIRCLE", "center": {"latitude": lat, "longitude": lon}, "radius": radius},
        "device": device,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyLocationRequest {
    device: Option<CamaraDevice>,
    area: Option<Area>,
    max_age: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Area {
    area_type: Option<String>,
    center: Option<Point>,
    radius: Option<f64>,
}

#[derive(Deserialize)]
struct Point {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// `POST /location-verification/v3/verify`.
pub async fn verify(
    State(emu): State<Arc<Emulator>>,
    _client: CamaraClient,
    body: Bytes,
) -> Result<Json<Value>, CamaraError> {
    let req: VerifyLocationRequest = camara_body(&body)?;
    let area = req.area.ok_or_else(|| CamaraError::invalid_argument("area: is required"))?;
    match area.area_type.as_deref() {
        Some("CIRCLE") => {}
        Some(t) => return Err(CamaraError::invalid_argument(format!("area.areaType: '{t}' is not supported, use CIRCLE"))),
        None => return Err(CamaraError::invalid_argument("area.areaType: is required")),
    }
    let center = area.center.ok_or_else(|| CamaraError::invalid_argument("area.center: is required"))?;
    let lat = center.latitude.ok_or_else(|| CamaraError::invalid_argument("area.center.latitude: is required"))?;
    let lon = center.longitude.ok_or_else(|| CamaraError::invalid_argument("area.center.longitude: is required"))?;
    let out_of_range = |m: &str| CamaraError::new(axum::http::StatusCode::BAD_REQUEST, "OUT_OF_RANGE", m.to_string());
    if !(-90.0..=90.0).contains(&lat) {
        return Err(out_of_range("area.center.latitude: must be between -90 and 90"));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(out_of_range("area.center.longitude: must be between -180 and 180"));
    }
    let radius = area.radius.ok_or_else(|| CamaraError::invalid_argument("area.radius: is required"))?;
    if !(radius.is_finite() && radius >= 1.0) {
        return Err(out_of_range("area.radius: must be >= 1"));
    }
    if req.max_age.is_some_and(|a| a < 0) {
        return Err(CamaraError::invalid_argument("maxAge: must be >= 0"));
    }
    let (device, cell) = {
        let world = lock(&emu.world);
        let r = resolve(&emu, &world, req.device.as_ref())?;
        (r.response, world.devices[r.idx].cell.clone())
    };
    let (clat, clon, cradius) = cell_circle(&emu, &cell).map_err(|_| {
        CamaraError::unprocessable("LOCATION_VERIFICATION.UNABLE_TO_LOCATE", "The network is unable to locate the device")
    })?;
    let d = geo::distance_m(clat, clon, lat, lon);
    let mut out = json!({"lastLocationTime": rfc3339(chrono::Utc::now()), "device": device});
    match geo::verify(cradius, radius, d) {
        geo::Match::True => out["verificationResult"] = json!("TRUE"),
        geo::Match::False => out["verificationResult"] = json!("FALSE"),
        geo::Match::Partial(rate) => {
            out["verificationResult"] = json!("PARTIAL");
            out["matchRate"] = json!(rate);
        }
    }
    Ok(Json(out))
}
