//! What every handler shares.

use std::sync::Arc;

use op_driver::Drivers;
use op_store::Repo;
use prometheus_client::registry::Registry;
use tokio::sync::Mutex;

use crate::auth::TokenKeys;
use crate::metrics::HttpMetrics;

/// Shared handler state: one pointer, so the per-request clones that axum's `State` makes cost
/// a reference count, not a copy of every field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `s` between handlers.
    pub fn new(s: Shared) -> Self {
        Self(Arc::new(s))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// Typed store access.
    pub repo: Repo,
    /// Token signing keys.
    pub keys: TokenKeys,
    /// Driver clients, for admission checks against cloudlets (image present).
    pub drivers: Drivers,
    /// Serializes instance admission so two concurrent deployments cannot both take the last
    /// capacity or the same fixed port.
    pub admission: Arc<Mutex<()>>,
    /// The process's metrics registry, rendered at `/metrics`.
    pub registry: Arc<Registry>,
    /// Per-request metrics.
    pub http: HttpMetrics,
    /// This operator's name as CAMARA's `edgeCloudProvider`.
    pub provider: String,
    /// The UNI: index, signing key, network.
    pub uni: Arc<crate::uni::UniState>,
    /// Recorded edge and network usage, for placement's forecasts.
    pub usage: crate::usage::Usage,
    /// Wakes relocations waiting on apps (a MEC 021 registration changed).
    pub mobility: crate::mobility::Mobility,
    /// The platform's derivation secret: app instances' tokens are derived from it.
    pub instance_secret: Vec<u8>,
    /// Telemetry pushed to app providers' webhooks.
    pub telemetry: crate::telemetry::Deliveries,
    /// The federation interface (EWBI): tokens, listener URL, ingress, outbox wake-ups.
    pub ewbi: Arc<crate::ewbi::EwbiState>,
    /// Serverless apps: points of presence, their ingress and the orchestrator.
    pub serverless: Arc<crate::serverless::Serverless>,
    /// Whether anyone may register an organization and its first user (`/op/v1/auth/register`).
    pub self_registration: bool,
    /// Authorization codes of the OpenID Connect provider awaiting their exchange.
    pub oidc_codes: crate::oidc::Codes,
    /// Audit records on their way to the store.
    pub audit: crate::audit::Queue,
    /// Recent events of instances and cloudlets (debug view, operator events, alarms).
    pub events: crate::events::Events,
    /// The latest resource readings of every local instance.
    pub resources: crate::resources::Resources,
    /// The organizations' registry, when this platform runs one.
    pub images: Option<crate::registry::RegistryConfig>,
    /// The last delivery to each alarm receiver.
    pub alarm_deliveries: crate::telemetry::Deliveries,
    /// Device probes per app and zone (the QoE view).
    pub qoe: crate::qoe::Qoe,
    /// The load balancers' data plane (front ends on the ingress, backends' health).
    pub lbs: crate::clusters::LoadBalancers,
}
