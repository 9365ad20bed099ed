//! The cloudlet controller: checks each cloudlet's runtime answers, records it in the status,
//! keeps the cloudlet's connectivity probe running (the endpoint devices measure candidate
//! edges with), and collects garbage there (containers of this platform whose instance or
//! cloudlet no longer exists, e.g. after a crash between a container's creation and its
//! object's deletion).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use op_driver::{ContainerSpec, Driver, PortProtocol, PortSpec, LABEL_INSTANCE, LABEL_MANAGED, LABEL_PLATFORM, LABEL_PROBE};
use op_store::informer::Raw;
use op_store::Repo;
use op_types::specs::{Cloudlet, Endpoint};
use op_types::{Kind, State, Uid};
use tracing::{info, warn};

use crate::runner::Known;
use crate::{backoff, Action, Drivers, ReconcileError, Reconciler};

/// How often a cloudlet is checked and swept.
const PERIOD: Duration = Duration::from_secs(10);

/// The probe's port inside its container.
const PROBE_PORT: u16 = 8080;
/// The probe's share of the cloudlet: it answers small requests only.
const PROBE_MILLICPUS: u64 = 100;
const PROBE_MEMORY: u64 = 16 << 20;

/// The container name of cloudlet `uid`'s probe: deterministic, so creation is idempotent.
pub fn probe_container_name(uid: Uid) -> String {
    format!("op-probe-{uid}")
}

/// Reconciles [`Cloudlet`] objects.
pub struct CloudletReconciler {
    repo: Repo,
    drivers: Drivers,
    platform_id: String,
    probe_image: String,
    /// The instances the instance controller holds: a sweep asks the store only about
    /// containers whose instance it does not hold.
    instances: Option<Known>,
}

impl CloudletReconciler {
    /// A reconciler over `repo`; it sweeps only containers labelled with `platform_id`, and
    /// runs `probe_image` on every cloudlet as its connectivity test endpoint.
    pub fn new(repo: Repo, drivers: Drivers, platform_id: String, probe_image: String) -> Self {
        Self { repo, drivers, platform_id, probe_image, instances: None }
    }

    /// Sweeps ask `instances` (the instance controller's runner) before the store.
    pub fn with_instances(mut self, instances: Known) -> Self {
        self.instances = Some(instances);
        self
    }

    fn probe_spec(&self, cl: &Cloudlet) -> ContainerSpec {
        let uid = cl.metadata.uid.to_string();
        let labels = BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_PLATFORM.to_string(), self.platform_id.clone()),
            (LABEL_PROBE.to_string(), uid),
        ]);
        ContainerSpec {
            name: probe_container_name(cl.metadata.uid),
            image: self.probe_image.clone(),
            env: BTreeMap::new(),
            ports: vec![PortSpec { container_port: PROBE_PORT, protocol: PortProtocol::Tcp, host_port: None }],
            host_ip: cl.spec.public_host.clone(),
            millicpus: PROBE_MILLICPUS,
            memory_bytes: PROBE_MEMORY,
            labels,
            network: None,
        }
    }

    /// Keeps the probe running and records where it answers. A probe that cannot run (its
    /// image not loaded on the cloudlet) leaves the cloudlet usable: devices then measure the
    /// app's own port, and the condition says why.
    async fn ensure_probe(&self, driver: &dyn Driver, cl: &mut Cloudlet) {
        let spec = self.probe_spec(cl);
        match crate::container::ensure_running(driver, &spec, cl.observed.probe.is_some()).await {
            Ok(info) => {
                let port = info.ports.iter().find(|p| p.container_port == PROBE_PORT);
                cl.observed.probe = port.map(|p| Endpoint { interface_id: "probe".into(), host: cl.spec.public_host.clone(), port: p.host_port });
                cl.status.set_condition("ProbeRunning", cl.observed.probe.is_some(), "");
            }
            Err(e) => {
                cl.observed.probe = None;
                cl.status.set_condition("ProbeRunning", false, "ProbeFailed");
                warn!(cloudlet = %cl.metadata.name, image = %self.probe_image, error = %e, "connectivity probe not running");
            }
        }
    }

    /// Removes this platform's containers on `cl` whose instance (or, for a probe, cloudlet;
    /// for an egress gateway, cluster) is not in the store.
    async fn sweep(&self, cl: &Cloudlet) -> Result<usize, ReconcileError> {
        let driver = self.drivers.for_cloudlet(&cl.spec)?;
        let containers =
            driver.list(&[(LABEL_MANAGED, "true"), (LABEL_PLATFORM, self.platform_id.as_str())]).await?;
        let mut removed = 0;
        for c in containers {
            let owner = [(LABEL_INSTANCE, Kind::AppInstance), (LABEL_PROBE, Kind::Cloudlet), (crate::cluster::LABEL_EGRESS_GATEWAY, Kind::Cluster)]
                .into_iter()
                .find_map(|(label, kind)| c.labels.get(label).map(|u| (kind, u)))
                .and_then(|(kind, u)| u.parse::<Uid>().ok().map(|u| (kind, u)));
            // Held in memory settles it; otherwise the store says (a container is only started
            // for an instance the instance controller held, so that read is for orphans).
            let known = match owner {
                Some((Kind::Cloudlet, uid)) if uid == cl.metadata.uid => true,
                Some((Kind::AppInstance, uid)) if self.instances.as_ref().is_some_and(|k| k.holds(uid)) => true,
                Some((kind, uid)) => self.repo.get::<serde_json::Value, serde_json::Value>(kind, uid).await?.is_some(),
                None => false,
            };
            if !known {
                info!(container = %c.name, cloudlet = %cl.metadata.name, "removing orphan container");
                driver.remove(&c.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Reconciler for CloudletReconciler {
    fn kind(&self) -> Kind {
        Kind::Cloudlet
    }

    async fn reconcile(&self, _uid: Uid, stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let Some(mut cl): Option<Cloudlet> = stored.map(Raw::decode).transpose()? else {
            return Ok(Action::AwaitChange);
        };
        let before = cl.clone();
        let health = match self.drivers.for_cloudlet(&cl.spec) {
            Ok(d) => d.ping().await.map(|()| d),
            Err(e) => Err(e),
        };
        let result = match health {
            Ok(d) => {
                cl.status.state = State::Ready;
                cl.status.set_condition("RuntimeReachable", true, "");
                cl.status.message = None;
                self.ensure_probe(d.as_ref(), &mut cl).await;
                Ok(())
            }
            Err(e) => {
                cl.status.state = State::Failed;
                cl.status.set_condition("RuntimeReachable", false, "Unavailable");
                cl.status.message = Some(format!("{e}; instances here are retried until it is back"));
                Err(e)
            }
        };
        if cl.status != before.status || cl.observed != before.observed {
            match self.repo.update(&mut cl).await {
                Ok(()) | Err(op_store::RepoError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        result?;
        if let Err(e) = self.sweep(&cl).await {
            warn!(cloudlet = %cl.metadata.name, error = %e, "sweep failed");
        }
        Ok(Action::Requeue(PERIOD))
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        backoff(failures).min(PERIOD)
    }
}

