//! The runner: turns a kind's list and watch into a queue of uids and feeds them to a
//! [`Reconciler`] with bounded concurrency, never reconciling one uid twice at once. It keeps
//! each object as last stored (a reflector, in kube-rs's words) and hands it to the reconcile:
//! a reconcile reads its own object from memory, at least as new as the change that queued it,
//! and its writes compare the revision, so a copy that lags a write loses the race and runs
//! again on the watch event that follows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use op_store::informer::{Change, Informer, Raw};
use op_store::Repo;
use op_types::{Kind, Uid};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tracing::warn;

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
    /// Moves the world one step toward the spec of object `uid`, given as last stored
    /// (`None`: it is gone). Idempotent and cancel-safe.
    async fn reconcile(&self, uid: Uid, stored: Option<&Raw>) -> Result<Action, ReconcileError>;
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

/// Periodic re-checks (a requeue of a second or more after a reconcile that succeeded) are
/// spread so that one runner starts at most this many a second: a health period of 5 s holds
/// up to 10,000 objects; at 100,000 Ready instances each is re-checked every 50 s, and the
/// re-checks never take the CPU that new objects need.
const RECHECKS_PER_SECOND: f64 = 2000.0;

/// The delay before a requeue the reconciler asked for after `asked`, with `held` objects.
fn spread(asked: Duration, held: usize) -> Duration {
    if asked < Duration::from_secs(1) {
        // A step in progress (a container starting), not a periodic check.
        return asked;
    }
    asked.max(Duration::from_secs_f64(held as f64 / RECHECKS_PER_SECOND))
}

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
    /// Every wanted object as last stored.
    objects: HashMap<Uid, Arc<Raw>>,
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

    /// Keeps what the list or the watch brought and queues its uid (`wanted`: the reconciler
    /// wants the stored object); whether a worker should be woken.
    fn apply(&mut self, change: Change<'_>, wanted: impl Fn(&[u8]) -> bool) -> bool {
        match change {
            Change::Put(raw) if wanted(raw.bytes()) => {
                self.objects.insert(raw.uid(), Arc::new(raw.clone()));
                self.push(raw.uid(), true)
            }
            // Not this reconciler's: not handed on. One it held (queued, say) keeps its latest
            // version, so a reconcile sees what it became rather than taking it for gone.
            Change::Put(raw) => {
                if let Some(held) = self.objects.get_mut(&raw.uid()) {
                    *held = Arc::new(raw.clone());
                }
                false
            }
            Change::Deleted(uid) => {
                self.objects.remove(&uid);
                self.push(uid, true)
            }
        }
    }

    /// The next uid to reconcile, now marked running, with its object as last stored.
    fn pop(&mut self) -> Option<(Uid, Option<Arc<Raw>>)> {
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
            return Some((uid, self.objects.get(&uid).cloned()));
        }
    }
}

/// Which objects a runner holds, for another controller that asks whether one still exists
/// without a store read (a sweep of thousands of containers). It is as fresh as the runner's
/// watch: an object it does not hold may be newer than the watch, so "no" is for the store to
/// confirm.
#[derive(Clone)]
pub struct Known(Arc<Mutex<Queue>>);

