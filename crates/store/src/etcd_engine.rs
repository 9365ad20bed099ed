//! The distributed engine: an etcd cluster (v3 API over gRPC, [`etcd_client`]). Several `opd`
//! replicas of a region share one cluster; each engine works under its own key prefix (one per
//! region), so one etcd cluster can hold several regions without their keys meeting.
//!
//! The [`Engine`] contract maps onto etcd one to one: etcd's cluster revision is the store
//! revision, `Compare::Absent` is `create_revision == 0`, `Compare::ModRevision` is etcd's
//! `mod_revision` compare; watches do not ask for previous values (deletions carry the key alone).
//!
//! Fail-over is explicit, because a client that keeps sending to a stopped member shows every
//! caller an error: the engine holds one connection per member and a current member. A call
//! that fails for a reason a retry can fix (the member is down, has no leader, timed out) goes
//! to the next member, until [`EtcdSettings::deadline`] has passed; then the caller gets
//! [`StoreError::Unavailable`] naming the cause (no quorum: "etcdserver: no leader").
//!
//! A transaction whose outcome is unknown (the member died while it was in flight) is not
//! blindly sent again: the engine first reads the keys it wrote, and if they already hold what
//! it wrote (or are gone, for deletes), it was applied and is not applied twice.
//!
//! Ranges are read in pages of [`PAGE`] keys at one revision, so a list of 100,000 objects is
//! neither one oversized gRPC message nor an inconsistent view.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare as ECompare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, info, warn};

use crate::engine::{Compare, Engine, Event, EventKind, KeyValue, Op, Revision, StoreError, Watch};

/// Keys per page of a range read.
pub const PAGE: i64 = 2000;
/// Buffer of a watch stream.
const WATCH_BUFFER: usize = 1024;
/// Largest gRPC message the engine accepts (a page of large objects).
const MAX_MESSAGE: usize = 64 << 20;

/// How the engine reaches its cluster.
#[derive(Clone, Debug)]
pub struct EtcdSettings {
    /// Client URLs of the members, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prefix of every key this engine reads and writes (e.g. `/op/eu-west`); empty for none.
    pub prefix: String,
    /// How long one call may take on one member before the next member is tried.
    pub request_timeout: Duration,
    /// How long a call keeps trying members before it fails with `Unavailable`.
    pub deadline: Duration,
}

impl EtcdSettings {
    /// Settings for `endpoints` under `prefix`, with a 2 s request timeout and a 5 s deadline:
    /// long enough to ride out a member's restart or an election, short enough that an API
    /// client sees a clear error rather than a hang when the cluster has lost its quorum.
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Self {
        Self {
            endpoints,
            prefix: prefix.trim_end_matches('/').to_string(),
            request_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(5),
        }
    }
}

/// One member: its URL and a connection to it alone.
struct Member {
    url: String,
    client: Client,
}

/// The etcd engine. Cheap to share (`Arc`).
pub struct EtcdEngine {
    members: Vec<Member>,
    current: AtomicUsize,
    prefix: String,
    settings: EtcdSettings,
    /// When the engine was made, and when (ms after) it last warned of a member failing.
    started: Instant,
    last_warning: AtomicU64,
    /// Transactions on their way to the group committer.
    batcher: mpsc::UnboundedSender<Pending>,
    /// The shared watch of each prefix watched, by full key ([`Hub`]).
    hubs: std::sync::Mutex<std::collections::HashMap<Vec<u8>, mpsc::UnboundedSender<Subscriber>>>,
}

/// Whether an etcd error is worth trying again on another member, and its text.
fn classify(e: &etcd_client::Error) -> (bool, String) {
    use etcd_client::Error as E;
    let text = e.to_string();
    let retry = match e {
        E::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Aborted
        ) || s.message().contains("no leader")
            || s.message().contains("leader changed")
            || s.message().contains("timed out"),
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => true,
        _ => false,
    };
    (retry, text)
}

fn full(prefix: &str, key: &str) -> Vec<u8> {
    format!("{prefix}{key}").into_bytes()
}

