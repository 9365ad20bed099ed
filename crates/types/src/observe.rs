//! What developers and operators see of running things: events, an instance's debug view,
//! and the framing of terminal access (exec over WebSocket). Shared by the server and its
//! clients so both sides use the same structs and channel numbers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};
use crate::meta::{Condition, Kind, State as ObjState};

/// The WebSocket subprotocol of exec. Every message is binary; its first byte is the channel
/// and the rest the payload (the framing of Kubernetes' `v5.channel.k8s.io`):
/// - client to platform: [`STDIN`] bytes for the process, [`RESIZE`] `{"cols":80,"rows":24}`,
///   `[CLOSE, STDIN]` to end the process's input (end of file);
/// - platform to client: [`STDOUT`] and [`STDERR`] bytes, then once the process has ended
///   [`STATUS`] `{"exitCode":N}` and a normal close.
///
/// Browsers, which cannot set an `Authorization` header on a WebSocket, offer the token as a
/// second subprotocol `bearer.<token>`.
pub const EXEC_PROTOCOL: &str = "op.exec.v1";
/// Channel: the process's standard input.
pub const STDIN: u8 = 0;
/// Channel: the process's standard output.
pub const STDOUT: u8 = 1;
/// Channel: the process's standard error.
pub const STDERR: u8 = 2;
/// Channel: the process's end, `{"exitCode":N}`.
pub const STATUS: u8 = 3;
/// Channel: a terminal resize, `{"cols":N,"rows":N}`.
pub const RESIZE: u8 = 4;
/// Channel: closes the channel named by the next byte.
pub const CLOSE: u8 = 255;

/// How much an event matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Severity {
    /// Progress: created, ready, a condition now holds.
    Normal,
    /// Something a person may have to look at: a failure, a condition lost, an exit.
    Warning,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When it was seen.
    pub at: chrono::DateTime<chrono::Utc>,
    /// `AppInstance` or `Cloudlet`.
    pub object_kind: Kind,
    /// The object's uid.
    pub object_id: Uid,
    /// The object's name.
    pub object_name: String,
    /// The owning organization (instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// Machine-readable: `Created`, `Ready`, `Failed`, `Deleting`, `Deleted`, or the condition
    /// that turned, e.g. `ContainerRunning`.
    pub reason: String,
    /// For people: what changed, and the controller's message.
    pub message: String,
    /// Normal or Warning.
    pub severity: Severity,
}

/// The container as the runtime reports it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// Runtime id (short).
    pub id: String,
    /// `Created`, `Running`, `Exited` or `Other`.
    pub state: String,
    /// Exit code, once exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// When it last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it last stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Killed for exceeding its memory limit.
    pub oom_killed: bool,
    /// The runtime's error, if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One endpoint's health check, made now from the cloudlet's front-end address to the app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCheck {
    /// The app interface.
    pub interface_id: String,
    /// `host:port` it is published on.
    pub address: String,
    /// Whether it accepted a connection.
    pub reachable: bool,
}

/// An instance's health, container and recent history in one answer: what a developer looks
/// at first when something is wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDebug {
    /// Instance id.
    pub app_instance_id: Uid,
    /// Instance name.
    pub name: String,
    /// The app.
    pub app_id: Uid,
    /// Zone it runs in (uid).
    pub edge_cloud_zone_id: Uid,
    /// Cloudlet (the operator only; developers see zones).
    pub cloudlet: String,
    /// The platform's state of it.
    pub state: ObjState,
    /// Why, when something is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The controller's observations (container running, endpoint reachable, ready).
    pub conditions: Vec<Condition>,
    /// The container, or `null` when there is none (not yet created, or removed).
    pub container: Option<ContainerView>,
    /// Health checks of each published endpoint, made for this answer.
    pub health: Vec<EndpointCheck>,
    /// Recent events of the instance, oldest first.
    pub events: Vec<Event>,
    /// The last lines of its output.
    pub log_tail: Vec<String>,
    /// What could not be asked of the cloudlet's runtime, if anything (the rest still holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_error: Option<String>,
}


