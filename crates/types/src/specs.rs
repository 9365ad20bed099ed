//! The spec (desired state) of each kind, and the observed data controllers add. JSON forms are
//! camelCase; apps and instances follow CAMARA Edge Application Management's `AppManifest` and
//! `AppInstanceInfo` so that CAMARA clients work unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::egress::{validate_rules, Egress, OutboundRule};
use crate::ids::{Name, Uid};
use crate::meta::Object;
use crate::validate::{ensure, max_len, FieldError, Validate};

/// A WGS84 position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Degrees north, -90..=90.
    pub latitude: f64,
    /// Degrees east, -180..=180.
    pub longitude: f64,
}

impl Validate for GeoPoint {
    fn validate(&self) -> Result<(), FieldError> {
        ensure((-90.0..=90.0).contains(&self.latitude), "latitude", "must be between -90 and 90")?;
        ensure((-180.0..=180.0).contains(&self.longitude), "longitude", "must be between -180 and 180")
    }
}

/// Where a zone serves devices: radio cells, or a polygon, or both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceArea {
    /// Cell ids (e.g. NR cell global identities) served by the zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
    /// A closed polygon of at least three WGS84 vertices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polygon: Vec<GeoPoint>,
}

impl Validate for ServiceArea {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(
            !self.cells.is_empty() || !self.polygon.is_empty(),
            "cells",
            "a service area needs cell ids or a polygon",
        )?;
        for (i, c) in self.cells.iter().enumerate() {
            let f = format!("cells[{i}]");
            ensure(!c.is_empty(), &f, "must not be empty")?;
            max_len(c, 64, &f)?;
        }
        ensure(
            self.polygon.is_empty() || self.polygon.len() >= 3,
            "polygon",
            "a polygon needs at least 3 vertices",
        )?;
        for (i, p) in self.polygon.iter().enumerate() {
            p.validate().map_err(|e| e.under(&format!("polygon[{i}]")))?;
        }
        Ok(())
    }
}

/// A region: a jurisdiction with its own controller and data (see the scale-out design).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegionSpec {
    /// Free text shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the region's controller serves its API (`http(s)://host:port`): the global plane
    /// sends it every call about the region's cloudlets, instances and devices. None when one
    /// process is both (the embedded default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_url: Option<String>,
    /// The region's regulation, applied by its controller to every cloudlet in it: a cloudlet's
    /// own policy or a developer's cluster may be stricter, never looser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_policy: Option<PrivacyPolicy>,
}

impl RegionSpec {
    /// What the region's regulation lets out of its cloudlets.
    pub fn egress(&self) -> Egress {
        self.privacy_policy.as_ref().map_or(Egress::All, PrivacyPolicy::egress)
    }
}

impl Validate for RegionSpec {
    fn validate(&self) -> Result<(), FieldError> {
        self.description.as_deref().map_or(Ok(()), |d| max_len(d, 256, "description"))?;
        if let Some(u) = &self.controller_url {
            ensure(u.starts_with("http://") || u.starts_with("https://"), "controllerUrl", "must be an http:// or https:// URL")?;
            max_len(u, 2048, "controllerUrl")?;
        }
        self.privacy_policy.as_ref().map_or(Ok(()), |p| p.validate().map_err(|e| e.under("privacyPolicy")))
    }
}

/// A zone: what developers see and deploy to. Never exposes its cloudlets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneSpec {
    /// The region the zone belongs to.
    pub region: Name,
    /// Representative location.
    pub location: GeoPoint,
    /// Where the zone serves devices.
    pub service_area: ServiceArea,
    /// The data-network access identifier of the user plane that reaches the zone: what the
    /// network's traffic steering and path analytics name it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnai: Option<String>,
    /// Set on a partner operator's zone: instances deployed here run on the partner's edge,
    /// through federation. Only the platform makes such zones (from a federation peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<crate::ewbi::objects::FederatedZone>,
}

impl Validate for ZoneSpec {
    fn validate(&self) -> Result<(), FieldError> {
        self.location.validate().map_err(|e| e.under("location"))?;
        if let Some(d) = &self.dnai {
            ensure(!d.is_empty(), "dnai", "must not be empty")?;
            max_len(d, 64, "dnai")?;
        }
        if self.federated.is_some() && self.service_area == ServiceArea::default() {
            // A partner tells where its zone is, not which cells it serves.
            return Ok(());
        }
        self.service_area.validate().map_err(|e| e.under("serviceArea"))
    }
}

/// Which infrastructure driver runs a cloudlet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformType {
    /// The Docker Engine API, served by Docker or Podman.
    Docker,
    /// A simulated cloudlet that starts nothing (scale tests and demos only).
    Sim,
}

/// An amount of compute: used for flavors (a size) and cloudlet capacity (a total).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Disk in GiB.
    #[serde(default)]
    pub disk_gb: u64,
    /// GPUs.
    #[serde(default)]
    pub gpus: u32,
}

impl Resources {
    /// Whether `self` fits inside `other` in every dimension.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.vcpus <= other.vcpus
            && self.memory_mb <= other.memory_mb
            && self.disk_gb <= other.disk_gb
            && self.gpus <= other.gpus
    }

    /// `n` of these (what `n` instances of one flavor take), saturating.
    pub fn times(&self, n: u32) -> Resources {
        Resources {
            vcpus: self.vcpus.saturating_mul(n),
            memory_mb: self.memory_mb.saturating_mul(u64::from(n)),
            disk_gb: self.disk_gb.saturating_mul(u64::from(n)),
            gpus: self.gpus.saturating_mul(n),
        }
    }

    /// Component-wise sum, saturating.
    pub fn plus(&self, o: &Resources) -> Resources {
        Resources {
            vcpus: self.vcpus.saturating_add(o.vcpus),
            memory_mb: self.memory_mb.saturating_add(o.memory_mb),
            disk_gb: self.disk_gb.saturating_add(o.disk_gb),
            gpus: self.gpus.saturating_add(o.gpus),
        }
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} vCPU, {} MiB memory, {} GiB disk, {} GPU", self.vcpus, self.memory_mb, self.disk_gb, self.gpus)
    }
}

/// A flavor is a size.
pub type FlavorSpec = Resources;

impl Validate for Resources {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.vcpus >= 1 && self.vcpus <= 1024, "vcpus", "must be between 1 and 1024")?;
        ensure(
            self.memory_mb >= 16 && self.memory_mb <= 16 * 1024 * 1024,
            "memoryMb",
            "must be between 16 and 16777216",
        )?;
        ensure(self.gpus <= 64, "gpus", "must be at most 64")
    }
}

