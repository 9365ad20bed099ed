//! The `docker` driver: the Docker Engine API, as served by Docker and by Podman's compatible
//! service, through bollard.
//!
//! What the runtimes answer, and how it maps to [`DriverError`] (checked against Podman 4.3's
//! compat API, which reports API version 1.41, and Docker's documented behaviour):
//!
//! | Case | Podman 4.3 | Docker | Maps to |
//! |---|---|---|---|
//! | runtime down, socket missing, refused | connection error | connection error | [`DriverError::Unavailable`] |
//! | create, image missing | 404 `no such image: ...: image not known` | 404 `No such image: ...` | [`DriverError::ImageNotFound`] |
//! | create, name taken | **500** `... the container name "x" is already in use by ...` | 409 `Conflict. The container name "/x" is already in use ...` | [`DriverError::NameInUse`] |
//! | start, host port taken | 500 `cannot listen on the TCP port: listen tcp4 127.0.0.1:P: bind: address already in use` | 500 `... Bind for 127.0.0.1:P failed: port is already allocated` | [`DriverError::PortInUse`]`(P)` |
//! | start, already running | 304 | 304 | `Ok(())` |
//! | any call, no such container | 404 `no container with name or ID "x" found: no such container` | 404 `No such container: x` | [`DriverError::NotFound`] (`inspect`: `None`, `remove`: `Ok`) |
//! | export, image missing | 404 `failed to find image x: x: image not known` | an error status (text varies by version) | [`DriverError::ImageNotFound`] (any other export error is followed by an inspect, and a missing image wins) |
//! | load, archive unreadable | 500 `failed to load image: payload does not match any of the supported image formats: ...` | 500, or an `error` in the progress stream | [`DriverError::Runtime`] with the message |
//! | load, success (`quiet`) | `{"stream":"Loaded image: a:1,b:2"}` (one message, refs joined by `,`; `sha256:<id>` for an untagged archive) | `{"stream":"Loaded image: a:1\n"}` per ref, `Loaded image ID: sha256:...` when untagged | the refs |
//! | tag, source missing | 404 | 404 | [`DriverError::ImageNotFound`] |
//! | limits, cgroup controller missing | error mentioning cgroups | warning `... Limitation discarded.` | [`DriverError::Runtime`] naming the cause; warnings are logged |
//!
//! Host ports: a [`crate::PortSpec`] without a host port gets one from [`HOST_PORTS`] when the
//! runtime runs on this host (a unix socket or a loopback address): the driver walks the range
//! from a random start and skips ports something already listens on. The runtime's own pick
//! would come from the kernel's ephemeral range, where any listener bound to port 0 (another
//! service, a test harness) or any outgoing connection can later be given a port a container
//! publishes, or one whose forwarding rule the runtime left behind (Podman's netavark leaks the
//! DNAT rules of some removed containers): its loopback connections then go to the container.
//! For a remote runtime the driver cannot see what is free there, so it sends an empty
//! `HostPort` and the runtime picks one (Podman at create, Docker at start). [`Driver::inspect`]
//! reports the port either way.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::{
    Config, CreateContainerOptions, ListContainersOptions, LogOutput, LogsOptions, RemoveContainerOptions,
    StartContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::errors::Error as BollardError;
use bollard::image::{ImportImageOptions, TagImageOptions};
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, HostConfig, PortBinding, PortMap,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::StreamExt;
use tracing::{debug, warn};

use crate::{
    ByteStream, ContainerInfo, ContainerSpec, ContainerState, ContainerStats, Driver, DriverError, ExecOutput, ExecRequest,
    ExecSession, PortProtocol, PublishedPort,
};

/// Seconds one runtime request may take before it counts as unavailable.
const TIMEOUT_SECS: u64 = 120;

/// How long [`Driver::ping`] waits: a health check must not hang for [`TIMEOUT_SECS`].
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Host ports the driver gives containers of a runtime on this host: below the kernel's
/// ephemeral range (Linux: 32768-60999), so that no port the kernel hands out is a container's.
pub const HOST_PORTS: RangeInclusive<u16> = 20000..=32767;

/// A Docker Engine API client for one cloudlet: a Docker daemon or Podman's Docker-compatible
/// service (`podman system service`).
///
/// The API version is negotiated on the first call that reaches the runtime: bollard speaks
/// 1.47 by default, and the driver steps down to what the runtime reports (Podman 4.3: 1.41),
/// so older daemons do not refuse requests as "client version too new".
pub struct DockerDriver {
    docker: Docker,
    endpoint: String,
    negotiated: AtomicBool,
    /// The next candidate in [`HOST_PORTS`] (an offset, wrapped); `None` for a remote runtime.
    next_port: Option<AtomicU32>,
}

