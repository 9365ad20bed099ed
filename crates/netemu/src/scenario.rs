//! Scenario files: the mobile network the emulator pretends to be (operator, cells, UPFs/DNAIs,
//! devices, path performance, OAuth2 clients) and a script of timed events.
//!
//! A scenario is YAML with camelCase keys; unknown keys are refused so typos surface at start-up
//! instead of silently changing the network. [`Scenario::from_yaml`] parses *and* validates, and
//! every validation error names the field at fault (e.g. `devices[2].cell: unknown cell 'x'`).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a scenario cannot be used; the message is meant for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not the scenario format (serde's message carries the field and the line).
    #[error("scenario does not parse: {0}")]
    Parse(String),
    /// Parses, but a field's value is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the field, e.g. `devices[2].cell`.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { field: field.into(), message: message.into() }
}

/// A whole emulated network, as written in the scenario file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Who runs the network (PLMN id).
    pub operator: Operator,
    /// Radius of a cell's coverage when the cell does not say, metres (default 500).
    #[serde(default = "default_cell_radius")]
    pub default_cell_radius_m: f64,
    /// OAuth2 client-credentials clients and token settings.
    #[serde(default)]
    pub oauth: OAuthConfig,
    /// Radio cells.
    pub cells: Vec<Cell>,
    /// User-plane functions and the data-network access identifiers (DNAIs) they serve.
    #[serde(alias = "dnais")]
    pub upfs: Vec<Upf>,
    /// Subscribers' devices and where they start.
    pub devices: Vec<Device>,
    /// Network performance from cells to DNAIs.
    #[serde(default)]
    pub paths: Paths,
    /// QoS profiles Quality on Demand accepts (default: QOS_S, QOS_M, QOS_L, QOS_E, 24 h max).
    #[serde(default)]
    pub qos_profiles: Vec<QosProfile>,
    /// Scripted events, in seconds after start (or after a reset).
    #[serde(default)]
    pub events: Vec<ScriptedEvent>,
}

fn default_cell_radius() -> f64 {
    500.0
}

/// The operator's PLMN.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Operator {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Mobile country code, 3 digits.
    pub mcc: String,
    /// Mobile network code, 2 or 3 digits.
    pub mnc: String,
}

impl Operator {
    /// PLMN id as `mcc` followed by `mnc`, as NEF `plmnId` strings carry it.
    pub fn plmn_id(&self) -> String {
        format!("{}{}", self.mcc, self.mnc)
    }
}

/// How access tokens are issued.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuthConfig {
    /// Registered clients.
    #[serde(default)]
    pub clients: Vec<OAuthClient>,
    /// Lifetime of an access token, seconds (default 3600).
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    /// JWT (signed, self-contained) or opaque (random, looked up) bearer tokens.
    #[serde(default)]
    pub token_format: TokenFormat,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig { clients: Vec::new(), token_lifetime_seconds: default_token_lifetime(), token_format: TokenFormat::Jwt }
    }
}

fn default_token_lifetime() -> u64 {
    3600
}

/// Bearer token format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// HS256-signed JWT with `sub`, `exp`, `scope`.
    #[default]
    Jwt,
    /// Random string remembered by the emulator.
    Opaque,
}

/// One OAuth2 client.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
}

/// A radio cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cell {
    /// Cell global identity as reported (`cellId` in NEF location reports).
    pub id: String,
    /// Latitude of the cell's centre, degrees.
    pub lat: f64,
    /// Longitude of the cell's centre, degrees.
    pub lon: f64,
    /// Tracking area code of the cell (`trackingAreaId` in NEF location reports).
    pub tracking_area: String,
    /// Coverage radius, metres (default: `defaultCellRadiusM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius_m: Option<f64>,
    /// How many UEs the cell serves at full load (default 100, at least 1): the denominator of
    /// the `relativeRatio` of `NETWORK_PERFORMANCE` analytics.
    #[serde(default = "default_capacity_ues")]
    pub capacity_ues: u64,
    /// UEs attached besides the scenario's devices (default 0): the cell's background load, which
    /// `POST /emulator/v1/cells/{cell}/load` changes at run time.
    #[serde(default)]
    pub background_ues: u64,
}

