//! Wire shapes of the UNI (device side): registration, offers, confirmation, pushed events.
//! Shared by the platform and the device client library so both speak the same structs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::Uid;
use crate::specs::GeoPoint;

/// The documented well-known UNI name for an operator (3GPP TS 23.003 public domain style).
pub fn well_known_host(mcc: &str, mnc: &str) -> String {
    format!("uni.mnc{mnc:0>3}.mcc{mcc:0>3}.pub.3gppnetwork.org")
}

/// CAMARA `DeviceIpv4Addr`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceIpv4Addr {
    /// Address seen by servers.
    #[schema(value_type = String, format = Ipv4)]
    pub public_address: std::net::Ipv4Addr,
    /// Address on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Ipv4)]
    pub private_address: Option<std::net::Ipv4Addr>,
    /// Port seen by servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
}

/// CAMARA `Device`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    /// E.164 with `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// GPSI / NAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<String>,
    /// Extension for the UNI: a 3GPP GPSI, `msisdn-<digits>` (a phone number) or
    /// `extid-<id>@<domain>` (an external identifier, sent to the network as the NAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpsi: Option<String>,
    /// IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<DeviceIpv4Addr>,
    /// IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Ipv6)]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
}

/// UNI registration: who the device is, which app, where it says it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// Device identity, confirmed through the network.
    pub device: Device,
    /// App identity.
    pub app: AppRef,
    /// A JWT signed by the app provider (audience `op-uni`).
    pub app_token: String,
    /// Where the device says it is (checked against the network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ClaimedLocation>,
    /// How many alternatives to return (default 2, at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_alternatives: Option<usize>,
}

/// An app by provider, name and version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRef {
    /// Organization.
    pub provider: String,
    /// App name.
    pub name: String,
    /// App version.
    pub version: String,
}

/// A location claim: a cell, or a position.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimedLocation {
    /// Serving cell.
    #[serde(default)]
    pub cell_id: Option<String>,
    /// Tracking area.
    #[serde(default)]
    pub tracking_area: Option<String>,
    /// Latitude.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default)]
    pub longitude: Option<f64>,
}

/// An offered edge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeOffer {
    /// Instance id.
    pub app_instance_id: Uid,
    /// Zone id.
    pub edge_cloud_zone_id: Uid,
    /// Zone name.
    pub edge_cloud_zone_name: String,
    /// Address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Expected network performance, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_qos: Option<PathInfo>,
    /// Distance device to zone, km.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The edge's connectivity test endpoint (`GET /echo`, `GET /download?bytes=N`,
    /// `POST /upload`), to measure this offer before confirming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_url: Option<String>,
}

/// Where the chosen edge serves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAreaView {
    /// Cells.
    pub cells: Vec<String>,
    /// Polygon.
    pub polygon: Vec<GeoPoint>,
}

/// UNI registration answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// Session id.
    pub session_id: String,
    /// Bearer token the edge verifies locally.
    pub session_token: String,
    /// The best edge.
    pub endpoint: EdgeOffer,
    /// Next best.
    pub alternatives: Vec<EdgeOffer>,
    /// Where `endpoint` serves: leaving it means asking again.
    pub service_area: ServiceAreaView,
    /// Ask again after this many seconds at the latest.
    pub revalidate_after_seconds: u64,
    /// For a dynamically instantiated app: the instance being started for this device nearer
    /// than `endpoint`; the session is told (`edgeChanged`) when it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting: Option<StartingInstance>,
    /// No edge meets the app's QoS bounds for this device; it is served from the best one all
    /// the same (the app's `onUnmet: bestEffort`), with the QoS the network expects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub best_effort: bool,
    /// No edge can serve the device and its app sends such devices to the provider's cloud
    /// (`onUnmet: fallbackToCloud`): `endpoint` is that cloud endpoint (zone `cloud`, nil ids).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cloud_fallback: bool,
    /// Set when a partner operator's edge serves the device while it roams in that partner's
    /// network: what the device shows the app there, which the partner checks with us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roaming_auth: Option<RoamingAuth>,
    /// For a serverless app: `endpoint` and `alternatives` are points of presence (ingresses,
    /// nil instance ids: the ingress picks or starts the instance), and this is the HTTP `Host`
    /// they route the app by. Send `sessionToken` as `Authorization: Bearer` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless_host: Option<String>,
}