/// An instance's (or a group's) state from its resource use: `Exited` when its container is
/// not running, `Stressed` when it uses most of its CPU or memory, else `Healthy`. Ordered
/// from best to worst, so a group's health is its maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub enum Health {
    /// Running within its means.
    #[default]
    Healthy,
    /// Running near its CPU or memory limit.
    Stressed,
    /// Not running.
    Exited,
}

/// Resource amounts: one instance's reading, or a group's sum. Byte counters are totals since
/// the containers started; rates are over the last collection period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU in use, thousandths of a CPU.
    pub cpu_millicores: u64,
    /// vCPUs of the flavors.
    pub vcpus: u32,
    /// Memory in use.
    pub memory_bytes: u64,
    /// Memory limits.
    pub memory_limit_bytes: u64,
    /// Bytes read from disk.
    pub disk_read_bytes: u64,
    /// Bytes written to disk.
    pub disk_write_bytes: u64,
    /// Bytes received.
    pub net_rx_bytes: u64,
    /// Bytes sent.
    pub net_tx_bytes: u64,
    /// Bytes received per second.
    pub net_rx_bytes_per_sec: u64,
    /// Bytes sent per second.
    pub net_tx_bytes_per_sec: u64,
}

impl ResourceAmounts {
    /// CPU use as a share of the flavor's vCPUs (0 when it has none).
    pub fn cpu_share(&self) -> f64 {
        if self.vcpus == 0 {
            0.0
        } else {
            self.cpu_millicores as f64 / 1000.0 / f64::from(self.vcpus)
        }
    }

    /// Memory use as a share of the limit (0 without one).
    pub fn memory_share(&self) -> f64 {
        if self.memory_limit_bytes == 0 {
            0.0
        } else {
            self.memory_bytes as f64 / self.memory_limit_bytes as f64
        }
    }
}

impl std::ops::AddAssign for ResourceAmounts {
    fn add_assign(&mut self, o: Self) {
        self.cpu_millicores += o.cpu_millicores;
        self.vcpus += o.vcpus;
        self.memory_bytes += o.memory_bytes;
        self.memory_limit_bytes += o.memory_limit_bytes;
        self.disk_read_bytes += o.disk_read_bytes;
        self.disk_write_bytes += o.disk_write_bytes;
        self.net_rx_bytes += o.net_rx_bytes;
        self.net_tx_bytes += o.net_tx_bytes;
        self.net_rx_bytes_per_sec += o.net_rx_bytes_per_sec;
        self.net_tx_bytes_per_sec += o.net_tx_bytes_per_sec;
    }
}

/// One instance's latest resource reading.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceUsage {
    /// Instance id.
    pub app_instance_id: Uid,
    /// Instance name.
    pub name: String,
    /// Owning organization.
    pub organization: Name,
    /// The app.
    pub app_id: Uid,
    /// Cloudlet (the operator only).
    pub cloudlet: String,
    /// State from the numbers.
    pub health: Health,
    /// What it uses.
    #[serde(flatten)]
    pub amounts: ResourceAmounts,
    /// When it was read.
    pub sampled_at: chrono::DateTime<chrono::Utc>,
}

/// Resource use summed over a group of instances (an app, a tenant, a cloudlet).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    /// What the group is: the app id, the organization or the cloudlet.
    pub key: String,
    /// Its worst instance's health.
    pub health: Health,
    /// Instances in the group.
    pub instances: u32,
    /// Of which healthy.
    pub healthy: u32,
    /// Of which stressed.
    pub stressed: u32,
    /// Of which exited.
    pub exited: u32,
    /// What they use together.
    #[serde(flatten)]
    pub amounts: ResourceAmounts,
}

/// What a set of device probes says (the QoE view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QoeSummary {
    /// Probes in the last hour.
    pub probes: usize,
    /// Mean measured latency, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Worst, ms.
    pub max_ms: f64,
    /// Mean latency the network expected for the same paths, ms (when it said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_mean_ms: Option<f64>,
}

/// QoE of one app in one zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneQoe {
    /// The app (absent in the operator's per-zone totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uid>,
    /// The zone.
    pub edge_cloud_zone_id: Uid,
    /// Its name.
    pub edge_cloud_zone_name: String,
    /// The figures.
    #[serde(flatten)]
    pub summary: QoeSummary,
}