/// A cloudlet: one point of presence inside a zone, behind one infrastructure driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudletSpec {
    /// The zone it serves.
    pub zone: Name,
    /// Where it stands.
    pub location: GeoPoint,
    /// Which driver runs it.
    pub platform_type: PlatformType,
    /// The driver's endpoint, e.g. `unix:///run/podman/podman.sock` or `tcp://127.0.0.1:2375`.
    pub driver_endpoint: String,
    /// The address on which published app ports are reached (default `127.0.0.1`).
    #[serde(default = "default_public_host")]
    pub public_host: String,
    /// Total capacity offered to apps.
    pub capacity: Resources,
    /// Names of the flavors this cloudlet offers.
    pub flavors: Vec<Name>,
    /// In maintenance: no new instances are placed here.
    #[serde(default)]
    pub maintenance: bool,
    /// What kind of site it is (default an edge site in its zone's region).
    #[serde(default)]
    pub level: CloudletLevel,
    /// The traffic let in to instances here; none: every published port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<SecurityGroup>,
    /// What may leave instances here; none: anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_policy: Option<PrivacyPolicy>,
}

/// A cloudlet's (or a region's) privacy policy: what its instances may open connections to
/// outside the cloudlet. Anything (`outboundAllowed`), only TCP within `outboundRules`, or
/// nothing. Unless anything may leave, instances run only in clusters (internal networks: no
/// route out), whose egress gateway lets out what the rules allow, and a cluster there cannot
/// be opened beyond them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrivacyPolicy {
    /// Outbound connections allowed (default: no).
    #[serde(default)]
    pub outbound_allowed: bool,
    /// While `outboundAllowed` is off: the destinations that may still be reached (TCP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_rules: Vec<OutboundRule>,
}

impl PrivacyPolicy {
    /// What the policy lets out.
    pub fn egress(&self) -> Egress {
        Egress::from_policy(self.outbound_allowed, &self.outbound_rules)
    }
}

impl Validate for PrivacyPolicy {
    fn validate(&self) -> Result<(), FieldError> {
        validate_rules(&self.outbound_rules, self.outbound_allowed, "outboundRules")
    }
}

impl CloudletSpec {
    /// Whether instances here may reach outside the cloudlet directly (outside a cluster).
    pub fn outbound_allowed(&self) -> bool {
        self.privacy_policy.as_ref().is_none_or(|p| p.outbound_allowed)
    }

    /// What the cloudlet's privacy policy lets out.
    pub fn egress(&self) -> Egress {
        self.privacy_policy.as_ref().map_or(Egress::All, PrivacyPolicy::egress)
    }
}

/// The level of a cloudlet in the operator's footprint (OPG.02 operator workflow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum CloudletLevel {
    /// An edge site of the operator, in its zone's region.
    #[default]
    EdgeSite,
    /// A site a federated partner operator offers through us.
    FederatedSite,
    /// A public cloud's site peered with the operator's network.
    PublicCloudPeering,
}

/// Which traffic may reach instances on a cloudlet: only ports of the listed rules are let
/// in (an app exposing another port is not placed there).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityGroup {
    /// Allowed inbound traffic.
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
}

/// One allowed inbound port range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressRule {
    /// `TCP`, `UDP` or `ANY`.
    pub protocol: Protocol,
    /// First port.
    pub port_min: u16,
    /// Last port (default: `portMin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u16>,
}

impl SecurityGroup {
    /// Whether traffic on `port` over `protocol` is let in.
    pub fn admits(&self, protocol: Protocol, port: u16) -> bool {
        self.ingress.iter().any(|r| {
            let proto = r.protocol == Protocol::ANY || protocol == Protocol::ANY || r.protocol == protocol;
            proto && (r.port_min..=r.port_max.unwrap_or(r.port_min)).contains(&port)
        })
    }
}

impl Validate for SecurityGroup {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.ingress.len() <= 64, "ingress", "at most 64 rules")?;
        for (i, r) in self.ingress.iter().enumerate() {
            ensure(r.port_min > 0, &format!("ingress[{i}].portMin"), "must be 1 to 65535")?;
            ensure(r.port_max.is_none_or(|m| m >= r.port_min), &format!("ingress[{i}].portMax"), "must not be below portMin")?;
        }
        Ok(())
    }
}

fn default_public_host() -> String {
    "127.0.0.1".to_string()
}

impl Validate for CloudletSpec {
    fn validate(&self) -> Result<(), FieldError> {
        self.location.validate().map_err(|e| e.under("location"))?;
        let ep = &self.driver_endpoint;
        match self.platform_type {
            PlatformType::Docker => ensure(
                ep.starts_with("unix://") || ep.starts_with("tcp://") || ep.starts_with("http://"),
                "driverEndpoint",
                "must be a unix://, tcp:// or http:// URL of a Docker Engine API",
            )?,
            PlatformType::Sim => ensure(ep.starts_with("sim://"), "driverEndpoint", "a sim cloudlet's endpoint is sim://NAME[?startMs=N&failEvery=K]")?,
        }
        max_len(ep, 512, "driverEndpoint")?;
        ensure(
            self.public_host.parse::<std::net::IpAddr>().is_ok(),
            "publicHost",
            "must be an IP address",
        )?;
        self.capacity.validate().map_err(|e| e.under("capacity"))?;
        if let Some(sg) = &self.security_group {
            sg.validate().map_err(|e| e.under("securityGroup"))?;
        }
        if let Some(p) = &self.privacy_policy {
            p.validate().map_err(|e| e.under("privacyPolicy"))?;
        }
        ensure(!self.flavors.is_empty(), "flavors", "a cloudlet must offer at least one flavor")
    }
}

/// A developer organization (CAMARA's application provider).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The organization this one belongs to (a group of it): a role in the parent holds here
    /// too, so a company's Manager manages its teams. Set at creation, never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Name>,
}

impl Validate for OrganizationSpec {
    fn validate(&self) -> Result<(), FieldError> {
        self.description.as_deref().map_or(Ok(()), |d| max_len(d, 256, "description"))
    }
}

/// The operator's weight matrix: what each placement criterion costs (lower total wins).
/// Missing entries keep the platform's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PlacementWeights {
    /// Per 100 km from the location served.
    pub distance: f64,
    /// Per 10 ms of estimated latency.
    pub latency: f64,
    /// Edge load, 0 to 1.
    pub edge_load: f64,
    /// Network load, 0 to 1.
    pub network_load: f64,
    /// Forecast edge usage, 0 to 1.
    pub forecast: f64,
    /// Added where the app is not deployed yet.
    pub not_deployed: f64,
    /// Added where the edge lacks mobility support.
    pub no_mobility: f64,
}

impl Default for PlacementWeights {
    fn default() -> Self {
        Self { distance: 1.0, latency: 2.0, edge_load: 1.0, network_load: 0.5, forecast: 0.5, not_deployed: 0.2, no_mobility: 0.1 }
    }
}