/// The smallest key greater than every key starting with `p` (etcd's prefix range end).
fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn rev(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

impl EtcdEngine {
    /// Connects to every member (lazily: a member that is down now is used once it is back).
    pub async fn connect(settings: EtcdSettings) -> Result<Arc<Self>, StoreError> {
        if settings.endpoints.is_empty() {
            return Err(StoreError::Unavailable("no etcd endpoints given".into()));
        }
        let mut members = Vec::new();
        for url in &settings.endpoints {
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(settings.request_timeout)
                .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
                .with_require_leader(true);
            let client = Client::connect([url.as_str()], Some(opts))
                .await
                .map_err(|e| StoreError::Unavailable(format!("etcd member {url}: {e}")))?;
            members.push(Member { url: url.clone(), client });
        }
        let (batcher, pending) = mpsc::unbounded_channel();
        let me = Arc::new(Self {
            members,
            current: AtomicUsize::new(0),
            prefix: settings.prefix.clone(),
            settings,
            started: Instant::now(),
            last_warning: AtomicU64::new(0),
            batcher,
            hubs: std::sync::Mutex::default(),
        });
        tokio::spawn(group_commit(Arc::downgrade(&me), pending));
        Ok(me)
    }

    /// The client of the member calls go to now.
    fn member(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed) % self.members.len();
        (i, self.members[i].client.clone())
    }

    /// Moves on from member `failed` (unless another call already did).
    fn next_member(&self, failed: usize, why: &str) {
        let next = (failed + 1) % self.members.len();
        if self.current.compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            // Once per few seconds at most: while the cluster is down every call fails over.
            let now = self.started.elapsed().as_millis() as u64;
            let last = self.last_warning.load(Ordering::Relaxed);
            if (last == 0 || now.saturating_sub(last) >= 5000) && self.last_warning.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                warn!(member = %self.members[failed].url, next = %self.members[next].url, error = why, "etcd member failed; trying the next one");
            } else {
                debug!(member = %self.members[failed].url, next = %self.members[next].url, error = why, "etcd member failed; trying the next one");
            }
        }
    }

    /// Runs `call` on the current member, moving on to the next ones while the failure is one
    /// a retry can fix and the deadline has not passed.
    async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let begun = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let (i, client) = self.member();
            let why = match self.attempt(call(client)).await? {
                Ok(v) => return Ok(v),
                Err(why) => why,
            };
            self.failed_over(i, begun, &why)?;
            // A full round of members failed: wait a little before the next round.
            if (i + 1) % self.members.len() == 0 {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }

    /// One attempt on one member: its value, `Ok(Err(why))` when another member may do
    /// better, or the error that ends the call.
    async fn attempt<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<Result<T, String>, StoreError> {
        match tokio::time::timeout(self.settings.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(Ok(v)),
            Ok(Err(e)) => match classify(&e) {
                (true, why) => Ok(Err(why)),
                (false, text) => Err(StoreError::Unavailable(format!("etcd: {text}"))),
            },
            Err(_) => Ok(Err("request timed out".to_string())),
        }
    }

    /// After member `i` failed for `why`: moves on to the next member, or ends the call begun
    /// at `begun` once the deadline has passed.
    fn failed_over(&self, i: usize, begun: Instant, why: &str) -> Result<(), StoreError> {
        self.next_member(i, why);
        if begun.elapsed() >= self.settings.deadline {
            return Err(StoreError::Unavailable(format!("etcd: no member answered within {:?} (last: {why})", self.settings.deadline)));
        }
        Ok(())
    }

    fn decode(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let key = std::str::from_utf8(kv.key()).map_err(|_| StoreError::Corrupt { key: "?".into(), reason: "key is not utf-8".into() })?;
        let key = key.strip_prefix(self.prefix.as_str()).unwrap_or(key).to_string();
        Ok(KeyValue { key, value: kv.value().to_vec(), create_revision: rev(kv.create_revision()), mod_revision: rev(kv.mod_revision()) })
    }

    /// Whether `ops` are already reflected in the store (a transaction whose reply was lost):
    /// every put key holds its value and every deleted key is gone. Returns the revision of
    /// the latest such write.
    async fn already_applied(&self, ops: &[Op]) -> Result<Option<Revision>, StoreError> {
        let mut latest = 0;
        for op in ops {
            match op {
                Op::Put(k, v) => match self.get(k).await? {
                    Some(kv) if &kv.value == v => latest = latest.max(kv.mod_revision),
                    _ => return Ok(None),
                },
                Op::Delete(k) => {
                    if self.get(k).await?.is_some() {
                        return Ok(None);
                    }
                }
            }
        }
        if latest == 0 {
            latest = self.revision().await?;
        }
        Ok(Some(latest))
    }

    /// The store's transaction in etcd's terms, under this engine's prefix.
    fn etcd_txn(&self, compares: &[Compare], ops: &[Op]) -> Txn {
        let p = &self.prefix;
        // etcd reads a missing key's mod_revision as 0; the contract's ModRevision also needs
        // the key to exist, hence the second compare.
        let when: Vec<ECompare> = compares
            .iter()
            .flat_map(|c| match c {
                Compare::Absent(k) => vec![ECompare::create_revision(full(p, k), CompareOp::Equal, 0)],
                Compare::ModRevision(k, r) => vec![
                    ECompare::create_revision(full(p, k), CompareOp::Greater, 0),
                    ECompare::mod_revision(full(p, k), CompareOp::Equal, i64::try_from(*r).unwrap_or(i64::MAX)),
                ],
            })
            .collect();
        let then: Vec<TxnOp> = ops
            .iter()
            .map(|o| match o {
                Op::Put(k, v) => TxnOp::put(full(p, k), v.clone(), None),
                Op::Delete(k) => TxnOp::delete(full(p, k), None),
            })
            .collect();
        Txn::new().when(when).and_then(then)
    }

    /// One transaction on its own: tried member after member until the deadline; an outcome
    /// lost with a failed member is looked up before trying again.
    /// `begun`: when this write was first tried (its deadline counts from there).
    async fn txn_one(&self, compares: &[Compare], ops: &[Op], begun: Instant) -> Result<Revision, StoreError> {
        let txn = self.etcd_txn(compares, ops);
        loop {
            let (i, mut c) = self.member();
            let failure = match self.attempt(c.txn(txn.clone())).await? {
                Ok(resp) if resp.succeeded() => return Ok(resp.header().map(|h| rev(h.revision())).unwrap_or(0)),
                Ok(_) => return Err(StoreError::Conflict),
                Err(why) => why,
            };
            self.failed_over(i, begun, &failure)?;
            // The outcome is unknown: the write may have been applied before the reply was lost.
            if !ops.is_empty() {
                if let Ok(Some(r)) = self.already_applied(ops).await {
                    return Ok(r);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Transactions of a batch (no key in two of them) as one etcd transaction, so that many
    /// writers share one raft entry, one apply and one reply. A batch of one, or one where any
    /// compare fails or the outcome is lost (and the whole did not go in), is tried one by one.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let begun = Instant::now();
        let whole = if batch.len() > 1 { self.commit_whole(&batch).await } else { None };
        match whole {
            Some(r) => {
                for p in batch {
                    let _ = p.done.send(Ok(r));
                }
            }
            None => {
                let each = batch.into_iter().map(|p| async move {
                    let r = self.txn_one(&p.compares, &p.ops, begun).await;
                    let _ = p.done.send(r);
                });
                futures::future::join_all(each).await;
            }
        }
    }

    /// One attempt at `batch` as one transaction: its revision if it went in.
    async fn commit_whole(&self, batch: &[Pending]) -> Option<Revision> {
        let compares: Vec<Compare> = batch.iter().flat_map(|p| p.compares.iter().cloned()).collect();
        let ops: Vec<Op> = batch.iter().flat_map(|p| p.ops.iter().cloned()).collect();
        let (i, mut c) = self.member();
        match self.attempt(c.txn(self.etcd_txn(&compares, &ops))).await {
            Ok(Ok(resp)) if resp.succeeded() => Some(resp.header().map(|h| rev(h.revision())).unwrap_or(0)),
            Ok(Ok(_)) => None,
            // Lost with the member: all or nothing went in; look which (briefly: the callers'
            // deadline runs on).
            Ok(Err(why)) => {
                self.next_member(i, &why);
                tokio::time::timeout(self.settings.request_timeout, self.already_applied(&ops)).await.ok().and_then(Result::ok).flatten()
            }
            // Refused whole (too large for etcd).
            Err(_) => None,
        }
    }

    /// Campaigns for leadership of `name` (one leader per name among every engine on this
    /// cluster and prefix) as `id`; returns once this engine leads. Leadership is an etcd lease
    /// of `ttl` kept alive in the background: it is lost when the lease cannot be renewed in
    /// time (this process hangs or loses etcd) or when the key is deleted, and then
    /// [`Leadership::lost`] completes. A leader that dies without resigning is replaced once its
    /// lease expires.
    pub async fn campaign(self: &Arc<Self>, name: &str, id: &str, ttl: Duration) -> Result<Leadership, StoreError> {
        let key = format!("/leader/{name}");
        let ttl_s = i64::try_from(ttl.as_secs().max(2)).unwrap_or(10);
        loop {
            let lease = self.call(|mut c| async move { c.lease_grant(ttl_s, None).await }).await?.id();
            let k = full(&self.prefix, &key);
            let txn = Txn::new()
                .when([ECompare::create_revision(k.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(k.clone(), id.as_bytes().to_vec(), Some(etcd_client::PutOptions::new().with_lease(lease)))])
                .or_else([TxnOp::get(k.clone(), None)]);
            let resp = self.call(|mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
            if resp.succeeded() {
                info!(%name, %id, "leading");
                let (tx, rx) = watch::channel(false);
                let me = self.clone();
                let keeper = tokio::spawn(async move { me.keep(lease, ttl, tx).await });
                return Ok(Leadership { lost: rx, keeper, lease, engine: self.clone() });
            }
            // Someone else leads: give our lease back and wait for the key to go.
            let _ = self.call(|mut c| async move { c.lease_revoke(lease).await }).await;
            let at = resp.header().map(|h| rev(h.revision())).unwrap_or(0);
            let mut w = self.watch(&key, at).await?;
            loop {
                match tokio::time::timeout(ttl, w.recv()).await {
                    Ok(Some(Ok(ev))) if ev.kind == EventKind::Delete => break,
                    Ok(Some(Ok(_))) => {}
                    // A broken watch or a quiet period: look again.
                    _ => break,
                }
            }
        }
    }

    /// Renews `lease` every third of `ttl`, trying member after member when one fails, until
    /// it could not be renewed for a whole `ttl`; then reports the loss.
    async fn keep(&self, lease: i64, ttl: Duration, lost: watch::Sender<bool>) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(ttl / 3).await;
            loop {
                let left = ttl.saturating_sub(renewed.elapsed());
                if left.is_zero() {
                    warn!(lease, "leadership lease could not be renewed in time");
                    let _ = lost.send(true);
                    return;
                }
                let (i, mut c) = self.member();
                let once = async {
                    let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                    keeper.keep_alive().await?;
                    stream.message().await
                };
                match tokio::time::timeout(left.min(self.settings.request_timeout), once).await {
                    Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                        renewed = Instant::now();
                        break;
                    }
                    Ok(Ok(_)) => {
                        warn!(lease, "leadership lease expired");
                        let _ = lost.send(true);
                        return;
                    }
                    Ok(Err(e)) => self.next_member(i, &e.to_string()),
                    Err(_) => self.next_member(i, "lease renewal timed out"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Held by the replica that leads. Dropping it stops renewing the lease; [`Leadership::resign`]
/// also gives it back at once, so another replica takes over without waiting for it to expire.
pub struct Leadership {
    lost: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
    lease: i64,
    engine: Arc<EtcdEngine>,
}

impl Leadership {
    /// Completes when leadership is lost.
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives leadership back (on shutdown).
    pub async fn resign(self) {
        self.keeper.abort();
        let lease = self.lease;
        let _ = self.engine.call(|mut c| async move { c.lease_revoke(lease).await }).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Batches in flight at once: while they are, new transactions gather into the next batch.
/// One: etcd's CPU is the limit under load (three members on two cores), and one larger batch
/// costs it less than two smaller ones (`bench/scale.sh`, 100,000 instances at 32 clients:
/// 0.07 transactions per instance, 962 creates/s and a create p99 of 69 ms, against 0.11,
/// 903/s and 88 ms with two in flight).
const BATCHES_IN_FLIGHT: usize = 1;
/// etcd's limit on compares and on operations in one transaction (`--max-txn-ops`).
const MAX_TXN_OPS: usize = 128;
/// Bytes one batch may carry, under etcd's request limit (`--max-request-bytes`, 1.5 MiB).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One caller's transaction waiting for the group committer.
struct Pending {
    compares: Vec<Compare>,
    ops: Vec<Op>,
    done: oneshot::Sender<Result<Revision, StoreError>>,
}

impl Pending {
    /// Every key it compares or writes.
    fn keys(&self) -> impl Iterator<Item = &str> {
        let c = self.compares.iter().map(|c| match c {
            Compare::Absent(k) | Compare::ModRevision(k, _) => k.as_str(),
        });
        c.chain(self.ops.iter().map(|o| match o {
            Op::Put(k, _) | Op::Delete(k) => k.as_str(),
        }))
    }

    /// Compares as etcd counts them (a ModRevision is two), and operations.
    fn weight(&self) -> (usize, usize, usize) {
        let compares = self.compares.iter().map(|c| if matches!(c, Compare::ModRevision(..)) { 2 } else { 1 }).sum();
        let bytes = self.ops.iter().map(|o| match o {
            Op::Put(k, v) => k.len() + v.len(),
            Op::Delete(k) => k.len(),
        });
        (compares, self.ops.len(), bytes.sum())
    }
}

/// Group commit: transactions that arrive while earlier batches are in flight go to etcd
/// together, as one transaction. Under load this divides etcd's work per write (one raft
/// entry, one apply, one reply per batch); alone, a transaction goes at once. Two that touch
/// the same key never share a batch, and keep their order.
async fn group_commit(engine: std::sync::Weak<EtcdEngine>, mut incoming: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let mut carried: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    loop {
        if carried.is_empty() {
            match incoming.recv().await {
                Some(p) => carried.push_back(p),
                None => return,
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        while let Ok(p) = incoming.try_recv() {
            carried.push_back(p);
        }
        let mut batch = Vec::new();
        let mut keys: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut blocked: std::collections::HashSet<String> = std::collections::HashSet::new();
        let (mut compares, mut ops, mut bytes) = (0, 0, 0);
        let mut left = std::collections::VecDeque::new();
        for p in carried.drain(..) {
            let (c, o, b) = p.weight();
            let clash = p.keys().any(|k| keys.contains(k) || blocked.contains(k));
            let fits = batch.is_empty() || (compares + c <= MAX_TXN_OPS && ops + o <= MAX_TXN_OPS && bytes + b <= MAX_BATCH_BYTES);
            if clash || !fits {
                // Later ones on the same keys wait behind it.
                blocked.extend(p.keys().map(str::to_string));
                left.push_back(p);
                continue;
            }
            keys.extend(p.keys().map(str::to_string));
            (compares, ops, bytes) = (compares + c, ops + o, bytes + b);
            batch.push(p);
        }
        carried = left;
        let Some(engine) = engine.upgrade() else { return };
        tokio::spawn(async move {
            engine.commit_batch(batch).await;
            drop(slot);
        });
    }
}

#[async_trait]
impl Engine for EtcdEngine {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let k = full(&self.prefix, key);
        let resp = self.call(|mut c| {
            let k = k.clone();
            async move { c.get(k, None).await }
        })
        .await?;
        resp.kvs().first().map(|kv| self.decode(kv)).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let start = full(&self.prefix, prefix);
        let end = prefix_end(&start);
        let mut out = Vec::new();
        let mut from = start;
        let mut at: i64 = 0;
        loop {
            let resp = self
                .call(|c| {
                    let (from, end) = (from.clone(), end.clone());
                    async move {
                        let mut kv = c.kv_client().max_decoding_message_size(MAX_MESSAGE);
                        let mut o = GetOptions::new().with_range(end).with_limit(PAGE);
                        if at > 0 {
                            o = o.with_revision(at);
                        }
                        kv.get(from, Some(o)).await
                    }
                })
                .await?;
            if at == 0 {
                at = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            for kv in resp.kvs() {
                out.push(self.decode(kv)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok((out, rev(at)))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let (done, outcome) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.batcher.send(Pending { compares, ops, done }) {
            // The committer is gone (the runtime is shutting down): this one goes alone.
            return self.txn_one(&p.compares, &p.ops, Instant::now()).await;
        }
        outcome.await.map_err(|_| StoreError::Unavailable("etcd: the transaction was dropped (shutting down)".into()))?
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let key = full(&self.prefix, prefix);
        let mut sub = Subscriber { after, tx };
        let mut hubs = self.hubs.lock().map_err(|_| StoreError::Unavailable("poisoned lock".into()))?;
        if let Some(hub) = hubs.get(&key) {
            match hub.send(sub) {
                Ok(()) => return Ok(rx),
                // That hub has ended: this watch starts the prefix's next one.
                Err(mpsc::error::SendError(back)) => sub = back,
            }
        }
        let (joins, joined) = mpsc::unbounded_channel();
        hubs.insert(key.clone(), joins);
        let (up_tx, up) = mpsc::channel(WATCH_BUFFER);
        let watcher = self.watcher();
        tokio::spawn(watcher.clone().run(key.clone(), after, up_tx));
        tokio::spawn(Hub { base: after, recent: VecDeque::new(), subs: vec![sub], key, watcher }.run(up, joined));
        Ok(rx)
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let k = full(&self.prefix, "/");
        let resp = self
            .call(|mut c| {
                let k = k.clone();
                async move { c.get(k, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(resp.header().map(|h| rev(h.revision())).unwrap_or(0))
    }
}

impl EtcdEngine {
    fn watcher(&self) -> EtcdWatcher {
        EtcdWatcher {
            members: self.members.iter().map(|m| m.client.clone()).collect(),
            current: self.current.load(Ordering::Relaxed),
            prefix: self.prefix.clone(),
        }
    }
}

/// Events a hub keeps for watches that join late: enough for a consumer that listed a kind a
/// moment ago, small enough to hold for every prefix.
const HUB_RECENT: usize = 8192;

/// One watch stream of a prefix, to be served from its revision `after` on.
struct Subscriber {
    after: Revision,
    tx: mpsc::Sender<Result<Event, StoreError>>,
}

/// The watches of one prefix share one etcd watch. etcd encodes and sends every change once
/// per watch: opd's in-memory views of a kind (the read cache, the inventory, the discovery
/// index, events, alarms) each watch it, which made etcd send each write five times. A hub
/// sends each change on to every stream whose revision it is past, in order; a stream that
/// joins later is first given the changes it missed from the hub's recent ones, or its own
/// etcd watch when they no longer reach back far enough. A stream that does not take its
/// changes holds the others back (as its own watch held etcd's stream back before). A hub
/// lasts as long as its engine (a replica watches a fixed set of prefixes), or until
/// compaction ends its watch.
struct Hub {
    /// Every change after `base` is in `recent`.
    base: Revision,
    recent: VecDeque<Event>,
    subs: Vec<Subscriber>,
    key: Vec<u8>,
    watcher: EtcdWatcher,
}

impl Hub {
    async fn run(mut self, mut up: mpsc::Receiver<Result<Event, StoreError>>, mut joins: mpsc::UnboundedReceiver<Subscriber>) {
        loop {
            tokio::select! {
                biased;
                j = joins.recv() => match j {
                    Some(s) => self.join(s).await,
                    None => return,
                },
                ev = up.recv() => match ev {
                    Some(Ok(ev)) => self.deliver(ev).await,
                    // Compacted past the hub (the only error a watcher sends): every stream
                    // hears it, and the next watch of the prefix starts a new hub.
                    end => {
                        joins.close();
                        let compacted = match end {
                            Some(Err(StoreError::Compacted(r))) => r,
                            _ => self.base,
                        };
                        for s in self.subs.drain(..).chain(std::iter::from_fn(|| joins.try_recv().ok())) {
                            let _ = s.tx.send(Err(StoreError::Compacted(compacted))).await;
                        }
                        return;
                    }
                },
            }
        }
    }

    async fn join(&mut self, s: Subscriber) {
        if s.after < self.base {
            // Older than the changes kept: a watch of its own, from its revision.
            tokio::spawn(self.watcher.clone().run(self.key.clone(), s.after, s.tx));
            return;
        }
        for ev in self.recent.iter().filter(|e| e.kv.mod_revision > s.after) {
            if s.tx.send(Ok(ev.clone())).await.is_err() {
                return;
            }
        }
        self.subs.push(s);
    }

    async fn deliver(&mut self, ev: Event) {
        let mut gone = false;
        for s in &self.subs {
            if ev.kv.mod_revision > s.after && s.tx.send(Ok(ev.clone())).await.is_err() {
                gone = true;
            }
        }
        if gone {
            self.subs.retain(|s| !s.tx.is_closed());
        }
        if self.recent.len() == HUB_RECENT {
            if let Some(old) = self.recent.pop_front() {
                self.base = old.kv.mod_revision;
            }
        }
        self.recent.push_back(ev);
    }
}

/// The task behind one etcd watch: it follows the prefix from the last revision
/// it delivered, moving to another member when its stream breaks, so the consumer sees no
/// gap, no repeat and no error for a member's failure.
#[derive(Clone)]
struct EtcdWatcher {
    members: Vec<Client>,
    current: usize,
    prefix: String,
}

impl EtcdWatcher {
    async fn run(mut self, key: Vec<u8>, after: Revision, tx: mpsc::Sender<Result<Event, StoreError>>) {
        let mut last = after;
        let mut pause = Duration::from_millis(20);
        loop {
            let mut c = self.members[self.current % self.members.len()].clone();
            let opts = WatchOptions::new()
                .with_range(prefix_end(&key))
                .with_start_revision(i64::try_from(last + 1).unwrap_or(i64::MAX));
            let opened = tokio::select! {
                r = c.watch(key.clone(), Some(opts)) => r,
                _ = tx.closed() => return,
            };
            let (_watcher, mut stream) = match opened {
                Ok(s) => s,
                Err(_) => {
                    self.current += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {},
                        _ = tx.closed() => return,
                    }
                    pause = (pause * 2).min(Duration::from_millis(500));
                    continue;
                }
            };
            pause = Duration::from_millis(20);
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return,
                };
                let resp = match msg {
                    Ok(Some(r)) => r,
                    _ => break,
                };
                if resp.compact_revision() > 0 {
                    let _ = tx.send(Err(StoreError::Compacted(last))).await;
                    return;
                }
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let mod_revision = rev(kv.mod_revision());
                    let (kind, value, create_revision) = match ev.event_type() {
                        EventType::Put => (EventKind::Put, kv.value().to_vec(), rev(kv.create_revision())),
                        EventType::Delete => (EventKind::Delete, Vec::new(), 0),
                    };
                    let Ok(k) = std::str::from_utf8(kv.key()) else { continue };
                    let k = k.strip_prefix(self.prefix.as_str()).unwrap_or(k).to_string();
                    let event = Event { kind, kv: KeyValue { key: k, value, create_revision, mod_revision } };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    last = last.max(mod_revision);
                }
                if resp.canceled() {
                    break;
                }
            }
            // The stream broke (member down or canceled): resume on the next member.
            self.current += 1;
        }
    }
}
