//! `op-netemu`: a mobile-network emulator that serves the standard exposure APIs, so the
//! platform's network adapter (`op_network::StandardAdapter`) is tested against the real wire
//! format instead of a mock of its own making, and a lab can run without a 5G core.
//!
//! It runs a [`scenario::Scenario`] (operator, cells and their load, UPFs/DNAIs, devices and their
//! serving PLMN, path performance, scripted moves and IP changes) and serves, under one base URL (`apiRoot`):
//!
//! | API | paths | spec |
//! | --- | --- | --- |
//! | OAuth2 client credentials | `POST /oauth2/token` | RFC 6749 §4.4 |
//! | CAMARA Device Location retrieval | `POST /location-retrieval/v0.5/retrieve` | `camara/DeviceLocation/location-retrieval.yaml` |
//! | CAMARA Device Location verification | `POST /location-verification/v3/verify` | `camara/DeviceLocation/location-verification.yaml` |
//! | CAMARA Traffic Influence | `/traffic-influence/v0.10/traffic-influences[/{id}]`, `/traffic-influence-devices` | `camara/TrafficInfluence/traffic-influence.yaml` |
//! | CAMARA Quality on Demand | `/quality-on-demand/v1/sessions[/{id}[/extend]]`, `/retrieve-sessions` | `camara/QualityOnDemand/quality-on-demand.yaml` |
//! | 3GPP NEF MonitoringEvent | `/3gpp-monitoring-event/v1/{scsAsId}/subscriptions[/{id}]` | `3gpp-nef/TS29122_MonitoringEvent.yaml` |
//! | NWDAF-like analytics (simplified): `DN_PERFORMANCE`, `NETWORK_PERFORMANCE` (`NUM_OF_UE`) | `GET /nnwdaf-analyticsinfo/v1/analytics` | modelled on TS 29.520 |
//! | emulator control (not standard) | `/emulator/v1/...` | [`admin`] |
//!
//! Every standard API needs a bearer token from `/oauth2/token`; CAMARA APIs answer errors with
//! `{status, code, message}`, the 3GPP ones with `ProblemDetails`. An `x-correlator` request header
//! is echoed on the response.

#![warn(missing_docs)]

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod camara;
pub mod error;
pub mod geo;
pub mod location;
pub mod nef;
pub mod qod;
pub mod scenario;
pub mod state;
pub mod traffic;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use scenario::{Scenario, ScenarioError};
pub use state::{Emulator, EmulatorError};

use crate::error::CamaraError;

/// Base path of CAMARA Device Location retrieval.
pub const LOCATION_RETRIEVAL: &str = "/location-retrieval/v0.5";
/// Base path of CAMARA Device Location verification.
pub const LOCATION_VERIFICATION: &str = "/location-verification/v3";
/// Base path of CAMARA Traffic Influence.
pub const TRAFFIC_INFLUENCE: &str = "/traffic-influence/v0.10";
/// Base path of CAMARA Quality on Demand.
pub const QUALITY_ON_DEMAND: &str = "/quality-on-demand/v1";
/// Base path of 3GPP NEF MonitoringEvent.
pub const MONITORING_EVENT: &str = "/3gpp-monitoring-event/v1";
/// Base path of the NWDAF-like analytics.
pub const ANALYTICS_INFO: &str = "/nnwdaf-analyticsinfo/v1";

static X_CORRELATOR: HeaderName = HeaderName::from_static("x-correlator");

/// Echoes `x-correlator` (CAMARA Commonalities) on every answer.
async fn correlate(req: Request, next: Next) -> Response {
    let correlator = req.headers().get(&X_CORRELATOR).cloned();
    let mut resp = next.run(req).await;
    if let Some(c) = correlator {
        resp.headers_mut().insert(X_CORRELATOR.clone(), c);
    }
    resp
}

async fn fallback() -> CamaraError {
    CamaraError::not_found("no such path on this emulator; see the crate documentation for the served APIs")
}

/// Every route of the emulator over its state.
pub fn router(emu: Arc<Emulator>) -> Router {
    let ti = TRAFFIC_INFLUENCE;
    let qod = QUALITY_ON_DEMAND;
    let me = MONITORING_EVENT;
    Router::new()
        .route("/oauth2/token", post(auth::token))
        .route(&format!("{LOCATION_RETRIEVAL}/retrieve"), post(location::retrieve))
        .route(&format!("{LOCATION_VERIFICATION}/verify"), post(location::verify))
        .route(&format!("{ti}/traffic-influences"), get(traffic::list).post(traffic::create_any))
        .route(&format!("{ti}/traffic-influence-devices"), post(traffic::create_device))
        .route(
            &format!("{ti}/traffic-influences/{{id}}"),
            get(traffic::get).patch(traffic::patch).delete(traffic::delete),
        )
        .route(&format!("{qod}/sessions"), post(qod::create))
        .route(&format!("{qod}/sessions/{{id}}"), get(qod::get).delete(qod::delete))
        .route(&format!("{qod}/sessions/{{id}}/extend"), post(qod::extend))
        .route(&format!("{qod}/retrieve-sessions"), post(qod::retrieve))
        .route(&format!("{me}/{{scs_as_id}}/subscriptions"), get(nef::list).post(nef::create))
        .route(&format!("{me}/{{scs_as_id}}/subscriptions/{{id}}"), get(nef::get).delete(nef::delete))
        .route(&format!("{ANALYTICS_INFO}/analytics"), get(analytics::analytics))
        .nest("/emulator/v1", admin::router())
        .fallback(fallback)
        .layer(middleware::from_fn(correlate))
        .with_state(emu)
}

/// Serves the emulator on a bound listener until `shutdown` resolves.
pub async fn serve(
    emu: Arc<Emulator>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    emu.start_script();
    axum::serve(listener, router(emu)).with_graceful_shutdown(shutdown).await
}
