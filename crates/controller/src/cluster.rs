//! The cluster controller: keeps each cluster's runtime network on its cloudlet (internal: no
//! route out), its egress gateway, and what may leave. What may leave is the cluster's own
//! wish, its cloudlet's privacy policy and its region's regulation stacked
//! ([`EffectiveEgress`]):
//!
//! - anything: members are also on the cluster's egress network;
//! - only some destinations: members stay on the internal network, and the egress gateway
//!   (`op-egress`, on both networks) relays to what every layer lets out;
//! - nothing: no egress network; the gateway, on the internal network only, still relays
//!   between members for clients that send everything to `HTTP_PROXY`.
//!
//! A change of any layer reaches the gateway (recreated with the new policy) and the members
//! within seconds. A cluster being deleted (no members left: the API sees to that) loses its
//! gateway and networks, then its object.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use op_driver::{ContainerInfo, ContainerSpec, Driver, NetworkAttachment, LABEL_MANAGED, LABEL_PLATFORM};
use op_store::informer::Raw;
use op_store::Repo;
use op_types::cluster::{cluster_network, egress_gateway, egress_network, ClusterObserved, ClusterSpec, EGRESS_GATEWAY_HOST};
use op_types::egress::EffectiveEgress;
use op_types::specs::{CloudletObserved, CloudletSpec, RegionSpec, ZoneSpec};
use op_types::{Kind, Object, State, Uid};
use tracing::{info, warn};

use crate::{backoff, Action, Drivers, ReconcileError, Reconciler};

/// A stored cluster.
pub type Cluster = Object<ClusterSpec, ClusterObserved>;

/// The label naming the cluster a container belongs to.
pub const LABEL_CLUSTER: &str = "op.cluster";
/// The label naming the cluster whose egress gateway a container is.
pub const LABEL_EGRESS_GATEWAY: &str = "op.egress-gateway";
/// The label holding a hash of the policy a gateway was started with.
const LABEL_EGRESS_POLICY: &str = "op.egress-policy";

/// How often a cluster's networks and members are checked.
const PERIOD: Duration = Duration::from_secs(5);
/// The gateway's limits.
const GATEWAY_MILLICPUS: u64 = 200;
const GATEWAY_MEMORY: u64 = 32 << 20;

/// The environment of a cluster member that sends HTTP(S) through its cluster's egress
/// gateway (the only way out of a cluster whose traffic is let out selectively).
pub fn proxy_env() -> BTreeMap<String, String> {
    let proxy = format!("http://{EGRESS_GATEWAY_HOST}:{}", op_types::cluster::EGRESS_GATEWAY_PORT);
    let mut env = BTreeMap::new();
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.insert(k.to_string(), proxy.clone());
    }
    for k in ["NO_PROXY", "no_proxy"] {
        env.insert(k.to_string(), "localhost,127.0.0.1,::1".to_string());
    }
    env
}

/// Puts a container (a member, the gateway) on the cluster's egress network or takes it off:
/// `egress` is the network while the container should be on it. Idempotent: reads the
/// container's networks first.
pub async fn sync_egress(driver: &dyn Driver, cluster: Uid, egress: Option<&str>, container: &ContainerInfo) -> Result<(), ReconcileError> {
    let name = egress_network(cluster);
    let on = container.networks.contains_key(&name);
    match (egress, on) {
        (Some(net), false) => driver.connect_network(net, &container.id).await?,
        (None, true) => driver.disconnect_network(&name, &container.id).await?,
        _ => {}
    }
    Ok(())
}

/// The network members of `c` join to get out (only while anything may leave).
pub fn members_egress(c: &Cluster) -> Option<String> {
    c.observed.egress_network.clone().filter(|_| c.observed.egress == Some(EffectiveEgress::All))
}

/// Reconciles clusters.
pub struct ClusterReconciler {
    repo: Repo,
    drivers: Drivers,
    platform_id: String,
    egress_image: String,
}