impl Validate for PlacementWeights {
    fn validate(&self) -> Result<(), FieldError> {
        for (v, f) in [
            (self.distance, "distance"),
            (self.latency, "latency"),
            (self.edge_load, "edgeLoad"),
            (self.network_load, "networkLoad"),
            (self.forecast, "forecast"),
            (self.not_deployed, "notDeployed"),
            (self.no_mobility, "noMobility"),
        ] {
            ensure(v.is_finite() && (0.0..=1000.0).contains(&v), f, "must be a number from 0 to 1000")?;
        }
        Ok(())
    }
}

/// An app barred from a cloudlet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BarredPair {
    /// The app.
    pub app: Uid,
    /// The cloudlet.
    pub cloudlet: Name,
}

/// The operator's placement policy (OPG.02 network/operator criteria): the weight matrix, per
/// app class, and barring rules. The policy named after a zone's region applies there, else
/// the one named `default`, else the platform's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlacementPolicySpec {
    /// Weights for apps without a class of their own here.
    #[serde(default)]
    pub weights: PlacementWeights,
    /// Weights per app class (`requirements.appClass`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_class: BTreeMap<Name, PlacementWeights>,
    /// Cloudlets no app may be placed on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub barred_cloudlets: Vec<Name>,
    /// Apps that may not be placed anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub barred_apps: Vec<Uid>,
    /// Apps barred from particular cloudlets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub barred_pairs: Vec<BarredPair>,
    /// Users barred from edge apps: devices, by E.164 phone number (`+33612340001`) or network
    /// access identifier, refused at UNI registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub barred_devices: Vec<String>,
    /// Bounds on developers' serverless policies (read from the `default` policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<crate::serverless::ServerlessBounds>,
}

impl PlacementPolicySpec {
    /// Whether the policy bars `app` from `cloudlet` (the app everywhere, the cloudlet for
    /// every app, or the pair): the one barring rule, for discovery and its zone checks.
    pub fn bars(&self, app: Uid, cloudlet: &Name) -> bool {
        self.barred_apps.contains(&app) || self.barred_cloudlets.contains(cloudlet) || self.barred_pairs.iter().any(|b| b.app == app && &b.cloudlet == cloudlet)
    }
}

impl Validate for PlacementPolicySpec {
    fn validate(&self) -> Result<(), FieldError> {
        self.weights.validate().map_err(|e| e.under("weights"))?;
        for (class, w) in &self.by_class {
            w.validate().map_err(|e| e.under(&format!("byClass.{class}")))?;
        }
        for (i, d) in self.barred_devices.iter().enumerate() {
            let phone = d.starts_with('+') && d.len() > 4 && d.len() <= 16 && d[1..].bytes().all(|b| b.is_ascii_digit());
            let nai = d.split_once('@').is_some_and(|(l, r)| !l.is_empty() && !r.is_empty()) && d.len() <= 256;
            ensure(phone || nai, &format!("barredDevices[{i}]"), "must be an E.164 phone number (+ and digits) or a network access identifier (local@domain)")?;
        }
        ensure(
            self.barred_cloudlets.len() + self.barred_apps.len() + self.barred_pairs.len() + self.barred_devices.len() <= 10_000,
            "barredCloudlets",
            "at most 10,000 barring rules",
        )
    }
}

/// What a platform service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformServiceKind {
    /// A PostgreSQL server: each instance of an app that needs it gets its own database and
    /// login role, handed to it as `DATABASE_URL`.
    Postgresql,
}

/// A platform service the operator offers to apps (OPG.02 application provider criterion:
/// platform services), e.g. a managed database attached to each instance that needs it. Apps
/// ask for it by name in `requirements.platformServices`. `adminUrl` is a secret: stored,
/// never returned by any API and never logged (the `Debug` form hides it).
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformServiceSpec {
    /// What the service is.
    pub kind: PlatformServiceKind,
    /// `postgres://user:password@host:port/database` of a role with CREATEDB and CREATEROLE,
    /// which the platform uses to create each instance's database and role. Required on
    /// create; a replacement without it keeps the stored one. Write-only: never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub admin_url: Option<String>,
    /// The address instances reach the service at (default: the host of `adminUrl`), e.g. the
    /// container network's gateway when the server runs on the cloudlet's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port instances reach the service at (default: the port of `adminUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Cloudlets where the service is offered; empty: every cloudlet. Hidden from developers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloudlets: Vec<Name>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl std::fmt::Debug for PlatformServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformServiceSpec")
            .field("kind", &self.kind)
            .field("admin_url", &self.admin_url.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("cloudlets", &self.cloudlets)
            .field("description", &self.description)
            .finish()
    }
}

impl PlatformServiceSpec {
    /// The parsed `adminUrl`.
    pub fn admin(&self) -> Result<PostgresUrl, FieldError> {
        let url = self.admin_url.as_deref().ok_or_else(|| {
            FieldError::new("adminUrl", "is required: postgres://user:password@host:port/database of a role with CREATEDB and CREATEROLE")
        })?;
        PostgresUrl::parse(url).map_err(|m| FieldError::new("adminUrl", m))
    }

    /// Where instances reach the service: `host` and `port`, else those of `adminUrl`.
    pub fn reach(&self, admin: &PostgresUrl) -> (String, u16) {
        (self.host.clone().unwrap_or_else(|| admin.host.clone()), self.port.unwrap_or(admin.port))
    }

    /// Whether the service is offered on cloudlet `cloudlet`.
    pub fn offered_on(&self, cloudlet: &Name) -> bool {
        self.cloudlets.is_empty() || self.cloudlets.contains(cloudlet)
    }
}

impl Validate for PlatformServiceSpec {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(u) = &self.admin_url {
            max_len(u, 2048, "adminUrl")?;
        }
        self.admin()?;
        if let Some(h) = &self.host {
            ensure(valid_host(h), "host", "must be a host name or an IP address")?;
        }
        ensure(self.port != Some(0), "port", "must be from 1 to 65535")?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.cloudlets.iter().enumerate() {
            ensure(seen.insert(c), &format!("cloudlets[{i}]"), "is listed twice")?;
        }
        self.description.as_deref().map_or(Ok(()), |d| max_len(d, 256, "description"))
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// A `postgres://user:password@host:port/database` URL, parsed (percent-escapes decoded).
/// The `Debug` form hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// Role name.
    pub user: String,
    /// Its password (secret).
    pub password: String,
    /// Server host name or IP address.
    pub host: String,
    /// Server port (default 5432).
    pub port: u16,
    /// Database (default `postgres`).
    pub database: String,
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "postgres://{}:<redacted>@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

impl PostgresUrl {
    /// The shape every message about a bad URL names (never the URL itself: it holds a password).
    const SHAPE: &'static str = "must be postgres://user:password@host[:port][/database]";

