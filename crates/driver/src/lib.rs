//! Southbound infrastructure drivers. Controllers speak only [`Driver`]; each cloudlet's
//! `platformType` picks the implementation. The first is [`docker::DockerDriver`], over the Docker
//! Engine API, which Docker and Podman both serve.
//! [`postgres`] provisions the `postgresql` platform service: a database and login role per
//! app instance on an operator's PostgreSQL server.

pub mod docker;
pub mod postgres;
mod registry;
pub mod sim;

pub use registry::Drivers;

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Label every managed container carries, with the value `true`: what GC and adoption look for.
pub const LABEL_MANAGED: &str = "op.managed";
/// Label carrying the app instance uid the container belongs to.
pub const LABEL_INSTANCE: &str = "op.instance";
/// Label carrying the id of the platform (data directory) that made the container, so several
/// platforms can share one runtime and each collects only its own garbage.
pub const LABEL_PLATFORM: &str = "op.platform";
/// Label carrying the uid of the cloudlet whose connectivity probe the container is.
pub const LABEL_PROBE: &str = "op.probe";
/// Label carrying the owning organization.
pub const LABEL_ORG: &str = "op.org";

/// Transport of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A container port to publish on the cloudlet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// Port inside the container.
    pub container_port: u16,
    /// Transport.
    pub protocol: PortProtocol,
    /// Fixed host port, or `None` for one the runtime picks.
    pub host_port: Option<u16>,
}

/// What to run. `name` is deterministic per app instance, so a second create after a crash
/// fails with [`DriverError::NameInUse`] instead of making a duplicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Unique container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Environment, `KEY=value` pairs.
    pub env: BTreeMap<String, String>,
    /// Ports to publish.
    pub ports: Vec<PortSpec>,
    /// Host address to publish on, e.g. `127.0.0.1`.
    pub host_ip: String,
    /// CPU limit in millicpus (0 = none).
    pub millicpus: u64,
    /// Memory limit in bytes (0 = none).
    pub memory_bytes: u64,
    /// Labels, including [`LABEL_MANAGED`] and [`LABEL_INSTANCE`].
    pub labels: BTreeMap<String, String>,
    /// The network to join instead of the runtime's default (a cluster's), with the names
    /// the container answers to on it; its ports are then not published.
    pub network: Option<NetworkAttachment>,
}

/// A network a container joins and the names it is known by there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// The network.
    pub name: String,
    /// DNS names of the container on it.
    pub aliases: Vec<String>,
}

/// Coarse container state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Stopped or exited.
    Exited,
    /// Anything else (paused, restarting, dead...).
    Other,
}

/// A published port as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    /// Port inside the container.
    pub container_port: u16,
    /// Host address.
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
}

/// What the runtime says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Runtime id.
    pub id: String,
    /// Name (without a leading `/`).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: ContainerState,
    /// Exit code when exited.
    pub exit_code: Option<i64>,
    /// Published ports.
    pub ports: Vec<PublishedPort>,
    /// The container's address on its network (where other containers reach it), when it has one.
    pub address: Option<String>,
    /// Its address on each network it is on, by network name (inspect only; empty in lists).
    pub networks: BTreeMap<String, String>,
    /// The file of its network namespace, for a runtime on the platform's own host (inspect
    /// only): a point of presence's ingress enters it to reach the container over the
    /// namespace's own loopback instead of through the published port's bridge and NAT.
    pub netns: Option<String>,
    /// When the container last started and, once it stopped, when it finished (RFC 3339, as
    /// the runtime says), for the debug view; `None` when the runtime did not say (lists).
    pub started_at: Option<String>,
    /// When the container last stopped (RFC 3339), if it did.
    pub finished_at: Option<String>,
    /// The kernel killed the container for exceeding its memory limit: the first thing a
    /// developer wants to know about an exit.
    pub oom_killed: bool,
    /// The runtime's own error for the container (a failed start), if any.
    pub error: Option<String>,
}

