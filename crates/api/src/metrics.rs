//! HTTP metrics and the `/metrics` endpoint (Prometheus text format).

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::auth::Caller;
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Request counts and latencies by route (the matched pattern, never a raw path, so ids and
/// names of other organizations never appear in metrics).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    mobility_decision: Histogram,
}

impl HttpMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]);
        registry.register("op_http_requests", "HTTP requests by method, route and status", requests.clone());
        registry.register("op_http_request_duration_seconds", "HTTP request latency", latency.clone());
        let mobility_decision = Histogram::new([0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1]);
        registry.register("op_mobility_decision_seconds", "From a mobility trigger to the relocation decision", mobility_decision.clone());
        Self { requests, latency, mobility_decision }
    }

    /// Records how long a relocation took to decide.
    pub fn observe_mobility_decision(&self, d: std::time::Duration) {
        self.mobility_decision.observe(d.as_secs_f64());
    }
}

const X_CORRELATOR: HeaderName = HeaderName::from_static("x-correlator");

/// The one middleware every request passes: records its metrics and echoes CAMARA's
/// `x-correlator` header back, as the spec asks.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let corr = req.headers().get(&X_CORRELATOR).cloned();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    state.http.latency.observe(started.elapsed().as_secs_f64());
    let labels = RequestLabels {
        method: method.as_str().to_string(),
        route: route.as_ref().map_or("unmatched", |m| m.as_str()).to_string(),
        status: resp.status().as_u16(),
    };
    state.http.requests.get_or_create(&labels).inc();
    if let Some(c) = corr.filter(|c| c.len() <= 256) {
        resp.headers_mut().insert(X_CORRELATOR, c);
    }
    resp
}

/// `GET /metrics`: the operator's (series name apps and zones).
pub async fn render(State(state): State<AppState>, c: Caller) -> Response {
    if let Err(e) = c.require_operator() {
        return e.into_response();
    }
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
