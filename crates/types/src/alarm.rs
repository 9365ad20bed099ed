//! Alarms: conditions that need a person (a cloudlet down, an instance down, resource use over
//! a threshold for a while), raised and resolved by the platform and delivered to webhook
//! receivers in Alertmanager's webhook format (version 4), so receivers built for Prometheus'
//! alerting work unchanged.
//!
//! What raises an alarm is decided here, purely, from an object's stored status or a resource
//! reading; the API crate follows the store and delivers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};
use crate::views::Delivery;
use crate::meta::{Kind, State as ObjState, Status};
use crate::validate::{ensure, max_len, FieldError, Validate};

/// What an alarm is about (Alertmanager's `alertname` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub enum AlarmName {
    /// A cloudlet's runtime does not answer (the operator's only).
    CloudletDown,
    /// An instance failed or its container ended.
    InstanceDown,
    /// An instance's CPU use passed an alert policy's share of its flavor's vCPUs.
    CpuHigh,
    /// An instance's memory use passed an alert policy's share of its limit.
    MemoryHigh,
}

impl AlarmName {
    /// The name as its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmName::CloudletDown => "CloudletDown",
            AlarmName::InstanceDown => "InstanceDown",
            AlarmName::CpuHigh => "CpuHigh",
            AlarmName::MemoryHigh => "MemoryHigh",
        }
    }
}

/// How urgent an alarm is (the `severity` label; receivers may ask for a minimum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlarmSeverity {
    /// Worth knowing.
    Info,
    /// Worth looking at soon.
    #[default]
    Warning,
    /// Something is down.
    Critical,
}

impl AlarmSeverity {
    /// The severity as its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmSeverity::Info => "info",
            AlarmSeverity::Warning => "warning",
            AlarmSeverity::Critical => "critical",
        }
    }
}

/// Whether an alarm's condition holds (Alertmanager's `status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlarmState {
    /// The condition holds.
    #[default]
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl AlarmState {
    /// The state as Alertmanager spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Firing => "firing",
            AlarmState::Resolved => "resolved",
        }
    }
}

/// A webhook that receives alarms. An operator's receiver (no organization) gets every alarm;
/// an organization's gets the alarms of its instances (and its groups'), never the operator's
/// own (cloudlets, the operator's thresholds) and never a cloudlet's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlarmReceiverSpec {
    /// Where alarms are POSTed (`http://` or `https://`).
    pub url: String,
    /// Only these alarms (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<AlarmName>,
    /// Only alarms at least this severe (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<AlarmSeverity>,
    /// Only this app's instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uid>,
    /// A shared secret: each delivery then carries `X-OP-Signature-256: sha256=<hex HMAC-SHA256
    /// of the body>`. Write-only: stored sealed, never returned (answers say `hasSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Validate for AlarmReceiverSpec {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.url.starts_with("http://") || self.url.starts_with("https://"), "url", "must be an http:// or https:// URL")?;
        max_len(&self.url, 2048, "url")?;
        ensure(self.alarms.len() <= 8, "alarms", "name at most 8 alarms")?;
        if let Some(s) = &self.secret {
            ensure(s.len() >= 16, "secret", "use at least 16 characters")?;
            max_len(s, 256, "secret")?;
        }
        Ok(())
    }
}

impl AlarmReceiverSpec {
    /// Whether this receiver wants `alarm` by its own filters (who may see it is decided apart).
    pub fn wants(&self, alarm: &AlarmSpec) -> bool {
        (self.alarms.is_empty() || self.alarms.contains(&alarm.alertname))
            && self.min_severity.is_none_or(|m| alarm.severity >= m)
            && self.app_id.is_none_or(|a| alarm.app_id == Some(a))
    }
}

/// Thresholds on instances' resource use that raise `CpuHigh` and `MemoryHigh` when passed
/// for `forSeconds`. An organization's policy covers its instances (or one app's); the
/// operator's (no organization) covers every instance and alarms the operator only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertPolicySpec {
    /// Only this app's instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uid>,
    /// CPU use, in percent of the flavor's vCPUs, from which `CpuHigh` is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<u32>,
    /// Memory use, in percent of the instance's limit, from which `MemoryHigh` is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<u32>,
    /// How long the threshold must be passed before the alarm fires (default 30, at most 3600).
    #[serde(default = "default_for_seconds")]
    pub for_seconds: u32,
    /// The alarms' severity (default `warning`).
    #[serde(default)]
    pub severity: AlarmSeverity,
    /// Said in the alarm's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_for_seconds() -> u32 {
    30
}

impl Validate for AlertPolicySpec {
    fn validate(&self) -> Result<(), FieldError> {
        ensure(self.cpu_percent.is_some() || self.memory_percent.is_some(), "cpuPercent", "give cpuPercent, memoryPercent or both")?;
        ensure(self.cpu_percent.is_none_or(|p| (1..=100).contains(&p)), "cpuPercent", "must be 1 to 100")?;
        ensure(self.memory_percent.is_none_or(|p| (1..=100).contains(&p)), "memoryPercent", "must be 1 to 100")?;
        ensure(self.for_seconds <= 3600, "forSeconds", "must be at most 3600")?;
        if let Some(d) = &self.description {
            max_len(d, 512, "description")?;
        }
        Ok(())
    }
}

