//! What the platform stores about federation, in both roles.
//!
//! Partner role (another operator calls our EWBI): [`FederationPartnerSpec`] is the operator's
//! registration of that operator (OAuth client, what is offered to it); [`FederationSpec`] is
//! one federation context it created; [`EwbiFileSpec`], [`EwbiArtefactSpec`], [`EwbiAppSpec`],
//! [`EwbiInstanceSpec`] and [`EwbiPoolSpec`] are what it uploaded, onboarded, installed and
//! reserved under that context, each pointing at the ordinary local object that realises it.
//!
//! Originating role (we call a partner's EWBI): [`FederationPeerSpec`] is the partner we
//! federate with; its zones become ordinary [`crate::specs::ZoneSpec`]s marked
//! [`FederatedZone`], and an instance a developer deploys there is an ordinary app instance
//! marked [`FederatedPlacement`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};
use crate::validate::{ensure, max_len, FieldError, Validate};

/// The scope partners' OAuth clients get: the GSMA file's only scope.
pub const SCOPE_FED_MGMT: &str = "fed-mgmt";

/// One of our zones offered to a partner, and what the partner may see of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OfferedZone {
    /// Our zone.
    pub zone: Name,
    /// The id the partner sees (default: the zone's name). Never a cloudlet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Free text the partner sees as `geographyDetails`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub geography: String,
    /// vCPUs reserved for the partner in this zone (its guaranteed share; what it sees as
    /// `reservedComputeResources`). 0 = no reservation.
    #[serde(default)]
    pub reserved_vcpus: u32,
    /// Memory reserved, MiB.
    #[serde(default)]
    pub reserved_memory_mb: u64,
    /// The partner's cap in this zone, vCPUs (`computeResourceQuotaLimits`). 0 = the reservation.
    #[serde(default)]
    pub quota_vcpus: u32,
    /// The cap, MiB.
    #[serde(default)]
    pub quota_memory_mb: u64,
}

impl OfferedZone {
    /// The zone id the partner sees.
    pub fn remote_id(&self) -> &str {
        self.alias.as_deref().unwrap_or(self.zone.as_str())
    }
}

/// The operator's registration of a partner operator that may call our EWBI (partner role):
/// its OAuth client and what we offer it. The secret is stored hashed and never returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederationPartnerSpec {
    /// The partner's OAuth2 client id (its `client_id` at our `/oauth2/token`).
    pub client_id: String,
    /// Argon2id PHC string of the client secret. Never returned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_hash: String,
    /// The `origOPFederationId` the partner must present when it creates a federation.
    pub federation_id: String,
    /// Mobile network codes the partner brings (MCC+MNC), e.g. `20801`: its subscribers may
    /// roam onto our network and be served by our edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_codes: Vec<String>,
    /// SHA-256 (hex) of the partner's TLS client certificate: when set, calls must come over
    /// mutual TLS with exactly that certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The CA (PEM) that signs the partner's callback endpoints, when not a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The zones offered.
    pub zones: Vec<OfferedZone>,
    /// Decimals of the zone locations the partner sees (default 2, about 1 km).
    #[serde(default = "default_rounding")]
    pub location_decimals: u8,
}

fn default_rounding() -> u8 {
    2
}

impl Validate for FederationPartnerSpec {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(!self.client_id.is_empty(), "clientId", "must not be empty")?;
        max_len(&self.client_id, 128, "clientId")?;
        ensure(self.client_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "clientId", "letters, digits, '-', '_' and '.' only")?;
        ensure(!self.federation_id.is_empty(), "federationId", "must not be empty")?;
        max_len(&self.federation_id, 128, "federationId")?;
        for (i, c) in self.network_codes.iter().enumerate() {
            ensure((5..=6).contains(&c.len()) && c.chars().all(|d| d.is_ascii_digit()), &format!("networkCodes[{i}]"), "MCC and MNC digits, e.g. 20801")?;
        }
        if let Some(h) = &self.cert_sha256 {
            ensure(h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()), "certSha256", "64 hex digits")?;
        }
        ensure(self.location_decimals <= 4, "locationDecimals", "at most 4 (the spec's geolocation format)")?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            let id = z.remote_id();
            ensure(seen.insert(id.to_string()), &format!("zones[{i}].alias"), "two offered zones have the same id")?;
            ensure(!id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), &format!("zones[{i}].alias"), "1 to 32 letters, digits or '-'")?;
            max_len(&z.geography, 256, &format!("zones[{i}].geography"))?;
        }
        Ok(())
    }
}

