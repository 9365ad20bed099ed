//! Cloudlet federation (the requirement's `POST api/v1/auth/create/cloudlet`, with the
//! `show`, `update` and `delete` siblings of design §5 Q14), served on the EWBI listener to
//! registered partner operators ([`PartnerCaller`]).
//!
//! A partner hands us a cloudlet of its own (a Docker Engine endpoint, or a simulated one):
//! it becomes an ordinary local [`CloudletSpec`] in a zone of its own (region
//! [`PARTNER_REGION`]), so our admission, placement, controllers and telemetry apply
//! unchanged, plus a [`FederatedCloudletSpec`] record that keeps what the partner sent, with
//! `Access_vars` sealed ([`seal`]) and never returned or logged.
//!
//! The cloudlet stays in maintenance (not placeable) until [`CloudletFederationReconciler`]
//! has walked the requirement's operational workflow: reserve (the operator's reservation,
//! `POST /op/v1/federation/cloudlets/{name}/reservation`), discover inventory (the runtime
//! answers, which images it has), catalogue (the platform's sample image is there, loaded
//! from another cloudlet when missing), sizes (the operator's flavors that fit the
//! reservation) and compliance (the NBI flow run on the cloudlet: app, pinned instance, Ready,
//! QoE test, metrics, removal), whose report the partner reads with `show/cloudlet`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use chrono::Utc;
use op_controller::{Action, ReconcileError, Reconciler};
use op_store::informer::Raw;
use op_types::cluster::{ClusterObserved, ClusterSpec};
use op_types::ewbi::objects::{ComplianceMetrics, ComplianceReport, ComplianceStep, FederatedCloudletObserved, FederatedCloudletSpec, PhaseRecord};
use op_types::specs::{App, AppInstance, AppInstanceSpec, AppSpec, Cloudlet, CloudletSpec, FlavorSpec, GeoPoint, OrganizationSpec, PlatformType, RegionSpec, Resources, ServiceArea, ZoneSpec};
use op_types::{Kind, Name, Object, State as ObjState, Uid};
use serde_json::{json, Map, Value};

use super::{EwbiError, EwbiResult, PartnerCaller};
use crate::error::ApiError;
use crate::state::AppState;

/// The region partner cloudlets' zones go in (created when missing): the operator can tell
/// them apart and give them a placement policy of their own.
pub const PARTNER_REGION: &str = "partners";
/// The operator-owned organization the compliance test's app belongs to.
pub const COMPLIANCE_ORG: &str = "compliance";
/// The image the catalogue step looks for and the compliance test runs (the platform's sample
/// app, already on the platform's runtimes).
pub const CATALOGUE_IMAGE: &str = "localhost/op-sample-app:latest";
/// Label on the local zone and cloudlet: the partner they belong to.
pub const LABEL_PARTNER: &str = "op.federation.partner";
/// Prefix of the labels `Resource_Map` becomes on the local cloudlet.
pub const LABEL_RESOURCE_PREFIX: &str = "op.resource/";
/// The requirement's path of the create call, on the EWBI listener.
pub const CREATE_PATH: &str = "/api/v1/auth/create/cloudlet";
/// The show sibling.
pub const SHOW_PATH: &str = "/api/v1/auth/show/cloudlet";
/// The update sibling.
pub const UPDATE_PATH: &str = "/api/v1/auth/update/cloudlet";
/// The delete sibling.
pub const DELETE_PATH: &str = "/api/v1/auth/delete/cloudlet";

/// How long a compliance instance may take to become Ready before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long after a failed compliance run the next one starts.
const RETRY_AFTER: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Sealing of Access_vars

const SEAL_LABEL: &str = "cloudlet-access-vars/";
const SEAL_AAD: &[u8] = b"op-cloudlet-access-vars-v1";

fn seal_key(secret: &[u8]) -> Result<ring::aead::LessSafeKey, ApiError> {
    let hex = op_types::secret::derive_hex_str(secret, SEAL_LABEL, "");
    let bytes: Vec<u8> = (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &bytes).map_err(|_| ApiError::Internal("sealing key".into()))?;
    Ok(ring::aead::LessSafeKey::new(key))
}

/// Seals `plain` (a partner's control-endpoint credentials) for storage: AES-256-GCM under a
/// key derived from `secret`, a random nonce, base64 of nonce ‖ ciphertext ‖ tag. The store
/// file never holds the credentials in clear.
pub fn seal(secret: &[u8], plain: &[u8]) -> Result<String, ApiError> {
    use ring::rand::SecureRandom;
    let key = seal_key(secret)?;
    let mut nonce = [0u8; ring::aead::NONCE_LEN];
    ring::rand::SystemRandom::new().fill(&mut nonce).map_err(|_| ApiError::Internal("no randomness for a nonce".into()))?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(ring::aead::Nonce::assume_unique_for_key(nonce), ring::aead::Aad::from(SEAL_AAD), &mut buf)
        .map_err(|_| ApiError::Internal("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// Opens what [`seal`] made under the same `secret`; a wrong key or altered bytes fail.
pub fn unseal(secret: &[u8], sealed: &str) -> Result<Vec<u8>, ApiError> {
    let key = seal_key(secret)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|_| ApiError::Internal("sealed data is not base64".into()))?;
    if raw.len() < ring::aead::NONCE_LEN {
        return Err(ApiError::Internal("sealed data too short".into()));
    }
    let (nonce, body) = raw.split_at(ring::aead::NONCE_LEN);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| ApiError::Internal("bad nonce".into()))?;
    let mut buf = body.to_vec();
    let plain = key.open_in_place(nonce, ring::aead::Aad::from(SEAL_AAD), &mut buf).map_err(|_| ApiError::Internal("sealed data does not open under this key".into()))?;
    Ok(plain.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Request parsing

fn bad(field: &str, reason: impl Into<String>) -> EwbiError {
    EwbiError(ApiError::invalid(field, reason.into()))
}

/// The control-endpoint access a partner gives (`Access_vars`): where the runtime answers and
/// how to log in. Only `url` is used by our drivers; the rest is kept sealed.
#[derive(Debug, Default, serde::Serialize)]
struct AccessVars {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(rename = "caCert", skip_serializing_if = "Option::is_none")]
    ca_cert: Option<String>,
}

/// `Access_vars` as a JSON object (or a string holding one) or `key=value;key=value`.
fn parse_access_vars(v: &Value) -> EwbiResult<AccessVars> {
    const F: &str = "Access_vars";
    let map: BTreeMap<String, String> = match v {
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect(),
        Value::String(s) if s.trim_start().starts_with('{') => {
            let o: Map<String, Value> = serde_json::from_str(s).map_err(|_| bad(F, "not a JSON object nor key=value;key=value pairs"))?;
            return parse_access_vars(&Value::Object(o));
        }
        Value::String(s) => {
            let mut m = BTreeMap::new();
            for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').ok_or_else(|| bad(F, "not a JSON object nor key=value;key=value pairs"))?;
                m.insert(k.trim().to_string(), v.trim().to_string());
            }
            m
        }
        _ => return Err(bad(F, "must be a string or an object")),
    };
    let mut a = AccessVars::default();
    for (k, v) in map {
        match k.to_ascii_lowercase().as_str() {
            "url" | "endpoint" => a.url = v,
            "username" | "uname" | "user" => a.username = Some(v),
            "password" | "pass" => a.password = Some(v),
            "cacert" | "ca_cert" | "ca" => a.ca_cert = Some(v),
            _ => return Err(bad(&format!("{F}.{k}"), "unknown key; use url, username, password, caCert")),
        }
    }
    if a.url.is_empty() {
        return Err(bad(&format!("{F}.url"), "the control endpoint URL is required"));
    }
    if a.url.len() > 512 {
        return Err(bad(&format!("{F}.url"), "at most 512 characters"));
    }
    if a.url.contains('@') {
        return Err(bad(&format!("{F}.url"), "put credentials in username and password, not in the URL"));
    }
    Ok(a)
}

/// A `Platform_type` we know of; `Err` names the types without a driver here (422).
fn platform_of(v: Option<&Value>) -> EwbiResult<PlatformType> {
    const F: &str = "Platform_type";
    let s = v.and_then(Value::as_str).ok_or_else(|| bad(F, "is required: Docker or Sim (OpenStack, vCenter and VCD have no driver here)"))?;
    match s.trim().to_ascii_lowercase().as_str() {
        "docker" => Ok(PlatformType::Docker),
        "sim" => Ok(PlatformType::Sim),
        "openstack" | "vcenter" | "vcd" => Err(EwbiError(ApiError::Unprocessable(
            "UNSUPPORTED_PLATFORM",
            format!("Platform_type: {s} has no driver on this platform; Docker and Sim cloudlets are supported"),
        ))),
        _ => Err(bad(F, "must be one of OpenStack, vCenter, VCD, Docker, Sim")),
    }
}

fn coordinate(v: Option<&Value>, field: &str, range: f64) -> EwbiResult<f64> {
    let x = match v {
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| bad(field, "a decimal number of degrees (WGS84) is required"))?,
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| bad(field, "a decimal number of degrees (WGS84) is required"))?,
        _ => return Err(bad(field, "a decimal number of degrees (WGS84) is required")),
    };
    if !x.is_finite() || x.abs() > range {
        return Err(bad(field, format!("must be between -{range} and {range}")));
    }
    Ok(x)
}