impl std::fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDriver").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl DockerDriver {
    /// Connects to `endpoint`: `unix:///path/to.sock`, `tcp://host:port` or `http://host:port`
    /// (plain HTTP; `tcp://` is taken as HTTP, as the Docker CLI does without TLS).
    ///
    /// Nothing is sent yet. A unix socket that does not exist is reported here as
    /// [`DriverError::Unavailable`] (retry once the runtime is up); a runtime that is down later
    /// makes each call fail with [`DriverError::Unavailable`]. An endpoint that is not one of
    /// the forms above is a [`DriverError::Runtime`] error.
    pub fn connect(endpoint: &str) -> Result<Self, DriverError> {
        let endpoint = endpoint.trim();
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(DriverError::Runtime(format!("endpoint '{endpoint}' names no socket path")));
            }
            Docker::connect_with_unix(path, TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else if let Some(addr) = endpoint.strip_prefix("tcp://").or_else(|| endpoint.strip_prefix("http://")) {
            if addr.trim_end_matches('/').is_empty() {
                return Err(DriverError::Runtime(format!("endpoint '{endpoint}' names no host")));
            }
            Docker::connect_with_http(
                &format!("http://{}", addr.trim_end_matches('/')),
                TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            )
        } else {
            return Err(DriverError::Runtime(format!(
                "unsupported driver endpoint '{endpoint}': use unix:///path, tcp://host:port or http://host:port"
            )));
        };
        let docker = docker.map_err(|e| DriverError::Unavailable(format!("{endpoint}: {e}")))?;
        // A random start, so that several platforms sharing a runtime rarely try the same port.
        let start = std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u32;
        let next_port = runtime_is_local(endpoint).then(|| AtomicU32::new(start));
        Ok(Self { docker, endpoint: endpoint.to_string(), negotiated: AtomicBool::new(false), next_port })
    }

    /// The runtime runs on the platform's own host (the host ports are picked only then).
    fn on_this_host(&self) -> bool {
        self.next_port.is_some()
    }

    /// A port of [`HOST_PORTS`] that nothing on this host listens on at `ip` (empty: every
    /// address), for a runtime on this host; `None` lets the runtime pick. A port is tried once
    /// per round of the range, so a port freed by one container is the last to be given again.
    fn pick_host_port(&self, ip: &str, protocol: PortProtocol) -> Option<u16> {
        let next = self.next_port.as_ref()?;
        let ip: std::net::IpAddr = if ip.is_empty() { std::net::Ipv4Addr::UNSPECIFIED.into() } else { ip.parse().ok()? };
        let span = u32::from(HOST_PORTS.end() - HOST_PORTS.start()) + 1;
        (0..256).find_map(|_| {
            let port = HOST_PORTS.start() + u16::try_from(next.fetch_add(1, Ordering::Relaxed) % span).ok()?;
            let addr = std::net::SocketAddr::new(ip, port);
            let free = match protocol {
                PortProtocol::Tcp => std::net::TcpListener::bind(addr).is_ok(),
                PortProtocol::Udp => std::net::UdpSocket::bind(addr).is_ok(),
            };
            free.then_some(port)
        })
    }

    /// The endpoint this driver talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The client, after negotiating the API version once. Concurrent first calls may both
    /// negotiate; that is harmless (the version is shared and only ever lowered).
    async fn client(&self) -> Result<&Docker, DriverError> {
        if !self.negotiated.load(Ordering::Acquire) {
            match self.docker.clone().negotiate_version().await {
                Ok(d) => {
                    let v = d.client_version();
                    debug!(endpoint = %self.endpoint, api = %format!("{}.{}", v.major_version, v.minor_version), "negotiated API version");
                    self.negotiated.store(true, Ordering::Release);
                }
                Err(e) if is_connection_error(&e) => return Err(self.unavailable(e)),
                Err(e) => {
                    // The runtime answered but not with a usable version: keep the default.
                    warn!(endpoint = %self.endpoint, error = %e, "API version negotiation failed; using the client default");
                    self.negotiated.store(true, Ordering::Release);
                }
            }
        }
        Ok(&self.docker)
    }

    /// The gateway address of the runtime's default bridge network (`podman`, else Docker's
    /// `bridge`): where containers reach the host, so the platform can listen there for its
    /// instances' calls. `None` when neither network has an IPv4 gateway.
    pub async fn bridge_gateway(&self) -> Result<Option<std::net::IpAddr>, DriverError> {
        let docker = self.client().await?;
        for name in ["podman", "bridge"] {
            match docker.inspect_network(name, None::<bollard::network::InspectNetworkOptions<String>>).await {
                Ok(n) => {
                    let gw = n.ipam.and_then(|i| i.config).into_iter().flatten().filter_map(|c| c.gateway).find_map(|g| g.parse::<std::net::Ipv4Addr>().ok());
                    if let Some(g) = gw {
                        return Ok(Some(g.into()));
                    }
                }
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(self.map(e)),
            }
        }
        Ok(None)
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> DriverError {
        DriverError::Unavailable(format!("{}: {e}", self.endpoint))
    }

    /// Maps bollard errors that carry no call-specific meaning.
    fn map(&self, e: BollardError) -> DriverError {
        match e {
            BollardError::DockerResponseServerError { status_code: 404, message } => DriverError::NotFound(message),
            BollardError::DockerResponseServerError { status_code, message } => {
                if let Some(p) = port_in_use(&message) {
                    DriverError::PortInUse(p)
                } else if let Some(hint) = cgroup_hint(&message) {
                    DriverError::Runtime(hint)
                } else {
                    DriverError::Runtime(format!("{status_code}: {message}"))
                }
            }
            e if is_connection_error(&e) => self.unavailable(e),
            other => DriverError::Runtime(other.to_string()),
        }
    }

    /// Finds a container by id or name through the list API, for when inspect's answer cannot
    /// be decoded (Podman reports transitional states such as `stopping` that the Docker API
    /// schema does not have).
    async fn inspect_by_listing(&self, id: &str) -> Result<Option<ContainerInfo>, DriverError> {
        let docker = self.client().await?;
        for key in ["id", "name"] {
            let filters = HashMap::from([(key.to_string(), vec![id.to_string()])]);
            let opts = ListContainersOptions { all: true, filters, ..Default::default() };
            let found = docker.list_containers(Some(opts)).await.map_err(|e| self.map(e))?;
            let hit = found.into_iter().find(|s| {
                s.id.as_deref().is_some_and(|i| i.starts_with(id))
                    || s.names.iter().flatten().any(|n| n.trim_start_matches('/') == id.trim_start_matches('/'))
            });
            if let Some(s) = hit {
                return Ok(Some(summary_info(s)));
            }
        }
        Ok(None)
    }

    /// The first fixed host port `id` binds, to name the port of a bind failure whose message
    /// did not say which.
    async fn fixed_host_port(&self, id: &str) -> Option<u16> {
        let r = self.docker.inspect_container(id, None).await.ok()?;
        let bindings = r.host_config?.port_bindings?;
        bindings.into_values().flatten().flatten().find_map(|b| parse_port(b.host_port.as_deref()))
    }
}

