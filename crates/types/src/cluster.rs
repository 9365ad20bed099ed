//! Clusters and load balancers (the developers' management plane): a cluster is an
//! organization's containers networked together on one cloudlet of a zone, reaching each other
//! by instance name, with no way out (outbound traffic denied) unless the developer allows it;
//! a load balancer spreads a front-end port over a cluster's instances of one app, checking
//! each backend's health from the front end.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::egress::{validate_rules, EffectiveEgress, Egress, OutboundRule};
use crate::ids::{Name, Uid};
use crate::observe::Health;
use crate::validate::{ensure, max_len, FieldError, Validate};

/// What a developer asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The zone (its uid); the platform picks the cloudlet in it.
    pub edge_cloud_zone_id: Uid,
    /// Whether the cluster's containers may open connections outside it (default: no).
    #[serde(default)]
    pub outbound_allowed: bool,
    /// While `outboundAllowed` is off: the destinations its containers may still reach (TCP,
    /// through the cluster's egress gateway; HTTP clients find it in `HTTP_PROXY`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_rules: Vec<OutboundRule>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ClusterSpec {
    /// What the developer lets out of the cluster.
    pub fn egress(&self) -> Egress {
        Egress::from_policy(self.outbound_allowed, &self.outbound_rules)
    }
}

impl Validate for ClusterSpec {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(d) = &self.description {
            max_len(d, 256, "description")?;
        }
        validate_rules(&self.outbound_rules, self.outbound_allowed, "outboundRules")
    }
}

/// What the platform decided and made for a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterObserved {
    /// The cloudlet its containers run on (developers see `hidden`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudlet: Option<Name>,
    /// The runtime network its containers share (internal: no route out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The network that gives its containers (or its egress gateway) a way out, while
    /// anything may leave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_network: Option<String>,
    /// What may leave, the cluster's, its cloudlet's and its region's rules taken together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EffectiveEgress>,
}

/// The runtime network of cluster `uid` (containers reach each other on it by name).
pub fn cluster_network(uid: Uid) -> String {
    format!("op-cluster-{uid}")
}

/// The network that lets the containers of cluster `uid` out.
pub fn egress_network(uid: Uid) -> String {
    format!("op-egress-{uid}")
}

/// The container of cluster `uid`'s egress gateway.
pub fn egress_gateway(uid: Uid) -> String {
    format!("op-egw-{uid}")
}

/// The name members reach their cluster's egress gateway by (instance names cannot hold a
/// hyphen, so no member takes it).
pub const EGRESS_GATEWAY_HOST: &str = "op-egress";

/// The port the egress gateway serves HTTP proxy requests (absolute-form and `CONNECT`) on.
pub const EGRESS_GATEWAY_PORT: u16 = 3128;

/// A load balancer: connections to its front-end port go to the healthy instances of `appId`
/// in `clusterId`, least connections first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// The cluster (its uid).
    pub cluster_id: Uid,
    /// The app whose instances in the cluster serve (its uid).
    pub app_id: Uid,
    /// The app's port the connections go to (one of its interfaces').
    pub backend_port: u16,
    /// The front-end port on the cloudlet's public address (default: one is picked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_port: Option<u16>,
}

impl Validate for LoadBalancerSpec {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.backend_port > 0, "backendPort", "must be 1 to 65535")?;
        ensure(self.frontend_port.is_none_or(|p| p >= 1024), "frontendPort", "must be 1024 to 65535 (or omitted to have one picked)")
    }
}

/// One backend as the load balancer last saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LbBackend {
    /// The instance.
    pub app_instance_id: Uid,
    /// Its name.
    pub name: String,
    /// Answering the health check from the front end.
    pub healthy: bool,
    /// Connections open through the load balancer now.
    pub active_connections: u64,
}

/// A load balancer's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerView {
    /// Id.
    pub id: Uid,
    /// Name.
    pub name: Name,
    /// Owner.
    pub organization: Option<Name>,
    /// What it balances.
    pub spec: LoadBalancerSpec,
    /// Where clients connect (`host:port`), once it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<String>,
    /// Its backends.
    pub backends: Vec<LbBackend>,
}

/// One member of a cluster in its report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMember {
    /// The instance.
    pub app_instance_id: Uid,
    /// Its name, which the others reach it by.
    pub name: String,
    /// Its app.
    pub app_id: Uid,
    /// Ready, Creating, Failed...
    pub state: String,
    /// From its resource readings (`Exited` until it has one).
    pub health: Health,
}

/// A cluster's report: its state, members, their health and the cluster's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Id.
    pub id: Uid,
    /// Name.
    pub name: Name,
    /// Owner.
    pub organization: Option<Name>,
    /// What was asked.
    pub spec: ClusterSpec,
    /// Ready once its network exists.
    pub state: String,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The cloudlet (`hidden` for developers).
    pub cloudlet: String,
    /// What its members may reach outside it: the cluster's, its cloudlet's and its region's
    /// rules taken together (once the controller has seen it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EffectiveEgress>,
    /// Its instances.
    pub members: Vec<ClusterMember>,
    /// The worst member's health (`Healthy` when empty).
    pub health: Health,
}
