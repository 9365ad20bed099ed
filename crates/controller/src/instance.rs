//! The app-instance controller: one container per instance on the instance's cloudlet.
//!
//! The container is named after the instance uid and labelled with it, so after a crash the next
//! reconcile finds (adopts) what an earlier one created instead of creating a duplicate, and the
//! garbage collector removes containers whose instance no longer exists.
//!
//! Platform services the app needs (a managed database) are provisioned before the container
//! is created, handed to it in its environment, and dropped after the container is removed.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use op_driver::{
    ContainerSpec, ContainerState, DriverError, NetworkAttachment, PortProtocol, PortSpec, LABEL_INSTANCE,
    LABEL_MANAGED, LABEL_ORG, LABEL_PLATFORM,
};
use op_store::informer::Raw;
use op_store::Repo;
use op_types::specs::{App, AppInstance, AppSpec, Cloudlet, Endpoint, Flavor, Protocol};
use op_types::{Kind, State, Uid};
use tracing::{info, warn};

use crate::{backoff, Action, Drivers, ReconcileError, Reconciler};

/// How often a Ready instance is re-checked (container still running, port still answering).
const HEALTH_PERIOD: Duration = Duration::from_secs(5);
/// How long an app gets to exit after SIGTERM when its instance is deleted.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a starting instance's port is probed.
const STARTING_PROBE: Duration = Duration::from_millis(25);

/// The container name of instance `uid`: deterministic, so creation is idempotent.
pub fn container_name(uid: Uid) -> String {
    format!("op-{uid}")
}

/// Reconciles [`AppInstance`] objects.
pub struct InstanceReconciler {
    repo: Repo,
    drivers: Drivers,
    platform_id: String,
    platform_env: BTreeMap<String, String>,
    service_secret: Vec<u8>,
    registry: Option<RegistryPulls>,
}

/// How the runtimes of cloudlets pull images from the platform's registry: its host, and the
/// credentials a cloudlet presents for an organization's images.
#[derive(Clone)]
pub struct RegistryPulls {
    /// `host:port` of the registry; images under it are pulled when a cloudlet lacks them.
    pub host: String,
    /// Credentials for (organization, cloudlet), made fresh for each pull.
    pub credentials: std::sync::Arc<PullCredentials>,
}

/// Makes the credentials a cloudlet presents for an organization's images.
pub type PullCredentials = dyn Fn(&op_types::Name, &op_types::Name) -> Option<op_driver::RegistryAuth> + Send + Sync;

impl InstanceReconciler {
    /// A reconciler over `repo`, reaching cloudlets through `drivers`; `platform_id` labels
    /// every container it makes, so platforms sharing a runtime never touch each other's.
    /// `platform_env` is given to every instance (e.g. the UNI's session-token public key, so
    /// apps verify device sessions locally). `service_secret` is what the passwords of
    /// instances' platform-service roles are derived from (see [`crate::services`]).
    pub fn new(repo: Repo, drivers: Drivers, platform_id: String, platform_env: BTreeMap<String, String>, service_secret: Vec<u8>) -> Self {
        Self { repo, drivers, platform_id, platform_env, service_secret, registry: None }
    }

    /// Pulls images of the platform's registry that a cloudlet lacks, with `pulls`'
    /// credentials; after the first pull the cloudlet's runtime has the image cached.
    pub fn with_registry(mut self, pulls: RegistryPulls) -> Self {
        self.registry = Some(pulls);
        self
    }

    /// Pulls `image` onto `cloudlet` when it is in the platform's registry (and says whether
    /// it was).
    async fn pull(&self, driver: &dyn op_driver::Driver, image: &str, inst: &AppInstance, cloudlet: &Cloudlet) -> Result<bool, DriverError> {
        let Some(r) = &self.registry else { return Ok(false) };
        if !image.strip_prefix(r.host.as_str()).is_some_and(|rest| rest.starts_with('/')) {
            return Ok(false);
        }
        let Some(org) = &inst.metadata.organization else { return Ok(false) };
        let auth = (r.credentials)(org, &cloudlet.metadata.name);
        info!(uid = %inst.metadata.uid, image, cloudlet = %cloudlet.metadata.name, "pulling the image from the platform's registry");
        driver.pull_image(image, auth.as_ref()).await?;
        Ok(true)
    }