fn default_capacity_ues() -> u64 {
    100
}

/// A UPF with its DNAI and the cells whose traffic it can break out locally.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Upf {
    /// Data-network access identifier.
    pub dnai: String,
    /// UPF name, informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cells this UPF serves.
    pub cells: Vec<String>,
    /// Edge cloud zone ids reachable at this DNAI (CAMARA Traffic Influence `edgeCloudZoneId`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edge_cloud_zone_ids: Vec<String>,
}

/// A subscriber's device at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    /// Short name for the admin API and scripted events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E.164 with a leading `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// NAI / GPSI external identifier, `local@domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<String>,
    /// IPv4 addresses of its PDU session (the first is the one reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<Ipv4Addr>,
    /// IPv6 address (any address of its /64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<Ipv6Addr>,
    /// Serving cell at start.
    pub cell: String,
    /// PLMN serving the device at start, `mcc` followed by `mnc` (5 or 6 digits); default: the
    /// operator's own. Another PLMN means the device is roaming (NEF `ROAMING_STATUS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_plmn: Option<String>,
}

impl Device {
    /// A label for logs and errors: name, else phone number, else NAI.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.phone_number.clone())
            .or_else(|| self.network_access_identifier.clone())
            .unwrap_or_else(|| self.cell.clone())
    }
}

/// Expected performance of a path.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathPerf {
    /// One-way latency, ms.
    pub latency_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Available bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
}

/// Cell-to-DNAI performance table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Paths {
    /// For pairs no link names (default 50 ms, 10 ms, 100 Mbit/s).
    #[serde(default = "default_path")]
    pub default: PathPerf,
    /// Specific pairs: a cell or a whole tracking area to a DNAI. A cell's own entry wins over its
    /// tracking area's.
    #[serde(default)]
    pub links: Vec<PathLink>,
}

impl Default for Paths {
    fn default() -> Self {
        Paths { default: default_path(), links: Vec::new() }
    }
}

fn default_path() -> PathPerf {
    PathPerf { latency_ms: 50.0, jitter_ms: 10.0, bandwidth_mbps: 100.0 }
}

/// Performance from a cell (or every cell of a tracking area) to a DNAI.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathLink {
    /// The cell; exactly one of `cell` and `trackingArea`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// The tracking area; exactly one of `cell` and `trackingArea`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_area: Option<String>,
    /// The DNAI.
    pub dnai: String,
    /// One-way latency, ms.
    pub latency_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Available bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
}

impl PathLink {
    /// The link's numbers.
    pub fn perf(&self) -> PathPerf {
        PathPerf { latency_ms: self.latency_ms, jitter_ms: self.jitter_ms, bandwidth_mbps: self.bandwidth_mbps }
    }
}

/// A QoS profile and its duration limit.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QosProfile {
    /// CAMARA `qosProfile` name.
    pub name: String,
    /// Longest session, seconds (default 86400).
    #[serde(default = "default_max_duration")]
    pub max_duration_seconds: u32,
}

fn default_max_duration() -> u32 {
    86_400
}

/// Something that happens to a device at a time.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScriptedEvent {
    /// Seconds after start.
    pub at: f64,
    /// The device: its name, phone number or NAI.
    pub device: String,
    /// The device moves to this cell (exactly one of `moveTo` and `newIpv4Address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
    /// The device gets a new PDU session with this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_ipv4_address: Option<Ipv4Addr>,
}

/// What a scripted or triggered event does to a device.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Action {
    /// Handover to a cell.
    Move {
        /// Target cell id.
        cell: String,
    },
    /// New PDU session address.
    IpChange {
        /// The new address.
        ipv4_address: Ipv4Addr,
    },
    /// Served by another PLMN (or back home with the operator's own).
    Roam {
        /// The serving PLMN, `mcc` followed by `mnc`.
        serving_plmn: String,
    },
}