impl ClusterReconciler {
    /// A reconciler over `repo`, reaching cloudlets through `drivers`; `platform_id` labels
    /// what it makes; clusters' egress gateways run `egress_image`.
    pub fn new(repo: Repo, drivers: Drivers, platform_id: String, egress_image: String) -> Self {
        Self { repo, drivers, platform_id, egress_image }
    }

    async fn cloudlet(&self, c: &Cluster) -> Result<std::sync::Arc<Object<CloudletSpec, CloudletObserved>>, ReconcileError> {
        let name = c.observed.cloudlet.as_ref().ok_or_else(|| ReconcileError::Dangling("the cluster has no cloudlet".into()))?;
        self.repo
            .get_by_name_cached::<CloudletSpec, CloudletObserved>(Kind::Cloudlet, None, name)
            .await?
            .ok_or_else(|| ReconcileError::Dangling(format!("cloudlet '{name}' no longer exists")))
    }

    /// What may leave cluster `c` on cloudlet `cl`: the cluster's wish, the cloudlet's privacy
    /// policy, the regulation of its region.
    async fn effective(&self, c: &Cluster, cl: &CloudletSpec) -> Result<EffectiveEgress, ReconcileError> {
        let zone: Option<Object<ZoneSpec>> = self.repo.get(Kind::Zone, c.spec.edge_cloud_zone_id).await?;
        let region = match zone {
            Some(z) => self.repo.get_by_name::<RegionSpec, ()>(Kind::Region, None, &z.spec.region).await?,
            None => None,
        };
        let own = c.spec.egress();
        let cloudlet = cl.egress();
        let regulation = region.as_ref().map_or(op_types::egress::Egress::All, |r| r.spec.egress());
        let region_name = region.map(|r| r.metadata.name.to_string()).unwrap_or_default();
        Ok(EffectiveEgress::stack([
            ("cluster's outbound rules".to_string(), &own),
            ("cloudlet's privacy policy".to_string(), &cloudlet),
            (format!("regulation of region {region_name}"), &regulation),
        ]))
    }

    /// Keeps the cluster's egress gateway running with `egress` (recreated when the policy
    /// changed) and on the egress network exactly while anything may leave.
    async fn ensure_gateway(&self, driver: &dyn Driver, uid: Uid, cl: &CloudletSpec, egress: &EffectiveEgress, subnet: Option<&str>) -> Result<(), ReconcileError> {
        let policy = serde_json::to_string(egress).map_err(|e| ReconcileError::Dangling(e.to_string()))?;
        let internal = subnet.unwrap_or_default().to_string();
        let hash = op_types::ids::stable_hash(&format!("{policy}|{internal}|{}", self.egress_image)).to_string();
        let mut labels = self.labels(uid);
        labels.remove(LABEL_CLUSTER);
        labels.insert(LABEL_EGRESS_GATEWAY.to_string(), uid.to_string());
        labels.insert(LABEL_EGRESS_POLICY.to_string(), hash.clone());
        let spec = ContainerSpec {
            name: egress_gateway(uid),
            image: self.egress_image.clone(),
            env: BTreeMap::from([("OP_EGRESS".to_string(), policy), ("OP_EGRESS_INTERNAL".to_string(), internal)]),
            ports: Vec::new(),
            host_ip: cl.public_host.clone(),
            millicpus: GATEWAY_MILLICPUS,
            memory_bytes: GATEWAY_MEMORY,
            labels,
            network: Some(NetworkAttachment { name: cluster_network(uid), aliases: vec![EGRESS_GATEWAY_HOST.to_string()] }),
        };
        let running = match driver.inspect(&spec.name).await? {
            Some(info) if info.labels.get(LABEL_EGRESS_POLICY) != Some(&hash) => {
                info!(cluster = %uid, "egress policy changed: restarting the cluster's egress gateway");
                driver.remove(&info.id).await?;
                None
            }
            other => other,
        };
        let info = match running {
            Some(info) if info.state == op_driver::ContainerState::Running => info,
            seen => crate::container::ensure_running(driver, &spec, seen.is_some()).await?,
        };
        let out = (*egress != EffectiveEgress::Nothing).then(|| egress_network(uid));
        sync_egress(driver, uid, out.as_deref(), &info).await
    }