/// Roaming user authentication (GSMA EWBI): the device's federated id and token, and its home
/// operator's federation id, for a visited partner to check with the home operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoamingAuth {
    /// The home operator's federation id.
    pub home_operator: String,
    /// The device's id towards that partner (not its phone number).
    pub device_id: String,
    /// The token the partner checks with the home operator.
    pub token: String,
}

/// An instance the platform started on a device's request (dynamic instantiation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartingInstance {
    /// The new instance.
    pub app_instance_id: Uid,
    /// Its zone.
    pub edge_cloud_zone_id: Uid,
    /// Zone name.
    pub edge_cloud_zone_name: String,
}

/// The device's choice after probing the offers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Confirm {
    /// The instance the device will use (one of the offers).
    pub app_instance_id: Uid,
    /// What the device measured to it, ms (recorded for QoE).
    #[serde(default)]
    pub measured_latency_ms: Option<f64>,
}

/// Confirmation answer: a token bound to the chosen instance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Confirmed {
    /// Session token for the chosen instance.
    pub session_token: String,
}

/// The platform's session-token public key, for edges.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionKeys {
    /// Algorithm (`EdDSA`).
    pub alg: String,
    /// SPKI PEM.
    pub public_key_pem: String,
    /// Issuer claim of session tokens.
    pub issuer: String,
}

/// What a device learns from the operator's well-known UNI address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UniInfo {
    /// Mobile country code.
    pub mcc: String,
    /// Mobile network code.
    pub mnc: String,
    /// The documented well-known host for this operator.
    pub well_known_host: String,
    /// Registration path.
    pub sessions: String,
    /// Key path.
    pub keys: String,
}

/// Expected network performance from the device's cell to a zone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathInfo {
    /// One-way latency, ms.
    pub latency_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
}

/// A change pushed to a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum UniEvent {
    /// Use this instance from now on.
    EdgeChanged {
        /// Why.
        reason: ChangeReason,
        /// New instance.
        app_instance_id: Uid,
        /// Its zone.
        edge_cloud_zone_id: Uid,
        /// Address.
        host: String,
        /// Port.
        port: u16,
    },
    /// The device's IP address changed (as the network reported).
    IpChanged {
        /// New address.
        ip: String,
    },
    /// No edge can serve the device any more; ask again later.
    NoEdge,
    /// A better edge was found but the move did not happen (the app refused or was not ready
    /// in time): the device stays where it is, possibly with degraded service.
    RelocationCancelled {
        /// Why.
        reason: String,
    },
}

/// Why the device is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChangeReason {
    /// Another edge is clearly better now (the device moved, a closer edge appeared).
    BetterEdge,
    /// The current edge entered maintenance or went down.
    EdgeMaintenance,
    /// The current instance is not healthy.
    InstanceUnhealthy,
    /// The network path to the current edge no longer meets the app's QoS bounds.
    QosUnmet,
}


/// Revalidation from a registered device: where it is now (its session token says who it is
/// and for which app). Answered from memory, with no network round trip.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverRequest {
    /// Where the device is now.
    pub location: ClaimedLocation,
    /// How many alternatives to return (default 2, at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_alternatives: Option<usize>,
}

/// Discovery answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// The best edge now.
    pub endpoint: EdgeOffer,
    /// Next best.
    pub alternatives: Vec<EdgeOffer>,
    /// Ask again after this many seconds at the latest.
    pub revalidate_after_seconds: u64,
}

/// Audience device-app tokens must name.
pub const UNI_AUDIENCE: &str = "op-uni";

/// What a device app's token asserts, signed by the app provider with the key onboarded with
/// the app (its backend mints them; the UNI checks them at registration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppTokenClaims {
    /// Who the app provider says the user or device is.
    pub sub: String,
    /// Must be [`UNI_AUDIENCE`].
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}