/// Whether the runtime at `endpoint` shares this host's ports: a unix socket, or a TCP
/// endpoint on a loopback address.
fn runtime_is_local(endpoint: &str) -> bool {
    if endpoint.starts_with("unix://") {
        return true;
    }
    let addr = endpoint.strip_prefix("tcp://").or_else(|| endpoint.strip_prefix("http://")).unwrap_or(endpoint);
    let host = addr.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `e` means the runtime could not be reached (as opposed to an answer).
fn is_connection_error(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)
            | BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
    )
}

/// Whether `e` is an answer the client could not decode.
fn is_decode_error(e: &BollardError) -> bool {
    matches!(e, BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. })
}

/// A non-zero port number from a runtime's string form (`""` and `"0"` mean none).
fn parse_port(s: Option<&str>) -> Option<u16> {
    s.and_then(|p| p.trim().parse::<u16>().ok()).filter(|p| *p != 0)
}

/// Published ports of a runtime port map (`"8080/tcp" -> [{HostIp, HostPort}]`), skipping
/// bindings without a host port yet.
fn published(map: &PortMap) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    for (key, binds) in map {
        let Some(container_port) = key.split('/').next().and_then(|p| p.parse().ok()) else { continue };
        for b in binds.iter().flatten() {
            if let Some(host_port) = parse_port(b.host_port.as_deref()) {
                let host_ip = b.host_ip.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
                ports.push(PublishedPort { container_port, host_ip, host_port });
            }
        }
    }
    normalize(ports)
}

fn normalize(mut ports: Vec<PublishedPort>) -> Vec<PublishedPort> {
    ports.sort_by(|a, b| (a.container_port, a.host_port, &a.host_ip).cmp(&(b.container_port, b.host_port, &b.host_ip)));
    ports.dedup();
    ports
}

/// The driver's view of an inspect answer. Ports come from what the runtime publishes
/// (`NetworkSettings.Ports`), or, for a container that publishes nothing right now (Docker
/// when not running), from the fixed host ports it asked for (`HostConfig.PortBindings`).
fn inspect_info(r: ContainerInspectResponse) -> ContainerInfo {
    let labels: BTreeMap<String, String> =
        r.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default().into_iter().collect();
    let state = match r.state.as_ref().and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        _ => ContainerState::Other,
    };
    let exit_code = if state == ContainerState::Exited { r.state.as_ref().and_then(|s| s.exit_code) } else { None };
    let mut ports = r.network_settings.as_ref().and_then(|n| n.ports.as_ref()).map(published).unwrap_or_default();
    if ports.is_empty() {
        ports = r.host_config.as_ref().and_then(|h| h.port_bindings.as_ref()).map(published).unwrap_or_default();
    }
    let address = r.network_settings.as_ref().and_then(|n| {
        n.ip_address
            .clone()
            .filter(|a| !a.is_empty())
            .or_else(|| n.networks.as_ref()?.values().find_map(|e| e.ip_address.clone().filter(|a| !a.is_empty())))
    });
    let networks: BTreeMap<String, String> = r
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|m| m.iter().filter_map(|(k, e)| Some((k.clone(), e.ip_address.clone().filter(|a| !a.is_empty())?))).collect())
        .unwrap_or_default();
    // Runtimes write the zero time for "never".
    let when = |t: Option<&String>| t.filter(|t| !t.is_empty() && !t.starts_with("0001-")).cloned();
    let st = r.state.as_ref();
    let netns = r.network_settings.as_ref().and_then(|n| n.sandbox_key.clone()).filter(|k| !k.is_empty());
    ContainerInfo {
        networks,
        netns,
        id: r.id.unwrap_or_default(),
        name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
        labels,
        state,
        exit_code,
        ports,
        address,
        started_at: when(st.and_then(|s| s.started_at.as_ref())),
        finished_at: when(st.and_then(|s| s.finished_at.as_ref())),
        oom_killed: st.and_then(|s| s.oom_killed).unwrap_or(false),
        error: st.and_then(|s| s.error.clone()).filter(|e| !e.is_empty()),
    }
}

/// The driver's view of a list entry. The exit code comes from the status text
/// (`Exited (137) 2 seconds ago`), which Docker and Podman both write that way.
fn summary_info(s: ContainerSummary) -> ContainerInfo {
    let state = match s.state.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("running") => ContainerState::Running,
        Some("created" | "configured") => ContainerState::Created,
        Some("exited" | "stopped") => ContainerState::Exited,
        _ => ContainerState::Other,
    };
    let exit_code =
        if state == ContainerState::Exited { s.status.as_deref().and_then(exit_code_of_status) } else { None };
    let ports = s
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let host_port = p.public_port.filter(|h| *h != 0)?;
            let host_ip = p.ip.filter(|h| !h.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
            Some(PublishedPort { container_port: p.private_port, host_ip, host_port })
        })
        .collect();
    let address = s
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref()?.values().find_map(|e| e.ip_address.clone().filter(|a| !a.is_empty())));
    ContainerInfo {
        id: s.id.unwrap_or_default(),
        name: s.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default(),
        labels: s.labels.unwrap_or_default().into_iter().collect(),
        state,
        exit_code,
        ports: normalize(ports),
        address,
        networks: BTreeMap::new(),
        netns: None,
        started_at: None,
        finished_at: None,
        oom_killed: false,
        error: None,
    }
}

/// `137` from `Exited (137) 2 seconds ago`.
fn exit_code_of_status(status: &str) -> Option<i64> {
    let rest = &status[status.find('(')? + 1..];
    rest[..rest.find(')')?].trim().parse().ok()
}