impl AlertPolicySpec {
    /// The threshold alarms an instance's use raises under this policy (shares are 0..1).
    pub fn passed(&self, cpu_share: f64, memory_share: f64) -> Vec<(AlarmName, String)> {
        let mut out = Vec::new();
        if let Some(p) = self.cpu_percent {
            if cpu_share * 100.0 >= f64::from(p) {
                out.push((AlarmName::CpuHigh, format!("CPU at {:.0}% of the flavor's vCPUs (threshold {p}%)", cpu_share * 100.0)));
            }
        }
        if let Some(p) = self.memory_percent {
            if memory_share * 100.0 >= f64::from(p) {
                out.push((AlarmName::MemoryHigh, format!("memory at {:.0}% of the limit (threshold {p}%)", memory_share * 100.0)));
            }
        }
        out
    }
}

/// One alarm, stored while it fires and for a while after (kind `Alarm`, named by its
/// fingerprint so a condition that holds again raises the same alarm, not a second one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmSpec {
    /// What it is about.
    pub alertname: AlarmName,
    /// How urgent.
    pub severity: AlarmSeverity,
    /// `AppInstance` or `Cloudlet`.
    pub object_kind: Kind,
    /// The object's uid.
    pub object_id: Uid,
    /// The object's name.
    pub object_name: String,
    /// The instance's app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uid>,
    /// The instance's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<Uid>,
    /// The cloudlet (shown to the operator only).
    pub cloudlet: String,
    /// The alert policy that raised it (thresholds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Uid>,
    /// For the operator only: a cloudlet, or a threshold of the operator's own policy.
    #[serde(default)]
    pub operator_only: bool,
    /// What is wrong, in a sentence.
    pub summary: String,
    /// When the condition was first seen (this time round).
    pub starts_at: DateTime<Utc>,
}

/// What became of an alarm since it was raised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmObserved {
    /// Firing or resolved.
    pub state: AlarmState,
    /// When it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// What each receiver (by uid) was last told.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delivered: BTreeMap<Uid, AlarmState>,
}

/// The fingerprint of the alarm `name` on object `object` (and `policy`, for thresholds):
/// stable, so the same condition is the same alarm across restarts, and a valid object name.
pub fn fingerprint(name: AlarmName, object: Uid, policy: Option<Uid>) -> String {
    let key = format!("{}/{object}/{}", name.as_str(), policy.map(|p| p.to_string()).unwrap_or_default());
    format!("alarm-{:016x}", crate::ids::stable_hash(&key))
}

/// The alarm an instance's status raises, with its summary: `InstanceDown` when it failed or
/// its container ended (until it runs again). An instance on its way out raises none.
pub fn instance_down(status: &Status, deleting: bool) -> Option<String> {
    if deleting {
        return None;
    }
    if status.state == ObjState::Failed {
        return Some(status.message.clone().unwrap_or_else(|| "the instance failed".into()));
    }
    let exited = status.conditions.iter().find(|c| c.kind == "ContainerRunning" && !c.status && matches!(c.reason.as_str(), "Exited" | "OOMKilled"));
    exited.map(|c| status.message.clone().unwrap_or_else(|| format!("the container ended ({})", c.reason)))
}

/// The alarm a cloudlet's status raises: `CloudletDown` while its runtime does not answer.
pub fn cloudlet_down(status: &Status) -> Option<String> {
    let unreachable = status.conditions.iter().any(|c| c.kind == "RuntimeReachable" && !c.status);
    (status.state == ObjState::Failed || unreachable).then(|| status.message.clone().unwrap_or_else(|| "the cloudlet's runtime does not answer".into()))
}