/// A federation context a partner created on our EWBI (partner role). Its name is the
/// context id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederationSpec {
    /// The registered partner that created it.
    pub partner: Name,
    /// The revision of the API the partner speaks (`official` or `katalis`), picked from its
    /// creation request: the official file names `federationNotificationDest`, the later
    /// revision `partnerStatusLink`.
    #[schema(value_type = String)]
    pub dialect: super::wire::Dialect,
    /// Where partner-status notifications go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_link: Option<String>,
    /// When the partner says the federation started.
    pub initial_date: DateTime<Utc>,
    /// The partner's mobile network codes, as currently agreed (ADD/REMOVE via PATCH).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobile_network_ids: Vec<String>,
    /// Zones the partner subscribed to: offered zone id -> where its resource updates go.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subscriptions: BTreeMap<String, String>,
    /// Extensions both sides agreed on (e.g. `usage-v1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// A file (image) a partner uploaded under a federation (partner role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwbiFileSpec {
    /// The federation context.
    pub federation: Name,
    /// The partner's file id.
    pub file_id: String,
    /// The partner's app provider id.
    pub app_provider_id: String,
    /// What the partner sent, minus the bytes and any credential (the GSMA ViewFile view).
    pub view: serde_json::Value,
    /// The image reference the file became in our runtimes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// An artefact (app descriptor) a partner uploaded under a federation (partner role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwbiArtefactSpec {
    /// The federation context.
    pub federation: Name,
    /// The partner's artefact id.
    pub artefact_id: String,
    /// The partner's app provider id.
    pub app_provider_id: String,
    /// What the partner sent, minus any credential (the GSMA GetArtefact view).
    pub view: serde_json::Value,
    /// The artefact's component specs, as sent.
    pub component_spec: serde_json::Value,
}

/// An app a partner onboarded under a federation (partner role), realised as a local app of
/// the organization kept for that partner's app provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwbiAppSpec {
    /// The federation context.
    pub federation: Name,
    /// The partner's app id.
    pub app_id: String,
    /// The partner's app provider id.
    pub app_provider_id: String,
    /// The local app.
    pub local_app: Uid,
    /// Offered zone ids the app is onboarded on.
    pub zones: Vec<String>,
    /// Offered zone ids the partner forbade for it (zoneForbid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<String>,
    /// Where onboarding status goes.
    pub status_link: String,
    /// The onboarding request as sent (ViewApplication answers from it).
    pub view: serde_json::Value,
}

/// An instance a partner installed under a federation (partner role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwbiInstanceSpec {
    /// The federation context.
    pub federation: Name,
    /// The partner's app id.
    pub app_id: String,
    /// The partner's app provider id.
    pub app_provider_id: String,
    /// The instance id both sides use (`appInstIdentifier`).
    pub instance_id: String,
    /// The offered zone id.
    pub zone_id: String,
    /// The flavour asked for.
    pub flavour_id: String,
    /// The local app instance.
    pub local_instance: Uid,
    /// Where instance status goes.
    pub callback_link: String,
}