/// `cloudlet_key`: organization and name.
fn cloudlet_key(v: &Map<String, Value>) -> EwbiResult<(String, String)> {
    let key = v.get("cloudlet_key").and_then(Value::as_object).ok_or_else(|| bad("cloudlet_key", "an object {organization, name} is required"))?;
    let field = |k: &str| -> EwbiResult<String> {
        let f = format!("cloudlet_key.{k}");
        let s = key.get(k).and_then(Value::as_str).ok_or_else(|| bad(&f, "a string is required"))?.trim().to_string();
        if s.is_empty() || s.len() > 64 || s.chars().any(char::is_control) {
            return Err(bad(&f, "1 to 64 printable characters"));
        }
        Ok(s)
    };
    Ok((field("organization")?, field("name")?))
}

fn static_ips(v: Option<&Value>) -> EwbiResult<Vec<String>> {
    const F: &str = "Static_IPs";
    let list: Vec<String> = match v {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, x)| x.as_str().map(str::to_string).ok_or_else(|| bad(&format!("{F}[{i}]"), "an IP address string"))).collect::<EwbiResult<_>>()?,
        _ => return Err(bad(F, "a list of IP addresses")),
    };
    for (i, ip) in list.iter().enumerate() {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(&format!("{F}[{i}]"), "not an IP address"));
        }
    }
    if list.len() > 256 {
        return Err(bad(F, "at most 256 addresses"));
    }
    Ok(list)
}

fn ip_support(v: Option<&Value>, ips: &[String]) -> EwbiResult<String> {
    const F: &str = "IP_support";
    let s = match v {
        None | Some(Value::Null) => return Ok(if ips.is_empty() { "DHCP" } else { "Static" }.into()),
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        _ => return Err(bad(F, "Static or DHCP")),
    };
    match s.as_str() {
        "static" => {
            if ips.is_empty() {
                return Err(bad("Static_IPs", "IP_support Static needs at least one static IP"));
            }
            Ok("Static".into())
        }
        "dhcp" => Ok("DHCP".into()),
        _ => Err(bad(F, "Static or DHCP")),
    }
}

fn label_part_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn resource_map(v: Option<&Value>) -> EwbiResult<BTreeMap<String, String>> {
    const F: &str = "Resource_Map";
    let o = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o,
        _ => return Err(bad(F, "an object of key-value pairs")),
    };
    let mut m = BTreeMap::new();
    for (k, v) in o {
        let val = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(bad(&format!("{F}.{k}"), "a string, number or boolean")),
        };
        if !label_part_ok(k) {
            return Err(bad(&format!("{F}.{k}"), "keys are 1 to 63 letters, digits, '-', '_' or '.'"));
        }
        if !label_part_ok(&val) {
            return Err(bad(&format!("{F}.{k}"), "values are 1 to 63 letters, digits, '-', '_' or '.'"));
        }
        m.insert(k.clone(), val);
    }
    if m.len() > 64 {
        return Err(bad(F, "at most 64 entries"));
    }
    Ok(m)
}

/// `Maintenance_State`: `true` when offline.
fn offline(v: Option<&Value>) -> EwbiResult<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "online" => Ok(false),
            "offline" => Ok(true),
            _ => Err(bad("Maintenance_State", "online or offline")),
        },
        _ => Err(bad("Maintenance_State", "online or offline")),
    }
}

fn object(raw: &Bytes) -> EwbiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(bad("body", "a JSON object is required")),
        Err(e) => Err(bad("body", format!("not valid JSON: {e}"))),
    }
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str]) -> EwbiResult<()> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(k, format!("unknown key; the keys are {}", allowed.join(", ")))),
        None => Ok(()),
    }
}

const CREATE_KEYS: &[&str] = &["cloudlet_key", "cloudlet_location", "Platform_type", "Access_vars", "IP_support", "Static_IPs", "Resource_Map", "Maintenance_State"];

/// The local name of a partner's cloudlet: `p-<partner>-<name>`, made a valid [`Name`].
pub fn local_name(partner: &Name, name: &str) -> Result<Name, ApiError> {
    let raw = format!("p-{partner}-{name}");
    let mut s: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' }).collect();
    s.truncate(op_types::ids::NAME_MAX);
    while s.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        s.pop();
    }
    Name::new(s).map_err(|e| ApiError::invalid("cloudlet_key.name", format!("cannot make a cloudlet name of it: {e}")))
}

/// The caller's `cloudlet_key.organization` must be its own registered name or federation id.
fn authorize(caller: &PartnerCaller, org: &str) -> EwbiResult<()> {
    let p = &caller.partner;
    if org == p.metadata.name.as_str() || org == p.spec.federation_id {
        Ok(())
    } else {
        Err(EwbiError(ApiError::Forbidden(format!("cloudlet_key.organization: {org} is not your organization"))))
    }
}

type Record = Object<FederatedCloudletSpec, FederatedCloudletObserved>;

async fn record_by_key(s: &AppState, caller: &PartnerCaller, org: &str, name: &str) -> EwbiResult<Record> {
    let local = local_name(&caller.partner.metadata.name, name)?;
    let rec = s.repo.get_by_name::<FederatedCloudletSpec, FederatedCloudletObserved>(Kind::FederatedCloudlet, None, &local).await?;
    match rec {
        Some(r) if r.spec.partner == caller.partner.metadata.name && r.spec.name == name && (r.spec.organization == org || authorize(caller, org).is_ok()) => Ok(r),
        _ => Err(EwbiError(ApiError::NotFound(format!("no cloudlet {org}/{name}")))),
    }
}