/// One alert of a webhook message (Alertmanager's `alerts[]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: AlarmState,
    /// `alertname`, `severity`, `organization`, `app_id`, `instance`, `zone`, `cloudlet`
    /// (the operator's receivers only), `policy`.
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`.
    pub annotations: BTreeMap<String, String>,
    /// When it began (RFC 3339).
    pub starts_at: DateTime<Utc>,
    /// When it ended; Alertmanager's zero time while firing.
    pub ends_at: String,
    /// Where the platform shows it.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// The alarm's stable id.
    pub fingerprint: String,
}

/// The body POSTed to a receiver: Alertmanager's webhook message, version 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    /// Always `4`.
    pub version: String,
    /// Identifies the group (one alarm per message here).
    pub group_key: String,
    /// Alerts left out (always 0).
    pub truncated_alerts: u32,
    /// `firing` or `resolved`.
    pub status: AlarmState,
    /// The receiver's name.
    pub receiver: String,
    /// Labels the group is keyed by (`alertname`).
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has.
    pub common_annotations: BTreeMap<String, String>,
    /// The platform's URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// A receiver as answered: its secret never, only whether it has one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmReceiverView {
    /// Id (for update, test and delete).
    pub id: Uid,
    /// Name.
    pub name: Name,
    /// Owner; none for the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// What it receives and where (without `secret`).
    pub spec: AlarmReceiverSpec,
    /// Whether deliveries are signed.
    pub has_secret: bool,
    /// The last delivery attempt since the platform started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<Delivery>,
}

/// An alarm as answered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmView {
    /// Fingerprint: stable for the same condition on the same object.
    pub fingerprint: String,
    /// Firing or resolved.
    pub state: AlarmState,
    /// When it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Owner of the instance (none for a cloudlet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// The alarm (`cloudlet` is `hidden` for developers).
    #[serde(flatten)]
    pub spec: AlarmSpec,
    /// Receivers (ids) told of its current state.
    pub delivered_to: Vec<Uid>,
}

impl AlarmView {
    /// When it last changed (raised or resolved), to list the newest first.
    pub fn last_change(&self) -> DateTime<Utc> {
        self.ends_at.unwrap_or(self.spec.starts_at).max(self.spec.starts_at)
    }
}

/// Alertmanager's "not ended" time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_down_on_failure_or_exit_only() {
        let mut s = Status::default();
        assert_eq!(instance_down(&s, false), None, "a new instance is not down");
        s.set_condition("ContainerRunning", false, "Creating");
        assert_eq!(instance_down(&s, false), None, "a container not started yet is not down");
        s.set_condition("ContainerRunning", false, "Exited");
        s.message = Some("the container exited with 137".into());
        assert_eq!(instance_down(&s, false).as_deref(), Some("the container exited with 137"));
        assert_eq!(instance_down(&s, true), None, "an instance being deleted is not down");
        s.set_condition("ContainerRunning", true, "");
        assert_eq!(instance_down(&s, false), None);
        s.state = ObjState::Failed;
        s.message = Some("image not found".into());
        assert_eq!(instance_down(&s, false).as_deref(), Some("image not found"));
    }

    #[test]
    fn cloudlet_down_when_unreachable() {
        let mut s = Status { state: ObjState::Ready, ..Status::default() };
        s.set_condition("RuntimeReachable", true, "");
        assert_eq!(cloudlet_down(&s), None);
        s.set_condition("RuntimeReachable", false, "Unavailable");
        assert!(cloudlet_down(&s).is_some());
    }

    #[test]
    fn fingerprints_are_stable_names_and_differ_by_identity() {
        let u = Uid::random();
        let a = fingerprint(AlarmName::InstanceDown, u, None);
        assert_eq!(a, fingerprint(AlarmName::InstanceDown, u, None));
        assert_ne!(a, fingerprint(AlarmName::CpuHigh, u, None));
        assert_ne!(fingerprint(AlarmName::CpuHigh, u, Some(Uid::random())), fingerprint(AlarmName::CpuHigh, u, Some(Uid::random())));
        assert!(crate::Name::new(a).is_ok());
    }

    #[test]
    fn policies_and_receivers() {
        let p = AlertPolicySpec { app_id: None, cpu_percent: Some(50), memory_percent: None, for_seconds: 0, severity: AlarmSeverity::Critical, description: None };
        assert!(p.validate().is_ok());
        assert_eq!(p.passed(0.49, 1.0), vec![]);
        assert_eq!(p.passed(0.5, 1.0)[0].0, AlarmName::CpuHigh);
        let none = AlertPolicySpec { cpu_percent: None, ..p.clone() };
        assert_eq!(none.validate().unwrap_err().field, "cpuPercent");
        let over = AlertPolicySpec { memory_percent: Some(101), ..p.clone() };
        assert_eq!(over.validate().unwrap_err().field, "memoryPercent");

        let alarm = AlarmSpec {
            alertname: AlarmName::InstanceDown,
            severity: AlarmSeverity::Critical,
            object_kind: Kind::AppInstance,
            object_id: Uid::random(),
            object_name: "i".into(),
            app_id: Some(Uid::random()),
            zone_id: None,
            cloudlet: "c".into(),
            policy: None,
            operator_only: false,
            summary: String::new(),
            starts_at: Utc::now(),
        };
        let r = AlarmReceiverSpec { url: "http://127.0.0.1:1/x".into(), alarms: vec![], min_severity: None, app_id: None, secret: None };
        assert!(r.wants(&alarm));
        assert!(!AlarmReceiverSpec { alarms: vec![AlarmName::CpuHigh], ..r.clone() }.wants(&alarm));
        assert!(AlarmReceiverSpec { min_severity: Some(AlarmSeverity::Critical), ..r.clone() }.wants(&alarm));
        assert!(!AlarmReceiverSpec { app_id: Some(Uid::random()), ..r.clone() }.wants(&alarm));
        assert_eq!(AlarmReceiverSpec { url: "ftp://x".into(), ..r.clone() }.validate().unwrap_err().field, "url");
        assert_eq!(AlarmReceiverSpec { secret: Some("short".into()), ..r }.validate().unwrap_err().field, "secret");
    }
}
