//! The cloudlet controller: checks each cloudlet's runtime answers, records it in the status,
//! and collects garbage there (containers of this platform whose instance no longer exists,
//! e.g. after a crash between a container's creation and its instance's deletion).

use std::time::Duration;

use async_trait::async_trait;
use op_driver::{LABEL_INSTANCE, LABEL_MANAGED, LABEL_PLATFORM};
use op_store::Repo;
use op_types::specs::Cloudlet;
use op_types::{Kind, State, Uid};
use tracing::{info, warn};

use crate::{backoff, Action, Drivers, ReconcileError, Reconciler};

/// How often a cloudlet is checked and swept.
const PERIOD: Duration = Duration::from_secs(10);

/// Reconciles [`Cloudlet`] objects.
pub struct CloudletReconciler {
    repo: Repo,
    drivers: Drivers,
    platform_id: String,
}

impl CloudletReconciler {
    /// A reconciler over `repo`; it sweeps only containers labelled with `platform_id`.
    pub fn new(repo: Repo, drivers: Drivers, platform_id: String) -> Self {
        Self { repo, drivers, platform_id }
    }

    /// Removes this platform's containers on `cl` whose instance is not in the store.
    async fn sweep(&self, cl: &Cloudlet) -> Result<usize, ReconcileError> {
        let driver = self.drivers.for_cloudlet(&cl.spec)?;
        let containers =
            driver.list(&[(LABEL_MANAGED, "true"), (LABEL_PLATFORM, self.platform_id.as_str())]).await?;
        let mut removed = 0;
        for c in containers {
            let known = match c.labels.get(LABEL_INSTANCE).and_then(|u| u.parse::<Uid>().ok()) {
                Some(uid) => self.repo.get::<serde_json::Value, serde_json::Value>(Kind::AppInstance, uid).await?.is_some(),
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

    async fn reconcile(&self, uid: Uid) -> Result<Action, ReconcileError> {
        let Some(mut cl) = self.repo.get::<_, ()>(Kind::Cloudlet, uid).await? else {
            return Ok(Action::AwaitChange);
        };
        let before = cl.clone();
        let health = match self.drivers.for_cloudlet(&cl.spec) {
            Ok(d) => d.ping().await,
            Err(e) => Err(e),
        };
        let result = match health {
            Ok(()) => {
                cl.status.state = State::Ready;
                cl.status.set_condition("RuntimeReachable", true, "");
                cl.status.message = None;
                Ok(())
            }
            Err(e) => {
                cl.status.state = State::Failed;
                cl.status.set_condition("RuntimeReachable", false, "Unavailable");
                cl.status.message = Some(format!("{e}; instances here are retried until it is back"));
                Err(e)
            }
        };
        if cl.status != before.status {
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