    /// Parses `s`; the error says what is wrong without repeating `s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let shape = || Self::SHAPE.to_string();
        let rest = s.strip_prefix("postgres://").or_else(|| s.strip_prefix("postgresql://")).ok_or_else(shape)?;
        if rest.contains(['?', '#']) {
            return Err(format!("{}, without query parameters", Self::SHAPE));
        }
        let (userinfo, server) = rest.rsplit_once('@').ok_or_else(|| format!("{}: the user is missing", Self::SHAPE))?;
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (user, password) = (percent_decode(user).ok_or_else(shape)?, percent_decode(password).ok_or_else(shape)?);
        if user.is_empty() {
            return Err(format!("{}: the user is missing", Self::SHAPE));
        }
        let (hostport, database) = server.split_once('/').unwrap_or((server, ""));
        let database = percent_decode(database).ok_or_else(shape)?;
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(shape)?;
                (h, after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if !valid_host(host) {
            return Err(format!("{}: the host is missing or invalid", Self::SHAPE));
        }
        let port = match port {
            None => 5432,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("{}: the port must be from 1 to 65535", Self::SHAPE))?,
        };
        if database.contains('/') {
            return Err(shape());
        }
        let database = if database.is_empty() { "postgres".to_string() } else { database };
        Ok(Self { user, password, host: host.to_string(), port, database })
    }

    /// The URL again, escaped where needed: what an app is given.
    pub fn to_url(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!(
            "postgres://{}:{}@{host}:{}/{}",
            percent_encode(&self.user),
            percent_encode(&self.password),
            self.port,
            percent_encode(&self.database)
        )
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Roles. Operator roles act on the whole platform; the others act within one organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Role {
    /// Runs the platform: infrastructure, organizations, users.
    OperatorAdmin,
    /// Reads everything, changes nothing.
    OperatorViewer,
    /// Manages an organization's apps, instances and users.
    Manager,
    /// Manages an organization's apps and instances.
    Contributor,
    /// Reads an organization's objects.
    Viewer,
}

impl Role {
    /// Whether the role belongs to the operator rather than an organization.
    pub fn is_operator(self) -> bool {
        matches!(self, Role::OperatorAdmin | Role::OperatorViewer)
    }

    /// Whether holding `self` includes every right of `other` (a Manager may hand out
    /// Contributor, an operator admin anything; no developer role covers an operator role).
    pub fn covers(self, other: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Viewer | Role::OperatorViewer => 0,
            Role::Contributor => 1,
            Role::Manager | Role::OperatorAdmin => 2,
        };
        (self.is_operator() == other.is_operator() || self == Role::OperatorAdmin) && rank(self) >= rank(other)
    }
}

/// A role a user holds in an organization besides its own (`UserSpec::organization`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Membership {
    /// The organization.
    pub organization: Name,
    /// The role there (a developer role).
    pub role: Role,
}

/// A user as stored. The password hash never leaves the store through any API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// The organization for developer roles; `None` for operator roles.
    pub organization: Option<Name>,
    /// What the user may do.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Roles in further organizations; a token acts for one organization at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memberships: Vec<Membership>,
}

impl UserSpec {
    /// The user's role in `org` itself (its own organization or a membership), if any.
    pub fn role_in(&self, org: &Name) -> Option<Role> {
        if self.organization.as_ref() == Some(org) {
            return Some(self.role);
        }
        self.memberships.iter().find(|m| &m.organization == org).map(|m| m.role)
    }
}

/// An API key as stored: whose it is, what it may do, and the SHA-256 of its secret (the
/// secret is shown once, at creation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// The user it acts as.
    pub user: Name,
    /// The organization it acts in (`None` for an operator's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// Its role: at most the user's, checked again on every use.
    pub role: Role,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A relying party of the platform's OpenID Connect provider, registered by the operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcClientSpec {
    /// Where the provider may send the authorization code (exact match).
    pub redirect_uris: Vec<String>,
    /// Argon2id hash of the client secret; `None` for a public client (PKCE required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
}

/// Application package format (CAMARA `packageType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum PackageType {
    QCOW2,
    OVA,
    CONTAINER,
    HELM,
    CSAR,
}

/// OS of the application image (CAMARA `OperatingSystem`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatingSystem {
    /// `x86_64` or `x86`.
    pub architecture: String,
    /// RHEL, UBUNTU, COREOS, WINDOWS, OTHER.
    pub family: String,
    /// e.g. `OS_VERSION_UBUNTU_2204_LTS`, `OTHER`.
    pub version: String,
    /// e.g. `OS_LICENSE_TYPE_FREE`.
    pub license: String,
}

impl Validate for OperatingSystem {
    fn validate(&self) -> Result<(), FieldError> {
        let one_of = |v: &str, set: &[&str], f: &str| {
            ensure(set.contains(&v), f, format!("must be one of {}", set.join(", ")))
        };
        one_of(&self.architecture, &["x86_64", "x86"], "architecture")?;
        one_of(&self.family, &["RHEL", "UBUNTU", "COREOS", "WINDOWS", "OTHER"], "family")?;
        one_of(
            &self.version,
            &["OS_VERSION_UBUNTU_2204_LTS", "OS_VERSION_RHEL_8", "OS_MS_WINDOWS_2022", "OTHER"],
            "version",
        )?;
        one_of(
            &self.license,
            &["OS_LICENSE_TYPE_FREE", "OS_LICENSE_TYPE_ON_DEMAND", "OTHER"],
            "license",
        )
    }
}

/// Public or private repository (CAMARA `appRepo.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum RepoType {
    PRIVATEREPO,
    PUBLICREPO,
}

/// How to authenticate to the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepoAuthType {
    Docker,
    HttpBasic,
    HttpBearer,
    None,
}

/// Where the image comes from (CAMARA `appRepo`). `credentials` is a secret: stored, never
/// returned by any API and never logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppRepo {
    /// Public or private.
    #[serde(rename = "type")]
    pub repo_type: RepoType,
    /// Image reference, e.g. `localhost/op-sample-app:latest`.
    pub image_path: String,
    /// Repository user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Password or token (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// How `credentials` are presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<RepoAuthType>,
    /// sha256 digest for containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Validate for AppRepo {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(!self.image_path.is_empty(), "imagePath", "must name an image")?;
        max_len(&self.image_path, 2048, "imagePath")?;
        ensure(
            !self.image_path.chars().any(|c| c.is_whitespace() || c.is_control()),
            "imagePath",
            "must not contain white space",
        )?;
        if let Some(u) = &self.user_name {
            max_len(u, 64, "userName")?;
        }
        if let Some(c) = &self.credentials {
            max_len(c, 2048, "credentials")?;
        }
        if let Some(c) = &self.checksum {
            max_len(c, 128, "checksum")?;
        }
        Ok(())
    }
}