impl ScriptedEvent {
    /// The action, once validated.
    pub fn action(&self) -> Option<Action> {
        match (&self.move_to, self.new_ipv4_address) {
            (Some(cell), None) => Some(Action::Move { cell: cell.clone() }),
            (None, Some(ip)) => Some(Action::IpChange { ipv4_address: ip }),
            _ => None,
        }
    }
}

/// Whether `s` is a CAMARA phone number (`^\+[1-9][0-9]{4,14}$`).
pub fn is_e164(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else { return false };
    let bytes = rest.as_bytes();
    (5..=15).contains(&bytes.len()) && bytes[0] != b'0' && bytes.iter().all(u8::is_ascii_digit)
}

fn finite_non_negative(v: f64, field: &str) -> Result<(), ScenarioError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be a finite number >= 0, got {v}")))
    }
}

fn check_perf(p: &PathPerf, field: &str) -> Result<(), ScenarioError> {
    finite_non_negative(p.latency_ms, &format!("{field}.latencyMs"))?;
    finite_non_negative(p.jitter_ms, &format!("{field}.jitterMs"))?;
    finite_non_negative(p.bandwidth_mbps, &format!("{field}.bandwidthMbps"))?;
    if p.bandwidth_mbps <= 0.0 {
        return Err(invalid(format!("{field}.bandwidthMbps"), "must be > 0"));
    }
    Ok(())
}