/// Extracts the port from the runtime's "address already in use" / "port is already allocated"
/// messages (Docker and Podman word them differently). `Some(0)` when the message says a port
/// is taken but not which.
fn port_in_use(message: &str) -> Option<u16> {
    let lower = message.to_ascii_lowercase();
    if !(lower.contains("address already in use")
        || lower.contains("already allocated")
        || lower.contains("port is already"))
    {
        return None;
    }
    // The port is the digits after the last ':' of an address like 127.0.0.1:8080 or [::1]:8080.
    let port = lower
        .split(':')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            // An address's port is followed by a separator, not by more of an IPv6 group.
            let next = rest[digits.len()..].chars().next();
            if matches!(next, Some(c) if c.is_ascii_hexdigit() || c == ']') {
                return None;
            }
            digits.parse::<u16>().ok()
        })
        .filter(|p| *p != 0)
        .last();
    Some(port.unwrap_or(0))
}

/// A clear message when the runtime could not apply CPU or memory limits because the cgroup
/// controllers are missing (rootless Podman on cgroup v1, cgroup v2 without delegation, a
/// kernel without CFS quota or memory accounting). The driver never drops limits silently:
/// the controller sees the error.
fn cgroup_hint(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let about_limits = lower.contains("cgroup")
        || lower.contains("cfs")
        || lower.contains("memory.max")
        || lower.contains("memory.limit_in_bytes")
        || lower.contains("cpu.max")
        || lower.contains("nanocpus");
    let failed = lower.contains("not supported")
        || lower.contains("does not support")
        || lower.contains("no such file")
        || lower.contains("permission denied")
        || lower.contains("read-only file system")
        || lower.contains("not available")
        || lower.contains("cannot set")
        || lower.contains("can not be set");
    (about_limits && failed).then(|| {
        format!("the runtime cannot apply CPU/memory limits (cgroup controllers unavailable on the cloudlet host?): {message}")
    })
}

/// The references an answer to `POST /images/load` names, in order, without duplicates.
/// Docker writes one line per image, `Loaded image: name:tag` or `Loaded image ID:
/// sha256:...`; Podman 4.3 writes one message, `Loaded image: a:1,b:2` (all refs joined by
/// commas, no newline), or `Loaded image: sha256:...` for an archive without tags.
fn loaded_refs(messages: &str, refs: &mut Vec<String>) {
    for line in messages.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("Loaded image ID:").or_else(|| line.strip_prefix("Loaded image:")) else {
            continue;
        };
        for r in rest.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if !refs.iter().any(|x| x == r) {
                refs.push(r.to_string());
            }
        }
    }
}

/// `registry/repo:tag` split into the repository and tag the tag API takes (`latest` when
/// none is given). A port in the registry part is not a tag; a digest cannot be a tag target.
fn split_reference(target: &str) -> Result<(&str, &str), DriverError> {
    let target = target.trim();
    if target.is_empty() || target.contains('@') {
        return Err(DriverError::Runtime(format!("'{target}' is not a valid tag target (repo[:tag])")));
    }
    let name_start = target.rfind('/').map_or(0, |i| i + 1);
    match target[name_start..].rfind(':') {
        Some(i) if !target[name_start + i + 1..].is_empty() => Ok((&target[..name_start + i], &target[name_start + i + 1..])),
        Some(_) => Err(DriverError::Runtime(format!("'{target}' has an empty tag"))),
        None => Ok((target, "latest")),
    }
}

/// Podman answers a taken name with 500 instead of Docker's 409.
fn name_in_use(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("name") && lower.contains("already in use") && !lower.contains("address already in use")
}

/// Podman answers 404 `no such image` (Docker: `No such image`) when creating from a missing
/// image; older Podman versions answered 500 `image not known`.
fn image_missing(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("no such image") || lower.contains("image not known")
}

#[async_trait]
impl Driver for DockerDriver {
    /// Pings the runtime (and negotiates the API version), giving up after 10 seconds. Any
    /// failure is [`DriverError::Unavailable`].
    async fn ping(&self) -> Result<(), DriverError> {
        let call = async {
            let docker = self.client().await?;
            docker.ping().await.map(|_| ()).map_err(|e| self.unavailable(e))
        };
        match tokio::time::timeout(PING_TIMEOUT, call).await {
            Ok(r) => r.map_err(|e| match e {
                DriverError::Unavailable(_) => e,
                other => self.unavailable(other),
            }),
            Err(_) => Err(self.unavailable(format!("no answer within {}s", PING_TIMEOUT.as_secs()))),
        }
    }