/// The partner-facing state of a federated cloudlet: its workflow phase.
fn state_of(r: &Record) -> String {
    if r.observed.phase.is_empty() {
        "reserve".into()
    } else {
        r.observed.phase.clone()
    }
}

fn key_json(r: &Record) -> Value {
    json!({"organization": r.spec.organization, "name": r.spec.name})
}

/// What the partner sees of its cloudlet: what it sent (never `Access_vars`), the workflow's
/// phases, the flavors assigned and the compliance report.
async fn view(s: &AppState, r: &Record) -> EwbiResult<Value> {
    let cl = s.repo.get_by_name::<CloudletSpec, Value>(Kind::Cloudlet, None, &r.spec.cloudlet).await?;
    let flavors: Vec<String> = cl.as_ref().map(|c| c.spec.flavors.iter().map(|f| f.to_string()).collect()).unwrap_or_default();
    Ok(json!({
        "cloudlet_key": key_json(r),
        "cloudlet_location": {"Latitude": r.spec.location.latitude.to_string(), "Longitude": r.spec.location.longitude.to_string()},
        "Platform_type": match r.spec.platform_type { PlatformType::Docker => "Docker", PlatformType::Sim => "Sim" },
        "IP_support": r.spec.ip_support,
        "Static_IPs": r.spec.static_ips,
        "Resource_Map": r.spec.resource_map,
        "Maintenance_State": if r.spec.offline { "offline" } else { "online" },
        "state": state_of(r),
        "placeable": cl.as_ref().is_some_and(|c| !c.spec.maintenance),
        "reservation": r.spec.reservation,
        "flavors": flavors,
        "phases": r.observed.phases,
        "catalogue": r.observed.catalogue,
        "compliance": r.observed.compliance,
    }))
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `POST /api/v1/auth/create/cloudlet`: a partner's cloudlet becomes a local cloudlet in a
/// zone of its own, in maintenance until the onboarding workflow finds it compliant. The same
/// request again answers the same cloudlet.
pub async fn create_cloudlet(State(s): State<AppState>, caller: PartnerCaller, raw: Bytes) -> EwbiResult<Json<Value>> {
    let body = object(&raw)?;
    only_keys(&body, CREATE_KEYS)?;
    let (org, name) = cloudlet_key(&body)?;
    authorize(&caller, &org)?;
    let loc = body.get("cloudlet_location").and_then(Value::as_object).ok_or_else(|| bad("cloudlet_location", "an object {Latitude, Longitude} is required"))?;
    let location = GeoPoint {
        latitude: coordinate(loc.get("Latitude"), "cloudlet_location.Latitude", 90.0)?,
        longitude: coordinate(loc.get("Longitude"), "cloudlet_location.Longitude", 180.0)?,
    };
    let platform = platform_of(body.get("Platform_type"))?;
    let access = parse_access_vars(body.get("Access_vars").ok_or_else(|| bad("Access_vars", "is required: the control endpoint's url (and credentials)"))?)?;
    match platform {
        PlatformType::Docker => {
            if access.url.starts_with("https://") || access.ca_cert.is_some() {
                return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED_ACCESS", "Access_vars: TLS to a Docker Engine is not supported by this platform's driver yet".into())));
            }
            if !(access.url.starts_with("unix://") || access.url.starts_with("tcp://") || access.url.starts_with("http://")) {
                return Err(bad("Access_vars.url", "a Docker Engine endpoint: unix://, tcp:// or http://"));
            }
        }
        PlatformType::Sim => {
            if !access.url.starts_with("sim://") {
                return Err(bad("Access_vars.url", "a Sim cloudlet's endpoint is sim://NAME"));
            }
        }
    }
    let ips = static_ips(body.get("Static_IPs"))?;
    let ip_support = ip_support(body.get("IP_support"), &ips)?;
    let resources = resource_map(body.get("Resource_Map"))?;
    let offline = offline(body.get("Maintenance_State"))?;
    let partner = caller.partner.metadata.name.clone();
    let local = local_name(&partner, &name)?;
    let canonical = serde_json::to_string(&Value::Object(body.clone())).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mac = op_types::secret::derive_hex_str(&s.ewbi.secret, "cloudlet-request/", &format!("{partner}\n{canonical}"));

    if let Some(r) = s.repo.get_by_name::<FederatedCloudletSpec, FederatedCloudletObserved>(Kind::FederatedCloudlet, None, &local).await? {
        if r.spec.partner == partner && r.spec.name == name && r.spec.request_mac == mac {
            return Ok(Json(json!({"cloudlet_key": key_json(&r), "state": state_of(&r)})));
        }
        return Err(EwbiError(ApiError::AlreadyExists(format!(
            "cloudlet {org}/{name} already exists with another definition; update it (/api/v1/auth/update/cloudlet) or delete it first"
        ))));
    }
    // A cloudlet of that name that is not this partner's: refuse rather than take it over.
    if let Some(c) = s.repo.get_by_name::<CloudletSpec, Value>(Kind::Cloudlet, None, &local).await? {
        if c.metadata.labels.get(LABEL_PARTNER) != Some(&partner.to_string()) {
            return Err(EwbiError(ApiError::AlreadyExists(format!("cloudlet name {local} is taken; pick another cloudlet_key.name"))));
        }
    }
    let sealed = seal(&s.ewbi.secret, &serde_json::to_vec(&access).map_err(|e| ApiError::Internal(e.to_string()))?)?;
    drop(access);

    let region = ensure_region(&s).await?;
    let zone = ensure_zone(&s, &local, &region, location, &partner).await?;
    let mut labels: BTreeMap<String, String> = resources.iter().map(|(k, v)| (format!("{LABEL_RESOURCE_PREFIX}{k}"), v.clone())).collect();
    labels.insert(LABEL_PARTNER.into(), partner.to_string());
    let endpoint = sealed_url(&s, &sealed)?;
    let spec = CloudletSpec {
        zone: zone.clone(),
        location,
        platform_type: platform,
        driver_endpoint: endpoint,
        public_host: ips.first().cloned().unwrap_or_else(|| "127.0.0.1".into()),
        capacity: Resources::default(),
        flavors: vec![],
        maintenance: true,
        level: op_types::specs::CloudletLevel::FederatedSite,
        security_group: None,
        privacy_policy: None,
    };
    if s.repo.get_by_name::<CloudletSpec, Value>(Kind::Cloudlet, None, &local).await?.is_none() {
        let mut cl: Object<CloudletSpec, Value> = Object::new(Kind::Cloudlet, None, local.clone(), spec);
        cl.metadata.labels = labels;
        s.repo.create(&mut cl).await?;
    }
    let mut rec: Record = Object::new(
        Kind::FederatedCloudlet,
        None,
        local.clone(),
        FederatedCloudletSpec {
            partner: partner.clone(),
            organization: org.clone(),
            name: name.clone(),
            location,
            platform_type: platform,
            ip_support,
            static_ips: ips,
            resource_map: resources,
            offline,
            access_vars_sealed: sealed,
            request_mac: mac,
            cloudlet: local.clone(),
            zone,
            reservation: None,
        },
    );
    rec.metadata.labels.insert(LABEL_PARTNER.into(), partner.to_string());
    rec.observed.phase = "reserve".into();
    s.repo.create(&mut rec).await?;
    tracing::info!(partner = %partner, cloudlet = %local, "partner cloudlet federated; waiting for the operator's reservation");
    Ok(Json(json!({"cloudlet_key": key_json(&rec), "state": state_of(&rec)})))
}

/// The control endpoint URL out of sealed `Access_vars` (the one part our drivers use).
fn sealed_url(s: &AppState, sealed: &str) -> Result<String, ApiError> {
    let plain = unseal(&s.ewbi.secret, sealed)?;
    let v: Value = serde_json::from_slice(&plain).map_err(|_| ApiError::Internal("sealed access vars unreadable".into()))?;
    v.get("url").and_then(Value::as_str).map(str::to_string).ok_or_else(|| ApiError::Internal("sealed access vars without url".into()))
}

async fn ensure_region(s: &AppState) -> Result<Name, ApiError> {
    let name = Name::new(PARTNER_REGION).map_err(|e| ApiError::Internal(e.to_string()))?;
    super::ensure_global(s, Kind::Region, &name, RegionSpec { description: Some("partner operators' federated cloudlets".into()), ..Default::default() }).await?;
    Ok(name)
}

/// A zone of the partner cloudlet's own at its location, served area a small square around it
/// (a partner gives a point, not cells).
async fn ensure_zone(s: &AppState, name: &Name, region: &Name, at: GeoPoint, partner: &Name) -> EwbiResult<Name> {
    if let Some(z) = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, name).await? {
        if z.metadata.labels.get(LABEL_PARTNER) != Some(&partner.to_string()) {
            return Err(EwbiError(ApiError::AlreadyExists(format!("zone name {name} is taken; pick another cloudlet_key.name"))));
        }
        return Ok(name.clone());
    }
    let d = 0.01;
    let p = |dl: f64, dn: f64| GeoPoint { latitude: (at.latitude + dl).clamp(-90.0, 90.0), longitude: (at.longitude + dn).clamp(-180.0, 180.0) };
    let spec = ZoneSpec {
        region: region.clone(),
        location: at,
        service_area: ServiceArea { cells: vec![], polygon: vec![p(-d, -d), p(-d, d), p(d, d), p(d, -d)] },
        dnai: None,
        federated: None,
    };
    op_types::Validate::validate(&spec).map_err(|e| EwbiError(ApiError::Invalid(e.under("cloudlet_location"))))?;
    let mut z: Object<ZoneSpec> = Object::new(Kind::Zone, None, name.clone(), spec);
    z.metadata.labels.insert(LABEL_PARTNER.into(), partner.to_string());
    z.status.state = ObjState::Ready;
    s.repo.create(&mut z).await?;
    Ok(name.clone())
}