/// GPU needs (CAMARA `GpuInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GpuInfo {
    /// GPU memory in MB.
    pub gpu_memory: u32,
    /// Number of GPUs (CAMARA spells it `numGPU`).
    #[serde(rename = "numGPU")]
    pub num_gpu: u32,
}

/// Additional storage (CAMARA `AdditionalStorage` item).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdditionalStorage {
    /// Name of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Size, e.g. `10GB` or `512MB`.
    pub storage_size: String,
    /// Where it is mounted.
    pub mount_point: String,
}

/// Container resources (CAMARA `ContainerResources`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerResources {
    /// vCPUs as `1`, `0.500` or `500m` (CAMARA spells it `numCPU`).
    #[serde(rename = "numCPU")]
    pub num_cpu: String,
    /// Memory in MB.
    pub memory: u32,
    /// Additional storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Vec<AdditionalStorage>>,
    /// GPU needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuInfo>,
}

/// Parses a CAMARA `Vcpu` (`1`, `0.5`, `0.500`, `500m`) into millicpus.
pub fn parse_millicpu(s: &str) -> Option<u32> {
    if let Some(m) = s.strip_suffix('m') {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_digit()) || m.len() > 9 {
            return None;
        }
        return m.parse().ok();
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || whole.len() > 6 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.contains('.') && (frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let w: u32 = whole.parse().ok()?;
    let f: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    w.checked_mul(1000)?.checked_add(f)
}

impl Validate for ContainerResources {
    fn validate(&self) -> Result<(), FieldError> {
        let m = parse_millicpu(&self.num_cpu)
            .ok_or_else(|| FieldError::new("numCPU", "must be like 1, 0.500 or 500m"))?;
        ensure(m >= 1, "numCPU", "must be more than zero")?;
        ensure((1..=16384).contains(&self.memory), "memory", "must be between 1 and 16384 (MB)")?;
        if let Some(g) = &self.gpu {
            ensure(g.num_gpu <= 16, "gpu.numGPU", "must be at most 16")?;
            ensure(g.gpu_memory <= 16384, "gpu.gpuMemory", "must be at most 16384")?;
        }
        for (i, s) in self.storage.iter().flatten().enumerate() {
            let ok = s
                .storage_size
                .strip_suffix("GB")
                .or_else(|| s.storage_size.strip_suffix("MB"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            ensure(ok, &format!("storage[{i}].storageSize"), "must be like 10GB or 512MB")?;
            ensure(
                s.mount_point.starts_with('/') && s.mount_point.len() <= 64,
                &format!("storage[{i}].mountPoint"),
                "must be an absolute path of at most 64 characters",
            )?;
        }
        Ok(())
    }
}

/// Hardware requirements (CAMARA `RequiredResources`, discriminated by `infraKind`). The
/// container kind is what the `docker` driver runs; other kinds are refused at onboarding with an
/// error naming `requiredResources.infraKind` until a driver for them exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "infraKind")]
pub enum RequiredResources {
    /// A single container.
    #[serde(rename = "container")]
    Container(ContainerResources),
}

/// Transport protocol of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum Protocol {
    TCP,
    UDP,
    ANY,
}

/// Whether an interface is exposed outside the edge cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Visibility {
    VisibilityExternal,
    VisibilityInternal,
}

/// One port of a component (CAMARA `networkInterfaces` item).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Identifier, 4 to 32 characters.
    pub interface_id: String,
    /// Transport.
    pub protocol: Protocol,
    /// The port the app listens on inside its container.
    pub port: u16,
    /// External or internal.
    pub visibility_type: Visibility,
    /// Extension: a fixed external port on the cloudlet instead of a dynamic one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_port: Option<u16>,
}

impl Validate for NetworkInterface {
    fn validate(&self) -> Result<(), FieldError> {
        let id = &self.interface_id;
        let ok = (4..=32).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && id.as_bytes()[0].is_ascii_alphanumeric()
            && id.as_bytes()[id.len() - 1].is_ascii_alphanumeric();
        ensure(ok, "interfaceId", "must be 4 to 32 letters, digits or '_', not starting or ending with '_'")?;
        ensure(self.port >= 1, "port", "must be between 1 and 65535")?;
        ensure(self.ext_port != Some(0), "extPort", "must be between 1 and 65535")
    }
}

/// One component of the app (CAMARA `componentSpec` item).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Unique within the app.
    pub component_name: String,
    /// Its ports.
    pub network_interfaces: Vec<NetworkInterface>,
}

/// Instantiation type (OPG.02 application provider criterion).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum InstantiationType {
    /// Where and when the developer says.
    #[default]
    Static,
    /// On a device's request, near it.
    Dynamic,
    /// One instance per `usersPerInstance` users.
    CapacityBased,
    /// Where its users are, only while they are there: behind the ingress of every point of
    /// presence, started from zero and scaled by the policies in `serverless`.
    Serverless,
}

/// Mobility policy (OPG.02): may the platform move the app's server as devices move?
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MobilityPolicy {
    /// Never relocate.
    NeverMove,
    /// Relocate without telling the app.
    #[default]
    MoveWithoutNotice,
    /// Tell the app first; it says when it is ready.
    MoveWithPriorNotice,
}

/// What to do when a device's conditions do not meet the criteria.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum UnmetPolicy {
    /// Refuse the device.
    Reject,
    /// Serve it from the best edge anyway.
    #[default]
    BestEffort,
    /// Send it to `fallbackEndpoint`.
    FallbackToCloud,
}

/// Where the app may run (OPG.02 footprint criterion); empty means anywhere.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Footprint {
    /// Zone ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<Uid>,
    /// Region names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Name>,
    /// Cell ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
    /// A polygon.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polygon: Vec<GeoPoint>,
}

