//! Network adapters: what the platform asks of the mobile network, behind [`NetworkAdapter`].
//!
//! The one implementation speaks the standard exposure APIs (CAMARA Device Location, Traffic
//! Influence, Quality on Demand; 3GPP NEF MonitoringEvent; NWDAF-like analytics) with OAuth2
//! client credentials and a configurable base URL, so the same code serves the project's network
//! emulator in tests and an operator's real exposure gateway in production.

use std::net::IpAddr;

use async_trait::async_trait;
use op_types::specs::GeoPoint;
use serde::{Deserialize, Serialize};

mod callback;
mod standard;
mod wire;

pub use callback::decode_monitoring_notification;
pub use standard::{
    AdapterConfig, StandardAdapter, ANALYTICS_INFO_PATH, LOCATION_RETRIEVAL_PATH, LOCATION_VERIFICATION_PATH,
    MONITORING_EVENT_PATH, TRAFFIC_INFLUENCE_PATH,
};

/// How a device is identified to the network (CAMARA `Device`): at least one field is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRef {
    /// E.164 with a leading `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// NAI / GPSI, e.g. `123456789@example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<String>,
    /// The device's public IPv4 or IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

/// Where the network says a device is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkLocation {
    /// Serving cell (NR/E-UTRA cell global identity), when known.
    pub cell_id: Option<String>,
    /// Tracking area code, when known.
    pub tracking_area: Option<String>,
    /// Centre of the location area.
    pub point: GeoPoint,
    /// Radius of the location area, metres.
    pub accuracy_m: f64,
}

/// CAMARA location verification outcome.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Verification {
    /// The device is in the area.
    True,
    /// It is not.
    False,
    /// Partly; the match rate in percent.
    Partial(u8),
    /// The network cannot tell.
    Unknown,
}

/// Events the platform subscribes to for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkEventKind {
    /// Serving cell or tracking area changed.
    LocationChange,
    /// The device's IP address changed (new PDU session).
    IpChange,
}

/// A notification from the network about a device, as the adapter's callback receiver decodes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkEvent {
    /// The subscription it belongs to.
    pub subscription_id: String,
    /// The device.
    pub device: DeviceRef,
    /// What changed.
    pub kind: NetworkEventKind,
    /// New location, for location changes.
    pub location: Option<NetworkLocation>,
    /// New address, for IP changes.
    pub ip: Option<IpAddr>,
}

/// Expected network performance between a device's cell and an edge's data-network access point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathPerformance {
    /// One-way latency, ms.
    pub latency_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Available bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
}

/// Expected performance of every known (cell, DNAI) pair asked for, in one analytics request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathEntry {
    /// The cell.
    pub cell: String,
    /// The data-network access point.
    pub dnai: String,
    /// What the network expects on that path.
    pub performance: PathPerformance,
}

/// How loaded a radio cell is (3GPP NWDAF `NETWORK_PERFORMANCE` analytics, `NUM_OF_UE`): the
/// network-load criterion of the operator's placement weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CellLoad {
    /// The cell.
    pub cell: String,
    /// Devices attached (`absoluteNum`).
    pub ues: u64,
    /// Load relative to the cell's capacity, 0..=1 (`relativeRatio` / 100).
    pub ratio: f64,
}

/// Where a device is served from (3GPP NEF MonitoringEvent `ROAMING_STATUS` with
/// `plmnIndication`): its home network, or a visited one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoamingStatus {
    /// The serving PLMN differs from the device's home PLMN.
    pub roaming: bool,
    /// The serving PLMN as `mcc` followed by `mnc` (e.g. `20801`), when the network says.
    pub serving_plmn: Option<String>,
}

/// Steering a device's traffic toward an edge (CAMARA Traffic Influence).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficInfluence {
    /// Whose traffic.
    pub device: DeviceRef,
    /// The application (its id at the platform).
    pub app_id: String,
    /// The app instance the traffic should reach.
    pub app_instance_id: String,
    /// The edge cloud zone of that instance.
    pub edge_cloud_zone_id: String,
}

/// Adapter errors; `retryable` tells controllers whether to back off and retry.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The exposure gateway cannot be reached or answered 5xx.
    #[error("network API unavailable: {0}")]
    Unavailable(String),
    /// The network does not know the device.
    #[error("device not known to the network: {0}")]
    UnknownDevice(String),
    /// Our credentials were refused.
    #[error("network API refused our credentials: {0}")]
    Unauthorized(String),
    /// The request was refused for another reason (the gateway's message).
    #[error("network API refused the request: {0}")]
    Rejected(String),
}

impl NetworkError {
    /// Whether retrying later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, NetworkError::Unavailable(_))
    }
}

/// What the platform asks of the mobile network.
#[async_trait]
pub trait NetworkAdapter: Send + Sync + 'static {
    /// Where the device is: cell and tracking area (NEF MonitoringEvent one-time location report)
    /// and a geographic area (CAMARA location retrieval).
    async fn locate(&self, device: &DeviceRef) -> Result<NetworkLocation, NetworkError>;
    /// Whether the device is within `radius_m` of `center` (CAMARA location verification).
    async fn verify_location(&self, device: &DeviceRef, center: GeoPoint, radius_m: f64)
        -> Result<Verification, NetworkError>;
    /// Subscribes to location and IP changes of `device`, delivered to `callback_url` (NEF
    /// MonitoringEvent); returns the subscription id.
    async fn subscribe(&self, device: &DeviceRef, kinds: &[NetworkEventKind], callback_url: &str)
        -> Result<String, NetworkError>;
    /// Ends a subscription; ending an unknown one is not an error.
    async fn unsubscribe(&self, subscription_id: &str) -> Result<(), NetworkError>;
    /// Expected performance between `cell` and the data-network access point `dnai`.
    async fn path_performance(&self, cell: &str, dnai: &str) -> Result<PathPerformance, NetworkError>;
    /// Expected performance for every pair of `cells` and `dnais` the network knows, in one
    /// request (NWDAF `DN_PERFORMANCE` analytics over an area); unknown pairs are left out.
    async fn path_matrix(&self, cells: &[String], dnais: &[String]) -> Result<Vec<PathEntry>, NetworkError>;
    /// Load of each of `cells` the network knows (NWDAF `NETWORK_PERFORMANCE`, `NUM_OF_UE`).
    async fn cell_loads(&self, cells: &[String]) -> Result<Vec<CellLoad>, NetworkError>;
    /// Whether the device is roaming, and in which network (NEF MonitoringEvent one-time
    /// `ROAMING_STATUS` report).
    async fn roaming_status(&self, device: &DeviceRef) -> Result<RoamingStatus, NetworkError>;
    /// Steers the device's traffic to an instance; returns the influence id.
    async fn influence_traffic(&self, req: &TrafficInfluence) -> Result<String, NetworkError>;
    /// Removes a traffic influence; removing an unknown one is not an error.
    async fn remove_traffic_influence(&self, id: &str) -> Result<(), NetworkError>;
}
