//! The runner: turns a kind's list and watch into a queue of uids and feeds them to a
//! [`Reconciler`] with bounded concurrency, never reconciling one uid twice at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use op_store::{Repo, RepoError, StoreError};
use op_types::{Kind, Uid};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::ReconcileError;

/// What to do after a successful reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long even if nothing changes (e.g. to re-check health).
    Requeue(Duration),
    /// Only when the object changes.
    AwaitChange,
}

/// A controller for one kind.
#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// The kind it watches.
    fn kind(&self) -> Kind;
    /// Moves the world one step toward the spec of object `uid`. Idempotent and cancel-safe.
    async fn reconcile(&self, uid: Uid) -> Result<Action, ReconcileError>;
    /// How long to wait before retrying after `failures` consecutive errors.
    fn error_policy(&self, err: &ReconcileError, failures: u32) -> Duration;
    /// Whether a stored version of an object (its bytes, as listed or watched) concerns this
    /// reconciler at all: one that follows a few of a kind's objects (a partner's instances)
    /// says no to the rest before anything is read, instead of reading each on every change.
    /// Deletions are always handed on.
    fn wants(&self, _stored: &[u8]) -> bool {
        true
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
    result: String,
}

/// Controller metrics, registered once in the process registry.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<KindLabel, Counter>,
    duration: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let reconciles = Family::<KindLabel, Counter>::default();
        let duration = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        registry.register("op_reconciles", "Reconciles by kind and result", reconciles.clone());
        registry.register("op_reconcile_duration_seconds", "Time spent in one reconcile", duration.clone());
        Self { reconciles, duration }
    }
}

/// How many uids the workers take from the changes before one requeued uid, while both wait:
/// changes come first, yet periodic re-checks and retries are never starved.
const CHANGES_PER_REQUEUE: u32 = 3;

/// The uids waiting and running. Changes (the list, watch events) and requeues (a reconciler's
/// `Requeue`, retries after errors) wait apart: at 100,000 Ready instances re-checked every
/// few seconds, the re-checks alone exceed what the store serves, and a new instance must not
/// wait behind them.
#[derive(Default)]
struct Queue {
    changes: VecDeque<Uid>,
    requeues: VecDeque<Uid>,
    /// Every uid waiting, and whether it waits among the changes.
    queued: HashMap<Uid, bool>,
    running: HashSet<Uid>,
    /// Changed while running: queue again when the running reconcile ends.
    dirty: HashSet<Uid>,
    failures: HashMap<Uid, u32>,
    /// Changes taken since the last requeue.
    streak: u32,
}

impl Queue {
    /// Queues `uid` (`change`: among the changes); whether a worker should be woken.
    fn push(&mut self, uid: Uid, change: bool) -> bool {
        if self.running.contains(&uid) {
            self.dirty.insert(uid);
            return false;
        }
        match self.queued.get(&uid) {
            Some(true) => false,
            // Waiting as a requeue: a change moves it up (the entry left behind is skipped).
            Some(false) if change => {
                self.queued.insert(uid, true);
                self.changes.push_back(uid);
                true
            }
            Some(false) => false,
            None => {
                self.queued.insert(uid, change);
                if change {
                    self.changes.push_back(uid);
                } else {
                    self.requeues.push_back(uid);
                }
                true
            }
        }
    }

    /// The next uid to reconcile, now marked running.
    fn pop(&mut self) -> Option<Uid> {
        loop {
            let take_requeue = !self.requeues.is_empty() && (self.changes.is_empty() || self.streak >= CHANGES_PER_REQUEUE);
            let (uid, change) = if take_requeue {
                self.streak = 0;
                (self.requeues.pop_front()?, false)
            } else {
                self.streak += 1;
                (self.changes.pop_front()?, true)
            };
            // An entry whose uid has since moved (or run) is stale.
            if self.queued.get(&uid) != Some(&change) {
                continue;
            }
            self.queued.remove(&uid);
            self.running.insert(uid);
            return Some(uid);
        }
    }
}

/// Drives one [`Reconciler`].
pub struct Runner<R: Reconciler> {
    reconciler: Arc<R>,
    repo: Repo,
    queue: Arc<Mutex<Queue>>,
    notify: Arc<Notify>,
    metrics: Metrics,
    workers: usize,
}

impl<R: Reconciler> Runner<R> {
    /// A runner with `workers` concurrent reconciles.
    pub fn new(reconciler: R, repo: Repo, metrics: Metrics, workers: usize) -> Self {
        Self {
            reconciler: Arc::new(reconciler),
            repo,
            queue: Arc::default(),
            notify: Arc::new(Notify::new()),
            metrics,
            workers: workers.max(1),
        }
    }

    fn enqueue(queue: &Mutex<Queue>, notify: &Notify, uid: Uid, change: bool) {
        let Ok(mut q) = queue.lock() else { return };
        if q.push(uid, change) {
            drop(q);
            notify.notify_one();
        }
    }

    /// Runs forever: the watch feeding the queue and the workers draining it.
    pub async fn run(self) {
        let this = Arc::new(self);
        for _ in 0..this.workers {
            let w = this.clone();
            tokio::spawn(async move { w.work().await });
        }
        this.feed().await;
    }