/// The OPG.02 application provider criteria beyond CAMARA's manifest. Stored and validated at
/// onboarding; enforced by placement, discovery and mobility.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirements {
    /// Maximum one-way latency device to edge, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
    /// Maximum jitter, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jitter_ms: Option<f64>,
    /// Minimum bandwidth, Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bandwidth_mbps: Option<f64>,
    /// Regions the app's data must not leave; empty means no restriction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_regions: Vec<Name>,
    /// Where the app may run.
    #[serde(default)]
    pub footprint: Footprint,
    /// Static, dynamic or capacity-based.
    #[serde(default)]
    pub instantiation: InstantiationType,
    /// For capacity-based instantiation: users per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_per_instance: Option<u32>,
    /// For serverless instantiation: the developer's policies (defaults when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<crate::serverless::ServerlessPolicy>,
    /// May the server move with its devices?
    #[serde(default)]
    pub mobility_policy: MobilityPolicy,
    /// What to do when a device's conditions do not meet the criteria.
    #[serde(default)]
    pub on_unmet: UnmetPolicy,
    /// Cloud endpoint used with `fallbackToCloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_endpoint: Option<String>,
    /// Also available to devices roaming in partner networks.
    #[serde(default)]
    pub visited_networks: bool,
    /// The app's class in the operator's placement policy (its weight matrix per class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_class: Option<Name>,
    /// Customer reach (OPG.02 MNO selection): the mobile networks, as PLMN ids (`mcc` then
    /// `mnc`, e.g. `20801`), whose devices may use the app: this operator's own and its
    /// partners'. Empty: every network this platform serves. A device is checked against the
    /// network serving it at registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_reach: Vec<String>,
    /// Platform services the operator attaches to each instance (e.g. a managed database),
    /// by the name the operator offers them under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platform_services: Vec<Name>,
    /// The telemetry the provider receives about the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// What an app provider receives about its app (OPG.02 application provider criterion:
/// telemetry), read at `GET /op/v1/apps/{appId}/telemetry` and, with a webhook, pushed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Telemetry {
    /// The kinds of telemetry wanted; nothing else is collected for the app.
    pub kinds: Vec<TelemetryKind>,
    /// Where reports are POSTed (http or https URL), every `intervalSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Seconds between pushed reports (10 to 86400, default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
}

/// A kind of telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum TelemetryKind {
    /// Each instance's zone and state.
    Instances,
    /// Active device sessions and distinct devices per zone.
    Sessions,
    /// The network's expected latency, jitter and bandwidth for the app's sessions, per zone.
    Qos,
}

/// Whether `s` is a PLMN id: a 3-digit MCC then a 2- or 3-digit MNC.
pub fn is_plmn_id(s: &str) -> bool {
    (5..=6).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

impl Validate for Requirements {
    fn validate(&self) -> Result<(), FieldError> {
        let pos = |v: Option<f64>, f: &str| {
            ensure(v.is_none_or(|x| x.is_finite() && x > 0.0), f, "must be a positive number")
        };
        pos(self.max_latency_ms, "maxLatencyMs")?;
        pos(self.max_jitter_ms, "maxJitterMs")?;
        pos(self.min_bandwidth_mbps, "minBandwidthMbps")?;
        let fp = &self.footprint;
        ensure(fp.polygon.is_empty() || fp.polygon.len() >= 3, "footprint.polygon", "a polygon needs at least 3 vertices")?;
        for (i, p) in fp.polygon.iter().enumerate() {
            p.validate().map_err(|e| e.under(&format!("footprint.polygon[{i}]")))?;
        }
        match (self.instantiation, self.users_per_instance) {
            (InstantiationType::CapacityBased, None | Some(0)) => {
                return Err(FieldError::new("usersPerInstance", "capacity-based instantiation needs usersPerInstance >= 1"))
            }
            (InstantiationType::Static | InstantiationType::Dynamic | InstantiationType::Serverless, Some(_)) => {
                return Err(FieldError::new("usersPerInstance", "only applies to capacityBased instantiation"))
            }
            _ => {}
        }
        match (self.instantiation, &self.serverless) {
            (InstantiationType::Serverless, Some(p)) => p.validate().map_err(|e| e.under("serverless"))?,
            (_, Some(_)) => return Err(FieldError::new("serverless", "only applies to serverless instantiation")),
            _ => {}
        }
        for (i, p) in self.customer_reach.iter().enumerate() {
            ensure(is_plmn_id(p), &format!("customerReach[{i}]"), "must be a PLMN id: 3-digit MCC then 2- or 3-digit MNC, e.g. 20801")?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.platform_services.iter().enumerate() {
            ensure(seen.insert(p), &format!("platformServices[{i}]"), "is listed twice")?;
        }
        ensure(self.platform_services.len() <= 16, "platformServices", "at most 16 platform services")?;
        if let Some(t) = &self.telemetry {
            ensure(!t.kinds.is_empty(), "telemetry.kinds", "name at least one of instances, sessions, qos")?;
            ensure(
                t.webhook.as_ref().is_none_or(|u| (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048),
                "telemetry.webhook",
                "must be an http(s) URL",
            )?;
            ensure(
                t.interval_seconds.is_none_or(|s| (10..=86_400).contains(&s)),
                "telemetry.intervalSeconds",
                "must be between 10 and 86400",
            )?;
        }
        match (self.on_unmet, &self.fallback_endpoint) {
            (UnmetPolicy::FallbackToCloud, None) => {
                Err(FieldError::new("fallbackEndpoint", "fallbackToCloud needs a fallbackEndpoint URL"))
            }
            (_, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048 => {
                Err(FieldError::new("fallbackEndpoint", "must be an http(s) URL"))
            }
            _ => Ok(()),
        }
    }
}

/// An application as onboarded: CAMARA's `AppManifest` (its `name` and `appId` live in the
/// metadata) plus the platform's extensions `flavor`, `env` and `requirements`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSpec {
    /// Application version.
    pub version: String,
    /// Name of the application provider: the owning organization.
    pub app_provider: String,
    /// Package format.
    pub package_type: PackageType,
    /// Image OS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<OperatingSystem>,
    /// Where the image comes from.
    pub app_repo: AppRepo,
    /// Hardware requirements.
    pub required_resources: RequiredResources,
    /// Components and their ports.
    pub component_spec: Vec<ComponentSpec>,
    /// Extension: the operator flavor to run on; when absent the smallest flavor that fits
    /// `requiredResources` is chosen at deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<Name>,
    /// Extension: environment variables for the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Extension: OPG.02 application provider criteria.
    #[serde(default)]
    pub requirements: Requirements,
    /// Extension: how the app's device clients prove who they are at the UNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_auth: Option<DeviceAuth>,
}

/// How device clients of an app authenticate at the UNI: with a JWT the app provider signs
/// (audience `op-uni`), checked against this public key. The key is public: it is returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceAuth {
    /// SPKI PEM of an Ed25519, ECDSA P-256 or RSA public key.
    pub public_key_pem: String,
}

impl Validate for DeviceAuth {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(
            self.public_key_pem.contains("-----BEGIN PUBLIC KEY-----") && self.public_key_pem.len() <= 8192,
            "publicKeyPem",
            "must be a PEM public key (-----BEGIN PUBLIC KEY-----)",
        )
    }
}

impl AppSpec {
    /// The external interfaces, which get an endpoint per instance.
    pub fn external_interfaces(&self) -> impl Iterator<Item = &NetworkInterface> {
        self.component_spec
            .iter()
            .flat_map(|c| c.network_interfaces.iter())
            .filter(|n| n.visibility_type == Visibility::VisibilityExternal)
    }

    /// A copy fit to return through an API: secrets removed.
    pub fn redacted(&self) -> AppSpec {
        let mut s = self.clone();
        if s.app_repo.credentials.is_some() {
            s.app_repo.credentials = None;
        }
        s
    }

    /// The compute the app asks for, as a [`Resources`] to match against flavors.
    pub fn needs(&self) -> Resources {
        let RequiredResources::Container(c) = &self.required_resources;
        Resources {
            vcpus: parse_millicpu(&c.num_cpu).map_or(1, |m| m.div_ceil(1000)),
            memory_mb: u64::from(c.memory),
            disk_gb: 0,
            gpus: c.gpu.map_or(0, |g| g.num_gpu),
        }
    }
}

impl Validate for AppSpec {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(!self.version.is_empty(), "version", "must not be empty")?;
        max_len(&self.version, 64, "version")?;
        ensure(
            self.package_type == PackageType::CONTAINER,
            "packageType",
            "only CONTAINER packages can run on this platform's cloudlets",
        )?;
        if let Some(os) = &self.operating_system {
            os.validate().map_err(|e| e.under("operatingSystem"))?;
        }
        self.app_repo.validate().map_err(|e| e.under("appRepo"))?;
        let RequiredResources::Container(c) = &self.required_resources;
        c.validate().map_err(|e| e.under("requiredResources"))?;
        ensure(!self.component_spec.is_empty(), "componentSpec", "must list at least one component")?;
        ensure(self.component_spec.len() <= 100, "componentSpec", "at most 100 components")?;
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        let mut ports = std::collections::HashSet::new();
        for (i, c) in self.component_spec.iter().enumerate() {
            let f = format!("componentSpec[{i}]");
            ensure(
                !c.component_name.is_empty() && c.component_name.len() <= 64,
                &format!("{f}.componentName"),
                "must be 1 to 64 characters",
            )?;
            ensure(names.insert(&c.component_name), &format!("{f}.componentName"), "must be unique within the app")?;
            ensure(!c.network_interfaces.is_empty(), &format!("{f}.networkInterfaces"), "must list at least one interface")?;
            for (j, n) in c.network_interfaces.iter().enumerate() {
                let nf = format!("{f}.networkInterfaces[{j}]");
                n.validate().map_err(|e| e.under(&nf))?;
                ensure(ids.insert(&n.interface_id), &format!("{nf}.interfaceId"), "must be unique within the app")?;
                ensure(ports.insert(n.port), &format!("{nf}.port"), "two interfaces cannot use the same port")?;
            }
        }
        for k in self.env.keys() {
            let ok = !k.is_empty()
                && k.len() <= 128
                && !k.as_bytes()[0].is_ascii_digit()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            ensure(ok, &format!("env.{k}"), "variable names are letters, digits and '_', not starting with a digit")?;
        }
        for (k, v) in &self.env {
            max_len(v, 4096, &format!("env.{k}"))?;
        }
        if let Some(d) = &self.device_auth {
            d.validate().map_err(|e| e.under("deviceAuth"))?;
        }
        self.requirements.validate().map_err(|e| e.under("requirements"))
    }
}