/// `GET /api/v1/auth/show/cloudlet`: the caller's federated cloudlets, their workflow phases
/// and compliance reports. Never `Access_vars`.
pub async fn show_cloudlets(State(s): State<AppState>, caller: PartnerCaller) -> EwbiResult<Json<Value>> {
    let (all, _) = s.repo.list::<FederatedCloudletSpec, FederatedCloudletObserved>(Kind::FederatedCloudlet).await?;
    let mut out = Vec::new();
    for r in all.iter().filter(|r| r.spec.partner == caller.partner.metadata.name) {
        out.push(view(&s, r).await?);
    }
    Ok(Json(json!({"cloudlets": out})))
}

/// `POST /api/v1/auth/update/cloudlet`: `Maintenance_State`, `Resource_Map`, `Static_IPs`
/// (and `IP_support`) of a federated cloudlet. The location, platform and credentials cannot
/// change: delete and create again.
pub async fn update_cloudlet(State(s): State<AppState>, caller: PartnerCaller, raw: Bytes) -> EwbiResult<Json<Value>> {
    let body = object(&raw)?;
    only_keys(&body, &["cloudlet_key", "Maintenance_State", "Resource_Map", "Static_IPs", "IP_support"])?;
    let (org, name) = cloudlet_key(&body)?;
    authorize(&caller, &org)?;
    let rec = record_by_key(&s, &caller, &org, &name).await?;
    let mut spec = rec.spec.clone();
    if body.contains_key("Maintenance_State") {
        spec.offline = offline(body.get("Maintenance_State"))?;
    }
    if body.contains_key("Resource_Map") {
        spec.resource_map = resource_map(body.get("Resource_Map"))?;
    }
    if body.contains_key("Static_IPs") || body.contains_key("IP_support") {
        let ips = if body.contains_key("Static_IPs") { static_ips(body.get("Static_IPs"))? } else { spec.static_ips.clone() };
        let support = match body.get("IP_support") {
            Some(v) => ip_support(Some(v), &ips)?,
            None => ip_support(Some(&Value::String(spec.ip_support.clone())), &ips)?,
        };
        spec.static_ips = ips;
        spec.ip_support = support;
    }
    let rec = update_record(&s, &rec.metadata.name, |r| r.spec = spec.clone()).await?;
    let compliant = rec.observed.phase == "compliant";
    let spec = rec.spec.clone();
    update_local_cloudlet(&s, &spec.cloudlet, |c| {
        c.spec.maintenance = spec.offline || !compliant;
        c.spec.public_host = spec.static_ips.first().cloned().unwrap_or_else(|| "127.0.0.1".into());
        c.metadata.labels.retain(|k, _| !k.starts_with(LABEL_RESOURCE_PREFIX));
        for (k, v) in &spec.resource_map {
            c.metadata.labels.insert(format!("{LABEL_RESOURCE_PREFIX}{k}"), v.clone());
        }
    })
    .await?;
    tracing::info!(partner = %caller.partner.metadata.name, cloudlet = %rec.spec.cloudlet, "partner cloudlet updated");
    Ok(Json(json!({"cloudlet_key": key_json(&rec), "state": state_of(&rec)})))
}

/// `POST /api/v1/auth/delete/cloudlet` (by `cloudlet_key`): the local cloudlet, its zone and
/// the record go. Refused (409) while instances run on it.
pub async fn delete_cloudlet(State(s): State<AppState>, caller: PartnerCaller, raw: Bytes) -> EwbiResult<Json<Value>> {
    let body = object(&raw)?;
    only_keys(&body, &["cloudlet_key"])?;
    let (org, name) = cloudlet_key(&body)?;
    authorize(&caller, &org)?;
    let rec = record_by_key(&s, &caller, &org, &name).await?;
    let (insts, _) = s.repo.list::<AppInstanceSpec, Value>(Kind::AppInstance).await?;
    if let Some(i) = insts.iter().find(|i| i.spec.cloudlet == rec.spec.cloudlet) {
        let what = if Some(i.metadata.uid) == rec.observed.compliance_instance { "its compliance test is running".to_string() } else { "app instances still run on it".to_string() };
        return Err(EwbiError(ApiError::Conflict(format!("cloudlet {org}/{name} cannot be deleted: {what}; retry once they are gone"))));
    }
    if let Some(app) = rec.observed.compliance_app {
        if let Some(a) = s.repo.get::<AppSpec, ()>(Kind::App, app).await? {
            delete_named(&s, Kind::App, a.metadata.organization.as_ref(), &a.metadata.name).await?;
        }
    }
    delete_named(&s, Kind::Cloudlet, None, &rec.spec.cloudlet).await?;
    let (cls, _) = s.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await?;
    if !cls.iter().any(|c| c.spec.zone == rec.spec.zone) {
        if let Some(z) = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &rec.spec.zone).await? {
            if z.metadata.labels.get(LABEL_PARTNER) == Some(&rec.spec.partner.to_string()) {
                delete_named(&s, Kind::Zone, None, &rec.spec.zone).await?;
            }
        }
    }
    delete_named(&s, Kind::FederatedCloudlet, None, &rec.metadata.name).await?;
    tracing::info!(partner = %caller.partner.metadata.name, cloudlet = %rec.spec.cloudlet, "partner cloudlet deleted");
    Ok(Json(json!({"cloudlet_key": key_json(&rec), "state": "deleted"})))
}