    /// List, enqueue everything, watch from the list's revision; relist when the watch breaks.
    async fn feed(&self) {
        let kind = self.reconciler.kind();
        let mut failures = 0u32;
        loop {
            match self.list_and_watch(kind).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    warn!(%kind, error = %e, "watch broke; relisting");
                }
            }
            tokio::time::sleep(crate::backoff(failures)).await;
        }
    }

    async fn list_and_watch(&self, kind: Kind) -> Result<(), RepoError> {
        // Only uids are queued: the key names them, nothing is decoded here.
        let (kvs, rev) = self.repo.list_raw(kind).await?;
        for uid in kvs.iter().filter(|kv| self.reconciler.wants(&kv.value)).filter_map(|kv| op_store::uid_of_key(&kv.key)) {
            Self::enqueue(&self.queue, &self.notify, uid, true);
        }
        let mut watch = self.repo.watch(kind, rev).await?;
        while let Some(ev) = watch.recv().await {
            match ev {
                Ok(ev) => {
                    let Some(uid) = op_store::uid_of_key(&ev.kv.key) else {
                        warn!(%kind, key = %ev.kv.key, "a watched key that names no uid");
                        continue;
                    };
                    if ev.kind == op_store::EventKind::Delete || self.reconciler.wants(&ev.kv.value) {
                        Self::enqueue(&self.queue, &self.notify, uid, true);
                    }
                }
                Err(StoreError::Compacted(r)) => {
                    debug!(%kind, r, "watch compacted");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn next(&self) -> Uid {
        loop {
            let notified = self.notify.notified();
            if let Some(uid) = self.queue.lock().ok().and_then(|mut q| q.pop()) {
                return uid;
            }
            notified.await;
        }
    }

    async fn work(&self) {
        let kind = self.reconciler.kind();
        loop {
            let uid = self.next().await;
            let started = Instant::now();
            let result = self.reconciler.reconcile(uid).await;
            self.metrics.duration.observe(started.elapsed().as_secs_f64());
            let (label, delay) = match &result {
                Ok(Action::Requeue(d)) => ("ok", Some(*d)),
                Ok(Action::AwaitChange) => ("ok", None),
                Err(e) => {
                    let n = self.queue.lock().map(|mut q| {
                        let f = q.failures.entry(uid).or_insert(0);
                        *f += 1;
                        *f
                    });
                    let n = n.unwrap_or(1);
                    let d = self.reconciler.error_policy(e, n);
                    warn!(%kind, %uid, error = %e, retry_in_ms = d.as_millis() as u64, "reconcile failed");
                    ("error", Some(d))
                }
            };
            self.metrics
                .reconciles
                .get_or_create(&KindLabel { kind: kind.to_string(), result: label.to_string() })
                .inc();
            let again_now = self.queue.lock().map(|mut q| {
                q.running.remove(&uid);
                if result.is_ok() {
                    q.failures.remove(&uid);
                }
                q.dirty.remove(&uid)
            });
            if again_now.unwrap_or(false) {
                Self::enqueue(&self.queue, &self.notify, uid, true);
            } else if let Some(d) = delay {
                let (queue, notify) = (self.queue.clone(), self.notify.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    Self::enqueue(&queue, &notify, uid, false);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(n: usize) -> Vec<Uid> {
        (0..n).map(|_| Uid::random()).collect()
    }

    fn drain(q: &mut Queue) -> Vec<Uid> {
        let mut out = Vec::new();
        while let Some(u) = q.pop() {
            q.running.remove(&u);
            out.push(u);
        }
        out
    }

    #[test]
    fn changes_come_first_and_requeues_are_not_starved() {
        let mut q = Queue::default();
        let (periodic, fresh) = (uids(4), uids(8));
        for u in &periodic {
            assert!(q.push(*u, false));
        }
        for u in &fresh {
            assert!(q.push(*u, true));
        }
        let order = drain(&mut q);
        assert_eq!(order.len(), 12, "each once");
        // Three changes, then a requeue, while both wait; then what is left.
        assert_eq!(&order[..3], &fresh[..3]);
        assert_eq!(order[3], periodic[0]);
        assert_eq!(&order[4..7], &fresh[3..6]);
        assert_eq!(order[7], periodic[1]);
    }

    #[test]
    fn a_change_moves_a_waiting_requeue_up_and_runs_it_once() {
        let mut q = Queue::default();
        let (a, b, c) = (Uid::random(), Uid::random(), Uid::random());
        q.push(a, false);
        q.push(b, false);
        assert!(!q.push(a, false), "already waiting");
        assert!(q.push(a, true), "moved up");
        q.push(c, true);
        assert_eq!(drain(&mut q), vec![a, c, b], "a with the changes, its old place skipped");
        // Running: a change marks it dirty instead of queueing it twice.
        q.push(a, true);
        assert_eq!(q.pop(), Some(a));
        assert!(!q.push(a, true));
        assert!(q.dirty.contains(&a));
        assert_eq!(q.pop(), None);
    }
}