    fn labels(&self, uid: Uid) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_PLATFORM.to_string(), self.platform_id.clone()),
            (LABEL_CLUSTER.to_string(), uid.to_string()),
        ])
    }
}

#[async_trait]
impl Reconciler for ClusterReconciler {
    fn kind(&self) -> Kind {
        Kind::Cluster
    }

    async fn reconcile(&self, uid: Uid, stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let Some(mut c): Option<Cluster> = stored.map(Raw::decode).transpose()? else {
            return Ok(Action::AwaitChange);
        };
        let before = c.clone();
        let cloudlet = match self.cloudlet(&c).await {
            Ok(cl) => cl,
            Err(e) => {
                c.status.state = State::Failed;
                c.status.message = Some(e.to_string());
                if c.status != before.status {
                    let _ = self.repo.update(&mut c).await;
                }
                return Err(e);
            }
        };
        let driver = self.drivers.for_cloudlet(&cloudlet.spec)?;
        let (net, egress) = (cluster_network(uid), egress_network(uid));
        let members = driver.list(&[(LABEL_CLUSTER, &uid.to_string()), (LABEL_PLATFORM, self.platform_id.as_str())]).await?;
        if c.metadata.deletion_requested.is_some() {
            for m in &members {
                driver.remove(&m.id).await?;
            }
            driver.remove(&egress_gateway(uid)).await?;
            driver.remove_network(&egress).await?;
            driver.remove_network(&net).await?;
            self.repo.delete(&c).await?;
            info!(cluster = %c.metadata.name, "cluster deleted");
            return Ok(Action::AwaitChange);
        }
        let subnet = driver.ensure_network(&net, true, &self.labels(uid)).await?;
        let effective = self.effective(&c, &cloudlet.spec).await?;
        let out = effective != EffectiveEgress::Nothing;
        if out {
            driver.ensure_network(&egress, false, &self.labels(uid)).await?;
        }
        let gateway = self.ensure_gateway(driver.as_ref(), uid, &cloudlet.spec, &effective, subnet.as_deref()).await;
        c.observed.network = Some(net);
        c.observed.egress_network = out.then(|| egress.clone());
        c.observed.egress = Some(effective.clone());
        let members_out = members_egress(&c);
        for m in &members {
            // Lists do not carry networks: inspect each member.
            if let Some(info) = driver.inspect(&m.id).await? {
                sync_egress(driver.as_ref(), uid, members_out.as_deref(), &info).await?;
            }
        }
        if !out && before.observed.egress_network.is_some() {
            driver.remove_network(&egress).await?;
        }
        c.status.state = State::Ready;
        c.status.message = None;
        c.status.set_condition("NetworkReady", true, "");
        let reason = match effective {
            EffectiveEgress::All => "",
            EffectiveEgress::Rules(_) => "Selective",
            EffectiveEgress::Nothing => "Denied",
        };
        c.status.set_condition("OutboundAllowed", effective == EffectiveEgress::All, reason);
        match &gateway {
            Ok(()) => c.status.set_condition("EgressGatewayRunning", true, ""),
            Err(e) => {
                warn!(cluster = %c.metadata.name, image = %self.egress_image, error = %e, "egress gateway not running");
                c.status.set_condition("EgressGatewayRunning", false, "GatewayFailed");
                if out {
                    c.status.message = Some(format!("the egress gateway is not running ({e}): members cannot reach outside the cluster"));
                }
            }
        }
        if c.status != before.status || c.observed != before.observed {
            match self.repo.update(&mut c).await {
                Ok(()) | Err(op_store::RepoError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Action::Requeue(PERIOD))
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        backoff(failures).min(PERIOD)
    }
}