fn digits(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a PLMN id written as `mcc` (3 digits) followed by `mnc` (2 or 3 digits).
pub fn is_plmn_id(s: &str) -> bool {
    digits(s, &[5, 6])
}

/// The `mcc` and `mnc` of a PLMN id string (see [`is_plmn_id`]); `None` when it is not one.
pub fn split_plmn_id(s: &str) -> Option<(&str, &str)> {
    if is_plmn_id(s) {
        Some(s.split_at(3))
    } else {
        None
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Scenario::from_yaml(&text)
    }

    /// Parses and validates scenario YAML.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let mut s: Scenario = serde_yaml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        if s.qos_profiles.is_empty() {
            s.qos_profiles = ["QOS_S", "QOS_M", "QOS_L", "QOS_E"]
                .iter()
                .map(|n| QosProfile { name: (*n).to_string(), max_duration_seconds: default_max_duration() })
                .collect();
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks references and values; the error names the field.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !digits(&self.operator.mcc, &[3]) {
            return Err(invalid("operator.mcc", format!("must be 3 digits, got '{}'", self.operator.mcc)));
        }
        if !digits(&self.operator.mnc, &[2, 3]) {
            return Err(invalid("operator.mnc", format!("must be 2 or 3 digits, got '{}'", self.operator.mnc)));
        }
        if !(self.default_cell_radius_m.is_finite() && self.default_cell_radius_m >= 1.0) {
            return Err(invalid("defaultCellRadiusM", "must be a number >= 1"));
        }
        if self.oauth.clients.is_empty() {
            return Err(invalid("oauth.clients", "at least one client is needed, e.g. {clientId: op, clientSecret: secret}"));
        }
        if self.oauth.token_lifetime_seconds == 0 {
            return Err(invalid("oauth.tokenLifetimeSeconds", "must be > 0"));
        }
        let mut ids = HashSet::new();
        for (i, c) in self.oauth.clients.iter().enumerate() {
            if c.client_id.is_empty() {
                return Err(invalid(format!("oauth.clients[{i}].clientId"), "must not be empty"));
            }
            if c.client_secret.is_empty() {
                return Err(invalid(format!("oauth.clients[{i}].clientSecret"), "must not be empty"));
            }
            if !ids.insert(c.client_id.as_str()) {
                return Err(invalid(format!("oauth.clients[{i}].clientId"), format!("duplicate client '{}'", c.client_id)));
            }
        }

        if self.cells.is_empty() {
            return Err(invalid("cells", "at least one cell is needed"));
        }
        let mut cells = HashSet::new();
        for (i, c) in self.cells.iter().enumerate() {
            let f = format!("cells[{i}]");
            if c.id.is_empty() {
                return Err(invalid(format!("{f}.id"), "must not be empty"));
            }
            if !cells.insert(c.id.as_str()) {
                return Err(invalid(format!("{f}.id"), format!("duplicate cell '{}'", c.id)));
            }
            if !(c.lat.is_finite() && (-90.0..=90.0).contains(&c.lat)) {
                return Err(invalid(format!("{f}.lat"), format!("must be between -90 and 90, got {}", c.lat)));
            }
            if !(c.lon.is_finite() && (-180.0..=180.0).contains(&c.lon)) {
                return Err(invalid(format!("{f}.lon"), format!("must be between -180 and 180, got {}", c.lon)));
            }
            if c.tracking_area.is_empty() {
                return Err(invalid(format!("{f}.trackingArea"), "must not be empty"));
            }
            if let Some(r) = c.radius_m {
                if !(r.is_finite() && r >= 1.0) {
                    return Err(invalid(format!("{f}.radiusM"), format!("must be a number >= 1, got {r}")));
                }
            }
            if c.capacity_ues == 0 {
                return Err(invalid(format!("{f}.capacityUes"), "must be >= 1"));
            }
        }
        let tracking_areas: HashSet<&str> = self.cells.iter().map(|c| c.tracking_area.as_str()).collect();

        if self.upfs.is_empty() {
            return Err(invalid("upfs", "at least one UPF/DNAI is needed"));
        }
        let mut dnais = HashSet::new();
        let mut zones: HashMap<&str, &str> = HashMap::new();
        for (i, u) in self.upfs.iter().enumerate() {
            let f = format!("upfs[{i}]");
            if u.dnai.is_empty() {
                return Err(invalid(format!("{f}.dnai"), "must not be empty"));
            }
            if !dnais.insert(u.dnai.as_str()) {
                return Err(invalid(format!("{f}.dnai"), format!("duplicate DNAI '{}'", u.dnai)));
            }
            for (j, c) in u.cells.iter().enumerate() {
                if !cells.contains(c.as_str()) {
                    return Err(invalid(format!("{f}.cells[{j}]"), format!("unknown cell '{c}'")));
                }
            }
            for (j, z) in u.edge_cloud_zone_ids.iter().enumerate() {
                if let Some(other) = zones.insert(z.as_str(), u.dnai.as_str()) {
                    return Err(invalid(
                        format!("{f}.edgeCloudZoneIds[{j}]"),
                        format!("zone '{z}' is already mapped to DNAI '{other}'"),
                    ));
                }
            }
        }

        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut claim = |key: String, field: String, i: usize| -> Result<(), ScenarioError> {
            match seen.insert(key.clone(), i) {
                Some(j) if j != i => Err(invalid(field, format!("'{key}' is already used by devices[{j}]"))),
                _ => Ok(()),
            }
        };
        for (i, d) in self.devices.iter().enumerate() {
            let f = format!("devices[{i}]");
            if d.phone_number.is_none()
                && d.network_access_identifier.is_none()
                && d.ipv4_addresses.is_empty()
                && d.ipv6_address.is_none()
            {
                return Err(invalid(
                    f,
                    "needs an identifier: phoneNumber, networkAccessIdentifier, ipv4Addresses or ipv6Address",
                ));
            }
            if let Some(n) = &d.name {
                if n.is_empty() {
                    return Err(invalid(format!("{f}.name"), "must not be empty"));
                }
                claim(n.clone(), format!("{f}.name"), i)?;
            }
            if let Some(p) = &d.phone_number {
                if !is_e164(p) {
                    return Err(invalid(format!("{f}.phoneNumber"), format!("must be E.164 with a leading '+', got '{p}'")));
                }
                claim(p.clone(), format!("{f}.phoneNumber"), i)?;
            }
            if let Some(n) = &d.network_access_identifier {
                if n.split('@').count() != 2 || n.starts_with('@') || n.ends_with('@') {
                    return Err(invalid(
                        format!("{f}.networkAccessIdentifier"),
                        format!("must be local@domain, got '{n}'"),
                    ));
                }
                claim(n.clone(), format!("{f}.networkAccessIdentifier"), i)?;
            }
            for (j, ip) in d.ipv4_addresses.iter().enumerate() {
                claim(ip.to_string(), format!("{f}.ipv4Addresses[{j}]"), i)?;
            }
            if let Some(ip) = d.ipv6_address {
                claim(ip.to_string(), format!("{f}.ipv6Address"), i)?;
            }
            if !cells.contains(d.cell.as_str()) {
                return Err(invalid(format!("{f}.cell"), format!("unknown cell '{}'", d.cell)));
            }
            if let Some(p) = &d.serving_plmn {
                if !is_plmn_id(p) {
                    return Err(invalid(
                        format!("{f}.servingPlmn"),
                        format!("must be mcc followed by mnc (5 or 6 digits), got '{p}'"),
                    ));
                }
            }
        }

        check_perf(&self.paths.default, "paths.default")?;
        for (i, l) in self.paths.links.iter().enumerate() {
            let f = format!("paths.links[{i}]");
            match (&l.cell, &l.tracking_area) {
                (Some(c), None) => {
                    if !cells.contains(c.as_str()) {
                        return Err(invalid(format!("{f}.cell"), format!("unknown cell '{c}'")));
                    }
                }
                (None, Some(t)) => {
                    if !tracking_areas.contains(t.as_str()) {
                        return Err(invalid(format!("{f}.trackingArea"), format!("no cell is in tracking area '{t}'")));
                    }
                }
                _ => return Err(invalid(f, "needs exactly one of cell and trackingArea")),
            }
            if !dnais.contains(l.dnai.as_str()) {
                return Err(invalid(format!("{f}.dnai"), format!("unknown DNAI '{}'", l.dnai)));
            }
            check_perf(&l.perf(), &f)?;
        }

        let mut names = HashSet::new();
        for (i, q) in self.qos_profiles.iter().enumerate() {
            let f = format!("qosProfiles[{i}]");
            let ok = (3..=256).contains(&q.name.len())
                && q.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(invalid(format!("{f}.name"), "must match ^[a-zA-Z0-9_.-]{3,256}$"));
            }
            if !names.insert(q.name.as_str()) {
                return Err(invalid(format!("{f}.name"), format!("duplicate profile '{}'", q.name)));
            }
            if q.max_duration_seconds == 0 {
                return Err(invalid(format!("{f}.maxDurationSeconds"), "must be >= 1"));
            }
        }

        for (i, e) in self.events.iter().enumerate() {
            let f = format!("events[{i}]");
            if !(e.at.is_finite() && e.at >= 0.0) {
                return Err(invalid(format!("{f}.at"), format!("must be seconds >= 0, got {}", e.at)));
            }
            if self.device_index(&e.device).is_none() {
                return Err(invalid(format!("{f}.device"), format!("no device named or numbered '{}'", e.device)));
            }
            match e.action() {
                Some(Action::Move { cell }) if !cells.contains(cell.as_str()) => {
                    return Err(invalid(format!("{f}.moveTo"), format!("unknown cell '{cell}'")));
                }
                Some(_) => {}
                None => return Err(invalid(f, "needs exactly one of moveTo and newIpv4Address")),
            }
        }
        Ok(())
    }

    /// Index of the device a scenario reference (name, phone number, NAI) designates.
    pub fn device_index(&self, reference: &str) -> Option<usize> {
        self.devices.iter().position(|d| {
            d.name.as_deref() == Some(reference)
                || d.phone_number.as_deref() == Some(reference)
                || d.network_access_identifier.as_deref() == Some(reference)
        })
    }

    /// The cell with this id.
    pub fn cell(&self, id: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.id == id)
    }

    /// Coverage radius of a cell, metres.
    pub fn cell_radius(&self, cell: &Cell) -> f64 {
        cell.radius_m.unwrap_or(self.default_cell_radius_m)
    }

    /// The PLMN serving device `idx` at start: its `servingPlmn`, else the operator's.
    pub fn initial_serving_plmn(&self, idx: usize) -> String {
        self.devices
            .get(idx)
            .and_then(|d| d.serving_plmn.clone())
            .unwrap_or_else(|| self.operator.plmn_id())
    }

    /// Whether the DNAI exists.
    pub fn has_dnai(&self, dnai: &str) -> bool {
        self.upfs.iter().any(|u| u.dnai == dnai)
    }

    /// DNAIs whose UPF serves the cell, in scenario order.
    pub fn dnais_serving(&self, cell: &str) -> Vec<String> {
        self.upfs.iter().filter(|u| u.cells.iter().any(|c| c == cell)).map(|u| u.dnai.clone()).collect()
    }

    /// The DNAI at which an edge cloud zone is reachable: a zone mapped in `edgeCloudZoneIds`, or
    /// a zone id that is itself a DNAI.
    pub fn dnai_for_zone(&self, zone: &str) -> Option<String> {
        self.upfs
            .iter()
            .find(|u| u.edge_cloud_zone_ids.iter().any(|z| z == zone))
            .or_else(|| self.upfs.iter().find(|u| u.dnai == zone))
            .map(|u| u.dnai.clone())
    }

    /// Expected performance from a cell to a DNAI: the cell's own link, else its tracking area's,
    /// else the default.
    pub fn path_perf(&self, cell: &Cell, dnai: &str) -> PathPerf {
        let by_cell = self.paths.links.iter().find(|l| l.dnai == dnai && l.cell.as_deref() == Some(cell.id.as_str()));
        let by_ta = || {
            self.paths
                .links
                .iter()
                .find(|l| l.dnai == dnai && l.tracking_area.as_deref() == Some(cell.tracking_area.as_str()))
        };
        by_cell.or_else(by_ta).map(PathLink::perf).unwrap_or(self.paths.default)
    }

    /// The QoS profile with this name.
    pub fn qos_profile(&self, name: &str) -> Option<&QosProfile> {
        self.qos_profiles.iter().find(|q| q.name == name)
    }

    /// A copy safe to show: client secrets blanked.
    pub fn redacted(&self) -> Scenario {
        let mut s = self.clone();
        for c in &mut s.oauth.clients {
            c.client_secret = "<redacted>".into();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
operator: {mcc: "208", mnc: "01"}
oauth:
  clients: [{clientId: op, clientSecret: s3cret}]
cells:
  - {id: c1, lat: 48.85, lon: 2.35, trackingArea: "000001"}
  - {id: c2, lat: 48.86, lon: 2.36, trackingArea: "000001", radiusM: 800}
  - {id: c3, lat: 45.76, lon: 4.83, trackingArea: "000002"}
upfs:
  - {dnai: d1, cells: [c1, c2], edgeCloudZoneIds: [zone-1]}
  - {dnai: d2, cells: [c3]}
devices:
  - {name: a, phoneNumber: "+33612340001", ipv4Addresses: ["10.45.0.1"], cell: c1}
paths:
  default: {latencyMs: 40, jitterMs: 8, bandwidthMbps: 200}
  links:
    - {trackingArea: "000001", dnai: d1, latencyMs: 5, jitterMs: 1, bandwidthMbps: 1000}
    - {cell: c2, dnai: d1, latencyMs: 7, jitterMs: 1.5, bandwidthMbps: 900}
events:
  - {at: 1.5, device: a, moveTo: c3}
  - {at: 2, device: "+33612340001", newIpv4Address: "10.45.1.1"}
"#;

    fn err_of(yaml: &str) -> String {
        match Scenario::from_yaml(yaml) {
            Ok(_) => panic!("scenario should be refused"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_scenario_parses_with_defaults() {
        let s = Scenario::from_yaml(MINIMAL).unwrap();
        assert_eq!(s.default_cell_radius_m, 500.0);
        assert_eq!(s.oauth.token_lifetime_seconds, 3600);
        assert_eq!(s.oauth.token_format, TokenFormat::Jwt);
        assert_eq!(s.qos_profiles.len(), 4);
        assert_eq!(s.operator.plmn_id(), "20801");
        let c1 = s.cell("c1").unwrap();
        let c2 = s.cell("c2").unwrap();
        let c3 = s.cell("c3").unwrap();
        assert_eq!(s.cell_radius(c1), 500.0);
        assert_eq!(s.cell_radius(c2), 800.0);
        assert_eq!(s.path_perf(c1, "d1").latency_ms, 5.0);
        assert_eq!(s.path_perf(c2, "d1").jitter_ms, 1.5);
        assert_eq!(s.path_perf(c3, "d1").latency_ms, 40.0);
        assert_eq!(s.dnais_serving("c2"), vec!["d1".to_string()]);
        assert_eq!(s.dnai_for_zone("zone-1").as_deref(), Some("d1"));
        assert_eq!(s.dnai_for_zone("d2").as_deref(), Some("d2"));
        assert_eq!(s.dnai_for_zone("nope"), None);
        assert_eq!(s.events[0].action(), Some(Action::Move { cell: "c3".into() }));
        assert_eq!(s.device_index("+33612340001"), Some(0));
    }

    #[test]
    fn lab_scenario_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/lab.yaml");
        let s = Scenario::load(&path).unwrap();
        assert_eq!(s.cells.len(), 10);
        let tas: HashSet<_> = s.cells.iter().map(|c| c.tracking_area.clone()).collect();
        assert_eq!(tas.len(), 3);
        assert_eq!(s.upfs.len(), 3);
        assert_eq!(s.devices.len(), 5);
        assert!(!s.events.is_empty());
    }

    #[test]
    fn unknown_cell_of_a_device_is_named() {
        let e = err_of(&MINIMAL.replace("ipv4Addresses: [\"10.45.0.1\"], cell: c1", "cell: c9"));
        assert!(e.contains("devices[0].cell") && e.contains("c9"), "{e}");
    }

    #[test]
    fn bad_phone_number_is_named() {
        let e = err_of(&MINIMAL.replace("\"+33612340001\", ipv4", "\"0612340001\", ipv4"));
        assert!(e.contains("devices[0].phoneNumber"), "{e}");
    }

    #[test]
    fn bad_mcc_is_named() {
        let e = err_of(&MINIMAL.replace("mcc: \"208\"", "mcc: \"20\""));
        assert!(e.starts_with("operator.mcc:"), "{e}");
    }

    #[test]
    fn duplicate_cell_is_named() {
        let e = err_of(&MINIMAL.replace("{id: c3,", "{id: c1,"));
        assert!(e.contains("cells[2].id") && e.contains("duplicate"), "{e}");
    }

    #[test]
    fn upf_cell_must_exist() {
        let e = err_of(&MINIMAL.replace("cells: [c3]}", "cells: [c4]}"));
        assert!(e.contains("upfs[1].cells[0]"), "{e}");
    }

    #[test]
    fn path_link_needs_known_dnai_and_one_scope() {
        let e = err_of(&MINIMAL.replace("{cell: c2, dnai: d1,", "{cell: c2, dnai: d7,"));
        assert!(e.contains("paths.links[1].dnai"), "{e}");
        let e = err_of(&MINIMAL.replace("{cell: c2, dnai: d1,", "{cell: c2, trackingArea: \"000001\", dnai: d1,"));
        assert!(e.contains("paths.links[1]") && e.contains("exactly one"), "{e}");
        let e = err_of(&MINIMAL.replace("jitterMs: 1.5, bandwidthMbps: 900", "jitterMs: 1.5, bandwidthMbps: 0"));
        assert!(e.contains("paths.links[1].bandwidthMbps"), "{e}");
    }

    #[test]
    fn events_are_checked() {
        let e = err_of(&MINIMAL.replace("device: a, moveTo: c3", "device: zz, moveTo: c3"));
        assert!(e.contains("events[0].device"), "{e}");
        let e = err_of(&MINIMAL.replace("device: a, moveTo: c3", "device: a, moveTo: c3, newIpv4Address: \"10.45.0.9\""));
        assert!(e.contains("events[0]") && e.contains("exactly one"), "{e}");
        let e = err_of(&MINIMAL.replace("device: a, moveTo: c3", "device: a, moveTo: c8"));
        assert!(e.contains("events[0].moveTo"), "{e}");
    }

    #[test]
    fn oauth_clients_are_required() {
        let e = err_of(&MINIMAL.replace("  clients: [{clientId: op, clientSecret: s3cret}]\n", "  tokenLifetimeSeconds: 60\n"));
        assert!(e.starts_with("oauth.clients:"), "{e}");
    }

    #[test]
    fn typos_and_bad_types_name_the_field() {
        let e = err_of(&MINIMAL.replace("trackingArea: \"000002\"", "trackingAria: \"000002\""));
        assert!(e.contains("trackingAria"), "{e}");
        let e = err_of(&MINIMAL.replace("\"10.45.0.1\"", "\"10.45.0.300\""));
        assert!(e.contains("devices[0]") || e.contains("IP"), "{e}");
    }

    #[test]
    fn identifiers_are_unique() {
        let yaml = MINIMAL.replace(
            "devices:\n",
            "devices:\n  - {name: b, phoneNumber: \"+33612340001\", cell: c2}\n",
        );
        let e = err_of(&yaml);
        assert!(e.contains("devices[1].phoneNumber") && e.contains("devices[0]"), "{e}");
    }

    #[test]
    fn cell_load_fields_default_and_parse() {
        let s = Scenario::from_yaml(MINIMAL).unwrap();
        let c1 = s.cell("c1").unwrap();
        assert_eq!((c1.capacity_ues, c1.background_ues), (100, 0));
        let yaml = MINIMAL.replace("{id: c3,", "{id: c3, capacityUes: 40, backgroundUes: 7,");
        let s = Scenario::from_yaml(&yaml).unwrap();
        let c3 = s.cell("c3").unwrap();
        assert_eq!((c3.capacity_ues, c3.background_ues), (40, 7));
    }

    #[test]
    fn zero_capacity_is_named() {
        let e = err_of(&MINIMAL.replace("{id: c3,", "{id: c3, capacityUes: 0,"));
        assert!(e.starts_with("cells[2].capacityUes:"), "{e}");
        let e = err_of(&MINIMAL.replace("{id: c3,", "{id: c3, backgroundUes: -1,"));
        assert!(e.contains("cells[2].backgroundUes"), "{e}");
    }

    #[test]
    fn serving_plmn_defaults_to_the_operator() {
        let s = Scenario::from_yaml(MINIMAL).unwrap();
        assert_eq!(s.devices[0].serving_plmn, None);
        assert_eq!(s.initial_serving_plmn(0), "20801");
        let yaml = MINIMAL.replace("cell: c1}", "cell: c1, servingPlmn: \"234150\"}");
        let s = Scenario::from_yaml(&yaml).unwrap();
        assert_eq!(s.initial_serving_plmn(0), "234150");
    }

    #[test]
    fn bad_serving_plmn_is_named() {
        for bad in ["2341", "2341500", "23a15", ""] {
            let e = err_of(
                &MINIMAL.replace("cell: c1}", &format!("cell: c1, servingPlmn: \"{bad}\"}}")),
            );
            assert!(
                e.starts_with("devices[0].servingPlmn:") && e.contains(&format!("'{bad}'")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn plmn_ids() {
        assert!(is_plmn_id("20801") && is_plmn_id("310410"));
        assert!(!is_plmn_id("2080") && !is_plmn_id("2080100") && !is_plmn_id("2O801"));
        assert_eq!(split_plmn_id("20801"), Some(("208", "01")));
        assert_eq!(split_plmn_id("310410"), Some(("310", "410")));
        assert_eq!(split_plmn_id("31041"), Some(("310", "41")));
        assert_eq!(split_plmn_id("3104"), None);
    }

    #[test]
    fn e164() {
        assert!(is_e164("+33612340001"));
        assert!(!is_e164("33612340001"));
        assert!(!is_e164("+0612340001"));
        assert!(!is_e164("+3361"));
        assert!(!is_e164("+33a12340001"));
    }
}