/// What a federated instance's notifier last told the partner, and where its ingress is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwbiInstanceObserved {
    /// The GSMA instance state last delivered (`PENDING`, `READY`, `FAILED`, `TERMINATING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<String>,
    /// Ingress port per interface id: where the partner's devices reach the instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ingress_ports: BTreeMap<String, u16>,
    /// The instance's own address per interface id behind the ingress (ours; never sent): a
    /// change is a relocation the partner is told of.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, String>,
    /// The relocations we made (newest last, at most [`MAX_RELOCATIONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relocations: Vec<InstanceRelocation>,
}

/// How many relocations of one instance are kept.
pub const MAX_RELOCATIONS: usize = 20;

/// A relocation the partner made of an instance it runs for the originating platform (it is in
/// charge of the instance's mobility, OPG.02 EWBI application management b.iv), forwarded to
/// the originating platform and its developer (c). Zone-level: no address crosses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRelocation {
    /// When the instance was found at its new place.
    pub at: DateTime<Utc>,
    /// The interface that moved.
    pub interface_id: String,
    /// Why, in words.
    pub reason: String,
}

/// Traffic through the partner's ingress to one instance (OPG.02 EWBI d: statistics shared
/// with the application provider on the leading platform).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatistics {
    /// Connections accepted since the relay started.
    pub connections: u64,
    /// Connections open now.
    pub active_connections: u64,
    /// Bytes from devices to the instance, over closed connections.
    pub bytes_in: u64,
    /// Bytes from the instance to devices, over closed connections.
    pub bytes_out: u64,
}

/// The partner's answer at `GET …/instance/{appInstanceId}/zone/{zoneId}/x-op/insights` (an
/// extension outside the GSMA file): statistics and relocations of one instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInsights {
    /// Traffic through the ingress.
    pub statistics: InstanceStatistics,
    /// The relocations made, newest last.
    #[serde(default)]
    pub relocations: Vec<InstanceRelocation>,
}

/// A resource pool a partner reserved for an app provider in a zone (partner role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwbiPoolSpec {
    /// The federation context.
    pub federation: Name,
    /// The partner's app provider id.
    pub app_provider_id: String,
    /// The offered zone id.
    pub zone_id: String,
    /// The pool's name as given.
    pub pool_name: String,
    /// The pool id both sides use.
    pub pool_id: String,
    /// Flavour id -> count granted.
    pub flavours: BTreeMap<String, u32>,
    /// How long the reservation lasts, seconds (0 = until removed).
    pub reserve_duration_secs: u64,
    /// When it was reserved.
    pub reserved_at: DateTime<Utc>,
    /// Where grant changes go.
    pub callback_link: String,
}

/// A partner operator we federate with (originating role): where its EWBI is and how we
/// authenticate. The secret is stored and never returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederationPeerSpec {
    /// The partner's EWBI root, up to and including `/operatorplatform/federation/v1`.
    pub url: String,
    /// The partner's OAuth2 token endpoint (default: `/oauth2/token` on the same host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Our client id at the partner.
    pub client_id: String,
    /// Our client secret at the partner. Never returned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_secret: String,
    /// The CA (PEM) that signs the partner's TLS certificate, when not a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Our client certificate and key (PEM) for mutual TLS, when the partner requires it.
    /// Never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity_pem: Option<String>,
    /// Our federation id as the partner registered it (`origOPFederationId`).
    pub federation_id: String,
    /// Partner zone ids to subscribe to; empty = every zone offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_zones: Vec<String>,
    /// The region our copies of the partner's zones go in (created if missing).
    pub region: Name,
}

impl FederationPeerSpec {
    /// The secret-free view returned by the API.
    pub fn redacted(&self) -> Self {
        Self { client_secret: String::new(), client_identity_pem: self.client_identity_pem.as_ref().map(|_| "(set)".into()), ..self.clone() }
    }
}