/// A stream of bytes a container wrote (its logs), ending when the container's output ends.
pub type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, DriverError>> + Send>>;

/// What to run inside a running container ([`Driver::exec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments (no shell is implied).
    pub cmd: Vec<String>,
    /// Allocate a terminal: output arrives as one stream, and the terminal can be resized.
    pub tty: bool,
}

/// One chunk of an exec's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecOutput {
    /// Written to standard output (everything, with a terminal).
    Stdout(Vec<u8>),
    /// Written to standard error.
    Stderr(Vec<u8>),
}

/// A running exec: its output, its input, and its runtime id to ask for the exit code once
/// the output has ended.
pub struct ExecSession {
    /// Runtime id of the exec ([`Driver::exec_exit_code`], [`Driver::exec_resize`]).
    pub id: String,
    /// Output until the process ends.
    pub output: std::pin::Pin<Box<dyn futures::Stream<Item = Result<ExecOutput, DriverError>> + Send>>,
    /// Standard input of the process; shutting it down sends end-of-file.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// A container's resource counters at one moment. Counters (CPU time, bytes) only grow; the
/// caller turns two readings into rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time the container used, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
    /// Memory limit in bytes (the host's memory when unlimited).
    pub memory_limit_bytes: u64,
    /// Bytes received on all its interfaces.
    pub net_rx_bytes: u64,
    /// Bytes sent on all its interfaces.
    pub net_tx_bytes: u64,
    /// Bytes read from block devices.
    pub disk_read_bytes: u64,
    /// Bytes written to block devices.
    pub disk_write_bytes: u64,
    /// Processes (tasks) in the container.
    pub pids: u64,
}

/// Driver errors. Each says whether retrying can help, so controllers pick their backoff
/// without knowing the runtime.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The runtime cannot be reached (down, socket missing). Retry.
    #[error("container runtime unavailable: {0}")]
    Unavailable(String),
    /// No such container.
    #[error("container not found: {0}")]
    NotFound(String),
    /// A container with this name already exists (adopt it).
    #[error("container name already in use: {0}")]
    NameInUse(String),
    /// The image is not present on the cloudlet and cannot be pulled.
    #[error("image not found: {0}")]
    ImageNotFound(String),
    /// A host port is already taken.
    #[error("host port {0} is already in use")]
    PortInUse(u16),
    /// The runtime refused the request for another reason.
    #[error("runtime error: {0}")]
    Runtime(String),
}

impl DriverError {
    /// Whether retrying the same call later may succeed without anyone changing anything.
    pub fn retryable(&self) -> bool {
        matches!(self, DriverError::Unavailable(_) | DriverError::Runtime(_))
    }
}

/// Credentials a runtime presents to a registry (Docker's `X-Registry-Auth`).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password, API key or token.
    pub password: String,
    /// The registry (`host:port`).
    pub server: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth").field("username", &self.username).field("server", &self.server).finish_non_exhaustive()
    }
}