    async fn cloudlet(&self, inst: &AppInstance) -> Result<std::sync::Arc<Cloudlet>, ReconcileError> {
        self.repo
            .get_by_name_cached::<_, _>(Kind::Cloudlet, None, &inst.spec.cloudlet)
            .await?
            .ok_or_else(|| ReconcileError::Dangling(format!("cloudlet '{}' no longer exists", inst.spec.cloudlet)))
    }

    /// Writes `inst` if its status or observed data differ from `before`; a lost race is fine
    /// (the watch brings the newer version back to us).
    async fn save(&self, inst: &mut AppInstance, before: &AppInstance) -> Result<(), ReconcileError> {
        if inst.status != before.status || inst.observed != before.observed {
            match self.repo.update(inst).await {
                Ok(()) | Err(op_store::RepoError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn delete(&self, mut inst: AppInstance) -> Result<Action, ReconcileError> {
        let before = inst.clone();
        if inst.status.state != State::Deleting {
            inst.status.state = State::Deleting;
            inst.status.message = Some("removing the container".into());
            self.save(&mut inst, &before).await?;
        }
        match self.cloudlet(&inst).await {
            Ok(cl) => {
                let driver = self.drivers.for_cloudlet(&cl.spec)?;
                let name = container_name(inst.metadata.uid);
                driver.stop(&name, STOP_GRACE).await?;
                driver.remove(&name).await?;
            }
            // The cloudlet is gone: nothing left to remove there.
            Err(ReconcileError::Dangling(_)) => {}
            Err(e) => return Err(e),
        }
        // Then what platform services hold for it (its database and role).
        let app = self.repo.get_cached_since::<AppSpec, ()>(Kind::App, inst.spec.app_id, inst.spec.app_revision).await?;
        if let Err(e) = crate::services::release(&self.repo, &inst, app.as_deref()).await {
            let before = inst.clone();
            inst.status.message = Some(format!("container removed; {e}; retrying"));
            self.save(&mut inst, &before).await?;
            return Err(e);
        }
        match self.repo.delete(&inst).await {
            Ok(()) => info!(uid = %inst.metadata.uid, "instance deleted"),
            // Written meanwhile: the watch brings that version back to us.
            Err(op_store::RepoError::Conflict) => return Ok(Action::AwaitChange),
            Err(e) => return Err(e.into()),
        }
        Ok(Action::AwaitChange)
    }

    fn container_spec(&self, inst: &AppInstance, app: &App, cl: &Cloudlet, flavor: &Flavor, services: BTreeMap<String, String>) -> ContainerSpec {
        let uid = inst.metadata.uid;
        let mut env: BTreeMap<String, String> = app.spec.env.clone();
        env.extend(self.platform_env.clone());
        env.extend(services);
        env.insert("OP_INSTANCE".into(), uid.to_string());
        // The instance's own credential for the platform's APIs (MEC 021 mobility service,
        // QoS reports), derived, never stored; `OP_PLATFORM_URL` (in platform_env) says where.
        env.insert("OP_INSTANCE_TOKEN".into(), op_types::secret::instance_token(&self.service_secret, uid));
        env.insert("OP_APP".into(), app.metadata.name.to_string());
        env.insert("OP_ZONE".into(), inst.spec.edge_cloud_zone_id.to_string());
        let ports = app
            .spec
            .external_interfaces()
            .map(|n| PortSpec {
                container_port: n.port,
                protocol: if n.protocol == Protocol::UDP { PortProtocol::Udp } else { PortProtocol::Tcp },
                host_port: n.ext_port,
            })
            .collect();
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_INSTANCE.to_string(), uid.to_string());
        labels.insert(LABEL_PLATFORM.to_string(), self.platform_id.clone());
        if let Some(org) = &inst.metadata.organization {
            labels.insert(LABEL_ORG.to_string(), org.to_string());
        }
        let network = inst.spec.cluster.map(|c| {
            // A member's way out, whatever its cluster lets out, is the cluster's gateway.
            env.extend(crate::cluster::proxy_env());
            labels.insert(crate::cluster::LABEL_CLUSTER.to_string(), c.to_string());
            NetworkAttachment { name: op_types::cluster::cluster_network(c), aliases: vec![inst.metadata.name.to_string()] }
        });
        ContainerSpec {
            name: container_name(uid),
            image: app.spec.app_repo.image_path.clone(),
            env,
            ports,
            host_ip: cl.spec.public_host.clone(),
            millicpus: u64::from(flavor.spec.vcpus) * 1000,
            memory_bytes: flavor.spec.memory_mb * 1024 * 1024,
            labels,
            network,
        }
    }
}

#[async_trait]
impl Reconciler for InstanceReconciler {
    fn kind(&self) -> Kind {
        Kind::AppInstance
    }

    async fn reconcile(&self, _uid: Uid, stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let Some(mut inst): Option<AppInstance> = stored.map(Raw::decode).transpose()? else {
            return Ok(Action::AwaitChange);
        };
        if inst.spec.federated.is_some() {
            // It runs on a partner's zone: the federation's reconciler deploys it there.
            return Ok(Action::AwaitChange);
        }
        let inst_before: AppInstance = inst.clone();
        if inst.metadata.deletion_requested.is_some() {
            return self.delete(inst).await;
        }
        let cl = self.cloudlet(&inst).await;
        let app = self.repo.get_cached_since::<_, ()>(Kind::App, inst.spec.app_id, inst.spec.app_revision).await?;
        let flavor = self.repo.get_by_name_cached::<_, ()>(Kind::Flavor, None, &inst.spec.flavor).await?;
        let (cl, app, flavor) = match (cl, app, flavor) {
            (Ok(cl), Some(app), Some(f)) => (cl, app, f),
            (Err(e), _, _) => return self.fail(inst, &inst_before, "CloudletMissing", e).await,
            (_, None, _) => {
                let e = ReconcileError::Dangling("the app was deleted".into());
                return self.fail(inst, &inst_before, "AppMissing", e).await;
            }
            (_, _, None) => {
                let e = ReconcileError::Dangling(format!("flavor '{}' was deleted", inst.spec.flavor));
                return self.fail(inst, &inst_before, "FlavorMissing", e).await;
            }
        };
        if inst.status.state == State::Pending {
            inst.status.state = State::Creating;
            inst.status.message = Some(format!("starting on cloudlet {}", cl.metadata.name));
        }
        // Platform services first: the container starts with their addresses and credentials.
        let attached = match crate::services::attach(&self.repo, &self.service_secret, &inst, &app).await {
            Ok(a) => a,
            Err(e) => return self.fail(inst, &inst_before, "ServiceUnavailable", e).await,
        };
        inst.observed.services = attached.names;
        let spec = self.container_spec(&inst, &app, &cl, &flavor, attached.env);
        let driver = match self.drivers.for_cloudlet(&cl.spec) {
            Ok(d) => d,
            Err(e) => return self.driver_failed(inst, &inst_before, e).await,
        };
        // A member waits for its cluster's network; the cluster read here also says whether
        // the member has a way out, below.
        let mut egress = None;
        if let Some(cluster) = inst.spec.cluster {
            let c: Option<crate::cluster::Cluster> = self.repo.get(Kind::Cluster, cluster).await?;
            let Some(c) = c.filter(|c| c.observed.network.is_some()) else {
                inst.status.message = Some(format!("waiting for cluster {cluster} to have its network"));
                self.save(&mut inst, &inst_before).await?;
                return Ok(Action::Requeue(STARTING_PROBE));
            };
            egress = crate::cluster::members_egress(&c);
        }
        let known = inst.observed.container_id.is_some();
        if known && inst.status.holds("ContainerRunning") {
            // A container that ended on its own is recorded before it is started again, so the
            // exit shows in the instance's status and events rather than passing unseen.
            if let Ok(Some(info)) = driver.inspect(&spec.name).await {
                if info.state == ContainerState::Exited {
                    let code = info.exit_code.map_or_else(|| "an unknown code".to_string(), |c| c.to_string());
                    let reason = if info.oom_killed { "OOMKilled" } else { "Exited" };
                    inst.observed.restarts += 1;
                    inst.status.set_condition("ContainerRunning", false, reason);
                    inst.status.set_condition("Ready", false, reason);
                    inst.status.state = State::Creating;
                    inst.status.message = Some(format!(
                        "the container exited with {code}{}; starting it again (restart {})",
                        if info.oom_killed { " (out of memory)" } else { "" },
                        inst.observed.restarts
                    ));
                    self.save(&mut inst, &inst_before).await?;
                    return Ok(Action::Requeue(STARTING_PROBE));
                }
            }
        }
        let mut started = crate::container::ensure_running(driver.as_ref(), &spec, known).await;
        if matches!(started, Err(DriverError::ImageNotFound(_))) {
            // An image of the platform's registry is pulled once per cloudlet, then cached.
            match self.pull(driver.as_ref(), &spec.image, &inst, &cl).await {
                Ok(true) => started = crate::container::ensure_running(driver.as_ref(), &spec, known).await,
                Ok(false) => {}
                Err(e) => started = Err(e),
            }
        }
        let info = match started {
            Ok(info) => info,
            Err(e) => return self.driver_failed(inst, &inst_before, e).await,
        };
        inst.observed.container_id = Some(info.id.clone());
        inst.observed.network_namespace = info.netns.clone();
        inst.status.set_condition("ContainerRunning", true, "");
        let mut endpoints = Vec::new();
        let mut checked = Vec::new();
        let internal = |addr: Option<&String>| match addr {
            Some(a) => app.spec.component_spec.iter().flat_map(|c| &c.network_interfaces).map(|n| Endpoint { interface_id: n.interface_id.clone(), host: a.clone(), port: n.port }).collect(),
            None => Vec::new(),
        };
        if let Some(cluster) = inst.spec.cluster {
            // A cluster member publishes nothing: it is reached on the cluster's network (and
            // from outside through a load balancer); it has a way out only while the cluster
            // allows it.
            crate::cluster::sync_egress(driver.as_ref(), cluster, egress.as_deref(), &info).await?;
            let addr = info.networks.get(&op_types::cluster::cluster_network(cluster)).cloned().or(info.address.clone());
            inst.observed.internal_endpoints = internal(addr.as_ref());
            for n in app.spec.external_interfaces() {
                if let (Some(a), true) = (&addr, n.protocol != Protocol::UDP) {
                    checked.push((a.clone(), n.port));
                }
            }
        } else {
            for n in app.spec.external_interfaces() {
                if let Some(p) = info.ports.iter().find(|p| p.container_port == n.port) {
                    endpoints.push(Endpoint { interface_id: n.interface_id.clone(), host: cl.spec.public_host.clone(), port: p.host_port });
                    if n.protocol != Protocol::UDP {
                        checked.push((cl.spec.public_host.clone(), p.host_port));
                    }
                }
            }
            inst.observed.internal_endpoints = internal(info.address.as_ref());
        }
        let mut reachable = true;
        for (host, port) in &checked {
            if !driver.reachable(host, *port).await {
                reachable = false;
            }
        }
        inst.observed.endpoints = endpoints;
        let action = if reachable {
            inst.status.set_condition("EndpointReachable", true, "");
            inst.status.set_condition("Ready", true, "");
            inst.status.state = State::Ready;
            inst.status.message = None;
            Action::Requeue(HEALTH_PERIOD)
        } else {
            inst.status.set_condition("EndpointReachable", false, "NotAnswering");
            inst.status.state = State::Creating;
            inst.status.message = Some("container running; waiting for the app to accept connections".into());
            Action::Requeue(STARTING_PROBE)
        };
        self.save(&mut inst, &inst_before).await?;
        Ok(action)
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        backoff(failures)
    }
}

impl InstanceReconciler {
    /// Records the failure in the status (written once: a repeat of the same failure changes
    /// nothing) and hands the error to the runner, whose error policy spaces the retries.
    async fn fail(
        &self,
        mut inst: AppInstance,
        before: &AppInstance,
        reason: &str,
        err: ReconcileError,
    ) -> Result<Action, ReconcileError> {
        self.fail_with(&mut inst, before, reason, err.to_string()).await?;
        Err(err)
    }

    async fn fail_with(
        &self,
        inst: &mut AppInstance,
        before: &AppInstance,
        reason: &str,
        message: String,
    ) -> Result<(), ReconcileError> {
        inst.status.state = State::Failed;
        inst.status.set_condition("Ready", false, reason);
        if before.status.message.as_deref() != Some(message.as_str()) {
            warn!(uid = %inst.metadata.uid, reason, message, "instance failed");
        }
        inst.status.message = Some(message);
        self.save(inst, before).await
    }

    async fn driver_failed(
        &self,
        mut inst: AppInstance,
        before: &AppInstance,
        e: DriverError,
    ) -> Result<Action, ReconcileError> {
        let (reason, msg) = match &e {
            DriverError::Unavailable(_) => ("RuntimeUnavailable", format!("{e}; retrying until the runtime is back")),
            DriverError::ImageNotFound(_) => ("ImageNotFound", format!("{e}; load the image on the cloudlet")),
            DriverError::PortInUse(_) => ("PortInUse", format!("{e}; choose another extPort")),
            _ => ("RuntimeError", e.to_string()),
        };
        self.fail_with(&mut inst, before, reason, msg).await?;
        Err(e.into())
    }
}