/// What a developer asks for when deploying: an app on a zone. The cloudlet and flavor are
/// decided at admission and recorded here, so the decision survives restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceSpec {
    /// The app (its uid).
    pub app_id: Uid,
    /// The zone (its uid).
    pub edge_cloud_zone_id: Uid,
    /// The cloudlet chosen inside the zone (shown to developers as [`HIDDEN_CLOUDLET`]:
    /// cloudlets are the operator's).
    pub cloudlet: Name,
    /// The flavor the instance runs with.
    pub flavor: Name,
    /// Set when the zone is a partner's: the instance runs there, deployed through federation
    /// (and `cloudlet` names the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<crate::ewbi::objects::FederatedPlacement>,
    /// The cluster it runs in (its uid): on the cluster's network and cloudlet, reached from
    /// outside only through a load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Uid>,
    /// The app's store revision when the instance was admitted: the controller may read the
    /// app from its in-memory copy once that copy is at least this new (else from the store),
    /// so an app updated just before a deployment deploys as updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_revision: Option<u64>,
}

/// What developers see in place of a cloudlet's name.
pub const HIDDEN_CLOUDLET: &str = "hidden";

/// Where an instance can be reached, per external interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The app's interface.
    pub interface_id: String,
    /// Address clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
}

/// What the instance controller has observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceObserved {
    /// Runtime container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// One per external interface, once known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Where other instances reach it (its container's network address and the app's ports):
    /// what MEC 021 gives an app moving a device's state to this instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_endpoints: Vec<Endpoint>,
    /// The file of its container's network namespace on the platform's host (runtimes on that
    /// host only): a serverless ingress enters it to reach the instance over the namespace's
    /// own loopback (operator's view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_namespace: Option<String>,
    /// Why the instance runs where it does (written at admission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementNote>,
    /// The platform services attached to the instance (their names; the credentials are only
    /// in the instance's environment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Name>,
    /// How far deployment on a partner's zone has got (federated instances only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<crate::ewbi::objects::FederatedProgress>,
    /// How many times the platform found the container exited and started it again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A placement decision explained (OPG.02: why this edge, why not that one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementNote {
    /// For everyone: the account at zone level, with no edge names or capacities.
    pub summary: String,
    /// For the operator: the chosen edge, then up to seven others of the zone from the closest
    /// call to the farthest, and what became of each (hidden from developers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeOutcome>,
}

/// One edge (cloudlet) in a placement decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeOutcome {
    /// The cloudlet.
    pub cloudlet: Name,
    /// `chosen`, `admissible` or `ruled out`, with the cost or the reason.
    pub outcome: String,
}

/// What the cloudlet controller has observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudletObserved {
    /// The cloudlet's connectivity test endpoint (echo, download, upload), once running:
    /// devices probe candidate edges there before they confirm one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Endpoint>,
}

