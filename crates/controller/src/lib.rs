//! Controllers: one reconcile contract, one runner, one reconciler per kind.
//!
//! The contract (after kube-rs): `reconcile(uid)` reads the object and the world, moves the world
//! one step toward the spec, writes status, and returns an [`Action`]. It is idempotent (calling it
//! twice is the same as once) and cancel-safe (a crash between any two steps is repaired by the
//! next call), which is why `kill -9` of `opd` loses nothing. A separate error policy picks the
//! backoff from the error and the failure count.

mod cloudlet;
pub mod cluster;
mod container;
mod instance;
mod runner;
pub mod services;

pub use cloudlet::CloudletReconciler;
pub use cluster::ClusterReconciler;
pub use op_driver::Drivers;
pub use instance::{container_name, InstanceReconciler, RegistryPulls};
pub use runner::{Action, Known, Metrics, Reconciler, Runner};

use std::time::Duration;

/// Errors a reconcile can end with. Each carries whether it is worth retrying soon.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Repo(#[from] op_store::RepoError),
    /// The infrastructure driver failed.
    #[error(transparent)]
    Driver(#[from] op_driver::DriverError),
    /// The object refers to something that does not exist (e.g. its cloudlet was deleted).
    #[error("{0}")]
    Dangling(String),
    /// A platform service (e.g. the operator's database server) failed. Retry.
    #[error("{0}")]
    Service(String),
}

/// Exponential backoff from 200 ms doubling to a 30 s cap: the one error policy every controller
/// uses, so a runtime outage costs few calls and recovery is noticed within 30 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 200u64.saturating_mul(1u64 << failures.min(8));
    Duration::from_millis(ms.min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert!(backoff(5) > backoff(4));
        assert_eq!(backoff(30), Duration::from_secs(30));
    }
}
