//! What every handler shares.

use std::sync::Arc;

use op_driver::Drivers;
use op_store::Repo;
use prometheus_client::registry::Registry;
use tokio::sync::{Mutex, OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Serializes instance admission per zone so two concurrent deployments cannot both take
    /// the last capacity or the same fixed port.
    pub admission: Arc<Admission>,
    /// Cloudlets by zone and instances by cloudlet, in memory, for admission.
    pub inventory: crate::inventory::Inventory,
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
    /// The region this process is the controller of, when it runs as a regional controller
    /// only: it takes no work on zones of other regions. None when it serves every region
    /// (the embedded default) or none (the global plane).
    pub region: Option<op_types::Name>,
    /// Where the global plane sends the calls about regional data, when this process is the
    /// global plane only.
    pub regions: Option<crate::regions::Forwarder>,
    /// The organizations' registry, when this platform runs one.
    pub images: Option<crate::registry::RegistryConfig>,
    /// The last delivery to each alarm receiver.
    pub alarm_deliveries: crate::telemetry::Deliveries,
    /// Device probes per app and zone (the QoE view).
    pub qoe: crate::qoe::Qoe,
    /// The load balancers' data plane (front ends on the ingress, backends' health).
    pub lbs: crate::clusters::LoadBalancers,
}

/// Admission's locks. A placement decision depends only on its zone's cloudlets, so
/// deployments to different zones are admitted in parallel and those to one zone one at a
/// time; deleting an app takes every zone at once, so that no instance of it is admitted
/// while it checks that none is left.
#[derive(Default)]
pub struct Admission {
    all: RwLock<()>,
    zones: std::sync::Mutex<std::collections::HashMap<op_types::Uid, Arc<Mutex<()>>>>,
}

/// Held while one zone admits: the zone's turn, and the others' right to go on too.
pub struct ZoneTurn<'a> {
    _all: RwLockReadGuard<'a, ()>,
    _zone: OwnedMutexGuard<()>,
}

impl Admission {
    /// Waits for `zone`'s turn.
    pub async fn zone(&self, zone: op_types::Uid) -> ZoneTurn<'_> {
        let all = self.all.read().await;
        let lock = self.zones.lock().unwrap_or_else(|e| e.into_inner()).entry(zone).or_default().clone();
        ZoneTurn { _all: all, _zone: lock.lock_owned().await }
    }

    /// Waits until no zone admits, and keeps them all waiting.
    pub async fn every_zone(&self) -> RwLockWriteGuard<'_, ()> {
        self.all.write().await
    }
}