/// Stored object types, one alias per kind.
pub type Region = Object<RegionSpec>;
/// A stored zone.
pub type Zone = Object<ZoneSpec>;
/// A stored cloudlet.
pub type Cloudlet = Object<CloudletSpec, CloudletObserved>;
/// A stored flavor.
pub type Flavor = Object<FlavorSpec>;
/// A stored organization.
pub type Organization = Object<OrganizationSpec>;
/// A stored placement policy.
pub type PlacementPolicy = Object<PlacementPolicySpec>;
/// A stored platform service.
pub type PlatformService = Object<PlatformServiceSpec>;
/// A stored user.
pub type User = Object<UserSpec>;
/// A stored API key.
pub type ApiKey = Object<ApiKeySpec>;
/// A stored OpenID Connect client.
pub type OidcClient = Object<OidcClientSpec>;
/// A stored app.
pub type App = Object<AppSpec>;
/// A stored app instance.
pub type AppInstance = Object<AppInstanceSpec, InstanceObserved>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millicpu() {
        assert_eq!(parse_millicpu("1"), Some(1000));
        assert_eq!(parse_millicpu("0.5"), Some(500));
        assert_eq!(parse_millicpu("0.500"), Some(500));
        assert_eq!(parse_millicpu("500m"), Some(500));
        assert_eq!(parse_millicpu("2.25"), Some(2250));
        assert_eq!(parse_millicpu("0.1234"), None);
        assert_eq!(parse_millicpu("m"), None);
        assert_eq!(parse_millicpu("1."), None);
        assert_eq!(parse_millicpu("-1"), None);
        assert_eq!(parse_millicpu(""), None);
    }

    fn app() -> AppSpec {
        serde_json::from_value(serde_json::json!({
            "version": "1.0", "appProvider": "acme_games", "packageType": "CONTAINER",
            "appRepo": {"type": "PUBLICREPO", "imagePath": "localhost/op-sample-app:latest"},
            "requiredResources": {"infraKind": "container", "numCPU": "500m", "memory": 128},
            "componentSpec": [{"componentName": "web", "networkInterfaces": [
                {"interfaceId": "http", "protocol": "TCP", "port": 8080, "visibilityType": "VISIBILITY_EXTERNAL"}]}]
        }))
        .unwrap()
    }

    #[test]
    fn app_validation_names_fields() {
        assert_eq!(app().validate(), Ok(()));
        let mut a = app();
        a.component_spec[0].network_interfaces[0].interface_id = "x".into();
        assert_eq!(a.validate().unwrap_err().field, "componentSpec[0].networkInterfaces[0].interfaceId");
        let mut a = app();
        a.requirements.instantiation = InstantiationType::CapacityBased;
        assert_eq!(a.validate().unwrap_err().field, "requirements.usersPerInstance");
        let mut a = app();
        a.env.insert("1BAD".into(), "x".into());
        assert_eq!(a.validate().unwrap_err().field, "env.1BAD");
        let mut a = app();
        a.package_type = PackageType::HELM;
        assert_eq!(a.validate().unwrap_err().field, "packageType");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let mut v = serde_json::to_value(app()).unwrap();
        v["bogus"] = serde_json::json!(1);
        assert!(serde_json::from_value::<AppSpec>(v).is_err());
        let mut v = serde_json::to_value(app()).unwrap();
        v["requiredResources"]["infraKind"] = serde_json::json!("kubernetes");
        assert!(serde_json::from_value::<AppSpec>(v).is_err());
    }

    #[test]
    fn redaction_removes_credentials() {
        let mut a = app();
        a.app_repo.credentials = Some("s3cret".into());
        let s = serde_json::to_string(&a.redacted()).unwrap();
        assert!(!s.contains("s3cret"));
    }

    #[test]
    fn postgres_urls_parse_and_hide_the_password() {
        let u = PostgresUrl::parse("postgres://op_admin:s%40cret@127.0.0.1:5433/admin").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str(), u.host.as_str(), u.port, u.database.as_str()), ("op_admin", "s@cret", "127.0.0.1", 5433, "admin"));
        assert_eq!(u.to_url(), "postgres://op_admin:s%40cret@127.0.0.1:5433/admin");
        assert!(!format!("{u:?}").contains("s@cret"));
        let d = PostgresUrl::parse("postgresql://a:b@db.example").unwrap();
        assert_eq!((d.port, d.database.as_str()), (5432, "postgres"));
        assert_eq!(PostgresUrl::parse("postgres://a:b@[::1]:6000/x").unwrap().host, "::1");
        for bad in ["mysql://a:b@h/x", "postgres://h:5432/x", "postgres://a:b@:5432/x", "postgres://a:b@h:0/x", "postgres://a:b@h:99999/x", "postgres://a:b@h/x?sslmode=require", "postgres://a:b@h/x/y"] {
            let e = PostgresUrl::parse(bad).unwrap_err();
            assert!(!e.contains("a:b"), "{bad}: the message repeats the URL: {e}");
        }
    }

    #[test]
    fn platform_service_validation_names_fields_and_debug_hides_the_secret() {
        let spec = |v: serde_json::Value| serde_json::from_value::<PlatformServiceSpec>(v).unwrap();
        let ok = spec(serde_json::json!({"kind": "postgresql", "adminUrl": "postgres://op_admin:pw-1234@127.0.0.1:5432/postgres"}));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.reach(&ok.admin().unwrap()), ("127.0.0.1".to_string(), 5432));
        assert!(!format!("{ok:?}").contains("pw-1234"));
        let moved = spec(serde_json::json!({"kind": "postgresql", "adminUrl": "postgres://u:p@127.0.0.1/postgres", "host": "10.88.0.1", "port": 6432}));
        assert_eq!(moved.reach(&moved.admin().unwrap()), ("10.88.0.1".to_string(), 6432));
        assert_eq!(spec(serde_json::json!({"kind": "postgresql"})).validate().unwrap_err().field, "adminUrl");
        assert_eq!(spec(serde_json::json!({"kind": "postgresql", "adminUrl": "http://x"})).validate().unwrap_err().field, "adminUrl");
        assert_eq!(spec(serde_json::json!({"kind": "postgresql", "adminUrl": "postgres://u:p@h/d", "host": "a b"})).validate().unwrap_err().field, "host");
        assert_eq!(
            spec(serde_json::json!({"kind": "postgresql", "adminUrl": "postgres://u:p@h/d", "cloudlets": ["c1", "c1"]})).validate().unwrap_err().field,
            "cloudlets[1]"
        );
        assert!(serde_json::from_value::<PlatformServiceSpec>(serde_json::json!({"kind": "mysql", "adminUrl": "postgres://u:p@h/d"})).is_err());
        let c1 = Name::new("c1").unwrap();
        assert!(ok.offered_on(&c1));
        assert!(!spec(serde_json::json!({"kind": "postgresql", "adminUrl": "postgres://u:p@h/d", "cloudlets": ["c2"]})).offered_on(&c1));
    }

    #[test]
    fn needs_rounds_cpu_up() {
        assert_eq!(app().needs(), Resources { vcpus: 1, memory_mb: 128, disk_gb: 0, gpus: 0 });
    }
}
