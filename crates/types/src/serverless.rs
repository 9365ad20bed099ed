//! Serverless apps: the developer's policies (OPG.02 serverless X.4.4), the operator's bounds on
//! them, and what the platform reports about where a serverless app runs and why.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};
use crate::validate::{ensure, FieldError, Validate};

/// How the ingress of a point of presence reads an app's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ServerlessProtocol {
    /// HTTP/1.1 (WebSocket and `h2c` upgrades included) or HTTP/2 with prior knowledge:
    /// routed by host and path on the shared HTTP port of each point of presence.
    #[default]
    Http,
    /// Plain TCP: a port of its own at each point of presence.
    Tcp,
}

/// The developer's policies for a serverless app, bounded by the operator's
/// [`ServerlessBounds`]. `version` is the platform's: it grows by one with every change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerlessPolicy {
    /// Concurrent connections one instance takes (as the ingress sees them) before another
    /// is started.
    #[serde(default = "default_concurrency")]
    pub concurrency_per_instance: u32,
    /// Concurrent sessions (devices with open connections) at a point of presence without an
    /// instance of its own that make the orchestrator start one there: the workload migrates
    /// to where its sessions are.
    #[serde(default = "default_trigger")]
    pub pop_session_trigger: u32,
    /// Instances kept running with no traffic (at the homebase).
    #[serde(default)]
    pub min_instances: u32,
    /// Instances at most, over every point of presence.
    #[serde(default = "default_max")]
    pub max_instances: u32,
    /// Seconds an instance may serve no connection before it is stopped (down to
    /// `minInstances`, zero by default).
    #[serde(default = "default_idle")]
    pub idle_seconds: u32,
    /// The zone where the orchestrator keeps the app's `minInstances` and starts it when a
    /// request comes from no point of presence in particular; default: the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homebase: Option<Name>,
    /// The host the app answers on at every ingress (HTTP); default `<app>.<org>.serverless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only requests under this path reach the app (HTTP); default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// HTTP or plain TCP.
    #[serde(default)]
    pub protocol: ServerlessProtocol,
    /// Devices must present a UNI session token (`Authorization: Bearer`, or `x-op-session`),
    /// verified at the ingress with the platform's public key.
    #[serde(default)]
    pub require_session: bool,
    /// Set by the platform: 1 at onboarding, then one more with every change.
    #[serde(default)]
    pub version: u32,
}

fn default_concurrency() -> u32 {
    10
}
fn default_trigger() -> u32 {
    3
}
fn default_max() -> u32 {
    4
}
fn default_idle() -> u32 {
    60
}

impl Default for ServerlessPolicy {
    fn default() -> Self {
        Self {
            concurrency_per_instance: default_concurrency(),
            pop_session_trigger: default_trigger(),
            min_instances: 0,
            max_instances: default_max(),
            idle_seconds: default_idle(),
            homebase: None,
            host: None,
            path_prefix: None,
            protocol: ServerlessProtocol::Http,
            require_session: false,
            version: 0,
        }
    }
}

/// Whether `h` is a DNS host name (labels of letters, digits and hyphens).
fn is_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Validate for ServerlessPolicy {
    fn validate(&self) -> Result<(), FieldError> {
        ensure((1..=10_000).contains(&self.concurrency_per_instance), "concurrencyPerInstance", "must be between 1 and 10000")?;
        ensure((1..=100_000).contains(&self.pop_session_trigger), "popSessionTrigger", "must be between 1 and 100000")?;
        ensure((1..=1000).contains(&self.max_instances), "maxInstances", "must be between 1 and 1000")?;
        ensure(self.min_instances <= self.max_instances, "minInstances", "must not exceed maxInstances")?;
        ensure((1..=86_400).contains(&self.idle_seconds), "idleSeconds", "must be between 1 and 86400")?;
        if let Some(h) = &self.host {
            ensure(is_host(h), "host", "must be a DNS host name, e.g. api.example.com")?;
        }
        if let Some(p) = &self.path_prefix {
            ensure(p.starts_with('/') && p.len() <= 256 && !p.contains(char::is_whitespace), "pathPrefix", "must start with / and hold no spaces")?;
        }
        Ok(())
    }
}

impl ServerlessPolicy {
    /// The first rule of the operator's `bounds` this policy breaks, naming the field.
    pub fn within(&self, b: &ServerlessBounds) -> Result<(), FieldError> {
        let at_most = |v: u32, max: Option<u32>, field: &str| match max {
            Some(m) if v > m => Err(FieldError::new(field, format!("must be at most {m} (the operator's bound)"))),
            _ => Ok(()),
        };
        at_most(self.max_instances, b.max_instances, "maxInstances")?;
        at_most(self.min_instances, b.max_min_instances, "minInstances")?;
        at_most(self.concurrency_per_instance, b.max_concurrency_per_instance, "concurrencyPerInstance")?;
        match b.min_idle_seconds {
            Some(m) if self.idle_seconds < m => Err(FieldError::new("idleSeconds", format!("must be at least {m} (the operator's bound)"))),
            _ => Ok(()),
        }
    }