    /// Inspects the image; a 404 means it is absent.
    async fn image_exists(&self, image: &str) -> Result<bool, DriverError> {
        match self.client().await?.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.map(e)),
        }
    }

    /// Streams `GET /images/{image}/get` into memory (sample images are a few MB). A 404,
    /// Podman's `image not known`, or any other refusal for an image that inspect then does not
    /// find, is [`DriverError::ImageNotFound`] (Docker versions word this differently).
    async fn export_image(&self, image: &str) -> Result<Vec<u8>, DriverError> {
        let docker = self.client().await?;
        let mut stream = docker.export_image(image);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(BollardError::DockerResponseServerError { status_code, message })
                    if status_code == 404 || image_missing(&message) =>
                {
                    return Err(DriverError::ImageNotFound(image.to_string()))
                }
                Err(e @ BollardError::DockerResponseServerError { .. }) => {
                    if matches!(self.image_exists(image).await, Ok(false)) {
                        return Err(DriverError::ImageNotFound(image.to_string()));
                    }
                    return Err(self.map(e));
                }
                Err(e) => return Err(self.map(e)),
            }
        }
        if out.is_empty() {
            return Err(DriverError::Runtime(format!("the runtime exported an empty archive for {image}")));
        }
        Ok(out)
    }

    /// `POST /images/load?quiet=1` with the archive as the body; the refs come from the
    /// `Loaded image...` messages (see [`loaded_refs`] for both runtimes' forms). Errors the
    /// runtime reports, as a status or inside the stream, are [`DriverError::Runtime`] with
    /// its message; so is a success that names no image, since the caller could not use it.
    async fn load_image(&self, tar: Vec<u8>) -> Result<Vec<String>, DriverError> {
        let docker = self.client().await?;
        let mut stream = docker.import_image(ImportImageOptions { quiet: true }, tar.into(), None);
        let (mut refs, mut said) = (Vec::new(), Vec::new());
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error.or_else(|| info.error_detail.and_then(|d| d.message)) {
                        return Err(DriverError::Runtime(format!("image load failed: {err}")));
                    }
                    if let Some(msg) = info.stream.or(info.status) {
                        loaded_refs(&msg, &mut refs);
                        said.push(msg.trim().to_string());
                    }
                }
                Err(BollardError::DockerResponseServerError { status_code, message }) => {
                    return Err(DriverError::Runtime(format!("image load failed ({status_code}): {message}")))
                }
                Err(e) => return Err(self.map(e)),
            }
        }
        if refs.is_empty() {
            return Err(DriverError::Runtime(format!("the runtime named no loaded image: {:?}", said.join(" | "))));
        }
        Ok(refs)
    }

    /// `DELETE /images/{image}`; 404 is success.
    async fn remove_image(&self, image: &str) -> Result<(), DriverError> {
        let opts = bollard::image::RemoveImageOptions { force: false, noprune: false };
        match self.client().await?.remove_image(image, Some(opts), None).await {
            Ok(_) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(BollardError::DockerResponseServerError { message, .. }) if image_missing(&message) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code, message }) => Err(DriverError::Runtime(format!("removing {image} ({status_code}): {message}"))),
            Err(e) => Err(self.map(e)),
        }
    }

    /// `POST /networks/create` unless `GET /networks/{name}` finds it.
    async fn ensure_network(&self, name: &str, internal: bool, labels: &BTreeMap<String, String>) -> Result<Option<String>, DriverError> {
        let docker = self.client().await?;
        let subnet = |n: bollard::models::Network| n.ipam.and_then(|i| i.config).and_then(|c| c.into_iter().find_map(|c| c.subnet));
        match docker.inspect_network(name, None::<bollard::network::InspectNetworkOptions<String>>).await {
            Ok(n) => return Ok(subnet(n)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(self.map(e)),
        }
        let opts = bollard::network::CreateNetworkOptions {
            name: name.to_string(),
            driver: "bridge".to_string(),
            internal,
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>(),
            ..Default::default()
        };
        match docker.create_network(opts).await {
            // Made now, or meanwhile by another reconcile: the runtime picked its subnet.
            Ok(_) | Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {
                docker.inspect_network(name, None::<bollard::network::InspectNetworkOptions<String>>).await.map(subnet).map_err(|e| self.map(e))
            }
            Err(e) => Err(self.map(e)),
        }
    }

    /// `DELETE /networks/{name}`; 404 is success.
    async fn remove_network(&self, name: &str) -> Result<(), DriverError> {
        match self.client().await?.remove_network(name).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    /// `POST /networks/{network}/connect`; a container already on it is success.
    async fn connect_network(&self, network: &str, id: &str) -> Result<(), DriverError> {
        let opts = bollard::network::ConnectNetworkOptions { container: id.to_string(), endpoint_config: bollard::models::EndpointSettings::default() };
        match self.client().await?.connect_network(network, opts).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { message, .. }) if message.contains("already") => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    /// `POST /networks/{network}/disconnect`; a container not on it is success.
    async fn disconnect_network(&self, network: &str, id: &str) -> Result<(), DriverError> {
        let opts = bollard::network::DisconnectNetworkOptions { container: id.to_string(), force: true };
        match self.client().await?.disconnect_network(network, opts).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(BollardError::DockerResponseServerError { message, .. }) if message.contains("not connected") || message.contains("is not connected") => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    /// `POST /images/create?fromImage=` with the credentials as `X-Registry-Auth`, reading the
    /// progress stream to its end: errors arrive inside it as well as in the status.
    async fn pull_image(&self, image: &str, auth: Option<&crate::RegistryAuth>) -> Result<(), DriverError> {
        let docker = self.client().await?;
        let creds = auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let opts = bollard::image::CreateImageOptions { from_image: image.to_string(), ..Default::default() };
        let mut stream = docker.create_image(Some(opts), None, creds);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error.or_else(|| info.error_detail.and_then(|d| d.message)) {
                        return Err(DriverError::ImageNotFound(format!("{image}: {err}")));
                    }
                }
                Err(BollardError::DockerResponseServerError { status_code, message }) if status_code < 500 || image_missing(&message) || message.contains("unauthorized") || message.contains("manifest unknown") || message.contains("denied") => {
                    return Err(DriverError::ImageNotFound(format!("{image}: {message}")))
                }
                Err(BollardError::DockerStreamError { error }) => return Err(DriverError::ImageNotFound(format!("{image}: {error}"))),
                Err(e) => return Err(self.map(e)),
            }
        }
        Ok(())
    }

    /// `POST /images/{source}/tag?repo=&tag=`. Runtimes accept the same tag twice, so this
    /// is idempotent; a 404 is [`DriverError::ImageNotFound`] for `source`.
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), DriverError> {
        let (repo, tag) = split_reference(target)?;
        let docker = self.client().await?;
        match docker.tag_image(source, Some(TagImageOptions { repo, tag })).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code, message })
                if status_code == 404 || image_missing(&message) =>
            {
                Err(DriverError::ImageNotFound(source.to_string()))
            }
            Err(e) => Err(self.map(e)),
        }
    }

    /// Creates the container with the spec's name, image, environment and labels, publishing
    /// its ports on `spec.host_ip` (a missing host port is picked as the module says), with
    /// `NanoCpus = millicpus * 10^6`, `Memory = memory_bytes` and no restart policy. Warnings
    /// the runtime returns (e.g. Docker discarding limits it cannot enforce) are logged.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, DriverError> {
        let docker = self.client().await?;
        let mut exposed: HashMap<String, HashMap<(), ()>> = HashMap::new();
        let mut bindings: PortMap = HashMap::new();
        for p in &spec.ports {
            let proto = match p.protocol {
                PortProtocol::Tcp => "tcp",
                PortProtocol::Udp => "udp",
            };
            let key = format!("{}/{proto}", p.container_port);
            exposed.insert(key.clone(), HashMap::new());
            let binding = PortBinding {
                host_ip: Some(spec.host_ip.clone()).filter(|h| !h.is_empty()),
                // Empty: the runtime picks a free port.
                host_port: Some(
                    p.host_port.or_else(|| self.pick_host_port(&spec.host_ip, p.protocol)).map(|h| h.to_string()).unwrap_or_default(),
                ),
            };
            bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(binding);
        }
        let nano_cpus = i64::try_from(spec.millicpus.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let memory = i64::try_from(spec.memory_bytes).unwrap_or(i64::MAX);
        // On a cluster's network the container is reached through it, not through published ports.
        if spec.network.is_some() {
            bindings.clear();
            exposed.clear();
        }
        let host_config = HostConfig {
            port_bindings: Some(bindings),
            network_mode: spec.network.as_ref().map(|n| n.name.clone()),
            nano_cpus: (spec.millicpus > 0).then_some(nano_cpus),
            memory: (spec.memory_bytes > 0).then_some(memory),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
            ..Default::default()
        };
        let config = Config {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: Some(exposed),
            host_config: Some(host_config),
            networking_config: spec.network.as_ref().map(|n| bollard::container::NetworkingConfig {
                endpoints_config: HashMap::from([(n.name.clone(), bollard::models::EndpointSettings { aliases: Some(n.aliases.clone()), ..Default::default() })]),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions { name: spec.name.clone(), platform: None };
        match docker.create_container(Some(opts), config).await {
            Ok(r) => {
                for w in r.warnings.iter().filter(|w| !w.trim().is_empty()) {
                    if cgroup_hint(w).is_some() || w.to_ascii_lowercase().contains("limitation discarded") {
                        warn!(container = %spec.name, warning = %w, "the runtime discarded a resource limit: the container runs without it");
                    } else {
                        warn!(container = %spec.name, warning = %w, "runtime warning on create");
                    }
                }
                Ok(r.id)
            }
            Err(BollardError::DockerResponseServerError { status_code, message }) => {
                if status_code == 409 || name_in_use(&message) {
                    Err(DriverError::NameInUse(spec.name.clone()))
                } else if status_code == 404 || image_missing(&message) {
                    Err(DriverError::ImageNotFound(spec.image.clone()))
                } else {
                    Err(self.map(BollardError::DockerResponseServerError { status_code, message }))
                }
            }
            Err(e) => Err(self.map(e)),
        }
    }

    /// Starts the container; 304 (already running) is success. A host port taken by another
    /// container or process is [`DriverError::PortInUse`] with that port.
    async fn start(&self, id: &str) -> Result<(), DriverError> {
        // bollard treats 304 Not Modified as success.
        match self.client().await?.start_container(id, None::<StartContainerOptions<String>>).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                Err(DriverError::NotFound(id.to_string()))
            }
            Err(e) => match self.map(e) {
                DriverError::PortInUse(0) => Err(DriverError::PortInUse(self.fixed_host_port(id).await.unwrap_or(0))),
                other => Err(other),
            },
        }
    }

    /// Stops the container: the runtime sends the stop signal (SIGTERM unless the image says
    /// otherwise), then SIGKILL after `grace`, rounded up to whole seconds and at least one.
    /// A container that is not running (304) or does not exist (404) is success.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), DriverError> {
        let secs = grace.as_secs().saturating_add(u64::from(grace.subsec_nanos() > 0)).max(1);
        // The request lasts as long as the grace period: keep it under the request timeout.
        let t = i64::try_from(secs.min(TIMEOUT_SECS - 10)).unwrap_or(1);
        // bollard treats 304 Not Modified as success.
        match self.client().await?.stop_container(id, Some(StopContainerOptions { t })).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 304 | 404, .. }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    /// Force-removes the container with its anonymous volumes (killing it if it runs). A
    /// missing container, or one already being removed, is success.
    async fn remove(&self, id: &str) -> Result<(), DriverError> {
        let opts = RemoveContainerOptions { force: true, v: true, link: false };
        match self.client().await?.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(self.map(e)),
        }
    }

    /// Inspects by id or name; 404 is `None`.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DriverError> {
        match self.client().await?.inspect_container(id, None).await {
            Ok(r) => {
                let mut info = inspect_info(r);
                // A namespace file on another host is no way in.
                if !self.on_this_host() {
                    info.netns = None;
                }
                Ok(Some(info))
            }
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            // Podman answers 500 "no such container" for one it is removing at that moment.
            Err(BollardError::DockerResponseServerError { message, .. }) if message.contains("no such container") => Ok(None),
            Err(e) if is_decode_error(&e) => {
                debug!(container = %id, error = %e, "inspect answer not decodable; looking the container up by listing");
                self.inspect_by_listing(id).await
            }
            Err(e) => Err(self.map(e)),
        }
    }

    /// One list call with label filters (`all`: stopped containers too). Ports are those the
    /// runtime publishes now; exit codes come from the status text.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DriverError> {
        let docker = self.client().await?;
        let mut filters = HashMap::new();
        if !labels.is_empty() {
            filters.insert("label".to_string(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
        }
        let opts = ListContainersOptions { all: true, filters, ..Default::default() };
        let summaries = docker.list_containers(Some(opts)).await.map_err(|e| self.map(e))?;
        Ok(summaries
            .into_iter()
            .map(summary_info)
            // The runtime filtered already; this guards against one that ignores filters.
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect())
    }

    /// The last `tail` lines of stdout and stderr, in the order the runtime returns them,
    /// decoded as UTF-8 (invalid bytes replaced).
    /// Looks the container up first, so a missing one is an error before the stream starts
    /// (a quiet container's stream may not yield anything for a long time).
    async fn logs(&self, id: &str, tail: usize, follow: bool) -> Result<ByteStream, DriverError> {
        if self.inspect(id).await?.is_none() {
            return Err(DriverError::NotFound(id.to_string()));
        }
        let docker = self.client().await?.clone();
        let opts = LogsOptions::<String> { stdout: true, stderr: true, follow, tail: tail.to_string(), ..Default::default() };
        let id = id.to_string();
        let endpoint = self.endpoint.clone();
        let stream = docker.logs(&id, Some(opts)).filter_map(move |item| {
            let out = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                    Some(Ok(message.to_vec()))
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    Some(Err(DriverError::NotFound(id.clone())))
                }
                Err(e) => Some(Err(DriverError::Runtime(format!("reading logs from {endpoint}: {e}")))),
            };
            std::future::ready(out)
        });
        Ok(Box::pin(stream))
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecSession, DriverError> {
        let docker = self.client().await?;
        let opts = CreateExecOptions {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(req.tty),
            cmd: Some(req.cmd.clone()),
            ..Default::default()
        };
        let created = docker.create_exec(id, opts).await.map_err(|e| match e {
            BollardError::DockerResponseServerError { status_code: 404, .. } => DriverError::NotFound(id.to_string()),
            BollardError::DockerResponseServerError { message, .. } => DriverError::Runtime(message),
            e => self.map(e),
        })?;
        let start = StartExecOptions { detach: false, tty: req.tty, output_capacity: Some(64 * 1024) };
        match docker.start_exec(&created.id, Some(start)).await.map_err(|e| self.map(e))? {
            StartExecResults::Attached { output, input } => {
                let output = output.filter_map(|item| {
                    std::future::ready(match item {
                        Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                            Some(Ok(ExecOutput::Stdout(message.to_vec())))
                        }
                        Ok(LogOutput::StdErr { message }) => Some(Ok(ExecOutput::Stderr(message.to_vec()))),
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) => Some(Err(DriverError::Runtime(format!("exec output: {e}")))),
                    })
                });
                Ok(ExecSession { id: created.id, output: Box::pin(output), input })
            }
            StartExecResults::Detached => Err(DriverError::Runtime("the runtime detached an attached exec".into())),
        }
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, DriverError> {
        let r = self.client().await?.inspect_exec(exec_id).await.map_err(|e| match e {
            BollardError::DockerResponseServerError { status_code: 404, .. } => DriverError::NotFound(exec_id.to_string()),
            e => self.map(e),
        })?;
        Ok(if r.running == Some(true) { None } else { r.exit_code })
    }

    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), DriverError> {
        let opts = ResizeExecOptions { width: cols, height: rows };
        self.client().await?.resize_exec(exec_id, opts).await.map_err(|e| self.map(e))
    }

    /// One reading (`stream=false`), without the runtime's second sample: callers keep the
    /// previous reading and compute rates themselves.
    async fn stats(&self, id: &str) -> Result<ContainerStats, DriverError> {
        let docker = self.client().await?;
        let mut stream = docker.stats(id, Some(StatsOptions { stream: false, one_shot: true }));
        let st = match stream.next().await {
            Some(Ok(st)) => st,
            Some(Err(BollardError::DockerResponseServerError { status_code: 404, .. })) | None => {
                return Err(DriverError::NotFound(id.to_string()))
            }
            Some(Err(e)) => return Err(self.map(e)),
        };
        let nets = st.networks.iter().flat_map(|n| n.values()).chain(st.network.iter());
        let (rx, tx) = nets.fold((0, 0), |(rx, tx), n| (rx + n.rx_bytes, tx + n.tx_bytes));
        let io = st.blkio_stats.io_service_bytes_recursive.unwrap_or_default();
        let sum = |op: &str| io.iter().filter(|e| e.op.eq_ignore_ascii_case(op)).map(|e| e.value).sum();
        Ok(ContainerStats {
            cpu_ns: st.cpu_stats.cpu_usage.total_usage,
            memory_bytes: st.memory_stats.usage.unwrap_or(0),
            memory_limit_bytes: st.memory_stats.limit.unwrap_or(0),
            net_rx_bytes: rx,
            net_tx_bytes: tx,
            disk_read_bytes: sum("read"),
            disk_write_bytes: sum("write"),
            pids: st.pids_stats.current.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_are_picked_only_for_a_runtime_on_this_host() {
        for local in ["unix:///run/podman/podman.sock", "tcp://127.0.0.1:2375", "http://localhost:2375/", "tcp://[::1]:2375"] {
            assert!(runtime_is_local(local), "{local}");
        }
        for remote in ["tcp://10.0.0.5:2375", "http://docker.example:2375", "tcp://[2001:db8::1]:2375"] {
            assert!(!runtime_is_local(remote), "{remote}");
        }
        let remote = DockerDriver::connect("tcp://10.0.0.5:2375").expect("lazy");
        assert_eq!(remote.pick_host_port("127.0.0.1", PortProtocol::Tcp), None, "the remote runtime picks");
    }

    #[test]
    fn picked_host_ports_are_outside_the_ephemeral_range_and_skip_taken_ones() {
        let d = DockerDriver::connect("tcp://127.0.0.1:9").expect("lazy");
        let first = d.pick_host_port("127.0.0.1", PortProtocol::Tcp).expect("a port");
        assert!(HOST_PORTS.contains(&first), "{first}");
        // Whatever listens on the next candidate is skipped.
        let next = if first == *HOST_PORTS.end() { *HOST_PORTS.start() } else { first + 1 };
        let held = std::net::TcpListener::bind(("127.0.0.1", next));
        let second = d.pick_host_port("127.0.0.1", PortProtocol::Tcp).expect("a port");
        assert!(HOST_PORTS.contains(&second), "{second}");
        assert_ne!(second, first, "a port is not given twice in a round");
        if held.is_ok() {
            assert_ne!(second, next, "a port something listens on is skipped");
        }
        assert!(d.pick_host_port("not-an-ip", PortProtocol::Tcp).is_none(), "an address it cannot bind: the runtime picks");
    }

    #[test]
    fn port_in_use_messages() {
        // Podman 4.3, verbatim.
        assert_eq!(
            port_in_use("cannot listen on the TCP port: listen tcp4 127.0.0.1:44137: bind: address already in use"),
            Some(44137)
        );
        assert_eq!(port_in_use("rootlessport listen tcp 127.0.0.1:8080: bind: address already in use"), Some(8080));
        // Docker.
        assert_eq!(
            port_in_use("driver failed programming external connectivity on endpoint x (ab12): Bind for 127.0.0.1:9000 failed: port is already allocated"),
            Some(9000)
        );
        assert_eq!(port_in_use("listen tcp6 [::1]:8081: bind: address already in use"), Some(8081));
        assert_eq!(port_in_use("address already in use"), Some(0));
        assert_eq!(port_in_use("no such container"), None);
    }

    #[test]
    fn create_error_messages() {
        assert!(name_in_use(
            "container create: creating container storage: the container name \"a\" is already in use by 12ab. You have to remove that container to be able to reuse that name: that name is already in use"
        ));
        assert!(name_in_use("Conflict. The container name \"/a\" is already in use by container \"12ab\"."));
        assert!(!name_in_use("listen tcp4 0.0.0.0:80: bind: address already in use"));
        assert!(image_missing("no such image: localhost/x:1: image not known"));
        assert!(image_missing("No such image: x:1"));
    }

    #[test]
    fn loaded_image_messages() {
        let mut refs = Vec::new();
        // Podman 4.3, verbatim: one message, refs joined by commas, no newline.
        loaded_refs("Loaded image: localhost/op-sample-app:latest,localhost/op-tmpcheck:a", &mut refs);
        assert_eq!(refs, ["localhost/op-sample-app:latest", "localhost/op-tmpcheck:a"]);
        refs.clear();
        loaded_refs("Loaded image: sha256:0ceaa381b87165861b49091920f0bfc6131e31b4dc59c093cbf8fddf95114ee5", &mut refs);
        assert_eq!(refs, ["sha256:0ceaa381b87165861b49091920f0bfc6131e31b4dc59c093cbf8fddf95114ee5"]);
        // Docker: one line per ref, possibly several per message; the ID form when untagged.
        refs.clear();
        loaded_refs("Loaded image: busybox:latest\nLoaded image: busybox:1\n", &mut refs);
        loaded_refs("Loaded image ID: sha256:abc\n", &mut refs);
        loaded_refs("Loaded image: busybox:1\n", &mut refs);
        loaded_refs("Loading layer  1.2MB/1.2MB\n", &mut refs);
        assert_eq!(refs, ["busybox:latest", "busybox:1", "sha256:abc"]);
    }

    #[test]
    fn tag_targets() {
        assert_eq!(split_reference("localhost/a/b:1").unwrap(), ("localhost/a/b", "1"));
        assert_eq!(split_reference("localhost:5000/a").unwrap(), ("localhost:5000/a", "latest"));
        assert_eq!(split_reference("localhost:5000/a:v2").unwrap(), ("localhost:5000/a", "v2"));
        assert_eq!(split_reference("a").unwrap(), ("a", "latest"));
        assert!(split_reference("a:").is_err());
        assert!(split_reference("a@sha256:abc").is_err());
        assert!(split_reference(" ").is_err());
    }

    #[test]
    fn cgroup_messages() {
        assert!(cgroup_hint("crun: opening file `memory.max` for writing: No such file or directory: OCI runtime attempted to invoke a command that was not found").is_some());
        assert!(cgroup_hint("Your kernel does not support CPU CFS scheduler").is_some());
        assert!(cgroup_hint(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"
        )
        .is_some());
        assert!(cgroup_hint("no such container").is_none());
    }

    #[test]
    fn exit_codes_from_status() {
        assert_eq!(exit_code_of_status("Exited (137) Less than a second ago"), Some(137));
        assert_eq!(exit_code_of_status("Exited (0) 2 minutes ago"), Some(0));
        assert_eq!(exit_code_of_status("Up 2 minutes"), None);
    }

    #[test]
    fn endpoints() {
        assert!(matches!(DockerDriver::connect("ftp://x"), Err(DriverError::Runtime(_))));
        assert!(matches!(DockerDriver::connect("unix://"), Err(DriverError::Runtime(_))));
        assert!(matches!(DockerDriver::connect("unix:///nonexistent/x.sock"), Err(DriverError::Unavailable(_))));
        assert!(DockerDriver::connect("tcp://127.0.0.1:2375").is_ok());
        assert!(DockerDriver::connect("http://127.0.0.1:2375/").is_ok());
    }
}