/// Deletes object `name` of `kind` as it is now, retried when a controller wrote in between.
async fn delete_named(s: &AppState, kind: Kind, org: Option<&Name>, name: &Name) -> Result<(), ApiError> {
    for _ in 0..10 {
        let Some(o) = s.repo.get_by_name::<Value, Value>(kind, org, name).await? else { return Ok(()) };
        match s.repo.delete(&o).await {
            Ok(()) => return Ok(()),
            Err(op_store::RepoError::Conflict) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!("{kind} {name} keeps changing; retry")))
}

/// Read-modify-write of a local cloudlet, retried when its controller wrote in between.
pub async fn update_local_cloudlet(s: &AppState, name: &Name, f: impl Fn(&mut Object<CloudletSpec, Value>)) -> Result<(), ApiError> {
    for _ in 0..5 {
        let Some(mut c) = s.repo.get_by_name::<CloudletSpec, Value>(Kind::Cloudlet, None, name).await? else {
            return Err(ApiError::NotFound(format!("cloudlet {name}")));
        };
        let before = c.clone();
        f(&mut c);
        if c == before {
            return Ok(());
        }
        match s.repo.update(&mut c).await {
            Ok(()) => return Ok(()),
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!("cloudlet {name} keeps changing; retry")))
}

/// The operator's reservation on a federated cloudlet (the workflow's reserve step): the local
/// cloudlet's capacity becomes `res`, and the workflow goes on.
pub async fn reserve(s: &AppState, name: &Name, res: Resources) -> Result<Object<FederatedCloudletSpec, FederatedCloudletObserved>, ApiError> {
    let rec = update_record(s, name, |r| r.spec.reservation = Some(res)).await?;
    update_local_cloudlet(s, &rec.spec.cloudlet, |c| c.spec.capacity = res).await?;
    Ok(redacted(rec))
}

/// Read-modify-write of a federated cloudlet's record, retried when its workflow wrote its
/// observed status in between.
async fn update_record(s: &AppState, name: &Name, f: impl Fn(&mut Record)) -> Result<Record, ApiError> {
    for _ in 0..10 {
        let mut rec = s
            .repo
            .get_by_name::<FederatedCloudletSpec, FederatedCloudletObserved>(Kind::FederatedCloudlet, None, name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("federated cloudlet '{name}' not found")))?;
        f(&mut rec);
        match s.repo.update(&mut rec).await {
            Ok(()) => return Ok(rec),
            Err(op_store::RepoError::Conflict) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!("federated cloudlet {name} keeps changing; retry")))
}

/// A record as the operator sees it: no sealed credentials, no request MAC.
pub fn redacted(mut r: Record) -> Record {
    r.spec.access_vars_sealed = String::new();
    r.spec.request_mac = String::new();
    r
}

// ---------------------------------------------------------------------------------------------
// The operational workflow

/// Walks each federated cloudlet through reserve, discover inventory, catalogue, sizes and
/// compliance, recording each phase in the record's observed status, and opens the cloudlet
/// to placement only once compliance passed (and the partner has it online).
pub struct CloudletFederationReconciler {
    state: AppState,
    http: reqwest::Client,
}

impl CloudletFederationReconciler {
    /// A reconciler over the platform's state.
    pub fn new(state: AppState) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { state, http }
    }
}

fn phase(r: &mut Record, name: &str, ok: bool, detail: impl Into<String>) {
    r.observed.phases.insert(name.into(), PhaseRecord { ok, at: Some(Utc::now()), detail: detail.into() });
    if !ok {
        r.observed.phase = name.into();
    }
}

