//! The `sim` driver: a modelled cloudlet that starts nothing. Containers are entries in memory
//! with the same lifecycle as real ones (created, running, exited), published ports drawn from a
//! counter, an optional start delay and injected failures, so the same controllers can be
//! driven at scale (tens of thousands of instances) in tests, benchmarks and demos.
//!
//! Endpoint: `sim://NAME[?startMs=N&failEvery=K]`: starts take N ms; every K-th create fails
//! with a retryable runtime error.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::{ContainerInfo, ContainerSpec, ContainerState, Driver, DriverError, PublishedPort};

#[derive(Clone, Debug)]
struct SimContainer {
    id: String,
    name: String,
    labels: BTreeMap<String, String>,
    state: ContainerState,
    ports: Vec<PublishedPort>,
}

/// A simulated cloudlet.
#[derive(Debug)]
pub struct SimDriver {
    start_delay: Duration,
    fail_every: u64,
    creates: AtomicU64,
    next_port: AtomicU64,
    containers: Mutex<HashMap<String, SimContainer>>,
}

impl SimDriver {
    /// A sim cloudlet from its endpoint URL.
    pub fn from_endpoint(endpoint: &str) -> Result<Self, DriverError> {
        let rest = endpoint
            .strip_prefix("sim://")
            .ok_or_else(|| DriverError::Runtime(format!("not a sim endpoint: {endpoint}")))?;
        let (mut start_ms, mut fail_every) = (0u64, 0u64);
        if let Some((_, query)) = rest.split_once('?') {
            for kv in query.split('&') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let n: u64 = v.parse().map_err(|_| DriverError::Runtime(format!("sim endpoint: bad value for {k}")))?;
                match k {
                    "startMs" => start_ms = n,
                    "failEvery" => fail_every = n,
                    _ => return Err(DriverError::Runtime(format!("sim endpoint: unknown parameter {k}"))),
                }
            }
        }
        Ok(Self {
            start_delay: Duration::from_millis(start_ms),
            fail_every,
            creates: AtomicU64::new(0),
            next_port: AtomicU64::new(20_000),
            containers: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SimContainer>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find<'a>(map: &'a HashMap<String, SimContainer>, id: &str) -> Option<&'a SimContainer> {
        map.get(id).or_else(|| map.values().find(|c| c.name == id))
    }

    fn info(c: &SimContainer) -> ContainerInfo {
        ContainerInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            labels: c.labels.clone(),
            state: c.state,
            exit_code: (c.state == ContainerState::Exited).then_some(0),
            ports: c.ports.clone(),
            address: None,
        }
    }
}

#[async_trait]
impl Driver for SimDriver {
    async fn ping(&self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn image_exists(&self, _image: &str) -> Result<bool, DriverError> {
        Ok(true)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, DriverError> {
        let n = self.creates.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            return Err(DriverError::Runtime("simulated failure".into()));
        }
        let mut map = self.lock();
        if map.values().any(|c| c.name == spec.name) {
            return Err(DriverError::NameInUse(spec.name.clone()));
        }
        let id = format!("sim-{n:012}");
        let ports = spec
            .ports
            .iter()
            .map(|p| PublishedPort {
                container_port: p.container_port,
                host_ip: spec.host_ip.clone(),
                host_port: p.host_port.unwrap_or_else(|| (self.next_port.fetch_add(1, Ordering::Relaxed) % 40_000 + 20_000) as u16),
            })
            .collect();
        map.insert(
            id.clone(),
            SimContainer { id: id.clone(), name: spec.name.clone(), labels: spec.labels.clone(), state: ContainerState::Created, ports },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), DriverError> {
        if !self.start_delay.is_zero() {
            tokio::time::sleep(self.start_delay).await;
        }
        let mut map = self.lock();
        let key = Self::find(&map, id).map(|c| c.id.clone()).ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        if let Some(c) = map.get_mut(&key) {
            c.state = ContainerState::Running;
        }
        Ok(())
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), DriverError> {
        let mut map = self.lock();
        if let Some(key) = Self::find(&map, id).map(|c| c.id.clone()) {
            if let Some(c) = map.get_mut(&key) {
                c.state = ContainerState::Exited;
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), DriverError> {
        let mut map = self.lock();
        if let Some(key) = Self::find(&map, id).map(|c| c.id.clone()) {
            map.remove(&key);
        }
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DriverError> {
        Ok(Self::find(&self.lock(), id).map(Self::info))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DriverError> {
        let map = self.lock();
        Ok(map
            .values()
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(Self::info)
            .collect())
    }

    async fn logs(&self, id: &str, _tail: usize) -> Result<String, DriverError> {
        let map = self.lock();
        let c = Self::find(&map, id).ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        Ok(format!("simulated container {} ({:?})\n", c.name, c.state))
    }

    async fn reachable(&self, host: &str, port: u16) -> bool {
        self.lock()
            .values()
            .any(|c| c.state == ContainerState::Running && c.ports.iter().any(|p| p.host_ip == host && p.host_port == port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PortProtocol, PortSpec};

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "any".into(),
            env: BTreeMap::new(),
            ports: vec![PortSpec { container_port: 8080, protocol: PortProtocol::Tcp, host_port: None }],
            host_ip: "127.0.0.1".into(),
            millicpus: 0,
            memory_bytes: 0,
            labels: [("k".to_string(), "v".to_string())].into_iter().collect(),
        }
    }

    #[tokio::test]
    async fn lifecycle_like_a_runtime() {
        let d = SimDriver::from_endpoint("sim://a").unwrap();
        let id = d.create(&spec("c1")).await.unwrap();
        assert!(matches!(d.create(&spec("c1")).await, Err(DriverError::NameInUse(_))));
        let port = d.inspect("c1").await.unwrap().unwrap().ports[0].host_port;
        assert!(!d.reachable("127.0.0.1", port).await, "not running yet");
        d.start(&id).await.unwrap();
        assert!(d.reachable("127.0.0.1", port).await);
        assert_eq!(d.list(&[("k", "v")]).await.unwrap().len(), 1);
        assert_eq!(d.list(&[("k", "w")]).await.unwrap().len(), 0);
        d.remove("c1").await.unwrap();
        d.remove("c1").await.unwrap();
        assert!(d.inspect(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn injected_failures_and_bad_endpoints() {
        let d = SimDriver::from_endpoint("sim://b?failEvery=2").unwrap();
        assert!(d.create(&spec("x1")).await.is_ok());
        let e = d.create(&spec("x2")).await.unwrap_err();
        assert!(e.retryable());
        assert!(SimDriver::from_endpoint("sim://c?bogus=1").is_err());
        assert!(SimDriver::from_endpoint("tcp://x").is_err());
    }
}