impl Validate for FederationPeerSpec {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.url.starts_with("https://"), "url", "the partner's EWBI must be reached over https://")?;
        max_len(&self.url, 512, "url")?;
        if let Some(t) = &self.token_url {
            ensure(t.starts_with("https://"), "tokenUrl", "must be an https:// URL")?;
        }
        ensure(!self.client_id.is_empty(), "clientId", "must not be empty")?;
        ensure(!self.client_secret.is_empty(), "clientSecret", "must not be empty")?;
        ensure(!self.federation_id.is_empty(), "federationId", "must not be empty")?;
        if let Some(p) = &self.ca_pem {
            ensure(p.contains("BEGIN CERTIFICATE"), "caPem", "a PEM certificate")?;
        }
        Ok(())
    }
}

/// What the originating side knows of its federation with a peer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederationPeerObserved {
    /// The federation context id the partner gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// The partner's federation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_federation_id: Option<String>,
    /// Zones the partner offers: id -> `lat,lon` and geography text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offered_zones: BTreeMap<String, OfferedZoneView>,
    /// Zones we subscribed to: partner zone id -> our zone's uid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subscribed: BTreeMap<String, Uid>,
    /// The partner's status per zone, as last notified (`AVAILABLE`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zone_status: BTreeMap<String, String>,
    /// Extensions both sides speak.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// The partner's mobile networks (MCC+MNC): our devices roaming there are served by its
    /// edges (edge node sharing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_codes: Vec<String>,
    /// The flavours the partner supports per subscribed zone (sizes only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flavours: BTreeMap<String, Vec<PartnerFlavour>>,
    /// Our apps onboarded at the partner: app uid -> the partner zone ids it is onboarded on.
    /// Onboarding is per app: it stays while the app exists, and goes when the app is deleted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub onboarded: BTreeMap<Uid, Vec<String>>,
    /// The unguessable part of our callback URLs for this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
}

/// A partner's flavour: what admission on our side picks from and settlement prices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerFlavour {
    /// The partner's flavour id.
    pub flavour_id: String,
    /// vCPUs, in thousandths.
    pub vcpu_milli: u64,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, GB.
    pub disk_gb: u32,
}

/// A partner zone as offered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferedZoneView {
    /// `lat,lon`.
    pub geolocation: String,
    /// The partner's description.
    pub geography_details: String,
}

/// Marks a zone as a partner's (originating role): developers deploy to it like to any zone,
/// and the platform deploys through the partner's EWBI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederatedZone {
    /// The peer.
    pub peer: Name,
    /// The partner's zone id.
    pub zone_id: String,
}

/// Marks an app instance as running on a partner's zone (originating role).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederatedPlacement {
    /// The peer.
    pub peer: Name,
    /// The partner's zone id.
    pub zone_id: String,
    /// The partner's flavour id.
    pub flavour_id: String,
}

/// How far an instance on a partner's zone has got (originating role): each step is done once
/// and recorded, so a restart resumes where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedProgress {
    /// The image file uploaded (its file id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The artefact uploaded (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_id: Option<String>,
    /// The federated app id, once onboarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The partner's instance id, once installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The partner's instance state as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_state: Option<String>,
    /// What the partner last reported of the instance's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<InstanceStatistics>,
    /// The relocations the partner made of the instance, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relocations: Vec<InstanceRelocation>,
}

/// One usage event either side records for settlement (see [`super::usage`]), stored one
/// object per event, named by the event's identity so a redelivery is the same object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageLedgerSpec {
    /// The federation context.
    pub federation: String,
    /// The peer (originating role) or partner (partner role) it is with.
    pub counterpart: Name,
    /// The event.
    pub event: super::usage::UsageEvent,
}

/// What a partner was last told about the zones offered to it (partner role), per zone id:
/// the JSON of its details, status and resources. The zone pusher compares the zones as they
/// are now with it and notifies the differences. Named like the federation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EwbiZoneViewSpec {
    /// Zone id -> details (`ZoneDetails` JSON).
    pub details: BTreeMap<String, serde_json::Value>,
    /// Zone id -> status (`AVAILABLE`, ...).
    pub status: BTreeMap<String, String>,
    /// Subscribed zone id -> resources (`ZoneResUpdInfo` JSON).
    pub resources: BTreeMap<String, serde_json::Value>,
}