fn millis(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Reconciler for CloudletFederationReconciler {
    fn kind(&self) -> Kind {
        Kind::FederatedCloudlet
    }

    // A multi-step flow that writes as it goes and comes back at once: it reads its latest
    // from the store, which the runner's copy would lag after its own writes.
    async fn reconcile(&self, uid: Uid, _stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let s = &self.state;
        let Some(mut rec) = s.repo.get::<FederatedCloudletSpec, FederatedCloudletObserved>(Kind::FederatedCloudlet, uid).await? else {
            return Ok(Action::AwaitChange);
        };
        let before = rec.clone();
        let result = self.walk(&mut rec).await;
        if let Err(e) = &result {
            rec.status.state = ObjState::Failed;
            rec.status.message = Some(e.to_string());
        }
        if rec.status != before.status || rec.observed != before.observed {
            // The workflow owns status and observed; the spec may have changed meanwhile (a
            // reservation, an update): keep it, and never lose what was done (a test instance).
            let mut saved = false;
            for _ in 0..5 {
                match s.repo.update(&mut rec).await {
                    Ok(()) => {
                        saved = true;
                        break;
                    }
                    Err(op_store::RepoError::Conflict) => {
                        let Some(mut fresh) = s.repo.get::<FederatedCloudletSpec, FederatedCloudletObserved>(Kind::FederatedCloudlet, uid).await? else {
                            return Ok(Action::AwaitChange);
                        };
                        fresh.status = rec.status.clone();
                        fresh.observed = rec.observed.clone();
                        rec = fresh;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !saved {
                return Ok(Action::Requeue(Duration::from_millis(100)));
            }
        }
        result.map_err(|e| ReconcileError::Service(e.to_string()))
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        op_controller::backoff(failures)
    }
}

impl CloudletFederationReconciler {
    async fn walk(&self, rec: &mut Record) -> Result<Action, ApiError> {
        let s = &self.state;
        let Some(cl) = s.repo.get_by_name::<CloudletSpec, op_types::specs::CloudletObserved>(Kind::Cloudlet, None, &rec.spec.cloudlet).await? else {
            rec.status.state = ObjState::Failed;
            rec.status.message = Some(format!("the local cloudlet {} is gone", rec.spec.cloudlet));
            return Ok(Action::AwaitChange);
        };
        // Reserve.
        let Some(res) = rec.spec.reservation else {
            phase(rec, "reserve", false, "waiting for the operator's reservation");
            rec.status.state = ObjState::Pending;
            rec.status.message = Some(format!("waiting for the operator's reservation (POST /op/v1/federation/cloudlets/{}/reservation)", rec.spec.cloudlet));
            return Ok(Action::AwaitChange);
        };
        phase(rec, "reserve", true, res.to_string());
        rec.status.state = ObjState::Creating;
        // Discover inventory: the runtime answers, and which images it has.
        let driver = match s.drivers.for_cloudlet(&cl.spec) {
            Ok(d) => d,
            Err(e) => {
                phase(rec, "discoverInventory", false, format!("no driver: {e}"));
                return Ok(Action::Requeue(Duration::from_secs(10)));
            }
        };
        if let Err(e) = driver.ping().await {
            phase(rec, "discoverInventory", false, format!("the control endpoint does not answer: {e}"));
            return Ok(Action::Requeue(Duration::from_secs(10)));
        }
        let has_image = driver.image_exists(CATALOGUE_IMAGE).await.unwrap_or(false);
        phase(rec, "discoverInventory", true, format!("runtime answers; {CATALOGUE_IMAGE} {}", if has_image { "present" } else { "missing" }));
        // Networking: devices reach the cloudlet at its public address (the partner's static IP,
        // or DHCP), and its connectivity probe answers there.
        let public = &cl.spec.public_host;
        if rec.spec.ip_support.eq_ignore_ascii_case("static") && !rec.spec.static_ips.contains(public) {
            phase(rec, "networking", false, format!("public host {public} is not among the static IPs"));
            return Ok(Action::Requeue(Duration::from_secs(10)));
        }
        match &cl.observed.probe {
            Some(p) if driver.reachable(&p.host, p.port).await => phase(rec, "networking", true, format!("{} public addressing; connectivity probe answers", rec.spec.ip_support)),
            Some(_) => {
                phase(rec, "networking", false, "the connectivity probe does not answer at the cloudlet's address");
                return Ok(Action::Requeue(Duration::from_secs(5)));
            }
            None if cl.spec.platform_type == PlatformType::Sim => phase(rec, "networking", true, format!("{} public addressing; simulated network", rec.spec.ip_support)),
            None => {
                phase(rec, "networking", false, "waiting for the cloudlet's connectivity probe");
                return Ok(Action::Requeue(Duration::from_secs(2)));
            }
        }
        // Catalogue: the platform's certified image is there (loaded from one of our cloudlets
        // when missing).
        let has_image = has_image || self.load_catalogue(&cl).await;
        if !has_image {
            phase(rec, "catalogue", false, format!("{CATALOGUE_IMAGE} is not on the cloudlet and could not be loaded"));
            return Ok(Action::Requeue(Duration::from_secs(30)));
        }
        rec.observed.catalogue = vec![CATALOGUE_IMAGE.to_string()];
        phase(rec, "catalogue", true, format!("{CATALOGUE_IMAGE} present"));
        // Sizes: the operator's flavors that fit the reservation.
        let (mut flavors, _) = s.repo.list::<FlavorSpec, ()>(Kind::Flavor).await?;
        flavors.sort_by_key(|f| (f.spec.vcpus, f.spec.memory_mb, f.metadata.name.clone()));
        let fitting: Vec<Name> = flavors.iter().filter(|f| f.spec.fits_in(&res)).map(|f| f.metadata.name.clone()).collect();
        if fitting.is_empty() {
            phase(rec, "sizes", false, format!("no flavor fits the reservation ({res})"));
            return Ok(Action::AwaitChange);
        }
        let names = fitting.clone();
        update_local_cloudlet(s, &rec.spec.cloudlet, |c| c.spec.flavors = names.clone()).await?;
        phase(rec, "sizes", true, fitting.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(","));
        // Compliance.
        if rec.observed.compliance.as_ref().is_some_and(|r| r.passed) && rec.observed.compliance_instance.is_none() {
            let offline = rec.spec.offline;
            update_local_cloudlet(s, &rec.spec.cloudlet, |c| c.spec.maintenance = offline).await?;
            rec.observed.phase = "compliant".into();
            rec.status.state = ObjState::Ready;
            rec.status.message = None;
            rec.status.set_condition("Compliant", true, "");
            return Ok(Action::AwaitChange);
        }
        rec.observed.phase = "compliance".into();
        rec.status.set_condition("Compliant", false, "Testing");
        update_local_cloudlet(s, &rec.spec.cloudlet, |c| c.spec.maintenance = true).await?;
        self.compliance(rec, &cl, &fitting, driver.as_ref()).await
    }

    /// Loads the catalogue image onto a Docker cloudlet from another (non-partner) cloudlet of
    /// ours that has it. Whether it is there afterwards.
    async fn load_catalogue(&self, target: &Cloudlet) -> bool {
        let s = &self.state;
        if target.spec.platform_type != PlatformType::Docker {
            return false;
        }
        let Ok(to) = s.drivers.for_cloudlet(&target.spec) else { return false };
        let Ok((cls, _)) = s.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await else { return false };
        for c in cls.iter().filter(|c| !c.metadata.labels.contains_key(LABEL_PARTNER) && c.spec.driver_endpoint != target.spec.driver_endpoint) {
            let Ok(from) = s.drivers.for_cloudlet(&c.spec) else { continue };
            let Ok(tar) = from.export_image(CATALOGUE_IMAGE).await else { continue };
            if to.load_image(tar).await.is_ok() && to.image_exists(CATALOGUE_IMAGE).await.unwrap_or(false) {
                return true;
            }
        }
        false
    }

    /// One step of the compliance run: the NBI flow on this cloudlet, resumed from the record.
    async fn compliance(&self, rec: &mut Record, cl: &Cloudlet, flavors: &[Name], driver: &dyn op_driver::Driver) -> Result<Action, ApiError> {
        let s = &self.state;
        let Some(inst_uid) = rec.observed.compliance_instance else {
            if let Some(last) = &rec.observed.compliance {
                let wait = last.at.map(|t| (t + chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default() - Utc::now()).to_std().unwrap_or_default()).unwrap_or_default();
                if !wait.is_zero() {
                    return Ok(Action::Requeue(wait));
                }
            }
            return self.start_run(rec, cl, flavors).await;
        };
        let started = rec.observed.compliance_started.unwrap_or_else(Utc::now);
        let Some(inst) = s.repo.get::<AppInstanceSpec, op_types::specs::InstanceObserved>(Kind::AppInstance, inst_uid).await? else {
            return self.finish(rec, "ready", false, 0, "the test instance vanished".into(), ComplianceMetrics::default()).await;
        };
        let elapsed = (Utc::now() - started).to_std().unwrap_or_default();
        if let Some(uid) = rec.observed.compliance_cluster {
            let cluster = s.repo.get::<ClusterSpec, ClusterObserved>(Kind::Cluster, uid).await?;
            let Some(cluster) = cluster else {
                return self.finish(rec, "clusterReady", false, 0, "the test cluster vanished".into(), ComplianceMetrics::default()).await;
            };
            if cluster.status.state != ObjState::Ready {
                if elapsed > READY_TIMEOUT || cluster.status.state == ObjState::Failed {
                    let why = cluster.status.message.clone().unwrap_or_else(|| format!("state {}", cluster.status.state));
                    return self.finish(rec, "clusterReady", false, elapsed.as_millis() as u64, format!("cluster not Ready: {why}"), ComplianceMetrics::default()).await;
                }
                return Ok(Action::Requeue(Duration::from_millis(300)));
            }
            if !rec.observed.running_steps.iter().any(|st| st.step == "clusterReady") {
                let network = cluster.observed.network.clone().unwrap_or_default();
                rec.observed.running_steps.push(ComplianceStep {
                    step: "clusterReady".into(),
                    ok: true,
                    millis: elapsed.as_millis() as u64,
                    detail: format!("cluster network {network} made on {}", cl.metadata.name),
                });
            }
        }
        if inst.status.state != ObjState::Ready || inst.observed.endpoints.is_empty() {
            if elapsed > READY_TIMEOUT {
                let why = inst.status.message.clone().unwrap_or_else(|| format!("state {}", inst.status.state));
                return self.finish(rec, "ready", false, elapsed.as_millis() as u64, format!("not Ready within {} s: {why}", READY_TIMEOUT.as_secs()), ComplianceMetrics::default()).await;
            }
            return Ok(Action::Requeue(Duration::from_millis(300)));
        }
        rec.observed.running_steps.push(ComplianceStep { step: "ready".into(), ok: true, millis: elapsed.as_millis() as u64, detail: format!("instance Ready on {}", cl.metadata.name) });
        // QoE test: the app answers at its endpoint.
        let ep = &inst.observed.endpoints[0];
        let t = Instant::now();
        let (qoe_ok, bytes, detail, source) = match cl.spec.platform_type {
            PlatformType::Docker => match self.http.get(format!("http://{}:{}/", ep.host, ep.port)).send().await {
                Ok(r) => {
                    let status = r.status();
                    let n = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                    (status.is_success(), n, format!("GET http://{}:{}/ answered {status} ({n} bytes)", ep.host, ep.port), "flavor")
                }
                Err(e) => (false, 0, format!("GET http://{}:{}/ failed: {e}", ep.host, ep.port), "flavor"),
            },
            PlatformType::Sim => {
                let ok = driver.reachable(&ep.host, ep.port).await;
                (ok, 0, format!("simulated cloudlet: endpoint {}:{} {} in the runtime's model (no HTTP)", ep.host, ep.port, if ok { "reachable" } else { "unreachable" }), "model")
            }
        };
        let qoe_ms = t.elapsed().as_secs_f64() * 1000.0;
        rec.observed.running_steps.push(ComplianceStep { step: "qoeTest".into(), ok: qoe_ok, millis: millis(t), detail: format!("{detail}; latency {qoe_ms:.1} ms") });
        // Metrics: what the runtime reports of the container, and the flavor's reservation.
        let t = Instant::now();
        let flavor = s.repo.get_by_name::<FlavorSpec, ()>(Kind::Flavor, None, &inst.spec.flavor).await?.map(|f| f.spec).unwrap_or_default();
        let running = match &inst.observed.container_id {
            Some(id) => driver.inspect(id).await.ok().flatten().map(|c| c.state == op_driver::ContainerState::Running),
            None => None,
        };
        let measured = match (&inst.observed.container_id, cl.spec.platform_type) {
            (Some(id), PlatformType::Docker) => driver.stats(id).await.ok().map(|u| op_types::ewbi::objects::MeasuredUse {
                cpu_ms: u.cpu_ns / 1_000_000,
                memory_bytes: u.memory_bytes,
                memory_limit_bytes: u.memory_limit_bytes,
                disk_write_bytes: u.disk_write_bytes,
                net_rx_bytes: u.net_rx_bytes,
                net_tx_bytes: u.net_tx_bytes,
            }),
            _ => None,
        };
        let secs = (qoe_ms / 1000.0).max(1e-6);
        let metrics = ComplianceMetrics {
            vcpus: flavor.vcpus,
            memory_mb: flavor.memory_mb,
            disk_gb: flavor.disk_gb,
            bandwidth_bps: (bytes as f64 / secs) as u64,
            latency_ms: (qoe_ms * 10.0).round() / 10.0,
            source: if measured.is_some() { "runtime" } else { source }.into(),
            measured: measured.clone(),
        };
        // A real container must show its use: memory in use, and the QoE answer sent.
        let use_ok = cl.spec.platform_type != PlatformType::Docker || measured.as_ref().is_some_and(|m| m.memory_bytes > 0 && m.net_tx_bytes > 0);
        let metrics_ok = running == Some(true) && flavor.vcpus > 0 && use_ok;
        rec.observed.running_steps.push(ComplianceStep {
            step: "metrics".into(),
            ok: metrics_ok,
            millis: millis(t),
            detail: format!(
                "container {}; flavor {} ({flavor}){}",
                match running { Some(true) => "running", Some(false) => "not running", None => "not found" },
                inst.spec.flavor,
                measured.as_ref().map_or_else(String::new, |m| format!(
                    "; runtime: {} ms CPU, {} KiB memory, {} B in, {} B out",
                    m.cpu_ms,
                    m.memory_bytes / 1024,
                    m.net_rx_bytes,
                    m.net_tx_bytes
                ))
            ),
        });
        let ok = qoe_ok && metrics_ok;
        self.finish(rec, "deleteInstance", ok, 0, String::new(), metrics).await
    }

    /// Starts a compliance run: the `compliance` organization, the sample app, an instance
    /// pinned to this cloudlet (admission would skip it: it is in maintenance until it passes).
    async fn start_run(&self, rec: &mut Record, cl: &Cloudlet, flavors: &[Name]) -> Result<Action, ApiError> {
        let s = &self.state;
        rec.observed.running_steps.clear();
        rec.observed.compliance_started = Some(Utc::now());
        let t = Instant::now();
        let org = Name::new(COMPLIANCE_ORG).map_err(|e| ApiError::Internal(e.to_string()))?;
        super::ensure_global(s, Kind::Organization, &org, OrganizationSpec { parent: None, description: Some("the operator's compliance tests of partner cloudlets".into()) }).await?;
        let app = match s.repo.get_by_name::<AppSpec, ()>(Kind::App, Some(&org), &cl.metadata.name).await? {
            Some(a) => a,
            None => {
                let spec: AppSpec = serde_json::from_value(json!({
                    "version": "1.0",
                    "appProvider": COMPLIANCE_ORG,
                    "packageType": "CONTAINER",
                    "appRepo": {"type": "PUBLICREPO", "imagePath": CATALOGUE_IMAGE},
                    "requiredResources": {"infraKind": "container", "numCPU": "500m", "memory": 128},
                    "componentSpec": [{"componentName": "web", "networkInterfaces": [
                        {"interfaceId": "http", "protocol": "TCP", "port": 8080, "visibilityType": "VISIBILITY_EXTERNAL"}]}]
                }))
                .map_err(|e| ApiError::Internal(format!("compliance manifest: {e}")))?;
                let mut a: App = Object::new(Kind::App, Some(org.clone()), cl.metadata.name.clone(), spec);
                a.status.state = ObjState::Ready;
                s.repo.create(&mut a).await?;
                a
            }
        };
        rec.observed.compliance_app = Some(app.metadata.uid);
        rec.observed.running_steps.push(ComplianceStep { step: "createApp".into(), ok: true, millis: millis(t), detail: format!("app {COMPLIANCE_ORG}/{} of {CATALOGUE_IMAGE}", app.metadata.name) });
        let zone = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &cl.spec.zone).await?.ok_or_else(|| ApiError::Internal(format!("zone {} is gone", cl.spec.zone)))?;
        let run_name = |prefix: &str| {
            let mut n = format!("{prefix}{}-{}", Utc::now().timestamp(), cl.metadata.name);
            n.truncate(op_types::ids::NAME_MAX);
            while n.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
                n.pop();
            }
            Name::new(n).map_err(|e| ApiError::Internal(e.to_string()))
        };
        // A cluster pinned to this cloudlet: its network must be made there.
        let t = Instant::now();
        let spec = ClusterSpec { edge_cloud_zone_id: zone.metadata.uid, outbound_allowed: false, outbound_rules: Vec::new(), description: Some("compliance test".into()) };
        let mut cluster: Object<ClusterSpec, ClusterObserved> = Object::new(Kind::Cluster, Some(org.clone()), run_name("c")?, spec);
        cluster.observed.cloudlet = Some(cl.metadata.name.clone());
        cluster.metadata.labels.insert("op.federation.compliance".into(), rec.metadata.uid.to_string());
        s.repo.create(&mut cluster).await?;
        rec.observed.compliance_cluster = Some(cluster.metadata.uid);
        rec.observed.running_steps.push(ComplianceStep {
            step: "createCluster".into(),
            ok: true,
            millis: millis(t),
            detail: format!("cluster {} pinned to {}", cluster.metadata.name, cl.metadata.name),
        });
        let t = Instant::now();
        let need = app.spec.needs();
        let (all, _) = s.repo.list::<FlavorSpec, ()>(Kind::Flavor).await?;
        let mut fit: Vec<_> = all.iter().filter(|f| flavors.contains(&f.metadata.name) && need.fits_in(&f.spec)).collect();
        fit.sort_by_key(|f| (f.spec.vcpus, f.spec.memory_mb, f.metadata.name.clone()));
        let Some(flavor) = fit.first() else {
            return self.finish(rec, "createInstance", false, millis(t), "no assigned flavor fits the sample app".into(), ComplianceMetrics::default()).await;
        };
        let spec = AppInstanceSpec { app_id: app.metadata.uid, edge_cloud_zone_id: zone.metadata.uid, cloudlet: cl.metadata.name.clone(), flavor: flavor.metadata.name.clone(), federated: None, cluster: None, app_revision: Some(app.metadata.revision) };
        let mut inst: AppInstance = Object::new(Kind::AppInstance, Some(org), run_name("t")?, spec);
        inst.metadata.labels.insert("op.federation.compliance".into(), rec.metadata.uid.to_string());
        s.repo.create(&mut inst).await?;
        rec.observed.compliance_instance = Some(inst.metadata.uid);
        rec.observed.running_steps.push(ComplianceStep {
            step: "createInstance".into(),
            ok: true,
            millis: millis(t),
            detail: format!("instance pinned to {} with flavor {}", cl.metadata.name, flavor.metadata.name),
        });
        tracing::info!(cloudlet = %cl.metadata.name, "compliance run started");
        Ok(Action::Requeue(Duration::from_millis(300)))
    }

    /// Ends a run: the failing step (when `step` is not the removal), the instance removed,
    /// the report written.
    async fn finish(&self, rec: &mut Record, step: &str, ok: bool, ms: u64, detail: String, metrics: ComplianceMetrics) -> Result<Action, ApiError> {
        let s = &self.state;
        if step != "deleteInstance" {
            rec.observed.running_steps.push(ComplianceStep { step: step.into(), ok, millis: ms, detail });
        }
        let t = Instant::now();
        let removed = match rec.observed.compliance_instance.take() {
            Some(uid) => crate::camara::request_deletion(s, Kind::AppInstance, uid, "compliance run").await.is_ok(),
            None => true,
        };
        rec.observed.running_steps.push(ComplianceStep { step: "deleteInstance".into(), ok: removed, millis: millis(t), detail: "test instance deletion requested".into() });
        if let Some(uid) = rec.observed.compliance_cluster.take() {
            let t = Instant::now();
            let removed = crate::camara::request_deletion(s, Kind::Cluster, uid, "compliance run").await.is_ok();
            rec.observed.running_steps.push(ComplianceStep { step: "deleteCluster".into(), ok: removed, millis: millis(t), detail: "test cluster deletion requested".into() });
        }
        let steps = std::mem::take(&mut rec.observed.running_steps);
        let passed = steps.iter().all(|s| s.ok);
        rec.observed.compliance = Some(ComplianceReport { passed, at: Some(Utc::now()), steps, metrics });
        rec.observed.compliance_started = None;
        if passed {
            tracing::info!(cloudlet = %rec.spec.cloudlet, "compliance passed");
            Ok(Action::Requeue(Duration::from_millis(10)))
        } else {
            let why = rec.observed.compliance.as_ref().and_then(|r| r.steps.iter().find(|s| !s.ok)).map(|s| format!("{}: {}", s.step, s.detail)).unwrap_or_default();
            tracing::warn!(cloudlet = %rec.spec.cloudlet, failed = %why, "compliance failed; retrying later");
            rec.status.message = Some(format!("compliance failed at {why}; retrying in {} s", RETRY_AFTER.as_secs()));
            Ok(Action::Requeue(RETRY_AFTER))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_hides_the_plaintext() {
        let sealed = seal(b"platform-secret", b"{\"password\":\"Hunter2-distinct\"}").unwrap();
        assert!(!sealed.contains("Hunter2"));
        let again = seal(b"platform-secret", b"{\"password\":\"Hunter2-distinct\"}").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
        assert_eq!(unseal(b"platform-secret", &sealed).unwrap(), b"{\"password\":\"Hunter2-distinct\"}");
    }

    #[test]
    fn unseal_fails_with_a_wrong_key_or_altered_bytes() {
        let sealed = seal(b"platform-secret", b"pw").unwrap();
        assert!(unseal(b"another-secret", &sealed).is_err());
        let mut raw = base64::engine::general_purpose::STANDARD.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(unseal(b"platform-secret", &base64::engine::general_purpose::STANDARD.encode(raw)).is_err());
        assert!(unseal(b"platform-secret", "AAAA").is_err());
    }

    #[test]
    fn access_vars_parse_in_both_forms() {
        let a = parse_access_vars(&json!("url=tcp://10.0.0.1:2375;username=u;password=p")).unwrap();
        assert_eq!((a.url.as_str(), a.username.as_deref(), a.password.as_deref()), ("tcp://10.0.0.1:2375", Some("u"), Some("p")));
        let b = parse_access_vars(&json!("{\"url\":\"sim://x\",\"password\":\"p\"}")).unwrap();
        assert_eq!(b.url, "sim://x");
        let e = parse_access_vars(&json!("password=p")).err().map(|e| e.0.to_string()).unwrap_or_default();
        assert!(e.contains("Access_vars.url"), "{e}");
        assert!(parse_access_vars(&json!("url=tcp://u:p@h:1")).is_err());
    }

    #[test]
    fn names_are_sanitized() {
        let p = Name::new("opa").unwrap();
        assert_eq!(local_name(&p, "Edge Site #1").unwrap().as_str(), "p-opa-edge-site--1");
        assert!(local_name(&p, &"x".repeat(200)).unwrap().as_str().len() <= op_types::ids::NAME_MAX);
    }

    #[test]
    fn bad_coordinates_name_their_field() {
        let e = coordinate(Some(&json!("91")), "cloudlet_location.Latitude", 90.0).err().map(|e| e.0.to_string()).unwrap_or_default();
        assert!(e.contains("cloudlet_location.Latitude"), "{e}");
        assert!(coordinate(Some(&json!("48.85")), "x", 90.0).is_ok());
        assert!(coordinate(Some(&json!("north")), "x", 90.0).is_err());
    }
}
