//! The `sim` driver: a modelled cloudlet that starts nothing. Containers are entries in memory
//! with the same lifecycle as real ones (created, running, exited), published ports drawn from a
//! counter, an optional start delay and injected failures, so the same controllers can be
//! driven at scale (tens of thousands of instances) in tests, benchmarks and demos.
//!
//! Endpoint: `sim://NAME[?startMs=N&failEvery=K]`: starts take N ms; every K-th create fails
//! with a retryable runtime error.
//!
//! Images: a sim cloudlet has every image ([`Driver::image_exists`] is always true), so apps
//! can be deployed on it without building anything. Image moves for federation are modelled:
//! an export is a small JSON manifest naming the image, a load accepts that or a real
//! `docker save` archive and reports its names, and loaded or tagged names are recorded
//! ([`SimDriver::images`]).

use std::collections::{BTreeMap, HashMap};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    ByteStream, ContainerInfo, ContainerSpec, ContainerState, ContainerStats, Driver, DriverError, ExecRequest, ExecSession,
    PublishedPort,
};

#[derive(Clone, Debug)]
struct SimContainer {
    id: String,
    name: String,
    labels: BTreeMap<String, String>,
    state: ContainerState,
    ports: Vec<PublishedPort>,
    millicpus: u64,
    memory_bytes: u64,
    started: Option<std::time::Instant>,
}

/// The load a simulated container models: a tenth of its CPU limit, a quarter of its memory.
const SIM_CPU_SHARE: f64 = 0.1;
/// Memory a simulated container without a limit models using.
const SIM_UNLIMITED_MEMORY: u64 = 16 << 20;

/// A simulated cloudlet.
#[derive(Debug)]
pub struct SimDriver {
    start_delay: Duration,
    fail_every: u64,
    creates: AtomicU64,
    next_port: AtomicU64,
    containers: Mutex<HashMap<String, SimContainer>>,
    images: Mutex<Vec<String>>,
}

/// What a sim export contains: enough for a load on another cloudlet to know the names.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimArchive {
    format: String,
    repo_tags: Vec<String>,
}

/// The `format` of a [`SimArchive`].
const SIM_ARCHIVE_FORMAT: &str = "op-sim-image/v1";

/// One entry of a `docker save` archive's `manifest.json`.
#[derive(Debug, Deserialize)]
struct SaveManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
}

/// The refs a `docker save` archive carries, as a runtime would report them on load: its
/// `RepoTags`, or `sha256:<config digest>` for an entry without tags. `None` when `tar` is
/// not a tar archive with a readable `manifest.json`.
fn docker_archive_refs(tar: &[u8]) -> Option<Vec<String>> {
    let mut at = 0usize;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            return None;
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&header[..name_end]).ok()?;
        let size_field = std::str::from_utf8(&header[124..136]).ok()?;
        let size = usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()?;
        let data = tar.get(at + 512..at + 512 + size)?;
        if name.trim_start_matches("./") == "manifest.json" {
            let entries: Vec<SaveManifestEntry> = serde_json::from_slice(data).ok()?;
            let refs: Vec<String> = entries
                .into_iter()
                .flat_map(|e| match e.repo_tags.filter(|t| !t.is_empty()) {
                    Some(tags) => tags,
                    None => vec![format!("sha256:{}", e.config.trim_end_matches(".json").trim_start_matches("blobs/sha256/"))],
                })
                .collect();
            return (!refs.is_empty()).then_some(refs);
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    None
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
            images: Mutex::new(Vec::new()),
        })
    }

    /// The image names loaded or tagged on this cloudlet, in the order they arrived, so tests
    /// can see that federation moved an image here (every name counts as present anyway).
    pub fn images(&self) -> Vec<String> {
        self.images.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record_image(&self, name: &str) {
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if !images.iter().any(|i| i == name) {
            images.push(name.to_string());
        }
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
            networks: BTreeMap::new(),
            netns: None,
            started_at: None,
            finished_at: None,
            oom_killed: false,
            error: None,
        }
    }
}

