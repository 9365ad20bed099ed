//! The cluster controller: keeps each cluster's runtime network on its cloudlet (internal: no
//! route out), and, while the developer allows outbound traffic, an egress network its
//! members are also on. Turning outbound traffic off disconnects every member from the egress
//! network and removes it. A cluster being deleted (no members left: the API sees to that)
//! loses its networks, then its object.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use op_driver::{ContainerInfo, Driver, LABEL_MANAGED, LABEL_PLATFORM};
use op_store::Repo;
use op_types::cluster::{cluster_network, egress_network, ClusterObserved, ClusterSpec};
use op_types::specs::{CloudletObserved, CloudletSpec};
use op_types::{Kind, Object, State, Uid};
use tracing::info;

use crate::{backoff, Action, Drivers, ReconcileError, Reconciler};

/// A stored cluster.
pub type Cluster = Object<ClusterSpec, ClusterObserved>;

/// The label naming the cluster a container belongs to.
pub const LABEL_CLUSTER: &str = "op.cluster";

/// How often a cluster's networks and members are checked.
const PERIOD: Duration = Duration::from_secs(5);

/// Puts a member container on the cluster's egress network or takes it off, as the cluster
/// says (`egress` is the network while outbound traffic is allowed). Idempotent: reads the
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

/// Reconciles clusters.
pub struct ClusterReconciler {
    repo: Repo,
    drivers: Drivers,
    platform_id: String,
}

impl ClusterReconciler {
    /// A reconciler over `repo`, reaching cloudlets through `drivers`; `platform_id` labels
    /// the networks it makes.
    pub fn new(repo: Repo, drivers: Drivers, platform_id: String) -> Self {
        Self { repo, drivers, platform_id }
    }

    async fn driver(&self, c: &Cluster) -> Result<std::sync::Arc<dyn Driver>, ReconcileError> {
        let name = c.observed.cloudlet.as_ref().ok_or_else(|| ReconcileError::Dangling("the cluster has no cloudlet".into()))?;
        let cl = self
            .repo
            .get_by_name::<CloudletSpec, CloudletObserved>(Kind::Cloudlet, None, name)
            .await?
            .ok_or_else(|| ReconcileError::Dangling(format!("cloudlet '{name}' no longer exists")))?;
        Ok(self.drivers.for_cloudlet(&cl.spec)?)
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

    async fn reconcile(&self, uid: Uid) -> Result<Action, ReconcileError> {
        let Some(mut c): Option<Cluster> = self.repo.get(Kind::Cluster, uid).await? else {
            return Ok(Action::AwaitChange);
        };
        let before = c.clone();
        let driver = match self.driver(&c).await {
            Ok(d) => d,
            Err(e) => {
                c.status.state = State::Failed;
                c.status.message = Some(e.to_string());
                if c.status != before.status {
                    let _ = self.repo.update(&mut c).await;
                }
                return Err(e);
            }
        };
        let (net, egress) = (cluster_network(uid), egress_network(uid));
        let members = driver.list(&[(LABEL_CLUSTER, &uid.to_string()), (LABEL_PLATFORM, self.platform_id.as_str())]).await?;
        if c.metadata.deletion_requested.is_some() {
            for m in &members {
                driver.remove(&m.id).await?;
            }
            driver.remove_network(&egress).await?;
            driver.remove_network(&net).await?;
            self.repo.delete(&c).await?;
            info!(cluster = %c.metadata.name, "cluster deleted");
            return Ok(Action::AwaitChange);
        }
        driver.ensure_network(&net, true, &self.labels(uid)).await?;
        let allowed = c.spec.outbound_allowed.then(|| egress.clone());
        if allowed.is_some() {
            driver.ensure_network(&egress, false, &self.labels(uid)).await?;
        }
        for m in &members {
            // Lists do not carry networks: inspect each member.
            if let Some(info) = driver.inspect(&m.id).await? {
                sync_egress(driver.as_ref(), uid, allowed.as_deref(), &info).await?;
            }
        }
        if allowed.is_none() && before.observed.egress_network.is_some() {
            driver.remove_network(&egress).await?;
        }
        c.observed.network = Some(net);
        c.observed.egress_network = allowed;
        c.status.state = State::Ready;
        c.status.message = None;
        c.status.set_condition("NetworkReady", true, "");
        c.status.set_condition("OutboundAllowed", c.spec.outbound_allowed, if c.spec.outbound_allowed { "" } else { "Denied" });
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
