//! The `docker` driver: the Docker Engine API, as served by Docker and by Podman's compatible
//! service, through bollard.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bollard::container::{
    Config, CreateContainerOptions, ListContainersOptions, LogOutput, LogsOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HostConfig, PortBinding};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::StreamExt;

use crate::{ContainerInfo, ContainerSpec, ContainerState, Driver, DriverError, PortProtocol, PublishedPort};

/// Seconds a runtime call may take before it counts as unavailable.
const TIMEOUT_SECS: u64 = 60;

/// A Docker Engine API client for one cloudlet.
pub struct DockerDriver {
    docker: Docker,
    endpoint: String,
}

impl DockerDriver {
    /// Connects to `endpoint`: `unix:///path/to.sock`, `tcp://host:port` or `http://host:port`.
    /// Connecting opens nothing yet; a missing socket is reported as [`DriverError::Unavailable`].
    pub fn connect(endpoint: &str) -> Result<Self, DriverError> {
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(endpoint, TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            return Err(DriverError::Runtime(format!("unsupported endpoint '{endpoint}'")));
        };
        let docker = docker.map_err(|e| DriverError::Unavailable(format!("{endpoint}: {e}")))?;
        Ok(Self { docker, endpoint: endpoint.to_string() })
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> DriverError {
        DriverError::Unavailable(format!("{}: {e}", self.endpoint))
    }

    /// Maps bollard errors that carry no call-specific meaning.
    fn map(&self, e: BollardError) -> DriverError {
        match e {
            BollardError::DockerResponseServerError { status_code: 404, message } => DriverError::NotFound(message),
            BollardError::DockerResponseServerError { status_code: 409, message } => DriverError::NameInUse(message),
            BollardError::DockerResponseServerError { status_code, message } if status_code >= 500 => {
                if let Some(p) = port_in_use(&message) {
                    DriverError::PortInUse(p)
                } else {
                    DriverError::Runtime(format!("{status_code}: {message}"))
                }
            }
            BollardError::DockerResponseServerError { status_code, message } => {
                DriverError::Runtime(format!("{status_code}: {message}"))
            }
            other => self.unavailable(other),
        }
    }

    fn info(&self, r: ContainerInspectResponse) -> ContainerInfo {
        let labels: BTreeMap<String, String> =
            r.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default().into_iter().collect();
        let (state, exit_code) = match &r.state {
            Some(s) => (
                match s.status {
                    Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
                    Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
                    Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
                    _ => ContainerState::Other,
                },
                s.exit_code,
            ),
            None => (ContainerState::Other, None),
        };
        let mut ports = Vec::new();
        let bindings = r.network_settings.as_ref().and_then(|n| n.ports.clone()).unwrap_or_default();
        for (key, binds) in bindings {
            let Some(container_port) = key.split('/').next().and_then(|p| p.parse().ok()) else { continue };
            for b in binds.unwrap_or_default() {
                if let Some(host_port) = b.host_port.as_deref().and_then(|p| p.parse().ok()).filter(|p| *p != 0) {
                    let host_ip = b.host_ip.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
                    ports.push(PublishedPort { container_port, host_ip, host_port });
                }
            }
        }
        ports.sort_by_key(|p| (p.container_port, p.host_port));
        ContainerInfo {
            id: r.id.unwrap_or_default(),
            name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
            labels,
            state,
            exit_code,
            ports,
        }
    }
}

/// Extracts the port from the runtime's "address already in use" / "port is already allocated"
/// messages (Docker and Podman word them differently).
fn port_in_use(message: &str) -> Option<u16> {
    let lower = message.to_ascii_lowercase();
    if !(lower.contains("address already in use") || lower.contains("already allocated") || lower.contains("port is already")) {
        return None;
    }
    // The port is the digits after a ':' of an address like 127.0.0.1:8080.
    let ports: Vec<u16> = lower
        .split(':')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .filter(|p| *p != 0)
        .collect();
    Some(ports.last().copied().unwrap_or(0))
}

#[async_trait]
impl Driver for DockerDriver {
    async fn ping(&self) -> Result<(), DriverError> {
        self.docker.ping().await.map(|_| ()).map_err(|e| self.unavailable(e))
    }

    async fn image_exists(&self, image: &str) -> Result<bool, DriverError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, DriverError> {
        let mut exposed: HashMap<String, HashMap<(), ()>> = HashMap::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &spec.ports {
            let proto = match p.protocol {
                PortProtocol::Tcp => "tcp",
                PortProtocol::Udp => "udp",
            };
            let key = format!("{}/{proto}", p.container_port);
            exposed.insert(key.clone(), HashMap::new());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(spec.host_ip.clone()),
                    host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
                }]),
            );
        }
        let host_config = HostConfig {
            port_bindings: Some(bindings),
            nano_cpus: (spec.millicpus > 0).then_some((spec.millicpus * 1_000_000) as i64),
            memory: (spec.memory_bytes > 0).then_some(spec.memory_bytes as i64),
            ..Default::default()
        };
        let config = Config {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: Some(exposed),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptions { name: spec.name.clone(), platform: None };
        match self.docker.create_container(Some(opts), config).await {
            Ok(r) => Ok(r.id),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                Err(DriverError::ImageNotFound(spec.image.clone()))
            }
            Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {
                Err(DriverError::NameInUse(spec.name.clone()))
            }
            // Podman answers 500 "...image not known" for a missing image on create.
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.contains("image not known") || message.contains("No such image") =>
            {
                Err(DriverError::ImageNotFound(spec.image.clone()))
            }
            Err(BollardError::DockerResponseServerError { message, .. }) if message.contains("already in use") => {
                Err(DriverError::NameInUse(spec.name.clone()))
            }
            Err(e) => Err(self.map(e)),
        }
    }

    async fn start(&self, id: &str) -> Result<(), DriverError> {
        match self.docker.start_container(id, None::<StartContainerOptions<String>>).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn stop(&self, id: &str, grace: std::time::Duration) -> Result<(), DriverError> {
        let opts = StopContainerOptions { t: grace.as_secs().max(1) as i64 };
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 304 | 404, .. }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), DriverError> {
        let opts = RemoveContainerOptions { force: true, v: true, link: false };
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DriverError> {
        match self.docker.inspect_container(id, None).await {
            Ok(r) => Ok(Some(self.info(r))),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DriverError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
        let opts = ListContainersOptions { all: true, filters, ..Default::default() };
        let summaries = self.docker.list_containers(Some(opts)).await.map_err(|e| self.map(e))?;
        let mut out = Vec::with_capacity(summaries.len());
        for s in summaries {
            let Some(id) = s.id else { continue };
            // A container removed between list and inspect is simply not there any more.
            if let Some(info) = self.inspect(&id).await? {
                if labels.iter().all(|(k, v)| info.labels.get(*k).map(String::as_str) == Some(*v)) {
                    out.push(info);
                }
            }
        }
        Ok(out)
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, DriverError> {
        let opts = LogsOptions::<String> { stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
        let mut stream = self.docker.logs(id, Some(opts));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            match item.map_err(|e| self.map(e))? {
                LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } => {
                    out.push_str(&String::from_utf8_lossy(&message));
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use_messages() {
        assert_eq!(
            port_in_use("rootlessport listen tcp 127.0.0.1:8080: bind: address already in use"),
            Some(8080)
        );
        assert_eq!(port_in_use("Bind for 127.0.0.1:9000 failed: port is already allocated"), Some(9000));
        assert_eq!(port_in_use("no such container"), None);
    }
}