/// An infrastructure driver for one cloudlet. Every method is idempotent where the name says
/// so, and safe to call again after a crash.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Checks that the runtime answers.
    async fn ping(&self) -> Result<(), DriverError>;
    /// Whether `image` is present on the cloudlet.
    async fn image_exists(&self, image: &str) -> Result<bool, DriverError>;
    /// Creates (does not start) a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, DriverError>;
    /// Starts a container; starting a running one is not an error.
    async fn start(&self, id: &str) -> Result<(), DriverError>;
    /// Stops a running container: SIGTERM, then SIGKILL after `grace`. Stopping a stopped or
    /// missing container is not an error.
    async fn stop(&self, id: &str, grace: std::time::Duration) -> Result<(), DriverError>;
    /// Removes a container (killing it if still running); removing a missing one is not an error.
    async fn remove(&self, id: &str) -> Result<(), DriverError>;
    /// Inspects a container by id or name; `None` if it does not exist.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DriverError>;
    /// Lists containers (running or not) carrying all of `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DriverError>;
    /// The last `tail` lines of a container's stdout and stderr and, with `follow`, what it
    /// writes from then on, until it stops or the stream is dropped. A missing container is
    /// [`DriverError::NotFound`] here, before any byte.
    async fn logs(&self, id: &str, tail: usize, follow: bool) -> Result<ByteStream, DriverError>;
    /// Starts `req` inside the running container `id` with its input and output attached
    /// (terminal access). A container that is not running is [`DriverError::NotFound`] when
    /// missing, [`DriverError::Runtime`] when stopped.
    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecSession, DriverError>;
    /// The exit code of exec `exec_id`, `None` while it still runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, DriverError>;
    /// Resizes the terminal of exec `exec_id` (one started with `tty`).
    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), DriverError>;
    /// The container's resource counters now.
    async fn stats(&self, id: &str) -> Result<ContainerStats, DriverError>;
    /// The image as a `docker save` archive (a tar with `manifest.json`, the config and the
    /// layers), so a federation partner can load it into its own runtime: partners cannot pull
    /// from the originating platform's cloudlets, and images may never have been in a registry.
    /// An image the cloudlet does not have is [`DriverError::ImageNotFound`].
    async fn export_image(&self, image: &str) -> Result<Vec<u8>, DriverError>;
    /// Loads an archive made by [`Driver::export_image`] (or `docker save`) into the runtime,
    /// returning the references the runtime reports as loaded (`name:tag`, or `sha256:...` for
    /// an image saved without a tag), so the caller learns which names it can now run or tag.
    /// An archive the runtime cannot read is [`DriverError::Runtime`] with the runtime's message.
    async fn load_image(&self, tar: Vec<u8>) -> Result<Vec<String>, DriverError>;
    /// Gives the image `source` the extra reference `target` (`repo[:tag]`, tag `latest` when
    /// omitted), so a loaded image can run under the name the local platform gives it.
    /// Tagging again with the same target is not an error. A missing `source` is
    /// [`DriverError::ImageNotFound`].
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), DriverError>;
    /// Pulls `image` (`host[:port]/repo:tag`) from its registry into the runtime, logging in
    /// with `auth` when given (the runtime runs the registry's token exchange itself). A
    /// reference the registry does not have, or refuses to the credentials, is
    /// [`DriverError::ImageNotFound`] with the registry's reason.
    async fn pull_image(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), DriverError>;
    /// Removes the name `image` (the image goes with its last name); a missing one is not an
    /// error, one a container still uses is [`DriverError::Runtime`].
    async fn remove_image(&self, image: &str) -> Result<(), DriverError>;
    /// Creates network `name` unless it exists; `internal` networks have no route out of the
    /// runtime. Labels mark it as the platform's. Returns its subnet (CIDR) when the runtime
    /// tells it (a cluster's egress gateway always lets traffic to it through).
    async fn ensure_network(&self, name: &str, internal: bool, labels: &BTreeMap<String, String>) -> Result<Option<String>, DriverError>;
    /// Removes network `name`; a missing one is not an error.
    async fn remove_network(&self, name: &str) -> Result<(), DriverError>;
    /// Connects container `id` to network `network`; already connected is not an error.
    async fn connect_network(&self, network: &str, id: &str) -> Result<(), DriverError>;
    /// Disconnects container `id` from network `network`; not connected is not an error.
    async fn disconnect_network(&self, network: &str, id: &str) -> Result<(), DriverError>;
    /// Whether a published endpoint accepts connections (the app is up). The default connects
    /// over TCP; drivers that start nothing real answer from their model.
    async fn reachable(&self, host: &str, port: u16) -> bool {
        let connect = tokio::net::TcpStream::connect((host, port));
        matches!(tokio::time::timeout(std::time::Duration::from_millis(500), connect).await, Ok(Ok(_)))
    }
}