/// A callback to a partner's (or peer's) endpoint, stored in the same step as the change it
/// reports and deleted once delivered: at-least-once delivery that survives restarts, in
/// creation order per federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EwbiOutboxSpec {
    /// The federation context (partner role).
    pub federation: Name,
    /// Which callback (`onInstanceStatusEvent`, ...).
    pub callback: String,
    /// Where it goes.
    pub url: String,
    /// The body.
    pub body: serde_json::Value,
    /// Order within the federation: microseconds since the epoch at creation.
    pub seq: i64,
    /// The settlement event this callback reports, recorded in our ledger once the partner
    /// has it (so both ledgers hold exactly the delivered events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::usage::UsageEvent>,
}

/// A cloudlet a partner operator federated with us through `/api/v1/auth/create/cloudlet`
/// (the requirement's cloudlet federation): what it sent, minus the control-endpoint
/// credentials in clear, and the local objects that realise it (an ordinary cloudlet in a zone
/// of its own). Named like the local cloudlet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCloudletSpec {
    /// The registered partner that created it.
    pub partner: Name,
    /// `cloudlet_key.organization` as sent (the partner's name or federation id).
    pub organization: String,
    /// `cloudlet_key.name` as sent.
    pub name: String,
    /// `cloudlet_location`, parsed.
    pub location: crate::specs::GeoPoint,
    /// `Platform_type`: the driver that runs it.
    pub platform_type: crate::specs::PlatformType,
    /// `IP_support`: `Static` or `DHCP`.
    pub ip_support: String,
    /// `Static_IPs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_ips: Vec<String>,
    /// `Resource_Map`: specialised resource tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_map: BTreeMap<String, String>,
    /// `Maintenance_State` is `offline`: the partner wants no instances placed there.
    #[serde(default)]
    pub offline: bool,
    /// `Access_vars`, sealed with AES-256-GCM under a key of the platform's (base64 of
    /// nonce ‖ ciphertext ‖ tag). Never returned, never logged.
    #[schema(value_type = String)]
    pub access_vars_sealed: String,
    /// HMAC of the creation request under the platform's key: the same request again is the
    /// same cloudlet (idempotent create) without keeping a guessable digest of the credentials.
    pub request_mac: String,
    /// The local cloudlet.
    pub cloudlet: Name,
    /// The local zone made for it.
    pub zone: Name,
    /// The aggregate resources the operator reserved on it (the workflow's reserve step);
    /// `None` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<crate::specs::Resources>,
}

/// One step of a federated cloudlet's onboarding workflow as it went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRecord {
    /// Whether the step passed.
    pub ok: bool,
    /// When it last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// What it found (or why it failed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One timed step of a compliance run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceStep {
    /// The step (`createApp`, `createInstance`, `ready`, `qoeTest`, `metrics`, `deleteInstance`).
    pub step: String,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took, milliseconds.
    pub millis: u64,
    /// What it found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What the compliance run measured on the cloudlet (the requirement's cpu, mem, disk,
/// bandwidth), from the runtime when it reports it, else from the flavor's reservation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceMetrics {
    /// vCPUs of the test instance.
    pub vcpus: u32,
    /// Memory of the test instance, MiB.
    pub memory_mb: u64,
    /// Disk of the test instance, GiB.
    pub disk_gb: u64,
    /// Bytes per second the QoE test's response came at (0 when not measured).
    pub bandwidth_bps: u64,
    /// The QoE test's latency, milliseconds.
    pub latency_ms: f64,
    /// Where the figures come from (`flavor`, `runtime`, `model`).
    pub source: String,
    /// What the runtime measured of the test container, where it runs one (Docker cloudlets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredUse>,
}