impl Known {
    /// Whether the runner holds object `uid`.
    pub fn holds(&self, uid: Uid) -> bool {
        self.0.lock().is_ok_and(|q| q.objects.contains_key(&uid))
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

    /// The objects this runner holds, for others to ask about.
    pub fn known(&self) -> Known {
        Known(self.queue.clone())
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

    /// Lists the kind into the queue, then follows it: an informer relists when its watch
    /// breaks, and tells of objects that went meanwhile.
    async fn feed(&self) {
        let kind = self.reconciler.kind();
        let mut failures = 0u32;
        let informer = loop {
            match Informer::start(self.repo.clone(), kind, &mut |c| self.apply(c)).await {
                Ok(i) => break i,
                Err(e) => {
                    failures += 1;
                    warn!(%kind, error = %e, "cannot list; retrying");
                    tokio::time::sleep(crate::backoff(failures)).await;
                }
            }
        };
        informer.run(|c| self.apply(c)).await;
    }

    fn apply(&self, change: Change<'_>) {
        let Ok(mut q) = self.queue.lock() else { return };
        if q.apply(change, |b| self.reconciler.wants(b)) {
            drop(q);
            self.notify.notify_one();
        }
    }

    async fn next(&self) -> (Uid, Option<Arc<Raw>>) {
        loop {
            let notified = self.notify.notified();
            if let Some(next) = self.queue.lock().ok().and_then(|mut q| q.pop()) {
                return next;
            }
            notified.await;
        }
    }

    async fn work(&self) {
        let kind = self.reconciler.kind();
        loop {
            let (uid, stored) = self.next().await;
            let started = Instant::now();
            let result = self.reconciler.reconcile(uid, stored.as_deref()).await;
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
            let (again_now, held) = self
                .queue
                .lock()
                .map(|mut q| {
                    q.running.remove(&uid);
                    if result.is_ok() {
                        q.failures.remove(&uid);
                    }
                    (q.dirty.remove(&uid), q.objects.len())
                })
                .unwrap_or((false, 0));
            // Retries after errors keep their backoff; re-checks are spread over the fleet.
            let delay = if result.is_ok() { delay.map(|d| spread(d, held)) } else { delay };
            if again_now {
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
        while let Some((u, _)) = q.pop() {
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
        assert_eq!(q.pop().map(|(u, _)| u), Some(a));
        assert!(!q.push(a, true));
        assert!(q.dirty.contains(&a));
        assert!(q.pop().is_none());
    }

    /// Periodic re-checks stretch with the number of objects held; steps in progress do not.
    #[test]
    fn rechecks_are_spread_over_a_large_fleet() {
        let five = Duration::from_secs(5);
        assert_eq!(spread(five, 1_000), five, "a small fleet keeps its period");
        assert_eq!(spread(five, 100_000), Duration::from_secs(50));
        assert_eq!(spread(Duration::from_millis(25), 100_000), Duration::from_millis(25), "a starting container is not held back");
    }

    /// The reconcile gets the latest stored version of what it is handed; objects the
    /// reconciler does not want are neither kept nor queued, and a deletion queues the uid
    /// with nothing kept.
    #[test]
    fn the_latest_stored_object_goes_with_its_uid() {
        use op_types::{Name, Object};
        let mut q = Queue::default();
        let mut obj: Object<serde_json::Value> = Object::new(Kind::Cluster, None, Name::new("c1").unwrap(), serde_json::json!({"v": 1}));
        obj.metadata.revision = 7;
        let wanted = |b: &[u8]| !String::from_utf8_lossy(b).contains("\"skip\"");
        assert!(q.apply(Change::Put(&Raw::of(&obj).unwrap()), wanted));
        obj.spec = serde_json::json!({"v": 2});
        obj.metadata.revision = 9;
        assert!(!q.apply(Change::Put(&Raw::of(&obj).unwrap()), wanted), "already queued");
        let (uid, stored) = q.pop().unwrap();
        let got: Object<serde_json::Value> = stored.unwrap().decode().unwrap();
        assert_eq!((uid, got.spec["v"].as_u64(), got.metadata.revision), (obj.metadata.uid, Some(2), 9));
        q.running.remove(&uid);

        let mut other: Object<serde_json::Value> = Object::new(Kind::Cluster, None, Name::new("c2").unwrap(), serde_json::json!({"skip": true}));
        other.metadata.revision = 3;
        assert!(!q.apply(Change::Put(&Raw::of(&other).unwrap()), wanted), "not wanted: not queued");
        assert!(!q.objects.contains_key(&other.metadata.uid), "nor kept");

        // One it held that it no longer wants: not queued, but held at its latest (a reconcile
        // queued meanwhile sees what it became, not a deletion).
        obj.spec = serde_json::json!({"skip": true});
        obj.metadata.revision = 11;
        assert!(!q.apply(Change::Put(&Raw::of(&obj).unwrap()), wanted));
        let held: Object<serde_json::Value> = q.objects[&uid].decode().unwrap();
        assert_eq!((held.spec["skip"].as_bool(), held.metadata.revision), (Some(true), 11));

        assert!(q.apply(Change::Deleted(uid), wanted));
        let (gone, stored) = q.pop().unwrap();
        assert_eq!((gone, stored.is_none()), (uid, true), "a deletion is handed on with nothing kept");
    }
}