#[async_trait]
impl Driver for SimDriver {
    async fn ping(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Every image is present on a sim cloudlet.
    async fn image_exists(&self, _image: &str) -> Result<bool, DriverError> {
        Ok(true)
    }

    /// Images are not modelled: removing one succeeds.
    async fn remove_image(&self, _image: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// Networks are not modelled: every network call succeeds.
    async fn ensure_network(&self, _name: &str, _internal: bool, _labels: &BTreeMap<String, String>) -> Result<Option<String>, DriverError> {
        Ok(None)
    }

    /// See [`SimDriver::ensure_network`].
    async fn remove_network(&self, _name: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// See [`SimDriver::ensure_network`].
    async fn connect_network(&self, _network: &str, _id: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// See [`SimDriver::ensure_network`].
    async fn disconnect_network(&self, _network: &str, _id: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// Every image is present already: a pull is recorded and succeeds.
    async fn pull_image(&self, image: &str, _auth: Option<&crate::RegistryAuth>) -> Result<(), DriverError> {
        self.record_image(image);
        Ok(())
    }

    /// A JSON manifest naming `image`, the same bytes for the same name. Every image is
    /// present, so only an empty name is [`DriverError::ImageNotFound`].
    async fn export_image(&self, image: &str) -> Result<Vec<u8>, DriverError> {
        let image = image.trim();
        if image.is_empty() {
            return Err(DriverError::ImageNotFound(String::new()));
        }
        let archive = SimArchive { format: SIM_ARCHIVE_FORMAT.into(), repo_tags: vec![image.to_string()] };
        serde_json::to_vec(&archive).map_err(|e| DriverError::Runtime(format!("sim export: {e}")))
    }

    /// Accepts a sim export or a real `docker save` archive (so a Docker cloudlet's export can
    /// land on a sim one), records and returns its names. Anything else is
    /// [`DriverError::Runtime`], as a runtime refuses an archive it cannot read.
    async fn load_image(&self, tar: Vec<u8>) -> Result<Vec<String>, DriverError> {
        let refs = match serde_json::from_slice::<SimArchive>(&tar) {
            Ok(a) if a.format == SIM_ARCHIVE_FORMAT && !a.repo_tags.is_empty() => a.repo_tags,
            _ => docker_archive_refs(&tar).ok_or_else(|| {
                DriverError::Runtime("sim load: payload is neither a sim export nor a docker-archive with a manifest.json".into())
            })?,
        };
        for r in &refs {
            self.record_image(r);
        }
        Ok(refs)
    }

    /// Records `target` (tag `latest` when omitted). Every source is present; an empty name
    /// or a digest target is refused like a runtime would.
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), DriverError> {
        if source.trim().is_empty() {
            return Err(DriverError::ImageNotFound(String::new()));
        }
        let target = target.trim();
        let name_start = target.rfind('/').map_or(0, |i| i + 1);
        if target.is_empty() || target.contains('@') || target.ends_with(':') {
            return Err(DriverError::Runtime(format!("'{target}' is not a valid tag target (repo[:tag])")));
        }
        if target[name_start..].contains(':') {
            self.record_image(target);
        } else {
            self.record_image(&format!("{target}:latest"));
        }
        Ok(())
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
            SimContainer {
                id: id.clone(),
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                state: ContainerState::Created,
                ports,
                millicpus: spec.millicpus,
                memory_bytes: spec.memory_bytes,
                started: None,
            },
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
            if c.state != ContainerState::Running {
                c.started = Some(std::time::Instant::now());
            }
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

    /// One line naming the container; a simulated container writes nothing more, so a follow
    /// ends there too.
    async fn logs(&self, id: &str, _tail: usize, _follow: bool) -> Result<ByteStream, DriverError> {
        let map = self.lock();
        let c = Self::find(&map, id).ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        let line = format!("simulated container {} ({:?})\n", c.name, c.state).into_bytes();
        Ok(Box::pin(futures::stream::iter([Ok(line)])))
    }

    /// Nothing runs in a simulated container.
    async fn exec(&self, id: &str, _req: &ExecRequest) -> Result<ExecSession, DriverError> {
        match Self::find(&self.lock(), id) {
            None => Err(DriverError::NotFound(id.to_string())),
            Some(_) => Err(DriverError::Runtime("a simulated cloudlet runs no processes to attach to".into())),
        }
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, DriverError> {
        Err(DriverError::NotFound(exec_id.to_string()))
    }

    async fn exec_resize(&self, exec_id: &str, _cols: u16, _rows: u16) -> Result<(), DriverError> {
        Err(DriverError::NotFound(exec_id.to_string()))
    }

    /// The modelled load: [`SIM_CPU_SHARE`] of the CPU limit since the start, a quarter of
    /// the memory limit, no traffic.
    async fn stats(&self, id: &str) -> Result<ContainerStats, DriverError> {
        let map = self.lock();
        let c = Self::find(&map, id).ok_or_else(|| DriverError::NotFound(id.to_string()))?;
        let running = c.state == ContainerState::Running;
        let up_ns = c.started.filter(|_| running).map_or(0.0, |t| t.elapsed().as_nanos() as f64);
        let cpus = if c.millicpus == 0 { 1.0 } else { c.millicpus as f64 / 1000.0 };
        let limit = if c.memory_bytes == 0 { SIM_UNLIMITED_MEMORY * 4 } else { c.memory_bytes };
        Ok(ContainerStats {
            cpu_ns: (up_ns * cpus * SIM_CPU_SHARE) as u64,
            memory_bytes: if running { limit / 4 } else { 0 },
            memory_limit_bytes: limit,
            pids: u64::from(running),
            ..ContainerStats::default()
        })
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
            network: None,
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
    async fn images_move_between_sim_cloudlets() {
        let origin = SimDriver::from_endpoint("sim://origin").unwrap();
        let partner = SimDriver::from_endpoint("sim://partner").unwrap();
        let archive = origin.export_image("localhost/app:1").await.unwrap();
        assert_eq!(archive, origin.export_image("localhost/app:1").await.unwrap(), "deterministic");
        assert_ne!(archive, origin.export_image("localhost/app:2").await.unwrap());
        assert!(matches!(origin.export_image(" ").await, Err(DriverError::ImageNotFound(_))));
        assert!(partner.images().is_empty());
        assert_eq!(partner.load_image(archive.clone()).await.unwrap(), ["localhost/app:1"]);
        assert_eq!(partner.load_image(archive).await.unwrap(), ["localhost/app:1"]);
        assert!(partner.image_exists("localhost/app:1").await.unwrap());
        partner.tag_image("localhost/app:1", "localhost/fed/x:1").await.unwrap();
        partner.tag_image("localhost/app:1", "localhost/fed/x:1").await.unwrap();
        partner.tag_image("localhost/app:1", "localhost:5000/fed/y").await.unwrap();
        assert_eq!(partner.images(), ["localhost/app:1", "localhost/fed/x:1", "localhost:5000/fed/y:latest"]);
        assert!(partner.image_exists("localhost/fed/x:1").await.unwrap());
        assert!(matches!(partner.tag_image("a", "b@sha256:00").await, Err(DriverError::Runtime(_))));
        assert!(matches!(partner.tag_image("a", "").await, Err(DriverError::Runtime(_))));
        let e = partner.load_image(b"garbage".to_vec()).await.unwrap_err();
        assert!(matches!(e, DriverError::Runtime(_)), "{e:?}");
        assert!(matches!(partner.load_image(vec![0; 1024]).await, Err(DriverError::Runtime(_))));
        assert!(matches!(partner.load_image(Vec::new()).await, Err(DriverError::Runtime(_))));
        assert_eq!(partner.images().len(), 3, "failed loads record nothing");
    }

    /// A minimal tar: one entry per (name, data), then the two zero blocks.
    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in entries {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[tokio::test]
    async fn sim_loads_docker_save_archives() {
        let d = SimDriver::from_endpoint("sim://p").unwrap();
        let manifest = br#"[{"Config":"0cea.json","RepoTags":["localhost/a:1","localhost/b:2"],"Layers":["c399.tar"]}]"#;
        let tar = tar_of(&[("c399.tar", &[7u8; 700]), ("0cea.json", b"{}"), ("manifest.json", manifest)]);
        assert_eq!(d.load_image(tar).await.unwrap(), ["localhost/a:1", "localhost/b:2"]);
        let untagged = tar_of(&[("manifest.json", br#"[{"Config":"0cea.json","RepoTags":null,"Layers":[]}]"#)]);
        assert_eq!(d.load_image(untagged).await.unwrap(), ["sha256:0cea"]);
        let no_manifest = tar_of(&[("c399.tar", &[7u8; 10])]);
        assert!(matches!(d.load_image(no_manifest).await, Err(DriverError::Runtime(_))));
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
