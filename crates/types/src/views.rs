//! The API's response shapes (CAMARA views and the platform's own), shared by the server and
//! its clients so both sides serialize the same structs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};
use crate::meta::{Meta, State as ObjState};
use crate::specs::{ApiKey, App, AppInstance, AppSpec, Membership, Role, User};

/// CAMARA `AppManifest`: the app's name and id next to its spec (secrets removed on output).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppManifest {
    /// Assigned by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uid>,
    /// `^[A-Za-z][A-Za-z0-9_]{1,63}$`.
    pub name: String,
    /// Everything else.
    #[serde(flatten)]
    pub spec: AppSpec,
}

impl From<&App> for AppManifest {
    fn from(a: &App) -> Self {
        AppManifest { app_id: Some(a.metadata.uid), name: a.metadata.name.to_string(), spec: a.spec.redacted() }
    }
}

/// CAMARA `SubmittedApp`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmittedApp {
    /// The new app's id.
    pub app_id: Uid,
}

/// CAMARA `getApp` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// The manifest.
    pub app_manifest: AppManifest,
}

/// CAMARA `AccessEndpoint`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessEndpoint {
    /// Port.
    pub port: u16,
    /// IPv4 addresses.
    pub ipv4_addresses: Vec<String>,
}

/// One `componentEndpointInfo` item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentEndpoint {
    /// The app's interface.
    pub interface_id: String,
    /// Where to reach it.
    pub access_points: AccessEndpoint,
}

/// CAMARA `AppInstanceInfo`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceInfo {
    /// Instance name.
    pub name: String,
    /// App id.
    pub app_id: Uid,
    /// Instance id.
    pub app_instance_id: Uid,
    /// Owning organization.
    pub app_provider: String,
    /// `ready`, `instantiating`, `failed`, `terminating` or `unknown`.
    pub status: String,
    /// Endpoints, once known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component_endpoint_info: Vec<ComponentEndpoint>,
    /// Zone id.
    pub edge_cloud_zone_id: Uid,
}

impl From<&AppInstance> for AppInstanceInfo {
    fn from(i: &AppInstance) -> Self {
        let status = match (i.metadata.deletion_requested.is_some(), i.status.state) {
            (true, _) | (_, ObjState::Deleting) => "terminating",
            (_, ObjState::Ready) => "ready",
            (_, ObjState::Pending | ObjState::Creating) => "instantiating",
            (_, ObjState::Failed) => "failed",
        };
        AppInstanceInfo {
            name: i.metadata.name.to_string(),
            app_id: i.spec.app_id,
            app_instance_id: i.metadata.uid,
            app_provider: i.metadata.organization.as_ref().map(ToString::to_string).unwrap_or_default(),
            status: status.to_string(),
            component_endpoint_info: i
                .observed
                .endpoints
                .iter()
                .map(|e| ComponentEndpoint {
                    interface_id: e.interface_id.clone(),
                    access_points: AccessEndpoint { port: e.port, ipv4_addresses: vec![e.host.clone()] },
                })
                .collect(),
            edge_cloud_zone_id: i.spec.edge_cloud_zone_id,
        }
    }
}

/// CAMARA `EdgeCloudZone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeCloudZone {
    /// Zone id.
    pub edge_cloud_zone_id: Uid,
    /// Zone name.
    pub edge_cloud_zone_name: String,
    /// `active` when a cloudlet of the zone is up and accepting instances.
    pub edge_cloud_zone_status: String,
    /// This operator.
    pub edge_cloud_provider: String,
    /// The zone's region.
    pub edge_cloud_region: String,
}

/// Login answer (OAuth2 token response shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Bearer token for every API.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// A user as the API shows it: never the hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Metadata.
    pub metadata: Meta,
    /// Organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// Role.
    pub role: Role,
    /// Roles in further organizations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memberships: Vec<Membership>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView { metadata: u.metadata, organization: u.spec.organization, role: u.spec.role, memberships: u.spec.memberships }
    }
}

/// A member of an organization: who, with which role, and where the role comes from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The user.
    pub user: Name,
    /// The role held.
    pub role: Role,
    /// The organization the role is held in: this one, or one above it (inherited).
    pub via: Name,
}

/// An API key as the API shows it: never the secret, never its hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Metadata (`name` is the key's label, `uid` its id).
    pub metadata: Meta,
    /// The user it acts as.
    pub user: Name,
    /// The organization it acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// Its role.
    pub role: Role,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            metadata: k.metadata,
            user: k.spec.user,
            organization: k.spec.organization,
            role: k.spec.role,
            expires_at: k.spec.expires_at,
            description: k.spec.description,
        }
    }
}

/// A new API key: the only answer that carries its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreated {
    /// The key, to send as `Authorization: Bearer <key>`. Shown once: store it now.
    pub key: String,
    /// The key's record.
    pub api_key: ApiKeyView,
}

/// One zone of a placement and what became of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacedZone {
    /// The zone.
    pub edge_cloud_zone_id: Uid,
    /// Its name.
    pub edge_cloud_zone_name: String,
    /// `created`, `existing` (the app already runs there) or `refused`.
    pub outcome: String,
    /// The instance, when created or existing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<Uid>,
    /// Why admission refused the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a placement did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementResult {
    /// The zones chosen, each with its outcome.
    pub zones: Vec<PlacedZone>,
    /// For a minimum cover: `exact` (proven minimal) or `greedy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// For a minimum cover: no cover needs fewer zones than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<usize>,
    /// For a minimum cover: cells of the footprint no zone reaches within the bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncovered_cells: Vec<String>,
    /// For a minimum cover: of the (cell, zone) latencies the plan used, how many the
    /// network's analytics gave and how many came from the distance model (1 ms + 1 ms per
    /// 100 km) because the network had no figure for the pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latencies: Option<LatencySources>,
}

/// Where the latencies of a cover plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencySources {
    /// Pairs measured by the network.
    pub network: usize,
    /// Pairs estimated from distance.
    pub modelled: usize,
}

/// The outcome of a push to a webhook (telemetry, alarms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// When (RFC 3339).
    pub at: String,
    /// Accepted with a 2xx.
    pub delivered: bool,
    /// HTTP status, or why nothing was answered.
    pub outcome: String,
}