/// The test container's use as the cloudlet's runtime reported it after the QoE test.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredUse {
    /// CPU time used since it started, milliseconds.
    pub cpu_ms: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes (the flavor's).
    pub memory_limit_bytes: u64,
    /// Bytes written to block devices.
    pub disk_write_bytes: u64,
    /// Bytes received on its interfaces (the QoE request among them).
    pub net_rx_bytes: u64,
    /// Bytes sent on its interfaces (the QoE answer among them).
    pub net_tx_bytes: u64,
}

/// The compliance report of a federated cloudlet: the NBI flow run on it, step by step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// Whether every step passed: the cloudlet may take developers' instances.
    pub passed: bool,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// The steps, in order.
    pub steps: Vec<ComplianceStep>,
    /// What was measured.
    pub metrics: ComplianceMetrics,
}

/// How far a federated cloudlet's onboarding has got, written by its workflow so a restart
/// resumes where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCloudletObserved {
    /// The current phase: `reserve`, `discoverInventory`, `catalogue`, `sizes`, `compliance`,
    /// `compliant` or `failed`.
    #[serde(default)]
    pub phase: String,
    /// Each phase's last outcome.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phases: BTreeMap<String, PhaseRecord>,
    /// Images present on the cloudlet (the catalogue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogue: Vec<String>,
    /// The compliance test's app (operator-owned organization `compliance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_app: Option<Uid>,
    /// The compliance test's instance while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_instance: Option<Uid>,
    /// The compliance test's cluster while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_cluster: Option<Uid>,
    /// When the current compliance run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_started: Option<DateTime<Utc>>,
    /// Steps of the current run so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running_steps: Vec<ComplianceStep>,
    /// The last finished compliance run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceReport>,
}

/// A federated identifier: what crosses to a partner in place of a local name or uid.
/// `prefix` + the first 31 hex digits of HMAC-SHA256(`secret`, `label` ‖ `local`), so it is
/// stable across restarts, valid in both revisions' id patterns (lower-case alphanumerics),
/// and says nothing about the developer, the app or the operator's objects. `secret` is
/// derived per partner, so two partners cannot link the same developer.
pub fn federated_id(secret: &[u8], prefix: char, label: &str, local: Uid) -> String {
    let hex = crate::secret::derive_hex(secret, label, local);
    format!("{prefix}{}", &hex[..31])
}

/// A federated UUID (artefact and file ids are `format: uuid` in the official file): the same
/// derivation shaped as a version-4 UUID.
pub fn federated_uuid(secret: &[u8], label: &str, local: Uid) -> String {
    let h = crate::secret::derive_hex(secret, label, local);
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn federated_ids_are_stable_per_secret_and_match_both_id_patterns() {
        let u = Uid::random();
        let a = federated_id(b"peer-a", 'a', "app/", u);
        assert_eq!(a, federated_id(b"peer-a", 'a', "app/", u));
        assert_ne!(a, federated_id(b"peer-b", 'a', "app/", u));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let id = federated_uuid(b"peer-a", "file/", u);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()).ok(), Some(4));
    }

    #[test]
    fn peer_views_never_return_secrets() {
        let p = FederationPeerSpec {
            url: "https://b.example/operatorplatform/federation/v1".into(),
            token_url: None,
            client_id: "a".into(),
            client_secret: "s3cret".into(),
            ca_pem: None,
            client_identity_pem: Some("-----BEGIN PRIVATE KEY-----".into()),
            federation_id: "op-a".into(),
            accept_zones: vec![],
            region: Name::new("partner").unwrap_or_else(|_| unreachable!()),
        };
        let v = serde_json::to_string(&p.redacted()).unwrap_or_default();
        assert!(!v.contains("s3cret") && !v.contains("PRIVATE KEY"), "{v}");
        assert!(p.validate().is_ok());
        let bad = FederationPeerSpec { url: "http://b.example".into(), ..p };
        assert_eq!(bad.validate().map_err(|e| e.field).err().as_deref(), Some("url"));
    }
}