    /// The host the app answers on: the policy's, else `<app>.<org>.serverless`.
    pub fn host_for(&self, org: &Name, app: &Name) -> String {
        self.host.clone().unwrap_or_else(|| format!("{}.{}.serverless", dns_label(app.as_str()), dns_label(org.as_str())))
    }
}

/// `s` as a DNS label: lower case, other characters as hyphens.
fn dns_label(s: &str) -> String {
    let l: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    l.trim_matches('-').to_string()
}

/// The operator's bounds on developers' serverless policies (in its `default` placement
/// policy): a policy outside them is refused, naming the field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerlessBounds {
    /// Largest `maxInstances`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Largest `minInstances` (instances kept without traffic cost the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_min_instances: Option<u32>,
    /// Largest `concurrencyPerInstance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency_per_instance: Option<u32>,
    /// Smallest `idleSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_idle_seconds: Option<u32>,
    /// The homebase of apps whose policy names none (a zone name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_homebase: Option<Name>,
}

/// A point of presence: a cloudlet's ingress, where devices' connections arrive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointOfPresence {
    /// The point of presence (its cloudlet's name; operators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// Its zone.
    pub zone: Name,
    /// The zone's id.
    pub zone_id: Uid,
    /// Where devices send HTTP (`host:port`).
    pub http: String,
}

/// Traffic of one serverless app at one point of presence, as its ingress counted it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PopTraffic {
    /// Open connections that arrived here.
    pub connections: u64,
    /// Connections that arrived here since the platform started.
    pub connections_total: u64,
    /// Concurrent sessions: devices (or sessions without a token: client addresses) with an
    /// open connection here.
    pub sessions: u64,
    /// Distinct devices seen here since the platform started.
    pub devices: u64,
    /// Connections held here while an instance was started from zero.
    pub held_total: u64,
    /// Connections forwarded from here to another point of presence.
    pub forwarded_total: u64,
}

/// One serverless instance: where, since when, and why it was started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessInstance {
    /// The instance id.
    pub app_instance_id: Uid,
    /// Its zone.
    pub zone: Name,
    /// `pending`, `ready` or `stopping`.
    pub state: String,
    /// Open connections it serves.
    pub connections: u64,
    /// Why the orchestrator started it.
    pub reason: String,
}

/// Where a serverless app runs now and why, with its traffic per point of presence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessStatus {
    /// The app.
    pub app_id: Uid,
    /// Its policy (with its version).
    pub policy: ServerlessPolicy,
    /// The host it answers on.
    pub host: String,
    /// The homebase zone, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homebase: Option<Name>,
    /// Where devices reach it: at each zone's point of presence, the shared HTTP port or, for
    /// a TCP app, its own port.
    pub endpoints: Vec<ZoneEndpoint>,
    /// Its instances.
    pub instances: Vec<ServerlessInstance>,
    /// Its traffic per zone of a point of presence.
    pub traffic: Vec<ZoneTraffic>,
    /// The orchestrator's last decisions, newest last.
    pub events: Vec<ServerlessEvent>,
}

/// Where a serverless app is reached in one zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneEndpoint {
    /// The zone.
    pub zone: Name,
    /// `host:port`.
    pub address: String,
}

/// Traffic at the points of presence of one zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneTraffic {
    /// The zone.
    pub zone: Name,
    /// Its ingress counts.
    #[serde(flatten)]
    pub traffic: PopTraffic,
}

/// Something that happened to a serverless app: a decision of the orchestrator or a
/// connection event at an ingress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// `scaleFromZero`, `scaleOut`, `migrate`, `scaleIn`, `keepMinimum`, `policyChanged`,
    /// `sessionStarted`, `sessionEnded`.
    pub kind: String,
    /// The zone concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Name>,
    /// The instance concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<Uid>,
    /// Why, in words.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules_name_the_field() {
        let ok = ServerlessPolicy::default();
        assert!(ok.validate().is_ok());
        let bad = ServerlessPolicy { min_instances: 5, max_instances: 2, ..ok.clone() };
        assert_eq!(bad.validate().unwrap_err().field, "minInstances");
        let bad = ServerlessPolicy { host: Some("no spaces allowed".into()), ..ok.clone() };
        assert_eq!(bad.validate().unwrap_err().field, "host");
        let bad = ServerlessPolicy { path_prefix: Some("api".into()), ..ok.clone() };
        assert_eq!(bad.validate().unwrap_err().field, "pathPrefix");
        let bounds = ServerlessBounds { max_instances: Some(3), min_idle_seconds: Some(30), ..Default::default() };
        assert_eq!(ok.within(&bounds).unwrap_err().field, "maxInstances");
        let small = ServerlessPolicy { max_instances: 3, idle_seconds: 10, ..ok };
        assert_eq!(small.within(&bounds).unwrap_err().field, "idleSeconds");
    }

    #[test]
    fn default_host_is_a_dns_name() {
        let p = ServerlessPolicy::default();
        let h = p.host_for(&Name::new("acme_corp").unwrap(), &Name::new("Echo").unwrap());
        assert_eq!(h, "echo.acme-corp.serverless");
        assert!(is_host(&h));
    }
}
